# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared snapshot reconciler, against a small in-memory backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backend import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._resources import snapshot_result, to_prune
from ansible_collections.polyvirt.compute.plugins.module_utils._snapshot import SnapshotReconciler, list_snapshots


class SnapshotBackend(Backend):
    """One instance with a list of snapshot names; mutating calls are logged."""

    name = "memory"
    capabilities = frozenset(("snapshot",))

    def __init__(self, snapshots=(), exists=True):
        self.snapshots = list(snapshots)
        self.exists = exists
        self.calls = []

    def get_instance(self, name):
        return {"name": name, "snapshots": list(self.snapshots)} if self.exists else None

    def list_snapshots(self, raw):
        return [snapshot_result(name, raw["name"], self.name, created_at="2026-01-01T00:00:%02dZ" % index)
                for index, name in enumerate(raw["snapshots"])]

    def create_snapshot(self, raw, name, stateful, description, deadline):
        self.calls.append(("create", name))
        self.snapshots.append(name)
        return self.get_instance(raw["name"])

    def delete_snapshot(self, raw, name, deadline):
        self.calls.append(("delete", name))
        self.snapshots.remove(name)

    def restore_snapshot(self, raw, name, deadline):
        self.calls.append(("restore", name))


def run(backend, check_mode=False, **params):
    params.setdefault("instance", "web1")
    params.setdefault("state", "present")
    return SnapshotReconciler(backend, params, check_mode=check_mode, diff_mode=True).run()


@pytest.mark.parametrize("existing, params, calls, after", [
    ([], {"name": "s1"}, [("create", "s1")], ["s1"]),
    (["s1"], {"name": "s1"}, [], ["s1"]),
    (["s1", "s2", "s3"], {"name": "s4", "retain": 2}, [("create", "s4"), ("delete", "s1"), ("delete", "s2")], ["s3", "s4"]),
    (["s1", "s2", "s3"], {"name": "s3", "retain": 2}, [("delete", "s1")], ["s2", "s3"]),
    (["s1", "s2"], {"name": "s2", "retain": 2}, [], ["s1", "s2"]),
    (["s1"], {"name": "s1", "retain": 1}, [], ["s1"]),
    (["s1", "s2"], {"name": "s1", "state": "absent"}, [("delete", "s1")], ["s2"]),
    (["s2"], {"name": "s1", "state": "absent"}, [], ["s2"]),
    (["s1"], {"name": "s1", "state": "restored"}, [("restore", "s1")], ["s1"]),
])
def test_plan_calls_and_result(existing, params, calls, after):
    backend = SnapshotBackend(existing)
    result = run(backend, **params)
    assert backend.calls == calls
    assert result["changed"] == bool(calls)
    assert [item["name"] for item in result["snapshots"]] == after


@pytest.mark.parametrize("existing, params", [
    ([], {"name": "s1"}),
    (["s1", "s2", "s3"], {"name": "s4", "retain": 1}),
    (["s1"], {"name": "s1", "state": "absent"}),
    (["s1"], {"name": "s1", "state": "restored"}),
])
def test_check_mode_predicts_and_calls_nothing(existing, params):
    planned = run(SnapshotBackend(existing), check_mode=True, **params)
    backend = SnapshotBackend(existing)
    done = run(backend, **params)
    assert planned["changed"] and planned["actions"] == done["actions"]
    assert [item["name"] for item in planned["snapshots"]] == [item["name"] for item in done["snapshots"]]
    assert planned["diff"]["after"].get("snapshots") == done["diff"]["after"].get("snapshots")


def test_retain_diff_shows_the_whole_list_once():
    result = run(SnapshotBackend(["s1", "s2", "s3"]), name="s4", retain=2)
    assert result["diff"]["before"]["snapshots"] == ["s1", "s2", "s3"]
    assert result["diff"]["after"]["snapshots"] == ["s3", "s4"]


@pytest.mark.parametrize("backend, params, error, message", [
    (SnapshotBackend(exists=False), {"name": "s1"}, NotFound, "Failed to create snapshot s1 of instance web1 on memory: instance web1 does not exist"),
    (SnapshotBackend(["a"]), {"name": "s1", "state": "restored"}, NotFound, "snapshot s1 of instance web1 does not exist (existing: a)"),
    (SnapshotBackend(), {"name": "s1", "retain": 0}, InvalidInput, "retain must be a whole number of at least 1, got 0"),
    (SnapshotBackend(), {"name": "s1", "stateful": True}, Unsupported, "stateful snapshots is not supported by the memory backend"),
    (SnapshotBackend(), {"name": "s1", "description": "x"}, Unsupported, "snapshot description is not supported by the memory backend"),
    (SnapshotBackend(), {"name": ""}, InvalidInput, "name must not be empty"),
])
def test_bad_input_fails_before_any_call(backend, params, error, message):
    with pytest.raises(error) as caught:
        run(backend, **params)
    assert message in caught.value.message
    assert backend.calls == []
    assert caught.value.result["changed"] is False


def test_absent_of_a_missing_instance_is_no_change():
    assert run(SnapshotBackend(exists=False), name="s1", state="absent")["changed"] is False


def test_info_lists_one_or_all():
    backend = SnapshotBackend(["s1", "s2"])
    assert [item["name"] for item in list_snapshots(backend, "web1")] == ["s1", "s2"]
    assert [item["name"] for item in list_snapshots(backend, "web1", "s2")] == ["s2"]
    assert list_snapshots(backend, "web1", "nope") == []


@pytest.mark.parametrize("names, retain, keep, pruned", [
    (["a", "b", "c"], 2, None, ["a"]),
    (["a", "b", "c"], 2, "a", ["b"]),
    (["a"], 3, None, []),
    (["a", "b"], None, None, []),
])
def test_to_prune(names, retain, keep, pruned):
    items = [{"name": name, "created_at": "2026-01-01T00:00:%02dZ" % index} for index, name in enumerate(names)]
    assert [item["name"] for item in to_prune(items, retain, keep)] == pruned
