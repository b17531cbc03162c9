# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Handlers of the PVE API paths the simulator models (sync answers, or a UPID for async work)."""
from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import urllib.parse
import uuid

from .model import CI_KEYS, DRIVE_RE, FILE_STORAGE, LXC_MP_RE, NEW_DISK_RE, QEMU_VERSION, Guest
from .pvefmt import HASH_FORMATS, PveError, fail, format_size, param_error, parse_property_string, print_property_string, split_list

ROUTES = {}
PRUNE_FORMAT = HASH_FORMATS['prune-backups']
PVE_VERSION = {'version': '9.1.3', 'release': '9.1', 'repoid': 'e5010dc2'}
QEMU_CONFIG = '/nodes/{node}/qemu/{vmid}/config'
LXC_CONFIG = '/nodes/{node}/lxc/{vmid}/config'
# Options a running VM takes at once (qemu-server fast_plug_option) plus what default hotplug covers.
QEMU_FAST_PLUG = {'name', 'description', 'onboot', 'protection', 'tags', 'startup', 'lock', 'hookscript', 'shares',
                  'vmstatestorage', 'ciuser', 'cipassword', 'citype', 'ciupgrade', 'sshkeys', 'nameserver', 'searchdomain',
                  'cicustom', 'agent'}
LXC_HOT = {'hostname', 'description', 'onboot', 'protection', 'tags', 'startup', 'cores', 'memory', 'swap', 'cpulimit',
           'cpuunits', 'nameserver', 'searchdomain', 'lock'}
SSH_KEY_RE = re.compile(r'^(?:(?:[a-zA-Z0-9@.+=-]+(?:=(?:"[^"]*"|\S+))?,?)+\s+)?'
                        r'(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+=*(\s.*)?$')


def route(method, path):
    def deco(fn):
        ROUTES[(method, path)] = fn
        return fn
    return deco


class Ctx:
    """One request: the cluster, the schema, the authenticated id and the path template."""

    def __init__(self, cluster, schema, authid, template):
        self.cluster = cluster
        self.schema = schema
        self.authid = authid
        self.template = template

    @property
    def is_root(self):
        return self.authid == 'root@pam'

    def fmt(self, kind, key):
        prop = self.schema.prop(QEMU_CONFIG if kind == 'qemu' else LXC_CONFIG, 'PUT', key) or {}
        fmt = prop.get('format')
        return fmt if isinstance(fmt, dict) else None

    def prop(self, kind, key):
        return self.schema.prop(QEMU_CONFIG if kind == 'qemu' else LXC_CONFIG, 'PUT', key)


def fake_crypt(password):
    salt = base64.b64encode(os.urandom(12), b'./').decode()[:16]
    digest = base64.b64encode(hashlib.sha256((salt + password).encode()).digest(), b'./').decode().rstrip('=')
    return '$5$%s$%s' % (salt, digest)


def new_mac():
    return 'BC:24:11:%02X:%02X:%02X' % tuple(os.urandom(3))


def check_ssh_keys(text):
    for line in text.split('\n'):
        if line.strip() and not SSH_KEY_RE.match(line.strip()):
            fail('SSH public key validation error')


def check_skiplock(ctx, params):
    if params.get('skiplock') is not None and not ctx.is_root:
        param_error({'skiplock': 'Only root may use this option.'})


# --- cluster / version / access ------------------------------------------------------------------------------

@route('GET', '/version')
def get_version(ctx, params):
    del ctx, params
    return dict(PVE_VERSION)


@route('GET', '/access/domains')
def get_domains(ctx, params):
    del ctx, params
    return [{'realm': 'pam', 'type': 'pam', 'comment': 'Linux PAM standard authentication'},
            {'realm': 'pve', 'type': 'pve', 'comment': 'Proxmox VE authentication server'}]


@route('GET', '/cluster/nextid')
def get_nextid(ctx, params):
    c = ctx.cluster
    if params.get('vmid'):
        vmid = int(params['vmid'])
        if vmid in c.guests:
            param_error({'vmid': 'VM %d already exists' % vmid})
        return str(vmid)
    return str(c.nextid())


@route('GET', '/cluster/resources')
def get_resources(ctx, params):
    c = ctx.cluster
    kind = params.get('type')
    res = []
    if kind in (None, 'node'):
        for name, node in c.nodes.items():
            online = not c.node_offline(name) and node['online']
            res.append({'id': 'node/%s' % name, 'type': 'node', 'node': name, 'status': 'online' if online else 'offline',
                        'level': '', 'cgroup-mode': 2, 'cpu': 0.02 if online else 0, 'maxcpu': 8, 'mem': 2 << 30, 'maxmem': 32 << 30,
                        'disk': 5 << 30, 'maxdisk': 100 << 30, 'uptime': 86400 if online else 0})
    if kind in (None, 'vm'):
        res.extend(c.resource(g) for g in sorted(c.guests.values(), key=lambda g: g.vmid))
    if kind in (None, 'storage'):
        for name in c.nodes:
            for sid, cfg in c.storages.items():
                used = sum(v['size'] for v in c.store(name, sid).values())
                res.append({'id': 'storage/%s/%s' % (name, sid), 'type': 'storage', 'node': name, 'storage': sid,
                            'plugintype': cfg['type'], 'content': ','.join(cfg['content']), 'shared': cfg['shared'],
                            'status': 'available', 'disk': used, 'maxdisk': cfg['total']})
    return res


@route('GET', '/cluster/status')
def get_cluster_status(ctx, params):
    del params
    c = ctx.cluster
    return [{'id': 'node/%s' % n, 'type': 'node', 'name': n, 'nodeid': i + 1, 'ip': '127.0.0.%d' % (i + 1),
             'online': 0 if c.node_offline(n) else 1, 'local': 1 if i == 0 else 0, 'level': ''}
            for i, n in enumerate(c.nodes)]


@route('GET', '/pools')
def get_pools(ctx, params):
    del ctx, params
    return []


@route('GET', '/storage')
def get_storage_cfg(ctx, params):
    res = []
    for sid, cfg in ctx.cluster.storages.items():
        if params.get('type') and params['type'] != cfg['type']:
            continue
        item = {'storage': sid, 'type': cfg['type'], 'content': ','.join(cfg['content']), 'digest': hashlib.sha1(sid.encode()).hexdigest()}
        item.update({k: cfg[k] for k in ('path', 'vgname', 'thinpool') if k in cfg})
        res.append(item)
    return res


# --- nodes -------------------------------------------------------------------------------------------------------

@route('GET', '/nodes')
def get_nodes(ctx, params):
    del params
    c = ctx.cluster
    res = []
    for name in c.nodes:
        online = not c.node_offline(name)
        item = {'node': name, 'id': 'node/%s' % name, 'type': 'node', 'status': 'online' if online else 'offline', 'level': '',
                'ssl_fingerprint': ':'.join(['5E'] * 32)}
        if online:
            item.update({'cpu': 0.02, 'maxcpu': 8, 'mem': 2 << 30, 'maxmem': 32 << 30, 'disk': 5 << 30, 'maxdisk': 100 << 30, 'uptime': 86400})
        res.append(item)
    return res


@route('GET', '/nodes/{node}')
def get_node_index(ctx, params):
    del ctx, params
    return [{'name': n} for n in ('qemu', 'lxc', 'storage', 'tasks', 'status', 'version', 'vzdump')]


@route('GET', '/nodes/{node}/status')
def get_node_status(ctx, params):
    del ctx, params
    return {'uptime': 86400, 'cpu': 0.02, 'loadavg': ['0.10', '0.05', '0.01'], 'kversion': 'Linux 6.17.2-1-pve',
            'pveversion': 'pve-manager/%s/%s' % (PVE_VERSION['version'], PVE_VERSION['repoid']),
            'memory': {'total': 32 << 30, 'used': 2 << 30, 'free': 30 << 30},
            'cpuinfo': {'cpus': 8, 'sockets': 1, 'cores': 8, 'model': 'Simulated CPU', 'mhz': '3000.000'},
            'rootfs': {'total': 100 << 30, 'used': 5 << 30, 'avail': 95 << 30, 'free': 95 << 30}}


@route('GET', '/nodes/{node}/version')
def get_node_version(ctx, params):
    del ctx, params
    return dict(PVE_VERSION)


# --- tasks -------------------------------------------------------------------------------------------------------

@route('GET', '/nodes/{node}/tasks')
def list_tasks(ctx, params):
    c = ctx.cluster
    source = params.get('source', 'archive')
    res = []
    for task in sorted(c.tasks.values(), key=lambda t: (t.starttime, t.seq), reverse=True):
        if task.node != params['node']:
            continue
        if source == 'archive' and task.status == 'running' or source == 'active' and task.status != 'running':
            continue
        if params.get('vmid') and task.id != params['vmid']:
            continue
        if params.get('typefilter') and task.type != params['typefilter']:
            continue
        if params.get('errors') == '1' and task.exitstatus in ('OK', None):
            continue
        res.append(task.list_dict())
    start = int(params.get('start', 0))
    return res[start:start + int(params.get('limit', 50))]


@route('GET', '/nodes/{node}/tasks/{upid}')
def get_task_index(ctx, params):
    ctx.cluster.task_by_upid(params['upid'], params['node'])
    return [{'name': 'log'}, {'name': 'status'}]


@route('GET', '/nodes/{node}/tasks/{upid}/status')
def get_task_status(ctx, params):
    return ctx.cluster.task_by_upid(params['upid'], params['node']).status_dict()


@route('GET', '/nodes/{node}/tasks/{upid}/log')
def get_task_log(ctx, params):
    task = ctx.cluster.task_by_upid(params['upid'], params['node'])
    start, limit = int(params.get('start', 0)), int(params.get('limit', 50))
    lines = task.lines[start:start + limit] if limit else task.lines[start:]
    return [{'n': start + i + 1, 't': line} for i, line in enumerate(lines)]


@route('DELETE', '/nodes/{node}/tasks/{upid}')
def stop_task(ctx, params):
    c = ctx.cluster
    task = c.task_by_upid(params['upid'], params['node'])
    if task.status == 'running':
        task.stop_requested = True
    return None


# --- storage -------------------------------------------------------------------------------------------------------

def storage_status(c, node, sid):
    cfg = c.storage_cfg(sid)
    used = sum(v['size'] for v in c.store(node, sid).values())
    return {'storage': sid, 'type': cfg['type'], 'content': ','.join(cfg['content']), 'shared': cfg['shared'], 'active': 1,
            'enabled': 1, 'total': cfg['total'], 'used': used, 'avail': cfg['total'] - used,
            'used_fraction': used / cfg['total']}


@route('GET', '/nodes/{node}/storage')
def list_node_storage(ctx, params):
    c = ctx.cluster
    res = []
    for sid, cfg in c.storages.items():
        if params.get('storage') and params['storage'] != sid:
            continue
        if params.get('content') and not set(split_list(params['content'])) & set(cfg['content']):
            continue
        res.append(storage_status(c, params['node'], sid))
    return res


@route('GET', '/nodes/{node}/storage/{storage}')
def storage_index(ctx, params):
    ctx.cluster.storage_cfg(params['storage'])
    return [{'subdir': s} for s in ('content', 'status')]


@route('GET', '/nodes/{node}/storage/{storage}/status')
def get_storage_status(ctx, params):
    return storage_status(ctx.cluster, params['node'], params['storage'])


def content_item(sid, volname, vol, lvmthin=False):
    item = {'volid': '%s:%s' % (sid, volname), 'content': vol['content'], 'format': vol['format'], 'size': vol['size'], 'ctime': vol['ctime']}
    if vol.get('vmid') is not None:
        item['vmid'] = vol['vmid']
    if vol['content'] == 'backup':
        item['subtype'] = vol.get('subtype')
        if vol.get('notes'):
            item['notes'] = vol['notes']
        if vol.get('protected'):
            item['protected'] = 1
    if vol['content'] in ('images', 'rootdir') and not lvmthin:
        # file storages report qcow2/raw usage and a linked clone's base; LvmThinPlugin list_images has neither
        item['used'] = vol['size'] // 10
        if vol.get('parent'):
            item['parent'] = vol['parent']
    return item


