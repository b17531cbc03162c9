# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CloudCIX instances: the normalised vocabulary mapped to ``compute/instances`` (specs SKUs, interfaces, metadata).

Every change is a state request that CloudCIX's robot carries out later (about every 15 s), so each
verb waits on the instance's state with backoff, and fails fast on ``unresourced``.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Instances
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.client import ApiInvalid
from ansible_collections.polyvirt.compute.plugins.module_utils._diff import project
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import MIB, format_size, instance_result
from ansible_collections.polyvirt.compute.plugins.module_utils._net import pick_ansible_host
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import poll

LXD, HYPERV = "lxd", "hyperv"
RAM_SKU = "RAM_001"  # quantity in GB
CPU_SKUS = {LXD: "vCPU_001", HYPERV: "vCPU_002"}
STORAGE_SKUS = ("SSD_001", "HDD_001")
DEFAULT_STORAGE_SKU = "SSD_001"
# SKU name prefixes that are not images: everything else in ``specs`` is the image SKU.
NON_IMAGE_PREFIXES = ("RAM_", "vCPU_", "SSD_", "HDD_", "CEPH_")
# Sizes of a new instance when the task does not say (CloudCIX needs RAM, vCPU, storage and an image).
DEFAULTS = {"cpus": 1, "memory_gb": 1, "disk_gb": {LXD: 10, HYPERV: 32}}
GB_MIB = 1024  # RAM_001 and SSD_001 count GB; the normalised model counts MiB and GiB: 1 GB here is 1 GiB there
# The robot's states. Stable ones map to the normalised state; the delete states count as absent.
STATES = {"running": "running", "stopped": "stopped", "unresourced": "error"}
GONE = ("delete", "delete_prep", "delete_queue", "deleting", "deleted", "closed")
QUEUED = ("delete", "delete_prep", "delete_queue")  # still restorable during the grace period
FAILED = ("unresourced", "error", "failed")
BACKEND_OPTION_TYPES = {"hypervisor": str, "storage_sku": str, "grace_period": int, "dns": (str, list), "email": str, "ssh_key_names": list}
UNRESOURCED_HINT = ("the robot could not build it (unresourced: a SKU this region does not have, a SKU of the other hypervisor, or a quantity "
                    "over its limit); CloudCIX support can retry it, or delete it with state: absent")
WAIT_FIRST, WAIT_LONGEST = 0.5, 5.0  # the robot acts about every 15 s: poll gently


