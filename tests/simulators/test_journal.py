# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared Journal on its own: bounded, thread safe, indexes that survive eviction and clears."""
from __future__ import annotations

import threading

from tests.simulators._journal import Journal


def test_oldest_entries_fall_off_and_since_still_counts_from_the_start():
    journal = Journal(limit=3)
    for number in range(5):
        journal.record('GET', '/n/%d' % number, status=200)
    assert [e['index'] for e in journal.entries()] == [2, 3, 4]
    assert [e['path'] for e in journal.entries(since=3)] == ['/n/3', '/n/4']
    assert [e['index'] for e in journal.entries(since=0)] == [2, 3, 4]
    assert journal.entries(since=99) == []


def test_entries_are_copies_and_update_fills_in_the_status():
    journal = Journal()
    entry = journal.record('POST', '/wsman', 'a=1')
    assert journal.entries() == [{'index': 0, 'method': 'POST', 'path': '/wsman', 'query': 'a=1', 'status': None}]
    journal.entries()[0]['status'] = 999
    journal.update(entry, status=200, action='Create')
    assert journal.entries()[0] == {'index': 0, 'method': 'POST', 'path': '/wsman', 'query': 'a=1', 'status': 200,
                                    'action': 'Create'}
    journal.clear()
    assert journal.entries() == []
    assert journal.record('GET', '/')['index'] == 1


def test_concurrent_records_get_distinct_consecutive_indexes():
    journal = Journal()
    threads = [threading.Thread(target=lambda: [journal.record('GET', '/') for _count in range(500)]) for _thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e['index'] for e in journal.entries()] == list(range(4000))
