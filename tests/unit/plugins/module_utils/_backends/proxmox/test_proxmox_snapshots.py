# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Proxmox snapshots on FakePve: names, vmstate, rollback keeping the power state, retain."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.snapshot import SnapshotReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.proxmox.test_proxmox_instances import connect


def snapshot(backend, check_mode=False, **params):
    values = {"instance": "web1", "state": "present", "wait_timeout": 30}
    values.update(params)
    return SnapshotReconciler(backend, values, check_mode=check_mode, diff_mode=True).run()


@pytest.mark.parametrize("name", ["current", "pending", "1st", "a.b", "x" * 41])
def test_names_pve_refuses_are_refused_before_any_change(name):
    backend, fake = connect()
    with pytest.raises(InvalidInput):
        snapshot(backend, name=name)
    assert fake.mutating() == []


def test_list_leaves_out_current_and_maps_the_fields():
    backend = connect()[0]
    items = backend.snapshots.list(backend.instances.get("web1"))
    assert [item["name"] for item in items] == ["snap0"]
    assert items[0]["created_at"] == "2025-11-24T16:00:00Z" and items[0]["description"] == "before" and items[0]["stateful"] is False


def test_create_once_with_vmstate_and_description_then_retain():
    backend, fake = connect()
    made = snapshot(backend, name="s1", stateful=True, description="with RAM")
    assert made["changed"] and made["snapshot"]["stateful"] is True and made["snapshot"]["description"] == "with RAM"
    assert fake.mutating()[0][2] == {"snapname": "s1", "vmstate": 1, "description": "with RAM"}
    again = snapshot(backend, name="s1", stateful=True, description="with RAM")
    assert not again["changed"]
    pruned = snapshot(backend, name="s2", retain=2)
    assert pruned["actions"] == ["create snapshot s2 of instance web1", "delete snapshot snap0 of instance web1 (retain 2)"]
    assert [item["name"] for item in pruned["snapshots"]] == ["s1", "s2"]


def test_container_snapshots_have_no_ram():
    backend = connect()[0]
    with pytest.raises(Unsupported):
        backend.snapshots.create(backend.instances.get("ct1"), "s1", True, None, Deadline(30))


def test_rollback_keeps_a_running_vm_running_and_a_stopped_one_stopped():
    backend, fake = connect()
    restored = snapshot(backend, name="snap0", state="restored")
    assert restored["changed"] and fake.mutating()[-1][2] == {"start": 1}  # no RAM in snap0: PVE would leave it stopped
    assert fake.guests[100]["status"] == "running"
    fake.guests[100]["snapshots"]["ram"] = {"snaptime": 1764000200, "vmstate": 1}
    fake.guests[100]["status"] = "stopped"
    backend.forget()
    snapshot(backend, name="ram", state="restored")
    assert fake.guests[100]["status"] == "stopped"  # the RAM snapshot starts it: stopped again
    assert fake.mutating()[-1][1] == "nodes/pve/qemu/100/status/stop"


def test_delete_is_idempotent():
    backend, fake = connect()
    assert snapshot(backend, name="snap0", state="absent")["changed"]
    assert not snapshot(backend, name="snap0", state="absent")["changed"]
    instance = backend.instances.get("web1")
    backend.snapshots.delete(instance, {"name": "snap0"}, Deadline(30))  # gone already: not an error
    assert fake.guests[100]["snapshots"] == {}
