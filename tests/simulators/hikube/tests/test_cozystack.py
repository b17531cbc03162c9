# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Cozystack quirks of apps.cozystack.io and the controller lifecycle (VMDisk -> DataVolume/PVC, VMInstance -> VM/VMI/Pod/Service).

import json
import urllib.error
import urllib.request

import pytest
from kubernetes import watch as kwatch
from kubernetes.dynamic import exceptions as dexc

from .conftest import ADMIN, NS, condition, unique, wait_for

APPS = "apps.cozystack.io/v1alpha1"
MERGE = "application/merge-patch+json"


def res(dyn, api_version, kind):
    return dyn.resources.get(api_version=api_version, kind=kind)


def fetch(dyn, api_version, kind, name, ns=NS):
    """The object as a dict, or None when it does not exist."""
    def _get():
        try:
            return res(dyn, api_version, kind).get(namespace=ns, name=name).to_dict()
        except dexc.NotFoundError:
            return None
    return _get


def ready(obj):
    cond = condition(obj or {}, "Ready")
    return cond is not None and cond["status"] == "True"


def make_disk(dyn, name, spec=None):
    body = {"apiVersion": APPS, "kind": "VMDisk", "metadata": {"name": name},
            "spec": spec if spec is not None else {"source": {"http": {"url": "https://example.org/noble.img"}}, "storage": "10Gi"}}
    return res(dyn, APPS, "VMDisk").create(namespace=NS, body=body)


def make_vm(dyn, name, spec):
    body = {"apiVersion": APPS, "kind": "VMInstance", "metadata": {"name": name}, "spec": spec}
    return res(dyn, APPS, "VMInstance").create(namespace=NS, body=body)


def vm_ip(dyn, name):
    vmi = fetch(dyn, "kubevirt.io/v1", "VirtualMachineInstance", "vm-instance-" + name)()
    if not vmi:
        return None
    return ((vmi.get("status") or {}).get("interfaces") or [{}])[0].get("ipAddress")


def launcher(dyn, name):
    pods = res(dyn, "v1", "Pod").get(namespace=NS, label_selector="vm.kubevirt.io/name=vm-instance-" + name).items
    return pods[0].to_dict() if pods else None


def test_defaults_filled_on_read_and_no_generation(dyn):
    name = unique("def")
    created = make_vm(dyn, name, {"instanceType": "u1.medium"}).to_dict()
    spec = created["spec"]
    assert spec["runStrategy"] == "Always" and spec["externalMethod"] == "PortList"
    assert spec["externalPorts"] == [22] and spec["externalAllowICMP"] is True and spec["disks"] == []
    assert spec["instanceProfile"] == "ubuntu" and "running" not in spec
    assert "generation" not in created["metadata"]
    listed = res(dyn, APPS, "VMInstance").get(namespace=NS, field_selector="metadata.name=" + name).to_dict()
    assert listed["items"][0]["spec"]["externalPorts"] == [22]
    res(dyn, APPS, "VMInstance").delete(namespace=NS, name=name)


def test_duplicate_create_is_500(dyn):
    name = unique("dup")
    make_disk(dyn, name, {})
    with pytest.raises(dexc.DynamicApiError) as err:
        make_disk(dyn, name, {})
    assert err.value.status == 500
    body = json.loads(err.value.body)
    assert "already exists" in body["message"] and body["message"].startswith("failed to create HelmRelease")
    assert "reason" not in body


def test_stale_resource_version_last_write_wins(dyn):
    disks = res(dyn, APPS, "VMDisk")
    name = unique("lww")
    first = make_disk(dyn, name, {"storage": "5Gi"}).to_dict()
    disks.patch(namespace=NS, name=name, body={"spec": {"storage": "6Gi"}}, content_type=MERGE)
    first["spec"]["storage"] = "7Gi"
    replaced = disks.replace(namespace=NS, body=first)   # stale resourceVersion: no 409 on Cozystack
    assert replaced.spec.storage == "7Gi"
    assert int(replaced.metadata.resourceVersion) > int(first["metadata"]["resourceVersion"])


