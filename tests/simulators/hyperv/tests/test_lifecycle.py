# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Full VM lifecycles through the reference scripts, over pywinrm with the stdin bootstrap."""

from __future__ import annotations

import json
import threading
import time

from pypsrp.shell import Process, WinRS
from pypsrp.wsman import WSMan

from tests.simulators.hyperv import scripts
from tests.simulators.hyperv.tests.conftest import PASSWORD, USER, Client, Emulator

GB = 1024 ** 3
D = 'D:\\Hyper-V\\'


def test_host_and_switches(client):
    host = client.ok('host_get')
    assert host['name'] == 'HV-SIM01'
    assert host['virtual_hard_disk_path'].endswith('Virtual Hard Disks')
    assert [s['type'] for s in host['switches']] == ['Internal', 'External']


def test_vm_lifecycle(client):
    base = client.ok('vhd_create', {'path': D + 'base.vhdx', 'size': 20 * GB, 'type': 'dynamic'})
    assert (base['type'], base['format'], base['size'], base['parent_path']) == ('Dynamic', 'VHDX', 20 * GB, None)
    child = client.ok('vhd_create', {'path': D + 'life.vhdx', 'type': 'differencing', 'parent_path': D + 'base.vhdx'})
    assert (child['type'], child['parent_path'], child['size']) == ('Differencing', D + 'base.vhdx', 20 * GB)
    assert 'The file exists' in client.fails('vhd_create', {'path': D + 'life.vhdx', 'size': GB})

    vm = client.ok('vm_create', {'name': 'life', 'generation': 2, 'memory_startup': 2 * GB, 'switch': 'Default Switch',
                                 'vhd_path': D + 'life.vhdx', 'cpu': 2, 'notes': '{"owner": "polyvirt"}'})
    assert (vm['state'], vm['cpu'], vm['memory_startup'], vm['secure_boot']) == ('Off', 2, 2 * GB, 'On')
    assert vm['notes'] == '{"owner": "polyvirt"}'
    assert vm['disks'] == [{'path': D + 'life.vhdx', 'controller_type': 'SCSI', 'controller_number': 0, 'controller_location': 0}]
    assert vm['nics'][0]['ips'] == [] and vm['nics'][0]['switch'] == 'Default Switch'
    assert client.ok('vm_get', {'name': 'LIFE'})['id'] == vm['id']

    running = client.ok('vm_start', {'name': 'life', 'wait_ip': True, 'timeout': 10})
    assert running['state'] == 'Running'
    ips = running['nics'][0]['ips']
    assert ips[0].startswith('172.20.16.') and ips[1].startswith('fe80::')
    assert client.ok('nic_list', {'name': 'life'})[0]['ips'] == ips

    assert "Failed to modify device 'Processor'" in client.fails('vm_set', {'name': 'life', 'cpu': 4})
    # Runtime memory resize: startup memory changes while running, dynamic memory does not; 2 MB steps.
    assert client.ok('vm_set', {'name': 'life', 'memory_startup': 3 * GB})['memory_startup'] == 3 * GB
    assert "Failed to modify device 'Memory'" in client.fails('vm_set', {'name': 'life', 'dynamic_memory': True})
    assert 'properly aligned' in client.fails('vm_set', {'name': 'life', 'memory_startup': 1000000000})
    assert "being used by another process" in client.fails('vhd_remove', {'path': D + 'life.vhdx'})
    grown = client.ok('vhd_resize', {'path': D + 'life.vhdx', 'size': 25 * GB})  # online: VHDX on SCSI
    assert grown['size'] == 25 * GB
    assert 'its minimum size is %d bytes' % (20 * GB) in client.fails('vhd_resize', {'path': D + 'life.vhdx', 'size': 10 * GB})
    assert client.ok('vhd_resize', {'path': D + 'life.vhdx', 'size': 22 * GB})['size'] == 22 * GB  # a differencing VHDX shrinks too

    paused = client.ok('vm_suspend', {'name': 'life'})
    assert paused['state'] == 'Paused' and paused['nics'][0]['ips'] == []
    assert client.ok('vm_resume', {'name': 'life'})['state'] == 'Running'
    assert client.ok('vm_restart', {'name': 'life'})['state'] == 'Running'

    stopped = client.ok('vm_stop', {'name': 'life'})
    assert (stopped['state'], stopped['nics'][0]['ips'], stopped['memory_assigned']) == ('Off', [], 0)
    changed = client.ok('vm_set', {'name': 'life', 'cpu': 4, 'dynamic_memory': True, 'memory_minimum': GB, 'memory_maximum': 8 * GB})
    assert (changed['cpu'], changed['dynamic_memory'], changed['memory_maximum']) == (4, True, 8 * GB)
    assert client.ok('vm_rename', {'name': 'life', 'new_name': 'life2'})['name'] == 'life2'
    assert 'unable to find a virtual machine with name "life"' in client.fails('vm_start', {'name': 'life'})

    removed = client.ok('vm_remove', {'name': 'life2', 'delete_disks': True})
    assert removed == {'removed': True, 'deleted_files': [D + 'life.vhdx']}
    assert client.ok('vm_get', {'name': 'life2'}) is None
    assert client.ok('vhd_get', {'path': D + 'life.vhdx'}) is None
    assert client.ok('vhd_get', {'path': D + 'base.vhdx'})['attached'] is False
    assert client.ok('vm_remove', {'name': 'life2'}) == {'removed': False, 'deleted_files': []}


