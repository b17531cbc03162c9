# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulated cluster: nodes, storages, volumes, guests (as PVE config text), tasks and faults."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
import threading
import time
import uuid

from .pvefmt import PveError, fail, config_digest, format_size, parse_config, parse_property_string, parse_size, render_config

QEMU_VERSION = '10.1.2'
DRIVE_RE = re.compile(r'^(ide\d+|sata\d+|scsi\d+|virtio\d+|efidisk0|tpmstate0)$')
LXC_MP_RE = re.compile(r'^(rootfs|mp\d+)$')
NEW_DISK_RE = re.compile(r'^(([^/:\s]+):)?(\d+(\.\d+)?)$')

CI_KEYS = ('cipassword', 'ciuser', 'citype', 'ciupgrade', 'sshkeys', 'nameserver', 'searchdomain', 'cicustom')
SEED_TEMPLATE = 9000
SEED_OSTEMPLATE = 'debian-12-standard_12.12-1_amd64.tar.zst'
SEED_CLOUD_IMAGE = 'debian-12-genericcloud-amd64.qcow2'
SEED_ISO = 'debian-12.12.0-amd64-netinst.iso'
FILE_STORAGE = ('dir', 'nfs')
SIM_DNS = {'search': 'polyvirt.lan', 'nameserver': '10.20.0.1'}
DHCP_NET = '10.20.0.'


class Fault:
    """One --fault SPEC: KIND[:TARGET[:ARG]][@COUNT] (COUNT 0 = forever)."""

    KINDS = ('task-error', 'task-warning', 'lock-timeout', 'node-offline', 'slow-shutdown', 'http-500')

    def __init__(self, spec):
        self.spec = spec
        body, count = spec, ''
        if re.search(r'@\d+$', spec):
            body, dummy, count = spec.rpartition('@')
        parts = body.split(':', 2)
        self.kind = parts[0]
        if self.kind not in self.KINDS:
            raise ValueError('unknown fault kind %r (one of %s)' % (self.kind, ', '.join(self.KINDS)))
        self.target = parts[1] if len(parts) > 1 and parts[1] else '*'
        self.arg = parts[2] if len(parts) > 2 else None
        default = 0 if self.kind in ('node-offline', 'slow-shutdown') else 1
        self.remaining = int(count) if count else default
        self.forever = self.remaining == 0

    def matches(self, kind, target):
        return self.kind == kind and self.target in ('*', str(target)) and (self.forever or self.remaining > 0)

    def consume(self):
        if not self.forever:
            self.remaining -= 1

    def as_dict(self):
        return {'spec': self.spec, 'kind': self.kind, 'target': self.target, 'arg': self.arg,
                'remaining': None if self.forever else self.remaining}


class Task:
    _seq = itertools.count()

    def __init__(self, node, ttype, tid, user):
        self.seq = next(Task._seq)
        self.node = node
        self.type = ttype
        self.id = str(tid)
        self.user = user
        self.pid = random.randint(1000, 4000000)
        self.pstart = random.randint(1000000, 99999999)
        self.starttime = int(time.time())
        self.upid = 'UPID:%s:%08X:%08X:%08X:%s:%s:%s:' % (node, self.pid, self.pstart, self.starttime, ttype, self.id, user)
        self.status = 'running'
        self.exitstatus = None
        self.endtime = None
        self.lines = []
        self.warnings = 0
        self.stop_requested = False

    def log(self, line):
        self.lines.extend(str(line).split('\n'))

    def warn(self, msg):
        self.warnings += 1
        self.log('WARN: ' + msg)

    def status_dict(self):
        user, dummy, token = self.user.partition('!')
        res = {'upid': self.upid, 'node': self.node, 'pid': self.pid, 'pstart': self.pstart, 'starttime': self.starttime,
               'type': self.type, 'id': self.id, 'user': user, 'status': self.status}
        if token:
            res['tokenid'] = token
        if self.status == 'stopped':
            res['exitstatus'] = self.exitstatus
        return res

    def list_dict(self):
        res = self.status_dict()
        res.pop('exitstatus', None)
        if self.status == 'stopped':
            res['endtime'] = self.endtime
            res['status'] = self.exitstatus
        else:
            res.pop('status')
        return res

    def to_json(self):
        return {'upid': self.upid, 'node': self.node, 'type': self.type, 'id': self.id, 'user': self.user, 'pid': self.pid,
                'pstart': self.pstart, 'starttime': self.starttime, 'endtime': self.endtime,
                'exitstatus': self.exitstatus or 'unexpected status', 'lines': self.lines}

    @classmethod
    def from_json(cls, data):
        task = cls(data['node'], data['type'], data['id'], data['user'])
        task.upid, task.pid, task.pstart, task.starttime = data['upid'], data['pid'], data['pstart'], data['starttime']
        task.endtime, task.exitstatus, task.lines, task.status = data['endtime'], data['exitstatus'], data['lines'], 'stopped'
        return task


