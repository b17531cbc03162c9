# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Proxmox VE guests: QEMU VMs (cloned from a template) and LXC containers (from an ``ostemplate``).

A guest is found by name in one ``cluster/resources?type=vm`` read; its settings come from one
``pending`` read, which carries both the current values and those PVE keeps ``[PENDING]`` until a
restart, so one read tells the settings and whether a restart is due.
"""

from __future__ import annotations

import io
import json
import re
from urllib.parse import quote, unquote

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import LIVE, ON_RESTART, Instances
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox import seed
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.client import is_locked
from ansible_collections.polyvirt.compute.plugins.module_utils._cloud_init import CLOUD_CONFIG_HEADER
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import (
    Conflict, InvalidInput, NotFound, OperationFailed, PolyvirtError, Unsupported,
)
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, in_unit, instance_result, parse_size
from ansible_collections.polyvirt.compute.plugins.module_utils._net import is_global
from ansible_collections.polyvirt.compute.plugins.module_utils._retry import retry
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import poll

# PVE's dns-name format (guest names and LXC hostnames).
NAME_RE = re.compile(r"^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
CONFIG_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]+$")
MAC_RE = re.compile(r"^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_+.-]*$")  # pve-tag
VOLUME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*:.+$")
DISK_KEY_RE = re.compile(r"^(scsi|virtio|sata|ide)\d+$")
NET_KEY_RE = re.compile(r"^net(\d+)$")
QEMU_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet")
MIN_MEMORY_MIB = 16
MAX_VMID = 999999999
DEFAULT_LXC_DISK_GIB = 8
# Config keys the normalised options own: set them through those options, not backend_options.
OWNED_KEYS = {"cores": "cpus", "memory": "memory", "name": "name", "hostname": "name", "tags": "tags", "description": "description",
              "sshkeys": "ssh_keys", "ssh-public-keys": "ssh_keys", "ostemplate": "image", "rootfs": "disk_size (and backend_options.storage)",
              "digest": None, "delete": None, "revert": None}
OPTION_KEYS = {"vmid": int, "clone": str, "storage": str, "iso_storage": str}
# What a running guest takes at once (qemu-server fast-plug keys and default hotplug, pve-container hot keys); the rest waits for a restart.
QEMU_LIVE_KEYS = {"name", "description", "onboot", "protection", "tags", "startup", "hookscript", "shares", "vmstatestorage", "ciuser",
                  "cipassword", "citype", "ciupgrade", "nameserver", "searchdomain", "cicustom", "agent", "cpuunits", "cpulimit", "balloon"}
LXC_LIVE_KEYS = {"description", "onboot", "protection", "tags", "startup", "cores", "memory", "swap", "cpulimit", "cpuunits", "nameserver",
                 "searchdomain"}
SECRET_KEYS = ("cipassword",)
AGENT_MISSING = "No QEMU guest agent configured"
CLOUD_INIT_RESULT = "/run/cloud-init/result.json"


class ProxmoxInstances(Instances):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client
        self._seed_volumes = []  # seed ISOs this task uploaded: removed with a half-made guest
        self._asked = {}  # the cloud-init documents of the spec last given to desired(), to compare with a seed's digests

    # -- validation -----------------------------------------------------------------------------

    def validate(self, spec):
        name = spec["name"]
        if not NAME_RE.match(name):
            raise InvalidInput("name %r is not a valid Proxmox VE guest name (a DNS name: letters, digits and hyphens in dot-separated labels "
                               "of at most 63, not starting or ending with a hyphen)" % name)
        if spec["memory_mib"] is not None and spec["memory_mib"] < MIN_MEMORY_MIB:
            raise InvalidInput("memory %dMiB is below the Proxmox VE minimum of %dMiB" % (spec["memory_mib"], MIN_MEMORY_MIB))
        for index, tag in enumerate(spec["tags"] or ()):
            if not TAG_RE.match(tag):
                raise InvalidInput("tags[%d] %r is not a valid Proxmox VE tag (letters, digits and _ + . -, not starting with + . or -)" % (index, tag))
        options = spec["backend_options"]
        for key, value in options.items():
            if key in OPTION_KEYS:
                if isinstance(value, bool) or not isinstance(value, OPTION_KEYS[key]):
                    raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, OPTION_KEYS[key].__name__, value))
            elif key in OWNED_KEYS or NET_KEY_RE.match(key) or key.startswith("ipconfig"):
                owner = OWNED_KEYS.get(key) or ("networks" if not key.startswith(("digest", "delete", "revert")) else None)
                raise InvalidInput("backend_options.%s is set by this collection%s" % (key, ", use the option %s" % owner if owner else ""))
            elif not CONFIG_KEY_RE.match(str(key)):
                raise InvalidInput("backend_options.%s is not a Proxmox VE config key" % key)
            elif not isinstance(value, (str, int, float, bool)):
                raise InvalidInput("backend_options.%s must be a string, number or boolean (a PVE config value), got %r" % (key, value))
        vmid = options.get("vmid")
        if vmid is not None and not 100 <= vmid <= MAX_VMID:
            raise InvalidInput("backend_options.vmid must be between 100 and %d, got %d" % (MAX_VMID, vmid))
        if options.get("clone", "full") not in ("full", "linked"):
            raise InvalidInput("backend_options.clone must be full or linked, got %r" % options["clone"])
        for index, network in enumerate(spec["networks"] or ()):
            option = "networks[%d]" % index
            if not network.get("name"):
                raise InvalidInput("%s.name is required by the proxmox backend (the bridge, such as vmbr0)" % option)
            for key in ("ipv4", "ipv6"):
                value = network.get(key)
                if value and value not in ("dhcp", "slaac", "auto") and "/" not in value:
                    raise InvalidInput("%s.%s %s needs a /prefix on Proxmox VE (such as %s/24)" % (option, key, value, value))
            if network.get("mac") and not MAC_RE.match(network["mac"]):
                raise InvalidInput("%s.mac %s is not a unicast MAC address" % (option, network["mac"]))
        if spec["type"] == "container" and spec["image"] and not VOLUME_RE.match(spec["image"]):
            raise InvalidInput("image %r must be an ostemplate volume such as local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst for "
                               "type=container" % spec["image"])

    # -- reading --------------------------------------------------------------------------------

    def get(self, name, runtime=False):
        entries = [entry for entry in self.backend.resources() if entry.get("name") == name]
        if not entries:
            return None
        if len(entries) > 1:
            raise Conflict("%d guests are named %s (vmids %s); names identify instances, so rename or remove all but one" % (
                len(entries), name, ", ".join(str(entry["vmid"]) for entry in sorted(entries, key=lambda entry: entry["vmid"]))))
        return self._read(entries[0], runtime)

    def _read(self, entry, runtime=False, exact=False):
        """The guest of a ``cluster/resources`` entry: its config and pending changes in one read, its state from the entry.

        PVE takes a guest's ``status`` in ``cluster/resources`` from what pvestatd last recorded, the QMP status of a
        running VM (``qmpstatus || status``: pvestatd ``update_qemu_status``; ``extract_vm_stats`` in API2Tools.pm), so
        a paused VM is listed ``paused``; that record is at most one pvestatd cycle (10 s) old. An idempotent task
        trusts it (two reads); after a change of this task (``exact``) ``status/current`` is read, which is live.
        """
        base = guest_path(entry)
        try:
            pending = self.client.get(base + "/pending") or []
        except NotFound:
            return None  # removed since the cluster list was read
        current, config, changing = read_pending(pending)
        native = {"entry": entry, "config": config, "current": current, "pending": changing}
        listed = entry.get("status")
        known = listed in ("running", "stopped") or (entry["type"] == "qemu" and listed == "paused")
        state = listed if known else "stopped"
        if state == "running" and runtime:
            native["interfaces"] = self._interfaces(entry, config)
        if not known or (exact and native.get("interfaces") is None):
            # another QMP status (prelaunch, suspended, io-error...), or the state right after a change: ask the node
            status = self.client.get(base + "/status/current") or {}
            state = "running" if status.get("status") == "running" else "stopped"
            if entry["type"] == "qemu" and status.get("qmpstatus") not in (None, "running", "stopped") and state == "running":
                state = "paused"
        native["state"] = state
        return self.describe(native)

    def _interfaces(self, entry, config):
        """The guest's interfaces (QEMU agent, LXC ``interfaces``), or None when the guest cannot tell yet."""
        base = guest_path(entry)
        if entry["type"] == "lxc":
            try:
                return self.client.request("GET", base + "/interfaces") or []
            except OperationFailed:
                return None
        if not agent_enabled(config):
            return None
        try:
            return (self.client.request("GET", base + "/agent/network-get-interfaces") or {}).get("result") or []
        except OperationFailed:
            return None  # agent not up yet, or the VM is paused

    def list(self, filters=None):
        # One read for every guest; settings that only the config has (networks, description) are left out.
        return [self.describe_entry(entry) for entry in self.backend.resources(fresh=True)]

    def describe_entry(self, entry):
        return instance_result(
            entry.get("name"), self.backend.name, id=entry["vmid"], type=guest_type(entry), state=entry.get("status") or "pending",
            cpus=entry.get("maxcpu"), memory_mib=in_unit(entry.get("maxmem"), MIB) if entry.get("maxmem") else None,
            disk_gib=in_unit(entry.get("maxdisk"), GIB) if entry.get("maxdisk") else None, location=entry.get("node"),
            tags=read_tags(entry.get("tags")), backend_data=dict(entry), _native={"entry": entry},
        )

    def describe(self, native):
        entry = native["entry"]
        settings = guest_settings(entry, native["config"])
        addresses, by_mac = interface_addresses(native.get("interfaces"))
        networks = [dict(network, addresses=by_mac.get(network.get("mac"), [])) for network in settings["networks"]]
        config = dict((key, value) for key, value in native["config"].items() if key not in SECRET_KEYS)
        instance = instance_result(
            entry["name"], self.backend.name, id=entry["vmid"], type=guest_type(entry), state=native["state"], cpus=settings["cpus"],
            memory_mib=settings["memory_mib"], disk_gib=settings["disk_gib"], description=settings["description"], addresses=addresses,
            networks=networks, location=entry.get("node"), tags=settings["tags"],
            backend_data={"vmid": entry["vmid"], "node": entry.get("node"), "type": entry["type"], "template": bool(entry.get("template")),
                          "lock": entry.get("lock"), "config": config, "pending": sorted(native["pending"])},
            _native=native,
        )
        instance["restart_required"] = bool(native["pending"])
        if self.client.warnings:
            instance["backend_data"]["task_warnings"] = list(self.client.warnings)
        return instance

    def settings(self, instance):
        native = instance["_native"]
        if "config" not in native:  # from list(): read the config now
            native = self._read(native["entry"])["_native"]
        settings = guest_settings(native["entry"], native["config"])
        settings.update(("config." + key, normalise_value(value)) for key, value in native["config"].items())
        found = seed.digests(native["config"])
        if found:
            # The seed's content cannot be read back: what was asked counts as current when its digest matches.
            for key, stored in zip(("user_data", "network_config"), found):
                asked = self._asked.get(key)
                settings["cloud_init." + key] = asked if asked is not None and seed.digest(asked) == stored else "(the seed ISO's, sha256 %s)" % stored
        return settings

    def desired(self, spec):
        self._asked = {"user_data": spec["user_data"], "network_config": spec["network_config"]}
        desired = dict((key, spec[key]) for key in ("cpus", "memory_mib", "disk_gib", "description", "tags") if spec[key] is not None)
        if spec["networks"] is not None:
            desired["networks"] = [dict((key, network.get(key)) for key in ("name", "mac", "ipv4", "ipv4_gateway", "ipv6") if network.get(key))
                                   for network in spec["networks"]]
        if spec["type"] == "vm":
            keys = cloud_init_keys(spec)
            if keys is not None:
                desired["ssh_keys"] = keys
        desired.update(("config." + key, normalise_value(value)) for key, value in spec["backend_options"].items() if key not in OPTION_KEYS)
        return desired

    # -- checks before any change -----------------------------------------------------------------

    def check_create(self, spec):
        """What a create needs exists (template or ostemplate, node, storage, bridges): checked in check mode too."""
        if spec["type"] == "vm":
            template = self._template(spec["image"])
            node = self.backend.target_node(template["node"])
            if spec["backend_options"].get("clone") == "linked" and spec["backend_options"].get("storage"):
                raise InvalidInput("backend_options.storage cannot be set with backend_options.clone: linked (a linked clone stays on the "
                                   "template's storage)")
            if spec["disk_gib"] is not None:
                source = self._read(template)
                if isinstance(source["disk_gib"], (int, float)) and spec["disk_gib"] < source["disk_gib"]:
                    raise InvalidInput("disk_size %dGiB is smaller than the %sGiB disk of template %s; disks only grow" % (
                        spec["disk_gib"], source["disk_gib"], spec["image"]))
        else:
            node = self.backend.target_node()
            self._check_ostemplate(node, spec["image"])
            self._lxc_storage(node, spec)
        if spec["backend_options"].get("storage"):
            self._check_storage(node, spec["backend_options"]["storage"])
        if needs_seed(spec):
            seed.require_pycdlib()
            self._iso_storage(node, spec)
        if spec["networks"] or spec["type"] == "container":
            self._bridges(node, spec["networks"])

    def _template(self, image):
        if image is None:
            raise InvalidInput("image is required to create a new instance")
        entries = self.backend.resources()
        templates = [entry for entry in entries if entry.get("template") and entry["type"] == "qemu"]
        found = [entry for entry in templates if str(entry["vmid"]) == str(image) or entry.get("name") == image]
        if not found:
            raise InvalidInput("image %s is not a QEMU template on this Proxmox VE cluster (templates: %s)" % (
                image, ", ".join("%s (%s)" % (entry.get("name"), entry["vmid"]) for entry in templates) or "none"))
        if len(found) > 1:
            raise InvalidInput("image %s names %d templates (vmids %s); give the vmid" % (image, len(found), ", ".join(str(e["vmid"]) for e in found)))
        return found[0]

    def _check_ostemplate(self, node, image):
        storage = image.split(":", 1)[0]
        self._check_storage(node, storage)
        volumes = self.client.get(self.client.path("nodes", node, "storage", storage, "content"), content="vztmpl") or []
        if image not in [volume.get("volid") for volume in volumes]:
            raise InvalidInput("image %s is not an ostemplate on storage %s of node %s (there: %s)" % (
                image, storage, node, ", ".join(sorted(volume.get("volid", "") for volume in volumes)) or "none"))

    def _iso_storage(self, node, spec):
        """Where the seed ISO goes: backend_options.iso_storage, else the node's first storage that holds ISO images."""
        wanted = spec["backend_options"].get("iso_storage")
        found = [item.get("storage") for item in self._storages(node, "iso") if item.get("active", 1) and item.get("enabled", 1)]
        if wanted and wanted not in found:
            raise InvalidInput("backend_options.iso_storage %s on node %s cannot hold ISO images (those that can: %s)" % (
                wanted, node, ", ".join(found) or "none"))
        if not found:
            raise InvalidInput("cloud_init.user_data needs a storage for ISO images on node %s (iso content) for its seed ISO; "
                               "set backend_options.iso_storage" % node)
        return wanted or found[0]

    def _storages(self, node, content=None):
        return self.client.get(self.client.path("nodes", node, "storage"), content=content) or []

    def _check_storage(self, node, storage):
        names = [item.get("storage") for item in self._storages(node)]
        if storage not in names:
            raise InvalidInput("storage %s does not exist on node %s (storages: %s)" % (storage, node, ", ".join(sorted(names))))

    def _lxc_storage(self, node, spec):
        """The storage of a new container's rootfs: backend_options.storage, else the node's first that holds container disks."""
        wanted = spec["backend_options"].get("storage")
        found = [item.get("storage") for item in self._storages(node, "rootdir") if item.get("active", 1) and item.get("enabled", 1)]
        if wanted:
            if wanted not in found:
                raise InvalidInput("backend_options.storage %s on node %s cannot hold container disks (rootdir content; those that can: %s)" % (
                    wanted, node, ", ".join(found) or "none"))
            return wanted
        if not found:
            raise InvalidInput("node %s has no storage for container disks (rootdir content); set backend_options.storage" % node)
        return found[0]

    def _bridges(self, node, networks):
        """The node's bridges; each of ``networks`` must name one."""
        known = [item.get("iface") for item in self.client.get(self.client.path("nodes", node, "network")) or []
                 if item.get("type") in ("bridge", "OVSBridge")]
        for index, network in enumerate(networks or ()):
            if network["name"] not in known:
                raise InvalidInput("networks[%d].name %s is not a bridge of node %s (bridges: %s)" % (index, network["name"], node, ", ".join(known)))
        return known

    def check_update(self, instance, changes):
        if "disk_gib" in changes:
            current = self.settings(instance)["disk_gib"]
            if current is None:
                raise InvalidInput("instance %s has no boot disk whose size disk_size could set" % instance["name"])
            if changes["disk_gib"] < current:
                raise InvalidInput("disk_size %dGiB is smaller than the current %sGiB; disks only grow" % (changes["disk_gib"], current))
        if "networks" in changes:
            self._bridges(instance["location"], changes["networks"])

    def effects(self, instance, changes):
        if instance["state"] not in ("running", "paused"):
            return dict((key, LIVE) for key in changes)
        qemu = instance["type"] == "vm"
        live = QEMU_LIVE_KEYS if qemu else LXC_LIVE_KEYS
        effects = {}
        for key in changes:
            if key in ("cpus", "memory_mib"):
                effects[key] = ON_RESTART if qemu else LIVE
            elif key.startswith("config."):
                name = key[len("config."):]
                effects[key] = LIVE if name in live or (qemu and DISK_KEY_RE.match(name)) else ON_RESTART
            else:
                effects[key] = LIVE  # description, tags, NICs (hotplug), disk resize, cloud-init keys
        return effects

    # -- changing -------------------------------------------------------------------------------

    def create(self, spec, deadline):
        if spec["type"] == "vm":
            entry = self._clone_template(spec, deadline)
        else:
            entry = self._create_container(spec, deadline)
        return self._configure_new(entry, spec, deadline)

    def _configure_new(self, entry, spec, deadline):
        """The rest of ``spec`` on a guest this task made (in the same task); a guest that cannot take it is removed again."""
        self._yield_to_an_earlier_twin(entry, deadline)
        self.backend.forget()
        created = self._read(entry)
        try:
            changes = dict((key, value) for key, value in self.desired(spec).items() if settings_differ(self.settings(created), key, value))
            if needs_seed(spec):
                changes.update(self._attach_seed(spec, created, deadline))
            if changes:
                created = self.update(created, changes, deadline)
        except PolyvirtError as exc:
            self._remove_half_made(entry, exc, deadline)
            raise
        return created

    def _attach_seed(self, spec, created, deadline):
        """Upload the NoCloud seed ISO and return the config change that puts it in place of PVE's cloud-init drive."""
        native = created["_native"]
        entry, config = native["entry"], native["config"]
        storage = self._iso_storage(entry["node"], spec)
        # Static addresses in cloud-init's own format, matched to the MACs the clone got.
        current = guest_networks(entry, config)
        wanted = [dict(network, mac=network.get("mac") or (current[index].get("mac") if index < len(current) else None))
                  for index, network in enumerate(spec["networks"] or [])]
        network = spec["network_config"] if spec["network_config"] is not None else seed.network_config(wanted)
        name = seed.file_name(entry["vmid"], spec["user_data"], spec["network_config"])
        image = io.BytesIO(seed.build(spec["user_data"] or CLOUD_CONFIG_HEADER + "\n{}\n", seed.meta_data(spec["name"]), network))
        image.name = name  # proxmoxer sends it as the multipart file part, named by this
        self.client.run("POST", self.client.path("nodes", entry["node"], "storage", storage, "upload"), deadline, content="iso", filename=image)
        self._seed_volumes.append((entry["node"], "%s:iso/%s" % (storage, name)))
        # Two cidata sources would leave cloud-init to pick one: the seed replaces PVE's drive (which PVE then frees).
        slot = next((key for key in sorted(config) if DISK_KEY_RE.match(key) and "cloudinit" in str(config[key])), None)
        if slot is None:
            slot = next((key for key in ("ide2", "ide0", "ide1", "ide3", "sata0", "sata1") if key not in config), None)
        if slot is None:
            raise InvalidInput("instance %s has no free IDE or SATA slot for the cloud-init seed ISO" % spec["name"])
        return {"config." + slot: "%s:iso/%s,media=cdrom" % (storage, name)}

    def _yield_to_an_earlier_twin(self, entry, deadline):
        """PVE keeps no name unique: when another task made a guest of this name meanwhile, the lower vmid keeps it.

        The other guest's task sees the same two and keeps going; this one removes its own copy and reports a
        Conflict, on which the reconciler converges on the other guest, as after any create that lost a race.
        """
        twins = [item for item in self.backend.resources(fresh=True) if item.get("name") == entry["name"] and item["vmid"] != entry["vmid"]]
        if not twins or min(item["vmid"] for item in twins) > entry["vmid"]:
            return
        self.client.run("DELETE", guest_path(entry), deadline, purge=1)
        self.backend.forget()
        raise Conflict("guest %s was created meanwhile by another task (vmid %s); this task's copy (vmid %s) was removed again" % (
            entry["name"], min(item["vmid"] for item in twins), entry["vmid"]))

    def _remove_half_made(self, entry, exc, deadline):
        """A guest that could not be configured is removed again: nothing half-made is left behind."""
        try:
            self.client.run("DELETE", guest_path(entry), deadline, purge=1)
            self._delete_seeds(self._seed_volumes, deadline)
            exc.message += " (the new guest %s was removed again)" % entry["vmid"]
        except PolyvirtError as cleanup:
            exc.message += " (and removing the new guest %s again failed: %s)" % (entry["vmid"], cleanup.message)
        self.backend.forget()

    def _delete_seeds(self, volumes, deadline):
        for node, volid in volumes:
            try:
                self.client.run("DELETE", self.client.path("nodes", node, "storage", volid.split(":", 1)[0], "content", volid), deadline)
            except NotFound:
                pass

    def _allocate(self, spec, deadline, make):
        """Call ``make(vmid)`` with a free vmid; a vmid another client took meanwhile is replaced by a fresh one (nothing was made)."""
        pinned = spec["backend_options"].get("vmid")
        attempts = 1 if pinned else 5
        for attempt in range(attempts):
            vmid = pinned or int(self.client.get("cluster/nextid", deadline))
            try:
                return vmid, make(vmid)
            except Conflict as exc:
                if is_locked(exc) or not re.search(r"already exists", exc.message) or attempt == attempts - 1:
                    if pinned and re.search(r"already exists", exc.message):
                        raise Conflict("backend_options.vmid %d is taken by another guest: %s" % (pinned, exc.message))
                    raise
        return None  # not reached

    def _clone_template(self, spec, deadline):
        template = self._template(spec["image"])
        node = self.backend.target_node(template["node"])
        return self._copy(template, spec, node, spec["backend_options"].get("clone") != "linked", None, deadline)

    def _copy(self, source, spec, node, full, snapshot, deadline):
        """PVE's clone of guest ``source`` to a new vmid on ``node`` (sent to the source's node, as PVE requires)."""
        options = spec["backend_options"]
        params = {"name" if source["type"] == "qemu" else "hostname": spec["name"], "full": full}
        if node != source["node"]:
            params["target"] = node
        if options.get("storage") and full:
            params["storage"] = options["storage"]
        if spec["description"] is not None:
            params["description"] = spec["description"]
        if snapshot:
            params["snapname"] = snapshot
        path = guest_path(source) + "/clone"
        vmid, _task = self._allocate(spec, deadline, lambda vmid: self.client.run("POST", path, deadline, newid=vmid, **params))
        return {"vmid": vmid, "node": node, "type": source["type"], "name": spec["name"], "status": "stopped"}

    # -- clones ---------------------------------------------------------------------------------

    def check_clone(self, source, spec, clone):
        entry = source["_native"]["entry"]
        if clone["mode"] == "linked":
            if not entry.get("template"):
                raise Unsupported("mode=linked clones is not supported by the proxmox backend from %s, which is not a template (PVE links clones "
                                  "to a template's base disks only; make it a template, or clone it full)" % source["name"])
            if clone["snapshot"]:
                raise InvalidInput("snapshot cannot be combined with mode=linked on Proxmox VE (a template has no snapshots to clone from)")
            if spec["backend_options"].get("storage"):
                raise InvalidInput("backend_options.storage cannot be set with mode=linked (a linked clone stays on the template's storage)")
        if clone["target"]:
            names = [item["node"] for item in self.backend.nodes()]
            if clone["target"] not in names:
                raise InvalidInput("target %s is not a node of this Proxmox VE cluster (nodes: %s)" % (clone["target"], ", ".join(sorted(names))))
        if needs_seed(dict(spec, type=source["type"])):
            seed.require_pycdlib()
            self._iso_storage(clone["target"] or entry["node"], spec)
        if spec["networks"]:
            self._bridges(clone["target"] or entry["node"], spec["networks"])

    def clone(self, source, spec, clone, deadline):
        entry = source["_native"]["entry"]
        spec = dict(spec, type=source["type"])  # a clone is what its source is
        made = self._copy(entry, spec, clone["target"] or entry["node"], clone["mode"] != "linked", clone["snapshot"], deadline)
        return self._configure_new(made, spec, deadline)

    def _create_container(self, spec, deadline):
        node = self.backend.target_node()
        storage = self._lxc_storage(node, spec)
        params = {"ostemplate": spec["image"], "hostname": spec["name"], "unprivileged": 1,
                  "rootfs": "%s:%d" % (storage, spec["disk_gib"] or DEFAULT_LXC_DISK_GIB)}
        for key, value in (("cores", spec["cpus"]), ("memory", spec["memory_mib"]), ("description", spec["description"])):
            if value is not None:
                params[key] = value
        if spec["tags"]:
            params["tags"] = ";".join(spec["tags"])
        networks = spec["networks"]
        if networks is None:
            # PVE gives a container no NIC by default; a QEMU clone has its template's. One DHCP NIC on the node's first bridge, like LXD's profile.
            bridges = self._bridges(node, None)
            networks = [{"name": bridges[0]}] if bridges else []
        for index, network in enumerate(networks):
            params["net%d" % index] = lxc_nic(index, network, {})
        for key, value in spec["backend_options"].items():
            if key not in OPTION_KEYS:
                params[key] = value
        path = self.client.path("nodes", node, "lxc")
        vmid, _task = self._allocate(spec, deadline, lambda vmid: self.client.run("POST", path, deadline, vmid=vmid, **params))
        return {"vmid": vmid, "node": node, "type": "lxc", "name": spec["name"], "status": "stopped"}

    def update(self, instance, changes, deadline):
        native = instance["_native"]
        entry, config = native["entry"], native["config"]
        qemu = entry["type"] == "qemu"
        params, deletes = {}, []
        for key, value in changes.items():
            if key == "cpus":
                params["cores"] = value
                if qemu and int(config.get("sockets") or 1) != 1:
                    params["sockets"] = 1  # cpus counts vCPUs: cores x sockets
            elif key == "memory_mib":
                params["memory"] = value
            elif key == "description":
                params["description"] = value
            elif key == "tags":
                if value:
                    params["tags"] = ";".join(value)
                elif "tags" in config:
                    deletes.append("tags")
            elif key == "ssh_keys":
                if value:
                    params["sshkeys"] = quote("\n".join(value) + "\n", safe="")
                elif "sshkeys" in config:
                    deletes.append("sshkeys")
            elif key == "networks":
                nic_params, nic_deletes = network_changes(qemu, config, value)
                params.update(nic_params)
                deletes.extend(nic_deletes)
            elif key.startswith("config."):
                params[key[len("config."):]] = spec_value(value)
        base = guest_path(entry)
        if params or deletes:
            if deletes:
                params["delete"] = ",".join(deletes)
            # QEMU: POST is the task form (disk allocation, hotplug, warnings); LXC has PUT only.
            self.client.run("POST" if qemu else "PUT", base + "/config", deadline, **params)
        if "disk_gib" in changes:
            disk = boot_disk(entry, config)
            self.client.run("PUT", base + "/resize", deadline, disk=disk, size="%dG" % changes["disk_gib"])
        return self._reread(entry, deadline)

    def _by_vmid(self, entry, runtime=False):
        """The guest read again by its vmid (another guest may have taken its name meanwhile), or None."""
        self.backend.forget()
        found = [item for item in self.backend.resources() if item.get("vmid") == entry["vmid"]]
        return self._read(found[0], runtime, exact=True) if found else None

    def _reread(self, entry, deadline):
        instance = self._by_vmid(entry)
        if instance is None:
            raise NotFound("guest %s (vmid %s) disappeared during the change" % (entry["name"], entry["vmid"]))
        return instance

    def power(self, instance, action, force, deadline):
        # force: a clean shutdown that PVE ends with a stop at the timeout (forceStop).
        entry = instance["_native"]["entry"]
        base = guest_path(entry) + "/status/"
        params = {}
        if action == "start":
            verb = "start"
        elif action == "stop":
            if instance["state"] == "paused":
                verb = "stop"  # a paused VM cannot shut down
            else:
                verb = "shutdown"
                params["timeout"] = shutdown_timeout(deadline)
                if force:
                    params["forceStop"] = 1  # PVE stops the guest itself when the shutdown has not ended by the timeout
        elif action == "restart":
            verb = "reboot"
            params["timeout"] = shutdown_timeout(deadline)
        elif action in ("pause", "resume"):
            if entry["type"] != "qemu":
                raise Unsupported("state=paused is not supported by the proxmox backend for type=container")
            verb = "suspend" if action == "pause" else "resume"
        else:
            raise InvalidInput("unknown power action %s" % action)
        try:
            self.client.run("POST", base + verb, deadline, **params)
        except (OperationFailed, Conflict) as exc:
            # Another task started it first (two runs converging on one guest): the goal is reached.
            if verb != "start" or " already running" not in exc.message:
                raise
        return self._reread(entry, deadline)

    def stop_now(self, instance, deadline):
        """A stop at once, for this driver's restores and rollbacks: they replace the guest's state anyway."""
        self.client.run("POST", guest_path(instance["_native"]["entry"]) + "/status/stop", deadline)
        return self._reread(instance["_native"]["entry"], deadline)

    def delete(self, instance, force, deadline):
        native = instance["_native"]
        if instance["state"] in ("running", "paused"):
            self.power(instance, "stop", force, deadline)
        path = guest_path(native["entry"])
        try:
            try:
                self.client.run("DELETE", path, deadline, purge=1, **{"destroy-unreferenced-disks": 1})
            except OperationFailed as exc:
                if " is running - destroy failed" not in exc.message:
                    raise
                # It runs although it was read stopped (a start task that failed after starting it): stop it, then delete.
                self.client.run("POST", path + "/status/stop", deadline)
                self.client.run("DELETE", path, deadline, purge=1, **{"destroy-unreferenced-disks": 1})
        except NotFound:
            pass  # gone already: the goal is reached
        # PVE never frees ISO images with a guest (they are shared content): its seed ISO goes here.
        node = native["entry"]["node"]
        seeds = [str(value).split(",", maxsplit=1)[0] for value in (native.get("config") or {}).values() if seed.PREFIX in str(value)]
        self._delete_seeds([(node, volid) for volid in seeds], deadline)
        self.backend.forget()

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(self, instance, condition, deadline):
        name = instance["name"]
        if condition == "cloud_init":
            return self._wait_cloud_init(instance, deadline)
        if condition == "running":
            if instance["state"] == "running":
                return instance, None
            what, runtime, holds = "instance %s to run" % name, False, is_running
        else:
            if any(instance["addresses"].values()):
                return instance, None
            if instance["type"] == "vm" and not agent_enabled(instance["_native"].get("config") or {}):
                raise InvalidInput("wait_for=ip needs the QEMU guest agent on instance %s: set backend_options.agent: 1 (and run "
                                   "qemu-guest-agent in the guest); PVE reads a VM's addresses through it" % name)
            what, runtime, holds = "an IP address on instance %s" % name, True, has_address

        entry = instance["_native"]["entry"]

        def check():
            current = self._by_vmid(entry, runtime)
            return current if current is not None and holds(current) else None

        return poll(check, deadline, what), None

    def _wait_cloud_init(self, instance, deadline):
        name = instance["name"]
        if instance["type"] != "vm":
            raise Unsupported("wait_for=cloud_init is not supported by the proxmox backend for type=container")
        if not agent_enabled(instance["_native"].get("config") or {}):
            raise InvalidInput("wait_for=cloud_init needs the QEMU guest agent on instance %s: set backend_options.agent: 1" % name)
        base = guest_path(instance["_native"]["entry"]) + "/agent/"

        def agent_down(exc):  # the agent answers a while after the VM starts
            return isinstance(exc, OperationFailed) and "agent is not running" in exc.message

        finished = self._cloud_init_result(base, name)
        if finished is not None:
            return instance, finished
        started = retry(lambda: self.client.request("POST", base + "exec", command=["cloud-init", "status", "--wait"]), deadline, agent_down)
        pid = (started or {}).get("pid")

        def exited():
            status = self.client.get(base + "exec-status", deadline, pid=pid) or {}
            return status if status.get("exited") else None

        status = poll(exited, deadline, "cloud-init to finish in instance %s" % name)
        out = (status.get("out-data") or "").strip()
        code = status.get("exitcode")
        report = {"exit_code": code, "status": cloud_init_status(out), "output": out}
        if code == 127:
            raise OperationFailed("cloud-init is not installed in instance %s" % name)
        if code == 1 or report["status"] == "error":
            raise OperationFailed("cloud-init finished with an error in instance %s: %s" % (name, out or status.get("err-data")),
                                  result={"cloud_init": report})
        return self._by_vmid(instance["_native"]["entry"], True), report

    def _cloud_init_result(self, base, name):
        """cloud-init's report of this boot, read with one GET, or None when it cannot be read (not finished, no agent yet,
        no FileRead permission): then ``cloud-init status --wait`` runs through the agent.

        cloud-init writes ``/run/cloud-init/result.json`` at the end of its last stage, and ``/run`` is a tmpfs, so the
        file exists exactly when cloud-init has finished since the guest booted.
        """
        try:
            found = self.client.request("GET", base + "file-read", file=CLOUD_INIT_RESULT) or {}
            result = (json.loads(found.get("content") or "") or {}).get("v1") or {}
        except (PolyvirtError, ValueError, AttributeError):
            return None
        errors = result.get("errors") or []
        # what `cloud-init status` prints, which the exec path reports
        report = {"exit_code": 1 if errors else 0, "status": "error" if errors else "done",
                  "output": "\n".join(["status: error" if errors else "status: done"] + [str(item) for item in errors])}
        if errors:
            raise OperationFailed("cloud-init finished with an error in instance %s: %s" % (name, "; ".join(str(item) for item in errors)),
                                  result={"cloud_init": report})
        return report


