# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the role tests: the provision and decommission roles end to end, once per backend.

LXD (the lab, make lab): lxd.yml provisions two Debian containers with an account and a key made for
the run, connects to them over SSH as that account with that key, runs tasks inside, then
decommissions them. Every simulator (tests/simulators): simulator.yml provisions and decommissions
instances there and reads what the platform holds with the conformance suite's probe
(tests/integration/probes). The backends run at the same time (--jobs), each with its own log,
printed whole when it is done. The simulators start the way the conformance suite starts them
(tests/integration/run.py), each once, from the settings in tests/integration/backends/<backend>.yml.

Before any playbook, the role's table of what each backend can do (roles/provision/vars/main.yml) is
compared with what the drivers declare.

    python tests/roles/run.py [--backends "lxd proxmox"] [--lxd-image ALIAS]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INTEGRATION = os.path.join(ROOT, "tests", "integration")
sys.path.insert(0, INTEGRATION)
import run as conformance  # noqa: E402  (the conformance suite's runner: simulators, probes, vars files)

BACKENDS = ("lxd", "proxmox", "hikube", "cloudcix", "hyperv")
# Every instance these tests make starts with this, so a clean-up finds them all (and nobody else's).
PREFIX = "prov-"


def check_feature_table():
    """roles/provision/vars/main.yml says per backend and type what the drivers' capabilities say."""
    with open(os.path.join(ROOT, "roles", "provision", "vars", "main.yml")) as handle:
        table = yaml.safe_load(handle)["provision_backend_features"]
    # The collection as ansible-playbook finds it (the Makefile's ANSIBLE_COLLECTIONS_PATH).
    for path in reversed(os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.join(ROOT, ".build", "collections")).split(os.pathsep)):
        sys.path.insert(0, path)
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends import registry

    problems = []
    for name in registry.AVAILABLE:
        cls = registry.backend_class(name)
        row = table.get(name)
        if row is None:
            problems.append("%s: not in the table" % name)
            continue
        if row.get("default") != cls.default_type:
            problems.append("%s: default type %s, the driver's is %s" % (name, row.get("default"), cls.default_type))
        types = set(row) - {"default"}
        if types != set(cls.features):
            problems.append("%s: types %s, the driver's are %s" % (name, sorted(types), sorted(cls.features)))
        for itype in types & set(cls.features):
            caps = cls.capabilities_for(itype)
            want = {"cloud_init": "instance.cloud_init" in caps, "wait_cloud_init": "wait_for.cloud_init" in caps, "snapshot": "snapshot" in caps}
            if row[itype] != want:
                problems.append("%s %s: %s, the driver says %s" % (name, itype, row[itype], want))
    if problems:
        raise SystemExit("roles/provision/vars/main.yml disagrees with the drivers:\n  " + "\n  ".join(problems))
    print("provision_backend_features agrees with the drivers of %s" % ", ".join(registry.AVAILABLE), flush=True)


def playbook(path, extra_vars_file, log):
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), os.path.join(HERE, path), "-e", "@" + extra_vars_file]
    log.write(">>> " + " ".join(shlex.quote(a) for a in cmd) + "\n")
    log.flush()
    return subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def probe_call(probe, *args):
    return json.loads(subprocess.check_output(probe + list(args), text=True))


def run_backend(name, work, lxd_image, log):
    """One backend: its simulator (if any), its probe's session, its playbook; always cleans up."""
    with open(os.path.join(INTEGRATION, "backends", name + ".yml")) as handle:
        text = handle.read()
    state_dir = os.path.join(work, name)
    os.makedirs(state_dir, exist_ok=True)
    text = text.replace("@STATE@", state_dir)
    spec = yaml.safe_load(text)
    proc = None
    if name == "lxd":
        # The unix socket: the SSH test needs no journal, so no client certificate either.
        spec["connection"] = {"project": spec["connection"].get("project", "default")}
    elif spec.get("simulator"):
        proc, url = conformance.start_simulator(spec["simulator"])
        host, _colon, port = re.match(r"^\w+://([^/]+)", url).group(1).rpartition(":")
        for key, value in (("@SIMULATOR_URL@", url), ("@SIMULATOR_HOST@", host), ("@SIMULATOR_PORT@", port)):
            text = text.replace(key, value)
        spec = yaml.safe_load(text)
    config = os.path.join(state_dir, "config.yml")
    probe = [sys.executable, os.path.join(INTEGRATION, "probes", spec["name"] + ".py"), "--config", config, "--state", state_dir]
    extra = {"backend": spec, "probe": " ".join(shlex.quote(a) for a in probe), "prefix": PREFIX + name[:4] + "-", "work_dir": state_dir}
    session = False
    try:
        with open(config, "w") as handle:
            yaml.safe_dump({"backend": spec}, handle)
        subprocess.check_call(probe + ["session", "start"], stdout=subprocess.DEVNULL)
        session = True
        if name == "lxd":
            key = os.path.join(state_dir, "id_ed25519")
            subprocess.check_call(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "polyvirt-role-test", "-f", key])
            extra.update(debian_image=lxd_image or spec["cloud_init_image"], ssh_key=key)
            path = "lxd.yml"
        else:
            path = "simulator.yml"
        vars_file = os.path.join(state_dir, "vars.yml")
        with open(vars_file, "w") as handle:
            yaml.safe_dump(extra, handle)
        return playbook(path, vars_file, log)
    finally:
        if session:
            left = probe_call(probe, "cleanup", extra["prefix"])
            if left.get("removed") or left.get("left"):
                log.write("clean-up of %s*: removed %s, left %s\n" % (extra["prefix"], left.get("removed"), left.get("left")))
            subprocess.call(probe + ["session", "stop"], stdout=subprocess.DEVNULL)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="", help="space-separated; default: " + " ".join(BACKENDS))
    parser.add_argument("--jobs", type=int, default=len(BACKENDS), help="backends tested at the same time (default: all)")
    parser.add_argument("--lxd-image", default="",
                        help="the Debian image with cloud-init and SSH (default: cloud_init_image of backends/lxd.yml)")
    opts = parser.parse_args()
    backends = opts.backends.split() or list(BACKENDS)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise SystemExit("unknown backend(s): %s (known: %s)" % (" ".join(unknown), " ".join(BACKENDS)))
    check_feature_table()
    results = []
    with tempfile.TemporaryDirectory(prefix="polyvirt-roles-") as work:

        def one(name):
            # Each backend's output goes to its own log, printed whole when it is done.
            started = time.monotonic()
            with open(os.path.join(work, name + ".log"), "w+") as log:
                try:
                    rc = run_backend(name, work, opts.lxd_image, log)
                # A simulator that did not start or a probe that failed: that backend fails, the others go on.
                except (OSError, ValueError, subprocess.CalledProcessError, SystemExit) as exc:
                    log.write("%s: %s\n" % (type(exc).__name__, exc))
                    rc = 1
                log.seek(0)
                with lock:
                    sys.stdout.write("=== %s\n%s" % (name, log.read()))
                    sys.stdout.flush()
            return name, rc, time.monotonic() - started

        lock = threading.Lock()
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
            results = list(pool.map(one, backends))
    for name, rc, elapsed in results:
        print("roles %-9s %s in %.0f s" % (name, "passed" if rc == 0 else "FAILED (rc %d)" % rc, elapsed))
    return 1 if any(rc for _name, rc, _elapsed in results) else 0


if __name__ == "__main__":
    sys.exit(main())
