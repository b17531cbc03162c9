# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The LXD transport (client.py) against a real HTTP server on a unix socket in the test's directory (never a real LXD)."""

import http.client
import http.server
import json
import os
import socketserver
import ssl
import tempfile
import threading

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils import _retry, _wait
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd import client as lxd_client
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.client import LxdClient, error_for, is_busy
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
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.lxd.fake_lxd import Response

BUSY = "Instance is busy running a create operation"


def sync(metadata, status=200):
    return status, {"type": "sync", "status": "Success", "status_code": 200, "metadata": metadata}


def error(code, message):
    return code, {"type": "error", "error": message, "error_code": code}


def operation(status, err=""):
    return sync({"id": "op1", "status": status, "status_code": 200, "err": err, "metadata": {"done": True}})


ASYNC = (202, {"type": "async", "status": "Operation created", "operation": "/1.0/operations/op1", "metadata": {"id": "op1"}})


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # quiet; and unix sockets have no client address to log

    def handle(self):
        self.server.connections += 1
        super().handle()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        answer = self.server.next_answer(self.command, self.path.split("?", 1)[0])
        if answer == "hang":
            self.server.release.wait(10)
            return
        status, payload = answer[:2]
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if "drop" in answer[2:]:
            self.close_connection = True  # without saying so: the client's kept-alive connection goes stale

    do_GET = do_POST = do_PUT = do_DELETE = _answer


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path):
        super().__init__(path, Handler)
        self.answers = {}
        self.seen = []
        self.connections = 0
        self.release = threading.Event()

    def answer(self, method, path, *responses):
        self.answers.setdefault((method, path), []).extend(responses)

    def next_answer(self, method, path):
        queued = self.answers.get((method, path))
        if not queued:
            return error(404, "not found")
        return queued.pop(0) if len(queued) > 1 else queued[0]  # the last answer repeats

    def paths(self):
        return [(method, path.split("?", 1)[0]) for method, path, _headers, _body in self.seen]


@pytest.fixture(name="lxd")
def fixture_lxd(tmp_path):
    """An HTTP server on ``<tmp>/lxd.socket`` and an LxdClient connected to it."""
    directory = str(tmp_path)
    short = None
    if len(os.path.join(directory, "lxd.socket")) > 100:  # unix socket paths are limited to about 108 bytes
        short = directory = tempfile.mkdtemp(prefix="pv-", dir="/tmp")
    path = os.path.join(directory, "lxd.socket")
    server = Server(path)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    client = LxdClient(url="unix:" + path, timeout=5)
    client.server = server
    yield client
    client.close()
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)
    if short:
        os.remove(path)
        os.rmdir(short)