# -- helpers (pure: unit tested without a server) -----------------------------------------------------


def guest_path(entry):
    return "nodes/%s/%s/%s" % (quote(entry["node"], safe=""), entry["type"], entry["vmid"])


def guest_type(entry):
    return "container" if entry.get("type") == "lxc" else "vm"


def is_running(instance):
    return instance["state"] == "running"


def has_address(instance):
    return any(instance["addresses"].values())


def read_pending(items):
    """``pending`` items -> (current config, config with pending values applied, keys that change at the next restart)."""
    current, config, changing = {}, {}, []
    for item in items:
        key = item["key"]
        if "value" in item:
            current[key] = item["value"]
            config[key] = item["value"]
        if "pending" in item:
            config[key] = item["pending"]
            changing.append(key)
        if item.get("delete"):
            config.pop(key, None)
            changing.append(key)
    return current, config, changing


def parse_property(value, default_key=None):
    """A PVE property string ``a=1,b=2`` (a first item without ``=`` belongs to ``default_key``) as a dict."""
    result = {}
    for index, item in enumerate(str(value or "").split(",")):
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep:
            if index == 0 and default_key:
                result[default_key] = key
            else:
                result[key] = ""
            continue
        result[key] = val
    return result


def normalise_value(value):
    """A config value in a comparable form: 0/1 for booleans, property strings with their items in order."""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    if "=" in text and "\n" not in text:
        items = text.split(",")
        head = [items[0]] if "=" not in items[0] else []
        return ",".join(head + sorted(item for item in items if "=" in item))
    return text