UPLOAD_EXT = {'iso': re.compile(r'\.(iso|img)$', re.I), 'vztmpl': re.compile(r'\.tar\.(gz|xz|zst|bz2)$|\.tgz$', re.I),
              'import': re.compile(r'\.(ova|qcow2|raw|vmdk)$', re.I)}


@route('POST', '/nodes/{node}/storage/{storage}/upload')
def upload_content(ctx, params):
    """pve-storage API2/Storage/Status.pm upload: the file arrives as a multipart part; an imgcopy task moves it in place."""
    c = ctx.cluster
    node, sid, content = params['node'], params['storage'], params['content']
    cfg = c.storage_cfg(sid)
    if content not in cfg['content']:
        fail("storage '%s' does not support '%s' content" % (sid, content))
    data = params.get('\0upload')
    if data is None:
        param_error({'filename': 'no file uploaded'})
    filename = re.sub(r'[^-a-zA-Z0-9_.]', '_', os.path.basename(params['filename']))  # PVE normalises the name
    if not UPLOAD_EXT[content].search(filename):
        param_error({'filename': 'wrong file extension'})
    subdir = {'iso': 'iso', 'vztmpl': 'vztmpl', 'import': 'import'}[content]
    volname = '%s/%s' % (subdir, filename)

    def work(task):
        task.log('starting file import from: /var/tmp/pveupload-%s' % hashlib.md5(data).hexdigest()[:16])
        task.log('target file: /var/lib/vz/template/%s/%s' % (subdir, filename))
        with c.lock:
            c.store(node, sid)[volname] = {'size': len(data), 'format': content if content != 'import' else filename.rsplit('.', 1)[-1],
                                           'content': content, 'ctime': int(time.time()), 'data': base64.b64encode(data).decode('ascii')}
            c.save()
        task.log('file size is: %d' % len(data))
    return c.start_task(node, 'imgcopy', '', ctx.authid, work)


@route('GET', '/nodes/{node}/storage/{storage}/content')
def list_content(ctx, params):
    c = ctx.cluster
    sid = params['storage']
    lvmthin = c.storage_cfg(sid)['type'] == 'lvmthin'
    res = []
    for volname, vol in sorted(c.store(params['node'], sid).items()):
        if params.get('content') and vol['content'] != params['content']:
            continue
        if params.get('vmid') and str(vol.get('vmid')) != params['vmid']:
            continue
        res.append(content_item(sid, volname, vol, lvmthin))
    return res


def normalize_volid(params):
    volid = params['volume']
    if ':' not in volid:
        volid = '%s:%s' % (params['storage'], volid)
    return volid


@route('GET', '/nodes/{node}/storage/{storage}/content/{volume}')
def get_content(ctx, params):
    c = ctx.cluster
    volid = normalize_volid(params)
    vol = c.check_volume(params['node'], volid)
    res = {'path': '/var/lib/vz/%s' % volid.split(':', 1)[1], 'size': vol['size'], 'used': vol['size'] // 10, 'format': vol['format']}
    if vol.get('notes'):
        res['notes'] = vol['notes']
    return res


@route('DELETE', '/nodes/{node}/storage/{storage}/content/{volume}')
def delete_content(ctx, params):
    c = ctx.cluster
    node = params['node']
    volid = normalize_volid(params)
    vol = c.check_volume(node, volid)
    if vol.get('protected'):
        fail("volume '%s' is protected" % volid)
    owner = vol.get('vmid')
    if vol['content'] in ('images', 'rootdir') and owner in c.guests:
        guest = c.guests[owner]
        if any(v == volid for _k, v in c.guest_volumes(guest)):
            fail("unable to delete '%s' - volume is still in use (guest %d)" % (volid, owner))

    def work(task):
        with c.lock:
            c.free_volume(node, volid)
            if volid.endswith(('.zst', '.gz', '.lzo', '.vma', '.tar')):
                base = volid.split(':', 1)[1]
                for suffix in ('.notes', '.log'):
                    c.store(node, params['storage']).pop(re.sub(r'\.(vma|tar)(\.\w+)?$', '', base) + suffix, None)
        task.log('Removed volume \'%s\'' % volid)
    # pve-storage names the task after the owner and the storage: no ':' may enter a UPID
    tid = ('%s@' % owner if owner is not None else '') + params['storage']
    return c.start_task(node, 'imgdel', tid, ctx.authid, work)


# --- guests: listing, config ---------------------------------------------------------------------------------------

def guest_list_item(c, guest):
    res = c.resource(guest)
    item = {'vmid': guest.vmid, 'name': res['name'], 'status': guest.status, 'cpus': res['maxcpu'], 'maxmem': res['maxmem'],
            'mem': res['mem'], 'maxdisk': res['maxdisk'], 'disk': 0, 'uptime': res['uptime'], 'cpu': res['cpu'],
            'netin': 0, 'netout': 0, 'diskread': 0, 'diskwrite': 0}
    if guest.kind == 'lxc':
        item['type'] = 'lxc'
        item['maxswap'] = int(guest.main.get('swap', '512')) << 20
    if guest.status == 'running':
        item['pid'] = 10000 + guest.vmid
        # PSI of the guest's cgroup, PVE 9 (QemuServer.pm / LXC.pm vmstatus)
        for what in ('cpu', 'io', 'memory'):
            item['pressure%ssome' % what] = 0
            if what != 'cpu':
                item['pressure%sfull' % what] = 0
    if guest.kind == 'qemu':
        item['memhost'] = res['mem']  # PVE 9: memory the host gives the VM, always present
    else:
        item['swap'] = 0  # LXC.pm vmstatus sets it always
    for key in ('lock', 'tags'):
        if guest.main.get(key):
            item[key] = guest.main[key]
    if guest.main.get('template') == '1':
        item['template'] = 1
    return item


@route('GET', '/nodes/{node}/qemu')
def list_qemu(ctx, params):
    c = ctx.cluster
    return [guest_list_item(c, g) for g in sorted(c.guests.values(), key=lambda g: g.vmid) if g.kind == 'qemu' and g.node == params['node']]


@route('GET', '/nodes/{node}/lxc')
def list_lxc(ctx, params):
    c = ctx.cluster
    return [guest_list_item(c, g) for g in sorted(c.guests.values(), key=lambda g: g.vmid) if g.kind == 'lxc' and g.node == params['node']]


def typed_config(ctx, kind, conf):
    res = {}
    for key, value in conf.items():
        prop = ctx.prop(kind, key) or {}
        if prop.get('type') in ('integer', 'boolean') and re.match(r'^[+-]?\d+$', value):
            res[key] = int(value)
        else:
            res[key] = value
        if key == 'cipassword':
            res[key] = '**********'
    return res


def get_config(ctx, params, kind):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], kind)
    if params.get('snapshot'):
        snap = guest.conf['snapshots'].get(params['snapshot'])
        if snap is None:
            fail("snapshot '%s' does not exist" % params['snapshot'])
        conf = dict(snap)
    else:
        conf = dict(guest.main)
        if params.get('current') != '1':
            conf.update(guest.conf['pending'])
            for key in guest.conf['delete']:
                conf.pop(key.lstrip('!'), None)
    res = typed_config(ctx, kind, conf)
    res['digest'] = guest.digest()
    return res


@route('GET', '/nodes/{node}/qemu/{vmid}/config')
def get_qemu_config(ctx, params):
    return get_config(ctx, params, 'qemu')


@route('GET', '/nodes/{node}/lxc/{vmid}/config')
def get_lxc_config(ctx, params):
    return get_config(ctx, params, 'lxc')


def get_pending(ctx, params, kind):
    guest = ctx.cluster.get_guest(params['node'], params['vmid'], kind)
    current = typed_config(ctx, kind, guest.main)
    pending = typed_config(ctx, kind, guest.conf['pending'])
    deletes = {k.lstrip('!'): 2 if k.startswith('!') else 1 for k in guest.conf['delete']}
    res = []
    for key in sorted(set(current) | set(pending) | set(deletes)):
        item = {'key': key}
        if key in current:
            item['value'] = current[key]
        if key in pending:
            item['pending'] = pending[key]
        if key in deletes:
            item['delete'] = deletes[key]
        res.append(item)
    return res


@route('GET', '/nodes/{node}/qemu/{vmid}/pending')
def get_qemu_pending(ctx, params):
    return get_pending(ctx, params, 'qemu')


@route('GET', '/nodes/{node}/lxc/{vmid}/pending')
def get_lxc_pending(ctx, params):
    return get_pending(ctx, params, 'lxc')


# --- drives --------------------------------------------------------------------------------------------------------

def parse_drive(ctx, kind, key, value):
    fmt = ctx.fmt(kind, key) or {}
    return parse_property_string(fmt, value, validate=False), fmt


def prepare_drive(ctx, guest, key, value, task=None, storage_default=None):
    """Allocate STORAGE:SIZE / STORAGE:cloudinit / import-from; check existing volumes; return the config value."""
    c = ctx.cluster
    drive, fmt = parse_drive(ctx, guest.kind, key, value)
    volid = drive.get('file') or drive.get('volume') or ''
    volkey = 'file' if 'file' in drive else 'volume'
    node = guest.node
    if guest.kind == 'qemu' and re.match(r'^[^:]+:cloudinit$', volid):
        sid = volid.split(':')[0]
        name = 'vm-%d-cloudinit' % guest.vmid
        if c.storage_cfg(sid)['type'] in FILE_STORAGE:
            name += '.qcow2'
        if c.find_volume(node, '%s:%s' % (sid, name if c.storages[sid]['type'] not in FILE_STORAGE else '%d/%s' % (guest.vmid, name))):
            fail("unable to create cloud-init disk: volume %s already exists" % name)
        newvol = c.alloc_volume(node, sid, guest.vmid, 4 << 20, fmt='qcow2' if c.storages[sid]['type'] in FILE_STORAGE else None, name=name)
        drive = {'file': newvol, 'media': 'cdrom'}
        if task:
            task.log('%s: successfully created disk \'%s,media=cdrom\'' % (key, newvol))
        return print_property_string(drive, fmt)
    m = NEW_DISK_RE.match(volid)
    if m:
        sid = m.group(2) or storage_default
        if not sid:
            fail("unable to parse volume ID '%s'" % volid)
        size = float(m.group(3)) * (1 << 30)
        if drive.get('import-from'):
            src = drive.pop('import-from')
            size = c.check_volume(node, src)['size']
        elif key == 'efidisk0':
            size = 4 << 20 if drive.get('efitype') == '4m' else 128 << 10
        elif key == 'tpmstate0':
            size = 4 << 20
        elif size == 0 and guest.kind == 'qemu':
            fail("%s: invalid size 0 for new disk without 'import-from'" % key)
        content = 'images' if guest.kind == 'qemu' else 'rootdir'
        newvol = c.alloc_volume(node, sid, guest.vmid, size, fmt=drive.pop('format', None) if guest.kind == 'qemu' else None, content=content)
        drive[volkey] = newvol
        drive['size'] = format_size(size)
        if task:
            task.log('%s: successfully created disk \'%s,size=%s\'' % (key, newvol, drive['size']))
        return print_property_string(drive, fmt)
    if volid in ('none', 'cdrom'):
        return print_property_string(drive, fmt)
    if volid.startswith('/'):
        return print_property_string(drive, fmt)
    vol = c.check_volume(node, volid)
    if 'size' not in drive and drive.get('media') != 'cdrom' and vol['content'] in ('images', 'rootdir'):
        drive['size'] = format_size(vol['size'])
    return print_property_string(drive, fmt)


def check_new_disk_storages(ctx, params, default_storage=None):
    """The synchronous part of PVE's drive checks: storages of new disks must exist and hold VM images."""
    c = ctx.cluster
    for key, value in params.items():
        if not DRIVE_RE.match(key):
            continue
        volid = value.split(',')[0]
        m = NEW_DISK_RE.match(volid) or re.match(r'^([^:]+):cloudinit$', volid)
        if not m:
            continue
        sid = m.group(2) if m.re is NEW_DISK_RE else m.group(1)
        sid = sid or default_storage
        if not sid:
            continue
        if 'images' not in c.storage_cfg(sid)['content']:
            param_error({'storage': "storage '%s' does not support vm images" % sid})


