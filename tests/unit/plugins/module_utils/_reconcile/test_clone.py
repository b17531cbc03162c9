# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared clone reconciler, against the shared fake backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_SETTINGS
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, OperationFailed, Unsupported, WaitTimeout
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.clone import CloneReconciler
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils.fake_backend import fake_backend

SOURCE = {"name": "golden", "state": "running", "cpus": 2, "memory_mib": 1024, "snapshots": ["s1"], "image": "debian"}


def params(**overrides):
    """What the clone module passes: its options and the instance settings, unset ones None."""
    base = dict((key, spec.get("default")) for key, spec in INSTANCE_SETTINGS.items())
    base.update({"source": "golden", "name": "web", "snapshot": None, "mode": "full", "target": None, "state": "started", "wait": True,
                 "wait_timeout": 5})
    base.update(overrides)
    return base


def run(backend, check_mode=False, **overrides):
    return CloneReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run()


def fails(backend, error, **overrides):
    with pytest.raises(error) as caught:
        run(backend, **overrides)
    return caught.value


def test_clone_applies_settings_and_starts_in_one_task():
    backend = fake_backend([SOURCE])
    result = run(backend, memory="512MiB")
    assert backend.calls == [("instances.clone", "golden", "web", None), ("instances.power", "web", "start")]
    assert result["cloned"] is True and result["changed"] is True
    assert result["instance"]["memory_mib"] == 512 and result["instance"]["cpus"] == 2
    assert result["diff"]["before"] == {} and result["diff"]["after"]["memory_mib"] == 512
    assert result["actions"] == ["clone instance web from golden", "start instance web"]


def test_check_mode_predicts_from_the_source_and_calls_nothing():
    backend = fake_backend([SOURCE])
    result = run(backend, check_mode=True, memory="512MiB", snapshot="s1")
    assert backend.calls == []
    assert result["cloned"] is True
    assert result["actions"] == ["clone instance web from golden/s1", "start instance web"]
    assert result["instance"]["cpus"] == 2 and result["instance"]["memory_mib"] == 512 and result["instance"]["state"] == "running"


@pytest.mark.parametrize("overrides", [{}, {"memory": "512MiB", "snapshot": "s1"}, {"state": "stopped"}, {"state": "present", "tags": ["x"]}])
def test_check_mode_predicts_the_same_actions_and_diff(overrides):
    checked = fake_backend([SOURCE])
    planned = run(checked, check_mode=True, **overrides)
    real = run(fake_backend([SOURCE]), **overrides)
    assert checked.calls == []
    assert (planned["changed"], planned["cloned"], planned["actions"]) == (real["changed"], real["cloned"], real["actions"])
    assert planned["diff"] == real["diff"]


def test_check_mode_predicts_the_type_of_the_source():
    source = dict(SOURCE, type="vm")
    planned = run(fake_backend([source], default_type="container"), check_mode=True)
    real = run(fake_backend([source], default_type="container"))
    assert real["instance"]["type"] == "vm"
    assert planned["instance"]["type"] == "vm"
    assert planned["diff"] == real["diff"]


@pytest.mark.parametrize("overrides, calls, changed", [
    ({}, [], False),
    ({"memory": "2GiB"}, [("instances.update", "web", ["memory_mib"])], True),
    ({"state": "stopped"}, [("instances.power", "web", "stop")], True),
])
def test_an_existing_clone_is_reconciled_never_cloned_again(overrides, calls, changed):
    backend = fake_backend([SOURCE, dict(SOURCE, name="web")])
    result = run(backend, **overrides)
    assert backend.calls == calls
    assert result["cloned"] is False and result["changed"] is changed


def test_an_existing_clone_needs_no_source():
    backend = fake_backend([dict(SOURCE, name="web")])
    assert run(backend)["changed"] is False
    assert backend.calls == []


