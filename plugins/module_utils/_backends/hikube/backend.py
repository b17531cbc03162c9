# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Hikube / Cozystack backend: VMInstance and VMDisk applications over one Kubernetes client (client.py)."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.client import CORE, OPTIONS, KubeAuthError, KubeClient
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import AuthError, InvalidInput, NotFound

VM_FEATURES = frozenset(("instance.disk_size", "instance.flavor", "instance.tags", "instance.description", "instance.cloud_init",
                         "instance.ssh_keys", "wait_for.ip", "clone", "disk.optical", "disk.source.image", "disk.source.url",
                         "disk.source.disk", "backup.restore"))


class HikubeBackend(Backend):
    name = "hikube"
    default_type = "vm"
    parts = ("instances", "backups", "disks")
    features = {"vm": VM_FEATURES}
    # What the capability table (docs/capabilities.md, generated) says beside "yes" or "no".
    notes = {
        "instance.vm": "`VMInstance` plus its system `VMDisk` (`<name>-system`), created first",
        "instance.paused": "KubeVirt pause is not granted to Hikube tenants",
        "instance.disk_size": "the system `VMDisk` `storage`, grow only",
        "instance.flavor": "`instanceType`, checked against the cluster's instance types",
        "instance.tags": "labels `tags.polyvirt.io/<tag>`",
        "instance.description": "annotation `polyvirt.io/description`",
        "instance.networks.ipv4_gateway": "Cozystack networks take a name only",
        "instance.cloud_init": "`cloudInit` (user-data only; no network-config)",
        "instance.ssh_keys": "`sshKeys` (inside `cloudInit` when user_data is set too)",
        "wait_for.ip": "the LoadBalancer address when external, else the virt-launcher pod IP",
        "wait_for.cloud_init": "tenants cannot exec in the guest",
        "clone": "a VMDisk `source.disk` copy of each disk (CDI: the source must be stopped), then a `VMInstance` on the copies",
        "clone.linked": "CDI copies whole disks",
        "clone.target": "one tenant namespace",
        "backup": "a `BackupJob` (backups.cozystack.io) `<instance>-<name>`, whose `Backup` is kept by the platform "
                  "(Velero, S3); `backend_options.backup_class` (default `cozy-default`)",
        "backup.restore": "a `RestoreJob` in place: the platform halts the VM and restores it; the power state is put back",
        "backup.delete": "tenants may read `Backup`s but not delete them (the platform expires them)",
        "backup.restore_to": "Cozystack refuses a restore under another name in the same namespace",
        "backup.export": "the backup lives in the platform's object storage, out of a tenant's reach",
        "backup.mode": "Velero snapshots the volumes (CSI); there is one mode",
        "backup.storage": "where backups go is the BackupClass (`backend_options.backup_class`)",
        "disk": "`VMDisk` (storage = its storageClass); attach = the instance's `spec.disks`, seen by the guest from its next start",
        "disk.optical": "`optical: true` (a CD-ROM)",
        "disk.source.image": "a golden image",
        "disk.source.url": "`source.http.url`",
        "disk.source.disk": "`source.disk`, a CDI copy; refused while a running VM uses the source (CloneSourceInUse)",
    }

    def __init__(self, settings):
        super().__init__(settings)
        self.client = KubeClient(
            kubeconfig=settings.get("kubeconfig"),
            context=settings.get("context"),
            host=settings.get("host"),
            api_key=settings.get("api_key"),
            namespace=settings.get("namespace"),
            validate_certs=settings.get("validate_certs") is not False,
            ca_cert=settings.get("ca_cert"),
        )
        self._options = {}

    def _load_part(self, name):
        if name == "instances":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.instances import HikubeInstances

            return HikubeInstances(self)
        if name == "backups":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.backups import HikubeBackups

            return HikubeBackups(self)
        from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.disks import HikubeDisks

        return HikubeDisks(self)

    def close(self):
        self.client.close()

    def check_namespace(self):
        """Refuse a ``connection.namespace`` that does not exist or that these credentials may not use.

        Called only where a 404 could mean either (an application not found), so found objects cost no extra read.
        """
        namespace = self.client.namespace
        try:
            self.client.get(CORE + "/namespaces/" + namespace)
        except NotFound:
            raise InvalidInput("connection.namespace %s does not exist on %s" % (namespace, self.client.endpoint))
        except KubeAuthError as exc:
            raise self.refused(exc)

    def refused(self, exc):
        """A 401 is about the credentials; a 403 in a tenant's API means the namespace is not theirs (or a typo)."""
        if exc.code == 401:
            return AuthError("the Kubernetes API at %s refused the credentials: %s" % (self.client.endpoint, exc.message))
        return InvalidInput("connection.namespace %s does not exist or these credentials may not use it: %s" % (self.client.namespace, exc.message))

    def options(self, source):
        """The values Cozystack's Options API offers for ``source`` (instancetype, instanceprofile, image, ...), or None.

        None when the server has no Options API (before Cozystack 1.5): then nothing is checked up front.
        """
        if source not in self._options:
            found = self.client.get_or_none(self.client.ns_path(OPTIONS, "options", source))
            self._options[source] = None if found is None else [item.get("value") for item in (found.get("spec") or {}).get("items") or []]
        return self._options[source]
