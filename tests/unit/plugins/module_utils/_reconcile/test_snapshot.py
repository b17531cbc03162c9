# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared snapshot reconciler, against the shared fake backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.snapshot import SnapshotReconciler, list_snapshots
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils.fake_backend import fake_backend


def backend_with(snapshots=(), exists=True, **kwargs):
    return fake_backend([{"name": "web1", "state": "running", "snapshots": list(snapshots)}] if exists else [], **kwargs)


def params(**overrides):
    base = {"instance": "web1", "name": None, "state": "present", "description": None, "stateful": False, "retain": None, "wait": True,
            "wait_timeout": 5}
    base.update(overrides)
    return base


def run(backend, check_mode=False, **overrides):
    return SnapshotReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run()


def calls(backend):
    return [(call[0].split(".")[1], call[2]) for call in backend.calls]


@pytest.mark.parametrize("existing, overrides, expected, after", [
    ([], {"name": "s1"}, [("create", "s1")], ["s1"]),
    (["s1"], {"name": "s1"}, [], ["s1"]),
    (["s1", "s2", "s3"], {"name": "s4", "retain": 2}, [("create", "s4"), ("delete", "s1"), ("delete", "s2")], ["s3", "s4"]),
    (["s1", "s2", "s3"], {"name": "s3", "retain": 2}, [("delete", "s1")], ["s2", "s3"]),
    (["s1", "s2", "s3"], {"name": "s1", "retain": 2}, [("delete", "s2")], ["s1", "s3"]),
    (["s1", "s2"], {"name": "s2", "retain": 2}, [], ["s1", "s2"]),
    (["s1"], {"name": "s1", "retain": 1}, [], ["s1"]),
    (["s1", "s2"], {"name": "s1", "state": "absent"}, [("delete", "s1")], ["s2"]),
    (["s2"], {"name": "s1", "state": "absent"}, [], ["s2"]),
    (["s1"], {"name": "s1", "state": "restored"}, [("restore", "s1")], ["s1"]),
])
def test_plan_calls_and_result(existing, overrides, expected, after):
    backend = backend_with(existing)
    result = run(backend, **overrides)
    assert calls(backend) == expected
    assert result["changed"] == bool(expected)
    assert [item["name"] for item in result["snapshots"]] == after
    again = run(backend, **overrides)
    if overrides.get("state") != "restored":  # a restore is an action each time; everything else converges
        assert again["changed"] is False


@pytest.mark.parametrize("existing, overrides", [
    ([], {"name": "s1"}),
    (["s1", "s2", "s3"], {"name": "s4", "retain": 1}),
    (["s1"], {"name": "s1", "state": "absent"}),
    (["s1"], {"name": "s1", "state": "restored"}),
])
def test_check_mode_predicts_and_calls_nothing(existing, overrides):
    checked = backend_with(existing)
    planned = run(checked, check_mode=True, **overrides)
    done = run(backend_with(existing), **overrides)
    assert checked.calls == []
    assert planned["changed"] and planned["actions"] == done["actions"]
    assert [item["name"] for item in planned["snapshots"]] == [item["name"] for item in done["snapshots"]]
    assert planned["diff"]["after"].get("snapshots") == done["diff"]["after"].get("snapshots")


def test_the_result_shows_the_snapshot():
    result = run(backend_with(), name="s1")
    assert result["snapshot"]["name"] == "s1" and result["snapshot"]["instance"] == "web1" and result["snapshot"]["backend"] == "fake"
    assert result["snapshot"]["created_at"] is not None
    assert result["diff"] == {"before": {"snapshot": {}, "snapshots": []},
                              "after": {"snapshot": {"name": "s1", "instance": "web1", "backend": "fake", "stateful": False}, "snapshots": ["s1"]}}


def test_retain_diff_shows_the_whole_list_once():
    result = run(backend_with(["s1", "s2", "s3"]), name="s4", retain=2)
    assert result["diff"]["before"]["snapshots"] == ["s1", "s2", "s3"]
    assert result["diff"]["after"]["snapshots"] == ["s3", "s4"]
    assert result["actions"] == ["create snapshot s4 of instance web1", "delete snapshot s1 of instance web1 (retain 2)",
                                 "delete snapshot s2 of instance web1 (retain 2)"]


def test_retain_goes_by_creation_time_not_by_name():
    snapshots = [{"name": "b", "created_at": "2026-01-02T00:00:00Z"}, {"name": "a", "created_at": "2026-01-03T00:00:00Z"},
                 {"name": "c", "created_at": "2026-01-01T00:00:00Z"}]
    backend = backend_with(snapshots)
    run(backend, name="a", retain=2)
    assert calls(backend) == [("delete", "c")]


