# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures: the simulator as a subprocess (exactly as documented) and a small requests client."""
from __future__ import annotations

import copy
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
CREDENTIALS = {'email': 'admin@example.com', 'password': 'polyvirt-sim', 'api_key': 'polyvirt-sim-key'}
PROJECT = 1

# The three create bodies of the seed (project_id 123 there; the simulator's project is 1).
USERDATA = ('#cloud-config\nusers:\n  - name: administrator\n    groups: sudo\n    shell: /bin/bash\n    lock_passwd: false\n'
            '    passwd: <YOUR PASSWORD HASH>\n    ssh_authorized_keys:\n      - ssh-ed25519 <YOUR PUBLIC SSH KEY>\n'
            'chpasswd:\n  expire: false\nssh_pwauth: true\n')
LXD_VM = {
    'project_id': 123, 'name': 'ubuntu-vm', 'type': 'lxd', 'grace_period': 72,
    'metadata': {'instance_type': 'virtual-machine', 'dns': '8.8.8.8,8.8.4.4,2001:4860:4860::8888,2001:4860:4860::8844',
                 'userdata': USERDATA},
    'interfaces': [{'gateway': True, 'ipv4_addresses': [{'address': '10.0.1.10', 'nat': True}],
                    'ipv6_addresses': [{'address': '2a02:2078:9:1234::10'}]}],
    'specs': [{'quantity': 4, 'sku_name': 'RAM_001'}, {'quantity': 2, 'sku_name': 'vCPU_001'},
              {'quantity': 50, 'sku_name': 'SSD_001'}, {'quantity': 1, 'sku_name': 'UBUNTU2404'}],
}
LXD_CONTAINER = {
    'project_id': 123, 'name': 'ubuntu-container', 'type': 'lxd', 'grace_period': 72,
    'metadata': {'instance_type': 'container', 'dns': '8.8.8.8,8.8.4.4,2001:4860:4860::8888,2001:4860:4860::8844',
                 'userdata': USERDATA},
    'interfaces': [{'gateway': True, 'ipv4_addresses': [{'address': '10.0.1.11', 'nat': True}],
                    'ipv6_addresses': [{'address': '2a02:2078:9:1234::11'}]}],
    'specs': [{'quantity': 2, 'sku_name': 'RAM_001'}, {'quantity': 1, 'sku_name': 'vCPU_001'},
              {'quantity': 20, 'sku_name': 'SSD_001'}, {'quantity': 1, 'sku_name': 'UBUNTU2404'}],
}
HYPERV_VM = {
    'project_id': 123, 'name': 'windows-server', 'type': 'hyperv', 'grace_period': 72,
    'metadata': {'dns4': '8.8.8.8', 'dns6': '2001:4860:4860::8888', 'email': 'admin@example.com'},
    'interfaces': [{'gateway': True, 'ipv4_addresses': [{'address': '10.0.1.20', 'nat': True}],
                    'ipv6_addresses': [{'address': '2a02:2078:9:1234::20'}]}],
    'specs': [{'quantity': 8, 'sku_name': 'RAM_001'}, {'quantity': 4, 'sku_name': 'vCPU_002'},
              {'quantity': 100, 'sku_name': 'SSD_001'}, {'quantity': 1, 'sku_name': 'MSServer2022'}],
}
SEEDS = {'lxd_vm': LXD_VM, 'lxd_container': LXD_CONTAINER, 'hyperv_vm': HYPERV_VM}
_COUNTER = [0]


