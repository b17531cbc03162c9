# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""python3 -m tests.simulators.hyperv --host 127.0.0.1 --port N [--time-scale F] [--fault SPEC]... [--state FILE]"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .model import Faults, Host
from .wsman import Server


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python3 -m tests.simulators.hyperv', description='WinRM endpoint emulating a Hyper-V host')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0, help='0 picks a free port')
    parser.add_argument('--time-scale', type=float, default=1.0, help='multiply the duration of long operations (0: at once)')
    parser.add_argument('--fault', action='append', default=[], metavar='SPEC', help='inject a fault (see README.md), repeatable')
    parser.add_argument('--state', metavar='FILE', help='load the model from FILE and save it there on every change')
    opts = parser.parse_args(argv)
    try:
        faults = Faults(opts.fault)
    except ValueError as exc:
        parser.error(str(exc))
    host = Host(time_scale=opts.time_scale, faults=faults, state_file=opts.state)
    server = Server((opts.host, opts.port), host)
    stopping = threading.Event()

    def stop(_signum, _frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    address = server.server_address
    print('listening on http://%s:%d/wsman' % (address[0], address[1]), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
