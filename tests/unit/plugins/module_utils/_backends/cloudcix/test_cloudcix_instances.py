# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""CloudCIX instances through the shared reconciler, against the loopback simulator: what is sent, what is read, what is refused."""

import copy

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.instances import CloudcixInstances
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import PolyvirtError
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler, list_instances
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.cloudcix.sim import LoopbackSimulator

SECRET = "s3cr3t-hash"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPolyvirtTestKeyOnly test@polyvirt"


@pytest.fixture
def sim():
    simulator = LoopbackSimulator()
    yield simulator
    simulator.stop()


def run(sim, check=False, **params):
    """One task: the module result (or the failure's message and result) and the requests it made."""
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"state": "started", "wait_timeout": 30})
    values.update(params)
    before = len(sim.requests())
    backend = sim.backend()
    try:
        result = InstanceReconciler(backend, values, check_mode=check, diff_mode=True).run()
    except PolyvirtError as exc:
        result = dict(exc.result, failed=True, msg=exc.message)
    finally:
        backend.close()
    return result, sim.requests()[before:]


def writes(calls):
    return [call for call in calls if call[0] in ("POST", "PUT", "PATCH", "DELETE") and not call[1].endswith("auth/login/")]


WEB = {"name": "web1", "image": "UBUNTU2404", "cpus": 2, "memory": "2GiB", "disk_size": 20, "networks": [{"ipv4": "10.0.0.5/24", "nat": True}],
       "wait_for": ["ip"]}


def test_check_create_apply_reapply(sim):
    check, calls = run(sim, check=True, **WEB)
    assert check["changed"] and check["actions"] == ["create vm web1 from UBUNTU2404", "start instance web1"]
    assert writes(calls) == [] and sim.record("instance", "web1") is None
    created, calls = run(sim, **WEB)
    assert created["changed"] and created["actions"] == check["actions"]
    record = sim.record("instance", "web1")
    assert record["type"] == "lxd" and record["metadata"]["instance_type"] == "virtual-machine"
    assert sorted((item["sku_name"], item["quantity"]) for item in record["specs"]) == [
        ("RAM_001", 2), ("SSD_001", 20), ("UBUNTU2404", 1), ("vCPU_001", 2)]
    assert record["interfaces"][0]["gateway"] and record["interfaces"][0]["ipv4_addresses"][0]["address"] == "10.0.0.5"
    instance = created["instance"]
    assert instance["state"] == "running" and instance["cpus"] == 2 and instance["memory_mib"] == 2048 and instance["disk_gib"] == 20
    public = record["interfaces"][0]["ipv4_addresses"][0]["public_ip"]
    assert public and instance["ansible_host"] == public and instance["addresses"]["ipv4"] == [public, "10.0.0.5"]
    again, calls = run(sim, **WEB)
    assert not again["changed"] and again["diff"]["before"] == again["diff"]["after"]
    assert [call[:2] for call in calls] == [("POST", "/auth/login/"), ("GET", "/compute/instances/")]  # two calls, the login included
    again_check, calls = run(sim, check=True, **WEB)
    assert not again_check["changed"] and len(calls) == 2


def test_sizes_compare_normalised_and_grow(sim):
    run(sim, **WEB)
    same, calls = run(sim, name="web1", memory=2048, disk_size="20GiB")
    assert not same["changed"] and len(calls) == 2
    grow, calls = run(sim, name="web1", memory="4GiB", disk_size=30, cpus=3)
    assert grow["diff"] == {"before": {"cpus": 2, "disk_gib": 20, "memory_mib": 2048}, "after": {"cpus": 3, "disk_gib": 30, "memory_mib": 4096}}
    assert [call[:2] for call in writes(calls)] == [("PATCH", "/compute/instances/1/")]
    record = sim.record("instance", "web1")
    assert record["state"] == "running"
    assert sorted((item["sku_name"], item["quantity"]) for item in record["specs"]) == [("RAM_001", 4), ("SSD_001", 30), ("UBUNTU2404", 1), ("vCPU_001", 3)]
    shrink, calls = run(sim, name="web1", disk_size="10GiB")
    assert shrink["failed"] and "disk_size 10GiB is smaller than the current 30GiB; disks only grow" in shrink["msg"] and writes(calls) == []


