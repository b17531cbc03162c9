# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""python3 -m tests.simulators.proxmox --host 127.0.0.1 --port N [options]"""
from __future__ import annotations

import argparse
import signal
import sys

from .model import Cluster, Fault
from .schema import Schema
from .server import serve


def parse_nodes(value):
    if value.isdigit():
        return ['pve'] + ['pve%d' % i for i in range(2, int(value) + 1)]
    return [n for n in value.split(',') if n]


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python3 -m tests.simulators.proxmox', description='Proxmox VE API simulator (HTTPS, loopback).')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8006, help='0 picks a free port')
    parser.add_argument('--time-scale', type=float, default=1.0, help='multiply task durations (0 = finish at once)')
    parser.add_argument('--fault', action='append', default=[], metavar='SPEC', help='KIND[:TARGET[:ARG]][@COUNT], repeatable (see README.md)')
    parser.add_argument('--state', metavar='FILE', help='load state from FILE and save it there on every change')
    parser.add_argument('--cert', help='PEM certificate (chain) to serve instead of a generated one')
    parser.add_argument('--key', help='PEM private key for --cert')
    parser.add_argument('--cert-dir', help='where to write the generated pve-ssl.pem, pve-ssl.key and pve-root-ca.pem')
    parser.add_argument('--nodes', default='pve', help="node names ('pve,pve2') or a count (3 = pve, pve2, pve3)")
    parser.add_argument('--shared-storage', action='append', default=[], metavar='NAME',
                        help='add a shared (NFS-like) storage NAME on every node, for clones and migrations across nodes')
    parser.add_argument('--bridges', default='vmbr0', help="the nodes' Linux bridges, comma-separated (default vmbr0)")
    parser.add_argument('--auth-delay', type=float, default=0.0, help='seconds to delay 401 answers (PVE uses 3)')
    parser.add_argument('--latency', type=float, default=0.0, metavar='S',
                        help='delay every API answer by S seconds (0.01 = 10 ms, a realistic cluster); the journal and /_sim/ answer at once')
    parser.add_argument('--no-seed', action='store_true', help='start without the seed template VM and LXC template volume')
    parser.add_argument('--verbose', action='store_true', help='log every request to stderr')
    args = parser.parse_args(argv)
    if args.latency < 0:
        parser.error('--latency must be 0 or more seconds')
    if bool(args.cert) != bool(args.key):
        parser.error('--cert and --key go together')
    try:
        faults = [Fault(spec).spec for spec in args.fault]
    except ValueError as exc:
        parser.error(str(exc))
    nodes = parse_nodes(args.nodes)
    if not nodes or nodes[0] != nodes[0].strip():
        parser.error('--nodes needs at least one node name')
    cluster = Cluster(nodes=nodes, time_scale=args.time_scale, faults=faults, state_file=args.state, seed=not args.no_seed,
                      shared_storages=args.shared_storage, bridges=[b for b in args.bridges.split(',') if b])
    server, url, _cafile = serve(args.host, args.port, cluster, Schema(), cert=args.cert, key=args.key, cert_dir=args.cert_dir,
                                 auth_delay=args.auth_delay, verbose=args.verbose, latency=args.latency)

    def stop(signum, frame):
        del signum, frame
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print('listening on %s' % url, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        with cluster.lock:
            cluster.save()
    return 0


if __name__ == '__main__':
    sys.exit(main())
