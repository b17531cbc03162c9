# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The request journal (GET/DELETE /_sim/requests) seen through pywinrm's calls, with WS-Man actions and script ops."""

from __future__ import annotations

import pytest
from winrm.exceptions import InvalidCredentialsError

from tests.simulators.hyperv import scripts
from tests.simulators.journal_checks import JournalReader, assert_since_and_clear, summary

from .conftest import Client, Emulator, session

GB = 1024 ** 3


@pytest.fixture(scope='module')
def quiet_sim():
    """An instance of its own, so no other test's calls land in the journal."""
    emulator = Emulator('--time-scale', '0')
    yield emulator
    assert emulator.stop() == 0


def answered(action, op=None):
    """The summary of one WS-Man request answered 200."""
    return ('POST', '/wsman', 200, action, op)


def test_journal_records_actions_and_script_operations(quiet_sim):
    journal = JournalReader('http://%s:%d' % (quiet_sim.host, quiet_sim.port))
    journal.clear()
    # a read as a one-shot -EncodedCommand: the operation comes with the Command request
    assert session(quiet_sim).run_ps(scripts.build('host_get', {}, minimal=True)).status_code == 0
    # a write the recommended way: the bootstrap Command, then the script on stdin with Send
    Client(quiet_sim).ok('vm_create', {'name': 'journaled', 'generation': 2, 'memory_startup': GB})
    with pytest.raises(InvalidCredentialsError):
        session(quiet_sim, password='wrong').run_ps(scripts.build('host_get', {}, minimal=True))
    recorded = journal.entries()
    assert summary(recorded, 'action', 'op') == [
        answered('Create'), answered('Command', 'host_get'), answered('Receive'), answered('Signal'), answered('Delete'),
        answered('Create'), answered('Command'), answered('Send', 'vm_create'), answered('Receive'), answered('Signal'),
        answered('Delete'),
        ('POST', '/wsman', 401, None, None),  # rejected before its envelope is read
    ]
    later = assert_since_and_clear(journal, recorded, lambda: Client(quiet_sim).ok('vm_list'))
    assert [(e['action'], e.get('op')) for e in later if 'op' in e] == [('Send', 'vm_list')]