def test_gen1_ide_and_drives(client):
    vm = client.ok('vm_create', {'name': 'old', 'generation': 1, 'memory_startup': GB, 'new_vhd': {'path': D + 'old.vhdx', 'size': 8 * GB}})
    assert vm['secure_boot'] is None and vm['disks'][0]['controller_type'] == 'IDE'
    client.ok('vhd_create', {'path': D + 'data.vhdx', 'size': 4 * GB, 'type': 'fixed'})
    disks = client.ok('disk_attach', {'name': 'old', 'path': D + 'data.vhdx'})
    assert [(d['controller_type'], d['controller_location']) for d in disks] == [('IDE', 0), ('IDE', 1)]
    client.ok('vm_start', {'name': 'old'})
    assert "Failed to modify device 'Virtual Hard Disk'" in client.fails('disk_detach', {'name': 'old', 'path': D + 'data.vhdx'})
    assert 'used by another process' in client.fails('vhd_resize', {'path': D + 'data.vhdx', 'size': 6 * GB})
    client.ok('vm_stop', {'name': 'old', 'mode': 'turnoff'})
    assert client.ok('disk_detach', {'name': 'old', 'path': D + 'data.vhdx'})[0]['path'] == D + 'old.vhdx'
    assert client.ok('vhd_resize', {'path': D + 'data.vhdx', 'size': 6 * GB})['file_size'] > 6 * GB
    assert client.ok('vhd_remove', {'path': D + 'data.vhdx'}) == {'removed': True}
    client.ok('vm_remove', {'name': 'old', 'delete_disks': True})