def normalize_net(ctx, kind, value):
    fmt = ctx.fmt(kind, 'net0')
    net = parse_property_string(fmt, value, validate=False)
    if kind == 'qemu':
        if not net.get('macaddr'):
            net['macaddr'] = new_mac()
    else:
        if not net.get('hwaddr'):
            net['hwaddr'] = new_mac()
        net.setdefault('type', 'veth')
    return print_property_string(net, fmt)


def default_boot(conf):
    disks = []
    for bus in ('ide', 'sata', 'scsi', 'virtio'):
        disks += sorted((x for x in conf if re.match('^%s\\d+$' % bus, x)), key=lambda x: int(re.sub(r'\D', '', x)))
    order = []
    first_disk = next((d for d in disks if 'media=cdrom' not in conf[d]), None)
    if first_disk:
        order.append(first_disk)
    first_cd = next((d for d in disks if 'media=cdrom' in conf[d] and 'cloudinit' not in conf[d]), None)
    if first_cd:
        order.append(first_cd)
    net = next((k for k in sorted(conf, key=lambda x: int(re.sub(r'\D', '', x) or 0)) if re.match(r'^net\d+$', k)), None)
    if net:
        order.append(net)
    # print_bootorder: no device, no boot order (an empty value is not written to the config)
    return 'order=' + ';'.join(order) if order else ''


# --- qemu create / restore -------------------------------------------------------------------------------------------

def check_create_target(c, vmid, node, label):
    if vmid in c.guests:
        other = c.guests[vmid]
        fail('unable to create %s %d - %s %d already exists on node \'%s\'' % (label, vmid, other.label, vmid, other.node))


@route('POST', '/nodes/{node}/qemu')
def create_qemu(ctx, params):
    c = ctx.cluster
    node = params.pop('node')
    vmid = int(params.pop('vmid'))
    if params.get('archive'):
        return restore_guest(ctx, node, vmid, params, 'qemu')
    if params.get('sshkeys') is not None:
        check_ssh_keys(urllib.parse.unquote(params['sshkeys']))
    if params.get('pool'):
        fail("pool '%s' does not exist" % params['pool'])
    start = params.pop('start', '0') == '1'
    storage = params.pop('storage', None)
    for key in ('bwlimit',):
        params.pop(key, None)
    check_new_disk_storages(ctx, params, storage)
    check_create_target(c, vmid, node, 'VM')
    guest = Guest(vmid, 'qemu', node)
    guest.main['lock'] = 'create'
    c.guests[vmid] = guest

    def work(task):
        c.sleep(1.0)
        with c.lock:
            conf = {}
            for key, value in params.items():
                if DRIVE_RE.match(key):
                    conf[key] = prepare_drive(ctx, guest, key, value, task, storage)
                elif re.match(r'^net\d+$', key):
                    conf[key] = normalize_net(ctx, 'qemu', value)
                elif key == 'cipassword':
                    conf[key] = value if value.startswith('$') else fake_crypt(value)
                elif key == 'vmgenid' and value == '1':
                    conf[key] = str(uuid.uuid4())
                elif key == 'tags':
                    conf[key] = ';'.join(sorted(set(split_list(value))))
                else:
                    conf[key] = value
            if not conf.get('boot') and default_boot(conf):
                conf['boot'] = default_boot(conf)
            conf.setdefault('smbios1', 'uuid=%s' % uuid.uuid4())
            conf.setdefault('vmgenid', str(uuid.uuid4()))
            conf['meta'] = 'creation-qemu=%s,ctime=%d' % (QEMU_VERSION, int(time.time()))
            conf['lock'] = 'create'
            guest.main.clear()
            guest.main.update(conf)
        if start:
            task.log('starting VM %d' % vmid)
            with c.lock:
                c.power_on(guest)

    def cleanup(task):
        del task
        c.remove_guest(guest)

    return c.start_task(node, 'qmcreate', vmid, ctx.authid, work, guest, 'create', on_error=cleanup)


def restore_guest(ctx, node, vmid, params, kind):
    c = ctx.cluster
    archive = params.pop('archive' if kind == 'qemu' else 'ostemplate')
    params.pop('restore', None)
    force = params.pop('force', '0') == '1'
    unique = params.pop('unique', '0') == '1'
    start = params.pop('start', '0') == '1'
    storage = params.pop('storage', None)
    params.pop('bwlimit', None)
    params.pop('live-restore', None)
    if kind == 'qemu':
        for key in params:
            if DRIVE_RE.match(key) or key.startswith('efidisk') or key.startswith('tpmstate'):
                param_error({key: "option conflicts with option 'archive'"})
    vol = c.find_volume(node, archive)
    if vol is None or vol['content'] != 'backup':
        fail("volume '%s' does not exist" % archive if vol is None else "volume '%s' is not a backup archive" % archive)
    if vol.get('subtype') != kind:
        fail("archive '%s' is not a %s backup" % (archive, 'VM' if kind == 'qemu' else 'CT'))
    label = 'VM' if kind == 'qemu' else 'CT'
    existing = c.guests.get(vmid)
    if existing:
        if not force:
            fail('unable to restore %s %d - %s %d already exists on node \'%s\'' % (label, vmid, existing.label, vmid, existing.node))
        if existing.kind != kind or existing.node != node:
            fail('unable to restore %s %d - %s %d already exists on node \'%s\'' % (label, vmid, existing.label, vmid, existing.node))
        existing.check_lock()
        if existing.main.get('protection') == '1':
            fail('unable to restore %s %d - protection mode enabled' % (label, vmid))
        if existing.status == 'running':
            fail('unable to restore %s %d - %s is running' % (label, vmid, 'vm' if kind == 'qemu' else 'CT'))
        guest = existing
    else:
        guest = Guest(vmid, kind, node)
        c.guests[vmid] = guest
    was_new = existing is None
    guest.main['lock'] = 'create'
    backup_conf = dict(vol['config'])
    disks = vol.get('disks', {})

    def work(task):
        task.log('restore vma archive: %s' % archive)
        c.sleep(2.0)
        with c.lock:
            if not was_new:
                c.remove_guest(guest, purge_disks=True)
                c.guests[vmid] = guest
            conf = {}
            for key, value in backup_conf.items():
                if key in disks:
                    drive, fmt = parse_drive(ctx, kind, key, value)
                    volkey = 'file' if 'file' in drive else 'volume'
                    sid = storage or drive[volkey].split(':')[0]
                    content = 'images' if kind == 'qemu' else 'rootdir'
                    newvol = c.alloc_volume(node, sid, vmid, disks[key], content=content)
                    drive[volkey] = newvol
                    drive['size'] = format_size(disks[key])
                    conf[key] = print_property_string(drive, fmt)
                    task.log('new volume ID is \'%s\'' % newvol)
                elif key.startswith('unused') or key in ('lock', 'parent'):
                    continue
                elif kind == 'qemu' and DRIVE_RE.match(key) and 'cloudinit' in value.split(',')[0]:
                    # the cloud-init drive is not in the archive: a new one is made for this VMID
                    sid = storage or value.split(':')[0]
                    conf[key] = prepare_drive(ctx, guest, key, '%s:cloudinit' % sid, task)
                elif unique and re.match(r'^net\d+$', key):
                    net, fmt = parse_property_string(ctx.fmt(kind, key), value, validate=False), ctx.fmt(kind, key)
                    net.pop('macaddr' if kind == 'qemu' else 'hwaddr', None)
                    conf[key] = print_property_string(net, fmt)
                    conf[key] = normalize_net(ctx, kind, conf[key])
                else:
                    conf[key] = value
            for key, value in params.items():
                conf[key] = normalize_net(ctx, kind, value) if re.match(r'^net\d+$', key) else value
            if kind == 'qemu' and 'vmgenid' in conf:
                conf['vmgenid'] = str(uuid.uuid4())  # PVE always gives a restored VM a new generation id (QemuServer.pm restore)
            conf['lock'] = 'create'
            guest.conf = {'main': conf, 'pending': {}, 'delete': [], 'cloudinit': {}, 'snapshots': {}}
        if start:
            with c.lock:
                c.power_on(guest)

    def cleanup(task):
        del task
        if was_new:
            c.remove_guest(guest)

    return c.start_task(node, 'qmrestore' if kind == 'qemu' else 'vzrestore', vmid, ctx.authid, work, guest, 'create', on_error=cleanup)


# --- config updates ----------------------------------------------------------------------------------------------------

def qemu_hotplug(key, value, current=None, deleting=False):
    """Whether a running VM takes KEY at once (default `hotplug: network,disk,usb`), as vmconfig_hotplug_pending.

    ide and sata devices are never plugged or unplugged live (qemu-server: `die "skip" if ... $opt =~ m/(ide|sata)/`);
    only the medium of a CD-ROM drive that is there already changes at once (vmconfig_update_disk).
    """
    if key in ('cpuunits', 'cpulimit', 'balloon', 'agent') or re.match(r'^net\d+$', key):
        return True
    if re.match(r'^(scsi|virtio)\d+$', key):
        return True
    if re.match(r'^(ide|sata)\d+$', key):
        return not deleting and 'media=cdrom' in value and 'media=cdrom' in (current or '')
    return False


def drop_from_boot_order(guest, key):
    boot = guest.main.get('boot', '')
    m = re.match(r'^order=(.*)$', boot)
    if m and key in m.group(1).split(';'):
        order = [d for d in m.group(1).split(';') if d != key]
        if order:
            guest.main['boot'] = 'order=' + ';'.join(order)
        else:
            guest.main.pop('boot')


def update_config(ctx, params, kind, sync):
    """Shared by POST (async) / PUT (sync) qemu config and PUT lxc config."""
    c = ctx.cluster
    node = params.pop('node')
    guest = c.get_guest(node, params.pop('vmid'), kind)
    check_skiplock(ctx, params)
    skiplock = params.pop('skiplock', '0') == '1'
    digest = params.pop('digest', None)
    delete_str = params.pop('delete', None)
    revert_str = params.pop('revert', None)
    params.pop('force', None)
    params.pop('background_delay', None)
    if kind == 'qemu' and params.get('sshkeys') is not None:
        check_ssh_keys(urllib.parse.unquote(params['sshkeys']))
    if not delete_str and not revert_str and not params:
        fail('no options specified')
    if 'cdrom' in params:
        params['ide2'] = params.pop('cdrom')
    revert = []
    for opt in split_list(revert_str):
        if ctx.prop(kind, opt) is None:
            param_error({'revert': "unknown option '%s'" % opt})
        if opt in params:
            param_error({'delete': "you can't use '-%s' and -revert %s' at the same time" % (opt, opt)})
        revert.append(opt)
    deletes = []
    for opt in split_list(delete_str):
        opt = 'ide2' if opt == 'cdrom' else opt
        if opt in params:
            param_error({'delete': "you can't use '-%s' and -delete %s' at the same time" % (opt, opt)})
        if opt in revert:
            param_error({'revert': "you can't use '-delete %s' and -revert %s' at the same time" % (opt, opt)})
        if ctx.prop(kind, opt) is None:
            param_error({'delete': "unknown option '%s'" % opt})
        deletes.append(opt)
    if kind == 'qemu':
        check_new_disk_storages(ctx, params)
    c.flock(guest)
    if digest and digest != guest.digest():
        if kind == 'qemu':
            fail('checksum mismatch (file change by other user?)')
        fail('detected modified configuration - file changed by other user? Try again.')
    if not skiplock:
        guest.check_lock()
    if 'protection' not in params and guest.main.get('protection') == '1':
        for opt in deletes:
            if opt.startswith('unused'):
                fail("can't remove unused disk '%s' - protection mode enabled" % guest.main.get(opt, '').split(',')[0])

    def apply(task):
        with c.lock:
            conf = guest.conf
            hot = QEMU_FAST_PLUG if kind == 'qemu' else LXC_HOT
            running = guest.status == 'running'
            for opt in revert:
                conf['pending'].pop(opt, None)
                conf['delete'] = [d for d in conf['delete'] if d.lstrip('!') != opt]
            for opt in deletes:
                if guest.main.get(opt) is None and conf['pending'].get(opt) is None:
                    task.warn("cannot delete '%s' - not set in current configuration!" % opt)
                    continue
                conf['pending'].pop(opt, None)
                if guest.main.get(opt) is None:
                    continue
                hotplug = opt in hot or opt.startswith('unused') or (kind == 'qemu' and qemu_hotplug(opt, guest.main[opt], deleting=True))
                if not running or hotplug or (kind == 'qemu' and opt.startswith('ipconfig')):
                    c.delete_key(guest, opt)
                    if kind == 'qemu':
                        drop_from_boot_order(guest, opt)
                elif opt not in conf['delete']:
                    conf['delete'].append(opt)
            for key, value in params.items():
                if kind == 'qemu' and DRIVE_RE.match(key) or kind == 'lxc' and LXC_MP_RE.match(key):
                    value = prepare_drive(ctx, guest, key, value, task, None)
                elif re.match(r'^net\d+$', key):
                    value = normalize_net(ctx, kind, value)
                elif key == 'cipassword' and not value.startswith('$'):
                    value = fake_crypt(value)
                elif key == 'tags':
                    value = ';'.join(sorted(set(split_list(value))))
                conf['delete'] = [d for d in conf['delete'] if d.lstrip('!') != key]
                hotplug = key in hot or key.startswith('ipconfig') or (kind == 'qemu' and qemu_hotplug(key, value, guest.main.get(key)))
                if kind == 'lxc' and re.match(r'^net\d+$', key):
                    hotplug = True
                if not running or hotplug:
                    conf['pending'].pop(key, None)
                    c.replace_key(guest, key, value)
                else:
                    conf['pending'][key] = value
            if not guest.main.get('boot') and kind == 'qemu' and any(DRIVE_RE.match(k) for k in params) and default_boot(guest.main):
                guest.main['boot'] = default_boot(guest.main)
            c.save()

    if sync:
        class _Collect:
            warnings = 0

            def warn(self, msg):
                del msg
                self.warnings += 1

            def log(self, msg):
                del msg
        apply(_Collect())
        return None

    def work(task):
        task.log('update VM %d: %s' % (guest.vmid, ' '.join('-%s %s' % (k, v) for k, v in params.items())))
        apply(task)
    return c.start_task(node, 'qmconfig', guest.vmid, ctx.authid, work)


