# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The in-memory Hyper-V host behind the emulator.

Everything is plain dicts so that ``--state FILE`` can save it as JSON. Paths are Windows paths and
compare case-insensitively. Long operations sleep ``seconds * time_scale`` without holding the lock,
so other shells see the transitional states (Starting, Stopping, Saving).
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import fnmatch
import json
import os
import re
import threading
import time
import uuid

HOST_NAME = 'HV-SIM01'
VM_PATH = 'C:\\ProgramData\\Microsoft\\Windows\\Hyper-V'
VHD_PATH = 'C:\\Users\\Public\\Documents\\Hyper-V\\Virtual Hard Disks'
KVP = 'Key-Value Pair Exchange'
GB = 1024 ** 3
MB = 1024 ** 2

# Simulated durations in seconds at --time-scale 1.
DURATIONS = {
    'start': 1.0, 'stop': 2.0, 'force': 1.0, 'save': 1.0, 'restart': 2.0, 'pause': 0.2, 'boot': 3.0,
    'checkpoint': 0.5, 'restore': 0.5, 'export': 1.5, 'import': 1.5, 'vhd': 0.3, 'vhd_fixed': 2.0, 'resize': 0.3,
}
SWITCHES = [
    {'name': 'Default Switch', 'type': 'Internal', 'id': 'c08cb7b8-9b3c-408e-8e30-5e16a3aeb444', 'subnet': '172.20.16.'},
    {'name': 'External', 'type': 'External', 'id': '2f5a1c4e-0d9b-4c8e-9a43-7f3e5f3b1b01', 'subnet': '192.168.100.'},
]
# What Start-VM on a running VM, Stop-VM on an Off one and Resume-VM on a running one write (Write-Warning).
ALREADY = 'The virtual machine is already in the specified state.'
BUSY_STATES = ('Starting', 'Stopping', 'Saving', 'Pausing', 'Resuming')


class HyperVError(Exception):
    """A terminating error of a Hyper-V (or core) cmdlet: ``message`` is what ``"$_"`` prints."""

    def __init__(self, message, type_name='Microsoft.HyperV.PowerShell.VirtualizationException', cmdlet=''):
        super().__init__(message)
        self.message = message
        self.type_name = type_name
        self.cmdlet = cmdlet


