# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""CloudCIX snapshots, backups and volumes through the shared reconcilers, against the loopback simulator."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import PolyvirtError
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import BackupReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import DiskReconciler, list_disks
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.snapshot import SnapshotReconciler
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.cloudcix.sim import LoopbackSimulator
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.cloudcix.test_cloudcix_instances import run as run_instance
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.cloudcix.test_cloudcix_instances import writes


@pytest.fixture
def sim():
    simulator = LoopbackSimulator()
    run_instance(simulator, name="web1", image="UBUNTU2404")
    yield simulator
    simulator.stop()


def run(sim, reconciler, check=False, **params):
    values = {"wait_timeout": 30}
    values.update(params)
    before = len(sim.requests())
    backend = sim.backend()
    try:
        result = reconciler(backend, values, check_mode=check, diff_mode=True).run()
    except PolyvirtError as exc:
        result = dict(exc.result, failed=True, msg=exc.message)
    finally:
        backend.close()
    return result, sim.requests()[before:]


def test_snapshots_create_once_retain_restore_delete(sim):
    check, calls = run(sim, SnapshotReconciler, check=True, instance="web1", name="s1")
    assert check["changed"] and writes(calls) == []
    made, calls = run(sim, SnapshotReconciler, instance="web1", name="s1")
    assert made["snapshot"]["name"] == "s1" and made["snapshot"]["created_at"]
    assert [call[:2] for call in writes(calls)] == [("POST", "/compute/snapshots/")]
    again, calls = run(sim, SnapshotReconciler, instance="web1", name="s1")
    assert not again["changed"] and len(calls) == 3  # login, the instance, its snapshots
    run(sim, SnapshotReconciler, instance="web1", name="s2")
    pruned, calls = run(sim, SnapshotReconciler, instance="web1", name="s3", retain=2)
    assert [item["name"] for item in pruned["snapshots"]] == ["s2", "s3"]
    assert sim.record("snapshot", "s1")["state"] == "deleted"
    restored, calls = run(sim, SnapshotReconciler, instance="web1", name="s2", state="restored")
    assert restored["changed"] and ("PATCH", "/compute/snapshots/%d/" % sim.record("snapshot", "s2")["id"]) in [call[:2] for call in writes(calls)]
    assert sim.record("instance", "web1")["state"] == "running"
    run_instance(sim, name="web1", state="stopped")
    restored, calls = run(sim, SnapshotReconciler, instance="web1", name="s2", state="restored")
    assert restored["changed"] and sim.record("instance", "web1")["state"] == "stopped"  # started for the revert, stopped again
    deleted, calls = run(sim, SnapshotReconciler, instance="web1", name="s2", state="absent")
    assert deleted["changed"] and sim.record("snapshot", "s2")["state"] == "deleted"


def test_a_snapshot_of_a_stopped_instance_is_refused_before_any_change(sim):
    run_instance(sim, name="web1", state="stopped")
    result, calls = run(sim, SnapshotReconciler, instance="web1", name="s1")
    assert result["failed"] and "CloudCIX takes a snapshot of a running instance only, and instance web1 is stopped" in result["msg"]
    assert writes(calls) == []


def test_backups_and_the_refused_restore(sim):
    made, calls = run(sim, BackupReconciler, instance="web1", name="b1")
    assert made["changed"] and made["backup"]["name"] == "b1" and isinstance(made["backup"]["id"], int)
    again, calls = run(sim, BackupReconciler, instance="web1", name="b1")
    assert not again["changed"] and len(calls) == 3
    for params, expect in (({"state": "restored"}, "backup restore (state=restored) is not supported by the cloudcix backend"),
                           ({"location": "/tmp/b1.tar"}, "backup location (export to the controller) is not supported by the cloudcix backend"),
                           ({"mode": "stop"}, "backup mode is not supported by the cloudcix backend"),
                           ({"backend_options": {"x": 1}}, "backend_options.x is not a cloudcix backup option")):
        refused, calls = run(sim, BackupReconciler, instance="web1", name="b1", **params)
        assert refused["failed"] and expect in refused["msg"] and calls == []
    deleted, calls = run(sim, BackupReconciler, instance="web1", name="b1", state="absent")
    assert deleted["changed"] and sim.record("backup", "b1")["state"] == "deleted"


