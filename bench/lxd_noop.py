# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Idempotent no-op loop over 20 LXD containers, side by side in one run.

Rows: polyvirt.compute.instance, community.general.lxd_container doing the same work (the instance
exists, runs and has limits.cpu=1), and an ansible.builtin.ping loop as the floor of what any
module costs. Rounds are interleaved so load on the machine hits every row alike; the median
counts. Then one task's time is split into interpreter, AnsiballZ/controller, imports and API.

Run with `make bench` (it sets up the lab and a venv that has the `ansible` package).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from _harness import COLLECTIONS, ansible_env, python_seconds, run_playbook, write_plays  # bench/ is on sys.path when a script here runs

PROJECT = "polyvirt"
PREFIX = "bench-noop-"

NAME = "        name: \"%s{{ '%%02d' | format(item) }}\"\n" % PREFIX
ROWS = {
    "polyvirt.compute.instance": ("polyvirt.compute.instance", NAME + """        backend: lxd
        connection: {project: %s}
        state: started
        cpus: 1""" % PROJECT),
    "community.general.lxd_container": ("community.general.lxd_container", NAME + """        project: %s
        state: started
        config:
          limits.cpu: "1"
        source: {type: image, alias: polyvirt/busybox}""" % PROJECT),
    "ansible.builtin.ping (floor)": ("ansible.builtin.ping", "        data: pong"),
}


def api_seconds(count, runtime):
    """Median time of one instance read, in process: the plain GET an idempotent check makes, or with runtime state."""
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.backend import LxdBackend  # pylint: disable=import-outside-toplevel

    backend = LxdBackend({"project": PROJECT})
    times = []
    for index in range(1, count + 1):
        started = time.perf_counter()
        backend.instances.get("%s%02d" % (PREFIX, index), runtime=runtime)
        times.append(time.perf_counter() - started)
    backend.close()
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark containers")
    args = parser.parse_args()

    env = ansible_env()
    sys.path.insert(0, COLLECTIONS)
    work = tempfile.mkdtemp(prefix="polyvirt-bench-")
    playbooks = write_plays(work, ROWS, args.count)
    setup = write_plays(work, {"create the containers": ("polyvirt.compute.instance", ROWS["polyvirt.compute.instance"][1] +
                                                         "\n        image: polyvirt/busybox")}, args.count)["create the containers"]
    print("creating %d containers (not timed) ..." % args.count, flush=True)
    run_playbook(setup, env, check_noop=False)

    try:
        results = dict((row, []) for row in ROWS)
        for round_number in range(args.rounds):
            for row, path in playbooks.items():
                results[row].append(run_playbook(path, env))
            print("round %d/%d done" % (round_number + 1, args.rounds), flush=True)
        breakdown = {
            "interpreter start": python_seconds("pass", env),
            "import AnsibleModule": python_seconds("import ansible.module_utils.basic", env),
            "import our LXD engine": python_seconds(
                "import ansible.module_utils.basic\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils import _module\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile import instance\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd import backend, instances",
                dict(env, PYTHONPATH=COLLECTIONS)),
            "one LXD read (plain GET)": api_seconds(args.count, False),
            "one LXD read with runtime state (recursion=1)": api_seconds(args.count, True),
        }
        try:
            breakdown["import pylxd (for reference)"] = python_seconds("import pylxd", env)
        except subprocess.CalledProcessError:
            pass
    finally:
        if not args.keep:
            subprocess.run(["lxc", "delete", "--force", "--project", PROJECT] + ["%s%02d" % (PREFIX, i) for i in range(1, args.count + 1)],
                           check=False, capture_output=True)

    print()
    print("Idempotent no-op loop over %d LXD containers, median of %d interleaved rounds" % (args.count, args.rounds))
    print("%-34s %10s %12s %8s" % ("row", "loop (s)", "per item (s)", "ratio"))
    ours = statistics.median(results["polyvirt.compute.instance"])
    for row, times in results.items():
        median = statistics.median(times)
        print("%-34s %10.2f %12.3f %8.2f" % (row, median, median / args.count, median / ours))
    theirs = statistics.median(results["community.general.lxd_container"])
    floor = statistics.median(results["ansible.builtin.ping (floor)"])
    print()
    print("ratio polyvirt / community.general = %.2f (target <= 1.0)" % (ours / theirs))
    print("polyvirt above the ping floor: %.3f s per item" % ((ours - floor) / args.count))
    print()
    print("Where one task's time goes (fresh interpreter each, medians):")
    base = breakdown["interpreter start"]
    print("  %-34s %.3f s" % ("interpreter start", base))
    print("  %-34s %.3f s" % ("+ import AnsibleModule", breakdown["import AnsibleModule"] - base))
    print("  %-34s %.3f s" % ("+ import our LXD engine", breakdown["import our LXD engine"] - breakdown["import AnsibleModule"]))
    print("  %-34s %.3f s" % ("one LXD read (plain GET)", breakdown["one LXD read (plain GET)"]))
    print("  %-34s %.3f s" % ("(not made: GET with runtime state)", breakdown["one LXD read with runtime state (recursion=1)"]))
    if "import pylxd (for reference)" in breakdown:
        print("  %-34s %.3f s" % ("import pylxd (not used; reference)", breakdown["import pylxd (for reference)"] - base))
    print("  %-34s %.3f s" % ("controller + AnsiballZ (ping item)", floor / args.count - breakdown["import AnsibleModule"]))
    print(json.dumps({"ratio": round(ours / theirs, 3), "per_item": {row: round(statistics.median(t) / args.count, 4) for row, t in results.items()}}))


if __name__ == "__main__":
    main()
