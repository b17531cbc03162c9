# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The LXD instances part: its mapping to and from LXD objects, and the requests it makes, on FakeLxd."""

import copy
import json

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import LIVE, ON_RESTART
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd import instances as lxd_instances
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.backend import LxdBackend
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import public
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler, desired_spec
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.lxd.fake_lxd import SECRET, WEB1, FakeLxd


def connect(project=None, **fake_options):
    fake = FakeLxd(**fake_options)
    backend = LxdBackend({"url": "unix:/nonexistent/lxd/unix.socket", "project": project})
    fake.install(backend.client)
    return backend, fake


@pytest.fixture(name="lxd")
def fixture_lxd():
    return connect()[0]


def native(**overrides):
    """WEB1 as LXD returns it with recursion=1 (expanded config and devices from the default profile)."""
    fake = FakeLxd(instances=[WEB1])
    raw = fake._view("web1", 1)  # pylint: disable=protected-access
    raw.update(copy.deepcopy(overrides))
    return raw


def params(**overrides):
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"name": "web1", "state": "present", "image": "polyvirt/busybox", "wait": True, "wait_timeout": 30})
    values.update(overrides)
    return values


def spec(lxd, **overrides):
    return desired_spec(params(**overrides), lxd)


def deadline():
    return Deadline(60)


# -- reading --------------------------------------------------------------------------------------


def test_describe_normalises_the_instance(lxd):
    instance = lxd.instances.describe(native())
    assert instance["state"] == "running" and instance["type"] == "container" and instance["id"] == "web1"
    assert (instance["cpus"], instance["memory_mib"], instance["disk_gib"]) == (2, 512, 10)
    assert instance["addresses"] == {"ipv4": ["10.231.0.5"], "ipv6": ["fd42::5"]}
    assert instance["ansible_host"] == "10.231.0.5"
    assert instance["tags"] == ["a", "b"]  # the older comma-joined form still reads
    assert instance["image"] == "Debian 12"
    assert instance["location"] is None and instance["description"] is None
    assert instance["networks"] == [{"device": "eth0", "name": "polyvirtbr0", "ipv4": "dhcp", "ipv6": None, "mac": "00:16:3e:aa:bb:cc",
                                     "addresses": ["10.231.0.5", "fd42::5"]}]


def test_secrets_and_idmap_noise_are_not_returned(lxd):
    raw = native()
    instance = lxd.instances.describe(raw)
    data = instance["backend_data"]
    assert "cloud-init.user-data" not in data["config"]
    assert "cloud-init.user-data" not in data["expanded_config"]
    assert "volatile.idmap.next" not in data["expanded_config"]
    assert "state" not in data and "snapshots" not in data and "backups" not in data  # results stay small
    assert SECRET not in repr(data) and SECRET not in json.dumps(public(instance))
    assert raw["config"]["cloud-init.user-data"]  # the input is not modified
    assert instance["_native"] is raw  # the driver keeps the whole object for itself


@pytest.mark.parametrize("key", ["cloud-init.vendor-data", "cloud-init.network-config", "user.user-data", "user.vendor-data", "user.network-data",
                                 "user.meta-data"])
def test_every_cloud_init_key_is_kept_out_of_backend_data(key):
    data = lxd_instances.public_data({"config": {key: SECRET}, "expanded_config": {key: SECRET}})
    assert SECRET not in repr(data)


@pytest.mark.parametrize("status, state", [("Running", "running"), ("Stopped", "stopped"), ("Frozen", "paused"), ("Error", "error"),
                                           ("Starting", "pending")])
def test_status_names(lxd, status, state):
    assert lxd.instances.describe(native(status=status))["state"] == state


def test_memory_in_percent_is_kept_as_given(lxd):
    raw = native()
    raw["expanded_config"]["limits.memory"] = "50%"
    assert lxd.instances.settings(lxd.instances.describe(raw))["memory_mib"] == "50%"


def test_an_idempotent_read_is_one_plain_get():
    backend, fake = connect()
    instance = backend.instances.get("web1")
    assert fake.paths() == [("GET", "/1.0/instances/web1")]
    assert fake.requests[0][2] == {}  # no recursion: LXD need not compute the runtime state
    assert instance["addresses"] == {"ipv4": [], "ipv6": []}  # and so no addresses