@pytest.mark.parametrize("exists, existing, overrides, without, error, message", [
    (False, [], {"name": "s1"}, (), NotFound, "Failed to read snapshot s1 of instance web1 on fake: instance web1 does not exist"),
    (True, ["a"], {"name": "s1", "state": "restored"}, (), NotFound, "snapshot s1 of instance web1 does not exist (existing: a)"),
    (True, [], {"name": "s1", "state": "restored"}, (), NotFound, "snapshot s1 of instance web1 does not exist (existing: none)"),
])
def test_missing_objects_fail_before_any_change(exists, existing, overrides, without, error, message):
    backend = backend_with(existing, exists=exists, without=without)
    with pytest.raises(error) as caught:
        run(backend, **overrides)
    assert message in caught.value.message
    assert backend.calls == []
    assert caught.value.result["changed"] is False


@pytest.mark.parametrize("overrides, without, error, message", [
    ({"name": "s1", "retain": 0}, (), InvalidInput, "retain must be a whole number of at least 1, got 0"),
    ({"name": "s1", "stateful": True}, ("snapshot.stateful",), Unsupported,
     "Failed to validate snapshot s1 of instance web1 on fake: stateful snapshots is not supported by the fake backend"),
    ({"name": "s1", "description": "x"}, ("snapshot.description",), Unsupported, "snapshot description is not supported by the fake backend"),
    ({"name": ""}, (), InvalidInput, "name must be a non-empty name, got ''"),
    ({"name": None}, (), InvalidInput, "name must be a non-empty name, got None"),
    ({"name": ".."}, (), InvalidInput, "name '..' is not a valid name: . and .. are path components"),
    ({"name": "."}, (), InvalidInput, "name '.' is not a valid name"),
    ({"name": "a/b"}, (), InvalidInput, "name 'a/b' is not a valid name: it contains '/'"),
    ({"name": "s 1"}, (), InvalidInput, "not a valid fake snapshot name"),
    ({"name": "s1", "instance": "../web1"}, (), InvalidInput, "instance '../web1' is not a valid name"),
])
def test_bad_input_fails_before_any_call(overrides, without, error, message):
    backend = backend_with(["s1"], without=without)
    with pytest.raises(error) as caught:
        run(backend, **overrides)
    assert message in caught.value.message
    assert backend.calls == [] and backend.reads == []
    assert caught.value.result["changed"] is False


def test_unsupported_settings_do_not_stop_a_delete():
    backend = backend_with(["s1"], without=("snapshot.stateful", "snapshot.description"))
    assert run(backend, name="s1", state="absent", stateful=True, description="x")["changed"] is True


def test_a_backend_without_snapshots_refuses_before_any_call():
    backend = fake_backend([{"name": "web1"}], parts=("instances",))
    with pytest.raises(Unsupported) as caught:
        run(backend, name="s1")
    assert caught.value.message == "Failed to validate snapshot s1 of instance web1 on fake: snapshots is not supported by the fake backend"
    assert backend.reads == []
    with pytest.raises(Unsupported):
        list_snapshots(backend, "web1")


def test_absent_of_a_missing_instance_is_no_change():
    backend = backend_with(exists=False)
    assert run(backend, name="s1", state="absent")["changed"] is False


def test_an_existing_snapshot_with_other_settings_is_a_warning_not_a_change():
    backend = backend_with(["s1"])
    result = run(backend, name="s1", stateful=True, description="new")
    assert result["changed"] is False and backend.calls == []
    assert len(result["warnings"]) == 2
    assert "snapshot s1 of instance web1 exists with stateful=False; a snapshot is taken once" in result["warnings"][0]


def test_a_failed_create_reports_no_change():
    backend = backend_with(faults={"snapshots.create": OperationFailed("pool full")})
    with pytest.raises(OperationFailed) as caught:
        run(backend, name="s1")
    assert caught.value.message == "Failed to create snapshot s1 of instance web1 on fake: pool full"
    assert caught.value.result["changed"] is False


def test_info_lists_one_or_all():
    backend = backend_with(["s1", "s2"])
    assert [item["name"] for item in list_snapshots(backend, "web1")] == ["s1", "s2"]
    assert [item["name"] for item in list_snapshots(backend, "web1", "s2")] == ["s2"]
    assert list_snapshots(backend, "web1", "nope") == []
    with pytest.raises(NotFound):
        list_snapshots(backend, "nope")
    assert backend.calls == []
