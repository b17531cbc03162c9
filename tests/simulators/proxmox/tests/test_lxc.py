# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LXC containers end to end with proxmoxer (token auth): create, config, interfaces, snapshots, backup, restore."""
from __future__ import annotations

import re

import pytest
from proxmoxer.core import ResourceException

from .conftest import wait_ok, wait_task, wait_until

OSTEMPLATE = 'local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst'
KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk8j2nR1q0p8tM4rN8Vv6m7y9bJjVdE5sQzXk3Wm1aB alice@example.com'


def error_of(call, *args, **kwargs):
    with pytest.raises(ResourceException) as err:
        call(*args, **kwargs)
    return err.value


@pytest.fixture(scope='module')
def ct(pve_token):
    vmid = int(pve_token.cluster.nextid.get())
    upid = pve_token.nodes('pve').lxc.post(vmid=vmid, ostemplate=OSTEMPLATE, hostname='ct1', rootfs='local-lvm:2', cores=1,
                                           net0='name=eth0,bridge=vmbr0,ip=10.0.3.7/24,gw=10.0.3.1', password='secret123',
                                           **{'ssh-public-keys': KEY + '\n'})
    assert upid.split(':')[5:8] == ['vzcreate', str(vmid), 'root@pam!polyvirt']
    wait_ok(pve_token, upid)
    return vmid


def test_create_defaults(pve_token, ct):
    conf = pve_token.nodes('pve').lxc(ct).config.get()
    assert conf['rootfs'] == 'local-lvm:vm-%d-disk-0,size=2G' % ct
    assert re.match(r'^name=eth0,bridge=vmbr0,gw=10\.0\.3\.1,hwaddr=BC:24:11:[0-9A-F:]{8},ip=10\.0\.3\.7/24,type=veth$', conf['net0'])
    assert (conf['hostname'], conf['memory'], conf['swap'], conf['unprivileged'], conf['ostype'], conf['arch']) == (
        'ct1', 512, 512, 1, 'debian', 'amd64')
    assert 'password' not in conf


def test_create_errors(pve_token, ct):
    err = error_of(pve_token.nodes('pve').lxc.post, vmid=ct, ostemplate=OSTEMPLATE, rootfs='local-lvm:1')
    assert err.content == "unable to create CT %d - CT %d already exists on node 'pve'" % (ct, ct)
    err = error_of(pve_token.nodes('pve').lxc.post, vmid=ct + 100, ostemplate='local:vztmpl/missing.tar.zst')
    assert err.content == "volume 'local:vztmpl/missing.tar.zst' does not exist"
    err = error_of(pve_token.nodes('pve').lxc.post, vmid=ct + 100, ostemplate=OSTEMPLATE)
    assert (err.status_code, err.errors) == (400, {'storage': "storage 'local' does not support container directories"})
    err = error_of(pve_token.nodes('pve').lxc.post, vmid=ct + 100, ostemplate=OSTEMPLATE, mp0='local-lvm:1,mp=/srv')
    assert err.content == "mount points configured, but 'rootfs' not set - aborting"
    with pytest.raises(ResourceException):
        pve_token.nodes('pve').lxc(ct + 100).config.get()


def test_config_is_sync_with_lxc_digest_wording(pve_token, ct):
    old = pve_token.nodes('pve').lxc(ct).config.get()['digest']
    assert pve_token.nodes('pve').lxc(ct).config.put(memory=1024, description='ct one', digest=old) is None
    err = error_of(pve_token.nodes('pve').lxc(ct).config.put, memory=2048, digest=old)
    assert err.content == 'detected modified configuration - file changed by other user? Try again.'
    assert pve_token.nodes('pve').lxc(ct).config.get()['memory'] == 1024


