# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Retries: only what the driver names transient, jittered and growing, never past the task's deadline (no real sleeping)."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils import _retry, _wait
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, OperationFailed
from ansible_collections.polyvirt.compute.plugins.module_utils._retry import retry
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline


class Clock:
    def __init__(self):
        self.now = 50.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Jitter:
    """random for _retry: uniform() answers the upper bound (or the lower one), and records the range."""

    def __init__(self, pick="upper"):
        self.pick = pick
        self.ranges = []

    def uniform(self, low, high):
        self.ranges.append((low, high))
        return high if self.pick == "upper" else low


@pytest.fixture(name="clock")
def fixture_clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(_retry, "time", clock)
    monkeypatch.setattr(_wait, "time", clock)
    return clock


@pytest.fixture(name="jitter")
def fixture_jitter(monkeypatch):
    jitter = Jitter()
    monkeypatch.setattr(_retry, "random", jitter)
    return jitter


def flaky(failures, error=OperationFailed("HTTP 503")):
    """A call that raises ``error`` ``failures`` times, then returns how many calls it took."""
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return len(calls)

    return call, calls


def transient(exc):
    return isinstance(exc, OperationFailed)


def test_a_success_is_returned_at_once(clock, jitter):
    call, calls = flaky(0)
    assert retry(call, Deadline(10), transient) == 1
    assert clock.sleeps == [] and jitter.ranges == []


def test_transient_errors_are_retried_with_growing_jittered_pauses(clock, jitter):
    call, calls = flaky(5)
    assert retry(call, Deadline(60), transient, first=0.25, longest=2.0) == 6
    assert jitter.ranges == [(0.125, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (1.0, 2.0)]  # doubling, capped at longest
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0]


def test_other_errors_are_raised_at_once(clock, jitter):
    call, calls = flaky(3, error=Conflict("instance exists"))
    with pytest.raises(Conflict):
        retry(call, Deadline(60), transient)
    assert len(calls) == 1 and clock.sleeps == []


def test_a_bug_is_not_retried(clock, jitter):
    call, calls = flaky(3, error=KeyError("x"))
    with pytest.raises(KeyError):
        retry(call, Deadline(60), transient)
    assert len(calls) == 1


def test_retries_stop_at_the_deadline_with_the_last_error(clock, jitter):
    call, calls = flaky(1000)
    with pytest.raises(OperationFailed) as caught:
        retry(call, Deadline(5), transient, first=1.0, longest=2.0)
    assert caught.value.message == "HTTP 503"
    assert clock.sleeps == [1.0, 2.0]  # 1 + 2 = 3 s; the next 2 s pause would not leave time for another try within 5 s
    assert len(calls) == 3
    assert sum(clock.sleeps) < 5


def test_a_pause_that_would_reach_the_deadline_is_not_taken(clock, monkeypatch):
    monkeypatch.setattr(_retry, "random", Jitter(pick="lower"))
    call, calls = flaky(1000)
    with pytest.raises(OperationFailed):
        retry(call, Deadline(1), transient, first=2.0)
    assert clock.sleeps == [] and len(calls) == 1
