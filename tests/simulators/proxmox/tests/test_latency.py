# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""--latency S: every API answer waits S seconds; the journal answers at once."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import pytest

from tests.simulators.journal_checks import JournalReader

from .conftest import REPO, TOKEN_NAME, TOKEN_VALUE, USER, Sim

LATENCY = 0.4


@pytest.fixture(scope='module')
def slow_sim():
    with tempfile.TemporaryDirectory(prefix='pve-sim-latency-') as workdir:
        server = Sim(['--time-scale', '0', '--latency', str(LATENCY)], workdir)
        yield server
        assert server.stop() == 0


def test_every_api_answer_waits_and_the_journal_does_not(slow_sim):
    api = slow_sim.api(user=USER, token_name=TOKEN_NAME, token_value=TOKEN_VALUE)
    journal = JournalReader(slow_sim.url.replace('/api2/json', ''), cafile=slow_sim.cafile)
    api.version.get()  # the TLS handshake and connection set-up, outside the measurement
    started = time.monotonic()
    for dummy in range(2):
        assert api.cluster.resources.get(type='vm')
    api_time = time.monotonic() - started
    assert api_time >= 2 * LATENCY
    started = time.monotonic()
    entries = journal.entries()
    assert time.monotonic() - started < LATENCY
    assert [entry['path'] for entry in entries[-2:]] == ['/api2/json/cluster/resources'] * 2


def test_a_negative_latency_is_refused():
    proc = subprocess.run([sys.executable, '-m', 'tests.simulators.proxmox', '--port', '0', '--latency', '-1'], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert '--latency must be 0 or more seconds' in proc.stderr
