# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The request journal (GET/DELETE /_sim/requests) seen through requests' calls."""
from __future__ import annotations

from tests.simulators.journal_checks import JournalReader, assert_since_and_clear, summary

from .conftest import Client, seed

INST = 'compute/instances/'


def test_journal_records_reads_writes_and_failures(start):
    sim = start('--time-scale', '0')  # an instance of its own, so no other test's calls land in the journal
    api = Client(sim.url).authenticate()
    journal = JournalReader(sim.url)
    journal.clear()
    assert api.get(INST, params={'page': 0}).status_code == 200
    assert api.post(INST, seed('lxd_container')).status_code == 201
    assert api.get(INST + '999999/').status_code == 404
    # the /_sim/ paths are left out in every URL form the simulator accepts
    assert api.get('v5.0/_sim/state').status_code == 200
    # as an HTTP proxy (how the SDK reaches it) the path is the absolute-form target's
    proxied = api.session.get('http://compute.api.cloudcix.test/v5.0/project/1/', headers={'X-Auth-Token': api.token},
                              proxies={'http': sim.url}, timeout=10)
    assert proxied.status_code == 200
    recorded = journal.entries()
    assert summary(recorded, 'query') == [
        ('GET', '/compute/instances/', 200, 'page=0'),
        ('POST', '/compute/instances/', 201, ''),
        ('GET', '/compute/instances/999999/', 404, ''),
        ('GET', '/v5.0/project/1/', 200, ''),
    ]
    later = assert_since_and_clear(journal, recorded, api.login)
    assert summary(later) == [('POST', '/auth/login/', 201)]