def spec_value(value):
    if isinstance(value, bool):
        return int(value)
    return value


def read_tags(value):
    return sorted(set(tag for tag in re.split(r"[;,\s]+", value or "") if tag))


def agent_enabled(config):
    agent = parse_property(config.get("agent", "0"), "enabled")
    return str(agent.get("enabled")) in ("1", "on", "yes", "true")


def size_gib(disk_value):
    size = parse_property(disk_value).get("size")
    if not size:
        return None
    return in_unit(parse_size(size, "size", "B"), GIB)


def boot_disk(entry, config):
    """The disk ``disk_size`` speaks about: LXC ``rootfs``; QEMU the first disk of the boot order, else the first disk."""
    if entry["type"] == "lxc":
        return "rootfs"
    order = parse_property(config.get("boot", "")).get("order", "")
    disks = [key for key in sorted(config) if DISK_KEY_RE.match(key) and "media=cdrom" not in str(config[key]) and "cloudinit" not in str(config[key])]
    for key in order.split(";"):
        if key in disks:
            return key
    for prefix in ("scsi", "virtio", "sata", "ide"):
        for key in disks:
            if key.startswith(prefix):
                return key
    return None


def qemu_nic(value):
    """(model, mac, the other items) of a QEMU ``netN``."""
    items = parse_property(value)
    model = next((key for key in items if key in QEMU_MODELS), None)
    mac = items.pop(model, "") if model else items.pop("macaddr", "")
    items.pop("model", None)
    return model, (mac or "").lower() or None, items


