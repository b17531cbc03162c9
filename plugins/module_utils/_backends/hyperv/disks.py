# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hyper-V disks: VHDX files ``<storage>\\<name>.vhdx`` on the host, attached to a VM's SCSI (or IDE) controller.

``storage`` is a host directory; by default ``<connection.vm_path>\\Virtual Hard Disks`` (Hyper-V's own
layout), else the host's VirtualHardDiskPath. A disk's ``path`` is its file on the host. The host
has no directory listing in the script contract, so ``disk_info`` finds the disks VMs use.
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Disks
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.backend import check_path, join
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.instances import check_vm_name
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, disk_result, in_unit

TYPES = ("dynamic", "fixed")
OPTIONS = ("type", "controller_type")


def split(path):
    folder, _sep, base = path.rpartition("\\")
    return folder, base.rsplit(".", 1)[0]


class HyperVDisks(Disks):
    def validate(self, spec):
        check_vm_name(spec["name"])  # the file name follows the same rules
        if spec["storage"]:
            check_path(spec["storage"], "storage")
        for key, value in spec["backend_options"].items():
            if key not in OPTIONS:
                raise InvalidInput("backend_options.%s is not a Hyper-V disk option (use %s)" % (key, ", ".join(OPTIONS)))
        if spec["backend_options"].get("type", "dynamic") not in TYPES:
            raise InvalidInput("backend_options.type must be dynamic or fixed, got %r" % spec["backend_options"]["type"])
        if spec["backend_options"].get("controller_type", "SCSI") not in ("SCSI", "IDE"):
            raise InvalidInput("backend_options.controller_type must be SCSI or IDE, got %r" % spec["backend_options"]["controller_type"])
        if spec["size_bytes"] is not None and spec["size_bytes"] % MIB:
            raise InvalidInput("size must be a whole number of MiB for a VHDX, got %d bytes" % spec["size_bytes"])

    def pool(self, spec, instance):
        if spec["storage"]:
            return spec["storage"].rstrip("\\")
        if self.backend.settings.get("vm_path"):
            return join(self.backend.settings["vm_path"], "Virtual Hard Disks")
        return self.backend.host()["virtual_hard_disk_path"]

    def path(self, storage, name):
        return join(storage, name + ".vhdx")

    def describe(self, vhd, users):
        storage, name = split(vhd["path"])
        return disk_result(name, self.backend.name, size_gib=in_unit(vhd["size"], GIB), size_bytes=vhd["size"], storage=storage,
                           attached_to=users[0] if users else None, attachments=users, path=vhd["path"], backend_data=dict(vhd))

    def get(self, spec, instance):
        path = self.path(spec["storage"], spec["name"])
        vhd = self.backend.run("vhd_get", path=path)
        if vhd is None:
            return None
        if instance is not None and _uses(instance, path):
            users = [instance["name"]]
        elif vhd.get("attached"):  # someone else: only then is every VM read
            users = [vm["name"] for vm in self.backend.run("vm_list") or [] if any(d["path"].lower() == path.lower() for d in vm.get("disks") or [])]
        else:
            users = []
        return self.describe(vhd, users)

    def attachment(self, spec, attached):
        return {"path": self.path(spec["storage"], spec["name"])}

    def list(self, storage=None, instance=None):
        vms = [instance["_native"]] if instance is not None else self.backend.run("vm_list") or []
        users = {}
        for vm in vms:
            for drive in (vm.get("disks") or [])[1:]:  # the first drive is the VM's boot disk, not one of the module's disks
                users.setdefault(drive["path"], []).append(vm["name"])
        found = []
        for path in sorted(users):
            if storage and split(path)[0].lower() != storage.rstrip("\\").lower():
                continue
            vhd = self.backend.run("vhd_get", path=path)
            if vhd is not None:
                found.append(self.describe(vhd, users[path]))
        return found

    def create(self, spec, deadline):
        if spec["size_bytes"] is None:
            raise InvalidInput("size is required to create disk %s" % spec["name"])
        vhd = self.backend.run("vhd_create", deadline, path=self.path(spec["storage"], spec["name"]), type=spec["backend_options"].get("type", "dynamic"),
                               size=spec["size_bytes"])
        return self.describe(vhd, [])

    def resize(self, disk, size_bytes, deadline):
        self.backend.run("vhd_resize", deadline, path=_file(disk), size=size_bytes)

    def attach(self, disk, instance, options, deadline):
        # SCSI on generation 2 (hot-add while running), IDE on generation 1 (while off): Hyper-V's own default
        self.backend.run("disk_attach", deadline, name=instance["name"], path=_file(disk))

    def detach(self, disk, instance_name, deadline):
        try:
            self.backend.run("disk_detach", deadline, name=instance_name, path=_file(disk))
        except NotFound:
            pass  # the VM is gone: so is the attachment

    def delete(self, disk, deadline):
        self.backend.run("vhd_remove", deadline, path=_file(disk))


def _file(disk):
    """The disk's file: from the native object, since the reconciler clears ``path`` once it detaches the disk."""
    return (disk.get("backend_data") or {}).get("path") or disk["path"]


def _uses(instance, path):
    return any(drive["path"].lower() == path.lower() for drive in instance["_native"].get("disks") or [])
