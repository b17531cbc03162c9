# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LXD instances: the normalised vocabulary mapped to LXD instances, config keys and devices."""

from __future__ import annotations

import json
import re

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import LIVE, ON_RESTART, Instances
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, in_unit, instance_result, normalise_mac, parse_size
from ansible_collections.polyvirt.compute.plugins.module_utils._net import is_global
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import poll

# LXD's own rule for instance names (a valid hostname label).
NAME_RE = re.compile(r"^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
FINGERPRINT_RE = re.compile(r"^[0-9a-f]{12,64}$")
# The remotes the lxc client ships with; any other server goes in backend_options.source.
REMOTES = {
    "images": ("https://images.linuxcontainers.org", "simplestreams"),
    "ubuntu": ("https://cloud-images.ubuntu.com/releases", "simplestreams"),
    "ubuntu-daily": ("https://cloud-images.ubuntu.com/daily", "simplestreams"),
}
STATUS = {"Running": "running", "Stopped": "stopped", "Frozen": "paused", "Error": "error"}
POWER_ACTIONS = {"start": "start", "stop": "stop", "restart": "restart", "pause": "freeze", "resume": "unfreeze"}
BACKEND_OPTION_TYPES = {"config": dict, "devices": dict, "profiles": list, "source": dict}
# Pool drivers on which LXD copies an instance as a copy-on-write clone (a linked clone).
COW_POOL_DRIVERS = ("btrfs", "ceph", "lvm", "zfs")
TAGS_KEY = "user.polyvirt.tags"
# Keys that may hold secrets (passwords in user-data): never returned in backend_data.
SECRET_CONFIG = re.compile(r"^(cloud-init\.|user\.(user|vendor|network)-data$|user\.meta-data$)")
# Config keys LXD documents with "Live update: no": a running instance reads them at its next start.
RESTART_CONFIG = re.compile(r"^(linux\.sysctl\.|raw\.(lxc|idmap|qemu)|security\.(privileged|idmap\.|syscalls\.)|agent\.nic_config$)")


class LxdInstances(Instances):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client

    # -- validation -----------------------------------------------------------------------------

    def validate(self, spec):
        if not NAME_RE.match(spec["name"]):
            raise InvalidInput("name %r is not a valid LXD instance name (letters, digits and hyphens, at most 63, starting with a letter, "
                               "not ending with a hyphen)" % spec["name"])
        validate_options(spec["backend_options"], BACKEND_OPTION_TYPES, "LXD")
        for device, value in (spec["backend_options"].get("devices") or {}).items():
            if not isinstance(value, dict):
                raise InvalidInput("backend_options.devices.%s must be a dict of device settings (such as {type: nic, network: br0}), got %r" % (
                    device, value))
        for index, network in enumerate(spec["networks"] or ()):
            if not network.get("name"):
                raise InvalidInput("networks[%d].name is required by the lxd backend (the LXD network or bridge)" % index)
        if spec["image"] and ":" in spec["image"] and "source" not in spec["backend_options"]:
            remote = spec["image"].split(":", 1)[0]
            if remote not in REMOTES:
                raise InvalidInput("image %r names an unknown remote %r (known: %s; for another server set backend_options.source)" % (
                    spec["image"], remote, ", ".join(sorted(REMOTES))))

    # -- reading --------------------------------------------------------------------------------

    def get(self, name, runtime=False):
        # The plain GET has config, devices and status; recursion=1 adds the runtime state (addresses), which
        # LXD computes for the request (disk usage, processes): tens of milliseconds on a busy host.
        native = self.client.get_or_none(self.backend.instance_path(name), query={"recursion": 1} if runtime else None)
        if native is None:
            self.backend.check_project()
            return None
        if runtime and "state" not in native:  # servers without instance_get_full
            native["state"] = self.client.get(self.backend.instance_path(name, "state"))
        return self.describe(native)

    def list(self, filters=None):
        natives = self.client.get("/1.0/instances", query={"recursion": 2}) or []
        if not natives:
            self.backend.check_project()
        return [self.describe(native) for native in natives]

    def describe(self, native):
        settings = self._settings(native)
        location = native.get("location")
        return instance_result(
            native["name"],
            self.backend.name,
            id=native["name"],
            type="container" if native.get("type") == "container" else "vm",
            state=STATUS.get(native.get("status"), "pending"),
            cpus=settings["cpus"],
            memory_mib=settings["memory_mib"],
            disk_gib=settings["disk_gib"],
            image=native["expanded_config"].get("image.description") or native["expanded_config"].get("volatile.base_image"),
            description=native.get("description") or None,
            addresses=global_addresses(native),
            networks=[dict(network, addresses=nic_addresses(native, network["device"])) for network in settings["networks"]],
            location=None if location in (None, "", "none") else location,
            tags=settings["tags"],
            backend_data=public_data(native),
            _native=native,
        )

    def settings(self, instance):
        return self._settings(instance["_native"])

    @staticmethod
    def _settings(native):
        config = native.get("expanded_config") or {}
        devices = native.get("expanded_devices") or {}
        settings = {
            "cpus": _int_or_raw(config.get("limits.cpu")),
            "memory_mib": size_or_raw(config.get("limits.memory"), MIB),
            "disk_gib": size_or_raw(root_device(devices).get("size"), GIB),
            "description": native.get("description") or None,
            "tags": read_tags(config.get(TAGS_KEY)),
            "networks": [_network_view(device, devices[device], config) for device in sorted(devices) if devices[device].get("type") == "nic"],
            "cloud_init.user_data": config.get("cloud-init.user-data", config.get("user.user-data")),
            "cloud_init.network_config": config.get("cloud-init.network-config", config.get("user.network-config")),
            "profiles": native.get("profiles") or [],
        }
        settings.update(("config." + key, value) for key, value in config.items())
        settings.update(("devices." + key, value) for key, value in devices.items())
        return settings

    def desired(self, spec):
        desired = {}
        for key in ("cpus", "memory_mib", "disk_gib", "description", "tags"):
            if spec[key] is not None:
                desired[key] = spec[key]
        if spec["networks"] is not None:
            desired["networks"] = [_desired_network(network) for network in spec["networks"]]
        options = spec["backend_options"]
        desired.update(("config." + key, config_value(value)) for key, value in (options.get("config") or {}).items())
        desired.update(("devices." + key, dict((k, config_value(v)) for k, v in value.items())) for key, value in (options.get("devices") or {}).items())
        if "profiles" in options:
            desired["profiles"] = list(options["profiles"])
        return desired

    # -- changing -------------------------------------------------------------------------------

    def check_create(self, spec):
        """The project and a local image must exist: checked in check mode too, so it predicts the failure."""
        self.backend.check_project()
        if "source" not in spec["backend_options"]:
            self._check_image(spec["image"], image_source(spec["image"]), spec["type"])

    def create(self, spec, deadline):
        options = spec["backend_options"]
        source = dict(options.get("source") or image_source(spec["image"]))
        body = {
            "name": spec["name"],
            "type": "container" if spec["type"] == "container" else "virtual-machine",
            "source": source,
            "config": {},
            "devices": {},
        }
        if spec["description"]:
            body["description"] = spec["description"]
        if "profiles" in options:
            body["profiles"] = list(options["profiles"])
        self._apply_spec(body, spec, None)
        query = {"target": self.client.target} if self.client.target else None
        self.client.run("POST", "/1.0/instances", body, timeout=deadline.remaining(), query=query)
        return self.get(spec["name"])

    def _apply_spec(self, body, spec, origin):
        """Write cloud-init and the settings of ``spec`` into a creation ``body`` (``origin``: the copied native object)."""
        cloud_init_keys = ("cloud-init.user-data", "cloud-init.network-config")
        if (spec["user_data"] or spec["network_config"]) and "cloud_init" not in self.backend.server().get("api_extensions", []):
            cloud_init_keys = ("user.user-data", "user.network-config")  # LXD before the cloud_init extension
        if spec["user_data"]:
            body["config"][cloud_init_keys[0]] = spec["user_data"]
        if spec["network_config"]:
            body["config"][cloud_init_keys[1]] = spec["network_config"]
        changes = self.desired(dict(spec, description=None))
        if "disk_gib" in changes:
            body["devices"]["root"] = self._root_for_size(origin, changes.pop("disk_gib"), body.get("profiles"))
        self._apply(body, changes, expanded_devices=(origin or {}).get("expanded_devices") or {})

    def _check_image(self, image, source, instance_type):
        """A local alias or fingerprint that does not exist, or is of the other type, fails here, before anything is created."""
        if "server" in source:
            return
        if "fingerprint" in source:
            found = self.client.get_or_none("/1.0/images/" + source["fingerprint"])
        else:
            found = self.client.get_or_none("/1.0/images/aliases/" + self.client.quote(source["alias"]))
        if found is None:
            raise InvalidInput("image %r was not found on the LXD server (project %s)" % (image, self.client.project))
        wanted = "container" if instance_type == "container" else "virtual-machine"
        if found.get("type") and found["type"] != wanted:
            raise InvalidInput("image %r is a %s image, and type=%s needs a %s image" % (image, found["type"], instance_type, wanted))

    def _root_for_size(self, native, disk_gib, profiles):
        if native is not None:
            root = dict(root_device(native.get("expanded_devices") or {}))
        else:
            root = {}
            for profile in profiles or ["default"]:
                found = root_device((self.client.get("/1.0/profiles/" + self.client.quote(profile)) or {}).get("devices") or {})
                root = dict(found) if found else root
        if not root.get("pool"):
            raise InvalidInput("disk_size needs a root disk device with a storage pool in the instance's profiles")
        root.update({"type": "disk", "path": "/", "size": "%dGiB" % disk_gib})
        return root

    def check_update(self, instance, changes):
        if "disk_gib" in changes:
            current = self.settings(instance)["disk_gib"]
            if isinstance(current, int) and changes["disk_gib"] < current:
                raise InvalidInput("disk_size %dGiB is smaller than the current %dGiB; disks only grow" % (changes["disk_gib"], current))

    def effects(self, instance, changes):
        running = instance["state"] in ("running", "paused")
        return dict((key, ON_RESTART if running and key.startswith("config.") and RESTART_CONFIG.match(key[len("config."):]) else LIVE)
                    for key in changes)

    def update(self, instance, changes, deadline):
        native = instance["_native"]
        body = put_body(native)
        changes = dict(changes)
        if "disk_gib" in changes:
            body["devices"]["root"] = self._root_for_size(native, changes.pop("disk_gib"), None)
        self._apply(body, changes, native.get("expanded_devices") or {})
        self.client.run("PUT", self.backend.instance_path(native["name"]), body, timeout=deadline.remaining())
        return self.get(native["name"])

    def _apply(self, body, changes, expanded_devices):
        """Write normalised ``changes`` into an LXD instance body (config, devices, profiles)."""
        config, devices = body["config"], body["devices"]
        for key, value in changes.items():
            if key == "cpus":
                config["limits.cpu"] = str(value)
            elif key == "memory_mib":
                config["limits.memory"] = "%dMiB" % value
            elif key == "description":
                body["description"] = value
            elif key == "tags":
                config[TAGS_KEY] = json.dumps(value)
            elif key == "networks":
                _replace_nics(devices, expanded_devices, value)
            elif key == "profiles":
                body["profiles"] = value
            elif key.startswith("config."):
                config[key[len("config."):]] = value
            elif key.startswith("devices."):
                devices[key[len("devices."):]] = value

    def power(self, instance, action, force, deadline):
        body = {"action": POWER_ACTIONS[action], "force": bool(force)}
        if action in ("stop", "restart") and not force:
            body["timeout"] = max(1, int(deadline.remaining()))
        self.client.run("PUT", self.backend.instance_path(instance["name"], "state"), body, timeout=deadline.remaining())
        return self.get(instance["name"])

    def delete(self, instance, force, deadline):
        if instance["state"] in ("running", "paused"):
            self.power(instance, "stop", force or instance["state"] == "paused", deadline)
        try:
            self.client.run("DELETE", self.backend.instance_path(instance["name"]), timeout=deadline.remaining())
        except NotFound:
            pass  # gone already: the goal is reached

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(self, instance, condition, deadline):
        name = instance["name"]
        if condition == "cloud_init":
            return self._wait_cloud_init(name, deadline)
        holds, what, runtime = WAIT_CONDITIONS[condition]
        if holds(instance):
            return instance, None  # what we read already answers: no extra API call on idempotent runs

        def check():
            current = self.get(name, runtime=runtime)
            return current if current is not None and holds(current) else None

        return poll(check, deadline, what % name), None

    def _wait_cloud_init(self, name, deadline):
        try:
            code, out, err = self.execute(name, ["cloud-init", "status", "--wait", "--long"], deadline.remaining())
        except OperationFailed as error:
            if "not found" not in str(error).lower():
                raise
            code, out, err = 127, "", str(error)  # LXD fails the exec operation itself ("Command not found") when there is no such binary
        report = {"exit_code": code, "status": _cloud_init_status(out), "output": out.strip()}
        if code == 127 or (code != 0 and not out and "cloud-init" in err):
            raise OperationFailed("cloud-init is not installed in instance %s (%s), so wait_for=cloud_init cannot be met; leave cloud_init out of "
                                  "wait_for for images without it" % (name, err.strip() or "exit code %s" % code))
        if code == 1 or report["status"] == "error":
            raise OperationFailed("cloud-init finished with an error in instance %s: %s" % (name, out.strip() or err.strip()), result={"cloud_init": report})
        return self.get(name, runtime=True), report

    def execute(self, name, command, timeout):
        """Run ``command`` in the instance without websockets; return (exit code, stdout, stderr)."""
        body = {"command": command, "environment": {}, "wait-for-websocket": False, "record-output": True, "interactive": False}
        operation = self.client.request("POST", self.backend.instance_path(name, "exec"), body)
        meta = self.client.wait(operation, timeout)
        result = meta.get("metadata") or {}
        output = result.get("output") or {}
        texts = []
        for stream in ("1", "2"):
            path = output.get(stream)
            texts.append(self.client.get_text(path) if path else "")
            if path:
                self.client.request("DELETE", path)
        return result.get("return"), texts[0], texts[1]

    # -- clones ---------------------------------------------------------------------------------

    def check_clone(self, source, spec, clone):
        native = source["_native"]
        if clone["mode"] == "linked":
            pool = root_device(native.get("expanded_devices") or {}).get("pool")
            driver = (self.client.get_or_none("/1.0/storage-pools/" + self.client.quote(pool or "")) or {}).get("driver")
            if driver not in COW_POOL_DRIVERS:
                raise Unsupported("mode=linked clones is not supported by the lxd backend on storage pool %s (driver %s); LXD makes copy-on-write "
                                  "copies only on %s pools, and a full copy otherwise" % (pool, driver, ", ".join(COW_POOL_DRIVERS)))
        if clone["target"] and not (self.backend.server().get("environment") or {}).get("server_clustered"):
            raise InvalidInput("target %r is an LXD cluster member, and this LXD server is not clustered" % clone["target"])

    def clone(self, source, spec, clone, deadline):
        native = source["_native"]
        origin = native
        copied = native["name"]
        if clone["snapshot"]:
            origin = self.client.get(self.backend.instance_path(native["name"], "snapshots", self.client.quote(clone["snapshot"])))
            copied = "%s/%s" % (native["name"], clone["snapshot"])
        body = {
            "name": spec["name"],
            "type": native.get("type") or "container",
            "source": {"type": "copy", "source": copied, "instance_only": True},
            "profiles": list(origin.get("profiles") or []),
            "config": dict((key, value) for key, value in (origin.get("config") or {}).items() if not key.startswith("volatile.")),
            "devices": dict((key, dict(value)) for key, value in (origin.get("devices") or {}).items()),
        }
        if spec["description"] is not None:
            body["description"] = spec["description"]
        options = spec["backend_options"]
        if "profiles" in options:
            body["profiles"] = list(options["profiles"])
        self._apply_spec(body, spec, origin)
        target = clone["target"] or self.client.target
        self.client.run("POST", "/1.0/instances", body, timeout=deadline.remaining(), query={"target": target} if target else None)
        return self.get(spec["name"])

    def shared_disks(self, instance):
        """Custom volumes the instance mounts from a pool (a copy or a restore mounts the same volumes)."""
        return sorted("%s/%s" % (device["pool"], device["source"]) for device in ((instance["_native"].get("expanded_devices") or {}).values())
                      if device.get("type") == "disk" and device.get("pool") and device.get("source") and device.get("path") != "/")


def validate_options(options, types, what):
    """``backend_options`` keys and value types against ``types`` (one check for every LXD resource)."""
    for key, value in options.items():
        if key not in types:
            raise InvalidInput("backend_options.%s is not an %s option (use %s)" % (key, what, ", ".join(sorted(types))))
        if not isinstance(value, types[key]):
            raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, types[key].__name__, value))


