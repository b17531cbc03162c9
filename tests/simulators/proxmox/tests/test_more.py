# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Node ownership and migration, cloud-init regeneration tracking, unlink, task listing and stopping."""
from __future__ import annotations

import json
import tempfile

import pytest
import requests
from proxmoxer.core import ResourceException

from .conftest import PASSWORD, USER, Sim, wait_ok, wait_task, wait_until


@pytest.fixture()
def clone(pve):
    newid = int(pve.cluster.nextid.get())
    wait_ok(pve, pve.nodes('pve').qemu(9000).clone.post(newid=newid, name='more-%d' % newid))
    yield newid
    for res in pve.cluster.resources.get(type='vm'):
        if res['vmid'] == newid:
            if res['status'] == 'running':
                wait_ok(pve, pve.nodes(res['node']).qemu(newid).status.stop.post())
            wait_ok(pve, pve.nodes(res['node']).qemu(newid).delete())


def test_auth_handler_401s_have_no_body(sim):
    resp = requests.get(sim.url + '/version', verify=sim.cafile, timeout=10)
    assert (resp.status_code, resp.reason, resp.content) == (401, 'No ticket', b'')
    resp = requests.get(sim.url + '/version', headers={'Authorization': 'PVEAPIToken=root@pam!polyvirt=nope'}, verify=sim.cafile, timeout=10)
    assert (resp.status_code, resp.reason, resp.content) == (401, 'Authentication failed!', b'')


def test_offline_migration_moves_guest_and_disks(pve, clone):
    status = wait_task(pve, pve.nodes('pve').qemu(clone).status.start.post())
    assert status['exitstatus'] == 'OK'
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(clone).migrate.post(target='pve2')
    assert err.value.content == "can't migrate running VM without --online"
    wait_ok(pve, pve.nodes('pve').qemu(clone).status.stop.post())
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(clone).migrate.post(target='pve')
    assert err.value.content == 'target is local node.'
    upid = pve.nodes('pve').qemu(clone).migrate.post(target='pve2')
    assert upid.split(':')[5] == 'qmigrate'
    assert pve.nodes('pve').qemu(clone).config.get()['lock'] == 'migrate'
    wait_ok(pve, upid)
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(clone).config.get()
    assert err.value.content == "Configuration file 'nodes/pve/qemu-server/%d.conf' does not exist" % clone
    assert pve.nodes('pve2').qemu(clone).config.get()['name'] == 'more-%d' % clone
    assert [r['node'] for r in pve.cluster.resources.get(type='vm') if r['vmid'] == clone] == ['pve2']
    volids = [v['volid'] for v in pve.nodes('pve2').storage('local-lvm').content.get(vmid=clone)]
    assert 'local-lvm:vm-%d-cloudinit' % clone in volids
    assert pve.nodes('pve').storage('local-lvm').content.get(vmid=clone) == []


def test_cloudinit_pending_until_regenerated(pve, clone):
    api = pve.nodes('pve').qemu(clone)
    wait_ok(pve, api.status.start.post())
    applied = {i['key']: i for i in api.cloudinit.get()}
    assert applied['ipconfig0'] == {'key': 'ipconfig0', 'value': 'ip=dhcp'}
    api.config.put(ciuser='ops', ipconfig0='ip=192.0.2.20/24,gw=192.0.2.1')
    pending = {i['key']: i for i in api.cloudinit.get()}
    assert pending['ciuser'] == {'key': 'ciuser', 'pending': 'ops'}
    assert pending['ipconfig0'] == {'key': 'ipconfig0', 'value': 'ip=dhcp', 'pending': 'ip=192.0.2.20/24,gw=192.0.2.1'}
    assert api.cloudinit.put() is None
    assert all('pending' not in i for i in api.cloudinit.get())


def test_unlink_and_unused_disks(pve, clone):
    api = pve.nodes('pve').qemu(clone)
    wait_ok(pve, api.config.post(scsi1='local-lvm:1'))
    assert api.config.get()['scsi1'] == 'local-lvm:vm-%d-disk-1,size=1G' % clone
    assert api.unlink.put(idlist='scsi1') is None
    conf = api.config.get()
    assert 'scsi1' not in conf and conf['unused0'] == 'local-lvm:vm-%d-disk-1' % clone
    api.config.put(delete='unused0')
    assert 'local-lvm:vm-%d-disk-1' % clone not in [v['volid'] for v in pve.nodes('pve').storage('local-lvm').content.get(vmid=clone)]