def guest_networks(entry, config):
    indexes = sorted(int(match.group(1)) for match in (NET_KEY_RE.match(key) for key in config) if match)
    networks = []
    for index in indexes:
        value = config["net%d" % index]
        if entry["type"] == "qemu":
            model, mac, items = qemu_nic(value)
            ip = parse_property(config.get("ipconfig%d" % index, ""))
            view = {"device": "net%d" % index, "name": items.get("bridge"), "model": model, "mac": mac,
                    "ipv4": ip.get("ip"), "ipv4_gateway": ip.get("gw"), "ipv6": ip.get("ip6")}
        else:
            items = parse_property(value)
            view = {"device": "net%d" % index, "name": items.get("bridge"), "interface": items.get("name"),
                    "mac": (items.get("hwaddr") or "").lower() or None, "ipv4": items.get("ip"), "ipv4_gateway": items.get("gw"),
                    "ipv6": items.get("ip6")}
        networks.append(dict((key, val) for key, val in view.items() if val is not None))
    return networks


def guest_settings(entry, config):
    qemu = entry["type"] == "qemu"
    memory = parse_property(config.get("memory", ""), "current").get("current")
    cores = config.get("cores")
    if qemu:
        cpus = int(cores or 1) * int(config.get("sockets") or 1)
    else:
        cpus = int(cores) if cores is not None else None
    disk = boot_disk(entry, config)
    settings = {
        "cpus": cpus,
        "memory_mib": int(memory) if memory else 512,  # PVE's default for both types
        "disk_gib": size_gib(config.get(disk)) if disk else None,
        "description": config.get("description") or None,
        "tags": read_tags(config.get("tags")),
        "networks": guest_networks(entry, config),
    }
    if qemu:
        settings["ssh_keys"] = [line for line in unquote(config.get("sshkeys") or "").splitlines() if line.strip()]
    return settings