def is_running(instance):
    return instance["state"] == "running"


def has_address(instance):
    return any(instance["addresses"].values())


# wait_for conditions that a read of the instance answers: (test, what is awaited, whether the read needs runtime state).
WAIT_CONDITIONS = {"running": (is_running, "instance %s to run", False), "ip": (has_address, "an IP address on instance %s", True)}


def read_tags(value):
    """Tags as stored in ``user.polyvirt.tags``: a JSON list (a tag may hold a comma), or the older comma-joined form."""
    if not value:
        return []
    if value.startswith("["):
        try:
            return sorted(json.loads(value))
        except ValueError:
            pass
    return sorted(filter(None, value.split(",")))


def put_body(raw):
    """The writable part of an instance (for PUT), from its native object."""
    return {
        "architecture": raw.get("architecture"),
        "config": dict(raw.get("config") or {}),
        "devices": dict((key, dict(value)) for key, value in (raw.get("devices") or {}).items()),
        "profiles": list(raw.get("profiles") or []),
        "description": raw.get("description") or "",
        "ephemeral": raw.get("ephemeral", False),
        "stateful": raw.get("stateful", False),
    }


def image_source(image):
    """The LXD ``source`` of ``image``: a local alias or fingerprint, or ``remote:alias``."""
    if ":" in image:
        remote, alias = image.split(":", 1)
        server, protocol = REMOTES[remote]
        return {"type": "image", "mode": "pull", "server": server, "protocol": protocol, "alias": alias}
    if FINGERPRINT_RE.match(image):
        return {"type": "image", "fingerprint": image}
    return {"type": "image", "alias": image}


