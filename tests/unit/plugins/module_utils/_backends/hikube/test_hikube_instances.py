# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Hikube instances: the mapping helpers, bad input refused before any request, and the reconciler end to end on the emulator."""

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import LIVE, ON_RESTART  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube import instances as hk  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.backend import HikubeBackend  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import AuthError, Conflict, InvalidInput, PolyvirtError  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler, desired_spec, list_instances  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline  # noqa: E402
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.hikube.emulator import Emulator, apps, seed_instance  # noqa: E402

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host"


@pytest.fixture(scope="module")
def sim():
    emulator = Emulator()
    yield emulator
    emulator.stop()


def params(**overrides):
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"name": "new1", "state": "present", "image": "ubuntu", "wait": True, "wait_timeout": 30})
    values.update(overrides)
    return values


def connect(sim, **settings):
    return HikubeBackend(sim.settings(**settings)), sim.transport()


def reconcile(sim, check_mode=False, **overrides):
    backend, transport = connect(sim)
    try:
        return InstanceReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run(), transport
    finally:
        backend.close()


# -- pure helpers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("image, profile", [("ubuntu", "ubuntu"), ("ubuntu-2404", "ubuntu"), ("rocky-8", "rhel.8"), ("almalinux", "rhel.9"),
                                            ("centos-stream-10", "centos.stream10"), ("fedora", "fedora"), ("debian-12", None), ("talos", None)])
def test_the_profile_is_derived_only_where_the_image_makes_it_plain(image, profile):
    assert hk.derive_profile(image) == profile


def test_ssh_keys_alone_become_sshkeys_and_anything_more_stays_user_data():
    backend = HikubeBackend({"host": "http://127.0.0.1:9", "namespace": "tenant-demo"})
    only_keys = desired_spec(params(ssh_keys=[KEY]), backend)["user_data"]
    assert hk.split_user_data(only_keys) == (None, [KEY])
    more = desired_spec(params(ssh_keys=[KEY], cloud_init={"user_data": {"runcmd": ["true"]}, "network_config": None}), backend)["user_data"]
    assert hk.split_user_data(more) == (more, None)
    assert hk.split_user_data(None) == (None, None)


def test_state_comes_from_the_application_and_a_failed_release_is_an_error():
    def app(spec, *conditions):
        return {"metadata": {"name": "x"}, "spec": spec, "status": {"conditions": [dict(zip(("type", "status", "reason"), item)) for item in conditions]}}

    assert hk.app_state(app({"runStrategy": "Always"}, ("Ready", "True", "InstallSucceeded"), ("WorkloadsReady", "True", "WorkloadMonitorCheck"))) == "running"
    assert hk.app_state(app({"runStrategy": "Halted"}, ("Ready", "True", "InstallSucceeded"))) == "stopped"
    assert hk.app_state(app({"runStrategy": "Always"}, ("Ready", "Unknown", "Progressing"))) == "pending"
    assert hk.app_state(app({"runStrategy": "Always"}, ("Ready", "False", "InstallFailed"))) == "error"
    # Cozystack before 1.0: `running`, no runStrategy in the defaulted spec.
    assert hk.app_state(app({"running": False})) == "stopped"
    assert hk.run_value({"running": True}, False) == {"running": False}
    assert hk.run_value({"runStrategy": "Always", "running": True}, False) == {"runStrategy": "Halted"}  # never both


def test_effects_of_a_change_on_a_running_vm():
    backend = HikubeBackend({"host": "http://127.0.0.1:9", "namespace": "tenant-demo"})
    effects = backend.instances.effects({"state": "running"}, {"memory_mib": 512, "tags": ["a"], "flavor": "u1.large", "disk_gib": 9})
    assert effects == {"memory_mib": ON_RESTART, "tags": LIVE, "flavor": LIVE, "disk_gib": LIVE}
    assert set(backend.instances.effects({"state": "stopped"}, {"memory_mib": 512}).values()) == {LIVE}


