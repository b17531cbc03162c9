# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The conformance suite's probe for LXD: reads the real objects with LXD's own client (`lxc`), never
with this collection's code, and prints JSON. Every backend's probe takes the same commands:

  instance NAME           {exists, name, type, state, cpus, memory_mib, disk_gib, tags, description,
                           networks: [{network, mac}], disks: [{name, path}],
                           snapshots: [{name, stateful, created_at}],
                           backups: [{name, created_at}]}
  instances PREFIX        [{name, state}] of the instances whose name starts with PREFIX
  disk NAME               {exists, name, storage, size_gib, attached_to: [instance], paths: {instance: path}}
  exec NAME COMMAND       runs COMMAND with sh -c in the guest, prints its output (guest_exec backends)
  cleanup PREFIX          deletes every instance and disk whose name starts with PREFIX
  session start|stop      before and after a backend's run (here: the suite's client certificate)
  journal start|stop      records the API requests the server handles (here: from `lxc monitor`)
  journal mark            prints a mark: the requests after it are the next window
  journal since MARK      {entries: [{index, method, path, status}], reads, writes, mark}

The journal: LXD logs "Handling API request" (method, url) at debug level for every request it
handles, and sends it to event listeners even when the daemon itself does not run with --debug. A
`lxc monitor --type=logging` in the background writes those records to a file. LXD sends every event
from its own goroutine, so the file is not in order: windows are cut by the event timestamps, and each
mark is a sentinel request (GET /1.0?polyvirt-journal=<token>) whose record proves that everything
LXD handled before it has been logged. LXD's log has no status code: status is null.

Other people use the same daemon (the lab is per machine), and over the unix socket every client is
"root". So the suite's modules talk HTTPS with a client certificate made for the session (backends/lxd.yml),
LXD logs that certificate's fingerprint as the request's username, and the journal keeps only those.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import uuid