@route('POST', '/nodes/{node}/qemu/{vmid}/config')
def post_qemu_config(ctx, params):
    return update_config(ctx, params, 'qemu', sync=False)


@route('PUT', '/nodes/{node}/qemu/{vmid}/config')
def put_qemu_config(ctx, params):
    return update_config(ctx, params, 'qemu', sync=True)


@route('PUT', '/nodes/{node}/lxc/{vmid}/config')
def put_lxc_config(ctx, params):
    return update_config(ctx, params, 'lxc', sync=True)


# --- status / power ----------------------------------------------------------------------------------------------------

def guest_status(ctx, params, kind):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], kind)
    item = guest_list_item(c, guest)
    item['ha'] = {'managed': 0}
    if kind == 'qemu':
        item['qmpstatus'] = 'paused' if guest.paused else guest.status
        if guest.main.get('agent', '0').split(',')[0] in ('1', 'enabled=1'):
            item['agent'] = 1
        if guest.status == 'running':
            item['running-qemu'] = QEMU_VERSION
            item['running-machine'] = 'pc-i440fx-10.1+pve0'
            if guest.main.get('balloon') != '0':
                item['balloon'] = item['maxmem']  # the balloon device reports its target while the VM runs
        if any(re.match(r'^serial\d+$', key) for key in guest.main):
            item['serial'] = 1
        if 'clipboard=' in guest.main.get('vga', ''):
            item['clipboard'] = guest.main['vga'].split('clipboard=', 1)[1].split(',')[0]
        item['status'] = guest.status
    return item


@route('GET', '/nodes/{node}/qemu/{vmid}/status/current')
def qemu_status_current(ctx, params):
    return guest_status(ctx, params, 'qemu')


@route('GET', '/nodes/{node}/lxc/{vmid}/status/current')
def lxc_status_current(ctx, params):
    return guest_status(ctx, params, 'lxc')


def power_action(ctx, params, kind, action):
    c = ctx.cluster
    node = params['node']
    guest = c.get_guest(node, params['vmid'], kind)
    check_skiplock(ctx, params)
    label = guest.label
    prefix = 'qm' if kind == 'qemu' else 'vz'
    skiplock = params.get('skiplock') == '1'
    vmid = guest.vmid
    if action in ('reboot', 'reset') and guest.status != 'running':
        fail('%s %d not running' % (label, vmid))
    if kind == 'lxc':
        # pve-container checks the state before forking
        if action == 'start' and guest.status == 'running':
            fail('CT %d already running' % vmid)
        if action in ('stop', 'shutdown') and guest.status != 'running':
            fail('CT %d not running' % vmid)
    if action in ('suspend', 'resume') and guest.status != 'running' and not (action == 'resume' and guest.main.get('lock') == 'suspended'):
        fail('%s %d not running' % (label, vmid))
    paused_stop = action == 'shutdown' and guest.paused
    if paused_stop and params.get('forceStop') != '1':
        fail('VM is paused - cannot shutdown')
    slow = action in ('shutdown', 'reboot') and c.fault('slow-shutdown', vmid)
    timeout = int(params.get('timeout', 60 if action == 'shutdown' else 0) or 0)
    ttype = {'suspend': prefix + ('suspend' if params.get('todisk') == '1' else 'pause') if kind == 'qemu' else 'vzsuspend'}.get(action, prefix + action)

    def work(task):
        # the power workers check the config lock themselves (a task error, not a sync 500)
        lock = guest.main.get('lock')
        if lock and not skiplock and action != 'resume' and not (lock == 'suspended' and action in ('start', 'stop')):
            raise PveError('%s is locked (%s)' % (label, lock))
        if action == 'start':
            if guest.main.get('template') == '1':
                raise PveError("you can't start a vm if it's a template" if kind == 'qemu' else "you can't start a CT if it's a template")
            if guest.status == 'running':
                raise PveError('%s %d already running' % (label, vmid) if kind == 'qemu' else 'CT %d already running' % vmid)
            if kind == 'qemu' and any('cloudinit' in v for k, v in guest.main.items() if DRIVE_RE.match(k)):
                for part in (guest.main.get('cicustom') or '').split(','):
                    volid = part.partition('=')[2]
                    if volid and volid.split(':', 1)[-1].split('/')[0] != 'snippets':
                        raise PveError('%s is not in the snippets directory' % volid)
                    if volid and c.find_volume(node, volid) is None:
                        raise PveError("can't find file '%s'" % volid)
                task.log('generating cloud-init ISO')
            for key in sorted(k for k in guest.main if re.match(r'^net\d+$', k)):
                bridge = re.search(r'(?:^|,)bridge=([^,]+)', guest.main[key])
                if bridge and bridge.group(1) not in c.bridges:
                    raise PveError("bridge '%s' does not exist" % bridge.group(1))
            c.sleep(1.0)
            with c.lock:
                if guest.main.get('lock') == 'suspended':
                    del guest.main['lock']
                    if guest.main.get('vmstate'):
                        c.free_volume(node, guest.main.pop('vmstate'))
                c.power_on(guest)
                c.save()
        elif action == 'stop':
            c.sleep(0.3)
            with c.lock:
                if guest.main.get('lock') == 'suspended':
                    del guest.main['lock']
                    if guest.main.get('vmstate'):
                        c.free_volume(node, guest.main.pop('vmstate'))
                c.power_off(guest)
                c.save()
        elif action in ('shutdown', 'reboot'):
            if guest.status != 'running':
                return
            if paused_stop:
                task.warn('VM is paused - stop instead of shutdown')
            if slow:
                c.sleep(min(timeout, 3) if timeout else 3)
                if action == 'reboot' or params.get('forceStop', '0') != '1':
                    raise PveError('VM quit/powerdown failed - got timeout' if kind == 'qemu' else 'container did not stop')
                task.log('VM still running - terminating now with SIGTERM')
            c.sleep(1.0)
            with c.lock:
                c.power_off(guest)
                if action == 'reboot':
                    c.power_on(guest)
                c.save()
        elif action == 'suspend':
            with c.lock:
                if params.get('todisk') == '1':
                    c.power_off(guest)
                    guest.main['lock'] = 'suspended'
                    guest.main['vmstate'] = c.alloc_volume(node, 'local-lvm', vmid, 2 << 30, name='vm-%d-state-suspend-%s' % (vmid, time.strftime('%Y-%m-%d')))
                else:
                    guest.paused = True
                c.save()
        elif action == 'resume':
            with c.lock:
                if guest.main.get('lock') == 'suspended':
                    del guest.main['lock']
                    if guest.main.get('vmstate'):
                        c.free_volume(node, guest.main.pop('vmstate'))
                    c.power_on(guest)
                guest.paused = False
                c.save()
        elif action == 'reset':
            with c.lock:
                c.apply_pending(guest, everything=True)
    return c.start_task(node, ttype, vmid, ctx.authid, work)


def _power_routes():
    for kind in ('qemu', 'lxc'):
        for action in ('start', 'stop', 'shutdown', 'reboot', 'suspend', 'resume', 'reset'):
            def handler(ctx, params, kind=kind, action=action):
                return power_action(ctx, params, kind, action)
            ROUTES[('POST', '/nodes/{node}/%s/{vmid}/status/%s' % (kind, action))] = handler


_power_routes()


@route('GET', '/nodes/{node}/qemu/{vmid}/status')
def qemu_status_index(ctx, params):
    ctx.cluster.get_guest(params['node'], params['vmid'], 'qemu')
    return [{'subdir': s} for s in ('current', 'start', 'stop', 'reset', 'shutdown', 'suspend', 'reboot', 'resume')]


@route('GET', '/nodes/{node}/qemu/{vmid}')
def qemu_index(ctx, params):
    ctx.cluster.get_guest(params['node'], params['vmid'], 'qemu')
    return [{'subdir': s} for s in ('config', 'pending', 'status', 'snapshot', 'agent', 'cloudinit', 'clone', 'resize', 'template')]


@route('GET', '/nodes/{node}/lxc/{vmid}')
def lxc_index(ctx, params):
    ctx.cluster.get_guest(params['node'], params['vmid'], 'lxc')
    return [{'subdir': s} for s in ('config', 'pending', 'status', 'snapshot', 'interfaces', 'clone', 'resize', 'template')]


# --- delete ----------------------------------------------------------------------------------------------------------------

def destroy_guest(ctx, params, kind):
    c = ctx.cluster
    node = params['node']
    guest = c.get_guest(node, params['vmid'], kind)
    check_skiplock(ctx, params)
    vmid = guest.vmid
    if guest.main.get('protection') == '1':
        fail("can't remove %s %d - protection mode enabled" % (guest.label, vmid))
    if guest.status == 'running':
        fail('%s %d is running - destroy failed' % (guest.label, vmid))
    wlock = WorkerLock(c, guest, 'destroyed')

    def work(task):
        with c.lock:
            wlock.acquire(force=params.get('skiplock') == '1')
        c.sleep(0.5)
        with c.lock:
            in_use = set()
            for other in c.guests.values():
                if other is not guest:
                    for _k, vol in c.guest_volumes(other):
                        in_use.add(vol.split('/')[0])
                        parent = (c.find_volume(other.node, vol) or {}).get('parent')  # lvmthin names a linked clone without its base
                        if parent:
                            in_use.add('%s:%s' % (vol.split(':', 1)[0], parent))
            keep = set()
            for _key, volid in c.guest_volumes(guest):
                if volid in in_use:
                    task.warn("Could not remove disk '%s', check manually: base volume '%s' is still in use by linked cloned"
                              % (volid, volid.split(':', 1)[1]))
                    keep.add(volid)
                else:
                    task.log('Removing image: 100%% complete...done. (%s)' % volid)
            c.remove_guest(guest, keep=keep)
            if params.get('purge') == '1':
                task.log('purging VM %d from related configurations..' % vmid)
            c.save()
    return c.start_task(node, 'qmdestroy' if kind == 'qemu' else 'vzdestroy', vmid, ctx.authid, work, on_done=wlock.release)


