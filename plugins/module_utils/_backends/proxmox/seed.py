# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The NoCloud seed ISO (volume label ``cidata``) that carries full cloud-init user-data to a QEMU guest.

PVE's own cloud-init drive renders only its ``ci*`` keys, and ``cicustom`` needs snippet files the API
cannot upload; an ISO can be uploaded (``content=iso``), so the whole user-data travels in one.
pycdlib is imported only when an ISO is built.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import MissingLibrary

VOLUME_LABEL = "cidata"
PREFIX = "polyvirt-seed-"


def require_pycdlib():
    try:
        import pycdlib  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingLibrary("full cloud_init.user_data on Proxmox VE needs the pycdlib Python library where the module runs, to build the "
                             "NoCloud seed ISO (pip install pycdlib): %s" % exc)
    return pycdlib


NAME_RE = re.compile(r"polyvirt-seed-\d+-[0-9a-f]{6}-u([0-9a-f]{12})-n([0-9a-f]{12})\.iso")


def digest(text):
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()[:12]


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


def meta_data(name):
    """A fresh ``instance-id`` for every seed, so cloud-init treats the guest as new and runs the user-data."""
    return json.dumps({"instance-id": "polyvirt-%s" % uuid.uuid4(), "local-hostname": name.split(".")[0]}) + "\n"


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


def build(user_data, meta, network=None):
    """The ISO image as bytes: ``user-data``, ``meta-data`` and, when given, ``network-config`` at its root."""
    pycdlib = require_pycdlib()
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    for name, text in (("user-data", user_data), ("meta-data", meta), ("network-config", network)):
        if text is None:
            continue
        data = text.encode("utf-8")
        iso.add_fp(io.BytesIO(data), len(data), "/%s.;1" % name.upper().replace("-", "_"), rr_name=name, joliet_path="/" + name)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read(image):
    """The files of a seed ISO (for tests): {name: text}."""
    pycdlib = require_pycdlib()
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    files = {}
    try:
        for child in iso.list_children(rr_path="/"):
            name = child.rock_ridge.name() if child.rock_ridge else None
            name = name.decode("utf-8") if isinstance(name, bytes) else name
            if not name or name in (".", ".."):
                continue
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path="/" + name)
            files[name] = out.getvalue().decode("utf-8")
        label = iso.pvd.volume_identifier.decode("ascii").strip()
    finally:
        iso.close()
    return label, files
