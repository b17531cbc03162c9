# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Idempotent no-op loop over 20 Proxmox VE guests on the simulator, side by side in one run.

Rows: polyvirt.compute.instance (the VM exists, runs, has 1 core and 256 MiB),
community.proxmox.proxmox_kvm given the same (state=started with cores and memory: it checks that the
VM exists and runs; without update=true it leaves cores and memory alone, and with update=true it reports
a change on every run, so it cannot be a no-op row), and an ansible.builtin.ping loop as the floor of what
any module costs. One simulator (tests/simulators/proxmox, --time-scale 0) serves every row; rounds are
interleaved so load on the machine hits every row alike, and the median counts. Then one task's time is
split into interpreter, imports and API reads.

Run with `make bench` (a venv with the `ansible` package, proxmoxer and requests).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time

from _harness import COLLECTIONS, ROOT, ansible_env, python_seconds, run_playbook, write_plays  # bench/ is on sys.path when a script here runs

PREFIX = "bench-noop-"
TOKEN_ID, TOKEN_SECRET = "root@pam!polyvirt", "5e5e5e5e-0000-4000-8000-000000000001"

NAME = "        name: \"%s{{ '%%02d' | format(item) }}\"\n" % PREFIX


def rows(host, port):
    connection = "{api_host: %s, api_port: %d, api_token_id: '%s', api_token_secret: %s, validate_certs: false}" % (host, port, TOKEN_ID, TOKEN_SECRET)
    user, token = TOKEN_ID.split("!")
    return {
        "polyvirt.compute.instance": ("polyvirt.compute.instance", NAME + """        backend: proxmox
        connection: %s
        state: started
        cpus: 1
        memory: 256MiB""" % connection),
        "community.proxmox.proxmox_kvm": ("community.proxmox.proxmox_kvm", NAME + """        api_host: %s
        api_port: %d
        api_user: %s
        api_token_id: %s
        api_token_secret: %s
        validate_certs: false
        node: pve
        state: started
        cores: 1
        memory: 256""" % (host, port, user, token, TOKEN_SECRET)),
        "ansible.builtin.ping (floor)": ("ansible.builtin.ping", "        data: pong"),
    }


def start_simulator():
    """The Proxmox VE simulator on a free loopback port, tasks finishing at once."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.simulators.proxmox", "--host", "127.0.0.1", "--port", "0", "--time-scale", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    match = re.match(r"^listening on https://([^:/]+):(\d+)/api2/json$", line.strip())
    if not match:
        proc.kill()
        sys.exit("the Proxmox simulator did not start: %r" % line)
    return proc, match.group(1), int(match.group(2))


def requests_since(host, port, mark):
    """The simulator's journal (GET /_sim/requests) after ``mark``: (entries, next mark)."""
    import requests  # pylint: disable=import-outside-toplevel

    session = requests.Session()
    session.trust_env = False
    import urllib3  # pylint: disable=import-outside-toplevel

    urllib3.disable_warnings()
    return session.get("https://%s:%d/_sim/requests" % (host, port), params={"since": mark}, verify=False, timeout=30).json()


def next_mark(host, port):
    entries = requests_since(host, port, 0)
    return entries[-1]["index"] + 1 if entries else 0


def api_seconds(host, port, count):
    """Median time of finding one guest (cluster/resources + pending), in process, over a warm connection."""
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.backend import ProxmoxBackend  # pylint: disable=import-outside-toplevel

    backend = ProxmoxBackend({"api_host": host, "api_port": port, "api_token_id": TOKEN_ID, "api_token_secret": TOKEN_SECRET, "validate_certs": False})
    times = []
    for index in range(1, count + 1):
        backend.forget()
        started = time.perf_counter()
        backend.instances.get("%s%02d" % (PREFIX, index))
        times.append(time.perf_counter() - started)
    backend.close()
    return statistics.median(times)