def test_nics_vlan_and_kvp(client):
    client.ok('vm_create', {'name': 'net', 'generation': 2, 'memory_startup': GB})
    nics = client.ok('nic_add', {'name': 'net', 'nic': 'backend', 'switch': 'External', 'mac': '00-15-5D-AA-BB-01'})
    assert [(n['name'], n['mac'], n['switch']) for n in nics][1] == ('backend', '00155DAABB01', 'External')
    assert client.ok('nic_vlan', {'name': 'net', 'nic': 'backend', 'vlan_id': 10})[1]['vlan_id'] == 10
    assert client.ok('nic_vlan', {'name': 'net', 'nic': 'backend', 'vlan_id': None})[1]['vlan_id'] == 0
    assert client.ok('nic_connect', {'name': 'net', 'nic': 'Network Adapter', 'switch': 'Default Switch'})[0]['switch'] == 'Default Switch'
    client.ok('vm_set', {'name': 'net', 'kvp': False})
    vm = client.ok('vm_start', {'name': 'net'})
    assert all(n['ips'] == [] for n in vm['nics']) and vm['kvp'] is False
    assert 'timed out' in client.fails('vm_wait', {'name': 'net', 'for': 'IPAddress', 'timeout': 0.2})
    vm = client.ok('vm_set', {'name': 'net', 'kvp': True})
    assert vm['nics'][1]['ips'][0].startswith('192.168.100.')
    assert 'Injected failure' in client.fails('nic_remove', {'name': 'net', 'nic': 'backend'})
    client.ok('vm_remove', {'name': 'net'})


def test_no_kvp_fault(client):
    client.ok('vm_create', {'name': 'nokvp', 'generation': 2, 'memory_startup': GB, 'switch': 'Default Switch'})
    assert 'timed out' in client.fails('vm_start', {'name': 'nokvp', 'wait_ip': True, 'timeout': 0.3})
    assert client.ok('vm_get', {'name': 'nokvp'})['state'] == 'Running'
    client.ok('vm_remove', {'name': 'nokvp'})


def test_checkpoints_tree_restore_and_remove(client):
    client.ok('vm_create', {'name': 'snap', 'generation': 2, 'memory_startup': GB, 'notes': 'v1'})
    first = client.ok('checkpoint_create', {'name': 'snap', 'checkpoint': 'one'})
    assert (first['type'], first['parent']) == ('Production', None)
    client.ok('vm_set', {'name': 'snap', 'notes': 'v2', 'checkpoint_type': 'Standard'})
    client.ok('vm_start', {'name': 'snap'})
    second = client.ok('checkpoint_create', {'name': 'snap', 'checkpoint': 'two'})
    assert (second['type'], second['parent']) == ('Standard', 'one')
    restored = client.ok('checkpoint_restore', {'name': 'snap', 'checkpoint': 'one'})
    assert (restored['state'], restored['notes'], restored['parent_checkpoint']) == ('Off', 'v1', 'one')
    client.ok('checkpoint_create', {'name': 'snap', 'checkpoint': 'three'})
    tree = {c['name']: c['parent'] for c in client.ok('checkpoint_list', {'name': 'snap'})}
    assert tree == {'one': None, 'two': 'one', 'three': 'one'}
    back = client.ok('checkpoint_restore', {'name': 'snap', 'checkpoint': 'two'})
    assert (back['state'], back['notes']) == ('Saved', 'v2')  # a standard checkpoint of a running VM restores its saved state
    assert client.ok('vm_start', {'name': 'snap'})['state'] == 'Running'
    client.ok('vm_stop', {'name': 'snap', 'mode': 'turnoff'})
    assert 'fewer than or equal to "100" characters' in client.fails('checkpoint_create', {'name': 'snap', 'checkpoint': 'x' * 101})
    result = client.ok('checkpoint_remove', {'name': 'snap', 'checkpoint': 'two'})
    assert [c['name'] for c in result['checkpoints']] == ['one', 'three']
    assert 'unable to find a checkpoint named "two"' in client.fails('checkpoint_restore', {'name': 'snap', 'checkpoint': 'two'})
    result = client.ok('checkpoint_remove', {'name': 'snap', 'checkpoint': 'one', 'include_children': True})
    assert result['checkpoints'] == []
    client.ok('vm_set', {'name': 'snap', 'checkpoint_type': 'Disabled'})
    assert 'Checkpoints are disabled' in client.fails('checkpoint_create', {'name': 'snap', 'checkpoint': 'x'})
    client.ok('vm_remove', {'name': 'snap'})