def test_task_listing_and_stop(pve, clone, faults):
    faults('slow-shutdown:%d' % clone)
    wait_ok(pve, pve.nodes('pve').qemu(clone).status.start.post())
    upid = pve.nodes('pve').qemu(clone).status.shutdown.post(timeout=30)
    active = pve.nodes('pve').tasks.get(source='active')
    assert upid in [t['upid'] for t in active]
    assert pve.nodes('pve').tasks(upid).delete() is None
    status = wait_task(pve, upid)
    assert status['exitstatus'] == 'interrupted by signal'
    assert upid in [t['upid'] for t in pve.cluster.tasks.get()]
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve2').tasks(upid).status.get()
    assert (err.value.status_code, err.value.errors) == (400, {'upid': 'no such task'})
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').tasks('UPID:nope').status.get()
    assert err.value.errors == {'upid': 'unable to parse worker upid'}


@pytest.fixture
def pve_real_time():
    """A simulator of its own at time scale 1, where a clone holds its source's flock for 2 s: at the suite's
    0.1 the two clones could end before the next request on a loaded machine."""
    with tempfile.TemporaryDirectory(prefix='pve-sim-test-') as workdir:
        server = Sim(['--time-scale', '1'], workdir)
        yield server.api(user=USER, password=PASSWORD)
        assert server.stop() == 0


def test_parallel_clones_of_a_template_and_source_flock(pve_real_time):
    pve = pve_real_time
    first, second = int(pve.cluster.nextid.get()), int(pve.cluster.nextid.get()) + 1
    upids = [pve.nodes('pve').qemu(9000).clone.post(newid=newid, name='par-%d' % newid) for newid in (first, second)]
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(9000).config.put(description='changed while cloning')
    assert err.value.content == "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"
    assert 'lock' not in pve.nodes('pve').qemu(9000).config.get()
    for upid in upids:
        wait_ok(pve, upid)
    for newid in (first, second):
        assert pve.nodes('pve').qemu(newid).config.get()['scsi0'].startswith('local-lvm:vm-%d-disk-0,' % newid)
        wait_ok(pve, pve.nodes('pve').qemu(newid).delete())


def test_special_disks_start_on_create_and_hibernate(pve):
    vmid = int(pve.cluster.nextid.get())
    api = pve.nodes('pve').qemu(vmid)
    wait_ok(pve, pve.nodes('pve').qemu.post(vmid=vmid, start=1, bios='ovmf', efidisk0='local-lvm:1,efitype=4m,pre-enrolled-keys=1',
                                            tpmstate0='local-lvm:1,version=v2.0', net0='e1000,bridge=vmbr0,tag=10',
                                            scsi0='local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2'))
    conf = api.config.get()
    assert conf['efidisk0'] == 'local-lvm:vm-%d-disk-0,efitype=4m,pre-enrolled-keys=1,size=4M' % vmid
    assert conf['tpmstate0'] == 'local-lvm:vm-%d-disk-1,size=4M,version=v2.0' % vmid
    assert conf['scsi0'] == 'local-lvm:vm-%d-disk-2,size=3G' % vmid
    assert conf['net0'].startswith('e1000=BC:24:11:') and conf['net0'].endswith(',bridge=vmbr0,tag=10')
    assert api.status.current.get()['status'] == 'running'
    wait_ok(pve, api.status.suspend.post(todisk=1))
    conf = api.config.get()
    assert conf['lock'] == 'suspended' and conf['vmstate'].startswith('local-lvm:vm-%d-state-suspend-' % vmid)
    assert api.status.current.get()['status'] == 'stopped'
    with pytest.raises(ResourceException) as err:
        api.config.put(cores=2)
    assert err.value.content == 'VM is locked (suspended)'
    wait_ok(pve, api.status.resume.post())
    conf = api.config.get()
    assert 'lock' not in conf and 'vmstate' not in conf and api.status.current.get()['status'] == 'running'
    assert not [v for v in pve.nodes('pve').storage('local-lvm').content.get(vmid=vmid) if 'state' in v['volid']]
    wait_ok(pve, api.status.stop.post())
    wait_ok(pve, api.delete())


def test_power_workers_check_locks(pve, clone):
    upid = pve.nodes('pve').vzdump.post(vmid=clone, storage='local')
    status = wait_task(pve, pve.nodes('pve').qemu(clone).status.start.post())
    assert status['exitstatus'] == 'VM is locked (backup)'
    wait_ok(pve, upid)
    for backup in pve.nodes('pve').storage('local').content.get(content='backup', vmid=clone):
        wait_ok(pve, pve.nodes('pve').storage('local').content(backup['volid']).delete())
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(clone).status.reboot.post()
    assert err.value.content == 'VM %d not running' % clone


