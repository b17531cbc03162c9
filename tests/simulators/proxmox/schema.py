# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Routing and parameter validation driven by the vendored PVE API schema (data/pve-apidata.json.gz)."""
from __future__ import annotations

import gzip
import json
import os
import re

from .pvefmt import check_object

SCHEMA_FILE = os.path.join(os.path.dirname(__file__), 'data', 'pve-apidata.json.gz')

# How many instances of an indexed option PVE accepts (qemu-server / pve-container MAX_* constants).
INDEX_LIMITS = {
    'net': 32, 'ipconfig': 32, 'ide': 4, 'sata': 6, 'scsi': 31, 'virtio': 16, 'unused': 256, 'hostpci': 16,
    'usb': 14, 'serial': 4, 'parallel': 3, 'numa': 8, 'virtiofs': 10, 'mp': 256, 'dev': 256, 'link': 8,
}
# Path variables registered with `fragmentDelimiter => ''` in PVE: they take the rest of the URI (volume IDs contain '/').
REST_VARS = {'volume'}


class Schema:
    """The PVE API tree: path templates with per-method parameter schemas."""

    def __init__(self, path=SCHEMA_FILE):
        with gzip.open(path, 'rt', encoding='utf-8') as fh:
            tree = json.load(fh)
        self.routes = {}
        self._root = {}
        stack = list(tree)
        while stack:
            node = stack.pop()
            stack.extend(node.get('children') or [])
            self.routes[node['path']] = node.get('info') or {}
            cur = self._root
            for seg in node['path'].strip('/').split('/'):
                key = '{}' if seg.startswith('{') else seg
                cur = cur.setdefault(key, {})
                if key == '{}':
                    cur['__var__'] = seg[1:-1]
            cur['__path__'] = node['path']

    def match(self, path):
        """Return (template, {var: value}) for a concrete path, or (None, None)."""
        segs = path.strip('/').split('/')
        if segs == ['']:
            return None, None
        return self._match(self._root, segs, {})

    def _match(self, cur, segs, found):
        if not segs:
            if '__path__' in cur:
                return cur['__path__'], found
            return None, None
        seg = segs[0]
        if seg in cur and not seg.startswith('__'):
            res = self._match(cur[seg], segs[1:], found)
            if res[0]:
                return res
        if '{}' in cur:
            sub = cur['{}']
            if sub['__var__'] in REST_VARS:
                return self._match(sub, [], dict(found, **{sub['__var__']: '/'.join(segs)}))
            res = self._match(sub, segs[1:], dict(found, **{sub['__var__']: seg}))
            if res[0]:
                return res
        return None, None

    def method(self, template, method):
        return self.routes.get(template, {}).get(method)

    @staticmethod
    def lookup(props):
        """A key -> property schema lookup that understands indexed keys (net0 -> net[n])."""
        def get(key):
            if key in props:
                return props[key]
            m = re.match(r'^([a-z]+)(\d+)$', key)
            if m and m.group(1) + '[n]' in props:
                limit = INDEX_LIMITS.get(m.group(1))
                if limit is None or int(m.group(2)) < limit:
                    return props[m.group(1) + '[n]']
            return None
        return get

    def validate(self, info, params):
        """Validate string params against a method's schema; return the errors dict (empty = valid)."""
        pdef = info.get('parameters') or {}
        props = pdef.get('properties') or {}
        errors = {}
        check_object(None, props, params, pdef.get('additionalProperties', 1) != 0, errors, lookup=self.lookup(props))
        return errors

    def prop(self, template, method, key):
        info = self.method(template, method) or {}
        props = (info.get('parameters') or {}).get('properties') or {}
        return self.lookup(props)(key)
