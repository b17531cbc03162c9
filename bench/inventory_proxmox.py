# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Inventory of 1000 Proxmox VE guests on 4 nodes, 10 ms per API answer, side by side in one run.

Rows: polyvirt.compute.instances (basic facts, and with want_addresses), and community.proxmox.proxmox
with want_facts true and false. Each row runs ``ansible-inventory --list`` in a fresh process against
the same simulator (tests/simulators/proxmox, ``--latency``), seeded through a ``--state`` file; rounds
are interleaved and the median counts. The API calls are counted from the simulator's request journal,
and every host is checked for what it carries (state, cpus, memory, tags, ansible_host).

Run with `make bench` or `.build/tools-venv/bin/python bench/inventory_proxmox.py` (the tools venv has
community.proxmox and proxmoxer).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from _harness import ROOT, ansible_env, inventory  # bench/ is on sys.path when a script here runs

TOKEN_ID, TOKEN_SECRET = "root@pam!polyvirt", "5e5e5e5e-0000-4000-8000-000000000001"


def state_file(path, guests, nodes):
    """A simulator --state file with ``guests`` guests spread over ``nodes`` (4 in 5 QEMU, 7 in 10 running)."""
    data = {"volumes": {}, "guests": [], "tasks": []}
    for index in range(guests):
        vmid = 1000 + index
        node = nodes[index % len(nodes)]
        tags = "bench;%s" % ("web" if index % 3 else "db")
        mac = "BC:24:11:%02X:%02X:%02X" % ((index >> 16) & 255, (index >> 8) & 255, index & 255)
        if index % 5:
            kind = "qemu"
            config = ("name: bench-%04d\ncores: %d\nmemory: %d\nagent: 1\nostype: l26\ntags: %s\nnet0: virtio=%s,bridge=vmbr0\n"
                      "scsi0: local-lvm:vm-%d-disk-0,size=8G\nscsihw: virtio-scsi-single\n" % (index, 1 + index % 4, 1024 * (1 + index % 4), tags, mac, vmid))
        else:
            kind = "lxc"
            config = ("hostname: bench-%04d\ncores: %d\nmemory: %d\nostype: debian\ntags: %s\n"
                      "net0: name=eth0,bridge=vmbr0,hwaddr=%s,ip=dhcp,type=veth\nrootfs: local-lvm:vm-%d-disk-0,size=4G\n"
                      % (index, 1 + index % 2, 512 * (1 + index % 2), tags, mac, vmid))
        data["guests"].append({"vmid": vmid, "kind": kind, "node": node, "config": config, "status": "running" if index % 10 < 7 else "stopped",
                               "paused": False, "started": int(time.time()) if index % 10 < 7 else None})
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


class Simulator:
    def __init__(self, work, state, nodes, latency):
        cmd = [sys.executable, "-m", "tests.simulators.proxmox", "--host", "127.0.0.1", "--port", "0", "--nodes", str(nodes), "--no-seed",
               "--time-scale", "0", "--latency", str(latency), "--state", state, "--cert-dir", work]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        match = re.match(r"^listening on https://([^:/]+):(\d+)/", line)
        if not match:
            self.proc.kill()
            sys.exit("the simulator did not start: %r" % line)
        self.host, self.port = match.group(1), int(match.group(2))
        self.context = ssl.create_default_context(cafile=os.path.join(work, "pve-root-ca.pem"))

    def journal(self, method="GET"):
        request = urllib.request.Request("https://%s:%d/_sim/requests" % (self.host, self.port), method=method)
        with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def configs(work, sim):
    ours = {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "proxmox", "connection": {
        "api_host": sim.host, "api_port": sim.port, "api_token_id": TOKEN_ID, "api_token_secret": TOKEN_SECRET, "validate_certs": False}}]}
    theirs = {"plugin": "community.proxmox.proxmox", "url": "https://%s:%d" % (sim.host, sim.port), "user": "root@pam", "token_id": "polyvirt",
              "token_secret": TOKEN_SECRET, "validate_certs": False}
    rows = {
        "polyvirt.compute.instances": ("polyvirt.yml", ours),
        "polyvirt.compute.instances want_addresses": ("addresses.polyvirt.yml", dict(ours, want_addresses=True)),
        "community.proxmox.proxmox want_facts: true": ("facts.proxmox.yml", dict(theirs, want_facts=True)),
        "community.proxmox.proxmox want_facts: false": ("nofacts.proxmox.yml", dict(theirs, want_facts=False)),
    }
    paths = {}
    for row, (name, config) in rows.items():
        paths[row] = os.path.join(work, name)
        with open(paths[row], "w", encoding="utf-8") as handle:
            json.dump(config, handle)
    return paths