def global_addresses(raw):
    """IPv4 and IPv6 addresses of the instance's NICs: loopback and link-local addresses left out."""
    result = {"ipv4": [], "ipv6": []}
    for nic, info in sorted(((raw.get("state") or {}).get("network") or {}).items()):
        if nic == "lo" or info.get("type") == "loopback":
            continue
        for address in info.get("addresses") or []:
            if address.get("scope") != "global" or not is_global(address.get("address", "")):
                continue
            result["ipv4" if address.get("family") == "inet" else "ipv6"].append(address["address"])
    return result


def nic_addresses(raw, device):
    """Global addresses of one NIC device (its in-guest name is the device's ``name`` or the device name)."""
    config = (raw.get("expanded_devices") or {}).get(device) or {}
    info = ((raw.get("state") or {}).get("network") or {}).get(config.get("name") or device) or {}
    return [address["address"] for address in info.get("addresses") or [] if address.get("scope") == "global"]


def public_data(raw):
    """The native object without secrets (user-data may carry passwords) and without volatile noise."""
    data = dict((key, value) for key, value in raw.items() if key not in ("state", "snapshots", "backups"))
    for key in ("config", "expanded_config"):
        data[key] = dict((k, v) for k, v in (raw.get(key) or {}).items() if not SECRET_CONFIG.match(k) and not k.startswith("volatile.idmap"))
    return data


