# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The conformance suite's probe for Hikube: reads the real objects with the official kubernetes client
(never with this collection's code) and prints JSON. The commands are those of probes/lxd.py:

  instance NAME           {exists, name, type, state, cpus, memory_mib, disk_gib, tags, description,
                           networks: [{network, mac}], disks: [{name, path}], snapshots, backups}
  instances PREFIX        [{name, state}] of the VMInstances whose name starts with PREFIX
  disk NAME               {exists, name, storage, size_gib, attached_to: [instance], paths: {instance: path}}
  cleanup PREFIX          deletes every VMInstance and VMDisk whose name starts with PREFIX, and their backup objects
  session start|stop      nothing to set up: the emulator is this run's own
  journal start|stop      nothing to start: the emulator keeps the journal (GET /_sim/requests)
  journal mark            prints the index of the next request
  journal since MARK      {entries: [{index, method, path, status}], reads, writes, mark}

What the probe reads is what KubeVirt and CDI made of the applications: the state is the
VirtualMachine's printableStatus, sizes come from its template (or its instancetype) and from the
PVC. It reads with the emulator's admin token (tenants may not read VMIs or PVCs), and the emulator
records which token asked, so `journal since` leaves the probe's own requests out.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

from _cli import main  # the probes' shared command line; this folder is on sys.path when a probe runs
from kubernetes import client as kclient

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
STATES = {"Running": "running", "Stopped": "stopped", "Paused": "paused"}
UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
APPS = ("apps.cozystack.io", "v1alpha1")
BACKUPS = ("backups.cozystack.io", "v1alpha1")
CLEANUP_TIMEOUT = 120


class Probe:
    def __init__(self, config):
        backend = config["backend"]
        connection = backend["connection"]
        self.namespace = connection["namespace"]
        self.url = backend["simulator_url"].rstrip("/")
        configuration = kclient.Configuration()
        configuration.host = connection["host"]
        configuration.api_key = {"authorization": backend["probe_token"], "BearerToken": backend["probe_token"]}
        configuration.api_key_prefix = {"authorization": "Bearer", "BearerToken": "Bearer"}
        self.api = kclient.ApiClient(configuration)
        self.custom = kclient.CustomObjectsApi(self.api)
        self.core = kclient.CoreV1Api(self.api)

    # -- reads -----------------------------------------------------------------------------------

    def _get(self, group, version, plural, name, namespaced=True):
        try:
            if namespaced:
                return self.custom.get_namespaced_custom_object(group, version, self.namespace, plural, name)
            return self.custom.get_cluster_custom_object(group, version, plural, name)
        except kclient.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _list(self, group, version, plural):
        return self.custom.list_namespaced_custom_object(group, version, self.namespace, plural).get("items") or []

    def _pvc(self, name):
        # Untyped: the typed models would reject what they do not need.
        try:
            response = self.core.read_namespaced_persistent_volume_claim(name, self.namespace, _preload_content=False)
        except kclient.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return json.loads(response.data)

    def instance(self, name):
        app = self._get(*APPS, "vminstances", name)
        if app is None:
            return {"exists": False, "name": name}
        release = "vm-instance-" + name
        vm = self._get("kubevirt.io", "v1", "virtualmachines", release) or {}
        template = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        domain = template.get("domain") or {}
        cpus = memory = None
        if domain.get("cpu", {}).get("cores"):
            cpus = int(domain["cpu"]["cores"]) * int(domain["cpu"].get("sockets") or 1)
        if (domain.get("resources") or {}).get("requests", {}).get("memory"):
            memory = size_bytes(domain["resources"]["requests"]["memory"]) // 2**20
        kind = (vm.get("spec") or {}).get("instancetype")
        if kind and (cpus is None or memory is None):
            found = self._get("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterinstancetypes", kind["name"], namespaced=False)
            spec = (found or {}).get("spec") or {}
            cpus = cpus if cpus is not None else spec.get("cpu", {}).get("guest")
            memory = memory if memory is not None else size_bytes(spec.get("memory", {}).get("guest", "0")) // 2**20
        disks = [item.get("name") for item in (app.get("spec") or {}).get("disks") or []]
        system = disks[0] if disks else None
        pvc = self._pvc("vm-disk-" + system) if system else None
        size = ((pvc or {}).get("spec") or {}).get("resources", {}).get("requests", {}).get("storage")
        labels = app["metadata"].get("labels") or {}
        interfaces = dict((item.get("name"), item) for item in (domain.get("devices") or {}).get("interfaces") or [])
        networks = [{"network": (item.get("multus") or {}).get("networkName"), "mac": (interfaces.get(item.get("name")) or {}).get("macAddress")}
                    for item in template.get("networks") or [] if item.get("multus")]
        # The pod network comes first (KubeVirt's default interface); its MAC is the running VMI's (none while stopped).
        vmi = self._get("kubevirt.io", "v1", "virtualmachineinstances", release) or {}
        macs = dict((item.get("name"), item.get("mac")) for item in (vmi.get("status") or {}).get("interfaces") or [])
        networks = [{"network": "pod", "mac": macs.get(item.get("name"))} for item in template.get("networks") or [] if "pod" in item] + networks
        snapshots = [item for item in self._list("snapshot.kubevirt.io", "v1beta1", "virtualmachinesnapshots")
                     if (item.get("spec") or {}).get("source", {}).get("name") == release]
        backups = [item for item in self._list("backups.cozystack.io", "v1alpha1", "backups")
                   if (item.get("spec") or {}).get("applicationRef", {}).get("name") == name]
        return {
            "exists": True,
            "name": name,
            "type": "vm",
            "state": STATES.get((vm.get("status") or {}).get("printableStatus"), ((vm.get("status") or {}).get("printableStatus") or "none").lower()),
            "cpus": cpus,
            "memory_mib": memory,
            "disk_gib": gib(size) if size else None,
            "tags": read_tags(app["metadata"].get("annotations") or {}, labels),
            "description": (app["metadata"].get("annotations") or {}).get("polyvirt.io/description") or "",
            "networks": networks,
            "disks": [{"name": disk, "path": self._device(name, disk)} for disk in disks[1:]],
            "snapshots": [{"name": item["metadata"]["name"], "stateful": False, "created_at": item["metadata"].get("creationTimestamp")} for item in snapshots],
            # The driver names backup B of instance N's BackupJob (and so its Backup) N-B: the name a module shows is B.
            "backups": [{"name": backup_name(name, item["metadata"]["name"]), "created_at": item["metadata"].get("creationTimestamp")}
                        for item in backups],
        }

    def instances(self, prefix):
        result = []
        for app in self._list(*APPS, "vminstances"):
            name = app["metadata"]["name"]
            if name.startswith(prefix):
                vm = self._get("kubevirt.io", "v1", "virtualmachines", "vm-instance-" + name) or {}
                status = (vm.get("status") or {}).get("printableStatus")
                result.append({"name": name, "state": STATES.get(status, (status or "none").lower())})
        return sorted(result, key=lambda item: item["name"])

    def disk(self, name):
        app = self._get(*APPS, "vmdisks", name)
        if app is None:
            return {"exists": False, "name": name}
        pvc = self._pvc("vm-disk-" + name) or {}
        size = (pvc.get("spec") or {}).get("resources", {}).get("requests", {}).get("storage")
        users = sorted(item["metadata"]["name"] for item in self._list(*APPS, "vminstances")
                       if any(disk.get("name") == name for disk in (item.get("spec") or {}).get("disks") or []))
        # What CDI copies from: the DataVolume's own source (a PVC clone for a copy of another disk).
        volume = self._get("cdi.kubevirt.io", "v1beta1", "datavolumes", "vm-disk-" + name) or {}
        pvc_source = ((volume.get("spec") or {}).get("source") or {}).get("pvc") or {}
        return {"exists": True, "name": name, "storage": (app.get("spec") or {}).get("storageClass"), "size_gib": gib(size) if size else None,
                "attached_to": users, "paths": dict((user, self._device(user, name)) for user in users),
                "copy_of_volume": pvc_source.get("name")}

    def _device(self, instance, disk):
        """The name of the VM's disk device whose volume is the disk's DataVolume (what the driver calls its path)."""
        vm = self._get("kubevirt.io", "v1", "virtualmachines", "vm-instance-" + instance) or {}
        template = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        for volume in template.get("volumes") or []:
            if (volume.get("dataVolume") or {}).get("name") == "vm-disk-" + disk:
                return volume.get("name")
        return None

    def cleanup(self, prefix):
        if len(prefix) < 3:
            raise SystemExit("refusing to clean up prefix %r: too short to be a test run's own" % prefix)
        removed = self._cleanup_backups(prefix)
        for plural in ("vminstances", "vmdisks"):  # instances first: a disk in use stays until its VM is gone
            names = [item["metadata"]["name"] for item in self._list(*APPS, plural) if item["metadata"]["name"].startswith(prefix)]
            for name in names:
                try:
                    self.custom.delete_namespaced_custom_object(*APPS, self.namespace, plural, name)
                except kclient.ApiException as exc:
                    if exc.status != 404:
                        raise
                removed.append(name)
            deadline = time.monotonic() + CLEANUP_TIMEOUT
            while time.monotonic() < deadline and any(item["metadata"]["name"] in names for item in self._list(*APPS, plural)):
                time.sleep(0.2)  # the emulator uninstalls in about a second (times its --time-scale); the deadline bounds it
        left = [item["metadata"]["name"] for plural in ("vminstances", "vmdisks") for item in self._list(*APPS, plural)
                if item["metadata"]["name"].startswith(prefix)]
        return {"removed": removed, "left": left}

    def _cleanup_backups(self, prefix):
        """The backup objects of the run's instances (as the admin: a tenant may not delete a Backup), jobs first."""
        removed = []
        backups = [item["metadata"]["name"] for item in self._list(*BACKUPS, "backups")
                   if ((item.get("spec") or {}).get("applicationRef") or {}).get("name", "").startswith(prefix)]
        for plural in ("restorejobs", "backupjobs", "backups"):
            for item in self._list(*BACKUPS, plural):
                spec = item.get("spec") or {}
                mine = ((spec.get("applicationRef") or {}).get("name", "").startswith(prefix)
                        or (spec.get("backupRef") or {}).get("name") in backups)
                if not mine:
                    continue
                try:
                    self.custom.delete_namespaced_custom_object(*BACKUPS, self.namespace, plural, item["metadata"]["name"])
                except kclient.ApiException as exc:
                    if exc.status != 404:
                        raise
                removed.append("%s/%s" % (plural, item["metadata"]["name"]))
        return removed

    # -- the session and the journal ---------------------------------------------------------------

    def session_start(self):
        return {}

    def session_stop(self):
        return {}

    def journal_start(self):
        return {"mark": self.journal_mark()}

    def journal_stop(self):
        return {"stopped": None}

    def _journal(self, since=0):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
        with opener.open("%s/_sim/requests?since=%d" % (self.url, since), timeout=30) as response:
            return json.loads(response.read())

    def journal_mark(self):
        entries = self._journal()
        return entries[-1]["index"] + 1 if entries else 0

    def journal_since(self, mark):
        entries = [entry for entry in self._journal(mark) if entry.get("user") != "admin"]
        return {
            "entries": [{"index": e["index"], "method": e["method"], "path": e["path"] + ("?" + e["query"] if e.get("query") else ""),
                         "status": e["status"]} for e in entries],
            "reads": sum(1 for e in entries if e["method"] == "GET"),
            "writes": sum(1 for e in entries if e["method"] in MUTATING),
            "mark": entries[-1]["index"] + 1 if entries else mark,
        }


def backup_name(instance, native):
    prefix = instance + "-"
    return native[len(prefix):] if native.startswith(prefix) and len(native) > len(prefix) else native


def read_tags(annotations, labels):
    """The driver's home for tags: the annotation polyvirt.io/tags (a JSON list: a tag may be no label name), else the tag labels."""
    if annotations.get("polyvirt.io/tags"):
        return sorted(json.loads(annotations["polyvirt.io/tags"]))
    return sorted(key.split("/", 1)[1] for key in labels if key.startswith("tags.polyvirt.io/"))


def size_bytes(text):
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kMGT]i?|)\s*$", str(text))
    if not match:
        raise SystemExit("not a Kubernetes quantity: %r" % text)
    return int(float(match.group(1)) * UNITS[match.group(2)])


def gib(text):
    value = size_bytes(text) / 2**30
    return int(value) if value.is_integer() else value


if __name__ == "__main__":
    main(lambda config, state: Probe(config), __doc__, "hikube")