def test_a_runtime_read_asks_for_the_state():
    backend, fake = connect()
    assert backend.instances.get("web1", runtime=True)["addresses"]["ipv4"] == ["10.231.0.5"]
    assert fake.requests == [("GET", "/1.0/instances/web1", {"recursion": "1"}, None)]


def test_a_server_without_instance_get_full_reads_the_state_separately():
    backend, fake = connect(full_get=False)
    assert backend.instances.get("web1", runtime=True)["addresses"]["ipv4"] == ["10.231.0.5"]
    assert fake.paths() == [("GET", "/1.0/instances/web1"), ("GET", "/1.0/instances/web1/state")]


def test_a_missing_instance_in_the_default_project_costs_one_read():
    backend, fake = connect()
    assert backend.instances.get("nope") is None
    assert fake.paths() == [("GET", "/1.0/instances/nope")]


def test_a_missing_instance_in_a_project_that_exists_is_none():
    backend, fake = connect(project="polyvirt", projects=("default", "polyvirt"))
    assert backend.instances.get("nope") is None
    assert fake.requests[0][2] == {"project": "polyvirt"}
    assert fake.requests[1][:3] == ("GET", "/1.0/projects/polyvirt", {})  # the project check itself is not scoped to the project


def test_a_project_that_does_not_exist_is_named():
    backend, _fake = connect(project="nope")
    with pytest.raises(InvalidInput) as caught:
        backend.instances.get("web9")
    assert caught.value.message == "connection.project nope does not exist on the LXD server unix:/nonexistent/lxd/unix.socket"


# -- desired settings and the bodies written ---------------------------------------------------------


def test_desired_settings_use_lxd_forms(lxd):
    desired = lxd.instances.desired(spec(lxd, cpus=2, memory=1024, tags=["a"], networks=[{"name": "br", "ipv4": "10.0.0.9/24", "mac": None}],
                                         backend_options={"config": {"security.nesting": True, "limits.processes": 100},
                                                          "devices": {"data": {"type": "disk", "path": "/data", "readonly": False}},
                                                          "profiles": ["default", "extra"]}))
    assert desired == {
        "cpus": 2, "memory_mib": 1024, "tags": ["a"],
        "networks": [{"name": "br", "ipv4": "10.0.0.9"}],
        "config.security.nesting": "true", "config.limits.processes": "100",
        "devices.data": {"type": "disk", "path": "/data", "readonly": "false"},
        "profiles": ["default", "extra"],
    }


def test_apply_writes_changes_into_the_instance_body(lxd):
    body = {"config": {}, "devices": {}, "profiles": ["default"], "description": ""}
    changes = {"cpus": 4, "memory_mib": 2048, "tags": ["x", "y,z"], "description": "d", "config.boot.autostart": "true", "profiles": ["p"],
               "devices.gpu": {"type": "gpu"}}
    lxd.instances._apply(body, changes, expanded_devices={})  # pylint: disable=protected-access
    assert body["config"] == {"limits.cpu": "4", "limits.memory": "2048MiB", "user.polyvirt.tags": '["x", "y,z"]', "boot.autostart": "true"}
    assert body["description"] == "d" and body["profiles"] == ["p"] and body["devices"] == {"gpu": {"type": "gpu"}}


@pytest.mark.parametrize("stored, tags", [
    ('["a,b", "c"]', ["a,b", "c"]),
    ('["z", "a"]', ["a", "z"]),
    ("a,b", ["a", "b"]),
    ("a,,b", ["a", "b"]),
    ("[not json", ["[not json"]),
    ("", []),
    (None, []),
])
def test_tags_read_from_json_and_from_the_older_comma_form(stored, tags):
    assert lxd_instances.read_tags(stored) == tags


def test_tags_with_commas_survive_a_round_trip():
    backend, fake = connect()
    result = InstanceReconciler(backend, params(tags=["prod,eu", "web"])).run()
    assert result["instance"]["tags"] == ["prod,eu", "web"]
    assert fake.instances["web1"]["config"]["user.polyvirt.tags"] == '["prod,eu", "web"]'
    assert InstanceReconciler(backend, params(tags=["web", "prod,eu"])).run()["changed"] is False


