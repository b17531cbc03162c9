# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Command-line options: --time-scale 0, --fault SPECs (and /_sim/faults), --state, SIGTERM."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import requests

from .conftest import REPO, Client, seed

INST = 'compute/instances/'


def test_time_scale_zero_finishes_at_once(start):
    api = Client(start('--time-scale', '0').url).authenticate()
    created = api.create(INST, seed('hyperv_vm'))
    assert created['state'] == 'pending'
    assert api.read(INST, created['id'])['state'] == 'running'
    path = '%s%d/' % (INST, created['id'])
    assert api.patch(path, {'state': 'delete'}).json()['content']['state'] == 'delete'
    assert api.read(INST, created['id'])['state'] == 'deleted'  # grace periods are scaled too


def test_fault_http_errors(start):
    sim = start('--time-scale', '0', '--fault', 'error:status=503,count=2,path=compute/instances,method=GET')
    api = Client(sim.url).authenticate()
    for attempt in range(2):
        failed = api.get(INST)
        assert failed.status_code == 503, attempt
        assert failed.headers['Content-Type'].startswith('text/html') and '503' in failed.text
    assert api.get('project/1/').status_code == 200
    assert api.get(INST).status_code == 200
    # added at run time through the simulator's own control endpoint
    added = requests.post(sim.url + '_sim/faults', json={'spec': 'error:status=500,skip=1'}, timeout=10)
    assert added.status_code == 201
    assert api.get('project/1/').status_code == 200
    assert api.get('project/1/').status_code == 500
    assert api.get('project/1/').status_code == 200
    assert requests.post(sim.url + '_sim/faults', json={'spec': 'nonsense'}, timeout=10).status_code == 400


def test_fault_token_expires_early(start):
    sim = start('--fault', 'token-expiry:seconds=1.5')
    api = Client(sim.url).authenticate()
    issued = time.monotonic()
    first = api.get('project/1/')
    assert first.status_code == 200 or time.monotonic() - issued > 1.5
    deadline = time.monotonic() + 10
    while api.get('project/1/').status_code != 401:
        assert time.monotonic() < deadline, 'the token never expired'
        time.sleep(0.05)
    assert time.monotonic() - issued >= 1.4
    expired = api.get('project/1/')
    assert expired.status_code == 401 and set(expired.json()) == {'detail'}
    assert api.put('auth/login/', None).status_code == 401  # an expired token cannot be refreshed
    assert api.authenticate().get('project/1/').status_code == 200


def test_fault_robot_stall(start):
    sim = start('--time-scale', '0', '--fault', 'robot-stall')
    api = Client(sim.url).authenticate()
    pk = api.create(INST, seed('lxd_container'))['id']
    for attempt in range(3):
        assert api.read(INST, pk)['state'] == 'pending', attempt  # at time-scale 0 it would be running by now
    assert requests.delete(sim.url + '_sim/faults', timeout=10).status_code == 204
    assert api.read(INST, pk)['state'] == 'running'
    # stall only one state: a snapshot revert stays busy, and the instance cannot change state meanwhile
    snap = api.create('compute/snapshots/', {'instance_id': pk, 'project_id': 1, 'type': 'lxd', 'name': 's'})
    assert api.read('compute/snapshots/', snap['id'])['state'] == 'running'
    requests.post(sim.url + '_sim/faults', json={'spec': 'robot-stall:state=update_running'}, timeout=10)
    api.patch('compute/snapshots/%d/' % snap['id'], {'state': 'update_running'})
    assert api.read('compute/snapshots/', snap['id'])['state'] == 'update_running'
    busy = api.patch('%s%d/' % (INST, pk), {'state': 'stop'})
    assert busy.status_code == 400
    assert busy.json()['errors']['state']['error_code'] == 'compute_instance_update_108'
    requests.delete(sim.url + '_sim/faults', timeout=10)
    assert api.read('compute/snapshots/', snap['id'])['state'] == 'running'
    assert api.patch('%s%d/' % (INST, pk), {'state': 'stop'}).status_code == 200


def test_fault_unresourced(start):
    sim = start('--time-scale', '0', '--fault', 'unresourced:match=^doomed')
    api = Client(sim.url).authenticate()
    doomed = api.create(INST, seed('lxd_vm', name='doomed-1'))['id']
    fine = api.create(INST, seed('lxd_vm', name='fine-1'))['id']
    assert api.read(INST, doomed)['state'] == 'unresourced'
    assert api.read(INST, fine)['state'] == 'running'


def test_throttling_per_user_and_the_fault_that_lowers_it(start):
    sim = start('--time-scale', '0', '--throttle-rate', '20')
    api = Client(sim.url).authenticate()
    statuses = [api.get('project/1/').status_code for _index in range(60)]
    assert 429 in statuses and statuses[:20] == [200] * 20  # the framework's 20 requests per second per user
    slow = start('--time-scale', '0', '--throttle-rate', '0', '--fault', 'throttle:rate=2')
    api = Client(slow.url).authenticate()
    first = [api.get('project/1/') for _index in range(3)]
    assert [answer.status_code for answer in first] == [200, 200, 429]
    assert first[2].json() == {'detail': 'Request was throttled. Expected available in 1 second.'}


def test_token_texts_are_the_framework_s(start):
    sim = start('--time-scale', '0')
    api = Client(sim.url).authenticate()
    forged = requests.get(sim.url + 'project/1/', headers={'X-Auth-Token': 'a.b.c'}, timeout=10)
    assert forged.status_code == 401 and forged.json()['detail'].startswith('An error occurred while decoding your token')
    assert api.get('project/1/').status_code == 200


def test_bad_fault_spec_is_refused():
    done = subprocess.run([sys.executable, '-m', 'tests.simulators.cloudcix', '--port', '0', '--fault', 'explode'],
                          cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and 'unknown fault' in done.stderr and done.stdout == ''


def test_state_file_survives_restart(start, tmp_path):
    state = str(tmp_path / 'cloudcix.json')
    first = start('--time-scale', '0', '--state', state)
    api = Client(first.url).authenticate()
    pk = api.create(INST, seed('lxd_container', name='persisted'))['id']
    assert api.read(INST, pk)['state'] == 'running'
    assert first.stop() == 0
    assert os.path.getsize(state) > 0
    second = start('--time-scale', '0', '--state', state)
    again = Client(second.url, api.token)  # the token signing secret is persisted too
    assert again.read(INST, pk)['name'] == 'persisted'
    assert again.create(INST, seed('lxd_container'))['id'] == pk + 1


def test_sigterm_exits_cleanly(start):
    sim = start()
    assert sim.proc.poll() is None
    assert sim.stop() == 0