def test_export_and_import_copy_with_new_id(client):
    vm = client.ok('vm_create', {'name': 'golden', 'generation': 2, 'memory_startup': GB, 'cpu': 3,
                                 'new_vhd': {'path': D + 'golden.vhdx', 'size': 10 * GB}})
    export = client.ok('vm_export', {'name': 'golden', 'path': 'E:\\exports'})
    assert export['path'] == 'E:\\exports\\golden'
    assert export['config_path'] == 'E:\\exports\\golden\\Virtual Machines\\%s.vmcx' % vm['id'].upper()
    assert export['disks'] == ['E:\\exports\\golden\\Virtual Hard Disks\\golden.vhdx']
    assert 'already contains an export' in client.fails('vm_export', {'name': 'golden', 'path': 'E:\\exports'})
    clone = client.ok('vm_import', {'path': export['config_path'], 'vhd_path': 'D:\\clones', 'vm_path': 'D:\\clones', 'new_name': 'clone'})
    assert clone['name'] == 'clone' and clone['id'] != vm['id'] and clone['cpu'] == 3 and clone['state'] == 'Off'
    assert clone['disks'][0]['path'] == 'D:\\clones\\golden.vhdx'
    assert clone['nics'][0]['mac'] != vm['nics'][0]['mac']
    assert 'already exists' in client.fails('vm_import', {'path': export['config_path'], 'vhd_path': 'D:\\clones'})
    assert client.ok('vm_get', {'name': 'golden'})['id'] == vm['id']
    for name in ('golden', 'clone'):
        client.ok('vm_remove', {'name': name, 'delete_disks': True})


def test_stopping_is_visible_from_another_shell(sim, client):
    client.ok('vm_create', {'name': 'slowpoke', 'generation': 2, 'memory_startup': GB})
    client.ok('vm_start', {'name': 'slowpoke'})
    results = {}
    stopper = threading.Thread(target=lambda: results.setdefault('stop', Client(sim).ok('vm_stop', {'name': 'slowpoke'})))
    stopper.start()
    seen, deadline = [], time.monotonic() + 10
    while stopper.is_alive() and time.monotonic() < deadline:
        seen.append(client.ok('vm_get', {'name': 'slowpoke'})['state'])
        if seen[-1] == 'Stopping':
            break
    assert 'Stopping' in seen
    assert 'current state (Stopping)' in client.fails('vm_start', {'name': 'slowpoke'})
    stopper.join(15)
    assert results['stop']['state'] == 'Off'
    client.ok('vm_remove', {'name': 'slowpoke'})


def test_vm_stuck_in_stopping(client):
    client.ok('vm_create', {'name': 'stuck1', 'generation': 2, 'memory_startup': GB})
    client.ok('vm_start', {'name': 'stuck1'})
    assert 'still stopping' in client.fails('vm_stop', {'name': 'stuck1', 'mode': 'force'})
    assert client.ok('vm_get', {'name': 'stuck1'})['state'] == 'Stopping'
    assert 'current state (Stopping)' in client.fails('vm_set', {'name': 'stuck1', 'notes': 'x'})
    assert client.ok('vm_stop', {'name': 'stuck1', 'mode': 'turnoff'})['state'] == 'Off'
    client.ok('vm_remove', {'name': 'stuck1'})


def test_non_admin_user_is_denied(sim):
    operator = Client(sim, user='operator')
    error = operator.fails('vm_list')
    assert error == ("You do not have the required permission to complete this task. Contact the administrator of the "
                     "authorization policy for the computer 'HV-SIM01'.")