def test_name_length_limits(dyn):
    assert make_vm(dyn, "a" * 41, {}).metadata.name == "a" * 41
    with pytest.raises(dexc.UnprocessibleEntityError) as err:
        make_vm(dyn, "b" * 42, {})
    assert "max length is 41" in json.loads(err.value.body)["message"]
    assert make_disk(dyn, "c" * 45, {}).metadata.name == "c" * 45
    with pytest.raises(dexc.UnprocessibleEntityError):
        make_disk(dyn, "d" * 46, {})
    with pytest.raises(dexc.UnprocessibleEntityError):
        make_disk(dyn, "9starts-with-digit", {})
    with pytest.raises(dexc.BadRequestError):
        make_disk(dyn, unique("us"), {"_internal": 1})
    res(dyn, APPS, "VMInstance").delete(namespace=NS, name="a" * 41)
    res(dyn, APPS, "VMDisk").delete(namespace=NS, name="c" * 45)


def test_strategic_merge_patch_breaks_on_lists(dyn):
    vms = res(dyn, APPS, "VMInstance")
    name = unique("smp")
    make_vm(dyn, name, {"instanceType": "u1.medium", "sshKeys": ["ssh-ed25519 AAAA a@b"], "runStrategy": "Halted"})
    with pytest.raises(dexc.DynamicApiError) as err:
        vms.patch(namespace=NS, name=name, body={"spec": {"disks": [{"name": "x"}]}})  # client default: strategic merge
    assert err.value.status == 500
    assert 'unable to find api field in struct JSON for the json field "disks"' in json.loads(err.value.body)["message"]
    # scalars go through; merge patch replaces lists wholesale
    assert vms.patch(namespace=NS, name=name, body={"spec": {"external": True}}).spec.external is True
    patched = vms.patch(namespace=NS, name=name, body={"spec": {"sshKeys": ["ssh-ed25519 BBBB c@d"]}}, content_type=MERGE)
    assert patched.spec.sshKeys == ["ssh-ed25519 BBBB c@d"]
    vms.delete(namespace=NS, name=name)


