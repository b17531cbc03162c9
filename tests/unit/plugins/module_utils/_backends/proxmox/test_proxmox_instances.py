# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Proxmox guests: mapping to and from PVE config, the requests each verb makes, and the reconciler on FakePve."""

import copy
import re

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import LIVE, ON_RESTART
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox import instances as pve
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.backend import ProxmoxBackend
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, OperationFailed
from ansible_collections.polyvirt.compute.plugins.module_utils._model import public
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler, desired_spec
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.proxmox.fake_pve import OSTEMPLATE, SECRET, FakePve

# The seed ISO needs pycdlib (requirements/proxmox.txt); where the unit venv lacks it, those tests say so and skip.
try:
    import pycdlib  # noqa: F401  pylint: disable=unused-import
    HAS_PYCDLIB = True
except ImportError:
    HAS_PYCDLIB = False
needs_pycdlib = pytest.mark.skipif(not HAS_PYCDLIB, reason="pycdlib is not installed (tests/unit/requirements.txt should list it)")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host"


def connect(**fake_options):
    backend = ProxmoxBackend({"api_host": "127.0.0.1", "api_token_id": "root@pam!polyvirt", "api_token_secret": "x"})
    fake = FakePve(**fake_options).install(backend.client)
    return backend, fake


def params(**overrides):
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"name": "new1", "state": "present", "image": "debian-12-cloud", "wait": True, "wait_timeout": 30})
    values.update(overrides)
    return values


def reconcile(backend, check_mode=False, **overrides):
    return InstanceReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run()


def reads(fake):
    return [request[1] for request in fake.requests if request[0] == "GET" and "/tasks/" not in request[1]]


# -- pure helpers -------------------------------------------------------------------------------------


def test_pending_items_give_current_effective_and_changing_keys():
    current, config, changing = pve.read_pending([{"key": "cores", "value": 2, "pending": 4}, {"key": "memory", "value": "512"},
                                                  {"key": "tags", "value": "a", "delete": 1}])
    assert current == {"cores": 2, "memory": "512", "tags": "a"}
    assert config == {"cores": 4, "memory": "512"}
    assert changing == ["cores", "tags"]


@pytest.mark.parametrize("value, expected", [
    ("virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1", "bridge=vmbr0,firewall=1,virtio=BC:24:11:00:01:00"),
    ("firewall=1,virtio=BC:24:11:00:01:00,bridge=vmbr0", "bridge=vmbr0,firewall=1,virtio=BC:24:11:00:01:00"),
    ("local-lvm:vm-100-disk-0,size=3G,discard=on", "local-lvm:vm-100-disk-0,discard=on,size=3G"),
    (True, "1"), (0, "0"), ("plain text", "plain text"),
])
def test_property_strings_compare_in_any_key_order(value, expected):
    assert pve.normalise_value(value) == expected


def test_tags_in_any_separator_and_order():
    assert pve.read_tags("b;a,c a") == ["a", "b", "c"] and pve.read_tags(None) == []


def test_the_boot_disk_follows_the_boot_order_and_skips_cdroms():
    entry = {"type": "qemu"}
    config = {"ide2": "local-lvm:vm-1-cloudinit,media=cdrom", "scsi0": "local-lvm:vm-1-disk-0,size=3G", "virtio1": "local-lvm:vm-1-disk-1,size=9G",
              "boot": "order=ide2;virtio1;scsi0"}
    assert pve.boot_disk(entry, config) == "virtio1"
    del config["boot"]
    assert pve.boot_disk(entry, config) == "scsi0"
    assert pve.boot_disk({"type": "lxc"}, {}) == "rootfs"
    assert pve.size_gib("local-lvm:vm-1-disk-0,size=33280M") == 32.5


def test_networks_are_read_from_netn_and_ipconfign():
    networks = pve.guest_networks({"type": "qemu"}, {"net0": "virtio=BC:24:11:00:01:00,bridge=vmbr0", "ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1",
                                                     "net1": "e1000,bridge=vmbr1"})
    assert networks == [{"device": "net0", "name": "vmbr0", "model": "virtio", "mac": "bc:24:11:00:01:00", "ipv4": "10.0.0.5/24",
                         "ipv4_gateway": "10.0.0.1"},
                        {"device": "net1", "name": "vmbr1", "model": "e1000"}]
    lxc = pve.guest_networks({"type": "lxc"}, {"net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:01:01,ip=dhcp,type=veth"})
    assert lxc == [{"device": "net0", "name": "vmbr0", "interface": "eth0", "mac": "bc:24:11:00:01:01", "ipv4": "dhcp"}]