# -- bad input: refused before any request --------------------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    ({"name": "Web1"}, "name 'Web1' is not a valid VMInstance name on Hikube"),
    ({"name": "a" * 42}, "at most 41 characters"),
    ({"name": "a" * 40}, "the system disk (name + '-system') 'aaaa"),  # its VMDisk name would pass 45
    ({"backend_options": {"system_disk": "Sys"}}, "backend_options.system_disk 'Sys' is not a valid VMDisk name"),
    ({"backend_options": {"colour": "blue"}}, "backend_options.colour is not a Hikube instance option"),
    ({"backend_options": {"external": "yes"}}, "backend_options.external must be a bool"),
    ({"backend_options": {"external_method": "AllPorts"}}, "backend_options.external_method must be one of PortList, WholeIP"),
    ({"backend_options": {"external_ports": [22, 70000]}}, "backend_options.external_ports[1] must be a port number"),
    ({"flavor": "u1.medium", "cpus": 2}, "flavor 'u1.medium' and cpus/memory exclude each other"),
    ({"networks": [{"name": "n", "mac": "00:16:3e:00:00:01"}]}, "networks[0].mac is not supported by the hikube backend"),
    ({"networks": [{"name": "n", "ipv4": "10.0.0.5/24"}]}, "networks[0].ipv4 '10.0.0.5/24' is not supported by the hikube backend"),
    ({"networks": [{"ipv4": "dhcp"}]}, "networks[0].name is required by the hikube backend"),
    ({"cloud_init": {"user_data": None, "network_config": {"version": 2}}}, "cloud_init.network_config is not supported by the hikube backend"),
    ({"image": "ftp://example.com/disk.img"}, "image 'ftp://example.com/disk.img' must be a golden image name"),
    ({"state": "paused"}, "state=paused is not supported by the hikube backend"),
    ({"type": "container"}, "type=container is not supported by the hikube backend"),
    ({"wait_for": ["cloud_init"]}, "wait_for=cloud_init is not supported by the hikube backend"),
])
def test_bad_input_is_refused_before_any_request(sim, overrides, message):
    with pytest.raises(InvalidInput) as caught:
        reconcile(sim, **overrides)
    assert message in caught.value.message
    assert "Failed to validate instance" in caught.value.message


@pytest.mark.parametrize("overrides, message", [
    ({"flavor": "u9.huge"}, "flavor 'u9.huge' is not an instanceType of this cluster (available: "),
    ({"backend_options": {"profile": "beos"}}, "backend_options.profile 'beos' is not an instanceProfile of this cluster"),
    ({"image": "debian"}, "backend_options.profile is required for image 'debian'"),
    ({"image": "windows-11", "backend_options": {"profile": "windows.2k22"}}, "image 'windows-11' is not a golden image of this cluster"),
    ({"cpus": 2}, "cpus and memory go together on the hikube backend"),
    ({"backend_options": {"storage_class": "gold"}}, "backend_options.storage_class 'gold' is not a storage class"),
])
def test_what_the_cluster_lacks_is_refused_with_reads_only(sim, overrides, message):
    backend, transport = connect(sim)
    with pytest.raises(InvalidInput) as caught:
        InstanceReconciler(backend, params(**overrides)).run()
    assert message in caught.value.message
    assert transport.mutating() == [] and transport.reads()


def test_a_missing_or_foreign_namespace_is_named(sim):
    # A tenant cannot tell a missing namespace from someone else's: both are a 403 to it.
    for namespace, message in (("no-such-tenant", "connection.namespace no-such-tenant does not exist or these credentials may not use it"),
                               ("kube-system", "connection.namespace kube-system does not exist or these credentials may not use it")):
        backend, transport = connect(sim, namespace=namespace)
        with pytest.raises(InvalidInput) as caught:
            InstanceReconciler(backend, params()).run()
        assert message in caught.value.message
        assert transport.mutating() == []


def test_a_missing_namespace_without_rbac_is_named():
    emulator = Emulator.__new__(Emulator)
    emulator.__init__()
    backend, transport = connect(emulator, api_key="polyvirt-sim-admin", namespace="no-such-tenant")
    try:
        with pytest.raises(InvalidInput) as caught:
            InstanceReconciler(backend, params()).run()
        assert "connection.namespace no-such-tenant does not exist on " in caught.value.message
    finally:
        emulator.stop()