@pytest.mark.parametrize("overrides, without, error, message", [
    ({"source": "nope"}, (), NotFound, "Failed to clone instance web on fake: source instance nope does not exist"),
    ({"snapshot": "s9"}, (), NotFound, "snapshot s9 of instance golden does not exist (existing: s1)"),
    ({"mode": "linked"}, ("clone.linked",), Unsupported, "Failed to validate instance web on fake: mode=linked clones is not supported by the fake backend"),
    ({"target": "node2"}, ("clone.target",), Unsupported, "clone target is not supported by the fake backend"),
    ({}, ("clone",), Unsupported, "Failed to validate instance web on fake: clone is not supported by the fake backend"),
    ({"name": "golden"}, (), InvalidInput, "name 'golden' must differ from source"),
    ({"memory": "lots"}, (), InvalidInput, "memory must be a size"),
    ({"source": ".."}, (), InvalidInput, "source '..' is not a valid name"),
    ({"snapshot": "a/b"}, (), InvalidInput, "snapshot 'a/b' is not a valid name"),
    ({"tags": ["x"]}, ("instance.tags",), Unsupported, "tags is not supported by the fake backend"),
])
def test_bad_input_fails_before_any_call(overrides, without, error, message):
    backend = fake_backend([SOURCE], without=without)
    caught = fails(backend, error, **overrides)
    assert message in caught.message
    assert backend.calls == []
    assert caught.result["cloned"] is False and caught.result["changed"] is False


def test_a_clone_from_a_snapshot_needs_the_snapshots_part():
    backend = fake_backend([SOURCE], parts=("instances",))
    caught = fails(backend, Unsupported, snapshot="s1")
    assert caught.message == "Failed to validate instance web on fake: snapshots is not supported by the fake backend"
    assert backend.calls == [] and backend.reads == []


def test_a_feature_the_sources_type_lacks_is_refused_before_any_call():
    backend = fake_backend([dict(SOURCE, type="container")])
    caught = fails(backend, Unsupported, cloud_init={"user_data": {"runcmd": ["true"]}, "network_config": None})
    assert "cloud_init is not supported by the fake backend for type=container" in caught.message
    assert backend.calls == []


def test_a_clone_that_cannot_start_is_removed_again():
    backend = fake_backend([SOURCE], fail_start=True)
    caught = fails(backend, OperationFailed)
    assert backend.calls == [("instances.clone", "golden", "web", None), ("instances.power", "web", "start"), ("instances.delete", "web")]
    assert "web" not in backend.world
    assert caught.result["cloned"] is False and caught.result["instance"] == {}
    assert "removed again" in caught.message


def test_a_clone_whose_wait_times_out_reports_the_clone():
    backend = fake_backend([SOURCE], never_ip=True)
    caught = fails(backend, WaitTimeout, wait_for=["ip"])
    assert caught.result["cloned"] is True and caught.result["changed"] is True
    assert caught.result["instance"]["name"] == "web" and "_native" not in caught.result["instance"]


def test_a_timeout_inside_the_copy_reports_the_clone_that_exists():
    backend = fake_backend([SOURCE], late_faults={"instances.clone": WaitTimeout("timed out after 5 s waiting for the copy")})
    caught = fails(backend, WaitTimeout)
    assert caught.message == "Failed to clone instance web on fake: timed out after 5 s waiting for the copy"
    assert caught.result["cloned"] is True and caught.result["changed"] is True
    assert caught.result["instance"]["name"] == "web"


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_clone_of_an_instance_with_shared_disks_warns(check_mode):
    backend = fake_backend([dict(SOURCE, shared_disks=["pool0/data"])])
    result = run(backend, check_mode=check_mode)
    assert result["warnings"] == ["clone web mounts the same disks as golden (pool0/data): both write to them; detach them from the clone, "
                                  "or give it copies (disk with source.disk), if that is not what you want"]


def test_a_clone_without_shared_disks_does_not_warn():
    assert "warnings" not in run(fake_backend([SOURCE]))
