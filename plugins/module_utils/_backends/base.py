# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The driver contract: a backend object and its parts, each an abstract class.

A backend exposes ``instances`` (always), and ``snapshots``, ``backups`` and ``disks`` where the platform
has them (``None`` otherwise). Every verb takes and returns normalised objects (_model: instance_result,
snapshot_result, backup_result, disk_result) that carry ``backend_data`` (the native object, secrets
removed); a driver may keep the unredacted native object under ``_native``, which results never show.
Drivers raise the collection's exceptions (_errors) and never call Ansible.
"""

from __future__ import annotations

import abc

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import PolyvirtError, Unsupported

# Capability flags and the words of their "<feature> is not supported by the <backend> backend" message.
# "snapshot", "backup" and "disk" come from the parts a backend has; the rest from its ``features``.
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
    "backup.restore": "backup restore (state=restored)",
    # Separate from "backup": a Hikube tenant may make and restore backups but not delete them, and restores only in place.
    "backup.delete": "backup deletion (state=absent, retain)",
    "backup.restore_to": "backup restore into another instance (restore_to)",
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
PART_CAPABILITIES = {"snapshots": "snapshot", "backups": "backup", "disks": "disk"}
INSTANCE_TYPES = ("container", "vm")

# How a change to a running instance takes effect (Instances.effects).
LIVE = "live"  # applied at once
ON_RESTART = "restart"  # stored now, in effect after the next restart (Proxmox [PENDING], LXD keys read at start)
WHILE_STOPPED = "stopped"  # the platform refuses it while the instance runs (Hyper-V Set-VMProcessor)


class Backend(abc.ABC):
    """A connected backend. Subclasses set ``name``, ``default_type``, ``parts``, ``features`` and ``notes``.

    ``features`` maps each instance type the backend runs to the capability flags it has for that type
    (Proxmox: cloud-init for QEMU only); a type missing from it is refused. Parts are imported only when
    a task first uses them (``_load_part``), so a task pays only for the code it runs.
    """

    name = None
    default_type = "vm"
    parts = ("instances",)
    features = {}
    notes = {}  # capability -> a few words for the generated capability table

    def __init__(self, settings):
        self.settings = settings
        self._parts = {}

    @classmethod
    def capabilities_for(cls, instance_type=None):
        """The capability flags for ``instance_type``; None gives what any of the backend's types has."""
        flags = set(capability for part, capability in PART_CAPABILITIES.items() if part in cls.parts)
        for name in [instance_type] if instance_type else list(cls.features):
            if name in cls.features:
                flags |= set(cls.features[name]) | {"instance." + name}
        return frozenset(flags)

    def require(self, capability, instance_type=None):
        """Fail with the standard message when ``capability`` is missing (for ``instance_type`` when given)."""
        if capability not in self.capabilities_for(instance_type):
            suffix = " for type=%s" % instance_type if instance_type and capability in self.capabilities_for() else ""
            raise Unsupported("%s is not supported by the %s backend%s" % (CAPABILITIES[capability], self.name, suffix))

    def _part(self, name):
        if name not in self.parts:
            return None
        if name not in self._parts:
            self._parts[name] = self._load_part(name)
        return self._parts[name]

    @abc.abstractmethod
    def _load_part(self, name):
        """Import and build part ``name`` (imports written out, so AnsiballZ packs them)."""

    @property
    def instances(self):
        return self._part("instances")

    @property
    def snapshots(self):
        return self._part("snapshots")

    @property
    def backups(self):
        return self._part("backups")

    @property
    def disks(self):
        return self._part("disks")

    def close(self):
        """Release connections; called once at the end of a task."""


class Part(abc.ABC):
    """One resource kind of a backend; parts of one backend share its connection (``backend``)."""

    def __init__(self, backend):
        self.backend = backend


