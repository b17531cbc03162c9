# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Behaviours the project's fidelity review found different from Cozystack v1.6.2, Kubernetes and the kubernetes
# client (research/simulator_fidelity.md section 4), now emulated as upstream has them.

import json

import pytest
from kubernetes import client as kclient
from kubernetes.dynamic import exceptions as dexc

from .conftest import NS, condition, unique, wait_for
from .test_cozystack import APPS, fetch, make_disk, make_vm, res

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
