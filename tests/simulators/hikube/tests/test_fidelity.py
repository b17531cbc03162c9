# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Behaviours the project's fidelity review found different from Cozystack v1.6.2, Kubernetes and the kubernetes
# client (research/simulator_fidelity.md section 4), now emulated as upstream has them.

import json
import urllib.parse
import urllib.request

import pytest
from kubernetes import client as kclient
from kubernetes import watch as kwatch
from kubernetes.dynamic import exceptions as dexc

from .conftest import ADMIN, NS, condition, unique, wait_for
from .test_cozystack import APPS, fetch, launcher, make_disk, make_vm, res

APPLY = "application/apply-patch+yaml"
BACKUPS = "backups.cozystack.io/v1alpha1"


def test_a_backupjob_is_checked_against_its_crd_schema(dyn):
    jobs = res(dyn, BACKUPS, "BackupJob")
    with pytest.raises(dexc.UnprocessibleEntityError) as caught:
        jobs.create(namespace=NS, body={"metadata": {"name": unique("bj")}, "spec": {}})
    message = json.loads(caught.value.body)["message"]
    assert "spec.applicationRef: Required value" in message and "spec.backupClassName: Required value" in message
    with pytest.raises(dexc.UnprocessibleEntityError) as caught:
        jobs.create(namespace=NS, body={"metadata": {"name": unique("bj")}, "spec": {"backupClassName": "", "applicationRef": {"kind": "VMInstance"}}})
    message = json.loads(caught.value.body)["message"]
    assert "spec.applicationRef.name: Required value" in message and "should be at least 1 chars long" in message


def test_generate_name_appends_five_characters_and_applications_want_a_name(dyn):
    made = res(dyn, "v1", "ConfigMap").create(namespace=NS, body={"metadata": {"generateName": "gen-"}}).to_dict()
    suffix = made["metadata"]["name"][len("gen-"):]
    assert len(suffix) == 5 and set(suffix) <= set("bcdfghjklmnpqrstvwxz2456789")
    res(dyn, "v1", "ConfigMap").delete(namespace=NS, name=made["metadata"]["name"])
    with pytest.raises(dexc.UnprocessibleEntityError) as caught:
        res(dyn, APPS, "VMInstance").create(namespace=NS, body={"metadata": {"generateName": "vm-"}, "spec": {"instanceType": "u1.medium"}})
    assert "name is required" in json.loads(caught.value.body)["message"]


def test_server_side_apply_creates_and_updates(dyn):
    name = unique("ssa")
    vms = res(dyn, APPS, "VMInstance")
    body = {"apiVersion": APPS, "kind": "VMInstance", "metadata": {"name": name}, "spec": {"instanceType": "u1.medium", "runStrategy": "Halted"}}
    with pytest.raises(dexc.BadRequestError) as caught:
        vms.patch(namespace=NS, name=name, body=body, content_type=APPLY)
    assert "fieldManager is required" in json.loads(caught.value.body)["message"]
    made = vms.patch(namespace=NS, name=name, body=body, content_type=APPLY, field_manager="test").to_dict()  # creates it
    assert made["spec"]["instanceType"] == "u1.medium" and made["spec"]["runStrategy"] == "Halted"
    body["spec"] = {"instanceType": "u1.large", "externalPorts": [22, 80]}
    changed = vms.patch(namespace=NS, name=name, body=body, content_type=APPLY, field_manager="test").to_dict()
    assert changed["spec"]["instanceType"] == "u1.large" and changed["spec"]["externalPorts"] == [22, 80]
    assert changed["spec"]["runStrategy"] == "Halted"  # not owned away: no field ownership here
    vms.delete(namespace=NS, name=name)


