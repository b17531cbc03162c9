# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""History: the named, time-ordered snapshots or backups of one instance, and how their changes show."""

from ansible_collections.polyvirt.compute.plugins.module_utils._diff import ChangeTracker
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.history import History


def item(name, second):
    return {"name": name, "instance": "web", "created_at": "2026-01-01T00:00:%02dZ" % second, "backend_data": {"raw": name}}


def never():
    raise AssertionError("called in check mode")


def history(*items):
    tracker = ChangeTracker()
    result = History(tracker, "snapshot", "snapshots", "web")
    result.load(list(items))
    return result, tracker


def test_load_orders_oldest_first():
    found, _tracker = history(item("b", 2), item("a", 1))
    assert found.names() == ["a", "b"]
    assert found.find("b")["name"] == "b" and found.find("nope") is None


def test_missing_names_the_existing_ones():
    assert history(item("a", 1))[0].missing("z") == "snapshot z of instance web does not exist (existing: a)"
    assert history()[0].missing("z") == "snapshot z of instance web does not exist (existing: none)"


def test_create_calls_outside_check_mode_and_records_the_change():
    found, tracker = history(item("a", 1))
    made = []
    created = found.create({"name": "b", "instance": "web"}, lambda: made.append(1) or item("b", 2), check_mode=False)
    assert made == [1] and created["created_at"] == "2026-01-01T00:00:02Z"
    assert tracker.actions == ["create snapshot b of instance web"]
    assert tracker.diff() == {"before": {"snapshot": {}, "snapshots": ["a"]},
                              "after": {"snapshot": {"name": "b", "instance": "web"}, "snapshots": ["a", "b"]}}


def test_create_in_check_mode_uses_the_prediction_and_calls_nothing():
    found, tracker = history()
    assert found.create({"name": "b", "instance": "web"}, never, check_mode=True)["name"] == "b"
    assert found.names() == ["b"] and tracker.changed


def test_several_changes_show_as_one_change_of_the_list():
    found, tracker = history(item("a", 1), item("b", 2), item("c", 3))
    found.create({"name": "d"}, lambda: item("d", 4), check_mode=False)
    for victim in found.to_prune(2, keep="d"):
        found.delete(victim, lambda: None, check_mode=False, requested="d", reason=" (retain 2)")
    diff = tracker.diff()
    assert diff["before"]["snapshots"] == ["a", "b", "c"] and diff["after"]["snapshots"] == ["c", "d"]
    assert tracker.actions[1:] == ["delete snapshot a of instance web (retain 2)", "delete snapshot b of instance web (retain 2)"]
    assert "snapshot" in diff["after"]  # the requested one was created; the pruned ones are not "the" snapshot


def test_deleting_the_requested_item_shows_it_going():
    found, tracker = history(item("a", 1))
    deleted = []
    found.delete(found.find("a"), lambda: deleted.append("a"), check_mode=False, requested="a")
    assert deleted == ["a"] and found.items == []
    assert tracker.diff()["before"]["snapshot"] == {"name": "a", "instance": "web", "created_at": "2026-01-01T00:00:01Z"}
    assert tracker.diff()["after"] == {"snapshot": {}, "snapshots": []}


def test_delete_in_check_mode_calls_nothing():
    found, tracker = history(item("a", 1))
    found.delete(found.find("a"), never, check_mode=True, requested="a")
    assert found.items == [] and tracker.actions == ["delete snapshot a of instance web"]


def test_to_prune_keeps_the_requested_one():
    found, _tracker = history(item("a", 1), item("b", 2), item("c", 3))
    assert [victim["name"] for victim in found.to_prune(2, keep="a")] == ["b"]
    assert found.to_prune(None, keep="a") == []