def test_disk_and_instance_lifecycle(dyn):
    disk, vm = unique("sys"), unique("vm")
    dvs = res(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume")
    start = dvs.get(namespace=NS).metadata.resourceVersion
    make_disk(dyn, disk)
    phases = []
    watcher = kwatch.Watch()
    for event in dvs.watch(namespace=NS, name="vm-disk-" + disk, resource_version=start, timeout=20, watcher=watcher):
        phase = (event["raw_object"].get("status") or {}).get("phase")
        if not phases or phases[-1] != phase:
            phases.append(phase)
        if phase == "Succeeded":
            assert event["raw_object"]["status"]["progress"] == "100.0%"
            watcher.stop()
    assert phases[-1] == "Succeeded" and "ImportInProgress" in phases, phases
    pvc = wait_for(fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + disk), lambda p: p and p["status"]["phase"] == "Bound")
    assert pvc["spec"]["storageClassName"] == "replicated" and pvc["status"]["capacity"]["storage"] == "10Gi"
    app = wait_for(fetch(dyn, APPS, "VMDisk", disk), ready, what="VMDisk Ready")
    assert condition(app, "Ready")["reason"] == "InstallSucceeded" and app["status"]["version"]

    make_vm(dyn, vm, {"instanceType": "u1.medium", "disks": [{"name": disk}], "external": True,
                      "externalPorts": [22, 80], "sshKeys": ["ssh-ed25519 AAAA me@host"], "cloudInit": "#cloud-config\n"})
    app = wait_for(fetch(dyn, APPS, "VMInstance", vm), lambda o: condition(o or {}, "WorkloadsReady") and
                   condition(o, "WorkloadsReady")["status"] == "True", what="WorkloadsReady")
    assert ready(app) and condition(app, "Released")["status"] == "True"
    ip = wait_for(lambda: vm_ip(dyn, vm), bool, what="VMI IP")
    machine = fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + vm)()
    assert machine["status"]["printableStatus"] == "Running" and ready(machine)
    assert machine["spec"]["runStrategy"] == "Always"
    assert machine["spec"]["instancetype"] == {"kind": "VirtualMachineClusterInstancetype", "name": "u1.medium"}
    volumes = machine["spec"]["template"]["spec"]["volumes"]
    assert {"name": "disk-" + disk, "dataVolume": {"name": "vm-disk-" + disk}} in volumes
    pod = launcher(dyn, vm)
    assert pod["status"]["podIP"] == ip and pod["status"]["phase"] == "Running"
    svc = wait_for(fetch(dyn, "v1", "Service", "vm-instance-" + vm), lambda s: s["status"]["loadBalancer"].get("ingress"))
    assert svc["spec"]["type"] == "LoadBalancer" and [p["port"] for p in svc["spec"]["ports"]] == [22, 80]
    assert svc["metadata"]["labels"]["apps.cozystack.io/user-service"] == "true"
    assert fetch(dyn, "v1", "Secret", "vm-instance-%s-cloud-init" % vm)()["data"]["userdata"]
    assert fetch(dyn, "v1", "Secret", "vm-instance-%s-ssh-keys" % vm)()

    # stop with runStrategy Halted: VMI and pod go away; the release waits on kstatus, which reads the halted VM
    # (observedGeneration behind) as InProgress (test_kstatus.py has the rest)
    res(dyn, APPS, "VMInstance").patch(namespace=NS, name=vm, body={"spec": {"runStrategy": "Halted"}}, content_type=MERGE)
    wait_for(fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + vm),
             lambda m: m["status"]["printableStatus"] == "Stopped", what="Stopped")
    assert fetch(dyn, "kubevirt.io/v1", "VirtualMachineInstance", "vm-instance-" + vm)() is None
    assert launcher(dyn, vm) is None
    app = wait_for(fetch(dyn, APPS, "VMInstance", vm), lambda o: condition(o, "WorkloadsReady")["status"] == "False")
    assert (condition(app, "Ready")["status"], condition(app, "Ready")["reason"]) == ("Unknown", "Progressing")
    res(dyn, APPS, "VMInstance").patch(namespace=NS, name=vm, body={"spec": {"runStrategy": "Always"}}, content_type=MERGE)
    assert wait_for(lambda: vm_ip(dyn, vm), bool, what="IP after start") == ip, "the address survives a restart"

    # delete: Status Success, still readable with deletionTimestamp, then gone with its VM; the disk stays
    status = res(dyn, APPS, "VMInstance").delete(namespace=NS, name=vm)
    assert status.status == "Success"
    wait_for(fetch(dyn, APPS, "VMInstance", vm), lambda o: o is None, what="VMInstance gone")
    assert fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + vm)() is None
    assert fetch(dyn, "v1", "Service", "vm-instance-" + vm)() is None
    assert fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + disk)() is not None
    res(dyn, APPS, "VMDisk").delete(namespace=NS, name=disk)
    wait_for(fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + disk), lambda o: o is None, what="PVC gone")


def test_delete_is_visible_with_deletion_timestamp(sims):
    dyn = sims("--time-scale", "2", *ADMIN).dynamic()
    name = unique("del")
    make_disk(dyn, name, {})
    res(dyn, APPS, "VMDisk").delete(namespace=NS, name=name)
    held = fetch(dyn, APPS, "VMDisk", name)()
    assert held is not None and held["metadata"]["deletionTimestamp"]
    wait_for(fetch(dyn, APPS, "VMDisk", name), lambda o: o is None, timeout=10, what="uninstalled")


def test_chart_failures_surface_as_ready_false(dyn):
    bad_type, no_disk, strings = unique("it"), unique("nd"), unique("str")
    make_vm(dyn, bad_type, {"instanceType": "x9.huge"})
    make_vm(dyn, no_disk, {"disks": [{"name": no_disk + "-d"}], "runStrategy": "Halted"})
    make_vm(dyn, strings, {"disks": ["vm-system-disk"]})
    app = wait_for(fetch(dyn, APPS, "VMInstance", bad_type), lambda o: condition(o, "Ready")["status"] == "False")
    assert condition(app, "Ready")["reason"] == "InstallFailed"
    assert "Specified instanceType does not exist in the cluster: x9.huge" in condition(app, "Ready")["message"]
    app = wait_for(fetch(dyn, APPS, "VMInstance", strings), lambda o: condition(o, "Ready")["status"] == "False")
    assert "disks.0: Invalid type. Expected: object, given: string" in condition(app, "Ready")["message"]
    app = wait_for(fetch(dyn, APPS, "VMInstance", no_disk), lambda o: condition(o, "Ready")["status"] == "False")
    assert "Specified disk not exists in cluster: %s-d" % no_disk in condition(app, "Ready")["message"]  # the bare disk name (vm.yaml)
    assert fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + no_disk)() is None
    # Flux retries on failure: once the disk exists the release installs
    make_disk(dyn, no_disk + "-d", {})
    app = wait_for(fetch(dyn, APPS, "VMInstance", no_disk), ready, timeout=20, what="retry installs")
    assert condition(app, "Ready")["reason"] == "InstallSucceeded"


