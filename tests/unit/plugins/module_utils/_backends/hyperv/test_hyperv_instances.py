# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The Hyper-V instances and snapshots parts through the shared reconcilers, on the emulator's host model:
what each task runs (scripts and shells), check mode, bad input refused before any change, restarts."""

import base64
import json

import pytest
import yaml

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.backend import HyperVBackend
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.scripts import READ_OPS
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, PolyvirtError, Unsupported, WaitTimeout
from ansible_collections.polyvirt.compute.plugins.module_utils._model import public
from ansible_collections.polyvirt.compute.plugins.module_utils import _seed_iso as seed_iso
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv import instances as hyperv_instances
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import BackupReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.clone import CloneReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import DiskReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.snapshot import SnapshotReconciler
from ansible_collections.polyvirt.compute.tests.simulators.hyperv.model import GB, MB, Faults, Host
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.hyperv.fake_hyperv import BASE, SECRET, FakeProtocol

SETTINGS = {"host": "127.0.0.1", "port": 5985, "scheme": "http", "transport": "basic", "username": "Administrator", "password": SECRET,
            "vm_path": "C:\\VMs", "switch": "Default Switch"}


class World:
    """One emulated host; each ``task`` is a new backend (a new shell), as each Ansible task is."""

    def __init__(self, faults=()):
        self.fake = FakeProtocol(Host(time_scale=0, faults=Faults(faults)))
        self.fake.seed_image()

    def backend(self, **settings):
        backend = HyperVBackend(dict(SETTINGS, **settings))
        self.fake.install(backend.client)
        return backend

    def task(self, check_mode=False, **params):
        values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
        values.update({"state": "started", "wait": True, "wait_timeout": 60})
        values.update(params)
        backend = self.backend()
        before = len(self.fake.scripts)
        try:
            result = InstanceReconciler(backend, values, check_mode=check_mode, diff_mode=True).run()
        finally:
            backend.close()
        return result, self.fake.ops()[before:]

    def snapshot(self, check_mode=False, **params):
        values = {"state": "present", "stateful": False, "description": None, "retain": None, "wait_timeout": 60}
        values.update(params)
        backend = self.backend()
        before = len(self.fake.scripts)
        try:
            result = SnapshotReconciler(backend, values, check_mode=check_mode, diff_mode=True).run()
        finally:
            backend.close()
        return result, self.fake.ops()[before:]

    def backup(self, check_mode=False, **params):
        values = {"state": "present", "name": None, "storage": None, "location": None, "mode": None, "retain": None, "restore_to": None,
                  "backend_options": None, "wait_timeout": 60}
        values.update(params)
        backend = self.backend()
        before = len(self.fake.scripts)
        try:
            result = BackupReconciler(backend, values, check_mode=check_mode, diff_mode=True).run()
        finally:
            backend.close()
        return result, self.fake.ops()[before:]

    def vm(self, name):
        return self.fake.host.vm_get({"name": name})

    def file(self, path):
        return self.fake.host.vhd_get({"path": path})


def writes(ops):
    return [op for op in ops if op not in READ_OPS]


@pytest.fixture(name="world")
def fixture_world():
    return World()


def test_create_boots_from_a_differencing_disk_on_the_image_and_waits_for_an_address(world):
    result, ops = world.task(name="web1", image=BASE, cpus=2, memory="512MiB", description="it's $HOME `x`\nline 2", wait_for=["ip"])
    assert ops == ["vm_get", "host_get", "vhd_get", "vhd_get", "vhd_create", "vm_create", "vm_start"]  # addresses at once: no Wait-VM
    instance = result["instance"]
    assert (instance["state"], instance["cpus"], instance["memory_mib"], instance["type"]) == ("running", 2, 512, "vm")
    assert instance["ansible_host"].startswith("172.20.16.") and instance["addresses"]["ipv6"] == []  # link-local left out
    assert instance["description"] == "it's $HOME `x`\nline 2"
    vm = world.vm("web1")
    assert vm["notes"] == "it's $HOME `x`\nline 2"  # reached Hyper-V unchanged, through the base64 arguments only
    disk = world.file(vm["disks"][0]["path"])
    assert vm["disks"][0]["path"] == "C:\\VMs\\web1\\Virtual Hard Disks\\web1.vhdx"
    assert (disk["type"], disk["parent_path"]) == ("Differencing", BASE)
    assert world.fake.shells == 1 and world.fake.codepages == [65001]
    assert all(line.startswith("powershell.exe -NoProfile -NonInteractive -EncodedCommand ") for line in world.fake.command_lines)
    assert SECRET not in repr(public(result))


def test_an_idempotent_task_runs_one_script_in_one_shell(world):
    world.task(name="web1", image=BASE, memory=512, wait_for=["ip"])
    shells = world.fake.shells
    result, ops = world.task(name="web1", image=BASE, memory="0.5GiB", cpus=1, description="", wait_for=["ip"])
    assert ops == ["vm_get"]
    assert world.fake.shells == shells + 1
    assert result["changed"] is False and result["actions"] == []


def test_check_mode_reads_only_and_predicts_the_plan(world):
    result, ops = world.task(check_mode=True, name="web1", image=BASE, memory=256)
    assert writes(ops) == [] and ops
    assert result["changed"] and result["actions"] == ["create vm web1 from %s" % BASE, "start instance web1"]
    assert world.vm("web1") is None
    world.task(name="web1", image=BASE, memory=256)
    result, ops = world.task(check_mode=True, name="web1", memory=512, cpus=3, allow_restart=True)
    assert writes(ops) == [] and result["diff"] == {"before": {"cpus": 1, "memory_mib": 256}, "after": {"cpus": 3, "memory_mib": 512}}
    assert world.vm("web1")["memory_startup"] == 256 * MB


@pytest.mark.parametrize("params, expect", [
    ({"memory": "257MiB"}, "memory must be a multiple of 2 MiB on Hyper-V"),
    ({"name": "web*"}, "is not a valid Hyper-V VM name: it contains '*'"),
    ({"name": "x" * 101}, "too long for Hyper-V"),
    ({"image": "base.vhdx"}, "image must be an absolute Windows path"),
    ({"image": "C:\\Images\\..\\base.vhdx"}, "must not contain . or .. components"),
    ({"image": "C:\\Images\\base.qcow2"}, "must end with .vhdx or .vhd"),
    ({"image": "C:\\Images\\old.vhd"}, "generation 2 VMs cannot boot from"),
    ({"networks": [{"name": "Default Switch", "ipv4": "10.0.0.5/24"}]}, "Hyper-V cannot set a guest's address"),
    ({"networks": [{"name": "Default Switch", "mac": "zz"}]}, "must be a MAC address"),
    ({"backend_options": {"colour": "blue"}}, "backend_options.colour is not a Hyper-V option"),
    ({"backend_options": {"generation": 3}}, "backend_options.generation must be 1 or 2"),
    ({"backend_options": {"generation": 1, "secure_boot": True}}, "needs generation 2"),
    ({"type": "container"}, "type=container is not supported by the hyperv backend"),
    ({"tags": ["a"]}, "tags is not supported by the hyperv backend"),
    ({"wait_for": ["cloud_init"]}, "wait_for=cloud_init is not supported by the hyperv backend"),
])
def test_bad_input_is_refused_before_any_script(world, params, expect):
    values = dict({"name": "web1", "image": BASE}, **params)
    with pytest.raises(InvalidInput) as failure:
        world.task(**values)
    assert expect in failure.value.message
    assert world.fake.scripts == []


@pytest.mark.parametrize("params, expect", [
    ({"image": "C:\\Images\\missing.vhdx"}, "no such parent VHDX"),
    ({"networks": [{"name": "Nope"}]}, "'Nope' is not a virtual switch of the Hyper-V host"),
    ({"disk_size": "512MiB"}, "disk_size must be a whole number of GiB"),
])
def test_what_the_host_lacks_is_refused_after_reads_only(world, params, expect):
    with pytest.raises(InvalidInput) as failure:
        world.task(**dict({"name": "web1", "image": BASE}, **params))
    assert expect in failure.value.message
    assert writes(world.fake.ops()) == [] and world.vm("web1") is None


def test_processor_count_needs_a_stop_and_allow_restart(world):
    world.task(name="web1", image=BASE)
    with pytest.raises(InvalidInput) as failure:
        world.task(name="web1", cpus=4)
    assert "cpus cannot change while instance web1 runs" in failure.value.message
    assert world.vm("web1")["cpu"] == 1
    result, ops = world.task(name="web1", cpus=4, allow_restart=True)
    assert writes(ops) == ["vm_stop", "vm_set", "vm_start"]
    assert result["instance"]["cpus"] == 4 and world.vm("web1")["state"] == "Running"
    assert result["actions"] == ["stop instance web1 (so that cpus can change)", "update cpus of instance web1", "start instance web1"]


def test_memory_and_notes_change_on_a_running_vm(world):
    world.task(name="web1", image=BASE, memory=256)
    result, ops = world.task(name="web1", memory="1GiB", description="new")
    assert writes(ops) == ["vm_set"]
    assert (world.vm("web1")["memory_startup"], world.vm("web1")["notes"], world.vm("web1")["state"]) == (GB, "new", "Running")
    assert result["diff"] == {"before": {"description": "", "memory_mib": 256}, "after": {"description": "new", "memory_mib": 1024}}


def test_disk_grows_and_never_shrinks(world):
    result, ops = world.task(name="web1", image=BASE, state="present", disk_size=2)
    assert "vhd_resize" in ops and result["instance"]["disk_gib"] == 2
    result, ops = world.task(name="web1", state="present", disk_size="2048MiB")
    assert ops == ["vm_get", "vhd_get"] and not result["changed"]
    with pytest.raises(InvalidInput) as failure:
        world.task(name="web1", state="present", disk_size=1)
    assert "disk_size 1GiB is smaller than the current 2GiB; disks only grow" in failure.value.message
    result, ops = world.task(name="web1", state="present", disk_size=3)
    assert writes(ops) == ["vhd_resize"] and result["instance"]["disk_gib"] == 3
    big = world.fake.seed_image("C:\\Images\\big.vhdx", 4 * GB)
    with pytest.raises(InvalidInput) as failure:
        world.task(name="web2", image=big, state="present", disk_size=2)
    assert "disk_size 2GiB is smaller than the image's 4GiB" in failure.value.message and world.vm("web2") is None


def test_a_static_mac_recreates_the_adapter_and_a_switch_reconnects_it(world):
    world.task(name="web1", image=BASE)
    result, ops = world.task(name="web1", networks=[{"name": "Default Switch", "mac": "00:16:3E:AA:BB:01"}])
    assert writes(ops) == ["nic_remove", "nic_add"]
    assert result["instance"]["networks"][0]["mac"] == "00:16:3e:aa:bb:01"
    result, ops = world.task(name="web1", networks=[{"name": "Default Switch", "mac": "00:16:3e:aa:bb:01"}])
    assert ops == ["vm_get"]
    result, ops = world.task(name="web1", networks=[{"name": "External"}, {}])
    assert writes(ops) == ["nic_connect", "nic_add"]
    assert [nic["switch"] for nic in world.vm("web1")["nics"]] == ["External", "Default Switch"]


def test_power_states(world):
    world.task(name="web1", image=BASE, state="present")
    assert world.vm("web1")["state"] == "Off"
    assert writes(world.task(name="web1")[1]) == ["vm_start"]
    assert writes(world.task(name="web1", state="paused")[1]) == ["vm_suspend"]
    assert world.task(name="web1", state="paused")[1] == ["vm_get"]
    assert writes(world.task(name="web1", state="stopped")[1]) == ["vm_resume", "vm_stop"]
    assert world.vm("web1")["state"] == "Off"
    assert writes(world.task(name="web1", state="restarted")[1]) == ["vm_start"]
    assert writes(world.task(name="web1", state="restarted")[1]) == ["vm_stop", "vm_start"]
    assert writes(world.task(name="web1", state="restarted", force=True)[1]) == ["vm_restart"]


def test_delete_removes_the_vm_and_its_own_disk_but_not_the_image(world):
    world.task(name="web1", image=BASE)
    path = world.vm("web1")["disks"][0]["path"]
    result, ops = world.task(name="web1", state="absent", force=True)
    assert writes(ops) == ["vm_stop", "vm_remove"] and result["changed"]
    assert world.vm("web1") is None and world.file(path) is None and world.file(BASE) is not None
    assert world.task(name="web1", state="absent")[1] == ["vm_get"]


def test_a_failed_create_leaves_nothing_behind(world):
    world.fake.fail_next["vm_create"] = "The operation failed (injected fault)."
    with pytest.raises(PolyvirtError) as failure:
        world.task(name="web1", image=BASE)
    assert "Failed to create instance web1 on hyperv: The operation failed (injected fault)." in failure.value.message
    assert world.vm("web1") is None
    assert world.file("C:\\VMs\\web1\\Virtual Hard Disks\\web1.vhdx") is None
    world.task(name="web1", image=BASE)  # a re-run converges
    assert world.vm("web1")["state"] == "Running"


def test_a_new_vm_that_cannot_start_is_removed_again(world):
    world.fake.fail_next["vm_start"] = "The virtual machine could not be started because the hypervisor is not running."
    with pytest.raises(PolyvirtError) as failure:
        world.task(name="web1", image=BASE)
    assert "hypervisor is not running" in failure.value.message and "removed again" in failure.value.message
    assert world.vm("web1") is None and world.file("C:\\VMs\\web1\\Virtual Hard Disks\\web1.vhdx") is None


def test_no_kvp_wait_for_ip_times_out_with_what_is_known():
    world = World(faults=["no-kvp:vm=web1"])
    with pytest.raises(WaitTimeout) as failure:
        world.task(name="web1", image=BASE, wait_for=["ip"], wait_timeout=2)
    assert "timed out after 2 s waiting for an IP address on instance web1" in failure.value.message
    assert "Key-Value Pair Exchange" in failure.value.message
    assert failure.value.result["changed"] and failure.value.result["instance"]["state"] == "running"


def test_the_operator_account_fails_cleanly_with_hyper_v_s_words(world):
    world.fake.fail_next["vm_get"] = ("You do not have the required permission to complete this task. Contact the administrator of the "
                                      "authorization policy for the computer 'HV-SIM01'.")
    with pytest.raises(PolyvirtError) as failure:
        world.task(name="web1", image=BASE)
    assert type(failure.value).__name__ == "AuthError" and "required permission" in failure.value.message


def test_checkpoints_standard_when_stateful_and_restore_keeps_the_power_state(world):
    world.task(name="web1", image=BASE)
    result, ops = world.snapshot(instance="web1", name="s1", stateful=True)
    assert writes(ops) == ["vm_set", "checkpoint_create"] and result["snapshot"]["stateful"]
    result, ops = world.snapshot(instance="web1", name="s2")
    assert writes(ops) == ["vm_set", "checkpoint_create"] and not result["snapshot"]["stateful"]
    assert world.snapshot(instance="web1", name="s2")[1] == ["vm_get", "checkpoint_list"]
    result, ops = world.snapshot(instance="web1", name="s2", state="restored")
    assert writes(ops) == ["checkpoint_restore", "vm_start"]  # a production checkpoint restores to Off
    assert world.vm("web1")["state"] == "Running"
    result, ops = world.snapshot(instance="web1", name="s3", retain=2)
    assert [item["name"] for item in result["snapshots"]] == ["s2", "s3"]
    with pytest.raises(InvalidInput):
        world.snapshot(instance="web1", name="*")
    with pytest.raises(Unsupported):
        world.snapshot(instance="web1", name="s4", description="d")


def disk_task(world, check_mode=False, **params):
    values = {"instance": None, "storage": None, "size": None, "source": None, "optical": False, "state": "present", "backend_options": None,
              "wait_timeout": 60}
    values.update(params)
    backend = world.backend()
    before = len(world.fake.scripts)
    try:
        result = DiskReconciler(backend, values, check_mode=check_mode, diff_mode=True).run()
    finally:
        backend.close()
    return result, world.fake.ops()[before:]


def test_disks_are_vhdx_files_attached_detached_and_deleted(world):
    world.task(name="web1", image=BASE)
    world.task(name="web2", image=BASE)
    path = "C:\\VMs\\Virtual Hard Disks\\data1.vhdx"
    result, ops = disk_task(world, check_mode=True, name="data1", instance="web1", size="1GiB")
    assert writes(ops) == [] and result["disk"]["path"] == path and world.file(path) is None
    result, ops = disk_task(world, name="data1", instance="web1", size="1GiB")
    assert writes(ops) == ["vhd_create", "disk_attach"]
    assert result["actions"] == ["create disk data1 in C:\\VMs\\Virtual Hard Disks", "attach disk data1 to instance web1 at path=%s" % path]
    assert (result["disk"]["attached_to"], result["disk"]["size_gib"]) == ("web1", 1)
    assert disk_task(world, name="data1", instance="web1", size="1GiB")[1] == ["vm_get", "vhd_get"]
    with pytest.raises(PolyvirtError) as failure:
        disk_task(world, name="data1", instance="web2")
    assert "disk data1 is attached to instance web1; detach it there first" in failure.value.message
    result, ops = disk_task(world, name="data1", instance="web1", size=2)
    assert writes(ops) == ["vhd_resize"] and world.file(path)["size"] == 2 * GB
    result, ops = disk_task(world, name="data1", storage="C:\\VMs\\Virtual Hard Disks", state="detached")
    assert writes(ops) == ["disk_detach"] and result["disk"]["attached_to"] is None
    disk_task(world, name="data1", instance="web2")
    world.task(name="web2", state="absent", force=True)  # deleting a VM detaches the disks it does not own
    assert world.file(path) is not None
    result, ops = disk_task(world, name="data1", storage="C:\\VMs\\Virtual Hard Disks", state="absent")
    assert writes(ops) == ["vhd_remove"] and world.file(path) is None
    with pytest.raises(InvalidInput):
        disk_task(world, name="data*", instance="web1", size=1)


ISO = "C:\\ISOs\\tools.iso"


def test_optical_drives_hold_an_iso_and_detach_never_deletes_it(world):
    world.task(name="web1", image=BASE, state="stopped")
    world.fake.host.file_write({"path": ISO, "data": base64.b64encode(b"an ISO image").decode("ascii")})
    cd = {"name": "tools", "instance": "web1", "optical": True, "backend_options": {"iso": ISO}}
    result, ops = disk_task(world, check_mode=True, **cd)
    assert writes(ops) == [] and result["changed"] and world.vm("web1")["dvds"] == []
    assert result["diff"]["after"]["attached_to"] == "web1" and result["diff"]["after"]["path"] == ISO
    result, ops = disk_task(world, **cd)
    assert ops == ["vm_get", "dir_list", "dvd_add"] and result["changed"]
    assert (result["disk"]["path"], result["disk"]["attached_to"], result["disk"]["size_bytes"]) == (ISO, "web1", None)
    assert [(dvd["path"], dvd["controller_type"]) for dvd in world.vm("web1")["dvds"]] == [(ISO, "SCSI")]
    again, ops = disk_task(world, **cd)
    assert ops == ["vm_get"] and not again["changed"]
    assert dict(again["disk"], backend_data=None) == dict(result["disk"], backend_data=None)
    assert again["disk"]["backend_data"]["controller_type"] == "SCSI"
    listed = hyperv_disks(world).list(instance=world.backend().instances.get("web1"))
    assert [(disk["name"], disk["path"]) for disk in listed] == [("tools", ISO)]
    result, ops = disk_task(world, check_mode=True, state="detached", **cd)
    assert writes(ops) == [] and result["changed"] and len(world.vm("web1")["dvds"]) == 1
    result, ops = disk_task(world, state="detached", **cd)
    assert writes(ops) == ["dvd_remove"] and result["disk"]["attached_to"] is None and world.vm("web1")["dvds"] == []
    assert world.fake.host.file_read({"path": ISO})["data"]  # the ISO stays
    result, ops = disk_task(world, state="detached", **cd)
    assert ops == ["vm_get"] and not result["changed"]
    disk_task(world, **cd)
    result, ops = disk_task(world, state="absent", **cd)
    assert writes(ops) == ["dvd_remove"] and world.vm("web1")["dvds"] == [] and world.fake.host.file_read({"path": ISO})["data"]
    result, ops = disk_task(world, state="absent", **cd)
    assert ops == ["vm_get"] and not result["changed"]


def hyperv_disks(world):
    return world.backend().disks


@pytest.mark.parametrize("params, expect", [
    ({"name": "tools", "optical": True, "storage": "C:\\ISOs"}, "instance is required with optical: true"),
    ({"name": "tools", "instance": "web1", "optical": True, "size": 1}, "size cannot be set for an optical drive"),
    ({"name": "tools", "instance": "web1", "optical": True, "backend_options": {"iso": "C:\\ISOs\\tools.img"}}, "must end with .iso"),
    ({"name": "tools", "instance": "web1", "optical": True, "backend_options": {"iso": "tools.iso"}}, "absolute Windows path"),
    ({"name": "tools", "instance": "web1", "optical": True, "backend_options": {"type": "fixed"}}, "not a Hyper-V optical drive option"),
    ({"name": "data1", "instance": "web1", "size": 1, "backend_options": {"iso": ISO}}, "backend_options.iso is for optical drives"),
])
def test_bad_optical_input_is_refused_before_any_script(world, params, expect):
    before = len(world.fake.scripts)
    with pytest.raises(InvalidInput) as failure:
        disk_task(world, **params)
    assert expect in failure.value.message and world.fake.scripts[before:] == []


def test_a_missing_iso_and_the_seed_iso_are_refused_before_any_change(world):
    world.task(name="web1", image=BASE, state="stopped", cloud_init={"user_data": {"runcmd": ["true"]}})
    with pytest.raises(PolyvirtError) as failure:
        disk_task(world, name="tools", instance="web1", optical=True, backend_options={"iso": ISO})
    assert "backend_options.iso C:\\ISOs\\tools.iso does not exist on the Hyper-V host" in failure.value.message
    seed = world.vm("web1")["dvds"][0]["path"]
    for state in ("present", "detached", "absent"):
        before = len(world.fake.scripts)
        with pytest.raises(PolyvirtError) as failure:
            disk_task(world, name="seed", instance="web1", optical=True, state=state, backend_options={"iso": seed})
        assert "is a cloud-init seed ISO, which the instance module manages" in failure.value.message
        assert writes(world.fake.ops()[before:]) == []
    assert [dvd["path"] for dvd in world.vm("web1")["dvds"]] == [seed]


def test_an_optical_drive_is_not_added_to_a_running_vm(world):
    world.task(name="web1", image=BASE)
    world.fake.host.file_write({"path": ISO, "data": base64.b64encode(b"an ISO image").decode("ascii")})
    before = len(world.fake.scripts)
    with pytest.raises(PolyvirtError) as failure:
        disk_task(world, name="tools", instance="web1", optical=True, backend_options={"iso": ISO})
    assert "a DVD drive is added to VM web1 only while it is off (Hyper-V cannot add one to a running VM)" in failure.value.message
    assert world.fake.ops()[before:] == ["vm_get"] and world.vm("web1")["dvds"] == []


def test_clone_exports_and_imports_a_copy_without_checkpoints(world):
    world.task(name="src", image=BASE, memory=512)
    world.snapshot(instance="src", name="s1")
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"state": "started", "wait": True, "wait_timeout": 60, "source": "src", "name": "c1", "cpus": 1, "memory": "128MiB",
                   "description": "a clone", "mode": "full", "snapshot": None, "target": None})
    backend = world.backend()
    before = len(world.fake.scripts)
    result = CloneReconciler(backend, values, diff_mode=True).run()
    ops = world.fake.ops()[before:]
    assert writes(ops) == ["vm_export", "vm_import", "item_remove", "checkpoint_remove", "vm_set", "vm_start"]
    clone, source = world.vm("c1"), world.vm("src")
    assert result["cloned"] and result["instance"]["state"] == "running" and result["instance"]["memory_mib"] == 128
    assert clone["id"] != source["id"] and clone["nics"][0]["mac"] != source["nics"][0]["mac"] and clone["notes"] == "a clone"
    assert world.fake.host.checkpoint_list({"name": "c1"}) == [] and len(world.fake.host.checkpoint_list({"name": "src"})) == 1
    assert all(not path.startswith("c:\\vms\\c1\\export") for path in world.fake.host.files)
    world.task(name="c1", state="absent", force=True)
    assert world.vm("src")["state"] == "Running"


def clone_task(world, check_mode=False, **params):
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"state": "present", "wait": True, "wait_timeout": 60, "mode": "full", "snapshot": None, "target": None})
    values.update(params)
    before = len(world.fake.scripts)
    result = CloneReconciler(world.backend(), values, check_mode=check_mode, diff_mode=True).run()
    return result, world.fake.ops()[before:]


def test_a_linked_clone_is_a_differencing_disk_on_each_disk_of_a_stopped_source(world):
    world.task(name="src", image=BASE, cpus=2, memory=512, description="the source", state="stopped")
    disk_task(world, name="data1", instance="src", size=1)
    source = world.vm("src")
    result, ops = clone_task(world, check_mode=True, source="src", name="l1", mode="linked", memory="256MiB")
    assert writes(ops) == [] and result["changed"] and world.vm("l1") is None
    result, ops = clone_task(world, source="src", name="l1", mode="linked", memory="256MiB", disk_size=2, state="started")
    assert writes(ops) == ["vhd_create", "vhd_create", "vhd_resize", "vm_create", "disk_attach", "vm_start"]
    assert result["actions"][0] == "clone instance l1 from src (linked)" and result["cloned"]
    clone = world.vm("l1")
    boot, data = (world.file(drive["path"]) for drive in clone["disks"])
    assert boot["path"] == "C:\\VMs\\l1\\Virtual Hard Disks\\l1.vhdx" and data["path"] == "C:\\VMs\\l1\\Virtual Hard Disks\\l1-disk1.vhdx"
    assert (boot["type"], boot["parent_path"], boot["size"]) == ("Differencing", source["disks"][0]["path"], 2 * GB)
    assert (data["type"], data["parent_path"]) == ("Differencing", source["disks"][1]["path"])
    assert (clone["cpu"], clone["memory_startup"], clone["notes"], clone["state"]) == (2, 256 * MB, "the source", "Running")
    assert clone["id"] != source["id"] and world.vm("src") == source  # the source is not touched
    again, ops = clone_task(world, source="src", name="l1", mode="linked", memory="256MiB", disk_size=2, state="started")
    assert ops == ["vm_get", "vhd_get"] and not again["changed"] and not again["cloned"]  # disk_size reads the boot VHDX
    world.task(name="l1", state="absent", force=True)  # the clone's own differencing disks go, never the source's
    assert world.file(boot["path"]) is None and world.file(data["path"]) is None
    assert all(world.file(drive["path"]) is not None for drive in source["disks"])


def test_a_linked_clone_of_a_running_source_is_refused_before_any_change(world):
    world.task(name="src", image=BASE)
    for check_mode in (True, False):
        before = len(world.fake.scripts)
        with pytest.raises(PolyvirtError) as failure:
            clone_task(world, check_mode=check_mode, source="src", name="l1", mode="linked")
        assert "a linked clone needs a stopped source: instance src is running; stop it first" in failure.value.message
        assert writes(world.fake.ops()[before:]) == [] and world.vm("l1") is None
    world.task(name="src", state="stopped")
    world.snapshot(instance="src", name="s1")
    with pytest.raises(InvalidInput) as failure:
        clone_task(world, source="src", name="l1", mode="linked", snapshot="s1")
    assert "snapshot cannot be combined with mode: linked" in failure.value.message and world.vm("l1") is None
    with pytest.raises(PolyvirtError) as failure:
        clone_task(world, source="src", name="l1", mode="linked", disk_size="512MiB")
    assert world.vm("l1") is None


def test_a_failed_linked_clone_leaves_nothing_behind(world):
    world.task(name="src", image=BASE, state="stopped")
    world.fake.fail_next["vm_create"] = "The operation failed."
    with pytest.raises(PolyvirtError):
        clone_task(world, source="src", name="l1", mode="linked")
    assert world.vm("l1") is None and world.file("C:\\VMs\\l1\\Virtual Hard Disks\\l1.vhdx") is None
    result, dummy = clone_task(world, source="src", name="l1", mode="linked")  # a re-run converges
    assert result["cloned"] and world.vm("l1")["state"] == "Off"


def test_clone_from_a_checkpoint_restores_the_copy_never_the_source(world):
    world.task(name="src", image=BASE, cpus=2)
    world.snapshot(instance="src", name="s1")
    world.task(name="src", cpus=3, allow_restart=True)
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"state": "present", "wait": True, "wait_timeout": 60, "source": "src", "name": "c2", "mode": "full", "snapshot": "s1",
                   "target": None})
    result = CloneReconciler(world.backend(), values).run()
    assert result["actions"] == ["clone instance c2 from src/s1"]
    assert (world.vm("c2")["cpu"], world.vm("c2")["state"]) == (2, "Off")
    assert (world.vm("src")["cpu"], world.vm("src")["state"]) == (3, "Running")


def test_a_guest_stuck_in_stopping_fails_clearly_and_force_turns_it_off():
    world = World(faults=["stuck-stopping:vm=web1,seconds=0"])
    world.task(name="web1", image=BASE)
    with pytest.raises(PolyvirtError) as failure:
        world.task(name="web1", state="stopped")
    assert "Failed to stop instance web1 on hyperv: Failed to shut down the virtual machine 'web1'" in failure.value.message
    assert world.vm("web1")["state"] == "Stopping"
    with pytest.raises(PolyvirtError) as failure:
        world.task(name="web1", state="stopped")  # not silently "pending": Hyper-V's reason, and no change
    assert "current state (Stopping)" in failure.value.message
    result, ops = world.task(name="web1", state="stopped", force=True)
    assert writes(ops) == ["vm_stop", "vm_stop"] and result["instance"]["state"] == "stopped" and world.vm("web1")["state"] == "Off"


def seed_files(world, name):
    dvds = world.vm(name)["dvds"]
    assert len(dvds) == 1
    return dvds[0]["path"], seed_iso.read(base64.b64decode(world.fake.host.file_read({"path": dvds[0]["path"]})["data"]))


def test_cloud_init_is_a_seed_iso_copied_in_chunks_and_attached_as_a_dvd(world, monkeypatch):
    monkeypatch.setattr(hyperv_instances, "CHUNK", 16 * 1024)  # several chunks even for a small ISO
    user_data = {"runcmd": ["echo it's \"$HOME\" `id`\nline 2"]}
    result, ops = world.task(name="web1", image=BASE, state="stopped", ssh_keys=["ssh-ed25519 AAAA polyvirt"],
                             cloud_init={"user_data": user_data, "network_config": {"version": 2, "ethernets": {"eth0": {"dhcp4": True}}}})
    chunks = [args for op, args in world.fake.scripts if op == "file_write"]
    assert len(chunks) > 1 and [args.get("append", False) for args in chunks] == [False] + [True] * (len(chunks) - 1)
    assert ops[-2:] == ["dvd_add", "vm_get"] and result["changed"]
    path, (label, files) = seed_files(world, "web1")
    assert path.startswith("C:\\VMs\\web1\\polyvirt-seed-u") and path.endswith(".iso")
    assert label == "cidata" and sorted(files) == ["meta-data", "network-config", "user-data"]
    assert files["user-data"].startswith("#cloud-config\n")
    data = yaml.safe_load(files["user-data"])
    assert data == {"runcmd": user_data["runcmd"], "ssh_authorized_keys": ["ssh-ed25519 AAAA polyvirt"]}  # quotes, $, backticks unchanged
    first_id = json.loads(files["meta-data"])["instance-id"]
    # Idempotent: one script; other user-data later is the reconciler's warning, and the seed stays.
    again, ops = world.task(name="web1", state="stopped", ssh_keys=["ssh-ed25519 AAAA polyvirt"],
                            cloud_init={"user_data": user_data, "network_config": {"version": 2, "ethernets": {"eth0": {"dhcp4": True}}}})
    assert ops == ["vm_get"] and not again["changed"] and not again.get("warnings")
    other, ops = world.task(name="web1", state="stopped", cloud_init={"user_data": {"runcmd": ["true"]}})
    assert writes(ops) == [] and not other["changed"] and "only reads it at first boot" in other["warnings"][0]
    assert seed_files(world, "web1")[0] == path
    # A second VM gets its own seed with a fresh instance-id; deleting a VM deletes its seed and nothing else.
    world.task(name="web2", image=BASE, state="stopped", cloud_init={"user_data": user_data})
    other_path, (label, files) = seed_files(world, "web2")
    assert json.loads(files["meta-data"])["instance-id"] != first_id and "network-config" not in files
    result, ops = world.task(name="web1", state="absent")
    assert world.fake.host.files.get(path.lower()) is None and world.fake.host.files.get(other_path.lower()) is not None


def test_a_failed_seed_leaves_nothing_behind(world):
    world.fake.fail_next["dvd_add"] = "The operation failed (injected fault)."
    with pytest.raises(PolyvirtError):
        world.task(name="web1", image=BASE, state="stopped", cloud_init={"user_data": {"runcmd": ["true"]}})
    assert world.vm("web1") is None
    assert [f for f in world.fake.host.files if "polyvirt-seed" in f or "\\web1\\" in f] == []
    world.task(name="web1", image=BASE, state="stopped", cloud_init={"user_data": {"runcmd": ["true"]}})
    assert len(world.vm("web1")["dvds"]) == 1


def test_backups_export_list_retain_restore_and_delete(world):
    world.task(name="web1", image=BASE)
    result, ops = world.backup(instance="web1", name="bk1")
    assert writes(ops) == ["vm_export"] and result["backup"]["name"] == "bk1"
    again, ops = world.backup(instance="web1", name="bk1")
    assert ops == ["vm_get", "dir_list"] and not again["changed"]
    result, ops = world.backup(instance="web1", name="bk2", retain=1)
    assert writes(ops) == ["vm_export", "item_remove"] and [b["name"] for b in result["backups"]] == ["bk2"]
    folder = "C:\\VMs\\Backups\\web1\\bk2\\web1"
    names = sorted(item["name"] for item in world.fake.host.dir_list({"path": folder}))
    assert names == ["Virtual Hard Disks", "Virtual Machines"]  # no checkpoints: no Snapshots folder
    old_id = world.vm("web1")["id"]
    restored, ops = world.backup(instance="web1", name="bk2", state="restored")
    vm = world.vm("web1")
    assert restored["changed"] and vm["id"] != old_id and vm["state"] == "Running"
    assert [v["name"] for v in world.fake.host.vm_list({})] == ["web1"]  # no staging copy left
    copy, ops = world.backup(instance="web1", name="bk2", state="restored", restore_to="web2")
    assert world.vm("web2")["path"] == "C:\\VMs\\web2" and world.vm("web2")["state"] == "Off"
    deleted, ops = world.backup(instance="web1", name="bk2", state="absent")
    assert writes(ops) == ["item_remove"] and deleted["backups"] == []


@pytest.mark.parametrize("params, expect", [
    ({"name": "a*b"}, "is not a valid Hyper-V backup name"),
    ({"name": "x", "storage": "Backups"}, "storage must be an absolute Windows path"),
    ({"name": "x", "location": "/tmp/x.tar"}, "backup location (export to the controller) is not supported by the hyperv backend"),
    ({"name": "x", "mode": "stop"}, "backup mode is not supported by the hyperv backend"),
])
def test_bad_backup_input_is_refused_before_any_script(world, params, expect):
    with pytest.raises(PolyvirtError) as failure:
        world.backup(instance="web1", **params)
    assert expect in failure.value.message
    assert world.fake.scripts == []


def test_backups_in_another_storage_are_found_there(world):
    world.task(name="web1", image=BASE)
    world.backup(instance="web1", name="bk1", storage="D:\\Backups")
    assert world.fake.host.dir_list({"path": "D:\\Backups\\web1"})[0]["name"] == "bk1"
    again, ops = world.backup(instance="web1", name="bk1", storage="D:\\Backups")
    assert not again["changed"] and writes(ops) == []


def test_a_name_two_vms_share_fails_the_task_naming_both_before_any_change(world):
    first = world.fake.host.vm_create({"name": "twin"})
    second = world.fake.host.vm_create({"name": "twin"})  # Hyper-V allows it (New-VM outside the collection)
    for task in (lambda: world.task(name="twin", image=BASE, cpus=2),
                 lambda: disk_task(world, name="data1", instance="twin", size=1),
                 lambda: clone_task(world, source="twin", name="c1")):
        before = len(world.fake.scripts)
        with pytest.raises(PolyvirtError) as failure:
            task()
        assert "There are 2 virtual machines named 'twin' on this host" in failure.value.message
        assert first["id"] in failure.value.message and second["id"] in failure.value.message
        assert writes(world.fake.ops()[before:]) == []
    assert [vm["cpu"] for vm in world.fake.host.vm_list({})] == [1, 1] and world.vm("c1") is None


@pytest.mark.parametrize("name", ["web*", "web?", "web[1]"])
def test_wildcard_characters_in_a_name_are_refused_before_any_script(world, name):
    with pytest.raises(InvalidInput):
        world.task(name=name, image=BASE)
    assert world.fake.scripts == []