def seed(kind, name=None, last_octet=None, **changes):
    """A seed body for project 1 with a unique name and addresses (the simulator refuses duplicates)."""
    _COUNTER[0] += 1
    body = copy.deepcopy(SEEDS[kind])
    body['project_id'] = PROJECT
    body['name'] = name or '%s-%d' % (body['name'], _COUNTER[0])
    octet = last_octet or (10 + _COUNTER[0])
    body['interfaces'][0]['ipv4_addresses'][0]['address'] = '10.0.%d.%d' % (1 + octet // 250, octet % 250 + 2)
    body['interfaces'][0]['ipv6_addresses'][0]['address'] = '2a02:2078:9:1234::%x' % (0x1000 + _COUNTER[0])
    body.update(changes)
    return body


class Simulator:
    """A running simulator subprocess."""

    def __init__(self, *args):
        self.args = list(args)
        if '--throttle-rate' not in self.args:
            # The tests send requests as fast as they can; throttling has its own test (test_options.py).
            self.args = ['--throttle-rate', '0'] + self.args
        self.stderr = tempfile.TemporaryFile()  # a file, not a pipe nobody drains
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'tests.simulators.cloudcix', '--host', '127.0.0.1', '--port', '0'] + self.args,
            cwd=REPO, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=20)
        except queue.Empty:
            self.proc.kill()
            raise RuntimeError('the simulator printed nothing in 20 s')
        if not line.startswith('listening on http://127.0.0.1:'):
            self.proc.kill()
            raise RuntimeError('unexpected first line %r; stderr: %s' % (line, self.errors()))
        self.line = line
        self.url = line.split()[-1]
        self.stderr_text = None

    def errors(self):
        """What the simulator wrote on stderr so far."""
        self.stderr.seek(0)
        return self.stderr.read().decode('utf-8', 'replace')

    def stop(self):
        """SIGTERM; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.stderr.closed:
            self.proc.stdout.close()
            self.stderr_text = self.errors()
            self.stderr.close()
            if self.proc.returncode != 0 or 'Traceback' in self.stderr_text:
                sys.stderr.write(self.stderr_text)
        return self.proc.returncode


class Client:
    """Plain requests against one simulator with a token."""

    def __init__(self, url, token=None):
        self.url = url
        self.session = requests.Session()
        self.session.trust_env = False
        self.token = token

    def login(self, **overrides):
        return self.session.post(self.url + 'auth/login/', json=dict(CREDENTIALS, **overrides), timeout=10)

    def authenticate(self):
        response = self.login()
        assert response.status_code == 201, response.text
        self.token = response.json()['token']
        return self

    def request(self, method, path, **kwargs):
        headers = kwargs.pop('headers', {})
        if self.token and 'X-Auth-Token' not in headers:
            headers['X-Auth-Token'] = self.token
        return self.session.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def get(self, path, **kwargs):
        return self.request('GET', path, **kwargs)

    def post(self, path, body, **kwargs):
        return self.request('POST', path, json=body, **kwargs)

    def patch(self, path, body, **kwargs):
        return self.request('PATCH', path, json=body, **kwargs)

    def put(self, path, body, **kwargs):
        return self.request('PUT', path, json=body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request('DELETE', path, **kwargs)

    def create(self, path, body):
        response = self.post(path, body)
        assert response.status_code == 201, response.text
        return response.json()['content']

    def read(self, path, pk):
        response = self.get('%s%s/' % (path, pk))
        assert response.status_code == 200, response.text
        return response.json()['content']

    def wait(self, path, pk, states, timeout=15.0):
        """Poll until the resource's state is in states (bounded); returns the resource."""
        states = (states,) if isinstance(states, str) else tuple(states)
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            content = self.read(path, pk)
            if not seen or seen[-1] != content['state']:
                seen.append(content['state'])
            if content['state'] in states:
                return content
            if time.monotonic() > deadline:
                raise AssertionError('%s%s/ never reached %s; states seen: %s' % (path, pk, states, seen))
            time.sleep(0.02)


@pytest.fixture(scope='session')
def sim():
    """The shared simulator: robot 1000x faster (build in tens of ms, 1 h grace = 3.6 s)."""
    simulator = Simulator('--time-scale', '0.001')
    yield simulator
    assert simulator.stop() == 0
    assert 'Traceback' not in simulator.stderr_text, 'the simulator hit an internal error'


@pytest.fixture(scope='session')
def api(sim):
    return Client(sim.url).authenticate()


@pytest.fixture
def start():
    """Start extra simulators with other options; all are stopped (SIGTERM, exit 0) afterwards."""
    started = []

    def _start(*args):
        simulator = Simulator(*args)
        started.append(simulator)
        return simulator
    yield _start
    for simulator in started:
        assert simulator.stop() == 0
        assert 'Traceback' not in simulator.stderr_text, 'the simulator hit an internal error'
