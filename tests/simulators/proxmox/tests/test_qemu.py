# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""QEMU guests end to end with proxmoxer: create, config, power, agent, snapshots, clone, resize, backup, restore."""
from __future__ import annotations

import re

import pytest
from proxmoxer.core import ResourceException

from .conftest import quote_keys, wait_ok, wait_task, wait_until

SSH_KEYS = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk8j2nR1q0p8tM4rN8Vv6m7y9bJjVdE5sQzXk3Wm1aB alice@example.com\n'


def config(api, vmid, node='pve', **params):
    return api.nodes(node).qemu(vmid).config.get(**params)


def error_of(call, *args, **kwargs):
    with pytest.raises(ResourceException) as err:
        call(*args, **kwargs)
    return err.value


@pytest.fixture(scope='module')
def vm(pve):
    """A VM created from scratch (module-scoped; each test below builds on the previous state)."""
    vmid = int(pve.cluster.nextid.get())
    upid = pve.nodes('pve').qemu.post(vmid=vmid, name='sim-vm1', memory='1024', cores=1, scsihw='virtio-scsi-single',
                                      scsi0='local-lvm:4,discard=on,ssd=1', ide2='local-lvm:cloudinit', net0='virtio,bridge=vmbr0',
                                      agent='enabled=1', ipconfig0='ip=dhcp', serial0='socket', tags='web;a', ostype='l26')
    assert upid.split(':')[5:7] == ['qmcreate', str(vmid)]
    locked = config(pve, vmid)
    assert locked['lock'] == 'create'
    wait_ok(pve, upid)
    return vmid


def test_create_writes_pve_defaults(pve, vm):
    conf = config(pve, vm)
    assert 'lock' not in conf
    assert conf['scsi0'] == 'local-lvm:vm-%d-disk-0,discard=on,size=4G,ssd=1' % vm
    assert conf['ide2'] == 'local-lvm:vm-%d-cloudinit,media=cdrom' % vm
    assert re.match(r'^virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},bridge=vmbr0$', conf['net0'])
    assert conf['boot'] == 'order=scsi0;net0'
    assert re.match(r'^uuid=[0-9a-f-]{36}$', conf['smbios1'])
    assert re.match(r'^creation-qemu=[\d.]+,ctime=\d+$', conf['meta'])
    assert conf['cores'] == 1 and conf['memory'] == '1024' and conf['tags'] == 'a;web'
    assert re.match(r'^[0-9a-f]{40}$', conf['digest'])
    status = pve.nodes('pve').qemu(vm).status.current.get()
    assert (status['status'], status['qmpstatus'], status['vmid'], status['maxmem']) == ('stopped', 'stopped', vm, 1 << 30)
    images = pve.nodes('pve').storage('local-lvm').content.get(vmid=vm)
    assert sorted(i['volid'] for i in images) == ['local-lvm:vm-%d-cloudinit' % vm, 'local-lvm:vm-%d-disk-0' % vm]


def test_create_existing_vmid_fails(pve, vm):
    err = error_of(pve.nodes('pve').qemu.post, vmid=vm)
    assert (err.status_code, err.content) == (500, "unable to create VM %d - VM %d already exists on node 'pve'" % (vm, vm))


def test_digest_conflict_and_delete_semantics(pve, vm):
    old = config(pve, vm)['digest']
    assert pve.nodes('pve').qemu(vm).config.put(description='first line\nsecond', digest=old) is None
    conf = config(pve, vm)
    assert conf['description'] == 'first line\nsecond' and conf['digest'] != old
    err = error_of(pve.nodes('pve').qemu(vm).config.put, cores=2, digest=old)
    assert (err.status_code, err.content) == (500, 'checksum mismatch (file change by other user?)')
    err = error_of(pve.nodes('pve').qemu(vm).config.put, cores=2, delete='cores')
    assert err.errors == {'delete': "you can't use '-cores' and -delete cores' at the same time"}
    err = error_of(pve.nodes('pve').qemu(vm).config.put)
    assert err.content == 'no options specified'
    upid = pve.nodes('pve').qemu(vm).config.post(delete='hookscript,description')
    status = wait_task(pve, upid)
    assert status['exitstatus'] == 'WARNINGS: 1'
    log = [line['t'] for line in pve.nodes('pve').tasks(upid).log.get()]
    assert "WARN: cannot delete 'hookscript' - not set in current configuration!" in log and log[-1] == 'TASK WARNINGS: 1'
    assert 'description' not in config(pve, vm)