def wildcard_regex(pattern):
    """PowerShell's WildcardPattern (what ``Get-VM -Name`` takes): ``*``, ``?``, ``[abc]``/``[a-c]``, a backtick escapes
    the next character; case-insensitive, matching the whole name. An unclosed ``[`` is invalid, as in PowerShell."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == '`' and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == '*':
            out.append('.*')
        elif char == '?':
            out.append('.')
        elif char == '[':
            end = pattern.find(']', i + 1)
            if end < 0:
                raise HyperVError('The specified wildcard character pattern is not valid: %s' % pattern,
                                  'System.Management.Automation.WildcardPatternException', 'Get-VM')
            body = pattern[i + 1:end]
            out.append('[%s]' % ''.join('-' if c == '-' and 0 < n < len(body) - 1 else re.escape(c) for n, c in enumerate(body)))
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile('^%s$' % ''.join(out), re.IGNORECASE | re.DOTALL)


def key(path):
    return (path or '').replace('/', '\\').rstrip('\\').lower()


def norm(path):
    return (path or '').replace('/', '\\').rstrip('\\')


def dirname(path):
    path = norm(path)
    return path.rsplit('\\', 1)[0] if '\\' in path else ''


def basename(path):
    return norm(path).rsplit('\\', 1)[-1]


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


class Faults:
    """Parsed ``--fault`` SPECs: ``name[:key=value[,key=value...]]``."""

    KNOWN = ('auth', 'slow-stop', 'timeout', 'stuck-stopping', 'fail', 'no-kvp')

    def __init__(self, specs=()):
        self.items = []
        for spec in specs or ():
            name, _sep, rest = spec.partition(':')
            if name not in self.KNOWN:
                raise ValueError('unknown fault %r (known: %s)' % (name, ', '.join(self.KNOWN)))
            options = {}
            for part in filter(None, rest.split(',')):
                opt, _eq, value = part.partition('=')
                options[opt.strip()] = value.strip()
            self.items.append((name, options))

    def get(self, name, vm=None, op=None):
        """The options of the first matching fault, or None."""
        for fault_name, options in self.items:
            if fault_name != name:
                continue
            if vm is not None and 'vm' in options and options['vm'].lower() != vm.lower():
                continue
            if op is not None and 'op' in options and options['op'] != op:
                continue
            return options
        return None


class Host:
    """The Hyper-V host: VMs, files (VHDs, exported configurations), switches."""

    def __init__(self, time_scale=1.0, faults=None, state_file=None):
        self.time_scale = time_scale
        self.faults = faults or Faults()
        self.state_file = state_file
        self.lock = threading.Lock()
        self.vms = {}       # id -> vm dict
        self.files = {}     # key(path) -> file dict
        self.counter = 0
        self.warnings = []  # WARNING: lines of the operation running now (written to stderr as CLIXML)
        if state_file and os.path.exists(state_file):
            with open(state_file, encoding='utf-8') as handle:
                data = json.load(handle)
            self.vms, self.files, self.counter = data['vms'], data['files'], data['counter']
            for vm in self.vms.values():
                vm.setdefault('dvds', [])
                vm['boot_at'] = 0.0 if vm['state'] == 'Running' else None
                if vm['state'] in BUSY_STATES:
                    vm['state'] = 'Off'

    # ----------------------------------------------------------------- plumbing
    def save(self):
        if not self.state_file:
            return
        data = {'vms': self.vms, 'files': self.files, 'counter': self.counter}
        tmp = self.state_file + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.state_file)

    def pause(self, what, seconds=None):
        """Sleep for a simulated duration without holding the lock (caller holds it)."""
        delay = DURATIONS[what] * self.time_scale if seconds is None else seconds
        if delay <= 0:
            return
        self.lock.release()
        try:
            time.sleep(delay)
        finally:
            self.lock.acquire()

    def next_mac(self):
        self.counter += 1
        return '00155D%06X' % (0x010000 + self.counter)

    def get_vms(self, name):
        """``Get-VM -Name``: every VM whose name matches ``name`` as a wildcard pattern (several for a duplicated name)."""
        pattern = wildcard_regex(name or '')
        return sorted((vm for vm in self.vms.values() if pattern.match(vm['name'])), key=lambda vm: (vm['name'].lower(), vm['id']))

    def exact_vms(self, name):
        """What a contract script keeps of ``Get-VM -Name``'s answer: the VMs named exactly ``name`` (case-insensitive)."""
        return [vm for vm in self.get_vms(name) if vm['name'].lower() == (name or '').lower()]

    @staticmethod
    def duplicated(name, found, cmdlet):
        # A cmdlet given a name that several VMs share fails; the contract's scripts say which VMs (their ids).
        return HyperVError("There are %d virtual machines named '%s' on this host (ids %s); rename all but one." % (
            len(found), name, ", ".join(vm['id'] for vm in found)), 'Microsoft.HyperV.PowerShell.VirtualizationException', cmdlet)

    def find_vm(self, name, cmdlet='Get-VM'):
        found = self.exact_vms(name)
        if not found:
            raise HyperVError('Hyper-V was unable to find a virtual machine with name "%s".' % name, cmdlet=cmdlet)
        if len(found) > 1:
            raise self.duplicated(name, found, cmdlet)
        return found[0]

    def lookup_vm(self, name, cmdlet='Get-VM'):
        found = self.exact_vms(name)
        if len(found) > 1:
            raise self.duplicated(name, found, cmdlet)
        return found[0] if found else None

    @staticmethod
    def wrong_state(vm, cmdlet, device=None):
        if device:
            return HyperVError(
                "Failed to modify device '%s'. The operation cannot be performed while the virtual machine '%s' is in its current state (%s)."
                % (device, vm['name'], vm['state']), cmdlet=cmdlet)
        return HyperVError(
            "The operation cannot be performed while the virtual machine '%s' is in its current state (%s)." % (vm['name'], vm['state']),
            cmdlet=cmdlet)

    def not_busy(self, vm, cmdlet):
        if vm['state'] in BUSY_STATES:
            raise self.wrong_state(vm, cmdlet)

    def switch(self, name, cmdlet):
        for sw in SWITCHES:
            if sw['name'].lower() == (name or '').lower():
                return sw
        raise HyperVError('Hyper-V was unable to find a virtual switch with name "%s".' % name, cmdlet=cmdlet)

    def users_of(self, path):
        """VMs whose drives use ``path`` directly or through a differencing chain."""
        users = []
        for vm in self.vms.values():
            if any(key(dvd.get('path')) == key(path) for dvd in vm.get('dvds') or []):
                users.append(vm)
                continue
            for drive in vm['disks']:
                chain = self.chain(drive['path'])
                if key(path) in chain:
                    users.append(vm)
                    break
        return users

    def chain(self, path):
        keys, current = [], key(path)
        while current and current not in keys:
            keys.append(current)
            current = key(self.files.get(current, {}).get('parent_path'))
        return keys

    def own_chain(self, path):
        """The files a VM owns through one drive: its .avhdx checkpoint disks down to its first .vhdx/.vhd."""
        owned = []
        for k in self.chain(path):
            if k not in self.files:
                break
            owned.append(self.files[k]['path'])
            if not k.endswith('.avhdx'):
                break
        return owned

    def vm_files(self, vm):
        """Every disk file of a VM: the chains of its drives and of its checkpoints' drives."""
        seen = []
        drives = list(vm['disks']) + [d for cp in vm['checkpoints'] for d in cp['config']['disks']]
        for drive in drives:
            for path in self.own_chain(drive['path']):
                if key(path) not in [key(p) for p in seen]:
                    seen.append(path)
        return seen

    def new_avhdx(self, parent_path):
        parent = self.files[key(parent_path)]
        root = self.files.get(self.chain(parent_path)[-1], parent)
        for k in self.chain(parent_path):
            if not k.endswith('.avhdx'):
                root = self.files.get(k, root)
                break
        stem = basename(root['path']).rsplit('.', 1)[0]
        path = dirname(parent['path']) + '\\' + '%s_%s.avhdx' % (stem, str(uuid.uuid4()).upper())
        self.files[key(path)] = {'kind': 'vhd', 'path': path, 'format': 'VHDX', 'type': 'Differencing', 'size': parent['size'],
                                 'file_size': 4 * MB, 'parent_path': parent['path']}
        return path

    def in_use(self, path, cmdlet, running_only=True):
        for vm in self.users_of(path):
            if not running_only or vm['state'] != 'Off':
                raise HyperVError(
                    "The process cannot access the file '%s' because it is being used by another process." % norm(path),
                    type_name='System.IO.IOException', cmdlet=cmdlet)

    # ----------------------------------------------------------------- projections
    def ips(self, vm, nic):
        if vm['state'] != 'Running' or not vm['kvp'] or not nic['switch']:
            return []
        if self.faults.get('no-kvp', vm=vm['name']) is not None:
            return []
        if vm['boot_at'] is None or time.monotonic() < vm['boot_at']:
            return []
        subnet = next((s['subnet'] for s in SWITCHES if s['name'] == nic['switch']), '10.0.0.')
        mac = nic['mac']
        host = 10 + int(mac[-2:], 16) % 200
        link_local = 'fe80::215:5dff:fe%s:%s' % (mac[6:8].lower(), mac[8:12].lower())
        return [subnet + str(host), link_local]

    def vm_view(self, vm):
        uptime = 0
        if vm['state'] in ('Running', 'Paused') and vm.get('running_since'):
            uptime = int(time.time() - vm['running_since'])
        assigned = vm['memory_startup'] if vm['state'] in ('Running', 'Paused', 'Stopping', 'Saving') else 0
        current = next((c for c in vm['checkpoints'] if c['id'] == vm['current_checkpoint']), None)
        return {
            'name': vm['name'], 'id': vm['id'], 'state': vm['state'],
            'status': 'Operating normally', 'generation': vm['generation'], 'cpu': vm['cpu'],
            'memory_startup': vm['memory_startup'], 'memory_minimum': vm['memory_minimum'],
            'memory_maximum': vm['memory_maximum'], 'memory_assigned': assigned,
            'dynamic_memory': vm['dynamic_memory'], 'uptime_s': uptime, 'notes': vm['notes'], 'path': vm['path'],
            'checkpoint_type': vm['checkpoint_type'],
            'secure_boot': ('On' if vm['secure_boot'] else 'Off') if vm['generation'] == 2 else None,
            'kvp': vm['kvp'], 'parent_checkpoint': current['name'] if current else None,
            'nics': [self.nic_view(vm, nic) for nic in vm['nics']],
            'disks': [dict(d) for d in vm['disks']],
            'dvds': [dict(d) for d in vm.get('dvds') or []],
        }

    def nic_view(self, vm, nic):
        return {'name': nic['name'], 'mac': nic['mac'], 'switch': nic['switch'], 'ips': self.ips(vm, nic), 'vlan_id': nic['vlan_id']}

    def vhd_view(self, path, cmdlet='Get-VHD'):
        vhd = self.files.get(key(path))
        if vhd is None or vhd['kind'] != 'vhd':
            raise HyperVError("Getting the mounted storage instance for the path '%s' failed. The system cannot find the file specified."
                              % norm(path), cmdlet=cmdlet)
        attached = bool(self.users_of(path))
        return {'path': vhd['path'], 'format': vhd['format'], 'type': vhd['type'], 'size': vhd['size'], 'file_size': vhd['file_size'],
                'parent_path': vhd['parent_path'], 'attached': attached}

    def checkpoint_view(self, vm, cp):
        parent = next((c for c in vm['checkpoints'] if c['id'] == cp['parent']), None)
        return {'name': cp['name'], 'id': cp['id'], 'type': cp['type'], 'created': cp['created'],
                'parent': parent['name'] if parent else None, 'vm_name': vm['name']}

    # ----------------------------------------------------------------- host
    def host_get(self, args):
        del args
        return {'name': HOST_NAME, 'virtual_machine_path': VM_PATH, 'virtual_hard_disk_path': VHD_PATH,
                'logical_processor_count': 16, 'memory_capacity': 128 * GB,
                'switches': [{'name': s['name'], 'type': s['type'], 'id': s['id']} for s in SWITCHES]}

    def switch_list(self, args):
        del args
        return [{'name': s['name'], 'type': s['type'], 'id': s['id']} for s in SWITCHES]

    # ----------------------------------------------------------------- VMs
    def vm_list(self, args):
        del args
        return [self.vm_view(vm) for vm in sorted(self.vms.values(), key=lambda v: v['name'].lower())]

    def vm_get(self, args):
        vm = self.lookup_vm(args['name'])
        return self.vm_view(vm) if vm else None

    def vm_create(self, args):
        name = args['name']
        generation = int(args.get('generation', 2))
        if generation not in (1, 2):
            raise HyperVError("Cannot validate argument on parameter 'Generation'. The argument \"%d\" does not belong to the set \"1,2\"."
                              % generation, 'System.Management.Automation.ParameterBindingValidationException', 'New-VM')
        vm_path = norm(args.get('path') or VM_PATH)
        disks = []
        if args.get('new_vhd'):
            spec = args['new_vhd']
            self.vhd_create({'path': spec['path'], 'size': spec['size'], 'type': 'dynamic'}, cmdlet='New-VM')
            disks.append(spec['path'])
        elif args.get('vhd_path'):
            if key(args['vhd_path']) not in self.files:
                raise HyperVError("Failed to add device 'Virtual Hard Disk'. The system cannot find the file specified. ('%s')"
                                  % norm(args['vhd_path']), cmdlet='New-VM')
            self.in_use(args['vhd_path'], 'New-VM')
            disks.append(args['vhd_path'])
        if generation == 2 and any(key(d).endswith('.vhd') for d in disks):
            raise HyperVError('Generation 2 virtual machines do not support the VHD virtual hard disk file format.', cmdlet='New-VM')
        switch = self.switch(args['switch'], 'New-VM')['name'] if args.get('switch') else None
        memory = int(args.get('memory_startup', 1 * GB if generation == 2 else 512 * MB))
        vm_id = str(uuid.uuid4())
        ctrl = 'SCSI' if generation == 2 else 'IDE'
        vm = {
            'id': vm_id, 'name': name, 'generation': generation, 'state': 'Off', 'cpu': 1,
            'memory_startup': memory, 'memory_minimum': 512 * MB, 'memory_maximum': 1024 * GB, 'dynamic_memory': False,
            'notes': '', 'path': vm_path + '\\' + name if args.get('path') else vm_path,
            'checkpoint_type': 'Production', 'secure_boot': generation == 2, 'secure_boot_template': 'MicrosoftWindows',
            'kvp': True, 'nics': [{'name': 'Network Adapter', 'mac': self.next_mac(), 'switch': switch, 'vlan_id': 0}],
            'disks': [{'path': norm(d), 'controller_type': ctrl, 'controller_number': 0, 'controller_location': i} for i, d in enumerate(disks)],
            'checkpoints': [], 'current_checkpoint': None, 'running_since': None, 'boot_at': None, 'dvds': [],
        }
        self.vms[vm_id] = vm
        self.vm_set_fields(vm, args, 'New-VM')
        return self.vm_view(vm)

    def vm_set_fields(self, vm, args, cmdlet):
        running = vm['state'] != 'Off'
        if args.get('cpu') is not None and int(args['cpu']) != vm['cpu']:
            if running:
                raise self.wrong_state(vm, 'Set-VMProcessor', 'Processor')
            if not 1 <= int(args['cpu']) <= 16:
                raise HyperVError("Failed to modify device 'Processor'. The virtual machine '%s' cannot have more virtual processors (%d) "
                                  'than the host has logical processors (16).' % (vm['name'], int(args['cpu'])), cmdlet='Set-VMProcessor')
            vm['cpu'] = int(args['cpu'])
        memory_keys = ('memory_startup', 'memory_minimum', 'memory_maximum', 'dynamic_memory')
        changes = {k: args[k] for k in memory_keys if args.get(k) is not None and args[k] != vm[k]}
        for k in ('memory_startup', 'memory_minimum', 'memory_maximum'):
            if k in changes and int(changes[k]) % (2 * MB):
                # Hyper-V takes memory in multiples of 2 MB ("not properly aligned" otherwise).
                raise HyperVError("Failed to modify device 'Memory'. Invalid memory value assigned for '%s'. Memory values must be properly "
                                  'aligned.' % vm['name'], cmdlet='Set-VMMemory' if cmdlet != 'New-VM' else 'New-VM')
        # Runtime memory resize (Windows Server 2016+): startup, minimum and maximum change on a running
        # VM; switching dynamic memory on or off still needs the VM off.
        if 'dynamic_memory' in changes and cmdlet != 'New-VM' and running:
            raise self.wrong_state(vm, 'Set-VMMemory', 'Memory')
        for k, value in changes.items():
            vm[k] = bool(value) if k == 'dynamic_memory' else int(value)
        if vm['dynamic_memory'] and not vm['memory_minimum'] <= vm['memory_startup'] <= vm['memory_maximum']:
            raise HyperVError("Failed to modify device 'Memory'. The startup memory must be between the minimum and the maximum memory.",
                              cmdlet='Set-VMMemory')
        if args.get('notes') is not None:
            vm['notes'] = args['notes']
        if args.get('checkpoint_type') is not None:
            if args['checkpoint_type'] not in ('Standard', 'Production', 'ProductionOnly', 'Disabled'):
                raise HyperVError("Cannot bind parameter 'CheckpointType'. Cannot convert value \"%s\" to type "
                                  '"Microsoft.HyperV.PowerShell.CheckpointType".' % args['checkpoint_type'],
                                  'System.Management.Automation.ParameterBindingException', 'Set-VM')
            vm['checkpoint_type'] = args['checkpoint_type']
        if args.get('secure_boot') is not None:
            if vm['generation'] != 2:
                raise HyperVError("The virtual machine '%s' is a generation 1 virtual machine: it has no UEFI firmware." % vm['name'],
                                  cmdlet='Set-VMFirmware')
            if running and bool(args['secure_boot']) != vm['secure_boot']:
                raise self.wrong_state(vm, 'Set-VMFirmware', 'Firmware')
            vm['secure_boot'] = bool(args['secure_boot'])
            if args.get('secure_boot_template'):
                vm['secure_boot_template'] = args['secure_boot_template']
        if args.get('kvp') is not None:
            vm['kvp'] = bool(args['kvp'])

    def vm_set(self, args):
        vm = self.find_vm(args['name'], 'Set-VM')
        self.not_busy(vm, 'Set-VM')
        self.vm_set_fields(vm, args, 'Set-VM')
        return self.vm_view(vm)

    def vm_rename(self, args):
        vm = self.find_vm(args['name'], 'Rename-VM')
        vm['name'] = args['new_name']
        return self.vm_view(vm)

    def vm_start(self, args):
        vm = self.find_vm(args['name'], 'Start-VM')
        self.not_busy(vm, 'Start-VM')
        if vm['state'] == 'Running':
            self.warnings.append(ALREADY)
            return self.vm_view(vm)
        if vm['state'] == 'Paused':
            raise self.wrong_state(vm, 'Start-VM')
        for drive in vm['disks']:
            for k in self.chain(drive['path']):
                if self.files.get(k, {}).get('broken'):
                    raise HyperVError("'%s' failed to start. The chain of virtual hard disks is corrupted. There is a mismatch in the virtual "
                                      "sizes of the parent virtual hard disk and differencing disk '%s'." % (vm['name'], self.files[k]['path']),
                                      cmdlet='Start-VM')
        saved = vm['state'] == 'Saved'
        vm['state'] = 'Starting'
        self.pause('start')
        vm['state'] = 'Running'
        vm['running_since'] = time.time()
        vm['boot_at'] = time.monotonic() + (0 if saved else DURATIONS['boot'] * self.time_scale)
        if args.get('wait_ip'):
            self._wait(vm, 'IPAddress', args.get('timeout', 300), 'Start-VM')
        return self.vm_view(vm)

    def _wait(self, vm, what, timeout, cmdlet):
        deadline = time.monotonic() + float(timeout)
        while True:
            if vm['state'] == 'Running':
                if what == 'Heartbeat' and vm['boot_at'] is not None and time.monotonic() >= vm['boot_at']:
                    return
                if what == 'IPAddress' and any(self.ips(vm, nic) for nic in vm['nics']):
                    return
            if time.monotonic() >= deadline:
                raise HyperVError("Waiting for the virtual machine '%s' timed out (%s)." % (vm['name'], what),
                                  'System.TimeoutException', cmdlet)
            self.pause('boot', min(0.05, max(0.0, deadline - time.monotonic())) or 0.01)

    def vm_wait(self, args):
        vm = self.find_vm(args['name'], 'Wait-VM')
        what = {'ipaddress': 'IPAddress', 'heartbeat': 'Heartbeat'}.get(str(args.get('for', 'IPAddress')).lower())
        if what is None:
            raise HyperVError("Cannot bind parameter 'For' to the target: '%s' is not one of IPAddress, Heartbeat, Reboot, MemoryOperations."
                              % args.get('for'), 'System.Management.Automation.ParameterBindingException', 'Wait-VM')
        self._wait(vm, what, args.get('timeout', 300), 'Wait-VM')
        return self.vm_view(vm)

    def vm_stop(self, args):
        vm = self.find_vm(args['name'], 'Stop-VM')
        mode = args.get('mode', 'shutdown')
        if mode not in ('shutdown', 'force', 'turnoff', 'save'):
            raise HyperVError('Unknown stop mode %r.' % mode, 'System.ArgumentException', 'Stop-VM')
        if vm['state'] == 'Stopping' and mode == 'turnoff':
            vm['stuck'] = False
        elif vm['state'] == 'Off' or (vm['state'] == 'Saved' and mode == 'save'):
            self.warnings.append(ALREADY)
            return self.vm_view(vm)
        else:
            self.not_busy(vm, 'Stop-VM')
        if mode == 'save':
            if vm['state'] not in ('Running', 'Paused'):
                raise self.wrong_state(vm, 'Stop-VM')
            vm['state'] = 'Saving'
            self.pause('save')
            vm['state'] = 'Saved'
        elif mode == 'turnoff':
            vm['state'] = 'Off'
        else:
            if vm['state'] != 'Running':
                raise self.wrong_state(vm, 'Stop-VM')
            vm['state'] = 'Stopping'
            stuck = self.faults.get('stuck-stopping', vm=vm['name'])
            if stuck is not None:
                vm['stuck'] = True
                self.pause('stop', float(stuck.get('seconds', 2)))
                raise HyperVError("Failed to shut down the virtual machine '%s': the guest did not respond in time. "
                                  'The virtual machine is still stopping.' % vm['name'], cmdlet='Stop-VM')
            slow = self.faults.get('slow-stop', vm=vm['name'])
            if slow is not None and mode == 'shutdown':
                self.pause('stop', float(slow.get('seconds', 10)))
            else:
                self.pause('stop' if mode == 'shutdown' else 'force')
            if vm['state'] == 'Stopping':
                vm['state'] = 'Off'
        vm['running_since'] = None if vm['state'] == 'Off' else vm['running_since']
        vm['boot_at'] = None
        return self.vm_view(vm)

    def vm_restart(self, args):
        vm = self.find_vm(args['name'], 'Restart-VM')
        if vm['state'] != 'Running':
            raise self.wrong_state(vm, 'Restart-VM')
        vm['boot_at'] = None
        self.pause('restart')
        vm['running_since'] = time.time()
        vm['boot_at'] = time.monotonic() + DURATIONS['boot'] * self.time_scale
        return self.vm_view(vm)

    def vm_suspend(self, args):
        vm = self.find_vm(args['name'], 'Suspend-VM')
        if vm['state'] == 'Paused':
            return self.vm_view(vm)
        if vm['state'] != 'Running':
            raise self.wrong_state(vm, 'Suspend-VM')
        self.pause('pause')
        vm['state'] = 'Paused'
        return self.vm_view(vm)

    def vm_resume(self, args):
        vm = self.find_vm(args['name'], 'Resume-VM')
        if vm['state'] == 'Running':
            self.warnings.append(ALREADY)
            return self.vm_view(vm)
        if vm['state'] != 'Paused':
            raise self.wrong_state(vm, 'Resume-VM')
        self.pause('pause')
        vm['state'] = 'Running'
        return self.vm_view(vm)

    def vm_remove(self, args):
        vm = self.lookup_vm(args['name'])
        if vm is None:
            return {'removed': False, 'deleted_files': []}
        if vm.get('stuck'):
            raise self.wrong_state(vm, 'Remove-VM')
        paths = self.vm_files(vm)
        vm['state'] = 'Off'
        del self.vms[vm['id']]
        # Hyper-V merges the checkpoints of a removed VM into its disks: no .avhdx file is left behind.
        for path in paths:
            if key(path).endswith('.avhdx') and key(path) in self.files and not self.users_of(path):
                del self.files[key(path)]
        deleted = []
        if args.get('delete_disks'):
            for path in paths:
                if key(path) in self.files and not self.users_of(path):
                    del self.files[key(path)]
                    deleted.append(path)
        for path in args.get('delete_files') or []:
            if key(path) in self.files:
                self.in_use(path, 'Remove-Item')  # a running VM holds its media open; an Off one does not
                del self.files[key(path)]
                deleted.append(norm(path))
        return {'removed': True, 'deleted_files': deleted}

    # ----------------------------------------------------------------- VHDs and drives
    def vhd_get(self, args):
        if key(args['path']) not in self.files:
            return None
        return self.vhd_view(args['path'])

    def vhd_create(self, args, cmdlet='New-VHD'):
        path = norm(args['path'])
        ext = path.lower().rsplit('.', 1)[-1]
        if ext not in ('vhdx', 'vhd'):
            raise HyperVError("Failed to create the virtual hard disk. The format of '%s' is not supported: use .vhdx or .vhd." % path,
                              cmdlet=cmdlet)
        if key(path) in self.files:
            raise HyperVError("Failed to create the virtual hard disk. The system failed to create '%s': The file exists. (0x80070050)." % path,
                              cmdlet=cmdlet)
        vhd_type = str(args.get('type', 'dynamic')).capitalize()
        if vhd_type not in ('Dynamic', 'Fixed', 'Differencing'):
            raise HyperVError('Unknown virtual hard disk type %r.' % args.get('type'), 'System.ArgumentException', cmdlet)
        parent = None
        if vhd_type == 'Differencing':
            parent = self.files.get(key(args.get('parent_path')))
            if parent is None:
                raise HyperVError("Failed to create the virtual hard disk. The system failed to create '%s': the parent virtual disk '%s' "
                                  'was not found.' % (path, norm(args.get('parent_path'))), cmdlet=cmdlet)
            size = parent['size']
        else:
            size = int(args['size'])
            if size <= 0 or size % 512:
                raise HyperVError("Failed to create the virtual hard disk. The size %d is not a multiple of 512 bytes." % size, cmdlet=cmdlet)
        self.pause('vhd_fixed' if vhd_type == 'Fixed' else 'vhd')
        self.files[key(path)] = {
            'kind': 'vhd', 'path': path, 'format': ext.upper(), 'type': vhd_type, 'size': size,
            'file_size': size + 4 * MB if vhd_type == 'Fixed' else 4 * MB, 'parent_path': norm(parent['path']) if parent else None,
            'minimum_size': size,
        }
        return self.vhd_view(path)

    def vhd_resize(self, args):
        path = args['path']
        vhd = self.files.get(key(path))
        if vhd is None or vhd['kind'] != 'vhd':
            raise HyperVError("Failed to resize the virtual disk. The system cannot find the file '%s'." % norm(path), cmdlet='Resize-VHD')
        size = int(args['size'])
        if key(path).endswith('.avhdx'):
            raise HyperVError("Failed to resize the virtual disk. '%s' is a checkpoint differencing disk: remove the virtual machine's "
                              'checkpoints first.' % vhd['path'], cmdlet='Resize-VHD')
        children = [f for f in self.files.values() if f.get('parent_path') and key(f['parent_path']) == key(path)]
        if any(key(child['path']).endswith('.avhdx') for child in children):
            raise HyperVError("Failed to resize the virtual disk. '%s' is the parent of a differencing disk of a checkpoint: remove the "
                              "virtual machine's checkpoints first." % vhd['path'], cmdlet='Resize-VHD')
        if vhd['type'] == 'Differencing' and vhd['format'] == 'VHD':
            # Resize-VHD: a differencing disk can be resized only in the VHDX format.
            raise HyperVError("Failed to resize the virtual disk. The virtual hard disk '%s' is a differencing disk in the VHD format, which "
                              'cannot be resized.' % vhd['path'], cmdlet='Resize-VHD')
        if size < vhd['size']:
            # Shrinking is for VHDX only, and down to its MinimumSize (here: the size it was created with, as if an image's
            # partitions filled it).
            minimum = vhd.get('minimum_size', vhd['size'])
            if vhd['format'] != 'VHDX':
                raise HyperVError("Failed to resize the virtual disk. The virtual hard disk '%s' is in the VHD format, which can only grow."
                                  % vhd['path'], cmdlet='Resize-VHD')
            if size < minimum:
                raise HyperVError("Failed to resize the virtual disk. The size specified for '%s' is too small: its minimum size is %d bytes."
                                  % (vhd['path'], minimum), cmdlet='Resize-VHD')
        for vm in self.users_of(path):
            drive = next((d for d in vm['disks'] if key(d['path']) == key(path)), None)
            if vm['state'] != 'Off' and (drive is None or drive['controller_type'] != 'SCSI' or vhd['format'] != 'VHDX'):
                self.in_use(path, 'Resize-VHD', running_only=True)
        if size != vhd['size']:
            self.pause('resize')
            vhd['size'] = size
            # Hyper-V allows resizing a parent, and its differencing disks no longer match it: their chain is broken.
            for child in children:
                child['broken'] = True
            if vhd['type'] == 'Fixed':
                vhd['file_size'] = size + 4 * MB
        return self.vhd_view(path)

    def vhd_remove(self, args):
        path = args['path']
        if key(path) not in self.files:
            return {'removed': False}
        self.in_use(path, 'Remove-Item')
        del self.files[key(path)]
        return {'removed': True}

    def disk_list(self, args):
        vm = self.find_vm(args['name'], 'Get-VMHardDiskDrive')
        return [dict(d) for d in vm['disks']]

    def disk_attach(self, args):
        vm = self.find_vm(args['name'], 'Add-VMHardDiskDrive')
        self.not_busy(vm, 'Add-VMHardDiskDrive')
        path = args['path']
        if key(path) not in self.files:
            raise HyperVError("Failed to add device 'Virtual Hard Disk'. The system cannot find the file specified. ('%s')" % norm(path),
                              cmdlet='Add-VMHardDiskDrive')
        if any(key(d['path']) == key(path) for d in vm['disks']):
            return [dict(d) for d in vm['disks']]
        self.in_use(path, 'Add-VMHardDiskDrive')
        ctype = args.get('controller_type') or ('SCSI' if vm['generation'] == 2 else 'IDE')
        if ctype not in ('SCSI', 'IDE'):
            raise HyperVError("Cannot convert value \"%s\" to type \"Microsoft.HyperV.PowerShell.ControllerType\"." % ctype,
                              'System.Management.Automation.ParameterBindingException', 'Add-VMHardDiskDrive')
        if ctype == 'IDE' and vm['generation'] == 2:
            raise HyperVError('Generation 2 virtual machines have no IDE controller.', cmdlet='Add-VMHardDiskDrive')
        if vm['state'] != 'Off' and ctype == 'IDE':
            raise self.wrong_state(vm, 'Add-VMHardDiskDrive', 'Virtual Hard Disk')
        number = int(args.get('controller_number') or 0)
        used = {d['controller_location'] for d in vm['disks'] if d['controller_type'] == ctype and d['controller_number'] == number}
        location = args.get('controller_location')
        limit = 2 if ctype == 'IDE' else 64
        if location is None:
            free = [i for i in range(limit) if i not in used]
            if not free:
                raise HyperVError('No free location on %s controller %d.' % (ctype, number), cmdlet='Add-VMHardDiskDrive')
            location = free[0]
        elif int(location) in used:
            raise HyperVError("Failed to add device 'Virtual Hard Disk'. The location %s %d:%d is already in use." % (ctype, number, int(location)),
                              cmdlet='Add-VMHardDiskDrive')
        vm['disks'].append({'path': norm(path), 'controller_type': ctype, 'controller_number': number, 'controller_location': int(location)})
        return [dict(d) for d in vm['disks']]

    def disk_detach(self, args):
        vm = self.find_vm(args['name'], 'Remove-VMHardDiskDrive')
        self.not_busy(vm, 'Remove-VMHardDiskDrive')
        drive = next((d for d in vm['disks'] if key(d['path']) == key(args['path'])), None)
        if drive is None:
            return [dict(d) for d in vm['disks']]
        if vm['state'] != 'Off' and drive['controller_type'] == 'IDE':
            raise self.wrong_state(vm, 'Remove-VMHardDiskDrive', 'Virtual Hard Disk')
        vm['disks'].remove(drive)
        return [dict(d) for d in vm['disks']]

    # ----------------------------------------------------------------- NICs
    def nic_list(self, args):
        vm = self.find_vm(args['name'], 'Get-VMNetworkAdapter')
        return [self.nic_view(vm, nic) for nic in vm['nics']]

    def _nic(self, vm, name, cmdlet):
        nic = next((n for n in vm['nics'] if n['name'].lower() == name.lower()), None)
        if nic is None:
            raise HyperVError("Hyper-V was unable to find a network adapter named '%s' on virtual machine '%s'." % (name, vm['name']),
                              cmdlet=cmdlet)
        return nic

    def nic_add(self, args):
        vm = self.find_vm(args['name'], 'Add-VMNetworkAdapter')
        self.not_busy(vm, 'Add-VMNetworkAdapter')
        if vm['state'] != 'Off' and vm['generation'] == 1:
            raise self.wrong_state(vm, 'Add-VMNetworkAdapter', 'Network Adapter')
        if len(vm['nics']) >= 12:
            raise HyperVError("Failed to add device 'Network Adapter': a virtual machine has at most 12 network adapters.",
                              cmdlet='Add-VMNetworkAdapter')
        switch = self.switch(args['switch'], 'Add-VMNetworkAdapter')['name'] if args.get('switch') else None
        mac = args.get('mac')
        if mac:
            mac = mac.replace(':', '').replace('-', '').upper()
            if len(mac) != 12 or any(c not in '0123456789ABCDEF' for c in mac):
                raise HyperVError("Cannot validate argument on parameter 'StaticMacAddress'. '%s' is not a valid MAC address." % args['mac'],
                                  'System.Management.Automation.ParameterBindingValidationException', 'Add-VMNetworkAdapter')
        nic = {'name': args.get('nic') or 'Network Adapter', 'mac': mac or self.next_mac(), 'switch': switch, 'vlan_id': 0}
        vm['nics'].append(nic)
        return [self.nic_view(vm, n) for n in vm['nics']]

    def nic_remove(self, args):
        vm = self.find_vm(args['name'], 'Remove-VMNetworkAdapter')
        self.not_busy(vm, 'Remove-VMNetworkAdapter')
        nics = [n for n in vm['nics'] if n['name'].lower() == args['nic'].lower()]
        if nics and vm['state'] != 'Off' and vm['generation'] == 1:
            raise self.wrong_state(vm, 'Remove-VMNetworkAdapter', 'Network Adapter')
        vm['nics'] = [n for n in vm['nics'] if n not in nics]
        return [self.nic_view(vm, n) for n in vm['nics']]

    def nic_connect(self, args):
        vm = self.find_vm(args['name'], 'Connect-VMNetworkAdapter')
        nic = self._nic(vm, args['nic'], 'Connect-VMNetworkAdapter')
        nic['switch'] = self.switch(args['switch'], 'Connect-VMNetworkAdapter')['name'] if args.get('switch') else None
        return [self.nic_view(vm, n) for n in vm['nics']]

    def nic_vlan(self, args):
        vm = self.find_vm(args['name'], 'Set-VMNetworkAdapterVlan')
        nic = self._nic(vm, args['nic'], 'Set-VMNetworkAdapterVlan')
        vlan = int(args.get('vlan_id') or 0)
        if not 0 <= vlan <= 4094:
            raise HyperVError("Cannot validate argument on parameter 'VlanId'. The %d argument is greater than the maximum allowed range of "
                              '4094.' % vlan, 'System.Management.Automation.ParameterBindingValidationException', 'Set-VMNetworkAdapterVlan')
        nic['vlan_id'] = vlan
        return [self.nic_view(vm, n) for n in vm['nics']]

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_list(self, args):
        vm = self.find_vm(args['name'], 'Get-VMSnapshot')
        return [self.checkpoint_view(vm, c) for c in vm['checkpoints']]

    def _checkpoints_named(self, vm, name, cmdlet):
        found = [c for c in vm['checkpoints'] if c['name'].lower() == name.lower()]
        if not found:
            raise HyperVError('Hyper-V was unable to find a checkpoint named "%s" for virtual machine "%s".' % (name, vm['name']),
                              cmdlet=cmdlet)
        return found

    def checkpoint_create(self, args):
        vm = self.find_vm(args['name'], 'Checkpoint-VM')
        self.not_busy(vm, 'Checkpoint-VM')
        if vm['checkpoint_type'] == 'Disabled':
            raise HyperVError("Checkpoint operation failed for '%s'. Checkpoints are disabled for this virtual machine." % vm['name'],
                              cmdlet='Checkpoint-VM')
        if len(args['checkpoint']) > 100:
            raise HyperVError("Cannot validate argument on parameter 'SnapshotName'. The character length of the %d argument is too long. "
                              'Shorten the character length of the argument so it is fewer than or equal to "100" characters, and then try '
                              'the command again.' % len(args['checkpoint']), 'System.Management.Automation.ParameterBindingValidationException',
                              'Checkpoint-VM')
        memory = vm['checkpoint_type'] == 'Standard' and vm['state'] in ('Running', 'Paused')
        config = {k: copy.deepcopy(vm[k]) for k in ('cpu', 'memory_startup', 'memory_minimum', 'memory_maximum', 'dynamic_memory',
                                                    'notes', 'nics', 'disks', 'secure_boot', 'dvds')}
        self.pause('checkpoint')
        for drive in vm['disks']:
            if key(drive['path']) in self.files:
                drive['path'] = self.new_avhdx(drive['path'])
        cp = {'id': str(uuid.uuid4()), 'name': args['checkpoint'], 'parent': vm['current_checkpoint'], 'created': now_iso(),
              'type': 'Standard' if memory or vm['checkpoint_type'] == 'Standard' else 'Production',
              'state': vm['state'] if memory else 'Off', 'config': config}
        vm['checkpoints'].append(cp)
        vm['current_checkpoint'] = cp['id']
        return self.checkpoint_view(vm, cp)

    def checkpoint_restore(self, args):
        vm = self.find_vm(args['name'], 'Restore-VMSnapshot')
        self.not_busy(vm, 'Restore-VMSnapshot')
        found = self._checkpoints_named(vm, args['checkpoint'], 'Restore-VMSnapshot')
        if len(found) > 1:
            raise HyperVError('More than one checkpoint of "%s" is named "%s": restore by identifier instead.' % (vm['name'], args['checkpoint']),
                              cmdlet='Restore-VMSnapshot')
        cp = found[0]
        self.pause('restore')
        frozen = {key(d['path']) for c in vm['checkpoints'] for d in c['config']['disks']}
        discarded = [d['path'] for d in vm['disks'] if key(d['path']).endswith('.avhdx') and key(d['path']) not in frozen]
        for k, value in cp['config'].items():
            vm[k] = copy.deepcopy(value)
        vm.setdefault('dvds', [])
        for drive in vm['disks']:
            if key(drive['path']) in self.files:
                drive['path'] = self.new_avhdx(drive['path'])
        for path in discarded:
            if not any(f.get('parent_path') and key(f['parent_path']) == key(path) for f in self.files.values()):
                self.files.pop(key(path), None)
        # A standard checkpoint of a running VM holds its saved state: Hyper-V restores it Saved (Start-VM resumes it).
        vm['state'] = 'Saved' if cp['state'] in ('Running', 'Paused') else cp['state']
        vm['running_since'] = vm['boot_at'] = None
        vm['current_checkpoint'] = cp['id']
        return self.vm_view(vm)

    def checkpoint_remove(self, args):
        vm = self.find_vm(args['name'], 'Remove-VMSnapshot')
        self.not_busy(vm, 'Remove-VMSnapshot')
        found = self._checkpoints_named(vm, args['checkpoint'], 'Remove-VMSnapshot')
        removed = []
        for cp in found:
            if cp not in vm['checkpoints']:
                continue
            doomed = [cp]
            if args.get('include_children'):
                frontier = [cp['id']]
                while frontier:
                    parent = frontier.pop()
                    for child in vm['checkpoints']:
                        if child['parent'] == parent:
                            doomed.append(child)
                            frontier.append(child['id'])
            for gone in doomed:
                for child in vm['checkpoints']:
                    if child['parent'] == gone['id']:
                        child['parent'] = gone['parent']
                if vm['current_checkpoint'] == gone['id']:
                    vm['current_checkpoint'] = gone['parent']
                vm['checkpoints'].remove(gone)
                removed.append(gone['name'])
                for drive in gone['config']['disks']:
                    self.merge(vm, drive['path'])
        return {'removed': removed, 'checkpoints': [self.checkpoint_view(vm, c) for c in vm['checkpoints']]}

    def merge(self, vm, path):
        """A checkpoint's .avhdx is gone: merge it into its only child, or drop it if nothing uses it."""
        k = key(path)
        if not k.endswith('.avhdx') or k not in self.files:
            return
        if any(key(d['path']) == k for c in vm['checkpoints'] for d in c['config']['disks']):
            return
        if any(key(d['path']) == k for d in vm['disks']):
            return
        children = [f for f in self.files.values() if f.get('parent_path') and key(f['parent_path']) == k]
        if len(children) > 1:
            return
        for child in children:
            child['parent_path'] = self.files[k]['parent_path']
        del self.files[k]

    # ----------------------------------------------------------------- export and import
    def copy_disks(self, vm, folder, cmdlet):
        """Copy every disk file of ``vm`` into ``folder``; rewrite parents inside the copy and the drive paths of ``vm``."""
        sources = self.vm_files(vm)
        mapping = {key(p): folder + '\\' + basename(p) for p in sources}
        for target in mapping.values():
            if key(target) in self.files:
                raise HyperVError("Failed to %s the virtual machine: the virtual hard disk '%s' already exists."
                                  % ('import' if cmdlet == 'Import-VM' else 'export', target), cmdlet=cmdlet)
        for source in sources:
            copied = dict(self.files[key(source)], path=mapping[key(source)])
            if copied['parent_path'] and key(copied['parent_path']) in mapping:
                copied['parent_path'] = mapping[key(copied['parent_path'])]
            self.files[key(copied['path'])] = copied
        for drive in list(vm['disks']) + [d for cp in vm['checkpoints'] for d in cp['config']['disks']]:
            drive['path'] = mapping.get(key(drive['path']), drive['path'])
        return list(mapping.values())

    def vm_export(self, args):
        vm = self.find_vm(args['name'], 'Export-VM')
        self.not_busy(vm, 'Export-VM')
        root = norm(args['path']) + '\\' + vm['name']
        if any(k.startswith(key(root) + '\\') for k in self.files):
            raise HyperVError("Failed to export the virtual machine '%s'. The folder '%s' already contains an export: "
                              'Cannot create a file when that file already exists. (0x800700B7)' % (vm['name'], root), cmdlet='Export-VM')
        self.pause('export')
        snapshot = copy.deepcopy(vm)
        disks = self.copy_disks(snapshot, root + '\\Virtual Hard Disks', 'Export-VM')
        snapshot['state'] = 'Off'
        config = root + '\\Virtual Machines\\' + vm['id'].upper() + '.vmcx'
        self.files[key(config)] = {'kind': 'vmcx', 'path': config, 'vm': snapshot, 'created': now_iso(), 'length': 80 * 1024}
        # Export-VM writes a Snapshots folder (the checkpoints' configurations) next to the other two.
        for cp in vm['checkpoints']:
            cp_path = root + '\\Snapshots\\' + cp['id'].upper() + '.vmcx'
            self.files[key(cp_path)] = {'kind': 'vmcx-snapshot', 'path': cp_path, 'created': now_iso(), 'length': 60 * 1024}
        return {'path': root, 'config_path': config, 'disks': disks}

    def vm_import(self, args):
        config = self.files.get(key(args['path']))
        if config is None or config['kind'] != 'vmcx':
            raise HyperVError("Failed to import the virtual machine: the configuration file '%s' was not found." % norm(args['path']),
                              cmdlet='Import-VM')
        source = copy.deepcopy(config['vm'])
        self.pause('import')
        self.copy_disks(source, norm(args.get('vhd_path') or VHD_PATH), 'Import-VM')
        ids = {}
        for cp in source['checkpoints']:
            ids[cp['id']] = str(uuid.uuid4())
        for cp in source['checkpoints']:
            cp['id'] = ids[cp['id']]
            cp['parent'] = ids.get(cp['parent'])
        source['current_checkpoint'] = ids.get(source['current_checkpoint'])
        source['id'] = str(uuid.uuid4())
        source['path'] = norm(args.get('vm_path') or VM_PATH)
        source['state'] = 'Off'
        source['running_since'] = source['boot_at'] = None
        for nic in source['nics']:
            nic['mac'] = self.next_mac()
        if args.get('new_name'):
            source['name'] = args['new_name']
        self.vms[source['id']] = source
        return self.vm_view(source)

    # ----------------------------------------------------------------- files and folders (Microsoft.PowerShell.Management)
    def _not_found(self, path, cmdlet):
        return HyperVError("Cannot find path '%s' because it does not exist." % norm(path), 'System.Management.Automation.ItemNotFoundException',
                           cmdlet)

    def _is_folder(self, path):
        prefix = key(path) + '\\'
        return any(k.startswith(prefix) for k in self.files) or any(key(vm['path']) == key(path) for vm in self.vms.values())

    def item_view(self, path):
        entry = self.files.get(key(path))
        if entry is None:
            return {'name': basename(path), 'path': norm(path), 'directory': True, 'length': None, 'created': None}
        if entry['kind'] == 'vhd':
            length = entry['file_size']
        elif entry['kind'] == 'file':
            length = len(base64.b64decode(entry['data']))
        else:
            length = entry.get('length', 0)
        return {'name': basename(entry['path']), 'path': entry['path'], 'directory': False, 'length': length, 'created': entry.get('created')}

    def dir_list(self, args):
        """Get-ChildItem -LiteralPath: the folder's children (with -Recurse every file and folder below), folders first, by name."""
        root = key(args['path'])
        if root in self.files:
            return [self.item_view(args['path'])]
        if not self._is_folder(args['path']):
            raise self._not_found(args['path'], 'Get-ChildItem')
        found = {}
        for k, entry in self.files.items():
            if not k.startswith(root + '\\'):
                continue
            parts = entry['path'][len(root) + 1:].split('\\')
            depth = len(parts) if args.get('recurse') else 1
            for i in range(1, min(depth, len(parts)) + 1):
                sub = norm(args['path']) + '\\' + '\\'.join(parts[:i])
                found[key(sub)] = sub
        items = [self.item_view(path) for path in found.values()]
        pattern = args.get('filter')
        if pattern:
            items = [item for item in items if fnmatch.fnmatch(item['name'].lower(), pattern.lower())]
        return sorted(items, key=lambda item: (not item['directory'], item['path'].lower()))

    def file_write(self, args):
        """Set-Content (or Add-Content with append) -Encoding Byte: the bytes come base64 in the arguments, never in the script."""
        path = norm(args['path'])
        try:
            data = base64.b64decode(args.get('data') or '', validate=True)
        except (binascii.Error, ValueError):
            raise HyperVError('Invalid length for a Base-64 char array or string.', 'System.FormatException', 'Set-Content') from None
        entry = self.files.get(key(path))
        if entry is not None and entry['kind'] != 'file':
            raise HyperVError("The process cannot access the file '%s' because it is being used by another process." % path,
                              'System.IO.IOException', 'Set-Content')
        if entry is not None:
            self.in_use(path, 'Set-Content')
        if args.get('append') and entry is not None:
            data = base64.b64decode(entry['data']) + data
        self.files[key(path)] = {'kind': 'file', 'path': path, 'data': base64.b64encode(data).decode('ascii'),
                                 'created': (entry or {}).get('created') or now_iso()}
        return self.item_view(path)

    def file_read(self, args):
        entry = self.files.get(key(args['path']))
        if entry is None:
            raise self._not_found(args['path'], 'Get-Content')
        if entry['kind'] != 'file':
            raise HyperVError("polyvirt-sim keeps no content for '%s' (only for files written with Set-Content)." % entry['path'],
                              'System.NotSupportedException', 'Get-Content')
        return {'path': entry['path'], 'data': entry['data']}

    def item_remove(self, args):
        """Remove-Item -LiteralPath [-Recurse] -Force: a file, or a folder with everything in it."""
        path = norm(args['path'])
        doomed = [k for k in self.files if k == key(path) or k.startswith(key(path) + '\\')]
        if not doomed and not self._is_folder(path):
            raise self._not_found(path, 'Remove-Item')
        if key(path) not in self.files and not args.get('recurse'):
            raise HyperVError("The item at %s has children and the Recurse parameter was not specified." % path,
                              'System.Management.Automation.PSInvalidOperationException', 'Remove-Item')
        for k in doomed:
            self.in_use(self.files[k]['path'], 'Remove-Item')
        for k in doomed:
            del self.files[k]
        return {'removed': True, 'count': len(doomed)}

    # ----------------------------------------------------------------- DVD drives
    def _dvd(self, vm, args, cmdlet):
        number, location = int(args['controller_number']), int(args['controller_location'])
        dvd = next((d for d in vm['dvds'] if d['controller_number'] == number and d['controller_location'] == location), None)
        if dvd is None:
            raise HyperVError("Hyper-V was unable to find a DVD drive at %s %d:%d of virtual machine '%s'."
                              % ('IDE' if vm['generation'] == 1 else 'SCSI', number, location, vm['name']), cmdlet=cmdlet)
        return dvd

    def _check_iso(self, path, cmdlet):
        if path is None:
            return None
        entry = self.files.get(key(path))
        if entry is None:
            raise HyperVError("Failed to add device 'Virtual CD/DVD Disk'. The system cannot find the file specified. ('%s')" % norm(path),
                              cmdlet=cmdlet)
        if not key(path).endswith('.iso'):
            raise HyperVError("Failed to add device 'Virtual CD/DVD Disk'. '%s' is not an ISO image (.iso)." % entry['path'], cmdlet=cmdlet)
        return entry['path']

    def dvd_add(self, args):
        """Add-VMDvdDrive: IDE on generation 1 (only while Off), SCSI on generation 2 (only while Off here: see README)."""
        vm = self.find_vm(args['name'], 'Add-VMDvdDrive')
        self.not_busy(vm, 'Add-VMDvdDrive')
        if vm['state'] != 'Off':
            raise self.wrong_state(vm, 'Add-VMDvdDrive', 'Virtual CD/DVD Disk')
        path = self._check_iso(args.get('path'), 'Add-VMDvdDrive')
        ctype = 'IDE' if vm['generation'] == 1 else 'SCSI'
        used = {(d['controller_number'], d['controller_location']) for d in vm['disks'] + vm['dvds'] if d['controller_type'] == ctype}
        slots = [(n, loc) for n in range(2) for loc in range(2)] if ctype == 'IDE' else [(0, loc) for loc in range(64)]
        if args.get('controller_number') is not None:
            slots = [slot for slot in slots if slot[0] == int(args['controller_number'])]
        if args.get('controller_location') is not None:
            slots = [slot for slot in slots if slot[1] == int(args['controller_location'])]
        free = [slot for slot in slots if slot not in used]
        if not free:
            raise HyperVError("Failed to add device 'Virtual CD/DVD Disk'. No free location on the %s controller." % ctype, cmdlet='Add-VMDvdDrive')
        vm['dvds'].append({'path': path, 'controller_type': ctype, 'controller_number': free[0][0], 'controller_location': free[0][1]})
        return [dict(d) for d in vm['dvds']]

    def dvd_set(self, args):
        """Set-VMDvdDrive -Path: change (or with no path eject) the medium, also while the VM runs."""
        vm = self.find_vm(args['name'], 'Set-VMDvdDrive')
        self.not_busy(vm, 'Set-VMDvdDrive')
        dvd = self._dvd(vm, args, 'Set-VMDvdDrive')
        dvd['path'] = self._check_iso(args.get('path'), 'Set-VMDvdDrive')
        return [dict(d) for d in vm['dvds']]

    def dvd_remove(self, args):
        vm = self.find_vm(args['name'], 'Remove-VMDvdDrive')
        self.not_busy(vm, 'Remove-VMDvdDrive')
        dvd = self._dvd(vm, args, 'Remove-VMDvdDrive')
        if vm['state'] != 'Off':
            raise self.wrong_state(vm, 'Remove-VMDvdDrive', 'Virtual CD/DVD Disk')
        vm['dvds'].remove(dvd)
        return [dict(d) for d in vm['dvds']]
