# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# The HTTP front: routing of Kubernetes API paths, bearer-token auth, discovery, watch streams.

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .._journal import Journal, JournalingHandler
from .kube import ApiError, bad_request
from .rbac import authorize

TOKEN = "polyvirt-sim"
ADMIN_TOKEN = "polyvirt-sim-admin"
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.4", "gitCommit": "0000000000000000000000000000000000000000",
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.6", "compiler": "gc",
           "platform": "linux/amd64", "emulationMajor": "1", "emulationMinor": "33"}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, api, kubevirt, bookmark_interval=1.0, verbose=False, faults=None, tenant_rbac=None):
        super().__init__(address, Handler)
        self.tenant_rbac = tenant_rbac  # the tenant namespace unless --no-tenant-rbac
        self.api = api
        self.kubevirt = kubevirt
        self.bookmark_interval = bookmark_interval
        self.verbose = verbose
        self.faults = faults
        self.journal = Journal()
        self.stopping = False


class Handler(JournalingHandler, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "polyvirt-hikube-sim"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if self.server.verbose:
            super().log_message(format, *args)

    # ------------------------------------------------------------ plumbing
    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code, payload, ctype="application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        retry = payload.get("details", {}).get("retryAfterSeconds") if isinstance(payload, dict) else None
        if retry is not None:
            self.send_header("Retry-After", str(retry))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, exc):
        self._send(exc.code, exc.status())

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        raw = self._body()   # always read the body: the connection is reused
        if self.answer_journal():
            return
        try:
            self._route(method, raw)
        except ApiError as exc:
            self._error(exc)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # pylint: disable=broad-except
            self._error(ApiError(500, "InternalError", "Internal error occurred: %s: %s" % (type(exc).__name__, exc)))
            if self.server.verbose:
                raise

    def _auth(self, path):
        header = self.headers.get("Authorization", "")
        self.tenant = False
        # Which token asked, in the journal: a test's probe reads with the admin token, so its reads can be told apart.
        self.note_journal(user="admin" if header == "Bearer " + ADMIN_TOKEN else ("tenant" if header == "Bearer " + TOKEN else "anonymous"))
        if header:
            if header == "Bearer " + ADMIN_TOKEN:
                return
            if header != "Bearer " + TOKEN:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self.tenant = self.server.tenant_rbac is not None
            return
        if path not in PUBLIC_PATHS:
            raise ApiError(403, "Forbidden", 'forbidden: User "system:anonymous" cannot get path "%s"' % path)

    # ------------------------------------------------------------ routing
    def _route(self, method, raw):
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self._auth(path)
        if self.server.faults is not None:
            self.server.faults.latency()
        registry = self.server.api.registry
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return self._send(200, VERSION)
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "%s:%d" % self.server.server_address[:2]}]})
        if path == "/apis":
            return self._send(200, registry.group_list())
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            if parts[1] != "v1":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            group = parts[1]
            if len(parts) == 2:
                doc = registry.api_group(group)
                if doc is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return self._send(200, doc)
            version, rest = parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            doc = registry.resource_list(group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._send(200, doc)
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        plural = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if group == "subresources.kubevirt.io" and version == "v1":
            if method != "PUT" or plural != "virtualmachines" or not name or sub not in ("start", "stop", "restart") or not ns:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if self.tenant:
                authorize(self.server.tenant_rbac, "update", group, "%s/%s" % (plural, sub), ns, name)
            self.server.kubevirt.action(ns, name, sub, raw)
            return self._send(202, b"", "text/plain")
        rt = registry.get(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and name is not None and ns is None and plural != "namespaces":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rt.namespaced and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns = ns or ""
        api = self.server.api
        if sub is not None and sub not in ("status",) and not (plural == "namespaces" and sub == "finalize"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "status" and not rt.status:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if self.tenant:
            if method == "GET":
                verb = "watch" if watch or params.get("watch") in ("true", "1") else ("get" if name else "list")
            else:
                verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or ("delete" if name else "deletecollection")
            resource = plural + ("/" + sub if sub else "")
            authorize(self.server.tenant_rbac, verb, group, resource, ns or None, name)
        body = None
        if raw and method in ("POST", "PUT", "DELETE"):
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise bad_request("couldn't get version/kind; json parse error: %s" % exc) from exc
        if method == "GET":
            if watch or params.get("watch") in ("true", "1"):
                if name is not None:
                    params["fieldSelector"] = ",".join(filter(None, [params.get("fieldSelector"), "metadata.name=" + name]))
                return self._watch(rt, ns, params)
            if name is None:
                return self._send(200, api.list(rt, ns or None, params))
            return self._send(200, api.get(rt, ns, name))
        if method == "POST" and name is None:
            return self._send(201, api.create(rt, ns, body, params))
        if method == "PUT" and name is not None:
            return self._send(200, api.update(rt, ns, name, body, params, sub))
        if method == "PATCH" and name is not None:
            return self._send(200, api.patch(rt, ns, name, raw, self.headers.get("Content-Type"), params, sub))
        if method == "DELETE" and name is not None:
            code, out = api.delete(rt, ns, name, body, params)
            return self._send(code, out)
        if method == "DELETE" and name is None:
            return self._send(200, api.delete_collection(rt, ns or None, params, body))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # ------------------------------------------------------------ watch
    def _chunk(self, payload):
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, rt, ns, params):
        api = self.server.api
        store = api.store
        if "watch" not in rt.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        cozy = api.cozy(rt)
        if ns and rt.namespaced and not cozy:
            api.check_namespace(rt, ns)
        labels, fields = api.parse_selectors(rt, params)
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        if cozy:
            # rest.go: the resourceVersion is not forwarded to the HelmRelease watch (it starts from the current
            # state, so never a 410) and bookmarks come only with sendInitialEvents (its end marker)
            params = dict(params, resourceVersion="")
            bookmarks = bookmarks and params.get("sendInitialEvents") == "true"
            periodic = False
        else:
            periodic = bookmarks
        timeout = float(params.get("timeoutSeconds") or 0)
        deadline = time.time() + timeout if timeout > 0 else None
        rv_param = params.get("resourceVersion", "")
        initial = []
        with store.lock:
            if rv_param in ("", "0") or params.get("sendInitialEvents") == "true":
                pos = store.rv
                for obj in store.list(rt.key, ns or None if rt.namespaced else None):
                    obj = api.present(rt, obj)
                    if api.matches(obj, labels, fields):
                        initial.append({"type": "ADDED", "object": obj})
            else:
                try:
                    pos = int(rv_param)
                except ValueError as exc:
                    raise bad_request('invalid resource version "%s"' % rv_param) from exc
                expired = pos < store.oldest_rv()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        try:
            if not initial and rv_param not in ("", "0") and expired:
                self._chunk({"type": "ERROR", "object": ApiError(410, "Expired", "too old resource version: %s (%d)"
                                                                 % (rv_param, store.oldest_rv() + 1)).status()})
                return self._end_chunks()
            for event in initial:
                self._chunk(event)
            if params.get("sendInitialEvents") == "true" and bookmarks:
                self._chunk({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {
                    "resourceVersion": str(pos), "annotations": {"k8s.io/initial-events-end": "true"}}}})
            last_bookmark = time.time()
            while not self.server.stopping:
                now = time.time()
                if deadline is not None and now >= deadline:
                    break
                wait = self.server.bookmark_interval
                if deadline is not None:
                    wait = min(wait, deadline - now)
                with store.cond:
                    if store.rv <= pos:
                        store.cond.wait(max(wait, 0.01))
                    events = store.events_after(pos)
                    current = store.rv
                for ev in events:
                    pos = ev.rv
                    out = self._filter(rt, ns, ev, labels, fields)
                    if out is not None:
                        self._chunk(out)
                pos = max(pos, current)
                if periodic and time.time() - last_bookmark >= self.server.bookmark_interval:
                    self._chunk({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version,
                                                                "metadata": {"resourceVersion": str(pos)}}})
                    last_bookmark = time.time()
            return self._end_chunks()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return None

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _filter(self, rt, ns, ev, labels, fields):
        if ev.key != rt.key or (ns and rt.namespaced and ev.ns != ns):
            return None
        api = self.server.api
        obj = api.present(rt, ev.obj)
        now_match = api.matches(obj, labels, fields)
        if ev.type == "MODIFIED" and ev.old is not None and (labels or fields):
            was = api.matches(api.present(rt, ev.old), labels, fields)
            if was and not now_match:
                return {"type": "DELETED", "object": obj}
            if now_match and not was:
                return {"type": "ADDED", "object": obj}
        return {"type": ev.type, "object": obj} if now_match else None
