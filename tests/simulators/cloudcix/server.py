# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP front of the CloudCIX simulator: one stdlib server for every app.

Accepted URL forms (all equivalent, see README.md):

- ``http://HOST:PORT/[v5.0/]compute/instances/``                      (single base URL)
- ``http://HOST:PORT/[compute|membership]/[v5.0/]compute/instances/``  (app as a path prefix)
- Host header ``compute.<anything>`` / ``membership.<anything>`` with either path (app as a sub-domain),
  including absolute-form request targets (``GET http://compute.api.cloudcix.test/v5.0/...``), so the
  server can also be used as an HTTP proxy by clients that build sub-domain URLs (the official SDK).
"""
from __future__ import annotations

import json
import re
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .._journal import Journal, JournalingHandler

APPS = ('compute', 'membership')
APP_ROUTES = {'membership': ('auth',), 'compute': ('compute', 'storage', 'project')}
_VERSION = re.compile(r'^v\d+(\.\d+)*$')


def normalise(raw_path, host):
    """Split a request target into (app or None, path without app/version prefix, query dict, prefix used)."""
    if raw_path.startswith(('http://', 'https://')):
        parts = urlsplit(raw_path)
        host = parts.netloc or host
    else:
        parts = urlsplit('http://x' + (raw_path if raw_path.startswith('/') else '/' + raw_path))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    segments = [s for s in parts.path.split('/') if s]
    app = None
    label = (host or '').split(':')[0].split('.')[0].lower()
    if label in APPS and '.' in (host or ''):
        app = label
    prefix = []
    # app as a path prefix: /membership/... always; /compute/... only when a route follows
    if segments and segments[0] in APPS:
        rest = segments[1:]
        if rest and _VERSION.match(rest[0]):
            rest = rest[1:]
        if segments[0] == 'membership' or (rest and rest[0] in APP_ROUTES['compute']):
            if app is None:
                app = segments[0]
            prefix.append(segments[0])
            segments = segments[1:]
    if segments and _VERSION.match(segments[0]):
        prefix.append(segments[0])
        segments = segments[1:]
    return app, '/'.join(segments), query, prefix, host


def make_handler(sim, verbose=False):
    class Handler(JournalingHandler, BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        disable_nagle_algorithm = True
        server_version = 'nginx'
        sys_version = ''

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            if verbose:
                sys.stderr.write('%s - %s\n' % (self.address_string(), format % args))

        def is_simulator_path(self):
            # /_sim/ paths may carry an app or version prefix like any other path here
            return normalise(self.path, self.headers.get('Host', ''))[1].startswith('_sim/')

        def _read_body(self):
            length = int(self.headers.get('Content-Length') or 0)
            raw = self.rfile.read(length) if length > 0 else b''
            if not raw.strip():
                return None, None
            try:
                return json.loads(raw.decode('utf-8')), None
            except (ValueError, UnicodeDecodeError) as exc:
                return None, 'JSON parse error - %s' % exc

        def _send(self, status, body):
            if body is None:
                payload, ctype = b'', None
            elif isinstance(body, str):
                payload, ctype = body.encode('utf-8'), 'text/html'
            else:
                payload, ctype = json.dumps(body).encode('utf-8'), 'application/json'
            self.send_response(status)
            if ctype:
                self.send_header('Content-Type', ctype)
            self.send_header('Content-Length', str(len(payload)))
            self.send_header('Vary', 'Accept')
            self.end_headers()
            if self.command != 'HEAD' and payload:
                self.wfile.write(payload)

        def _serve(self):
            try:
                self._serve_one()
            except Exception:  # pylint: disable=broad-exception-caught
                traceback.print_exc(file=sys.stderr)
                self.close_connection = True
                self._send(500, {'detail': 'A server error occurred.'})

        def _serve_one(self):
            method = self.command
            body, error = self._read_body()
            app, path, query, prefix, host = normalise(self.path, self.headers.get('Host', ''))
            if self.answer_journal('/' + path):
                return
            if path.startswith('_sim/'):
                self._send(*sim.control(method, path.rstrip('/'), body))
                return
            if error:
                self._send(400, {'detail': error})
                return
            first = path.split('/', maxsplit=1)[0] if path else ''
            if app is not None and first not in APP_ROUTES[app] and not path.startswith('_sim'):
                self._send(404, {'detail': 'Not found.'})
                return
            scheme_host = 'http://%s/' % (host or '%s:%d' % self.server.server_address[:2])
            base_uri = scheme_host + ''.join(p + '/' for p in prefix)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(*sim.handle(method, path, query, headers, body, base_uri))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def do_OPTIONS(self):
            self._send(200, {'name': 'CloudCIX simulator', 'renders': ['application/json']})

    return Handler


def make_server(sim, host='127.0.0.1', port=0, verbose=False):
    server = ThreadingHTTPServer((host, port), make_handler(sim, verbose))
    server.daemon_threads = True
    server.journal = Journal()
    return server
