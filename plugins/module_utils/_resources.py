# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backend-neutral shapes of snapshots, backups and disks (DESIGN section 3), built by the drivers."""

from __future__ import annotations


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
    return dict((key, value) for key, value in (item or {}).items() if key != "backend_data" and value not in (None, [], {}))
