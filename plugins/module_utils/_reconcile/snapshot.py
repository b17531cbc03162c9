# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared snapshot reconciler: create once by name, restore, delete, retain; backend-neutral."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import NotFound, failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._model import check_name, oldest_first, positive_int, snapshot_result
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.base import Reconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.history import History


def validate(params, backend):
    """Every check that needs no API call, so bad input fails before anything changes."""
    check_name(params.get("instance"), "instance")
    check_name(params.get("name"), "name")
    positive_int(params.get("retain"), "retain")
    backend.require("snapshot")
    if params.get("state") != "absent":
        if params.get("stateful"):
            backend.require("snapshot.stateful")
        if params.get("description") is not None:
            backend.require("snapshot.description")
    backend.snapshots.validate_name(params["name"])


class SnapshotReconciler(Reconciler):
    """Bring one snapshot to ``state``; ``run()`` returns the module result."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        super().__init__(backend, params, check_mode, diff_mode)
        self.instance = params.get("instance")
        self.name = params.get("name")
        self.history = History(self.tracker, "snapshot", "snapshots", self.instance)

    def _context(self, verb):
        return failing_to(verb, "snapshot", "%s of instance %s" % (self.name, self.instance), self.backend.name)

    def _run(self):
        state = self.params.get("state") or "present"
        with self._context("validate"):
            validate(self.params, self.backend)
        part = self.backend.snapshots
        with self._context("read"):
            instance = self.backend.instances.get(self.instance)
            if instance is None:
                if state == "absent":
                    return self._result(None)
                raise NotFound("instance %s does not exist" % self.instance)
            self.history.load(part.list(instance))
        current = self.history.find(self.name)
        if state == "absent":
            if current is not None:
                with self._context("delete"):
                    self.history.delete(current, lambda: part.delete(instance, current, self.deadline), self.check_mode, self.name)
            return self._result(None)
        if state == "restored":
            with self._context("restore"):
                if current is None:
                    raise NotFound(self.history.missing(self.name))
                self.tracker.add("restored_from", None, current["name"])
                self._do("restore instance %s to snapshot %s" % (self.instance, current["name"]), part.restore, instance, current, self.deadline)
            return self._result(current)
        if current is None:
            predicted = snapshot_result(self.name, self.instance, self.backend.name, stateful=bool(self.params.get("stateful")),
                                        description=self.params.get("description"))
            with self._context("create"):
                current = self.history.create(predicted, lambda: part.create(instance, self.name, bool(self.params.get("stateful")),
                                                                             self.params.get("description"), self.deadline), self.check_mode)
        else:
            self._warn_differences(current)
        retain = self.params.get("retain")
        for victim in self.history.to_prune(retain, keep=self.name):
            with self._context("delete"):
                self.history.delete(victim, lambda victim=victim: part.delete(instance, victim, self.deadline), self.check_mode, self.name,
                                    reason=" (retain %d)" % retain)
        return self._result(current)

    def _warn_differences(self, current):
        """A snapshot is made once; asking for other settings of an existing one is reported, not applied."""
        for key in ("stateful", "description"):
            value = self.params.get(key)
            if value is None or (key == "stateful" and not value):
                continue
            if (bool(current.get(key)) if key == "stateful" else current.get(key)) != value:
                self._warn("snapshot %s of instance %s exists with %s=%r; a snapshot is taken once, so %r is not applied (delete it to take it again)" % (
                    self.name, self.instance, key, current.get(key), value))

    def _result(self, snapshot):
        return self._finish(snapshot=snapshot or {}, snapshots=self.history.items)


def list_snapshots(backend, instance, name=None):
    """The ``snapshot_info`` result: the snapshots of ``instance`` (only ``name`` when given), oldest first."""
    backend.require("snapshot")
    found = backend.instances.get(instance)
    if found is None:
        raise NotFound("instance %s does not exist" % instance)
    return [item for item in oldest_first(backend.snapshots.list(found)) if name is None or item["name"] == name]
