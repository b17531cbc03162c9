# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny in-process LXD: the few REST endpoints the LXD driver uses, answering from canned LXD 5.0 objects.

``FakeLxd.install(client)`` replaces ``LxdClient._send`` (one HTTP exchange), so everything above it runs
for real: the envelopes, error mapping, operations and their ``/wait``, downloads and uploads. Every
request is kept in ``requests`` as ``(method, path, query, body)``; ``errors`` and ``operation_errors``
inject a refused request or a failed operation per ``(method, path)``.
"""

from __future__ import annotations

import copy
import io
import json
import tarfile
from urllib.parse import parse_qsl, unquote, urlsplit

SECRET = "hunter2"
USER_DATA = "#cloud-config\nchpasswd:\n  list: |\n    root:%s\n" % SECRET
PROFILES = {
    "default": {
        "name": "default",
        "config": {"limits.cpu": "2"},
        "devices": {
            "eth0": {"type": "nic", "network": "polyvirtbr0", "name": "eth0"},
            "root": {"type": "disk", "path": "/", "pool": "polyvirt", "size": "10GiB"},
        },
    },
}
RUNNING_NETWORK = {
    "lo": {"type": "loopback", "addresses": [{"family": "inet", "address": "127.0.0.1", "netmask": "8", "scope": "local"}]},
    "eth0": {"type": "broadcast", "addresses": [
        {"family": "inet", "address": "10.231.0.5", "netmask": "24", "scope": "global"},
        {"family": "inet6", "address": "fe80::216:3eff:feaa:bbcc", "netmask": "64", "scope": "link"},
        {"family": "inet6", "address": "fd42::5", "netmask": "64", "scope": "global"},
    ]},
    "eth1": {"type": "broadcast", "addresses": []},
}
# Shaped like LXD 5.0's GET /1.0/instances/web1?recursion=1 (the config keys of the old driver tests).
WEB1 = {
    "name": "web1",
    "type": "container",
    "status": "Running",
    "status_code": 103,
    "architecture": "x86_64",
    "created_at": "2026-01-01T10:00:00Z",
    "description": "",
    "ephemeral": False,
    "stateful": False,
    "location": "none",
    "project": "default",
    "profiles": ["default"],
    "config": {
        "image.description": "Debian 12",
        "limits.memory": "512MiB",
        "user.polyvirt.tags": "a,b",
        "cloud-init.user-data": USER_DATA,
        "volatile.base_image": "c855f9c7cc95c9fe",
        "volatile.eth0.hwaddr": "00:16:3e:aa:bb:cc",
        "volatile.idmap.next": "[]",
    },
    "devices": {"data": {"type": "disk", "pool": "polyvirt", "source": "data1", "path": "/srv/data"}},
    "state": {"status": "Running", "status_code": 103, "network": RUNNING_NETWORK, "pid": 4242},
}
DB1 = {
    "name": "db1",
    "type": "virtual-machine",
    "status": "Stopped",
    "status_code": 102,
    "architecture": "x86_64",
    "created_at": "2026-01-01T11:00:00Z",
    "description": "database",
    "ephemeral": False,
    "stateful": False,
    "location": "none",
    "project": "default",
    "profiles": ["default"],
    "config": {"image.description": "Debian 12", "limits.cpu": "4", "user.polyvirt.tags": '["db", "prod,eu"]'},
    "devices": {"shared": {"type": "disk", "pool": "polyvirt", "source": "data1", "path": "/mnt/data1"}},
    "state": {"status": "Stopped", "status_code": 102, "network": {}, "pid": 0},
}
SNAP0 = {
    "name": "snap0",
    "created_at": "2026-01-02T00:00:00Z",
    "expires_at": "0001-01-01T00:00:00Z",
    "stateful": False,
    "architecture": "x86_64",
    "ephemeral": False,
    "profiles": ["default"],
    "size": 4096,
    "config": dict(WEB1["config"]),
    "devices": dict(WEB1["devices"]),
}
BACKUP0 = {"name": "b0", "created_at": "2026-01-03T00:00:00Z", "expires_at": "2026-02-03T00:00:00Z", "instance_only": False, "optimized_storage": False}
POOLS = [{"name": "polyvirt", "driver": "dir", "status": "Created", "config": {"source": "/var/lib/lxd/storage-pools/polyvirt"}}]
VOLUMES = {
    ("polyvirt", "data1"): {"name": "data1", "type": "custom", "content_type": "filesystem", "description": "", "location": "none",
                            "config": {"size": "10GiB"}},
    ("polyvirt", "scratch"): {"name": "scratch", "type": "custom", "content_type": "filesystem", "description": "", "location": "none",
                              "config": {}},
}
IMAGES = {"aliases": ("polyvirt/busybox", "polyvirt/debian12"), "fingerprints": ("c855f9c7cc95c9fe0123456789abcdef",)}
STATUS = {"start": "Running", "restart": "Running", "unfreeze": "Running", "stop": "Stopped", "freeze": "Frozen"}


class Response:
    """What ``LxdClient._send`` returns: ``status``, ``reason`` and a ``read``."""

    def __init__(self, status, body, reason="OK"):
        self.status = status
        self.reason = reason
        self._body = io.BytesIO(body)

    def read(self, amount=None):
        return self._body.read() if amount is None else self._body.read(amount)


class FakeLxd:
    def __init__(self, instances=(WEB1, DB1), volumes=None, api_extensions=("cloud_init", "instance_get_full"), projects=("default",),
                 clustered=False, full_get=True):
        self.instances = {}
        self.snapshots = {}
        self.backups = {}
        for native in instances:
            self._store(copy.deepcopy(native))
        self.snapshots["web1"] = [copy.deepcopy(SNAP0)] if "web1" in self.instances else []
        self.backups["web1"] = [copy.deepcopy(BACKUP0)] if "web1" in self.instances else []
        self.volumes = copy.deepcopy(VOLUMES if volumes is None else volumes)
        self.server = {"api_extensions": list(api_extensions), "api_status": "stable", "auth": "trusted",
                       "environment": {"server_clustered": clustered, "server_name": "lab"}}
        self.projects = set(projects)
        self.full_get = full_get  # instance_get_full: recursion=1 carries the state
        self.requests = []
        self.errors = {}  # (method, path) -> [(code, message), ...], one per request
        self.operation_errors = {}  # (method, path) -> err of the operation (nothing is changed)
        self.exec_result = (0, "status: done\nboot_status_code: enabled-by-generator\n", "")
        self._operations = {}
        self._logs = {}
        self.status_after_restore = None  # a snapshot restore brings the instance back in this status (a stateful one running)

    def install(self, client):
        client._send = self.send  # pylint: disable=protected-access
        return client

    def mutating(self):
        return [request for request in self.requests if request[0] != "GET"]

    def paths(self, method=None):
        return [(request[0], request[1]) for request in self.requests if method in (None, request[0])]

    # -- plumbing ------------------------------------------------------------------------------------

    def _store(self, native):
        native.setdefault("state", {"status": native["status"], "network": {}})
        self.instances[native["name"]] = native
        self._expand(native)

    @staticmethod
    def _expand(native):
        config, devices = {}, {}
        for profile in native.get("profiles") or []:
            config.update(PROFILES[profile]["config"])
            devices.update(copy.deepcopy(PROFILES[profile]["devices"]))
        config.update(native["config"])
        devices.update(copy.deepcopy(native["devices"]))
        native["expanded_config"] = config
        native["expanded_devices"] = dict((name, device) for name, device in devices.items() if device.get("type") != "none")

    def send(self, method, url, body=None, headers=None, timeout=None):
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        if hasattr(body, "read"):
            payload = body.read()
        elif body:
            payload = json.loads(body.decode("utf-8"))
        else:
            payload = None
        self.requests.append((method, parts.path, query, payload if not isinstance(payload, bytes) else "<%d bytes>" % len(payload)))
        queued = self.errors.get((method, parts.path))
        if queued:
            code, message = queued.pop(0)
            return self._error(code, message)
        segments = [unquote(segment) for segment in parts.path.split("/")[2:]]
        try:
            return self._route(method, parts.path, segments, query, payload, dict(headers or {}))
        except KeyError:
            return self._error(404, "Not Found")

    @staticmethod
    def _json(status, payload):
        return Response(status, json.dumps(payload).encode("utf-8"))

    def _sync(self, metadata):
        return self._json(200, {"type": "sync", "status": "Success", "status_code": 200, "error_code": 0, "error": "", "metadata": metadata})

    def _error(self, code, message):
        return self._json(code, {"type": "error", "error": message, "error_code": code, "metadata": None})

    def _async(self, method, path, change, resources=None, metadata=None):
        """An operation: ``change()`` is applied unless an operation error is injected for this request."""
        err = self.operation_errors.get((method, path))
        if err is None:
            change()
        op_id = "op%d" % (len(self._operations) + 1)
        self._operations[op_id] = {"id": op_id, "class": "task", "status": "Failure" if err else "Success", "status_code": 400 if err else 200,
                                   "resources": resources or {}, "metadata": metadata, "err": err or "", "may_cancel": False}
        return self._json(202, {"type": "async", "status": "Operation created", "status_code": 100, "operation": "/1.0/operations/" + op_id,
                                "metadata": self._operations[op_id]})

    # -- the endpoints ---------------------------------------------------------------------------------

    def _route(self, method, path, seg, query, body, headers):  # pylint: disable=too-many-return-statements,too-many-branches
        if not seg or seg == [""]:
            return self._sync(self.server)
        kind = seg[0]
        if kind == "operations" and len(seg) == 3 and seg[2] == "wait":
            return self._sync(self._operations[seg[1]])
        if kind == "projects":
            return self._sync({"name": seg[1]}) if seg[1] in self.projects else self._error(404, "Project not found")
        if kind == "profiles":
            return self._sync(copy.deepcopy(PROFILES[seg[1]]))
        if kind == "images":
            if seg[1] == "aliases":
                return self._sync({"name": seg[2]}) if seg[2] in IMAGES["aliases"] else self._error(404, "Image alias not found")
            return self._sync({"fingerprint": seg[1]}) if seg[1] in IMAGES["fingerprints"] else self._error(404, "Image not found")
        if kind == "storage-pools":
            return self._storage(method, path, seg, query, body)
        if kind == "instances":
            if len(seg) == 1:
                if method == "GET":
                    return self._sync([self._view(name, int(query.get("recursion", 0))) for name in sorted(self.instances)])
                if isinstance(body, bytes):
                    return self._import(method, path, body, headers)
                return self._create(method, path, body)
            return self._instance(method, path, seg, query, body)
        return self._error(404, "Not Found")

    def _view(self, name, recursion):
        native = copy.deepcopy(self.instances[name])
        if recursion >= 1 and self.full_get:
            native["snapshots"] = copy.deepcopy(self.snapshots.get(name, []))
            native["backups"] = copy.deepcopy(self.backups.get(name, []))
        else:
            del native["state"]
        return native

    def _create(self, method, path, body):
        name = body["name"]
        if name in self.instances:
            return self._error(409, 'Instance "%s" already exists' % name)
        source = body["source"]
        if source["type"] == "image" and "server" not in source:
            found = source.get("alias") in IMAGES["aliases"] or source.get("fingerprint") in IMAGES["fingerprints"]
            if not found:
                return self._error(404, "Image not found")
        native = {"name": name, "type": body.get("type", "container"), "status": "Stopped", "status_code": 102, "architecture": "x86_64",
                  "created_at": "2026-01-05T00:00:00Z", "description": body.get("description", ""), "ephemeral": False, "stateful": False,
                  "location": "none", "project": "default", "profiles": list(body.get("profiles") or ["default"]),
                  "config": dict(body.get("config") or {}), "devices": copy.deepcopy(body.get("devices") or {})}
        if source["type"] == "copy":
            origin = source["source"].split("/")[0]
            native["type"] = self.instances[origin]["type"]
        native["config"].setdefault("volatile.eth0.hwaddr", "00:16:3e:00:00:%02x" % (len(self.instances) + 1))
        return self._async(method, path, lambda: self._store(native), resources={"instances": ["/1.0/instances/" + name]})

    def _import(self, method, path, body, headers):
        name = headers["X-LXD-name"]
        with tarfile.open(fileobj=io.BytesIO(body)) as archive:
            saved = json.loads(archive.extractfile("backup/fake-native.json").read().decode("utf-8"))
        native = dict(saved, name=name, status="Stopped", status_code=102)
        native.pop("state", None)
        return self._async(method, path, lambda: self._store(native), resources={"instances": ["/1.0/instances/" + name]})

    def _instance(self, method, path, seg, query, body):  # pylint: disable=too-many-return-statements,too-many-branches
        name = seg[1]
        native = self.instances[name]
        rest = seg[2:]
        if not rest:
            if method == "GET":
                return self._sync(self._view(name, int(query.get("recursion", 0))))
            if method == "PUT":
                return self._async(method, path, lambda: self._put(native, body))
            if method == "POST":
                if body["name"] in self.instances:
                    return self._error(409, 'Instance "%s" already exists' % body["name"])
                return self._async(method, path, lambda: self._rename(name, body["name"]))
            if method == "DELETE":
                if native["status"] != "Stopped":
                    return self._error(400, "Instance is running")
                return self._async(method, path, lambda: self._delete(name))
        if rest == ["state"]:
            if method == "GET":
                return self._sync(copy.deepcopy(native["state"]))
            return self._async(method, path, lambda: self._power(native, body["action"]))
        if rest[0] == "snapshots":
            return self._snapshot(method, path, name, rest[1:], body)
        if rest[0] == "backups":
            return self._backup(method, path, name, rest[1:], body)
        if rest == ["exec"]:
            code, out, err = self.exec_result
            self._logs = {"/1.0/instances/%s/logs/exec-output/exec_1.stdout" % name: out,
                          "/1.0/instances/%s/logs/exec-output/exec_1.stderr" % name: err}
            outputs = {"1": "/1.0/instances/%s/logs/exec-output/exec_1.stdout" % name, "2": "/1.0/instances/%s/logs/exec-output/exec_1.stderr" % name}
            return self._async(method, path, lambda: None, metadata={"return": code, "output": outputs})
        if rest[0] == "logs":
            if method == "DELETE":
                return self._sync({})
            return Response(200, self._logs[path].encode("utf-8"))
        return self._error(404, "Not Found")

    def _put(self, native, body):
        if "restore" in body:
            snapshot = [item for item in self.snapshots[native["name"]] if item["name"] == body["restore"]][0]
            native["config"] = dict(snapshot["config"])
            native["devices"] = copy.deepcopy(snapshot["devices"])
            if self.status_after_restore:
                self._power(native, {"Running": "start", "Stopped": "stop"}[self.status_after_restore])
        else:
            for key in ("config", "devices", "profiles", "description"):
                if key in body:
                    native[key] = copy.deepcopy(body[key])
        self._expand(native)

    def _rename(self, old, new):
        native = self.instances.pop(old)
        native["name"] = new
        self.instances[new] = native
        self.snapshots[new] = self.snapshots.pop(old, [])
        self.backups[new] = self.backups.pop(old, [])

    def _delete(self, name):
        del self.instances[name]
        self.snapshots.pop(name, None)
        self.backups.pop(name, None)

    def _power(self, native, action):
        native["status"] = STATUS[action]
        native["status_code"] = {"Running": 103, "Stopped": 102, "Frozen": 110}[native["status"]]
        network = copy.deepcopy(RUNNING_NETWORK) if native["status"] != "Stopped" else {}
        native["state"] = {"status": native["status"], "status_code": native["status_code"], "network": network}

    def _snapshot(self, method, path, name, rest, body):
        items = self.snapshots.setdefault(name, [])
        if not rest:
            if method == "GET":
                return self._sync(copy.deepcopy(items))
            native = self.instances[name]
            snapshot = {"name": body["name"], "created_at": "2026-01-06T00:00:%02dZ" % len(items), "expires_at": "0001-01-01T00:00:00Z",
                        "stateful": body.get("stateful", False), "architecture": "x86_64", "ephemeral": False, "profiles": list(native["profiles"]),
                        "size": 0, "config": dict(native["config"]), "devices": copy.deepcopy(native["devices"])}
            return self._async(method, path, lambda: items.append(snapshot), resources={"instances": ["/1.0/instances/%s/snapshots/%s" % (name, body["name"])]})
        found = [item for item in items if item["name"] == rest[0]]
        if not found:
            return self._error(404, "Snapshot not found")
        if method == "GET":
            return self._sync(copy.deepcopy(found[0]))
        return self._async(method, path, lambda: items.remove(found[0]))

    def _backup(self, method, path, name, rest, body):
        items = self.backups.setdefault(name, [])
        if not rest:
            if method == "GET":
                return self._sync(copy.deepcopy(items))
            backup_name = body.get("name") or "backup%d" % len(items)
            backup = {"name": backup_name, "created_at": "2026-01-07T00:00:%02dZ" % len(items), "expires_at": "0001-01-01T00:00:00Z",
                      "instance_only": body.get("instance_only", False), "optimized_storage": body.get("optimized_storage", False)}
            return self._async(method, path, lambda: items.append(backup), resources={"backups": ["/1.0/instances/%s/backups/%s" % (name, backup_name)]})
        found = [item for item in items if item["name"] == rest[0]]
        if not found:
            return self._error(404, "Backup not found")
        if rest[1:] == ["export"]:
            return Response(200, self.tarball(self.instances[name]))
        if method == "GET":
            return self._sync(copy.deepcopy(found[0]))
        return self._async(method, path, lambda: items.remove(found[0]))

    @staticmethod
    def tarball(native):
        """An export as LXD writes one: a tarball whose first member is backup/index.yaml (plus what this fake imports from)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for member, text in (("backup/index.yaml", "name: %s\nbackend: dir\npool: polyvirt\ntype: %s\n" % (native["name"], native["type"])),
                                 ("backup/fake-native.json", json.dumps(dict((key, value) for key, value in native.items() if key != "state")))):
                data = text.encode("utf-8")
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def _used_by(self, pool, volume):
        return ["/1.0/instances/" + name for name, native in sorted(self.instances.items())
                if any(device.get("type") == "disk" and device.get("pool") == pool and device.get("source") == volume
                       for device in native["expanded_devices"].values())]

    def _volume(self, pool, name):
        return dict(copy.deepcopy(self.volumes[(pool, name)]), used_by=self._used_by(pool, name))

    def _storage(self, method, path, seg, query, body):  # pylint: disable=too-many-return-statements
        if len(seg) == 1:
            return self._sync(copy.deepcopy(POOLS))
        pool = [item for item in POOLS if item["name"] == seg[1]]
        if not pool:
            return self._error(404, "Storage pool not found")
        if len(seg) == 2:
            return self._sync(copy.deepcopy(pool[0]))
        if len(seg) == 4:
            if method == "GET":
                return self._sync([self._volume(seg[1], name) for (pool_name, name) in sorted(self.volumes) if pool_name == seg[1]])
            volume = {"name": body["name"], "type": "custom", "content_type": body.get("content_type", "filesystem"), "description": "",
                      "location": "none", "config": dict(body.get("config") or {})}
            source = body.get("source") or {}
            if source.get("type") == "copy":
                volume["config"] = dict(self.volumes[(seg[1], source["name"])]["config"], **volume["config"])
            return self._async(method, path, lambda: self.volumes.__setitem__((seg[1], body["name"]), volume))
        key = (seg[1], seg[4])
        if key not in self.volumes:
            return self._error(404, "Storage volume not found")
        if method == "GET":
            return self._sync(self._volume(*key))
        if method == "PUT":
            return self._async(method, path, lambda: self.volumes[key].update(config=dict(body["config"]), description=body.get("description", "")))
        if self._used_by(*key):
            return self._error(400, "The storage volume is still in use")
        return self._async(method, path, lambda: self.volumes.pop(key))