class FakeClock:
    """monotonic() and sleep() for _wait and _retry: sleeping advances the clock and is recorded."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(name="clock")
def fixture_clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_wait, "time", clock)
    monkeypatch.setattr(_retry, "time", clock)
    return clock


# -- endpoints ------------------------------------------------------------------------------------


def test_unix_with_a_path():
    client = LxdClient(url="unix:/run/lxd/unix.socket")
    assert client.endpoint == "unix:/run/lxd/unix.socket" and client._conn is None  # pylint: disable=protected-access


def test_unix_without_a_path_is_refused():
    with pytest.raises(InvalidInput) as caught:
        LxdClient(url="unix:")
    assert caught.value.message == "connection.url 'unix:' names no socket; use unix:/path/to/unix.socket or https://host:port"


def test_the_default_socket_follows_lxd_dir(monkeypatch):
    monkeypatch.setenv("LXD_DIR", "/srv/lxd")
    assert LxdClient().endpoint == "unix:/srv/lxd/unix.socket"


def test_the_default_socket_is_the_first_that_exists(monkeypatch, tmp_path):
    monkeypatch.delenv("LXD_DIR", raising=False)
    package, snap = str(tmp_path / "package.socket"), str(tmp_path / "snap.socket")
    monkeypatch.setattr(lxd_client, "UNIX_SOCKETS", (package, snap))
    assert LxdClient().endpoint == "unix:" + package  # none exists: the package's
    (tmp_path / "snap.socket").write_text("")
    assert LxdClient().endpoint == "unix:" + snap


@pytest.mark.parametrize("url, host, port", [
    ("https://lxd.example", "lxd.example", 8443),
    ("https://lxd.example:9443", "lxd.example", 9443),
    ("https://[fd00::1]:8443", "fd00::1", 8443),
])
def test_https_endpoints(url, host, port):
    client = LxdClient(url=url)
    assert (client._host, client._port, client.endpoint) == (host, port, url)  # pylint: disable=protected-access
    assert client._conn is None  # nothing is connected before the first request  # pylint: disable=protected-access


@pytest.mark.parametrize("url", ["https://lxd.example:99999", "https://lxd.example:port", "http://lxd.example:8443", "https://:8443",
                                 "lxd.example:8443", "ftp://lxd.example"])
def test_bad_urls_are_refused(url):
    with pytest.raises(InvalidInput) as caught:
        LxdClient(url=url)
    assert caught.value.message == "connection.url must be unix:/path/to/socket or https://host:port, got %r" % url


@pytest.mark.parametrize("option", ["client_cert", "client_key", "ca_path"])
def test_missing_certificate_files_name_the_option(option, tmp_path):
    for missing in ("/nonexistent/file.pem", str(tmp_path)):  # absent, or a directory
        with pytest.raises(InvalidInput) as caught:
            LxdClient(url="https://lxd.example:8443", **{option: missing})
        assert caught.value.message == "connection.%s %s is not a file" % (option, missing)


def test_a_ca_path_that_holds_no_certificate_is_refused_on_connecting(tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("junk\n")
    client = LxdClient(url="https://lxd.example:8443", ca_path=str(junk))
    with pytest.raises(InvalidInput) as caught:
        client._connection()  # pylint: disable=protected-access
    assert caught.value.message.startswith("connection.ca_path %s holds no usable PEM certificate" % junk)


def test_a_client_cert_that_is_no_certificate_is_refused_on_connecting(tmp_path):
    junk = tmp_path / "client.crt"
    junk.write_text("junk\n")
    client = LxdClient(url="https://lxd.example:8443", client_cert=str(junk), client_key=str(junk))
    with pytest.raises(InvalidInput) as caught:
        client._connection()  # pylint: disable=protected-access
    assert caught.value.message.startswith("connection.client_cert %s and connection.client_key %s are not a PEM certificate and its key" % (junk, junk))


@pytest.mark.parametrize("validate, mode, hostname", [(True, ssl.CERT_REQUIRED, True), (False, ssl.CERT_NONE, False)])
def test_validate_certs(validate, mode, hostname):
    connection = LxdClient(url="https://lxd.example:8443", validate_certs=validate)._connection()  # pylint: disable=protected-access
    assert connection._context.verify_mode == mode and connection._context.check_hostname is hostname  # pylint: disable=protected-access


# -- requests and errors --------------------------------------------------------------------------


def test_a_get_returns_the_metadata_on_one_kept_alive_connection(lxd):
    lxd.server.answer("GET", "/1.0", sync({"api_extensions": ["cloud_init"]}))
    assert lxd.get("/1.0") == {"api_extensions": ["cloud_init"]}
    assert lxd.get("/1.0") == {"api_extensions": ["cloud_init"]}
    assert lxd.server.paths() == [("GET", "/1.0"), ("GET", "/1.0")]
    assert lxd.server.connections == 1


def test_the_project_goes_into_the_query(lxd):
    lxd.project = "demo"
    lxd.server.answer("GET", "/1.0/instances/web1", sync({"name": "web1"}))
    lxd.server.answer("GET", "/1.0/projects/demo", sync({"name": "demo"}))
    lxd.get("/1.0/instances/web1", query={"recursion": 1})
    lxd.get("/1.0/projects/demo", project=False)
    assert [path for _method, path, _headers, _body in lxd.server.seen] == ["/1.0/instances/web1?recursion=1&project=demo", "/1.0/projects/demo"]


def test_a_body_is_sent_as_json(lxd):
    lxd.server.answer("PUT", "/1.0/instances/web1", sync({}))
    lxd.request("PUT", "/1.0/instances/web1", body={"config": {"limits.cpu": "2"}})
    _method, _path, headers, body = lxd.server.seen[0]
    assert headers["Content-Type"] == "application/json" and json.loads(body.decode("utf-8")) == {"config": {"limits.cpu": "2"}}


@pytest.mark.parametrize("code, error_class", [(404, NotFound), (409, Conflict), (401, AuthError), (403, AuthError), (400, InvalidInput),
                                               (500, OperationFailed), (503, OperationFailed)])
def test_error_for(code, error_class):
    found = error_for(code, "LXD says no")
    assert type(found) is error_class and found.message == "LXD says no"  # pylint: disable=unidiomatic-typecheck


def test_error_for_without_a_code_or_message():
    assert type(error_for(None, "?")) is PolyvirtError  # pylint: disable=unidiomatic-typecheck
    assert error_for(500, None).message == "HTTP 500"


def test_an_error_envelope_becomes_the_matching_exception(lxd):
    lxd.server.answer("GET", "/1.0/instances/nope", error(404, "Instance not found"))
    with pytest.raises(NotFound) as caught:
        lxd.get("/1.0/instances/nope")
    assert caught.value.message == "Instance not found"
    assert lxd.get_or_none("/1.0/instances/nope") is None


def test_get_or_none_passes_other_errors_on(lxd):
    lxd.server.answer("GET", "/1.0/instances/web1", error(403, "not authorized"))
    with pytest.raises(AuthError):
        lxd.get_or_none("/1.0/instances/web1")


def test_an_http_error_without_an_envelope_uses_the_status(lxd):
    lxd.server.answer("GET", "/1.0", (500, {}))
    with pytest.raises(OperationFailed) as caught:
        lxd.get("/1.0")
    assert caught.value.message == "Internal Server Error"


def test_a_body_that_is_not_json_is_an_operation_failure(lxd):
    lxd.server.answer("GET", "/1.0", (502, b"<html>bad gateway</html>"))
    with pytest.raises(OperationFailed) as caught:
        lxd.get("/1.0")
    assert caught.value.message == "LXD answered GET /1.0 with HTTP 502 and a body that is not JSON"


def test_an_async_answer_is_returned_for_the_caller_to_wait_on(lxd):
    lxd.server.answer("POST", "/1.0/instances", ASYNC)
    assert lxd.request("POST", "/1.0/instances", body={})["operation"] == "/1.0/operations/op1"


def test_a_socket_nobody_listens_on_is_unavailable(tmp_path):
    client = LxdClient(url="unix:%s/missing.socket" % tmp_path)
    with pytest.raises(BackendUnavailable) as caught:
        client.get("/1.0")
    assert caught.value.message.startswith("LXD is not reachable at unix:%s/missing.socket: " % tmp_path)


def test_a_stale_kept_alive_connection_is_reopened_once(lxd):
    lxd.server.answer("GET", "/1.0", sync({"n": 1}) + ("drop",), sync({"n": 2}))
    assert lxd.get("/1.0") == {"n": 1}
    assert lxd.get("/1.0") == {"n": 2}
    assert lxd.server.connections == 2
    assert lxd.server.paths() == [("GET", "/1.0"), ("GET", "/1.0")]  # the second request reached the server once


def test_a_server_that_does_not_answer_times_out(lxd):
    lxd.server.answer("GET", "/1.0", "hang")
    with pytest.raises(WaitTimeout) as caught:
        lxd.request("GET", "/1.0", timeout=0.2)
    assert caught.value.message == "LXD at %s did not answer GET /1.0 within 0.2 s" % lxd.endpoint


# -- operations -----------------------------------------------------------------------------------


def test_wait_success_returns_the_operation(lxd):
    lxd.project = "demo"
    lxd.server.answer("GET", "/1.0/operations/op1/wait", operation("Success"))
    assert lxd.wait(ASYNC[1], 5)["metadata"] == {"done": True}
    assert lxd.server.seen[0][1] == "/1.0/operations/op1/wait?timeout=5"  # operations are not scoped to a project


@pytest.mark.parametrize("status, err, error_class, message", [
    ("Failure", "Failed to start: no vhost_vsock", OperationFailed, "Failed to start: no vhost_vsock"),
    ("Failure", "", OperationFailed, "operation failure"),
    ("Cancelled", "", OperationFailed, "operation cancelled"),
    ("Running", "", WaitTimeout, "the LXD operation /1.0/operations/op1 was still Running after 1 s"),
])
def test_wait_statuses(lxd, status, err, error_class, message):
    lxd.server.answer("GET", "/1.0/operations/op1/wait", operation(status, err))
    with pytest.raises(error_class) as caught:
        lxd.wait("/1.0/operations/op1", 0.4)
    assert caught.value.message == message
    assert lxd.server.seen[0][1] == "/1.0/operations/op1/wait?timeout=1"  # at least a second


def test_run_waits_for_an_operation(lxd):
    lxd.server.answer("PUT", "/1.0/instances/web1/state", ASYNC)
    lxd.server.answer("GET", "/1.0/operations/op1/wait", operation("Success"))
    assert lxd.run("PUT", "/1.0/instances/web1/state", {"action": "start"}, timeout=30)["status"] == "Success"


def test_run_returns_a_sync_answer_as_is(lxd):
    lxd.server.answer("PUT", "/1.0/instances/web1", sync({"ok": True}))
    assert lxd.run("PUT", "/1.0/instances/web1", {}) == {"ok": True}


def test_run_retries_while_lxd_is_busy(lxd, clock):
    lxd.server.answer("PUT", "/1.0/instances/web1/state", error(400, BUSY), error(400, BUSY), ASYNC)
    lxd.server.answer("GET", "/1.0/operations/op1/wait", operation("Success"))
    lxd.run("PUT", "/1.0/instances/web1/state", {"action": "start"}, timeout=30)
    assert lxd.server.paths().count(("PUT", "/1.0/instances/web1/state")) == 3
    assert len(clock.sleeps) == 2 and all(0 < pause <= 1 for pause in clock.sleeps)


def test_run_retries_an_operation_that_failed_as_busy(lxd, clock):
    lxd.server.answer("POST", "/1.0/instances/web1/snapshots", ASYNC)
    lxd.server.answer("GET", "/1.0/operations/op1/wait", operation("Failure", 'Instance is busy running a "create" operation'), operation("Success"))
    assert lxd.run("POST", "/1.0/instances/web1/snapshots", {"name": "s1"}, timeout=30)["status"] == "Success"
    assert lxd.server.paths() == [("POST", "/1.0/instances/web1/snapshots"), ("GET", "/1.0/operations/op1/wait")] * 2
    assert len(clock.sleeps) == 1


def test_run_does_not_retry_a_failed_operation(lxd, clock):
    lxd.server.answer("POST", "/1.0/instances", ASYNC)
    lxd.server.answer("GET", "/1.0/operations/op1/wait", operation("Failure", "Failed creating instance: no space left on device"))
    with pytest.raises(OperationFailed):
        lxd.run("POST", "/1.0/instances", {"name": "web2"}, timeout=30)
    assert lxd.server.paths().count(("POST", "/1.0/instances")) == 1 and clock.sleeps == []


def test_run_does_not_retry_other_refusals(lxd, clock):
    lxd.server.answer("PUT", "/1.0/instances/web1", error(400, "Invalid config key"))
    with pytest.raises(InvalidInput):
        lxd.run("PUT", "/1.0/instances/web1", {}, timeout=30)
    assert len(lxd.server.seen) == 1 and clock.sleeps == []


def test_run_stops_retrying_at_the_deadline(lxd, clock):
    lxd.server.answer("PUT", "/1.0/instances/web1/state", error(400, BUSY))
    with pytest.raises(InvalidInput) as caught:
        lxd.run("PUT", "/1.0/instances/web1/state", {"action": "stop"}, timeout=3)
    assert BUSY in caught.value.message
    assert sum(clock.sleeps) < 3 and len(lxd.server.seen) == len(clock.sleeps) + 1


@pytest.mark.parametrize("message, busy", [(BUSY, True), ("Instance is busy running a delete operation", True), ("Instance is running", False)])
def test_is_busy(message, busy):
    assert is_busy(InvalidInput(message)) is busy
    assert is_busy(ValueError(message)) is False


# -- files ----------------------------------------------------------------------------------------


def test_download_streams_to_a_file(lxd, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    lxd.server.answer("GET", "/1.0/instances/web1/backups/b0/export", (200, data))
    target = tmp_path / "b0.tar"
    assert lxd.download("/1.0/instances/web1/backups/b0/export", str(target)) == len(data)
    assert target.read_bytes() == data


def test_download_maps_errors_and_writes_nothing(lxd, tmp_path):
    lxd.server.answer("GET", "/1.0/instances/web1/backups/nope/export", error(404, "Backup not found"))
    target = tmp_path / "nope.tar"
    with pytest.raises(NotFound) as caught:
        lxd.download("/1.0/instances/web1/backups/nope/export", str(target))
    assert caught.value.message == "Backup not found" and not target.exists()


def test_upload_posts_the_file_as_the_body(lxd, tmp_path):
    source = tmp_path / "b0.tar"
    source.write_bytes(b"tarball" * 1000)
    lxd.server.answer("POST", "/1.0/instances", ASYNC)
    assert lxd.upload("/1.0/instances", str(source), headers={"X-LXD-name": "web2"})["operation"] == "/1.0/operations/op1"
    _method, _path, headers, body = lxd.server.seen[0]
    assert body == source.read_bytes()
    assert headers["Content-Type"] == "application/octet-stream" and headers["X-LXD-name"] == "web2" and headers["Content-Length"] == "7000"


class StaleOverTcp:
    """A kept-alive HTTPS connection the server closed, as TCP shows it: the request is written out whole, then the read fails."""

    def __init__(self):
        self.sock = None
        self.timeout = None
        self.bodies = []

    def request(self, method, url, body=None, headers=None):
        self.bodies.append(body.read() if hasattr(body, "read") else body)

    def getresponse(self):
        if len(self.bodies) == 1:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        return Response(ASYNC[0], json.dumps(ASYNC[1]).encode("utf-8"), reason="Accepted")

    def close(self):
        pass


def test_an_upload_on_a_stale_tcp_connection_is_sent_whole(tmp_path):
    source = tmp_path / "b0.tar"
    source.write_bytes(b"tarball" * 1000)
    client = LxdClient(url="https://lxd.example:8443")
    connection = StaleOverTcp()
    client._connection = lambda: connection  # pylint: disable=protected-access
    client.upload("/1.0/instances", str(source), headers={"X-LXD-name": "web2"})
    assert connection.bodies == [source.read_bytes(), source.read_bytes()]


def test_upload_maps_errors(lxd, tmp_path):
    source = tmp_path / "b0.tar"
    source.write_bytes(b"x")
    lxd.server.answer("POST", "/1.0/instances", error(409, "Instance web2 already exists"))
    with pytest.raises(Conflict):
        lxd.upload("/1.0/instances", str(source), headers={"X-LXD-name": "web2"})


def test_get_text(lxd):
    lxd.server.answer("GET", "/1.0/instances/web1/logs/exec.stdout", (200, b"status: done\n"))
    assert lxd.get_text("/1.0/instances/web1/logs/exec.stdout") == "status: done\n"
    lxd.server.answer("GET", "/1.0/instances/web1/logs/gone", (404, b"not found"))
    with pytest.raises(NotFound) as caught:
        lxd.get_text("/1.0/instances/web1/logs/gone")
    assert caught.value.message == "not found"


def test_quote_escapes_every_separator():
    assert LxdClient.quote("a/b c?d") == "a%2Fb%20c%3Fd"