def test_network_writes_keep_mac_and_model_and_write_only_what_differs():
    config = {"net0": "e1000=BC:24:11:00:01:00,bridge=vmbr0,firewall=1", "ipconfig0": "ip=dhcp", "net1": "virtio,bridge=vmbr0", "ipconfig1": "ip=dhcp"}
    params, deletes = pve.network_changes(True, config, [{"name": "vmbr0", "ipv4": "dhcp"}])
    assert params == {} and deletes == ["net1", "ipconfig1"]
    params, deletes = pve.network_changes(True, config, [{"name": "vmbr1", "ipv4": "10.0.0.5/24", "ipv4_gateway": "10.0.0.1"}])
    assert params == {"net0": "e1000=BC:24:11:00:01:00,bridge=vmbr1,firewall=1", "ipconfig0": "gw=10.0.0.1,ip=10.0.0.5/24"}
    params, deletes = pve.network_changes(False, {}, [{"name": "vmbr0"}])
    assert params == {"net0": "name=eth0,bridge=vmbr0,ip=dhcp"} and deletes == []


def test_interface_addresses_leave_out_loopback_and_link_local():
    found, by_mac = pve.interface_addresses([
        {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1"}]},
        {"name": "eth0", "hardware-address": "BC:24:11:00:01:00",
         "ip-addresses": [{"ip-address": "10.0.0.5"}, {"ip-address": "fe80::1"}, {"ip-address": "2001:db8::5"}]}])
    assert found == {"ipv4": ["10.0.0.5"], "ipv6": ["2001:db8::5"]}
    assert by_mac == {"bc:24:11:00:01:00": ["10.0.0.5", "2001:db8::5"]}


def test_ssh_keys_alone_are_pve_sshkeys_and_more_user_data_needs_the_seed():
    backend = connect()[0]
    spec = desired_spec(params(ssh_keys=[KEY]), backend)
    assert pve.cloud_init_keys(spec) == [KEY] and not pve.needs_seed(spec)
    assert backend.instances.desired(spec)["ssh_keys"] == [KEY]
    full = desired_spec(params(ssh_keys=[KEY], cloud_init={"user_data": {"packages": ["nginx"]}, "network_config": None}), backend)
    assert pve.cloud_init_keys(full) is None and pve.needs_seed(full) and "ssh_keys" not in backend.instances.desired(full)
    network = desired_spec(params(cloud_init={"user_data": None, "network_config": {"version": 2}}), backend)
    assert pve.needs_seed(network)


# -- validation: before any request ---------------------------------------------------------------


@pytest.mark.parametrize("overrides, text", [
    ({"name": "web_1"}, "name 'web_1' is not a valid Proxmox VE guest name"),
    ({"name": "-web"}, "is not a valid Proxmox VE guest name"),
    ({"tags": ["x,y"]}, "tags[0] 'x,y' is not a valid Proxmox VE tag"),
    ({"memory": "8MiB"}, "memory 8MiB is below the Proxmox VE minimum of 16MiB"),
    ({"backend_options": {"vmid": 5}}, "backend_options.vmid must be between 100"),
    ({"backend_options": {"vmid": "100"}}, "backend_options.vmid must be a int"),
    ({"backend_options": {"clone": "thin"}}, "backend_options.clone must be full or linked"),
    ({"backend_options": {"cores": 4}}, "backend_options.cores is set by this collection, use the option cpus"),
    ({"backend_options": {"net0": "virtio,bridge=vmbr0"}}, "use the option networks"),
    ({"backend_options": {"Bad Key": 1}}, "backend_options.Bad Key is not a Proxmox VE config key"),
    ({"backend_options": {"args": ["x"]}}, "backend_options.args must be a string, number or boolean"),
    ({"networks": [{"ipv4": "dhcp"}]}, "networks[0].name is required by the proxmox backend"),
    ({"networks": [{"name": "vmbr0", "ipv4": "10.0.0.5"}]}, "networks[0].ipv4 10.0.0.5 needs a /prefix"),
    ({"networks": [{"name": "vmbr0", "mac": "01:00:00:00:00:01"}]}, "networks[0].mac 01:00:00:00:00:01 is not a unicast MAC address"),
    ({"type": "container", "image": "debian"}, "must be an ostemplate volume"),
    ({"type": "container", "image": OSTEMPLATE, "cloud_init": {"user_data": {"a": 1}, "network_config": None}},
     "cloud_init is not supported by the proxmox backend for type=container"),
    ({"type": "container", "image": OSTEMPLATE, "state": "paused"}, "state=paused is not supported by the proxmox backend for type=container"),
])
def test_bad_input_is_refused_before_any_change(overrides, text):
    backend, fake = connect()
    with pytest.raises(InvalidInput) as caught:
        reconcile(backend, **overrides)
    assert text in caught.value.message
    assert fake.mutating() == []


@pytest.mark.parametrize("overrides, text", [
    ({"image": "nosuch"}, "image nosuch is not a QEMU template on this Proxmox VE cluster (templates: debian-12-cloud (9000))"),
    ({"image": "100"}, "image 100 is not a QEMU template"),
    ({"networks": [{"name": "vmbr9"}]}, "networks[0].name vmbr9 is not a bridge of node pve (bridges: vmbr0)"),
    ({"backend_options": {"storage": "nfs"}}, "storage nfs does not exist on node pve"),
    ({"disk_size": "2GiB"}, "disk_size 2GiB is smaller than the 3GiB disk of template debian-12-cloud"),
    ({"type": "container", "image": "local:vztmpl/nosuch.tar.zst"}, "image local:vztmpl/nosuch.tar.zst is not an ostemplate on storage local"),
    ({"type": "container", "image": OSTEMPLATE, "backend_options": {"storage": "local"}}, "cannot hold container disks"),
    ({"cloud_init": {"user_data": {"runcmd": ["true"]}, "network_config": None}, "backend_options": {"iso_storage": "local-lvm"}},
     "backend_options.iso_storage local-lvm on node pve cannot hold ISO images (those that can: local)"),
])
def test_what_a_create_needs_is_checked_with_reads_only(overrides, text):
    if "iso_storage" in overrides.get("backend_options", {}) and not HAS_PYCDLIB:
        pytest.skip("pycdlib is not installed")
    backend, fake = connect()
    for check_mode in (True, False):
        with pytest.raises(InvalidInput) as caught:
            reconcile(backend, check_mode=check_mode, **overrides)
        assert text in caught.value.message
    assert fake.mutating() == []


def test_an_unknown_connection_node_is_refused():
    backend, fake = connect()
    backend.node = "pve9"
    with pytest.raises(InvalidInput) as caught:
        reconcile(backend)
    assert "connection.node pve9 is not a node of this Proxmox VE cluster (nodes: pve)" in caught.value.message
    assert fake.mutating() == []


# -- reading ------------------------------------------------------------------------------------------


def test_get_is_two_reads_for_any_guest():
    backend, fake = connect()
    container = backend.instances.get("ct1")
    assert reads(fake) == ["cluster/resources", "nodes/pve/lxc/101/pending"]
    assert container["type"] == "container" and container["state"] == "stopped" and container["cpus"] == 1 and container["memory_mib"] == 256
    assert container["disk_gib"] == 8 and container["location"] == "pve" and container["id"] == 101
    backend.forget()
    del fake.requests[:]
    web = backend.instances.get("web1")
    # cluster/resources lists a running VM's QMP status (paused, running): no status/current read
    assert reads(fake) == ["cluster/resources", "nodes/pve/qemu/100/pending"]
    assert web["state"] == "running" and web["tags"] == ["a", "b"] and web["networks"][0]["mac"] == "bc:24:11:00:01:00"
    assert web["addresses"] == {"ipv4": [], "ipv6": []}


def test_runtime_reads_addresses_from_the_agent_instead_of_status():
    backend, fake = connect()
    web = backend.instances.get("web1", runtime=True)
    assert reads(fake) == ["cluster/resources", "nodes/pve/qemu/100/pending", "nodes/pve/qemu/100/agent/network-get-interfaces"]
    assert web["addresses"] == {"ipv4": ["10.20.0.10"], "ipv6": []} and web["ansible_host"] == "10.20.0.10"
    assert web["networks"][0]["addresses"] == ["10.20.0.10"]


def test_a_paused_vm_is_paused():
    backend, fake = connect()
    fake.guests[100]["paused"] = True
    assert backend.instances.get("web1")["state"] == "paused"
    assert reads(fake) == ["cluster/resources", "nodes/pve/qemu/100/pending"]
    backend.forget()
    assert backend.instances.get("web1", runtime=True)["state"] == "paused"


def test_another_qmp_status_and_the_state_after_a_change_come_from_status_current():
    backend, fake = connect()
    fake.stale_status[100] = {"status": "prelaunch"}
    assert backend.instances.get("web1")["state"] == "running"
    assert reads(fake)[-1] == "nodes/pve/qemu/100/status/current"
    # after a change the listed status may be a pvestatd cycle old: the live one counts
    fake.guests[100]["paused"] = True
    fake.stale_status[100] = {"status": "running"}
    backend.forget()
    web = backend.instances.get("web1")
    assert web["state"] == "running"  # what the list says, for an idempotent read
    assert backend.instances._by_vmid(web["_native"]["entry"])["state"] == "paused"


def test_secrets_never_reach_results():
    backend = connect()[0]
    web = backend.instances.get("web1")
    assert SECRET not in repr(public(web)) and "cipassword" not in web["backend_data"]["config"]


def test_two_guests_with_one_name_are_refused_with_their_vmids():
    backend, fake = connect()
    fake.guests[102] = dict(fake.guests[100], vmid=102)
    with pytest.raises(Conflict) as caught:
        reconcile(backend, name="web1")
    assert "2 guests are named web1 (vmids 100, 102)" in caught.value.message
    assert fake.mutating() == []


def test_list_is_one_read():
    backend, fake = connect()
    names = [instance["name"] for instance in backend.instances.list()]
    assert names == ["web1", "ct1", "debian-12-cloud"]
    assert reads(fake) == ["cluster/resources"]


# -- the reconciler on FakePve ----------------------------------------------------------------------------


def test_clone_and_configure_in_one_task_then_nothing_to_do():
    backend, fake = connect()
    result = reconcile(backend, cpus=4, memory="1GiB", tags=["x"], description="made here", disk_size=5,
                       networks=[{"name": "vmbr0", "ipv4": "10.0.0.5/24", "ipv4_gateway": "10.0.0.1"}], ssh_keys=[KEY])
    assert result["changed"] and result["actions"] == ["create vm new1 from debian-12-cloud"]
    writes = [(method, path) for method, path, _params in fake.mutating()]
    assert writes == [("POST", "nodes/pve/qemu/9000/clone"), ("POST", "nodes/pve/qemu/102/config"), ("PUT", "nodes/pve/qemu/102/resize")]
    new = [guest for guest in fake.guests.values() if guest["name"] == "new1"][0]
    assert new["config"]["cores"] == 4 and new["config"]["memory"] == 1024 and new["config"]["tags"] == "x"
    assert new["config"]["ipconfig0"] == "gw=10.0.0.1,ip=10.0.0.5/24" and new["config"]["scsi0"].endswith("size=5G")
    assert new["config"]["sshkeys"] == "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl%20me%40host%0A"
    clone_params = fake.mutating()[0][2]
    assert clone_params["full"] is True and clone_params["name"] == "new1" and clone_params["description"] == "made here"
    del fake.requests[:]
    backend.forget()  # a new task starts with nothing read
    again = reconcile(backend, cpus=4, memory="1GiB", tags=["x"], description="made here", disk_size=5,
                      networks=[{"name": "vmbr0", "ipv4": "10.0.0.5/24", "ipv4_gateway": "10.0.0.1"}], ssh_keys=[KEY])
    assert not again["changed"] and fake.mutating() == []
    assert len(reads(fake)) <= 2


def test_a_linked_clone_and_a_pinned_vmid():
    backend, fake = connect()
    reconcile(backend, backend_options={"clone": "linked", "vmid": 4242})
    method, path, sent = fake.mutating()[0]
    assert (method, path) == ("POST", "nodes/pve/qemu/9000/clone") and sent["full"] is False and sent["newid"] == 4242


def test_a_vmid_taken_meanwhile_is_replaced_by_a_fresh_one():
    backend, fake = connect()
    fake.taken.add(102)  # cluster/nextid says 102, another client creates 102 before we do
    result = reconcile(backend)
    assert result["instance"]["id"] == 103
    assert [sent["newid"] for method, path, sent in fake.mutating() if path.endswith("/clone")] == [102, 103]


def test_two_runs_creating_one_name_converge_on_the_lower_vmid():
    backend, fake = connect()

    def twin(new):  # another run's clone of the same name, with a lower vmid, finished meanwhile
        fake.guests[99] = dict(copy.deepcopy(new), vmid=99, status="running")
    fake.after_clone = twin
    result = reconcile(backend, cpus=2, state="started")
    assert result["instance"]["id"] == 99 and result["instance"]["state"] == "running"
    assert [guest["vmid"] for guest in fake.guests.values() if guest["name"] == "new1"] == [99]  # our copy went
    assert ("DELETE", "nodes/pve/qemu/102") in [(method, path) for method, path, _sent in fake.mutating()]


def test_the_run_with_the_lower_vmid_keeps_going_while_the_other_removes_its_copy():
    backend, fake = connect()
    fake.after_clone = lambda new: fake.guests.__setitem__(150, dict(copy.deepcopy(new), vmid=150))
    result = reconcile(backend, state="started")
    assert result["instance"]["id"] == 102 and result["instance"]["state"] == "running" and 150 in fake.guests


def test_a_pinned_vmid_that_is_taken_is_a_conflict():
    backend, fake = connect()
    with pytest.raises(Conflict) as caught:
        reconcile(backend, backend_options={"vmid": 101})
    assert "backend_options.vmid 101 is taken by another guest" in caught.value.message
    assert len(fake.mutating()) == 1


def test_a_clone_that_cannot_be_configured_is_removed_again():
    backend, fake = connect()
    fake.task_exits["qmconfig"] = "unable to apply: cores"
    with pytest.raises(OperationFailed) as caught:
        reconcile(backend, cpus=4)
    assert "the new guest 102 was removed again" in caught.value.message
    assert "new1" not in [guest["name"] for guest in fake.guests.values()]


def test_a_new_guest_that_fails_to_start_is_removed_again():
    backend, fake = connect()
    fake.task_exits["qmstart"] = "start failed"
    with pytest.raises(OperationFailed) as caught:
        reconcile(backend, state="started")
    assert "task qmstart failed: start failed" in caught.value.message and "removed again" in caught.value.message
    assert "new1" not in [guest["name"] for guest in fake.guests.values()]


@needs_pycdlib
def test_full_user_data_travels_in_a_seed_iso_in_place_of_the_pve_drive():
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox import seed  # pylint: disable=import-outside-toplevel

    backend, fake = connect()
    result = reconcile(backend, ssh_keys=[KEY], networks=[{"name": "vmbr0", "ipv4": "10.0.0.5/24", "ipv4_gateway": "10.0.0.1"}],
                       cloud_init={"user_data": {"runcmd": ["touch /run/marker"], "chpasswd": {"list": "root:" + SECRET}}, "network_config": None})
    assert result["changed"]
    assert len(fake.uploads) == 1
    volid, image = list(fake.uploads.items())[0]
    assert re.match(r"^local:iso/polyvirt-seed-102-[0-9a-f]{6}-u[0-9a-f]{12}-n[0-9a-f]{12}\.iso$", volid)
    label, files = seed.read(image)
    assert label == "cidata" and sorted(files) == ["meta-data", "network-config", "user-data"]
    import yaml  # pylint: disable=import-outside-toplevel

    user_data = yaml.safe_load(files["user-data"])
    assert files["user-data"].startswith("#cloud-config\n") and user_data["runcmd"] == ["touch /run/marker"]
    assert user_data["ssh_authorized_keys"] == [KEY]
    assert '"instance-id": "polyvirt-' in files["meta-data"]
    assert '"macaddress": "bc:24:11:aa:00:66"' in files["network-config"] and '"10.0.0.5/24"' in files["network-config"]
    config = fake.guests[102]["config"]
    assert config["ide2"] == volid + ",media=cdrom"  # in place of the template's cloud-init drive
    assert SECRET not in repr(public(result))
    backend.forget()
    same = reconcile(backend, image=None, ssh_keys=[KEY], networks=[{"name": "vmbr0", "ipv4": "10.0.0.5/24", "ipv4_gateway": "10.0.0.1"}],
                     cloud_init={"user_data": {"runcmd": ["touch /run/marker"], "chpasswd": {"list": "root:" + SECRET}}, "network_config": None})
    assert not same["changed"] and "warnings" not in same
    other = reconcile(backend, image=None, cloud_init={"user_data": {"runcmd": ["true"]}, "network_config": None})
    assert not other["changed"] and len(other["warnings"]) == 1 and "only reads it at first boot" in other["warnings"][0]
    reconcile(backend, state="absent")
    assert fake.uploads == {}  # the seed goes with the guest


@needs_pycdlib
def test_a_seed_uploaded_for_a_guest_that_fails_is_removed_too():
    backend, fake = connect()
    fake.task_exits["qmconfig"] = "unable to apply"
    with pytest.raises(OperationFailed):
        reconcile(backend, cloud_init={"user_data": {"runcmd": ["true"]}, "network_config": None})
    assert fake.uploads == {} and "new1" not in [guest["name"] for guest in fake.guests.values()]


def test_check_mode_reads_only():
    backend, fake = connect()
    result = reconcile(backend, check_mode=True, cpus=4, state="started")
    assert result["changed"] and result["actions"] == ["create vm new1 from debian-12-cloud", "start instance new1"]
    assert fake.mutating() == []
    result = reconcile(backend, check_mode=True, name="web1", cpus=4, tags=["c"])
    assert result["diff"] == {"before": {"cpus": 2, "tags": ["a", "b"]}, "after": {"cpus": 4, "tags": ["c"]}}
    assert fake.mutating() == []


def test_a_setting_kept_pending_needs_a_restart():
    backend, fake = connect()
    result = reconcile(backend, name="web1", cpus=4, memory=1024, description="now")
    assert result["restart_required"] is True
    assert any("take effect at its next restart" in warning for warning in result["warnings"])
    assert fake.guests[100]["pending"] == {"cores": 4, "memory": 1024} and fake.guests[100]["config"]["description"] == "now"
    again = reconcile(backend, name="web1", cpus=4, memory=1024, description="now")
    assert not again["changed"] and again["restart_required"] is True
    restarted = reconcile(backend, name="web1", cpus=8, allow_restart=True)
    assert "restart instance web1 (so that cpus take effect)" in restarted["actions"] and restarted["instance"]["restart_required"] is False
    assert fake.guests[100]["config"]["cores"] == 8


def test_effects_of_changes_on_a_running_guest():
    backend = connect()[0]
    web = backend.instances.get("web1")
    effects = backend.instances.effects(web, {"cpus": 1, "memory_mib": 1, "tags": [], "networks": [], "config.onboot": "1", "config.cpu": "host"})
    assert effects == {"cpus": ON_RESTART, "memory_mib": ON_RESTART, "tags": LIVE, "networks": LIVE, "config.onboot": LIVE, "config.cpu": ON_RESTART}
    ct = backend.instances.get("ct1")
    ct["state"] = "running"
    assert backend.instances.effects(ct, {"cpus": 1, "memory_mib": 1, "config.features": "nesting=1"}) == {
        "cpus": LIVE, "memory_mib": LIVE, "config.features": ON_RESTART}


def test_a_disk_never_shrinks():
    backend, fake = connect()
    with pytest.raises(InvalidInput) as caught:
        reconcile(backend, name="web1", disk_size=2)
    assert "disk_size 2GiB is smaller than the current 3GiB; disks only grow" in caught.value.message
    assert fake.mutating() == []


def test_container_create_update_and_power():
    backend, fake = connect()
    result = reconcile(backend, name="ct2", type="container", image=OSTEMPLATE, cpus=2, memory=512, tags=["b", "a"], disk_size=10,
                       networks=[{"name": "vmbr0"}], state="started", wait_for=["ip"])
    sent = fake.mutating()[0][2]
    assert sent["ostemplate"] == OSTEMPLATE and sent["hostname"] == "ct2" and sent["rootfs"] == "local-lvm:10" and sent["unprivileged"] == 1
    assert sent["net0"] == "name=eth0,bridge=vmbr0,ip=dhcp" and sent["tags"] == "a;b"
    assert result["instance"]["state"] == "running" and result["instance"]["addresses"]["ipv4"] == ["10.20.0.11"]
    del fake.requests[:]
    backend.forget()  # a new task starts with nothing read
    again = reconcile(backend, name="ct2", type="container", image=OSTEMPLATE, cpus=2, memory=512, tags=["a", "b"], disk_size=10, networks=[{"name": "vmbr0"}])
    assert not again["changed"] and len(reads(fake)) == 2
    bigger = reconcile(backend, name="ct2", type="container", image=OSTEMPLATE, cpus=3, state="stopped")
    assert bigger["actions"] == ["update cpus of instance ct2", "stop instance ct2"] and not bigger["restart_required"]
    assert [(method, path) for method, path, _sent in fake.mutating()] == [("PUT", "nodes/pve/lxc/102/config"), ("POST", "nodes/pve/lxc/102/status/shutdown")]


def test_power_paths():
    backend, fake = connect()
    reconcile(backend, name="web1", state="paused")
    reconcile(backend, name="web1", state="paused")
    reconcile(backend, name="web1", state="stopped")  # a paused VM cannot shut down: it is stopped
    reconcile(backend, name="web1", state="started")
    reconcile(backend, name="web1", state="restarted")
    reconcile(backend, name="web1", state="stopped", force=True)
    sent = fake.mutating()
    assert [path.rsplit("/", 1)[1] for method, path, _sent in sent] == ["suspend", "stop", "start", "reboot", "shutdown"]
    # force: a clean shutdown first, which PVE turns into a stop when it has not ended by the timeout (the task's deadline)
    assert sent[-1][2]["forceStop"] == 1 and 0 < sent[-1][2]["timeout"] <= 600


def test_delete_stops_a_guest_that_runs_although_it_was_read_stopped():
    backend, fake = connect()
    web = backend.instances.get("web1")
    fake.guests[100]["status"] = "running"
    web["state"] = "stopped"
    backend.instances.delete(web, True, Deadline(30))
    assert [path for method, path, _sent in fake.mutating()] == ["nodes/pve/qemu/100", "nodes/pve/qemu/100/status/stop", "nodes/pve/qemu/100"]
    assert 100 not in fake.guests


def test_delete_stops_first_and_a_missing_guest_is_fine():
    backend, fake = connect()
    result = reconcile(backend, name="web1", state="absent")
    assert result["changed"] and [path for method, path, _sent in fake.mutating()] == ["nodes/pve/qemu/100/status/shutdown", "nodes/pve/qemu/100"]
    assert fake.mutating()[-1][2] == {"purge": 1, "destroy-unreferenced-disks": 1}
    assert not reconcile(backend, name="web1", state="absent")["changed"]


def test_wait_for_ip_needs_the_agent():
    backend, fake = connect()
    del fake.guests[100]["config"]["agent"]
    with pytest.raises(InvalidInput) as caught:
        reconcile(backend, name="web1", state="started", wait_for=["ip"])
    assert "wait_for=ip needs the QEMU guest agent on instance web1: set backend_options.agent: 1" in caught.value.message


def test_an_idempotent_wait_for_ip_makes_no_more_reads():
    backend, fake = connect()
    backend.forget()
    result = reconcile(backend, name="web1", state="started", wait_for=["ip"], cpus=2)
    assert not result["changed"] and result["instance"]["ansible_host"] == "10.20.0.10"
    assert len(reads(fake)) == 3 and fake.mutating() == []


def test_warnings_of_tasks_are_kept_in_backend_data():
    backend, fake = connect()
    fake.task_exits["qmconfig"] = "WARNINGS: 1"
    result = reconcile(backend, name="web1", description="x")
    assert result["instance"]["backend_data"]["task_warnings"] == ["qmconfig: WARN: something odd"]


def test_deadline_is_used_by_power_waits():
    assert pve.shutdown_timeout(Deadline(60)) in (54, 55) and pve.shutdown_timeout(Deadline(2)) == 1


# -- clones ---------------------------------------------------------------------------------------------


def clone_module(backend, check_mode=False, **overrides):
    from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.clone import CloneReconciler  # pylint: disable=import-outside-toplevel

    values = dict(params(image=None, source="web1", name="copy1"), mode="full", snapshot=None, target=None)
    values.update(overrides)
    return CloneReconciler(backend, values, check_mode=check_mode, diff_mode=True).run()


def test_clone_a_vm_and_configure_it_in_the_same_task_once():
    backend, fake = connect()
    result = clone_module(backend, cpus=3, tags=["copy"])
    assert result["cloned"] and result["instance"]["cpus"] == 3 and result["instance"]["tags"] == ["copy"]
    method, path, sent = fake.mutating()[0]
    assert (method, path) == ("POST", "nodes/pve/qemu/100/clone") and sent["full"] is True and sent["name"] == "copy1"
    backend.forget()
    del fake.requests[:]
    again = clone_module(backend, cpus=3, tags=["copy"])
    assert not again["changed"] and not again["cloned"] and fake.mutating() == []


def test_clone_from_a_snapshot_and_a_container_clone():
    backend, fake = connect()
    clone_module(backend, snapshot="snap0")
    assert fake.mutating()[0][2]["snapname"] == "snap0"
    clone_module(backend, source="ct1", name="ct-copy")
    sent = [request for request in fake.mutating() if request[1] == "nodes/pve/lxc/101/clone"][0][2]
    assert sent["hostname"] == "ct-copy" and "name" not in sent


@pytest.mark.parametrize("overrides, text", [
    ({"mode": "linked"}, "mode=linked clones is not supported by the proxmox backend from web1, which is not a template"),
    ({"target": "pve9"}, "target pve9 is not a node of this Proxmox VE cluster (nodes: pve)"),
    ({"source": "debian-12-cloud", "mode": "linked", "backend_options": {"storage": "local-lvm"}}, "backend_options.storage cannot be set"),
])
def test_clones_pve_cannot_make_are_refused_before_any_change(overrides, text):
    backend, fake = connect()
    with pytest.raises(InvalidInput) as caught:
        clone_module(backend, **overrides)
    assert text in caught.value.message
    assert fake.mutating() == []


def test_a_linked_clone_of_a_template():
    backend, fake = connect()
    result = clone_module(backend, source="debian-12-cloud", mode="linked")
    assert result["cloned"] and fake.mutating()[0][2]["full"] is False


def test_wait_for_cloud_init_reads_its_result_once_it_finished():
    backend, fake = connect()
    # not finished (no result.json yet): cloud-init status --wait through the agent
    result = reconcile(backend, name="web1", state="started", wait_for=["cloud_init"], image=None)
    assert fake.execs == [["cloud-init", "status", "--wait"]] and result["cloud_init"]["status"] == "done"
    fake.guest_files[100] = {"/run/cloud-init/result.json": '{"v1": {"datasource": "DataSourceNoCloud", "errors": []}}'}
    del fake.requests[:]
    backend.forget()
    again = reconcile(backend, name="web1", state="started", wait_for=["cloud_init"], image=None)
    assert not again["changed"] and fake.mutating() == [] and len(fake.execs) == 1
    assert reads(fake) == ["cluster/resources", "nodes/pve/qemu/100/pending", "nodes/pve/qemu/100/agent/file-read"]
    assert again["cloud_init"] == {"exit_code": 0, "status": "done", "output": "status: done"}
    fake.guest_files[100] = {"/run/cloud-init/result.json": '{"v1": {"errors": ["module runcmd failed"]}}'}
    backend.forget()
    with pytest.raises(OperationFailed) as caught:
        reconcile(backend, name="web1", state="started", wait_for=["cloud_init"], image=None)
    assert "cloud-init finished with an error in instance web1: module runcmd failed" in caught.value.message
