# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Entry point: python3 -m tests.simulators.hikube --host 127.0.0.1 --port 0 [options]

import argparse
import signal
import sys
import threading

from . import cozystack
from .api import Api
from .controller import Controller, KubeVirtActions, seed
from .faults import Faults
from .kube import Store
from .resources import Registry
from .server import TOKEN, Server


def kubeconfig(url, namespace):
    return ("apiVersion: v1\nkind: Config\nclusters:\n- name: hikube-sim\n  cluster:\n    server: %s\n"
            "contexts:\n- name: hikube-sim\n  context:\n    cluster: hikube-sim\n    user: tenant-demo\n    namespace: %s\n"
            "current-context: hikube-sim\nusers:\n- name: tenant-demo\n  user:\n    token: %s\n" % (url, namespace, TOKEN))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m tests.simulators.hikube",
                                     description="Loopback Kubernetes API emulator with Hikube/Cozystack behaviour")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply controller delays by F (0 = materialise at once)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", help="inject a fault (repeatable)")
    parser.add_argument("--state", metavar="FILE", help="load state from FILE and save it there on every change")
    parser.add_argument("--kubeconfig-out", metavar="FILE", help="write a kubeconfig for this server")
    parser.add_argument("--mode", choices=["cozystack", "crd"], default="cozystack",
                        help="cozystack: aggregated-apiserver quirks for apps.cozystack.io; crd: plain custom resources")
    parser.add_argument("--cozystack-version", choices=sorted(cozystack.SCHEMA_FILES), default="head",
                        help="values schema to emulate (0.41.11 uses the older `running` boolean)")
    parser.add_argument("--namespace", default="tenant-demo", help="tenant namespace created at start")
    parser.add_argument("--watch-history", type=int, default=10000,
                        help="change events kept for watches; older resourceVersions get 410 Expired")
    parser.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between watch BOOKMARK events")
    parser.add_argument("--tenant-rbac", action=argparse.BooleanOptionalAction, default=True,
                        help="the token polyvirt-sim gets Hikube's narrow tenant rights, as on Hikube (the default; "
                             "polyvirt-sim-admin keeps full rights); --no-tenant-rbac gives every token the admin view")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        faults = Faults(args.fault)
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    store = Store(history=args.watch_history, state_file=args.state)
    registry = Registry()
    api = Api(store, registry, mode=args.mode, version=args.cozystack_version, faults=faults, time_scale=args.time_scale)
    loaded = store.load()
    if not loaded:
        seed(api, args.namespace)
    controller = Controller(api, time_scale=args.time_scale, faults=faults)
    api.controller = controller
    server = Server((args.host, args.port), api, KubeVirtActions(api, controller), bookmark_interval=args.bookmark_interval,
                    verbose=args.verbose, faults=faults, tenant_rbac=args.namespace if args.tenant_rbac else None)
    host, port = server.server_address[:2]
    url = "http://%s:%d" % (host if ":" not in host else "[%s]" % host, port)
    if args.kubeconfig_out:
        with open(args.kubeconfig_out, "w", encoding="utf-8") as handle:
            handle.write(kubeconfig(url, args.namespace))
    controller.start()

    def stop(_signum, _frame):
        server.stopping = True
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening on %s" % url, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        controller.stop()
        with store.cond:
            store.cond.notify_all()
        server.server_close()
        store.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