class Instances(Part):
    """Instances, and clones of them. ``spec`` is the validated desired instance (_reconcile.instance.desired_spec)."""

    @abc.abstractmethod
    def validate(self, spec):
        """Backend-specific checks of ``spec`` that need no API call (name rules, backend_options), raising InvalidInput."""

    @abc.abstractmethod
    def get(self, name, runtime=False):
        """The instance named ``name``, or None, in one API read where possible.

        ``runtime`` asks for what only the running guest knows (addresses); without it a backend may
        skip the more expensive read and return ``addresses`` empty.
        """

    @abc.abstractmethod
    def list(self, filters=None):
        """Every instance (one list call where the API allows); ``filters`` is a hint, the caller filters again."""

    @abc.abstractmethod
    def settings(self, instance):
        """Current values of the reconcilable settings, in the keys of ``desired``."""

    @abc.abstractmethod
    def desired(self, spec):
        """The settings ``spec`` asks for, as a flat dict of comparable values (unset ones omitted)."""

    def check_create(self, spec):
        """Read-only checks before a create, run in check mode too (the image, project or template exists)."""

    def check_update(self, instance, changes):
        """Refuse changes the backend cannot make at all (shrinking a disk), before any change."""

    def effects(self, instance, changes):
        """How each key of ``changes`` takes effect on ``instance`` as it is now: LIVE, ON_RESTART or WHILE_STOPPED."""
        return dict((key, LIVE) for key in changes)

    @abc.abstractmethod
    def create(self, spec, deadline):
        """Create (not start) the instance; return it."""

    @abc.abstractmethod
    def update(self, instance, changes, deadline):
        """Apply ``changes`` (a subset of ``desired``); return the instance as it is afterwards."""

    @abc.abstractmethod
    def power(self, instance, action, force, deadline):
        """``action`` is start, stop, restart, pause or resume; return the instance afterwards."""

    @abc.abstractmethod
    def delete(self, instance, force, deadline):
        """Delete the instance (stopping it first); an instance that is gone already is not an error."""

    @abc.abstractmethod
    def wait_for(self, instance, condition, deadline):
        """Wait until ``condition`` (running, ip, cloud_init) holds; return ``(instance, report)``.

        When ``instance`` already shows the condition, no API call is made.
        """

    def shared_disks(self, instance):
        """The disks ``instance`` uses that a clone or restore of it would use too (not copied), as names to warn about."""
        return []

    def check_clone(self, source, spec, clone):
        """Refuse a clone the backend cannot make (mode, target), before any change."""

    def clone(self, source, spec, clone, deadline):
        """Create (not start) ``spec["name"]`` as a copy of ``source`` with ``spec`` applied; return it.

        ``clone`` holds ``snapshot``, ``mode`` and ``target``. Backends whose features include "clone" implement it.
        """
        raise Unsupported("clone is not supported by the %s backend" % self.backend.name)


class Snapshots(Part):
    """Snapshots of an instance, oldest first."""

    def validate_name(self, name):
        """Backend naming rules on top of _model.check_name, raising InvalidInput."""

    @abc.abstractmethod
    def list(self, instance):
        """The snapshots of ``instance``."""

    @abc.abstractmethod
    def create(self, instance, name, stateful, description, deadline):
        """Take snapshot ``name``; return it."""

    @abc.abstractmethod
    def delete(self, instance, snapshot, deadline):
        """Delete ``snapshot``; one that is gone already is not an error."""

    @abc.abstractmethod
    def restore(self, instance, snapshot, deadline):
        """Roll back to ``snapshot``, leaving the power state the instance had; return the instance."""


