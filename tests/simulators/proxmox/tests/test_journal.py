# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The request journal (GET/DELETE /_sim/requests) seen through proxmoxer's calls."""
from __future__ import annotations

import tempfile

import pytest
from proxmoxer.core import ResourceException

from tests.simulators.journal_checks import JournalReader, assert_since_and_clear, summary

from .conftest import TOKEN_NAME, TOKEN_VALUE, USER, Sim


@pytest.fixture(scope='module')
def quiet_sim():
    """An instance of its own, so no other test's calls land in the journal."""
    with tempfile.TemporaryDirectory(prefix='pve-sim-journal-') as workdir:
        server = Sim(['--time-scale', '0'], workdir)
        yield server
        assert server.stop() == 0


def test_journal_records_reads_writes_and_failures(quiet_sim):
    api = quiet_sim.api(user=USER, token_name=TOKEN_NAME, token_value=TOKEN_VALUE)
    journal = JournalReader(quiet_sim.url.replace('/api2/json', ''), cafile=quiet_sim.cafile)
    journal.clear()
    assert api.cluster.resources.get(type='vm')
    assert api.nodes('pve').qemu(9000).config.put(description='journal') is None
    with pytest.raises(ResourceException):
        api.nodes('pve').qemu(4242).config.get()
    recorded = journal.entries()
    assert summary(recorded, 'query') == [
        ('GET', '/api2/json/cluster/resources', 200, 'type=vm'),
        ('PUT', '/api2/json/nodes/pve/qemu/9000/config', 200, ''),
        ('GET', '/api2/json/nodes/pve/qemu/4242/config', 500, ''),
    ]
    assert set(recorded[0]) == {'index', 'method', 'path', 'query', 'status'}
    later = assert_since_and_clear(journal, recorded, api.version.get)
    assert summary(later) == [('GET', '/api2/json/version', 200)]