@pytest.mark.parametrize("memory, shown", [("256MiB", "256MiB"), ("1.5GiB", "1536MiB"), (1000, "1000MiB")])
def test_memory_not_in_whole_gb_is_refused_naming_the_value_before_any_call(sim, memory, shown):
    result, calls = run(sim, name="web1", image="UBUNTU2404", memory=memory)
    assert result["failed"] and "memory must be a whole number of GB on the cloudcix backend (RAM_001 is sold per GB), got %s" % shown in result["msg"]
    assert calls == []


@pytest.mark.parametrize("params, expect", [
    ({"image": "NOSUCH"}, "image 'NOSUCH' is not an image SKU of this CloudCIX region (images: DEBIAN12,"),
    ({"image": "MSServer2022"}, "backend_options.email is required for a Hyper-V instance"),
    ({"image": "MSServer2022", "backend_options": {"email": "a@example.com"}, "cloud_init": {"user_data": {"runcmd": ["true"]}}},
     "cloud_init is not supported by the cloudcix backend for Hyper-V instances"),
    ({"image": "MSServer2022", "type": "container"}, "is a Hyper-V (Windows) image, and type container runs on LXD only"),
    ({"image": "UBUNTU2404", "backend_options": {"hypervisor": "vmware"}}, "backend_options.hypervisor must be lxd or hyperv, got 'vmware'"),
    ({"image": "UBUNTU2404", "backend_options": {"colour": "blue"}}, "backend_options.colour is not a cloudcix instance option"),
    ({"image": "UBUNTU2404", "backend_options": {"storage_sku": "NVME_9"}}, "backend_options.storage_sku must be one of SSD_001, HDD_001, got 'NVME_9'"),
    ({"image": "UBUNTU2404", "backend_options": {"grace_period": -1}}, "backend_options.grace_period is a number of hours, at least 0"),
    ({"image": "UBUNTU2404", "networks": [{"ipv4": "dhcp"}]}, "networks[0].ipv4 must be a static address on the cloudcix backend"),
    ({"image": "UBUNTU2404", "networks": [{"name": "lan", "mac": "00:16:3e:aa:bb:01", "ipv4": "10.0.0.9"}]},
     "networks[0].mac is not supported by the cloudcix backend"),
    ({"image": "UBUNTU2404", "tags": ["a"]}, "tags is not supported by the cloudcix backend"),
    ({"image": "UBUNTU2404", "state": "paused"}, "state=paused is not supported by the cloudcix backend"),
    ({"image": "UBUNTU2404", "wait_for": ["cloud_init"]}, "wait_for=cloud_init is not supported by the cloudcix backend"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_bad_input_is_refused_before_any_change(sim, params, expect):
    result, calls = run(sim, name="new1", **params)
    assert result["failed"] and not result["changed"] and expect in result["msg"]
    assert writes(calls) == [] and sim.record("instance", "new1") is None


def test_three_kinds(sim):
    run(sim, name="c1", image="UBUNTU2404", type="container", state="present")
    run(sim, name="v1", image="DEBIAN12", type="vm", state="present", backend_options={"dns": ["8.8.8.8", "2001:4860:4860::8888"]})
    win, _calls = run(sim, name="w1", image="MSServer2022", state="present", cpus=4, memory="8GiB", disk_size=100,
                      backend_options={"email": "admin@example.com", "dns": "8.8.8.8,2001:4860:4860::8888", "grace_period": 72})
    container, vm, hyperv = (sim.record("instance", name) for name in ("c1", "v1", "w1"))
    assert (container["type"], container["metadata"]["instance_type"]) == ("lxd", "container")
    assert (vm["type"], vm["metadata"]) == ("lxd", {"instance_type": "virtual-machine", "dns": "8.8.8.8,2001:4860:4860::8888"})
    assert hyperv["type"] == "hyperv" and hyperv["grace_period"] == 72
    assert hyperv["metadata"] == {"email": "admin@example.com", "dns4": "8.8.8.8", "dns6": "2001:4860:4860::8888"}
    assert ("vCPU_002", 4) in [(item["sku_name"], item["quantity"]) for item in hyperv["specs"]]
    assert all(record["state"] == "stopped" for record in (container, vm, hyperv))  # present: created, not started
    assert win["instance"]["type"] == "vm" and win["instance"]["state"] == "stopped"
    listed = list_instances(sim.backend())
    assert sorted((item["name"], item["type"]) for item in listed) == [("c1", "container"), ("v1", "vm"), ("w1", "vm")]
    same, calls = run(sim, name="v1", state="present", backend_options={"dns": "2001:4860:4860::8888, 8.8.8.8"})
    assert not same["changed"] and len(calls) == 2


def test_user_data_and_ssh_keys_go_to_metadata_userdata_and_stay_out_of_results(sim):
    result, _calls = run(sim, name="ci1", image="UBUNTU2404", ssh_keys=[KEY], cloud_init={"user_data": {"chpasswd": {"list": "root:" + SECRET}}})
    userdata = sim.record("instance", "ci1")["metadata"]["userdata"]
    assert userdata.startswith("#cloud-config\n") and SECRET in userdata and KEY in userdata
    assert SECRET not in repr(result) and "userdata" not in result["instance"]["backend_data"]["metadata"]
    later, _calls = run(sim, name="ci1", cloud_init={"user_data": {"runcmd": ["true"]}})
    assert not later["changed"] and "only reads it at first boot" in later["warnings"][0]


def test_power_through_state_requests(sim):
    run(sim, name="p1", image="UBUNTU2404", state="present")
    started, calls = run(sim, name="p1")
    assert started["diff"] == {"before": {"state": "stopped"}, "after": {"state": "running"}}
    assert [(method, path) for method, path, _status in writes(calls)] == [("PATCH", "/compute/instances/1/")]
    restarted, calls = run(sim, name="p1", state="restarted")
    assert restarted["instance"]["state"] == "running"
    states = [entry["path"] for entry in sim.server.journal.entries()]
    assert len(writes(calls)) == 2 and len(states) > 2  # running: stop, then restart (CloudCIX has no restart from running)
    stopped, _calls = run(sim, name="p1", state="stopped")
    assert stopped["instance"]["state"] == "stopped" and sim.record("instance", "p1")["state"] == "stopped"
    again, calls = run(sim, name="p1", state="stopped")
    assert not again["changed"] and len(calls) == 2


@pytest.fixture
def slow_sim():
    """Time runs at a thousandth: the robot takes tens of milliseconds, a grace period of 24 hours about a minute and a half."""
    simulator = LoopbackSimulator(time_scale=0.001)
    yield simulator
    simulator.stop()


def test_absent_enters_the_delete_queue_and_present_brings_it_back(slow_sim):
    sim = slow_sim
    run(sim, name="d1", image="UBUNTU2404", backend_options={"grace_period": 24})
    deleted, calls = run(sim, name="d1", state="absent")
    assert deleted["changed"] and deleted["actions"] == ["delete instance d1"]
    assert [(method, path) for method, path, _status in writes(calls)] == [("PATCH", "/compute/instances/1/")]
    assert sim.record("instance", "d1")["state"] == "delete_queue"
    gone, calls = run(sim, name="d1", state="absent")
    assert not gone["changed"] and len(calls) == 2  # in the delete queue counts as absent
    back, calls = run(sim, name="d1", image="UBUNTU2404", state="present")
    assert back["changed"] and back["instance"]["id"] == 1 and back["instance"]["state"] == "stopped"
    assert not [call for call in writes(calls) if call[0] == "POST"]  # no second instance
    assert len(sim.sim.data["instance"]) == 1


def test_grace_period_zero_deletes_at_once(sim):
    run(sim, name="d2", image="UBUNTU2404", state="present")
    result, calls = run(sim, name="d2", state="absent", backend_options={"grace_period": 0})
    assert result["changed"] and [call[:2] for call in writes(calls)] == [("DELETE", "/compute/instances/1/")]
    assert sim.record("instance", "d2")["state"] in ("deleting", "deleted")


def test_a_create_that_loses_the_race_converges_on_the_winner(sim, monkeypatch):
    real_get = CloudcixInstances.get
    calls = []

    def get_twice_none(self, name, runtime=False):
        calls.append(name)
        if len(calls) == 1:  # our first read saw nothing; another task creates it before our POST
            sim.backend().client.write("POST", "compute/instances/", {
                "project_id": 1, "name": name, "type": "lxd", "metadata": {"instance_type": "virtual-machine"},
                "specs": [{"sku_name": "RAM_001", "quantity": 1}, {"sku_name": "vCPU_001", "quantity": 1},
                          {"sku_name": "SSD_001", "quantity": 10}, {"sku_name": "UBUNTU2404", "quantity": 1}]})
            return None
        return real_get(self, name, runtime)

    monkeypatch.setattr(CloudcixInstances, "get", get_twice_none)
    result, _calls = run(sim, name="race1", image="UBUNTU2404")
    assert not result.get("failed") and result["instance"]["state"] == "running"
    assert len([record for record in sim.sim.data["instance"].values() if record["name"] == "race1"]) == 1


def test_duplicate_names_are_refused_listing_the_ids(sim):
    run(sim, name="dup", image="UBUNTU2404", state="present")
    with sim.sim.lock:
        twin = copy.deepcopy(sim.sim.data["instance"]["1"])
        twin["id"] = 7
        sim.sim.data["instance"]["7"] = twin
    result, calls = run(sim, name="dup", cpus=4)
    assert result["failed"] and "there are 2 instances named dup in project 1 (ids 1, 7)" in result["msg"] and writes(calls) == []


def test_unresourced_fails_cleanly_and_the_rerun_says_why(sim):
    sim.fault("unresourced:match=^bad")
    result, _calls = run(sim, name="bad1", image="UBUNTU2404")
    assert result["failed"] and result["changed"] and "unresourced" in result["msg"]
    assert result["instance"]["name"] == "bad1" and result["instance"]["state"] == "error"
    again, calls = run(sim, name="bad1", image="UBUNTU2404")
    assert again["failed"] and "the robot could not build it" in again["msg"] and writes(calls) == []


def test_a_stalled_robot_times_out_with_what_exists_and_a_rerun_converges(sim):
    sim.fault("robot-stall:state=pending")
    result, _calls = run(sim, name="slow1", image="UBUNTU2404", wait_timeout=1)
    assert result["failed"] and result["changed"] and "timed out after 1 s waiting for instance slow1 to be built" in result["msg"]
    assert result["instance"]["name"] == "slow1" and result["instance"]["state"] == "pending"
    with sim.sim.lock:
        sim.sim.faults.clear()
    again, calls = run(sim, name="slow1", image="UBUNTU2404")
    assert not again.get("failed") and again["instance"]["state"] == "running" and writes(calls) == []


def test_5xx_bursts_during_waits_are_retried(sim):
    sim.fault("error:status=503,count=3,method=GET,path=compute/instances/")
    result, _calls = run(sim, name="flaky1", image="UBUNTU2404", state="present")
    assert not result.get("failed") and result["instance"]["state"] == "stopped"
