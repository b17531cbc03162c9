# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# --fault SPECs, --state persistence and the command line contract.

import json
import os
import subprocess
import sys

import pytest
from kubernetes.dynamic import exceptions as dexc

from .conftest import ADMIN, NS, ROOT, Sim, condition, unique, wait_for
from .test_cozystack import APPS, fetch, launcher, make_disk, make_vm, res, vm_ip

FAULTS = ("--time-scale", "0.05",
          "--fault", "error:verb=create,resource=configmaps,code=503,count=1",
          "--fault", "error:verb=get,resource=secrets,name=throttled,code=429,retry=0",
          "--fault", "no-ip:vm=noip",
          "--fault", "slow-import:disk=slow,factor=40",
          "--fault", "import-fail:disk=broken",
          "--fault", "unschedulable:vm=stuck",
          "--fault", "lb-pending:vm=nolb") + ADMIN


@pytest.fixture(scope="module")
def fdyn(sims):
    return sims(*FAULTS).dynamic()


def test_injected_api_errors(fdyn):
    cms = res(fdyn, "v1", "ConfigMap")
    with pytest.raises(dexc.DynamicApiError) as err:
        cms.create(namespace=NS, body={"metadata": {"name": "first"}})
    assert err.value.status == 503 and json.loads(err.value.body)["reason"] == "ServiceUnavailable"
    assert cms.create(namespace=NS, body={"metadata": {"name": "first"}}).metadata.name == "first"   # count=1: only once
    with pytest.raises(dexc.DynamicApiError) as err:
        res(fdyn, "v1", "Secret").get(namespace=NS, name="throttled")
    assert err.value.status == 429 and err.value.headers.get("Retry-After") == "0"


def test_vm_that_never_gets_an_ip(fdyn):
    good, bad = unique("ok"), "noip"
    make_vm(fdyn, bad, {"instanceType": "u1.medium"})
    make_vm(fdyn, good, {"instanceType": "u1.medium"})
    wait_for(lambda: vm_ip(fdyn, good), bool, what="control VM IP")
    pod = wait_for(lambda: launcher(fdyn, bad), lambda p: p and p["status"].get("podIP"), what="launcher pod of noip")
    assert pod["status"]["phase"] == "Running"
    vmi = fetch(fdyn, "kubevirt.io/v1", "VirtualMachineInstance", "vm-instance-" + bad)()
    assert vmi["status"]["phase"] == "Running" and not vmi["status"]["interfaces"][0].get("ipAddress")


def test_slow_and_failing_imports(fdyn):
    normal = unique("fast")
    for name in ("slow", "broken", normal):
        make_disk(fdyn, name)
    wait_for(fetch(fdyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + normal),
             lambda d: d and d["status"]["phase"] == "Succeeded", what="normal import")
    slow = fetch(fdyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-slow")()
    assert slow["status"]["phase"] in ("ImportScheduled", "ImportInProgress")
    broken = wait_for(fetch(fdyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-broken"),
                      lambda d: d["status"]["phase"] == "Failed")
    assert condition(broken, "Running")["reason"] == "Error"
    make_vm(fdyn, "usesbroken", {"instanceType": "u1.medium", "disks": [{"name": "broken"}]})
    wait_for(fetch(fdyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-usesbroken"),
             lambda m: m and m["status"].get("printableStatus") == "DataVolumeError")


def test_unschedulable_and_pending_load_balancer(fdyn):
    make_vm(fdyn, "stuck", {"instanceType": "u1.medium"})
    wait_for(fetch(fdyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-stuck"),
             lambda m: m and m["status"].get("printableStatus") == "ErrorUnschedulable")
    make_vm(fdyn, "nolb", {"instanceType": "u1.medium", "external": True})
    # legacy Helm wait: the release waits for the LoadBalancer address, the VM itself runs
    wait_for(lambda: vm_ip(fdyn, "nolb"), bool, what="VM runs")
    app = fetch(fdyn, APPS, "VMInstance", "nolb")()
    assert condition(app, "Ready")["status"] == "Unknown" and "Running 'install' action" in condition(app, "Ready")["message"]


def test_read_after_create_lag(sims):
    dyn = sims("--fault", "read-lag:seconds=30", "--time-scale", "0", *ADMIN).dynamic()
    name = unique("lag")
    make_disk(dyn, name, {})
    with pytest.raises(dexc.NotFoundError):
        res(dyn, APPS, "VMDisk").get(namespace=NS, name=name)


def test_bad_fault_spec_is_refused():
    proc = subprocess.run([sys.executable, "-m", "tests.simulators.hikube", "--port", "0", "--fault", "meteor:x=1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and "unknown fault" in proc.stderr


def test_state_persists_across_restarts(tmp_path):
    state = str(tmp_path / "state.json")
    first = Sim(str(tmp_path), ("--state", state, "--time-scale", "0") + ADMIN)
    try:
        dyn = first.dynamic()
        created = make_disk(dyn, "keep", {}).to_dict()
        wait_for(fetch(dyn, APPS, "VMDisk", "keep"), lambda o: condition(o, "Ready") and condition(o, "Ready")["status"] == "True")
        make_vm(dyn, "keepvm", {"instanceType": "u1.medium"})
        first_ip = vm_ip(dyn, "keepvm")
        assert first_ip
    finally:
        assert first.stop() == 0
    assert os.path.exists(state)
    second = Sim(str(tmp_path), ("--state", state, "--time-scale", "0") + ADMIN)
    try:
        dyn = second.dynamic()
        again = res(dyn, APPS, "VMDisk").get(namespace=NS, name="keep").to_dict()
        assert again["metadata"]["uid"] == created["metadata"]["uid"]
        assert condition(again, "Ready")["status"] == "True"
        assert fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-keep")()["status"]["phase"] == "Succeeded"
        # a VM created after the restart gets a fresh address, the old one keeps its own
        make_vm(dyn, "newvm", {"instanceType": "u1.medium"})
        assert vm_ip(dyn, "keepvm") == first_ip and vm_ip(dyn, "newvm") not in (None, first_ip)
        newer = res(dyn, "v1", "ConfigMap").create(namespace=NS, body={"metadata": {"name": "after"}})
        assert int(newer.metadata.resourceVersion) > int(again["metadata"]["resourceVersion"])
    finally:
        assert second.stop() == 0