def settings_differ(settings, key, value):
    from ansible_collections.polyvirt.compute.plugins.module_utils._diff import project  # pylint: disable=import-outside-toplevel

    return project(settings.get(key), value) != value


def network_changes(qemu, config, networks):
    """The ``netN`` (and QEMU ``ipconfigN``) writes and deletes that make ``networks`` the guest's NICs; unchanged NICs are not written."""
    params, deletes = {}, []
    for index, network in enumerate(networks):
        key = "net%d" % index
        if qemu:
            value = qemu_nic_value(network, config.get(key))
            ipconfig = ipconfig_value(network, config.get("ipconfig%d" % index))
            if ipconfig is not None and ipconfig != normalise_value(config.get("ipconfig%d" % index, "")):
                params["ipconfig%d" % index] = ipconfig
        else:
            value = lxc_nic(index, network, parse_property(config.get(key, "")))
        if normalise_value(value) != normalise_value(config.get(key, "")):
            params[key] = value
    for key in sorted(config):
        match = NET_KEY_RE.match(key)
        if match and int(match.group(1)) >= len(networks):
            deletes.append(key)
            if qemu and "ipconfig" + match.group(1) in config:
                deletes.append("ipconfig" + match.group(1))
    return params, deletes


def qemu_nic_value(network, current):
    model, mac, items = qemu_nic(current or "")
    mac = network.get("mac") or mac
    items["bridge"] = network["name"]
    head = "%s=%s" % (model or "virtio", mac.upper()) if mac else (model or "virtio")
    return ",".join([head] + ["%s=%s" % (key, items[key]) for key in sorted(items)])


