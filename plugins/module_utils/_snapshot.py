# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared snapshot reconciler: create once by name, restore, delete, retain; backend-neutral."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._model import positive_int
from ansible_collections.polyvirt.compute.plugins.module_utils._reconciler import Reconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._resources import diffable, oldest_first, snapshot_result, to_prune
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline


def validate(params, backend):
    """Every check that needs no API call, so bad input fails before anything changes."""
    for option in ("instance", "name"):
        if not params.get(option):
            raise InvalidInput("%s must not be empty" % option)
    positive_int(params.get("retain"), "retain")
    backend.require("snapshot")
    if params.get("state") != "absent":
        if params.get("stateful"):
            backend.require("snapshot.stateful")
        if params.get("description") is not None:
            backend.require("snapshot.description")
    backend.validate_snapshot_name(params["name"])


class SnapshotReconciler(Reconciler):
    """Bring one snapshot to ``state``; ``run()`` returns the module result."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        super().__init__(backend, params, check_mode, diff_mode)
        self.instance = params["instance"]
        self.name = params["name"]
        self.snapshots = []

    def _context(self, verb, obj="snapshot"):
        name = self.name if obj == "snapshot" else self.instance
        if obj == "snapshot":
            name = "%s of instance %s" % (self.name, self.instance)
        return failing_to(verb, obj, name, self.backend.name)

    def _run(self):
        state = self.params.get("state") or "present"
        with self._context("validate"):
            validate(self.params, self.backend)
        deadline = Deadline(self.params.get("wait_timeout") or 600)
        with self._context("read", "instance"):
            raw = self.backend.get_instance(self.instance)
        if raw is None:
            if state == "absent":
                return self._result(None)
            verb = {"present": "create", "restored": "restore"}[state]
            with self._context(verb):
                raise NotFound("instance %s does not exist" % self.instance)
        self.snapshots = oldest_first(self.backend.list_snapshots(raw))
        current = self._find(self.name)
        if state == "absent":
            if current is not None:
                self._delete(raw, current, deadline)
            return self._result(None)
        if state == "restored":
            if current is None:
                with self._context("restore"):
                    raise NotFound("snapshot %s of instance %s does not exist (existing: %s)" % (
                        self.name, self.instance, ", ".join(item["name"] for item in self.snapshots) or "none"))
            self._restore(raw, current, deadline)
            return self._result(current)
        if current is None:
            raw, current = self._create(raw, deadline)
        else:
            self._warn_differences(current)
        for victim in to_prune(self.snapshots, self.params.get("retain"), keep=self.name):
            self._delete(raw, victim, deadline, reason=" (retain %d)" % self.params["retain"])
        return self._result(current)

    def _find(self, name):
        for item in self.snapshots:
            if item["name"] == name:
                return item
        return None

    def _names(self):
        return [item["name"] for item in self.snapshots]

    def _create(self, raw, deadline):
        before = self._names()
        predicted = snapshot_result(self.name, self.instance, self.backend.name, stateful=bool(self.params.get("stateful")),
                                    description=self.params.get("description"))
        self.tracker.add("snapshot", {}, diffable(predicted))
        with self._context("create"):
            if not self.check_mode:
                raw = self.backend.create_snapshot(raw, self.name, bool(self.params.get("stateful")), self.params.get("description"), deadline)
                self.snapshots = oldest_first(self.backend.list_snapshots(raw))
                predicted = self._find(self.name) or predicted
            else:
                self.snapshots.append(predicted)
        self.tracker.action("create snapshot %s of instance %s" % (self.name, self.instance))
        self.tracker.add("snapshots", before, self._names())
        return raw, predicted

    def _delete(self, raw, snapshot, deadline, reason=""):
        before = self._names()
        with self._context("delete"):
            if not self.check_mode:
                self.backend.delete_snapshot(raw, snapshot["name"], deadline)
        self.tracker.action("delete snapshot %s of instance %s%s" % (snapshot["name"], self.instance, reason))
        self.snapshots = [item for item in self.snapshots if item["name"] != snapshot["name"]]
        if snapshot["name"] == self.name:
            self.tracker.add("snapshot", diffable(snapshot), {})
        # Keep the first "before": several deletions show as one change of the list.
        self.tracker.add("snapshots", self.tracker.diff()["before"].get("snapshots", before), self._names())

    def _restore(self, raw, snapshot, deadline):
        self.tracker.add("restored_from", None, snapshot["name"])
        with self._context("restore"):
            if not self.check_mode:
                self.backend.restore_snapshot(raw, snapshot["name"], deadline)
        self.tracker.action("restore instance %s to snapshot %s" % (self.instance, snapshot["name"]))

    def _warn_differences(self, current):
        """A snapshot is made once; asking for other settings of an existing one is reported, not applied."""
        for key in ("stateful", "description"):
            value = self.params.get(key)
            if value is None or (key == "stateful" and not value):
                continue
            if (bool(current.get(key)) if key == "stateful" else current.get(key)) != value:
                self.extra.setdefault("warnings", []).append(
                    "snapshot %s of instance %s exists with %s=%r; a snapshot is taken once, so %r is not applied (delete it to take it again)" % (
                        self.name, self.instance, key, current.get(key), value))

    def _result(self, snapshot):
        return self._finish(snapshot=snapshot or {}, snapshots=self.snapshots)


def list_snapshots(backend, instance, name=None):
    """The ``snapshot_info`` result: the snapshots of ``instance`` (only ``name`` when given), oldest first."""
    backend.require("snapshot")
    raw = backend.get_instance(instance)
    if raw is None:
        raise NotFound("instance %s does not exist" % instance)
    snapshots = oldest_first(backend.list_snapshots(raw))
    return [item for item in snapshots if name is None or item["name"] == name]
