# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared instance reconciler: desired vs actual, the plan, check and diff mode, power and waits.

Backend-neutral: everything native goes through the driver (_backend.Backend).
"""

from __future__ import annotations

import fnmatch

from ansible_collections.polyvirt.compute.plugins.module_utils._cloud_init import render_network_config, render_user_data
from ansible_collections.polyvirt.compute.plugins.module_utils._diff import project, prune
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, PolyvirtError, failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._model import instance_result, normalise_mac, positive_int, size_gib, size_mib
from ansible_collections.polyvirt.compute.plugins.module_utils._reconciler import Reconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline

# What each ``state`` does from each current power state: a list of driver power actions.
POWER_PLAN = {
    "started": {"stopped": ["start"], "paused": ["resume"], "error": ["start"]},
    "stopped": {"running": ["stop"], "paused": ["stop"]},
    "paused": {"running": ["pause"]},
    "restarted": {"running": ["restart"], "stopped": ["start"], "paused": ["resume", "restart"], "error": ["start"]},
}
POWER_RESULT = {"start": "running", "resume": "running", "restart": "running", "stop": "stopped", "pause": "paused"}
INFO_FILTERS = ("name", "state", "type", "location", "tags", "image")


def desired_spec(params, backend):
    """Validate and normalise the instance options into the spec drivers consume.

    Every check that needs no API call happens here, so bad input fails before anything changes.
    """
    state = params.get("state") or "present"
    cloud_init = params.get("cloud_init") or {}
    spec = {
        "name": params["name"],
        "state": state,
        "type": params.get("type") or backend.default_type,
        "image": params.get("image"),
        "cpus": positive_int(params.get("cpus"), "cpus"),
        "memory_mib": size_mib(params["memory"], "memory") if params.get("memory") is not None else None,
        "disk_gib": size_gib(params["disk_size"], "disk_size") if params.get("disk_size") is not None else None,
        "flavor": params.get("flavor"),
        "networks": _networks(params.get("networks")),
        "user_data": render_user_data(cloud_init.get("user_data"), params.get("ssh_keys")),
        "network_config": render_network_config(cloud_init.get("network_config")),
        "description": params.get("description"),
        "tags": sorted(set(params["tags"])) if params.get("tags") is not None else None,
        "backend_options": params.get("backend_options") or {},
        "wait_for": params.get("wait_for"),
        "force": bool(params.get("force")),
    }
    if not spec["name"]:
        raise InvalidInput("name must not be empty")
    if state != "absent":
        _require_capabilities(spec, params, backend)
    backend.validate_instance(spec)
    return spec


def _networks(networks):
    if networks is None:
        return None
    result = []
    for index, network in enumerate(networks):
        item = dict(network)
        item["mac"] = normalise_mac(item.get("mac"))
        if item.get("ipv4") and item["ipv4"] != "dhcp" and not _looks_like_ip(item["ipv4"]):
            raise InvalidInput("networks[%d].ipv4 must be an IPv4 address (optionally /prefix) or dhcp, got %r" % (index, item["ipv4"]))
        result.append(item)
    return result


def _looks_like_ip(text):
    address = text.split("/", 1)[0]
    parts = address.split(".")
    return len(parts) == 4 and all(part.isdigit() and 0 <= int(part) <= 255 for part in parts)


def _require_capabilities(spec, params, backend):
    backend.require("instance.container" if spec["type"] == "container" else "instance.vm")
    for option, capability in (("flavor", "instance.flavor"), ("disk_gib", "instance.disk_size"), ("tags", "instance.tags"),
                               ("description", "instance.description")):
        if spec[option] is not None:
            backend.require(capability)
    if spec["state"] == "paused":
        backend.require("instance.paused")
    if spec["user_data"] is not None or spec["network_config"] is not None:
        backend.require("instance.cloud_init")
    for condition in spec["wait_for"] or ():
        if condition != "running":
            backend.require("wait_for." + condition)
    for network in spec["networks"] or ():
        if network.get("ipv4_gateway"):
            backend.require("instance.networks.ipv4_gateway")
        if network.get("nat") is not None:
            backend.require("instance.networks.nat")
    if params.get("ssh_keys"):
        backend.require("instance.ssh_keys")


def predicted_instance(backend, spec):
    """What a new instance would look like: returned by check mode, where nothing is created."""
    state = {"started": "running", "restarted": "running", "paused": "paused"}.get(spec["state"], "stopped")
    return instance_result(spec["name"], backend.name, type=spec["type"], state=state, cpus=spec["cpus"], memory_mib=spec["memory_mib"],
                           disk_gib=spec["disk_gib"], image=spec["image"], description=spec["description"], tags=spec["tags"] or [],
                           networks=prune(spec["networks"] or []))


class InstanceReconciler(Reconciler):
    """Bring one instance to the desired state; ``run()`` returns the module result."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        super().__init__(backend, params, check_mode, diff_mode)
        self.name = params["name"]
        self.created = False
        self.raw = None

    def _context(self, verb):
        return failing_to(verb, "instance", self.name, self.backend.name)

    def _known(self):
        return {"instance": self.backend.describe_instance(self.raw)} if self.raw is not None else {}

    def _run(self):
        with self._context("validate"):
            spec = desired_spec(self.params, self.backend)
        deadline = Deadline(self.params.get("wait_timeout") or 600)
        with self._context("read"):
            self.raw = self.backend.get_instance(self.name)
        if spec["state"] == "absent":
            return self._absent(deadline)
        if self.raw is not None and spec["state"] == "paused" and self.backend.describe_instance(self.raw)["state"] == "stopped":
            raise InvalidInput("Failed to pause instance %s on %s: state=paused needs a running instance and %s is stopped (start it first)" % (
                self.name, self.backend.name, self.name))
        if self.raw is None:
            self._create(spec, deadline)
        else:
            self._update(spec, deadline)
        if self.raw is None:  # check mode: nothing exists to power or wait for
            return self._result(predicted_instance(self.backend, spec))
        return self._converge(spec, deadline)

    def _converge(self, spec, deadline):
        """Power state and waits, then the result: what instance and clone share after create or update."""
        self._power(spec, deadline)
        if self.params.get("wait", True) and not self.check_mode and spec["state"] in ("started", "restarted"):
            self._wait(spec, deadline)
        return self._result(self.backend.describe_instance(self.raw))

    def _result(self, instance):
        return self._finish(instance=instance)

    def _absent(self, deadline):
        if self.raw is None:
            return self._result({})
        before = self.backend.describe_instance(self.raw)
        self.tracker.whole(_diffable(before), None)
        with self._context("delete"):
            self._do("delete instance %s" % self.name, self.backend.delete_instance, self.raw, self.params.get("force"), deadline)
        self.raw = None
        return self._result({})

    def _create(self, spec, deadline):
        with self._context("create"):
            if not spec["image"]:
                raise InvalidInput("image is required to create a new instance")
            self.tracker.whole(None, _diffable(predicted_instance(self.backend, spec)))
            self.raw = self._do("create %s %s from %s" % (spec["type"], self.name, spec["image"]), self.backend.create_instance, spec, deadline)
            if self.check_mode:
                self._plan_power_for_new(spec)
                return
            self.created = True

    def _plan_power_for_new(self, spec):
        for action in {"started": ["start"], "restarted": ["start"], "paused": ["start", "pause"]}.get(spec["state"], []):
            self.tracker.action("%s instance %s" % (action, self.name))

    def _update(self, spec, deadline):
        desired = self.backend.desired_settings(spec)
        current = self.backend.current_settings(self.raw)
        changes = {}
        for key in sorted(desired):
            before = project(current.get(key), desired[key])
            if self.tracker.add(key, before, desired[key]):
                changes[key] = desired[key]
        if spec["user_data"] is not None or spec["network_config"] is not None:
            self._warn_cloud_init(spec, current)
        if not changes:
            return
        with self._context("update"):
            self.backend.check_update(self.raw, changes)
            updated = self._do("update %s of instance %s" % (", ".join(sorted(changes)), self.name), self.backend.update_instance, self.raw, changes, deadline)
            self.raw = updated or self.raw

    def _warn_cloud_init(self, spec, current):
        for key in ("user_data", "network_config"):
            if spec[key] is not None and current.get("cloud_init." + key) not in (None, spec[key]):
                self.extra.setdefault("warnings", []).append(
                    "cloud_init.%s differs from what instance %s was created with; cloud-init only reads it at first boot, so it is left unchanged" % (
                        key, self.name))

    def _power(self, spec, deadline):
        state = spec["state"]
        current = self.backend.describe_instance(self.raw)["state"]
        if self.created:
            actions = {"started": ["start"], "restarted": ["start"], "paused": ["start", "pause"]}.get(state, [])
        else:
            actions = POWER_PLAN.get(state, {}).get(current, [])
        for action in actions:
            if not self.created:
                self.tracker.add("state", current, POWER_RESULT[action])
            with self._context(action):
                try:
                    self.raw = self._do("%s instance %s" % (action, self.name), self.backend.power, self.raw, action, spec["force"], deadline) or self.raw
                except PolyvirtError as exc:
                    if self.created:
                        self._roll_back(exc, deadline)
                    raise
            current = POWER_RESULT[action]

    def _roll_back(self, exc, deadline):
        """A new instance that cannot start is removed again, so a failed task leaves nothing half-made."""
        try:
            self.backend.delete_instance(self.raw, True, deadline)
        except PolyvirtError as cleanup:
            exc.message += " (and removing the new instance again failed: %s)" % cleanup.message
            return
        self.raw = None
        self.tracker.action("remove instance %s again" % self.name)
        exc.message += " (the instance created by this task was removed again)"
        exc.result["instance"] = {}

    def _wait(self, spec, deadline):
        for condition in spec["wait_for"] or ["running"]:
            with self._context("wait for"):
                self.raw, report = self.backend.wait_for(self.name, condition, deadline, self.raw)
            if condition == "cloud_init":
                self.extra["cloud_init"] = report


def _diffable(instance):
    """The part of an instance worth showing in a diff (not the raw backend object)."""
    return dict((key, value) for key, value in instance.items() if key not in ("backend_data",) and value not in (None, [], {}))


def list_instances(backend, name=None, filters=None):
    """The ``instance_info`` result: every instance (or the one named) matching ``filters``."""
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(INFO_FILTERS))
    if unknown:
        raise InvalidInput("filters.%s is not a known filter (use %s)" % (unknown[0], ", ".join(INFO_FILTERS)))
    if name:
        raw = backend.get_instance(name)
        raws = [raw] if raw is not None else []
    else:
        raws = backend.list_instances(filters)
    instances = [backend.describe_instance(raw) for raw in raws]
    return [instance for instance in instances if _matches(instance, filters)]


def _matches(instance, filters):
    for key, wanted in filters.items():
        if key == "tags":
            wanted = wanted if isinstance(wanted, list) else [wanted]
            if not set(wanted) <= set(instance.get("tags") or []):
                return False
        elif key == "name":
            if not fnmatch.fnmatchcase(instance["name"], str(wanted)):
                return False
        elif instance.get(key) != wanted:
            return False
    return True