def test_a_wrong_token_is_an_auth_error(sim):
    backend, transport = connect(sim, api_key="wrong")
    with pytest.raises(AuthError):
        backend.instances.get("web1")
    assert transport.mutating() == []


def test_kubeconfig_and_context(sim, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster: {server: '%s'}\nusers:\n- name: t\n  user: {token: polyvirt-sim}\n"
                    "contexts:\n- name: other\n  context: {cluster: sim, user: t}\n- name: tenant\n  context: {cluster: sim, user: t}\n"
                    "current-context: other\n" % sim.url)
    backend = HikubeBackend({"kubeconfig": str(path), "context": "tenant", "namespace": "tenant-demo"})
    assert list_instances(backend) is not None
    with pytest.raises(InvalidInput) as caught:
        HikubeBackend({"kubeconfig": str(path), "context": "nope", "namespace": "tenant-demo"}).instances.get("x")
    assert "connection.kubeconfig %s could not be loaded with connection.context nope" % path in caught.value.message
    with pytest.raises(InvalidInput):
        HikubeBackend({"kubeconfig": str(path), "host": sim.url, "namespace": "tenant-demo"})


# -- the reconciler end to end ------------------------------------------------------------------------


def test_lifecycle_check_create_idempotent_change_power_delete(sim):
    settings = dict(name="life1", state="started", cpus=1, memory="256MiB", tags=["b", "a"], description="d", disk_size="6GiB",
                    ssh_keys=[KEY], wait_for=["ip"])
    check, transport = reconcile(sim, check_mode=True, **settings)
    assert check["changed"] and check["actions"] == ["create vm life1 from ubuntu", "start instance life1"]
    assert transport.mutating() == []
    made, transport = reconcile(sim, **settings)
    assert made["actions"] == check["actions"]
    instance = made["instance"]
    assert (instance["state"], instance["cpus"], instance["memory_mib"], instance["disk_gib"], instance["tags"]) == ("running", 1, 256, 6, ["a", "b"])
    assert instance["ansible_host"] and instance["addresses"]["ipv4"] == [instance["ansible_host"]]
    assert [request[0] for request in transport.mutating()] == ["POST", "POST", "PATCH"]  # the system disk first, then the instance; start
    native = sim.admin("GET", apps("vminstances", "life1"))
    assert native["spec"]["sshKeys"] == [KEY] and native["spec"]["instanceType"] == "" and native["spec"]["runStrategy"] == "Always"
    assert sim.admin("GET", apps("vmdisks", "life1-system"))["spec"]["storage"] == "6Gi"

    again, transport = reconcile(sim, **settings)
    assert not again["changed"] and transport.mutating() == []
    assert len(transport.reads()) == 3  # the VMInstance, its system disk, its pods (for the address)
    quiet, transport = reconcile(sim, name="life1", state="started", cpus=1)
    assert not quiet["changed"] and len(transport.reads()) == 2  # no address asked: no pod read

    change, transport = reconcile(sim, name="life1", state="started", memory="0.5GiB", tags=["a", "c"], allow_restart=True)
    assert change["diff"] == {"before": {"memory_mib": 256, "tags": ["a", "b"]}, "after": {"memory_mib": 512, "tags": ["a", "c"]}}
    assert change["actions"][-1] == "restart instance life1 (so that memory_mib take effect)"
    assert sim.admin("GET", apps("vminstances", "life1"))["spec"]["resources"] == {"cpu": "1", "sockets": "1", "memory": "512Mi"}

    shrink = pytest.raises(InvalidInput, reconcile, sim, name="life1", disk_size="5GiB")
    assert "disk_size 5GiB is smaller than the current 6GiB; disks only grow" in shrink.value.message

    stop, transport = reconcile(sim, name="life1", state="stopped")
    assert stop["instance"]["state"] == "stopped" and transport.mutating()[0][0] == "PATCH"
    assert sim.admin("GET", apps("vminstances", "life1"))["spec"]["runStrategy"] == "Halted"
    start, transport = reconcile(sim, name="life1", state="restarted")
    assert start["actions"] == ["start instance life1"] and start["instance"]["state"] == "running"

    gone, transport = reconcile(sim, name="life1", state="absent")
    assert gone["changed"] and sim.admin("GET", apps("vminstances", "life1")) is None
    assert sim.admin("GET", apps("vmdisks", "life1-system")) is None  # its system disk goes with it
    again, transport = reconcile(sim, name="life1", state="absent")
    assert not again["changed"] and transport.mutating() == []


