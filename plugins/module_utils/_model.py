# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The normalised model every backend maps to: units, names and the shape of returned objects."""

from __future__ import annotations

import math
import re
import unicodedata

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.module_utils._net import pick_ansible_host

_UNITS_IN_BYTES = {
    "": None,  # bare number: the caller's default unit
    "b": 1,
    "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
    "m": 1000 ** 2, "mb": 1000 ** 2, "mi": 1024 ** 2, "mib": 1024 ** 2,
    "g": 1000 ** 3, "gb": 1000 ** 3, "gi": 1024 ** 3, "gib": 1024 ** 3,
    "t": 1000 ** 4, "tb": 1000 ** 4, "ti": 1024 ** 4, "tib": 1024 ** 4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
MIB = 1024 ** 2
GIB = 1024 ** 3
MAX_SIZE = 2 ** 63 - 1


def parse_size(value, option, default_unit):
    """Return ``value`` ("4GiB", "512MiB", "4G", 2048) in bytes; a bare number is in ``default_unit``.

    ``"4G"`` means 4 GiB, as in LXD, Proxmox and Kubernetes practice for memory and disks; ``"4GB"``
    is decimal. Raises InvalidInput naming the option for anything else, including zero and negatives.
    """
    if isinstance(value, bool):
        raise InvalidInput("%s must be a size such as 4GiB or 512MiB, got %r" % (option, value))
    if isinstance(value, (int, float)):
        number, unit = value, ""
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise InvalidInput("%s must be a size such as 4GiB or 512MiB, got %r" % (option, value))
        number, unit = match.group(1), match.group(2).lower()
    try:
        number = float(number)
    except OverflowError:
        number = math.inf
    if math.isnan(number) or number == -math.inf:
        raise InvalidInput("%s must be a size such as 4GiB or 512MiB, got %r" % (option, value))
    if unit in ("k", "m", "g", "t"):
        unit += "i"
    if unit not in _UNITS_IN_BYTES:
        raise InvalidInput("%s has an unknown unit %r in %r (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)" % (option, unit, value))
    factor = _UNITS_IN_BYTES[unit] or _UNITS_IN_BYTES[default_unit.lower()]
    if number * factor > MAX_SIZE:  # also catches infinity: no platform takes more than 8 EiB
        raise InvalidInput("%s is too large, got %r" % (option, value))
    size = int(number * factor)
    if size <= 0:
        raise InvalidInput("%s must be greater than zero, got %r" % (option, value))
    return size


def format_size(size):
    """``size`` bytes in the largest binary unit that divides it exactly ("4GiB", "512MiB", "1536B")."""
    for unit, factor in (("TiB", 1024 ** 4), ("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if size % factor == 0:
            return "%d%s" % (size // factor, unit)
    return "%dB" % size


def in_unit(size, unit):
    """``size`` bytes in ``unit`` (MiB, GiB): whole when it divides exactly, else rounded to 2 places."""
    if size is None:
        return None
    return size // unit if size % unit == 0 else round(size / float(unit), 2)


def size_mib(value, option):
    """A memory size in whole MiB (a bare int is MiB)."""
    return _whole(parse_size(value, option, "MiB"), MIB, option, value, "MiB")


def size_gib(value, option):
    """A disk size in whole GiB (a bare int is GiB)."""
    return _whole(parse_size(value, option, "GiB"), GIB, option, value, "GiB")


def _whole(size, unit, option, value, unit_name):
    if size % unit:
        raise InvalidInput("%s must be a whole number of %s, got %r" % (option, unit_name, value))
    return size // unit


def check_name(value, option):
    """The rules every resource name obeys on every backend; each backend adds its own on top.

    ``.`` and ``..`` are refused because backends build paths from names: LXD 5.0 put a snapshot named
    ``..`` at the root of the pool's snapshot directory, and deleting it removed every snapshot in the pool.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInput("%s must be a non-empty name, got %r" % (option, value))
    if value in (".", ".."):
        raise InvalidInput("%s %r is not a valid name: . and .. are path components" % (option, value))
    for char in value:
        if char in "/\\" or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise InvalidInput("%s %r is not a valid name: it contains %r (no path separators or control characters)" % (option, value, char))
    return value


def positive_int(value, option):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput("%s must be a whole number of at least 1, got %r" % (option, value))
    return value


def normalise_mac(mac):
    return mac.lower().replace("-", ":") if mac else mac


def instance_result(name, backend, **fields):
    """The backend-neutral ``instance`` return shape (DESIGN section 3); unknown fields stay None."""
    result = {
        "name": name,
        "backend": backend,
        "id": None,
        "type": None,
        "state": None,
        "cpus": None,
        "memory_mib": None,
        "disk_gib": None,
        "image": None,
        "description": None,
        "addresses": {"ipv4": [], "ipv6": []},
        "ansible_host": None,
        "networks": [],
        "location": None,
        "tags": [],
        "backend_data": {},
    }
    result.update(fields)
    if result["ansible_host"] is None:
        result["ansible_host"] = pick_ansible_host(result["addresses"], result["networks"])
    return result


def snapshot_result(name, instance, backend, **fields):
    result = {
        "name": name,
        "instance": instance,
        "backend": backend,
        "created_at": None,
        "stateful": False,
        "description": None,
        "backend_data": {},
    }
    result.update(fields)
    return result


def backup_result(name, instance, backend, **fields):
    result = {
        "id": name,
        "name": name,
        "instance": instance,
        "backend": backend,
        "created_at": None,
        "size_bytes": None,
        "location": None,
        "backend_data": {},
    }
    result.update(fields)
    return result


def disk_result(name, backend, **fields):
    result = {
        "name": name,
        "backend": backend,
        "size_gib": None,
        "size_bytes": None,
        "storage": None,
        "attached_to": None,
        "attachments": [],
        "path": None,
        "backend_data": {},
    }
    result.update(fields)
    return result


def oldest_first(items):
    """``items`` (snapshots or backups) ordered by creation time, keeping the backend's order for ties."""
    return sorted(items, key=lambda item: item.get("created_at") or "")


def to_prune(items, retain, keep=None):
    """The oldest ``items`` beyond the newest ``retain``; ``keep`` (a name) is never pruned."""
    if not retain:
        return []
    ordered = oldest_first(items)
    excess = len(ordered) - retain
    victims = []
    for item in ordered:
        if len(victims) >= excess:
            break
        if item["name"] != keep:
            victims.append(item)
    return victims


def diffable(item):
    """The part of a resource worth showing in a diff (not the native object)."""
    return dict((key, value) for key, value in public(item or {}).items() if key != "backend_data" and value not in (None, [], {}))


def public(value):
    """``value`` without the keys a driver keeps for itself (leading ``_``, such as ``_native``): what a result shows."""
    if isinstance(value, dict):
        return dict((key, public(item)) for key, item in value.items() if not (isinstance(key, str) and key.startswith("_")))
    if isinstance(value, list):
        return [public(item) for item in value]
    return value