class CloudcixInstances(Instances):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client
        self._queued = {}  # name -> an instance of that name in the delete queue (restorable), from the last read
        self._created = set()  # ids this task created: removing one of them again skips the grace period
        self._grace = None  # backend_options.grace_period of the task, for delete
        self._image = {}  # image SKU -> its row in compute/images, once read

    # -- validation -----------------------------------------------------------------------------

    def validate(self, spec):
        options = spec["backend_options"]
        for key, value in options.items():
            if key not in BACKEND_OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not a cloudcix instance option (use %s)" % (key, ", ".join(sorted(BACKEND_OPTION_TYPES))))
            types = BACKEND_OPTION_TYPES[key]
            if isinstance(value, bool) or not isinstance(value, types):
                names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
                raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, names, value))
        if options.get("hypervisor") not in (None, LXD, HYPERV):
            raise InvalidInput("backend_options.hypervisor must be lxd or hyperv, got %r" % options["hypervisor"])
        if options.get("hypervisor") == HYPERV and spec["type"] == "container":
            raise InvalidInput("backend_options.hypervisor hyperv runs VMs only, and type is container")
        if options.get("storage_sku") is not None and options["storage_sku"] not in STORAGE_SKUS:
            raise InvalidInput("backend_options.storage_sku must be one of %s, got %r" % (", ".join(STORAGE_SKUS), options["storage_sku"]))
        if options.get("grace_period") is not None and options["grace_period"] < 0:
            raise InvalidInput("backend_options.grace_period is a number of hours, at least 0, got %r" % options["grace_period"])
        for address in dns_list(options.get("dns")):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise InvalidInput("backend_options.dns must list IP addresses, got %r" % address)
        if len(spec["name"]) > 128 or spec["name"] != spec["name"].strip():
            raise InvalidInput("name %r is not a valid CloudCIX instance name (at most 128 characters, no leading or trailing spaces)" % spec["name"])
        if spec["memory_mib"] is not None and spec["memory_mib"] % GB_MIB:
            raise InvalidInput("memory must be a whole number of GB on the cloudcix backend (%s is sold per GB), got %s" % (
                RAM_SKU, format_size(spec["memory_mib"] * MIB)))
        for index, network in enumerate(spec["networks"] or ()):
            option = "networks[%d]." % index
            if network.get("mac"):
                raise Unsupported("%smac is not supported by the cloudcix backend (CloudCIX assigns MAC addresses)" % option)
            for key in ("ipv4", "ipv6"):
                if network.get(key) in ("dhcp", "slaac"):
                    raise InvalidInput("%s%s must be a static address on the cloudcix backend (CloudCIX assigns the addresses you list), got %r" % (
                        option, key, network[key]))
            if not network.get("ipv4") and not network.get("ipv6"):
                raise InvalidInput("%sipv4 or %sipv6 is required by the cloudcix backend (an interface is its addresses)" % (option, option))
        if options.get("hypervisor") == HYPERV:
            self._check_hyperv(spec)
        self._grace = options.get("grace_period")

    @staticmethod
    def _check_hyperv(spec):
        if spec["user_data"] is not None or spec["network_config"] is not None:
            raise Unsupported("cloud_init is not supported by the cloudcix backend for Hyper-V instances (CloudCIX has no user-data for them)")
        if not spec["backend_options"].get("email"):
            raise InvalidInput("backend_options.email is required for a Hyper-V instance on the cloudcix backend (CloudCIX registers the Windows "
                               "licence to it)")

    # -- reading --------------------------------------------------------------------------------

    def get(self, name, runtime=False):
        # One list read answers both "does it exist" and "is there one in the delete queue to bring back".
        natives = self.client.list("compute/instances/", search={"name": name, "project_id": self.backend.project_id})
        natives = [native for native in natives if native.get("name") == name]
        live = [native for native in natives if native.get("state") not in GONE]
        queued = [native for native in natives if native.get("state") in QUEUED]
        if queued:
            self._queued[name] = max(queued, key=lambda native: native.get("id") or 0)
        else:
            self._queued.pop(name, None)
        if len(live) > 1:
            raise Conflict("there are %d instances named %s in project %s (ids %s); CloudCIX names are not unique, so give each its own name first" % (
                len(live), name, self.backend.project_id, ", ".join(str(native["id"]) for native in sorted(live, key=lambda item: item["id"]))))
        return self.describe(live[0]) if live else None

    def list(self, filters=None):
        natives = self.client.list("compute/instances/", search={"project_id": self.backend.project_id})
        if not natives:
            self.backend.check_project()
        return [self.describe(native) for native in natives if native.get("state") not in GONE]

    def describe(self, native):
        settings = self._settings(native)
        addresses = native_addresses(native)
        public = [address for address in addresses["ipv4"] if address in public_addresses(native)]
        return instance_result(
            native["name"],
            self.backend.name,
            id=native["id"],
            type=instance_type(native),
            state=STATES.get(native.get("state"), "pending"),
            cpus=settings["cpus"],
            memory_mib=settings["memory_mib"],
            disk_gib=settings["disk_gib"],
            image=image_sku(native),
            addresses=addresses,
            ansible_host=public[0] if public else pick_ansible_host(addresses),
            networks=settings["networks"],
            location="project %s" % native.get("project_id") if native.get("project_id") is not None else None,
            backend_data=public_data(native),
            _native=native,
        )

    def settings(self, instance):
        return self._settings(instance["_native"])

    @staticmethod
    def _settings(native):
        specs = dict((item.get("sku_name"), item.get("quantity")) for item in native.get("specs") or [])
        cpus = next((specs[sku] for sku in CPU_SKUS.values() if sku in specs), None)
        disk = next((specs[sku] for sku in STORAGE_SKUS if sku in specs), None)
        metadata = native.get("metadata") or {}
        return {
            "cpus": cpus,
            "memory_mib": specs[RAM_SKU] * GB_MIB if specs.get(RAM_SKU) is not None else None,
            "disk_gib": disk,
            "networks": [_network_view(interface) for interface in native.get("interfaces") or []],
            "grace_period": native.get("grace_period"),
            "dns": sorted(dns_list(metadata.get("dns")) + dns_list(metadata.get("dns4")) + dns_list(metadata.get("dns6"))),
            "cloud_init.user_data": metadata.get("userdata"),
        }

    def desired(self, spec):
        desired = dict((key, spec[key]) for key in ("cpus", "memory_mib", "disk_gib") if spec[key] is not None)
        if spec["networks"] is not None:
            desired["networks"] = [_desired_network(network) for network in spec["networks"]]
        options = spec["backend_options"]
        if options.get("grace_period") is not None:
            desired["grace_period"] = options["grace_period"]
        if options.get("dns") is not None:
            desired["dns"] = sorted(dns_list(options["dns"]))
        return desired

    # -- creating -------------------------------------------------------------------------------

    def check_create(self, spec):
        """The project and the image SKU exist, and the image suits the type: read-only, so check mode predicts the failure."""
        self.backend.check_project()
        image = self._image_row(spec["image"])
        kind = self._kind(spec, image)
        if kind == HYPERV:
            if spec["type"] == "container":
                raise InvalidInput("image %r is a Hyper-V (Windows) image, and type container runs on LXD only" % spec["image"])
            self._check_hyperv(spec)
        elif spec["backend_options"].get("email") and spec["backend_options"].get("hypervisor") != HYPERV:
            raise InvalidInput("backend_options.email is only used by Hyper-V instances, and image %r is an LXD image" % spec["image"])
        queued = self._queued.get(spec["name"])
        if queued is not None and image_sku(queued) != spec["image"]:
            raise Conflict("instance %s (id %s) is in the delete queue with image %s; bring it back with that image, or wait for CloudCIX to "
                           "remove it, before making a new one from %s" % (spec["name"], queued["id"], image_sku(queued), spec["image"]))

    def _image_row(self, sku):
        if sku not in self._image:
            rows = self.backend.images()
            found = [row for row in rows if row.get("sku_name") == sku]
            if not found:
                names = sorted(row.get("sku_name") for row in rows if row.get("sku_name"))
                raise InvalidInput("image %r is not an image SKU of this CloudCIX region (images: %s)" % (sku, ", ".join(names) or "none"))
            self._image[sku] = found[0]
        return self._image[sku]

    @staticmethod
    def _kind(spec, image):
        """lxd or hyperv: ``backend_options.hypervisor``, else what the image list says about the image."""
        if spec["backend_options"].get("hypervisor"):
            return spec["backend_options"]["hypervisor"]
        return image_kind(image)

    def create(self, spec, deadline):
        queued = self._queued.get(spec["name"])
        if queued is not None:
            return self._bring_back(queued, spec, deadline)
        kind = self._kind(spec, self._image_row(spec["image"]))
        body = {
            "project_id": self.backend.project_id,
            "name": spec["name"],
            "type": kind,
            "metadata": self._metadata(kind, spec, {}),
            "interfaces": _interfaces(spec["networks"] or []),
            "specs": [
                {"sku_name": RAM_SKU, "quantity": spec["memory_mib"] // GB_MIB if spec["memory_mib"] else DEFAULTS["memory_gb"]},
                {"sku_name": CPU_SKUS[kind], "quantity": spec["cpus"] or DEFAULTS["cpus"]},
                {"sku_name": self._storage_sku(spec), "quantity": spec["disk_gib"] or DEFAULTS["disk_gb"][kind]},
                {"sku_name": spec["image"], "quantity": 1},
            ],
        }
        if spec["backend_options"].get("grace_period") is not None:
            body["grace_period"] = spec["backend_options"]["grace_period"]
        try:
            native = self.client.write("POST", "compute/instances/", body, deadline=deadline)
        except ApiInvalid as exc:
            if "already in use" in str((exc.errors.get("name") or {}).get("detail", "")):
                # Another task made it since our read: the reconciler converges on that one.
                raise Conflict("instance %s was created by someone else meanwhile: %s" % (spec["name"], exc.message))
            raise
        self._created.add(native["id"])
        native = self._wait_state(native, ("running",), deadline, "instance %s to be built" % spec["name"])
        if spec["state"] not in ("started", "restarted"):
            # CloudCIX builds into running; a new instance of state present or stopped is left stopped, as on every backend.
            native = self._request_state(native, "stop", ("stopped",), deadline)
        return self.describe(native)

    def _bring_back(self, queued, spec, deadline):
        """Restore the instance of this name from the delete queue (stopped) instead of making a second one."""
        native = queued
        if native.get("state") != "delete_queue":
            native = self._wait_state(native, ("delete_queue",), deadline, "instance %s to reach the delete queue" % spec["name"])
        native = self._request_state(native, "stop", ("stopped",), deadline)
        instance = self.describe(native)
        changes = dict((key, value) for key, value in self.desired(spec).items() if project(self.settings(instance).get(key), value) != value)
        if changes:
            self.check_update(instance, changes)
            instance = self.update(instance, changes, deadline)
        return instance

    def _storage_sku(self, spec):
        return spec["backend_options"].get("storage_sku") or DEFAULT_STORAGE_SKU

    @staticmethod
    def _metadata(kind, spec, current):
        """The ``metadata`` of an LXD or Hyper-V instance: what it has, with what ``spec`` sets on top."""
        metadata = dict(current)
        options = spec["backend_options"]
        if kind == LXD:
            metadata.setdefault("instance_type", "container" if spec["type"] == "container" else "virtual-machine")
            if spec["user_data"] is not None and not current:
                metadata["userdata"] = spec["user_data"]
            if options.get("ssh_key_names") is not None:
                metadata["ssh_key_names"] = list(options["ssh_key_names"])
            if options.get("dns") is not None:
                metadata["dns"] = ",".join(dns_list(options["dns"]))
        else:
            if options.get("email"):
                metadata["email"] = options["email"]
            if options.get("dns") is not None:
                addresses = dns_list(options["dns"])
                metadata["dns4"] = ",".join(address for address in addresses if ipaddress.ip_address(address).version == 4)
                metadata["dns6"] = ",".join(address for address in addresses if ipaddress.ip_address(address).version == 6)
        return metadata

    # -- changing -------------------------------------------------------------------------------

    def check_update(self, instance, changes):
        current = self.settings(instance)
        if "disk_gib" in changes and isinstance(current["disk_gib"], int) and changes["disk_gib"] < current["disk_gib"]:
            raise InvalidInput("disk_size %dGiB is smaller than the current %dGiB; disks only grow" % (changes["disk_gib"], current["disk_gib"]))
        if instance["state"] == "error":
            raise Conflict("instance %s cannot change: %s" % (instance["name"], UNRESOURCED_HINT))

    def update(self, instance, changes, deadline):
        native = self._settle(instance["_native"], deadline)
        kind = hypervisor(native)
        body = {}
        specs = []
        for key, value in changes.items():
            if key == "cpus":
                specs.append({"sku_name": CPU_SKUS[kind], "quantity": value})
            elif key == "memory_mib":
                specs.append({"sku_name": RAM_SKU, "quantity": value // GB_MIB})
            elif key == "disk_gib":
                sku = next((item["sku_name"] for item in native.get("specs") or [] if item.get("sku_name") in STORAGE_SKUS), DEFAULT_STORAGE_SKU)
                specs.append({"sku_name": sku, "quantity": value})
            elif key == "networks":
                body["interfaces"] = _interfaces(value)
            elif key == "grace_period":
                body["grace_period"] = value
            elif key == "dns":
                options = {"dns": value}
                body["metadata"] = self._metadata(kind, {"type": instance["type"], "user_data": None, "backend_options": options},
                                                  native.get("metadata") or {})
        if specs:
            body["specs"] = specs
        if set(body) & {"specs", "interfaces", "metadata"}:
            # A change of specs, interfaces or metadata is itself a state request, carried out by the robot.
            request = "update_running" if native["state"] == "running" else "update_stopped"
            body["state"] = request
        native = self.client.write("PATCH", "compute/instances/%s/" % native["id"], body, deadline=deadline)
        native = self._wait_state(native, ("running", "stopped"), deadline, "the update of instance %s" % native["name"])
        return self.describe(native)

    def power(self, instance, action, force, deadline):
        if action in ("pause", "resume"):
            raise Unsupported("state=paused is not supported by the cloudcix backend")
        native = self._settle(instance["_native"], deadline)
        state = native["state"]
        if state in FAILED:
            raise OperationFailed("instance %s cannot %s: %s" % (native["name"], action, UNRESOURCED_HINT))
        if action == "stop" and state != "stopped":
            native = self._request_state(native, "stop", ("stopped",), deadline)
        elif action == "start" and state != "running":
            native = self._request_state(native, "restart", ("running",), deadline)  # CloudCIX starts a stopped instance with "restart"
        elif action == "restart":
            if state == "running":  # no restart from running: the state machine allows stop, then restart
                native = self._request_state(native, "stop", ("stopped",), deadline)
            native = self._request_state(native, "restart", ("running",), deadline)
        return self.describe(native)

    def delete(self, instance, force, deadline):
        """Request ``delete``: the instance waits out its grace period in the delete queue (restorable), then CloudCIX scrubs it.

        ``backend_options.grace_period: 0``, or an instance this task made and now removes again, is deleted at once
        (HTTP DELETE: no restore).
        """
        native = instance["_native"]
        path = "compute/instances/%s/" % native["id"]
        try:
            if native["id"] in self._created or self._grace == 0:
                self.client.write("DELETE", path, deadline=deadline)
                return
            native = self._settle(native, deadline, gone_ok=True)
            if native is None or native.get("state") in GONE:
                return
            if native["state"] in FAILED:
                raise Conflict("instance %s cannot be deleted by its owner while it is unresourced; CloudCIX support removes or retries it" % native["name"])
            body = {"state": "delete"}
            if self._grace is not None:
                body["grace_period"] = self._grace
            native = self.client.write("PATCH", path, body, deadline=deadline)
            self._wait_state(native, ("delete_queue", "deleting", "deleted"), deadline, "instance %s to enter the delete queue" % native["name"])
        except NotFound:
            pass  # gone already: the goal is reached

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(self, instance, condition, deadline):
        if condition == "cloud_init":
            raise Unsupported("wait_for=cloud_init is not supported by the cloudcix backend")
        holds, what = WAIT_CONDITIONS[condition]
        if holds(instance["_native"]):
            return instance, None  # what we read already answers: no extra API call on idempotent runs
        native = self._poll(instance["_native"], holds, deadline, what % instance["name"])
        return self.describe(native), None

    def _read(self, native_id, deadline):
        return self.client.read("compute/instances/%s/" % native_id, deadline=deadline)

    def _poll(self, native, holds, deadline, what):
        """Read the instance until ``holds(native)``; an instance the robot gave up on fails at once."""
        if holds(native):
            return native

        def check():
            current = self._read(native["id"], deadline)
            if holds(current):
                return current
            if current.get("state") in FAILED:
                raise OperationFailed("instance %s is %s while waiting for %s: %s" % (current["name"], current["state"], what, UNRESOURCED_HINT))
            return None

        return poll(check, deadline, what, first=WAIT_FIRST, longest=WAIT_LONGEST)

    def _wait_state(self, native, states, deadline, what):
        return self._poll(native, lambda current: current.get("state") in states, deadline, what)

    def _settle(self, native, deadline, gone_ok=False):
        """Wait until the robot has finished what it is doing: a user may request a change only from a stable state."""
        stable = ("running", "stopped") + FAILED + GONE
        try:
            return self._poll(native, lambda current: current.get("state") in stable, deadline, "instance %s to settle" % native["name"])
        except NotFound:
            if gone_ok:
                return None
            raise

    def _request_state(self, native, request, targets, deadline):
        native = self.client.write("PATCH", "compute/instances/%s/" % native["id"], {"state": request}, deadline=deadline)
        return self._wait_state(native, targets, deadline, "instance %s to be %s" % (native["name"], " or ".join(targets)))


# -- mapping --------------------------------------------------------------------------------------


def hypervisor(native):
    return HYPERV if native.get("type") == HYPERV else LXD


def instance_type(native):
    """container or vm: CloudCIX reads ``instance_type`` back as ``container`` or ``vm`` (``virtual-machine`` when created so)."""
    if hypervisor(native) == HYPERV:
        return "vm"
    return "container" if (native.get("metadata") or {}).get("instance_type", "container") == "container" else "vm"


def image_kind(image):
    """What the image list says: its ``type`` where the API has it, else whether it is a Windows image."""
    if image.get("type") in (LXD, HYPERV):
        return image["type"]
    text = " ".join(str(image.get(key) or "") for key in ("sku_name", "os_variant", "filename")).lower()
    return HYPERV if "windows" in text or "msserver" in text or text.strip().endswith(".vhdx") else LXD


def image_sku(native):
    for item in native.get("specs") or []:
        sku = item.get("sku_name") or ""
        if not sku.startswith(NON_IMAGE_PREFIXES) and not sku.endswith("_GPU"):
            return sku
    return None


def dns_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part).strip() for part in value if str(part).strip()]


def public_addresses(native):
    return [address["public_ip"] for interface in native.get("interfaces") or [] for address in interface.get("ipv4_addresses") or []
            if address.get("nat") and address.get("public_ip")]


def native_addresses(native):
    """Public (NAT) addresses first, then the private ones, then IPv6."""
    private = [address["address"] for interface in native.get("interfaces") or [] for address in interface.get("ipv4_addresses") or []
               if address.get("address")]
    ipv6 = [address["address"] for interface in native.get("interfaces") or [] for address in interface.get("ipv6_addresses") or []
            if address.get("address")]
    return {"ipv4": public_addresses(native) + private, "ipv6": ipv6}


def public_data(native):
    """The native object without the user-data (it may carry password hashes)."""
    data = dict(native)
    if isinstance(native.get("metadata"), dict):
        data["metadata"] = dict((key, value) for key, value in native["metadata"].items() if key != "userdata")
    return data


def _network_view(interface):
    ipv4 = interface.get("ipv4_addresses") or []
    ipv6 = interface.get("ipv6_addresses") or []
    addresses = [item["address"] for item in ipv4 + ipv6 if item.get("address")]
    addresses += [item["public_ip"] for item in ipv4 if item.get("nat") and item.get("public_ip")]
    return {
        "name": None,  # CloudCIX interfaces have no name: an interface is its addresses (the first is the gateway interface)
        "ipv4": ipv4[0].get("address") if ipv4 else None,
        "ipv6": ipv6[0].get("address") if ipv6 else None,
        "nat": bool(ipv4[0].get("nat")) if ipv4 else False,
        "gateway": bool(interface.get("gateway")),
        "vlan": interface.get("vlan"),
        "public_ip": ipv4[0].get("public_ip") if ipv4 else None,
        "addresses": addresses,
    }


def _desired_network(network):
    view = {"ipv4": _plain(network.get("ipv4")), "ipv6": _plain(network.get("ipv6")), "nat": network.get("nat")}
    if view["ipv4"] and view["nat"] is None:
        view["nat"] = False
    return dict((key, value) for key, value in view.items() if value is not None)


def _plain(address):
    """The address without its prefix: CloudCIX takes the address, the router network has the prefix."""
    return address.split("/", 1)[0] if address else address


def _interfaces(networks):
    """``networks`` as CloudCIX ``interfaces``: the first is the gateway interface."""
    interfaces = []
    for index, network in enumerate(networks):
        interface = {"gateway": index == 0, "ipv4_addresses": [], "ipv6_addresses": []}
        if network.get("ipv4"):
            interface["ipv4_addresses"].append({"address": _plain(network["ipv4"]), "nat": bool(network.get("nat"))})
        if network.get("ipv6"):
            interface["ipv6_addresses"].append({"address": _plain(network["ipv6"])})
        interfaces.append(interface)
    return interfaces


def is_running(native):
    return native.get("state") == "running"


def has_address(native):
    """An address, and every NAT address's public one (the robot fills it when the instance first runs)."""
    addresses = native_addresses(native)
    waiting = [address for interface in native.get("interfaces") or [] for address in interface.get("ipv4_addresses") or []
               if address.get("nat") and not address.get("public_ip")]
    return bool(addresses["ipv4"] or addresses["ipv6"]) and not waiting


# wait_for conditions a read of the instance answers: (test of the native object, what is awaited).
WAIT_CONDITIONS = {"running": (is_running, "instance %s to run"), "ip": (has_address, "an IP address on instance %s")}
