# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared instance reconciler: desired vs actual, the plan, check and diff mode, restarts, power and waits.

Backend-neutral: everything native goes through the backend's ``instances`` part (_backends.base.Instances).
"""

from __future__ import annotations

import fnmatch

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import ON_RESTART, WHILE_STOPPED
from ansible_collections.polyvirt.compute.plugins.module_utils._cloud_init import render_network_config, render_user_data
from ansible_collections.polyvirt.compute.plugins.module_utils._diff import project, prune
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, PolyvirtError, failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._model import (
    check_name, diffable, instance_result, normalise_mac, positive_int, size_gib, size_mib,
)
from ansible_collections.polyvirt.compute.plugins.module_utils._net import address, interface_address
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.base import Reconciler

# What each ``state`` does from each current power state: a list of driver power actions.
POWER_PLAN = {
    "started": {"stopped": ["start"], "paused": ["resume"], "error": ["start"]},
    "stopped": {"running": ["stop"], "paused": ["stop"], "pending": ["stop"]},
    "paused": {"running": ["pause"]},
    "restarted": {"running": ["restart"], "stopped": ["start"], "paused": ["resume", "restart"], "error": ["start"]},
}
POWER_RESULT = {"start": "running", "resume": "running", "restart": "running", "stop": "stopped", "pause": "paused"}
NEW_INSTANCE_POWER = {"started": ["start"], "restarted": ["start"], "paused": ["start", "pause"]}
INFO_FILTERS = ("name", "state", "type", "location", "tags", "image")


def desired_spec(params, backend):
    """Validate and normalise the instance options into the spec drivers consume.

    Every check that needs no API call happens here, so bad input fails before anything changes.
    """
    state = params.get("state") or "present"
    cloud_init = params.get("cloud_init") or {}
    spec = {
        "name": check_name(params.get("name"), "name"),
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
        "tags": _tags(params.get("tags")),
        "backend_options": params.get("backend_options") or {},
        "wait_for": params.get("wait_for"),
        "force": bool(params.get("force")),
        "allow_restart": bool(params.get("allow_restart")),
    }
    if state != "absent":
        require_capabilities(spec, params, backend, None)
    backend.instances.validate(spec)
    return spec


def _networks(networks):
    if networks is None:
        return None
    result = []
    for index, network in enumerate(networks):
        item = dict(network)
        item["mac"] = normalise_mac(item.get("mac"))
        option = "networks[%d]." % index
        if item.get("ipv4"):
            interface_address(item["ipv4"], option + "ipv4", 4)
        if item.get("ipv6"):
            interface_address(item["ipv6"], option + "ipv6", 6, keywords=("dhcp", "slaac"))
        if item.get("ipv4_gateway"):
            address(item["ipv4_gateway"], option + "ipv4_gateway", 4)
        result.append(item)
    return result


def _tags(tags):
    if tags is None:
        return None
    for index, tag in enumerate(tags):
        if not tag or not tag.strip():
            raise InvalidInput("tags[%d] must not be empty, got %r" % (index, tag))
    return sorted(set(tags))


def require_capabilities(spec, params, backend, instance_type):
    """Refuse what the backend cannot do; ``instance_type`` None checks what any of its types can."""
    def need(capability):
        backend.require(capability, instance_type)

    need("instance.container" if spec["type"] == "container" else "instance.vm")
    for option, capability in (("flavor", "instance.flavor"), ("disk_gib", "instance.disk_size"), ("tags", "instance.tags"),
                               ("description", "instance.description")):
        if spec[option] is not None:
            need(capability)
    if spec["state"] == "paused":
        need("instance.paused")
    cloud_init = params.get("cloud_init") or {}
    if params.get("ssh_keys"):  # before cloud_init: ssh_keys alone also reach the driver as user-data
        need("instance.ssh_keys")
    if cloud_init.get("user_data") is not None or cloud_init.get("network_config") is not None:
        need("instance.cloud_init")
    for condition in spec["wait_for"] or ():
        if condition != "running":
            need("wait_for." + condition)
    for network in spec["networks"] or ():
        if network.get("ipv4_gateway"):
            need("instance.networks.ipv4_gateway")
        if network.get("nat") is not None:
            need("instance.networks.nat")


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
        self.instances = backend.instances
        self.name = params.get("name")
        self.created = False
        self.creating = False  # a create request was sent: on failure, look for what it made
        self.instance = None
        self.restart_required = False
        self.power_state = None  # the instance's power state after what this task did (or would do, in check mode)
        self._resume_to = None  # stopped by this task to apply a change: the state to bring it back to

    def _context(self, verb):
        return failing_to(verb, "instance", self.name, self.backend.name)

    def _known(self):
        if self.instance is None and self.creating:
            try:  # the create failed or timed out after the platform accepted it: report what exists
                self.instance = self.instances.get(self.name)
            except PolyvirtError:
                pass
            if self.instance is not None:
                self.tracker.action("create instance %s (then failed)" % self.name)
        return {"instance": self.instance} if self.instance is not None else {}

    def _settle_type(self, spec, existing):
        """``type`` is creation-only: an existing instance (or a clone's source) decides it, and what its type cannot do is refused."""
        with self._context("validate"):
            if existing is not None:
                if self.params.get("type") and self.params["type"] != existing["type"]:
                    raise InvalidInput("type=%s differs from %s %s, which is a %s; the type is chosen at creation" % (
                        self.params["type"], "instance" if existing["name"] == self.name else "source", existing["name"], existing["type"]))
                spec["type"] = existing["type"]
            require_capabilities(spec, self.params, self.backend, spec["type"])

    def _wants_runtime(self, spec):
        return "ip" in (spec["wait_for"] or ()) and spec["state"] in ("started", "restarted")

    def _run(self):
        with self._context("validate"):
            spec = desired_spec(self.params, self.backend)
        with self._context("read"):
            self.instance = self.instances.get(self.name, runtime=self._wants_runtime(spec))
        if spec["state"] == "absent":
            return self._absent()
        self._settle_type(spec, self.instance)
        if self.instance is not None and spec["state"] == "paused" and self.instance["state"] == "stopped":
            raise InvalidInput("Failed to pause instance %s on %s: state=paused needs a running instance and %s is stopped (start it first)" % (
                self.name, self.backend.name, self.name))
        if self.instance is None:
            self._create(spec)
        else:
            self._update(spec)
        if self.instance is None:  # check mode: nothing exists to power or wait for
            return self._result(predicted_instance(self.backend, spec))
        return self._converge(spec)

    def _converge(self, spec):
        """Power state and waits, then the result: what instance and clone share after create or update."""
        if self.power_state is None:
            self.power_state = self.instance["state"]
        self._power(spec)
        if self.params.get("wait", True) and not self.check_mode and spec["state"] in ("started", "restarted"):
            self._wait(spec)
        return self._result(self.instance)

    def _result(self, instance):
        return self._finish(instance=instance, restart_required=self.restart_required)

    def _absent(self):
        if self.instance is None:
            return self._result({})
        self.tracker.whole(diffable(self.instance), None)
        with self._context("delete"):
            self._do("delete instance %s" % self.name, self.instances.delete, self.instance, self.params.get("force"), self.deadline)
        self.instance = None
        return self._result({})

    def _create(self, spec):
        with self._context("create"):
            if not spec["image"]:
                raise InvalidInput("image is required to create a new instance")
            self.instances.check_create(spec)
            self.tracker.whole(None, diffable(predicted_instance(self.backend, spec)))
            if self.check_mode:
                self.tracker.action("create %s %s from %s" % (spec["type"], self.name, spec["image"]))
                self._plan_power_for_new(spec)
                return
            self.creating = True
            self.power_state = "stopped"
            try:
                self.instance = self.instances.create(spec, self.deadline)
            except Conflict:
                # Another task created it at the same moment: converge on that one instead of failing.
                self.instance = self.instances.get(self.name, runtime=self._wants_runtime(spec))
                if self.instance is None:
                    raise
                self.creating = False
                self.power_state = self.instance["state"]
                self.tracker.whole(None, None)
                self._update(spec)
                return
            self.tracker.action("create %s %s from %s" % (spec["type"], self.name, spec["image"]))
            self.created = True

    def _plan_power_for_new(self, spec):
        for action in NEW_INSTANCE_POWER.get(spec["state"], []):
            self.tracker.action("%s instance %s" % (action, self.name))

    def _changes(self, spec):
        desired = self.instances.desired(spec)
        current = self.instances.settings(self.instance)
        changes = {}
        for key in sorted(desired):
            before = project(current.get(key), desired[key])
            if self.tracker.add(key, before, desired[key]):
                changes[key] = desired[key]
        if spec["user_data"] is not None or spec["network_config"] is not None:
            self._warn_cloud_init(spec, current)
        return changes

    def _update(self, spec):
        self.power_state = self.instance["state"]
        changes = self._changes(spec)
        self.restart_required = bool(self.instance.get("restart_required"))
        if not changes:
            if self.restart_required and spec["allow_restart"] and self.instance["state"] in ("running", "paused") and \
                    spec["state"] not in ("stopped", "restarted"):
                # An earlier task stored changes that wait for a restart; allow_restart lets this one apply them.
                self._power_action("restart", spec["force"], " (so that the changes waiting for its restart take effect)")
            return
        with self._context("update"):
            self.instances.check_update(self.instance, changes)
            effects = self.instances.effects(self.instance, changes)
            offline = sorted(key for key, effect in effects.items() if effect == WHILE_STOPPED)
            later = sorted(key for key, effect in effects.items() if effect == ON_RESTART)
            running = self.instance["state"] in ("running", "paused")
            if offline and running and spec["state"] != "stopped" and not spec["allow_restart"]:
                raise InvalidInput("%s cannot change while instance %s runs on the %s backend; set allow_restart: true to let the task stop it, "
                                   "apply the change and start it again, or stop it first (state: stopped)" % (
                                       ", ".join(offline), self.name, self.backend.name))
            if offline and running:
                if spec["state"] == "stopped":
                    self.tracker.add("state", self.power_state, "stopped")
                else:  # bring it back afterwards to what was asked, or for present to what it was
                    self._resume_to = spec["state"] if spec["state"] != "present" else {"paused": "paused"}.get(self.power_state, "started")
                self._power_action("stop", spec["force"], " (so that %s can change)" % ", ".join(offline))
            self.instance = self._do("update %s of instance %s" % (", ".join(sorted(changes)), self.name), self.instances.update, self.instance,
                                     changes, self.deadline) or self.instance
        if later and running and not offline and spec["state"] not in ("stopped", "restarted"):
            if spec["allow_restart"]:
                self._power_action("restart", spec["force"], " (so that %s take effect)" % ", ".join(later))
            else:
                self.restart_required = True
                note = self.instance.get("_restart_note")  # what the backend adds (Hikube: its release shows it until then)
                self._warn("%s of instance %s take effect at its next restart (set allow_restart: true to restart it now)%s" % (
                    ", ".join(later), self.name, "; " + note if note else ""))

    def _warn_cloud_init(self, spec, current):
        for key in ("user_data", "network_config"):
            if spec[key] is not None and current.get("cloud_init." + key) not in (None, spec[key]):
                self._warn("cloud_init.%s differs from what instance %s was created with; cloud-init only reads it at first boot, so it is left "
                           "unchanged" % (key, self.name))

    def _power_action(self, action, force, reason=""):
        with self._context(action):
            self.instance = self._do("%s instance %s%s" % (action, self.name, reason), self.instances.power, self.instance, action, force,
                                     self.deadline) or self.instance
        self.power_state = POWER_RESULT[action]
        if action in ("start", "restart"):  # a fresh boot applies what was pending
            self.restart_required = False if self.check_mode else bool(self.instance.get("restart_required"))

    def _power(self, spec):
        state = spec["state"]
        if self.created:
            actions = NEW_INSTANCE_POWER.get(state, [])
        elif self._resume_to:
            actions = NEW_INSTANCE_POWER.get(self._resume_to, [])  # from the stop this task made for an update
        else:
            actions = POWER_PLAN.get(state, {}).get(self.power_state, [])
        for action in actions:
            if not self.created and not self._resume_to:  # a stop and start around an update leave the state as it was
                self.tracker.add("state", self.power_state, POWER_RESULT[action])
            try:
                self._power_action(action, spec["force"])
            except PolyvirtError as exc:
                if self.created:
                    self._roll_back(exc)
                raise

    def _roll_back(self, exc):
        """A new instance that cannot start is removed again, so a failed task leaves nothing half-made."""
        try:
            self.instances.delete(self.instance, True, self.deadline)
        except PolyvirtError as cleanup:
            exc.message += " (and removing the new instance again failed: %s)" % cleanup.message
            return
        self.instance = None
        self.creating = False
        self.tracker.action("remove instance %s again" % self.name)
        exc.message += " (the instance created by this task was removed again)"
        exc.result["instance"] = {}

    def _wait(self, spec):
        for condition in spec["wait_for"] or ["running"]:
            with self._context("wait for"):
                self.instance, report = self.instances.wait_for(self.instance, condition, self.deadline)
            if condition == "cloud_init":
                self.extra["cloud_init"] = report
            note = self.instance.get("_restart_note")
            if self.instance.get("restart_required") and note and not self.restart_required:
                # the wait found the instance running an older configuration than it was given (Hikube: KubeVirt's RestartRequired)
                self.restart_required = True
                self._warn("instance %s runs without a change it takes at its next restart (state: restarted applies it); %s" % (
                    self.name, note))


def list_instances(backend, name=None, filters=None):
    """The ``instance_info`` result: every instance (or the one named) matching ``filters``."""
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(INFO_FILTERS))
    if unknown:
        raise InvalidInput("filters.%s is not a known filter (use %s)" % (unknown[0], ", ".join(INFO_FILTERS)))
    for key, wanted in filters.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or not all(isinstance(value, str) for value in values):
            raise InvalidInput("filters.%s must be a string or a list of strings, got %r" % (key, wanted))
    if name:
        found = backend.instances.get(name, runtime=True)
        instances = [found] if found is not None else []
    else:
        instances = backend.instances.list(filters)
    return [instance for instance in instances if _matches(instance, filters)]


def _matches(instance, filters):
    """Every filter holds; a list means any of its values (tags: all of them)."""
    for key, wanted in filters.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if key == "tags":
            if not set(values) <= set(instance.get("tags") or []):
                return False
        elif key == "name":
            if not any(fnmatch.fnmatchcase(instance["name"], value) for value in values):
                return False
        elif instance.get(key) not in values:
            return False
    return True
