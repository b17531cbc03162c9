# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Time to provision 10 Debian containers on the LXD lab: the provision role against 10 sequential
polyvirt.compute.instance tasks, side by side in one run.

Both rows do the same work from nothing: create each container from the lab's Debian image with the
same cloud-init (an account with an SSH key, a file, a command), start it, and wait for its address
and for cloud-init to be done. The role runs provision_concurrency jobs at a time (default: all 10);
the other row is one instance task with a loop. Rounds alternate the rows, so load on the machine
hits both alike; the containers are deleted between runs (not timed). Prints the times and the ratio.

Run with `make bench` (it sets up the lab first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = "polyvirt"
PREFIX = "bench-prov-"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPolyvirtBenchKeyNotUsedForAnyConnection bench@polyvirt"

USER_DATA = """        users:
          - name: bench
            shell: /bin/bash
            lock_passwd: true
            ssh_authorized_keys: ["%s"]
        write_files: [{path: /etc/polyvirt-bench, content: "bench\\n"}]
        runcmd: [touch /run/polyvirt-bench]""" % KEY

SEQUENTIAL = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Ten instance tasks, one after the other
      polyvirt.compute.instance:
        backend: lxd
        connection: {project: %s}
        name: "%s{{ item }}"
        image: "@IMAGE@"
        cloud_init:
          user_data:
%s
        wait_for: [ip, cloud_init]
      loop: "{{ range(1, @COUNT@ + 1) | list }}"
""" % (PROJECT, PREFIX, "\n".join("    " + line for line in USER_DATA.splitlines()))


def role_play(count, image, concurrency):
    # The same cloud-init as the sequential row: the role adds the account; the file and the command go in each item.
    items = "\n".join('          - {name: "%s%d", write_files: [{path: /etc/polyvirt-bench, content: "bench\\n"}], runcmd: [touch /run/polyvirt-bench]}'
                      % (PREFIX, i) for i in range(1, count + 1))
    return """
- hosts: localhost
  gather_facts: false
  roles:
    - role: polyvirt.compute.provision
      vars:
        provision_concurrency: %d
        provision_defaults:
          backend: lxd
          connection: {project: %s}
          image: "%s"
        provision_instances:
%s
        provision_user: bench
        provision_user_sudo: ""
        provision_ssh_public_keys: ["%s"]
""" % (concurrency, PROJECT, image, items, KEY)


def sequential_play(count, image):
    return SEQUENTIAL.replace("@COUNT@", str(count)).replace("@IMAGE@", image)


def run_playbook(path):
    started = time.perf_counter()
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), path], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit("%s failed:\n%s\n%s" % (path, done.stdout[-3000:], done.stderr[-3000:]))
    return elapsed


def cleanup(count):
    for i in range(1, count + 1):
        subprocess.run(["lxc", "delete", "--force", "--project", PROJECT, "%s%d" % (PREFIX, i)], capture_output=True, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=10, help="the role's provision_concurrency")
    parser.add_argument("--image", default="polyvirt/debian12")
    opts = parser.parse_args()
    rows = {"provision role (%d in flight)" % opts.concurrency: role_play(opts.count, opts.image, opts.concurrency),
            "%d sequential instance tasks" % opts.count: sequential_play(opts.count, opts.image)}
    times = {name: [] for name in rows}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for index, (name, text) in enumerate(rows.items()):
            paths[name] = os.path.join(tmp, "row%d.yml" % index)
            with open(paths[name], "w") as f:
                f.write(text)
        cleanup(opts.count)
        try:
            for round_no in range(opts.rounds):
                order = list(rows) if round_no % 2 == 0 else list(reversed(rows))
                for name in order:
                    times[name].append(run_playbook(paths[name]))
                    cleanup(opts.count)
        finally:
            cleanup(opts.count)
    print("provision %d Debian containers with cloud-init on LXD (wait for ip and cloud-init), %d round(s), median:" % (opts.count, opts.rounds))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print("  %-34s %7.1f s   (%s)" % (name, value, ", ".join("%.1f" % v for v in times[name])))
    role, sequential = list(medians.values())
    print("  sequential / role = %.2f" % (sequential / role))


if __name__ == "__main__":
    main()
