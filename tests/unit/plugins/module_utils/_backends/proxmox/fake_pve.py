# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""An in-memory Proxmox VE answering ProxmoxClient.request (method, path, params), as PVE 9 shapes its answers.

Tasks finish at once (their UPID's status is ``stopped`` on the first read). ``requests`` records every
call as ``(method, path, params)``; ``fail`` queues errors for the next calls whose path contains a text;
``task_exit`` makes the next task of a type end with that exit status.
"""

import copy
import itertools
import re
from urllib.parse import unquote

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.client import error_for

SECRET = "s3cr3t-cipassword"
TEMPLATE = {"vmid": 9000, "node": "pve", "type": "qemu", "name": "debian-12-cloud", "template": 1, "status": "stopped",
            "config": {"name": "debian-12-cloud", "template": 1, "cores": 2, "memory": "2048", "agent": "1",
                       "scsi0": "local-lvm:base-9000-disk-0,size=3G", "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
                       "net0": "virtio=BC:24:11:00:90:00,bridge=vmbr0", "ipconfig0": "ip=dhcp", "boot": "order=scsi0;ide2;net0"}}
WEB1 = {"vmid": 100, "node": "pve", "type": "qemu", "name": "web1", "status": "running", "tags": "a;b",
        "config": {"name": "web1", "cores": 2, "memory": "512", "agent": "1", "tags": "a;b", "cipassword": SECRET,
                   "scsi0": "local-lvm:vm-100-disk-0,size=3G", "net0": "virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1",
                   "ipconfig0": "ip=dhcp", "sshkeys": "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl%20me%40host%0A",
                   "boot": "order=scsi0;net0"},
        "snapshots": {"snap0": {"snaptime": 1764000000, "description": "before", "vmstate": 0}}}
CT1 = {"vmid": 101, "node": "pve", "type": "lxc", "name": "ct1", "status": "stopped",
       "config": {"hostname": "ct1", "cores": 1, "memory": 256, "rootfs": "local-lvm:vm-101-disk-0,size=8G",
                  "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:01:01,ip=dhcp,type=veth"}}
OSTEMPLATE = "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst"
ISO = "local:iso/debian-12.12.0-amd64-netinst.iso"
DRIVE_RE = re.compile(r"^(scsi|virtio|sata|ide|mp)\d+$")
LXC_HOT = {"description", "tags", "cores", "memory", "hostname", "onboot"}
QEMU_HOT = {"name", "description", "tags", "onboot", "agent", "sshkeys", "ciuser", "cipassword"}


class FakePve:
    def __init__(self, guests=(TEMPLATE, WEB1, CT1), nodes=("pve",)):
        self.guests = dict((guest["vmid"], copy.deepcopy(guest)) for guest in guests)
        for guest in self.guests.values():
            guest.setdefault("pending", {})
            guest.setdefault("snapshots", {})
            guest.setdefault("paused", False)
        self.nodes = list(nodes)
        self.requests = []
        self.tasks = {}
        self.failures = []  # (text in path, exception factory), used once each
        self.task_exits = {}
        self.guest_files = {}  # vmid -> {path: content} the guest agent's file-read finds
        self.execs = []  # commands run through the guest agent
        self.stale_status = {}  # vmid -> fields cluster/resources lists as pvestatd last saw them (up to 10 s old)
        self.taken = set()  # vmids another client takes between nextid and create
        self.uploads = {}  # volid -> bytes of the uploaded ISO images
        self.after_clone = None  # called with the new guest after a clone: another client acting meanwhile
        # vzdump archives: volid -> content item, plus the config it holds
        self.backups = {"local:backup/vzdump-qemu-100-2025_11_24-16_00_00.vma.zst": {
            "volid": "local:backup/vzdump-qemu-100-2025_11_24-16_00_00.vma.zst", "content": "backup", "vmid": 100, "ctime": 1764000000,
            "size": 1 << 20, "subtype": "qemu", "notes": "polyvirt:b0", "_config": copy.deepcopy(WEB1["config"])}}
        self._pids = itertools.count(1000)

    def install(self, client):
        client.request = self.request
        return self

    def mutating(self):
        return [request for request in self.requests if request[0] != "GET"]

    def paths(self, method=None):
        return [request[1] for request in self.requests if method in (None, request[0])]

    def fail(self, text, status, message, errors=None, times=1):
        for _index in range(times):
            self.failures.append((text, status, message, errors))

    # -- dispatch -------------------------------------------------------------------------------------

    def request(self, method, path, **params):
        self.requests.append((method, path, dict(params)))
        for index, (text, status, message, errors) in enumerate(self.failures):
            if text in path:
                del self.failures[index]
                raise error_for(status, message, errors, method, path)
        try:
            return self._route(method, path.split("/"), params)
        except _Fail as exc:
            raise error_for(exc.status, exc.message, exc.errors, method, path)

    def _route(self, method, seg, params):  # pylint: disable=too-many-return-statements,too-many-branches
        if seg == ["cluster", "resources"]:
            if self.stale_status:
                guests = sorted(self.guests.values(), key=lambda guest: guest["vmid"])
                return [dict(self._resource(guest), **self.stale_status.get(guest["vmid"], {})) for guest in guests]
            return [self._resource(guest) for guest in sorted(self.guests.values(), key=lambda guest: guest["vmid"])]
        if seg == ["cluster", "nextid"]:
            vmid = 100
            while vmid in self.guests:
                vmid += 1
            return str(vmid)
        if seg == ["nodes"]:
            return [{"node": node, "status": "online"} for node in self.nodes]
        if len(seg) >= 3 and seg[0] == "nodes":
            node = seg[1]
            if node not in self.nodes:
                raise _Fail(500, "no such cluster node '%s'" % node)
            rest = seg[2:]
            if rest == ["network"]:
                return [{"iface": "eno1", "type": "eth"}, {"iface": "vmbr0", "type": "bridge"}]
            if rest == ["storage"]:
                storages = [{"storage": "local", "content": "backup,iso,vztmpl", "active": 1, "enabled": 1},
                            {"storage": "local-lvm", "content": "images,rootdir", "active": 1, "enabled": 1},
                            {"storage": "nfs1", "content": "images,rootdir", "active": 1, "enabled": 1}]
                return [item for item in storages if not params.get("content") or params["content"] in item["content"]]
            if len(rest) == 3 and rest[0] == "storage" and rest[2] == "content":
                if params.get("content") == "backup":
                    return [dict((key, value) for key, value in item.items() if not key.startswith("_")) for item in self.backups.values()
                            if item["volid"].startswith(rest[1] + ":") and item["vmid"] == params.get("vmid", item["vmid"])]
                return [{"volid": OSTEMPLATE, "content": "vztmpl"}, {"volid": ISO, "content": "iso"}] if rest[1] == "local" else []
            if len(rest) == 4 and rest[0] == "storage" and rest[2] == "content" and method == "GET":
                volid = unquote(rest[3])
                if volid != ISO and volid not in self.uploads:
                    raise _Fail(500, "volume '%s' does not exist" % volid)
                return {"format": "iso", "size": 1 << 20}
            if rest == ["vzdump"]:
                return self._vzdump(params)
            if len(rest) == 3 and rest[0] == "storage" and rest[2] == "upload":
                volid = "%s:iso/%s" % (rest[1], params["filename"].name)
                self.uploads[volid] = params["filename"].getvalue()
                return self._upid("imgcopy", None)
            if len(rest) == 4 and rest[0] == "storage" and rest[2] == "content" and method == "DELETE":
                volid = unquote(rest[3])
                if volid not in self.uploads and volid not in self.backups:
                    raise _Fail(500, "volume '%s' does not exist" % volid)
                self.uploads.pop(volid, None)
                self.backups.pop(volid, None)
                return self._upid("imgdel", None)
            if rest[0] == "tasks":
                return self._task(unquote(rest[1]), rest[2])
            if rest[0] in ("qemu", "lxc"):
                return self._guests(method, node, rest[0], rest[1:], params)
        raise _Fail(501, "Method '%s /%s' not implemented" % (method, "/".join(seg)))

    def _guests(self, method, node, kind, rest, params):  # pylint: disable=too-many-return-statements,too-many-branches
        if not rest:
            return self._create(node, kind, params)
        guest = self.guests.get(int(rest[0]))
        label = "VM" if kind == "qemu" else "CT"
        if guest is None or guest["node"] != node or guest["type"] != kind:
            raise _Fail(500, "Configuration file 'nodes/%s/%s/%s.conf' does not exist" % (node, "qemu-server" if kind == "qemu" else "lxc", rest[0]))
        sub = "/".join(rest[1:])
        if method == "DELETE" and not sub:
            if guest["status"] == "running":
                raise _Fail(500, "%s %d is running - destroy failed" % (label, guest["vmid"]))
            del self.guests[guest["vmid"]]
            return self._upid("qmdestroy", guest)
        if sub == "pending":
            items = []
            for key in sorted(set(guest["config"]) | set(guest["pending"])):
                item = {"key": key}
                if key in guest["config"]:
                    item["value"] = "**********" if key == "cipassword" else guest["config"][key]
                if key in guest["pending"]:
                    item["pending"] = guest["pending"][key]
                items.append(item)
            return items
        if sub == "status/current":
            return {"status": guest["status"], "qmpstatus": "paused" if guest["paused"] else guest["status"], "vmid": guest["vmid"]}
        if sub.startswith("status/"):
            return self._power(guest, sub.split("/")[1])
        if sub == "config":
            return self._config(guest, params, kind)
        if sub == "resize":
            key = params["disk"]
            parts = guest["config"][key].split(",")
            guest["config"][key] = ",".join([part for part in parts if not part.startswith("size=")] + ["size=%s" % params["size"]])
            return self._upid("resize", guest)
        if sub in ("move_disk", "move_volume"):
            return self._move(guest, params)
        if sub == "clone":
            return self._clone(guest, params)
        if sub == "agent/network-get-interfaces":
            if guest["status"] != "running" or guest["paused"]:
                raise _Fail(500, "QEMU guest agent is not running")
            return {"result": [{"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [{"ip-address": "127.0.0.1"}]},
                               {"name": "eth0", "hardware-address": "bc:24:11:00:01:00",
                                "ip-addresses": [{"ip-address": "10.20.0.10", "ip-address-type": "ipv4", "prefix": 24},
                                                 {"ip-address": "fe80::be24:11ff:fe00:100", "ip-address-type": "ipv6", "prefix": 64}]}]}
        if sub.startswith("agent/") and sub != "agent/network-get-interfaces":
            if guest["status"] != "running" or guest["paused"]:
                raise _Fail(500, "QEMU guest agent is not running")
            if sub == "agent/file-read":
                content = self.guest_files.get(guest["vmid"], {}).get(params["file"])
                if content is None:
                    raise _Fail(500, "Agent error: Failed to open file '%s': No such file or directory" % params["file"])
                return {"content": content}
            if sub == "agent/exec":
                self.execs.append(params["command"])
                return {"pid": 1000 + len(self.execs)}
            if sub == "agent/exec-status":
                return {"exited": 1, "exitcode": 0, "out-data": "status: done\n"}
        if sub == "interfaces":
            return [{"name": "eth0", "hwaddr": "bc:24:11:00:01:01", "ip-addresses": [{"ip-address": "10.20.0.11", "ip-address-type": "inet"}]}]
        if sub == "snapshot":
            if method == "POST":
                guest["snapshots"][params["snapname"]] = {"snaptime": 1764000100 + len(guest["snapshots"]), "description": params.get("description", ""),
                                                          "vmstate": params.get("vmstate", 0)}
                return self._upid("qmsnapshot", guest)
            items = [dict(item, name=name) for name, item in guest["snapshots"].items()]
            return items + [{"name": "current", "description": "You are here!"}]
        match = re.match(r"^snapshot/([^/]+)(/rollback)?$", sub)
        if match:
            name = unquote(match.group(1))
            if name not in guest["snapshots"]:
                raise _Fail(500, "snapshot '%s' does not exist" % name)
            if match.group(2):
                snap = guest["snapshots"][name]
                guest["status"] = "running" if snap.get("vmstate") or params.get("start") else "stopped"
                return self._upid("qmrollback", guest)
            del guest["snapshots"][name]
            return self._upid("qmdelsnapshot", guest)
        raise _Fail(501, "Method '%s %s' not implemented" % (method, sub))

    # -- behaviour ------------------------------------------------------------------------------------

    def _resource(self, guest):
        entry = {"id": "%s/%d" % (guest["type"], guest["vmid"]), "vmid": guest["vmid"], "node": guest["node"], "type": guest["type"],
                 # pvestatd records a running VM's QMP status, and cluster/resources lists it: "paused" for a paused VM
                 "name": guest["name"], "status": "paused" if guest["paused"] else guest["status"], "template": guest.get("template", 0),
                 "maxcpu": guest["config"].get("cores", 1), "maxmem": int(str(guest["config"].get("memory", 512))) * 1024 ** 2}
        if guest["config"].get("tags"):
            entry["tags"] = guest["config"]["tags"]
        return entry

    def _upid(self, kind, guest):
        node, vmid = (guest["node"], guest["vmid"]) if guest else ("pve", "")
        upid = "UPID:%s:%08X:00000000:6B000000:%s:%s:root@pam:" % (node, next(self._pids), kind, vmid)
        self.tasks[upid] = self.task_exits.pop(kind, "OK")
        return upid

    def _task(self, upid, what):
        exit_status = self.tasks[upid]
        if what == "status":
            return {"upid": upid, "status": "stopped", "exitstatus": exit_status, "type": upid.split(":")[5]}
        lines = [{"n": 1, "t": "starting"}]
        if exit_status.startswith("WARNINGS"):
            lines.append({"n": 2, "t": "WARN: something odd"})
            lines.append({"n": 3, "t": "TASK " + exit_status})
        elif exit_status != "OK":
            lines.append({"n": 2, "t": "worker said why"})
            lines.append({"n": 3, "t": "TASK ERROR: " + exit_status})
        return lines

    def _take(self, vmid):
        if vmid in self.guests or vmid in self.taken:
            self.taken.discard(vmid)
            self.guests.setdefault(vmid, {"vmid": vmid, "node": "pve", "type": "qemu", "name": "someone-else", "status": "stopped",
                                          "config": {"memory": "512"}, "pending": {}, "snapshots": {}, "paused": False})
            raise _Fail(500, "unable to create VM %d: config file already exists" % vmid)

    def _clone(self, source, params):
        vmid = int(params["newid"])
        self._take(vmid)
        config = dict((key, value) for key, value in source["config"].items() if key != "template")
        key = "name" if source["type"] == "qemu" else "hostname"
        name = config[key] = params[key]
        config["net0"] = re.sub(r"=BC:24:11:[0-9A-F:]+", "=BC:24:11:AA:%02X:%02X" % (vmid // 256, vmid % 256), config["net0"])
        if params.get("description") is not None:
            config["description"] = params["description"]
        self.guests[vmid] = {"vmid": vmid, "node": params.get("target", source["node"]), "type": source["type"], "name": name, "status": "stopped",
                             "config": config, "pending": {}, "snapshots": {}, "paused": False}
        if self.after_clone:
            self.after_clone(self.guests[vmid])
        return self._upid("qmclone" if source["type"] == "qemu" else "vzclone", source)

    def _vzdump(self, params):
        guest = self.guests[int(params["vmid"])]
        stamp = 1764000100 + len(self.backups)
        volid = "%s:backup/vzdump-%s-%d-%d.vma.zst" % (params["storage"], guest["type"], guest["vmid"], stamp)
        self.backups[volid] = {"volid": volid, "content": "backup", "vmid": guest["vmid"], "ctime": stamp, "size": 1 << 20, "subtype": guest["type"],
                               "notes": params.get("notes-template", "{{guestname}}").replace("{{guestname}}", guest["name"]),
                               "_config": copy.deepcopy(guest["config"]), "_mode": params.get("mode")}
        return self._upid("vzdump", guest)

    def _restore(self, node, kind, params):
        backup = self.backups[params.get("archive") or params["ostemplate"]]
        vmid = int(params["vmid"])
        if vmid in self.guests and not params.get("force"):
            raise _Fail(500, "unable to restore VM %d - VM %d already exists on node '%s'" % (vmid, vmid, node))
        if vmid in self.guests and self.guests[vmid]["status"] == "running":
            raise _Fail(500, "unable to restore VM %d - VM is running" % vmid)
        config = copy.deepcopy(backup["_config"])
        key = "name" if kind == "qemu" else "hostname"
        if params.get(key):
            config[key] = params[key]
        self.guests[vmid] = {"vmid": vmid, "node": node, "type": kind, "name": config[key], "status": "stopped", "config": config, "pending": {},
                             "snapshots": {}, "paused": False}
        return self._upid("qmrestore" if kind == "qemu" else "vzrestore", self.guests[vmid])

    def _create(self, node, kind, params):
        if params.get("archive") or params.get("restore"):
            return self._restore(node, kind, params)
        vmid = int(params.pop("vmid"))
        self._take(vmid)
        config = dict(params)
        storage, size = config["rootfs"].split(":")
        config["rootfs"] = "%s:vm-%d-disk-0,size=%sG" % (storage, vmid, size)
        config.pop("ostemplate")
        for key in [key for key in config if key.startswith("net")]:
            config[key] += ",hwaddr=BC:24:11:BB:00:%02X,type=veth" % (vmid % 256)
        self.guests[vmid] = {"vmid": vmid, "node": node, "type": kind, "name": params["hostname"], "status": "stopped", "config": config,
                             "pending": {}, "snapshots": {}, "paused": False}
        return self._upid("vzcreate", self.guests[vmid])

    def _config(self, guest, params, kind):
        hot = QEMU_HOT if kind == "qemu" else LXC_HOT
        for key in (params.pop("delete", "") or "").split(","):
            if key:
                old = guest["config"].pop(key, None)
                if old and DRIVE_RE.match(key) and "media=cdrom" not in old and "cloudinit" not in old:
                    guest["config"]["unused%d" % self._free_index(guest, "unused")] = old.split(",")[0]  # a removed disk is kept
        for key, value in list(params.items()):
            if DRIVE_RE.match(key):
                params[key] = value = self._allocate(guest, value)
        for key, value in params.items():
            if key == "sshkeys" and re.search(r"[^-%a-zA-Z0-9_.!~*'()]", str(value)):
                raise _Fail(400, "Parameter verification failed.", {"sshkeys": "invalid format - invalid urlencoded string"})
            # scsi and virtio disks hot-plug; ide and sata devices wait for a restart, except a CD-ROM's medium
            cdrom_medium = "media=cdrom" in str(value) and "media=cdrom" in str(guest["config"].get(key, ""))
            plugged = kind == "qemu" and (re.match(r"^(scsi|virtio)\d+$", key) or cdrom_medium)
            if guest["status"] == "running" and key not in hot and not key.startswith(("net", "ipconfig")) and not plugged:
                guest["pending"][key] = value
            else:
                guest["config"][key] = value
            if key in ("name", "hostname"):
                guest["name"] = value
        return self._upid("qmconfig", guest) if kind == "qemu" else None

    def _allocate(self, guest, value):
        """``STORAGE:SIZE`` (GiB) -> a new volume ``STORAGE:vm-<vmid>-disk-N,size=...``, as PVE allocates a disk."""
        head, sep, rest = str(value).partition(",")
        match = re.match(r"^([a-z][a-z0-9-]*):(\d+(\.\d+)?)$", head)
        if not match:
            return value
        used = set(item.split(",")[0] for other in self.guests.values() for item in other["config"].values() if isinstance(item, str))
        index = 0
        while "%s:vm-%d-disk-%d" % (match.group(1), guest["vmid"], index) in used:
            index += 1
        size = float(match.group(2))
        size_text = "%dG" % size if size == int(size) else "%dM" % (size * 1024)
        return "%s:vm-%d-disk-%d%s%s,size=%s" % (match.group(1), guest["vmid"], index, sep, rest, size_text)

    @staticmethod
    def _free_index(guest, prefix):
        index = 0
        while "%s%d" % (prefix, index) in guest["config"]:
            index += 1
        return index

    def _move(self, guest, params):
        key = params.get("disk") or params.get("volume")
        head, sep, rest = guest["config"][key].partition(",")
        guest["config"][key] = "%s:%s%s%s" % (params["storage"], head.split(":", 1)[1], sep, rest)
        if str(params.get("delete")) != "1":
            guest["config"]["unused%d" % self._free_index(guest, "unused")] = head
        return self._upid("qmmove", guest)

    def _power(self, guest, action):
        if self.task_exits.get("qm" + action, "OK") != "OK":
            return self._upid("qm" + action, guest)  # the task fails and does nothing
        if action == "start":
            if guest.get("template"):
                raise _Fail(500, "you can't start a vm if it's a template")
            guest["status"] = "running"
        elif action in ("stop", "shutdown"):
            guest["status"], guest["paused"] = "stopped", False
            guest["config"].update(guest["pending"])
            guest["pending"] = {}
        elif action == "reboot":
            guest["config"].update(guest["pending"])
            guest["pending"] = {}
        elif action == "suspend":
            guest["paused"] = True
        elif action == "resume":
            guest["paused"] = False
        return self._upid("qm" + action, guest)


class _Fail(Exception):
    def __init__(self, status, message, errors=None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors
