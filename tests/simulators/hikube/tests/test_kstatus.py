# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Flux's kstatus wait (Cozystack 1.5+): a VirtualMachine whose observedGeneration trails its generation (halted, or a
# template change awaiting a restart) keeps the release InProgress, then UpgradeFailed after Helm's 10 minutes.

import json
import urllib.request

from kubernetes import watch as kwatch

from .conftest import ADMIN, NS, condition, unique

APPS = "apps.cozystack.io/v1alpha1"
MERGE = "application/merge-patch+json"
MAX_SECONDS = 20  # the bound of every watch here (each ends on the state it waits for)


def apps(dyn):
    return dyn.resources.get(api_version=APPS, kind="VMInstance")


def vm_of(dyn, name):
    return dyn.resources.get(api_version="kubevirt.io/v1", kind="VirtualMachine").get(namespace=NS, name="vm-instance-" + name).to_dict()


def ready(app):
    cond = condition(app, "Ready") or {}
    return cond.get("status"), cond.get("reason")


def get(dyn, name):
    return apps(dyn).get(namespace=NS, name=name).to_dict()


def patch(dyn, name, spec):
    """Patch, then read (the patch's own answer is the object before the controller's pass)."""
    apps(dyn).patch(namespace=NS, name=name, body={"spec": spec}, content_type=MERGE)
    return get(dyn, name)


def make(dyn, name, spec):
    disk = dyn.resources.get(api_version=APPS, kind="VMDisk")
    disk.create(namespace=NS, body={"apiVersion": APPS, "kind": "VMDisk", "metadata": {"name": name + "-d"},
                                    "spec": {"source": {"image": {"name": "ubuntu"}}, "storage": "5Gi"}})
    base = {"instanceType": "u1.medium", "disks": [{"name": name + "-d"}]}
    base.update(spec)
    apps(dyn).create(namespace=NS, body={"apiVersion": APPS, "kind": "VMInstance", "metadata": {"name": name}, "spec": base})


def watch_until(dyn, name, check, seconds=MAX_SECONDS):
    """Follow the application's events until check(app) holds; the states seen on the way (Ready status, reason)."""
    seen = []
    watcher = kwatch.Watch()
    for event in apps(dyn).watch(namespace=NS, name=name, timeout=seconds, watcher=watcher):
        app = event["raw_object"]
        if not seen or seen[-1] != ready(app):
            seen.append(ready(app))
        if check(app):
            watcher.stop()
            return app, seen
    raise AssertionError("%s never reached the state waited for; seen %r" % (name, seen))


def test_a_halted_vm_keeps_its_upgrade_in_progress_at_time_scale_0(sims):
    dyn = sims("--time-scale", "0", *ADMIN).dynamic()
    name = unique("kh")
    make(dyn, name, {"runStrategy": "Halted"})
    # A VM that never ran has no observedGeneration: kstatus reads it Current and the install succeeds.
    assert ready(get(dyn, name)) == ("True", "InstallSucceeded") and "observedGeneration" not in vm_of(dyn, name)["status"]
    assert ready(patch(dyn, name, {"runStrategy": "Always"})) == ("True", "UpgradeSucceeded")
    vm = vm_of(dyn, name)
    assert vm["status"]["observedGeneration"] == vm["metadata"]["generation"] == vm["status"]["desiredGeneration"]

    stopped = patch(dyn, name, {"runStrategy": "Halted"})
    vm = vm_of(dyn, name)
    assert vm["status"]["printableStatus"] == "Stopped"
    assert vm["status"]["observedGeneration"] < vm["metadata"]["generation"] == vm["status"]["desiredGeneration"]
    ready_cond = condition(stopped, "Ready")
    assert ready(stopped) == ("Unknown", "Progressing") and ready_cond["message"] == "Running 'upgrade' action with timeout of 10m0s"
    assert condition(stopped, "WorkloadsReady")["status"] == "False"
    # At scale 0 the InProgress lasts while the VM lags: nothing changes (no timeout, no resourceVersion churn).
    events = list(apps(dyn).watch(namespace=NS, name=name, timeout=1, resource_version=stopped["metadata"]["resourceVersion"]))
    assert [event["type"] for event in events] == ["ADDED"]  # Cozystack's watch starts from the current state, then nothing
    assert events[0]["raw_object"]["metadata"]["resourceVersion"] == stopped["metadata"]["resourceVersion"]

    # Starting it again makes a VMI of the current generation: the release converges.
    assert ready(patch(dyn, name, {"runStrategy": "Always"})) == ("True", "UpgradeSucceeded")


