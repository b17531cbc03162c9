# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The LXD driver's snapshots, backups and disks (custom storage volumes).

Kept apart from the instance driver so that ``instance`` tasks, the most frequent, do not compile
this code: AnsiballZ runs modules from a zip, where Python compiles every imported file on each task.
"""

from __future__ import annotations

import re
import tarfile
from urllib.parse import unquote

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._lxd.driver import LxdBackend, config_value, public_data, put_body, root_device, size_or_raw
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, parse_size
from ansible_collections.polyvirt.compute.plugins.module_utils._resources import backup_result, disk_result, snapshot_result

BACKUP_OPTION_TYPES = {"instance_only": bool, "optimized_storage": bool, "compression_algorithm": str, "expires_at": str}
DISK_OPTION_TYPES = {"path": str, "config": dict}


class LxdResourceBackend(LxdBackend):
    """LXD with the snapshot, backup and disk operations of the driver interface."""

    # -- snapshots ------------------------------------------------------------------------------
    # GET /1.0/instances/<name>?recursion=1 already carries the snapshots and backups.

    def validate_snapshot_name(self, name):
        if "/" in name or " " in name:
            raise InvalidInput("name %r is not a valid LXD snapshot name (it cannot contain spaces or /)" % name)

    def list_snapshots(self, raw):
        result = []
        for item in raw.get("snapshots") or []:
            name = item["name"].split("/")[-1]
            data = dict(item, config=public_data(item)["config"], expanded_config=public_data(item)["expanded_config"])
            result.append(snapshot_result(name, raw["name"], self.name, created_at=item.get("created_at"), stateful=bool(item.get("stateful")),
                                          backend_data=data))
        return result

    def create_snapshot(self, raw, name, stateful, description, deadline):
        body = {"name": name, "stateful": bool(stateful)}
        self.client.run("POST", self._path(raw["name"], "snapshots"), body, timeout=deadline.remaining())
        return self.get_instance(raw["name"])

    def delete_snapshot(self, raw, name, deadline):
        try:
            self.client.run("DELETE", self._path(raw["name"], "snapshots", self.client.quote(name)), timeout=deadline.remaining())
        except NotFound:
            pass

    def restore_snapshot(self, raw, name, deadline):
        body = put_body(raw)
        body["restore"] = name
        self.client.run("PUT", self._path(raw["name"]), body, timeout=deadline.remaining())
        restored = self.get_instance(raw["name"])
        # Leave the instance in the power state it had (a stateful snapshot may bring it back running).
        if raw.get("status") == "Running" and restored.get("status") != "Running":
            restored = self.power(restored, "start", False, deadline)
        elif raw.get("status") == "Stopped" and restored.get("status") == "Running":
            restored = self.power(restored, "stop", True, deadline)
        return restored

    # -- backups --------------------------------------------------------------------------------

    def list_backups(self, raw):
        return [backup_result(item["name"], raw["name"], self.name, created_at=item.get("created_at"), backend_data=item)
                for item in raw.get("backups") or []]

    def validate_backup(self, spec):
        for key, value in spec["backend_options"].items():
            if key not in BACKUP_OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not an LXD backup option (use %s)" % (key, ", ".join(sorted(BACKUP_OPTION_TYPES))))
            if not isinstance(value, BACKUP_OPTION_TYPES[key]):
                raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, BACKUP_OPTION_TYPES[key].__name__, value))
        if spec.get("name") is not None and ("/" in spec["name"] or " " in spec["name"]):
            raise InvalidInput("name %r is not a valid LXD backup name (it cannot contain spaces or /)" % spec["name"])

    def create_backup(self, raw, spec, deadline):
        body = {"instance_only": False, "optimized_storage": False}
        body.update(spec["backend_options"])
        if spec.get("name"):
            body["name"] = spec["name"]
        self.client.run("POST", self._path(raw["name"], "backups"), body, timeout=deadline.remaining())
        return self.get_instance(raw["name"])

    def delete_backup(self, raw, name, deadline):
        try:
            self.client.run("DELETE", self._path(raw["name"], "backups", self.client.quote(name)), timeout=deadline.remaining())
        except NotFound:
            pass

    def export_backup(self, raw, name, path, deadline):
        return self.client.download(self._path(raw["name"], "backups", self.client.quote(name), "export"), path, timeout=max(1, deadline.remaining()))

    def check_backup_file(self, path):
        """An LXD backup is a tarball whose first member is ``backup/index.yaml``; zstd/squashfs ones are left to LXD."""
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic in (b"\x28\xb5\x2f\xfd", b"hsqs"):
            return {}
        try:
            with tarfile.open(path, "r:*") as archive:
                for count, member in enumerate(archive):
                    if member.name.lstrip("./") == "backup/index.yaml":
                        index = archive.extractfile(member).read(65536).decode("utf-8", "replace")
                        return _index_fields(index)
                    if count >= 20:
                        break
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidInput("%s is not an LXD backup (not a tarball: %s)" % (path, exc))
        raise InvalidInput("%s is not an LXD backup (it has no backup/index.yaml)" % path)

    def import_backup(self, path, name, storage, deadline):
        headers = {"X-LXD-name": name}
        if storage:
            headers["X-LXD-pool"] = storage
        query = {"target": self.client.target} if self.client.target else None
        operation = self.client.upload("/1.0/instances", path, headers=headers, query=query, timeout=max(1, deadline.remaining()))
        self.client.wait(operation, deadline.remaining())
        return self.get_instance(name)

    # -- disks (custom storage volumes) ---------------------------------------------------------

    def validate_disk(self, spec):
        if not spec["name"] or "/" in spec["name"] or " " in spec["name"]:
            raise InvalidInput("name %r is not a valid LXD storage volume name (it cannot be empty or contain spaces or /)" % spec["name"])
        for key, value in spec["backend_options"].items():
            if key not in DISK_OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not an LXD disk option (use %s)" % (key, ", ".join(sorted(DISK_OPTION_TYPES))))
            if not isinstance(value, DISK_OPTION_TYPES[key]):
                raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, DISK_OPTION_TYPES[key].__name__, value))
        path = spec["backend_options"].get("path")
        if path is not None and not path.startswith("/"):
            raise InvalidInput("backend_options.path must be an absolute path in the instance, got %r" % path)
        if not spec["storage"] and not spec["instance"]:
            raise InvalidInput("storage (the LXD storage pool) is required when instance is not set")

    def disk_pool(self, spec, instance_raw):
        """The pool of a disk: ``storage``, else the pool of the instance's root disk."""
        if spec["storage"]:
            return spec["storage"]
        pool = root_device((instance_raw or {}).get("expanded_devices") or {}).get("pool")
        if not pool:
            raise InvalidInput("storage is required: instance %s has no root disk in a storage pool to default to" % spec["instance"])
        return pool

    def _volume_path(self, pool, name=None):
        path = "/1.0/storage-pools/%s/volumes/custom" % self.client.quote(pool)
        return path + "/" + self.client.quote(name) if name else path

    def get_disk(self, spec, instance_raw):
        pool = self.disk_pool(spec, instance_raw)
        raw = self.client.get_or_none(self._volume_path(pool, spec["name"]))
        return None if raw is None else self.describe_disk(pool, raw, instance_raw)

    def describe_disk(self, pool, raw, instance_raw=None):
        users = _volume_instances(raw)
        path = None
        if instance_raw is not None and instance_raw["name"] in users:
            device = _volume_device(instance_raw.get("expanded_devices") or {}, pool, raw["name"])
            path = device[1].get("path") if device else None
        size = (raw.get("config") or {}).get("size")
        size_bytes = parse_size(size, "size", "B") if size else None
        return disk_result(raw["name"], self.name, size_gib=size_or_raw(size, GIB) if size else None, size_bytes=size_bytes, storage=pool,
                           attached_to=users[0] if users else None, path=path, backend_data=dict(raw, pool=pool, used_by_instances=users))

    def disk_attachment(self, spec, attached):
        """The attachment settings of a disk (LXD, the mount path); an existing attachment keeps what is not set."""
        path = spec["backend_options"].get("path")
        if path is None and not attached:
            path = "/mnt/" + spec["name"]
        return {"path": path} if path is not None else {}

    def list_disks(self, storage=None, instance_raw=None):
        pools = [storage] if storage else [pool["name"] for pool in self.client.get("/1.0/storage-pools", query={"recursion": 1}) or []]
        disks = []
        for pool in pools:
            volumes = self.client.get(self._volume_path(pool), query={"recursion": 1}) or []
            disks.extend(self.describe_disk(pool, raw, instance_raw) for raw in volumes if raw.get("type", "custom") == "custom")
        return disks

    def create_disk(self, spec, deadline):
        pool = spec["storage"]
        body = {"name": spec["name"], "type": "custom", "content_type": "filesystem", "config": {}}
        body["config"].update((key, config_value(value)) for key, value in (spec["backend_options"].get("config") or {}).items())
        if spec["size_bytes"]:
            body["config"]["size"] = _format_size(spec["size_bytes"])
        if (spec["source"] or {}).get("disk"):
            body["source"] = {"type": "copy", "name": spec["source"]["disk"], "pool": pool}
        self.client.run("POST", self._volume_path(pool), body, timeout=deadline.remaining())
        return self.describe_disk(pool, self.client.get(self._volume_path(pool, spec["name"])))

    def check_disk_source(self, spec):
        """A volume copied from another must find that one, before anything is created."""
        other = (spec["source"] or {}).get("disk")
        if other and self.client.get_or_none(self._volume_path(spec["storage"], other)) is None:
            raise NotFound("source.disk %s does not exist in storage pool %s" % (other, spec["storage"]))

    def resize_disk(self, disk, size_bytes, deadline):
        raw = disk["backend_data"]
        config = dict(raw.get("config") or {}, size=_format_size(size_bytes))
        self.client.run("PUT", self._volume_path(disk["storage"], disk["name"]), {"config": config, "description": raw.get("description") or ""},
                        timeout=deadline.remaining())

    def attach_disk(self, disk, instance_raw, options, deadline):
        body = put_body(instance_raw)
        found = _volume_device(instance_raw.get("devices") or {}, disk["storage"], disk["name"])
        device_name = found[0] if found else disk["name"]
        if not found and device_name in (instance_raw.get("expanded_devices") or {}):
            raise InvalidInput("instance %s already has a device named %s that is not this disk" % (instance_raw["name"], device_name))
        path = options.get("path") or (found[1].get("path") if found else "/mnt/" + disk["name"])
        body["devices"][device_name] = {"type": "disk", "pool": disk["storage"], "source": disk["name"], "path": path}
        self.client.run("PUT", self._path(instance_raw["name"]), body, timeout=deadline.remaining())

    def detach_disk(self, disk, instance, deadline):
        raw = self.get_instance(instance)
        if raw is None:
            return
        body = put_body(raw)
        found = _volume_device(body["devices"], disk["storage"], disk["name"])
        if found is None:
            raise InvalidInput("disk %s is attached to instance %s through a profile; remove it from the profile" % (disk["name"], instance))
        while found is not None:
            del body["devices"][found[0]]
            found = _volume_device(body["devices"], disk["storage"], disk["name"])
        self.client.run("PUT", self._path(instance), body, timeout=deadline.remaining())

    def delete_disk(self, disk, deadline):
        try:
            self.client.run("DELETE", self._volume_path(disk["storage"], disk["name"]), timeout=deadline.remaining())
        except NotFound:
            pass


def _index_fields(index):
    """``name`` and ``pool`` from a backup's index.yaml (top-level scalars; no YAML library needed)."""
    fields = {}
    for line in index.splitlines():
        match = re.match(r"^(name|pool|backend|type):\s*(\S.*)$", line)
        if match:
            fields[match.group(1)] = match.group(2).strip().strip("\"'")
    return fields


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


def _format_size(size):
    for unit, factor in (("GiB", GIB), ("MiB", MIB)):
        if size % factor == 0:
            return "%d%s" % (size // factor, unit)
    return "%dB" % size
