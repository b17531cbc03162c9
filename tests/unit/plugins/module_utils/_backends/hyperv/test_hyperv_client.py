# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The Hyper-V client and scripts: transport choices, the JSON contract, errors, and values kept out of script text."""

import base64
import json

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv import client as hv_client
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv import scripts
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.client import HyperVClient, clixml_text, endpoint_url, parse_output
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import (
    AuthError, Conflict, InvalidInput, MissingLibrary, NotFound, OperationFailed,
)

NASTY = "it's \"$env:COMPUTERNAME\" `whoami`; $(Remove-Item C:\\ -Recurse)\r\nline 2 ünï"


def test_basic_auth_is_refused_over_http_except_on_loopback():
    with pytest.raises(InvalidInput) as failure:
        HyperVClient("hv01.example.com", transport="basic", username="u", password="p")
    assert "clear text" in failure.value.message
    for host in ("127.0.0.1", "localhost", "::1"):
        HyperVClient(host, transport="basic")
    HyperVClient("hv01.example.com", scheme="https", transport="basic")


def test_endpoints_default_ports_and_bracket_ipv6():
    assert endpoint_url("hv01") == "http://hv01:5985/wsman"
    assert endpoint_url("hv01", scheme="https") == "https://hv01:5986/wsman"
    assert endpoint_url("fd00::5", 5999) == "http://[fd00::5]:5999/wsman"
    assert HyperVClient("hv01").transport == "ntlm"  # the default: NTLM with message encryption over http


def test_missing_transport_extras_are_named(monkeypatch):
    transport = pytest.importorskip("winrm.transport")
    monkeypatch.setattr(transport, "HAVE_KERBEROS", False)
    monkeypatch.setattr(transport, "HAVE_CREDSSP", False)
    with pytest.raises(MissingLibrary) as failure:
        hv_client.check_extras("kerberos")
    assert "pykerberos" in failure.value.message
    with pytest.raises(MissingLibrary) as failure:
        hv_client.check_extras("credssp")
    assert "requests-credssp" in failure.value.message


def test_protocol_settings_verify_tls_without_reading_the_environment(monkeypatch):
    winrm = pytest.importorskip("winrm")
    seen = {}

    class Protocol:
        def __init__(self, endpoint, **kwargs):
            seen.update(kwargs, endpoint=endpoint)

        def open_shell(self, **kwargs):
            seen["shell"] = kwargs
            return "s1"

    monkeypatch.setattr(winrm, "Protocol", Protocol)
    HyperVClient("hv01", scheme="https", username="u", password="p", ca_path="/ca.pem")._connect()  # pylint: disable=protected-access
    assert seen["server_cert_validation"] == "validate" and seen["ca_trust_path"] == "/ca.pem" and seen["proxy"] is None
    assert seen["transport"] == "ntlm" and seen["message_encryption"] == "auto" and seen["shell"]["codepage"] == 65001
    assert seen["read_timeout_sec"] > seen["operation_timeout_sec"]
    HyperVClient("hv01", validate_certs=False)._connect()  # pylint: disable=protected-access
    assert seen["server_cert_validation"] == "ignore" and seen["ca_trust_path"] is None


@pytest.mark.parametrize("message, error", [
    ('Hyper-V was unable to find a virtual machine with name "x".', NotFound),
    ("You do not have the required permission to complete this task.", AuthError),
    ("The operation cannot be performed while the virtual machine 'x' is in its current state (Running).", Conflict),
    ("Failed to modify device 'Memory'. Invalid memory value.", OperationFailed),
])
def test_a_caught_powershell_error_keeps_its_message(message, error):
    stdout = json.dumps({"ok": False, "error": message, "type": "Microsoft.HyperV.PowerShell.VirtualizationException"}).encode()
    with pytest.raises(error) as failure:
        parse_output("vm_get", stdout, b"", 1)
    assert failure.value.message == message


def test_warnings_on_stderr_are_no_failure_and_clixml_errors_are_read():
    warning = b'#< CLIXML\r\n<Objs><S S="warning">WARNING: The virtual machine is already in the specified state._x000D__x000A_</S></Objs>'
    assert parse_output("vm_start", b'{"ok":true,"result":{"state":"Running"}}\r\n', warning, 0) == {"state": "Running"}
    error = b'#< CLIXML\r\n<Objs><S S="Error">The term \'Get-VMX\' is not recognized_x000D__x000A_</S></Objs>'
    assert clixml_text(error) == "The term 'Get-VMX' is not recognized"
    with pytest.raises(OperationFailed) as failure:
        parse_output("vm_get", b"", error, 1)
    assert "PowerShell failed running vm_get: The term 'Get-VMX' is not recognized" in failure.value.message


@pytest.mark.parametrize("op", sorted(scripts.BODIES))
def test_every_script_reads_user_values_only_from_its_header_arguments(op):
    args = {"name": NASTY, "path": "C:\\VMs\\" + NASTY, "notes": NASTY, "checkpoint": NASTY, "nic": NASTY, "switch": NASTY, "new_name": NASTY,
            "parent_path": "C:\\" + NASTY, "mac": "00163EAABB01", "type": "dynamic", "size": 1024, "mode": "force", "for": "IPAddress"}
    text = scripts.build(op, args)
    header, body = text.split("\r\n", 1)
    b64 = header.split(" ")[3]
    assert header == "# polyvirt-hyperv: %s %s" % (op, b64)
    assert json.loads(base64.b64decode(b64).decode("utf-8"))["name"] == NASTY
    assert "FromBase64String('%s')" % b64 in body
    assert NASTY not in body and "Remove-Item C:" not in body
    assert "\n" not in text.replace("\r\n", "")  # CRLF throughout
    assert "ConvertTo-Json -InputObject @{ ok = $true; result = $r } -Depth 8 -Compress" in body


def test_unset_arguments_are_left_out():
    header = scripts.build("vm_set", {"name": "web1", "cpu": None, "notes": ""}).split("\r\n", 1)[0]
    assert json.loads(base64.b64decode(header.split(" ")[3])) == {"name": "web1", "notes": ""}
