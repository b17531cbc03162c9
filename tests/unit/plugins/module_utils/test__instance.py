# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared instance reconciler, against a small in-memory backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backend import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, OperationFailed, Unsupported, WaitTimeout
from ansible_collections.polyvirt.compute.plugins.module_utils._instance import InstanceReconciler, list_instances
from ansible_collections.polyvirt.compute.plugins.module_utils._model import instance_result


class MemoryBackend(Backend):
    """Instances as dicts; every mutating call is logged so tests can see what would hit an API."""

    name = "memory"
    default_type = "container"
    capabilities = frozenset(("instance.container", "instance.paused", "instance.tags", "instance.description", "instance.cloud_init",
                              "wait_for.ip"))

    def __init__(self, instances=None, fail_start=False, never_ip=False):
        self.instances = dict(instances or {})
        self.calls = []
        self.fail_start = fail_start
        self.never_ip = never_ip

    def get_instance(self, name):
        raw = self.instances.get(name)
        return dict(raw) if raw else None

    def list_instances(self, filters=None):
        return [dict(raw) for raw in self.instances.values()]

    def describe_instance(self, raw):
        return instance_result(raw["name"], self.name, id=raw["name"], type="container", state=raw["state"], cpus=raw.get("cpus"),
                               memory_mib=raw.get("memory_mib"), tags=raw.get("tags", []))

    def current_settings(self, raw):
        return {"cpus": raw.get("cpus"), "memory_mib": raw.get("memory_mib"), "tags": raw.get("tags", []),
                "cloud_init.user_data": raw.get("user_data")}

    def desired_settings(self, spec):
        return dict((key, spec[key]) for key in ("cpus", "memory_mib", "tags") if spec[key] is not None)

    def create_instance(self, spec, deadline):
        self.calls.append(("create", spec["name"]))
        self.instances[spec["name"]] = {"name": spec["name"], "state": "stopped", "cpus": spec["cpus"], "memory_mib": spec["memory_mib"],
                                        "tags": spec["tags"] or [], "user_data": spec["user_data"]}
        return self.get_instance(spec["name"])

    def update_instance(self, raw, changes, deadline):
        self.calls.append(("update", raw["name"], sorted(changes)))
        self.instances[raw["name"]].update(changes)
        return self.get_instance(raw["name"])

    def power(self, raw, action, force, deadline):
        self.calls.append((action, raw["name"]))
        if action == "start" and self.fail_start:
            raise OperationFailed("no vhost_vsock")
        self.instances[raw["name"]]["state"] = {"start": "running", "resume": "running", "restart": "running", "stop": "stopped",
                                                "pause": "paused"}[action]
        return self.get_instance(raw["name"])

    def delete_instance(self, raw, force, deadline):
        self.calls.append(("delete", raw["name"]))
        del self.instances[raw["name"]]

    def wait_for(self, name, condition, deadline, raw=None):
        if condition == "ip" and self.never_ip:
            raise WaitTimeout("timed out after 1 s waiting for an IP address on instance %s" % name)
        return self.get_instance(name), None


def params(**overrides):
    base = {"name": "web", "state": "started", "image": "debian", "type": None, "cpus": None, "memory": None, "disk_size": None,
            "flavor": None, "networks": None, "ssh_keys": None, "cloud_init": None, "description": None, "tags": None,
            "backend_options": None, "wait_for": None, "force": False, "wait": True, "wait_timeout": 5}
    base.update(overrides)
    return base


def run(backend, check_mode=False, **overrides):
    return InstanceReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run()


def test_check_mode_create_predicts_and_calls_nothing():
    backend = MemoryBackend()
    result = run(backend, check_mode=True, memory="1GiB")
    assert backend.calls == []
    assert result["changed"] is True
    assert result["instance"]["state"] == "running"
    assert result["instance"]["memory_mib"] == 1024
    assert result["actions"] == ["create container web from debian", "start instance web"]
    assert result["diff"]["before"] == {}


def test_create_then_nothing_to_do():
    backend = MemoryBackend()
    first = run(backend, memory=512, tags=["b", "a"])
    assert backend.calls == [("create", "web"), ("start", "web")]
    assert first["instance"]["state"] == "running"
    backend.calls = []
    second = run(backend, memory="512MiB", tags=["a", "b"])
    assert backend.calls == []
    assert second["changed"] is False
    assert second["diff"] == {"before": {}, "after": {}}


def test_update_reports_only_what_differs():
    backend = MemoryBackend({"web": {"name": "web", "state": "running", "cpus": 2, "memory_mib": 256}})
    result = run(backend, cpus=2, memory="0.5GiB")
    assert backend.calls == [("update", "web", ["memory_mib"])]
    assert result["diff"] == {"before": {"memory_mib": 256}, "after": {"memory_mib": 512}}


