# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Kubernetes API core semantics, driven by the official kubernetes client (DynamicClient, CoreV1Api, CustomObjectsApi).

import json
import threading
import urllib.error
import urllib.request

import pytest
from kubernetes import client as kclient
from kubernetes import watch as kwatch
from kubernetes.dynamic import exceptions as dexc

from .conftest import ADMIN, NS, unique


def test_discovery(dyn, cozy):
    version = kclient.VersionApi(cozy.api_client()).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    vmi = dyn.resources.get(api_version="apps.cozystack.io/v1alpha1", kind="VMInstance")
    assert vmi.namespaced and vmi.name == "vminstances"
    assert set(vmi.verbs) == {"create", "delete", "get", "list", "patch", "update", "watch"}
    assert dyn.resources.get(api_version="v1", kind="Namespace").namespaced is False
    assert "vmi" in dyn.resources.get(api_version="kubevirt.io/v1", kind="VirtualMachineInstance").short_names
    assert dyn.resources.get(api_version="cdi.kubevirt.io/v1beta1", kind="DataVolume").name == "datavolumes"
    assert dyn.resources.get(api_version="backups.cozystack.io/v1alpha1", kind="BackupJob").namespaced
    with pytest.raises(dexc.ResourceNotFoundError):
        dyn.resources.get(api_version="apps.cozystack.io/v1alpha1", kind="Kubernetes")
    groups = kclient.ApisApi(cozy.api_client()).get_api_versions()
    names = {g.name for g in groups.groups}
    assert {"apps.cozystack.io", "kubevirt.io", "subresources.kubevirt.io", "cdi.kubevirt.io", "snapshot.kubevirt.io",
            "backups.cozystack.io", "core.cozystack.io"} <= names


