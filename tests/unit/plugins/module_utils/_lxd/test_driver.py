# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The LXD driver's mapping to and from LXD objects, on canned objects shaped like LXD 5.0's answers."""

import copy

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.module_utils._lxd import driver
from ansible_collections.polyvirt.compute.plugins.module_utils._lxd.driver import LxdBackend

RAW = {
    "name": "web1",
    "type": "container",
    "status": "Running",
    "description": "",
    "location": "none",
    "profiles": ["default"],
    "config": {"limits.memory": "512MiB", "user.polyvirt.tags": "a,b", "cloud-init.user-data": "#cloud-config\npassword: hunter2\n"},
    "devices": {},
    "expanded_config": {
        "limits.cpu": "2", "limits.memory": "512MiB", "user.polyvirt.tags": "a,b", "image.description": "Debian 12",
        "cloud-init.user-data": "#cloud-config\npassword: hunter2\n", "volatile.eth0.hwaddr": "00:16:3e:aa:bb:cc",
        "volatile.idmap.next": "[]",
    },
    "expanded_devices": {
        "eth0": {"type": "nic", "network": "polyvirtbr0", "name": "eth0"},
        "root": {"type": "disk", "path": "/", "pool": "polyvirt", "size": "10GiB"},
    },
    "state": {"network": {
        "lo": {"type": "loopback", "addresses": [{"family": "inet", "address": "127.0.0.1", "scope": "local"}]},
        "eth0": {"type": "broadcast", "addresses": [
            {"family": "inet", "address": "10.231.0.5", "scope": "global"},
            {"family": "inet6", "address": "fe80::216:3eff:feaa:bbcc", "scope": "link"},
            {"family": "inet6", "address": "fd42::5", "scope": "global"},
        ]},
        "eth1": {"type": "broadcast", "addresses": []},
    }},
}


@pytest.fixture(name="lxd")
def fixture_lxd():
    return LxdBackend({"project": "polyvirt"})


def spec(**overrides):
    base = {"name": "web1", "type": "container", "image": "polyvirt/busybox", "cpus": None, "memory_mib": None, "disk_gib": None,
            "description": None, "tags": None, "networks": None, "backend_options": {}, "user_data": None, "network_config": None}
    base.update(overrides)
    return base


def test_describe_normalises_the_instance(lxd):
    instance = lxd.describe_instance(RAW)
    assert instance["state"] == "running"
    assert (instance["cpus"], instance["memory_mib"], instance["disk_gib"]) == (2, 512, 10)
    assert instance["addresses"] == {"ipv4": ["10.231.0.5"], "ipv6": ["fd42::5"]}
    assert instance["ansible_host"] == "10.231.0.5"
    assert instance["tags"] == ["a", "b"]
    assert instance["location"] is None
    assert instance["networks"] == [{"device": "eth0", "name": "polyvirtbr0", "ipv4": "dhcp", "ipv6": None, "mac": "00:16:3e:aa:bb:cc",
                                     "addresses": ["10.231.0.5", "fd42::5"]}]


def test_secrets_and_idmap_noise_are_not_returned(lxd):
    data = lxd.describe_instance(RAW)["backend_data"]
    assert "cloud-init.user-data" not in data["config"]
    assert "cloud-init.user-data" not in data["expanded_config"]
    assert "volatile.idmap.next" not in data["expanded_config"]
    assert "hunter2" not in repr(data)
    assert RAW["config"]["cloud-init.user-data"]  # the input is not modified


@pytest.mark.parametrize("status, state", [("Running", "running"), ("Stopped", "stopped"), ("Frozen", "paused"), ("Error", "error"),
                                           ("Starting", "pending")])
def test_status_names(lxd, status, state):
    assert lxd.describe_instance(dict(RAW, status=status))["state"] == state


def test_desired_settings_use_lxd_forms(lxd):
    desired = lxd.desired_settings(spec(cpus=2, memory_mib=1024, tags=["a"], networks=[{"name": "br", "ipv4": "10.0.0.9/24", "mac": None}],
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
    changes = {"cpus": 4, "memory_mib": 2048, "tags": ["x"], "description": "d", "config.boot.autostart": "true"}
    lxd._apply(body, changes, expanded_devices={})  # pylint: disable=protected-access
    assert body["config"] == {"limits.cpu": "4", "limits.memory": "2048MiB", "user.polyvirt.tags": "x", "boot.autostart": "true"}
    assert body["description"] == "d"


def test_networks_replace_nics_and_mask_profile_ones():
    devices = {"eth5": {"type": "nic", "network": "old"}, "data": {"type": "disk", "path": "/data"}}
    expanded = copy.deepcopy(RAW["expanded_devices"])
    expanded["eth9"] = {"type": "nic", "network": "from-profile"}
    networks = [{"name": "br0", "ipv4": "10.0.0.9", "mac": "00:16:3e:00:00:01"}, {"name": "br1"}]
    driver._replace_nics(devices, expanded, networks)  # pylint: disable=protected-access
    assert devices == {
        "data": {"type": "disk", "path": "/data"},
        "eth0": {"type": "nic", "network": "br0", "name": "eth0", "ipv4.address": "10.0.0.9", "hwaddr": "00:16:3e:00:00:01"},
        "eth1": {"type": "nic", "network": "br1", "name": "eth1"},
        "eth9": {"type": "none"},
    }


def test_shrinking_the_root_disk_is_refused(lxd):
    with pytest.raises(InvalidInput) as caught:
        lxd.check_update(RAW, {"disk_gib": 5})
    assert "disk_size 5GiB is smaller than the current 10GiB; disks only grow" in str(caught.value)
    lxd.check_update(RAW, {"disk_gib": 20})


@pytest.mark.parametrize("image, source", [
    ("polyvirt/debian12", {"type": "image", "alias": "polyvirt/debian12"}),
    ("c855f9c7cc95c9fe", {"type": "image", "fingerprint": "c855f9c7cc95c9fe"}),
    ("images:debian/12", {"type": "image", "mode": "pull", "server": "https://images.linuxcontainers.org", "protocol": "simplestreams",
                          "alias": "debian/12"}),
])
def test_image_sources(image, source):
    assert driver.image_source(image) == source


@pytest.mark.parametrize("name", ["1web", "-web", "web-", "web_1", "a" * 64, "web.example"])
def test_names_lxd_rejects(lxd, name):
    with pytest.raises(InvalidInput) as caught:
        lxd.validate_instance(spec(name=name))
    assert "is not a valid LXD instance name" in str(caught.value)


@pytest.mark.parametrize("options, message", [
    ({"colour": "blue"}, "backend_options.colour is not an LXD option"),
    ({"config": ["a"]}, "backend_options.config must be a dict"),
])
def test_backend_options_are_checked(lxd, options, message):
    with pytest.raises(InvalidInput) as caught:
        lxd.validate_instance(spec(backend_options=options))
    assert message in str(caught.value)


def test_networks_need_a_name_on_lxd(lxd):
    with pytest.raises(InvalidInput) as caught:
        lxd.validate_instance(spec(networks=[{"ipv4": "dhcp"}]))
    assert "networks[0].name is required by the lxd backend" in str(caught.value)


def test_memory_in_percent_is_kept_as_given(lxd):
    raw = copy.deepcopy(RAW)
    raw["expanded_config"]["limits.memory"] = "50%"
    assert lxd.current_settings(raw)["memory_mib"] == "50%"
