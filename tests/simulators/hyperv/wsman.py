# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""WS-Management over HTTP: the WinRS subset (Create, Command, Send, Receive, Signal, Delete)."""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape, quoteattr

from .._journal import Journal, JournalingHandler
from .contract import Engine, Result, script_operation

NS = {
    's': 'http://www.w3.org/2003/05/soap-envelope',
    'a': 'http://schemas.xmlsoap.org/ws/2004/08/addressing',
    'x': 'http://schemas.xmlsoap.org/ws/2004/09/transfer',
    'w': 'http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd',
    'rsp': 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell',
    'p': 'http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd',
    'f': 'http://schemas.microsoft.com/wbem/wsman/1/wsmanfault',
}
TRANSFER = 'http://schemas.xmlsoap.org/ws/2004/09/transfer/'
SHELL = 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/'
CMD_URI = 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd'
STATE_DONE = SHELL + 'CommandState/Done'
STATE_RUNNING = SHELL + 'CommandState/Running'
USERS = {'Administrator': ('polyvirt-sim', True), 'operator': ('polyvirt-sim', False)}
CHUNK = 8 * 1024

TIMEOUT_FAULT = 2150858793
SHELL_NOT_FOUND = 2150858843
TIMEOUT_TEXT = 'The WS-Management service cannot complete the operation within the time specified in OperationTimeout.'


class Fault(Exception):
    def __init__(self, code, subcode, reason, wsman_code, status=500):
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.wsman_code = wsman_code
        self.status = status


def parse_duration(text, default=20.0):
    match = re.match(r'^PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$', (text or '').strip())
    if not match:
        return default
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


