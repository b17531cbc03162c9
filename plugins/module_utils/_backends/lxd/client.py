# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small LXD REST client (unix socket or HTTPS with a client certificate), stdlib only.

Why not pylxd here: importing pylxd (and requests under it) costs about 0.35 s per task, more than a
whole idempotent check; LXD's REST API is simple enough that one keep-alive connection, JSON and the
operation ``/wait`` endpoint cover everything the driver needs. Knows nothing of Ansible.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from urllib.parse import quote, urlencode, urlsplit

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import (
    AuthError,
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    OperationFailed,
    PolyvirtError,
    WaitTimeout,
)
from ansible_collections.polyvirt.compute.plugins.module_utils._retry import retry
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline

# Debian/Ubuntu package first, then the snap; LXD_DIR overrides both, as for the lxc client.
UNIX_SOCKETS = ("/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket")
CHUNK = 1024 * 1024


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("lxd", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def default_socket():
    if os.environ.get("LXD_DIR"):
        return os.path.join(os.environ["LXD_DIR"], "unix.socket")
    for path in UNIX_SOCKETS:
        if os.path.exists(path):
            return path
    return UNIX_SOCKETS[0]


class LxdClient:
    """One LXD endpoint and project. ``request`` returns the response's ``metadata``."""

    def __init__(self, url=None, client_cert=None, client_key=None, validate_certs=True, ca_path=None, project="default", target=None, timeout=60):
        self.project = project or "default"
        self.target = target
        self._timeout = timeout
        self._conn = None
        if not url or url.startswith("unix:"):
            self._socket = url[len("unix:"):] if url else default_socket()
            if not self._socket:
                raise InvalidInput("connection.url %r names no socket; use unix:/path/to/unix.socket or https://host:port" % url)
            self.endpoint = "unix:" + self._socket
        else:
            try:
                parts = urlsplit(url)
                port = parts.port
            except ValueError:  # a bad port, or an unclosed [IPv6 literal
                parts, port = None, -1
            if port == -1 or parts.scheme != "https" or not parts.hostname:
                raise InvalidInput("connection.url must be unix:/path/to/socket or https://host:port, got %r" % url)
            for option, path in (("client_cert", client_cert), ("client_key", client_key), ("ca_path", ca_path)):
                if path is not None and not os.path.isfile(path):  # a directory too: ssl would fail obscurely
                    raise InvalidInput("connection.%s %s is not a file" % (option, path))
            self._socket = None
            self._host, self._port = parts.hostname, port or 8443
            self._tls = (client_cert, client_key, validate_certs, ca_path)
            self.endpoint = url

    # -- plumbing -------------------------------------------------------------------------------

    def _connection(self):
        if self._conn is None:
            if self._socket:
                self._conn = _UnixConnection(self._socket, self._timeout)
            else:
                import ssl  # only HTTPS remotes pay for ssl

                cert, key, verify, ca_path = self._tls
                try:
                    context = ssl.create_default_context(cafile=ca_path)
                except ssl.SSLError as exc:
                    raise InvalidInput("connection.ca_path %s holds no usable PEM certificate: %s" % (ca_path, exc))
                if not verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if cert:
                    try:
                        context.load_cert_chain(cert, key)
                    except ssl.SSLError as exc:
                        raise InvalidInput("connection.client_cert %s and connection.client_key %s are not a PEM certificate and its key: %s" % (
                            cert, key, exc))
                self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=context)
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _url(self, path, query=None, project=True):
        params = dict(query or {})
        if project and self.project != "default":
            params.setdefault("project", self.project)
        return path + ("?" + urlencode(params) if params else "")

    def _send(self, method, url, body=None, headers=None, timeout=None):
        """Send one request, reconnecting once if a kept-alive connection went stale."""
        for attempt in (1, 2):
            conn = self._connection()
            if hasattr(body, "seek"):
                body.seek(0)  # a file body (an upload) was read to its end by the attempt before
            try:
                conn.timeout = timeout or self._timeout
                if conn.sock is not None:
                    conn.sock.settimeout(conn.timeout)
                conn.request(method, url, body=body, headers=headers or {})
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise BackendUnavailable("LXD at %s closed the connection" % self.endpoint)
            except socket.timeout:
                self.close()
                raise WaitTimeout("LXD at %s did not answer %s %s within %s s" % (self.endpoint, method, url, conn.timeout))
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise BackendUnavailable("LXD is not reachable at %s: %s" % (self.endpoint, exc))
        return None  # not reached

    def request(self, method, path, body=None, query=None, timeout=None, project=True):
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        response = self._send(method, self._url(path, query, project), data, headers, timeout)
        raw = response.read()
        try:
            payload = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            raise OperationFailed("LXD answered %s %s with HTTP %s and a body that is not JSON" % (method, path, response.status))
        if payload.get("type") == "error" or response.status >= 400:
            raise error_for(payload.get("error_code") or response.status, payload.get("error") or response.reason)
        if payload.get("type") == "async":
            return payload  # the caller waits on payload["operation"]
        return payload.get("metadata")

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def get_or_none(self, path, **kwargs):
        try:
            return self.request("GET", path, **kwargs)
        except NotFound:
            return None

    # -- operations -----------------------------------------------------------------------------

    def wait(self, operation, timeout):
        """Block on LXD's own completion signal (``/operations/<id>/wait``) and return its metadata.

        ``operation`` is an async response or its URL. A failed operation raises OperationFailed with
        LXD's ``err``; running past ``timeout`` raises WaitTimeout (the operation keeps running).
        """
        url = operation["operation"] if isinstance(operation, dict) else operation
        remaining = max(int(timeout), 1)
        # LXD answers when the operation ends or its own timeout passes; give the socket a margin.
        meta = self.request("GET", url + "/wait", query={"timeout": remaining}, timeout=remaining + 15, project=False)
        status = (meta or {}).get("status")
        if status == "Success":
            return meta
        if status in ("Failure", "Cancelled"):
            raise OperationFailed(meta.get("err") or "operation %s" % status.lower())
        raise WaitTimeout("the LXD operation %s was still %s after %s s" % (url, status, remaining))

    def run(self, method, path, body=None, timeout=600, query=None):
        """A request that may be asynchronous: wait for its operation and return the result metadata.

        LXD refuses a change while another operation holds the instance (the operation fails with "Instance
        is busy running a "create" operation"): that refusal changed nothing, so it is retried inside ``timeout``.
        """
        deadline = Deadline(timeout)

        def attempt():
            result = self.request(method, path, body=body, query=query)
            if isinstance(result, dict) and result.get("type") == "async":
                return self.wait(result, deadline.remaining())
            return result

        return retry(attempt, deadline, is_busy)

    def get_text(self, path):
        """A plain-text resource (exec output logs are served as text, not JSON)."""
        response = self._send("GET", self._url(path))
        body = response.read()
        if response.status >= 400:
            raise error_for(response.status, body.decode("utf-8", "replace")[:500] or response.reason)
        return body.decode("utf-8", "replace")

    def download(self, path, target_path, query=None, timeout=None):
        """Stream a binary response (a backup export) to ``target_path`` without holding it in memory."""
        response = self._send("GET", self._url(path, query), timeout=timeout)
        if response.status >= 400:
            raw = response.read()
            try:
                payload = json.loads(raw.decode("utf-8"))
            except ValueError:
                payload = {}
            raise error_for(payload.get("error_code") or response.status, payload.get("error") or response.reason)
        size = 0
        with open(target_path, "wb") as handle:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                handle.write(chunk)
                size += len(chunk)
        return size

    def upload(self, path, source_path, headers=None, query=None, timeout=None):
        """POST a file as the raw body (a backup import), streamed from disk; returns the async response."""
        size = os.path.getsize(source_path)
        all_headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        all_headers.update(headers or {})
        with open(source_path, "rb") as handle:
            response = self._send("POST", self._url(path, query), body=handle, headers=all_headers, timeout=timeout)
        payload = json.loads(response.read().decode("utf-8") or "{}")
        if payload.get("type") == "error" or response.status >= 400:
            raise error_for(payload.get("error_code") or response.status, payload.get("error") or response.reason)
        return payload

    @staticmethod
    def quote(name):
        return quote(name, safe="")


def error_for(code, message):
    """Map an LXD error envelope to the collection's exception hierarchy."""
    text = message or "HTTP %s" % code
    if code == 404:
        return NotFound(text)
    if code == 409:
        return Conflict(text)
    if code in (401, 403):
        return AuthError(text)
    if code == 400:
        return InvalidInput(text)
    return PolyvirtError(text) if code is None else OperationFailed(text)


def is_busy(exc):
    """LXD's refusal of a change while another operation runs on the object: nothing was done, so it may be retried."""
    return isinstance(exc, PolyvirtError) and " is busy running " in exc.message