def main():  # pylint: disable=too-many-locals,too-many-statements
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    env = ansible_env(PYTHONWARNINGS="ignore")
    sys.path.insert(0, COLLECTIONS)
    sim, host, port = start_simulator()
    try:
        work = tempfile.mkdtemp(prefix="polyvirt-bench-")
        table = rows(host, port)
        playbooks = write_plays(work, table, args.count)
        setup = write_plays(work, {"create the guests": ("polyvirt.compute.instance", table["polyvirt.compute.instance"][1] +
                                                         "\n        image: debian-12-cloud")}, args.count)["create the guests"]
        print("creating %d QEMU VMs on the simulator (not timed) ..." % args.count, flush=True)
        run_playbook(setup, env, check_noop=False)

        results = dict((row, []) for row in table)
        calls = {}
        for round_number in range(args.rounds):
            for row, path in playbooks.items():
                mark = next_mark(host, port)
                results[row].append(run_playbook(path, env))
                entries = requests_since(host, port, mark)
                calls[row] = entries
            print("round %d/%d done" % (round_number + 1, args.rounds), flush=True)
        breakdown = {
            "interpreter start": python_seconds("pass", env),
            "import AnsibleModule": python_seconds("import ansible.module_utils.basic", env),
            "import our Proxmox engine": python_seconds(
                "import ansible.module_utils.basic\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils import _module\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile import instance\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox import backend, instances, client\n"
                "import proxmoxer, requests",
                dict(env, PYTHONPATH=COLLECTIONS)),
            "import proxmoxer + requests": python_seconds("import proxmoxer, requests", env),
            "find one guest (2 reads)": api_seconds(host, port, args.count),
        }
    finally:
        sim.terminate()
        sim.wait(timeout=30)

    print()
    print("Idempotent no-op loop over %d Proxmox VE VMs (simulator, --time-scale 0), median of %d interleaved rounds" % (args.count, args.rounds))
    print("%-34s %10s %12s %8s %16s" % ("row", "loop (s)", "per item (s)", "ratio", "API calls/item"))
    ours = statistics.median(results["polyvirt.compute.instance"])
    for row, times in results.items():
        median = statistics.median(times)
        made = [entry for entry in calls.get(row, []) if "/_sim/" not in str(entry.get("path", "")) and "/tasks/" not in str(entry.get("path", ""))]
        print("%-34s %10.2f %12.3f %8.2f %16.1f" % (row, median, median / args.count, median / ours, len(made) / float(args.count)))
    theirs = statistics.median(results["community.proxmox.proxmox_kvm"])
    floor = statistics.median(results["ansible.builtin.ping (floor)"])
    print()
    print("ratio polyvirt / community.proxmox = %.2f (target <= 1.0)" % (ours / theirs))
    print("polyvirt above the ping floor: %.3f s per item; proxmox_kvm: %.3f s" % ((ours - floor) / args.count, (theirs - floor) / args.count))
    for row in ("polyvirt.compute.instance", "community.proxmox.proxmox_kvm"):
        paths = [re.sub(r"\d{3,}", "N", "%s %s" % (entry.get("method"), entry.get("path"))) for entry in calls.get(row, [])[:12]]
        print("  first calls of %s: %s" % (row, ", ".join(paths[:6])))
    print()
    print("Where one task's time goes (fresh interpreter each, medians):")
    base = breakdown["interpreter start"]
    print("  %-36s %.3f s" % ("interpreter start", base))
    print("  %-36s %.3f s" % ("+ import AnsibleModule", breakdown["import AnsibleModule"] - base))
    print("  %-36s %.3f s" % ("+ import our Proxmox engine", breakdown["import our Proxmox engine"] - breakdown["import AnsibleModule"]))
    print("  %-36s %.3f s" % ("  of which proxmoxer + requests", breakdown["import proxmoxer + requests"] - base))
    print("  %-36s %.3f s" % ("find one guest (2 reads, warm)", breakdown["find one guest (2 reads)"]))
    print("  %-36s %.3f s" % ("controller + AnsiballZ (ping item)", floor / args.count - breakdown["import AnsibleModule"]))
    print(json.dumps({"ratio": round(ours / theirs, 3), "per_item": {row: round(statistics.median(t) / args.count, 4) for row, t in results.items()}}))


if __name__ == "__main__":
    main()
