# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hyper-V VMs: the normalised vocabulary mapped to New-VM, Set-VM*, network adapters and the boot VHDX.

A new VM boots from a differencing VHDX on the parent VHDX named by ``image``, in
``<vm_path>\\<name>\\Virtual Hard Disks``. Reading a VM is one script (vm_get); the boot disk's size
costs a second one (Get-VHD), paid only by tasks that ask about ``disk_size``.
"""

from __future__ import annotations

import base64
import re
import uuid

from ansible_collections.polyvirt.compute.plugins.module_utils import _seed_iso as seed_iso
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import LIVE, WHILE_STOPPED, Instances
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.backend import check_path, join
from ansible_collections.polyvirt.compute.plugins.module_utils._cloud_init import CLOUD_CONFIG_HEADER
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import (
    Conflict, InvalidInput, OperationFailed, PolyvirtError, WaitTimeout,
)
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, in_unit, instance_result, size_mib
from ansible_collections.polyvirt.compute.plugins.module_utils._net import is_global
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline, poll

# A VM in Stopping still runs (a guest that ignores the shutdown stays there): state=stopped must act on it, and
# force turns it off, so a re-run after a stuck shutdown converges instead of reading "pending" and doing nothing.
STATES = {"Running": "running", "Stopping": "running", "Off": "stopped", "Saved": "stopped", "Paused": "paused"}
BUSY = ("Starting", "Stopping", "Saving", "Pausing", "Resuming", "Reset", "Merging", "Exporting")
# Characters a VM name cannot hold: Get-VM -Name reads * ? [ ] as wildcards, and the name is a folder and a file name.
NAME_BAD = set('*?[]:"<>|')
NAME_MAX = 100
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
CHECKPOINT_TYPES = ("Standard", "Production", "ProductionOnly", "Disabled")
OPTIONS = {
    "generation": int,
    "secure_boot": bool,
    "secure_boot_template": str,
    "dynamic_memory": bool,
    "memory_minimum": (str, int),
    "memory_maximum": (str, int),
    "checkpoint_type": str,
    "vm_path": str,
}
# Settings Hyper-V refuses to change while the VM runs (Set-VMProcessor, dynamic memory on/off, firmware).
OFFLINE = ("cpus", "dynamic_memory", "secure_boot", "secure_boot_template")
DEFAULT_MEMORY_MIB = 1024
# vm_set keys for the normalised ones.
SET_KEYS = {"cpus": "cpu", "description": "notes", "dynamic_memory": "dynamic_memory", "checkpoint_type": "checkpoint_type",
            "secure_boot": "secure_boot", "secure_boot_template": "secure_boot_template"}
MEMORY_KEYS = {"memory_mib": "memory_startup", "memory_minimum_mib": "memory_minimum", "memory_maximum_mib": "memory_maximum"}
# The NoCloud seed ISO in the VM's folder: its name carries digests of the user-data and network-config it holds, so an
# idempotent task tells from the VM's DVD drives alone whether the seed is the one asked for (no ISO is read back).
SEED_RE = re.compile(r"\\polyvirt-seed-u([0-9a-f]{12})-n([0-9a-f]{12})-[0-9a-f]{6}\.iso$", re.IGNORECASE)
# Bytes per file_write script: base64 twice in the script (header and body) and base64 again in the WinRM envelope
# stays well under WinRM's default MaxEnvelopeSizekb of 500.
CHUNK = 96 * 1024
CLOUD_CONFIG_EMPTY = CLOUD_CONFIG_HEADER + "\n{}\n"


def check_vm_name(name, option="name"):
    if len(name) > NAME_MAX:
        raise InvalidInput("%s %r is too long for Hyper-V (at most %d characters)" % (option, name, NAME_MAX))
    bad = sorted(set(name) & NAME_BAD)
    if bad:
        raise InvalidInput("%s %r is not a valid Hyper-V VM name: it contains %r (no * ? [ ] : \" < > |)" % (option, name, bad[0]))
    if name != name.strip() or name.endswith("."):
        raise InvalidInput("%s %r is not a valid Hyper-V VM name: no leading or trailing spaces, no trailing dot" % (option, name))
    return name


def to_mac(mac):
    """Hyper-V's 00155D0A0B0C as 00:15:5d:0a:0b:0c."""
    if not mac:
        return None
    raw = mac.replace(":", "").replace("-", "").lower()
    return ":".join(raw[index:index + 2] for index in range(0, len(raw), 2))