# What a host must carry, per row family: state, cpus, memory, tags (and ansible_host, reported apart).
CARRIES = {
    "polyvirt": {"state": ("polyvirt_state",), "cpus": ("polyvirt_cpus",), "memory": ("polyvirt_memory_mib",), "tags": ("polyvirt_tags",)},
    "community": {"state": ("proxmox_status",), "cpus": ("proxmox_cores", "proxmox_cpus", "proxmox_maxcpu"),
                  "memory": ("proxmox_memory", "proxmox_maxmem"), "tags": ("proxmox_tags_parsed", "proxmox_tags")},
}


def carried(listing, row):
    family = CARRIES["polyvirt" if row.startswith("polyvirt") else "community"]
    hostvars = listing["_meta"]["hostvars"]
    result = {}
    for fact, keys in family.items():
        result[fact] = sum(1 for variables in hostvars.values() if any(variables.get(key) not in (None, "", []) for key in keys))
    result["ansible_host"] = sum(1 for variables in hostvars.values() if variables.get("ansible_host"))
    return len(hostvars), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    env = ansible_env(ANSIBLE_INVENTORY_CACHE="false")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="polyvirt-bench-inventory-") as work:
        state = os.path.join(work, "state.json")
        state_file(state, args.guests, ["pve"] + ["pve%d" % number for number in range(2, args.nodes + 1)])
        sim = Simulator(work, state, args.nodes, args.latency)
        try:
            paths = configs(work, sim)
            times = dict((row, []) for row in paths)
            facts = {}
            for round_number in range(args.rounds):
                for row, path in paths.items():
                    sim.journal("DELETE")
                    elapsed, listing, stderr = inventory(path, env)
                    calls = len(sim.journal())
                    times[row].append(elapsed)
                    hosts, carries = carried(listing, row)
                    facts[row] = (hosts, carries, calls)
                    print("round %d  %-45s %6.2f s  %5d API calls  %d hosts%s" % (
                        round_number + 1, row, elapsed, calls, hosts, "  (stderr: %s)" % stderr.strip()[:200] if stderr.strip() else ""), flush=True)
        finally:
            sim.stop()

    print()
    print("%d guests on %d nodes, %g ms per API answer, median of %d round(s)" % (args.guests, args.nodes, args.latency * 1000, args.rounds))
    print("%-45s %8s %9s %6s %6s %6s %7s %6s %12s" % ("inventory", "seconds", "API calls", "hosts", "state", "cpus", "memory", "tags", "ansible_host"))
    medians = dict((row, statistics.median(values)) for row, values in times.items())
    for row in paths:
        hosts, carries, calls = facts[row]
        counts = (hosts, carries["state"], carries["cpus"], carries["memory"], carries["tags"], carries["ansible_host"])
        print("%-45s %8.2f %9d %6d %6d %6d %7d %6d %12d" % ((row, medians[row], calls) + counts))
    ours = medians["polyvirt.compute.instances"]
    print()
    print("polyvirt / community.proxmox with want_facts: %.3f (target <= 0.1)" % (ours / medians["community.proxmox.proxmox want_facts: true"]))
    print("polyvirt / community.proxmox without facts:   %.2f (target <= 1.5)" % (ours / medians["community.proxmox.proxmox want_facts: false"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
