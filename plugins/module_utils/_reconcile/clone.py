# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared clone reconciler: copy an instance once, then reconcile it like ``instance`` in the same task.

A clone whose name exists is never copied again; it is reconciled (settings, power, waits) exactly as
the instance module would. Backend-neutral: the copy itself is the driver's ``instances.clone``.
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import check_name, diffable
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler, desired_spec, predicted_instance


def clone_request(params, backend):
    """The clone-only options, validated without any API call."""
    clone = {"source": params.get("source"), "snapshot": params.get("snapshot"), "mode": params.get("mode") or "full", "target": params.get("target")}
    check_name(clone["source"], "source")
    if clone["source"] == params.get("name"):
        raise InvalidInput("name %r must differ from source" % params.get("name"))
    backend.require("clone")
    if clone["mode"] == "linked":
        backend.require("clone.linked")
    if clone["target"]:
        backend.require("clone.target")
    if clone["snapshot"] is not None:
        check_name(clone["snapshot"], "snapshot")
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
        with self._context("read"):
            self.instance = self.instances.get(self.name, runtime=self._wants_runtime(spec))
        if self.instance is not None:
            self._settle_type(spec, self.instance)
        else:
            self._clone(spec, clone)
            if self.instance is None:  # check mode: nothing exists to configure, power or wait for
                return self._result(self._predicted)
        self._update(spec)
        return self._converge(spec)

    def _clone(self, spec, clone):
        with self._context("clone"):
            source = self.instances.get(clone["source"])
            if source is None:
                raise NotFound("source instance %s does not exist" % clone["source"])
        self._settle_type(spec, source)  # a clone has its source's type, and what that type cannot do is refused
        with self._context("clone"):
            origin = clone["source"]
            if clone["snapshot"] is not None:
                names = [item["name"] for item in self.backend.snapshots.list(source)]
                if clone["snapshot"] not in names:
                    raise NotFound("snapshot %s of instance %s does not exist (existing: %s)" % (
                        clone["snapshot"], clone["source"], ", ".join(names) or "none"))
                origin += "/" + clone["snapshot"]
            self.instances.check_clone(source, spec, clone)
            self._predicted = self._predict(source, spec)
            self.tracker.whole(None, diffable(self._predicted))
            action = "clone instance %s from %s%s" % (self.name, origin, " (%s)" % clone["mode"] if clone["mode"] != "full" else "")
            self.creating = not self.check_mode
            self.instance = self._do(action, self.instances.clone, source, spec, clone, self.deadline)
            self.extra["cloned"] = True
            self._warn_shared_disks(source)
            if self.check_mode:
                self._plan_power_for_new(spec)
                return
            self.created = True

    def _warn_shared_disks(self, source):
        shared = self.instances.shared_disks(source)
        if shared:
            self._warn("clone %s mounts the same disks as %s (%s): both write to them; detach them from the clone, or give it copies "
                       "(disk with source.disk), if that is not what you want" % (self.name, source["name"], ", ".join(shared)))

    def _update(self, spec):
        if self.created:
            # A new clone already got the settings in its copy request; what still differs is updated, not re-recorded in the diff.
            before = self.tracker.diff()
            super()._update(spec)
            self.tracker.whole(before["before"] or None, before["after"])
            return
        super()._update(spec)

    def _predict(self, source, spec):
        """What the clone would look like: the source with the requested settings on top."""
        predicted = predicted_instance(self.backend, spec)
        for key in ("type", "cpus", "memory_mib", "disk_gib", "image", "description", "tags", "networks"):
            if predicted.get(key) in (None, []) and source.get(key) not in (None, []):
                predicted[key] = source[key]
        predicted["networks"] = [dict((k, v) for k, v in network.items() if k not in ("addresses", "mac")) for network in predicted["networks"]]
        return predicted

    def _roll_back(self, exc):
        super()._roll_back(exc)
        if self.instance is None:
            self.extra["cloned"] = False
            exc.result["cloned"] = False

    def _known(self):
        known = super()._known()
        return dict(known, cloned=self.extra["cloned"] or (self.creating and "instance" in known))
