# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every reconciler shares: the change tracker, the task deadline, check and diff mode, one error path, the result."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._diff import ChangeTracker
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, PolyvirtError
from ansible_collections.polyvirt.compute.plugins.module_utils._model import public
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline

DEFAULT_WAIT_TIMEOUT = 600


def task_deadline(params):
    """The one deadline of a task, from ``wait_timeout`` (whole seconds, at least 1)."""
    seconds = params.get("wait_timeout")
    if seconds is None:
        seconds = DEFAULT_WAIT_TIMEOUT
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise InvalidInput("wait_timeout must be a whole number of seconds, at least 1, got %r" % (seconds,))
    return Deadline(seconds)


class Reconciler:
    """Base of the instance, clone, disk, snapshot and backup reconcilers; subclasses write ``_run``."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        self.backend = backend
        self.params = params
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.tracker = ChangeTracker()
        self.extra = {}  # more result keys (warnings, reports)
        self.deadline = task_deadline(params)

    def run(self):
        """The module result; a failure carries ``changed``, ``actions`` and what is known so far."""
        try:
            return self._run()
        except PolyvirtError as exc:
            known = self._known()
            exc.result.setdefault("changed", self.tracker.changed)
            exc.result.setdefault("actions", self.tracker.actions)
            for key, value in known.items():
                exc.result.setdefault(key, value)
            exc.result = public(exc.result)
            raise

    def _run(self):
        raise NotImplementedError

    def _known(self):
        """Objects to return with a failure (for example the instance created before a wait timed out)."""
        return {}

    def _warn(self, text):
        self.extra.setdefault("warnings", []).append(text)

    def _do(self, action, call, *args):
        """Record ``action`` and, outside check mode, do it first: a failed call is not reported as done."""
        result = None if self.check_mode else call(*args)
        self.tracker.action(action)
        return result

    def _finish(self, **objects):
        result = {"changed": self.tracker.changed, "actions": self.tracker.actions}
        result.update(objects)
        result.update(self.extra)
        if self.diff_mode:
            result["diff"] = self.tracker.diff()
        return public(result)