def test_lifecycle_over_pypsrp(sim):
    wsman = WSMan(sim.host, port=sim.port, ssl=False, auth='basic', encryption='never', username=USER, password=PASSWORD)

    def call(op, args):
        with WinRS(wsman, codepage=65001) as shell:
            process = Process(shell, scripts.bootstrap_command())
            process.begin_invoke()
            process.send(scripts.build(op, args).encode('utf-8'), end=True)
            process.end_invoke()
        assert process.stderr == b''
        return process.rc, json.loads(process.stdout)

    rc, doc = call('vm_create', {'name': 'psrp-vm', 'generation': 2, 'memory_startup': GB})
    assert rc == 0 and doc['result']['state'] == 'Off'
    rc, doc = call('vm_start', {'name': 'psrp-vm'})
    assert rc == 0 and doc['result']['state'] == 'Running'
    rc, doc = call('vm_stop', {'name': 'psrp-vm', 'mode': 'save'})
    assert rc == 0 and doc['result']['state'] == 'Saved'
    rc, doc = call('vm_remove', {'name': 'psrp-vm'})
    assert rc == 0 and doc['result']['removed'] is True
    rc, doc = call('vm_stop', {'name': 'psrp-vm'})
    assert rc == 1 and doc == {'ok': False, 'error': 'Hyper-V was unable to find a virtual machine with name "psrp-vm".',
                               'type': 'Microsoft.HyperV.PowerShell.VirtualizationException'}


def test_time_scale_delays_boot_and_ip_addresses():
    emulator = Emulator('--time-scale', '0.2')
    try:
        client = Client(emulator)
        client.ok('vm_create', {'name': 'timed', 'generation': 2, 'memory_startup': GB, 'switch': 'Default Switch'})
        started = time.monotonic()
        vm = client.ok('vm_start', {'name': 'timed'})
        assert time.monotonic() - started >= 0.2  # Start-VM: 1 s at scale 1
        assert vm['state'] == 'Running' and vm['nics'][0]['ips'] == []  # the guest boots for 3 s at scale 1
        vm = client.ok('vm_wait', {'name': 'timed', 'for': 'IPAddress', 'timeout': 5})
        assert vm['nics'][0]['ips'] and time.monotonic() - started >= 0.8
    finally:
        assert emulator.stop() == 0


def test_checkpoints_fork_avhdx_files(client):
    vm = client.ok('vm_create', {'name': 'forky', 'generation': 2, 'memory_startup': GB, 'new_vhd': {'path': D + 'forky.vhdx', 'size': 8 * GB}})
    assert vm['disks'][0]['path'] == D + 'forky.vhdx'
    client.ok('checkpoint_create', {'name': 'forky', 'checkpoint': 'a'})
    current = client.ok('disk_list', {'name': 'forky'})[0]['path']
    assert current.startswith(D + 'forky_') and current.endswith('.avhdx')
    avhdx = client.ok('vhd_get', {'path': current})
    assert (avhdx['type'], avhdx['parent_path'], avhdx['size']) == ('Differencing', D + 'forky.vhdx', 8 * GB)
    assert 'checkpoint differencing disk' in client.fails('vhd_resize', {'path': current, 'size': 9 * GB})
    assert 'parent of a differencing disk of a checkpoint' in client.fails('vhd_resize', {'path': D + 'forky.vhdx', 'size': 9 * GB})

    restored = client.ok('checkpoint_restore', {'name': 'forky', 'checkpoint': 'a'})
    fresh = restored['disks'][0]['path']
    assert fresh != current and client.ok('vhd_get', {'path': current}) is None  # the discarded state is deleted
    assert client.ok('vhd_get', {'path': fresh})['parent_path'] == D + 'forky.vhdx'
    client.ok('checkpoint_create', {'name': 'forky', 'checkpoint': 'b'})
    second = client.ok('disk_list', {'name': 'forky'})[0]['path']
    assert client.ok('vhd_get', {'path': second})['parent_path'] == fresh

    export = client.ok('vm_export', {'name': 'forky', 'path': 'E:\\fx'})
    assert sorted(p.rsplit('\\', 1)[1] for p in export['disks']) == sorted(p.rsplit('\\', 1)[1] for p in (second, fresh, D + 'forky.vhdx'))
    clone = client.ok('vm_import', {'path': export['config_path'], 'vhd_path': 'F:\\clone', 'new_name': 'forky-clone'})
    cloned = clone['disks'][0]['path']
    assert cloned.startswith('F:\\clone\\') and client.ok('vhd_get', {'path': cloned})['parent_path'].startswith('F:\\clone\\')
    assert [c['name'] for c in client.ok('checkpoint_list', {'name': 'forky-clone'})] == ['a', 'b']

    result = client.ok('checkpoint_remove', {'name': 'forky', 'checkpoint': 'b'})  # merges into the running state
    assert [c['name'] for c in result['checkpoints']] == ['a']
    assert client.ok('vhd_get', {'path': second})['parent_path'] == D + 'forky.vhdx'
    assert client.ok('vhd_get', {'path': fresh}) is None

    removed = client.ok('vm_remove', {'name': 'forky', 'delete_disks': True})
    # Remove-VM merges the checkpoints into the disks first: only the .vhdx is left to delete.
    assert removed['deleted_files'] == [D + 'forky.vhdx']
    assert client.ok('vhd_get', {'path': second}) is None
    removed = client.ok('vm_remove', {'name': 'forky-clone', 'delete_disks': True})
    assert len(removed['deleted_files']) == 1
    assert all(client.ok('vhd_get', {'path': p}) is None for p in removed['deleted_files'])