def test_a_flavor_is_an_instance_type_and_replaces_resources(sim):
    made, transport = reconcile(sim, name="flav1", flavor="u1.large")
    assert made["instance"]["state"] == "stopped" and sim.admin("GET", apps("vminstances", "flav1"))["spec"]["instanceType"] == "u1.large"
    same, transport = reconcile(sim, name="flav1", flavor="u1.large")
    assert not same["changed"]
    refused = pytest.raises(InvalidInput, reconcile, sim, name="flav1", memory="1GiB")
    assert "uses the instanceType u1.large; to give it resources instead set both cpus and memory" in refused.value.message
    resized, transport = reconcile(sim, name="flav1", cpus=2, memory="1GiB")
    assert sim.admin("GET", apps("vminstances", "flav1"))["spec"]["resources"]["memory"] == "1024Mi"
    assert sim.admin("GET", apps("vminstances", "flav1"))["spec"]["instanceType"] == ""
    back, transport = reconcile(sim, name="flav1", flavor="u1.medium")
    native = sim.admin("GET", apps("vminstances", "flav1"))
    assert back["changed"] and native["spec"]["instanceType"] == "u1.medium"
    reconcile(sim, name="flav1", state="absent")


def test_external_instances_get_the_load_balancer_address(sim):
    made, transport = reconcile(sim, name="ext1", state="started", wait_for=["ip"], backend_options={"external": True, "external_ports": [22, 443]})
    assert made["instance"]["ansible_host"].startswith("203.0.113.")
    again, transport = reconcile(sim, name="ext1", state="started", wait_for=["ip"], backend_options={"external": True, "external_ports": [22, 443]})
    assert not again["changed"] and [request[1].rsplit("/", 2)[-2] for request in transport.reads()] == ["vminstances", "vmdisks", "services"]
    whole, transport = reconcile(sim, name="ext1", backend_options={"external": True, "external_method": "WholeIP"})
    assert "WholeIP" in whole["instance"]["backend_data"]["warnings"][0]
    reconcile(sim, name="ext1", state="absent")


def test_a_duplicate_create_is_read_as_exists_in_both_modes(sim):
    for emulator in (sim, Emulator("--mode", "crd")):
        backend, transport = connect(emulator)
        spec = desired_spec(params(name="dup1"), backend)
        backend.instances.create(spec, Deadline(30))
        with pytest.raises(Conflict):
            backend.instances.create(spec, Deadline(30))
        assert len([request for request in transport.mutating() if request[1].endswith("/vmdisks")]) == 1  # the disk existed: not posted again
        backend.instances.delete(backend.instances.get("dup1"), False, Deadline(30))
        if emulator is not sim:
            emulator.stop()


def test_crd_mode_lifecycle():
    emulator = Emulator("--mode", "crd")
    try:
        made, transport = reconcile(emulator, name="crd1", state="started", cpus=1, memory="256MiB", wait_for=["ip"])
        assert made["instance"]["state"] == "running" and made["instance"]["ansible_host"]
        again, transport = reconcile(emulator, name="crd1", state="started", cpus=1, memory="256MiB", wait_for=["ip"])
        assert not again["changed"] and len(transport.reads()) == 3
        reconcile(emulator, name="crd1", state="absent")
        assert emulator.admin("GET", apps("vminstances", "crd1")) is None
    finally:
        emulator.stop()


