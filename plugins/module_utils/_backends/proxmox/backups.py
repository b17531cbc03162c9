# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxmox VE backups: vzdump archives on a backup storage, found again by the name kept in their notes.

PVE's API cannot hand an archive to the client, so there is no export to the controller (backup.export).
"""

from __future__ import annotations

import datetime

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backups
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import backup_result, oldest_first

# The notes of a backup this collection made: "polyvirt:<name>" (other tools' notes default to the guest's name).
NOTES_PREFIX = "polyvirt:"
OPTION_TYPES = {"compress": str, "protected": bool}
COMPRESS = ("0", "1", "gzip", "lzo", "zstd")


class ProxmoxBackups(Backups):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client

    def validate(self, spec):
        name = spec.get("name")
        if name is not None and ("{{" in name or "}}" in name or len(name) > 200):
            raise InvalidInput("name %r cannot be kept in a Proxmox VE backup's notes ({{ }} are notes-template variables; at most 200 characters)" % name)
        for key, value in spec["backend_options"].items():
            if key not in OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not a Proxmox VE backup option (use %s)" % (key, ", ".join(sorted(OPTION_TYPES))))
            if not isinstance(value, OPTION_TYPES[key]):
                raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, OPTION_TYPES[key].__name__, value))
        if str(spec["backend_options"].get("compress", "zstd")) not in COMPRESS:
            raise InvalidInput("backend_options.compress must be one of %s" % ", ".join(COMPRESS))

    def _storages(self, node):
        return [item["storage"] for item in self.client.get(self.client.path("nodes", node, "storage"), content="backup") or []
                if item.get("active", 1) and item.get("enabled", 1)]

    def list(self, instance):
        entry = instance["_native"]["entry"]
        found = []
        for storage in self._storages(entry["node"]):
            items = self.client.get(self.client.path("nodes", entry["node"], "storage", storage, "content"), content="backup", vmid=entry["vmid"])
            found.extend(self._describe(instance, item) for item in items or [] if item.get("vmid") == entry["vmid"])
        return oldest_first(found)

    def _describe(self, instance, item):
        notes = (item.get("notes") or "").strip()
        name = notes[len(NOTES_PREFIX):] if notes.startswith(NOTES_PREFIX) else item["volid"].split("/")[-1]
        created = None
        if item.get("ctime"):
            created = datetime.datetime.fromtimestamp(int(item["ctime"]), datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        return backup_result(name, instance["name"], self.backend.name, id=item["volid"], created_at=created, size_bytes=item.get("size"),
                             backend_data=dict(item))

    def create(self, instance, spec, deadline):
        entry = instance["_native"]["entry"]
        node = entry["node"]
        storages = self._storages(node)
        storage = spec.get("storage") or (storages[0] if storages else None)
        if storage is None:
            raise InvalidInput("node %s has no storage for backups (backup content); set storage" % node)
        if storage not in storages:
            raise InvalidInput("storage %s on node %s cannot hold backups (those that can: %s)" % (storage, node, ", ".join(storages) or "none"))
        before = set(item["id"] for item in self.list(instance))
        options = spec["backend_options"]
        params = {"vmid": entry["vmid"], "storage": storage, "mode": spec.get("mode") or "snapshot", "compress": options.get("compress", "zstd")}
        if spec.get("name"):
            params["notes-template"] = NOTES_PREFIX + spec["name"]
        if options.get("protected"):
            params["protected"] = 1
        self.client.run("POST", self.client.path("nodes", node, "vzdump"), deadline, **params)
        made = [item for item in self.list(instance) if item["id"] not in before]
        if not made:
            raise NotFound("vzdump of instance %s finished, and no new backup is on storage %s" % (instance["name"], storage))
        return made[-1]

    def delete(self, instance, backup, deadline):
        node = instance["_native"]["entry"]["node"]
        storage = backup["id"].split(":", 1)[0]
        try:
            self.client.run("DELETE", self.client.path("nodes", node, "storage", storage, "content", backup["id"]), deadline)
        except NotFound:
            pass  # gone already

    def restore(self, target, deadline, instance=None, backup=None, path=None, storage=None):
        if path is not None or backup is None:
            raise Unsupported("backup location (export to the controller) is not supported by the proxmox backend")
        instances = self.backend.instances
        entry = dict(instance["_native"]["entry"])
        kind = entry["type"]
        params = {"archive" if kind == "qemu" else "ostemplate": backup["id"]}
        if kind == "lxc":
            params["restore"] = 1
        if storage:
            params["storage"] = storage
        if target == instance["name"]:
            # In place: PVE overwrites a stopped guest of that vmid (force); its power state is put back afterwards.
            was_running = instance["state"] in ("running", "paused")
            if was_running:
                instances.stop_now(instance, deadline)  # the restore replaces its disks
            params.update(vmid=entry["vmid"], force=1)
            self.client.run("POST", self.client.path("nodes", entry["node"], kind), deadline, **params)
            self.backend.forget()
            restored = instances.get(target)
            if was_running and restored is not None and restored["state"] == "stopped":
                restored = instances.power(restored, "start", False, deadline)
            return restored
        # Into a new guest: a fresh vmid, new MACs (unique), and the name set in the same request.
        params["unique"] = 1
        params["name" if kind == "qemu" else "hostname"] = target
        vmid = int(self.client.get("cluster/nextid", deadline))
        self.client.run("POST", self.client.path("nodes", entry["node"], kind), deadline, vmid=vmid, **params)
        self.backend.forget()
        return instances.get(target)

    def check_file(self, path):
        raise Unsupported("backup location (export to the controller) is not supported by the proxmox backend")
