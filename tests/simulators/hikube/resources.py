# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# The resource types the emulator serves, and what the discovery endpoints say about them.

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
APP_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
READ_VERBS = ["get", "list", "watch"]


class ResourceType:
    """One served resource (group, version, plural) and the behaviour switches the handlers use."""

    def __init__(self, group, version, plural, kind, namespaced=True, verbs=None, short_names=None,
                 status=True, builtin=False, generation=None, return_deleted=True, categories=None,
                 field_labels=(), app_prefix=None, virtual=False, singular=None):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.singular = singular or kind.lower()
        self.namespaced = namespaced
        self.verbs = list(verbs if verbs is not None else ALL_VERBS)
        self.short_names = list(short_names or [])
        self.categories = list(categories or [])
        self.status = status            # has a /status subresource
        self.builtin = builtin          # a core kind (strategic merge patch accepted)
        self.generation = (not builtin) if generation is None else generation
        self.return_deleted = return_deleted
        self.field_labels = set(field_labels) | {"metadata.name", "metadata.namespace"}
        self.app_prefix = app_prefix    # apps.cozystack.io application: HelmRelease name prefix
        self.virtual = virtual          # computed on read (Options)

    @property
    def key(self):
        return "%s/%s" % (self.group, self.plural)

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def group_label(self):
        """The resource as apiserver messages name it: `pods`, `vminstances.apps.cozystack.io`."""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    def describe(self):
        out = {"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
               "kind": self.kind, "verbs": list(self.verbs)}
        if self.short_names:
            out["shortNames"] = list(self.short_names)
        if self.categories:
            out["categories"] = list(self.categories)
        return out


def _core(plural, kind, **kw):
    kw.setdefault("builtin", True)
    return ResourceType("", "v1", plural, kind, **kw)


RESOURCES = [
    _core("namespaces", "Namespace", namespaced=False, short_names=["ns"], field_labels=["status.phase"],
          verbs=["create", "delete", "get", "list", "patch", "update", "watch"]),
    _core("pods", "Pod", short_names=["po"], categories=["all"], generation=True,
          field_labels=["status.phase", "spec.nodeName", "status.podIP", "spec.restartPolicy", "spec.serviceAccountName"]),
    _core("services", "Service", short_names=["svc"], categories=["all"], field_labels=["spec.type", "spec.clusterIP"],
          verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]),
    _core("secrets", "Secret", status=False, return_deleted=False, field_labels=["type"]),
    _core("configmaps", "ConfigMap", short_names=["cm"], status=False, return_deleted=False),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short_names=["pvc"]),
    _core("events", "Event", short_names=["ev"], status=False, return_deleted=False,
          field_labels=["involvedObject.kind", "involvedObject.name", "involvedObject.namespace", "involvedObject.uid",
                        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                        "reason", "reportingComponent", "source", "type"]),
    ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False, short_names=["sc"],
                 status=False, builtin=True),
    ResourceType("apps.cozystack.io", "v1alpha1", "vminstances", "VMInstance", verbs=APP_VERBS, status=False,
                 return_deleted=False, app_prefix="vm-instance-", singular="vminstance"),
    ResourceType("apps.cozystack.io", "v1alpha1", "vmdisks", "VMDisk", verbs=APP_VERBS, status=False,
                 return_deleted=False, app_prefix="vm-disk-", singular="vmdisk"),
    ResourceType("core.cozystack.io", "v1alpha1", "options", "Option", verbs=["get", "list"], status=False,
                 virtual=True),
    ResourceType("kubevirt.io", "v1", "virtualmachines", "VirtualMachine", short_names=["vm", "vms"], categories=["all"]),
    ResourceType("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", short_names=["vmi", "vmis"],
                 categories=["all"]),
    ResourceType("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterinstancetypes",
                 "VirtualMachineClusterInstancetype", namespaced=False, status=False,
                 short_names=["vmclusterinstancetype", "vmclusterinstancetypes", "vmcf", "vmcfs"]),
    ResourceType("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterpreferences",
                 "VirtualMachineClusterPreference", namespaced=False, status=False,
                 short_names=["vmcp", "vmcps"]),
    ResourceType("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", short_names=["dv", "dvs"], categories=["all"]),
    ResourceType("snapshot.kubevirt.io", "v1beta1", "virtualmachinesnapshots", "VirtualMachineSnapshot",
                 short_names=["vmsnapshot", "vmsnapshots"]),
    ResourceType("snapshot.kubevirt.io", "v1beta1", "virtualmachinesnapshotcontents", "VirtualMachineSnapshotContent",
                 short_names=["vmsnapshotcontent", "vmsnapshotcontents"]),
    ResourceType("snapshot.kubevirt.io", "v1beta1", "virtualmachinerestores", "VirtualMachineRestore",
                 short_names=["vmrestore", "vmrestores"]),
    ResourceType("cozystack.io", "v1alpha1", "workloadmonitors", "WorkloadMonitor"),
    ResourceType("backups.cozystack.io", "v1alpha1", "backupjobs", "BackupJob"),
    ResourceType("backups.cozystack.io", "v1alpha1", "backups", "Backup"),
    ResourceType("backups.cozystack.io", "v1alpha1", "restorejobs", "RestoreJob"),
    ResourceType("backups.cozystack.io", "v1alpha1", "plans", "Plan"),
    ResourceType("backups.cozystack.io", "v1alpha1", "backupclasses", "BackupClass", namespaced=False),
]