def test_before_cozystack_1_0_power_goes_through_running():
    emulator = Emulator("--cozystack-version", "0.41.11")
    try:
        made, transport = reconcile(emulator, name="old1")
        native = emulator.admin("GET", apps("vminstances", "old1"))
        assert made["instance"]["state"] == "stopped" and native["spec"]["running"] is False and "runStrategy" not in native["spec"]
        started, transport = reconcile(emulator, name="old1", state="started")
        assert started["instance"]["state"] == "running" and emulator.admin("GET", apps("vminstances", "old1"))["spec"]["running"] is True
        reconcile(emulator, name="old1", state="absent")
    finally:
        emulator.stop()


def test_a_failing_release_fails_fast_and_leaves_nothing():
    emulator = Emulator("--fault", "install-fail:app=bad1,message=chart exploded")
    try:
        with pytest.raises(PolyvirtError) as caught:
            reconcile(emulator, name="bad1", state="started", wait_timeout=20)
        assert "chart exploded" in caught.value.message and "removed again" in caught.value.message
        assert emulator.admin("GET", apps("vminstances", "bad1")) is None and emulator.admin("GET", apps("vmdisks", "bad1-system")) is None
    finally:
        emulator.stop()


def test_instance_info_lists_with_one_call_per_kind(sim):
    reconcile(sim, name="info1", tags=["team-a"])
    reconcile(sim, name="info2", tags=["team-b"])
    backend, transport = connect(sim)
    found = list_instances(backend, filters={"tags": "team-a"})
    assert [item["name"] for item in found] == ["info1"]
    assert "labelSelector=tags.polyvirt.io%2Fteam-a" in transport.reads()[0][2] and len(transport.reads()) == 3
    for name in ("info1", "info2"):
        reconcile(sim, name=name, state="absent")


def test_a_ready_seen_before_the_change_does_not_count():
    """The application has no observedGeneration: right after a change its Ready=True is the last release's (emulated for 0.5 s x scale)."""
    emulator = Emulator("--time-scale", "0.4")
    try:
        made, transport = reconcile(emulator, name="stale1", state="started", wait_timeout=60)
        assert made["instance"]["state"] == "running"
        before = hk.get_condition(emulator.admin("GET", apps("vminstances", "stale1")), "Ready")
        changed, transport = reconcile(emulator, name="stale1", state="started", backend_options={"external_ports": [22, 8080]}, wait_timeout=60)
        ready = hk.get_condition(changed["instance"]["backend_data"]["vminstance"], "Ready")
        assert changed["changed"] and ready["status"] == "True" and ready["message"] != before["message"]  # a new release, not the stale one
        watched = [request for request in transport.reads() if "watch=true" in request[2]]
        assert watched, "the wait followed the change on a watch"
        stopped, transport = reconcile(emulator, name="stale1", state="stopped", wait_timeout=60)
        assert stopped["instance"]["state"] == "stopped"
        reconcile(emulator, name="stale1", state="absent", wait_timeout=60)
    finally:
        emulator.stop()


def test_faults_fail_cleanly_and_a_rerun_converges(tmp_path):
    # Reads that fail twice are retried; a create whose GET lags behind converges on a re-run; an unschedulable VM times out
    # with what is known, and the new instance is removed again.
    emulator = Emulator("--fault", "error:verb=get,resource=vminstances,name=flaky1,code=503,count=2", "--fault", "read-lag:seconds=2",
                        "--fault", "unschedulable:vm=stuck1")
    try:
        flaky, transport = reconcile(emulator, name="flaky1")
        assert flaky["changed"] and [request[0] for request in transport.requests[:3]] == ["GET", "GET", "GET"]
        lagging, transport = reconcile(emulator, name="flaky1")  # within the lag: the GET says 404, the create says exists
        assert not lagging["changed"] and lagging["instance"]["name"] == "flaky1"
        with pytest.raises(PolyvirtError) as caught:
            reconcile(emulator, name="stuck1", state="started", wait_timeout=4)
        assert "timed out after 4 s waiting for instance stuck1 to run" in caught.value.message
        assert caught.value.result["changed"] is True
        assert emulator.admin("GET", apps("vminstances", "stuck1")) is None and emulator.admin("GET", apps("vmdisks", "stuck1-system")) is None
    finally:
        emulator.stop()


