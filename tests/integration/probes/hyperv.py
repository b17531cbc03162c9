# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The conformance suite's probe for Hyper-V: reads the real state of the WinRM endpoint (the emulator in
tests/simulators/hyperv) with pywinrm and the emulator's own reference scripts, never with this
collection's code, and prints JSON. The commands are those of probes/lxd.py:

  instance NAME, instances PREFIX, disk PATH, cleanup PREFIX, session start|stop,
  seed NAME (the files of the VM's seed ISO), files FOLDER,
  journal start|stop, journal mark, journal since MARK

The journal is the emulator's (GET /_sim/requests?since=N). A script run is one entry with an ``op``
(the Send that delivered it): reads are the operations that change nothing, writes every other one.
``session start`` puts the suite's parent images on the host (backends/hyperv.yml, ``types[].image``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import urllib.request

import winrm
from _cli import main  # the probes' shared command line; this folder is on sys.path when a probe runs

TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, TREE)
from tests.simulators.hyperv import scripts  # noqa: E402 pylint: disable=wrong-import-position

READ_OPS = ("host_get", "switch_list", "vm_list", "vm_get", "vhd_get", "disk_list", "nic_list", "checkpoint_list", "dir_list", "file_read")
STATES = {"Running": "running", "Off": "stopped", "Paused": "paused", "Saved": "saved"}
GIB = 1024 ** 3
MIB = 1024 ** 2


