# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One deadline per task, and polling with backoff for backends that have no completion signal."""

from __future__ import annotations

import time

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import WaitTimeout


class Deadline:
    """The moment ``wait_timeout`` runs out; every wait in a task draws from the same budget."""

    def __init__(self, seconds):
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self):
        return max(0.0, self._end - time.monotonic())


def poll(check, deadline, what, first=0.2, longest=3.0):
    """Call ``check()`` until it returns something truthy, backing off between calls.

    Returns that value; raises WaitTimeout naming ``what`` when the deadline passes first.
    """
    delay = first
    while True:
        value = check()
        if value:
            return value
        left = deadline.remaining()
        if left <= 0:
            raise WaitTimeout("timed out after %s s waiting for %s" % (deadline.seconds, what))
        time.sleep(min(delay, left))
        delay = min(delay * 2, longest)