@route('DELETE', '/nodes/{node}/qemu/{vmid}')
def delete_qemu(ctx, params):
    return destroy_guest(ctx, params, 'qemu')


@route('DELETE', '/nodes/{node}/lxc/{vmid}')
def delete_lxc(ctx, params):
    return destroy_guest(ctx, params, 'lxc')


# --- clone / template ---------------------------------------------------------------------------------------------------

def clone_guest(ctx, params, kind):
    c = ctx.cluster
    node = params['node']
    guest = c.get_guest(node, params['vmid'], kind)
    vmid = guest.vmid
    newid = int(params['newid'])
    target = params.get('target')
    if target in (node, 'localhost'):
        target = None
    if target and target not in c.nodes:
        fail("no such cluster node '%s'" % target)
    storage = params.get('storage')
    if storage:
        scfg = c.storage_cfg(storage)
        need = 'images' if kind == 'qemu' else 'rootdir'
        if need not in scfg['content']:
            param_error({'storage': "storage '%s' does not support vm images" % storage if kind == 'qemu' else
                         "storage '%s' does not support container directories" % storage})
        if target and not scfg['shared']:
            fail("can't clone to non-shared storage '%s'" % storage)
    if params.get('pool'):
        fail("pool '%s' does not exist" % params['pool'])
    guest.check_lock()
    snapname = params.get('snapname')
    if snapname and snapname not in guest.conf['snapshots']:
        fail("snapshot '%s' does not exist" % snapname)
    is_template = guest.main.get('template') == '1'
    full = params.get('full', '0' if is_template else '1') == '1'
    if storage and not full:
        fail("parameter 'storage' not allowed for linked clones")
    if params.get('format') and not full:
        fail("parameter 'format' not allowed for linked clones")
    src_conf = guest.conf['snapshots'][snapname] if snapname else guest.main
    if target and not all(c.storages.get(volid.split(':')[0], {}).get('shared') for _k, volid in c.guest_volumes(guest, src_conf)):
        fail("can't clone VM to node '%s' (VM uses local storage)" % target if kind == 'qemu' else
             "Can't clone CT to node '%s' (CT uses local storage)" % target)
    dest = target or node
    if newid in c.guests:
        if kind == 'qemu':
            fail('unable to create VM %d: config file already exists' % newid)
        fail('unable to create CT %d: config file already exists' % newid)
    src = dict(guest.conf['snapshots'][snapname] if snapname else guest.main)
    disks = {k: v for k, v in src.items() if (DRIVE_RE.match(k) if kind == 'qemu' else LXC_MP_RE.match(k))}
    if not full:
        for key, value in disks.items():
            volid = value.split(',')[0]
            if 'media=cdrom' in value:
                continue
            if not is_template or '/base-' not in '/' + volid.split(':', 1)[-1]:
                fail("Linked clone feature is not supported for '%s' (%s)" % (volid, key) if kind == 'qemu' else
                     "Linked clone feature for '%s' is not available" % volid)
    newguest = Guest(newid, kind, dest)
    newguest.main['lock'] = 'clone'
    c.guests[newid] = newguest
    # PVE holds the source's config flock (shared if stopped, exclusive if running) for the whole clone, not a
    # `lock:` key: parallel clones of a template work, changing the source meanwhile times out.
    c.hold_flock(guest)

    def work(task):
        task.log('create %s clone of drive(s)' % ('full' if full else 'linked'))
        c.sleep(2.0)
        with c.lock:
            conf = {}
            for key, value in src.items():
                if key in ('snapshots', 'parent', 'snaptime', 'vmstate', 'template', 'lock', 'snapstate', 'runningcpu', 'runningmachine') \
                        or key.startswith('unused'):
                    continue
                if key in disks:
                    drive, fmt = parse_drive(ctx, kind, key, value)
                    volkey = 'file' if 'file' in drive else 'volume'
                    volid = drive[volkey]
                    if drive.get('media') == 'cdrom' and 'cloudinit' not in volid:
                        conf[key] = value
                        continue
                    if 'cloudinit' in volid:
                        sid = volid.split(':')[0]
                        name = 'vm-%d-cloudinit' % newid + ('.qcow2' if c.storages[sid]['type'] in FILE_STORAGE else '')
                        drive[volkey] = c.alloc_volume(dest, sid, newid, 4 << 20, name=name,
                                                       fmt='qcow2' if c.storages[sid]['type'] in FILE_STORAGE else None)
                        conf[key] = print_property_string(drive, fmt)
                        continue
                    size = c.volume_size(node, volid)
                    sid = volid.split(':')[0]
                    if full:
                        new = c.alloc_volume(dest, storage or sid, newid, size, fmt=params.get('format'),
                                             content='images' if kind == 'qemu' else 'rootdir')
                        drive[volkey] = new
                        drive.pop('format', None)
                    else:
                        name = 'vm-%d-disk-%d' % (newid, c.next_disk_index(dest, sid, newid))
                        base = volid.split(':', 1)[1]
                        # File storages name a linked clone base/vm (Plugin.pm); lvmthin a plain vm-N-disk-M (LvmThinPlugin.pm clone_image).
                        volname = '%s/%s' % (base, name) if c.storages[sid]['type'] in FILE_STORAGE else name
                        new = '%s:%s' % (sid, volname)
                        c.store(dest, sid)[volname] = {'size': size, 'format': 'raw', 'content': 'images' if kind == 'qemu' else 'rootdir',
                                                       'vmid': newid, 'ctime': int(time.time()), 'parent': base}
                        drive[volkey] = new
                    drive['size'] = format_size(size)
                    task.log('%s: %s -> %s' % (key, volid, drive[volkey]))
                    conf[key] = print_property_string(drive, fmt)
                elif re.match(r'^net\d+$', key):
                    net = parse_property_string(ctx.fmt(kind, key), value, validate=False)
                    net.pop('macaddr' if kind == 'qemu' else 'hwaddr', None)
                    conf[key] = normalize_net(ctx, kind, print_property_string(net, ctx.fmt(kind, key)))
                elif key == 'smbios1':
                    smbios = [p for p in value.split(',') if p and not p.startswith('uuid=')]
                    conf[key] = ','.join(sorted(smbios + ['uuid=%s' % uuid.uuid4()]))
                elif key == 'vmgenid':
                    conf[key] = str(uuid.uuid4())
                else:
                    conf[key] = value
            if kind == 'qemu':
                conf['name'] = params.get('name') or 'Copy-of-VM-%s' % src.get('name', vmid)
                conf.setdefault('smbios1', 'uuid=%s' % uuid.uuid4())
            elif params.get('hostname'):
                conf['hostname'] = params['hostname']
            if params.get('description'):
                conf['description'] = params['description']
            conf['lock'] = 'clone'
            newguest.conf = {'main': conf, 'pending': {}, 'delete': [], 'cloudinit': {}, 'snapshots': {}}

    def cleanup(task):
        del task
        c.remove_guest(newguest)

    return c.start_task(node, 'qmclone' if kind == 'qemu' else 'vzclone', vmid, ctx.authid, work, newguest, 'clone', on_error=cleanup,
                        on_done=lambda: c.release_flock(guest))


@route('POST', '/nodes/{node}/qemu/{vmid}/clone')
def clone_qemu(ctx, params):
    return clone_guest(ctx, params, 'qemu')


@route('POST', '/nodes/{node}/lxc/{vmid}/clone')
def clone_lxc(ctx, params):
    return clone_guest(ctx, params, 'lxc')


def make_template(ctx, params, kind):
    c = ctx.cluster
    node = params['node']
    guest = c.get_guest(node, params['vmid'], kind)
    guest.check_lock()
    if guest.conf['snapshots']:
        fail('unable to create template, because %s contains snapshots' % guest.label)
    if guest.main.get('template') == '1':
        fail("you can't convert a template to a template")
    if guest.status == 'running':
        fail("you can't convert a VM to template if VM is running" if kind == 'qemu' else "you can't convert a CT to template if the CT is running")

    def work(task):
        c.sleep(0.5)
        with c.lock:
            for key, volid in c.guest_volumes(guest):
                if 'cloudinit' in volid:
                    continue
                sid, volname = volid.split(':', 1)
                newname = volname.replace('vm-%d-disk' % guest.vmid, 'base-%d-disk' % guest.vmid)
                store = c.store(node, sid)
                store[newname] = store.pop(volname)
                guest.main[key] = guest.main[key].replace(volid, '%s:%s' % (sid, newname), 1)
                task.log('renamed %s to %s' % (volid, newname))
            guest.main['template'] = '1'
            c.save()
    upid = c.start_task(node, 'qmtemplate' if kind == 'qemu' else 'vztemplate', guest.vmid, ctx.authid, work)
    return upid if kind == 'qemu' else None


@route('POST', '/nodes/{node}/qemu/{vmid}/template')
def template_qemu(ctx, params):
    return make_template(ctx, params, 'qemu')


@route('POST', '/nodes/{node}/lxc/{vmid}/template')
def template_lxc(ctx, params):
    return make_template(ctx, params, 'lxc')


# --- resize / move --------------------------------------------------------------------------------------------------------

