# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The WS-Management / WinRS layer, driven by pywinrm and pypsrp unchanged."""

from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests
import winrm
from pypsrp.client import Client as PsrpClient
from pypsrp.exceptions import AuthenticationError, WSManFaultError as PsrpFault
from pypsrp.shell import Process, SignalCode, WinRS
from pypsrp.wsman import WSMan
from winrm.exceptions import InvalidCredentialsError, WSManFaultError

from tests.simulators.hyperv import scripts
from tests.simulators.hyperv.tests.conftest import PASSWORD, USER, Client, Emulator, session

NS = {'s': 'http://www.w3.org/2003/05/soap-envelope', 'a': 'http://schemas.xmlsoap.org/ws/2004/08/addressing',
      'f': 'http://schemas.microsoft.com/wbem/wsman/1/wsmanfault'}


def psrp(sim, **kwargs):
    return PsrpClient(sim.host, port=sim.port, ssl=False, auth='basic', encryption='never', username=USER, password=PASSWORD, **kwargs)


def test_pywinrm_run_ps_short_script(sim):
    result = session(sim).run_ps(scripts.build('host_get', {}, minimal=True))
    assert result.status_code == 0, result.std_err
    doc = json.loads(result.std_out)
    assert doc['ok'] is True
    assert [s['name'] for s in doc['result']['switches']] == ['Default Switch', 'External']


def test_pywinrm_wrong_password_is_rejected(sim):
    with pytest.raises(InvalidCredentialsError):
        session(sim, password='wrong').run_ps(scripts.build('host_get', {}, minimal=True))


def test_pypsrp_wrong_password_is_rejected(sim):
    client = PsrpClient(sim.host, port=sim.port, ssl=False, auth='basic', encryption='never', username=USER, password='nope')
    with pytest.raises(AuthenticationError):
        client.execute_cmd(scripts.encoded_command(scripts.build('host_get', {}, minimal=True)))


def test_no_authorization_header_gets_basic_challenge(sim):
    response = requests.post(sim.url, data=b'<x/>', headers={'Content-Type': 'application/soap+xml;charset=UTF-8'}, timeout=5)
    assert response.status_code == 401
    assert response.headers['WWW-Authenticate'] == 'Basic realm="WSMAN"'


def test_auth_fault_rejects_even_the_right_password():
    emulator = Emulator('--fault', 'auth')
    try:
        with pytest.raises(InvalidCredentialsError):
            session(emulator).run_ps(scripts.build('host_get', {}, minimal=True))
    finally:
        assert emulator.stop() == 0


def test_pypsrp_execute_cmd(sim):
    out, err, rc = psrp(sim).execute_cmd(scripts.encoded_command(scripts.build('host_get', {}, minimal=True)))
    assert (rc, err) == (0, '')
    assert json.loads(out)['result']['name'] == 'HV-SIM01'


def test_pypsrp_stdin_and_signal(sim):
    wsman = WSMan(sim.host, port=sim.port, ssl=False, auth='basic', encryption='never', username=USER, password=PASSWORD)
    with WinRS(wsman, codepage=65001) as shell:
        process = Process(shell, scripts.bootstrap_command())
        process.begin_invoke()
        process.send(scripts.build('vm_list', {}).encode('utf-8'), end=True)
        process.end_invoke()
        process.signal(SignalCode.CTRL_C)
    assert process.rc == 0, process.stderr
    assert json.loads(process.stdout)['ok'] is True


def test_receive_timeouts_are_retried_by_pywinrm(sim):
    client = Client(sim, operation_timeout=1)
    started = time.monotonic()
    rc, doc = client.call('switch_list')
    assert (rc, doc['ok']) == (0, True)
    assert time.monotonic() - started >= 2.5
    assert client.protocol.timeouts >= 2


def test_receive_timeouts_are_retried_by_pypsrp(sim):
    script = scripts.build('switch_list', {}, minimal=True)
    out, err, rc = psrp(sim, operation_timeout=1, read_timeout=3).execute_cmd(scripts.encoded_command(script))
    assert (rc, err) == (0, '')
    assert [s['type'] for s in json.loads(out)['result']] == ['Internal', 'External']


def test_timeout_fault_has_the_wsman_code(sim):
    protocol = winrm.Protocol(sim.url, transport='basic', username=USER, password=PASSWORD, operation_timeout_sec=1, read_timeout_sec=3)
    shell = protocol.open_shell()
    command_id = protocol.run_command(shell, scripts.encoded_command(scripts.build('switch_list', {}, minimal=True)))
    message_id = str(uuid.uuid4())
    envelope = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
        '<s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive</a:Action>'
        '<a:MessageID>uuid:%s</a:MessageID><w:OperationTimeout>PT0.5S</w:OperationTimeout>'
        '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></s:Header>'
        '<s:Body><rsp:Receive><rsp:DesiredStream CommandId="%s">stdout stderr</rsp:DesiredStream></rsp:Receive></s:Body></s:Envelope>'
        % (message_id, shell, command_id))
    response = requests.post(sim.url, data=envelope.encode(), auth=(USER, PASSWORD), timeout=5,
                             headers={'Content-Type': 'application/soap+xml;charset=UTF-8'})
    assert response.status_code == 500
    root = ET.fromstring(response.content)
    assert root.find('s:Header/a:RelatesTo', NS).text == 'uuid:' + message_id
    assert root.find('s:Body/s:Fault/s:Detail/f:WSManFault', NS).get('Code') == '2150858793'
    out, _err, rc = protocol.get_command_output(shell, command_id)
    assert rc == 0 and json.loads(out)['ok'] is True
    protocol.cleanup_command(shell, command_id)
    protocol.close_shell(shell)