class Command:
    """One process started in a shell."""

    def __init__(self, shell, command_id):
        self.shell = shell
        self.id = command_id
        self.cond = threading.Condition()
        self.stdout = b''
        self.stderr = b''
        self.done = False
        self.rc = None
        self.stdin = []
        self.waiting_stdin = False
        self.flags = []
        self.terminated = False

    def finish(self, result):
        with self.cond:
            if self.terminated:
                return
            self.stdout += result.stdout
            self.stderr += result.stderr
            self.rc = result.rc
            self.done = True
            self.cond.notify_all()

    def take(self, timeout):
        """Wait up to ``timeout`` for output or completion; returns (stdout, stderr, done, rc) or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.stdout or self.stderr or self.done):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            out, self.stdout = self.stdout[:CHUNK], self.stdout[CHUNK:]
            err, self.stderr = self.stderr[:CHUNK], self.stderr[CHUNK:]
            finished = self.done and not self.stdout and not self.stderr
            return out, err, finished, self.rc


class Shell:
    def __init__(self, shell_id, user, admin, codepage):
        self.id = shell_id
        self.user = user
        self.admin = admin
        self.codepage = codepage
        self.commands = {}


class WinRS:
    """Shells and commands, shared by all HTTP handler threads."""

    def __init__(self, engine):
        self.engine = engine
        self.shells = {}
        self.lock = threading.Lock()

    def shell(self, shell_id):
        with self.lock:
            shell = self.shells.get(shell_id)
        if shell is None:
            raise Fault('s:Sender', 'w:InvalidSelectors',
                        'The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the server. '
                        'Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. '
                        'Provide the correct ShellId or create a new shell and retry the operation. ' % shell_id, SHELL_NOT_FOUND)
        return shell

    def command(self, shell, command_id):
        command = shell.commands.get(command_id)
        if command is None:
            raise Fault('s:Sender', 'w:InvalidParameter', 'The parameter is incorrect. (CommandId %s)' % command_id, 2150858882)
        return command

    def start(self, command, script, from_stdin):
        def work():
            try:
                result = self.engine.run(script, command.flags, command.shell.admin, from_stdin=from_stdin)
            except Exception as exc:  # pylint: disable=broad-except
                result = Result(stderr=('polyvirt-sim internal error: %r\r\n' % exc).encode('utf-8'), rc=1)
            command.finish(result)
        threading.Thread(target=work, daemon=True).start()


def selector(header, name):
    for node in header.iter('{%s}Selector' % NS['w']):
        if node.get('Name') == name:
            return (node.text or '').strip()
    return None


def option(header, name):
    for node in header.iter('{%s}Option' % NS['w']):
        if node.get('Name') == name:
            return (node.text or '').strip()
    return None


class Handler(JournalingHandler, BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True
    server_version = 'Microsoft-HTTPAPI/2.0'
    sys_version = ''

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        return

    def send_body(self, status, body, content_type='application/soap+xml;charset=UTF-8', extra=None):
        data = body.encode('utf-8') if isinstance(body, str) else body
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def user(self):
        if self.server.faults.get('auth') is not None:
            return None
        auth = self.headers.get('Authorization', '')
        if not auth.lower().startswith('basic '):
            return None
        try:
            name, _sep, password = base64.b64decode(auth[6:].strip()).decode('utf-8').partition(':')
        except (ValueError, UnicodeDecodeError):
            return None
        name = name.split('\\')[-1]
        for known, (secret, admin) in USERS.items():
            if known.lower() == name.lower() and secret == password:
                return known, admin
        return None

    def do_GET(self):  # pylint: disable=invalid-name
        if not self.answer_journal():
            self.send_body(405, b'', 'text/plain')

    def do_DELETE(self):  # pylint: disable=invalid-name
        # only the journal takes DELETE; elsewhere it stays the unsupported method it was
        if not self.answer_journal():
            self.send_error(501, 'Unsupported method (%r)' % self.command)

    def do_POST(self):  # pylint: disable=invalid-name
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        if self.answer_journal():
            return
        if self.path.split('?')[0].rstrip('/').lower() != '/wsman':
            self.send_body(404, b'', 'text/plain')
            return
        who = self.user()
        if who is None:
            self.send_body(401, b'', 'text/plain', {'WWW-Authenticate': 'Basic realm="WSMAN"'})
            return
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            self.send_body(400, b'', 'text/plain')
            return
        header = root.find('s:Header', NS)
        soap_body = root.find('s:Body', NS)
        if header is None or soap_body is None:
            self.send_body(400, b'', 'text/plain')
            return
        action = (header.findtext('a:Action', '', NS) or '').strip()
        if action:
            self.note_journal(action=action.rsplit('/', 1)[-1])
        message_id = (header.findtext('a:MessageID', '', NS) or '').strip()
        try:
            reply_action, reply = self.dispatch(action, header, soap_body, who)
        except Fault as fault:
            self.send_body(fault.status, fault_envelope(fault, message_id))
            return
        self.send_body(200, envelope(reply_action, message_id, reply))

    def dispatch(self, action, header, body, who):
        winrs = self.server.winrs
        resource = (header.findtext('w:ResourceURI', '', NS) or '').strip()
        timeout = parse_duration(header.findtext('w:OperationTimeout', '', NS))
        if action == TRANSFER + 'Create':
            if resource != CMD_URI:
                raise Fault('s:Sender', 'w:DestinationUnreachable', 'The WS-Management service cannot process the request. The resource URI '
                            '%s is not supported by this emulator (only the cmd shell).' % resource, 2150858770)
            shell_el = body.find('rsp:Shell', NS)
            codepage = option(header, 'WINRS_CODEPAGE') or '437'
            shell_id = str(uuid.uuid4()).upper()
            shell = Shell(shell_id, who[0], who[1], codepage)
            with winrs.lock:
                winrs.shells[shell_id] = shell
            inputs = shell_el.findtext('rsp:InputStreams', 'stdin', NS) if shell_el is not None else 'stdin'
            outputs = shell_el.findtext('rsp:OutputStreams', 'stdout stderr', NS) if shell_el is not None else 'stdout stderr'
            address = 'http://%s:%d/wsman' % self.server.server_address[:2]
            reply = (
                '<x:ResourceCreated><a:Address>%s</a:Address><a:ReferenceParameters><w:ResourceURI>%s</w:ResourceURI>'
                '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>'
                '<rsp:Shell><rsp:ShellId>%s</rsp:ShellId><rsp:ResourceUri>%s</rsp:ResourceUri><rsp:Owner>%s</rsp:Owner>'
                '<rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>%s</rsp:InputStreams>'
                '<rsp:OutputStreams>%s</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>'
                '<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>'
                % (escape(address), CMD_URI, shell_id, shell_id, CMD_URI, escape(who[0]), escape(inputs), escape(outputs)))
            return TRANSFER + 'CreateResponse', reply
        if action == TRANSFER + 'Delete':
            shell = winrs.shell(selector(header, 'ShellId'))
            with winrs.lock:
                winrs.shells.pop(shell.id, None)
            return TRANSFER + 'DeleteResponse', ''
        shell = winrs.shell(selector(header, 'ShellId'))
        if action == SHELL + 'Command':
            return SHELL + 'CommandResponse', self.do_command(shell, header, body)
        if action == SHELL + 'Send':
            for stream in body.iter('{%s}Stream' % NS['rsp']):
                command = winrs.command(shell, stream.get('CommandId'))
                if stream.text:
                    command.stdin.append(base64.b64decode(stream.text))
                if (stream.get('End') or '').lower() == 'true' and command.waiting_stdin:
                    command.waiting_stdin = False
                    data = b''.join(command.stdin)
                    encoding = 'utf-8' if shell.codepage == '65001' else 'cp437'
                    text = data.decode(encoding, 'replace').lstrip('\ufeff')
                    self.run_script(command, text, True)
            return SHELL + 'SendResponse', '<rsp:SendResponse/>'
        if action == SHELL + 'Receive':
            desired = body.find('rsp:Receive/rsp:DesiredStream', NS)
            command = winrs.command(shell, desired.get('CommandId') if desired is not None else None)
            taken = command.take(timeout)
            if taken is None:
                raise Fault('s:Receiver', 'w:TimedOut', TIMEOUT_TEXT, TIMEOUT_FAULT)
            out, err, finished, rc = taken
            parts = ['<rsp:ReceiveResponse>']
            cid = quoteattr(command.id)
            if out:
                parts.append('<rsp:Stream Name="stdout" CommandId=%s>%s</rsp:Stream>' % (cid, base64.b64encode(out).decode()))
            if err:
                parts.append('<rsp:Stream Name="stderr" CommandId=%s>%s</rsp:Stream>' % (cid, base64.b64encode(err).decode()))
            if finished:
                parts.append('<rsp:Stream Name="stdout" CommandId=%s End="true"></rsp:Stream>' % cid)
                parts.append('<rsp:Stream Name="stderr" CommandId=%s End="true"></rsp:Stream>' % cid)
                parts.append('<rsp:CommandState CommandId=%s State="%s"><rsp:ExitCode>%d</rsp:ExitCode></rsp:CommandState>'
                             % (cid, STATE_DONE, rc))
            else:
                parts.append('<rsp:CommandState CommandId=%s State="%s"/>' % (cid, STATE_RUNNING))
            parts.append('</rsp:ReceiveResponse>')
            return SHELL + 'ReceiveResponse', ''.join(parts)
        if action == SHELL + 'Signal':
            signal = body.find('rsp:Signal', NS)
            command_id = signal.get('CommandId') if signal is not None else None
            command = shell.commands.pop(command_id, None)
            if command is not None:
                with command.cond:
                    command.terminated = True
                    command.cond.notify_all()
            return SHELL + 'SignalResponse', '<rsp:SignalResponse/>'
        raise Fault('s:Sender', 'a:ActionNotSupported', 'The action %s is not supported by the service.' % action, 2150858769)

    def run_script(self, command, script, from_stdin):
        operation = script_operation(script)
        if operation:
            self.note_journal(op=operation)  # so a test can tell the mutating scripts from the reads
        self.server.winrs.start(command, script, from_stdin)

    def do_command(self, shell, header, body):
        line = body.find('rsp:CommandLine', NS)
        command_text = (line.findtext('rsp:Command', '', NS) if line is not None else '').strip().strip('"')
        arguments = [a.text or '' for a in line.findall('rsp:Arguments', NS)] if line is not None else []
        command = Command(shell, str(uuid.uuid4()).upper())
        shell.commands[command.id] = command
        length = len(command_text) + sum(len(a) + 1 for a in arguments)
        skip_cmd = (option(header, 'WINRS_SKIP_CMD_SHELL') or 'FALSE').upper() == 'TRUE'
        if length > (32767 if skip_cmd else 8191):
            message = 'The command line is too long.\r\n' if not skip_cmd else 'The filename or extension is too long.\r\n'
            command.finish(Result(stderr=message.encode('utf-8'), rc=1))
            return '<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>' % command.id
        prepared = self.server.winrs.engine.prepare(command_text, arguments)
        if prepared[0] == 'done':
            command.finish(prepared[1])
        elif prepared[0] == 'stdin':
            command.flags = prepared[1]
            command.waiting_stdin = True
        else:
            command.flags = prepared[1]
            self.run_script(command, prepared[2], False)
        return '<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse>' % command.id


def envelope(action, relates_to, body):
    return (
        '<s:Envelope xml:lang="en-US" xmlns:s="%(s)s" xmlns:a="%(a)s" xmlns:x="%(x)s" xmlns:w="%(w)s" xmlns:rsp="%(rsp)s" xmlns:p="%(p)s">'
        '<s:Header><a:Action>%(action)s</a:Action><a:MessageID>uuid:%(mid)s</a:MessageID>'
        '<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%(rel)s</a:RelatesTo></s:Header>'
        '<s:Body>%(body)s</s:Body></s:Envelope>'
        % dict(NS, action=action, mid=str(uuid.uuid4()).upper(), rel=escape(relates_to), body=body))


def fault_envelope(fault, relates_to):
    reason = escape(fault.reason)
    body = (
        '<s:Fault><s:Code><s:Value>%s</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code>'
        '<s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason><s:Detail>'
        '<f:WSManFault xmlns:f="%s" Code="%d" Machine="127.0.0.1"><f:Message>%s</f:Message></f:WSManFault></s:Detail></s:Fault>'
        % (fault.code, fault.subcode, reason, NS['f'], fault.wsman_code, reason))
    return envelope('http://schemas.dmtf.org/wbem/wsman/1/wsman/fault', relates_to, body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, host):
        super().__init__(address, Handler)
        self.faults = host.faults
        self.journal = Journal()
        self.winrs = WinRS(Engine(host))