def test_two_vmdisk_sources_fail_the_chart(dyn):
    name = unique("two")
    make_disk(dyn, name, {"source": {"image": {"name": "ubuntu"}, "http": {"url": "https://example.org/x.img"}}, "storage": "1Gi"})
    app = wait_for(fetch(dyn, APPS, "VMDisk", name), lambda o: (condition(o, "Ready") or {}).get("status") == "False")
    assert "Exactly one type of source is expected!" in condition(app, "Ready")["message"]
    assert fetch(dyn, "cdi.kubevirt.io/v1beta1", "DataVolume", "vm-disk-" + name)() is None
    res(dyn, APPS, "VMDisk").delete(namespace=NS, name=name)


def test_workloads_ready_reasons_and_pods_the_typed_client_reads(cozy, dyn):
    disk, vm = unique("wd"), unique("wv")
    make_disk(dyn, disk, {"source": {"image": {"name": "ubuntu"}}, "storage": "5Gi"})
    make_vm(dyn, vm, {"instanceType": "u1.medium", "disks": [{"name": disk}]})
    app = wait_for(fetch(dyn, APPS, "VMInstance", vm), lambda o: (condition(o, "WorkloadsReady") or {}).get("status") == "True", timeout=30)
    assert condition(app, "WorkloadsReady")["reason"] == "WorkloadMonitorCheck"
    pods = kclient.CoreV1Api(cozy.api_client()).list_namespaced_pod(NS, label_selector="vm.kubevirt.io/name=vm-instance-" + vm)
    assert pods.items and pods.items[0].status.container_statuses[0].image_id
    res(dyn, APPS, "VMInstance").patch(namespace=NS, name=vm, body={"spec": {"runStrategy": "Halted"}}, content_type="application/merge-patch+json")
    app = wait_for(fetch(dyn, APPS, "VMInstance", vm), lambda o: (condition(o, "WorkloadsReady") or {}).get("status") == "False", timeout=30)
    assert condition(app, "WorkloadsReady")["reason"] == "WorkloadMonitorCheck"
    res(dyn, APPS, "VMInstance").delete(namespace=NS, name=vm)


def test_application_lists_ignore_limit_and_continue(dyn, dyn_crd):
    """rest.go does not pass limit/continue to the HelmRelease list: one page, no continue token (crd mode pages)."""
    tag = unique("pg")
    for client in (dyn, dyn_crd):
        for i in range(3):
            make_disk(client, "%s-%d" % (tag, i)).to_dict()
    page = res(dyn, APPS, "VMDisk").get(namespace=NS, label_selector=None, limit=1).to_dict()
    names = [item["metadata"]["name"] for item in page["items"] if item["metadata"]["name"].startswith(tag)]
    assert sorted(names) == ["%s-%d" % (tag, i) for i in range(3)]
    assert not page["metadata"].get("continue")
    crd_page = res(dyn_crd, APPS, "VMDisk").get(namespace=NS, limit=1).to_dict()
    assert len(crd_page["items"]) == 1 and crd_page["metadata"]["continue"]


def test_application_delete_precondition_is_a_500_from_the_helmrelease(dyn):
    name = unique("pre")
    created = make_disk(dyn, name).to_dict()
    disks = res(dyn, APPS, "VMDisk")
    with pytest.raises(dexc.ApiException) as caught:
        disks.delete(namespace=NS, name=name, body={"preconditions": {"resourceVersion": "1"}})
    assert caught.value.status == 500
    body = json.loads(caught.value.body)
    assert body["message"].startswith('failed to delete HelmRelease: Operation cannot be fulfilled on '
                                      'helmreleases.helm.toolkit.fluxcd.io "vm-disk-%s": Precondition failed: ' % name)
    assert not body.get("reason")
    assert fetch(dyn, APPS, "VMDisk", name)() is not None  # nothing deleted
    # a matching precondition deletes
    disks.delete(namespace=NS, name=name, body={"preconditions": {"uid": created["metadata"]["uid"]}})
    assert (fetch(dyn, APPS, "VMDisk", name)() or {"metadata": {"deletionTimestamp": "gone"}})["metadata"].get("deletionTimestamp")


