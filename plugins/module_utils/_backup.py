# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared backup reconciler: create once by name, export, retain, delete, and restore; backend-neutral.

Restoring in place never destroys the instance before the backup is known to import: the backup is
imported under a temporary name first, and only then is the old instance replaced by it.
"""

from __future__ import annotations

import os
import tempfile
import uuid

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, PolyvirtError, failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._model import positive_int
from ansible_collections.polyvirt.compute.plugins.module_utils._reconciler import Reconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._resources import backup_result, diffable, oldest_first, to_prune
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline


def backup_spec(params, backend):
    """Validate the backup options; every check that needs no API call happens here."""
    spec = {
        "instance": params.get("instance"),
        "name": params.get("name"),
        "state": params.get("state") or "present",
        "storage": params.get("storage"),
        "location": params.get("location"),
        "mode": params.get("mode"),
        "retain": positive_int(params.get("retain"), "retain"),
        "restore_to": params.get("restore_to"),
        "backend_options": params.get("backend_options") or {},
    }
    if not spec["instance"]:
        raise InvalidInput("instance must not be empty")
    backend.require("backup")
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
    if spec["restore_to"] is not None and spec["state"] != "restored":
        raise InvalidInput("restore_to is only used with state=restored")
    backend.validate_backup(spec)
    return spec


class BackupReconciler(Reconciler):
    """Bring one backup to ``state``; ``run()`` returns the module result."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        super().__init__(backend, params, check_mode, diff_mode)
        self.instance = params.get("instance")
        self.backups = []

    def _context(self, verb, name=None):
        what = "of instance %s" % self.instance
        return failing_to(verb, "backup", "%s %s" % (name, what) if name else what, self.backend.name)

    def _run(self):
        with self._context("validate", self.params.get("name")):
            spec = backup_spec(self.params, self.backend)
        deadline = Deadline(self.params.get("wait_timeout") or 600)
        with self._context("read", spec["name"]):
            raw = self.backend.get_instance(self.instance)
        if raw is not None:
            self.backups = oldest_first(self.backend.list_backups(raw))
        current = self._find(spec["name"]) if spec["name"] else None
        if spec["state"] == "absent":
            if current is not None:
                self._delete(raw, current, deadline)
            return self._result(None)
        if spec["state"] == "restored":
            return self._restored(spec, raw, current, deadline)
        if raw is None:
            with self._context("create", spec["name"]):
                raise NotFound("instance %s does not exist" % self.instance)
        if current is None:
            raw, current = self._create(raw, spec, deadline)
        if spec["location"]:
            current = self._export(raw, current, spec["location"], deadline)
        for victim in to_prune(self.backups, spec["retain"], keep=current["name"]):
            self._delete(raw, victim, deadline, reason=" (retain %d)" % spec["retain"])
        return self._result(current)

    def _find(self, name):
        for item in self.backups:
            if item["name"] == name:
                return item
        return None

    def _names(self):
        return [item["name"] for item in self.backups]

    def _record_list(self, before):
        self.tracker.add("backups", self.tracker.diff()["before"].get("backups", before), self._names())

    def _create(self, raw, spec, deadline):
        before = self._names()
        predicted = backup_result(spec["name"] or "(generated)", self.instance, self.backend.name)
        self.tracker.add("backup", {}, diffable(predicted))
        with self._context("create", spec["name"]):
            if not self.check_mode:
                raw = self.backend.create_backup(raw, spec, deadline)
                self.backups = oldest_first(self.backend.list_backups(raw))
                made = [item for item in self.backups if item["name"] not in before]
                predicted = self._find(spec["name"]) if spec["name"] else (made[-1] if made else None)
                if predicted is None:
                    raise NotFound("the backend did not list the new backup")
            else:
                self.backups.append(predicted)
        self.tracker.action("create backup %s of instance %s" % (predicted["name"], self.instance))
        self._record_list(before)
        return raw, predicted

    def _export(self, raw, backup, location, deadline):
        """Download the backup to ``location`` unless that file exists; a partial download never lands there."""
        if os.path.exists(location):
            return dict(backup, location=location, size_bytes=os.path.getsize(location))
        self.tracker.add("location", None, location)
        size = None
        with self._context("export", backup["name"]):
            if not self.check_mode:
                directory = os.path.dirname(os.path.abspath(location))
                if not os.path.isdir(directory):
                    raise InvalidInput("location %s is in a directory that does not exist" % location)
                handle, partial = tempfile.mkstemp(prefix=".polyvirt-backup-", dir=directory)
                os.close(handle)
                try:
                    size = self.backend.export_backup(raw, backup["name"], partial, deadline)
                    os.replace(partial, location)
                finally:
                    if os.path.exists(partial):
                        os.remove(partial)
        self.tracker.action("export backup %s of instance %s to %s" % (backup["name"], self.instance, location))
        return dict(backup, location=location, size_bytes=size)

    def _delete(self, raw, backup, deadline, reason=""):
        before = self._names()
        with self._context("delete", backup["name"]):
            if not self.check_mode:
                self.backend.delete_backup(raw, backup["name"], deadline)
        self.tracker.action("delete backup %s of instance %s%s" % (backup["name"], self.instance, reason))
        self.backups = [item for item in self.backups if item["name"] != backup["name"]]
        if backup["name"] == self.params.get("name"):
            self.tracker.add("backup", diffable(backup), {})
        self._record_list(before)

    # -- restore --------------------------------------------------------------------------------

    def _restored(self, spec, raw, current, deadline):
        target = spec["restore_to"] or self.instance
        in_place = target == self.instance
        label = spec["location"] or spec["name"]
        with self._context("restore", label):
            if spec["location"]:
                self.backend.check_backup_file(spec["location"])
            elif raw is None:
                raise NotFound("instance %s does not exist, so it has no backup %s (restore from a file with location)" % (self.instance, spec["name"]))
            elif current is None:
                raise NotFound("backup %s of instance %s does not exist (existing: %s)" % (spec["name"], self.instance, ", ".join(self._names()) or "none"))
            if not in_place and self.backend.get_instance(target) is not None:
                raise Conflict("restore_to %s already exists; restore into a new name, or in place without restore_to" % target)
        self.tracker.add("restored", None, {"from": label, "to": target})
        replacing = in_place and raw is not None
        action = "restore instance %s from %s" % (target, "backup %s" % spec["name"] if not spec["location"] else spec["location"])
        if self.check_mode:
            self.tracker.action(action + (" (replacing the current one)" if replacing else ""))
            return self._result(current)
        with self._context("restore", label):
            if spec["location"]:
                self._import(spec["location"], target, replacing, raw, spec, deadline)
            else:
                self._restore_from_server(raw, current, target, replacing, spec, deadline)
        self.tracker.action(action + (" (replacing the current one)" if replacing else ""))
        restored = self.backend.get_instance(target)
        self.extra["instance"] = self.backend.describe_instance(restored) if restored else {}
        if replacing:
            lost = [item["name"] for item in self.backups]
            self.backups = oldest_first(self.backend.list_backups(restored)) if restored else []
            if lost:
                self.extra["warnings"] = ["restoring in place replaced instance %s, and its backups on the server went with it: %s" % (
                    target, ", ".join(lost))]
        return self._result(current)

    def _restore_from_server(self, raw, backup, target, replacing, spec, deadline):
        handle, path = tempfile.mkstemp(prefix=".polyvirt-backup-")
        os.close(handle)
        try:
            self.backend.export_backup(raw, backup["name"], path, deadline)
            self._import(path, target, replacing, raw, spec, deadline)
        finally:
            os.remove(path)

    def _import(self, path, target, replacing, raw, spec, deadline):
        if not replacing:
            self.backend.import_backup(path, target, spec["storage"], deadline)
            return
        staging = "%s-r%s" % (target[:48], uuid.uuid4().hex[:8])
        new = self.backend.import_backup(path, staging, spec["storage"], deadline)
        was_running = self.backend.describe_instance(raw)["state"] in ("running", "paused")
        try:
            self.backend.delete_instance(raw, True, deadline)
        except PolyvirtError as exc:
            self.backend.delete_instance(new, True, deadline)
            exc.message = "could not replace instance %s (the restored copy was removed again; the instance is unchanged): %s" % (target, exc.message)
            raise
        try:
            new = self.backend.rename_instance(new, target, deadline)
        except PolyvirtError as exc:
            exc.message = "the old instance %s was replaced, but renaming the restored copy %s to it failed: %s" % (target, staging, exc.message)
            raise
        if was_running:
            self.backend.power(new, "start", False, deadline)

    def _result(self, backup):
        return self._finish(backup=backup or {}, backups=self.backups)


def list_backups(backend, instance, name=None):
    """The ``backup_info`` result: the backups of ``instance`` (only ``name`` when given), oldest first."""
    backend.require("backup")
    raw = backend.get_instance(instance)
    if raw is None:
        raise NotFound("instance %s does not exist" % instance)
    return [item for item in oldest_first(backend.list_backups(raw)) if name is None or item["name"] == name]
