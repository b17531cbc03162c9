# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxmox VE snapshots of QEMU VMs (with ``vmstate`` when stateful) and LXC containers."""

from __future__ import annotations

import datetime
import re

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Snapshots
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.instances import guest_path
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import oldest_first, snapshot_result

# pve-configid, at most 40 characters (pve-guest-common); "current" is the list's "You are here!" entry.
NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{1,39}$")
RESERVED = ("current", "pending", "vzdump")


class ProxmoxSnapshots(Snapshots):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client

    def validate_name(self, name):
        if not NAME_RE.match(name):
            raise InvalidInput("name %r is not a valid Proxmox VE snapshot name (2 to 40 letters, digits, '-' and '_', starting with a letter)" % name)
        if name.lower() in RESERVED:
            raise InvalidInput("name %r is reserved by Proxmox VE for snapshots" % name)

    def list(self, instance):
        entry = instance["_native"]["entry"]
        items = self.client.get(guest_path(entry) + "/snapshot") or []
        return oldest_first([self._describe(instance, item) for item in items if item.get("name") != "current"])

    def _describe(self, instance, item):
        created = None
        if item.get("snaptime"):
            created = datetime.datetime.fromtimestamp(int(item["snaptime"]), datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        return snapshot_result(item["name"], instance["name"], self.backend.name, created_at=created, stateful=bool(item.get("vmstate")),
                               description=item.get("description") or None, backend_data=dict(item))

    def create(self, instance, name, stateful, description, deadline):
        entry = instance["_native"]["entry"]
        params = {"snapname": name}
        if stateful:
            if entry["type"] != "qemu":
                raise Unsupported("stateful snapshots is not supported by the proxmox backend for type=container")
            params["vmstate"] = 1
        if description is not None:
            params["description"] = description
        self.client.run("POST", guest_path(entry) + "/snapshot", deadline, **params)
        for item in self.list(instance):
            if item["name"] == name:
                return item
        raise NotFound("snapshot %s of instance %s is missing after it was taken" % (name, instance["name"]))

    def delete(self, instance, snapshot, deadline):
        try:
            self.client.run("DELETE", guest_path(instance["_native"]["entry"]) + "/snapshot/" + self.client.path(snapshot["name"]), deadline)
        except NotFound:
            pass  # gone already

    def restore(self, instance, snapshot, deadline):
        """Rollback; PVE leaves a VM running only when the snapshot has RAM, so the power state is put back as it was."""
        entry = instance["_native"]["entry"]
        was = instance["state"]
        params = {"start": 1} if was == "running" and not snapshot.get("stateful") else {}
        self.client.run("POST", guest_path(entry) + "/snapshot/" + self.client.path(snapshot["name"]) + "/rollback", deadline, **params)
        self.backend.forget()
        parts = self.backend.instances
        restored = parts.get(instance["name"])
        if restored is not None and was == "stopped" and restored["state"] == "running":
            restored = parts.stop_now(restored, deadline)  # its RAM state is still in the snapshot
        return restored