class Guest:
    def __init__(self, vmid, kind, node, conf=None):
        self.vmid = int(vmid)
        self.kind = kind
        self.node = node
        self.conf = conf or {'main': {}, 'pending': {}, 'delete': [], 'cloudinit': {}, 'snapshots': {}}
        self.status = 'stopped'
        self.paused = False
        self.started = None
        self.agent_at = None
        self.execs = {}

    @property
    def main(self):
        return self.conf['main']

    @property
    def label(self):
        return 'VM' if self.kind == 'qemu' else 'CT'

    def conf_path(self):
        return 'nodes/%s/%s/%d.conf' % (self.node, 'qemu-server' if self.kind == 'qemu' else 'lxc', self.vmid)

    def lock_file(self):
        if self.kind == 'qemu':
            return '/var/lock/qemu-server/lock-%d.conf' % self.vmid
        return '/run/lock/lxc/pve-config-%d.lock' % self.vmid

    def digest(self):
        return config_digest(self.conf)

    def text(self):
        return render_config(self.conf)

    def check_lock(self):
        if self.main.get('lock'):
            fail('%s is locked (%s)' % (self.label, self.main['lock']))

    def name(self):
        if self.kind == 'qemu':
            return self.main.get('name', 'VM %d' % self.vmid)
        return self.main.get('hostname', 'CT%d' % self.vmid)

    def uptime(self):
        return int(time.time() - self.started) if self.status == 'running' and self.started else 0


