# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared backup reconciler: create once by name, export, retain, delete, and restore; backend-neutral.

How a platform restores (on the server, by import, through a staging copy) is its driver's business:
here a restore is one verb, ``backups.restore``.
"""

from __future__ import annotations

import os
import tempfile

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, PolyvirtError, failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._model import backup_result, check_name, oldest_first, positive_int
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.base import Reconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.history import History


def backup_spec(params, backend):
    """Validate the backup options; every check that needs no API call happens here."""
    spec = {
        "instance": check_name(params.get("instance"), "instance"),
        "name": check_name(params["name"], "name") if params.get("name") is not None else None,
        "state": params.get("state") or "present",
        "storage": params.get("storage"),
        "location": params.get("location"),
        "mode": params.get("mode"),
        "retain": positive_int(params.get("retain"), "retain"),
        "restore_to": check_name(params["restore_to"], "restore_to") if params.get("restore_to") is not None else None,
        "backend_options": params.get("backend_options") or {},
    }
    if spec["location"] is not None and not str(spec["location"]).strip():
        # "" is no file: left as it is, later checks would read it as unset and a driver as a path.
        raise InvalidInput("location must be a file path, got %r" % spec["location"])
    backend.require("backup")
    if spec["state"] == "restored":
        backend.require("backup.restore")
        if spec["restore_to"] is not None and spec["restore_to"] != spec["instance"]:
            backend.require("backup.restore_to")
    # A backend whose backups cannot be deleted (a Hikube tenant) refuses retain too: pruning would be half done.
    if spec["state"] == "absent" or (spec["retain"] is not None and spec["state"] == "present"):
        backend.require("backup.delete")
    if spec["state"] == "absent" and not spec["name"]:
        raise InvalidInput("name is required to delete a backup (state=absent)")
    if spec["state"] == "restored":
        if not spec["name"] and not spec["location"]:
            raise InvalidInput("state=restored needs name (a backup of the instance) or location (a backup file)")
        if spec["location"] and not os.path.isfile(spec["location"]):
            raise InvalidInput("location %s is not a file" % spec["location"])
    if spec["state"] != "absent":
        if spec["location"]:
            backend.require("backup.export")
        if spec["mode"]:
            backend.require("backup.mode")
        if spec["storage"] and spec["state"] == "present":
            backend.require("backup.storage")
    if spec["state"] == "present" and spec["location"] and not os.path.exists(spec["location"]):
        _check_export_target(spec["location"])
    if spec["restore_to"] is not None and spec["state"] != "restored":
        raise InvalidInput("restore_to is only used with state=restored")
    backend.backups.validate(spec)
    return spec


def _check_export_target(location):
    """The file a backup is exported to must be creatable, or the backup would be made and then fail to land."""
    directory = os.path.dirname(os.path.abspath(location))
    if not os.path.isdir(directory):
        raise InvalidInput("location %s is in a directory that does not exist (%s)" % (location, directory))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidInput("location %s is in a directory this task cannot write to (%s)" % (location, directory))


class BackupReconciler(Reconciler):
    """Bring one backup to ``state``; ``run()`` returns the module result."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        super().__init__(backend, params, check_mode, diff_mode)
        self.instance = params.get("instance")
        self.history = History(self.tracker, "backup", "backups", self.instance)
        self._restoring = None  # the action of a restore into a new name that was started

    def _known(self):
        """After a failed restore into a new name, the instance it may have made is reported (and the task as changed)."""
        if self._restoring is None or "instance" in self.extra:
            return {}
        target, action = self._restoring
        try:
            found = self.backend.instances.get(target)
        except PolyvirtError:
            return {}
        if found is None:
            return {}
        self.tracker.action(action + " (then failed)")
        return {"instance": found}

    def _context(self, verb, name=None):
        what = "of instance %s" % self.instance
        return failing_to(verb, "backup", "%s %s" % (name, what) if name else what, self.backend.name)

    def _run(self):
        with self._context("validate", self.params.get("name")):
            spec = backup_spec(self.params, self.backend)
        part = self.backend.backups
        with self._context("read", spec["name"]):
            instance = self.backend.instances.get(self.instance)
            if instance is not None:
                self.history.load(part.list(instance))
        current = self.history.find(spec["name"]) if spec["name"] else None
        if spec["state"] == "absent":
            if current is not None:
                with self._context("delete", current["name"]):
                    self.history.delete(current, lambda: part.delete(instance, current, self.deadline), self.check_mode, spec["name"])
            return self._result(None)
        if spec["state"] == "restored":
            return self._restored(spec, instance, current)
        if instance is None:
            with self._context("create", spec["name"]):
                raise NotFound("instance %s does not exist" % self.instance)
        if current is None:
            predicted = backup_result(spec["name"] or "(generated)", self.instance, self.backend.name)
            with self._context("create", spec["name"]):
                part.check_create(instance, spec)
                current = self.history.create(predicted, lambda: part.create(instance, spec, self.deadline), self.check_mode)
        if spec["location"]:
            current = self._export(instance, current, spec["location"])
        for victim in self.history.to_prune(spec["retain"], keep=current["name"]):
            with self._context("delete", victim["name"]):
                self.history.delete(victim, lambda victim=victim: part.delete(instance, victim, self.deadline), self.check_mode, spec["name"],
                                    reason=" (retain %d)" % spec["retain"])
        return self._result(current)

    def _export(self, instance, backup, location):
        """Download the backup to ``location`` unless that file exists; a partial download never lands there."""
        if os.path.exists(location):
            return dict(backup, location=location, size_bytes=os.path.getsize(location))
        self.tracker.add("location", None, location)
        size = None
        with self._context("export", backup["name"]):
            if not self.check_mode:
                _check_export_target(location)
                handle, partial = tempfile.mkstemp(prefix=".polyvirt-backup-", dir=os.path.dirname(os.path.abspath(location)))
                os.close(handle)
                try:
                    size = self.backend.backups.export(instance, backup, partial, self.deadline)
                    os.replace(partial, location)
                finally:
                    if os.path.exists(partial):
                        os.remove(partial)
        self.tracker.action("export backup %s of instance %s to %s" % (backup["name"], self.instance, location))
        return dict(backup, location=location, size_bytes=size)

    def _restored(self, spec, instance, current):
        target = spec["restore_to"] or self.instance
        in_place = target == self.instance
        label = spec["location"] or spec["name"]
        instances = self.backend.instances
        with self._context("restore", label):
            if spec["location"]:
                self.backend.backups.check_file(spec["location"])
            elif instance is None:
                raise NotFound("instance %s does not exist, so it has no backup %s (restore from a file with location)" % (self.instance, spec["name"]))
            elif current is None:
                raise NotFound(self.history.missing(spec["name"]))
            if not in_place and instances.get(target) is not None:
                raise Conflict("restore_to %s already exists; restore into a new name, or in place without restore_to" % target)
        self.tracker.add("restored", None, {"from": label, "to": target})
        replacing = in_place and instance is not None
        action = "restore instance %s from %s%s" % (target, spec["location"] or "backup %s" % spec["name"], " (replacing the current one)" if replacing else "")
        if self.check_mode:
            self.tracker.action(action)
            return self._result(current)
        if not in_place:
            self._restoring = (target, action)
        with self._context("restore", label):
            restored = self.backend.backups.restore(target, self.deadline, instance=instance if replacing or not spec["location"] else None,
                                                    backup=None if spec["location"] else current, path=spec["location"], storage=spec["storage"])
        self.tracker.action(action)
        self.extra["instance"] = restored or {}
        if restored is not None:
            self._warn_after_restore(replacing, restored)
        return self._result(current)

    def _warn_after_restore(self, replacing, restored):
        if replacing:
            kept = set(item["name"] for item in self.backend.backups.list(restored))
            lost = [name for name in self.history.names() if name not in kept]
            if lost:
                self._warn("restoring in place replaced instance %s, and its backups on the server went with it: %s" % (restored["name"], ", ".join(lost)))
            self.history.load([item for item in self.history.items if item["name"] in kept])
            return
        shared = self.backend.instances.shared_disks(restored)
        if shared:
            self._warn("restored instance %s mounts the same disks as %s (%s): both write to them; detach them, or attach copies "
                       "(disk with source.disk), if that is not what you want" % (restored["name"], self.instance, ", ".join(shared)))

    def _result(self, backup):
        return self._finish(backup=backup or {}, backups=self.history.items)


def list_backups(backend, instance, name=None):
    """The ``backup_info`` result: the backups of ``instance`` (only ``name`` when given), oldest first."""
    backend.require("backup")
    found = backend.instances.get(instance)
    if found is None:
        raise NotFound("instance %s does not exist" % instance)
    return [item for item in oldest_first(backend.backups.list(found)) if name is None or item["name"] == name]
