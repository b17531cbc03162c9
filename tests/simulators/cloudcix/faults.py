# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection for the CloudCIX simulator.

A SPEC is ``NAME`` or ``NAME:key=value[,key=value...]``:

``error:status=503,count=3,method=POST,path=compute/instances,skip=0``
    The next ``count`` requests (default 1) whose method and normalised path match answer ``status``
    (default 503) with an nginx-like HTML body, after letting ``skip`` matching requests through.
``token-expiry:seconds=5``
    Tokens issued from now on expire after ``seconds`` (real: 2 h, 1 h after a refresh).
``robot-stall[:state=building][:seconds=30]``
    The robot does not move resources out of ``state`` (default: any state), for ``seconds``
    (default: until the fault is cleared).
``unresourced[:match=REGEX]``
    Instances whose name matches REGEX (default: all) end in ``unresourced`` instead of ``running``.
``throttle:rate=N``
    Each user may make N requests per second (real: 20, the framework's user throttle) before a 429.
"""
from __future__ import annotations

import re
import time

KNOWN = ('error', 'token-expiry', 'robot-stall', 'unresourced', 'throttle')


class FaultError(ValueError):
    """A SPEC that cannot be parsed."""


def parse(spec):
    """Parse one SPEC into a dict with at least ``name``."""
    name, _sep, rest = spec.strip().partition(':')
    name = name.strip()
    if name not in KNOWN:
        raise FaultError('unknown fault %r (known: %s)' % (name, ', '.join(KNOWN)))
    fault = {'name': name, 'added': time.time()}
    if rest:
        for part in rest.split(','):
            key, sep, value = part.partition('=')
            if not sep or not key.strip():
                raise FaultError('bad fault option %r in %r (expected key=value)' % (part, spec))
            fault[key.strip()] = value.strip()
    try:
        if name == 'error':
            fault['status'] = int(fault.get('status', 503))
            fault['count'] = int(fault.get('count', 1))
            fault['skip'] = int(fault.get('skip', 0))
            if not 100 <= fault['status'] <= 599:
                raise FaultError('status must be an HTTP status: %r' % spec)
        elif name == 'token-expiry':
            fault['seconds'] = float(fault.get('seconds', 5))
        elif name == 'robot-stall':
            if 'seconds' in fault:
                fault['seconds'] = float(fault['seconds'])
        elif name == 'unresourced':
            re.compile(fault.get('match', ''))
        elif name == 'throttle':
            fault['rate'] = int(fault.get('rate', 20))
            if fault['rate'] < 1:
                raise FaultError('rate must be at least 1: %r' % spec)
    except (TypeError, ValueError, re.error) as exc:
        raise FaultError('bad fault %r: %s' % (spec, exc)) from exc
    return fault


class Faults:
    """The active faults. The caller holds the simulator lock."""

    def __init__(self, specs=()):
        self.active = [parse(s) for s in specs]

    def add(self, spec):
        fault = parse(spec)
        self.active.append(fault)
        return fault

    def clear(self):
        self.active = []

    def describe(self):
        return [dict(f) for f in self.active]

    def http_error(self, method, path):
        """The status to answer instead of serving the request, or None."""
        for fault in self.active:
            if fault['name'] != 'error' or fault['count'] <= 0:
                continue
            if fault.get('method') and fault['method'].upper() != method:
                continue
            if fault.get('path') and fault['path'].strip('/') not in path:
                continue
            if fault['skip'] > 0:
                fault['skip'] -= 1
                continue
            fault['count'] -= 1
            return fault['status']
        return None

    def token_lifetime(self, default):
        for fault in self.active:
            if fault['name'] == 'token-expiry':
                return fault['seconds']
        return default

    def robot_stalled(self, state, now):
        for fault in self.active:
            if fault['name'] != 'robot-stall':
                continue
            if 'seconds' in fault and now > fault['added'] + fault['seconds']:
                continue
            if fault.get('state') and fault['state'] != state:
                continue
            return True
        return False

    def throttle_rate(self, default):
        rates = [fault['rate'] for fault in self.active if fault['name'] == 'throttle']
        return min(rates) if rates else default

    def force_unresourced(self, name):
        for fault in self.active:
            if fault['name'] == 'unresourced' and re.search(fault.get('match', ''), name or ''):
                return True
        return False
