# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The request journal every simulator keeps, served at ``/_sim/requests`` (see README.md).

``Journal`` holds the entries; ``JournalingHandler`` is a mixin for a ``BaseHTTPRequestHandler`` whose
server has a ``journal`` attribute: it records each request when it arrives, fills in its status when
the answer starts, and answers ``GET``/``DELETE /_sim/requests`` when the handler asks it to.
"""
from __future__ import annotations

import collections
import itertools
import json
import re
import threading
from urllib.parse import parse_qs, urlsplit

JOURNAL_PATH = '/_sim/requests'
DEFAULT_LIMIT = 100000


class Journal:
    """Thread-safe, bounded list of request entries with indexes that only ever grow."""

    def __init__(self, limit=DEFAULT_LIMIT):
        self._lock = threading.Lock()
        self._entries = collections.deque(maxlen=limit)  # the oldest entries fall off
        self._next_index = 0

    def record(self, method, path, query='', status=None, **fields):
        """Append an entry and return it; pass it to ``update`` to fill in what is learnt later."""
        with self._lock:
            entry = dict(index=self._next_index, method=method, path=path, query=query, status=status, **fields)
            self._next_index += 1
            self._entries.append(entry)
        return entry

    def update(self, entry, **fields):
        with self._lock:
            entry.update(fields)

    def entries(self, since=0):
        """Copies of the entries whose index is ``since`` or more, oldest first."""
        with self._lock:
            # indexes are consecutive in the deque, so the first wanted one is found by arithmetic
            first = self._entries[0]['index'] if self._entries else self._next_index
            skip = min(max(since - first, 0), len(self._entries))
            return [dict(entry) for entry in itertools.islice(self._entries, skip, None)]

    def clear(self):
        """Forget every entry; the next one still gets the next index, so earlier marks stay valid."""
        with self._lock:
            self._entries.clear()


class JournalingHandler:
    """Mixin for a BaseHTTPRequestHandler (list it first) whose server has a ``journal``.

    The handler calls ``answer_journal()`` once it has read the request body and before its own routing
    and authentication; it may add fields to the current entry with ``note_journal(**fields)``.
    """

    journal_entry = None

    def parse_request(self):
        self.journal_entry = None
        if not super().parse_request():
            return False  # http.server already answered a request it could not parse
        if not self.is_simulator_path():
            url = urlsplit(self.path)
            self.journal_entry = self.server.journal.record(self.command, url.path, url.query)
        return True

    def is_simulator_path(self):
        """Whether this request is one of the simulator's own /_sim/ requests, which are not recorded."""
        return urlsplit(self.path).path.startswith('/_sim/')

    def send_response(self, code, message=None):
        super().send_response(code, message)
        if self.journal_entry is not None:
            self.server.journal.update(self.journal_entry, status=code)
            self.journal_entry = None  # one status per request, even if the handler sends a second answer

    def note_journal(self, **fields):
        if self.journal_entry is not None:
            self.server.journal.update(self.journal_entry, **fields)

    def answer_journal(self, path=None):
        """Answer GET (list) and DELETE (clear) on /_sim/requests; False for any other request.

        ``path`` is the request path as the simulator understands it (default: the request target's path)."""
        if path is None:
            path = urlsplit(self.path).path
        if path.rstrip('/') != JOURNAL_PATH:
            return False
        journal = self.server.journal
        if self.command == 'GET':
            since = parse_qs(urlsplit(self.path).query).get('since', ['0'])[-1]
            if not re.fullmatch(r'[0-9]+', since):
                self._send_journal_json(400, {'message': 'since must be a non-negative integer, not %r' % since})
            else:
                self._send_journal_json(200, journal.entries(int(since)))
        elif self.command == 'DELETE':
            journal.clear()
            self._send_journal_json(204, None)
        else:
            self._send_journal_json(405, {'message': '%s supports GET and DELETE' % JOURNAL_PATH}, {'Allow': 'GET, DELETE'})
        return True

    def _send_journal_json(self, status, payload, headers=None):
        data = b'' if payload is None else json.dumps(payload).encode('utf-8')
        self.send_response(status)
        if payload is not None:
            self.send_header('Content-Type', 'application/json')
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 204:  # a 204 must not carry Content-Length (RFC 9110)
            self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
