# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PVE text formats: sizes, property strings, named formats and guest config files."""
from __future__ import annotations

import hashlib
import ipaddress
import re
import urllib.parse


class PveError(Exception):
    """An API error: HTTP code, message (first line is the reason phrase) and optional errors dict."""

    def __init__(self, msg, code=500, errors=None, bare=False):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.errors = errors
        self.bare = bare  # no JSON body (the answers of PVE's auth handler)


def fail(msg):
    raise PveError(msg, 500)


def param_error(errors):
    raise PveError('Parameter verification failed.', 400, errors)


SIZE_RE = re.compile(r'^(\d+(?:\.\d+)?)([KMGT](?:iB)?)?$')
UNITS = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}


def parse_size(value):
    m = SIZE_RE.match(str(value))
    if not m:
        return None
    size = float(m.group(1))
    if m.group(2):
        size *= UNITS[m.group(2)[0]]
    return int(size)


def format_size(size):
    size = int(size)
    kb = size // 1024
    if kb * 1024 != size:
        return str(size)
    mb = kb // 1024
    if mb * 1024 != kb:
        return '%dK' % kb
    gb = mb // 1024
    if gb * 1024 != mb:
        return '%dM' % mb
    tb = gb // 1024
    if tb * 1024 != gb:
        return '%dG' % gb
    return '%dT' % tb


def parse_boolean(value):
    if re.match(r'^(1|on|yes|true)$', value, re.I):
        return '1'
    if re.match(r'^(0|off|no|false)$', value, re.I):
        return '0'
    return None


def split_list(value):
    return [v for v in re.split(r'[,;\s]+', value or '') if v]


# --- named formats (pve-common JSONSchema.pm and the guest packages) --------------------------------

CONFIGID_RE = re.compile(r'^[a-z][a-z0-9_-]+$', re.I)


def _regex_check(regex, message, flags=0):
    rx = re.compile(regex, flags)

    def check(value):
        if not rx.match(value):
            raise ValueError(message.replace('%s', value))
    return check


def _check_ip(version, message):
    def check(value):
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(message) from None
        if version and addr.version != version:
            raise ValueError(message)
    return check


def _check_cidr(version, message):
    def check(value):
        if '/' not in value:
            raise ValueError(message)
        try:
            net = ipaddress.ip_interface(value)
        except ValueError:
            raise ValueError(message) from None
        if version and net.version != version:
            raise ValueError(message)
    return check


def _check_id(kind):
    def check(value):
        if len(value) < 2:
            raise ValueError("%s ID '%s' cannot be shorter than 2 characters" % (kind, value))
        if not re.match(r'^[a-z][a-z0-9\-_.]*[a-z0-9]$', value, re.I):
            raise ValueError("%s ID '%s' contains illegal characters" % (kind, value))
    return check


def _check_tag(value):
    if not re.match(r'^[a-z0-9_][a-z0-9_\-+.]*$', value, re.I):
        raise ValueError('invalid characters in tag')


def _check_disk_size(value):
    if parse_size(value) is None:
        raise ValueError('value does not look like a valid disk size: %s' % value)


def _check_volume_id(value):
    if not re.match(r'^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$', value, re.I):
        raise ValueError("unable to parse volume ID '%s'" % value)


def _check_ipconfig_ip(value):
    if value == 'dhcp':
        return
    _check_cidr(4, 'value does not look like a valid IPv4 CIDR network')(value)


def _check_ipconfig_ip6(value):
    if value in ('dhcp', 'auto'):
        return
    _check_cidr(6, 'value does not look like a valid IPv6 CIDR network')(value)


SIMPLE_FORMATS = {
    'pve-vmid': _regex_check(r'^[1-9][0-9]{2,8}$', 'value does not look like a valid VM ID'),
    'pve-node': _regex_check(r'^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$', 'value does not look like a valid node name'),
    'pve-configid': _regex_check(r'^[a-z][a-z0-9_-]+$', "invalid configuration ID '%s'", re.I),
    'urlencoded': _regex_check(r"^[-%a-zA-Z0-9_.!~*'()]*$", 'invalid urlencoded string: %s'),
    'mac-addr': _regex_check(r'^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$', 'value does not look like a valid unicast MAC address', re.I),
    'dns-name': _regex_check(r'^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$',
                             'value does not look like a valid DNS name'),
    'pve-bridge-id': _regex_check(r'^[-_.\w\d]+$', "invalid bridge ID '%s'"),
    'pve-storage-id': _check_id('storage'),
    'pve-poolid': _regex_check(r'^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+){0,2}$', "invalid pool ID '%s'"),
    'pve-tag': _check_tag,
    'disk-size': _check_disk_size,
    'ipv4': _check_ip(4, 'value does not look like a valid IPv4 address'),
    'ipv6': _check_ip(6, 'value does not look like a valid IPv6 address'),
    'ip': _check_ip(0, 'value does not look like a valid IP address'),
    'address': _check_ip(0, 'value does not look like a valid IP address'),
    'CIDRv4': _check_cidr(4, 'value does not look like a valid IPv4 CIDR network'),
    'CIDRv6': _check_cidr(6, 'value does not look like a valid IPv6 CIDR network'),
    'CIDR': _check_cidr(0, 'value does not look like a valid CIDR network'),
    'pve-volume-id': _check_volume_id,
    'pve-ipv4-config': _check_ipconfig_ip,
    'pve-ipv6-config': _check_ipconfig_ip6,
}

