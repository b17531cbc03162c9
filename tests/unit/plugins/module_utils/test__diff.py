# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._diff import ChangeTracker, project, prune


def test_equal_values_are_not_changes():
    tracker = ChangeTracker()
    assert tracker.add("cpus", 2, 2) is False
    assert tracker.diff() == {"before": {}, "after": {}}
    assert not tracker.changed


def test_differences_and_actions():
    tracker = ChangeTracker()
    assert tracker.add("memory_mib", 256, 512) is True
    tracker.action("update memory_mib of instance web")
    assert tracker.changed
    assert tracker.diff() == {"before": {"memory_mib": 256}, "after": {"memory_mib": 512}}


def test_diff_is_a_copy():
    tracker = ChangeTracker()
    tags = ["a"]
    tracker.add("tags", [], tags)
    tags.append("b")
    assert tracker.diff()["after"]["tags"] == ["a"]


def test_whole_object_for_create_and_delete():
    tracker = ChangeTracker()
    tracker.whole(None, {"name": "web"})
    assert tracker.diff() == {"before": {}, "after": {"name": "web"}}
    tracker.whole({"name": "web"}, None)
    assert tracker.diff() == {"before": {"name": "web"}, "after": {}}


def test_project_keeps_only_what_is_desired():
    current = {"name": "br0", "ipv4": "dhcp", "mac": "00:16:3e:00:00:01", "device": "eth0"}
    assert project(current, {"name": "br0"}) == {"name": "br0"}
    assert project([current], [{"name": "br0", "mac": None}]) == [{"name": "br0"}]


def test_project_of_lists_with_other_lengths_keeps_everything():
    current = [{"name": "a"}, {"name": "b"}]
    assert project(current, [{"name": "a"}]) == current


def test_prune_drops_unset_values():
    assert prune({"a": 1, "b": None, "c": [{"d": None, "e": 2}]}) == {"a": 1, "c": [{"e": 2}]}
