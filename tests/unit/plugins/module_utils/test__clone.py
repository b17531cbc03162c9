# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared clone reconciler, against a small in-memory backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backend import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._clone import CloneReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import instance_result
from ansible_collections.polyvirt.compute.plugins.module_utils._resources import snapshot_result


class CloneBackend(Backend):
    """Instances as dicts (with snapshot names); every mutating call is logged."""

    name = "memory"
    default_type = "container"
    capabilities = frozenset(("instance.container", "clone", "snapshot", "wait_for.ip"))

    def __init__(self, instances, fail_start=False):
        self.instances = dict((raw["name"], raw) for raw in instances)
        self.calls = []
        self.fail_start = fail_start

    def get_instance(self, name):
        raw = self.instances.get(name)
        return dict(raw) if raw else None

    def describe_instance(self, raw):
        return instance_result(raw["name"], self.name, type="container", state=raw["state"], cpus=raw.get("cpus"), memory_mib=raw.get("memory_mib"))

    def current_settings(self, raw):
        return {"cpus": raw.get("cpus"), "memory_mib": raw.get("memory_mib")}

    def desired_settings(self, spec):
        return dict((key, spec[key]) for key in ("cpus", "memory_mib") if spec[key] is not None)

    def list_snapshots(self, raw):
        return [snapshot_result(name, raw["name"], self.name) for name in raw.get("snapshots", [])]

    def clone_instance(self, source_raw, spec, clone, deadline):
        self.calls.append(("clone", source_raw["name"], spec["name"], clone["snapshot"]))
        raw = dict(source_raw, name=spec["name"], state="stopped", snapshots=[])
        raw.update(self.desired_settings(spec))
        self.instances[spec["name"]] = raw
        return self.get_instance(spec["name"])

    def update_instance(self, raw, changes, deadline):
        self.calls.append(("update", raw["name"], sorted(changes)))
        self.instances[raw["name"]].update(changes)
        return self.get_instance(raw["name"])

    def power(self, raw, action, force, deadline):
        self.calls.append((action, raw["name"]))
        if self.fail_start:
            raise OperationFailed("cannot start")
        self.instances[raw["name"]]["state"] = "running" if action == "start" else "stopped"
        return self.get_instance(raw["name"])

    def delete_instance(self, raw, force, deadline):
        self.calls.append(("delete", raw["name"]))
        del self.instances[raw["name"]]

    def wait_for(self, name, condition, deadline, raw=None):
        return self.get_instance(name), None


SOURCE = {"name": "golden", "state": "running", "cpus": 2, "memory_mib": 1024, "snapshots": ["s1"]}


def params(**overrides):
    base = {"source": "golden", "name": "web", "snapshot": None, "mode": "full", "target": None, "state": "started", "cpus": None,
            "memory": None, "disk_size": None, "flavor": None, "networks": None, "ssh_keys": None, "cloud_init": None, "description": None,
            "tags": None, "backend_options": None, "wait_for": None, "force": False, "wait": True, "wait_timeout": 5}
    base.update(overrides)
    return base


def run(backend, check_mode=False, **overrides):
    return CloneReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run()


def test_clone_applies_settings_and_starts_in_one_task():
    backend = CloneBackend([SOURCE])
    result = run(backend, memory="512MiB")
    assert backend.calls == [("clone", "golden", "web", None), ("start", "web")]
    assert result["cloned"] is True and result["changed"] is True
    assert result["instance"]["memory_mib"] == 512 and result["instance"]["cpus"] == 2
    assert result["diff"]["before"] == {} and result["diff"]["after"]["memory_mib"] == 512


def test_check_mode_predicts_from_the_source_and_calls_nothing():
    backend = CloneBackend([SOURCE])
    result = run(backend, check_mode=True, memory="512MiB", snapshot="s1")
    assert backend.calls == []
    assert result["cloned"] is True
    assert result["actions"] == ["clone instance web from golden/s1", "start instance web"]
    assert result["instance"]["cpus"] == 2 and result["instance"]["memory_mib"] == 512 and result["instance"]["state"] == "running"


@pytest.mark.parametrize("overrides, calls, changed", [
    ({}, [], False),
    ({"memory": "2GiB"}, [("update", "web", ["memory_mib"])], True),
    ({"state": "stopped"}, [("stop", "web")], True),
])
def test_an_existing_clone_is_reconciled_never_cloned_again(overrides, calls, changed):
    backend = CloneBackend([SOURCE, dict(SOURCE, name="web")])
    result = run(backend, **overrides)
    assert backend.calls == calls
    assert result["cloned"] is False and result["changed"] is changed


def test_an_existing_clone_needs_no_source():
    backend = CloneBackend([dict(SOURCE, name="web")])
    assert run(backend)["changed"] is False


@pytest.mark.parametrize("overrides, error, message", [
    ({"source": "nope"}, NotFound, "Failed to clone instance web on memory: source instance nope does not exist"),
    ({"snapshot": "s9"}, NotFound, "snapshot s9 of instance golden does not exist (existing: s1)"),
    ({"mode": "linked"}, Unsupported, "mode=linked clones is not supported by the memory backend"),
    ({"target": "node2"}, Unsupported, "clone target is not supported by the memory backend"),
    ({"name": "golden"}, InvalidInput, "name 'golden' must differ from source"),
    ({"memory": "lots"}, InvalidInput, "memory must be a size"),
])
def test_bad_input_fails_before_any_call(overrides, error, message):
    backend = CloneBackend([SOURCE])
    with pytest.raises(error) as caught:
        run(backend, **overrides)
    assert message in caught.value.message
    assert backend.calls == []
    assert caught.value.result["cloned"] is False


def test_a_clone_that_cannot_start_is_removed_again():
    backend = CloneBackend([SOURCE], fail_start=True)
    with pytest.raises(OperationFailed) as caught:
        run(backend)
    assert backend.calls == [("clone", "golden", "web", None), ("start", "web"), ("delete", "web")]
    assert "web" not in backend.instances
    assert caught.value.result["cloned"] is False and caught.value.result["instance"] == {}
    assert "removed again" in caught.value.message
