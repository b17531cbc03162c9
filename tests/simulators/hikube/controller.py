# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# The controllers: Flux/Helm for VMInstance and VMDisk releases, CDI (DataVolume, PVC), KubeVirt (VM, VMI,
# virt-launcher Pod, start/stop/restart), the LoadBalancer, snapshots, Cozystack backups, namespace deletion.

import base64
import copy
import hashlib
import ipaddress
import json
import threading
import time
import traceback
import uuid

from . import cozystack
from .kube import ApiError, new_meta, not_found, now_rfc3339

# base durations in seconds (multiplied by --time-scale)
RELEASE = 1.0       # helm install / upgrade
UNINSTALL = 1.0
PVC_BIND = 0.5
IMPORT = {"http": 6.0, "image": 2.0, "disk": 3.0, "upload": 0.0, "blank": 0.5}
BOOT = 2.0          # VMI scheduled -> Running, pod Ready
GUEST_AGENT = 1.0   # the guest agent connects (guest OS info; the interface IP is there from the domain's start)
STOP = 1.0
LB = 1.0            # LoadBalancer ingress address
HELM_TIMEOUT = 600.0
# Cozystack 1.5+ (helm-controller 1.5): the release's readiness wait is kstatus, which reads an object whose
# status.observedGeneration trails metadata.generation as InProgress (a halted VM, a change awaiting a restart).
KSTATUS_VERSIONS = ("head",)
RESTART_REQUIRED = "a non-live-updatable field was changed in the template spec"
VM_GENERATION = "kubevirt.io/vm-generation"  # on a VMI: the VM generation it was made from (KubeVirt's own annotation)
TEMPLATE_MARK = "sim.polyvirt.io/template"   # on a VMI: what of the VM spec it runs (to tell a change awaiting a restart)
HELM_RETRY = 30.0
# A failed release is retried no sooner than this, whatever the time scale: at --time-scale 0 it would otherwise
# flap between Progressing and Failed in one settle, and a client could never read Ready=False (Flux shows it for 30 s).
HELM_RETRY_MIN = 1.0
# helm-controller sees a changed HelmRelease only after a moment; until then the application's Ready is the old one
# (it has no observedGeneration), so a client reading Ready=True right after a change reads a stale one.
PICKUP = 0.5
SNAPSHOT = 1.0
BACKUP = 2.0

K_NS = "/namespaces"
K_POD = "/pods"
K_SVC = "/services"
K_SECRET = "/secrets"
K_PVC = "/persistentvolumeclaims"
K_EVENT = "/events"
K_VMINST = "apps.cozystack.io/vminstances"
K_VMDISK = "apps.cozystack.io/vmdisks"
K_VM = "kubevirt.io/virtualmachines"
K_VMI = "kubevirt.io/virtualmachineinstances"
K_DV = "cdi.kubevirt.io/datavolumes"
K_IT = "instancetype.kubevirt.io/virtualmachineclusterinstancetypes"
K_PREF = "instancetype.kubevirt.io/virtualmachineclusterpreferences"
K_SC = "storage.k8s.io/storageclasses"
K_SNAP = "snapshot.kubevirt.io/virtualmachinesnapshots"
K_SNAPC = "snapshot.kubevirt.io/virtualmachinesnapshotcontents"
K_RESTORE = "snapshot.kubevirt.io/virtualmachinerestores"
K_WM = "cozystack.io/workloadmonitors"
K_BJOB = "backups.cozystack.io/backupjobs"
K_BACKUP = "backups.cozystack.io/backups"
K_RJOB = "backups.cozystack.io/restorejobs"
K_BCLASS = "backups.cozystack.io/backupclasses"
CAPTURED = "sim.polyvirt.io/captured-spec"
PVC_PROTECTION = "kubernetes.io/pvc-protection"