def test_a_wait_lists_again_on_every_reconnect(monkeypatch):
    """Cozystack's watch resumes nothing (no bookmarks, resourceVersion ignored): each new watch starts with a fresh list."""
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube import client

    monkeypatch.setattr(client, "WATCH_SECONDS", 1)
    emulator = Emulator("--time-scale", "1")
    try:
        made, transport = reconcile(emulator, name="slow1", state="started", wait_timeout=60)
        assert made["instance"]["state"] == "running"
        waits = [request for request in transport.reads() if request[1].endswith("/vminstances") and "fieldSelector" in request[2]]
        watches = [request for request in waits if "watch=true" in request[2]]
        lists = [request for request in waits if "watch=true" not in request[2]]
        assert len(watches) >= 2 and len(lists) >= len(watches)  # the boot takes a few seconds: several 1 s watches, each after a list
        reconcile(emulator, name="slow1", state="absent", wait_timeout=60)
    finally:
        emulator.stop()


# -- clones ---------------------------------------------------------------------------------------------


def clone(sim, check_mode=False, **overrides):
    from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.clone import CloneReconciler  # pylint: disable=import-outside-toplevel

    values = dict(params(image=None, source="csrc", name="ccopy", state="started"), mode="full", snapshot=None, target=None)
    values.update(overrides)
    backend, transport = connect(sim)
    try:
        return CloneReconciler(backend, values, check_mode=check_mode, diff_mode=True).run(), transport
    finally:
        backend.close()


def test_a_clone_copies_each_disk_with_a_vmdisk_clone_and_applies_the_options_in_the_same_task():
    emulator = Emulator()
    try:
        seed_instance(emulator, "csrc", running=True)
        refused = pytest.raises(Conflict, clone, emulator)
        assert "instance csrc is running" in refused.value.message and "stop it first (state: stopped)" in refused.value.message
        assert emulator.admin("GET", apps("vmdisks", "ccopy-system")) is None and emulator.admin("GET", apps("vminstances", "ccopy")) is None
        reconcile(emulator, name="csrc", state="stopped")

        check, transport = clone(emulator, check_mode=True, cpus=1, tags=["copy"], description="a copy")
        assert check["cloned"] and transport.mutating() == []
        made, transport = clone(emulator, cpus=1, tags=["copy"], description="a copy")
        assert made["actions"] == ["clone instance ccopy from csrc", "start instance ccopy"] and made["instance"]["state"] == "running"
        sent = [(request[0], request[1].rsplit("/", 1)[-1]) for request in transport.mutating()]
        assert sent[:3] == [("POST", "vmdisks"), ("POST", "vmdisks"), ("POST", "vminstances")]  # the disks first, then the instance
        system, data = emulator.admin("GET", apps("vmdisks", "ccopy-system")), emulator.admin("GET", apps("vmdisks", "ccopy-data1"))
        assert system["spec"]["source"] == {"disk": {"name": "csrc-system"}} and system["spec"]["storage"] == "5Gi"
        assert data["spec"]["source"] == {"disk": {"name": "data1"}}
        native = emulator.admin("GET", apps("vminstances", "ccopy"))
        assert native["spec"]["disks"] == [{"name": "ccopy-system"}, {"name": "ccopy-data1"}]
        assert native["spec"]["resources"] == {"cpu": "1", "sockets": "1", "memory": "512Mi"} and native["spec"]["networks"] == [{"name": "tenant-net"}]
        assert native["metadata"]["annotations"]["polyvirt.io/description"] == "a copy" and made["instance"]["tags"] == ["copy"]
        assert native["spec"]["cloudInit"] == emulator.admin("GET", apps("vminstances", "csrc"))["spec"]["cloudInit"]

        again, transport = clone(emulator, cpus=1, tags=["copy"], description="a copy")
        assert not again["changed"] and not again["cloned"] and transport.mutating() == []
        assert len(transport.reads()) == 2  # the VMInstance and its system disk (no address asked for: no pod read)

        taken = pytest.raises(Conflict, clone, emulator, name="ccopy2", backend_options={"system_disk": "ccopy-system"})
        assert "would copy the disks of csrc to ccopy-system, which exist already" in taken.value.message
    finally:
        emulator.stop()