def test_networks_replace_nics_and_mask_profile_ones():
    devices = {"eth5": {"type": "nic", "network": "old"}, "data": {"type": "disk", "path": "/data"}}
    expanded = copy.deepcopy(native()["expanded_devices"])
    expanded["eth9"] = {"type": "nic", "network": "from-profile"}
    networks = [{"name": "br0", "ipv4": "10.0.0.9", "ipv6": "fd00::9", "mac": "00:16:3e:00:00:01"}, {"name": "br1"}]
    lxd_instances._replace_nics(devices, expanded, networks)  # pylint: disable=protected-access
    assert devices == {
        "data": {"type": "disk", "path": "/data"},
        "eth0": {"type": "nic", "network": "br0", "name": "eth0", "ipv4.address": "10.0.0.9", "ipv6.address": "fd00::9", "hwaddr": "00:16:3e:00:00:01"},
        "eth1": {"type": "nic", "network": "br1", "name": "eth1"},
        "eth9": {"type": "none"},
    }


def test_shrinking_the_root_disk_is_refused(lxd):
    instance = lxd.instances.describe(native())
    with pytest.raises(InvalidInput) as caught:
        lxd.instances.check_update(instance, {"disk_gib": 5})
    assert "disk_size 5GiB is smaller than the current 10GiB; disks only grow" in str(caught.value)
    lxd.instances.check_update(instance, {"disk_gib": 20})


def test_growing_the_root_disk_overrides_the_profile_device():
    backend, fake = connect()
    instance = backend.instances.get("web1")
    backend.instances.update(instance, {"disk_gib": 20}, deadline())
    assert fake.instances["web1"]["devices"]["root"] == {"type": "disk", "path": "/", "pool": "polyvirt", "size": "20GiB"}
    assert backend.instances.get("web1")["disk_gib"] == 20


@pytest.mark.parametrize("state, key, effect", [
    ("Running", "config.linux.sysctl.net.ipv4.ip_forward", ON_RESTART),
    ("Running", "config.security.privileged", ON_RESTART),
    ("Running", "config.raw.lxc", ON_RESTART),
    ("Running", "config.limits.processes", LIVE),
    ("Running", "cpus", LIVE),
    ("Frozen", "config.security.privileged", ON_RESTART),
    ("Stopped", "config.security.privileged", LIVE),
])
def test_effects_of_changes(lxd, state, key, effect):
    assert lxd.instances.effects(lxd.instances.describe(native(status=state)), {key: "x"}) == {key: effect}


def test_an_at_restart_key_on_lxd_is_stored_and_reported_pending():
    backend, fake = connect()
    result = InstanceReconciler(backend, params(backend_options={"config": {"security.privileged": True}})).run()
    assert fake.instances["web1"]["config"]["security.privileged"] == "true"
    assert result["restart_required"] is True and "take effect at its next restart" in result["warnings"][0]
    assert [path for path in fake.paths() if path[0] != "GET"] == [("PUT", "/1.0/instances/web1")]


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("image, source", [
    ("polyvirt/debian12", {"type": "image", "alias": "polyvirt/debian12"}),
    ("c855f9c7cc95c9fe", {"type": "image", "fingerprint": "c855f9c7cc95c9fe"}),
    ("images:debian/12", {"type": "image", "mode": "pull", "server": "https://images.linuxcontainers.org", "protocol": "simplestreams",
                          "alias": "debian/12"}),
])
def test_image_sources(image, source):
    assert lxd_instances.image_source(image) == source


@pytest.mark.parametrize("name", ["1web", "-web", "web-", "web_1", "a" * 64, "web.example"])
def test_names_lxd_rejects(lxd, name):
    with pytest.raises(InvalidInput) as caught:
        spec(lxd, name=name)
    assert "is not a valid LXD instance name" in str(caught.value)


@pytest.mark.parametrize("options, message", [
    ({"colour": "blue"}, "backend_options.colour is not an LXD option"),
    ({"config": ["a"]}, "backend_options.config must be a dict"),
    ({"devices": {"data": "disk"}}, "backend_options.devices.data must be a dict of device settings"),
])
def test_backend_options_are_checked(lxd, options, message):
    with pytest.raises(InvalidInput) as caught:
        spec(lxd, backend_options=options)
    assert message in str(caught.value)