def hyperv_mac(mac):
    return mac.replace(":", "").upper()


def seed_tag(spec):
    """What a seed for ``spec`` is named by, or None when the task asks for no cloud-init."""
    if spec["user_data"] is None and spec["network_config"] is None:
        return None
    return "u%s-n%s" % (seed_iso.digest(spec["user_data"]), seed_iso.digest(spec["network_config"]))


def seed_drive(native):
    """The DVD drive holding the VM's own seed ISO (in its folder, named by seed_tag), or None."""
    own = (native.get("path") or "").rstrip("\\").lower() + "\\"
    for dvd in native.get("dvds") or []:
        path = dvd.get("path") or ""
        if SEED_RE.search(path) and path.lower().startswith(own):
            return dvd
    return None


def even_mib(value, option):
    mib = size_mib(value, option)
    if mib % 2:
        raise InvalidInput("%s must be a multiple of 2 MiB on Hyper-V, got %r" % (option, value))
    return mib


class HyperVInstances(Instances):
    def __init__(self, backend):
        super().__init__(backend)
        self._with_disk = False  # the task asks about disk_size: read the boot VHDX too
        self._asked = {}  # the cloud-init documents the task gives (desired() sets them), compared by digest with the seed's name

    # -- validation -----------------------------------------------------------------------------

    def validate(self, spec):
        check_vm_name(spec["name"])
        options = spec["backend_options"]
        for key, value in options.items():
            if key not in OPTIONS:
                raise InvalidInput("backend_options.%s is not a Hyper-V option (use %s)" % (key, ", ".join(sorted(OPTIONS))))
            if isinstance(value, bool) and OPTIONS[key] is not bool or not isinstance(value, OPTIONS[key]):
                raise InvalidInput("backend_options.%s has the wrong type: %r" % (key, value))
        if options.get("generation") not in (None, 1, 2):
            raise InvalidInput("backend_options.generation must be 1 or 2, got %r" % options["generation"])
        if options.get("checkpoint_type") not in (None,) + CHECKPOINT_TYPES:
            raise InvalidInput("backend_options.checkpoint_type must be one of %s, got %r" % (", ".join(CHECKPOINT_TYPES), options["checkpoint_type"]))
        if options.get("generation") == 1 and (options.get("secure_boot") is not None or options.get("secure_boot_template")):
            raise InvalidInput("backend_options.secure_boot needs generation 2 (generation 1 VMs have BIOS firmware, no Secure Boot)")
        if options.get("vm_path"):
            check_path(options["vm_path"], "backend_options.vm_path")
        for key in ("memory_minimum", "memory_maximum"):
            if key in options:
                even_mib(options[key], "backend_options." + key)
        if spec["memory_mib"] is not None and spec["memory_mib"] % 2:
            raise InvalidInput("memory must be a multiple of 2 MiB on Hyper-V, got %d MiB" % spec["memory_mib"])
        if spec["image"]:
            check_path(spec["image"], "image", (".vhdx", ".vhd"))
            if spec["image"].lower().endswith(".vhd") and options.get("generation", 2) == 2:
                raise InvalidInput("image %r is a .vhd file, which generation 2 VMs cannot boot from; use a .vhdx or backend_options.generation: 1"
                                   % spec["image"])
        for index, network in enumerate(spec["networks"] or ()):
            option = "networks[%d]" % index
            if not network.get("name") and not self.backend.settings.get("switch"):
                raise InvalidInput("%s.name (the virtual switch) is required when connection.switch is not set" % option)
            for key in ("ipv4", "ipv6"):
                if network.get(key) not in (None, "dhcp"):
                    raise InvalidInput("%s.%s: Hyper-V cannot set a guest's address (the guest's DHCP or its own configuration does); got %r" % (
                        option, key, network[key]))
            if network.get("mac") and not MAC_RE.match(network["mac"]):
                raise InvalidInput("%s.mac must be a MAC address such as 00:15:5d:0a:0b:0c, got %r" % (option, network["mac"]))

    # -- reading --------------------------------------------------------------------------------

    def get(self, name, runtime=False):
        # IP addresses come with the adapters in the same script, so runtime costs nothing more.
        native = self.backend.run("vm_get", name=name)
        return self.describe(native) if native else None

    def list(self, filters=None):
        return [self.describe(native) for native in self.backend.run("vm_list") or []]

    def describe(self, native, vhd=None):
        vhd = vhd or native.get("_vhd")
        if vhd:
            native = dict(native, _vhd=vhd)
        networks = []
        addresses = {"ipv4": [], "ipv6": []}
        for nic in native.get("nics") or []:
            found = [ip for ip in nic.get("ips") or [] if is_global(ip)]
            networks.append({"device": nic["name"], "name": nic.get("switch"), "mac": to_mac(nic.get("mac")), "vlan_id": nic.get("vlan_id") or 0,
                             "addresses": found})
            for ip in found:
                addresses["ipv6" if ":" in ip else "ipv4"].append(ip)
        state = native.get("state")
        return instance_result(
            native["name"],
            self.backend.name,
            id=native.get("id"),
            type="vm",
            state=STATES.get(state, "pending" if state in BUSY else "error"),
            cpus=native.get("cpu"),
            memory_mib=in_unit(native.get("memory_startup"), MIB),
            disk_gib=in_unit(vhd["size"], GIB) if vhd else None,
            image=(vhd or {}).get("parent_path"),
            description=native.get("notes") or None,
            addresses=addresses,
            networks=networks,
            location=self.backend.client.host,
            backend_data=dict((key, value) for key, value in native.items() if not key.startswith("_")),
            _native=native,
        )

    def boot_disk(self, instance):
        disks = instance["_native"].get("disks") or []
        return disks[0]["path"] if disks else None

    def _read_vhd(self, instance):
        native = instance["_native"]
        if "_vhd" not in native:
            path = self.boot_disk(instance)
            native["_vhd"] = self.backend.run("vhd_get", path=path) if path else None
            if native["_vhd"]:
                instance["disk_gib"] = in_unit(native["_vhd"]["size"], GIB)
                instance["image"] = native["_vhd"].get("parent_path")
        return native["_vhd"]

    def settings(self, instance):
        native = instance["_native"]
        settings = {
            "cpus": native.get("cpu"),
            "memory_mib": in_unit(native.get("memory_startup"), MIB),
            "memory_minimum_mib": in_unit(native.get("memory_minimum"), MIB),
            "memory_maximum_mib": in_unit(native.get("memory_maximum"), MIB),
            "dynamic_memory": native.get("dynamic_memory"),
            "description": native.get("notes") or "",
            "checkpoint_type": native.get("checkpoint_type"),
            "secure_boot": None if native.get("secure_boot") is None else native["secure_boot"] == "On",
            "generation": native.get("generation"),
            "networks": [{"name": nic.get("switch"), "mac": to_mac(nic.get("mac"))} for nic in native.get("nics") or []],
        }
        drive = seed_drive(native)
        if drive is not None:
            # cloud-init reads the seed at first boot only: a different value later is a warning (the reconciler's), not a change.
            for key, stored in zip(("user_data", "network_config"), SEED_RE.search(drive["path"]).groups()):
                asked = self._asked.get(key)
                settings["cloud_init." + key] = asked if asked is not None and seed_iso.digest(asked) == stored else "(the seed ISO's, sha256 %s)" % stored
        if self._with_disk:
            vhd = self._read_vhd(instance)
            settings["disk_gib"] = in_unit(vhd["size"], GIB) if vhd else None
        return settings

    def desired(self, spec):
        self._with_disk = spec["disk_gib"] is not None
        desired = {}
        for key in ("cpus", "memory_mib", "disk_gib", "description"):
            if spec[key] is not None:
                desired[key] = spec[key]
        if spec["networks"] is not None:
            desired["networks"] = [self._desired_network(network) for network in spec["networks"]]
        self._asked = {"user_data": spec["user_data"], "network_config": spec["network_config"]}
        options = spec["backend_options"]
        for key in ("dynamic_memory", "checkpoint_type", "secure_boot", "generation"):
            if key in options:
                desired[key] = options[key]
        for key in ("memory_minimum", "memory_maximum"):
            if key in options:
                desired[key + "_mib"] = size_mib(options[key], "backend_options." + key)
        return desired

    def _desired_network(self, network):
        view = {"name": network.get("name") or self.backend.settings.get("switch"), "mac": network.get("mac")}
        return dict((key, value) for key, value in view.items() if value is not None)

    # -- changing -------------------------------------------------------------------------------

    def vm_root(self, spec=None):
        """The folder new VMs go in: ``backend_options.vm_path``, ``connection.vm_path`` or the host's default."""
        chosen = spec["backend_options"].get("vm_path") if spec else None
        return chosen or self.backend.settings.get("vm_path") or self.backend.host()["virtual_machine_path"]

    def _disk_path(self, spec):
        extension = spec["image"].rsplit(".", 1)[-1].lower()
        return join(self.vm_root(spec), spec["name"], "Virtual Hard Disks", "%s.%s" % (spec["name"], extension))

    def _switches(self, spec):
        if spec["networks"]:
            return [network.get("name") or self.backend.settings.get("switch") for network in spec["networks"]]
        return [self.backend.settings["switch"]] if self.backend.settings.get("switch") else []

    def check_create(self, spec):
        """The parent VHDX and the switches exist, the new disk's file does not (checked in check mode too)."""
        if seed_tag(spec):
            seed_iso.require_pycdlib("cloud_init on Hyper-V")
        for index, switch in enumerate(self._switches(spec)):
            self.backend.check_switch(switch, "networks[%d].name" % index if spec["networks"] else "connection.switch")
        parent = self.backend.run("vhd_get", path=spec["image"])
        if parent is None:
            raise InvalidInput("image %r: no such parent VHDX on the Hyper-V host %s" % (spec["image"], self.backend.client.host))
        if spec["disk_gib"] is not None and spec["disk_gib"] * GIB < parent["size"]:
            raise InvalidInput("disk_size %dGiB is smaller than the image's %sGiB; disks only grow" % (spec["disk_gib"], in_unit(parent["size"], GIB)))
        path = self._disk_path(spec)
        if self.backend.run("vhd_get", path=path) is not None:
            raise Conflict("the disk file %s exists already (left from another VM?); remove it or choose another name" % path)

    def create(self, spec, deadline):
        options = spec["backend_options"]
        path = self._disk_path(spec)
        switches = self._switches(spec)
        vhd = self.backend.run("vhd_create", deadline, path=path, type="differencing", parent_path=spec["image"])
        try:
            if spec["disk_gib"] is not None and spec["disk_gib"] * GIB > vhd["size"]:
                vhd = self.backend.run("vhd_resize", deadline, path=path, size=spec["disk_gib"] * GIB)
            args = {
                "name": spec["name"],
                "generation": options.get("generation", 2),
                "memory_startup": (spec["memory_mib"] or DEFAULT_MEMORY_MIB) * MIB,
                "switch": switches[0] if switches else None,
                "path": self.vm_root(spec),
                "vhd_path": path,
            }
            args.update(self._set_args(self.desired(spec)))
            native = self.backend.run("vm_create", deadline, **args)
        except PolyvirtError:
            self._undo(deadline, disk=path)
            raise
        try:
            if spec["networks"] is not None:
                instance = self.describe(native)
                self._apply_networks(instance, self.desired(spec)["networks"], deadline)
            if seed_tag(spec):
                self._seed(native, spec, deadline)
            if spec["networks"] is not None or seed_tag(spec):
                native = self.backend.run("vm_get", deadline, name=spec["name"])
        except PolyvirtError:
            self._undo(deadline, vm=spec["name"])
            raise
        return self.describe(native, vhd=vhd)

    def _seed(self, native, spec, deadline):
        """Build the NoCloud seed ISO for ``spec``, copy it into the VM's folder in chunks, and put it in a new DVD drive.

        Every seed is a new file with a fresh instance-id; cloud-init reads it at the VM's first boot.
        """
        image = seed_iso.build(spec["user_data"] or CLOUD_CONFIG_EMPTY, seed_iso.meta_data(spec["name"]), spec["network_config"],
                               what="cloud_init on Hyper-V")
        folder = (native.get("path") or "").rstrip("\\")
        path = "%s\\polyvirt-seed-%s-%s.iso" % (folder, seed_tag(spec), uuid.uuid4().hex[:6])
        try:
            for offset in range(0, len(image), CHUNK):
                chunk = base64.b64encode(image[offset:offset + CHUNK]).decode("ascii")
                self.backend.run("file_write", deadline, path=path, data=chunk, append=offset > 0)
            self.backend.run("dvd_add", deadline, name=native["name"], path=path)
        except PolyvirtError:
            self._undo(deadline, file=path)
            raise

    def _undo(self, deadline, vm=None, disk=None, file=None):
        """Remove what a failed create made, so nothing is left half-made (errors here must not hide the first one)."""
        try:
            if vm:
                self.backend.run("vm_remove", Deadline(max(30, deadline.remaining())), name=vm, delete_disks=True)
            elif disk:
                self.backend.run("vhd_remove", Deadline(max(30, deadline.remaining())), path=disk)
            elif file:
                self.backend.run("item_remove", Deadline(max(30, deadline.remaining())), path=file, recurse=True)
        except PolyvirtError:
            pass

    @staticmethod
    def _set_args(changes):
        args = {}
        for key, value in changes.items():
            if key in SET_KEYS:
                args[SET_KEYS[key]] = value
            elif key in MEMORY_KEYS:
                args[MEMORY_KEYS[key]] = value * MIB
        return args

    def check_update(self, instance, changes):
        if "generation" in changes:
            raise InvalidInput("backend_options.generation is %s for instance %s and can only be chosen at creation" % (
                instance["_native"].get("generation"), instance["name"]))
        if "disk_gib" in changes:
            current = self.settings(instance).get("disk_gib")
            if current is None:
                raise InvalidInput("disk_size: instance %s has no boot disk to grow" % instance["name"])
            if changes["disk_gib"] < current:
                raise InvalidInput("disk_size %dGiB is smaller than the current %sGiB; disks only grow" % (changes["disk_gib"], current))
        if "secure_boot" in changes and instance["_native"].get("generation") != 2:
            raise InvalidInput("backend_options.secure_boot needs a generation 2 VM; %s is generation 1" % instance["name"])
        for index, network in enumerate(changes.get("networks") or ()):
            self.backend.check_switch(network["name"], "networks[%d].name" % index)

    def effects(self, instance, changes):
        native = instance["_native"]
        gen1 = native.get("generation") == 1
        effects = {}
        for key in changes:
            if key in OFFLINE:
                effects[key] = WHILE_STOPPED
            elif key == "disk_gib" and gen1:
                effects[key] = WHILE_STOPPED  # IDE disks resize only offline
            elif key == "networks" and gen1 and len(changes[key]) != len(native.get("nics") or []) or key == "networks" and gen1 and any(
                    network.get("mac") for network in changes[key]):
                effects[key] = WHILE_STOPPED  # generation 1 adds and removes adapters only while off
            else:
                effects[key] = LIVE
        return effects

    def update(self, instance, changes, deadline):
        name = instance["name"]
        args = self._set_args(changes)
        if args:
            self.backend.run("vm_set", deadline, name=name, **args)
        vhd = None
        if "disk_gib" in changes:
            vhd = self.backend.run("vhd_resize", deadline, path=self.boot_disk(instance), size=changes["disk_gib"] * GIB)
        if "networks" in changes:
            self._apply_networks(instance, changes["networks"], deadline)
        native = self.backend.run("vm_get", deadline, name=name)
        return self.describe(native, vhd=vhd or instance["_native"].get("_vhd"))

    def _apply_networks(self, instance, networks, deadline):
        """Make the VM's adapters ``networks`` in order: reconnect for a switch, re-create for a static MAC."""
        name = instance["name"]
        nics = list(instance["_native"].get("nics") or [])
        for index, network in enumerate(networks):
            nic = nics[index] if index < len(nics) else None
            nic_name = nic["name"] if nic else "Network Adapter %d" % (index + 1) if index else "Network Adapter"
            if nic is not None and network.get("mac") and to_mac(nic.get("mac")) != network["mac"]:
                self.backend.run("nic_remove", deadline, name=name, nic=nic_name)
                nic = None
            if nic is None:
                self.backend.run("nic_add", deadline, name=name, nic=nic_name, switch=network["name"],
                                 mac=hyperv_mac(network["mac"]) if network.get("mac") else None)
            elif (nic.get("switch") or "").lower() != network["name"].lower():
                self.backend.run("nic_connect", deadline, name=name, nic=nic_name, switch=network["name"])
        for nic in nics[len(networks):]:
            self.backend.run("nic_remove", deadline, name=name, nic=nic["name"])

    def power(self, instance, action, force, deadline):
        name = instance["name"]
        if action == "start":
            return self.describe(self.backend.run("vm_start", deadline, name=name))
        if action == "pause":
            return self.describe(self.backend.run("vm_suspend", deadline, name=name))
        if action == "resume":
            return self.describe(self.backend.run("vm_resume", deadline, name=name))
        if action == "restart" and force:
            return self.describe(self.backend.run("vm_restart", deadline, name=name))  # Restart-VM is a hard reset
        native = self._stop(instance, force, deadline)
        if action == "restart":
            native = self.backend.run("vm_start", deadline, name=name)
        return self.describe(native)

    def _stop(self, instance, force, deadline):
        """A graceful shutdown through the guest's shutdown service; ``force`` turns the VM off when that fails or runs out of time."""
        name = instance["name"]
        if instance["_native"].get("state") == "Paused":
            if force:
                return self.backend.run("vm_stop", deadline, name=name, mode="turnoff")
            self.backend.run("vm_resume", deadline, name=name)  # a paused guest cannot shut itself down
        if not force:
            return self.backend.run("vm_stop", deadline, name=name, mode="shutdown")
        graceful = Deadline(max(1, int(deadline.remaining() / 2)))
        try:
            return self.backend.run("vm_stop", graceful, name=name, mode="shutdown")
        except (OperationFailed, Conflict, WaitTimeout):
            return self.backend.run("vm_stop", Deadline(max(30, deadline.remaining())), name=name, mode="turnoff")

    def delete(self, instance, force, deadline):
        self.remove(instance, force, deadline)

    def remove(self, instance, force, deadline, keep_seed=False):
        """Delete the VM, its own disks and (unless ``keep_seed``: an in-place restore's copy still uses it) its seed ISO."""
        native = instance["_native"]
        if native.get("state") not in ("Off", "Saved"):
            self._stop(instance, force, deadline)
        # vm_remove deletes the files of every drive: first detach the disks that are not the VM's own
        # (outside its folder, such as the disk module's), so deleting a VM never deletes them.
        own = (native.get("path") or "").rstrip("\\").lower() + "\\"
        for drive in (native.get("disks") or [])[1:]:
            if not drive["path"].lower().startswith(own):
                self.backend.run("disk_detach", deadline, name=instance["name"], path=drive["path"])
        drive = None if keep_seed else seed_drive(native)
        self.backend.run("vm_remove", deadline, name=instance["name"], delete_disks=True, delete_files=[drive["path"]] if drive else None)

    # -- clones ---------------------------------------------------------------------------------

    def _linked_disks(self, source, spec):
        """(parent, child) for each hard disk of ``source``: the clone's differencing disks in its own folder."""
        folder = join(self.vm_root(spec), spec["name"], "Virtual Hard Disks")
        pairs = []
        for index, drive in enumerate(source["_native"].get("disks") or []):
            extension = "vhd" if drive["path"].lower().endswith(".vhd") else "vhdx"  # a child has its parent's format
            base = spec["name"] if index == 0 else "%s-disk%d" % (spec["name"], index)
            pairs.append((drive["path"], join(folder, "%s.%s" % (base, extension))))
        return pairs

    def check_clone(self, source, spec, clone):
        """A linked clone: from a stopped source, without a snapshot, into disk files that do not exist yet (reads only)."""
        if clone["mode"] != "linked":
            return
        if clone["snapshot"] is not None:
            raise InvalidInput("snapshot cannot be combined with mode: linked on the hyperv backend: a linked clone is a differencing disk on the "
                               "source's current disks (use mode: full to clone from a checkpoint)")
        state = source["_native"].get("state")
        if state != "Off":
            raise Conflict("a linked clone needs a stopped source: instance %s is %s; stop it first (its disks become the parents of the "
                           "clone's differencing disks, and must not change while the clone uses them)" % (source["name"], (state or "").lower()))
        if spec["disk_gib"] is not None and source.get("disk_gib") is not None and spec["disk_gib"] < source["disk_gib"]:
            raise InvalidInput("disk_size %dGiB is smaller than the source's %sGiB; disks only grow" % (spec["disk_gib"], source["disk_gib"]))
        pairs = self._linked_disks(source, spec)
        if not pairs:
            raise InvalidInput("instance %s has no hard disk for a linked clone to differ from" % source["name"])
        for dummy, child in pairs:
            if self.backend.run("vhd_get", path=child) is not None:
                raise Conflict("the disk file %s exists already (left from another VM?); remove it or choose another name" % child)

    def _clone_linked(self, source, spec, deadline):
        """New differencing disks on each of the stopped source's disks, and a new VM on them with the source's settings and the task's."""
        native_source = source["_native"]
        name = spec["name"]
        made = []
        try:
            for parent, child in self._linked_disks(source, spec):
                self.backend.run("vhd_create", deadline, path=child, type="differencing", parent_path=parent)
                made.append(child)
        except PolyvirtError:
            for child in made:
                self._undo(deadline, disk=child)
            raise
        try:
            if spec["disk_gib"] is not None:
                vhd = self.backend.run("vhd_get", deadline, path=made[0])
                if spec["disk_gib"] * GIB > vhd["size"]:
                    self.backend.run("vhd_resize", deadline, path=made[0], size=spec["disk_gib"] * GIB)
            nics = native_source.get("nics") or []
            args = {"cpu": native_source.get("cpu"), "dynamic_memory": native_source.get("dynamic_memory"), "notes": native_source.get("notes") or None}
            if native_source.get("dynamic_memory"):
                args.update(memory_minimum=native_source.get("memory_minimum"), memory_maximum=native_source.get("memory_maximum"))
            if native_source.get("generation") == 2 and native_source.get("secure_boot"):
                args["secure_boot"] = native_source["secure_boot"] == "On"
            args.update(name=name, generation=native_source.get("generation") or 2, memory_startup=native_source.get("memory_startup"),
                        switch=nics[0]["switch"] if nics and nics[0].get("switch") else None, path=self.vm_root(spec), vhd_path=made[0])
            args.update(self._set_args(self.desired(spec)))
            native = self.backend.run("vm_create", deadline, **args)
        except PolyvirtError:
            for child in made:
                self._undo(deadline, disk=child)
            raise
        try:
            for child in made[1:]:
                self.backend.run("disk_attach", deadline, name=name, path=child)
            if spec["networks"] is not None:
                self._apply_networks(self.describe(native), self.desired(spec)["networks"], deadline)
            else:
                for nic in nics[1:]:  # the source's other adapters, on the same switches (new dynamic MACs)
                    self.backend.run("nic_add", deadline, name=name, nic=nic["name"], switch=nic.get("switch"))
            if seed_tag(spec):
                self._seed(native, spec, deadline)
            native = self.backend.run("vm_get", deadline, name=name)
        except PolyvirtError:
            self._undo(deadline, vm=name)
            raise
        return self.describe(native)

    def clone(self, source, spec, clone, deadline):
        """Export-VM the source into the clone's folder, Import-VM -Copy -GenerateNewId as the new name, drop the copied checkpoints.

        From a snapshot: the copy is first restored to that checkpoint (the source is never touched).
        """
        if clone["mode"] == "linked":
            return self._clone_linked(source, spec, deadline)
        name = spec["name"]
        folder = join(self.vm_root(spec), name)
        exported = self.backend.run("vm_export", deadline, name=source["name"], path=join(folder, "Export"))
        try:
            native = self.backend.run("vm_import", deadline, path=exported["config_path"], vm_path=folder, vhd_path=join(folder, "Virtual Hard Disks"),
                                      new_name=name)
        finally:
            self._undo(deadline, file=join(folder, "Export"))  # the export (with its Snapshots folder) was only the way to the copy
        try:
            if clone["snapshot"]:
                native = self.backend.run("checkpoint_restore", deadline, name=name, checkpoint=clone["snapshot"])
                if native.get("state") != "Off":  # a standard checkpoint brings its memory back: a new clone is created stopped
                    self.backend.run("vm_stop", deadline, name=name, mode="turnoff")
            for checkpoint in self.backend.run("checkpoint_list", deadline, name=name) or []:
                if checkpoint.get("parent") is None:  # a clone starts without its source's history
                    self.backend.run("checkpoint_remove", deadline, name=name, checkpoint=checkpoint["name"], include_children=True)
            args = self._set_args(self.desired(spec))
            if args:
                native = self.backend.run("vm_set", deadline, name=name, **args)
            else:
                native = self.backend.run("vm_get", deadline, name=name)
        except PolyvirtError:
            self._undo(deadline, vm=name)
            raise
        return self.describe(native)

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(self, instance, condition, deadline):
        name = instance["name"]
        if condition == "running":
            if instance["state"] == "running":
                return instance, None

            def running():
                current = self.get(name)
                return current if current is not None and current["state"] == "running" else None

            return poll(running, deadline, "instance %s to run" % name), None
        if any(instance["addresses"].values()):
            return instance, None
        seconds = int(deadline.remaining())
        if seconds < 1:
            raise WaitTimeout("timed out after %s s waiting for an IP address on instance %s" % (deadline.seconds, name))
        try:
            # Wait-VM blocks on the host until the KVP data has an address: one script, no polling.
            native = self.backend.run("vm_wait", Deadline(seconds + 30), name=name, timeout=seconds, **{"for": "IPAddress"})
        except OperationFailed as exc:
            if "timed out" not in exc.message.lower():
                raise
            raise WaitTimeout("timed out after %s s waiting for an IP address on instance %s: the guest reports none through the "
                              "integration services' Key-Value Pair Exchange (%s)" % (deadline.seconds, name, exc.message))
        current = self.describe(native)
        if any(current["addresses"].values()):
            return current, None

        def global_address():  # Wait-VM is content with a link-local address; a global one may follow
            found = self.get(name)
            return found if found is not None and any(found["addresses"].values()) else None

        return poll(global_address, deadline, "an IP address on instance %s" % name), None