def test_kubevirt_subresources(dyn, cozy):
    name = unique("pw")
    make_vm(dyn, name, {"instanceType": "u1.medium"})
    ip = wait_for(lambda: vm_ip(dyn, name), bool, what="IP")
    first_pod = launcher(dyn, name)["metadata"]["uid"]

    def call(action):
        """PUT /apis/subresources.kubevirt.io/v1/.../virtualmachines/<vm>/<action>, as virtctl does."""
        path = "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachines/vm-instance-%s/%s" % (NS, name, action)
        req = urllib.request.Request(cozy.url + path, data=b"{}", method="PUT",
                                     headers={"Authorization": "Bearer polyvirt-sim", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    code, status = call("start")
    assert code == 409 and status["message"].endswith("does not support manual start requests")
    assert call("restart") == 202
    wait_for(lambda: launcher(dyn, name), lambda p: p and p["metadata"]["uid"] != first_pod and p["status"].get("podIP"),
             what="new launcher pod")
    assert wait_for(lambda: vm_ip(dyn, name), bool) == ip
    assert call("stop") == 202
    vm = wait_for(fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + name),
                  lambda m: m["status"]["printableStatus"] == "Stopped")
    assert vm["spec"]["runStrategy"] == "Halted"
    code, status = call("stop")
    assert code == 409 and status["reason"] == "Conflict" and "VM is not running" in status["message"]
    assert call("start") == 202
    wait_for(fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + name),
             lambda m: m["status"]["printableStatus"] == "Running")


def test_clone_refused_while_source_vm_runs(dyn):
    src, clone, vm = unique("src"), unique("cl"), unique("cvm")
    make_disk(dyn, src)
    make_vm(dyn, vm, {"instanceType": "u1.medium", "disks": [{"name": src}]})
    wait_for(lambda: launcher(dyn, vm), lambda p: p and p["status"].get("podIP"), what="source VM running")
    make_disk(dyn, clone, {"source": {"disk": {"name": src}}})
    dv = wait_for(fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + clone),
                  lambda d: d and condition(d, "Ready") and condition(d, "Ready").get("reason") == "CloneSourceInUse")
    assert dv["spec"]["source"] == {"pvc": {"namespace": NS, "name": "vm-disk-" + src}}
    assert dv["status"]["phase"] == "CloneScheduled"
    events = res(dyn, "v1", "Event").get(namespace=NS, field_selector="involvedObject.name=vm-disk-" + clone).items
    assert any(e.reason == "CloneSourceInUse" for e in events)
    res(dyn, APPS, "VMInstance").patch(namespace=NS, name=vm, body={"spec": {"runStrategy": "Halted"}}, content_type=MERGE)
    wait_for(fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + clone),
             lambda d: d["status"]["phase"] == "Succeeded", what="clone done after halt")


def test_options_api(dyn):
    opts = res(dyn, "core.cozystack.io/v1alpha1", "Option")
    types = opts.get(namespace=NS, name="instancetype").to_dict()
    values = {i["value"] for i in types["spec"]["items"]}
    assert {"u1.medium", "s1.small", "m1.large"} <= values
    classes = opts.get(namespace=NS, name="storageclass").to_dict()["spec"]["items"]
    assert {"value": "replicated", "default": True} in classes
    name = unique("opt")
    make_disk(dyn, name, {})
    assert name in {i["value"] for i in opts.get(namespace=NS, name="vmdisk").to_dict()["spec"]["items"]}
    assert "ubuntu" in {i["value"] for i in opts.get(namespace=NS, name="image").to_dict()["spec"]["items"]}
    with pytest.raises(dexc.NotFoundError):
        opts.get(namespace=NS, name="nope")


