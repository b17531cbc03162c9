# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Start the emulator as a subprocess exactly as documented and hand out kubernetes clients for it.

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import config as kconfig  # noqa: E402  pylint: disable=wrong-import-position
from kubernetes.dynamic import DynamicClient  # noqa: E402  pylint: disable=wrong-import-position

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
NS = "tenant-demo"


class Sim:
    def __init__(self, tmpdir, args):
        self.kubeconfig = os.path.join(tmpdir, "kubeconfig-%s" % uuid.uuid4().hex[:8])
        cmd = [sys.executable, "-m", "tests.simulators.hikube", "--host", "127.0.0.1", "--port", "0",
               "--kubeconfig-out", self.kubeconfig] + list(args)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("emulator did not start: %r %s" % (line, self.proc.stderr.read()))
        self.url = line.split(" ", 2)[2].strip()
        self.tmpdir = tmpdir

    def api_client(self):
        return kconfig.new_client_from_config(config_file=self.kubeconfig)

    def dynamic(self):
        return DynamicClient(self.api_client(), cache_file=os.path.join(self.tmpdir, "discovery-%s.json" % uuid.uuid4().hex))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


@pytest.fixture(scope="session")
def sims(tmp_path_factory):
    started = {}
    tmpdir = str(tmp_path_factory.mktemp("hikube"))

    def get(*args):
        if args not in started:
            started[args] = Sim(tmpdir, args)
        return started[args]

    yield get
    codes = {args: sim.stop() for args, sim in started.items()}
    bad = {args: code for args, code in codes.items() if code != 0}
    assert not bad, "emulators did not exit cleanly on SIGTERM: %s" % bad


# The emulator's own tests look at the whole cluster (VMIs, DataVolume lists): the admin view. Tenant RBAC, the
# emulator's default, has its own test (test_cozystack.test_tenant_rbac).
ADMIN = ("--no-tenant-rbac",)
COZY = ("--mode", "cozystack", "--time-scale", "0.05") + ADMIN
CRD = ("--mode", "crd", "--time-scale", "0") + ADMIN


@pytest.fixture(scope="session")
def cozy(sims):
    return sims(*COZY)


@pytest.fixture(scope="session")
def crd(sims):
    return sims(*CRD)


@pytest.fixture(scope="session")
def dyn(cozy):
    return cozy.dynamic()


@pytest.fixture(scope="session")
def dyn_crd(crd):
    return crd.dynamic()


def unique(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:6])


def wait_for(fetch, predicate, timeout=15.0, interval=0.05, what="condition"):
    """Bounded polling: call fetch() until predicate(value) holds; fail with the last value otherwise."""
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        value = fetch()
        if predicate(value):
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s; last value: %r" % (what, value))


def condition(obj, ctype):
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None