def test_start_interfaces_snapshot_stop(pve_token, ct):
    err = error_of(pve_token.nodes('pve').lxc(ct).interfaces.get)
    assert err.content == 'CT %d not running' % ct
    wait_ok(pve_token, pve_token.nodes('pve').lxc(ct).status.start.post())
    ifaces = {i['name']: i for i in pve_token.nodes('pve').lxc(ct).interfaces.get()}
    assert ifaces['eth0']['inet'] == '10.0.3.7/24' and ifaces['lo']['inet'] == '127.0.0.1/8'
    assert pve_token.nodes('pve').lxc(ct).status.current.get()['status'] == 'running'
    upid = pve_token.nodes('pve').lxc(ct).snapshot.post(snapname='s1')
    assert upid.split(':')[5] == 'vzsnapshot'
    wait_ok(pve_token, upid)
    pve_token.nodes('pve').lxc(ct).config.put(hostname='renamed')
    wait_ok(pve_token, pve_token.nodes('pve').lxc(ct).snapshot('s1').rollback.post())
    assert pve_token.nodes('pve').lxc(ct).config.get()['hostname'] == 'ct1'
    # a rollback stops the container (no RAM state for CTs)
    assert pve_token.nodes('pve').lxc(ct).status.current.get()['status'] == 'stopped'
    wait_ok(pve_token, pve_token.nodes('pve').lxc(ct).snapshot('s1').delete())


def test_resize_backup_restore_delete(pve_token, ct):
    upid = pve_token.nodes('pve').lxc(ct).resize.put(disk='rootfs', size='+1G')
    assert upid.split(':')[5] == 'resize'
    wait_ok(pve_token, upid)
    assert pve_token.nodes('pve').lxc(ct).config.get()['rootfs'] == 'local-lvm:vm-%d-disk-0,size=3G' % ct
    # pve-container checks before forking
    assert error_of(pve_token.nodes('pve').lxc(ct).resize.put, disk='rootfs', size='1G').content == 'unable to shrink disk size'
    assert error_of(pve_token.nodes('pve').lxc(ct).resize.put, disk='rootfs', size='3G').content == 'disk is already at specified size'
    wait_ok(pve_token, pve_token.nodes('pve').vzdump.post(vmid=ct, storage='local', compress='zstd', mode='stop'))
    backup = pve_token.nodes('pve').storage('local').content.get(content='backup', vmid=ct)[0]
    assert re.match(r'^local:backup/vzdump-lxc-%d-[\d_-]+\.tar\.zst$' % ct, backup['volid']) and backup['subtype'] == 'lxc'
    newid = int(pve_token.cluster.nextid.get())
    upid = pve_token.nodes('pve').lxc.post(vmid=newid, ostemplate=backup['volid'], restore=1, storage='local-lvm')
    assert upid.split(':')[5] == 'vzrestore'
    wait_ok(pve_token, upid)
    conf = pve_token.nodes('pve').lxc(newid).config.get()
    assert conf['hostname'] == 'ct1' and conf['rootfs'] == 'local-lvm:vm-%d-disk-0,size=3G' % newid
    assert pve_token.nodes('pve').lxc(ct).template.post() is None
    # LXC template conversion returns null although it works in the background: nothing to poll but the config
    wait_until(lambda: pve_token.nodes('pve').lxc(ct).config.get().get('template') == 1)
    for vmid in (newid, ct):
        wait_ok(pve_token, pve_token.nodes('pve').lxc(vmid).delete(purge=1))
    assert [g for g in pve_token.nodes('pve').lxc.get() if g['vmid'] in (ct, newid)] == []
    wait_ok(pve_token, pve_token.nodes('pve').storage('local').content(backup['volid']).delete())
    assert pve_token.nodes('pve').storage('local').content.get(content='backup', vmid=ct) == []


def test_lxc_power_checks_before_forking(pve, faults):
    vmid = int(pve.cluster.nextid.get())
    wait_ok(pve, pve.nodes('pve').lxc.post(vmid=vmid, ostemplate=OSTEMPLATE, rootfs='local-lvm:1'))
    api = pve.nodes('pve').lxc(vmid)
    assert error_of(api.status.stop.post).content == 'CT %d not running' % vmid
    wait_ok(pve, api.status.start.post())
    assert error_of(api.status.start.post).content == 'CT %d already running' % vmid
    faults('slow-shutdown:%d' % vmid)
    status = wait_task(pve, api.status.shutdown.post(timeout=1))
    assert status['exitstatus'] == 'container did not stop'
    wait_ok(pve, api.status.shutdown.post(timeout=1, forceStop=1))
    wait_ok(pve, api.delete())