def test_check_mode_update_calls_nothing():
    backend = MemoryBackend({"web": {"name": "web", "state": "stopped", "memory_mib": 256}})
    result = run(backend, check_mode=True, memory=512)
    assert backend.calls == []
    assert result["actions"] == ["update memory_mib of instance web", "start instance web"]
    assert result["diff"]["after"] == {"memory_mib": 512, "state": "running"}


@pytest.mark.parametrize("current, state, calls", [
    ("stopped", "started", [("start", "web")]),
    ("paused", "started", [("resume", "web")]),
    ("running", "started", []),
    ("running", "stopped", [("stop", "web")]),
    ("paused", "stopped", [("stop", "web")]),
    ("running", "paused", [("pause", "web")]),
    ("running", "restarted", [("restart", "web")]),
    ("stopped", "restarted", [("start", "web")]),
    ("running", "present", []),
])
def test_power_plan(current, state, calls):
    backend = MemoryBackend({"web": {"name": "web", "state": current}})
    result = run(backend, state=state)
    assert backend.calls == calls
    assert result["changed"] is bool(calls)


def test_pausing_a_stopped_instance_is_refused_before_any_change():
    backend = MemoryBackend({"web": {"name": "web", "state": "stopped", "memory_mib": 256}})
    with pytest.raises(InvalidInput) as caught:
        run(backend, state="paused", memory=512)
    assert "state=paused needs a running instance" in str(caught.value)
    assert backend.calls == []


def test_unsupported_features_fail_before_any_call():
    backend = MemoryBackend()
    with pytest.raises(Unsupported) as caught:
        run(backend, flavor="u1.medium")
    assert str(caught.value) == "Failed to validate instance web on memory: flavor is not supported by the memory backend"
    with pytest.raises(Unsupported):
        run(backend, wait_for=["cloud_init"])
    assert backend.calls == []


def test_a_new_instance_that_cannot_start_is_removed_again():
    backend = MemoryBackend(fail_start=True)
    with pytest.raises(OperationFailed) as caught:
        run(backend)
    assert backend.calls == [("create", "web"), ("start", "web"), ("delete", "web")]
    assert "the instance created by this task was removed again" in str(caught.value)
    assert caught.value.result["instance"] == {}
    assert backend.instances == {}


def test_a_wait_timeout_still_returns_what_was_created():
    backend = MemoryBackend(never_ip=True)
    with pytest.raises(WaitTimeout) as caught:
        run(backend, wait_for=["ip"])
    assert caught.value.result["changed"] is True
    assert caught.value.result["instance"]["name"] == "web"
    assert str(caught.value).startswith("Failed to wait for instance web on memory: timed out")


def test_no_waiting_when_wait_is_false():
    backend = MemoryBackend(never_ip=True)
    assert run(backend, wait_for=["ip"], wait=False)["instance"]["state"] == "running"


def test_absent_in_check_mode_and_for_real():
    backend = MemoryBackend({"web": {"name": "web", "state": "running"}})
    check = run(backend, check_mode=True, state="absent")
    assert backend.calls == [] and check["changed"] is True
    real = run(backend, state="absent")
    assert backend.calls == [("delete", "web")] and real["instance"] == {}
    again = run(backend, state="absent")
    assert again["changed"] is False


def test_image_is_needed_to_create():
    with pytest.raises(InvalidInput) as caught:
        run(MemoryBackend(), image=None)
    assert "image is required to create a new instance" in str(caught.value)


def test_changed_user_data_is_a_warning_not_a_change():
    backend = MemoryBackend({"web": {"name": "web", "state": "running", "user_data": "#cloud-config\n{}\n"}})
    result = run(backend, cloud_init={"user_data": {"runcmd": ["true"]}, "network_config": None})
    assert result["changed"] is False
    assert "only reads it at first boot" in result["warnings"][0]


def names(instances):
    return sorted(instance["name"] for instance in instances)


def test_info_filters():
    backend = MemoryBackend({
        "web1": {"name": "web1", "state": "running", "tags": ["web"]},
        "web2": {"name": "web2", "state": "stopped", "tags": ["web", "old"]},
        "db": {"name": "db", "state": "running", "tags": []},
    })
    assert names(list_instances(backend, filters={"tags": "web"})) == ["web1", "web2"]
    assert names(list_instances(backend, filters={"state": "running", "name": "web*"})) == ["web1"]
    assert names(list_instances(backend, name="db")) == ["db"]
    assert list_instances(backend, name="nope") == []
    with pytest.raises(InvalidInput):
        list_instances(backend, filters={"colour": "blue"})