class Cluster:
    """All simulated state; every public method runs under self.lock."""

    def __init__(self, nodes=('pve',), time_scale=1.0, faults=(), state_file=None, seed=True, shared_storages=(), bridges=('vmbr0',)):
        self.lock = threading.RLock()
        self.local = threading.local()
        self.flock_holders = {}
        self.time_scale = time_scale
        self.nodes = {n: {'online': True} for n in nodes}
        self.storages = {
            'local': {'type': 'dir', 'path': '/var/lib/vz', 'content': ['backup', 'images', 'iso', 'snippets', 'vztmpl'],
                      'shared': 0, 'total': 100 << 30},
            'local-lvm': {'type': 'lvmthin', 'vgname': 'pve', 'thinpool': 'data', 'content': ['images', 'rootdir'],
                          'shared': 0, 'total': 200 << 30},
        }
        self.bridges = set(bridges)
        for name in shared_storages:
            self.storages[name] = {'type': 'nfs', 'path': '/mnt/pve/%s' % name, 'server': '192.0.2.100', 'export': '/export/%s' % name,
                                   'content': ['backup', 'images', 'iso', 'rootdir', 'snippets', 'vztmpl'], 'shared': 1, 'total': 1 << 40}
        self.volumes = {}
        self.guests = {}
        self.tasks = {}
        self.faults = [Fault(f) for f in faults]
        self.state_file = state_file
        self.dirty = False
        if state_file and os.path.exists(state_file):
            self.load(state_file)
        elif seed:
            self.seed()

    # --- persistence -------------------------------------------------------------------------------------
    def save(self):
        if not self.state_file:
            return
        data = {
            'volumes': {'%s/%s' % k: v for k, v in self.volumes.items()},
            'guests': [{'vmid': g.vmid, 'kind': g.kind, 'node': g.node, 'config': g.text(), 'status': g.status,
                        'paused': g.paused, 'started': g.started} for g in self.guests.values()],
            'tasks': [t.to_json() for t in self.tasks.values() if t.status == 'stopped'],
        }
        tmp = self.state_file + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.state_file)

    def load(self, path):
        with open(path, encoding='utf-8') as fh:
            data = json.load(fh)
        self.volumes = {tuple(k.split('/', 1)): v for k, v in data['volumes'].items()}
        for g in data['guests']:
            guest = Guest(g['vmid'], g['kind'], g['node'], parse_config(g['config']))
            guest.status, guest.paused, guest.started = g['status'], g['paused'], g['started']
            if guest.status == 'running':
                guest.agent_at = time.time()
            if guest.node not in self.nodes:
                self.nodes[guest.node] = {'online': True}
            self.guests[guest.vmid] = guest
        for t in data.get('tasks', []):
            task = Task.from_json(t)
            self.tasks[task.upid] = task

    # --- seed ----------------------------------------------------------------------------------------------
    def seed(self):
        now = int(time.time())
        for node in self.nodes:
            store = self.store(node, 'local')
            store['vztmpl/' + SEED_OSTEMPLATE] = {'size': 126 << 20, 'format': 'tzst', 'content': 'vztmpl', 'ctime': now}
            store['iso/' + SEED_ISO] = {'size': 631 << 20, 'format': 'iso', 'content': 'iso', 'ctime': now}
            store['import/' + SEED_CLOUD_IMAGE] = {'size': 3 << 30, 'format': 'qcow2', 'content': 'import', 'ctime': now}
            store['snippets/user-data.yaml'] = {'size': 64, 'format': 'snippet', 'content': 'snippets', 'ctime': now,
                                                'data': '#cloud-config\npackage_upgrade: false\n'}
        node = next(iter(self.nodes))
        lvm = self.store(node, 'local-lvm')
        lvm['base-%d-disk-0' % SEED_TEMPLATE] = {'size': 3 << 30, 'format': 'raw', 'content': 'images', 'vmid': SEED_TEMPLATE, 'ctime': now}
        lvm['vm-%d-cloudinit' % SEED_TEMPLATE] = {'size': 4 << 20, 'format': 'raw', 'content': 'images', 'vmid': SEED_TEMPLATE, 'ctime': now}
        guest = Guest(SEED_TEMPLATE, 'qemu', node)
        guest.main.update({
            'agent': '1', 'boot': 'order=scsi0', 'cores': '2', 'cpu': 'x86-64-v2-AES', 'ide2': 'local-lvm:vm-%d-cloudinit,media=cdrom' % SEED_TEMPLATE,
            'ipconfig0': 'ip=dhcp', 'memory': '2048', 'meta': 'creation-qemu=%s,ctime=%d' % (QEMU_VERSION, now),
            'name': 'debian-12-cloud', 'net0': 'virtio=BC:24:11:00:90:00,bridge=vmbr0', 'ostype': 'l26',
            'scsi0': 'local-lvm:base-%d-disk-0,size=3G' % SEED_TEMPLATE, 'scsihw': 'virtio-scsi-single', 'serial0': 'socket',
            'smbios1': 'uuid=%s' % uuid.UUID(int=SEED_TEMPLATE), 'template': '1', 'vga': 'serial0',
            'vmgenid': str(uuid.UUID(int=SEED_TEMPLATE + 1)), 'description': 'Debian 12 cloud-init template (polyvirt simulator seed)',
        })
        self.guests[SEED_TEMPLATE] = guest

    # --- helpers ----------------------------------------------------------------------------------------------
    def scaled(self, seconds):
        return seconds * self.time_scale

    def fault(self, kind, target):
        with self.lock:
            for f in self.faults:
                if f.matches(kind, target):
                    f.consume()
                    return f
        return None

    def node_offline(self, node):
        return any(f.matches('node-offline', node) for f in self.faults) or not self.nodes.get(node, {}).get('online', True)

    def store(self, node, storeid):
        """The volumes of STOREID as NODE sees them (one set for a shared storage)."""
        if self.storages.get(storeid, {}).get('shared'):
            node = '*'
        return self.volumes.setdefault((node, storeid), {})

    def storage_cfg(self, storeid):
        cfg = self.storages.get(storeid)
        if not cfg:
            fail("storage '%s' does not exist" % storeid)
        return cfg

    def find_volume(self, node, volid):
        storeid, dummy, volname = volid.partition(':')
        if storeid not in self.storages:
            return None
        return self.store(node, storeid).get(volname)

    def check_volume(self, node, volid):
        vol = self.find_volume(node, volid)
        if vol is None:
            if ':' not in volid:
                fail("unable to parse volume ID '%s'" % volid)
            fail("volume '%s' does not exist" % volid)
        return vol

    def free_volume(self, node, volid):
        storeid, dummy, volname = volid.partition(':')
        self.store(node, storeid).pop(volname, None)

    def next_disk_index(self, node, storeid, vmid):
        names = set(self.store(node, storeid))
        for i in range(1000):
            if not any(re.search(r'(^|/)(vm|base)-%d-disk-%d(\.|$)' % (vmid, i), n) for n in names):
                return i
        return 1000

    def alloc_volume(self, node, storeid, vmid, size, fmt=None, content='images', name=None):
        cfg = self.storage_cfg(storeid)
        need = 'images' if content == 'images' else 'rootdir'
        if need not in cfg['content']:
            if need == 'images':
                fail("storage '%s' does not support vm images" % storeid)
            fail("storage '%s' does not support container directories" % storeid)
        idx = self.next_disk_index(node, storeid, vmid)
        base = name or 'vm-%d-disk-%d' % (vmid, idx)
        if cfg['type'] in FILE_STORAGE:
            fmt = fmt or 'raw'
            volname = '%d/%s.%s' % (vmid, base, fmt) if not name or '.' not in name else '%d/%s' % (vmid, name)
        else:
            if fmt and fmt != 'raw':
                fail("unsupported format '%s'" % fmt)
            fmt = 'raw'
            volname = base
        self.store(node, storeid)[volname] = {'size': int(size), 'format': fmt, 'content': content, 'vmid': vmid, 'ctime': int(time.time())}
        return '%s:%s' % (storeid, volname)

    def nextid(self):
        vmid = 100
        while vmid in self.guests:
            vmid += 1
        return vmid

    def get_guest(self, node, vmid, kind):
        vmid = int(vmid)
        guest = self.guests.get(vmid)
        if not guest or guest.kind != kind or guest.node != node:
            if kind == 'qemu':
                fail("Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist" % (node, vmid))
            fail("Configuration file 'nodes/%s/lxc/%d.conf' does not exist" % (node, vmid))
        return guest

    def flock(self, guest):
        """Take the config flock for a change: fails if a task holds it (PVE waits 10 s first) or by fault."""
        if self.flock_holders.get(guest.vmid) or self.fault('lock-timeout', guest.vmid):
            fail("can't lock file '%s' - got timeout" % guest.lock_file())

    def hold_flock(self, guest):
        self.flock_holders[guest.vmid] = self.flock_holders.get(guest.vmid, 0) + 1

    def release_flock(self, guest):
        self.flock_holders[guest.vmid] -= 1
        if not self.flock_holders[guest.vmid]:
            del self.flock_holders[guest.vmid]

    # --- tasks -----------------------------------------------------------------------------------------------------
    def start_task(self, node, ttype, tid, user, work, guest=None, lock=None, on_error=None, on_done=None):
        """Run WORK(task) in a thread; GUEST keeps `lock: LOCK` until it ends. Returns the UPID."""
        task = Task(node, ttype, tid, user)
        with self.lock:
            self.tasks[task.upid] = task
            if guest is not None and lock:
                guest.main['lock'] = lock
            self.dirty = True
        fault_error = self.fault('task-error', ttype)
        fault_warning = self.fault('task-warning', ttype)

        def run():
            self.local.task = task
            try:
                if fault_error:
                    self.sleep(0.2)
                    raise PveError(fault_error.arg or 'simulated failure (fault task-error:%s)' % ttype)
                work(task)
                if fault_warning:
                    task.warn(fault_warning.arg or 'simulated warning (fault task-warning:%s)' % ttype)
                exit_status = 'OK' if not task.warnings else 'WARNINGS: %d' % task.warnings
                task.log('TASK OK' if not task.warnings else 'TASK WARNINGS: %d' % task.warnings)
            except PveError as exc:
                msg = exc.msg.rstrip('\n')
                if on_error:
                    with self.lock:
                        on_error(task)
                task.log('TASK ERROR: ' + msg)
                exit_status = msg.split('\n')[0]
            except Exception as exc:  # pylint: disable=broad-except
                task.log('TASK ERROR: internal simulator error: %r' % exc)
                exit_status = 'internal simulator error: %r' % exc
            with self.lock:
                if guest is not None and lock and guest.main.get('lock') == lock:
                    del guest.main['lock']
                if on_done:
                    on_done()
                task.endtime = int(time.time())
                task.exitstatus = exit_status
                task.status = 'stopped'
                self.save()

        threading.Thread(target=run, name=task.upid, daemon=True).start()
        return task.upid

    def sleep(self, seconds):
        """A task's simulated work; a task stopped with DELETE .../tasks/{upid} ends here."""
        if self.time_scale > 0:
            time.sleep(seconds * self.time_scale)
        task = getattr(self.local, 'task', None)
        if task is not None and task.stop_requested:
            raise PveError('interrupted by signal')

    def task_by_upid(self, upid, node=None):
        m = re.match(r'^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$',
                     upid)
        if not m:
            raise PveError('Parameter verification failed.', 400, {'upid': 'unable to parse worker upid'})
        task = self.tasks.get(upid)
        if not task or (node and task.node != node):
            raise PveError('Parameter verification failed.', 400, {'upid': 'no such task'})
        return task

    # --- guest power (shared by qemu and lxc) --------------------------------------------------------------------
    def power_on(self, guest):
        guest.status = 'running'
        guest.paused = False
        guest.started = time.time()
        guest.agent_at = time.time() + self.scaled(1.0)
        self.apply_pending(guest, everything=True)
        if guest.kind == 'qemu' and any(DRIVE_RE.match(k) and 'cloudinit' in v for k, v in guest.main.items()):
            guest.conf['cloudinit'] = {k: v for k, v in guest.main.items() if k in CI_KEYS or k.startswith('ipconfig')}

    def power_off(self, guest):
        guest.status = 'stopped'
        guest.paused = False
        guest.started = None
        guest.agent_at = None
        self.apply_pending(guest, everything=True)

    def apply_pending(self, guest, everything=False, keys=None):
        conf = guest.conf
        for key in list(conf['pending']):
            if everything or (keys and key in keys):
                self.replace_key(guest, key, conf['pending'].pop(key))
        for key in list(conf['delete']):
            plain = key.lstrip('!')
            if everything or (keys and plain in keys):
                conf['delete'].remove(key)
                self.delete_key(guest, plain)

    def replace_key(self, guest, key, value):
        old = guest.main.get(key)
        if old is not None and old != value and self.is_disk_key(guest, key) and old.split(',')[0] != value.split(',')[0]:
            self.retire_volume(guest, key, old)
        guest.main[key] = value
        if self.is_disk_key(guest, key) and not key.startswith('unused'):
            # re-attaching an unused volume removes its unusedN entry (write_vm_config)
            volid = value.split(',')[0]
            for other in [k for k, v in guest.main.items() if k.startswith('unused') and v == volid]:
                del guest.main[other]

    def delete_key(self, guest, key):
        old = guest.main.pop(key, None)
        if old is not None and self.is_disk_key(guest, key):
            self.retire_volume(guest, key, old)

    @staticmethod
    def is_disk_key(guest, key):
        if guest.kind == 'qemu':
            return bool(DRIVE_RE.match(key)) or key.startswith('unused')
        return key.startswith('mp') or key.startswith('unused')

    def retire_volume(self, guest, key, value):
        """A disk left its slot: free cloud-init and unusedN volumes, keep others as unusedN."""
        volid = value.split(',')[0]
        if 'media=cdrom' in value and 'cloudinit' not in volid:
            return
        if key.startswith('unused') or 'cloudinit' in volid:
            self.free_volume(guest.node, volid)
            return
        if ':' not in volid or volid.startswith('/'):
            return
        if any(v.split(',')[0] == volid for k, v in guest.main.items() if k != key and self.is_disk_key(guest, k)):
            return
        i = 0
        while 'unused%d' % i in guest.main:
            i += 1
        guest.main['unused%d' % i] = volid

    def guest_volumes(self, guest, conf=None):
        conf = conf if conf is not None else guest.main
        res = []
        for key, value in conf.items():
            if not self.is_disk_key(guest, key) and not (guest.kind == 'lxc' and key == 'rootfs'):
                continue
            volid = value.split(',')[0]
            if 'media=cdrom' in value and 'cloudinit' not in volid:
                continue
            if ':' in volid and self.find_volume(guest.node, volid) is not None:
                res.append((key, volid))
        return res

    def remove_guest(self, guest, purge_disks=True, keep=()):
        if purge_disks:
            for _key, volid in self.guest_volumes(guest):
                if volid not in keep:
                    self.free_volume(guest.node, volid)
            for snap in guest.conf['snapshots'].values():
                for _key, volid in self.guest_volumes(guest, snap):
                    if volid not in keep:
                        self.free_volume(guest.node, volid)
            for (node, storeid), vols in self.volumes.items():
                if node not in (guest.node, '*'):
                    continue
                for volname in [n for n, v in vols.items() if v.get('vmid') == guest.vmid and v.get('content') in ('images', 'rootdir')]:
                    if '%s:%s' % (storeid, volname) not in keep:
                        del vols[volname]
        self.guests.pop(guest.vmid, None)

    # --- resources ------------------------------------------------------------------------------------------------
    def guest_maxdisk(self, guest):
        key = 'rootfs' if guest.kind == 'lxc' else None
        if key is None:
            boot_fmt = {'order': {'type': 'string'}, 'legacy': {'type': 'string', 'default_key': 1}}
            raw = guest.main.get('boot') or ''
            boot = parse_property_string(boot_fmt, raw, validate=False) if raw.strip('order=') else {}
            order = [d for d in re.split(r'[;,\s]+', boot.get('order') or '') if DRIVE_RE.match(d)]
            key = order[0] if order else next((k for k in sorted(guest.main) if DRIVE_RE.match(k) and 'media=cdrom' not in guest.main[k]), None)
        value = guest.main.get(key or '', '')
        m = re.search(r'(?:^|,)size=([^,]+)', value)
        return parse_size(m.group(1)) if m else 0

    def guest_maxmem(self, guest):
        if guest.kind == 'lxc':
            return int(guest.main.get('memory', '512')) << 20
        mem = guest.main.get('memory', '512')
        m = re.search(r'(?:^|current=)(\d+)', mem)
        return int(m.group(1) if m else 512) << 20

    def guest_cpus(self, guest):
        if guest.kind == 'lxc':
            return int(guest.main.get('cores', '1'))
        return int(guest.main.get('cores', '1')) * int(guest.main.get('sockets', '1'))

    def resource(self, guest):
        running = guest.status == 'running'
        maxmem = self.guest_maxmem(guest)
        res = {
            'id': '%s/%d' % (guest.kind, guest.vmid), 'type': guest.kind, 'node': guest.node, 'vmid': guest.vmid,
            # pvestatd records a running VM's QMP status (`qmpstatus || status`), and cluster/resources lists that
            'name': guest.name(), 'status': 'paused' if guest.kind == 'qemu' and guest.paused else guest.status,
            'template': 1 if guest.main.get('template') == '1' else 0,
            'cpu': 0.01 if running else 0, 'maxcpu': self.guest_cpus(guest), 'mem': maxmem // 4 if running else 0, 'maxmem': maxmem,
            'disk': 0, 'maxdisk': self.guest_maxdisk(guest), 'uptime': guest.uptime(), 'netin': 0, 'netout': 0,
            'diskread': 0, 'diskwrite': 0,
        }
        if guest.kind == 'qemu':
            res['memhost'] = res['mem']  # PVE 9 (API2Tools.pm): what the host gives the VM
        if guest.main.get('lock'):
            res['lock'] = guest.main['lock']
        if guest.main.get('tags'):
            res['tags'] = guest.main['tags']
        return res

    # --- guest networking (agent / lxc interfaces) ----------------------------------------------------------------
    @staticmethod
    def dhcp_address(guest, index):
        return DHCP_NET + str(10 + (guest.vmid * 7 + index) % 240)

    def guest_addresses(self, guest):
        """[(ifname, mac, ipv4 or None, prefix)] from net*/ipconfig* (qemu) or net* ip= (lxc)."""
        res = []
        for key in sorted((k for k in guest.main if re.match(r'^net\d+$', k)), key=lambda k: int(k[3:])):
            idx = int(key[3:])
            value = guest.main[key]
            if guest.kind == 'qemu':
                m = re.search(r'(?:^|,)[a-z0-9-]+=([0-9A-Fa-f:]{17})', value)
                mac = m.group(1).lower() if m else '00:00:00:00:00:00'
                ipcfg = guest.main.get('ipconfig%d' % idx)
                ip = dict(p.split('=', 1) for p in ipcfg.split(',') if '=' in p).get('ip') if ipcfg else None
                if ip is None and idx == 0 and any(DRIVE_RE.match(k) and 'cloudinit' in v for k, v in guest.main.items()):
                    ip = 'dhcp'
                name = 'eth%d' % idx
            else:
                opts = dict(p.split('=', 1) for p in value.split(',') if '=' in p)
                mac = opts.get('hwaddr', '00:00:00:00:00:00').lower()
                ip = opts.get('ip')
                name = opts.get('name', 'eth%d' % idx)
            if ip == 'dhcp' or (ip is None and guest.kind == 'qemu'):
                res.append((name, mac, self.dhcp_address(guest, idx), 24))
            elif ip and '/' in ip:
                addr, prefix = ip.split('/')
                res.append((name, mac, addr, int(prefix)))
            else:
                res.append((name, mac, None, 0))
        return res

    # --- cloud-init -----------------------------------------------------------------------------------------------
    @staticmethod
    def ci_hostname(guest):
        name = guest.main.get('name') or 'VM%d' % guest.vmid
        hostname = name.split('.')[0]
        if '.' in name:
            fqdn = name
        elif guest.main.get('searchdomain'):
            fqdn = '%s.%s' % (name, guest.main['searchdomain'].split()[0])
        else:
            fqdn = hostname
        return hostname, fqdn

    def ci_user(self, guest):
        import urllib.parse  # pylint: disable=import-outside-toplevel
        conf = guest.main
        hostname, fqdn = self.ci_hostname(guest)
        out = ['#cloud-config', 'hostname: %s' % hostname, 'manage_etc_hosts: true', 'fqdn: %s' % fqdn]
        user = conf.get('ciuser')
        if user is not None:
            out.append('user: %s' % user)
            if user == 'root':
                out.append('disable_root: False')
        if conf.get('cipassword') is not None:
            out.append('password: %s' % conf['cipassword'])
        if conf.get('sshkeys') is not None:
            keys = [k for k in urllib.parse.unquote(conf['sshkeys']).split('\n') if k.strip()]
            out.append('ssh_authorized_keys:')
            out.extend('  - %s' % k for k in keys)
        out += ['chpasswd:', '  expire: False']
        if user is None or user != 'root':
            out += ['users:', '  - default']
        if conf.get('ciupgrade', '1') != '0':
            out.append('package_upgrade: true')
        return '\n'.join(out) + '\n'

    def ci_network(self, guest):
        conf = guest.main
        out = 'version: 1\nconfig:\n'
        i = '    '
        for key in sorted(k for k in conf if re.match(r'^net\d+$', k)):
            idx = key[3:]
            ipcfg = conf.get('ipconfig' + idx)
            if not ipcfg:
                continue
            m = re.search(r'(?:^|,)[a-z0-9-]+=([0-9A-Fa-f:]{17})', conf[key])
            mac = m.group(1).lower() if m else ''
            cfg = dict(p.split('=', 1) for p in ipcfg.split(',') if '=' in p)
            out += '%s- type: physical\n%s  name: eth%s\n%s  mac_address: \'%s\'\n%s  subnets:\n' % (i, i, idx, i, mac, i)
            j = i + '  '
            if 'ip' in cfg:
                if cfg['ip'] == 'dhcp':
                    out += '%s- type: dhcp4\n' % j
                else:
                    addr, prefix = cfg['ip'].split('/')
                    mask = '.'.join(str((0xffffffff << (32 - int(prefix)) >> k) & 0xff) for k in (24, 16, 8, 0))
                    out += "%s- type: static\n%s  address: '%s'\n%s  netmask: '%s'\n" % (j, j, addr, j, mask)
                    if 'gw' in cfg:
                        out += "%s  gateway: '%s'\n" % (j, cfg['gw'])
            if 'ip6' in cfg:
                if cfg['ip6'] == 'dhcp':
                    out += '%s- type: dhcp6\n' % j
                elif cfg['ip6'] == 'auto':
                    out += '%s- type: ipv6_slaac\n' % j
                else:
                    out += "%s- type: static6\n%s  address: '%s'\n" % (j, j, cfg['ip6'])
                    if 'gw6' in cfg:
                        out += "%s  gateway: '%s'\n" % (j, cfg['gw6'])
        nameservers = (conf.get('nameserver') or '').split()
        searchdomains = (conf.get('searchdomain') or '').split()
        if not nameservers and not searchdomains:
            nameservers, searchdomains = [SIM_DNS['nameserver']], [SIM_DNS['search']]
        out += '%s- type: nameserver\n' % i
        if nameservers:
            out += '%s  address:\n' % i + ''.join("%s  - '%s'\n" % (i, n) for n in nameservers)
        if searchdomains:
            out += '%s  search:\n' % i + ''.join("%s  - '%s'\n" % (i, s) for s in searchdomains)
        return out

    def ci_meta(self, guest):
        digest = hashlib.sha1((self.ci_user(guest) + self.ci_network(guest)).encode()).hexdigest()
        return 'instance-id: %s\n' % digest

    # --- misc -------------------------------------------------------------------------------------------------------
    def volume_size(self, node, volid):
        vol = self.find_volume(node, volid)
        return vol['size'] if vol else 0

    def size_option(self, size):
        return format_size(size)