def test_cloud_init_options_and_dump(pve, vm):
    encoded = quote_keys(SSH_KEYS)
    plus = SSH_KEYS.replace(' ', '+').rstrip('\n')
    err = error_of(pve.nodes('pve').qemu(vm).config.put, sshkeys=plus)
    assert err.errors == {'sshkeys': 'invalid format - invalid urlencoded string: %s\n' % plus}
    pve.nodes('pve').qemu(vm).config.put(ciuser='debian', cipassword='s3cret', sshkeys=encoded, nameserver='1.1.1.1 9.9.9.9',
                                         searchdomain='example.com', ipconfig0='ip=192.0.2.10/24,gw=192.0.2.1', citype='nocloud')
    conf = config(pve, vm)
    assert conf['sshkeys'] == encoded and conf['cipassword'] == '**********'
    user = pve.nodes('pve').qemu(vm).cloudinit.dump.get(type='user')
    assert user.startswith('#cloud-config\nhostname: sim-vm1\nmanage_etc_hosts: true\nfqdn: sim-vm1.example.com\nuser: debian\npassword: $5$')
    assert '\nssh_authorized_keys:\n  - %s\nchpasswd:\n  expire: False\nusers:\n  - default\npackage_upgrade: true\n' % SSH_KEYS.strip() in user
    network = pve.nodes('pve').qemu(vm).cloudinit.dump.get(type='network')
    mac = re.search(r'virtio=([0-9A-F:]{17})', conf['net0']).group(1).lower()
    assert network == ("version: 1\nconfig:\n    - type: physical\n      name: eth0\n      mac_address: '%s'\n      subnets:\n"
                       "      - type: static\n        address: '192.0.2.10'\n        netmask: '255.255.255.0'\n        gateway: '192.0.2.1'\n"
                       "    - type: nameserver\n      address:\n      - '1.1.1.1'\n      - '9.9.9.9'\n      search:\n      - 'example.com'\n") % mac
    assert re.match(r'^instance-id: [0-9a-f]{40}\n$', pve.nodes('pve').qemu(vm).cloudinit.dump.get(type='meta'))
    err = error_of(pve.nodes('pve').qemu(vm).config.put, sshkeys=quote_keys('not a key\n'))
    assert err.content == 'SSH public key validation error'


def test_start_agent_and_pending(pve, vm):
    err = error_of(pve.nodes('pve').qemu(vm).agent('network-get-interfaces').get)
    assert err.content == 'VM %d is not running' % vm
    wait_ok(pve, pve.nodes('pve').qemu(vm).status.start.post())
    status = wait_task(pve, pve.nodes('pve').qemu(vm).status.start.post())
    assert status['exitstatus'] == 'VM %d already running' % vm

    def agent_ifaces():
        try:
            return pve.nodes('pve').qemu(vm).agent('network-get-interfaces').get()['result']
        except ResourceException as exc:
            assert exc.content == 'QEMU guest agent is not running'
            return None
    ifaces = wait_until(agent_ifaces)
    eth0 = [i for i in ifaces if i['name'] == 'eth0'][0]
    assert {'ip-address': '192.0.2.10', 'ip-address-type': 'ipv4', 'prefix': 24} in eth0['ip-addresses']
    # cores is not hot-pluggable: stays pending on a running VM; name applies at once
    pve.nodes('pve').qemu(vm).config.put(cores=2, name='sim-vm1b')
    assert config(pve, vm)['cores'] == 2
    assert config(pve, vm, current=1)['cores'] == 1 and config(pve, vm, current=1)['name'] == 'sim-vm1b'
    pending = {p['key']: p for p in pve.nodes('pve').qemu(vm).pending.get()}
    assert pending['cores'] == {'key': 'cores', 'value': 1, 'pending': 2}
    wait_ok(pve, pve.nodes('pve').qemu(vm).status.reboot.post())
    assert config(pve, vm, current=1)['cores'] == 2
    assert 'pending' not in {p['key']: p for p in pve.nodes('pve').qemu(vm).pending.get()}['cores']


def test_delete_running_refused(pve, vm):
    err = error_of(pve.nodes('pve').qemu(vm).delete)
    assert err.content == 'VM %d is running - destroy failed' % vm