def test_already_in_the_state_is_a_warning_on_stderr(client):
    client.ok('vm_create', {'name': 'warned', 'generation': 2, 'memory_startup': GB})
    client.ok('vm_stop', {'name': 'warned'})
    assert b'WARNING: The virtual machine is already in the specified state.' in client.last_stderr
    client.ok('vm_start', {'name': 'warned'})
    assert client.last_stderr == b''
    for op in ('vm_start', 'vm_resume'):
        client.ok(op, {'name': 'warned'})
        assert b'<S S="warning">WARNING: The virtual machine is already in the specified state._x000D__x000A_</S>' in client.last_stderr
    client.ok('vm_remove', {'name': 'warned'})


def test_resize_rules_of_microsoft_s_resize_vhd(client):
    """Resize-VHD: VHDX grows and shrinks (down to its minimum size), VHD only grows, a differencing VHD never resizes,
    and a parent can be resized, which breaks the chain of its differencing disks."""
    client.ok('vhd_create', {'path': D + 'rz-base.vhdx', 'size': 4 * GB, 'type': 'dynamic'})
    client.ok('vhd_create', {'path': D + 'rz-child.vhdx', 'type': 'differencing', 'parent_path': D + 'rz-base.vhdx'})
    client.ok('vhd_create', {'path': D + 'rz-old.vhd', 'size': 4 * GB, 'type': 'dynamic'})
    client.ok('vhd_create', {'path': D + 'rz-old-child.vhd', 'type': 'differencing', 'parent_path': D + 'rz-old.vhd'})
    assert client.ok('vhd_resize', {'path': D + 'rz-old.vhd', 'size': 5 * GB})['size'] == 5 * GB
    assert 'which can only grow' in client.fails('vhd_resize', {'path': D + 'rz-old.vhd', 'size': 4 * GB})
    assert 'differencing disk in the VHD format' in client.fails('vhd_resize', {'path': D + 'rz-old-child.vhd', 'size': 6 * GB})
    assert client.ok('vhd_resize', {'path': D + 'rz-child.vhdx', 'size': 6 * GB})['size'] == 6 * GB
    client.ok('vm_create', {'name': 'rz', 'generation': 1, 'memory_startup': GB, 'vhd_path': D + 'rz-child.vhdx'})
    assert client.ok('vhd_resize', {'path': D + 'rz-base.vhdx', 'size': 8 * GB})['size'] == 8 * GB  # allowed...
    assert 'The chain of virtual hard disks is corrupted' in client.fails('vm_start', {'name': 'rz'})  # ... and it breaks the child
    client.ok('vm_remove', {'name': 'rz', 'delete_disks': True})
