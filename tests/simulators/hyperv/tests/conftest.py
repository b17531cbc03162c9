# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures: the emulator started exactly as documented, and pywinrm/pypsrp clients for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from urllib.parse import urlparse

import pytest
import winrm
from winrm.exceptions import WinRMOperationTimeoutError

from tests.simulators.hyperv import scripts

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
USER, PASSWORD = 'Administrator', 'polyvirt-sim'
# Faults of the shared instance are scoped to VM names or operations that only their tests use.
SHARED_FAULTS = [
    'slow-stop:vm=slowpoke,seconds=1.5',
    'stuck-stopping:vm=stuck1,seconds=0.2',
    'timeout:op=switch_list,seconds=2.5',
    'fail:op=nic_remove,message=Injected failure of Remove-VMNetworkAdapter.',
    'no-kvp:vm=nokvp',
]


class Emulator:
    """``python3 -m tests.simulators.hyperv`` as a subprocess; ``url`` is the printed endpoint."""

    def __init__(self, *options):
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'tests.simulators.hyperv', '--host', '127.0.0.1', '--port', '0'] + list(options),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killer = threading.Timer(30, self.proc.kill)  # never hang the suite if it does not start
        killer.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            killer.cancel()
        if not line.startswith('listening on '):
            self.proc.kill()
            raise RuntimeError('emulator did not start: %r %s' % (line, self.proc.stderr.read()))
        self.url = line.split()[-1]
        parsed = urlparse(self.url)
        self.host, self.port = parsed.hostname, parsed.port

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


class CountingProtocol(winrm.Protocol):
    """pywinrm's Protocol, counting the OperationTimeout faults it swallows while receiving."""

    timeouts = 0

    def send_message(self, message):
        try:
            return super().send_message(message)
        except WinRMOperationTimeoutError:
            self.timeouts += 1
            raise


class Client:
    """Runs contract scripts the recommended way: bootstrap command line, script on stdin."""

    def __init__(self, emulator, user=USER, password=PASSWORD, operation_timeout=5):
        self.protocol = CountingProtocol(emulator.url, transport='basic', username=user, password=password,
                                         operation_timeout_sec=operation_timeout, read_timeout_sec=operation_timeout + 5)

    def raw(self, script, command=None):
        shell = self.protocol.open_shell(codepage=65001)
        try:
            command_id = self.protocol.run_command(shell, command or scripts.bootstrap_command())
            if command is None:
                self.protocol.send_command_input(shell, command_id, script.encode('utf-8'), end=True)
            out, err, rc = self.protocol.get_command_output(shell, command_id)
            self.protocol.cleanup_command(shell, command_id)
        finally:
            self.protocol.close_shell(shell)
        return out, err, rc

    def call(self, op, args=None, **kwargs):
        """(rc, parsed stdout JSON) of the reference script of ``op``."""
        out, err, rc = self.raw(scripts.build(op, args or {}, **kwargs))
        assert err == b'' or (b'S="warning"' in err and b'S="Error"' not in err), err  # warnings are no failure
        self.last_stderr = err
        return rc, json.loads(out.decode('utf-8'))

    def ok(self, op, args=None):
        rc, doc = self.call(op, args)
        assert (rc, doc['ok']) == (0, True), doc
        return doc['result']

    def fails(self, op, args=None):
        rc, doc = self.call(op, args)
        assert (rc, doc['ok']) == (1, False), doc
        return doc['error']


def session(emulator, user=USER, password=PASSWORD):
    return winrm.Session('%s:%d' % (emulator.host, emulator.port), auth=(user, password), transport='basic')


@pytest.fixture(scope='session')
def sim():
    emulator = Emulator('--time-scale', '0', *[x for f in SHARED_FAULTS for x in ('--fault', f)])
    yield emulator
    assert emulator.stop() == 0


@pytest.fixture()
def client(sim):
    return Client(sim)