def test_golden_image_disk(dyn):
    name = unique("gold")
    make_disk(dyn, name, {"source": {"image": {"name": "ubuntu"}}, "storage": "20Gi"})
    dv = wait_for(fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + name),
                  lambda d: d and d["status"]["phase"] == "Succeeded")
    assert dv["spec"]["source"] == {"pvc": {"namespace": "cozy-public", "name": "vm-default-images-ubuntu"}}


def test_snapshot_and_backup(dyn):
    vm = unique("bk")
    make_vm(dyn, vm, {"instanceType": "u1.medium", "runStrategy": "Halted"})
    wait_for(fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + vm), lambda m: m is not None)
    snaps = res(dyn, "snapshot.kubevirt.io/v1beta1", "VirtualMachineSnapshot")
    snaps.create(namespace=NS, body={"metadata": {"name": vm + "-s"}, "spec": {
        "source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm-instance-" + vm}}})
    snap = wait_for(fetch(dyn, "snapshot.kubevirt.io/v1beta1", "VirtualMachineSnapshot", vm + "-s"),
                    lambda s: (s.get("status") or {}).get("readyToUse"))
    assert snap["status"]["phase"] == "Succeeded" and snap["status"]["virtualMachineSnapshotContentName"]
    jobs = res(dyn, "backups.cozystack.io/v1alpha1", "BackupJob")
    jobs.create(namespace=NS, body={"metadata": {"name": vm + "-b"}, "spec": {
        "backupClassName": "cozy-default", "applicationRef": {"apiGroup": "apps.cozystack.io", "kind": "VMInstance", "name": vm}}})
    job = wait_for(fetch(dyn, "backups.cozystack.io/v1alpha1", "BackupJob", vm + "-b"),
                   lambda j: (j.get("status") or {}).get("phase") == "Succeeded")
    backup = fetch(dyn, "backups.cozystack.io/v1alpha1", "Backup", job["status"]["backupRef"]["name"])()
    assert backup["status"]["phase"] == "Ready" and backup["spec"]["applicationRef"]["name"] == vm
    # restore a copy into another tenant namespace
    res(dyn, "v1", "Namespace").create(body={"metadata": {"name": "tenant-" + vm}})
    res(dyn, "backups.cozystack.io/v1alpha1", "RestoreJob").create(namespace=NS, body={
        "metadata": {"name": vm + "-r"}, "spec": {"backupRef": {"name": vm + "-b"}, "options": {"targetNamespace": "tenant-" + vm}}})
    wait_for(fetch(dyn, "backups.cozystack.io/v1alpha1", "RestoreJob", vm + "-r"),
             lambda j: (j.get("status") or {}).get("phase") == "Succeeded")
    copy = fetch(dyn, APPS, "VMInstance", vm, ns="tenant-" + vm)()
    assert copy["spec"]["runStrategy"] == "Halted" and copy["spec"]["instanceType"] == "u1.medium"
    failed = res(dyn, "backups.cozystack.io/v1alpha1", "BackupJob").create(namespace=NS, body={
        "metadata": {"name": vm + "-missing"}, "spec": {"backupClassName": "cozy-default", "applicationRef": {
            "apiGroup": "apps.cozystack.io", "kind": "VMInstance", "name": "absent"}}})
    job = wait_for(fetch(dyn, "backups.cozystack.io/v1alpha1", "BackupJob", failed.metadata.name),
                   lambda j: (j.get("status") or {}).get("phase") == "Failed")
    assert "not found" in job["status"]["message"]


def test_legacy_running_boolean(sims):
    dyn = sims("--cozystack-version", "0.41.11", "--time-scale", "0", *ADMIN).dynamic()
    name = unique("old")
    created = make_vm(dyn, name, {"instanceType": "u1.medium", "running": False}).to_dict()
    assert "runStrategy" not in created["spec"] and created["spec"]["running"] is False
    vm = wait_for(fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + name), lambda m: m is not None)
    assert vm["spec"]["runStrategy"] == "Halted"
    defaulted = make_vm(dyn, unique("old"), {}).to_dict()
    assert defaulted["spec"]["running"] is True


