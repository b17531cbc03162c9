# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection (--fault and the /_sim/faults hook), --state persistence and clean SIGTERM."""
from __future__ import annotations

import os
import tempfile

import pytest
from proxmoxer.core import ResourceException

from .conftest import PASSWORD, USER, Sim, wait_ok, wait_task


@pytest.fixture(scope='module')
def vmid(pve):
    newid = int(pve.cluster.nextid.get())
    wait_ok(pve, pve.nodes('pve').qemu(9000).clone.post(newid=newid, name='fault-target'))
    yield newid
    status = pve.nodes('pve').qemu(newid).status.current.get()
    if status['status'] == 'running':
        wait_ok(pve, pve.nodes('pve').qemu(newid).status.stop.post())
    wait_ok(pve, pve.nodes('pve').qemu(newid).delete())


def test_task_error_and_warning(pve, vmid, faults):
    faults('task-error:qmstart:start failed: simulated QEMU crash', 'task-warning:qmstop')
    upid = pve.nodes('pve').qemu(vmid).status.start.post()
    status = wait_task(pve, upid)
    assert status['exitstatus'] == 'start failed: simulated QEMU crash'
    assert pve.nodes('pve').tasks(upid).log.get()[-1]['t'] == 'TASK ERROR: start failed: simulated QEMU crash'
    assert pve.nodes('pve').qemu(vmid).status.current.get()['status'] == 'stopped'
    wait_ok(pve, pve.nodes('pve').qemu(vmid).status.start.post())
    status = wait_task(pve, pve.nodes('pve').qemu(vmid).status.stop.post())
    assert status['exitstatus'] == 'WARNINGS: 1'
    errors = pve.nodes('pve').tasks.get(vmid=vmid, errors=1)
    assert [t['status'] for t in errors] == ['WARNINGS: 1', 'start failed: simulated QEMU crash']


def test_lock_timeout(pve, vmid, faults):
    faults('lock-timeout:%d' % vmid)
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(vmid).config.put(cores=2)
    assert (err.value.status_code, err.value.content) == (500, "can't lock file '/var/lock/qemu-server/lock-%d.conf' - got timeout" % vmid)
    assert pve.nodes('pve').qemu(vmid).config.put(cores=2) is None


def test_slow_shutdown(pve, vmid, faults):
    faults('slow-shutdown:%d@2' % vmid)
    wait_ok(pve, pve.nodes('pve').qemu(vmid).status.start.post())
    status = wait_task(pve, pve.nodes('pve').qemu(vmid).status.shutdown.post(timeout=1))
    assert status['exitstatus'] == 'VM quit/powerdown failed - got timeout'
    assert pve.nodes('pve').qemu(vmid).status.current.get()['status'] == 'running'
    wait_ok(pve, pve.nodes('pve').qemu(vmid).status.shutdown.post(timeout=1, forceStop=1))
    assert pve.nodes('pve').qemu(vmid).status.current.get()['status'] == 'stopped'


def test_node_offline(pve, faults):
    faults('node-offline:pve2')
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve2').qemu.get()
    assert err.value.status_code == 595
    assert err.value.content.startswith('Errors during connection establishment, proxy handshake')
    assert {n['node']: n['status'] for n in pve.nodes.get()} == {'pve': 'online', 'pve2': 'offline'}
    assert pve.nodes('pve').qemu.get()


def test_http_500_next_calls(pve, faults):
    listed = faults('http-500:/cluster/resources@2')
    assert listed[0]['remaining'] == 2
    for dummy in range(2):
        with pytest.raises(ResourceException) as err:
            pve.cluster.resources.get()
        assert err.value.status_code == 500
    assert pve.cluster.resources.get()


def test_cli_fault_and_state_persistence():
    with tempfile.TemporaryDirectory(prefix='pve-sim-state-') as workdir:
        state = os.path.join(workdir, 'state.json')
        args = ['--time-scale', '0', '--state', state, '--fault', 'task-error:qmcreate:unable to allocate disk']
        first = Sim(args, workdir)
        try:
            api = first.api(user=USER, password=PASSWORD)
            status = wait_task(api, api.nodes('pve').qemu.post(vmid=200, scsi0='local-lvm:1'))
            assert status['exitstatus'] == 'unable to allocate disk'
            with pytest.raises(ResourceException):
                api.nodes('pve').qemu(200).config.get()
            wait_ok(api, api.nodes('pve').qemu.post(vmid=200, scsi0='local-lvm:1', name='persisted'))
            digest = api.nodes('pve').qemu(200).config.get()['digest']
        finally:
            assert first.stop() == 0
        second = Sim(['--time-scale', '0', '--state', state], workdir)
        try:
            api = second.api(user=USER, password=PASSWORD)
            conf = api.nodes('pve').qemu(200).config.get()
            assert conf['name'] == 'persisted' and conf['digest'] == digest
            assert api.nodes('pve').storage('local-lvm').content.get(vmid=200)[0]['volid'] == 'local-lvm:vm-200-disk-0'
        finally:
            assert second.stop() == 0