def test_networks_need_a_name_on_lxd(lxd):
    with pytest.raises(InvalidInput) as caught:
        spec(lxd, networks=[{"ipv4": "dhcp"}])
    assert "networks[0].name is required by the lxd backend" in str(caught.value)


def test_an_unknown_remote_is_refused(lxd):
    with pytest.raises(InvalidInput) as caught:
        spec(lxd, image="elsewhere:debian/12")
    assert "names an unknown remote 'elsewhere'" in str(caught.value)


# -- creating -------------------------------------------------------------------------------------


def test_check_create_reads_only_and_finds_a_missing_image():
    backend, fake = connect()
    with pytest.raises(InvalidInput) as caught:
        backend.instances.check_create(spec(backend, name="new1", image="polyvirt/nope"))
    assert caught.value.message == "image 'polyvirt/nope' was not found on the LXD server (project default)"
    backend.instances.check_create(spec(backend, name="new1", image="images:debian/12"))  # a remote image is the server's to find
    assert fake.mutating() == []


def test_create_writes_cloud_init_and_settings_into_one_request():
    backend, fake = connect()
    backend.instances.create(spec(backend, name="new1", cpus=2, memory="1GiB", tags=["a"], description="d",
                                  cloud_init={"user_data": "#cloud-config\n{}\n", "network_config": {"version": 2}}), deadline())
    posts = [request for request in fake.requests if request[:2] == ("POST", "/1.0/instances")]
    assert len(posts) == 1
    body = posts[0][3]
    assert body["type"] == "container" and body["source"] == {"type": "image", "alias": "polyvirt/busybox"}
    assert body["config"]["cloud-init.user-data"] == "#cloud-config\n{}\n" and "cloud-init.network-config" in body["config"]
    assert body["config"]["limits.cpu"] == "2" and body["config"]["limits.memory"] == "1024MiB" and body["description"] == "d"


def test_a_server_without_the_cloud_init_extension_gets_the_older_keys():
    backend, fake = connect(api_extensions=())
    backend.instances.create(spec(backend, name="new1", cloud_init={"user_data": "#cloud-config\n{}\n", "network_config": None}), deadline())
    body = [request for request in fake.requests if request[:2] == ("POST", "/1.0/instances")][0][3]
    assert body["config"] == {"user.user-data": "#cloud-config\n{}\n"}


def test_a_vm_is_created_as_a_virtual_machine():
    backend, fake = connect()
    created = backend.instances.create(spec(backend, name="vm1", type="vm"), deadline())
    assert created["type"] == "vm" and fake.instances["vm1"]["type"] == "virtual-machine"


def test_a_failed_operation_is_an_operation_failure():
    backend, fake = connect()
    fake.operation_errors[("POST", "/1.0/instances")] = "Failed creating instance from image: no space left on device"
    with pytest.raises(OperationFailed) as caught:
        backend.instances.create(spec(backend, name="new1"), deadline())
    assert caught.value.message == "Failed creating instance from image: no space left on device"
    assert "new1" not in fake.instances


# -- power, delete, wait --------------------------------------------------------------------------


def test_power_bodies():
    backend, fake = connect()
    instance = backend.instances.get("web1")
    backend.instances.power(instance, "pause", False, deadline())
    backend.instances.power(instance, "resume", False, deadline())
    backend.instances.power(instance, "stop", False, deadline())
    bodies = [request[3] for request in fake.requests if request[:2] == ("PUT", "/1.0/instances/web1/state")]
    assert bodies[0] == {"action": "freeze", "force": False} and bodies[1] == {"action": "unfreeze", "force": False}
    assert bodies[2]["action"] == "stop" and bodies[2]["force"] is False and 1 <= bodies[2]["timeout"] <= 60


def test_delete_stops_a_running_instance_first():
    backend, fake = connect()
    backend.instances.delete(backend.instances.get("web1"), False, deadline())
    assert [path for path in fake.paths() if path[0] != "GET"] == [("PUT", "/1.0/instances/web1/state"), ("DELETE", "/1.0/instances/web1")]
    assert "web1" not in fake.instances