def ipconfig_value(network, current):
    items = parse_property(current or "")
    for key, item in (("ipv4", "ip"), ("ipv4_gateway", "gw"), ("ipv6", "ip6")):
        if network.get(key):
            items[item] = network[key]
    if not items:
        return None
    return ",".join("%s=%s" % (key, items[key]) for key in sorted(items))


def lxc_nic(index, network, items):
    items = dict(items)
    items.setdefault("name", "eth%d" % index)
    items["bridge"] = network["name"]
    if network.get("mac"):
        items["hwaddr"] = network["mac"].upper()
    for key, item in (("ipv4", "ip"), ("ipv4_gateway", "gw"), ("ipv6", "ip6")):
        if network.get(key):
            items[item] = network[key]
    items.setdefault("ip", "dhcp")
    name = items.pop("name")
    return ",".join(["name=%s" % name] + ["%s=%s" % (key, items[key]) for key in sorted(items)])


def interface_addresses(interfaces):
    """Global addresses from the agent's or LXC's interface list: all of them, and by MAC (loopback and link-local left out)."""
    result, by_mac = {"ipv4": [], "ipv6": []}, {}
    for interface in interfaces or ():
        if interface.get("name") == "lo":
            continue
        mac = (interface.get("hardware-address") or interface.get("hwaddr") or "").lower()
        for item in interface.get("ip-addresses") or ():
            value = item.get("ip-address", "")
            if not is_global(value):
                continue
            family = "ipv6" if ":" in value else "ipv4"
            result[family].append(value)
            by_mac.setdefault(mac, []).append(value)
    return result, by_mac


