# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test helpers for the /_sim/requests journal that every simulator keeps (see _journal.py)."""
from __future__ import annotations

import json
import ssl
import urllib.request


class JournalReader:
    """GET and DELETE on a simulator's /_sim/requests, with no credentials (the journal needs none)."""

    def __init__(self, origin, cafile=None):
        self.url = origin.rstrip('/') + '/_sim/requests'
        context = ssl.create_default_context(cafile=cafile) if cafile else None
        # no proxy: HTTP_PROXY in the environment must not divert loopback calls
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))

    def entries(self, since=None):
        url = self.url if since is None else '%s?since=%d' % (self.url, since)
        with self.opener.open(url, timeout=10) as response:
            assert response.status == 200
            return json.loads(response.read())

    def clear(self):
        request = urllib.request.Request(self.url, method='DELETE')
        with self.opener.open(request, timeout=10) as response:
            assert (response.status, response.read()) == (204, b'')


def summary(entries, *keys):
    """(method, path, status, *keys) of each entry: what a test compares."""
    return [(e['method'], e['path'], e['status']) + tuple(e.get(k) for k in keys) for e in entries]


def assert_since_and_clear(journal, recorded, more_requests):
    """``since`` reads from a mark on; a clear empties the journal but the indexes keep counting.

    ``recorded`` is what the journal returned (two entries or more); ``more_requests`` makes requests the
    journal records after the clear. Returns their entries."""
    indexes = [e['index'] for e in recorded]
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    assert journal.entries(since=indexes[1]) == recorded[1:]
    assert journal.entries(since=indexes[-1] + 1) == []
    journal.clear()
    assert journal.entries() == []
    more_requests()
    after = journal.entries()
    assert [e['index'] for e in after] == list(range(indexes[-1] + 1, indexes[-1] + 1 + len(after)))
    assert after and journal.entries(since=indexes[-1]) == after  # a mark from before the clear still works
    return after
