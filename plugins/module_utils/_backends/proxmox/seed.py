# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The NoCloud seed ISO (volume label ``cidata``) that carries full cloud-init user-data to a QEMU guest.

PVE's own cloud-init drive renders only its ``ci*`` keys, and ``cicustom`` needs snippet files the API
cannot upload; an ISO can be uploaded (``content=iso``), so the whole user-data travels in one.
The ISO itself is the shared `_seed_iso` one; this module adds how Proxmox VE names and finds it.
"""

from __future__ import annotations

import json
import re
import uuid

from ansible_collections.polyvirt.compute.plugins.module_utils import _seed_iso

PREFIX = "polyvirt-seed-"
# What needs pycdlib, in the message when it is missing.
NEEDS = "full cloud_init.user_data on Proxmox VE"
NAME_RE = re.compile(r"polyvirt-seed-\d+-[0-9a-f]{6}-u([0-9a-f]{12})-n([0-9a-f]{12})\.iso")

digest = _seed_iso.digest
meta_data = _seed_iso.meta_data
read = _seed_iso.read


def require_pycdlib():
    return _seed_iso.require_pycdlib(NEEDS)


def build(user_data, meta, network=None):
    return _seed_iso.build(user_data, meta, network, NEEDS)


def file_name(vmid, user_data, network):
    """A new name for every seed (a leftover of an earlier guest is never overwritten), with digests of what it carries.

    PVE cannot give the ISO's content back through its API; the digests in the name tell a later task whether
    its user-data is the one the guest was made with.
    """
    return "%s%s-%s-u%s-n%s.iso" % (PREFIX, vmid, uuid.uuid4().hex[:6], digest(user_data), digest(network))


def digests(config):
    """(user-data digest, network-config digest) of the seed attached in ``config``, or None."""
    for value in config.values():
        match = NAME_RE.search(str(value))
        if match:
            return match.group(1), match.group(2)
    return None


def network_config(networks):
    """cloud-init network config v2 for ``networks`` (NICs matched by MAC), or None when nothing static is asked."""
    if not networks or not any(network.get("ipv4") not in (None, "dhcp") or network.get("ipv6") for network in networks):
        return None
    ethernets = {}
    for index, network in enumerate(networks):
        item = {}
        if network.get("mac"):
            item["match"] = {"macaddress": network["mac"].lower()}
            item["set-name"] = "eth%d" % index
        addresses = [network[key] for key in ("ipv4", "ipv6") if network.get(key) and network[key] not in ("dhcp", "slaac", "auto")]
        item["dhcp4"] = network.get("ipv4") in (None, "dhcp")
        if network.get("ipv6") in ("dhcp", "auto", "slaac"):
            item["dhcp6"] = True
        if addresses:
            item["addresses"] = addresses
        if network.get("ipv4_gateway"):
            item["routes"] = [{"to": "default", "via": network["ipv4_gateway"]}]
        ethernets["eth%d" % index] = item
    return json.dumps({"version": 2, "ethernets": ethernets}, indent=2) + "\n"