def test_unknown_shell_is_a_wsman_fault(sim):
    protocol = winrm.Protocol(sim.url, transport='basic', username=USER, password=PASSWORD)
    with pytest.raises(WSManFaultError) as caught:
        protocol.run_command(str(uuid.uuid4()).upper(), 'powershell -EncodedCommand AAAA')
    assert caught.value.wsman_fault_code == 2150858843
    assert 'the shell was not found' in caught.value.reason


def test_pypsrp_deleted_shell_is_a_wsman_fault(sim):
    wsman = WSMan(sim.host, port=sim.port, ssl=False, auth='basic', encryption='never', username=USER, password=PASSWORD)
    shell = WinRS(wsman)
    shell.open()
    stale = WinRS(wsman, id=shell.id)
    stale._selector_set = shell._selector_set  # pylint: disable=protected-access
    stale.opened = True
    shell.close()
    with pytest.raises(PsrpFault) as caught:
        stale.close()
    assert caught.value.code == 2150858843


def test_relates_to_echoes_message_id(sim):
    message_id = 'uuid:' + str(uuid.uuid4()).upper()
    envelope = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
        '<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Create</a:Action><a:MessageID>%s</a:MessageID>'
        '<w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI></s:Header>'
        '<s:Body><rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>'
        '</s:Body></s:Envelope>' % message_id)
    response = requests.post(sim.url, data=envelope.encode(), auth=(USER, PASSWORD), timeout=5,
                             headers={'Content-Type': 'application/soap+xml;charset=UTF-8'})
    assert response.status_code == 200
    assert response.headers['Content-Type'] == 'application/soap+xml;charset=UTF-8'
    root = ET.fromstring(response.content)
    assert root.find('s:Header/a:RelatesTo', NS).text == message_id
    assert root.find('s:Header/a:Action', NS).text == 'http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse'


def test_long_script_over_stdin(client):
    filler = ''.join('    $pad%d = %d\n' % (i, i) for i in range(4000))
    script = scripts.build('host_get', {}, body=filler + scripts.BODIES['host_get'])
    assert len(script) > 75000
    out, err, rc = client.raw(script)
    assert (rc, err) == (0, b'')
    assert json.loads(out)['result']['name'] == 'HV-SIM01'


def test_long_script_on_the_command_line_is_too_long(sim):
    script = scripts.build('vm_get', {'name': 'web1'})
    assert len(scripts.encoded_command(script)) > 8191
    result = session(sim).run_ps(script)
    assert result.status_code == 1
    assert result.std_err == b'The command line is too long.\r\n'


def test_large_output_is_chunked_and_reassembled(client):
    names = ['bulk%02d-%s' % (i, 'x' * 200) for i in range(40)]
    for name in names:
        client.ok('vm_create', {'name': name, 'generation': 2, 'memory_startup': 1073741824})
    out, err, rc = client.raw(scripts.build('vm_list', {}))
    assert rc == 0 and err == b''
    assert len(out) > 3 * 8192
    listed = [vm['name'] for vm in json.loads(out)['result']]
    assert set(names) <= set(listed)
    for name in names:
        client.ok('vm_remove', {'name': name})


def test_not_powershell_is_a_cmd_error(sim):
    result = session(sim).run_cmd('ipconfig', ['/all'])
    assert result.status_code == 1
    assert result.std_err == b"'ipconfig' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"


def test_stdin_is_decoded_with_the_shell_codepage(sim):
    client = Client(sim)
    protocol = client.protocol
    shell = protocol.open_shell(codepage=437)
    command_id = protocol.run_command(shell, scripts.bootstrap_command())
    script = scripts.build('host_get', {}, minimal=True).replace("'SilentlyContinue'", "'SilentlyContinue' # h\u00e9")
    protocol.send_command_input(shell, command_id, script.encode('utf-8'), end=True)
    out, err, rc = protocol.get_command_output(shell, command_id)
    protocol.cleanup_command(shell, command_id)
    protocol.close_shell(shell)
    assert rc == 0, err
    assert json.loads(out)['ok'] is True


def test_sigterm_exits_cleanly_and_state_persists(tmp_path):
    state = tmp_path / 'hyperv.json'
    first = Emulator('--time-scale', '0', '--state', str(state))
    try:
        Client(first).ok('vm_create', {'name': 'keeper', 'generation': 1, 'memory_startup': 536870912})
    finally:
        assert first.stop() == 0
    assert 'keeper' in state.read_text()
    second = Emulator('--time-scale', '0', '--state', str(state))
    try:
        vm = Client(second).ok('vm_get', {'name': 'keeper'})
        assert (vm['generation'], vm['state']) == (1, 'Off')
    finally:
        assert second.stop() == 0


def test_non_ascii_names_round_trip_as_utf8(client):
    name = 'w\u00ebb-\u00fc\u6f22'
    created = client.ok('vm_create', {'name': name, 'generation': 2, 'memory_startup': 1073741824})
    out, err, rc = client.raw(scripts.build('vm_get', {'name': name}))
    assert (rc, err) == (0, b'')
    assert name.encode('utf-8') in out
    assert json.loads(out.decode('utf-8'))['result']['id'] == created['id']
    client.ok('vm_remove', {'name': name})