class Backups(Part):
    """Backups of an instance, kept by the platform and optionally exported to a file where the module runs."""

    def validate(self, spec):
        """Backend-specific checks of a backup spec (name rules, backend_options), raising InvalidInput."""

    def check_create(self, instance, spec):
        """Read-only checks before a backup is made, run in check mode too (a backup class exists); only when one is to be made."""

    @abc.abstractmethod
    def list(self, instance):
        """The backups of ``instance``, oldest first."""

    @abc.abstractmethod
    def create(self, instance, spec, deadline):
        """Make a backup (named ``spec["name"]`` when set); return it."""

    @abc.abstractmethod
    def delete(self, instance, backup, deadline):
        """Delete ``backup``; one that is gone already is not an error."""

    def restore(self, target, deadline, instance=None, backup=None, path=None, storage=None):
        """Restore into instance ``target`` from ``backup`` (of ``instance``) or from the file ``path``; return it.

        ``target`` equal to the name of ``instance`` (which then exists) means in place: the driver
        replaces it without losing it when the restore fails. Otherwise ``target`` does not exist yet.
        Needs the backup.restore feature (CloudCIX keeps backups it cannot restore through its API), and
        backup.restore_to for a ``target`` other than ``instance`` (the reconciler refuses it before).
        """
        raise Unsupported("backup restore (state=restored) is not supported by the %s backend" % self.backend.name)

    def replace_in_place(self, instance, copy, remove_old, rename, deadline):
        """Put the restored ``copy`` (an instance made beside ``instance``) in place of ``instance``; return it.

        ``remove_old()`` removes ``instance``; should it fail, the copy is removed and nothing is lost.
        ``rename()`` gives the copy the old name and returns it. The copy then gets the power the old one had.
        """
        instances = self.backend.instances
        target = instance["name"]
        try:
            remove_old()
        except PolyvirtError as exc:
            instances.delete(copy, True, deadline)
            exc.message = "could not replace instance %s (the restored copy was removed again; the instance is unchanged): %s" % (target, exc.message)
            raise
        try:
            restored = rename()
        except PolyvirtError as exc:
            exc.message = "the old instance %s was replaced, but renaming the restored copy %s to it failed: %s" % (target, copy["name"], exc.message)
            raise
        if instance["state"] in ("running", "paused"):
            restored = instances.power(restored, "start", False, deadline)
        return restored

    def export(self, instance, backup, path, deadline):
        """Download ``backup`` to the file ``path`` (streamed); return its size. Needs the backup.export feature."""
        raise Unsupported("backup location (export to the controller) is not supported by the %s backend" % self.backend.name)

    def check_file(self, path):
        """Refuse a file that is not a backup of this backend (InvalidInput); return what it describes."""
        raise Unsupported("backup location (export to the controller) is not supported by the %s backend" % self.backend.name)


class Disks(Part):
    """Disks: created on a storage, attached to at most one instance at a time by the modules."""

    # Whether a disk's name alone finds it (Hikube: one namespace); else it takes its storage or its instance (LXD pools, Proxmox slots).
    found_by_name_alone = False

    def validate(self, spec):
        """Backend-specific checks of a disk spec (name rules, storage), raising InvalidInput."""

    def pool(self, spec, instance):
        """Where the disk lives: ``spec["storage"]`` or the backend's default for ``instance``."""
        return spec["storage"]

    @abc.abstractmethod
    def get(self, spec, instance):
        """The disk named ``spec["name"]`` in ``spec["storage"]``, or None. ``attachments`` lists every instance using it."""

    def check_source(self, spec):
        """Refuse a ``source`` that does not exist, before anything is created."""

    def attachment(self, spec, attached):
        """The attachment settings of ``spec`` compared with the disk's keys of the same name.

        ``attached`` tells whether the disk is attached to the instance already: then unset settings are left alone.
        """
        return {}

    @abc.abstractmethod
    def list(self, storage=None, instance=None):
        """Every disk (in ``storage`` when given)."""

    @abc.abstractmethod
    def create(self, spec, deadline):
        """Create the disk; return it."""

    @abc.abstractmethod
    def resize(self, disk, size_bytes, deadline):
        """Grow ``disk`` to ``size_bytes``."""

    @abc.abstractmethod
    def attach(self, disk, instance, options, deadline):
        """Attach ``disk`` to ``instance`` (or update the attachment) with backend ``options``."""

    @abc.abstractmethod
    def detach(self, disk, instance_name, deadline):
        """Detach ``disk`` from the instance named ``instance_name``; data is kept."""

    @abc.abstractmethod
    def delete(self, disk, deadline):
        """Delete a detached disk; one that is gone already is not an error."""