def resize_disk(ctx, params, kind):
    """qemu-server checks everything in the worker; pve-container checks early and again in the worker."""
    c = ctx.cluster
    node = params['node']
    guest = c.get_guest(node, params['vmid'], kind)
    check_skiplock(ctx, params)
    disk = params['disk']
    m = re.match(r'^(\+)?(\d+(\.\d+)?)([KMGT])?$', params['size'])
    if not m:
        fail('invalid size string')
    amount = float(m.group(2)) * ({'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}.get(m.group(4), 1))

    def check():
        """Return (drive, fmt, vol, newsize) or raise PVE's error for this guest type."""
        if kind == 'qemu':
            if params.get('digest') and params['digest'] != guest.digest():
                fail('checksum mismatch (file change by other user?)')
            if params.get('skiplock') != '1':
                guest.check_lock()
        else:
            guest.check_lock()
            if params.get('digest') and params['digest'] != guest.digest():
                fail('detected modified configuration - file changed by other user? Try again.')
        value = guest.main.get(disk)
        if not value:
            fail("disk '%s' does not exist" % disk if kind == 'qemu' else "unable to parse volume '%s'" % disk)
        drive, fmt = parse_drive(ctx, kind, disk, value)
        if drive.get('media') == 'cdrom':
            fail("you can't resize a cdrom")
        vol = c.check_volume(node, drive['file' if 'file' in drive else 'volume'])
        newsize = int(vol['size'] + amount) if m.group(1) else int(amount)
        if newsize < vol['size']:
            fail('shrinking disks is not supported' if kind == 'qemu' else 'unable to shrink disk size')
        if kind == 'lxc' and newsize == vol['size']:
            fail('disk is already at specified size')
        return drive, fmt, vol, newsize

    if kind == 'lxc':
        check()

    def work(task):
        with c.lock:
            c.flock(guest)
            drive, fmt, vol, newsize = check()
        if newsize == vol['size']:
            return
        volid = drive['file' if 'file' in drive else 'volume']
        task.log("Resizing image '%s' from %s to %s" % (volid, format_size(vol['size']), format_size(newsize)))
        c.sleep(0.5)
        with c.lock:
            vol['size'] = newsize
            drive['size'] = format_size(newsize)
            guest.main[disk] = print_property_string(drive, fmt)
            c.save()
    return c.start_task(node, 'resize', guest.vmid, ctx.authid, work)


@route('PUT', '/nodes/{node}/qemu/{vmid}/resize')
def resize_qemu(ctx, params):
    return resize_disk(ctx, params, 'qemu')


@route('PUT', '/nodes/{node}/lxc/{vmid}/resize')
def resize_lxc(ctx, params):
    return resize_disk(ctx, params, 'lxc')


def move_volume(ctx, params, kind):
    c = ctx.cluster
    node = params['node']
    guest = c.get_guest(node, params['vmid'], kind)
    key = params['disk' if kind == 'qemu' else 'volume']
    if params.get('target-vmid') or params.get('target-disk') or params.get('target-volume'):
        fail('moving a disk to another guest is not supported by the simulator')
    storage = params.get('storage')
    if not storage:
        fail('storage is required when not reassigning to another guest')
    if params.get('digest') and params['digest'] != guest.digest():
        fail('checksum mismatch (file change by other user?)' if kind == 'qemu' else
             'detected modified configuration - file changed by other user? Try again.')
    guest.check_lock()
    value = guest.main.get(key)
    if not value:
        fail("disk '%s' does not exist" % key if kind == 'qemu' else "volume '%s' does not exist" % key)
    drive, fmt = parse_drive(ctx, kind, key, value)
    volkey = 'file' if 'file' in drive else 'volume'
    old = drive[volkey]
    if old.split(':')[0] == storage and not params.get('format'):
        fail('you can\'t move to the same storage with same format')
    if kind == 'lxc' and guest.status == 'running':
        fail('cannot move volumes of a running container')
    size = c.check_volume(node, old)['size']

    def work(task):
        c.sleep(1.0)
        with c.lock:
            new = c.alloc_volume(node, storage, guest.vmid, size, fmt=params.get('format') if kind == 'qemu' else None,
                                 content='images' if kind == 'qemu' else 'rootdir')
            task.log('moving disk \'%s\' to \'%s\'' % (old, new))
            drive[volkey] = new
            drive.pop('format', None)
            guest.main[key] = print_property_string(drive, fmt)
            if params.get('delete') == '1':
                c.free_volume(node, old)
            else:
                i = 0
                while 'unused%d' % i in guest.main:
                    i += 1
                guest.main['unused%d' % i] = old
            c.save()
    return c.start_task(node, 'qmmove' if kind == 'qemu' else 'move_volume', guest.vmid, ctx.authid, work, guest, 'disk' if kind == 'lxc' else None)


@route('POST', '/nodes/{node}/qemu/{vmid}/move_disk')
def move_disk_qemu(ctx, params):
    return move_volume(ctx, params, 'qemu')


@route('POST', '/nodes/{node}/lxc/{vmid}/move_volume')
def move_volume_lxc(ctx, params):
    return move_volume(ctx, params, 'lxc')


# --- snapshots -----------------------------------------------------------------------------------------------------------

@route('GET', '/nodes/{node}/qemu/{vmid}/snapshot')
def list_snapshots_qemu(ctx, params):
    return list_snapshots(ctx, params, 'qemu')


@route('GET', '/nodes/{node}/lxc/{vmid}/snapshot')
def list_snapshots_lxc(ctx, params):
    return list_snapshots(ctx, params, 'lxc')


def list_snapshots(ctx, params, kind):
    guest = ctx.cluster.get_guest(params['node'], params['vmid'], kind)
    res = []
    for name, snap in sorted(guest.conf['snapshots'].items()):
        item = {'name': name, 'snaptime': int(snap.get('snaptime', 0)), 'description': snap.get('description', '')}
        if kind == 'qemu':
            item['vmstate'] = 1 if snap.get('vmstate') else 0
        if snap.get('parent'):
            item['parent'] = snap['parent']
        if snap.get('snapstate'):
            item['snapstate'] = snap['snapstate']
        res.append(item)
    current = {'name': 'current', 'description': 'You are here!', 'digest': guest.digest(), 'running': 1 if guest.status == 'running' else 0}
    if guest.main.get('parent'):
        current['parent'] = guest.main['parent']
    res.append(current)
    return res


class WorkerLock:
    """The config lock a snapshot worker takes as AbstractConfig does: flock, lock check, then `lock: NAME`.

    Failures are task errors; only the worker that set the lock removes it."""

    def __init__(self, cluster, guest, name):
        self.cluster, self.guest, self.name, self.held = cluster, guest, name, False

    def acquire(self, force=False):
        self.cluster.flock(self.guest)
        if self.guest.main.get('lock') and not force:
            raise PveError('%s is locked (%s)' % (self.guest.label, self.guest.main['lock']))
        self.guest.main['lock'] = self.name
        self.held = True

    def release(self):
        if self.held and self.guest.main.get('lock') == self.name:
            del self.guest.main['lock']


def snapshot_create(ctx, params, kind):
    c = ctx.cluster
    node = params['node']
    guest = c.get_guest(node, params['vmid'], kind)
    snapname = params['snapname']
    reserved = ('current', 'pending') if kind == 'qemu' else ('current', 'vzdump')
    if snapname == 'current' or snapname.lower() in reserved:
        fail("unable to use snapshot name '%s' (reserved name)" % snapname)

    wlock = WorkerLock(c, guest, 'snapshot')

    def work(task):
        with c.lock:
            # AbstractConfig::__snapshot_prepare order: template, lock, name
            if guest.main.get('template') == '1':
                raise PveError("you can't take a snapshot if it's a template")
            wlock.acquire()
            if snapname in guest.conf['snapshots']:
                raise PveError("snapshot name '%s' already used" % snapname)
        task.log('snapshotting \'%s\'' % snapname)
        c.sleep(0.5)
        with c.lock:
            snap = {k: v for k, v in guest.main.items() if k != 'lock'}
            snap['snaptime'] = str(int(time.time()))
            if params.get('description'):
                snap['description'] = params['description']
            else:
                snap.pop('description', None)
            if kind == 'qemu' and params.get('vmstate') == '1' and guest.status == 'running':
                snap['vmstate'] = c.alloc_volume(node, 'local-lvm', guest.vmid, c.guest_maxmem(guest) * 2,
                                                 name='vm-%d-state-%s' % (guest.vmid, snapname))
                snap['runningmachine'] = 'pc-i440fx-10.1+pve0'
            guest.conf['snapshots'][snapname] = snap
            guest.main['parent'] = snapname
            c.save()
    return c.start_task(node, 'qmsnapshot' if kind == 'qemu' else 'vzsnapshot', guest.vmid, ctx.authid, work,
                        on_done=wlock.release)


@route('POST', '/nodes/{node}/qemu/{vmid}/snapshot')
def snapshot_qemu(ctx, params):
    return snapshot_create(ctx, params, 'qemu')


@route('POST', '/nodes/{node}/lxc/{vmid}/snapshot')
def snapshot_lxc(ctx, params):
    return snapshot_create(ctx, params, 'lxc')


def get_snap(ctx, params, kind):
    guest = ctx.cluster.get_guest(params['node'], params['vmid'], kind)
    snap = guest.conf['snapshots'].get(params['snapname'])
    if snap is None:
        fail("snapshot '%s' does not exist" % params['snapname'])
    return guest, snap


def snapshot_rollback(ctx, params, kind):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], kind)
    name = params['snapname']

    wlock = WorkerLock(c, guest, 'rollback')

    def work(task):
        with c.lock:
            snap = guest.conf['snapshots'].get(name)
            if snap is None:
                raise PveError("snapshot '%s' does not exist" % name)
            wlock.acquire()
        task.log('rolling back to snapshot \'%s\'' % name)
        c.sleep(0.5)
        with c.lock:
            if guest.status == 'running' and not snap.get('vmstate'):
                c.power_off(guest)
            conf = {k: v for k, v in snap.items() if k not in ('snaptime', 'vmstate', 'runningmachine', 'snapstate', 'description')}
            # The snapshot's comment is its own: the guest keeps its current description (pve-guest-common AbstractConfig.pm).
            if guest.main.get('description') is not None:
                conf['description'] = guest.main['description']
            conf['parent'] = name
            conf['lock'] = 'rollback'
            guest.conf['main'] = conf
            guest.conf['pending'] = {}
            guest.conf['delete'] = []
            if snap.get('vmstate') or params.get('start') == '1':
                c.power_on(guest)
            c.save()
    return c.start_task(guest.node, 'qmrollback' if kind == 'qemu' else 'vzrollback', guest.vmid, ctx.authid, work,
                        on_done=wlock.release)


@route('POST', '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback')
def rollback_qemu(ctx, params):
    return snapshot_rollback(ctx, params, 'qemu')


@route('POST', '/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback')
def rollback_lxc(ctx, params):
    return snapshot_rollback(ctx, params, 'lxc')


def snapshot_delete(ctx, params, kind):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], kind)
    name = params['snapname']

    wlock = WorkerLock(c, guest, 'snapshot-delete')

    def work(task):
        with c.lock:
            snap = guest.conf['snapshots'].get(name)
            if snap is None:
                raise PveError("snapshot '%s' does not exist" % name)
            wlock.acquire(force=params.get('force') == '1')
        task.log('deleting snapshot \'%s\'' % name)
        c.sleep(0.5)
        with c.lock:
            parent = snap.get('parent')
            for other in guest.conf['snapshots'].values():
                if other.get('parent') == name:
                    if parent:
                        other['parent'] = parent
                    else:
                        other.pop('parent', None)
            if guest.main.get('parent') == name:
                if parent:
                    guest.main['parent'] = parent
                else:
                    guest.main.pop('parent', None)
            if snap.get('vmstate'):
                c.free_volume(guest.node, snap['vmstate'])
            del guest.conf['snapshots'][name]
            c.save()
    return c.start_task(guest.node, 'qmdelsnapshot' if kind == 'qemu' else 'vzdelsnapshot', guest.vmid, ctx.authid, work,
                        on_done=wlock.release)


@route('DELETE', '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}')
def delsnap_qemu(ctx, params):
    return snapshot_delete(ctx, params, 'qemu')


@route('DELETE', '/nodes/{node}/lxc/{vmid}/snapshot/{snapname}')
def delsnap_lxc(ctx, params):
    return snapshot_delete(ctx, params, 'lxc')


@route('GET', '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}')
def snap_index_qemu(ctx, params):
    get_snap(ctx, params, 'qemu')
    return [{'subdir': 'config'}, {'subdir': 'rollback'}]


@route('GET', '/nodes/{node}/lxc/{vmid}/snapshot/{snapname}')
def snap_index_lxc(ctx, params):
    get_snap(ctx, params, 'lxc')
    return [{'subdir': 'config'}, {'subdir': 'rollback'}]


def snap_config(ctx, params, kind, method):
    guest, snap = get_snap(ctx, params, kind)
    if method == 'GET':
        res = typed_config(ctx, kind, snap)
        res['digest'] = guest.digest()
        return res
    if params.get('description') is not None:
        snap['description'] = params['description']
        ctx.cluster.save()
    return None


@route('GET', '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config')
def snapconf_get_qemu(ctx, params):
    return snap_config(ctx, params, 'qemu', 'GET')


@route('PUT', '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config')
def snapconf_put_qemu(ctx, params):
    return snap_config(ctx, params, 'qemu', 'PUT')


@route('GET', '/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config')
def snapconf_get_lxc(ctx, params):
    return snap_config(ctx, params, 'lxc', 'GET')


@route('PUT', '/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config')
def snapconf_put_lxc(ctx, params):
    return snap_config(ctx, params, 'lxc', 'PUT')


# --- backup ----------------------------------------------------------------------------------------------------------------

