# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The conformance suite's probe for Proxmox VE: reads the real guests with proxmoxer (PVE's usual Python
client), never with this collection's code, and prints JSON. Same commands as probes/lxd.py:

  instance NAME           {exists, name, type, state, cpus, memory_mib, disk_gib, tags, description,
                           networks: [{network, mac}], disks: [{name, path}],
                           snapshots: [{name, stateful, created_at}], backups: [{name, created_at}]}
  instances PREFIX        [{name, state}] of the guests whose name starts with PREFIX
  disk INSTANCE/SLOT      {exists, name, storage, size_gib, attached_to: [instance], paths: {instance: path}, volume, media,
                           stored_size_gib, unused: [the guest's unusedN volumes]} (a Proxmox VE disk is a slot of a guest)
  volume NODE VOLID       {exists}: whether the volume is on its storage
  fault SPEC | faults [clear]   adds a simulator fault (KIND[:TARGET[:ARG]][@COUNT]), lists them, or removes them all
  exec NAME COMMAND       runs COMMAND with sh -c through the QEMU guest agent, prints its output
  cleanup PREFIX          stops and deletes every guest whose name starts with PREFIX
  session start|stop      before and after a backend's run: makes and removes the suite's small template
  journal start|stop      the simulator keeps its journal itself (GET /_sim/requests): start gives a mark
  journal mark            prints a mark: the requests after it are the next window
  journal since MARK      {entries: [{index, method, path, status}], reads, writes, mark}

A password login (POST /access/ticket) is neither a read nor a write of guests: it is listed, not counted.
"""

from __future__ import annotations

import datetime
import os
import re
import time
import warnings

import requests
from _cli import main  # the probes' shared command line; this folder is on sys.path when a probe runs
from proxmoxer import ProxmoxAPI

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}
DISK_RE = re.compile(r"^(scsi|virtio|sata|ide)\d+$")
MP_RE = re.compile(r"^mp\d+$")
TASK_TIMEOUT = 120
TINY = {"vmid": 8990, "name": "polyvirt-tiny", "memory": 256, "cores": 1, "agent": 1, "scsi0": "local-lvm:1", "ide2": "local-lvm:cloudinit",
        "net0": "virtio,bridge=vmbr0", "ipconfig0": "ip=dhcp", "serial0": "socket", "vga": "serial0", "ostype": "l26"}
warnings.simplefilter("ignore")  # an unverified loopback certificate is expected with validate_certs: false


class Probe:
    def __init__(self, config, state_dir):
        conn = config["backend"]["connection"]
        self.host, self.port = conn["api_host"], int(conn.get("api_port") or 8006)
        self.verify = conn.get("ca_path") or bool(conn.get("validate_certs", True))
        self.conn = conn
        self.state_dir = state_dir
        self._api = None

    # -- reads with proxmoxer ----------------------------------------------------------------------

    def api(self):
        if self._api is None:
            conn = self.conn
            kwargs = {"port": self.port, "verify_ssl": self.verify, "timeout": 60}
            if conn.get("api_token_id"):
                user, _sep, token = conn["api_token_id"].partition("!")
                kwargs.update(user=user, token_name=token, token_value=conn["api_token_secret"])
            else:
                kwargs.update(user=conn.get("api_user") or "root@pam", password=conn["api_password"])
            self._api = ProxmoxAPI(self.host, **kwargs)
        return self._api

    def guests(self, prefix=""):
        return [entry for entry in self.api().cluster.resources.get(type="vm") if str(entry.get("name", "")).startswith(prefix)]

    def instance(self, name):
        found = [entry for entry in self.guests() if entry.get("name") == name]
        if not found:
            return {"exists": False, "name": name}
        entry = found[0]
        api = self.api()
        guest = api.nodes(entry["node"])(entry["type"])(entry["vmid"])
        config = guest.config.get()
        status = guest.status.current.get()
        state = status.get("status")
        if entry["type"] == "qemu" and status.get("qmpstatus") == "paused":
            state = "paused"
        nets = []
        for key in sorted((k for k in config if re.match(r"^net\d+$", k)), key=lambda k: int(k[3:])):
            items = dict(item.partition("=")[::2] for item in config[key].split(","))
            mac = items.get("hwaddr") or next((value for item, value in items.items() if re.match(r"^[0-9A-Fa-f:]{17}$", value)), "")
            nets.append({"network": items.get("bridge"), "mac": mac.lower() or None})
        if entry["type"] == "qemu":
            cpus = int(config.get("cores", 1)) * int(config.get("sockets", 1))
            disks = [key for key in sorted(config) if DISK_RE.match(key) and "media=cdrom" not in config[key]]
            boot = [key for key in str(config.get("boot", "")).replace("order=", "").split(";") if key in disks]
            root = (boot or disks or [None])[0]
            extra = [{"name": key, "path": None} for key in disks if key != root]
        else:
            cpus = int(config["cores"]) if "cores" in config else None
            root = "rootfs"
            extra = [{"name": key, "path": dict(item.partition("=")[::2] for item in config[key].split(",")).get("mp")}
                     for key in sorted(config) if MP_RE.match(key)]
        snapshots = [item for item in guest.snapshot.get() if item.get("name") != "current"]
        return {
            "exists": True,
            "name": name,
            "vmids": [item["vmid"] for item in found],
            "type": "container" if entry["type"] == "lxc" else "vm",
            "state": state,
            "cpus": cpus,
            "memory_mib": int(str(config.get("memory", 512)).replace("current=", "").split(",", maxsplit=1)[0]),
            "disk_gib": gib(config.get(root)) if root and config.get(root) else None,
            "tags": sorted(tag for tag in re.split(r"[;,\s]+", config.get("tags", "")) if tag),
            "description": config.get("description") or "",
            "networks": nets,
            "disks": extra,
            "snapshots": [{"name": item["name"], "stateful": bool(item.get("vmstate")), "created_at": iso(item.get("snaptime"))}
                          for item in sorted(snapshots, key=lambda item: item.get("snaptime") or 0)],
            "backups": self.backups(entry),
        }

    def backups(self, entry):
        found = []
        for storage in self.api().nodes(entry["node"]).storage.get(content="backup"):
            for item in self.api().nodes(entry["node"]).storage(storage["storage"]).content.get(content="backup", vmid=entry["vmid"]):
                notes = (item.get("notes") or "").strip()
                # The driver keeps a backup's name in its notes as "polyvirt:<name>"; other backups go by their file name.
                name = notes[len("polyvirt:"):] if notes.startswith("polyvirt:") else item["volid"].split("/")[-1]
                found.append({"name": name, "created_at": iso(item.get("ctime"))})
        return sorted(found, key=lambda item: item["created_at"] or "")

    def instances(self, prefix):
        return sorted(({"name": entry["name"], "state": entry.get("status")} for entry in self.guests(prefix)), key=lambda item: item["name"])

    def disk(self, name):
        """NAME is INSTANCE/SLOT (a Proxmox VE disk is a slot of a guest): the slot's volume, and the guest's unusedN volumes."""
        instance, _sep, slot = name.partition("/")
        found = [entry for entry in self.guests() if entry.get("name") == instance]
        if not found:
            return {"exists": False, "name": name, "unused": []}
        entry = found[0]
        config = self.api().nodes(entry["node"])(entry["type"])(entry["vmid"]).config.get()
        unused = sorted(config[key] for key in config if key.startswith("unused"))
        value = config.get(slot)
        if value is None:
            return {"exists": False, "name": name, "unused": unused}
        items = dict(item.partition("=")[::2] for item in value.split(",")[1:])
        volume = value.split(",")[0]
        stored = None
        if ":" in volume and volume != "none":
            storage = volume.split(":")[0]
            content = self.api().nodes(entry["node"]).storage(storage).content.get()
            stored = next((item for item in content if item["volid"] == volume), None)
        return {
            "exists": True, "name": name, "storage": volume.split(":")[0] if ":" in volume else None, "volume": volume,
            "size_gib": gib(value), "media": items.get("media"), "attached_to": [instance], "paths": {instance: items.get("mp")},
            "stored_size_gib": stored["size"] / 2 ** 30 if stored else None, "unused": unused,
        }

    def fault(self, *words):
        """Adds a simulator fault (tests/simulators/proxmox/README.md, Faults): POST /_sim/faults, with the API's auth.

        The words are joined again: a fault's text may hold spaces, which the pipe lookup splits.
        """
        return self._faults("POST", {"spec": " ".join(words)})

    def faults(self, action="list"):
        """``faults clear`` removes every fault, ``faults`` lists them."""
        return self._faults("DELETE" if action == "clear" else "GET", None)

    def _faults(self, method, data):
        headers = {}
        if self.conn.get("api_token_id"):
            headers["Authorization"] = "PVEAPIToken=%s=%s" % (self.conn["api_token_id"], self.conn["api_token_secret"])
        else:
            login = requests.post("https://%s:%d/api2/json/access/ticket" % (self.host, self.port), verify=self.verify, timeout=60,
                                  data={"username": self.conn.get("api_user") or "root@pam", "password": self.conn["api_password"]})
            login.raise_for_status()
            ticket = login.json()["data"]
            headers["Cookie"] = "PVEAuthCookie=%s" % ticket["ticket"]
            headers["CSRFPreventionToken"] = ticket["CSRFPreventionToken"]
        answer = requests.request(method, "https://%s:%d/_sim/faults" % (self.host, self.port), data=data, headers=headers, verify=self.verify,
                                  timeout=60)
        answer.raise_for_status()
        return (answer.json() or {}).get("data", []) if answer.content else []  # PVE's envelope, as the API answers

    def volume(self, node, volume):
        """Whether a volume exists on its storage (a detached disk's data is kept)."""
        storage = volume.split(":")[0]
        return {"exists": any(item["volid"] == volume for item in self.api().nodes(node).storage(storage).content.get())}

    def exec(self, name, command):
        entry = [entry for entry in self.guests() if entry.get("name") == name][0]
        agent = self.api().nodes(entry["node"]).qemu(entry["vmid"]).agent
        pid = agent.exec.post(command=["sh", "-c", command])["pid"]
        deadline = time.monotonic() + TASK_TIMEOUT
        while time.monotonic() < deadline:
            status = agent("exec-status").get(pid=pid)
            if status.get("exited"):
                if status.get("exitcode"):
                    raise SystemExit("in %s, %r exited %s: %s" % (name, command, status.get("exitcode"), status.get("err-data", "")))
                return status.get("out-data", "")
            time.sleep(0.2)  # polls the agent; the deadline above bounds it
        raise SystemExit("in %s, %r did not finish within %d s" % (name, command, TASK_TIMEOUT))

    def cleanup(self, prefix):
        if len(prefix) < 3:
            raise SystemExit("refusing to clean up prefix %r: too short to be a test run's own" % prefix)
        removed = []
        for entry in self.guests(prefix):
            guest = self.api().nodes(entry["node"])(entry["type"])(entry["vmid"])
            if entry.get("status") == "running":
                self.wait(entry["node"], guest.status.stop.post())
            self.wait(entry["node"], guest.delete(purge=1))
            removed.append(entry["name"])
        return {"removed": removed, "left": [entry["name"] for entry in self.guests(prefix)]}

    def wait(self, node, upid):
        deadline = time.monotonic() + TASK_TIMEOUT
        while time.monotonic() < deadline:
            status = self.api().nodes(node).tasks(upid).status.get()
            if status.get("status") == "stopped":
                return status
            time.sleep(0.1)  # polls the task; the deadline above bounds it
        raise SystemExit("task %s did not finish within %d s" % (upid, TASK_TIMEOUT))

    def session_start(self):
        """A small template for the suite (the seed's has a 3 GiB disk, and the scenarios grow a disk from 2 GiB)."""
        if os.path.exists(self._mark_file()):
            os.unlink(self._mark_file())  # a new simulator numbers its journal from 0 again
        if not [entry for entry in self.guests() if entry.get("name") == TINY["name"]]:
            node = self.api().nodes.get()[0]["node"]
            qemu = self.api().nodes(node).qemu
            self.wait(node, qemu.post(**TINY))
            self.wait(node, qemu(TINY["vmid"]).template.post())
        return {"template": TINY["name"]}

    def session_stop(self):
        for entry in self.guests():
            if entry.get("name") == TINY["name"]:
                self.wait(entry["node"], self.api().nodes(entry["node"]).qemu(entry["vmid"]).delete(purge=1))
        return {}

    # -- the journal: the simulator's own ---------------------------------------------------------------

    def _journal(self, since):
        url = "https://%s:%d/_sim/requests" % (self.host, self.port)
        answer = requests.get(url, params={"since": since}, verify=self.verify, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def _mark_file(self):
        return os.path.join(self.state_dir, "journal.mark")

    def journal_mark(self):
        """The index the next request will get (read from the last mark on, so the journal is not read whole each time)."""
        try:
            with open(self._mark_file()) as handle:
                known = int(handle.read())
        except (OSError, ValueError):
            known = 0
        entries = self._journal(known)
        if not entries and known:
            entries = self._journal(0)  # a mark left by an earlier simulator may lie ahead of this one's journal
        mark = entries[-1]["index"] + 1 if entries else 0
        os.makedirs(self.state_dir, exist_ok=True)
        with open(self._mark_file(), "w") as handle:
            handle.write(str(mark))
        return mark

    def journal_start(self):
        return {"mark": self.journal_mark()}

    def journal_stop(self):
        return {"stopped": None}  # nothing runs in the background

    def journal_since(self, mark):
        entries = [entry for entry in self._journal(mark) if not entry["path"].startswith("/_sim/")]
        counted = [entry for entry in entries if not entry["path"].endswith("/access/ticket")]
        return {
            "entries": [dict((key, entry[key]) for key in ("index", "method", "path", "status")) for entry in entries],
            "reads": sum(1 for entry in counted if entry["method"] == "GET"),
            "writes": sum(1 for entry in counted if entry["method"] in MUTATING),
            "mark": entries[-1]["index"] + 1 if entries else mark,
        }


def gib(volume):
    size = dict(item.partition("=")[::2] for item in str(volume).split(",")).get("size")
    if not size:
        return None
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)$", size)
    value = float(match.group(1)) * UNITS[match.group(2)] / 2 ** 30
    return int(value) if value.is_integer() else value


def iso(epoch):
    if not epoch:
        return None
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).isoformat().replace("+00:00", "Z")


if __name__ == "__main__":
    main(Probe, __doc__, "proxmox")