def test_a_clone_whose_instance_cannot_be_made_leaves_no_disk_copies():
    emulator = Emulator("--fault", "error:verb=create,resource=vminstances,name=cbad,code=500,message=boom")
    try:
        seed_instance(emulator, "csrc", running=False)
        with pytest.raises(PolyvirtError) as caught:
            clone(emulator, name="cbad")
        assert "boom" in caught.value.message
        assert emulator.admin("GET", apps("vmdisks", "cbad-system")) is None and emulator.admin("GET", apps("vmdisks", "cbad-data1")) is None
    finally:
        emulator.stop()


# -- Flux's kstatus wait (Cozystack 1.5+): a VM whose observedGeneration lags keeps its release InProgress -------------


def kstatus_app(spec, ready, workloads="False", name="k1"):
    status, reason, message = ready
    return {"metadata": {"name": name, "namespace": "tenant-demo"}, "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message},
                                      {"type": "WorkloadsReady", "status": workloads, "reason": "WorkloadMonitorCheck"}]}}


def test_a_kstatus_timeout_on_its_own_vm_is_no_error():
    own = ("False", "UpgradeFailed", "Helm upgrade failed for release tenant-demo/vm-instance-k1 with chart vm-instance@1.6.2: "
                                     "timeout waiting for: [VirtualMachine/tenant-demo/vm-instance-k1 status: 'InProgress']")
    assert hk.waits_only_on_its_vm(kstatus_app({"runStrategy": "Halted"}, own))
    assert hk.app_state(kstatus_app({"runStrategy": "Halted"}, own)) == "stopped"
    assert hk.app_state(kstatus_app({"runStrategy": "Always"}, own, workloads="True")) == "running"
    assert hk.release_failed(kstatus_app({"runStrategy": "Halted"}, own)) is None
    # Anything else the wait gave up on, another VM, or a chart error is a real failure.
    for message in ("timeout waiting for: [VirtualMachine/tenant-demo/vm-instance-k1 status: 'InProgress', Service/tenant-demo/"
                    "vm-instance-k1 status: 'InProgress']", "timeout waiting for: [VirtualMachine/tenant-demo/vm-instance-k2 status: 'InProgress']",
                    "execution error at (vm-instance/templates/vm.yaml:80:16): Specified disk not exists in cluster: d1"):
        app = kstatus_app({"runStrategy": "Halted"}, ("False", "UpgradeFailed", message))
        assert not hk.waits_only_on_its_vm(app) and hk.app_state(app) == "error" and hk.release_failed(app)["message"] == message
    assert not hk.waits_only_on_its_vm(kstatus_app({"runStrategy": "Halted"}, ("False", "InstallFailed", own[2])))
    assert hk.upgrade_waiting(kstatus_app({}, ("Unknown", "Progressing", "Running 'upgrade' action with timeout of 10m0s")))
    assert not hk.upgrade_waiting(kstatus_app({}, ("Unknown", "Progressing", "Fulfilling prerequisites")))


def release_ready(emulator, name):
    ready = hk.get_condition(emulator.admin("GET", apps("vminstances", name)), "Ready")
    return ready["status"], ready["reason"], ready.get("message", "")


