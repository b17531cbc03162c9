# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""WinRM transport for the Hyper-V backend, on pywinrm's ``Protocol`` (no Ansible here).

One WinRS shell per client (one per task), opened on first use with codepage 65001 and reused for
every script. Each script runs through a short ``-EncodedCommand`` bootstrap that reads the script
from stdin, so no script meets cmd.exe's 8191-character command-line limit. A script prints the
contract's one-line JSON; ``{"ok": false}`` becomes a collection error with PowerShell's message.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import (
    AuthError, BackendUnavailable, Conflict, InvalidInput, MissingLibrary, NotFound, OperationFailed, WaitTimeout,
)

try:
    import winrm
    from winrm.exceptions import InvalidCredentialsError, WinRMError, WinRMOperationTimeoutError, WinRMTransportError
    import requests
    HAS_WINRM = True
except ImportError:  # reported when a task first needs the transport
    HAS_WINRM = False

    class InvalidCredentialsError(Exception):  # placeholders keep the except clauses below valid
        pass

    class WinRMError(Exception):
        pass

    class WinRMOperationTimeoutError(Exception):
        pass

    class WinRMTransportError(Exception):
        pass

    class requests:  # pylint: disable=invalid-name
        class exceptions:  # pylint: disable=invalid-name
            class SSLError(Exception):
                pass

            class RequestException(Exception):
                pass

BOOTSTRAP = "$s = [Console]::In.ReadToEnd(); & ([ScriptBlock]::Create($s))"
LOOPBACK_NAMES = ("localhost",)
DEFAULT_PORTS = {"http": 5985, "https": 5986}
# WS-Man OperationTimeout per Receive: the server answers at the latest then, and the client asks again.
OPERATION_TIMEOUT = 20
READ_TIMEOUT = OPERATION_TIMEOUT + 10
# Hyper-V's wording, mapped to the collection's errors (the message itself is always PowerShell's).
NOT_FOUND_RE = re.compile(r"unable to find|cannot find|was not found|does not exist", re.IGNORECASE)
DENIED_RE = re.compile(r"required permission|access is denied|unauthorized", re.IGNORECASE)
STATE_RE = re.compile(r"in its current state|being used by another process|already exists|is already", re.IGNORECASE)
CLIXML_STRING_RE = re.compile(r'<S S="Error">(.*?)</S>', re.DOTALL)
CLIXML_ESCAPE_RE = re.compile(r"_x([0-9A-Fa-f]{4})_")
# Optional transports: pywinrm needs these libraries for them (its own flag, the library, how to install it).
EXTRAS = {
    "kerberos": ("HAVE_KERBEROS", "pykerberos (Linux) or winkerberos (Windows): pip install pywinrm[kerberos]"),
    "credssp": ("HAVE_CREDSSP", "requests-credssp: pip install pywinrm[credssp]"),
    "ntlm": ("HAVE_NTLM", "requests_ntlm: pip install pywinrm"),
}


def is_loopback(host):
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoint_url(host, port=None, scheme=None):
    """The WS-Man URL; an IPv6 literal is bracketed (pywinrm's host regex would reject it in a Session)."""
    scheme = scheme or "http"
    host = host.strip()
    if ":" in host.strip("[]") and not host.startswith("["):
        host = "[%s]" % host
    return "%s://%s:%d/wsman" % (scheme, host, port or DEFAULT_PORTS[scheme])


def check_extras(transport):
    if transport in EXTRAS:
        from winrm import transport as winrm_transport  # pylint: disable=import-outside-toplevel

        flag, hint = EXTRAS[transport]
        if not getattr(winrm_transport, flag, False):
            raise MissingLibrary("connection.transport %s needs %s on the host where the module runs" % (transport, hint))