_OPT = {'optional': 1}

# Hash formats that the schema dump only names (registered in qemu-server / pve-container).
HASH_FORMATS = {
    'pve-qm-ipconfig': {
        'ip': dict(_OPT, type='string', format='pve-ipv4-config'),
        'gw': dict(_OPT, type='string', format='ipv4'),
        'ip6': dict(_OPT, type='string', format='pve-ipv6-config'),
        'gw6': dict(_OPT, type='string', format='ipv6'),
    },
    'pve-qm-boot': {
        'legacy': dict(_OPT, type='string', pattern='[acdn]{1,4}', default_key=1),
        'order': dict(_OPT, type='string', format='pve-qm-bootdev-list'),
    },
    'pve-qm-cicustom': {
        'meta': dict(_OPT, type='string', format='pve-volume-id'),
        'network': dict(_OPT, type='string', format='pve-volume-id'),
        'user': dict(_OPT, type='string', format='pve-volume-id'),
        'vendor': dict(_OPT, type='string', format='pve-volume-id'),
    },
    'pve-qm-smbios1': {
        'uuid': dict(_OPT, type='string', pattern='[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}'),
        'base64': dict(_OPT, type='boolean'),
        'family': dict(_OPT, type='string'),
        'manufacturer': dict(_OPT, type='string'),
        'product': dict(_OPT, type='string'),
        'serial': dict(_OPT, type='string'),
        'sku': dict(_OPT, type='string'),
        'version': dict(_OPT, type='string'),
    },
    'prune-backups': {k: dict(_OPT, type='integer', minimum=1)
                      for k in ('keep-last', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly')},
    'pve-vm-cpu-conf': {
        'cputype': dict(_OPT, type='string', default_key=1),
        'flags': dict(_OPT, type='string', pattern=r'(?:[+-][a-zA-Z0-9\-_\.]+;?)*'),
        'hidden': dict(_OPT, type='boolean'),
        'hv-vendor-id': dict(_OPT, type='string'),
        'phys-bits': dict(_OPT, type='string'),
        'reported-model': dict(_OPT, type='string'),
    },
}

HASH_FORMATS['prune-backups']['keep-all'] = dict(_OPT, type='boolean')
LIST_SEPARATORS = {'pve-tag-list': r'[;,\s]+'}


def check_named_format(fmt, value, path):
    """Validate VALUE against a named format; raise ValueError with PVE's text. Unknown names pass."""
    if fmt == 'pve-qm-bootdev-list':
        for dev in split_list(value):
            if not re.match(r'^(ide|sata|scsi|virtio|net|efidisk|tpmstate|hostpci|usb)\d+$', dev):
                raise ValueError("invalid boot device '%s'" % dev)
        return
    m = re.match(r'^(.*?)(?:-(list|opt))?$', fmt)
    name, kind = m.group(1), m.group(2)
    if name in HASH_FORMATS and not kind:
        parse_property_string(HASH_FORMATS[name], value, path)
        return
    check = SIMPLE_FORMATS.get(name)
    if not check:
        return
    if kind == 'list':
        sep = LIST_SEPARATORS.get(fmt, r'[,;\s]+')
        for item in [v for v in re.split(sep, value) if v]:
            check(item)
    elif kind == 'opt':
        if value:
            check(value)
    else:
        check(value)


def parse_property_string(fmt, data, path=None, validate=True):
    """Parse 'k=v,k2=v2' like PVE::JSONSchema::parse_property_string; returns a dict.

    Raises ValueError('format error\\n<path.key>: <msg>\\n...') on validation failures."""
    res = {}
    default_key = None
    for part in data.split(','):
        if not part.strip():
            continue
        m = re.match(r'^([^=]+)=(.+)$', part, re.S)
        if m:
            k, v = m.group(1), m.group(2)
            if k in res:
                raise ValueError('duplicate key in comma-separated list property: %s' % k)
            schema = fmt.get(k)
            if schema and schema.get('alias'):
                key_alias = schema.get('keyAlias')
                if key_alias:
                    if key_alias in res:
                        raise ValueError("key alias '%s' is already defined" % key_alias)
                    res[key_alias] = k
                k = schema['alias']
                schema = fmt.get(k)
                if k in res:
                    raise ValueError("key '%s' is already defined (via alias)" % k)
            if not schema:
                raise ValueError('invalid key in comma-separated list property: %s' % k)
            if schema.get('type') == 'boolean':
                v = parse_boolean(v) or v
            res[k] = v
        elif '=' not in part:
            if default_key:
                raise ValueError('duplicate key in comma-separated list property: %s' % default_key)
            for key, sub in fmt.items():
                if sub.get('default_key'):
                    default_key = key
                    if res.get(key):
                        raise ValueError('duplicate key in comma-separated list property: %s' % default_key)
                    if sub.get('type') == 'boolean':
                        part = parse_boolean(part) or part
                    res[key] = part
                    break
            if not default_key:
                raise ValueError('value without key, but schema does not define a default key')
        else:
            raise ValueError('missing key in comma-separated list property')
    if validate:
        errors = {}
        check_object(path, fmt, res, False, errors)
        if errors:
            raise ValueError('format error\n' + ''.join('%s: %s\n' % (k, v) for k, v in errors.items()).rstrip('\n'))
    return res


def find_default_key(fmt):
    default_key, key_alias_props = None, {}
    for key, sub in fmt.items():
        if sub.get('default_key'):
            default_key = key
        if sub.get('keyAlias'):
            key_alias_props[sub['keyAlias']] = sub['alias']
    return default_key, key_alias_props


def print_property_string(data, fmt):
    """Canonical text of a parsed property string (print_property_string)."""
    default_key, key_alias_props = find_default_key(fmt)
    done = set()
    out = []

    def fmt_value(value, sub):
        if sub and sub.get('format') == 'disk-size':
            return format_size(parse_size(value))
        return str(value)

    def add(key, isdefault=False):
        if key in done:
            return
        done.add(key)
        value = data.get(key)
        if value is None:
            return
        sub = fmt.get(key) or {}
        combine = key_alias_props.get(key)
        if combine and data.get(combine) is not None:
            out.append('%s=%s' % (value, fmt_value(data[combine], fmt.get(combine))))
            done.add(combine)
            return
        if sub.get('alias'):
            sub = fmt.get(sub['alias']) or {}
        out.append(fmt_value(value, sub) if isdefault else '%s=%s' % (key, fmt_value(value, sub)))

    if default_key:
        add(default_key, True)
    for key in sorted(data):
        if key in fmt and not fmt[key].get('optional') and not fmt[key].get('alias'):
            add(key)
    for key in sorted(data):
        add(key)
    return ','.join(out)


# --- JSON schema checks (check_prop / check_object) --------------------------------------------------

INT_RE = re.compile(r'^[+-]?\d+$')
NUM_RE = re.compile(r'^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$')


def _add_error(errors, path, msg):
    path = path or '_root'
    if path in errors:
        errors[path] = errors[path] + '\\n' + msg
    else:
        errors[path] = msg


def check_prop(value, schema, path, errors):
    if schema.get('alias'):
        return
    if value is None:
        if not schema.get('optional'):
            _add_error(errors, path, 'property is missing and it is not optional')
        return
    if schema.get('type') == 'array':
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, (list, dict)):
                _add_error(errors, '%s[%d]' % (path, i), "type check ('%s') failed" % (schema.get('items') or {}).get('type', 'string'))
        return
    if isinstance(value, (list, dict)):
        _add_error(errors, path, "type check ('%s') failed - got %s" % (schema.get('type', 'string'), 'ARRAY' if isinstance(value, list) else 'HASH'))
        return
    ptype = schema.get('type')
    if ptype == 'boolean' and value not in ('0', '1'):
        _add_error(errors, path, "type check ('boolean') failed - got '%s'" % value)
        return
    if ptype == 'integer' and not INT_RE.match(value):
        _add_error(errors, path, "type check ('integer') failed - got '%s'" % value)
        return
    if ptype == 'number' and not NUM_RE.match(value):
        _add_error(errors, path, "type check ('number') failed - got '%s'" % value)
        return
    fmt = schema.get('format')
    if fmt:
        try:
            if isinstance(fmt, dict):
                parse_property_string(fmt, value, path)
            else:
                check_named_format(fmt, value, path)
        except ValueError as exc:
            _add_error(errors, path, 'invalid format - %s\n' % exc)
            return
    pattern = schema.get('pattern')
    if pattern and not re.match('^(?:%s)$' % pattern, value):
        _add_error(errors, path, 'value does not match the regex pattern')
        return
    if schema.get('maxLength') is not None and len(value) > schema['maxLength']:
        _add_error(errors, path, 'value may only be %s characters long' % schema['maxLength'])
        return
    if schema.get('minLength') is not None and len(value) < schema['minLength']:
        _add_error(errors, path, 'value must be at least %s characters long' % schema['minLength'])
        return
    if NUM_RE.match(value):
        if schema.get('maximum') is not None and float(value) > float(schema['maximum']):
            _add_error(errors, path, 'value must have a maximum value of %s' % schema['maximum'])
            return
        if schema.get('minimum') is not None and float(value) < float(schema['minimum']):
            _add_error(errors, path, 'value must have a minimum value of %s' % schema['minimum'])
            return
    enum = schema.get('enum')
    if enum and value not in [str(e) for e in enum]:
        _add_error(errors, path, "value '%s' does not have a value in the enumeration '%s'" % (value, ', '.join(str(e) for e in enum)))


def check_object(path, props, value, additional, errors, lookup=None):
    """Check a dict of string values against a properties schema (PVE's check_object)."""
    lookup = lookup or props.get
    for k in list(value):
        sub = lookup(k)
        if sub and sub.get('alias') and not sub.get('keyAlias'):
            alias = sub['alias']
            if value.get(alias) is not None:
                _add_error(errors, '%s.%s' % (path, k) if path else k, "cannot set both '%s' and its alias target '%s'" % (k, alias))
            else:
                value[alias] = value.pop(k)
    for k, sub in props.items():
        if '[n]' in k:
            continue
        check_prop(value.get(k), sub, '%s.%s' % (path, k) if path else k, errors)
    for k in value:
        newpath = '%s.%s' % (path, k) if path else k
        sub = lookup(k)
        if sub:
            if k not in props:
                check_prop(value[k], sub, newpath, errors)
            requires = sub.get('requires')
            if isinstance(requires, str) and value.get(requires) is None:
                _add_error(errors, '%s.%s' % (path, requires) if path else requires, "missing property required by '%s'" % newpath)
            continue
        if not additional:
            _add_error(errors, newpath, 'property is not defined in schema and the schema does not allow additional properties')


# --- guest config files -------------------------------------------------------------------------------

def encode_text(text):
    return re.sub(r'[%\x00-\x1f\x7f]', lambda m: '%%%02X' % ord(m.group(0)), text)


def decode_text(text):
    return urllib.parse.unquote(text)


def _section_lines(conf):
    out = []
    for line in (conf.get('description') or '').split('\n') if conf.get('description') else []:
        out.append('#' + encode_text(line))
    for key in sorted(conf):
        if key == 'description':
            continue
        out.append('%s: %s' % (key, conf[key]))
    return out


def render_config(guest_conf):
    """guest_conf: {'main': {...}, 'pending': {...}, 'delete': [...], 'cloudinit': {...}, 'snapshots': {name: {...}}}."""
    lines = _section_lines(guest_conf['main'])
    pending = dict(guest_conf.get('pending') or {})
    if guest_conf.get('delete'):
        pending['delete'] = ','.join(guest_conf['delete'])
    if pending:
        lines += ['', '[PENDING]'] + _section_lines(pending)
    if guest_conf.get('cloudinit'):
        lines += ['', '[special:cloudinit]'] + _section_lines(guest_conf['cloudinit'])
    for name in sorted(guest_conf.get('snapshots') or {}):
        lines += ['', '[%s]' % name] + _section_lines(guest_conf['snapshots'][name])
    return '\n'.join(lines) + '\n'


def parse_config(text):
    """Inverse of render_config (used for backups and --state files)."""
    res = {'main': {}, 'pending': {}, 'delete': [], 'cloudinit': {}, 'snapshots': {}}
    cur = res['main']
    desc = []
    for line in text.split('\n'):
        if not line.strip():
            continue
        m = re.match(r'^\[(.*)\]$', line)
        if m:
            if desc:
                cur['description'] = '\n'.join(desc)
            desc = []
            name = m.group(1)
            if name == 'PENDING':
                cur = res['pending']
            elif name == 'special:cloudinit':
                cur = res['cloudinit']
            else:
                cur = res['snapshots'].setdefault(name, {})
            continue
        if line.startswith('#'):
            desc.append(decode_text(line[1:]))
            continue
        key, dummy, value = line.partition(': ')
        cur[key] = value
    if desc:
        cur['description'] = '\n'.join(desc)
    if 'delete' in res['pending']:
        res['delete'] = res['pending'].pop('delete').split(',')
    return res


def config_digest(guest_conf):
    return hashlib.sha1(render_config(guest_conf).encode('utf-8')).hexdigest()