def test_a_stop_ends_when_the_vm_is_gone_and_a_halted_release_that_flux_gave_up_on_still_converges():
    emulator = Emulator("--fault", "kstatus-timeout:app=halt2")
    try:
        for name in ("halt1", "halt2"):  # halt1: InProgress for as long as it is halted (scale 0); halt2: Flux's timeout (the fault)
            made, transport = reconcile(emulator, name=name, state="started")
            assert made["instance"]["state"] == "running"
            stop, transport = reconcile(emulator, name=name, state="stopped")
            assert stop["changed"] and stop["instance"]["state"] == "stopped" and not stop.get("warnings")
            assert "kubevirt.io" not in " ".join(request[1] for request in transport.reads())  # the application alone tells
            status = release_ready(emulator, name)
            if name == "halt1":
                assert status[:2] == ("Unknown", "Progressing")
            else:
                assert status[:2] == ("False", "UpgradeFailed") and "timeout waiting for: [VirtualMachine/" in status[2]
            again, transport = reconcile(emulator, name=name, state="stopped")
            assert not again["changed"] and again["instance"]["state"] == "stopped" and transport.mutating() == []
            assert len(transport.reads()) == 2
            listed = list_instances(HikubeBackend(emulator.settings()), name=name)
            assert listed[0]["state"] == "stopped"
            start, transport = reconcile(emulator, name=name, state="started")
            assert start["actions"] == ["start instance %s" % name] and start["instance"]["state"] == "running"
            assert release_ready(emulator, name)[:2] == ("True", "UpgradeSucceeded") and not start["restart_required"]
            reconcile(emulator, name=name, state="absent")
    finally:
        emulator.stop()


def test_a_change_awaiting_a_restart_returns_at_once_says_so_and_a_restart_clears_it():
    emulator = Emulator("--fault", "kstatus-timeout:app=pend2")
    try:
        for name in ("pend1", "pend2"):
            reconcile(emulator, name=name, state="started", cpus=1, memory="256MiB")
            pending, transport = reconcile(emulator, name=name, state="started", memory="512MiB", wait_timeout=20)
            assert pending["changed"] and pending["restart_required"] and pending["instance"]["state"] == "running"
            notes = [text for text in pending["warnings"] if "next restart" in text]
            assert len(notes) == 1 and "UpgradeFailed" in notes[0] and "the change itself is stored" in notes[0]
            vm = emulator.admin("GET", "/apis/kubevirt.io/v1/namespaces/tenant-demo/virtualmachines/vm-instance-" + name)
            assert [item["type"] for item in vm["status"]["conditions"]] == ["Ready", "RestartRequired"]
            # A change applied live while the release waits on the older one's restart: no 10-minute wait for a Ready.
            live, transport = reconcile(emulator, name=name, state="started", backend_options={"external_ports": [22, 8080]}, wait_timeout=20)
            assert live["changed"] and live["restart_required"] and live["instance"]["state"] == "running"
            if name == "pend1":  # the wait found it (KubeVirt's RestartRequired); for pend2 the read did (Flux's UpgradeFailed)
                assert any("runs without a change it takes at its next restart" in text for text in live.get("warnings", []))
            if name == "pend2":  # Flux gave up: an idempotent run sees it from the application alone
                assert release_ready(emulator, name)[:2] == ("False", "UpgradeFailed")
                again, transport = reconcile(emulator, name=name, state="started", memory="512MiB")
                assert not again["changed"] and again["restart_required"] and len(transport.reads()) == 2
            restarted, transport = reconcile(emulator, name=name, state="restarted")
            assert restarted["instance"]["state"] == "running" and not restarted["restart_required"]
            if name == "pend1":  # pend2's release heals at Flux's next retry (1 s at scale 0): the restart does not wait for it
                assert release_ready(emulator, name)[:2] == ("True", "UpgradeSucceeded")
            vm = emulator.admin("GET", "/apis/kubevirt.io/v1/namespaces/tenant-demo/virtualmachines/vm-instance-" + name)
            assert vm["status"]["observedGeneration"] == vm["metadata"]["generation"]
            reconcile(emulator, name=name, state="absent")
    finally:
        emulator.stop()


def test_a_release_that_really_fails_fails_a_stop_at_once():
    emulator = Emulator()
    try:
        seed_instance(emulator, "brk1", running=True)
        assert reconcile(emulator, name="brk1", state="started")[0]["instance"]["state"] == "running"
        emulator.admin("DELETE", apps("vmdisks", "data1"))  # the next upgrade fails: Specified disk not exists in cluster
        with pytest.raises(PolyvirtError) as caught:
            reconcile(emulator, name="brk1", state="stopped", wait_timeout=60)
        assert "the Helm release of instance brk1 failed (UpgradeFailed)" in caught.value.message
        assert "Specified disk not exists in cluster: data1" in caught.value.message and "timed out" not in caught.value.message
    finally:
        emulator.stop()