def clixml_text(data):
    """The error text of a CLIXML stream (what powershell.exe writes to stderr over WinRS), or the plain text."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if not text.lstrip().startswith("#< CLIXML"):
        return text.strip()
    parts = [CLIXML_ESCAPE_RE.sub(lambda match: chr(int(match.group(1), 16)), part) for part in CLIXML_STRING_RE.findall(text)]
    return "".join(parts).strip()


def error_for(message):
    """The collection error class for a Hyper-V error message."""
    if DENIED_RE.search(message):
        return AuthError
    if NOT_FOUND_RE.search(message):
        return NotFound
    if STATE_RE.search(message):
        return Conflict
    return OperationFailed


class HyperVClient:
    """Runs contract scripts on one Hyper-V host over WinRM and returns their ``result``."""

    def __init__(self, host, port=None, scheme=None, username=None, password=None, transport=None, validate_certs=True, ca_path=None):
        self.scheme = scheme or "http"
        self.transport = transport or "ntlm"
        self.host = host
        self.endpoint = endpoint_url(host, port, self.scheme)
        if self.transport == "basic" and self.scheme != "https" and not is_loopback(host):
            raise InvalidInput("connection.transport basic sends the password in clear text over http: use scheme https, or ntlm, kerberos "
                               "or credssp (which encrypt the messages)")
        self.username = username
        self._password = password
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self._protocol = None
        self._shell = None
        self.scripts_run = 0

    def _connect(self):
        if not HAS_WINRM:
            raise MissingLibrary("the hyperv backend needs the Python library pywinrm (pip install pywinrm) on the host where the module runs")
        check_extras(self.transport)
        self._protocol = winrm.Protocol(
            self.endpoint,
            transport="plaintext" if self.transport == "basic" else self.transport,
            username=self.username,
            password=self._password,
            server_cert_validation="validate" if self.validate_certs else "ignore",
            # an explicit CA (or the default store), never REQUESTS_CA_BUNDLE silently
            ca_trust_path=self.ca_path,
            message_encryption="never" if self.transport == "basic" else "auto",
            operation_timeout_sec=OPERATION_TIMEOUT,
            read_timeout_sec=READ_TIMEOUT,
            proxy=None,
        )
        self._shell = self._call(self._protocol.open_shell, codepage=65001, noprofile=True)

    def _call(self, function, *args, **kwargs):
        """A pywinrm call with its exceptions turned into the collection's."""
        try:
            return function(*args, **kwargs)
        except InvalidCredentialsError as exc:
            raise AuthError("the WinRM server at %s refused the credentials of %s (%s)" % (self.endpoint, self.username, exc))
        except requests.exceptions.SSLError as exc:
            raise BackendUnavailable("TLS to %s failed: %s" % (self.endpoint, exc))
        except requests.exceptions.RequestException as exc:
            raise BackendUnavailable("the WinRM server at %s is not reachable: %s" % (self.endpoint, exc))
        except WinRMTransportError as exc:
            raise BackendUnavailable("the WinRM server at %s answered HTTP %s: %s" % (self.endpoint, exc.code, (exc.response_text or "")[:300]))
        except WinRMOperationTimeoutError:
            raise
        except WinRMError as exc:
            raise OperationFailed("WinRM error from %s: %s" % (self.endpoint, exc))

    def run(self, op, script, deadline):
        """Run one contract script (text from scripts.build) and return its ``result``.

        The wait for output is bounded by ``deadline``: a script still running then is stopped and
        WaitTimeout is raised (Hyper-V itself may still finish the operation).
        """
        if self._shell is None:
            self._connect()
        protocol = self._protocol
        arguments = ["-NoProfile", "-NonInteractive", "-EncodedCommand", encode(BOOTSTRAP)]
        command = self._call(protocol.run_command, self._shell, "powershell.exe", arguments)
        self.scripts_run += 1
        try:
            self._call(protocol.send_command_input, self._shell, command, script.encode("utf-8"), end=True)
            stdout, stderr, code = self._receive(command, deadline, op)
        finally:
            try:
                protocol.cleanup_command(self._shell, command)
            except Exception:  # pylint: disable=broad-except
                pass  # the answer is what matters; a shell that is gone is closed at the end of the task
        return parse_output(op, stdout, stderr, code)

    def _receive(self, command, deadline, op):
        out, err = [], []
        while True:
            if deadline.remaining() <= 0:
                raise WaitTimeout("timed out after %s s waiting for the Hyper-V operation %s to finish" % (deadline.seconds, op))
            try:
                stdout, stderr, code, done = self._call(self._protocol.get_command_output_raw, self._shell, command)
            except WinRMOperationTimeoutError:
                continue  # no output yet: the command is still running
            out.append(stdout)
            err.append(stderr)
            if done:
                return b"".join(out), b"".join(err), code

    def close(self):
        if self._shell is not None:
            try:
                self._protocol.close_shell(self._shell)
            except Exception:  # pylint: disable=broad-except
                pass
            self._shell = None


def encode(script):
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def parse_output(op, stdout, stderr, code):
    """The ``result`` of the contract's JSON line; errors keep PowerShell's message."""
    text = stdout.decode("utf-8", "replace").strip()
    line = text.splitlines()[-1] if text else ""
    try:
        answer = json.loads(line) if line else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "ok" in answer:
        if answer["ok"]:
            return answer.get("result")
        message = answer.get("error") or "unknown error"
        raise error_for(message)(message)
    # No contract JSON: PowerShell failed before the script's try (a parse error, a missing module).
    # Warnings (WARNING: ... already in the specified state) also arrive on stderr, so stderr alone is no failure.
    detail = clixml_text(stderr) or text or "exit code %s" % code
    raise OperationFailed("PowerShell failed running %s: %s" % (op, detail))
