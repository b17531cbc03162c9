# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retrying what is safe to repeat: idempotent reads, and calls a driver knows failed without effect.

Jittered exponential backoff, always inside the task's one deadline. Never wrap a create in this unless
the driver has named the error as one that left nothing behind (a lock, a busy object).
"""

from __future__ import annotations

import random
import time


def retry(call, deadline, transient, first=0.25, longest=4.0):
    """Call ``call()`` until it returns; retry when ``transient(exc)`` says an error may pass.

    The last error is raised once the next wait would not fit in ``deadline``. ``transient`` receives
    each exception and returns True for those worth another try (5xx, a lock, a reset connection).
    """
    delay = first
    while True:
        try:
            return call()
        except Exception as exc:  # pylint: disable=broad-except
            if not transient(exc):
                raise
            pause = random.uniform(delay / 2, delay)  # jitter keeps several clients from retrying in step
            if pause >= deadline.remaining():
                raise
            time.sleep(pause)
            delay = min(delay * 2, longest)
