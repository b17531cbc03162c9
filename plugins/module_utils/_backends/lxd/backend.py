# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The LXD backend: one client (client.py) shared by the parts instances, snapshots, backups and disks."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.client import LxdClient
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput

_COMMON = ("instance.paused", "instance.disk_size", "instance.tags", "instance.description", "instance.cloud_init", "instance.ssh_keys",
           "wait_for.ip", "wait_for.cloud_init", "snapshot.stateful", "backup.restore", "backup.delete", "backup.restore_to", "backup.export",
           "clone", "clone.linked", "clone.target", "disk.source.disk")


class LxdBackend(Backend):
    name = "lxd"
    default_type = "container"
    parts = ("instances", "snapshots", "backups", "disks")
    features = {"container": frozenset(_COMMON), "vm": frozenset(_COMMON)}
    # What the capability table (docs/capabilities.md, generated) says beside "yes" or "no".
    notes = {
        "instance.vm": "needs a host that can run LXD VMs",
        "instance.paused": "freeze",
        "instance.disk_size": "root disk device `size`, grow only",
        "instance.tags": "`user.polyvirt.tags`",
        "instance.networks.ipv4_gateway": "set it in `cloud_init.network_config`",
        "instance.cloud_init": "`cloud-init.*` config keys",
        "instance.ssh_keys": "through cloud-init",
        "wait_for.cloud_init": "`cloud-init status --wait` in the instance",
        "snapshot.stateful": "when the server has CRIU (LXD's refusal is reported otherwise)",
        "snapshot.description": "LXD snapshots have no description",
        "backup": "instance backups",
        "backup.export": "export streamed to a file; restore uploads it",
        "backup.storage": "LXD keeps backups on the server; with `state: restored`, `storage` is the pool of the restored instance",
        "clone": "instance copy without the source's snapshots",
        "clone.linked": "only on `zfs`, `btrfs`, `lvm` and `ceph` pools, where LXD copies are copy-on-write; refused on other pools (such as "
                        "`dir`) before any change",
        "clone.target": "on a clustered server (a cluster member); refused otherwise",
        "disk": "custom storage volumes, mounted by a `disk` device",
        "disk.source.disk": "volume copy within a pool",
    }

    def __init__(self, settings):
        super().__init__(settings)
        self.client = LxdClient(
            url=settings.get("url"),
            client_cert=settings.get("client_cert"),
            client_key=settings.get("client_key"),
            validate_certs=settings.get("validate_certs") is not False,
            ca_path=settings.get("ca_path"),
            project=settings.get("project"),
            target=settings.get("target"),
        )
        self._server = None
        self._project_checked = False

    def _load_part(self, name):
        if name == "instances":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.instances import LxdInstances

            return LxdInstances(self)
        if name == "snapshots":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.snapshots import LxdSnapshots

            return LxdSnapshots(self)
        if name == "backups":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.backups import LxdBackups

            return LxdBackups(self)
        from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.disks import LxdDisks

        return LxdDisks(self)

    def close(self):
        self.client.close()

    def server(self):
        """``GET /1.0`` (API extensions, auth), read once and only when a decision needs it."""
        if self._server is None:
            self._server = self.client.get("/1.0")
        return self._server

    def check_project(self):
        """Refuse a ``connection.project`` that does not exist: LXD answers "not found" for everything in it.

        Called only where a 404 could mean either (an instance not found), so found objects cost no extra read.
        """
        project = self.client.project
        if project == "default" or self._project_checked:
            return
        if self.client.get_or_none("/1.0/projects/" + self.client.quote(project), project=False) is None:
            raise InvalidInput("connection.project %s does not exist on the LXD server %s" % (project, self.client.endpoint))
        self._project_checked = True

    def instance_path(self, name, *rest):
        return "/".join(["/1.0/instances", self.client.quote(name)] + list(rest))