def needs_seed(spec):
    """Whether ``spec`` asks for more cloud-init than PVE's own drive renders (so a NoCloud seed ISO carries it)."""
    return spec["type"] == "vm" and (spec["network_config"] is not None or (spec["user_data"] is not None and cloud_init_keys(spec) is None))


def cloud_init_keys(spec):
    """The SSH keys when they are all of ``spec``'s user-data (PVE's ``sshkeys``), else None (the seed ISO carries it)."""
    text = spec["user_data"]
    if text is None:
        return None
    data = None
    body = text[len(CLOUD_CONFIG_HEADER):] if text.startswith(CLOUD_CONFIG_HEADER) else None
    if body is not None:
        try:
            data = json.loads(body)
        except ValueError:
            try:
                import yaml  # pylint: disable=import-outside-toplevel

                data = yaml.safe_load(body)
            except Exception:  # pylint: disable=broad-except
                data = None
    if not isinstance(data, dict) or set(data) - {"ssh_authorized_keys"} or spec["network_config"] is not None:
        return None
    return [str(key).strip() for key in data.get("ssh_authorized_keys") or [] if str(key).strip()]


def shutdown_timeout(deadline):
    """PVE's own shutdown timeout, inside the task's deadline with a margin to read the task's end."""
    return max(1, int(deadline.remaining()) - 5)


def cloud_init_status(output):
    for line in output.splitlines():
        if line.startswith("status:"):
            return line.split(":", 1)[1].strip()
    return None