def test_snapshots_and_rollback(pve, vm):
    pve.nodes('pve').qemu(vm).config.put(description='the VM itself')
    wait_ok(pve, pve.nodes('pve').qemu(vm).snapshot.post(snapname='before', description='clean state'))
    err = error_of(pve.nodes('pve').qemu(vm).snapshot.post, snapname='current')
    assert (err.status_code, err.content) == (500, "unable to use snapshot name 'current' (reserved name)")
    status = wait_task(pve, pve.nodes('pve').qemu(vm).snapshot.post(snapname='before'))
    assert status['exitstatus'] == "snapshot name 'before' already used"
    snaps = pve.nodes('pve').qemu(vm).snapshot.get()
    assert [s['name'] for s in snaps] == ['before', 'current']
    assert snaps[0]['description'] == 'clean state' and snaps[0]['vmstate'] == 0
    assert snaps[1]['parent'] == 'before' and snaps[1]['running'] == 1
    pve.nodes('pve').qemu(vm).config.put(memory='2048', onboot=1)
    wait_ok(pve, pve.nodes('pve').qemu(vm).snapshot('before').rollback.post())
    conf = config(pve, vm)
    assert conf['memory'] == '1024' and 'onboot' not in conf and conf['parent'] == 'before'
    assert conf['description'] == 'the VM itself'  # the snapshot's comment does not replace it
    assert pve.nodes('pve').qemu(vm).status.current.get()['status'] == 'stopped'
    wait_ok(pve, pve.nodes('pve').qemu(vm).snapshot('before').delete())
    assert [s['name'] for s in pve.nodes('pve').qemu(vm).snapshot.get()] == ['current']
    status = wait_task(pve, pve.nodes('pve').qemu(vm).snapshot('before').delete())
    assert status['exitstatus'] == "snapshot 'before' does not exist"


def test_resize_grow_only(pve, vm):
    wait_ok(pve, pve.nodes('pve').qemu(vm).resize.put(disk='scsi0', size='+1G'))
    assert config(pve, vm)['scsi0'].split(',')[2] == 'size=5G'
    # qemu-server checks everything in the resize worker: task errors, not sync ones
    for disk, size, error in (('scsi0', '2G', 'shrinking disks is not supported'), ('ide2', '+1G', "you can't resize a cdrom"),
                              ('scsi3', '+1G', "disk 'scsi3' does not exist")):
        status = wait_task(pve, pve.nodes('pve').qemu(vm).resize.put(disk=disk, size=size))
        assert status['exitstatus'] == error
    wait_ok(pve, pve.nodes('pve').qemu(vm).resize.put(disk='scsi0', size='5G'))
    assert config(pve, vm)['scsi0'].split(',')[2] == 'size=5G'


def test_full_clone_locks_target(pve, vm):
    newid = int(pve.cluster.nextid.get())
    upid = pve.nodes('pve').qemu(vm).clone.post(newid=newid, name='sim-clone', full=1)
    assert upid.split(':')[5:7] == ['qmclone', str(vm)]
    err = error_of(pve.nodes('pve').qemu(newid).config.put, cores=4)
    assert err.content == 'VM is locked (clone)'
    wait_ok(pve, upid)
    src, dst = config(pve, vm), config(pve, newid)
    assert dst['name'] == 'sim-clone' and 'lock' not in dst
    assert dst['scsi0'].startswith('local-lvm:vm-%d-disk-0,' % newid) and 'size=5G' in dst['scsi0']
    assert dst['net0'] != src['net0'] and dst['smbios1'] != src['smbios1']
    err = error_of(pve.nodes('pve').qemu(vm).clone.post, newid=newid)
    assert err.content == 'unable to create VM %d: config file already exists' % newid
    err = error_of(pve.nodes('pve').qemu(vm).clone.post, newid=newid + 1, full=0)
    assert err.content == "Linked clone feature is not supported for 'local-lvm:vm-%d-disk-0' (scsi0)" % vm
    wait_ok(pve, pve.nodes('pve').qemu(newid).delete(purge=1))


