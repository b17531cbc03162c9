# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``python3 -m tests.simulators.cloudcix --host 127.0.0.1 --port 0 [options]``"""
from __future__ import annotations

import argparse
import signal
import sys

from .api import Simulator
from .faults import FaultError
from .server import make_server


class _Terminated(Exception):
    pass


def _terminate(signum, frame):
    del signum, frame
    raise _Terminated()


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python3 -m tests.simulators.cloudcix',
                                     description='Loopback simulator of the CloudCIX REST API (membership, compute v5).')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0, help='0 picks a free port')
    parser.add_argument('--time-scale', type=float, default=1.0,
                        help='multiply robot durations and grace periods by F (0 = at once)')
    parser.add_argument('--fault', action='append', default=[], metavar='SPEC', help='inject a fault (repeatable)')
    parser.add_argument('--state', metavar='FILE', help='load state from FILE and save it there on every change')
    parser.add_argument('--token-hours', type=float, default=2.0, help='lifetime of a login token (real: 2)')
    parser.add_argument('--throttle-rate', type=int, default=20,
                        help='requests per second per user before a 429 (real: 20); 0 turns throttling off')
    parser.add_argument('--verbose', action='store_true', help='log requests to stderr')
    args = parser.parse_args(argv)
    if args.time_scale < 0:
        parser.error('--time-scale must be >= 0')
    try:
        sim = Simulator(time_scale=args.time_scale, faults=args.fault, state_file=args.state,
                        token_hours=args.token_hours, throttle_rate=args.throttle_rate)
    except FaultError as exc:
        parser.error(str(exc))
    server = make_server(sim, args.host, args.port, args.verbose)
    host, port = server.server_address[:2]
    if ':' in host:
        host = '[%s]' % host
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.stdout.write('listening on http://%s:%d/\n' % (host, port))
        sys.stdout.flush()
        server.serve_forever(poll_interval=0.2)
    except (_Terminated, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        with sim.lock:
            sim.save()
    return 0


if __name__ == '__main__':
    sys.exit(main())
