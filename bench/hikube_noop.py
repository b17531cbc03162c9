# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Idempotent no-op loop over 20 Hikube VMInstances on the loopback emulator, side by side in one run.

Rows: polyvirt.compute.instance (the instance exists, runs, has 1 CPU and 256 MiB), kubernetes.core.k8s
applying the same VMInstance manifests (`state: present`), and an ansible.builtin.ping loop as the floor
of what any module costs. One emulator (Cozystack mode, tenant RBAC, --time-scale 0) serves every row;
rounds are interleaved so load on the machine hits every row alike; the median counts. Then one task's
time is split into interpreter, AnsiballZ/controller, imports and API, and the emulator's request
journal tells how many requests one no-op task of each row sends.

Run with `make bench` (a venv that has the `ansible` package and the kubernetes client).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from _harness import COLLECTIONS, ROOT, ansible_env, python_seconds, run_playbook, write_plays  # bench/ is on sys.path when a script here runs

PREFIX = "bench-noop-"
NAMESPACE = "tenant-demo"

NAME = "\"%s{{ '%%02d' | format(item) }}\"" % PREFIX


def rows(kubeconfig):
    ours = """        name: %s
        backend: hikube
        connection: {kubeconfig: %s, namespace: %s}
        state: started
        cpus: 1
        memory: 256MiB""" % (NAME, kubeconfig, NAMESPACE)
    # What polyvirt.compute.instance wrote for each instance, as a kubectl user would keep it in a manifest.
    theirs = """        kubeconfig: %s
        state: present
        definition:
          apiVersion: apps.cozystack.io/v1alpha1
          kind: VMInstance
          metadata:
            name: %s
            namespace: %s
          spec:
            runStrategy: Always
            instanceType: ""
            instanceProfile: ubuntu
            resources: {cpu: "1", sockets: "1", memory: 256Mi}
            disks:
              - name: "%s{{ '%%02d' | format(item) }}-system\"""" % (kubeconfig, NAME, NAMESPACE, PREFIX)
    return {
        "polyvirt.compute.instance": ("polyvirt.compute.instance", ours),
        "kubernetes.core.k8s": ("kubernetes.core.k8s", theirs),
        "ansible.builtin.ping (floor)": ("ansible.builtin.ping", "        data: pong"),
    }