@route('POST', '/nodes/{node}/vzdump')
def vzdump(ctx, params):
    c = ctx.cluster
    node = params['node']
    if params.get('all') == '1':
        vmids = [g.vmid for g in c.guests.values() if g.node == node and g.main.get('template') != '1']
    elif params.get('vmid'):
        vmids = [int(v) for v in split_list(params['vmid'])]
    else:
        param_error({'vmid': 'property is missing and it is not optional'})
    storage = params.get('storage', 'local')
    scfg = c.storage_cfg(storage)
    if 'backup' not in scfg['content']:
        fail("storage '%s' does not support backups" % storage)
    guests = []
    for vmid in vmids:
        guest = c.guests.get(vmid)
        if guest is None or guest.node != node:
            fail('unable to find VM %d on node \'%s\'' % (vmid, node) if guest is None or guest.node != node else '')
        guests.append(guest)
    compress = params.get('compress', '0')
    ext = {'0': '', 'gzip': '.gz', '1': '.lzo', 'lzo': '.lzo', 'zstd': '.zst'}[compress]
    mode = params.get('mode', 'snapshot')
    prune = parse_property_string(PRUNE_FORMAT, params['prune-backups'], validate=False) if params.get('prune-backups') else None

    def work(task):
        for guest in guests:
            task.log('INFO: Starting Backup of VM %d (%s)' % (guest.vmid, guest.kind))
            with c.lock:
                if guest.main.get('lock') and guest is not prelocked:
                    task.log('ERROR: Backup of VM %d failed - %s is locked (%s)' % (guest.vmid, guest.label, guest.main['lock']))
                    raise PveError('job errors')
                guest.main['lock'] = 'backup'
                was_running = guest.status == 'running'
                if mode == 'stop' and was_running:
                    c.power_off(guest)
            try:
                c.sleep(1.5)
                with c.lock:
                    stamp = time.strftime('%Y_%m_%d-%H_%M_%S', time.localtime())
                    kindname = 'qemu' if guest.kind == 'qemu' else 'lxc'
                    base = 'vzdump-%s-%d-%s' % (kindname, guest.vmid, stamp)
                    fmt = ('vma' if guest.kind == 'qemu' else 'tar') + ext
                    volname = 'backup/%s.%s' % (base, fmt)
                    n = 1
                    while volname in c.store(node, storage):
                        volname = 'backup/%s-%d.%s' % (base, n, fmt)
                        n += 1
                    conf = {k: v for k, v in guest.main.items() if k not in ('lock',)}
                    disks = {k: c.volume_size(node, v) for k, v in c.guest_volumes(guest, conf)
                             if not k.startswith('unused') and 'cloudinit' not in v and 'backup=0' not in conf.get(k, '')}
                    total = sum(disks.values())
                    notes = params.get('notes-template', '{{guestname}}')
                    notes = notes.replace('{{guestname}}', guest.name()).replace('{{vmid}}', str(guest.vmid)).replace(
                        '{{node}}', node).replace('{{cluster}}', 'polyvirt-sim')
                    c.store(node, storage)[volname] = {
                        'size': max(total // 20, 1 << 20), 'format': fmt, 'content': 'backup', 'subtype': guest.kind, 'vmid': guest.vmid,
                        'ctime': int(time.time()), 'notes': notes, 'protected': 1 if params.get('protected') == '1' else 0,
                        'config': conf, 'disks': disks}
                    task.log('INFO: creating vzdump archive \'%s/dump/%s.%s\'' % (c.storages[storage].get('path', ''), base, fmt))
                    task.log('INFO: Finished Backup of VM %d' % guest.vmid)
                    if prune:
                        prune_backups(c, task, node, storage, guest.vmid, prune)
            finally:
                with c.lock:
                    if guest.main.get('lock') == 'backup':
                        del guest.main['lock']
                    if mode == 'stop' and was_running:
                        c.power_on(guest)
                    c.save()
    # the worker locks each guest in turn as it reaches it; the first one is locked before we answer, so a
    # client sees `lock: backup` right after getting the UPID (on PVE it appears a few milliseconds later)
    prelocked = guests[0] if guests and not guests[0].main.get('lock') else None
    if prelocked:
        prelocked.main['lock'] = 'backup'

    def unlock(task):
        del task
        if prelocked and prelocked.main.get('lock') == 'backup':
            del prelocked.main['lock']
    tid = str(vmids[0]) if len(vmids) == 1 else ''
    return c.start_task(node, 'vzdump', tid, ctx.authid, work, on_error=unlock)


def prune_backups(c, task, node, storage, vmid, prune):
    """Apply `prune-backups` after a backup: keep-last (and keep-all) are honoured, other keep-* keep everything."""
    if prune.get('keep-all') == '1' or 'keep-last' not in prune:
        return
    keep = int(prune['keep-last'])
    store = c.store(node, storage)
    backups = sorted(((v['ctime'], n) for n, v in store.items() if v['content'] == 'backup' and v.get('vmid') == vmid), reverse=True)
    task.log('INFO: prune older backups with retention: keep-last=%d' % keep)
    for _ctime, volname in backups[keep:]:
        if store[volname].get('protected'):
            continue
        task.log("INFO: removing backup '%s:%s'" % (storage, volname))
        del store[volname]


@route('GET', '/nodes/{node}/vzdump/extractconfig')
def extract_config(ctx, params):
    c = ctx.cluster
    vol = c.check_volume(params['node'], params['volume'])
    if vol['content'] != 'backup':
        fail("volume '%s' is not a backup archive" % params['volume'])
    lines = []
    conf = vol['config']
    if conf.get('description'):
        lines += ['#' + line for line in conf['description'].split('\n')]
    lines += ['%s: %s' % (k, v) for k, v in sorted(conf.items()) if k != 'description']
    return '\n'.join(lines) + '\n'


# --- cloud-init ---------------------------------------------------------------------------------------------------------------

@route('GET', '/nodes/{node}/qemu/{vmid}/cloudinit/dump')
def cloudinit_dump(ctx, params):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], 'qemu')
    kind = params['type']
    if kind == 'user':
        return c.ci_user(guest)
    if kind == 'network':
        return c.ci_network(guest)
    return c.ci_meta(guest)


@route('GET', '/nodes/{node}/qemu/{vmid}/cloudinit')
def cloudinit_pending(ctx, params):
    guest = ctx.cluster.get_guest(params['node'], params['vmid'], 'qemu')
    applied = guest.conf['cloudinit']
    res = []
    keys = set(k for k in guest.main if k in CI_KEYS or k.startswith('ipconfig')) | set(applied)
    for key in sorted(keys):
        item = {'key': key}
        cur, old = guest.main.get(key), applied.get(key)
        if old is not None:
            item['value'] = '**********' if key == 'cipassword' else old
        if cur is not None and cur != old:
            item['pending'] = '**********' if key == 'cipassword' else cur
        if cur is None and old is not None:
            item['delete'] = 1
        res.append(item)
    return res


@route('PUT', '/nodes/{node}/qemu/{vmid}/cloudinit')
def cloudinit_regenerate(ctx, params):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], 'qemu')
    guest.check_lock()
    guest.conf['cloudinit'] = {k: v for k, v in guest.main.items() if k in CI_KEYS or k.startswith('ipconfig')}
    c.save()
    return None


# --- guest agent / lxc interfaces -----------------------------------------------------------------------------------------------

def agent_guest(ctx, params):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], 'qemu')
    agent = parse_property_string(ctx.fmt('qemu', 'agent'), guest.main.get('agent', '0'), validate=False)
    if agent.get('enabled') != '1':
        fail('No QEMU guest agent configured')
    if guest.status != 'running':
        fail('VM %d is not running' % guest.vmid)
    if guest.paused or not guest.agent_at or time.time() < guest.agent_at:
        fail('QEMU guest agent is not running')
    return guest


@route('GET', '/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces')
def agent_interfaces(ctx, params):
    guest = agent_guest(ctx, params)
    res = [{'name': 'lo', 'hardware-address': '00:00:00:00:00:00',
            'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', 'prefix': 8},
                             {'ip-address': '::1', 'ip-address-type': 'ipv6', 'prefix': 128}],
            'statistics': {'rx-bytes': 0, 'rx-dropped': 0, 'rx-errs': 0, 'rx-packets': 0, 'tx-bytes': 0, 'tx-dropped': 0,
                           'tx-errs': 0, 'tx-packets': 0}}]
    for name, mac, ip, prefix in ctx.cluster.guest_addresses(guest):
        addrs = []
        if ip:
            addrs.append({'ip-address': ip, 'ip-address-type': 'ipv4', 'prefix': prefix})
        parts = mac.split(':')
        eui = '%02x%s:%sff:fe%s:%s%s' % (int(parts[0], 16) ^ 2, parts[1], parts[2], parts[3], parts[4], parts[5])
        addrs.append({'ip-address': 'fe80::' + eui, 'ip-address-type': 'ipv6', 'prefix': 64})
        res.append({'name': name, 'hardware-address': mac, 'ip-addresses': addrs,
                    'statistics': {'rx-bytes': 1024, 'rx-dropped': 0, 'rx-errs': 0, 'rx-packets': 10, 'tx-bytes': 512,
                                   'tx-dropped': 0, 'tx-errs': 0, 'tx-packets': 5}})
    return {'result': res}


@route('POST', '/nodes/{node}/qemu/{vmid}/agent/ping')
def agent_ping(ctx, params):
    agent_guest(ctx, params)
    return {'result': {}}


@route('GET', '/nodes/{node}/qemu/{vmid}/agent/get-osinfo')
def agent_osinfo(ctx, params):
    agent_guest(ctx, params)
    return {'result': {'id': 'debian', 'kernel-release': '6.1.0-40-cloud-amd64', 'machine': 'x86_64', 'name': 'Debian GNU/Linux',
                       'pretty-name': 'Debian GNU/Linux 12 (bookworm)', 'version': '12 (bookworm)', 'version-id': '12'}}


@route('GET', '/nodes/{node}/qemu/{vmid}/agent/get-host-name')
def agent_hostname(ctx, params):
    guest = agent_guest(ctx, params)
    return {'result': {'host-name': ctx.cluster.ci_hostname(guest)[0]}}


@route('GET', '/nodes/{node}/qemu/{vmid}/agent/info')
def agent_info(ctx, params):
    agent_guest(ctx, params)
    return {'result': {'version': '7.2.19', 'supported_commands': [{'name': 'guest-network-get-interfaces', 'enabled': True,
                                                                    'success-response': True}]}}


@route('POST', '/nodes/{node}/qemu/{vmid}/agent')
def agent_command(ctx, params):
    handlers = {'ping': agent_ping, 'network-get-interfaces': agent_interfaces, 'get-osinfo': agent_osinfo,
                'get-host-name': agent_hostname, 'info': agent_info}
    handler = handlers.get(params['command'])
    if not handler:
        agent_guest(ctx, params)
        fail("agent command '%s' is not supported by the simulator" % params['command'])
    return handler(ctx, params)


@route('GET', '/nodes/{node}/lxc/{vmid}/interfaces')
def lxc_interfaces(ctx, params):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], 'lxc')
    if guest.status != 'running':
        fail('CT %d not running' % guest.vmid)
    res = [{'name': 'lo', 'hwaddr': '00:00:00:00:00:00', 'hardware-address': '00:00:00:00:00:00', 'inet': '127.0.0.1/8', 'inet6': '::1/128',
            'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'inet', 'prefix': 8},
                             {'ip-address': '::1', 'ip-address-type': 'inet6', 'prefix': 128}]}]
    for name, mac, ip, prefix in c.guest_addresses(guest):
        item = {'name': name, 'hwaddr': mac, 'hardware-address': mac, 'ip-addresses': []}
        if ip:
            item['inet'] = '%s/%d' % (ip, prefix)
            item['ip-addresses'].append({'ip-address': ip, 'ip-address-type': 'inet', 'prefix': prefix})
        res.append(item)
    return res


# --- lxc create --------------------------------------------------------------------------------------------------------------------

