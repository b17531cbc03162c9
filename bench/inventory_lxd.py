# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Inventory of 100 running LXD containers: polyvirt.compute.instances against community.general.lxd, side by side.

The containers live in a project of their own (``bench-inv``, made and removed here) so both plugins list
exactly them. Each row runs ``ansible-inventory --list`` in a fresh process; rounds are interleaved and
the median counts. LXD's request count is not journaled here: ours makes one call
(``/1.0/instances?recursion=2``), community.general.lxd one per container and more (see its source).

Run with `make bench` or `.build/tools-venv/bin/python bench/inventory_lxd.py` after `make lab`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from _harness import ansible_env, inventory  # bench/ is on sys.path when a script here runs

PROJECT = "bench-inv"
PREFIX = "bench-inv-"
SOCKET = "unix:/var/lib/lxd/unix.socket"


def lxc(*args, check=True):
    return subprocess.run(["lxc"] + list(args), capture_output=True, text=True, check=check)


def setup(count):
    if lxc("project", "show", PROJECT, check=False).returncode != 0:
        lxc("project", "create", PROJECT, "-c", "features.images=false")
        lxc("profile", "device", "add", "default", "root", "disk", "path=/", "pool=polyvirt", "--project", PROJECT)
        lxc("profile", "device", "add", "default", "eth0", "nic", "network=polyvirtbr0", "name=eth0", "--project", PROJECT)
    names = ["%s%03d" % (PREFIX, index) for index in range(count)]
    procs = []
    for name in names:
        procs.append(subprocess.Popen(["lxc", "init", "polyvirt/busybox", name, "--project", PROJECT], stdout=subprocess.DEVNULL))
        if len(procs) >= 4:
            procs.pop(0).wait()
    for proc in procs:
        proc.wait()
    lxc("start", "--project", PROJECT, *names)
    return names


def cleanup():
    listed = json.loads(lxc("list", "--project", PROJECT, "--format", "json", check=False).stdout or "[]")
    names = [item["name"] for item in listed]
    if names:
        lxc("delete", "--force", "--project", PROJECT, *names)
    lxc("profile", "device", "remove", "default", "root", "eth0", "--project", PROJECT, check=False)
    lxc("project", "delete", PROJECT, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = ansible_env(ANSIBLE_INVENTORY_CACHE="false")
    rows = {
        "polyvirt.compute.instances": ("bench.polyvirt.yml", {"plugin": "polyvirt.compute.instances", "sources": [
            {"backend": "lxd", "connection": {"url": SOCKET, "project": PROJECT}}]}),
        "community.general.lxd": ("bench.lxd.yml", {"plugin": "community.general.lxd", "url": SOCKET, "project": PROJECT}),
    }
    print("creating %d containers in project %s (not timed) ..." % (args.count, PROJECT), flush=True)
    try:
        names = setup(args.count)
        with tempfile.TemporaryDirectory(prefix="polyvirt-bench-lxd-inventory-") as work:
            paths = {}
            for row, (name, config) in rows.items():
                paths[row] = os.path.join(work, name)
                with open(paths[row], "w", encoding="utf-8") as handle:
                    json.dump(config, handle)
            times = dict((row, []) for row in rows)
            found = {}
            for round_number in range(args.rounds):
                for row, path in paths.items():
                    elapsed, listing = inventory(path, env)[:2]
                    hostvars = listing["_meta"]["hostvars"]
                    hosts = sorted(host for host in hostvars if host.startswith(PREFIX))
                    if hosts != names:
                        sys.exit("%s listed %d of the %d containers" % (row, len(hosts), len(names)))
                    found[row] = sum(1 for host in hosts if hostvars[host].get("ansible_host"))
                    times[row].append(elapsed)
                    print("round %d  %-28s %6.2f s" % (round_number + 1, row, elapsed), flush=True)
    finally:
        cleanup()
    medians = dict((row, statistics.median(values)) for row, values in times.items())
    print()
    print("%d running LXD containers, median of %d rounds" % (args.count, args.rounds))
    print("%-28s %8s %6s %12s" % ("inventory", "seconds", "hosts", "ansible_host"))
    for row in rows:
        print("%-28s %8.2f %6d %12d" % (row, medians[row], args.count, found[row]))
    print()
    print("polyvirt / community.general.lxd: %.2f" % (medians["polyvirt.compute.instances"] / medians["community.general.lxd"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
