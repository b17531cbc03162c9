# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Addresses: validating what users write, and choosing the one Ansible connects to.

The ``ansible_host`` policy lives here once, for the modules now and the inventory plugin later.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput


def interface_address(value, option, family=4, keywords=("dhcp",)):
    """``value`` checked as an address of ``family`` with an optional prefix ("10.0.0.5/24"), or a keyword.

    Returns ``value`` unchanged; raises InvalidInput naming ``option`` for anything else (a /99, a host
    name, the other family).
    """
    if value in keywords:
        return value
    try:
        parsed = ipaddress.ip_interface(value)
    except ValueError:
        choices = " or ".join(keywords)
        raise InvalidInput("%s must be an IPv%d address, optionally with a /prefix%s, got %r" % (
            option, family, " (or %s)" % choices if choices else "", value))
    if parsed.version != family:
        raise InvalidInput("%s must be an IPv%d address, got the IPv%d address %r" % (option, family, parsed.version, value))
    return value


def address(value, option, family=4):
    """``value`` checked as a plain address of ``family`` (no prefix), such as a gateway."""
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidInput("%s must be an IPv%d address, got %r" % (option, family, value))
    if parsed.version != family:
        raise InvalidInput("%s must be an IPv%d address, got the IPv%d address %r" % (option, family, parsed.version, value))
    return value


def is_global(text):
    """Whether ``text`` is an address worth connecting to: not loopback, link-local, multicast or unspecified."""
    try:
        parsed = ipaddress.ip_address(text.split("/", 1)[0])
    except ValueError:
        return False
    return not (parsed.is_loopback or parsed.is_link_local or parsed.is_multicast or parsed.is_unspecified)


def pick_ansible_host(addresses, networks=None, family=None, network=None, cidr=None):
    """The address Ansible should connect to, or None.

    ``addresses`` is ``{"ipv4": [...], "ipv6": [...]}``; ``networks`` the instance's networks, each with
    ``name`` and ``addresses``. Preference: an address on the network named ``network``, then one inside
    ``cidr``, then the preferred ``family`` (``ipv4`` by default), then the other family.
    """
    candidates = list(addresses.get("ipv4") or []) + list(addresses.get("ipv6") or [])
    if network:
        for item in networks or ():
            if item.get("name") == network:
                found = [value for value in item.get("addresses") or [] if value in candidates]
                if found:
                    return found[0]
    if cidr:
        wanted = ipaddress.ip_network(cidr, strict=False)
        for value in candidates:
            parsed = ipaddress.ip_address(value)
            if parsed.version == wanted.version and parsed in wanted:
                return value
    order = ("ipv6", "ipv4") if family == "ipv6" else ("ipv4", "ipv6")
    for key in order:
        if addresses.get(key):
            return addresses[key][0]
    return None