from _cli import main  # the probes' shared command line; this folder is on sys.path when a probe runs

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
STATES = {"Running": "running", "Stopped": "stopped", "Frozen": "paused"}
UNITS = {"": 1, "B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
# How long a sentinel may take to come back through the event stream before the journal is broken.
SENTINEL_TIMEOUT = 30


class Probe:
    def __init__(self, config, state_dir):
        backend = config["backend"]
        connection = backend.get("connection", {})
        self.project = connection.get("project", "default")
        self.pool = backend["storage"]
        self.state_dir = state_dir
        self.client_cert = connection.get("client_cert")
        self.client_key = connection.get("client_key")

    # -- reads with lxc --------------------------------------------------------------------------

    def query(self, path, missing_ok=False):
        sep = "&" if "?" in path else "?"
        proc = subprocess.run(["lxc", "query", "%s%sproject=%s" % (path, sep, self.project)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            if missing_ok and "not found" in proc.stderr.lower():
                return None
            raise SystemExit("lxc query %s: %s" % (path, proc.stderr.strip()))
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def instance(self, name):
        # recursion=1: one read that carries the snapshots and backups too
        raw = self.query("/1.0/instances/%s?recursion=1" % name, missing_ok=True)
        if raw is None:
            return {"exists": False, "name": name}
        config = raw.get("expanded_config") or {}
        devices = raw.get("expanded_devices") or {}
        networks = []
        for dev_name, dev in sorted(devices.items()):
            if dev.get("type") == "nic":
                networks.append({"device": dev_name, "network": dev.get("network") or dev.get("parent"),
                                 "mac": (dev.get("hwaddr") or config.get("volatile.%s.hwaddr" % dev_name) or "").lower() or None})
        root = next((d for d in devices.values() if d.get("type") == "disk" and d.get("path") == "/"), {})
        disks = [{"name": d["source"], "path": d.get("path")} for _device, d in sorted(devices.items())
                 if d.get("type") == "disk" and d.get("pool") and d.get("source") and d.get("path") != "/"]
        tags = read_tags(config.get("user.polyvirt.tags"))  # the driver's home for tags: LXD has none of its own
        snapshots = raw.get("snapshots") or []
        backups = raw.get("backups") or []
        return {
            "exists": True,
            "name": raw["name"],
            "type": raw["type"],
            "state": STATES.get(raw["status"], raw["status"].lower()),
            "cpus": int(config["limits.cpu"]) if config.get("limits.cpu", "").isdigit() else None,
            "memory_mib": size_bytes(config["limits.memory"]) // 2**20 if "limits.memory" in config else None,
            "disk_gib": gib(root["size"]) if root.get("size") else None,
            "tags": sorted(tags),
            "description": raw.get("description") or "",
            "networks": networks,
            "disks": disks,
            "snapshots": [{"name": s["name"].rpartition("/")[2], "stateful": s.get("stateful", False), "created_at": s.get("created_at")}
                          for s in sorted(snapshots, key=lambda s: s.get("created_at") or "")],
            "backups": [{"name": b["name"].rpartition("/")[2], "created_at": b.get("created_at")}
                        for b in sorted(backups, key=lambda b: b.get("created_at") or "")],
        }

    def instances(self, prefix):
        listed = self.query("/1.0/instances?recursion=1") or []
        return sorted(({"name": i["name"], "state": STATES.get(i["status"], i["status"].lower())}
                       for i in listed if i["name"].startswith(prefix)), key=lambda i: i["name"])

    def disk(self, name):
        raw = self.query("/1.0/storage-pools/%s/volumes/custom/%s" % (self.pool, name), missing_ok=True)
        if raw is None:
            return {"exists": False, "name": name}
        users = sorted(re.sub(r"\?.*$", "", url).rpartition("/")[2] for url in raw.get("used_by") or [] if url.startswith("/1.0/instances/"))
        paths = {}
        for user in users:
            devices = (self.query("/1.0/instances/%s" % user) or {}).get("expanded_devices") or {}
            paths[user] = next((d.get("path") for d in devices.values()
                                if d.get("type") == "disk" and d.get("pool") == self.pool and d.get("source") == name), None)
        size = raw.get("config", {}).get("size")
        return {"exists": True, "name": name, "storage": self.pool, "size_gib": gib(size) if size else None,
                "attached_to": users, "paths": paths}

    def disks(self, prefix):
        listed = self.query("/1.0/storage-pools/%s/volumes/custom?recursion=1" % self.pool) or []
        return sorted(v["name"] for v in listed if v["name"].startswith(prefix))

    def exec(self, name, command):
        proc = subprocess.run(["lxc", "exec", "--project", self.project, name, "--", "sh", "-c", command],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit("in %s, %r exited %d: %s" % (name, command, proc.returncode, proc.stderr.strip()))
        return proc.stdout

    def cleanup(self, prefix):
        if len(prefix) < 3:
            raise SystemExit("refusing to clean up prefix %r: too short to be a test run's own" % prefix)
        removed = []
        for inst in self.instances(prefix):  # instances first: a volume in use cannot be deleted
            lxc_while_busy("delete", "--force", "--project", self.project, inst["name"])
            removed.append(inst["name"])
        for volume in self.disks(prefix):
            lxc("storage", "volume", "delete", self.pool, "--project", self.project, volume)
            removed.append(volume)
        left = [i["name"] for i in self.instances(prefix)] + self.disks(prefix)
        return {"removed": removed, "left": left}

    # -- the session: the suite's own client certificate ---------------------------------------------

    def session_start(self):
        self.session_stop()
        if not self.client_cert:
            return {"identity": None}  # over the unix socket the journal sees every client
        os.makedirs(os.path.dirname(self.client_cert), exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
                        "-days", "2", "-subj", "/CN=polyvirt-conformance", "-keyout", self.client_key, "-out", self.client_cert],
                       check=True, capture_output=True)
        lxc("config", "trust", "add", self.client_cert)
        return {"identity": self.identity()}

    def session_stop(self):
        stopped = self.journal_stop()
        if self.client_cert and os.path.exists(self.client_cert):
            fingerprint = self.identity()
            if fingerprint[:12] in lxc("config", "trust", "list", "--format", "csv"):  # lists it shortened
                lxc("config", "trust", "remove", fingerprint)
            os.unlink(self.client_cert)
        return stopped

    def identity(self):
        """What LXD logs as the username of our requests: the SHA-256 of the client certificate."""
        if not self.client_cert or not os.path.exists(self.client_cert):
            return None
        with open(self.client_cert) as f:
            return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()

    # -- the journal -------------------------------------------------------------------------------

    def _journal_files(self):
        return os.path.join(self.state_dir, "journal.jsonl"), os.path.join(self.state_dir, "journal.pid")

    def journal_start(self):
        self.journal_stop()
        os.makedirs(self.state_dir, exist_ok=True)
        log, pidfile = self._journal_files()
        with open(log, "w") as out:
            proc = subprocess.Popen(["lxc", "monitor", "--type=logging", "--format=json"], stdout=out,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        with open(pidfile, "w") as f:
            f.write(str(proc.pid))
        # LXD greets a new listener with a debug record ("Event listener server handler started"): from
        # then on every request is logged to it. The first sentinel proves it.
        deadline = time.monotonic() + SENTINEL_TIMEOUT
        while os.path.getsize(log) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("lxc monitor did not connect (exit status %s)" % proc.poll())
            time.sleep(0.01)  # polls for the greeting; the deadline above bounds it
        return {"mark": self.journal_mark(proc)}

    def journal_stop(self):
        log, pidfile = self._journal_files()
        try:
            with open(pidfile) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            return {"stopped": None}
        os.unlink(pidfile)
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                ours = b"monitor" in f.read()  # the pid may have been reused since
        except OSError:
            ours = False
        if ours:
            os.kill(pid, signal.SIGTERM)
        return {"stopped": pid if ours else None}

    def journal_since(self, mark):
        end = self.journal_mark()
        identity = self.identity()
        # Kept: what our client certificate asked. Left out otherwise: the sentinels, event listeners
        # (ours), and LXD's calls into itself (/internal/, the container start hooks).
        entries = [e for e in self._records() if mark < e["ts"] < end and "polyvirt-journal=" not in e["path"]
                   and not e["path"].startswith(("/1.0/events", "/internal/"))
                   and (identity is None or e["user"] == identity)]
        entries.sort(key=lambda e: e["ts"])
        return {
            "entries": [{"index": e["index"], "method": e["method"], "path": e["path"], "status": None} for e in entries],
            "reads": sum(1 for e in entries if e["method"] == "GET"),
            "writes": sum(1 for e in entries if e["method"] in MUTATING),
            "mark": end,
        }

    def _records(self):
        log = self._journal_files()[0]
        records = []
        with open(log) as f:
            for index, line in enumerate(f):
                if "Handling API request" not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # the last line while lxc is still writing it
                meta = event.get("metadata") or {}
                if meta.get("message") != "Handling API request":
                    continue
                ctx = meta.get("context") or {}
                records.append({"index": index, "ts": timestamp_ns(event["timestamp"]), "method": ctx.get("method"),
                                "path": ctx.get("url", ""), "user": ctx.get("username")})
        return records

    def journal_mark(self, proc=None):
        """Sends a request LXD will log and waits until its record is in the file; returns its timestamp."""
        log, pidfile = self._journal_files()
        if proc is None and not os.path.exists(pidfile):
            raise SystemExit("the journal is not running (journal start)")
        token = "polyvirt-journal=" + uuid.uuid4().hex
        deadline = time.monotonic() + SENTINEL_TIMEOUT
        sent = 0.0
        with open(log) as f:
            f.seek(0, os.SEEK_END)
            pending = ""
            while time.monotonic() < deadline:
                # LXD promises no delivery of events: send again each second rather than wait on a lost one.
                if time.monotonic() - sent > 1:
                    lxd_get("/1.0?" + token)
                    sent = time.monotonic()
                pending += f.read()
                lines = pending.split("\n")
                pending = lines.pop()  # a line lxc is still writing
                for line in lines:
                    if token in line:
                        return timestamp_ns(json.loads(line)["timestamp"])
                if proc is not None and proc.poll() is not None:
                    raise SystemExit("lxc monitor exited with %s" % proc.returncode)
                time.sleep(0.005)  # polls the file for the sentinel; the deadline above bounds it
        raise SystemExit("the journal did not see its sentinel within %d s" % SENTINEL_TIMEOUT)


def lxc(*args):
    proc = subprocess.run(("lxc",) + args, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit("lxc %s: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout


# How long cleanup retries an instance LXD is still creating or changing ("Instance is busy running a ...").
BUSY_TIMEOUT = 120


def lxc_while_busy(*args):
    """`lxc` retried while LXD answers that the instance is busy with another operation (a create that a
    failed run left going); any other error, or busy past BUSY_TIMEOUT, ends the probe with LXD's message."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = 0.2
    while True:
        proc = subprocess.run(("lxc",) + args, capture_output=True, text=True, check=False)
        if not proc.returncode:
            return proc.stdout
        if "busy" not in proc.stderr.lower() or time.monotonic() + pause > deadline:
            raise SystemExit("lxc %s: %s" % (" ".join(args), proc.stderr.strip()))
        time.sleep(pause)  # the next attempt re-checks LXD itself; the deadline bounds the loop
        pause = min(pause * 2, 5)


def lxd_get(path):
    """One GET on LXD's unix socket (`lxc query` would add a GET /1.0 of its own to the journal)."""
    lxd_dir = os.environ.get("LXD_DIR") or ("/var/snap/lxd/common/lxd" if os.path.exists("/var/snap/lxd/common/lxd/unix.socket") else "/var/lib/lxd")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(SENTINEL_TIMEOUT)
    sock.connect(os.path.join(lxd_dir, "unix.socket"))
    conn = http.client.HTTPConnection("lxd")
    conn.sock = sock
    try:
        conn.request("GET", path)
        conn.getresponse().read()
    finally:
        conn.close()


def read_tags(text):
    """A JSON list (the driver since the data-safety fixes: a tag may hold a comma) or comma-joined."""
    if not text:
        return []
    return json.loads(text) if text.startswith("[") else text.split(",")


def size_bytes(text):
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kMGT]i?B|B|)\s*$", str(text))
    if not match:
        raise SystemExit("not an LXD size: %r" % text)
    return int(float(match.group(1)) * UNITS[match.group(2)])


def gib(text):
    value = size_bytes(text) / 2**30
    return int(value) if value.is_integer() else value


def timestamp_ns(text):
    """Nanoseconds since the epoch of an RFC 3339 time as Go writes it (fraction trimmed, any zone)."""
    match = re.match(r"^(.*?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    whole = datetime.datetime.fromisoformat(match.group(1) + ("+00:00" if match.group(3) == "Z" else match.group(3)))
    return int(whole.timestamp()) * 10**9 + int((match.group(2) or "0").ljust(9, "0")[:9])


if __name__ == "__main__":
    main(Probe, __doc__, "lxd")
