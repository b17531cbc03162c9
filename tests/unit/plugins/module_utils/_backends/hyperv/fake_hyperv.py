# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An in-process stand-in for pywinrm's ``Protocol``, answering from the Hyper-V emulator's host model.

``FakeProtocol.install(client)`` replaces ``HyperVClient._connect``: everything above the WS-Man
exchange runs for real (the bootstrap command line, the script on stdin, the JSON contract, error
mapping). Each script runs against tests/simulators/hyperv's ``Host``; when tree-sitter is installed,
through the emulator's contract ``Engine`` too, so every script is parsed and its cmdlets, parameters
and header checked as the emulator does. ``scripts`` lists ``(op, args)`` of every script run.
"""

from __future__ import annotations

import base64
import json
import re

from ansible_collections.polyvirt.compute.tests.simulators.hyperv.model import GB, Host, HyperVError

try:
    from ansible_collections.polyvirt.compute.tests.simulators.hyperv.contract import Engine
except ImportError:  # tree-sitter is not installed: the model alone answers
    Engine = None

# The operations that change nothing (the journal's reads), as the emulator's README lists them.
READ_OPS = ("host_get", "switch_list", "vm_list", "vm_get", "vhd_get", "disk_list", "nic_list", "checkpoint_list", "dir_list", "file_read")
HEADER_RE = re.compile(r"^# polyvirt-hyperv: ([a-z_]+) ([A-Za-z0-9+/]*={0,2})$")
USER_KEYS = ("name", "path", "vhd_path", "parent_path", "notes", "checkpoint", "nic", "switch", "mac", "data")
BASE = "C:\\Images\\base.vhdx"
SECRET = "polyvirt-sim"


class FakeProtocol:
    def __init__(self, host=None):
        self.host = host or Host(time_scale=0)
        self.engine = Engine(self.host) if Engine is not None else None
        self.scripts = []
        self.shells = 0
        self.closed = 0
        self.command_lines = []
        self.codepages = []
        self._outputs = {}
        self.fail_next = {}  # op -> message: the next script of that op fails as a caught Hyper-V error

    def install(self, client):
        def connect():
            client._protocol = self  # pylint: disable=protected-access
            client._shell = self.open_shell(codepage=65001, noprofile=True)  # pylint: disable=protected-access

        client._connect = connect  # pylint: disable=protected-access
        return self

    # -- the Protocol methods the client uses -----------------------------------------------------

    def open_shell(self, codepage=437, noprofile=False):
        self.shells += 1
        self.codepages.append(codepage)
        return "shell-%d" % self.shells

    def run_command(self, shell, command, arguments=()):
        self.command_lines.append(" ".join([command] + list(arguments)))
        command_id = "cmd-%d" % len(self.command_lines)
        self._outputs[command_id] = None
        return command_id

    def send_command_input(self, shell, command_id, data, end=False):
        assert end, "the script must arrive in one piece with End=true"
        self._outputs[command_id] = self._run(data.decode("utf-8"))

    def get_command_output_raw(self, shell, command_id):
        out, err, code = self._outputs.pop(command_id)
        return out, err, code, True

    def cleanup_command(self, shell, command_id):
        pass

    def close_shell(self, shell):
        self.closed += 1

    # -- running a script -------------------------------------------------------------------------

    def _run(self, script):
        match = HEADER_RE.match(script.split("\n", 1)[0].rstrip("\r"))
        assert match, "no contract header: %r" % script[:80]
        op, b64 = match.groups()
        args = json.loads(base64.b64decode(b64).decode("utf-8"))
        body = script.split("\n", 1)[1]
        for key in USER_KEYS:
            value = args.get(key)
            if isinstance(value, str) and len(value) >= 3:
                assert value not in body, "%s=%r is in the script text" % (key, value)
        self.scripts.append((op, args))
        if op in self.fail_next:
            message = self.fail_next.pop(op)
            return (json.dumps({"ok": False, "error": message, "type": "Microsoft.HyperV.PowerShell.VirtualizationException"}).encode("utf-8"),
                    b"", 1)
        if self.engine is not None:
            result = self.engine.run(script, ["-noprofile", "-noninteractive"], user_is_admin=True, from_stdin=True)
            return result.stdout, result.stderr, result.rc
        try:
            with self.host.lock:  # the model's long operations release it while they sleep, as under the emulator's engine
                out = {"ok": True, "result": getattr(self.host, op)(args)}
            code = 0
        except HyperVError as err:
            out = {"ok": False, "error": err.message, "type": err.type_name}
            code = 1
        return json.dumps(out).encode("utf-8"), b"", code

    def ops(self):
        return [op for op, args in self.scripts]

    @property
    def requests(self):
        """The scripts run, as the shared contract table counts API calls."""
        return self.scripts

    def mutating(self):
        return [(op, args) for op, args in self.scripts if op not in READ_OPS]

    def seed_image(self, path=BASE, size=GB):
        self.host.vhd_create({"path": path, "type": "dynamic", "size": size})
        return path