def test_volumes_create_attach_grow_detach_delete(sim):
    run_instance(sim, name="web2", image="UBUNTU2404", type="container")
    made, calls = run(sim, DiskReconciler, name="data", instance="web1", size="2GiB")
    assert made["actions"] == ["create disk data in CEPH_001", "attach disk data to instance web1 at path=/mnt/data"]
    volume = sim.record("volume", "data")
    assert volume["type"] == "cephfs" and volume["specs"] == [{"sku_name": "CEPH_001", "quantity": 2}]
    assert volume["metadata"] == {"mount_path": "/mnt/data", "attached_instance_ids": [sim.record("instance", "web1")["id"]]}
    again, calls = run(sim, DiskReconciler, name="data", instance="web1", size=2)
    assert not again["changed"] and len(calls) == 3  # login, the instance, the volume
    grown, calls = run(sim, DiskReconciler, name="data", instance="web1", size="3GiB")
    assert grown["diff"] == {"before": {"size_gib": 2}, "after": {"size_gib": 3}} and sim.record("volume", "data")["specs"][0]["quantity"] == 3
    half, calls = run(sim, DiskReconciler, name="data", instance="web1", size="3.5GiB")
    assert half["failed"] and "size must be a whole number of GB on the cloudcix backend" in half["msg"] and writes(calls) == []
    busy, calls = run(sim, DiskReconciler, name="data", instance="web2")
    assert busy["failed"] and "disk data is attached to instance web1; detach it there first" in busy["msg"] and writes(calls) == []
    detached, calls = run(sim, DiskReconciler, name="data", storage="CEPH_001", state="detached")
    assert detached["changed"] and sim.record("volume", "data")["metadata"]["attached_instance_ids"] == []
    moved, calls = run(sim, DiskReconciler, name="data", instance="web2")
    assert moved["disk"]["attached_to"] == "web2"
    assert [disk["name"] for disk in list_disks(sim.backend(), instance="web2")] == ["data"]
    gone, calls = run(sim, DiskReconciler, name="data", storage="CEPH_001", state="absent")
    assert gone["actions"] == ["detach disk data from instance web2", "delete disk data"] and sim.record("volume", "data")["state"] == "deleted"


@pytest.mark.parametrize("params, expect", [
    ({"storage": "SSD_001", "size": 1}, "storage SSD_001 is not supported by the cloudcix backend for disks"),
    ({"storage": "CEPH_001"}, "size is required to create a disk on the cloudcix backend"),
    ({"storage": "CEPH_001", "size": "1.5GiB"}, "size must be a whole number of GB on the cloudcix backend"),
    ({"storage": "CEPH_001", "size": 1, "backend_options": {"path": "mnt"}}, "backend_options.path must be an absolute path"),
    ({"storage": "CEPH_001", "size": 1, "source": {"disk": "other"}}, "disk source.disk (copy of another disk) is not supported by the cloudcix backend"),
])
def test_bad_disks_are_refused_before_any_change(sim, params, expect):
    result, calls = run(sim, DiskReconciler, name="bad", **params)
    assert result["failed"] and expect in result["msg"] and writes(calls) == [] and sim.record("volume", "bad") is None


def test_hyperv_instances_take_no_cephfs_volume(sim):
    run_instance(sim, name="win1", image="MSServer2022", state="present", backend_options={"email": "admin@example.com"})
    result, calls = run(sim, DiskReconciler, name="data", instance="win1", size=1)
    assert result["failed"] and "disks of Hyper-V instances are not supported by the cloudcix backend yet" in result["msg"] and writes(calls) == []