def _obj(api_version, kind, name, ns=None, labels=None, annotations=None, owner=None):
    meta = new_meta({"name": name, "labels": dict(labels or {}), "annotations": dict(annotations or {})}, ns)
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def cond(ctype, status, reason="", message="", old=None):
    """A condition; keeps lastTransitionTime when the status did not change."""
    prev = next((c for c in old or [] if c.get("type") == ctype), None)
    ltt = prev["lastTransitionTime"] if prev and prev.get("status") == status and prev.get("lastTransitionTime") else now_rfc3339()
    out = {"type": ctype, "status": status, "lastTransitionTime": ltt}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def seed(api, tenant):
    """What a fresh Hikube tenant sees: namespaces, instance types, preferences, golden images, storage classes."""
    store = api.store
    for ns in ("default", "kube-system", "kube-public", "cozy-public", "cozy-system", tenant):
        obj = _obj("v1", "Namespace", ns, labels={"kubernetes.io/metadata.name": ns})
        if ns.startswith("tenant-"):
            obj["metadata"]["labels"]["tenant.cozystack.io/" + ns] = ""
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        store.put(K_NS, obj)
    for name, (cpu, mem) in sorted(cozystack.INSTANCE_TYPES.items()):
        obj = _obj("instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterInstancetype", name,
                   labels={"instancetype.kubevirt.io/vendor": "hikube"})
        obj["metadata"]["generation"] = 1
        obj["spec"] = {"cpu": {"guest": cpu}, "memory": {"guest": "%dGi" % mem}}
        store.put(K_IT, obj)
    for name in cozystack.PREFERENCES:
        obj = _obj("instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterPreference", name)
        obj["metadata"]["generation"] = 1
        obj["spec"] = {}
        store.put(K_PREF, obj)
    for name, mode in cozystack.STORAGE_CLASSES.items():
        obj = _obj("storage.k8s.io/v1", "StorageClass", name,
                   annotations={"storageclass.kubernetes.io/is-default-class": "true"} if name == "replicated" else None)
        obj.update({"provisioner": "linstor.csi.linbit.com", "reclaimPolicy": "Delete", "volumeBindingMode": mode,
                    "allowVolumeExpansion": True})
        store.put(K_SC, obj)
    for image in cozystack.GOLDEN_IMAGES:
        obj = _obj("v1", "PersistentVolumeClaim", "vm-default-images-" + image, ns="cozy-public")
        obj["metadata"]["finalizers"] = [PVC_PROTECTION]
        obj["spec"] = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}},
                       "storageClassName": "replicated", "volumeMode": "Block"}
        obj["status"] = {"phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "10Gi"}}
        store.put(K_PVC, obj)
    obj = _obj("backups.cozystack.io/v1alpha1", "BackupClass", "cozy-default")
    obj["metadata"]["generation"] = 1
    obj["spec"] = {"strategies": [{"application": {"apiGroup": "apps.cozystack.io", "kind": "VMInstance"},
                                   "strategyRef": {"apiGroup": "strategy.backups.cozystack.io", "kind": "Velero",
                                                   "name": "cozy-default-velero-vminstance"}},
                                  {"application": {"apiGroup": "apps.cozystack.io", "kind": "VMDisk"},
                                   "strategyRef": {"apiGroup": "strategy.backups.cozystack.io", "kind": "Velero",
                                                   "name": "cozy-default-velero-vmdisk"}}]}
    store.put(K_BCLASS, obj)


class Controller:
    def __init__(self, api, time_scale=1.0, faults=None):
        self.api = api
        self.store = api.store
        self.scale = time_scale
        self.faults = faults
        self.mutex = threading.RLock()
        self.marks = {}
        self.wake = threading.Event()
        self.next_due = None
        self.thread = None
        self.running = False
        self.releases = {}       # (key, ns, name) -> {"rev", "values", "state", "message", "since"}
        self.manual = {}         # (ns, vm) -> "start" | "stop" | "restart"
        self.ips = {}
        self.lb_ips = {}
        self.next_pod_ip = 10
        self.next_lb_ip = 10
        self._adopt_addresses()

    def _adopt_addresses(self):
        """After a restart with --state, keep the addresses already handed out (and never hand them out twice)."""
        for pod in self.store.list(K_POD):
            vm = (pod["metadata"].get("labels") or {}).get("vm.kubevirt.io/name")
            ip = (pod.get("status") or {}).get("podIP", "")
            if vm and ip.startswith("10.244."):
                self.ips[(pod["metadata"]["namespace"], vm)] = ip
                third, fourth = (int(x) for x in ip.split(".")[2:])
                self.next_pod_ip = max(self.next_pod_ip, third * 250 + fourth - 2 + 1)
        for svc in self.store.list(K_SVC):
            cluster_ip = svc.get("spec", {}).get("clusterIP", "")
            if cluster_ip.startswith("10.96."):
                self.api._cluster_ip = max(self.api._cluster_ip, ipaddress.ip_address(cluster_ip))  # pylint: disable=protected-access
            for ingress in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
                if ingress.get("ip", "").startswith("203.0.113."):
                    self.lb_ips[(svc["metadata"]["namespace"], svc["metadata"]["name"])] = ingress["ip"]
                    self.next_lb_ip = max(self.next_lb_ip, int(ingress["ip"].split(".")[3]) + 1)

    # ------------------------------------------------------------ loop
    def start(self):
        self.running = True
        self.thread = threading.Thread(target=self._loop, name="controller", daemon=True)
        self.thread.start()

    def stop(self):
        self.running = False
        self.wake.set()

    def kick(self):
        if self.scale == 0:
            self.settle()
        self.wake.set()

    def _loop(self):
        while self.running:
            timeout = 0.5 if self.next_due is None else max(0.0, min(0.5, self.next_due - time.time()))
            self.wake.wait(timeout)
            self.wake.clear()
            if not self.running:
                break
            try:
                self.settle()
            except Exception:  # pylint: disable=broad-except
                # a controller bug must not stop the loop silently: report it and go on
                traceback.print_exc()
                time.sleep(0.5)

    def settle(self):
        # lock order everywhere: store.lock, then mutex (request threads may already hold store.lock)
        with self.store.lock, self.mutex:
            for _i in range(40):
                self.next_due = None
                self.changed = False
                self.reconcile()
                if not self.changed:
                    break

    def due(self, uid, step, seconds):
        """True once `seconds` (scaled) have passed since this step was first asked about."""
        key = (uid, step)
        now = time.time()
        start = self.marks.setdefault(key, now)
        delay = seconds * self.scale
        if now - start >= delay:
            return True
        when = start + delay
        self.next_due = when if self.next_due is None else min(self.next_due, when)
        return False

    def due_unscaled(self, uid, step, seconds):
        """Like due(), for a floor that the time scale does not shrink."""
        start = self.marks.setdefault((uid, step), time.time())
        if time.time() - start >= seconds:
            return True
        self.next_due = start + seconds if self.next_due is None else min(self.next_due, start + seconds)
        return False

    def elapsed(self, uid, step):
        return time.time() - self.marks.get((uid, step), time.time())

    def forget(self, uid, step):
        self.marks.pop((uid, step), None)

    # ------------------------------------------------------------ store helpers
    def put(self, key, obj):
        self.changed = True
        return self.store.put(key, obj)

    def remove(self, key, ns, name):
        if self.store.get(key, ns, name) is not None:
            self.changed = True
            self.store.remove(key, ns, name)

    def delete(self, key, ns, name):
        """Delete as a client would: objects with finalizers only get a deletionTimestamp."""
        obj = self.store.get(key, ns, name)
        if obj is None:
            return
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                self.put(key, obj)
        else:
            self.remove(key, ns, name)

    def pvc_protection(self):
        """kube-controller-manager: a PVC being deleted stays while a pod still uses it."""
        used = set()
        for pod in self.store.list(K_POD):
            for vol in pod.get("spec", {}).get("volumes", []):
                claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:
                    used.add((pod["metadata"]["namespace"], claim))
        for pvc in self.store.list(K_PVC):
            meta = pvc["metadata"]
            if meta.get("deletionTimestamp") and PVC_PROTECTION in (meta.get("finalizers") or []) and \
                    (meta["namespace"], meta["name"]) not in used:
                meta["finalizers"] = [f for f in meta["finalizers"] if f != PVC_PROTECTION]
                if meta["finalizers"]:
                    self.put(K_PVC, pvc)
                else:
                    self.remove(K_PVC, meta["namespace"], meta["name"])

    def set_status(self, key, obj, status):
        if obj.get("status") != status:
            obj = copy.deepcopy(obj)
            obj["status"] = status
            return self.put(key, obj)
        return obj

    def emit(self, involved, reason, message, etype="Normal", component="polyvirt-sim"):
        ns = involved["metadata"].get("namespace", "default")
        name = "%s.%s" % (involved["metadata"]["name"], uuid.uuid4().hex[:16])
        ev = _obj("v1", "Event", name, ns=ns)
        ev.update({"involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                                      "name": involved["metadata"]["name"], "namespace": ns,
                                      "uid": involved["metadata"].get("uid"),
                                      "resourceVersion": involved["metadata"].get("resourceVersion")},
                   "reason": reason, "message": message, "type": etype, "count": 1,
                   "firstTimestamp": now_rfc3339(), "lastTimestamp": now_rfc3339(), "source": {"component": component},
                   "reportingComponent": component, "reportingInstance": ""})
        self.put(K_EVENT, ev)

    def fault(self, name, key, value):
        return self.faults.active(name, key, value) if self.faults is not None else None

    def spec_of(self, kind, app):
        return cozystack.apply_defaults(copy.deepcopy(app.get("spec") or {}), self.api.schemas[kind])

    # ------------------------------------------------------------ reconcile
    def reconcile(self):
        self.namespaces()
        for key, kind in ((K_VMDISK, "VMDisk"), (K_VMINST, "VMInstance")):
            for app in self.store.list(key):
                self.application(key, kind, app)
        for dv in self.store.list(K_DV):
            self.datavolume(dv)
        for mon in self.store.list(K_WM):
            self.workload_monitor(mon)
        for vm in self.store.list(K_VM):
            self.virtualmachine(vm)
        for svc in self.store.list(K_SVC):
            self.loadbalancer(svc)
        for snap in self.store.list(K_SNAP):
            self.snapshot(snap)
        for restore in self.store.list(K_RESTORE):
            self.vm_restore(restore)
        for job in self.store.list(K_BJOB):
            self.backup_job(job)
        for job in self.store.list(K_RJOB):
            self.restore_job(job)
        self.garbage_collect()
        for vmi in self.store.list(K_VMI):
            # virt-controller drops its finalizers once the launcher pod is gone
            if vmi["metadata"].get("deletionTimestamp"):
                self.stop_vmi(vmi["metadata"]["namespace"], vmi["metadata"]["name"])
        self.pvc_protection()
        for key, ns, name in [(k, o["metadata"].get("namespace", ""), o["metadata"]["name"])
                              for k in list(self.store.objects) for o in self.store.list(k)]:
            obj = self.store.get(key, ns, name)
            meta = obj["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers") and key not in (K_NS, K_VMINST, K_VMDISK):
                self.remove(key, ns, name)

    def namespaces(self):
        for nsobj in self.store.list(K_NS):
            if not nsobj["metadata"].get("deletionTimestamp"):
                continue
            ns = nsobj["metadata"]["name"]
            left = 0
            for key in list(self.store.objects):
                rt = self.api.registry.key(key)
                if not rt.namespaced:
                    continue
                for obj in self.store.list(key, ns):
                    left += 1
                    if rt.app_prefix is not None:
                        if not obj["metadata"].get("deletionTimestamp"):
                            obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                            self.put(key, obj)
                    else:
                        self.remove(key, ns, obj["metadata"]["name"])
            if left == 0 and not nsobj.get("spec", {}).get("finalizers", []) == ["never"]:
                self.remove(K_NS, "", ns)

    def garbage_collect(self):
        uids = set()
        for key in list(self.store.objects):
            for obj in self.store.objects[key].values():
                uids.add(obj["metadata"].get("uid"))
        for key in list(self.store.objects):
            for obj in list(self.store.objects[key].values()):
                refs = obj["metadata"].get("ownerReferences") or []
                if refs and all(r.get("uid") not in uids for r in refs):
                    self.delete(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    # ------------------------------------------------------------ Helm releases (Flux)
    def application(self, key, kind, app):
        meta = app["metadata"]
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        chart = "vm-instance" if kind == "VMInstance" else "vm-disk"
        release = chart + "-" + name
        rkey = (key, ns, name)
        rel = self.releases.get(rkey)
        if rel is not None and rel.get("uid") != uid:
            rel = None
        if meta.get("deletionTimestamp"):
            if self.due(uid, "uninstall", UNINSTALL):
                self.uninstall(kind, ns, release)
                self.releases.pop(rkey, None)
                self.remove(key, ns, name)
            return
        values = copy.deepcopy(app.get("spec") or {})
        old_status = app.get("status") or {}
        conds = old_status.get("conditions") or []
        if rel is None:
            rel = {"uid": uid, "rev": 0, "values": None, "state": "pending", "message": "", "attempt": 0}
            self.releases[rkey] = rel
            # a restarted emulator (--state) finds the release as the status says
            ready = next((c for c in conds if c.get("type") == "Ready"), None)
            if ready and ready.get("status") == "True" and old_status.get("observedSpec") is None:
                rel.update({"rev": int(old_status.get("revision", 1) or 1), "values": values, "state": "deployed"})
        version = cozystack.CHART_VERSIONS[self.api.version]
        action = "install" if rel["rev"] == 0 else "upgrade"
        busy = rel["state"] in ("progressing", "waiting")
        if rel["state"] == "deployed" and rel["values"] != values and not self.due(uid, "pickup-%d" % rel["attempt"], PICKUP):
            self.app_status(kind, app, rel, release, conds, version)  # the stale window: Ready still shows the last release
            return
        if (busy and rel.get("target") != values) or (not busy and rel["values"] != values):
            # a new install/upgrade attempt (values changed, even in the middle of one)
            rel.update({"state": "progressing", "target": values})
            rel["attempt"] += 1
        if rel["state"] in ("progressing", "waiting"):
            step = "release-%d" % rel["attempt"]
            rendered = False
            if rel["state"] == "progressing" and self.due(uid, step, RELEASE):
                error = self.render(kind, app, release)
                if error:
                    rel.update({"state": "failed", "message": "Helm %s failed for release %s/%s with chart %s@%s: %s"
                                % (action, ns, release, chart, version, error), "values": values})
                    self.marks[(uid, "retry")] = time.time()
                else:
                    rel.update({"state": "waiting", "since": time.time()})
                    rendered = True
            if rel["state"] == "waiting":
                waiting = self.helm_wait(kind, ns, release, values)
                # kstatus polls after the apply: KubeVirt gets a pass at the new VM (a start's VMI) before a timeout counts
                if waiting and not (rendered and waiting != "lb") and self.wait_timed_out(uid, step, name, waiting):
                    cause = "context deadline exceeded" if waiting == "lb" else "timeout waiting for: [%s status: 'InProgress']" % waiting
                    rel.update({"state": "failed", "values": values, "message": "Helm %s failed for release %s/%s with chart %s@%s: %s"
                                % (action, ns, release, chart, version, cause)})
                    self.marks[(uid, "retry")] = time.time()
                elif not waiting:
                    rel["rev"] += 1
                    rel.update({"state": "deployed", "values": values, "action": action,
                                "message": "Helm %s succeeded for release %s/%s.v%d with chart %s@%s"
                                % (action, ns, release, rel["rev"], chart, version)})
        elif rel["state"] == "failed" and self.due(uid, "retry", HELM_RETRY) and self.due_unscaled(uid, "retry", HELM_RETRY_MIN):
            # Flux RetryOnFailure: try again with the same values
            self.forget(uid, "retry")
            rel["values"] = None
            rel["state"] = "pending"
            self.changed = True
        self.app_status(kind, app, rel, release, conds, version)

    def app_status(self, kind, app, rel, release, conds, version):
        ns = app["metadata"].get("namespace", "")
        state = rel["state"]
        if state in ("pending", "progressing", "waiting"):
            msg = "Fulfilling prerequisites" if state != "waiting" else "Running '%s' action with timeout of 10m0s" % (
                "install" if rel["rev"] == 0 else "upgrade")
            ready = cond("Ready", "Unknown", "Progressing", msg, conds)
            released = next((c for c in conds if c["type"] == "Released"), None) or cond("Released", "Unknown", "Progressing", msg)
        elif state == "failed":
            reason = "InstallFailed" if rel["rev"] == 0 else "UpgradeFailed"
            ready = cond("Ready", "False", reason, rel["message"], conds)
            released = cond("Released", "False", reason, rel["message"], conds)
        else:
            reason = "InstallSucceeded" if rel.get("action") == "install" else "UpgradeSucceeded"
            ready = cond("Ready", "True", reason, rel["message"], conds)
            released = cond("Released", "True", reason, rel["message"], conds)
        # rest.go: WorkloadsReady from the release's WorkloadMonitor, none without one
        conditions = [ready, released]
        mon = self.store.get(K_WM, ns, release)
        if mon is not None:
            operational = (mon.get("status") or {}).get("operational")
            if operational is None:
                conditions.append(cond("WorkloadsReady", "Unknown", "Pending", "", conds))
            elif operational:
                conditions.append(cond("WorkloadsReady", "True", "WorkloadMonitorCheck", "", conds))
            else:
                conditions.append(cond("WorkloadsReady", "False", "WorkloadMonitorCheck", "", conds))
        status = {"version": version, "conditions": conditions}
        self.set_status(K_VMINST if kind == "VMInstance" else K_VMDISK, app, status)

    def helm_wait(self, kind, ns, release, values):
        """What the release's readiness wait still waits for: None, "lb" or the kstatus name of an InProgress VirtualMachine.

        Both waits want a LoadBalancer Service's ingress address; the kstatus wait (Cozystack 1.5+) also reads a VM
        whose observedGeneration trails its generation as InProgress. DataVolumes are not checked.
        """
        if kind != "VMInstance":
            return None
        if values.get("external"):
            svc = self.store.get(K_SVC, ns, release)
            if not (svc and svc.get("status", {}).get("loadBalancer", {}).get("ingress")):
                return "lb"
        if self.api.version in KSTATUS_VERSIONS:
            vm = self.store.get(K_VM, ns, release)
            observed = (vm.get("status") or {}).get("observedGeneration") if vm is not None else None
            if observed is not None and observed != vm["metadata"].get("generation"):
                return "VirtualMachine/%s/%s" % (ns, release)
        return None

    def wait_timed_out(self, uid, step, app_name, waiting):
        """Helm's 10-minute wait (scaled). At --time-scale 0 a kstatus InProgress never times out on its own (it lasts
        while the VM lags): the kstatus-timeout fault makes it time out after `seconds` (unscaled, default 0)."""
        if waiting != "lb":
            fault = self.fault("kstatus-timeout", "app", app_name)
            if fault is not None:
                return self.due_unscaled(uid, step + "-timeout", float(fault.args.get("seconds", "0")))
            if self.scale == 0:
                return False
        return self.due(uid, step + "-timeout", HELM_TIMEOUT)

    def uninstall(self, kind, ns, release):
        for key in (K_VM, K_SVC, K_SECRET, K_DV, K_PVC, K_WM):
            for obj in self.store.list(key, ns):
                labels = obj["metadata"].get("labels") or {}
                if labels.get("app.kubernetes.io/instance") == release:
                    self.delete(key, ns, obj["metadata"]["name"])

    # ------------------------------------------------------------ chart rendering
    def labels(self, release, chart):
        return {"app.kubernetes.io/instance": release, "app.kubernetes.io/name": chart,
                "app.kubernetes.io/managed-by": "Helm", "helm.toolkit.fluxcd.io/name": release}

    def render(self, kind, app, release):
        """Render the chart; returns an error message (Helm schema check or template `fail`) or None."""
        spec = self.spec_of(kind, app)
        chart = "vm-instance" if kind == "VMInstance" else "vm-disk"
        errors = cozystack.validate(spec, self.api.schemas[kind])
        if errors:
            return cozystack.helm_schema_error(chart, errors)
        ns = app["metadata"]["namespace"]
        fail = self.fault("install-fail", "app", app["metadata"]["name"])
        if fail is not None:
            return fail.args.get("message", "injected install failure")
        if kind == "VMDisk":
            error = self.render_disk(ns, release, spec)
        else:
            error = self.render_instance(ns, release, spec, app)
        if error is None:
            self.render_monitor(ns, release, chart)
        return error

    def render_monitor(self, ns, release, chart):
        """The chart's WorkloadMonitor: a VM wants one Ready virt-launcher pod, a disk none (minReplicas 0)."""
        if self.store.get(K_WM, ns, release) is not None:
            return
        mon = _obj("cozystack.io/v1alpha1", "WorkloadMonitor", release, ns=ns, labels=self.labels(release, chart))
        mon["metadata"]["generation"] = 1
        vm = chart == "vm-instance"
        mon["spec"] = {"replicas": 1 if vm else 0, "minReplicas": 1 if vm else 0, "kind": chart, "type": "vm" if vm else "pvc",
                       "selector": {"app.kubernetes.io/instance": release}, "version": cozystack.CHART_VERSIONS[self.api.version]}
        mon["status"] = {}  # filled by the monitor's controller on its first pass: until then WorkloadsReady is Pending
        self.put(K_WM, mon)

    def workload_monitor(self, mon):
        """Cozystack's WorkloadMonitor controller: count the selected workloads, operational once minReplicas are available."""
        ns, spec = mon["metadata"]["namespace"], mon.get("spec") or {}
        selector = spec.get("selector") or {}
        if spec.get("type") == "vm":
            pods = [p for p in self.store.list(K_POD, ns)
                    if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
            observed = len(pods)
            available = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                   for c in (p.get("status") or {}).get("conditions") or []))
        else:
            pvcs = [p for p in self.store.list(K_PVC, ns)
                    if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
            observed = available = len(pvcs)
        status = {"observedReplicas": observed, "availableReplicas": available,
                  "operational": available >= int(spec.get("minReplicas") or 0)}
        if mon.get("status") != status:
            self.set_status(K_WM, mon, status)

    def render_disk(self, ns, release, spec):
        labels = self.labels(release, "vm-disk")
        source = spec.get("source") or {}
        if len([key for key in source if key in ("http", "image", "disk", "upload")]) > 1:
            return "execution error at (vm-disk/templates/dv.yaml:20:4): Exactly one type of source is expected!"
        storage = str(spec.get("storage"))
        dv = self.store.get(K_DV, ns, release)
        if dv is None:
            if "http" in source:
                dv_source = {"http": {"url": source["http"].get("url")}}
            elif "image" in source:
                dv_source = {"pvc": {"namespace": "cozy-public", "name": "vm-default-images-" + source["image"].get("name", "")}}
            elif "disk" in source:
                dv_source = {"pvc": {"namespace": ns, "name": "vm-disk-" + source["disk"].get("name", "")}}
            elif "upload" in source:
                dv_source = {"upload": {}}
            else:
                dv_source = {"blank": {}}
            dv = _obj("cdi.kubevirt.io/v1beta1", "DataVolume", release, ns=ns, labels=labels,
                      annotations={"vm-disk.cozystack.io/optical": "true" if spec.get("optical") else "false",
                                   "cdi.kubevirt.io/storage.bind.immediate.requested": "true"})
            dv["metadata"]["generation"] = 1
            dv["spec"] = {"source": dv_source, "storage": {"resources": {"requests": {"storage": storage}},
                                                           "storageClassName": spec.get("storageClass")}}
            dv["status"] = {"phase": "Pending", "progress": "N/A", "conditions": []}
            self.put(K_DV, dv)
        else:
            # the chart copies the live DV spec: source/storageClass changes are ignored; storage grows via a hook
            pvc = self.store.get(K_PVC, ns, release)
            if pvc is not None and quantity(storage) > quantity(pvc["spec"]["resources"]["requests"]["storage"]):
                pvc["spec"]["resources"]["requests"]["storage"] = storage
                pvc.setdefault("status", {}).setdefault("capacity", {})["storage"] = storage
                self.put(K_PVC, pvc)
            if quantity(storage) > quantity(dv["spec"]["storage"]["resources"]["requests"]["storage"]):
                dv["spec"]["storage"]["resources"]["requests"]["storage"] = storage
                self.put(K_DV, dv)
        return None

    def render_instance(self, ns, release, spec, app):
        if spec.get("instanceType") and self.store.get(K_IT, "", spec["instanceType"]) is None:
            return ("execution error at (vm-instance/templates/vm.yaml:2:6): Specified instanceType does not exist in the "
                    "cluster: %s" % spec["instanceType"])
        if spec.get("instanceProfile") and self.store.get(K_PREF, "", spec["instanceProfile"]) is None:
            return ("execution error at (vm-instance/templates/vm.yaml:5:6): Specified instanceProfile does not exist in the "
                    "cluster: %s" % spec["instanceProfile"])
        res = spec.get("resources") or {}
        if not spec.get("instanceType") and not (res.get("cpu") and res.get("sockets") and res.get("memory")):
            return ("execution error at (vm-instance/templates/vm.yaml:8:6): Either instanceType or resources (cpu, sockets, "
                    "memory) must be specified")
        disks, volumes = [], []
        for idx, disk in enumerate(spec.get("disks") or []):
            dv_name = "vm-disk-%s" % disk.get("name")
            dv = self.store.get(K_DV, ns, dv_name)
            if dv is None:
                return "execution error at (vm-instance/templates/vm.yaml:80:16): Specified disk not exists in cluster: %s" % disk.get("name")
            optical = (dv["metadata"].get("annotations") or {}).get("vm-disk.cozystack.io/optical") == "true"
            entry = {"name": "disk-" + disk["name"], ("cdrom" if optical else "disk"): ({"bus": disk["bus"]} if disk.get("bus") else {}),
                     "bootOrder": idx + 1}
            disks.append(entry)
            volumes.append({"name": "disk-" + disk["name"], "dataVolume": {"name": dv_name}})
        labels = self.labels(release, "vm-instance")
        if spec.get("cloudInit") or spec.get("sshKeys"):
            disks.append({"name": "cloudinitdisk", "disk": {}})
            volumes.append({"name": "cloudinitdisk", "cloudInitNoCloud": {"secretRef": {"name": release + "-cloud-init"}}})
            secret = (self.store.get(K_SECRET, ns, release + "-cloud-init")
                      or _obj("v1", "Secret", release + "-cloud-init", ns=ns, labels=labels))
            secret["type"] = "Opaque"
            secret["data"] = {"userdata": base64.b64encode((spec.get("cloudInit") or "#cloud-config\n").encode()).decode()}
            self.put(K_SECRET, secret)
        else:
            self.remove(K_SECRET, ns, release + "-cloud-init")
        if spec.get("sshKeys"):
            secret = (self.store.get(K_SECRET, ns, release + "-ssh-keys")
                      or _obj("v1", "Secret", release + "-ssh-keys", ns=ns, labels=labels))
            secret["type"] = "Opaque"
            secret["data"] = {"key%d" % i: base64.b64encode(k.encode()).decode() for i, k in enumerate(spec["sshKeys"])}
            self.put(K_SECRET, secret)
        else:
            self.remove(K_SECRET, ns, release + "-ssh-keys")
        if "runStrategy" in spec:
            run_strategy = spec["runStrategy"]
        else:
            run_strategy = "Always" if spec.get("running", True) is not False else "Halted"
        seed_uuid = hashlib.sha256(("%s/%s/%s" % (ns, release, spec.get("cloudInitSeed", ""))).encode()).hexdigest()
        template = {"metadata": {"annotations": {"kubevirt.io/allow-pod-bridge-network-live-migration": "true"},
                                 "labels": dict(labels)},
                    "spec": {"domain": {"firmware": {"uuid": str(uuid.UUID(seed_uuid[:32]))},
                                        "devices": {"disks": disks, "interfaces": [{"name": "default", "bridge": {}}]},
                                        "machine": {"type": ""}},
                             "terminationGracePeriodSeconds": 30,
                             "volumes": volumes, "networks": [{"name": "default", "pod": {}}]}}
        if spec.get("sshKeys"):
            template["spec"]["accessCredentials"] = [{"sshPublicKey": {"source": {"secret": {"secretName": release + "-ssh-keys"}},
                                                                       "propagationMethod": {"noCloud": {}}}}]
        if not spec.get("instanceType"):
            template["spec"]["domain"]["cpu"] = {"cores": res.get("cpu"), "sockets": res.get("sockets")}
            template["spec"]["domain"]["resources"] = {"requests": {"memory": res.get("memory")}}
        vm = self.store.get(K_VM, ns, release)
        vm_spec = {"runStrategy": run_strategy, "template": template}
        if spec.get("instanceType"):
            vm_spec["instancetype"] = {"kind": "VirtualMachineClusterInstancetype", "name": spec["instanceType"]}
        if spec.get("instanceProfile"):
            vm_spec["preference"] = {"kind": "VirtualMachineClusterPreference", "name": spec["instanceProfile"]}
        if vm is None:
            vm = _obj("kubevirt.io/v1", "VirtualMachine", release, ns=ns, labels=labels)
            vm["metadata"]["generation"] = 1
            vm["spec"] = vm_spec
            vm["status"] = {"printableStatus": "Stopped", "conditions": []}
            self.put(K_VM, vm)
        elif vm["spec"] != vm_spec:
            old_type = (vm["spec"].get("instancetype"), vm["spec"].get("preference"))
            vm["spec"] = vm_spec
            vm["metadata"]["generation"] = vm["metadata"].get("generation", 1) + 1
            self.put(K_VM, vm)
            if old_type != (vm_spec.get("instancetype"), vm_spec.get("preference")):
                # vm-update-hook: an instancetype/preference switch restarts the VM
                self.manual[(ns, release)] = "restart"
        self.render_service(ns, release, spec, labels)
        del app
        return None

    def render_service(self, ns, release, spec, labels):
        svc_labels = dict(labels)
        svc_labels["apps.cozystack.io/user-service"] = "true"
        external = bool(spec.get("external"))
        svc = self.store.get(K_SVC, ns, release)
        if svc is not None and (svc["spec"].get("type") == "LoadBalancer") != external:
            # vm-update-hook deletes the Service when its type changes; it is recreated (new address)
            self.remove(K_SVC, ns, release)
            self.lb_ips.pop((ns, release), None)
            svc = None
        annotations = {}
        if external:
            svc_labels["service.kubernetes.io/service-proxy-name"] = "cozy-proxy"
            annotations["networking.cozystack.io/wholeIP"] = "true" if spec.get("externalMethod") == "WholeIP" else "false"
            if spec.get("externalMethod") == "WholeIP" and not spec.get("externalPorts"):
                ports = [{"port": 65535, "protocol": "TCP", "targetPort": 65535}]
            else:
                ports = [{"name": "port-%s" % p, "port": p, "targetPort": p, "protocol": "TCP"} for p in spec.get("externalPorts") or []]
            want = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": ports,
                    "selector": {"app.kubernetes.io/instance": release, "app.kubernetes.io/name": "vm-instance"}}
        else:
            want = {"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 65535, "protocol": "TCP", "targetPort": 65535}],
                    "selector": {"app.kubernetes.io/instance": release, "app.kubernetes.io/name": "vm-instance"}}
        if svc is None:
            svc = _obj("v1", "Service", release, ns=ns, labels=svc_labels, annotations=annotations)
            svc["spec"] = {}
            svc["status"] = {"loadBalancer": {}}
        new_spec = dict(svc["spec"])
        new_spec.update(want)
        if not external:
            new_spec["clusterIPs"] = ["None"]
        elif not new_spec.get("clusterIP") or new_spec.get("clusterIP") == "None":
            self.api._cluster_ip += 1  # pylint: disable=protected-access
            new_spec["clusterIP"] = str(self.api._cluster_ip)  # pylint: disable=protected-access
            new_spec["clusterIPs"] = [new_spec["clusterIP"]]
        if new_spec != svc["spec"] or svc["metadata"].get("labels") != svc_labels or \
                (svc["metadata"].get("annotations") or {}) != annotations:
            svc["spec"] = new_spec
            svc["metadata"]["labels"] = svc_labels
            svc["metadata"]["annotations"] = annotations
            self.put(K_SVC, svc)

    # ------------------------------------------------------------ CDI
    def source_in_use(self, ns, pvc_name):
        for vmi in self.store.list(K_VMI, ns):
            for vol in vmi.get("spec", {}).get("volumes", []):
                if (vol.get("dataVolume") or {}).get("name") == pvc_name or \
                        (vol.get("persistentVolumeClaim") or {}).get("claimName") == pvc_name:
                    return vmi["metadata"]["name"]
        return None

    def wanted_by_running_vm(self, ns, dv_name):
        for vm in self.store.list(K_VM, ns):
            vols = vm.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
            if any((v.get("dataVolume") or {}).get("name") == dv_name for v in vols) and self.wants_running(vm):
                return True
        return False

    def datavolume(self, dv):
        meta = dv["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        status = copy.deepcopy(dv.get("status") or {})
        old = status.get("conditions") or []
        phase = status.get("phase", "Pending")
        source = dv.get("spec", {}).get("source") or {}
        kind = next(iter(source), "blank")
        storage = dv.get("spec", {}).get("storage") or dv.get("spec", {}).get("pvc") or {}
        sc_name = storage.get("storageClassName") or "replicated"
        size = (storage.get("resources") or {}).get("requests", {}).get("storage", "5Gi")
        pvc = self.store.get(K_PVC, ns, name)
        if pvc is None:
            pvc = _obj("v1", "PersistentVolumeClaim", name, ns=ns, labels=dict(meta.get("labels") or {}, **{"app": "containerized-data-importer"}),
                       owner=dv)
            pvc["metadata"]["finalizers"] = [PVC_PROTECTION]
            pvc["spec"] = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}},
                           "storageClassName": sc_name, "volumeMode": "Block"}
            pvc["status"] = {"phase": "Pending"}
            pvc = self.put(K_PVC, pvc)
        if phase in ("Succeeded", "Failed"):
            return
        sc = self.store.get(K_SC, "", sc_name)
        wffc = sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer"
        if wffc and pvc["status"].get("phase") != "Bound" and not self.wanted_by_running_vm(ns, name):
            status.update({"phase": "WaitForFirstConsumer", "progress": "N/A", "claimName": name,
                           "conditions": [cond("Bound", "False", "WaitForFirstConsumer", "PVC %s Pending" % name, old),
                                          cond("Ready", "False", "WaitForFirstConsumer", "", old),
                                          cond("Running", "False", "", "", old)]})
            self.set_status(K_DV, dv, status)
            return
        if pvc["status"].get("phase") != "Bound":
            if not self.due(uid, "bind", PVC_BIND):
                return
            pvc["status"] = {"phase": "Bound", "accessModes": pvc["spec"]["accessModes"], "capacity": {"storage": size}}
            pvc["spec"]["volumeName"] = "pvc-" + pvc["metadata"]["uid"]
            self.put(K_PVC, pvc)
        bound = cond("Bound", "True", "Bound", "PVC %s Bound" % name, old)
        if kind == "pvc":
            src = source["pvc"]
            if self.store.get(K_PVC, src.get("namespace", ns), src.get("name", "")) is None:
                status.update({"phase": "Pending", "progress": "N/A", "claimName": name,
                               "conditions": [bound, cond("Ready", "False", "CloneWithoutSource",
                                                          "source PVC %s/%s not found" % (src.get("namespace", ns), src.get("name")), old),
                                              cond("Running", "False", "CloneWithoutSource", "", old)]})
                self.set_status(K_DV, dv, status)
                return
            user = self.source_in_use(src.get("namespace", ns), src.get("name", ""))
            if user is not None:
                if status.get("phase") != "CloneScheduled" or not any(c.get("reason") == "CloneSourceInUse" for c in old):
                    self.emit(dv, "CloneSourceInUse", "pod %s/virt-launcher-%s using PersistentVolumeClaim %s"
                              % (src.get("namespace", ns), user, src.get("name")), "Warning", "datavolume-controller")
                self.forget(uid, "import")
                status.update({"phase": "CloneScheduled", "progress": "N/A", "claimName": name,
                               "conditions": [bound, cond("Ready", "False", "CloneSourceInUse",
                                                          "source PVC %s/%s is in use" % (src.get("namespace", ns), src.get("name")), old),
                                              cond("Running", "False", "CloneSourceInUse", "", old)]})
                self.set_status(K_DV, dv, status)
                return
        if kind == "upload":
            status.update({"phase": "UploadReady", "progress": "N/A", "claimName": name,
                           "conditions": [bound, cond("Ready", "False", "UploadReady", "", old),
                                          cond("Running", "True", "Pod is running", "", old)]})
            self.set_status(K_DV, dv, status)
            return
        duration = IMPORT.get("image" if kind == "pvc" and source["pvc"].get("namespace") == "cozy-public" else
                              ("disk" if kind == "pvc" else kind), 1.0)
        slow = self.fault("slow-import", "disk", name[len("vm-disk-"):] if name.startswith("vm-disk-") else name)
        if slow is not None:
            duration = duration * float(slow.args.get("factor", "10")) + float(slow.args.get("seconds", "0")) / max(self.scale, 1e-9)
        running_phase = "CloneInProgress" if kind == "pvc" else "ImportInProgress"
        if self.fault("import-fail", "disk", name[len("vm-disk-"):]) is not None and self.due(uid, "import", duration / 2):
            status.update({"phase": "Failed", "progress": "N/A", "claimName": name,
                           "conditions": [bound, cond("Ready", "False", "Error", "Unable to process data: injected import failure", old),
                                          cond("Running", "False", "Error", "Unable to process data: injected import failure", old)]})
            self.emit(dv, "Error", "Unable to process data: injected import failure", "Warning", "datavolume-controller")
            self.set_status(K_DV, dv, status)
            return
        if self.due(uid, "import", duration):
            status.update({"phase": "Succeeded", "progress": "100.0%", "claimName": name,
                           "conditions": [bound, cond("Ready", "True", "", "", old), cond("Running", "False", "Completed", "", old)]})
            if dv.get("status", {}).get("phase") != "Succeeded":
                self.emit(dv, "ImportSucceeded" if kind != "pvc" else "CloneSucceeded",
                          "Successfully imported into PVC %s" % name if kind != "pvc" else "Successfully cloned from %s/%s into %s/%s"
                          % (source["pvc"].get("namespace", ns), source["pvc"].get("name"), ns, name),
                          component="datavolume-controller")
            self.set_status(K_DV, dv, status)
            return
        total = max(duration * self.scale, 1e-9)
        progress = min(99.0, int(self.elapsed(uid, "import") / total * 10) * 10.0)
        # wake up again for the next 10 % step
        step_due = self.marks[(uid, "import")] + (progress / 100.0 + 0.1) * total
        self.next_due = step_due if self.next_due is None else min(self.next_due, step_due)
        status.update({"phase": running_phase if progress > 0 else ("CloneScheduled" if kind == "pvc" else "ImportScheduled"),
                       "progress": "%.1f%%" % progress, "claimName": name,
                       "conditions": [bound, cond("Ready", "False", "TransferRunning", "", old),
                                      cond("Running", "True", "Pod is running", "", old)]})
        self.set_status(K_DV, dv, status)

    # ------------------------------------------------------------ KubeVirt
    def wants_running(self, vm):
        spec = vm.get("spec", {})
        key = (vm["metadata"]["namespace"], vm["metadata"]["name"])
        strategy = spec.get("runStrategy")
        if strategy is None:
            return bool(spec.get("running"))
        if strategy in ("Always", "RerunOnFailure"):
            return True
        if strategy in ("Manual", "Once"):
            req = self.manual.get(key)
            if req == "start":
                return True
            if req == "stop":
                return False
            return self.store.get(K_VMI, key[0], key[1]) is not None
        return False

    def virtualmachine(self, vm):
        meta = vm["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        status = copy.deepcopy(vm.get("status") or {})
        old = status.get("conditions") or []
        vmi = self.store.get(K_VMI, ns, name)
        if vmi is not None and vmi["metadata"].get("deletionTimestamp"):
            self.stop_vmi(ns, name)
            vmi = None
        if self.manual.get((ns, name)) == "restart":
            self.manual.pop((ns, name))
            if vmi is not None:
                self.stop_vmi(ns, name)
                vmi = None
        want = self.wants_running(vm)
        tmpl = vm.get("spec", {}).get("template", {}).get("spec", {})
        dvs = [v["dataVolume"]["name"] for v in tmpl.get("volumes", []) if v.get("dataVolume")]
        if want and vmi is None:
            self.forget(uid, "stop")
            problems = []
            for dv_name in dvs:
                dv = self.store.get(K_DV, ns, dv_name)
                if dv is None or dv.get("status", {}).get("phase") not in ("Succeeded",):
                    problems.append((dv_name, dv))
            failed = [n for n, d in problems if d is not None and d.get("status", {}).get("phase") == "Failed"]
            if failed:
                printable = "DataVolumeError"
            elif any(d is not None and d.get("status", {}).get("phase") == "WaitForFirstConsumer" for _n, d in problems):
                printable = "WaitingForVolumeBinding"
            else:
                printable = "Provisioning"
            if problems:
                status.update({"printableStatus": printable, "ready": False, "created": False,
                               "conditions": [cond("Ready", "False", "VMINotExists", "VMI does not exist", old)]})
                status.pop("ready", None)
                self.set_status(K_VM, vm, self.generations(vm, status, None))
                return
            vmi = self.create_vmi(vm)
            if self.manual.get((ns, name)) == "start" and vm["spec"].get("runStrategy") == "Once":
                self.manual.pop((ns, name), None)
            status.update({"printableStatus": "Starting", "created": True, "runStrategy": vm["spec"].get("runStrategy", ""),
                           "conditions": [cond("Ready", "False", "PodNotExists", "virt-launcher pod has not yet been scheduled",
                                               old)]})
            self.set_status(K_VM, vm, self.generations(vm, status, vmi))
            return
        if not want and vmi is not None:
            if vmi["status"].get("phase") != "Succeeded" and not self.due(uid, "stop", STOP):
                status["printableStatus"] = "Stopping"
                self.set_status(K_VM, vm, self.generations(vm, status, vmi))
                return
            self.stop_vmi(ns, name)
            vmi = None
            self.forget(uid, "stop")
        if vmi is None:
            status = {"printableStatus": "Stopped", "runStrategy": vm.get("spec", {}).get("runStrategy", ""),
                      "conditions": [cond("Ready", "False", "VMINotExists", "VMI does not exist", old)],
                      "volumeSnapshotStatuses": status.get("volumeSnapshotStatuses", [])}
            if not status["volumeSnapshotStatuses"]:
                status.pop("volumeSnapshotStatuses")
            # KubeVirt keeps the generation the last VMI ran (a stopped VM's observedGeneration trails its generation)
            if "observedGeneration" in (vm.get("status") or {}):
                status["observedGeneration"] = vm["status"]["observedGeneration"]
            self.set_status(K_VM, vm, self.generations(vm, status, None))
            return
        self.vmi_progress(vm, vmi)
        vmi = self.store.get(K_VMI, ns, name)
        running = vmi["status"].get("phase") == "Running"
        unsched = any(c.get("reason") == "Unschedulable" for c in vmi["status"].get("conditions", []))
        status.update({"created": True, "printableStatus": "Running" if running else ("ErrorUnschedulable" if unsched else "Starting"),
                       "runStrategy": vm["spec"].get("runStrategy", "")})
        if running:
            status["ready"] = True
            status["conditions"] = [cond("Ready", "True", "", "", old)]
        else:
            status.pop("ready", None)
            status["conditions"] = [cond("Ready", "False", "GuestNotRunning", "Guest VM is not reported as running", old)]
        status = self.generations(vm, status, vmi)
        if status["observedGeneration"] != status["desiredGeneration"]:
            status["conditions"].append(cond("RestartRequired", "True", "", RESTART_REQUIRED, old))
        self.set_status(K_VM, vm, status)

    @staticmethod
    def template_mark(vm):
        spec = vm.get("spec") or {}
        body = json.dumps([spec.get("template"), spec.get("instancetype"), spec.get("preference")], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def generations(self, vm, status, vmi):
        """KubeVirt's desiredGeneration / observedGeneration: observed is the generation the running VMI was made from,
        brought forward while the VM should run and its template still matches (say a start through runStrategy), left
        behind by a template change awaiting a restart or a stop; without a VMI it stays where the last one left it."""
        generation = vm["metadata"].get("generation", 1)
        status["desiredGeneration"] = generation
        if vmi is not None:
            annotations = vmi["metadata"].get("annotations") or {}
            if self.wants_running(vm) and annotations.get(TEMPLATE_MARK) == self.template_mark(vm) and \
                    annotations.get(VM_GENERATION) != str(generation):
                vmi = copy.deepcopy(vmi)
                annotations = vmi["metadata"].setdefault("annotations", {})
                annotations[VM_GENERATION] = str(generation)
                self.put(K_VMI, vmi)
            status["observedGeneration"] = int(annotations.get(VM_GENERATION) or generation)
        return status

    def pod_ip(self, ns, name):
        key = (ns, name)
        if key not in self.ips:
            self.ips[key] = "10.244.%d.%d" % (self.next_pod_ip // 250, self.next_pod_ip % 250 + 2)
            self.next_pod_ip += 1
        return self.ips[key]

    def create_vmi(self, vm):
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        tmpl = vm["spec"].get("template", {})
        vmi = _obj("kubevirt.io/v1", "VirtualMachineInstance", name, ns=ns,
                   labels=dict(tmpl.get("metadata", {}).get("labels") or {}, **{"kubevirt.io/vm": name}), owner=vm)
        vmi["metadata"]["annotations"] = dict(tmpl.get("metadata", {}).get("annotations") or {},
                                              **{VM_GENERATION: str(vm["metadata"].get("generation", 1)), TEMPLATE_MARK: self.template_mark(vm)})
        vmi["metadata"]["generation"] = 1
        vmi["metadata"]["finalizers"] = ["kubevirt.io/virtualMachineControllerFinalize", "foregroundDeleteVirtualMachine"]
        vmi["spec"] = copy.deepcopy(tmpl.get("spec", {}))
        vmi["status"] = {"phase": "Pending", "conditions": [], "guestOSInfo": {}}
        vmi = self.put(K_VMI, vmi)
        suffix = uuid.uuid4().hex[:5]
        pod = _obj("v1", "Pod", "virt-launcher-%s-%s" % (name, suffix), ns=ns, owner=vmi,
                   labels=dict(tmpl.get("metadata", {}).get("labels") or {},
                               **{"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": name, "kubevirt.io/created-by": vmi["metadata"]["uid"]}))
        pod["metadata"]["generation"] = 1
        pod["spec"] = {"containers": [{"name": "compute", "image": "quay.io/kubevirt/virt-launcher:v1.8.4"}],
                       "restartPolicy": "Never", "volumes": [{"name": v["name"], "persistentVolumeClaim": {"claimName": v["dataVolume"]["name"]}}
                                                             for v in vmi["spec"].get("volumes", []) if v.get("dataVolume")]}
        pod["status"] = {"phase": "Pending", "conditions": [cond("PodScheduled", "False", "", "", None)], "qosClass": "Burstable"}
        self.put(K_POD, pod)
        return vmi

    def launcher(self, ns, name):
        for pod in self.store.list(K_POD, ns):
            if (pod["metadata"].get("labels") or {}).get("vm.kubevirt.io/name") == name:
                return pod
        return None

    def vmi_progress(self, vm, vmi):
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        uid = vmi["metadata"]["uid"]
        status = copy.deepcopy(vmi["status"])
        old = status.get("conditions") or []
        pod = self.launcher(ns, name)
        app_name = name[len("vm-instance-"):] if name.startswith("vm-instance-") else name
        if self.fault("unschedulable", "vm", app_name) is not None:
            status.update({"phase": "Scheduling", "conditions": [cond("PodScheduled", "False", "Unschedulable",
                                                                      "0/3 nodes are available: 3 Insufficient memory.", old)]})
            self.set_status(K_VMI, vmi, status)
            return
        if status.get("phase") in ("Pending", "Scheduling", "Scheduled"):
            if not self.due(uid, "boot", BOOT):
                if status.get("phase") == "Pending" and self.elapsed(uid, "boot") > 0:
                    status["phase"] = "Scheduling"
                    self.set_status(K_VMI, vmi, status)
                return
            ip = self.pod_ip(ns, name)
            # virt-handler fills the pod network's address from its pod-interface cache when the domain starts
            # (no guest agent needed); the no-ip fault leaves it out
            iface = {"name": "default", "mac": mac_for(ns, name), "infoSource": "domain", "queueCount": 1}
            if self.fault("no-ip", "vm", app_name) is None:
                iface.update({"ipAddress": ip, "ipAddresses": [ip]})
            status.update({"phase": "Running", "nodeName": "worker-1", "launcherContainerImageVersion": "v1.8.4",
                           "conditions": [cond("Ready", "True", "", "", old), cond("LiveMigratable", "True", "", "", old)],
                           "interfaces": [iface],
                           "guestOSInfo": {}, "activePods": {pod["metadata"]["uid"]: "worker-1"} if pod else {}})
            vmi = self.set_status(K_VMI, vmi, status)
            if pod is not None:
                pod["spec"]["nodeName"] = "worker-1"
                pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.100.11",
                                 "startTime": now_rfc3339(), "qosClass": "Burstable",
                                 "conditions": [cond("PodScheduled", "True", "", "", None), cond("Initialized", "True", "", "", None),
                                                cond("ContainersReady", "True", "", "", None), cond("Ready", "True", "", "", None)],
                                 "containerStatuses": [{"name": "compute", "ready": True, "restartCount": 0, "started": True,
                                                        "image": "quay.io/kubevirt/virt-launcher:v1.8.4",
                                                        "imageID": "quay.io/kubevirt/virt-launcher@sha256:" + "0" * 64,
                                                        "containerID": "containerd://" + pod["metadata"]["uid"].replace("-", ""),
                                                        "state": {"running": {"startedAt": now_rfc3339()}}}]}
                self.put(K_POD, pod)
            return
        iface = (status.get("interfaces") or [{}])[0]
        agent = any(c.get("type") == "AgentConnected" for c in old)
        if not agent and self.fault("no-ip", "vm", app_name) is None and self.due(uid, "ip", GUEST_AGENT):
            iface.update({"infoSource": "domain, guest-agent", "interfaceName": "eth0"})
            status["interfaces"] = [iface]
            status["guestOSInfo"] = {"id": "ubuntu", "name": "Ubuntu", "prettyName": "Ubuntu 24.04 LTS", "version": "24.04"}
            status["conditions"] = status.get("conditions", []) + [cond("AgentConnected", "True", "", "", old)]
            self.set_status(K_VMI, vmi, status)

    def stop_vmi(self, ns, name):
        pod = self.launcher(ns, name)
        if pod is not None:
            self.remove(K_POD, ns, pod["metadata"]["name"])
        vmi = self.store.get(K_VMI, ns, name)
        if vmi is not None:
            for step in ("boot", "ip"):
                self.forget(vmi["metadata"]["uid"], step)
            self.remove(K_VMI, ns, name)

    def loadbalancer(self, svc):
        if svc.get("spec", {}).get("type") != "LoadBalancer" or svc.get("status", {}).get("loadBalancer", {}).get("ingress"):
            return
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        app_name = name[len("vm-instance-"):] if name.startswith("vm-instance-") else name
        if self.fault("lb-pending", "vm", app_name) is not None or not self.due(svc["metadata"]["uid"], "lb", LB):
            return
        key = (ns, name)
        if key not in self.lb_ips:
            self.lb_ips[key] = "203.0.113.%d" % self.next_lb_ip
            self.next_lb_ip += 1
        status = dict(svc.get("status") or {})
        status["loadBalancer"] = {"ingress": [{"ip": self.lb_ips[key], "ipMode": "VIP"}]}
        self.set_status(K_SVC, svc, status)

    # ------------------------------------------------------------ snapshots (snapshot.kubevirt.io)
    def snapshot(self, snap):
        meta = snap["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        status = copy.deepcopy(snap.get("status") or {})
        if status.get("phase") == "Succeeded":
            return
        old = status.get("conditions") or []
        source = snap.get("spec", {}).get("source") or {}
        vm = self.store.get(K_VM, ns, source.get("name", ""))
        if vm is None or source.get("kind") != "VirtualMachine":
            status.update({"phase": "InProgress", "readyToUse": False,
                           "conditions": [cond("Progressing", "False", "Source does not exist", "Source does not exist", old),
                                          cond("Ready", "False", "Source does not exist", "Source does not exist", old)]})
            self.set_status(K_SNAP, snap, status)
            return
        if not self.due(uid, "snapshot", SNAPSHOT):
            status.update({"phase": "InProgress", "readyToUse": False, "sourceUID": vm["metadata"]["uid"],
                           "conditions": [cond("Progressing", "True", "Operation in progress", "Operation in progress", old),
                                          cond("Ready", "False", "Not ready", "Not ready", old)]})
            self.set_status(K_SNAP, snap, status)
            return
        content_name = "vmsnapshot-content-" + uid
        vols = [v["name"] for v in vm["spec"].get("template", {}).get("spec", {}).get("volumes", []) if v.get("dataVolume")]
        if self.store.get(K_SNAPC, ns, content_name) is None:
            content = _obj("snapshot.kubevirt.io/v1beta1", "VirtualMachineSnapshotContent", content_name, ns=ns, owner=snap)
            content["metadata"]["generation"] = 1
            content["spec"] = {"source": {"virtualMachine": {"metadata": {"name": vm["metadata"]["name"], "namespace": ns},
                                                             "spec": copy.deepcopy(vm["spec"])}},
                               "virtualMachineSnapshotName": meta["name"],
                               "volumeBackups": [{"volumeName": v, "volumeSnapshotName": "vmsnapshot-%s-volume-%s" % (uid, v)} for v in vols]}
            content["status"] = {"readyToUse": True, "creationTime": now_rfc3339()}
            self.put(K_SNAPC, content)
        online = self.store.get(K_VMI, ns, vm["metadata"]["name"]) is not None
        status.update({"phase": "Succeeded", "readyToUse": True, "creationTime": now_rfc3339(), "sourceUID": vm["metadata"]["uid"],
                       "virtualMachineSnapshotContentName": content_name,
                       "indications": ["Online", "NoGuestAgent"] if online else [],
                       "snapshotVolumes": {"includedVolumes": vols},
                       "conditions": [cond("Progressing", "False", "Operation complete", "Operation complete", old),
                                      cond("Ready", "True", "Operation complete", "Operation complete", old)]})
        if not status["indications"]:
            status.pop("indications")
        self.set_status(K_SNAP, snap, status)

    def vm_restore(self, restore):
        meta = restore["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        status = copy.deepcopy(restore.get("status") or {})
        if status.get("complete"):
            return
        old = status.get("conditions") or []
        spec = restore.get("spec", {})
        snap = self.store.get(K_SNAP, ns, spec.get("virtualMachineSnapshotName", ""))
        target = self.store.get(K_VM, ns, (spec.get("target") or {}).get("name", ""))
        if snap is None or not snap.get("status", {}).get("readyToUse"):
            status.update({"complete": False, "conditions": [
                cond("Progressing", "False", "VMSnapshot not ready", "VirtualMachineSnapshot not ready", old),
                cond("Ready", "False", "VMSnapshot not ready", "VirtualMachineSnapshot not ready", old)]})
            self.set_status(K_RESTORE, restore, status)
            return
        if target is not None and self.store.get(K_VMI, ns, target["metadata"]["name"]) is not None:
            if spec.get("targetReadinessPolicy") == "StopTarget":
                target["spec"]["runStrategy"] = "Halted"
                self.put(K_VM, target)
            status.update({"complete": False, "conditions": [
                cond("Progressing", "True", "Waiting for target to be ready", "Waiting for target VM to be stopped", old),
                cond("Ready", "False", "Waiting for target to be ready", "Waiting for target VM to be stopped", old)]})
            self.set_status(K_RESTORE, restore, status)
            return
        if not self.due(uid, "restore", SNAPSHOT):
            return
        content = self.store.get(K_SNAPC, ns, snap["status"].get("virtualMachineSnapshotContentName", ""))
        if content is not None and target is not None:
            saved = content["spec"]["source"]["virtualMachine"]["spec"]
            target["spec"]["template"] = copy.deepcopy(saved.get("template", {}))
            self.put(K_VM, target)
        status.update({"complete": True, "restoreTime": now_rfc3339(), "conditions": [
            cond("Progressing", "False", "Operation complete", "Operation complete", old),
            cond("Ready", "True", "Operation complete", "Operation complete", old)]})
        self.set_status(K_RESTORE, restore, status)

    # ------------------------------------------------------------ Cozystack backups (backups.cozystack.io)
    def app_key(self, ref):
        return {"VMInstance": K_VMINST, "VMDisk": K_VMDISK}.get((ref or {}).get("kind"))

    def backup_job(self, job):
        meta = job["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        status = copy.deepcopy(job.get("status") or {})
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        old = status.get("conditions") or []
        ref = job.get("spec", {}).get("applicationRef") or {}
        key = self.app_key(ref)
        app = self.store.get(key, ns, ref.get("name", "")) if key else None

        def failed(reason, msg):
            # A failed job stays (phase Failed, its message) and makes no Backup; removing it is the tenant's business.
            status.update({"phase": "Failed", "message": msg, "completedAt": now_rfc3339(),
                           "conditions": [cond("Ready", "False", reason, msg, old)]})
            self.set_status(K_BJOB, job, status)

        if app is None:
            return failed("ApplicationNotFound", "application %s %s/%s not found" % (ref.get("kind"), ns, ref.get("name")))
        class_name = job.get("spec", {}).get("backupClassName", "")
        if self.store.get(K_BCLASS, "", class_name) is None:
            return failed("BackupClassNotFound", 'BackupClass "%s" not found' % class_name)
        if not self.due(uid, "backup", BACKUP):
            if status.get("phase") != "Running":
                status.update({"phase": "Running", "startedAt": now_rfc3339()})
                self.set_status(K_BJOB, job, status)
            return None
        fault = self.fault("backup-fail", "app", ref.get("name", ""))
        if fault is not None:
            return failed("BackupFailed", fault.args.get("message", "velero backup %s-%s failed: injected fault" % (ns, name)))
        backup = _obj("backups.cozystack.io/v1alpha1", "Backup", name, ns=ns, owner=job,
                      annotations={CAPTURED: json.dumps(app.get("spec") or {}, sort_keys=True)},
                      labels={"backups.cozystack.io/backupjob": name})
        backup["metadata"]["generation"] = 1
        kind = ref.get("kind", "VMInstance").lower()
        backup["spec"] = {"applicationRef": dict(ref), "takenAt": now_rfc3339(),
                          "strategyRef": {"apiGroup": "strategy.backups.cozystack.io", "kind": "Velero",
                                          "name": "cozy-default-velero-" + kind},
                          "driverMetadata": {"velero.io/backup-name": "%s-%s" % (ns, name)}}
        backup["metadata"]["ownerReferences"] = []
        backup["status"] = {"phase": "Ready", "artifact": {"uri": "s3://cozy-backups/%s/%s" % (ns, name)},
                            "conditions": [cond("Ready", "True", "BackupCompleted", "", None)]}
        if self.store.get(K_BACKUP, ns, name) is None:
            self.put(K_BACKUP, backup)
        status.update({"phase": "Succeeded", "backupRef": {"name": name}, "completedAt": now_rfc3339(),
                       "conditions": [cond("Ready", "True", "BackupCompleted", "", old)]})
        self.set_status(K_BJOB, job, status)
        return None

    def restore_job(self, job):
        meta = job["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        status = copy.deepcopy(job.get("status") or {})
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        old = status.get("conditions") or []
        spec = job.get("spec") or {}
        backup = self.store.get(K_BACKUP, ns, (spec.get("backupRef") or {}).get("name", ""))

        def failed(msg):
            status.update({"phase": "Failed", "message": msg, "completedAt": now_rfc3339(),
                           "conditions": [cond("Ready", "False", "RestoreFailed", msg, old)]})
            self.set_status(K_RJOB, job, status)

        if backup is None:
            return failed("backup %s/%s not found" % (ns, (spec.get("backupRef") or {}).get("name")))
        source = backup["spec"]["applicationRef"]
        target = spec.get("targetApplicationRef") or source
        options = spec.get("options") or {}
        target_ns = options.get("targetNamespace") or ns
        key = self.app_key(target)
        if key is None:
            return failed("unsupported application kind %s" % target.get("kind"))
        if target_ns == ns and target.get("name") != source.get("name"):
            return failed("restoring to a different name in the same namespace is not supported; use options.targetNamespace")
        if self.store.get(K_NS, "", target_ns) is None:
            return failed('namespaces "%s" not found' % target_ns)
        existing = self.store.get(key, target_ns, target.get("name", ""))
        if existing is not None and target_ns != ns and options.get("failIfTargetExists", True):
            return failed("target application %s %s/%s already exists" % (target.get("kind"), target_ns, target.get("name")))
        if not self.due(uid, "restore", BACKUP):
            if status.get("phase") != "Running":
                status.update({"phase": "Running", "startedAt": now_rfc3339()})
                self.set_status(K_RJOB, job, status)
            return None
        fault = self.fault("restore-fail", "app", target.get("name", ""))
        if fault is not None:  # before anything is restored: the application stays as it was
            return failed(fault.args.get("message", "velero restore of %s failed: injected fault" % target.get("name")))
        captured = json.loads((backup["metadata"].get("annotations") or {}).get(CAPTURED, "{}"))
        if existing is None:
            app = _obj("apps.cozystack.io/v1alpha1", target.get("kind"), target.get("name"), ns=target_ns)
            app["spec"] = captured
            app["status"] = {}
            self.put(key, app)
        else:
            existing["spec"] = captured
            self.put(key, existing)
            if key == K_VMINST:
                self.manual[(target_ns, "vm-instance-" + target.get("name"))] = "restart"
        status.update({"phase": "Succeeded", "completedAt": now_rfc3339(),
                       "conditions": [cond("Ready", "True", "RestoreCompleted", "", old)]})
        self.set_status(K_RJOB, job, status)
        return None


def quantity(text):
    units = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9,
             "T": 10 ** 12}
    text = str(text).strip()
    for suffix, mult in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suffix):
            try:
                return float(text[:-len(suffix)]) * mult
            except ValueError:
                return 0.0
    try:
        return float(text)
    except ValueError:
        return 0.0


def mac_for(ns, name):
    digest = hashlib.sha256(("%s/%s" % (ns, name)).encode()).hexdigest()
    return "02:" + ":".join(digest[i:i + 2] for i in range(0, 10, 2))


class KubeVirtActions:
    """subresources.kubevirt.io/v1 virtualmachines/<name>/start|stop|restart (virt-api)."""

    def __init__(self, api, controller):
        self.api = api
        self.controller = controller

    def _conflict(self, name, msg):
        return ApiError(409, "Conflict", 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "%s": %s' % (name, msg),
                        name=name)

    def action(self, ns, name, verb, raw):
        del raw
        store = self.api.store
        rt = self.api.registry.get("kubevirt.io", "v1", "virtualmachines")
        with store.lock, self.controller.mutex:
            self.api.check_namespace(rt, ns)
            vm = store.get(K_VM, ns, name)
            if vm is None:
                raise not_found(rt, name)
            vmi = store.get(K_VMI, ns, name)
            strategy = vm["spec"].get("runStrategy") or ("Always" if vm["spec"].get("running") else "Halted")
            if verb == "start":
                if strategy in ("Always", "Once") and "runStrategy" in vm["spec"]:
                    raise self._conflict(name, "%s does not support manual start requests" % strategy)
                if vmi is not None:
                    raise self._conflict(name, "VM is already running")
                if strategy == "Halted":
                    self._set_strategy(vm, "Always")
                else:
                    self.controller.manual[(ns, name)] = "start"
            elif verb == "stop":
                if vmi is None and strategy in ("Halted", "Manual", "Once"):
                    raise self._conflict(name, "VM is not running")
                if strategy in ("Always", "RerunOnFailure"):
                    self._set_strategy(vm, "Halted")
                else:
                    self.controller.manual[(ns, name)] = "stop"
            else:
                if vmi is None:
                    raise self._conflict(name, "VM is not running")
                if strategy == "Halted":
                    raise self._conflict(name, "Halted does not support manual restart requests")
                self.controller.manual[(ns, name)] = "restart"
        self.api.notify()

    def _set_strategy(self, vm, strategy):
        vm = copy.deepcopy(vm)
        if "runStrategy" in vm["spec"] or "running" not in vm["spec"]:
            vm["spec"]["runStrategy"] = strategy
            vm["spec"].pop("running", None)
        else:
            vm["spec"]["running"] = strategy == "Always"
        vm["metadata"]["generation"] = vm["metadata"].get("generation", 1) + 1
        self.api.store.put(K_VM, vm)
