# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxmox VE disks: the drive slots of a QEMU VM (``scsiN``, ``virtioN``, ``sataN``, ``ideN``) and the
mount points of an LXC container (``mpN``).

A PVE volume belongs to one guest (its name carries the vmid), so a disk is a slot of ``instance``: the
slot is its identity, and there are no free disks. A new disk is allocated in its slot with PVE's
``STORAGE:SIZE`` syntax; ``size`` grows it (``resize``), a new ``storage`` moves it (``move_disk`` /
``move_volume``, the old copy removed once the new one is written); ``state=detached`` takes it out of its
slot, so PVE keeps the volume as ``unusedN`` of the guest, data kept; ``state=absent`` detaches it and
then deletes that ``unusedN`` (``name: unusedN`` deletes a volume detached before). Every read comes
from the guest's config that finding the instance read already.
"""

from __future__ import annotations

import re

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Disks
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox import seed
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.instances import boot_disk, guest_path, parse_property, read_pending
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, disk_result, in_unit, parse_size

SLOT_RE = re.compile(r"^(scsi|virtio|sata|ide|mp|unused)(\d+)$")
SLOT_LIMITS = {"scsi": 30, "virtio": 15, "sata": 5, "ide": 3, "mp": 255, "unused": 255}  # qemu-server Drive.pm, pve-container
QEMU_BUSES = ("scsi", "virtio", "sata", "ide")
OPTICAL_BUSES = ("scsi", "sata", "ide")  # a virtio-blk device cannot be a CD-ROM
OPTION_TYPES = {"path": str, "iso": str}
ISO_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*:iso/[^/]+$")


class ProxmoxDisks(Disks):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client
        self._instance = None  # the instance get() last saw: create, attach, detach and delete act on its config

    # -- validation (no API call) ---------------------------------------------------------------

    def validate(self, spec):
        name = spec["name"]
        match = SLOT_RE.match(name)
        if not match:
            raise InvalidInput("name %r is not a Proxmox VE disk slot: a disk is the slot of its guest, scsiN, virtioN, sataN or ideN on a VM, "
                               "mpN on a container" % name)
        bus, index = match.group(1), int(match.group(2))
        if index > SLOT_LIMITS[bus]:
            raise InvalidInput("name %s: Proxmox VE has %s0 to %s%d" % (name, bus, bus, SLOT_LIMITS[bus]))
        if bus == "unused" and spec["state"] != "absent":
            raise InvalidInput("name %s: an unusedN volume can only be deleted (state=absent)" % name)
        if not spec["instance"]:
            raise InvalidInput("instance is required by the proxmox backend: a Proxmox VE disk is a slot of one guest (there are no free disks)")
        options = spec["backend_options"]
        for key, value in options.items():
            if key not in OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not a Proxmox VE disk option (known: %s)" % (key, ", ".join(sorted(OPTION_TYPES))))
            if not isinstance(value, OPTION_TYPES[key]):
                raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, OPTION_TYPES[key].__name__, value))
        path = options.get("path")
        if path is not None and (bus != "mp" or not path.startswith("/")):
            raise InvalidInput("backend_options.path is the absolute path of a container mount point (mpN), got %r for %s" % (path, name))
        if spec["optical"]:
            if bus not in OPTICAL_BUSES:
                raise InvalidInput("optical: a CD-ROM goes into an ide, sata or scsi slot of a VM, not %s" % name)
            if spec["size_bytes"] is not None:
                raise InvalidInput("size cannot be set for an optical drive (it holds an ISO volume)")
            iso = options.get("iso")
            if iso is not None and iso != "none" and not ISO_RE.match(iso):
                raise InvalidInput("backend_options.iso must be an ISO volume such as local:iso/debian-12.iso, got %r" % iso)
        elif "iso" in options:
            raise InvalidInput("backend_options.iso is for optical drives (optical: true)")
        if spec["state"] == "detached" and spec["size_bytes"] is not None:
            raise InvalidInput("size cannot be set with state=detached on the proxmox backend: a detached disk is an unusedN volume of its guest")

    # -- reads ----------------------------------------------------------------------------------

    def pool(self, spec, instance):
        """``storage``, else where the slot's volume is, else the storage of the guest's boot disk."""
        if spec["storage"]:
            return spec["storage"]
        config = _config(instance)
        found = _volume(config.get(spec["name"], ""))
        if found:
            return found.split(":")[0] if ":" in found else None
        if spec["optical"]:
            iso = spec["backend_options"].get("iso") or ""
            return iso.split(":")[0] if ":" in iso else None
        root = _volume(config.get(_root_key(instance), ""))
        return root.split(":")[0] if ":" in root else None

    def get(self, spec, instance):
        self._instance = instance
        if instance is None:
            return None
        _check_slot(spec["name"], instance)
        value = _config(instance).get(spec["name"])
        if value is None:
            if spec["state"] == "detached":
                # The slot holds nothing: whatever was in it is detached already (an unusedN of the guest, or gone).
                return disk_result(spec["name"], self.backend.name, storage=spec["storage"],
                                   backend_data={"slot": None, "vmid": _entry(instance)["vmid"], "unused": _unused(_config(instance))})
            return None
        disk = self.describe(instance, spec["name"], value)
        if spec["state"] != "absent" and disk["backend_data"]["optical"] != spec["optical"]:
            raise InvalidInput("slot %s of instance %s holds %s; set optical: %s to manage it" % (
                spec["name"], instance["name"], "a CD-ROM drive" if disk["backend_data"]["optical"] else "a disk",
                "true" if disk["backend_data"]["optical"] else "false"))
        if _managed(disk["backend_data"]["volume"]):
            raise InvalidInput("slot %s of instance %s holds its cloud-init drive, which the instance module manages" % (spec["name"], instance["name"]))
        return disk

    def describe(self, instance, slot, value):
        entry = _entry(instance)
        item = parse_property(value, "volume" if entry["type"] == "lxc" and slot.startswith("mp") else "file")
        volume = item.get("file") or item.get("volume") or str(value).split(",", maxsplit=1)[0]
        optical = item.get("media") == "cdrom"
        size_bytes = parse_size(item["size"], "size", "B") if item.get("size") else None
        attached = not slot.startswith("unused")
        return disk_result(
            slot, self.backend.name, size_gib=in_unit(size_bytes, GIB) if size_bytes else None, size_bytes=size_bytes,
            storage=volume.split(":")[0] if ":" in volume else None, attached_to=instance["name"] if attached else None,
            attachments=[instance["name"]] if attached else [], path=volume if optical else item.get("mp"),
            backend_data={"slot": slot, "volume": volume, "optical": optical, "vmid": entry["vmid"], "node": entry.get("node"), "config": value,
                          # PVE plugs ide and sata devices only at the next start: until then the change is [PENDING]
                          "pending": slot in ((instance.get("_native") or {}).get("pending") or ())},
        )

    def attachment(self, spec, attached):
        """What is compared with the disk as it is: its storage (a change moves it) and, on a container, its mount path."""
        instance = self._instance
        if spec["name"].startswith("unused") or instance is None:
            return {}
        result = {}
        if not spec["optical"]:
            result["storage"] = spec["storage"]
        if attached and not spec["optical"]:
            current = _volume(_config(instance).get(spec["name"], ""))
            if _entry(instance)["type"] == "lxc" and current.split(":")[0] != spec["storage"] and instance["state"] != "stopped":
                raise Conflict("mount point %s of container %s moves to storage %s only while the container is stopped (Proxmox VE cannot move "
                               "the volume of a running container)" % (spec["name"], instance["name"], spec["storage"]))
        if spec["name"].startswith("mp"):
            path = spec["backend_options"].get("path")
            if path is None and not attached:
                path = "/mnt/" + spec["name"]
            if path is not None:
                result["path"] = path
        if spec["optical"] and (not attached or "iso" in spec["backend_options"]):
            result["path"] = spec["backend_options"].get("iso") or "none"  # a CD-ROM's path is the ISO volume in it
        return result

    def check_source(self, spec):
        """Before a disk is made: the guest's type takes the slot, a new disk needs a size and a storage, an ISO must exist."""
        instance = self._instance
        if instance is None:
            return
        if spec["optical"]:
            iso = spec["backend_options"].get("iso")
            if iso and iso != "none":
                storage, dummy, rest = iso.partition(":")
                node = _entry(instance)["node"]
                if self.client.get_or_none(self.client.path("nodes", node, "storage", storage, "content", iso)) is None:
                    raise NotFound("backend_options.iso %s does not exist on node %s (%s)" % (iso, node, rest))
            return
        if spec["size_bytes"] is None:
            raise InvalidInput("size is required to create disk %s of instance %s" % (spec["name"], instance["name"]))
        if not spec["storage"]:
            raise InvalidInput("storage is required: instance %s has no disk whose storage to default to" % instance["name"])
        node = _entry(instance)["node"]
        content = "rootdir" if _entry(instance)["type"] == "lxc" else "images"
        found = [item.get("storage") for item in self.client.get(self.client.path("nodes", node, "storage"), content=content) or []]
        if spec["storage"] not in found:
            raise InvalidInput("storage %s on node %s cannot hold %s disks (%s content; those that can: %s)" % (
                spec["storage"], node, "container" if content == "rootdir" else "VM", content, ", ".join(found) or "none"))

    def list(self, storage=None, instance=None):
        guests = [instance] if instance is not None else [self._read_entry(entry) for entry in self.backend.resources() if not entry.get("template")]
        disks = []
        for guest in guests:
            if guest is None:
                continue
            config = _config(guest)
            keys = [key for key in config if SLOT_RE.match(key) and _disk_key(guest, key)]
            for key in sorted(keys, key=_slot_order):
                value = config[key]
                volume = _volume(value)
                if _managed(volume):
                    continue
                disk = self.describe(guest, key, value)
                if storage is None or disk["storage"] == storage:
                    disks.append(disk)
        return disks

    def _read_entry(self, entry):
        try:
            items = self.client.get(guest_path(entry) + "/pending") or []
        except NotFound:
            return None
        dummy, config, changing = read_pending(items)
        return {"name": entry.get("name"), "state": entry.get("status"), "_native": {"entry": entry, "config": config, "pending": changing}}

    # -- changes --------------------------------------------------------------------------------

    def create(self, spec, deadline):
        instance = self._require_instance(spec["instance"])
        entry = _entry(instance)
        slot = spec["name"]
        if spec["optical"]:
            value = "%s,media=cdrom" % (spec["backend_options"].get("iso") or "none")
        else:
            value = "%s:%s" % (spec["storage"], _gib(spec["size_bytes"]))
            if entry["type"] == "lxc":
                value += ",mp=%s" % (spec["backend_options"].get("path") or "/mnt/" + slot)
        self._write(entry, deadline, **{slot: value})
        return self._reread(spec, deadline)

    def resize(self, disk, size_bytes, deadline):
        entry = _entry(self._require_instance(disk["attached_to"] or (self._instance or {}).get("name")))
        size = "%dG" % (size_bytes // GIB) if size_bytes % GIB == 0 else "%dM" % (size_bytes // MIB) if size_bytes % MIB == 0 else str(size_bytes)
        self.client.run("PUT", guest_path(entry) + "/resize", deadline, disk=disk["name"], size=size)

    def attach(self, disk, instance, options, deadline):
        """The disk is in its slot since create(): a new storage moves it, a new mount path or ISO rewrites the slot."""
        entry = _entry(instance)
        slot = disk["name"]
        current = _config(self._refresh(instance))
        value = current.get(slot)
        if value is None:
            raise NotFound("slot %s of instance %s is empty" % (slot, instance["name"]))
        if options.get("storage") and _volume(value).split(":")[0] != options["storage"]:
            if entry["type"] == "lxc":
                self.client.run("POST", guest_path(entry) + "/move_volume", deadline, volume=slot, storage=options["storage"], delete=1)
            else:
                self.client.run("POST", guest_path(entry) + "/move_disk", deadline, disk=slot, storage=options["storage"], delete=1)
            value = _config(self._refresh(instance)).get(slot, value)
        item = _items(value)
        wanted = list(item)
        if "path" in options and disk["backend_data"].get("optical"):
            wanted[0] = options["path"]
        elif "path" in options:
            wanted = _set_item(wanted, "mp", options["path"])
        if wanted != item:
            self._write(entry, deadline, **{slot: ",".join(wanted)})

    def detach(self, disk, instance_name, deadline):
        instance = self._require_instance(instance_name)
        if _config(self._refresh(instance)).get(disk["name"]) is None:
            return
        self._write(_entry(instance), deadline, delete=disk["name"])

    def delete(self, disk, deadline):
        """Delete the volume a detach left as unusedN (a CD-ROM leaves nothing behind)."""
        data = disk.get("backend_data") or {}
        volume = data.get("volume")
        name = (self._instance or {}).get("name")
        if not volume or not name or data.get("optical"):
            return
        instance = self.backend.instances.get(name)
        if instance is None:
            return
        config = _config(instance)
        for key, value in sorted(config.items()):
            if key.startswith("unused") and _volume(value) == volume:
                self._write(_entry(instance), deadline, delete=key)
                return

    # -- helpers --------------------------------------------------------------------------------

    def _write(self, entry, deadline, **params):
        """A config change: QEMU's asynchronous POST (a task to wait on), LXC's PUT (the only config write containers have)."""
        method = "PUT" if entry["type"] == "lxc" else "POST"
        self.client.run(method, guest_path(entry) + "/config", deadline, **params)
        self.backend.forget()

    def _require_instance(self, name):
        if self._instance is not None and self._instance["name"] == name:
            return self._instance
        instance = self.backend.instances.get(name)
        if instance is None:
            raise NotFound("instance %s does not exist" % name)
        self._instance = instance
        return instance

    def _refresh(self, instance):
        """The guest's config as it is now (a task of this run may have changed it)."""
        fresh = self._read_entry(_entry(instance))
        if fresh is None:
            raise NotFound("instance %s disappeared during the change" % instance["name"])
        return dict(instance, _native=dict(instance["_native"], config=_config(fresh), pending=fresh["_native"]["pending"]))

    def _reread(self, spec, deadline):
        del deadline
        instance = self._refresh(self._require_instance(spec["instance"]))
        self._instance = instance
        value = _config(instance).get(spec["name"])
        if value is None:
            raise NotFound("disk %s of instance %s is missing after it was made" % (spec["name"], spec["instance"]))
        disk = self.describe(instance, spec["name"], value)
        # attach() follows: the reconciler records the attachment as its own step
        return dict(disk, attached_to=None, attachments=[], path=None)


def _entry(instance):
    return instance["_native"]["entry"]


def _config(instance):
    if instance is None:
        return {}
    return (instance.get("_native") or {}).get("config") or {}


def _volume(value):
    return str(value or "").split(",", maxsplit=1)[0]


def _items(value):
    return [item for item in str(value).split(",") if item]


def _set_item(items, key, value):
    prefix = key + "="
    found = [index for index, item in enumerate(items) if item.startswith(prefix)]
    if found:
        return [prefix + value if index == found[0] else item for index, item in enumerate(items)]
    return items + [prefix + value]


def _gib(size_bytes):
    """PVE's STORAGE:SIZE takes GiB, fractions allowed."""
    value = size_bytes / GIB
    return ("%d" % value) if value == int(value) else ("%.6f" % value).rstrip("0")


def _root_key(instance):
    return boot_disk(_entry(instance), _config(instance)) if instance else None


def _disk_key(instance, key):
    bus = SLOT_RE.match(key).group(1)
    if bus == "unused":
        return False
    return (bus == "mp") == (_entry(instance)["type"] == "lxc")


def _check_slot(name, instance):
    bus = SLOT_RE.match(name).group(1)
    kind = _entry(instance)["type"]
    if bus == "mp" and kind != "lxc":
        raise InvalidInput("name %s is a container mount point; instance %s is a VM (its disks are scsiN, virtioN, sataN or ideN)" % (name, instance["name"]))
    if bus in QEMU_BUSES and kind == "lxc":
        raise InvalidInput("name %s is a VM drive slot; instance %s is a container (its disks are mount points mpN)" % (name, instance["name"]))


def _slot_order(key):
    match = SLOT_RE.match(key)
    return (match.group(1), int(match.group(2)))


def _unused(config):
    return dict((key, value) for key, value in config.items() if key.startswith("unused"))


def _managed(volume):
    """A volume the instance module manages: PVE's cloud-init drive or the seed ISO attached in its place."""
    return "cloudinit" in volume or seed.PREFIX in volume
