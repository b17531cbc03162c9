# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CloudCIX backend: LXD containers, LXD VMs and Hyper-V VMs of one project through the Compute API (client.py)."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.client import CloudcixClient
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput

_COMMON = ("instance.disk_size", "instance.networks.nat", "instance.cloud_init", "instance.ssh_keys", "wait_for.ip", "backup.delete")


class CloudcixBackend(Backend):
    name = "cloudcix"
    default_type = "vm"
    parts = ("instances", "snapshots", "backups", "disks")
    # The same for both types; what only Hyper-V lacks (cloud-init) is refused once the image says Hyper-V.
    features = {"container": frozenset(_COMMON), "vm": frozenset(_COMMON)}
    notes = {
        "instance.container": "LXD container (`metadata.instance_type: container`)",
        "instance.vm": "LXD virtual machine, or a Hyper-V VM when the image is a Windows image (`backend_options.hypervisor` overrides)",
        "instance.disk_size": "`SSD_001` quantity in GB (another storage SKU through `backend_options.storage_sku`), grow only",
        "instance.networks.nat": "`interfaces[].ipv4_addresses[].nat`; `ansible_host` is then the public address",
        "instance.cloud_init": "`metadata.userdata` (LXD); refused for Hyper-V images",
        "instance.ssh_keys": "merged into the user-data (LXD)",
        "wait_for.ip": "the addresses of `interfaces` (and the NAT `public_ip` once the robot fills it)",
        "wait_for.cloud_init": "CloudCIX has no guest exec",
        "snapshot": "`compute/snapshots`, of a running instance; restore is a revert (`update_running`)",
        "backup": "`compute/backups`, of a running instance",
        "backup.restore": "a restore goes through CloudCIX support, not the API",
        "backup.restore_to": "a restore goes through CloudCIX support, not the API",
        "disk": "`storage/volumes`: `cephfs` (storage `CEPH_001`/`CEPH_002`, mounted on LXD instances)",
    }

    def __init__(self, settings):
        super().__init__(settings)
        self.client = CloudcixClient(api_url=settings.get("api_url"), email=settings.get("email"), password=settings.get("password"),
                                     api_key=settings.get("api_key"))
        self._project_id = settings.get("project_id")
        self._images = None

    def _load_part(self, name):
        if name == "instances":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.instances import CloudcixInstances

            return CloudcixInstances(self)
        if name == "snapshots":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.snapshots import CloudcixSnapshots

            return CloudcixSnapshots(self)
        if name == "backups":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.backups import CloudcixBackups

            return CloudcixBackups(self)
        from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.disks import CloudcixDisks

        return CloudcixDisks(self)

    def close(self):
        self.client.close()

    @property
    def project_id(self):
        """``connection.project_id`` as the integer the API wants; names are not ids, so they are refused."""
        value = self._project_id
        if value is None or value == "":
            raise InvalidInput("connection.project_id is required for the cloudcix backend (or set POLYVIRT_CLOUDCIX_PROJECT_ID)")
        try:
            number = int(str(value).strip())
        except ValueError:
            number = 0
        if number < 1:
            raise InvalidInput("connection.project_id must be the number of a CloudCIX project, got %r" % value)
        return number

    def check_project(self):
        """Refuse a project that does not exist (an empty list would look like "nothing there")."""
        if self.client.read_or_none("project/%d/" % self.project_id) is None:
            raise InvalidInput("connection.project_id %s is not a project of this CloudCIX account (%s)" % (self.project_id, self.client.endpoint))

    def images(self):
        """The image list (``compute/images``), read once and only when a create needs it."""
        if self._images is None:
            self._images = self.client.list("compute/images/")
        return self._images