def test_running_false_ignored_on_v1(dyn):
    name = unique("run")
    created = make_vm(dyn, name, {"instanceType": "u1.medium", "running": False}).to_dict()
    assert created["spec"]["runStrategy"] == "Always" and created["spec"]["running"] is False
    wait_for(lambda: vm_ip(dyn, name), bool, what="VM runs although running: false")


def test_crd_mode_lifecycle(dyn_crd):
    """--mode crd with --time-scale 0: plain CRD semantics, the controller materialises at once."""
    disk, vm = unique("cd"), unique("cv")
    make_disk(dyn_crd, disk, {"source": {}})
    make_vm(dyn_crd, vm, {"disks": [{"name": disk}]})
    assert vm_ip(dyn_crd, vm)
    app = fetch(dyn_crd, APPS, "VMInstance", vm)()
    assert ready(app) and app["metadata"]["generation"] == 1


def test_wait_for_first_consumer_disk(dyn):
    disk, vm = unique("wf"), unique("wfvm")
    make_disk(dyn, disk, {"source": {}, "storageClass": "local"})
    wait_for(fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + disk),
             lambda d: d and d["status"]["phase"] == "WaitForFirstConsumer")
    assert fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + disk)()["status"]["phase"] == "Pending"
    wait_for(fetch(dyn, APPS, "VMDisk", disk), ready, what="Ready mirrors Helm, not the volume")
    assert fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + disk)()["status"]["phase"] == "WaitForFirstConsumer"
    make_vm(dyn, vm, {"instanceType": "u1.medium", "disks": [{"name": disk}]})
    wait_for(lambda: vm_ip(dyn, vm), bool, what="VM starts and binds the WFFC volume")
    assert fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + disk)()["status"]["phase"] == "Bound"


def test_disk_changes_after_creation(dyn):
    disks = res(dyn, APPS, "VMDisk")
    name = unique("rs")
    make_disk(dyn, name, {"source": {}, "storage": "5Gi"})
    wait_for(fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + name), lambda p: p and p["status"]["phase"] == "Bound")
    disks.patch(namespace=NS, name=name, body={"spec": {"storage": "8Gi", "storageClass": "local",
                                                        "source": {"http": {"url": "https://example.org/other.img"}}}},
                content_type=MERGE)
    pvc = wait_for(fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + name),
                   lambda p: p["spec"]["resources"]["requests"]["storage"] == "8Gi", what="PVC grown")
    assert pvc["spec"]["storageClassName"] == "replicated", "storageClass is not re-rendered"
    dv = fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + name)()
    assert dv["spec"]["source"] == {"blank": {}}, "source changes have no effect after creation"
    disks.patch(namespace=NS, name=name, body={"spec": {"storage": "1Gi"}}, content_type=MERGE)
    app = wait_for(fetch(dyn, APPS, "VMDisk", name), lambda o: ready(o) and ".v3 " in condition(o, "Ready")["message"])
    assert condition(app, "Ready")["reason"] == "UpgradeSucceeded"
    assert fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + name)()["spec"]["resources"]["requests"]["storage"] == "8Gi"


def test_update_goes_through_progressing(dyn):
    vms = res(dyn, APPS, "VMInstance")
    name = unique("up")
    make_vm(dyn, name, {"instanceType": "u1.medium", "runStrategy": "Halted"})
    first = wait_for(fetch(dyn, APPS, "VMInstance", name), ready)
    start = first["metadata"]["resourceVersion"]
    vms.patch(namespace=NS, name=name, body={"spec": {"external": True}}, content_type=MERGE)
    seen = []
    watcher = kwatch.Watch()
    for event in vms.watch(namespace=NS, name=name, resource_version=start, timeout=20, watcher=watcher):
        cond = condition(event["raw_object"], "Ready") or {}
        state = (cond.get("status"), cond.get("reason"))
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == ("True", "UpgradeSucceeded"):
            watcher.stop()
    assert seen[-2:] == [("Unknown", "Progressing"), ("True", "UpgradeSucceeded")], seen
    svc = fetch(dyn, "v1", "Service", "vm-instance-" + name)()
    assert svc["spec"]["type"] == "LoadBalancer" and svc["status"]["loadBalancer"]["ingress"]


