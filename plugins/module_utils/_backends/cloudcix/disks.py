# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CloudCIX disks: ``cephfs`` storage volumes (``storage/volumes``), mounted on LXD instances of the project.

A volume's ``storage`` is its SKU (``CEPH_001``, ``CEPH_002``) and its size the SKU's quantity in GB.
Attaching and detaching are ``update_running`` requests with ``attach_instance_ids`` / ``detach_instance_ids``.
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Disks
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.instances import GONE as INSTANCE_GONE, HYPERV, hypervisor
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.snapshots import GONE, Copies
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, disk_result, format_size

CEPH_SKUS = ("CEPH_001", "CEPH_002")
DEFAULT_SKU = "CEPH_001"
DISK_OPTION_TYPES = {"path": str}


class CloudcixDisks(Copies, Disks):
    path = "storage/volumes/"
    kind = "volume"

    def validate(self, spec):
        for key, value in spec["backend_options"].items():
            if key not in DISK_OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not a cloudcix disk option (use %s)" % (key, ", ".join(sorted(DISK_OPTION_TYPES))))
            if not isinstance(value, DISK_OPTION_TYPES[key]) or not value.startswith("/"):
                raise InvalidInput("backend_options.%s must be an absolute path in the instance, got %r" % (key, value))
        self.check_name(spec["name"])
        if spec["storage"] is not None and spec["storage"] not in CEPH_SKUS:
            raise Unsupported("storage %s is not supported by the cloudcix backend for disks (cephfs volumes: %s; Hyper-V volumes are not "
                              "supported yet)" % (spec["storage"], ", ".join(CEPH_SKUS)))

    def pool(self, spec, instance):
        if instance is not None and hypervisor(instance["_native"]) == HYPERV:
            raise Unsupported("disks of Hyper-V instances are not supported by the cloudcix backend yet (cephfs volumes mount on LXD instances)")
        return spec["storage"] or DEFAULT_SKU

    def _names(self, natives, instance):
        """Instance id -> name for the instances these volumes mount on; one list read, only when another instance is involved."""
        names = dict((ref["id"], ref["name"]) for native in natives for ref in native.get("contra_instances") or [] if ref.get("name"))
        ids = set(iid for native in natives for iid in attached_ids(native))
        if instance is not None:
            names[instance["id"]] = instance["name"]
        if ids - set(names):
            for item in self.client.list("compute/instances/", search={"project_id": self.backend.project_id}):
                if item.get("state") not in INSTANCE_GONE:
                    names[item["id"]] = item["name"]
        return names

    def describe(self, native, names, instance=None):
        metadata = native.get("metadata") or {}
        users = [names.get(iid, "id %s" % iid) for iid in attached_ids(native)]
        size = ((native.get("specs") or [{}])[0]).get("quantity")
        attached_to = instance["name"] if instance is not None and instance["name"] in users else (users[0] if users else None)
        return disk_result(native["name"], self.backend.name, size_gib=size, size_bytes=size * GIB if size else None, storage=_sku(native),
                           attached_to=attached_to, attachments=users, path=metadata.get("mount_path") if users else None,
                           backend_data=dict(native), _native=native)

    def _find(self, name, storage):
        found = [native for native in self.client.list(self.path, search={"name": name, "project_id": self.backend.project_id})
                 if native.get("name") == name and native.get("state") not in GONE and native.get("type") == "cephfs" and _sku(native) == storage]
        if len(found) > 1:
            raise Conflict("there are %d volumes named %s in %s (ids %s); give each its own name first" % (
                len(found), name, storage, ", ".join(str(native["id"]) for native in found)))
        return found[0] if found else None

    def get(self, spec, instance):
        native = self._find(spec["name"], spec["storage"])
        return None if native is None else self.describe(native, self._names([native], instance), instance)

    def attachment(self, spec, attached):
        path = spec["backend_options"].get("path")
        if path is None and not attached:
            path = "/mnt/" + spec["name"]
        return {"path": path} if path is not None else {}

    def list(self, storage=None, instance=None):
        natives = [native for native in self.client.list(self.path, search={"project_id": self.backend.project_id})
                   if native.get("state") not in GONE and native.get("type") == "cephfs" and (storage is None or _sku(native) == storage)]
        names = self._names(natives, instance)
        return [self.describe(native, names, instance) for native in natives]

    def create(self, spec, deadline):
        if not spec["size_bytes"]:
            raise InvalidInput("size is required to create a disk on the cloudcix backend")
        body = {"project_id": self.backend.project_id, "name": spec["name"], "type": "cephfs",
                "specs": [{"sku_name": spec["storage"], "quantity": spec["size_bytes"] // GIB}]}
        native = self.client.write("POST", self.path, body, deadline=deadline)
        native = self.wait(native, ("running",), deadline, "volume %s to be made" % spec["name"])
        return self.describe(native, {})

    def check_source(self, spec):
        """Before a create: the size CloudCIX needs, in the whole GB it sells."""
        if not spec["size_bytes"]:
            raise InvalidInput("size is required to create a disk on the cloudcix backend")
        whole_gb(spec["size_bytes"])

    def _update(self, disk, body, deadline):
        native = self.wait(disk["_native"], ("running",), deadline, "volume %s to settle" % disk["name"])
        body["state"] = "update_running"
        native = self.client.write("PATCH", "%s%s/" % (self.path, native["id"]), body, deadline=deadline)
        return self.wait(native, ("running",), deadline, "the update of volume %s" % disk["name"])

    def resize(self, disk, size_bytes, deadline):
        whole_gb(size_bytes)  # after the shared shrink check, before any change
        self._update(disk, {"specs": [{"sku_name": disk["storage"], "quantity": size_bytes // GIB}]}, deadline)

    def attach(self, disk, instance, options, deadline):
        metadata = {"attach_instance_ids": [instance["id"]]}
        if options.get("path"):
            metadata["mount_path"] = options["path"]
        self._update(disk, {"metadata": metadata}, deadline)

    def detach(self, disk, instance_name, deadline):
        instance = self.backend.instances.get(instance_name)
        if instance is None:
            return
        self._update(disk, {"metadata": {"detach_instance_ids": [instance["id"]]}}, deadline)

    def delete(self, disk, deadline):
        try:
            self.remove(disk["_native"], deadline)
        except NotFound:
            pass


def attached_ids(native):
    """The ids of the instances a volume is mounted on: ``contra_instances`` (the read shape), else ``metadata.attached_instance_ids``."""
    if native.get("contra_instances") is not None:
        return [ref["id"] for ref in native["contra_instances"]]
    return list((native.get("metadata") or {}).get("attached_instance_ids") or [])


def whole_gb(size_bytes):
    if size_bytes % GIB:
        raise InvalidInput("size must be a whole number of GB on the cloudcix backend (volumes are sold per GB), got %s" % format_size(size_bytes))
    return size_bytes // GIB


def _sku(native):
    return ((native.get("specs") or [{}])[0]).get("sku_name")