class Probe:
    def __init__(self, config, state_dir):
        backend = config["backend"]
        connection = backend["connection"]
        self.url = "http://%s:%s/wsman" % (connection["host"], connection["port"])
        self.journal_url = "http://%s:%s/_sim/requests" % (connection["host"], connection["port"])
        self.protocol = winrm.Protocol(self.url, transport="plaintext", username=connection["username"], password=connection["password"],
                                       message_encryption="never")
        self.images = backend.get("images") or []
        self.storage = backend.get("storage")
        # Where the collection keeps backups by default (Backups under connection.vm_path): <root>\<instance>\<backup>.
        self.backups_root = connection.get("vm_path", "") + "\\Backups"
        self.state_dir = state_dir
        self.shell = None

    def listing(self, path, **args):
        """dir_list of ``path``, or [] when the folder does not exist (Get-ChildItem fails then, as on Hyper-V)."""
        try:
            return self.run("dir_list", path=path, **args) or []
        except SystemExit as exc:
            if "because it does not exist" in str(exc):
                return []
            raise

    def backups(self, name):
        folder = "%s\\%s" % (self.backups_root, name)
        found = []
        for item in self.listing(folder, recurse=True, filter="*.vmcx"):
            parts = item["path"][len(folder) + 1:].split("\\")
            if len(parts) == 4 and parts[2] == "Virtual Machines":
                found.append({"name": parts[0], "created_at": item["created"], "config_path": item["path"],
                              "folders": sorted(entry["name"] for entry in self.listing("%s\\%s\\%s" % (folder, parts[0], parts[1])))})
        return sorted(found, key=lambda item: item["created_at"])

    def run(self, op, **args):
        if self.shell is None:
            self.shell = self.protocol.open_shell(codepage=65001)
        command = self.protocol.run_command(self.shell, scripts.bootstrap_command())
        self.protocol.send_command_input(self.shell, command, scripts.build(op, args).encode("utf-8"), end=True)
        out, err, code = self.protocol.get_command_output(self.shell, command)
        self.protocol.cleanup_command(self.shell, command)
        text = out.decode("utf-8").strip()
        answer = json.loads(text.splitlines()[-1]) if text else {}
        if not answer.get("ok"):
            raise SystemExit("%s %s failed (%s): %s %s" % (op, args, code, answer.get("error"), err.decode("utf-8", "replace")[:500]))
        return answer["result"]

    def close(self):
        if self.shell is not None:
            self.protocol.close_shell(self.shell)

    # -- reads ------------------------------------------------------------------------------------

    def instance(self, name):
        vm = self.run("vm_get", name=name)
        if vm is None:
            return {"exists": False, "name": name}
        disks = vm.get("disks") or []
        boot = self.run("vhd_get", path=disks[0]["path"]) if disks else None
        checkpoints = self.run("checkpoint_list", name=name) or []
        return {
            "exists": True,
            "path": vm["path"],
            "name": vm["name"],
            "id": vm["id"],
            "type": "vm",
            "state": STATES.get(vm["state"], vm["state"].lower()),
            "native_state": vm["state"],
            "cpus": vm["cpu"],
            "memory_mib": vm["memory_startup"] // MIB,
            "disk_gib": boot["size"] / GIB if boot and boot["size"] % GIB else (boot["size"] // GIB if boot else None),
            "image": (boot or {}).get("parent_path"),
            "generation": vm["generation"],
            "secure_boot": vm.get("secure_boot"),
            "tags": [],
            "description": vm.get("notes") or "",
            "networks": [{"device": nic["name"], "network": nic["switch"], "mac": mac(nic["mac"])} for nic in vm.get("nics") or []],
            "disks": [{"name": disk["path"], "path": disk["path"]} for disk in disks[1:]],
            "snapshots": [{"name": cp["name"], "stateful": cp["type"] == "Standard", "created_at": cp["created"]}
                          for cp in sorted(checkpoints, key=lambda cp: cp["created"])],
            "backups": self.backups(name),
            "dvds": [{"path": dvd["path"], "controller_type": dvd["controller_type"]} for dvd in vm.get("dvds") or []],
        }

    def instances(self, prefix):
        return [{"name": vm["name"], "state": STATES.get(vm["state"], vm["state"].lower())}
                for vm in self.run("vm_list") or [] if vm["name"].startswith(prefix)]

    def disk(self, name):
        path = "%s\\%s.vhdx" % (self.storage, name)
        vhd = self.run("vhd_get", path=path)
        if vhd is None:
            return {"exists": False, "name": name}
        users = [vm["name"] for vm in self.run("vm_list") or [] if any(d["path"].lower() == path.lower() for d in vm.get("disks") or [])]
        return {"exists": True, "name": name, "storage": self.storage, "size_gib": vhd["size"] // GIB, "type": vhd["type"], "attached_to": users,
                "paths": dict((user, path) for user in users)}

    def cleanup(self, prefix):
        if len(prefix) < 3:
            raise SystemExit("refusing to clean up prefix %r: too short to be a test run's own" % prefix)
        removed = []
        # The contract has no directory listing: the disks are those VMs use in the suite's storage, and the
        # names the disk scenario gives (<prefix>-v1 ...).
        names = set("%s-v%d" % (prefix, index) for index in range(1, 10))
        for vm in self.run("vm_list") or []:
            for drive in vm.get("disks") or []:
                folder, _sep, base = drive["path"].rpartition("\\")
                if folder.lower() == self.storage.lower() and base.startswith(prefix):
                    names.add(base.rsplit(".", 1)[0])
        for vm in self.instances(prefix):
            self.run("vm_stop", name=vm["name"], mode="turnoff")
            self.run("vm_remove", name=vm["name"], delete_disks=True)
            removed.append(vm["name"])
        for name in sorted(names):
            if self.run("vhd_remove", path="%s\\%s.vhdx" % (self.storage, name))["removed"]:
                removed.append(name)
        for item in self.listing(self.backups_root):
            if item["name"].startswith(prefix):
                self.run("item_remove", path=item["path"], recurse=True)
                removed.append(item["path"])
        for item in self.listing(self.storage):  # the ISO files put_file made for optical drives
            if item["name"].startswith(prefix) and item["name"].lower().endswith(".iso"):
                self.run("item_remove", path=item["path"])
                removed.append(item["path"])
        left = [vm["name"] for vm in self.instances(prefix)] + [name for name in sorted(names) if self.disk(name)["exists"]]
        left += [item["path"] for item in self.listing(self.backups_root) if item["name"].startswith(prefix)]
        left += [item["path"] for item in self.listing(self.storage) if item["name"].startswith(prefix) and item["name"].lower().endswith(".iso")]
        return {"removed": removed, "left": left}

    def seed(self, name):
        """What the guest would see on the VM's seed ISO: its volume label and files (opened with pycdlib)."""
        import pycdlib  # pylint: disable=import-outside-toplevel

        vm = self.run("vm_get", name=name)
        isos = [dvd["path"] for dvd in (vm or {}).get("dvds") or [] if dvd.get("path")]
        if not isos:
            return {"iso": None, "label": None, "files": {}}
        image = base64.b64decode(self.run("file_read", path=isos[0])["data"])
        iso = pycdlib.PyCdlib()
        iso.open_fp(io.BytesIO(image))
        files = {}
        try:
            for child in iso.list_children(rr_path="/"):
                entry = child.rock_ridge.name() if child.rock_ridge else None
                entry = entry.decode("utf-8") if isinstance(entry, bytes) else entry
                if entry and entry not in (".", ".."):
                    out = io.BytesIO()
                    iso.get_file_from_iso_fp(out, rr_path="/" + entry)
                    files[entry] = out.getvalue().decode("utf-8")
            label = iso.pvd.volume_identifier.decode("ascii").strip()
        finally:
            iso.close()
        return {"iso": isos[0], "label": label, "files": files}

    def put_file(self, path):
        """Write a small file on the host (an ISO for an optical drive): what a test needs to exist."""
        item = self.run("file_write", path=path, data=base64.b64encode(b"polyvirt test medium\n").decode("ascii"))
        return {"path": item["path"], "length": item["length"]}

    def file(self, path):
        """Whether a file exists on the host, with its length."""
        folder, dummy, base = path.rpartition("\\")
        found = [item for item in self.listing(folder, filter=base) if item["name"].lower() == base.lower()]
        return {"exists": bool(found), "path": path, "length": found[0]["length"] if found else None}

    def files(self, path):
        """The names in a host folder ([] when it does not exist)."""
        return [item["name"] for item in self.listing(path)]

    # -- the session: the parent images the suite boots from -------------------------------------

    def session_start(self):
        made = []
        for image in self.images:
            if self.run("vhd_get", path=image["path"]) is None:
                self.run("vhd_create", path=image["path"], type="dynamic", size=image["size_gib"] * GIB)
                made.append(image["path"])
        return {"images": made}

    def session_stop(self):
        return {"stopped": True}

    # -- the journal: the emulator's own ------------------------------------------------------------

    def _entries(self, since):
        with urllib.request.urlopen("%s?since=%d" % (self.journal_url, since), timeout=30) as response:
            return json.loads(response.read())

    def _last_file(self):
        return os.path.join(self.state_dir, "journal.next")

    @staticmethod
    def journal_start():
        return {"journal": "start"}  # the emulator keeps its journal all the time

    @staticmethod
    def journal_stop():
        return {"journal": "stop"}

    def journal_mark(self):
        os.makedirs(self.state_dir, exist_ok=True)
        try:
            with open(self._last_file()) as f:
                known = int(f.read())
        except (OSError, ValueError):
            known = 0
        entries = self._entries(known)
        mark = entries[-1]["index"] + 1 if entries else known
        with open(self._last_file(), "w") as f:
            f.write(str(mark))
        return mark

    def journal_since(self, mark):
        entries = self._entries(mark)
        scripts_run = [e for e in entries if e.get("op")]
        return {
            "entries": [{"index": e["index"], "method": e["method"], "path": e["path"], "status": e.get("status"), "action": e.get("action"),
                         "op": e.get("op")} for e in entries if e.get("action") != "Receive"],
            "reads": sum(1 for e in scripts_run if e["op"] in READ_OPS),
            "writes": sum(1 for e in scripts_run if e["op"] not in READ_OPS),
            "shells": sum(1 for e in entries if e.get("action") == "Create"),
            "ops": [e["op"] for e in scripts_run],
            "mark": entries[-1]["index"] + 1 if entries else mark,
        }


def mac(value):
    raw = (value or "").replace(":", "").replace("-", "").lower()
    return ":".join(raw[i:i + 2] for i in range(0, len(raw), 2)) or None


if __name__ == "__main__":
    main(Probe, __doc__, "hyperv")