def test_clone_to_another_node_needs_shared_storage(pve, clone):
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(clone).clone.post(newid=clone + 50, target='pve2', storage='local-lvm')
    assert err.value.content == "can't clone to non-shared storage 'local-lvm'"
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(clone).clone.post(newid=clone + 50, target='pve2')
    assert err.value.content == "can't clone VM to node 'pve2' (VM uses local storage)"
    wait_ok(pve, pve.nodes('pve').qemu(clone).move_disk.post(disk='scsi0', storage='nfs1', delete=1))
    wait_ok(pve, pve.nodes('pve').qemu(clone).config.post(delete='ide2'))
    assert pve.nodes('pve').qemu(clone).config.get()['scsi0'].startswith('nfs1:%d/vm-%d-disk-0.raw,' % (clone, clone))
    newid = clone + 50
    wait_ok(pve, pve.nodes('pve').qemu(clone).clone.post(newid=newid, target='pve2', full=1))
    conf = pve.nodes('pve2').qemu(newid).config.get()
    assert conf['scsi0'].startswith('nfs1:%d/vm-%d-disk-0.raw,' % (newid, newid))
    assert {v['volid'] for v in pve.nodes('pve').storage('nfs1').content.get(vmid=newid)} == {'nfs1:%d/vm-%d-disk-0.raw' % (newid, newid)}
    wait_ok(pve, pve.nodes('pve2').qemu(newid).delete())


def test_agent_exec_and_array_parameters(pve, clone, raw):
    api = pve.nodes('pve').qemu(clone)
    wait_ok(pve, api.status.start.post())

    def exec_status(argv):
        try:
            pid = api.agent.exec.post(command=argv)['pid']
        except ResourceException as exc:
            assert exc.content == 'QEMU guest agent is not running'
            return None
        return api.agent('exec-status').get(pid=pid)
    status = wait_until(lambda: exec_status(['cloud-init', 'status', '--wait']))
    assert status == {'exited': 1, 'exitcode': 0, 'out-data': 'status: done\n'}
    assert exec_status(['rm', '-rf', '/'])['exitcode'] == 127
    resp = raw.post(raw.base + '/nodes/pve/qemu/%d/agent/exec' % clone, json={'command': [['nested']]})
    assert resp.json()['errors'] == {'command[0]': "type check ('string') failed"}


def test_backup_notes_protection_and_pruning(pve, clone):
    for dummy in range(3):
        wait_ok(pve, pve.nodes('pve').vzdump.post(vmid=clone, storage='local', **{'prune-backups': 'keep-last=2'}))
    backups = pve.nodes('pve').storage('local').content.get(content='backup', vmid=clone)
    assert len(backups) == 2
    first = sorted(backups, key=lambda b: b['volid'])[0]['volid']
    assert pve.nodes('pve').storage('local').content(first).put(notes='keep me', protected=1) is None
    item = [b for b in pve.nodes('pve').storage('local').content.get(content='backup', vmid=clone) if b['volid'] == first][0]
    assert item['notes'] == 'keep me' and item['protected'] == 1
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').storage('local').content(first).delete()
    assert err.value.content == "volume '%s' is protected" % first
    pve.nodes('pve').storage('local').content(first).put(protected=0)
    for backup in pve.nodes('pve').storage('local').content.get(content='backup', vmid=clone):
        wait_ok(pve, pve.nodes('pve').storage('local').content(backup['volid']).delete())