def test_waiting_for_what_was_read_already_costs_no_request():
    backend, fake = connect()
    instance = backend.instances.get("web1", runtime=True)
    count = len(fake.requests)
    backend.instances.wait_for(instance, "running", deadline())
    backend.instances.wait_for(instance, "ip", deadline())
    assert len(fake.requests) == count


def test_waiting_for_cloud_init_runs_cloud_init_status():
    backend, fake = connect()
    instance, report = backend.instances.wait_for(backend.instances.get("web1"), "cloud_init", deadline())
    assert report["status"] == "done" and report["exit_code"] == 0
    execs = [request for request in fake.requests if request[1].endswith("/exec")]
    assert execs[0][3]["command"] == ["cloud-init", "status", "--wait", "--long"]
    assert instance["addresses"]["ipv4"] == ["10.231.0.5"]


@pytest.mark.parametrize("result, message", [
    ((1, "status: error\n", ""), "cloud-init finished with an error in instance web1"),
    ((127, "", "sh: cloud-init: not found"), "cloud-init is not installed in instance web1"),
])
def test_cloud_init_failures(result, message):
    backend, fake = connect()
    fake.exec_result = result
    with pytest.raises(OperationFailed) as caught:
        backend.instances.wait_for(backend.instances.get("web1"), "cloud_init", deadline())
    assert message in caught.value.message


def test_an_image_without_cloud_init_is_named_when_lxd_fails_the_exec_itself():
    # LXD fails the exec operation ("Command not found") instead of returning exit code 127.
    backend, fake = connect()
    fake.operation_errors[("POST", "/1.0/instances/web1/exec")] = "Command not found"
    with pytest.raises(OperationFailed) as caught:
        backend.instances.wait_for(backend.instances.get("web1"), "cloud_init", deadline())
    assert "cloud-init is not installed in instance web1 (Command not found)" in caught.value.message


# -- clones ---------------------------------------------------------------------------------------


def test_a_clone_copies_without_volatile_keys_and_applies_the_spec():
    backend, fake = connect()
    source = backend.instances.get("web1")
    backend.instances.clone(source, spec(backend, name="copy1", memory="1GiB"), {"snapshot": "snap0", "mode": "full", "target": None}, deadline())
    body = [request for request in fake.requests if request[:2] == ("POST", "/1.0/instances")][0][3]
    assert body["source"] == {"type": "copy", "source": "web1/snap0", "instance_only": True}
    assert not [key for key in body["config"] if key.startswith("volatile.")]
    assert body["config"]["limits.memory"] == "1024MiB"


def test_a_linked_clone_needs_a_copy_on_write_pool(lxd):
    source = lxd.instances.get("web1")
    with pytest.raises(Unsupported) as caught:
        lxd.instances.check_clone(source, spec(lxd, name="copy1"), {"snapshot": None, "mode": "linked", "target": None})
    assert "mode=linked clones is not supported by the lxd backend on storage pool polyvirt (driver dir)" in caught.value.message


def test_a_clone_target_needs_a_cluster(lxd):
    with pytest.raises(InvalidInput) as caught:
        lxd.instances.check_clone(lxd.instances.get("web1"), spec(lxd, name="copy1"), {"snapshot": None, "mode": "full", "target": "node2"})
    assert "this LXD server is not clustered" in caught.value.message


def test_shared_disks_are_the_custom_volumes_mounted(lxd):
    assert lxd.instances.shared_disks(lxd.instances.get("web1")) == ["polyvirt/data1"]


# -- the reconciler on LXD ------------------------------------------------------------------------


def test_an_idempotent_instance_task_is_one_get():
    backend, fake = connect()
    result = InstanceReconciler(backend, params(state="started", cpus=2, memory="512MiB", tags=["a", "b"])).run()
    assert result["changed"] is False
    assert fake.requests == [("GET", "/1.0/instances/web1", {}, None)]


def test_an_existing_vm_is_reconciled_without_type():
    backend, fake = connect()
    result = InstanceReconciler(backend, params(name="db1", state="stopped")).run()
    assert result["changed"] is False and fake.mutating() == []
