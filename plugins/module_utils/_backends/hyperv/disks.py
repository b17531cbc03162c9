# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hyper-V disks: VHDX files ``<storage>\\<name>.vhdx`` on the host, attached to a VM's SCSI (or IDE) controller.

``storage`` is a host directory; by default ``<connection.vm_path>\\Virtual Hard Disks`` (Hyper-V's own
layout), else the host's VirtualHardDiskPath. A disk's ``path`` is its file on the host. The host
has no directory listing in the script contract, so ``disk_info`` finds the disks VMs use.

An ``optical`` disk is a DVD drive of ``instance`` holding an ISO file of the host: ``backend_options.iso``
(default ``<storage>\\<name>.iso``), reported as ``path``. The drive is found by the ISO it holds; detaching
(or ``state=absent``) removes the drive and never the ISO file. The VM's own cloud-init seed ISO belongs to
the instance module and is refused.
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Disks
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.backend import check_path, join
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.instances import SEED_RE, check_vm_name
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, disk_result, in_unit

TYPES = ("dynamic", "fixed")
OPTIONS = ("type", "controller_type")
OPTICAL_OPTIONS = ("iso",)


def split(path):
    folder, _sep, base = path.rpartition("\\")
    return folder, base.rsplit(".", 1)[0]


class HyperVDisks(Disks):
    def __init__(self, backend):
        super().__init__(backend)
        self._instance = None  # the instance get() last saw: an optical drive is added to and removed from it

    def validate(self, spec):
        check_vm_name(spec["name"])  # the file name follows the same rules
        if spec["storage"]:
            check_path(spec["storage"], "storage")
        if spec["optical"]:
            return self._validate_optical(spec)
        if "iso" in spec["backend_options"]:
            raise InvalidInput("backend_options.iso is for optical drives (optical: true)")
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

    # -- optical drives: a DVD drive of one VM, holding an ISO file of the host ----------------------

    def _validate_optical(self, spec):
        for key in spec["backend_options"]:
            if key not in OPTICAL_OPTIONS:
                raise InvalidInput("backend_options.%s is not a Hyper-V optical drive option (use %s)" % (key, ", ".join(OPTICAL_OPTIONS)))
        if not spec["instance"]:
            raise InvalidInput("instance is required with optical: true on the hyperv backend: a DVD drive is a device of one VM")
        if spec["size_bytes"] is not None:
            raise InvalidInput("size cannot be set for an optical drive (it holds an ISO file)")
        if spec["source"]:
            raise InvalidInput("source cannot be set for an optical drive (it holds the ISO file named by backend_options.iso)")
        if spec["backend_options"].get("iso") is not None:
            check_path(spec["backend_options"]["iso"], "backend_options.iso", (".iso",))

    def iso(self, spec):
        """The ISO file an optical drive holds: ``backend_options.iso``, else ``<storage>\\<name>.iso``."""
        return spec["backend_options"].get("iso") or join(spec["storage"], spec["name"] + ".iso")

    def describe_optical(self, name, iso, instance, dvd):
        users = [instance["name"]] if dvd is not None else []
        data = {"optical": True, "iso": iso, "vm": instance["name"] if instance else None}
        if dvd is not None:
            data.update((key, dvd[key]) for key in ("controller_type", "controller_number", "controller_location"))
        return disk_result(name, self.backend.name, storage=split(iso)[0], attached_to=users[0] if users else None, attachments=users,
                           path=iso, backend_data=data)

    def _get_optical(self, spec, instance):
        iso = self.iso(spec)
        if SEED_RE.search(iso):
            raise InvalidInput("backend_options.iso %s is a cloud-init seed ISO, which the instance module manages" % iso)
        if instance is None:  # the VM is gone: so is its drive
            return self.describe_optical(spec["name"], iso, None, None) if spec["state"] == "detached" else None
        dvd = next((dvd for dvd in instance["_native"].get("dvds") or [] if (dvd.get("path") or "").lower() == iso.lower()), None)
        if dvd is None:
            # detached: no drive of the VM holds the ISO, which is what was asked (there is nothing to create)
            return self.describe_optical(spec["name"], iso, instance, None) if spec["state"] == "detached" else None
        return self.describe_optical(spec["name"], dvd["path"], instance, dvd)

    def check_source(self, spec):
        """Before a DVD drive is added: the ISO file exists on the host (one read)."""
        if not spec["optical"]:
            return
        native = (self._instance or {}).get("_native") or {}
        if native.get("state") != "Off":
            raise Conflict("a DVD drive is added to VM %s only while it is off (Hyper-V cannot add one to a %s VM); stop it first" % (
                spec["instance"], (native.get("state") or "missing").lower()))
        folder, dummy, base = self.iso(spec).rpartition("\\")
        try:
            found = self.backend.run("dir_list", path=folder, filter=base) or []
        except NotFound:
            found = []  # no such folder
        if not any(item["name"].lower() == base.lower() and not item.get("directory") for item in found):
            raise NotFound("backend_options.iso %s does not exist on the Hyper-V host (the ISO file is not copied by this module)" % self.iso(spec))

    def describe(self, vhd, users):
        storage, name = split(vhd["path"])
        return disk_result(name, self.backend.name, size_gib=in_unit(vhd["size"], GIB), size_bytes=vhd["size"], storage=storage,
                           attached_to=users[0] if users else None, attachments=users, path=vhd["path"], backend_data=dict(vhd))

    def get(self, spec, instance):
        self._instance = instance
        if spec["optical"]:
            return self._get_optical(spec, instance)
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
        if spec["optical"]:
            return {"path": self.iso(spec)}
        return {"path": self.path(spec["storage"], spec["name"])}

    def list(self, storage=None, instance=None):
        vms = [instance["_native"]] if instance is not None else self.backend.run("vm_list") or []
        users = {}
        for vm in vms:
            for drive in (vm.get("disks") or [])[1:]:  # the first drive is the VM's boot disk, not one of the module's disks
                users.setdefault(drive["path"], []).append(vm["name"])
        found = []
        for vm in vms:  # optical drives, named by their ISO file; the seed ISO is the instance module's
            for dvd in vm.get("dvds") or []:
                if dvd.get("path") and not SEED_RE.search(dvd["path"]) and (not storage or split(dvd["path"])[0].lower() == storage.rstrip("\\").lower()):
                    found.append(self.describe_optical(split(dvd["path"])[1], dvd["path"], vm, dvd))
        for path in sorted(users):
            if storage and split(path)[0].lower() != storage.rstrip("\\").lower():
                continue
            vhd = self.backend.run("vhd_get", path=path)
            if vhd is not None:
                found.append(self.describe(vhd, users[path]))
        return found

    def create(self, spec, deadline):
        if spec["optical"]:  # the ISO file exists (check_source) and is never made here: attach adds the drive
            return self.describe_optical(spec["name"], self.iso(spec), self._instance, None)
        if spec["size_bytes"] is None:
            raise InvalidInput("size is required to create disk %s" % spec["name"])
        vhd = self.backend.run("vhd_create", deadline, path=self.path(spec["storage"], spec["name"]), type=spec["backend_options"].get("type", "dynamic"),
                               size=spec["size_bytes"])
        return self.describe(vhd, [])

    def resize(self, disk, size_bytes, deadline):
        self.backend.run("vhd_resize", deadline, path=_file(disk), size=size_bytes)

    def attach(self, disk, instance, options, deadline):
        if (disk.get("backend_data") or {}).get("optical"):
            self.backend.run("dvd_add", deadline, name=instance["name"], path=options["path"])
            return
        # SCSI on generation 2 (hot-add while running), IDE on generation 1 (while off): Hyper-V's own default
        self.backend.run("disk_attach", deadline, name=instance["name"], path=_file(disk))

    def detach(self, disk, instance_name, deadline):
        data = disk.get("backend_data") or {}
        if data.get("optical"):  # the drive goes, the ISO file stays
            try:
                self.backend.run("dvd_remove", deadline, name=instance_name, controller_number=data["controller_number"],
                                 controller_location=data["controller_location"])
            except NotFound:
                pass
            return
        try:
            self.backend.run("disk_detach", deadline, name=instance_name, path=_file(disk))
        except NotFound:
            pass  # the VM is gone: so is the attachment

    def delete(self, disk, deadline):
        if (disk.get("backend_data") or {}).get("optical"):
            return  # detach removed the drive; the ISO file is never deleted
        self.backend.run("vhd_remove", deadline, path=_file(disk))


def _file(disk):
    """The disk's file: from the native object, since the reconciler clears ``path`` once it detaches the disk."""
    return (disk.get("backend_data") or {}).get("path") or disk["path"]


def _uses(instance, path):
    return any(drive["path"].lower() == path.lower() for drive in instance["_native"].get("disks") or [])