def test_running_vm_hotplug_rules_and_unused_reattach(pve, clone):
    api = pve.nodes('pve').qemu(clone)
    wait_ok(pve, api.config.post(scsi1='local-lvm:1', boot='order=scsi0;scsi1;net0'))
    wait_ok(pve, api.status.start.post())
    # scsi disks and NICs hot-plug; ide and sata devices (a new CD-ROM drive too) and cores wait for a restart
    wait_ok(pve, api.config.post(ide0='local:iso/debian-12.12.0-amd64-netinst.iso,media=cdrom', sata0='local-lvm:1', cores=3, delete='scsi1'))
    current = api.config.get(current=1)
    assert 'ide0' not in current and 'sata0' not in current and current['cores'] == 2
    assert current['unused0'] == 'local-lvm:vm-%d-disk-1' % clone and current['boot'] == 'order=scsi0;net0'
    pending = {p['key']: p for p in api.pending.get()}
    assert pending['sata0']['pending'].startswith('local-lvm:vm-%d-disk-2,' % clone) and pending['cores']['pending'] == 3
    assert pending['ide0']['pending'] == 'local:iso/debian-12.12.0-amd64-netinst.iso,media=cdrom'
    # the medium of a CD-ROM drive that is there changes at once; removing an ide drive waits for a restart
    wait_ok(pve, api.config.post(scsi4='none,media=cdrom'))
    wait_ok(pve, api.config.post(scsi4='local:iso/debian-12.12.0-amd64-netinst.iso,media=cdrom'))
    assert api.config.get(current=1)['scsi4'] == 'local:iso/debian-12.12.0-amd64-netinst.iso,media=cdrom'
    wait_ok(pve, api.config.post(delete='scsi4'))
    assert 'scsi4' not in api.config.get(current=1)
    wait_ok(pve, api.config.post(scsi2='local-lvm:vm-%d-disk-1' % clone))
    current = api.config.get(current=1)
    assert current['scsi2'] == 'local-lvm:vm-%d-disk-1,size=1G' % clone and 'unused0' not in current


def test_new_disk_storage_checked_before_forking(pve, clone):
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(clone).config.post(scsi5='nope:1')
    assert err.value.content == "storage 'nope' does not exist"
    # checked before the VMID: the existing VM is not the error
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu.post(vmid=clone, scsi0='nope:1')
    assert err.value.content == "storage 'nope' does not exist"
    assert 'scsi5' not in pve.nodes('pve').qemu(clone).config.get()


def test_snapshot_worker_lock_errors_are_task_errors(pve, clone, faults):
    api = pve.nodes('pve').qemu(clone)
    first = api.snapshot.post(snapname='one')
    second = api.snapshot.post(snapname='two')
    statuses = sorted(wait_task(pve, u)['exitstatus'] for u in (first, second))
    assert statuses in (['OK', 'VM is locked (snapshot)'], ['OK', 'OK'])
    assert 'lock' not in api.config.get()
    faults('lock-timeout:%d' % clone)
    status = wait_task(pve, api.snapshot.post(snapname='three'))
    assert status['exitstatus'] == "can't lock file '/var/lock/qemu-server/lock-%d.conf' - got timeout" % clone
    for snap in api.snapshot.get():
        if snap['name'] != 'current':
            wait_ok(pve, api.snapshot(snap['name']).delete())
    assert [s['name'] for s in api.snapshot.get()] == ['current']


def test_destroying_a_template_keeps_base_volumes_in_use(pve):
    tmpl, child = int(pve.cluster.nextid.get()), int(pve.cluster.nextid.get()) + 1
    wait_ok(pve, pve.nodes('pve').qemu.post(vmid=tmpl, scsi0='local-lvm:1', name='tmpl'))
    wait_ok(pve, pve.nodes('pve').qemu(tmpl).template.post())
    wait_ok(pve, pve.nodes('pve').qemu(tmpl).clone.post(newid=child, name='child'))
    status = wait_task(pve, pve.nodes('pve').qemu(tmpl).delete())
    assert status['exitstatus'] == 'WARNINGS: 1'
    with pytest.raises(ResourceException):
        pve.nodes('pve').qemu(tmpl).config.get()
    volids = [v['volid'] for v in pve.nodes('pve').storage('local-lvm').content.get()]
    assert 'local-lvm:base-%d-disk-0' % tmpl in volids
    wait_ok(pve, pve.nodes('pve').qemu(child).delete())
    wait_ok(pve, pve.nodes('pve').storage('local-lvm').content('local-lvm:base-%d-disk-0' % tmpl).delete())
    assert pve.nodes('pve').storage('local-lvm').content.get(vmid=tmpl) == []


def test_allocate_free_disk_then_attach(pve, clone):
    storage = pve.nodes('pve').storage('local-lvm')
    with pytest.raises(ResourceException) as err:
        storage.content.post(vmid=clone, filename='disk-9', size='1G')
    assert err.value.content == "illegal name 'disk-9' - should be 'vm-%d-*'" % clone
    volid = storage.content.post(vmid=clone, filename='vm-%d-disk-9' % clone, size='2048M')
    assert volid == 'local-lvm:vm-%d-disk-9' % clone
    assert pve.nodes('pve').storage('local').content.post(vmid=clone, filename='vm-%d-disk-9.qcow2' % clone, size='1048576') == \
        'local:%d/vm-%d-disk-9.qcow2' % (clone, clone)
    wait_ok(pve, pve.nodes('pve').qemu(clone).config.post(virtio3=volid))
    assert pve.nodes('pve').qemu(clone).config.get()['virtio3'] == '%s,size=2G' % volid