def root_device(devices):
    for device in devices.values():
        if device.get("type") == "disk" and device.get("path") == "/":
            return device
    return {}


def _network_view(device, config, instance_config):
    return {
        "device": device,
        "name": config.get("network") or config.get("parent"),
        "ipv4": config.get("ipv4.address") or "dhcp",
        "ipv6": config.get("ipv6.address"),
        "mac": normalise_mac(config.get("hwaddr") or instance_config.get("volatile.%s.hwaddr" % device)),
    }


def _desired_network(network):
    view = {"name": network["name"], "ipv4": network.get("ipv4"), "ipv6": network.get("ipv6"), "mac": network.get("mac")}
    if view["ipv4"] and view["ipv4"] != "dhcp":
        view["ipv4"] = view["ipv4"].split("/", 1)[0]  # LXD takes the address; the bridge has the prefix
    return dict((key, value) for key, value in view.items() if value is not None)


def _replace_nics(devices, expanded_devices, networks):
    """Make ``networks`` the instance's NICs eth0..ethN; NICs from profiles that are not wanted are masked."""
    for name in [name for name, device in devices.items() if device.get("type") == "nic"]:
        del devices[name]
    wanted = ["eth%d" % index for index in range(len(networks))]
    for name, device in expanded_devices.items():
        if device.get("type") == "nic" and name not in wanted:
            devices[name] = {"type": "none"}
    for name, network in zip(wanted, networks):
        nic = {"type": "nic", "network": network["name"], "name": name}
        if network.get("ipv4") and network["ipv4"] != "dhcp":
            nic["ipv4.address"] = network["ipv4"]
        if network.get("ipv6"):
            nic["ipv6.address"] = network["ipv6"]
        if network.get("mac"):
            nic["hwaddr"] = network["mac"]
        devices[name] = nic


def config_value(value):
    """LXD config values are strings; booleans in YAML become LXD's ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return value
    return str(value)


def _int_or_raw(value):
    if value is None:
        return None
    return int(value) if str(value).isdigit() else value


def size_or_raw(value, unit):
    """A size in ``unit`` (MiB or GiB); a value that is not a plain size ("50%") is returned as is."""
    if value is None:
        return None
    try:
        size = parse_size(value, "size", "B")
    except InvalidInput:
        return value
    return in_unit(size, unit)


def _cloud_init_status(output):
    for line in output.splitlines():
        if line.startswith("status:"):
            return line.split(":", 1)[1].strip()
    return None
