# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Record what differs and what is (or would be) done; yields ``changed``, ``diff`` and ``actions``."""

from __future__ import annotations

import copy


class ChangeTracker:
    """Collects differences (field, before, after) and human-readable actions for one task."""

    def __init__(self):
        self._before = {}
        self._after = {}
        self.actions = []

    def add(self, field, before, after):
        """Record that ``field`` goes from ``before`` to ``after`` (a no-op when they are equal)."""
        if before == after:
            return False
        self._before[field] = copy.deepcopy(before)
        self._after[field] = copy.deepcopy(after)
        return True

    def action(self, text):
        self.actions.append(text)

    def whole(self, before, after):
        """Record a whole-object change (create: before is None; delete: after is None)."""
        self._before = copy.deepcopy(before) if before is not None else {}
        self._after = copy.deepcopy(after) if after is not None else {}

    @property
    def changed(self):
        return bool(self.actions)

    def diff(self):
        """The ``before``/``after`` pair Ansible shows in diff mode."""
        return {"before": copy.deepcopy(self._before), "after": copy.deepcopy(self._after)}


def project(current, desired):
    """The part of ``current`` that ``desired`` speaks about, for comparing the two.

    Unset (None) desired values are left alone, dicts compare only the keys desired names, lists of
    dicts compare item by item (a length difference is a difference). Everything else compares whole.
    """
    if isinstance(desired, dict) and isinstance(current, dict):
        return dict((key, project(current.get(key), value)) for key, value in desired.items() if value is not None)
    if isinstance(desired, list) and isinstance(current, list) and len(desired) == len(current):
        return [project(cur, want) for cur, want in zip(current, desired)]
    return current


def prune(value):
    """``value`` without its None entries (recursively): what a user actually asked for."""
    if isinstance(value, dict):
        return dict((key, prune(item)) for key, item in value.items() if item is not None)
    if isinstance(value, list):
        return [prune(item) for item in value]
    return value