def test_cicustom_snippets_checked_at_start(pve, clone):
    api = pve.nodes('pve').qemu(clone)
    api.config.put(cicustom='user=local:snippets/missing.yaml')
    status = wait_task(pve, api.status.start.post())
    assert status['exitstatus'] == "can't find file 'local:snippets/missing.yaml'"
    api.config.put(cicustom='user=local:snippets/user-data.yaml')
    wait_ok(pve, api.status.start.post())


def test_unknown_bridge_fails_start(pve, clone):
    assert [n['iface'] for n in pve.nodes('pve').network.get(type='bridge')] == ['vmbr0']
    pve.nodes('pve').qemu(clone).config.put(net1='virtio,bridge=vmbr9')
    status = wait_task(pve, pve.nodes('pve').qemu(clone).status.start.post())
    assert status['exitstatus'] == "bridge 'vmbr9' does not exist"


def test_vm_without_disks_in_resources(pve):
    """A VM with no disk and no NIC has no boot order (print_bootorder of nothing) and a maxdisk of 0."""
    vmid = int(pve.cluster.nextid.get())
    wait_ok(pve, pve.nodes('pve').qemu.post(vmid=vmid, name='sim-nodisk', memory='512'))
    assert 'boot' not in pve.nodes('pve').qemu(vmid).config.get()
    item = next(r for r in pve.cluster.resources.get(type='vm') if r['vmid'] == vmid)
    assert (item['name'], item['maxdisk'], item['status']) == ('sim-nodisk', 0, 'stopped')
    # the last disk leaving the boot order takes the order with it
    wait_ok(pve, pve.nodes('pve').qemu(vmid).config.post(scsi0='local-lvm:1'))
    assert pve.nodes('pve').qemu(vmid).config.get()['boot'] == 'order=scsi0'
    wait_ok(pve, pve.nodes('pve').qemu(vmid).config.post(delete='scsi0'))
    config = pve.nodes('pve').qemu(vmid).config.get()
    assert 'boot' not in config and config['unused0'].startswith('local-lvm:vm-%d-disk-' % vmid)
    item = next(r for r in pve.cluster.resources.get(type='vm') if r['vmid'] == vmid)
    assert item['maxdisk'] == 0
    wait_ok(pve, pve.nodes('pve').qemu(vmid).delete())


def test_a_paused_vm_is_listed_paused(pve):
    """pvestatd records a running VM's QMP status (`qmpstatus || status`) and cluster/resources lists that record."""
    vmid = int(pve.cluster.nextid.get())
    wait_ok(pve, pve.nodes('pve').qemu.post(vmid=vmid, name='sim-pause', memory='512', scsi0='local-lvm:1'))
    api = pve.nodes('pve').qemu(vmid)
    wait_ok(pve, api.status.start.post())
    wait_ok(pve, api.status.suspend.post())

    def listed():
        return next(r for r in pve.cluster.resources.get(type='vm') if r['vmid'] == vmid)['status']
    assert (listed(), api.status.current.get()['status'], api.status.current.get()['qmpstatus']) == ('paused', 'running', 'paused')
    wait_ok(pve, api.status.resume.post())
    assert listed() == 'running'
    wait_ok(pve, api.status.stop.post())
    assert listed() == 'stopped'
    wait_ok(pve, api.delete())


def test_agent_file_read_of_cloud_init_result(pve):
    vmid = int(pve.cluster.nextid.get())
    wait_ok(pve, pve.nodes('pve').qemu.post(vmid=vmid, name='sim-fileread', memory='512', scsi0='local-lvm:1', agent='1'))
    api = pve.nodes('pve').qemu(vmid)
    wait_ok(pve, api.status.start.post())

    def read():
        try:
            return api.agent('file-read').get(file='/run/cloud-init/result.json')
        except ResourceException as exc:
            assert exc.content == 'QEMU guest agent is not running'
            return None
    found = wait_until(read)
    assert json.loads(found['content'])['v1']['errors'] == [] and 'truncated' not in found
    assert api.agent('file-read').get(file='/run/cloud-init/result.json', count=4) == {'content': '{\n "', 'truncated': 1}
    with pytest.raises(ResourceException) as err:
        api.agent('file-read').get(file='/nope')
    assert err.value.content == "Agent error: Failed to open file '/nope': No such file or directory"
    wait_ok(pve, api.status.stop.post())
    wait_ok(pve, api.delete())
