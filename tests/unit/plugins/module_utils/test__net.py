# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Addresses: what users may write (IPv4, IPv6, prefixes) and the one ansible_host policy."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.module_utils._net import address, interface_address, is_global, pick_ansible_host


@pytest.mark.parametrize("value, family", [
    ("10.0.0.5", 4), ("10.0.0.5/24", 4), ("10.0.0.0/8", 4), ("192.0.2.1/32", 4), ("10.0.0.5/255.255.255.0", 4),
    ("fd00::5", 6), ("fd00::5/64", 6), ("::1/128", 6), ("2001:db8::1/48", 6), ("dhcp", 4), ("dhcp", 6),
])
def test_interface_addresses_accepted(value, family):
    assert interface_address(value, "networks[0].ipv%d" % family, family) == value


def test_keywords_are_per_option():
    assert interface_address("slaac", "networks[0].ipv6", 6, keywords=("dhcp", "slaac")) == "slaac"
    with pytest.raises(InvalidInput) as caught:
        interface_address("slaac", "networks[0].ipv4", 4)
    assert caught.value.message == "networks[0].ipv4 must be an IPv4 address, optionally with a /prefix (or dhcp), got 'slaac'"
    with pytest.raises(InvalidInput) as caught:
        interface_address("dhcp", "gateway", 4, keywords=())
    assert caught.value.message == "gateway must be an IPv4 address, optionally with a /prefix, got 'dhcp'"


@pytest.mark.parametrize("value", ["10.0.0.5/33", "10.0.0.300", "10.0.0", "web.example", "", "10.0.0.5/", "10.0.0.5/-1", "fd00::5/129", "fd00:::5",
                                   "10.0.0.5 ", "10.0.0.5/24/1"])
def test_bad_interface_addresses_name_the_option_and_value(value):
    family = 6 if ":" in value else 4
    with pytest.raises(InvalidInput) as caught:
        interface_address(value, "networks[1].ipv%d" % family, family)
    assert caught.value.message.startswith("networks[1].ipv%d must be an IPv%d address" % (family, family))
    assert caught.value.message.endswith("got %r" % value)


@pytest.mark.parametrize("value, family, other", [("fd00::5/64", 4, 6), ("10.0.0.5/24", 6, 4), ("::ffff:10.0.0.5", 4, 6)])
def test_the_other_family_is_refused(value, family, other):
    with pytest.raises(InvalidInput) as caught:
        interface_address(value, "networks[0].ipv%d" % family, family)
    assert caught.value.message == "networks[0].ipv%d must be an IPv%d address, got the IPv%d address %r" % (family, family, other, value)


def test_plain_addresses():
    assert address("10.0.0.1", "networks[0].ipv4_gateway") == "10.0.0.1"
    assert address("fd00::1", "gateway6", 6) == "fd00::1"
    with pytest.raises(InvalidInput) as caught:
        address("10.0.0.1/24", "networks[0].ipv4_gateway")
    assert caught.value.message == "networks[0].ipv4_gateway must be an IPv4 address, got '10.0.0.1/24'"
    with pytest.raises(InvalidInput) as caught:
        address("fd00::1", "networks[0].ipv4_gateway")
    assert caught.value.message == "networks[0].ipv4_gateway must be an IPv4 address, got the IPv6 address 'fd00::1'"


@pytest.mark.parametrize("value, usable", [
    ("10.0.0.5", True), ("192.0.2.7", True), ("fd42::5", True), ("2001:db8::5", True), ("10.0.0.5/24", True),
    ("127.0.0.1", False), ("::1", False), ("169.254.1.1", False), ("fe80::1", False), ("224.0.0.1", False), ("ff02::1", False),
    ("0.0.0.0", False), ("::", False), ("not an address", False), ("", False),
])
def test_is_global(value, usable):
    assert is_global(value) is usable


ADDRESSES = {"ipv4": ["10.0.0.5", "192.168.7.5"], "ipv6": ["fd00::5"]}
NETWORKS = [{"name": "lan", "addresses": ["10.0.0.5", "fd00::5"]}, {"name": "mgmt", "addresses": ["192.168.7.5"]}]


@pytest.mark.parametrize("options, expected", [
    ({}, "10.0.0.5"),
    ({"family": "ipv6"}, "fd00::5"),
    ({"family": "ipv4"}, "10.0.0.5"),
    ({"network": "mgmt"}, "192.168.7.5"),
    ({"network": "lan", "family": "ipv6"}, "10.0.0.5"),  # the network decides first; its first address
    ({"network": "nope"}, "10.0.0.5"),
    ({"cidr": "192.168.0.0/16"}, "192.168.7.5"),
    ({"cidr": "fd00::/8"}, "fd00::5"),
    ({"cidr": "172.16.0.0/12"}, "10.0.0.5"),
    ({"cidr": "192.168.7.1/24"}, "192.168.7.5"),  # host bits in the CIDR are tolerated
    ({"network": "nope", "cidr": "192.168.0.0/16"}, "192.168.7.5"),
])
def test_pick_ansible_host_preferences(options, expected):
    assert pick_ansible_host(ADDRESSES, NETWORKS, **options) == expected


def test_pick_ansible_host_falls_back_to_the_other_family_or_none():
    assert pick_ansible_host({"ipv4": [], "ipv6": ["fd00::5"]}) == "fd00::5"
    assert pick_ansible_host({"ipv4": ["10.0.0.5"], "ipv6": []}, family="ipv6") == "10.0.0.5"
    assert pick_ansible_host({"ipv4": [], "ipv6": []}) is None
    assert pick_ansible_host({}) is None


def test_a_network_address_that_is_not_a_usable_address_is_not_picked():
    networks = [{"name": "lan", "addresses": ["fe80::1"]}]  # listed on the NIC, but not among the instance's usable addresses
    assert pick_ansible_host({"ipv4": ["10.0.0.5"], "ipv6": []}, networks, network="lan") == "10.0.0.5"