@route('POST', '/nodes/{node}/lxc')
def create_lxc(ctx, params):
    c = ctx.cluster
    node = params.pop('node')
    vmid = int(params.pop('vmid'))
    if params.get('restore') == '1':
        params.pop('password', None)
        params.pop('ssh-public-keys', None)
        return restore_guest(ctx, node, vmid, params, 'lxc')
    for opt in ('force', 'unique'):
        if opt in params:
            fail("option '%s' can only be used together with 'restore'" % opt)
    ostemplate = params.pop('ostemplate')
    vol = c.find_volume(node, ostemplate)
    if vol is None:
        fail("volume '%s' does not exist" % ostemplate)
    if vol['content'] not in ('vztmpl', 'backup'):
        fail("volume '%s' is not a container template" % ostemplate)
    if params.get('ssh-public-keys'):
        check_ssh_keys(params['ssh-public-keys'])
    if params.get('pool'):
        fail("pool '%s' does not exist" % params['pool'])
    params.pop('password', None)
    params.pop('ssh-public-keys', None)
    start = params.pop('start', '0') == '1'
    storage = params.pop('storage', 'local')
    params.pop('bwlimit', None)
    params.pop('ignore-unpack-errors', None)
    if any(LXC_MP_RE.match(k) and k != 'rootfs' for k in params) and 'rootfs' not in params:
        fail("mount points configured, but 'rootfs' not set - aborting")
    for key in [k for k in params if LXC_MP_RE.match(k)]:
        if re.match(r'^\d+(\.\d+)?$', params[key].split(',')[0]):
            params[key] = '%s:%s' % (storage, params[key])
    rootfs = params.pop('rootfs', '%s:4' % storage)
    # pve-container checks every storage it will allocate on before locking the new config
    for value in [rootfs] + [v for k, v in params.items() if LXC_MP_RE.match(k)]:
        sid = value.split(',')[0].split(':')[0]
        if ':' in value.split(',')[0] and not value.startswith('/'):
            if 'rootdir' not in c.storage_cfg(sid)['content']:
                param_error({'storage': "storage '%s' does not support container directories" % sid})
    check_create_target(c, vmid, node, 'CT')
    guest = Guest(vmid, 'lxc', node)
    guest.main['lock'] = 'create'
    c.guests[vmid] = guest
    ostype = re.match(r'^[^:]+:vztmpl/([a-z]+)', ostemplate)

    def work(task):
        task.log('extracting archive \'%s\'' % ostemplate)
        c.sleep(1.0)
        with c.lock:
            conf = {'arch': params.pop('arch', 'amd64'), 'ostype': params.pop('ostype', ostype.group(1) if ostype else 'unmanaged'),
                    'hostname': params.pop('hostname', 'CT%d' % vmid), 'memory': params.pop('memory', '512'),
                    'swap': params.pop('swap', '512'), 'unprivileged': params.pop('unprivileged', '1')}
            conf['rootfs'] = prepare_drive(ctx, guest, 'rootfs', rootfs, task, storage)
            for key, value in params.items():
                if LXC_MP_RE.match(key):
                    conf[key] = prepare_drive(ctx, guest, key, value, task, storage)
                elif re.match(r'^net\d+$', key):
                    conf[key] = normalize_net(ctx, 'lxc', value)
                elif key == 'tags':
                    conf[key] = ';'.join(sorted(set(split_list(value))))
                else:
                    conf[key] = value
            conf['lock'] = 'create'
            guest.main.clear()
            guest.main.update(conf)
        if start:
            with c.lock:
                c.power_on(guest)

    def cleanup(task):
        del task
        c.remove_guest(guest)

    return c.start_task(node, 'vzcreate', vmid, ctx.authid, work, guest, 'create', on_error=cleanup)


# --- unlink / migrate / cluster tasks -----------------------------------------------------------------------------------------

@route('PUT', '/nodes/{node}/qemu/{vmid}/unlink')
def unlink_qemu(ctx, params):
    c = ctx.cluster
    guest = c.get_guest(params['node'], params['vmid'], 'qemu')
    guest.check_lock()
    force = params.get('force') == '1'
    for key in split_list(params['idlist']):
        value = guest.main.get(key)
        if value is None:
            continue
        volid = value.split(',')[0]
        del guest.main[key]
        if key.startswith('unused') or 'cloudinit' in volid or (force and DRIVE_RE.match(key)):
            if 'media=cdrom' not in value or 'cloudinit' in volid:
                c.free_volume(guest.node, volid)
        elif DRIVE_RE.match(key):
            c.retire_volume(guest, key, value)
    return None


def migrate_guest(ctx, params, kind):
    c = ctx.cluster
    node = params['node']
    guest = c.get_guest(node, params['vmid'], kind)
    target = params['target']
    label = guest.label
    if target == node:
        fail('target is local node.')
    if target not in c.nodes:
        fail("no such cluster node '%s'" % target)
    if c.node_offline(target):
        fail("target node '%s' is not online" % target)
    guest.check_lock()
    if guest.status == 'running':
        if kind == 'qemu' and params.get('online') != '1':
            fail("can't migrate running VM without --online")
        if kind == 'lxc' and params.get('restart') != '1':
            fail("lxc live migration is currently not implemented")
        if kind == 'qemu' and params.get('with-local-disks') != '1' and c.guest_volumes(guest):
            fail("can't live migrate attached local disks without with-local-disks option")
    if params.get('targetstorage') or params.get('target-storage'):
        fail('storage mapping on migration is not supported by the simulator')

    def work(task):
        task.log('starting migration of %s %d to node \'%s\'' % (label, guest.vmid, target))
        c.sleep(2.0)
        with c.lock:
            running = guest.status == 'running'
            for sid in c.storages:
                src = c.store(node, sid)
                for volname in [n for n, v in src.items() if v.get('vmid') == guest.vmid and v['content'] in ('images', 'rootdir')]:
                    c.store(target, sid)[volname] = src.pop(volname)
            guest.node = target
            if running and kind == 'lxc':
                c.power_off(guest)
                c.power_on(guest)
            task.log('migration finished successfully')
            c.save()
    return c.start_task(node, 'qmigrate' if kind == 'qemu' else 'vzmigrate', guest.vmid, ctx.authid, work, guest, 'migrate')


@route('POST', '/nodes/{node}/qemu/{vmid}/migrate')
def migrate_qemu(ctx, params):
    return migrate_guest(ctx, params, 'qemu')


@route('POST', '/nodes/{node}/lxc/{vmid}/migrate')
def migrate_lxc(ctx, params):
    return migrate_guest(ctx, params, 'lxc')


@route('GET', '/cluster/tasks')
def cluster_tasks(ctx, params):
    del params
    tasks = sorted(ctx.cluster.tasks.values(), key=lambda t: (t.starttime, t.seq), reverse=True)
    return [t.list_dict() for t in tasks[:1000]]


# --- agent exec (only what a provisioning tool asks a fresh cloud image) ------------------------------------------------------

def simulated_exec(guest, argv):
    """(exitcode, stdout, stderr) of a command in the simulated guest."""
    cmd = ' '.join(argv)
    if re.match(r'^(/usr/bin/)?cloud-init status\b', cmd):
        return 0, 'status: done\n', ''
    if argv and argv[0] in ('true', '/bin/true'):
        return 0, '', ''
    if argv and argv[0] in ('hostname', '/bin/hostname'):
        return 0, (guest.main.get('name') or 'VM%d' % guest.vmid).split('.')[0] + '\n', ''
    if argv and argv[0] in ('cat', '/bin/cat') and argv[1:] == ['/etc/os-release']:
        return 0, 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', ''
    return 127, '', 'sh: 1: %s: not found (polyvirt simulator guest)\n' % (argv[0] if argv else '')


@route('POST', '/nodes/{node}/qemu/{vmid}/agent/exec')
def agent_exec(ctx, params):
    guest = agent_guest(ctx, params)
    argv = params['command'] if isinstance(params['command'], list) else [params['command']]
    if len(argv) == 1 and ' ' in argv[0]:
        argv = argv[0].split()
    pid = 1000 + len(guest.execs)
    guest.execs[pid] = simulated_exec(guest, argv)
    return {'pid': pid}


# What cloud-init leaves in the simulated guest once it finished (it runs to the end by the time the agent answers):
# /run/cloud-init/result.json, which cloud-init writes at the end of its last stage (tmpfs: gone at the next boot).
CLOUD_INIT_RESULT = '{\n "v1": {\n  "datasource": "DataSourceNoCloud [seed=/dev/sr0]",\n  "errors": [],\n  "recoverable_errors": {}\n }\n}\n'


@route('GET', '/nodes/{node}/qemu/{vmid}/agent/file-read')
def agent_file_read(ctx, params):
    guest = agent_guest(ctx, params)
    files = {'/run/cloud-init/result.json': CLOUD_INIT_RESULT,
             '/etc/hostname': (guest.main.get('name') or 'VM%d' % guest.vmid).split('.')[0] + '\n'}
    content = files.get(params['file'])
    if content is None:
        fail("Agent error: Failed to open file '%s': No such file or directory" % params['file'])
    offset = int(params.get('offset') or 0)
    count = int(params.get('count') or 16777216)
    data = content.encode()[offset:offset + count]
    res = {'content': data.decode() if params.get('decode', '1') != '0' else base64.b64encode(data).decode()}
    if offset + count < len(content.encode()):
        res['truncated'] = 1
    return res


@route('GET', '/nodes/{node}/qemu/{vmid}/agent/exec-status')
def agent_exec_status(ctx, params):
    guest = agent_guest(ctx, params)
    result = guest.execs.get(int(params['pid']))
    if result is None:
        fail('Agent error: Invalid parameter \'pid\'')
    code, out, err = result
    res = {'exited': 1, 'exitcode': code}
    if out:
        res['out-data'] = out
    if err:
        res['err-data'] = err
    return res


# --- backup notes / protection -----------------------------------------------------------------------------------------------

@route('PUT', '/nodes/{node}/storage/{storage}/content/{volume}')
def update_content(ctx, params):
    c = ctx.cluster
    volid = normalize_volid(params)
    vol = c.check_volume(params['node'], volid)
    if params.get('notes') is not None:
        vol['notes'] = params['notes']
    if params.get('protected') is not None:
        if vol['content'] != 'backup':
            fail('volume protection is only supported for backups')
        vol['protected'] = int(params['protected'])
    return None


@route('GET', '/access/ticket')
def get_ticket_dummy(ctx, params):
    del ctx, params
    return None


@route('POST', '/nodes/{node}/storage/{storage}/content')
def alloc_content(ctx, params):
    """Allocate a free disk image (pve-storage vdisk_alloc): size in KiB, or with M / G."""
    c = ctx.cluster
    node, sid, vmid = params['node'], params['storage'], int(params['vmid'])
    cfg = c.storage_cfg(sid)
    m = re.match(r'^(\d+)([MG]?)$', params['size'])
    size = int(m.group(1)) * {'': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}[m.group(2)]
    name = params['filename']
    fmt = params.get('format')
    ext = re.search(r'\.(raw|qcow2|vmdk)$', name)
    if ext:
        if fmt and fmt != ext.group(1):
            param_error({'format': 'different storage formats (%s != %s)' % (fmt, ext.group(1))})
        fmt = ext.group(1)
    if not re.match(r'^vm-%d-' % vmid, name):
        fail("illegal name '%s' - should be 'vm-%d-*'" % (name, vmid))
    if 'images' not in cfg['content'] and 'rootdir' not in cfg['content']:
        fail("storage '%s' does not support vm images" % sid)
    if cfg['type'] in FILE_STORAGE:
        volname = '%d/%s' % (vmid, name if ext else '%s.%s' % (name, fmt or 'raw'))
    else:
        if fmt and fmt != 'raw':
            fail("unsupported format '%s'" % fmt)
        volname = name
    if volname in c.store(node, sid):
        fail("disk image '%s' already exists" % volname)
    c.store(node, sid)[volname] = {'size': size, 'format': fmt or 'raw', 'content': 'images', 'vmid': vmid, 'ctime': int(time.time())}
    return '%s:%s' % (sid, volname)


@route('GET', '/nodes/{node}/network')
def list_network(ctx, params):
    c = ctx.cluster
    res = [{'iface': 'eno1', 'type': 'eth', 'active': 1, 'exists': 1, 'method': 'manual', 'families': ['inet'], 'priority': 1}]
    for i, bridge in enumerate(sorted(c.bridges)):
        item = {'iface': bridge, 'type': 'bridge', 'active': 1, 'autostart': 1, 'method': 'manual', 'families': ['inet'],
                'bridge_ports': 'eno1' if i == 0 else '', 'bridge_stp': 'off', 'bridge_fd': '0', 'priority': 2 + i}
        if i == 0:
            item.update({'method': 'static', 'cidr': '10.20.0.2/24', 'address': '10.20.0.2', 'netmask': '24', 'gateway': '10.20.0.1'})
        res.append(item)
    kind = params.get('type')
    if kind in ('bridge', 'any_bridge'):
        res = [r for r in res if r['type'] == 'bridge']
    elif kind:
        res = [r for r in res if r['type'] == kind]
    return res
