# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The interface every backend driver implements, and its capability flags.

A driver speaks in the backend's native objects (``raw``: what its API returns) and translates to and
from the normalised vocabulary; the shared reconcilers decide what to do. Drivers never call Ansible.
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Unsupported

# Capability flags. A request that needs a flag the backend lacks fails before any change.
CAPABILITIES = {
    "instance.container": "type=container",
    "instance.vm": "type=vm",
    "instance.paused": "state=paused",
    "instance.disk_size": "disk_size",
    "instance.flavor": "flavor",
    "instance.tags": "tags",
    "instance.description": "description",
    "instance.networks.ipv4_gateway": "networks[].ipv4_gateway",
    "instance.networks.nat": "networks[].nat",
    "instance.cloud_init": "cloud_init",
    "instance.ssh_keys": "ssh_keys",
    "wait_for.ip": "wait_for=ip",
    "wait_for.cloud_init": "wait_for=cloud_init",
    "snapshot": "snapshots",
    "snapshot.stateful": "stateful snapshots",
    "snapshot.description": "snapshot description",
    "backup": "backups",
    "backup.export": "backup location (export to the controller)",
    "backup.mode": "backup mode",
    "backup.storage": "backup storage",
    "clone": "clone",
    "clone.linked": "mode=linked clones",
    "clone.target": "clone target",
    "disk": "disks",
    "disk.optical": "optical disks",
    "disk.source.image": "disk source.image",
    "disk.source.url": "disk source.url",
    "disk.source.disk": "disk source.disk (copy of another disk)",
}


class Backend:
    """Base of the backend drivers. Subclasses set ``name``, ``capabilities`` and ``default_type``."""

    name = None
    capabilities = frozenset()
    default_type = "vm"

    def require(self, capability):
        """Fail with the standard message when the backend lacks ``capability``."""
        if capability not in self.capabilities:
            raise Unsupported("%s is not supported by the %s backend" % (CAPABILITIES[capability], self.name))

    def close(self):
        """Release connections; called once at the end of a task."""

    # -- instances ------------------------------------------------------------------------------
    # ``spec`` is the validated, normalised desired instance (see _instance.desired_spec).

    def validate_instance(self, spec):
        """Backend-specific checks of ``spec`` (name rules, image form), raising InvalidInput."""

    def get_instance(self, name):
        """The native object, or None when no instance has that name. One API read where possible."""
        raise NotImplementedError

    def describe_instance(self, raw):
        """The normalised ``instance`` return value (_model.instance_result) for a native object."""
        raise NotImplementedError

    def current_settings(self, raw):
        """Current values of the reconcilable settings, in the same keys as ``desired_settings``."""
        raise NotImplementedError

    def desired_settings(self, spec):
        """The settings ``spec`` asks for, as a flat dict of comparable values (unset ones omitted)."""
        raise NotImplementedError

    def check_update(self, raw, changes):
        """Refuse changes the backend cannot make in place (shrinking a disk), before any change."""

    def create_instance(self, spec, deadline):
        """Create (not start) the instance; return its native object."""
        raise NotImplementedError

    def update_instance(self, raw, changes, deadline):
        """Apply ``changes`` (a subset of ``desired_settings``) to an existing instance."""
        raise NotImplementedError

    def power(self, raw, action, force, deadline):
        """``action`` is one of start, stop, restart, pause, resume."""
        raise NotImplementedError

    def delete_instance(self, raw, force, deadline):
        raise NotImplementedError

    def list_instances(self, filters=None):
        """Native objects of every instance (one list call where the API allows)."""
        raise NotImplementedError

    def wait_for(self, name, condition, deadline, raw=None):
        """Wait until ``condition`` (running, ip, cloud_init) holds; return ``(raw, report)``.

        ``raw`` is the native object the caller already has: when it shows the condition, no API call is made.
        """
        raise NotImplementedError

    # -- snapshots ------------------------------------------------------------------------------
    # Snapshots are read from the instance's native object where the API returns them with it.

    def validate_snapshot_name(self, name):
        """Backend naming rules for snapshots, raising InvalidInput."""

    def list_snapshots(self, raw):
        """The normalised snapshots (_resources.snapshot_result) of instance ``raw``, oldest first."""
        raise NotImplementedError

    def create_snapshot(self, raw, name, stateful, description, deadline):
        raise NotImplementedError

    def delete_snapshot(self, raw, name, deadline):
        raise NotImplementedError

    def restore_snapshot(self, raw, name, deadline):
        """Roll the instance back to snapshot ``name``, leaving it in the power state it had; return the new native object."""
        raise NotImplementedError

    # -- backups --------------------------------------------------------------------------------

    def validate_backup(self, spec):
        """Backend-specific checks of a backup spec (name rules, backend_options), raising InvalidInput."""

    def list_backups(self, raw):
        """The normalised backups (_resources.backup_result) of instance ``raw``, oldest first."""
        raise NotImplementedError

    def create_backup(self, raw, spec, deadline):
        raise NotImplementedError

    def delete_backup(self, raw, name, deadline):
        raise NotImplementedError

    def export_backup(self, raw, name, path, deadline):
        """Download backup ``name`` to the file ``path`` (streamed); return its size in bytes."""
        raise NotImplementedError

    def check_backup_file(self, path):
        """Refuse a file that is not a backup of this backend (InvalidInput); return what it describes."""
        raise NotImplementedError

    def import_backup(self, path, name, storage, deadline):
        """Create instance ``name`` from the backup file ``path``; return its native object."""
        raise NotImplementedError

    def rename_instance(self, raw, name, deadline):
        raise NotImplementedError

    # -- clones ---------------------------------------------------------------------------------

    def check_clone(self, source_raw, spec, clone):
        """Refuse a clone the backend cannot make (mode, target), before any change."""

    def clone_instance(self, source_raw, spec, clone, deadline):
        """Create (not start) instance ``spec["name"]`` as a copy of ``source_raw`` with ``spec`` applied.

        ``clone`` holds ``snapshot``, ``mode`` and ``target``. Returns the new native object.
        """
        raise NotImplementedError

    # -- disks ----------------------------------------------------------------------------------

    def validate_disk(self, spec):
        """Backend-specific checks of a disk spec (name rules, storage), raising InvalidInput."""

    def disk_pool(self, spec, instance_raw):
        """Where the disk lives: ``spec["storage"]`` or the backend's default for the instance."""
        return spec["storage"]

    def get_disk(self, spec, instance_raw):
        """The normalised disk (_resources.disk_result) named ``spec["name"]``, or None."""
        raise NotImplementedError

    def check_disk_source(self, spec):
        """Refuse a ``source`` that does not exist, before anything is created."""

    def disk_attachment(self, spec, attached):
        """The backend's attachment settings of ``spec`` (compared with the disk's keys of the same name).

        ``attached`` tells whether the disk is attached to the instance already: then unset settings are left alone.
        """
        return {}

    def list_disks(self, storage=None, instance_raw=None):
        raise NotImplementedError

    def create_disk(self, spec, deadline):
        raise NotImplementedError

    def resize_disk(self, disk, size_bytes, deadline):
        raise NotImplementedError

    def attach_disk(self, disk, instance_raw, options, deadline):
        """Attach ``disk`` to the instance ``instance_raw`` (or update the attachment) with backend ``options``."""
        raise NotImplementedError

    def detach_disk(self, disk, instance, deadline):
        raise NotImplementedError

    def delete_disk(self, disk, deadline):
        raise NotImplementedError