def start_emulator(kubeconfig):
    proc = subprocess.Popen([sys.executable, "-m", "tests.simulators.hikube", "--host", "127.0.0.1", "--port", "0", "--tenant-rbac",
                             "--time-scale", "0", "--kubeconfig-out", kubeconfig], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit("the hikube emulator did not start: %r" % line)
    return proc, line.split()[-1]


def journal(url, since=0):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open("%s/_sim/requests?since=%d" % (url, since), timeout=30) as response:
        return json.loads(response.read())


def api_seconds(kubeconfig, count):
    """Median time of the reads an idempotent task makes for one instance, in process (the library already imported)."""
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.backend import HikubeBackend  # pylint: disable=import-outside-toplevel

    backend = HikubeBackend({"kubeconfig": kubeconfig, "namespace": NAMESPACE})
    backend.instances.get(PREFIX + "01")  # connect once
    times = []
    for index in range(1, count + 1):
        started = time.perf_counter()
        backend.instances.get("%s%02d" % (PREFIX, index))
        times.append(time.perf_counter() - started)
    backend.close()
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="polyvirt-bench-hikube-")
    kubeconfig = os.path.join(work, "kubeconfig")
    env = ansible_env(NO_PROXY="127.0.0.1,localhost")
    sys.path.insert(0, COLLECTIONS)
    proc, url = start_emulator(kubeconfig)
    try:
        table = rows(kubeconfig)
        playbooks = write_plays(work, table, args.count)
        setup = write_plays(work, {"create the instances": ("polyvirt.compute.instance", table["polyvirt.compute.instance"][1] +
                                                            "\n        image: ubuntu")}, args.count)["create the instances"]
        print("creating %d VMInstances on the emulator (not timed) ..." % args.count, flush=True)
        run_playbook(setup, env, check_noop=False)

        requests = {}
        for row, path in playbooks.items():  # one untimed run each: warm caches alike, and count what one task sends
            mark = len(journal(url))
            run_playbook(path, env)
            entries = [entry for entry in journal(url, mark) if not entry["path"].startswith("/_sim")]
            requests[row] = (sum(1 for entry in entries if entry["method"] == "GET"), sum(1 for entry in entries if entry["method"] != "GET"))

        results = dict((row, []) for row in table)
        for round_number in range(args.rounds):
            for row, path in playbooks.items():
                results[row].append(run_playbook(path, env))
            print("round %d/%d done" % (round_number + 1, args.rounds), flush=True)
        breakdown = {
            "interpreter start": python_seconds("pass", env),
            "import AnsibleModule": python_seconds("import ansible.module_utils.basic", env),
            "import our Hikube engine": python_seconds(
                "import ansible.module_utils.basic\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils import _module\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile import instance\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube import backend, client, instances",
                dict(env, PYTHONPATH=COLLECTIONS)),
            "+ connect (what the engine imports to talk)": python_seconds(
                "import ansible.module_utils.basic\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.client import KubeClient\n"
                "KubeClient(kubeconfig=%r, namespace=%r)._connect()" % (kubeconfig, NAMESPACE), dict(env, PYTHONPATH=COLLECTIONS)),
            "import kubernetes (kubernetes.core's)": python_seconds("import ansible.module_utils.basic\nimport kubernetes.dynamic", env),
            "one instance's reads": api_seconds(kubeconfig, args.count),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    print()
    print("Idempotent no-op loop over %d Hikube VMInstances (emulator), median of %d interleaved rounds" % (args.count, args.rounds))
    print("%-30s %10s %12s %8s %18s" % ("row", "loop (s)", "per item (s)", "ratio", "requests per item"))
    ours = statistics.median(results["polyvirt.compute.instance"])
    for row, times in results.items():
        median = statistics.median(times)
        reads, writes = requests[row]
        sent = "%.1f GET, %.1f other" % (reads / args.count, writes / args.count)
        print("%-30s %10.2f %12.3f %8.2f %18s" % (row, median, median / args.count, median / ours, sent))
    theirs = statistics.median(results["kubernetes.core.k8s"])
    floor = statistics.median(results["ansible.builtin.ping (floor)"])
    print()
    print("ratio polyvirt / kubernetes.core = %.2f (target <= 1.0)" % (ours / theirs))
    print("polyvirt above the ping floor: %.3f s per item" % ((ours - floor) / args.count))
    print()
    print("Where one task's time goes (fresh interpreter each, medians):")
    base = breakdown["interpreter start"]
    basic = breakdown["import AnsibleModule"]
    print("  %-44s %.3f s" % ("interpreter start", base))
    print("  %-44s %.3f s" % ("+ import AnsibleModule", basic - base))
    print("  %-44s %.3f s" % ("+ import our Hikube engine", breakdown["import our Hikube engine"] - basic))
    print("  %-44s %.3f s" % ("+ connect (imports to talk, kubeconfig load)", breakdown["+ connect (what the engine imports to talk)"] - basic))
    print("  %-44s %.3f s" % ("+ import kubernetes.dynamic (kubernetes.core)", breakdown["import kubernetes (kubernetes.core's)"] - basic))
    print("  %-44s %.3f s" % ("the reads of one idempotent task", breakdown["one instance's reads"]))
    print("  %-44s %.3f s" % ("controller + AnsiballZ (ping item)", floor / args.count - basic))
    print(json.dumps({"ratio": round(ours / theirs, 3), "per_item": {row: round(statistics.median(t) / args.count, 4) for row, t in results.items()},
                      "requests_per_item": dict((row, {"get": r / args.count, "other": w / args.count}) for row, (r, w) in requests.items())}))


if __name__ == "__main__":
    main()