def test_linked_clone_of_seed_template(pve, pve_token):
    newid = int(pve.cluster.nextid.get())
    upid = pve_token.nodes('pve').qemu(9000).clone.post(newid=newid, name='from-template')
    assert upid.endswith(':qmclone:9000:root@pam!polyvirt:')
    status = wait_ok(pve_token, upid)
    assert status['user'] == 'root@pam' and status['tokenid'] == 'polyvirt'
    conf = config(pve, newid)
    assert conf['scsi0'] == 'local-lvm:vm-%d-disk-0,size=3G' % newid  # lvmthin: no base/ prefix (LvmThinPlugin.pm clone_image)
    assert conf['ide2'] == 'local-lvm:vm-%d-cloudinit,media=cdrom' % newid
    status = wait_task(pve, pve.nodes('pve').qemu(9000).status.start.post())
    assert status['exitstatus'] == "you can't start a vm if it's a template"
    err = error_of(pve.nodes('pve').qemu(9000).clone.post, newid=newid + 1, target='pve2')
    assert err.content == "can't clone VM to node 'pve2' (VM uses local storage)"
    wait_ok(pve, pve.nodes('pve').qemu(newid).delete())


def test_backup_and_restore(pve, vm):
    upid = pve.nodes('pve').vzdump.post(vmid=vm, storage='local', mode='snapshot', compress='zstd', **{'notes-template': '{{guestname}} nightly'})
    assert upid.split(':')[5:7] == ['vzdump', str(vm)]
    assert config(pve, vm)['lock'] == 'backup'
    wait_ok(pve, upid)
    backups = [b for b in pve.nodes('pve').storage('local').content.get(content='backup', vmid=vm) if b['subtype'] == 'qemu']
    assert len(backups) == 1
    backup = backups[0]
    assert re.match(r'^local:backup/vzdump-qemu-%d-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$' % vm, backup['volid'])
    assert (backup['format'], backup['subtype'], backup['vmid'], backup['notes']) == ('vma.zst', 'qemu', vm, 'sim-vm1b nightly')
    assert 'name: sim-vm1b' in pve.nodes('pve').vzdump.extractconfig.get(volume=backup['volid'])
    err = error_of(pve.nodes('pve').qemu.post, vmid=vm, archive=backup['volid'])
    assert err.content == "unable to restore VM %d - VM %d already exists on node 'pve'" % (vm, vm)
    err = error_of(pve.nodes('pve').qemu.post, vmid=vm + 50, archive=backup['volid'], scsi0='local-lvm:1')
    assert err.errors == {'scsi0': "option conflicts with option 'archive'"}
    newid = int(pve.cluster.nextid.get())
    upid = pve.nodes('pve').qemu.post(vmid=newid, archive=backup['volid'], storage='local-lvm', unique=1, name='restored')
    assert upid.split(':')[5] == 'qmrestore'
    wait_ok(pve, upid)
    src, dst = config(pve, vm), config(pve, newid)
    assert dst['name'] == 'restored' and dst['ciuser'] == 'debian' and dst['memory'] == src['memory']
    assert dst['scsi0'].startswith('local-lvm:vm-%d-disk-0,' % newid) and 'size=5G' in dst['scsi0']
    assert dst['net0'] != src['net0'] and dst['ide2'] == 'local-lvm:vm-%d-cloudinit,media=cdrom' % newid
    assert dst['vmgenid'] != src['vmgenid']  # PVE makes a new generation id on every restore
    wait_ok(pve, pve.nodes('pve').qemu(newid).delete())
    wait_ok(pve, pve.nodes('pve').storage('local').content(backup['volid']).delete())
    assert backup['volid'] not in [b['volid'] for b in pve.nodes('pve').storage('local').content.get(content='backup')]


def test_template_and_delete(pve, vm):
    wait_ok(pve, pve.nodes('pve').qemu(vm).template.post())
    conf = config(pve, vm)
    assert conf['template'] == 1 and conf['scsi0'].startswith('local-lvm:base-%d-disk-0,' % vm)
    err = error_of(pve.nodes('pve').qemu(vm).template.post)
    assert err.content == "you can't convert a template to a template"
    upid = pve.nodes('pve').qemu(vm).delete(purge=1, **{'destroy-unreferenced-disks': 1})
    assert upid.split(':')[5] == 'qmdestroy'
    wait_ok(pve, upid)
    err = error_of(config, pve, vm)
    assert err.content == "Configuration file 'nodes/pve/qemu-server/%d.conf' does not exist" % vm
    assert pve.nodes('pve').storage('local-lvm').content.get(vmid=vm) == []
    assert vm not in [r['vmid'] for r in pve.cluster.resources.get(type='vm')]
