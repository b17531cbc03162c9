# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CloudCIX model: membership tokens, compute resources and the robot.

Everything here is independent of HTTP: :meth:`Simulator.handle` takes a method, a normalised path
(no version prefix, no app prefix), the query, the headers and the decoded JSON body and returns
``(status, body)`` where ``body`` is a JSON-able object or None (no content).
"""
from __future__ import annotations

import base64
import collections
import copy
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
import time

from . import listing
from .faults import Faults

EMAIL = 'admin@example.com'
PASSWORD = 'polyvirt-sim'
API_KEY = 'polyvirt-sim-key'
USER_ID = 1
ADDRESS_ID = 1
REGIONS = (1,)

NO_TOKEN = 'No / invalid token provided'
# The framework's texts (CloudCIX/framework auth.py) for a token that does not decode and one that expired.
BAD_TOKEN = 'An error occurred while decoding your token. Please ensure the token is valid and try again.'
EXPIRED_TOKEN = 'JWT token is expired. Please login again.'
# The framework's user throttle (settings.py: 20 requests per second per user); 429 as Django REST framework sends it.
THROTTLE_RATE = 20
THROTTLED = 'Request was throttled. Expected available in 1 second.'
NOT_FOUND_PATH = 'Not found.'
FAULT_HTML = ('<html>\r\n<head><title>%(status)d Error</title></head>\r\n<body>\r\n<center><h1>%(status)d Error</h1>'
              '</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n')

# SKU catalogue: sku_name -> (family, hypervisor types it is valid for, max quantity)
SKUS = {
    'RAM_001': ('ram', ('lxd', 'hyperv'), 128),
    'vCPU_001': ('cpu', ('lxd',), 24),
    'vCPU_002': ('cpu', ('hyperv',), 24),
    'SSD_001': ('storage', ('lxd', 'hyperv'), 2048),
    'HDD_001': ('storage', ('lxd', 'hyperv'), 8192),
    'CEPH_001': ('ceph', ('cephfs',), 16384),
    'CEPH_002': ('ceph', ('cephfs',), 16384),
}
# Images (compute/images/): id, sku_name, os_variant, filename, hypervisor type
IMAGES = [
    (1, 'UBUNTU2404', 'Ubuntu 24.04 LTS (Noble Numbat)', 'noble-server-cloudimg-amd64.img', 'lxd'),
    (2, 'UBUNTU2204', 'Ubuntu 22.04 LTS (Jammy Jellyfish)', 'jammy-server-cloudimg-amd64.img', 'lxd'),
    (3, 'DEBIAN12', 'Debian 12 (Bookworm)', 'debian-12-genericcloud-amd64.qcow2', 'lxd'),
    (4, 'ROCKY9', 'Rocky Linux 9', 'Rocky-9-GenericCloud.latest.x86_64.qcow2', 'lxd'),
    (5, 'MSServer2022', 'Windows Server 2022', 'MSServer2022.vhdx', 'hyperv'),
    (6, 'MSServer2019', 'Windows Server 2019', 'MSServer2019.vhdx', 'hyperv'),
]
IMAGE_SKUS = {row[1]: row for row in IMAGES}

# The robot: state -> (next state, seconds at time-scale 1). 'GRACE' means grace_period hours.
ROBOT = {
    'instance': {
        'pending': ('building', 15), 'building': ('running', 'BUILD'),
        'stop': ('stopping', 15), 'stopping': ('stopped', 20),
        'restart': ('restarting', 15), 'restarting': ('running', 30),
        'update_running': ('updating_running', 15), 'updating_running': ('running', 30),
        'update_stopped': ('updating_stopped', 15), 'updating_stopped': ('stopped', 30),
        'delete': ('delete_prep', 15), 'delete_prep': ('delete_queue', 10),
        'delete_queue': ('deleting', 'GRACE'), 'deleting': ('deleted', 15),
    },
    'snapshot': {
        'pending': ('building', 15), 'building': ('running', 20),
        'update_running': ('updating_running', 15), 'updating_running': ('running', 30),
        'delete': ('deleting', 15), 'deleting': ('deleted', 15),
    },
    'backup': {
        'pending': ('building', 15), 'building': ('running', 60),
        'delete': ('deleting', 15), 'deleting': ('deleted', 15),
    },
    'volume': {
        'pending': ('building', 15), 'building': ('running', 20),
        'update_running': ('updating_running', 15), 'updating_running': ('running', 15),
        'delete': ('deleting', 15), 'deleting': ('deleted', 15),
    },
}
BUILD_SECONDS = {'container': 30, 'virtual-machine': 90, 'vm': 90, 'hyperv': 300}
# What a user may request (research section 3.2); setting the current state again is a no-op.
USER_MAP = {
    'instance': {'running': ('stop', 'delete', 'update_running'), 'stopped': ('restart', 'delete', 'update_stopped'),
                 'delete_queue': ('restart', 'stop')},
    'snapshot': {'running': ('update_running', 'delete')},
    'backup': {'running': ('delete',)},
    'volume': {'running': ('update_running', 'delete')},
}
REQUESTS = ('stop', 'restart', 'delete', 'update_running', 'update_stopped')
STABLE = ('running', 'stopped', 'unresourced', 'delete_queue', 'deleted')
# URL collection -> (kind, error code service name)
COLLECTIONS = {
    'compute/instances': ('instance', 'compute_instance'),
    'compute/snapshots': ('snapshot', 'compute_snapshot'),
    'compute/backups': ('backup', 'compute_backup'),
    'compute/images': ('image', 'compute_image'),
    'storage/volumes': ('volume', 'storage_volume'),
    'project': ('project', 'compute_project'),
}
PROJECT_FIELDS = {'project__address_id': 'int', 'project__name': 'str', 'project__region_id': 'int',
                  'project__reseller_id': 'int'}
FILTERS = {
    'instance': dict({'id': 'int', 'name': 'str', 'project_id': 'int', 'state': 'str', 'type': 'str',
                      'created': 'str', 'updated': 'str', 'grace_period': 'int'}, **PROJECT_FIELDS),
    'snapshot': dict({'id': 'int', 'name': 'str', 'project_id': 'int', 'instance_id': 'int', 'state': 'str',
                      'type': 'str', 'created': 'str', 'updated': 'str',
                      'resource_links__contra_resource_id': 'int'}, **PROJECT_FIELDS),
    'backup': dict({'id': 'int', 'name': 'str', 'project_id': 'int', 'instance_id': 'int', 'state': 'str',
                    'type': 'str', 'created': 'str', 'updated': 'str',
                    'resource_links__contra_resource_id': 'int'}, **PROJECT_FIELDS),
    'volume': dict({'id': 'int', 'name': 'str', 'project_id': 'int', 'instance_id': 'int', 'state': 'str',
                    'type': 'str', 'created': 'str', 'updated': 'str'}, **PROJECT_FIELDS),
    'image': {'id': 'int', 'sku_name': 'str', 'os_variant': 'str', 'filename': 'str', 'region_id': 'int', 'type': 'str'},
    'project': {'id': 'int', 'name': 'str', 'region_id': 'int', 'address_id': 'int', 'reseller_id': 'int',
                'manager_id': 'int', 'closed': 'bool', 'note': 'str', 'created': 'str', 'updated': 'str'},
}
NAMES = {'instance': 'Instance', 'snapshot': 'Snapshot', 'backup': 'Backup', 'volume': 'Volume', 'project': 'Project'}


def _vm_alias(metadata):
    """``metadata`` with ``instance_type`` ``virtual-machine`` written as ``vm``, the form reads give back."""
    if isinstance(metadata, dict) and metadata.get('instance_type') == 'virtual-machine':
        return dict(metadata, instance_type='vm')
    return metadata


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat()


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _unb64(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


class ApiError(Exception):
    """An HTTP error answer."""

    def __init__(self, status, body):
        super().__init__(status)
        self.status = status
        self.body = body


def field_error(code, field, detail):
    return ApiError(400, {'errors': {field: {'error_code': code, 'detail': detail}}})


def single_error(status, code, detail):
    return ApiError(status, {'error_code': code, 'detail': detail})


class Simulator:
    """The whole simulated CloudCIX region. All public methods take the lock."""

    def __init__(self, time_scale=1.0, faults=(), state_file=None, token_hours=2.0, clock=time.time, throttle_rate=THROTTLE_RATE):
        self.lock = threading.RLock()
        self.throttle_rate = throttle_rate  # requests per second per user; 0: no throttling
        self.time_scale = float(time_scale)
        self.faults = Faults(faults)
        self.state_file = state_file
        self.token_seconds = token_hours * 3600.0
        self.clock = clock
        self.data = None
        if state_file and os.path.exists(state_file):
            with open(state_file, encoding='utf-8') as handle:
                self.data = json.load(handle)
        if self.data is None:
            now = self.clock()
            self.data = {
                'secret': secrets.token_hex(32),
                'next_id': {'instance': 1, 'snapshot': 1, 'backup': 1, 'volume': 1, 'project': 2, 'ip': 1,
                            'public_ip': 10},
                'instance': {}, 'snapshot': {}, 'backup': {}, 'volume': {},
                'project': {'1': self._project_record(1, 'polyvirt-sim', 1, '', now)},
            }
        self._dirty = False
        self._requests_by_user = {}  # uid -> times of the requests in the last second
        self.save()

    # ------------------------------------------------------------------ persistence
    def save(self):
        if not self.state_file:
            return
        tmp = self.state_file + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.state_file)

    # ------------------------------------------------------------------ tokens
    def issue_token(self, lifetime):
        lifetime = self.faults.token_lifetime(lifetime)
        now = self.clock()
        header = _b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())
        payload = _b64(json.dumps({'uid': USER_ID, 'iat': int(now), 'exp': now + lifetime,
                                   'jti': secrets.token_hex(8)}).encode())
        signing = (header + '.' + payload).encode()
        signature = _b64(hmac.new(self.data['secret'].encode(), signing, hashlib.sha256).digest())
        return header + '.' + payload + '.' + signature

    def check_token(self, token):
        if not token:
            raise ApiError(401, {'detail': NO_TOKEN})
        try:
            header, payload, signature = token.split('.')
            expected = _b64(hmac.new(self.data['secret'].encode(), (header + '.' + payload).encode(),
                                     hashlib.sha256).digest())
            if not hmac.compare_digest(expected, signature):
                raise ValueError('signature')
            claims = json.loads(_unb64(payload))
        except (ValueError, TypeError) as exc:
            raise ApiError(401, {'detail': BAD_TOKEN}) from exc
        if claims.get('exp', 0) <= self.clock():
            raise ApiError(401, {'detail': EXPIRED_TOKEN})
        return claims

    def throttle(self, claims):
        """429 once a user has made more requests in the last second than the rate allows (the login is not counted)."""
        rate = self.faults.throttle_rate(self.throttle_rate or 10 ** 9)
        if not self.throttle_rate and rate >= 10 ** 9:
            return
        now = self.clock()
        window = self._requests_by_user.setdefault(claims.get('uid'), collections.deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= rate:
            raise ApiError(429, {'detail': THROTTLED})
        window.append(now)

    # ------------------------------------------------------------------ entry point
    def handle(self, method, path, query, headers, body, base_uri):
        """Serve one request. Returns (status, body)."""
        with self.lock:
            status = self.faults.http_error(method, path)
            if status is not None:
                return status, FAULT_HTML % {'status': status}
            try:
                result = self._dispatch(method, path, query, headers, body, base_uri)
            except ApiError as exc:
                result = (exc.status, exc.body)
            if self._dirty:
                self._dirty = False
                self.save()
            return result

    def _dispatch(self, method, path, query, headers, body, base_uri):
        parts = [p for p in path.split('/') if p]
        if parts[:2] == ['auth', 'login'] and len(parts) == 2:
            return self._login(method, headers, body)
        collection, pk = None, None
        for prefix in COLLECTIONS:
            plen = len(prefix.split('/'))
            if '/'.join(parts[:plen]) == prefix and len(parts) in (plen, plen + 1):
                collection = prefix
                pk = parts[plen] if len(parts) == plen + 1 else None
                break
        if collection is None:
            raise ApiError(404, {'detail': NOT_FOUND_PATH})
        self.throttle(self.check_token(headers.get('x-auth-token')))
        self.advance()
        kind, service = COLLECTIONS[collection]
        base = base_uri + collection + '/'
        if pk is None:
            if method in ('GET', 'HEAD'):
                return 200, self._list(kind, service, query, base)
            if method == 'POST' and kind != 'image':
                record = self._create(kind, service, self._body_dict(body))
                self._dirty = True
                return 201, {'content': self._render(kind, record, base)}
            raise ApiError(405, {'detail': 'Method "%s" not allowed.' % method})
        record = self._get(kind, service, pk, 'read' if method in ('GET', 'HEAD') else
                           {'DELETE': 'delete'}.get(method, 'update'))
        if method in ('GET', 'HEAD'):
            return 200, {'content': self._render(kind, record, base)}
        if kind == 'image':
            raise ApiError(405, {'detail': 'Method "%s" not allowed.' % method})
        if method in ('PUT', 'PATCH'):
            self._update(kind, service, record, self._body_dict(body), partial=method == 'PATCH')
            self._dirty = True
            return 200, {'content': self._render(kind, record, base)}
        if method == 'DELETE' and kind != 'project':
            self._delete(kind, service, record)
            self._dirty = True
            return 204, None
        raise ApiError(405, {'detail': 'Method "%s" not allowed.' % method})

    @staticmethod
    def _body_dict(body):
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ApiError(400, {'detail': 'Invalid data. Expected a dictionary, but got %s.' % type(body).__name__})
        return body

    # ------------------------------------------------------------------ membership
    def _login(self, method, headers, body):
        if method == 'POST':
            data = body if isinstance(body, dict) else {}
            if 'email' not in data or 'password' not in data:
                raise single_error(400, 'membership_token_create_001',
                                   'Both the "email" and "password" keys are required in the sent data.')
            if str(data['email']).lower() != EMAIL or data['password'] != PASSWORD:
                raise single_error(400, 'membership_token_create_002', 'The sent email and password combination is '
                                   'invalid. Please check both and try again.')
            if 'api_key' not in data:
                return 200, {}
            if data['api_key'] != API_KEY:
                raise single_error(400, 'membership_token_create_003', 'The sent "api_key" is invalid. The '
                                   'authenticating User does not belong to a Member with that "api_key"')
            return 201, {'token': self.issue_token(self.token_seconds)}
        if method == 'PUT':
            self.check_token(headers.get('x-auth-token'))
            return 200, {'token': self.issue_token(3600.0)}
        raise ApiError(405, {'detail': 'Method "%s" not allowed.' % method})

    # ------------------------------------------------------------------ the robot
    def _duration(self, record, value):
        if value == 'BUILD':
            if record.get('type') == 'hyperv':
                value = BUILD_SECONDS['hyperv']
            else:
                value = BUILD_SECONDS.get(record.get('metadata', {}).get('instance_type'), 30)
        elif value == 'GRACE':
            value = float(record.get('grace_period') or 0) * 3600.0
        return value * self.time_scale

    def advance(self):
        """Move every resource along the robot's state machine up to now."""
        now = self.clock()
        for kind in ('instance', 'snapshot', 'backup', 'volume'):
            for record in self.data[kind].values():
                self._advance_one(kind, record, now)

    def _advance_one(self, kind, record, now):
        table = ROBOT[kind]
        while record['state'] in table:
            if self.faults.robot_stalled(record['state'], now):
                record['since'] = now
                return
            nxt, duration = table[record['state']]
            due = record['since'] + self._duration(record, duration)
            if due > now:
                return
            self._enter(kind, record, nxt, due)

    def _enter(self, kind, record, state, when):
        if state in ('running', 'stopped') and record.get('_fail'):
            state = 'unresourced'
        if state in ('running', 'stopped') and record.get('pending'):
            pending = record.pop('pending')
            if pending.get('_fail'):
                state = 'unresourced'
            else:
                for key, value in pending.items():
                    record[key] = value
        record['state'] = state
        record['since'] = when
        record['updated'] = iso(when)
        self._dirty = True
        if kind == 'instance' and state == 'running':
            for iface in record.get('interfaces', []):
                for addr in iface['ipv4_addresses']:
                    if addr['nat'] and not addr['public_ip']:
                        addr['public_ip'] = self._public_ip()
        if kind == 'instance' and state == 'deleted':
            for iface in record.get('interfaces', []):
                for addr in iface['ipv4_addresses']:
                    addr['public_ip'] = None
            for snap in self.data['snapshot'].values():
                if snap['instance_id'] == record['id'] and snap['state'] != 'deleted':
                    snap['state'], snap['since'], snap['updated'] = 'deleted', when, iso(when)
        if kind == 'snapshot' and state == 'running' and record.pop('_revert', False):
            inst = self.data['instance'].get(str(record['instance_id']))
            if inst is not None:
                inst['specs'] = copy.deepcopy(record['specs'])
                inst['updated'] = iso(when)
                for snap in self.data['snapshot'].values():
                    if snap['instance_id'] == inst['id'] and snap['type'] == 'hyperv':
                        snap['metadata']['active'] = snap['id'] == record['id']

    def _public_ip(self):
        n = self.data['next_id']['public_ip']
        self.data['next_id']['public_ip'] = n + 1
        net = ipaddress.ip_network('203.0.113.0/24' if n < 250 else '198.51.100.0/24')
        return str(net.network_address + (n % 250) + 2)

    def _set_state(self, kind, record, state):
        record['state'] = state
        record['since'] = self.clock()
        record['updated'] = iso(record['since'])

    # ------------------------------------------------------------------ helpers
    def _new_id(self, kind):
        n = self.data['next_id'][kind]
        self.data['next_id'][kind] = n + 1
        return n

    def _get(self, kind, service, pk, method):
        if kind == 'image':
            for row in IMAGES:
                if str(row[0]) == pk:
                    return row
            raise single_error(404, 'compute_image_read_001', 'The "pk" path parameter is invalid. "pk" does not '
                               'correspond with a valid Image record.')
        record = self.data[kind].get(pk)
        if record is None:
            raise single_error(404, '%s_%s_001' % (service, method), 'The "pk" path parameter is invalid. "pk" '
                               'does not correspond with a valid %s record.' % NAMES[kind])
        return record

    def _project(self, service, method, data, required=True):
        if 'project_id' not in data or data['project_id'] is None:
            if not required:
                return None
            raise field_error('%s_%s_101' % (service, method), 'project_id',
                              'The "project_id" parameter is invalid. "project_id" is required.')
        try:
            pid = int(data['project_id'])
            if isinstance(data['project_id'], bool):
                raise ValueError(pid)
        except (TypeError, ValueError) as exc:
            raise field_error('%s_%s_102' % (service, method), 'project_id',
                              'The "project_id" parameter is invalid. "project_id" must be a valid integer.') from exc
        project = self.data['project'].get(str(pid))
        if project is None:
            raise field_error('%s_%s_103' % (service, method), 'project_id', 'The "project_id" parameter is invalid. '
                              '"project_id" does not correspond with a valid Project record.')
        return project

    @staticmethod
    def _name(service, method, data, default, field='name'):
        name = data.get(field, default)
        if not isinstance(name, str) or not name.strip():
            raise field_error('%s_%s_126' % (service, method), field, 'The "name" parameter is invalid. "name" is '
                              'required and must be a non-empty string.')
        if len(name) > 128:
            raise field_error('%s_%s_127' % (service, method), field, 'The "name" parameter is invalid. "name" cannot '
                              'be longer than 128 characters.')
        return name

    @staticmethod
    def _specs(service, method, specs):
        if not isinstance(specs, list) or not specs:
            raise field_error('%s_%s_112' % (service, method), 'specs', 'The "specs" parameter is invalid. "specs" is '
                              'required and must be a non-empty list of objects with "sku_name" and "quantity".')
        out = []
        for item in specs:
            if not isinstance(item, dict) or not isinstance(item.get('sku_name'), str):
                raise field_error('%s_%s_113' % (service, method), 'specs', 'The "specs" parameter is invalid. Each '
                                  'entry must be an object with a string "sku_name".')
            quantity = item.get('quantity', 1)
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                raise field_error('%s_%s_114' % (service, method), 'specs', 'The "specs" parameter is invalid. '
                                  '"quantity" must be a positive integer (sku %s).' % item['sku_name'])
            out.append({'quantity': quantity, 'sku_name': item['sku_name']})
        names = [s['sku_name'] for s in out]
        if len(set(names)) != len(names):
            raise field_error('%s_%s_115' % (service, method), 'specs', 'The "specs" parameter is invalid. Each '
                              '"sku_name" may appear only once.')
        return out

    @staticmethod
    def _family(sku):
        if sku in IMAGE_SKUS:
            return 'image'
        if sku in SKUS:
            return SKUS[sku][0]
        return 'unknown:' + sku

    def _impossible_specs(self, itype, specs):
        """True when the robot cannot build these specs (unknown SKU, wrong hypervisor, too big)."""
        families = set()
        for spec in specs:
            sku, qty = spec['sku_name'], spec['quantity']
            if sku in IMAGE_SKUS:
                if IMAGE_SKUS[sku][4] != itype:
                    return True
                families.add('image')
            elif sku in SKUS:
                family, types, maximum = SKUS[sku]
                if itype not in types or qty > maximum:
                    return True
                families.add(family)
            else:
                return True
        return not {'image', 'ram', 'cpu', 'storage'} <= families

    def _check_transition(self, kind, service, record, state):
        """Validate a user state request. Returns True if the state changes."""
        if state == record['state']:
            return False
        if state not in REQUESTS:
            raise field_error('%s_update_106' % service, 'state', 'The "state" parameter is invalid. The requested '
                              'state change is invalid. Please check the API docs to see the full details of what '
                              'state changes are allowed.')
        if state not in USER_MAP[kind].get(record['state'], ()):
            raise field_error('%s_update_107' % service, 'state', 'The "state" parameter is invalid. It is not valid '
                              'to change from the current state (%s) to the requested state (%s). Please check the '
                              'API docs to see the full details of what state changes are allowed.'
                              % (record['state'], state))
        if kind == 'instance':
            for snap in self.data['snapshot'].values():
                if snap['instance_id'] == record['id'] and snap['state'] not in STABLE:
                    raise field_error('%s_update_108' % service, 'state', 'The "state" parameter is invalid. All '
                                      'snapshots must be in a stable state before state of the instance can be '
                                      'changed. A stable state for a Snapshot is running.')
        return True

    # ------------------------------------------------------------------ list and render
    def _flat(self, kind, record):
        if kind == 'image':
            return {'id': record[0], 'sku_name': record[1], 'os_variant': record[2], 'filename': record[3],
                    'region_id': 1, 'type': record[4]}
        if kind == 'project':
            return {k: record[k] for k in FILTERS['project']}
        row = {k: record.get(k) for k in FILTERS[kind] if not k.startswith('project__')}
        if 'resource_links__contra_resource_id' in row:  # the OpenAPI name of the instance filter
            row['resource_links__contra_resource_id'] = record['instance_id']
        project = self.data['project'].get(str(record['project_id']), {})
        for key in PROJECT_FIELDS:
            row[key] = project.get(key[len('project__'):])
        return row

    def _list(self, kind, service, query, base):
        if kind == 'image':
            records = IMAGES
        else:
            records = list(self.data[kind].values())
        rows = [(self._flat(kind, r), r) for r in records]
        # images: sku_name, as the Go SDK documents (computeimage.go); the rest: name
        default_order = 'sku_name' if kind == 'image' else 'name'
        try:
            selected, metadata = listing.apply(rows, query, FILTERS[kind], default_order)
        except listing.ListError as exc:
            raise single_error(400, '%s_list_001' % service, 'One or more of the sent search fields contains '
                               'invalid values. Please check the sent parameters and ensure they match the required '
                               'patterns, i.e. sending non-integer values for integer fields. (%s)' % exc) from exc
        # count/page/total are also in the published OpenAPI types; _metadata is what the SDK reads
        return {'content': [self._render(kind, r, base) for r in selected], '_metadata': metadata,
                'count': metadata['limit'], 'page': metadata['page'], 'total': metadata['total_records']}

    def _render(self, kind, record, base):
        if kind == 'image':
            return {'id': record[0], 'filename': record[3], 'os_variant': record[2], 'sku_name': record[1],
                    'region_id': 1, 'type': record[4], 'uri': '%s%d/' % (base, record[0])}
        out = {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith('_') and k not in ('since', 'pending')}
        out['uri'] = '%s%d/' % (base, record['id'])
        if kind == 'instance' and out.get('metadata', {}).get('instance_type') == 'virtual-machine':
            out['metadata']['instance_type'] = 'vm'  # read back as container or vm (OpenAPI types, Go SDK)
        if kind == 'volume':
            # The read shape Terraform relies on: the instances a volume serves, and the one a Hyper-V volume belongs to.
            ids = (record.get('metadata') or {}).get('attached_instance_ids') or ([record['instance_id']] if record.get('instance_id') else [])
            out['contra_instances'] = [self._instance_ref(iid) for iid in ids]
            out['instance'] = self._instance_ref(record['instance_id']) if record.get('instance_id') else None
        if kind in ('snapshot', 'backup'):
            inst = self.data['instance'].get(str(record['instance_id']))
            out['instance'] = {'id': record['instance_id'], 'name': inst['name'] if inst else None,
                               'state': inst['state'] if inst else None}
            del out['instance_id']
        return out

    def _instance_ref(self, iid):
        inst = self.data['instance'].get(str(iid))
        return {'id': iid, 'name': inst['name'] if inst else None, 'state': inst['state'] if inst else None}

    # ------------------------------------------------------------------ create
    def _create(self, kind, service, data):
        return getattr(self, '_create_' + kind)(service, data)

    def _base_record(self, kind, project_id, name):
        now = self.clock()
        return {'id': self._new_id(kind), 'name': name, 'project_id': project_id, 'state': 'pending',
                'created': iso(now), 'updated': iso(now), 'since': now}

    @staticmethod
    def _project_record(pid, name, region_id, note, now):
        return {'id': pid, 'address_id': ADDRESS_ID, 'closed': False, 'created': iso(now), 'manager_id': USER_ID,
                'name': name, 'note': note, 'region_id': region_id, 'reseller_id': ADDRESS_ID, 'updated': iso(now)}

    def _create_project(self, service, data):
        name = self._name(service, 'create', data, None)
        region = data.get('region_id')
        if isinstance(region, bool) or not isinstance(region, int) or region not in REGIONS:
            raise field_error('%s_create_102' % service, 'region_id', 'The "region_id" parameter is invalid. '
                              '"region_id" is required and must be the id of a region you can use (%s).'
                              % ', '.join(str(r) for r in REGIONS))
        for project in self.data['project'].values():
            if project['name'] == name and project['region_id'] == region:
                raise field_error('%s_create_103' % service, 'name', 'The "name" parameter is invalid. "name" is '
                                  'already in use for another Project in this region.')
        note = data.get('note', '')
        if not isinstance(note, str):
            raise field_error('%s_create_104' % service, 'note', 'The "note" parameter is invalid. "note" must be a '
                              'string.')
        pid = self._new_id('project')
        record = self._project_record(pid, name, region, note, self.clock())
        self.data['project'][str(pid)] = record
        return record

    def _validate_interfaces(self, service, method, interfaces, project_id, own_id=None):
        if interfaces is None:
            return []
        if not isinstance(interfaces, list):
            raise field_error('%s_%s_132' % (service, method), 'interfaces', 'The "interfaces" parameter is invalid. '
                              '"interfaces" must be a list of objects.')
        used = set()
        for inst in self.data['instance'].values():
            if inst['project_id'] == project_id and inst['state'] != 'deleted' and inst['id'] != own_id:
                for iface in inst['interfaces']:
                    used.update(a['address'] for a in iface['ipv4_addresses'] + iface['ipv6_addresses'])
        out, gateways, seen = [], 0, set()
        for iface in interfaces:
            if not isinstance(iface, dict):
                raise field_error('%s_%s_132' % (service, method), 'interfaces', 'The "interfaces" parameter is '
                                  'invalid. Each interface must be an object.')
            gateways += bool(iface.get('gateway'))
            v4, v6 = [], []
            for addr in iface.get('ipv4_addresses') or []:
                text = addr.get('address') if isinstance(addr, dict) else None
                try:
                    parsed = ipaddress.IPv4Address(text)
                except (ValueError, TypeError) as exc:
                    raise field_error('%s_%s_138' % (service, method), 'interfaces', 'The "ipv4_addresses" parameter '
                                      'is invalid. %r is not a valid IPv4 address.' % (text,)) from exc
                if not parsed.is_private:
                    raise field_error('%s_%s_139' % (service, method), 'interfaces', 'The "ipv4_addresses" parameter '
                                      'is invalid. All IPs in the list must be private IP addresses.')
                if text in used or text in seen:
                    raise field_error('%s_%s_141' % (service, method), 'interfaces', 'The "ipv4_addresses" parameter '
                                      'is invalid. An IP Address %s already exists in this project.' % text)
                seen.add(text)
                v4.append({'id': self._new_id('ip'), 'address': text, 'nat': bool(addr.get('nat', False)),
                           'public_ip': None})
            for addr in iface.get('ipv6_addresses') or []:
                text = addr.get('address') if isinstance(addr, dict) else None
                try:
                    ipaddress.IPv6Address(text)
                except (ValueError, TypeError) as exc:
                    raise field_error('%s_%s_138' % (service, method), 'interfaces', 'The "ipv6_addresses" parameter '
                                      'is invalid. %r is not a valid IPv6 address.' % (text,)) from exc
                if text in used or text in seen:
                    raise field_error('%s_%s_141' % (service, method), 'interfaces', 'The "ipv6_addresses" parameter '
                                      'is invalid. An IP Address %s already exists in this project.' % text)
                seen.add(text)
                v6.append({'id': self._new_id('ip'), 'address': text})
            out.append({'gateway': bool(iface.get('gateway')), 'vlan': 1000 + project_id,
                        'ipv4_addresses': v4, 'ipv6_addresses': v6})
        if gateways > 1:
            raise field_error('%s_%s_133' % (service, method), 'interfaces', 'The "interfaces" parameter is invalid. '
                              'Only one interface can be the gateway.')
        return out

    @staticmethod
    def _iface_shape(interfaces):
        """Interfaces reduced to what a user sends, to tell whether an update changes them."""
        if not isinstance(interfaces, list):
            return interfaces
        shape = []
        for iface in interfaces:
            if not isinstance(iface, dict):
                return interfaces
            v4 = [(a.get('address'), bool(a.get('nat', False))) if isinstance(a, dict) else a
                  for a in iface.get('ipv4_addresses') or []]
            v6 = [a.get('address') if isinstance(a, dict) else a for a in iface.get('ipv6_addresses') or []]
            shape.append((bool(iface.get('gateway')), v4, v6))
        return shape

    def _validate_metadata(self, service, method, itype, metadata):
        if not isinstance(metadata, dict):
            raise field_error('%s_%s_124' % (service, method), 'metadata', 'The "metadata" parameter is invalid. '
                              '"metadata" is required and must be an object.')
        metadata = copy.deepcopy(metadata)
        if itype == 'lxd':
            metadata.setdefault('instance_type', 'container')
            if metadata['instance_type'] not in ('container', 'virtual-machine', 'vm'):
                raise field_error('%s_%s_125' % (service, method), 'metadata', 'The "instance_type" parameter is '
                                  'invalid. It must be "container" or "virtual-machine".')
            userdata = metadata.get('userdata')
            if userdata is not None and (not isinstance(userdata, str) or len(userdata.encode()) > 16384):
                raise field_error('%s_%s_146' % (service, method), 'metadata', 'The `userdata` parameter is invalid. '
                                  '`userdata` must be a string and must not exceed 16 KB in size.')
        else:
            email = metadata.get('email')
            if not isinstance(email, str) or '@' not in email:
                raise field_error('%s_%s_148' % (service, method), 'metadata', 'The "email" parameter is invalid. '
                                  'A valid "email" is required for Hyper-V instances (Windows licence).')
        return metadata

    def _create_instance(self, service, data):
        # The framework validates every field and reports one error per invalid field, not only the first.
        errors = {}

        def check(call, *args):
            try:
                return call(*args)
            except ApiError as exc:
                if exc.status != 400 or 'errors' not in exc.body:
                    raise
                for field, error in exc.body['errors'].items():
                    errors.setdefault(field, error)
                return None

        def fail(code, field, detail):
            raise field_error('%s_create_%s' % (service, code), field, detail)

        project = check(self._project, service, 'create', data)
        itype = data.get('type', 'lxd')
        if itype not in ('lxd', 'hyperv'):
            check(fail, '105', 'type', 'The "type" parameter is invalid. "type" must be one of "lxd" or "hyperv".')
        metadata = specs = None
        if 'metadata' not in data:
            check(fail, '124', 'metadata', 'The "metadata" parameter is invalid. "metadata" is required.')
        elif itype in ('lxd', 'hyperv'):
            metadata = check(self._validate_metadata, service, 'create', itype, data['metadata'])
        if 'specs' not in data:
            check(fail, '112', 'specs', 'The "specs" parameter is invalid. "specs" is required.')
        else:
            specs = check(self._specs, service, 'create', data['specs'])
        name = check(self._name, service, 'create', data, 'LXD' if itype == 'lxd' else 'HyperV')
        for inst in self.data['instance'].values():
            if project and name and inst['project_id'] == project['id'] and inst['name'] == name and inst['state'] != 'deleted':
                check(fail, '128', 'name', 'The "name" parameter is invalid. "name" is already in use for another instance '
                      'within this Project.')
                break
        grace = data.get('grace_period', 168)
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
            check(fail, '150', 'grace_period', 'The "grace_period" parameter is invalid. "grace_period" must be a '
                  'non-negative integer number of hours.')
        if itype == 'hyperv' and specs:
            storage = sum(s['quantity'] for s in specs if self._family(s['sku_name']) == 'storage')
            if storage and storage < 32:
                check(fail, '116', 'specs', 'The "specs" parameter is invalid. For Windows instances, the minimum size '
                      'of the primary drive is 32GB.')
        interfaces = check(self._validate_interfaces, service, 'create', data.get('interfaces'), project['id']) if project else None
        if errors:
            raise ApiError(400, {'errors': errors})
        record = self._base_record('instance', project['id'], name)
        record.update({'type': itype, 'grace_period': grace, 'metadata': metadata, 'specs': specs,
                       'interfaces': interfaces})
        if self._impossible_specs(itype, specs) or self.faults.force_unresourced(name):
            record['_fail'] = True
        self.data['instance'][str(record['id'])] = record
        return record

    def _instance_for(self, service, data, project):
        iid = data.get('instance_id')
        if isinstance(iid, bool) or not isinstance(iid, int):
            raise field_error('%s_create_104' % service, 'instance_id', 'The "instance_id" parameter is invalid. '
                              '"instance_id" is required and must be an integer.')
        inst = self.data['instance'].get(str(iid))
        if inst is None or inst['project_id'] != project['id'] or inst['state'] == 'deleted':
            raise field_error('%s_create_105' % service, 'instance_id', 'The "instance_id" parameter is invalid. '
                              '"instance_id" does not correspond with a valid instance in the Project.')
        return inst

    def _create_snapshot(self, service, data):
        return self._create_copy('snapshot', service, data)

    def _create_backup(self, service, data):
        return self._create_copy('backup', service, data)

    def _create_copy(self, kind, service, data):
        project = self._project(service, 'create', data)
        inst = self._instance_for(service, data, project)
        stype = data.get('type', inst['type'])
        if stype != inst['type']:
            raise field_error('%s_create_106' % service, 'type', 'The "type" parameter is invalid. "type" must match '
                              'the type of the instance (%s).' % inst['type'])
        if inst['state'] != 'running':
            raise field_error('%s_create_107' % service, 'instance_id', 'The "instance_id" parameter is invalid. The '
                              'instance must be running to take a %s (it is %s).' % (kind, inst['state']))
        # Terraform's defaults: "Backup LXD" / "Backup HyperV"; snapshots keep the IaaS v3 default
        default = ('Backup %s' % ('HyperV' if stype == 'hyperv' else 'LXD')) if kind == 'backup' else 'Compute %s' % NAMES[kind]
        name = self._name(service, 'create', data, default)
        for other in self.data[kind].values():
            if other['instance_id'] == inst['id'] and other['name'] == name and other['state'] != 'deleted':
                raise field_error('%s_create_108' % service, 'name', 'The "name" parameter is invalid. "name" is '
                                  'already in use for another %s of this instance.' % kind)
        record = self._base_record(kind, project['id'], name)
        record.update({'type': stype, 'instance_id': inst['id'], 'specs': copy.deepcopy(inst['specs'])})
        if kind == 'snapshot':
            record['metadata'] = {'active': True, 'remove_subtree': False} if stype == 'hyperv' else {}
            if stype == 'hyperv':
                for snap in self.data['snapshot'].values():
                    if snap['instance_id'] == inst['id'] and snap['type'] == 'hyperv':
                        snap['metadata']['active'] = False
        self.data[kind][str(record['id'])] = record
        return record

    def _create_volume(self, service, data):
        project = self._project(service, 'create', data)
        vtype = data.get('type')
        if vtype not in ('cephfs', 'hyperv'):
            raise field_error('%s_create_105' % service, 'type', 'The "type" parameter is invalid. "type" must be one '
                              'of "cephfs" or "hyperv".')
        specs = self._volume_specs(service, 'create', vtype, data.get('specs'))
        name = self._name(service, 'create', data, 'Ceph' if vtype == 'cephfs' else 'Storage HyperV')  # Terraform's defaults
        record = self._base_record('volume', project['id'], name)
        record.update({'type': vtype, 'specs': specs, 'instance_id': None,
                       'metadata': {'mount_path': None, 'attached_instance_ids': []}})
        if vtype == 'hyperv':
            inst = self._instance_for(service, data, project)
            if inst['type'] != 'hyperv':
                raise field_error('%s_create_106' % service, 'instance_id', 'The "instance_id" parameter is invalid. '
                                  'A hyperv volume needs a hyperv instance.')
            record['instance_id'] = inst['id']
            record['metadata'] = {}
        elif data.get('metadata'):
            record['metadata'] = self._mounts(service, 'create', record, data['metadata'])
        self.data['volume'][str(record['id'])] = record
        return record

    def _volume_specs(self, service, method, vtype, specs):
        specs = self._specs(service, method, specs)
        family = 'ceph' if vtype == 'cephfs' else 'storage'
        if len(specs) != 1 or self._family(specs[0]['sku_name']) != family:
            raise field_error('%s_%s_116' % (service, method), 'specs', 'The "specs" parameter is invalid. A %s '
                              'volume takes exactly one %s SKU.' % (vtype, 'CEPH_*' if family == 'ceph' else
                                                                    'SSD_001/HDD_001'))
        return specs

    def _mounts(self, service, method, record, metadata):
        if not isinstance(metadata, dict):
            raise field_error('%s_%s_117' % (service, method), 'metadata', 'The "metadata" parameter is invalid.')
        attached = list(record['metadata'].get('attached_instance_ids') or [])
        for iid in metadata.get('attach_instance_ids') or []:
            inst = self.data['instance'].get(str(iid))
            if inst is None or inst['type'] != 'lxd' or inst['project_id'] != record['project_id']:
                raise field_error('%s_%s_118' % (service, method), 'metadata', 'The "attach_instance_ids" parameter '
                                  'is invalid. %r is not an LXD instance in the Project.' % (iid,))
            if iid not in attached:
                attached.append(iid)
        for iid in metadata.get('detach_instance_ids') or []:
            if iid in attached:
                attached.remove(iid)
        return {'mount_path': metadata.get('mount_path', record['metadata'].get('mount_path')),
                'attached_instance_ids': attached}

    # ------------------------------------------------------------------ update and delete
    def _update(self, kind, service, record, data, partial):
        if kind == 'project':
            self._update_project(service, record, data)
            return
        if not partial and kind == 'snapshot' and 'state' not in data:
            raise field_error('%s_update_101' % service, 'state', 'The "state" parameter is required.')
        if not partial and kind == 'instance':
            for field in ('metadata', 'specs'):
                if field not in data:
                    raise field_error('%s_update_%s' % (service, '124' if field == 'metadata' else '112'), field,
                                      'The "%s" parameter is required for a full update (PUT).' % field)
        state = data.get('state', record['state'])
        changes = self._check_transition(kind, service, record, state) if 'state' in data else False
        updates, pending = {}, {}
        if 'name' in data:
            updates['name'] = self._name(service, 'update', data, None)
            if kind == 'instance':
                for inst in self.data['instance'].values():
                    if (inst['project_id'] == record['project_id'] and inst['name'] == updates['name']
                            and inst['id'] != record['id'] and inst['state'] != 'deleted'):
                        raise field_error('%s_update_103' % service, 'name', 'The "name" parameter is invalid. '
                                          '"name" is already in use for another instance within this Project.')
        if kind == 'instance':
            self._update_instance(service, record, data, state, changes, updates, pending)
        elif kind == 'volume':
            self._update_volume(service, record, data, state, changes, pending)
        elif kind == 'snapshot':
            if changes and state == 'update_running':
                inst = self.data['instance'].get(str(record['instance_id']))
                if inst is None or inst['state'] != 'running':
                    raise field_error('%s_update_109' % service, 'state', 'The "state" parameter is invalid. The '
                                      'instance must be running to revert it to a snapshot.')
                record['_revert'] = True
            if isinstance(data.get('metadata'), dict) and 'remove_subtree' in data['metadata']:
                record.setdefault('metadata', {})['remove_subtree'] = bool(data['metadata']['remove_subtree'])
        record.update(updates)
        if pending:
            record['pending'] = pending
        if changes:
            self._set_state(kind, record, state)
        else:
            record['updated'] = iso(self.clock())

    def _update_project(self, service, record, data):
        if 'region_id' in data and data['region_id'] != record['region_id']:
            raise field_error('%s_update_102' % service, 'region_id', 'The "region_id" parameter is invalid. A '
                              'Project cannot be moved to another region.')
        if 'name' in data:
            record['name'] = self._name(service, 'update', data, None)
        if 'note' in data:
            if not isinstance(data['note'], str):
                raise field_error('%s_update_104' % service, 'note', 'The "note" parameter is invalid.')
            record['note'] = data['note']
        record['updated'] = iso(self.clock())

    def _update_instance(self, service, record, data, state, changes, updates, pending):
        if 'grace_period' in data:
            grace = data['grace_period']
            if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
                raise field_error('%s_update_150' % service, 'grace_period', 'The "grace_period" parameter is '
                                  'invalid. "grace_period" must be a non-negative integer number of hours.')
            updates['grace_period'] = grace
        spec_change = 'specs' in data and data['specs'] != record['specs']
        meta_change = 'metadata' in data and _vm_alias(data['metadata']) != _vm_alias(record['metadata'])
        iface_change = 'interfaces' in data and self._iface_shape(data['interfaces']) != self._iface_shape(
            record['interfaces'])
        if not (spec_change or meta_change or iface_change):
            return
        if not (changes and state in ('update_running', 'update_stopped')):
            field = 'specs' if spec_change else 'metadata' if meta_change else 'interfaces'
            raise field_error('%s_update_117' % service, field, 'Could not update "%s". You must set "state" to '
                              'update_running (running instance) or update_stopped (stopped instance) in the same '
                              'request.' % field)
        if iface_change:
            interfaces = self._validate_interfaces(service, 'update', data['interfaces'], record['project_id'],
                                                   own_id=record['id'])
            old = {a['address']: a for i in record['interfaces'] for a in i['ipv4_addresses'] + i['ipv6_addresses']}
            for iface in interfaces:
                for addr in iface['ipv4_addresses'] + iface['ipv6_addresses']:
                    if addr['address'] in old:
                        addr['id'] = old[addr['address']]['id']
                        if addr.get('nat') and old[addr['address']].get('nat'):
                            addr['public_ip'] = old[addr['address']]['public_ip']
            pending['interfaces'] = interfaces
        if spec_change:
            new = self._specs(service, 'update', data['specs'])
            merged = {self._family(s['sku_name']): s for s in record['specs']}
            for spec in new:
                family = self._family(spec['sku_name'])
                old = merged.get(family)
                if family == 'storage' and old and spec['quantity'] < old['quantity']:
                    raise field_error('%s_update_124' % service, 'specs', 'The "specs" parameter is invalid. Storage '
                                      'can only be increased (%s: %d -> %d).' % (spec['sku_name'], old['quantity'],
                                                                                 spec['quantity']))
                if family == 'image' and old and old['sku_name'] != spec['sku_name']:
                    raise field_error('%s_update_125' % service, 'specs', 'The "specs" parameter is invalid. The image '
                                      'of an instance cannot be changed.')
                merged[family] = spec
            order = [self._family(s['sku_name']) for s in record['specs']]
            specs = [merged[f] for f in order] + [s for f, s in merged.items() if f not in order]
            pending['specs'] = specs
            if self._impossible_specs(record['type'], specs):
                pending['_fail'] = True
        if meta_change:
            pending['metadata'] = self._validate_metadata(service, 'update', record['type'], data['metadata'])

    def _update_volume(self, service, record, data, state, changes, pending):
        spec_change = 'specs' in data and data['specs'] != record['specs']
        meta_change = 'metadata' in data and record['type'] == 'cephfs'
        if not (spec_change or meta_change):
            return
        if not (changes and state == 'update_running'):
            raise field_error('%s_update_117' % service, 'specs' if spec_change else 'metadata', 'Could not update '
                              '"specs"/"metadata". You must set "state" to update_running in the same request.')
        if spec_change:
            specs = self._volume_specs(service, 'update', record['type'], data['specs'])
            if specs[0]['quantity'] < record['specs'][0]['quantity']:
                raise field_error('%s_update_124' % service, 'specs', 'The "specs" parameter is invalid. A volume can '
                                  'only be increased.')
            pending['specs'] = specs
        if meta_change:
            pending['metadata'] = self._mounts(service, 'update', record, data['metadata'])

    def _delete(self, kind, service, record):
        if kind == 'instance':
            if record['state'] == 'delete_queue':
                record['grace_period'] = 0
                record['updated'] = iso(self.clock())
                return
            if record['state'] in ('delete', 'delete_prep', 'deleting', 'deleted'):
                record['grace_period'] = 0
                return
            self._check_transition(kind, service, record, 'delete')
            record['grace_period'] = 0
            self._set_state(kind, record, 'delete')
            return
        if record['state'] in ('delete', 'deleting', 'deleted'):
            return
        self._check_transition(kind, service, record, 'delete')
        self._set_state(kind, record, 'delete')

    # ------------------------------------------------------------------ control
    def control(self, method, path, body):
        """The /_sim/ endpoints (not part of CloudCIX): state dump and runtime faults."""
        with self.lock:
            if path == '_sim/state' and method == 'GET':
                self.advance()
                dump = copy.deepcopy(self.data)
                dump.pop('secret', None)
                return 200, {'time_scale': self.time_scale, 'faults': self.faults.describe(), 'data': dump}
            if path == '_sim/faults' and method == 'GET':
                return 200, {'faults': self.faults.describe()}
            if path == '_sim/faults' and method == 'POST':
                spec = body.get('spec') if isinstance(body, dict) else None
                try:
                    fault = self.faults.add(str(spec))
                except ValueError as exc:
                    return 400, {'detail': str(exc)}
                return 201, {'fault': fault}
            if path == '_sim/faults' and method == 'DELETE':
                self.advance()
                self.faults.clear()
                return 204, None
            if path == '_sim/time_scale' and method in ('PUT', 'POST'):
                self.advance()
                try:
                    self.time_scale = float(body['time_scale'])
                except (KeyError, TypeError, ValueError):
                    return 400, {'detail': 'send {"time_scale": F}'}
                return 200, {'time_scale': self.time_scale}
            return 404, {'detail': NOT_FOUND_PATH}