# subresources.kubevirt.io/v1 (served by virt-api): only the VM power actions are emulated.
KUBEVIRT_SUBRESOURCES = [
    {"name": "virtualmachines/start", "singularName": "", "namespaced": True, "kind": "VirtualMachine", "verbs": ["update"]},
    {"name": "virtualmachines/stop", "singularName": "", "namespaced": True, "kind": "VirtualMachine", "verbs": ["update"]},
    {"name": "virtualmachines/restart", "singularName": "", "namespaced": True, "kind": "VirtualMachine", "verbs": ["update"]},
]

CORE_SUBRESOURCES = {
    "namespaces": ["status", "finalize"],
    "pods": ["status", "log"],
    "services": ["status"],
    "persistentvolumeclaims": ["status"],
}


class Registry:
    """Lookup of the served types by (group, version, plural) and discovery documents."""

    def __init__(self, resources=None):
        self.resources = list(resources or RESOURCES)
        self.by_gvp = {(r.group, r.version, r.plural): r for r in self.resources}
        self.by_key = {r.key: r for r in self.resources}
        self.by_kind = {(r.group, r.kind): r for r in self.resources}

    def get(self, group, version, plural):
        return self.by_gvp.get((group, version, plural))

    def kind(self, group, kind):
        return self.by_kind.get((group, kind))

    def key(self, key):
        return self.by_key[key]

    def groups(self):
        seen = {}
        for r in self.resources:
            if r.group:
                seen.setdefault(r.group, [])
                if r.version not in seen[r.group]:
                    seen[r.group].append(r.version)
        seen.setdefault("subresources.kubevirt.io", ["v1"])
        return seen

    def api_group(self, group):
        versions = self.groups().get(group)
        if not versions:
            return None
        entries = [{"groupVersion": "%s/%s" % (group, v), "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries,
                "preferredVersion": dict(entries[0])}

    def group_list(self):
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self.api_group(g) for g in sorted(self.groups())]}

    def resource_list(self, group, version):
        if group == "subresources.kubevirt.io" and version == "v1":
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "subresources.kubevirt.io/v1",
                    "resources": [dict(r) for r in KUBEVIRT_SUBRESOURCES]}
        items = [r for r in self.resources if r.group == group and r.version == version]
        if not items:
            return None
        resources = []
        for r in items:
            resources.append(r.describe())
            subs = CORE_SUBRESOURCES.get(r.plural, []) if r.builtin else (["status"] if r.status else [])
            for sub in subs:
                verbs = ["get", "patch", "update"] if sub == "status" else (["update"] if sub == "finalize" else ["get"])
                resources.append({"name": "%s/%s" % (r.plural, sub), "singularName": "", "namespaced": r.namespaced,
                                  "kind": r.kind if sub != "log" else "Pod", "verbs": verbs})
        gv = "%s/%s" % (group, version) if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
