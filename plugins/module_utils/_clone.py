# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared clone reconciler: copy an instance once, then reconcile it like ``instance`` in the same task.

A clone whose name exists is never copied again; it is reconciled (settings, power, waits) exactly as
the instance module would. Backend-neutral: the copy itself is the driver's ``clone_instance``.
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._instance import InstanceReconciler, _diffable, desired_spec, predicted_instance
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline


def clone_request(params, backend):
    """The clone-only options, validated without any API call."""
    clone = {"source": params.get("source"), "snapshot": params.get("snapshot"), "mode": params.get("mode") or "full", "target": params.get("target")}
    if not clone["source"]:
        raise InvalidInput("source must not be empty")
    if clone["source"] == params.get("name"):
        raise InvalidInput("name %r must differ from source" % params.get("name"))
    backend.require("clone")
    if clone["mode"] == "linked":
        backend.require("clone.linked")
    if clone["target"]:
        backend.require("clone.target")
    if clone["snapshot"] is not None:
        backend.require("snapshot")
    return clone


class CloneReconciler(InstanceReconciler):
    """Clone ``source`` to ``name`` unless ``name`` exists, then apply the instance options to it."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        super().__init__(backend, params, check_mode, diff_mode)
        self.extra["cloned"] = False
        self._predicted = None

    def _run(self):
        with self._context("validate"):
            clone = clone_request(self.params, self.backend)
            spec = desired_spec(self.params, self.backend)
        deadline = Deadline(self.params.get("wait_timeout") or 600)
        with self._context("read"):
            self.raw = self.backend.get_instance(self.name)
        if self.raw is None:
            self._clone(spec, clone, deadline)
            if self.raw is None:  # check mode: nothing exists to configure, power or wait for
                return self._result(self._predicted)
        self._update(spec, deadline)
        return self._converge(spec, deadline)

    def _clone(self, spec, clone, deadline):
        with self._context("clone"):
            source = self.backend.get_instance(clone["source"])
            if source is None:
                raise NotFound("source instance %s does not exist" % clone["source"])
            origin = clone["source"]
            if clone["snapshot"] is not None:
                names = [item["name"] for item in self.backend.list_snapshots(source)]
                if clone["snapshot"] not in names:
                    raise NotFound("snapshot %s of instance %s does not exist (existing: %s)" % (
                        clone["snapshot"], clone["source"], ", ".join(names) or "none"))
                origin += "/" + clone["snapshot"]
            self.backend.check_clone(source, spec, clone)
            self._predicted = self._predict(source, spec)
            self.tracker.whole(None, _diffable(self._predicted))
            action = "clone instance %s from %s%s" % (self.name, origin, " (%s)" % clone["mode"] if clone["mode"] != "full" else "")
            self.raw = self._do(action, self.backend.clone_instance, source, spec, clone, deadline)
            self.extra["cloned"] = True
            if self.check_mode:
                self._plan_power_for_new(spec)
                return
            self.created = True

    def _update(self, spec, deadline):
        if self.created:
            # A new clone already got the settings in its copy request; what still differs is updated, not re-recorded in the diff.
            before = self.tracker.diff()
            super()._update(spec, deadline)
            self.tracker.whole(before["before"] or None, before["after"])
            return
        super()._update(spec, deadline)

    def _predict(self, source, spec):
        """What the clone would look like: the source with the requested settings on top."""
        described = self.backend.describe_instance(source)
        predicted = predicted_instance(self.backend, spec)
        for key in ("type", "cpus", "memory_mib", "disk_gib", "image", "description", "tags", "networks"):
            if predicted.get(key) in (None, []) and described.get(key) not in (None, []):
                predicted[key] = described[key]
        predicted["networks"] = [dict((k, v) for k, v in network.items() if k not in ("addresses", "mac")) for network in predicted["networks"]]
        return predicted

    def _roll_back(self, exc, deadline):
        super()._roll_back(exc, deadline)
        if self.raw is None:
            self.extra["cloned"] = False
            exc.result["cloned"] = False

    def _known(self):
        return dict(super()._known(), cloned=self.extra["cloned"])
