# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LXD disks: custom storage volumes, attached to instances as disk devices."""

from __future__ import annotations

from urllib.parse import unquote

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Disks
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.instances import config_value, put_body, root_device, size_or_raw, validate_options
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, disk_result, format_size, parse_size

DISK_OPTION_TYPES = {"path": str, "config": dict}


class LxdDisks(Disks):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client

    def validate(self, spec):
        if " " in spec["name"]:
            raise InvalidInput("name %r is not a valid LXD storage volume name (it cannot contain spaces)" % spec["name"])
        validate_options(spec["backend_options"], DISK_OPTION_TYPES, "LXD disk")
        path = spec["backend_options"].get("path")
        if path is not None and not path.startswith("/"):
            raise InvalidInput("backend_options.path must be an absolute path in the instance, got %r" % path)
        if not spec["storage"] and not spec["instance"]:
            raise InvalidInput("storage (the LXD storage pool) is required when instance is not set")

    def pool(self, spec, instance):
        """The pool of a disk: ``storage``, else the pool of the instance's root disk."""
        if spec["storage"]:
            return spec["storage"]
        pool = root_device(_native(instance).get("expanded_devices") or {}).get("pool")
        if not pool:
            raise InvalidInput("storage is required: instance %s has no root disk in a storage pool to default to" % spec["instance"])
        return pool

    def _volume_path(self, pool, name=None):
        path = "/1.0/storage-pools/%s/volumes/custom" % self.client.quote(pool)
        return path + "/" + self.client.quote(name) if name else path

    def get(self, spec, instance):
        pool = self.pool(spec, instance)
        native = self.client.get_or_none(self._volume_path(pool, spec["name"]))
        return None if native is None else self.describe(pool, native, instance)

    def describe(self, pool, native, instance=None):
        users = sorted(_volume_instances(native))  # LXD lists users in no fixed order
        path = None
        if instance is not None and instance["name"] in users:
            device = _volume_device(_native(instance).get("expanded_devices") or {}, pool, native["name"])
            path = device[1].get("path") if device else None
        size = (native.get("config") or {}).get("size")
        size_bytes = parse_size(size, "size", "B") if size else None
        attached_to = instance["name"] if instance is not None and instance["name"] in users else (users[0] if users else None)
        return disk_result(native["name"], self.backend.name, size_gib=size_or_raw(size, GIB) if size else None, size_bytes=size_bytes, storage=pool,
                           attached_to=attached_to, attachments=users, path=path, backend_data=dict(native, pool=pool))

    def attachment(self, spec, attached):
        """The attachment settings of a disk (LXD, the mount path); an existing attachment keeps what is not set."""
        path = spec["backend_options"].get("path")
        if path is None and not attached:
            path = "/mnt/" + spec["name"]
        return {"path": path} if path is not None else {}

    def list(self, storage=None, instance=None):
        pools = [storage] if storage else [pool["name"] for pool in self.client.get("/1.0/storage-pools", query={"recursion": 1}) or []]
        disks = []
        for pool in pools:
            volumes = self.client.get(self._volume_path(pool), query={"recursion": 1}) or []
            disks.extend(self.describe(pool, native, instance) for native in volumes if native.get("type", "custom") == "custom")
        return disks

    def create(self, spec, deadline):
        pool = spec["storage"]
        body = {"name": spec["name"], "type": "custom", "content_type": "filesystem", "config": {}}
        body["config"].update((key, config_value(value)) for key, value in (spec["backend_options"].get("config") or {}).items())
        if spec["size_bytes"]:
            body["config"]["size"] = format_size(spec["size_bytes"])
        other = (spec["source"] or {}).get("disk")
        if other:
            body["source"] = {"type": "copy", "name": other, "pool": pool}
            if not spec["size_bytes"]:
                # LXD gives a copy none of its source's config: without this the copy would have no size limit at all.
                size = (self.client.get(self._volume_path(pool, other)).get("config") or {}).get("size")
                if size:
                    body["config"]["size"] = size
        self.client.run("POST", self._volume_path(pool), body, timeout=deadline.remaining())
        return self.describe(pool, self.client.get(self._volume_path(pool, spec["name"])))

    def check_source(self, spec):
        """A volume copied from another must find that one, before anything is created."""
        other = (spec["source"] or {}).get("disk")
        if other and self.client.get_or_none(self._volume_path(spec["storage"], other)) is None:
            raise NotFound("source.disk %s does not exist in storage pool %s" % (other, spec["storage"]))

    def resize(self, disk, size_bytes, deadline):
        native = disk["backend_data"]
        config = dict(native.get("config") or {}, size=format_size(size_bytes))
        self.client.run("PUT", self._volume_path(disk["storage"], disk["name"]), {"config": config, "description": native.get("description") or ""},
                        timeout=deadline.remaining())

    def attach(self, disk, instance, options, deadline):
        native = _native(instance)
        body = put_body(native)
        found = _volume_device(native.get("devices") or {}, disk["storage"], disk["name"])
        device_name = found[0] if found else disk["name"]
        if not found and device_name in (native.get("expanded_devices") or {}):
            raise InvalidInput("instance %s already has a device named %s that is not this disk" % (instance["name"], device_name))
        path = options.get("path") or (found[1].get("path") if found else "/mnt/" + disk["name"])
        body["devices"][device_name] = {"type": "disk", "pool": disk["storage"], "source": disk["name"], "path": path}
        self.client.run("PUT", self.backend.instance_path(instance["name"]), body, timeout=deadline.remaining())

    def detach(self, disk, instance_name, deadline):
        instance = self.backend.instances.get(instance_name)
        if instance is None:
            return
        body = put_body(_native(instance))
        found = _volume_device(body["devices"], disk["storage"], disk["name"])
        if found is None:
            raise InvalidInput("disk %s is attached to instance %s through a profile; remove it from the profile" % (disk["name"], instance_name))
        while found is not None:
            del body["devices"][found[0]]
            found = _volume_device(body["devices"], disk["storage"], disk["name"])
        self.client.run("PUT", self.backend.instance_path(instance_name), body, timeout=deadline.remaining())

    def delete(self, disk, deadline):
        try:
            self.client.run("DELETE", self._volume_path(disk["storage"], disk["name"]), timeout=deadline.remaining())
        except NotFound:
            pass


def _native(instance):
    return (instance or {}).get("_native") or {}


def _volume_instances(raw):
    """Names of the instances (not profiles or snapshots) that use a storage volume."""
    names = []
    for url in raw.get("used_by") or []:
        path = url.split("?", 1)[0]
        parts = path.split("/")
        if len(parts) == 4 and parts[2] == "instances":
            names.append(unquote(parts[3]))
    return names


def _volume_device(devices, pool, name):
    """The ``(device name, device)`` that mounts custom volume ``name`` of ``pool``, or None."""
    for device_name, device in sorted(devices.items()):
        if device.get("type") == "disk" and device.get("pool") == pool and device.get("source") == name:
            return device_name, device
    return None
