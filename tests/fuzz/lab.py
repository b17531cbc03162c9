# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The LXD lab as the fuzz test sees it, read with LXD's REST API (never through our modules).

A fingerprint is what a module could change in the projects the fuzz can reach: instances (config,
devices, profiles, power state), their snapshots and backups, custom volumes, and images. Keys LXD
changes by itself (volatile.*, last-used times, runtime counters) are left out.

The reads are the GETs ``lxc query`` would make, sent over LXD's unix socket on one keep-alive
connection: ``lxc query`` costs a process per read, about 60 ms per fingerprint on an idle lab and
three quarters of the run on a busy one; this costs a few ms. Fixtures are made with the lxc client.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
from urllib.parse import quote

# A fuzzed connection without a project lands in "default", so both are watched.
PROJECTS = ("polyvirt", "default")
POOL = "polyvirt"


class LabError(RuntimeError):
    pass


def lxc(*args, check=True):
    proc = subprocess.run(("lxc",) + args, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode:
        raise LabError("lxc %s: %s" % (" ".join(args), proc.stderr.strip()))
    return proc


def _socket_path():
    """The socket the lxc client uses: $LXD_DIR's, else the Debian package's, else the snap's."""
    if os.environ.get("LXD_DIR"):
        return os.path.join(os.environ["LXD_DIR"], "unix.socket")
    for path in ("/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket"):
        if os.path.exists(path):
            return path
    return "/var/lib/lxd/unix.socket"


class _Connection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("lxd", timeout=120)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


_CONNECTION = []


def get(path, missing_ok=False):
    """The ``metadata`` of ``GET path``, as ``lxc query path`` prints it (None for a 404 if ``missing_ok``)."""
    for attempt in (1, 2):
        if not _CONNECTION:
            _CONNECTION.append(_Connection(_socket_path()))
        try:
            _CONNECTION[0].request("GET", path)
            response = _CONNECTION[0].getresponse()
            body = json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            _CONNECTION.pop().close()
            if attempt == 2:
                raise LabError("GET %s: %s" % (path, exc))
            continue  # LXD closed the idle keep-alive connection: one fresh one
        if response.status == 404 and missing_ok:
            return None
        if response.status != 200:
            raise LabError("GET %s: %s" % (path, body.get("error")))
        return body.get("metadata")


def _stable(config):
    return dict((k, v) for k, v in (config or {}).items() if not k.startswith("volatile."))


def fingerprint(prefix=None):
    """``{(kind, project, name...): state}`` of everything a module could touch.

    With ``prefix``, first waits (LXD's own /wait) for running operations on objects of that namespace,
    so the effects of a task that returned early are seen now, not blamed on the next one.
    """
    if prefix:
        _wait_for_operations(prefix)
    state = {}
    for project in PROJECTS:
        for inst in get("/1.0/instances?recursion=1&project=%s" % project) or []:
            name = inst["name"]
            state[("instance", project, name)] = {
                "status": inst["status"], "created_at": inst["created_at"], "type": inst["type"],
                "description": inst["description"], "config": _stable(inst["config"]),
                "devices": inst["devices"], "profiles": inst["profiles"], "ephemeral": inst["ephemeral"]}
            base = "/1.0/instances/%s/" % quote(name, safe="")
            # missing_ok: another run may delete its instance between the two reads.
            for snap in get(base + "snapshots?recursion=1&project=%s" % project, missing_ok=True) or []:
                state[("snapshot", project, name, snap["name"].split("/", 1)[-1])] = {
                    "created_at": snap["created_at"], "expires_at": snap.get("expires_at"), "stateful": snap["stateful"],
                    "config": _stable(snap["config"]), "devices": snap["devices"]}
            for backup in get(base + "backups?recursion=1&project=%s" % project, missing_ok=True) or []:
                state[("backup", project, name, backup["name"].split("/", 1)[-1])] = {
                    "created_at": backup["created_at"], "expires_at": backup["expires_at"],
                    "instance_only": backup["instance_only"], "optimized_storage": backup["optimized_storage"]}
        for vol in get("/1.0/storage-pools/%s/volumes/custom?recursion=1&project=%s" % (POOL, project)) or []:
            state[("volume", project, vol["name"])] = {
                "config": _stable(vol["config"]), "description": vol["description"], "content_type": vol.get("content_type")}
    for image in get("/1.0/images?recursion=1") or []:
        state[("image", "default", image["fingerprint"])] = {"aliases": sorted(a["name"] for a in image["aliases"])}
    return state


def _wait_for_operations(prefix):
    for project in PROJECTS:
        for op in (get("/1.0/operations?recursion=1&project=%s" % project) or {}).get("running") or []:
            resources = json.dumps(op.get("resources") or {})
            if quote(prefix, safe="") in resources or prefix in resources:
                try:
                    get("/1.0/operations/%s/wait?timeout=60&project=%s" % (op["id"], project))
                except LabError:
                    pass  # the operation ended (or failed) before we asked: either way it is over


def changes(before, after):
    """Human-readable differences between two fingerprints, one string per object."""
    lines = []
    for key in sorted(set(before) | set(after), key=repr):
        label = "%s %s" % (key[0], "/".join(key[1:]))
        if key not in before:
            lines.append("+ " + label)
        elif key not in after:
            lines.append("- " + label)
        elif before[key] != after[key]:
            fields = []
            for field in sorted(set(before[key]) | set(after[key])):
                old, new = before[key].get(field), after[key].get(field)
                if isinstance(old, dict) and isinstance(new, dict):
                    fields.extend("%s.%s %r -> %r" % (field, k, old.get(k), new.get(k))
                                  for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
                elif old != new:
                    fields.append("%s %r -> %r" % (field, old, new))
            lines.append("~ %s: %s" % (label, ", ".join(fields)))
    return lines


def changed_keys(before, after):
    return [key for key in set(before) | set(after) if before.get(key) != after.get(key)]


def delete(key):
    """Delete the object of fingerprint key ``key``."""
    kind, project, name = key[0], key[1], key[2]
    if kind == "instance":
        lxc("delete", "--force", "--project", project, name, check=False)
    elif kind == "volume":
        lxc("storage", "volume", "delete", POOL, name, "--project", project, check=False)
    elif kind == "snapshot":
        lxc("delete", "--project", project, "%s/%s" % (name, key[3]), check=False)
    elif kind == "backup":
        lxc("query", "-X", "DELETE", "/1.0/instances/%s/backups/%s?project=%s" % (quote(name, safe=""), quote(key[3], safe=""), project),
            check=False)


class Fixtures:
    """The objects every run starts with, so "nothing changed after a failure" has something to check."""

    def __init__(self, prefix, project="polyvirt"):
        self.prefix = prefix
        self.project = project
        self.instance = prefix + "-fixture"
        self.snapshot = prefix + "-snap"
        self.volume = prefix + "-vol"

    def ensure(self, state):
        """Re-create whatever a successful case removed (``state`` is a fingerprint); True if it did."""
        made = False
        if ("instance", self.project, self.instance) not in state:
            lxc("launch", "polyvirt/busybox", self.instance, "--project", self.project)
            made = True
        if ("snapshot", self.project, self.instance, self.snapshot) not in state:
            lxc("snapshot", self.instance, self.snapshot, "--project", self.project)
            made = True
        if ("volume", self.project, self.volume) not in state:
            lxc("storage", "volume", "create", POOL, self.volume, "--project", self.project)
            made = True
        return made

    def remove_all(self):
        """Delete every instance and custom volume of this run's namespace, in every watched project."""
        leftovers = []
        for key in fingerprint():
            if key[0] == "instance" and key[2].startswith(self.prefix):
                delete(key)
            elif key[0] == "volume" and key[2].startswith(self.prefix):
                leftovers.append(key)
        # Volumes last: deleting the instances first releases the ones attached to them.
        for key in leftovers:
            delete(key)
        return [key for key in fingerprint() if key[0] in ("instance", "volume") and key[2].startswith(self.prefix)]