def test_the_kstatus_timeout_fault_fails_the_upgrade_and_flux_retries(sims):
    name = unique("kt")
    dyn = sims("--time-scale", "0", "--fault", "kstatus-timeout:app=" + name, *ADMIN).dynamic()
    make(dyn, name, {"runStrategy": "Always"})
    failed = patch(dyn, name, {"runStrategy": "Halted"})
    message = ("Helm upgrade failed for release %s/vm-instance-%s with chart vm-instance@1.6.2: timeout waiting for: "
               "[VirtualMachine/%s/vm-instance-%s status: 'InProgress']" % (NS, name, NS, name))
    assert ready(failed) == ("False", "UpgradeFailed") and condition(failed, "Ready")["message"] == message
    assert (condition(failed, "Released")["status"], condition(failed, "Released")["reason"]) == ("False", "UpgradeFailed")
    # Flux retries (at least 1 s apart, even at scale 0), and the retry fails the same way: Ready=False again, with a
    # new lastTransitionTime (kept while the status stays, so the retry went through Unknown in between).
    first = condition(failed, "Ready")["lastTransitionTime"]
    again, _seen = watch_until(dyn, name, lambda app: ready(app) == ("False", "UpgradeFailed")
                               and condition(app, "Ready")["lastTransitionTime"] != first, seconds=10)
    assert condition(again, "Ready")["message"] == message
    # A start heals it: the VM runs a VMI of its current generation.
    assert ready(patch(dyn, name, {"runStrategy": "Always"})) == ("True", "UpgradeSucceeded")


def test_the_ten_minute_timeout_is_scaled(sims):
    dyn = sims("--time-scale", "0.005", *ADMIN).dynamic()  # 10 min -> 3 s; Flux's 30 s retry -> its 1 s floor
    name = unique("ks")
    make(dyn, name, {"runStrategy": "Always"})
    watch_until(dyn, name, lambda app: condition(app, "WorkloadsReady") and condition(app, "WorkloadsReady")["status"] == "True")
    patch(dyn, name, {"runStrategy": "Halted"})
    failed, seen = watch_until(dyn, name, lambda app: ready(app) == ("False", "UpgradeFailed"))
    assert ("Unknown", "Progressing") in seen and "status: 'InProgress'" in condition(failed, "Ready")["message"]
    again, seen = watch_until(dyn, name, lambda app: ready(app) != ("False", "UpgradeFailed"), seconds=5)
    assert ready(again) == ("Unknown", "Progressing")  # the retry waits its 10 minutes (scaled) again


def test_a_change_awaiting_a_restart_keeps_the_release_in_progress_until_the_restart(sims):
    sim = sims("--time-scale", "0", *ADMIN)
    dyn = sim.dynamic()
    name = unique("kr")
    make(dyn, name, {"runStrategy": "Always", "instanceType": "", "resources": {"cpu": "1", "sockets": "1", "memory": "1Gi"}})
    assert ready(get(dyn, name)) == ("True", "InstallSucceeded")
    # A Service-only change is applied live: the VM's template is the same, kstatus reads it Current.
    assert ready(patch(dyn, name, {"externalPorts": [22, 80]})) == ("True", "UpgradeSucceeded")
    changed = patch(dyn, name, {"resources": {"cpu": "1", "sockets": "1", "memory": "2Gi"}})
    vm = vm_of(dyn, name)
    restart = condition(vm, "RestartRequired")
    assert restart["status"] == "True" and restart["message"] == "a non-live-updatable field was changed in the template spec"
    assert vm["status"]["printableStatus"] == "Running" and vm["status"]["observedGeneration"] < vm["metadata"]["generation"]
    assert ready(changed) == ("Unknown", "Progressing") and condition(changed, "WorkloadsReady")["status"] == "True"
    request = urllib.request.Request(sim.url + "/apis/subresources.kubevirt.io/v1/namespaces/%s/virtualmachines/vm-instance-%s/restart" % (NS, name),
                                     data=b"{}", method="PUT", headers={"Authorization": "Bearer polyvirt-sim", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
    vm = vm_of(dyn, name)
    assert condition(vm, "RestartRequired") is None and vm["status"]["observedGeneration"] == vm["metadata"]["generation"]
    assert ready(get(dyn, name)) == ("True", "UpgradeSucceeded")


def test_before_cozystack_1_5_the_legacy_wait_does_not_check_vms(sims):
    dyn = sims("--time-scale", "0", "--cozystack-version", "1.0.0", *ADMIN).dynamic()
    name = unique("kl")
    make(dyn, name, {"runStrategy": "Always"})
    stopped = patch(dyn, name, {"runStrategy": "Halted"})
    vm = vm_of(dyn, name)
    assert vm["status"]["observedGeneration"] < vm["metadata"]["generation"]  # KubeVirt lags the same way
    assert ready(stopped) == ("True", "UpgradeSucceeded")
    assert json.dumps(stopped).count("InProgress") == 0