def _raw(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_auth(cozy):
    code, body = _raw(cozy.url + "/api/v1/namespaces/%s/pods" % NS, "wrong")
    assert (code, body["reason"]) == (401, "Unauthorized")
    code, body = _raw(cozy.url + "/api/v1/namespaces/%s/pods" % NS)
    assert (code, body["reason"]) == (403, "Forbidden")
    assert _raw(cozy.url + "/version")[0] == 200
    code, body = _raw(cozy.url + "/api/v1/namespaces/%s/pods" % NS, "polyvirt-sim")
    assert code == 200 and body["kind"] == "PodList"


def test_crud_metadata_and_conflicts(dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    name = unique("cm")
    created = cms.create(namespace=NS, body={"metadata": {"name": name, "labels": {"app": "a"}}, "data": {"k": "v"}})
    meta = created.metadata
    assert meta.uid and meta.creationTimestamp.endswith("Z") and int(meta.resourceVersion) > 0
    with pytest.raises(dexc.ConflictError) as err:
        cms.create(namespace=NS, body={"metadata": {"name": name}})
    assert json.loads(err.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(dexc.BadRequestError):
        cms.create(namespace=NS, body={"metadata": {"name": name + "-rv", "resourceVersion": "1"}})
    # PUT with the current resourceVersion succeeds and bumps it; a stale one is a 409 Conflict
    body = created.to_dict()
    body["data"] = {"k": "v2"}
    updated = cms.replace(namespace=NS, body=body)
    assert int(updated.metadata.resourceVersion) > int(meta.resourceVersion)
    assert updated.metadata.uid == meta.uid
    with pytest.raises(dexc.ConflictError) as err:
        cms.replace(namespace=NS, body=body)
    assert json.loads(err.value.body)["reason"] == "Conflict"
    # merge patch and JSON patch
    patched = cms.patch(namespace=NS, name=name, body={"data": {"k": None, "n": "1"}},
                        content_type="application/merge-patch+json")
    assert patched.data.to_dict() == {"n": "1"}
    patched = cms.patch(namespace=NS, name=name, body=[{"op": "add", "path": "/data/m", "value": "2"},
                                                       {"op": "test", "path": "/data/n", "value": "1"}],
                        content_type="application/json-patch+json")
    assert patched.data.to_dict() == {"n": "1", "m": "2"}
    with pytest.raises(dexc.UnprocessibleEntityError):
        cms.patch(namespace=NS, name=name, body=[{"op": "test", "path": "/data/n", "value": "nope"}],
                  content_type="application/json-patch+json")
    # delete, then 404 with a proper Status
    cms.delete(namespace=NS, name=name)
    with pytest.raises(dexc.NotFoundError) as err:
        cms.get(namespace=NS, name=name)
    status = json.loads(err.value.body)
    assert status["kind"] == "Status" and status["reason"] == "NotFound" and status["code"] == 404
    assert status["message"] == 'configmaps "%s" not found' % name


def test_namespace_must_exist(dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(dexc.NotFoundError) as err:
        cms.create(namespace="no-such-ns", body={"metadata": {"name": "x"}})
    assert json.loads(err.value.body)["message"] == 'namespaces "no-such-ns" not found'


def test_list_selectors(dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    tag = unique("sel")
    for idx, tier in enumerate(["web", "db", "cache"]):
        cms.create(namespace=NS, body={"metadata": {"name": "%s-%d" % (tag, idx), "labels": {"tag": tag, "tier": tier}}})
    listing = cms.get(namespace=NS, label_selector="tag=%s" % tag)
    assert listing.kind == "ConfigMapList" and int(listing.metadata.resourceVersion) > 0
    assert len(listing.items) == 3

    def names(sel):
        return sorted(i.metadata.name for i in cms.get(namespace=NS, label_selector=sel).items)

    assert names("tag=%s,tier in (web,db)" % tag) == ["%s-0" % tag, "%s-1" % tag]
    assert names("tag=%s,tier notin (web,db)" % tag) == ["%s-2" % tag]
    assert names("tag=%s,tier!=web" % tag) == ["%s-1" % tag, "%s-2" % tag]
    assert names("tag=%s,!missing" % tag) == names("tag=%s" % tag)
    assert names("tag=%s,missing" % tag) == []
    field = cms.get(namespace=NS, field_selector="metadata.name=%s-1" % tag)
    assert [i.metadata.name for i in field.items] == ["%s-1" % tag]
    with pytest.raises(dexc.BadRequestError):
        cms.get(namespace=NS, field_selector="spec.nope=1")
    # pagination with limit/continue
    page = cms.get(namespace=NS, label_selector="tag=%s" % tag, limit=2)
    assert len(page.items) == 2 and page.metadata["continue"]
    rest = cms.get(namespace=NS, label_selector="tag=%s" % tag, limit=2, _continue=page.metadata["continue"])
    assert len(rest.items) == 1
    # all namespaces
    assert any(i.metadata.namespace == "cozy-public" for i in
               dyn.resources.get(api_version="v1", kind="PersistentVolumeClaim").get().items)


def test_typed_clients(cozy):
    api = cozy.api_client()
    core = kclient.CoreV1Api(api)
    name = unique("sec")
    core.create_namespaced_secret(NS, kclient.V1Secret(metadata=kclient.V1ObjectMeta(name=name), string_data={"a": "b"}))
    secret = core.read_namespaced_secret(name, NS)
    assert secret.data == {"a": "Yg=="} and secret.type == "Opaque"
    assert name in [s.metadata.name for s in core.list_namespaced_secret(NS).items]
    core.delete_namespaced_secret(name, NS)
    custom = kclient.CustomObjectsApi(api)
    disks = custom.list_namespaced_custom_object("apps.cozystack.io", "v1alpha1", NS, "vmdisks")
    assert disks["kind"] == "VMDiskList" and isinstance(disks["items"], list)
    with pytest.raises(kclient.ApiException) as err:
        custom.get_namespaced_custom_object("apps.cozystack.io", "v1alpha1", NS, "vmdisks", "absent")
    assert err.value.status == 404


def test_custom_resource_semantics(dyn_crd):
    """Plain CRD semantics (--mode crd): 409 duplicate, RV preconditions, generation, SMP 415, finalizers."""
    disks = dyn_crd.resources.get(api_version="apps.cozystack.io/v1alpha1", kind="VMDisk")
    name = unique("d")
    created = disks.create(namespace=NS, body={"metadata": {"name": name}, "spec": {"storage": "1Gi"}})
    assert created.metadata.generation == 1
    with pytest.raises(dexc.ConflictError):
        disks.create(namespace=NS, body={"metadata": {"name": name}, "spec": {}})
    with pytest.raises(dexc.ApiException) as err:
        disks.patch(namespace=NS, name=name, body={"spec": {"storage": "2Gi"}})  # default content type: strategic merge
    assert err.value.status == 415
    patched = disks.patch(namespace=NS, name=name, body={"spec": {"storage": "2Gi"}}, content_type="application/merge-patch+json")
    assert patched.metadata.generation == 2
    labelled = disks.patch(namespace=NS, name=name, body={"metadata": {"labels": {"a": "b"}}},
                           content_type="application/merge-patch+json")
    assert labelled.metadata.generation == 2, "metadata changes do not bump generation"
    stale = created.to_dict()
    with pytest.raises(dexc.ConflictError):
        disks.replace(namespace=NS, body=stale)
    del stale["metadata"]["resourceVersion"]
    with pytest.raises(dexc.UnprocessibleEntityError):
        disks.replace(namespace=NS, body=stale)
    # finalizers hold deletion: deletionTimestamp set, object readable until the finalizer is removed
    cms = dyn_crd.resources.get(api_version="v1", kind="ConfigMap")
    cm = unique("fin")
    cms.create(namespace=NS, body={"metadata": {"name": cm, "finalizers": ["example.com/hold"]}})
    cms.delete(namespace=NS, name=cm)
    held = cms.get(namespace=NS, name=cm)
    assert held.metadata.deletionTimestamp and held.metadata.finalizers == ["example.com/hold"]
    with pytest.raises(dexc.UnprocessibleEntityError):
        cms.patch(namespace=NS, name=cm, body={"metadata": {"finalizers": ["example.com/hold", "x/new"]}},
                  content_type="application/merge-patch+json")
    cms.patch(namespace=NS, name=cm, body={"metadata": {"finalizers": None}}, content_type="application/merge-patch+json")
    with pytest.raises(dexc.NotFoundError):
        cms.get(namespace=NS, name=cm)


def test_watch_events_and_selector(dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    tag = unique("w")
    start = cms.get(namespace=NS).metadata.resourceVersion
    cms.create(namespace=NS, body={"metadata": {"name": tag + "-a", "labels": {"w": tag}}})
    cms.create(namespace=NS, body={"metadata": {"name": tag + "-other"}})
    cms.patch(namespace=NS, name=tag + "-a", body={"data": {"x": "1"}}, content_type="application/merge-patch+json")
    cms.delete(namespace=NS, name=tag + "-a")
    seen = []
    watcher = kwatch.Watch()
    for event in cms.watch(namespace=NS, label_selector="w=%s" % tag, resource_version=start, timeout=5, watcher=watcher):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            watcher.stop()
    assert seen == [("ADDED", tag + "-a"), ("MODIFIED", tag + "-a"), ("DELETED", tag + "-a")]


def test_watch_live_stream(dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    name = unique("live")
    start = cms.get(namespace=NS).metadata.resourceVersion
    timer = threading.Timer(0.3, lambda: cms.create(namespace=NS, body={"metadata": {"name": name}}))
    timer.start()
    watcher = kwatch.Watch()
    got = None
    for event in cms.watch(namespace=NS, name=name, resource_version=start, timeout=10, watcher=watcher):
        got = event
        watcher.stop()
    timer.join()
    assert got is not None and got["type"] == "ADDED" and got["object"].metadata.name == name


def test_watch_bookmarks_and_expiry(sims):
    sim = sims("--watch-history", "20", "--bookmark-interval", "0.2", "--time-scale", "0", *ADMIN)
    core = kclient.CoreV1Api(sim.api_client())
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    for idx in range(25):
        core.create_namespaced_config_map(NS, kclient.V1ConfigMap(metadata=kclient.V1ObjectMeta(name="c%d" % idx)))
    # too old: the stream carries an ERROR event with a 410 Expired Status
    with pytest.raises(kclient.ApiException) as err:
        for _event in kwatch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=3):
            pass
    assert err.value.status == 410
    # bookmarks arrive on an idle watch and carry the current resourceVersion
    current = core.list_namespaced_config_map(NS).metadata.resource_version
    watcher = kwatch.Watch()
    types = []
    for event in watcher.stream(core.list_namespaced_config_map, NS, resource_version=current, allow_watch_bookmarks=True,
                                timeout_seconds=3):
        types.append(event["type"])
        if event["type"] == "BOOKMARK":
            assert int(event["raw_object"]["metadata"]["resourceVersion"]) >= int(current)
            watcher.stop()
    assert types == ["BOOKMARK"]


def test_namespace_deletion(dyn_crd):
    nss = dyn_crd.resources.get(api_version="v1", kind="Namespace")
    cms = dyn_crd.resources.get(api_version="v1", kind="ConfigMap")
    name = unique("ns")
    assert nss.create(body={"metadata": {"name": name}}).status.phase == "Active"
    cms.create(namespace=name, body={"metadata": {"name": "c"}})
    nss.delete(name=name)
    with pytest.raises(dexc.NotFoundError):
        nss.get(name=name)
    with pytest.raises(dexc.NotFoundError):
        cms.get(namespace=name, name="c")


def test_watch_send_initial_events(cozy):
    core = kclient.CoreV1Api(cozy.api_client())
    tag = unique("init")
    for idx in range(2):
        core.create_namespaced_config_map(NS, kclient.V1ConfigMap(metadata=kclient.V1ObjectMeta(name="%s-%d" % (tag, idx),
                                                                                                labels={"init": tag})))
    watcher = kwatch.Watch()
    seen = []
    for event in watcher.stream(core.list_namespaced_config_map, NS, label_selector="init=" + tag, send_initial_events=True,
                                resource_version_match="NotOlderThan", allow_watch_bookmarks=True, timeout_seconds=5):
        seen.append(event["type"])
        if event["type"] == "BOOKMARK":
            annotations = event["raw_object"]["metadata"].get("annotations") or {}
            assert annotations.get("k8s.io/initial-events-end") == "true"
            watcher.stop()
    assert seen == ["ADDED", "ADDED", "BOOKMARK"]