def test_application_list_in_a_missing_namespace_is_an_empty_200(dyn, dyn_crd):
    listing = res(dyn, APPS, "VMInstance").get(namespace="no-such-tenant").to_dict()
    assert listing["items"] == []
    with pytest.raises(dexc.NotFoundError):
        res(dyn_crd, APPS, "VMInstance").get(namespace="no-such-tenant")
    with pytest.raises(dexc.NotFoundError):
        res(dyn, "v1", "ConfigMap").get(namespace="no-such-tenant")


def _watch_lines(sim, path, query, timeout=2):
    """Raw watch events from the emulator (the kubernetes client's Watch hides BOOKMARKs and raises on ERROR)."""
    url = "%s%s?%s" % (sim.url, path, urllib.parse.urlencode([("watch", "true"), ("timeoutSeconds", timeout)] + query))
    req = urllib.request.Request(url, headers={"Authorization": "Bearer polyvirt-sim"})
    with urllib.request.urlopen(req, timeout=timeout + 10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


def test_application_watch_ignores_resource_version_and_sends_no_periodic_bookmarks(sims):
    sim = sims("--mode", "cozystack", "--time-scale", "0", "--watch-history", "5", "--bookmark-interval", "0.2", *ADMIN)
    client = sim.dynamic()
    name = unique("w")
    make_disk(client, name)
    for i in range(8):  # push the first resourceVersions out of the watch history
        res(client, "v1", "ConfigMap").create(namespace=NS, body={"metadata": {"name": "%s-%d" % (name, i)}})
    path = "/apis/apps.cozystack.io/v1alpha1/namespaces/%s/vmdisks" % NS
    # a too-old resourceVersion is not forwarded: the watch starts from the current state, no 410, no periodic bookmark
    events = _watch_lines(sim, path, [("resourceVersion", "1"), ("allowWatchBookmarks", "true")])
    assert {e["type"] for e in events} == {"ADDED"}
    assert name in [e["object"]["metadata"]["name"] for e in events]
    # bookmarks only as sendInitialEvents' end marker
    query = [("sendInitialEvents", "true"), ("resourceVersionMatch", "NotOlderThan"), ("allowWatchBookmarks", "true")]
    types = [e["type"] for e in _watch_lines(sim, path, query)]
    assert types[-1] == "BOOKMARK" and types.count("BOOKMARK") == 1 and set(types[:-1]) == {"ADDED"}
    # core kinds keep Kubernetes' 410 for a too-old resourceVersion
    events = _watch_lines(sim, "/api/v1/namespaces/%s/configmaps" % NS, [("resourceVersion", "1")])
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


def test_vmi_interface_ip_is_there_when_the_domain_starts_without_a_guest_agent(dyn):
    """KubeVirt fills the pod network's address from the pod-interface cache at domain start (netstat.go)."""
    name = unique("dom")
    vmis = res(dyn, "kubevirt.io/v1", "VirtualMachineInstance")
    start = vmis.get(namespace=NS).to_dict()["metadata"]["resourceVersion"]
    make_vm(dyn, name, {"instanceType": "u1.medium"})
    running = None
    watcher = kwatch.Watch()
    for event in vmis.watch(namespace=NS, name="vm-instance-" + name, resource_version=start, timeout=20, watcher=watcher):
        status = event["raw_object"].get("status") or {}
        if status.get("phase") == "Running":
            running = event["raw_object"]
            watcher.stop()
    assert running is not None, "the VMI never ran"
    # the first Running state already has the address, before any guest agent connected
    assert condition(running, "AgentConnected") is None
    iface = running["status"]["interfaces"][0]
    assert iface["infoSource"] == "domain" and iface["ipAddress"] and iface["ipAddresses"] == [iface["ipAddress"]]
    pod = wait_for(lambda: launcher(dyn, name), lambda p: p and p["status"].get("podIP"), what="launcher pod")
    assert pod["status"]["podIP"] == iface["ipAddress"]
    # the agent connects later and does not change the address
    later = wait_for(fetch(dyn, "kubevirt.io/v1", "VirtualMachineInstance", "vm-instance-" + name),
                     lambda o: condition(o or {}, "AgentConnected"), what="guest agent")
    assert later["status"]["interfaces"][0]["ipAddress"] == iface["ipAddress"]
    assert later["status"]["interfaces"][0]["infoSource"] == "domain, guest-agent"


def test_workload_monitors_are_served_readable_by_tenants_and_drive_workloads_ready(sims):
    """Each chart makes a WorkloadMonitor (clusterroles.yaml lets tenants read them); WorkloadsReady follows it (rest.go)."""
    sim = sims("--time-scale", "0")  # tenant RBAC, the default
    dyn = sim.dynamic()
    disk, vm = unique("md"), unique("mv")
    make_disk(dyn, disk, {"source": {}, "storage": "1Gi"})
    make_vm(dyn, vm, {"instanceType": "u1.medium", "disks": [{"name": disk}]})
    monitors = res(dyn, "cozystack.io/v1alpha1", "WorkloadMonitor")
    listed = {item["metadata"]["name"]: item for item in monitors.get(namespace=NS).to_dict()["items"]}
    vm_mon, disk_mon = listed["vm-instance-" + vm], listed["vm-disk-" + disk]
    assert vm_mon["spec"]["minReplicas"] == 1 and vm_mon["spec"]["selector"] == {"app.kubernetes.io/instance": "vm-instance-" + vm}
    assert vm_mon["status"] == {"observedReplicas": 1, "availableReplicas": 1, "operational": True}
    assert disk_mon["spec"]["minReplicas"] == 0 and disk_mon["status"]["operational"] is True
    assert condition(fetch(dyn, APPS, "VMInstance", vm)(), "WorkloadsReady")["status"] == "True"
    # halted: no pod, the monitor is not operational, and WorkloadsReady says so with the same reason
    res(dyn, APPS, "VMInstance").patch(namespace=NS, name=vm, body={"spec": {"runStrategy": "Halted"}},
                                       content_type="application/merge-patch+json")
    mon = wait_for(lambda: monitors.get(namespace=NS, name="vm-instance-" + vm).to_dict(),
                   lambda o: o["status"].get("operational") is False, what="monitor not operational")
    assert mon["status"]["availableReplicas"] == 0
    workloads = condition(fetch(dyn, APPS, "VMInstance", vm)(), "WorkloadsReady")
    assert (workloads["status"], workloads["reason"]) == ("False", "WorkloadMonitorCheck")
    # tenants read monitors, they do not write them
    with pytest.raises(dexc.ForbiddenError):
        monitors.delete(namespace=NS, name="vm-instance-" + vm)
    # uninstalling the release removes its monitor
    res(dyn, APPS, "VMInstance").delete(namespace=NS, name=vm)
    wait_for(fetch(dyn, APPS, "VMInstance", vm), lambda o: o is None, what="VMInstance gone")
    assert "vm-instance-" + vm not in [i["metadata"]["name"] for i in monitors.get(namespace=NS).to_dict()["items"]]


def test_no_workloads_ready_condition_without_a_workload_monitor(dyn):
    """A release that never rendered (its chart failed) has no WorkloadMonitor, so no WorkloadsReady condition."""
    name = unique("nomon")
    make_vm(dyn, name, {"instanceType": "no-such-type"})
    app = wait_for(fetch(dyn, APPS, "VMInstance", name), lambda o: (condition(o or {}, "Ready") or {}).get("status") == "False")
    assert condition(app, "WorkloadsReady") is None
    assert fetch(dyn, "cozystack.io/v1alpha1", "WorkloadMonitor", "vm-instance-" + name)() is None
    res(dyn, APPS, "VMInstance").delete(namespace=NS, name=name)