def test_tenant_rbac(sims):
    """On by default (no option), as a Hikube tenant's kubeconfig has it; --no-tenant-rbac is the admin view."""
    sim = sims("--time-scale", "0")
    dyn = sim.dynamic()
    name = unique("rb")
    make_vm(dyn, name, {"instanceType": "u1.medium"})
    assert fetch(dyn, "kubevirt.io/v1", "VirtualMachine", "vm-instance-" + name)()["status"]["printableStatus"] == "Running"
    assert launcher(dyn, name)["status"]["podIP"]
    with pytest.raises(dexc.ForbiddenError) as err:
        res(dyn, "kubevirt.io/v1", "VirtualMachineInstance").get(namespace=NS, name="vm-instance-" + name)
    assert json.loads(err.value.body)["message"] == (
        'virtualmachineinstances.kubevirt.io "vm-instance-%s" is forbidden: User "tenant-demo-admin" cannot get resource '
        '"virtualmachineinstances" in API group "kubevirt.io" in the namespace "%s"' % (name, NS))
    with pytest.raises(dexc.ForbiddenError):
        res(dyn, "v1", "Pod").get(namespace="kube-system")
    with pytest.raises(dexc.ForbiddenError):
        res(dyn, "v1", "Service").create(namespace=NS, body={"metadata": {"name": "x"}, "spec": {"ports": [{"port": 1}]}})
    assert res(dyn, "core.cozystack.io/v1alpha1", "Option").get(namespace=NS, name="instancetype").spec["items"]
    with pytest.raises(dexc.ForbiddenError):
        res(dyn, "instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterInstancetype").get()
    # DataVolumes only by name (each VMDisk release's own Role), so no list
    disk = unique("rbd")
    make_disk(dyn, disk, {"source": {}, "storage": "1Gi"})
    assert wait_for(fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + disk), bool)["metadata"]["name"] == "vm-disk-" + disk
    with pytest.raises(dexc.ForbiddenError):
        res(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume").get(namespace=NS)
    # the admin token keeps full rights (for test set-up)
    url = "%s/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/vm-instance-%s" % (sim.url, NS, name)
    req = urllib.request.Request(url, headers={"Authorization": "Bearer polyvirt-sim-admin"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["status"]["phase"] == "Running"
    # --no-tenant-rbac: the same token reads VMIs and lists DataVolumes
    admin = sims("--time-scale", "0", "--no-tenant-rbac").dynamic()
    assert res(admin, "cdi.kubevirt.io/v1beta1", "DataVolume").get(namespace=NS).items == []
    assert res(admin, "kubevirt.io/v1", "VirtualMachineInstance").get(namespace=NS).items == []


def test_pvc_protection_while_vm_runs(dyn):
    disk, vm = unique("pp"), unique("ppvm")
    make_disk(dyn, disk, {"source": {}})
    make_vm(dyn, vm, {"instanceType": "u1.medium", "disks": [{"name": disk}]})
    wait_for(lambda: vm_ip(dyn, vm), bool, what="VM running on the disk")
    res(dyn, APPS, "VMDisk").delete(namespace=NS, name=disk)
    wait_for(fetch(dyn, APPS, "VMDisk", disk), lambda o: o is None, what="VMDisk uninstalled")
    assert fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + disk)() is None
    pvc = fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + disk)()
    assert pvc["metadata"]["deletionTimestamp"] and pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    # the chart now fails on upgrade (the disk is gone), so halting through the application does not apply
    res(dyn, APPS, "VMInstance").patch(namespace=NS, name=vm, body={"spec": {"runStrategy": "Halted"}}, content_type=MERGE)
    app = wait_for(fetch(dyn, APPS, "VMInstance", vm), lambda o: condition(o, "Ready")["status"] == "False")
    assert condition(app, "Ready")["reason"] == "UpgradeFailed"
    message = condition(app, "Ready")["message"]
    assert "Specified disk not exists in cluster: " + disk in message and "vm-disk-" + disk not in message  # the bare disk name (vm.yaml)
    assert launcher(dyn, vm)["status"]["phase"] == "Running"
    assert fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + disk)() is not None
    res(dyn, APPS, "VMInstance").delete(namespace=NS, name=vm)
    wait_for(fetch(dyn, "v1", "PersistentVolumeClaim", "vm-disk-" + disk), lambda o: o is None, what="PVC released")
    assert launcher(dyn, vm) is None
