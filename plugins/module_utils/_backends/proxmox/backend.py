# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Proxmox VE backend: QEMU VMs and LXC containers over one proxmoxer client (client.py)."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.client import ProxmoxClient
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput

_COMMON = ("instance.disk_size", "instance.tags", "instance.description", "instance.networks.ipv4_gateway", "wait_for.ip", "snapshot.description",
           "clone", "clone.linked", "clone.target", "backup.restore", "backup.delete", "backup.restore_to", "backup.mode",
           "backup.storage")
QEMU_FEATURES = frozenset(_COMMON + ("disk.optical", "instance.paused", "instance.cloud_init", "instance.ssh_keys", "wait_for.cloud_init", "snapshot.stateful"))
LXC_FEATURES = frozenset(_COMMON)


class ProxmoxBackend(Backend):
    name = "proxmox"
    default_type = "vm"
    parts = ("instances", "snapshots", "backups", "disks")
    features = {"vm": QEMU_FEATURES, "container": LXC_FEATURES}
    notes = {
        "instance.vm": "QEMU; `image` is a template (name or vmid), cloned and configured in the same task",
        "instance.container": "LXC; `image` is an `ostemplate` volume such as `local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst`",
        "instance.paused": "QEMU suspend/resume; LXC refused",
        "instance.disk_size": "boot disk (QEMU) or `rootfs` (LXC), grow only",
        "instance.tags": "PVE tags",
        "instance.networks.ipv4_gateway": "`ipconfigN` gw (QEMU), `netN` gw (LXC)",
        "instance.cloud_init": "QEMU: a NoCloud seed ISO uploaded through the API in place of PVE's cloud-init drive (`ssh_keys` alone: "
                               "`sshkeys`); LXC refused",
        "instance.ssh_keys": "QEMU `sshkeys` (compared decoded)",
        "wait_for.ip": "QEMU guest agent (`agent: 1`), LXC `interfaces`",
        "wait_for.cloud_init": "guest agent `exec` of `cloud-init status --wait` (QEMU)",
        "snapshot.stateful": "QEMU `vmstate`",
        "backup": "vzdump archives on a backup storage, found again by the name kept in their notes",
        "backup.export": "PVE's API cannot hand an archive to the client",
        "backup.mode": "vzdump `snapshot`, `suspend`, `stop`",
        "backup.storage": "a storage with `backup` content (default: the node's first)",
        "clone": "PVE clone (full), then the instance options in the same task",
        "clone.linked": "from templates only (PVE links to a template's base disks); refused otherwise before any change",
        "clone.target": "a cluster node; PVE refuses guests on local storage",
        "disk": "a slot of a guest (`scsiN`, `virtioN`, `sataN`, `ideN`; LXC `mpN` at `backend_options.path`): grow, move to a new `storage`, "
                "detach (kept as `unusedN`), delete; `instance` is required (PVE has no free disks)",
        "disk.optical": "a CD-ROM in an ide, sata or scsi slot holding `backend_options.iso` (QEMU)",
    }

    def __init__(self, settings):
        super().__init__(settings)
        self.client = ProxmoxClient(
            host=settings.get("api_host"),
            port=settings.get("api_port"),
            user=settings.get("api_user"),
            password=settings.get("api_password"),
            token_id=settings.get("api_token_id"),
            token_secret=settings.get("api_token_secret"),
            validate_certs=settings.get("validate_certs") is not False,
            ca_path=settings.get("ca_path"),
        )
        self.node = settings.get("node")
        self._resources = None
        self._nodes = None

    def _load_part(self, name):
        if name == "instances":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.instances import ProxmoxInstances

            return ProxmoxInstances(self)
        if name == "snapshots":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.snapshots import ProxmoxSnapshots

            return ProxmoxSnapshots(self)
        if name == "disks":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.disks import ProxmoxDisks

            return ProxmoxDisks(self)
        from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.backups import ProxmoxBackups

        return ProxmoxBackups(self)

    def close(self):
        self.client.close()

    # -- cluster reads shared by the parts ---------------------------------------------------------

    def resources(self, fresh=False):
        """``cluster/resources?type=vm``: every guest of the cluster in one read, kept until something changes."""
        if self._resources is None or fresh:
            self._resources = self.client.get("cluster/resources", type="vm") or []
        return self._resources

    def forget(self):
        """Drop what was read: called after every change."""
        self._resources = None

    def nodes(self):
        if self._nodes is None:
            self._nodes = self.client.get("nodes") or []
        return self._nodes

    def target_node(self, fallback=None):
        """Where a new guest goes: ``connection.node``, else ``fallback`` (the template's node), else the only node."""
        names = [item["node"] for item in self.nodes()]
        if self.node:
            if self.node not in names:
                raise InvalidInput("connection.node %s is not a node of this Proxmox VE cluster (nodes: %s)" % (self.node, ", ".join(sorted(names))))
            return self.node
        if fallback:
            return fallback
        if len(names) == 1:
            return names[0]
        raise InvalidInput("connection.node is required to create a guest on a cluster of several nodes (%s)" % ", ".join(sorted(names)))
