# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The named, time-ordered resources of one instance (snapshots, backups): find, create, delete, retain, and their diff."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._model import diffable, oldest_first, to_prune


class History:
    """Keeps ``items`` (oldest first) and records each change in ``tracker`` as ``<kind>`` and the list ``<plural>``."""

    def __init__(self, tracker, kind, plural, instance):
        self.tracker = tracker
        self.kind = kind
        self.plural = plural
        self.instance = instance
        self.items = []

    def load(self, items):
        self.items = oldest_first(items)

    def find(self, name):
        for item in self.items:
            if item["name"] == name:
                return item
        return None

    def names(self):
        return [item["name"] for item in self.items]

    def missing(self, name):
        return "%s %s of instance %s does not exist (existing: %s)" % (self.kind, name, self.instance, ", ".join(self.names()) or "none")

    def to_prune(self, retain, keep):
        return to_prune(self.items, retain, keep=keep)

    def create(self, predicted, call, check_mode):
        """``call()`` makes the item (outside check mode) and returns it; ``predicted`` stands in for it in check mode."""
        before = self.names()
        self.tracker.add(self.kind, {}, diffable(predicted))
        made = predicted if check_mode else call()
        self.items.append(made)
        self.tracker.action("create %s %s of instance %s" % (self.kind, made["name"], self.instance))
        self._record(before)
        return made

    def delete(self, item, call, check_mode, requested, reason=""):
        """Delete ``item`` with ``call()``; when it is the ``requested`` one, the diff shows it going."""
        before = self.names()
        if not check_mode:
            call()
        self.tracker.action("delete %s %s of instance %s%s" % (self.kind, item["name"], self.instance, reason))
        self.items = [other for other in self.items if other["name"] != item["name"]]
        if item["name"] == requested:
            self.tracker.add(self.kind, diffable(item), {})
        self._record(before)

    def _record(self, before):
        # Keep the first "before": several changes show as one change of the list.
        self.tracker.add(self.plural, self.tracker.diff()["before"].get(self.plural, before), self.names())
