# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start the simulator as a subprocess, exactly as users do, and hand out real clients."""
from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest
import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.tools import Tasks

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
USER, PASSWORD = 'root@pam', 'polyvirt-sim'
TOKEN_NAME, TOKEN_VALUE = 'polyvirt', '5e5e5e5e-0000-4000-8000-000000000001'
TIME_SCALE = 0.1


class Sim:
    """A running simulator process."""

    def __init__(self, args, workdir):
        self.workdir = workdir
        cmd = [sys.executable, '-m', 'tests.simulators.proxmox', '--host', '127.0.0.1', '--port', '0', '--cert-dir', workdir] + list(args)
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, dummy, dummy = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ''
        m = re.match(r'^listening on (https://([^:/]+):(\d+)/api2/json)\n$', line)
        if not m:
            self.proc.kill()
            raise RuntimeError('simulator did not start: %r %s' % (line, self.proc.stderr.read()))
        self.url, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
        self.cafile = os.path.join(workdir, 'pve-root-ca.pem')

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=15)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()

    def api(self, **kwargs):
        return ProxmoxAPI(self.host, port=self.port, verify_ssl=self.cafile, **kwargs)


@pytest.fixture(scope='session')
def sim():
    with tempfile.TemporaryDirectory(prefix='pve-sim-test-') as workdir:
        server = Sim(['--time-scale', str(TIME_SCALE), '--nodes', 'pve,pve2', '--shared-storage', 'nfs1'], workdir)
        yield server
        assert server.stop() == 0


@pytest.fixture(scope='session')
def pve(sim):
    """proxmoxer with ticket (password) auth."""
    return sim.api(user=USER, password=PASSWORD)


@pytest.fixture(scope='session')
def pve_token(sim):
    """proxmoxer with API token auth."""
    return sim.api(user=USER, token_name=TOKEN_NAME, token_value=TOKEN_VALUE)


@pytest.fixture(scope='session')
def raw(sim):
    """A requests session with the API token header, for quirks proxmoxer hides."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override session.verify
    session.verify = sim.cafile
    session.headers['Authorization'] = 'PVEAPIToken=%s!%s=%s' % (USER, TOKEN_NAME, TOKEN_VALUE)
    session.base = sim.url
    return session


@pytest.fixture()
def faults(raw):
    """Add faults at run time through the simulator's /_sim/faults hook; cleared afterwards."""
    base = raw.base.replace('/api2/json', '')

    def add(*specs):
        resp = raw.post(base + '/_sim/faults', data={'spec': list(specs)})
        assert resp.status_code == 200, resp.text
        return resp.json()['data']
    yield add
    assert raw.delete(base + '/_sim/faults').status_code == 200


def wait_task(api, upid, node='pve', timeout=20):
    """Poll the task status (bounded) and return it once stopped."""
    assert re.match(r'^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:[^:]+:[^:]*:[^:]+:$', upid), upid
    status = Tasks.blocking_status(api, upid, timeout=timeout, polling_interval=0.05)
    assert status is not None, 'task %s did not finish within %ss' % (upid, timeout)
    del node
    return status


def wait_ok(api, upid, timeout=20):
    status = wait_task(api, upid, timeout=timeout)
    assert status['exitstatus'] == 'OK', status
    return status


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('condition not met within %ss' % timeout)


def quote_keys(text):
    return urllib.parse.quote(text, safe='')
