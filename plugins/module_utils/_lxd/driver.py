# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The LXD backend driver: maps the normalised vocabulary to LXD instances, config keys and devices.

Snapshots, backups and disks are in resources.py (LxdResourceBackend), loaded only by their modules.
"""

from __future__ import annotations

import re

from ansible_collections.polyvirt.compute.plugins.module_utils._backend import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._lxd.transport import LxdClient
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, instance_result, normalise_mac, parse_size
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


class LxdBackend(Backend):
    name = "lxd"
    default_type = "container"
    capabilities = frozenset((
        "instance.container", "instance.vm", "instance.paused", "instance.disk_size", "instance.tags", "instance.description",
        "instance.cloud_init", "instance.ssh_keys", "wait_for.ip", "wait_for.cloud_init",
        "snapshot", "snapshot.stateful", "backup", "backup.export", "clone", "clone.linked", "clone.target",
        "disk", "disk.source.disk",
    ))

    def __init__(self, settings):
        self.client = LxdClient(
            url=settings.get("url"),
            client_cert=settings.get("client_cert"),
            client_key=settings.get("client_key"),
            validate_certs=settings.get("validate_certs") is not False,
            ca_path=settings.get("ca_path"),
            project=settings.get("project"),
            target=settings.get("target"),
        )
        self._server = None

    def close(self):
        self.client.close()

    def server(self):
        """``GET /1.0`` (API extensions, auth), read once and only when a decision needs it."""
        if self._server is None:
            self._server = self.client.get("/1.0")
        return self._server

    def _path(self, name, *rest):
        return "/".join(["/1.0/instances", self.client.quote(name)] + list(rest))

    # -- validation -----------------------------------------------------------------------------

    def validate_instance(self, spec):
        if not NAME_RE.match(spec["name"]):
            raise InvalidInput("name %r is not a valid LXD instance name (letters, digits and hyphens, at most 63, starting with a letter, "
                               "not ending with a hyphen)" % spec["name"])
        for key, value in spec["backend_options"].items():
            if key not in BACKEND_OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not an LXD option (use %s)" % (key, ", ".join(sorted(BACKEND_OPTION_TYPES))))
            if not isinstance(value, BACKEND_OPTION_TYPES[key]):
                raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, BACKEND_OPTION_TYPES[key].__name__, value))
        for index, network in enumerate(spec["networks"] or ()):
            if not network.get("name"):
                raise InvalidInput("networks[%d].name is required by the lxd backend (the LXD network or bridge)" % index)
        if spec["image"] and ":" in spec["image"] and "source" not in spec["backend_options"]:
            remote = spec["image"].split(":", 1)[0]
            if remote not in REMOTES:
                raise InvalidInput("image %r names an unknown remote %r (known: %s; for another server set backend_options.source)" % (
                    spec["image"], remote, ", ".join(sorted(REMOTES))))

    # -- reading --------------------------------------------------------------------------------

    def get_instance(self, name):
        # recursion=1 returns config, devices, state and snapshots in one read (instance_get_full).
        raw = self.client.get_or_none(self._path(name), query={"recursion": 1})
        if raw is not None and "state" not in raw:  # servers without instance_get_full
            raw["state"] = self.client.get(self._path(name, "state"))
        return raw

    def list_instances(self, filters=None):
        return self.client.get("/1.0/instances", query={"recursion": 2}) or []

    def describe_instance(self, raw):
        settings = self.current_settings(raw)
        addresses = global_addresses(raw)
        location = raw.get("location")
        return instance_result(
            raw["name"],
            self.name,
            id=raw["name"],
            type="container" if raw.get("type") == "container" else "vm",
            state=STATUS.get(raw.get("status"), "pending"),
            cpus=settings["cpus"],
            memory_mib=settings["memory_mib"],
            disk_gib=settings["disk_gib"],
            image=raw["expanded_config"].get("image.description") or raw["expanded_config"].get("volatile.base_image"),
            description=raw.get("description") or None,
            addresses=addresses,
            networks=[dict(network, addresses=nic_addresses(raw, network["device"])) for network in settings["networks"]],
            location=None if location in (None, "", "none") else location,
            tags=settings["tags"],
            backend_data=public_data(raw),
        )

    def current_settings(self, raw):
        config = raw.get("expanded_config") or {}
        devices = raw.get("expanded_devices") or {}
        settings = {
            "cpus": _int_or_raw(config.get("limits.cpu")),
            "memory_mib": size_or_raw(config.get("limits.memory"), MIB),
            "disk_gib": size_or_raw(root_device(devices).get("size"), GIB),
            "description": raw.get("description") or None,
            "tags": sorted(filter(None, config.get(TAGS_KEY, "").split(","))),
            "networks": [_network_view(device, devices[device], config) for device in sorted(devices) if devices[device].get("type") == "nic"],
            "cloud_init.user_data": config.get("cloud-init.user-data", config.get("user.user-data")),
            "cloud_init.network_config": config.get("cloud-init.network-config", config.get("user.network-config")),
            "profiles": raw.get("profiles") or [],
        }
        settings.update(("config." + key, value) for key, value in config.items())
        settings.update(("devices." + key, value) for key, value in devices.items())
        return settings

    def desired_settings(self, spec):
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

    def create_instance(self, spec, deadline):
        options = spec["backend_options"]
        source = dict(options.get("source") or image_source(spec["image"]))
        if "source" not in options:
            self._check_image(spec["image"], source)
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
        return self.get_instance(spec["name"])

    def _apply_spec(self, body, spec, origin):
        """Write cloud-init and the settings of ``spec`` into a creation ``body`` (``origin``: the copied instance)."""
        cloud_init_keys = ("cloud-init.user-data", "cloud-init.network-config")
        if (spec["user_data"] or spec["network_config"]) and "cloud_init" not in self.server().get("api_extensions", []):
            cloud_init_keys = ("user.user-data", "user.network-config")  # LXD before the cloud_init extension
        if spec["user_data"]:
            body["config"][cloud_init_keys[0]] = spec["user_data"]
        if spec["network_config"]:
            body["config"][cloud_init_keys[1]] = spec["network_config"]
        changes = self.desired_settings(dict(spec, description=None))
        if "disk_gib" in changes:
            body["devices"]["root"] = self._root_for_size(origin, changes.pop("disk_gib"), body.get("profiles"))
        self._apply(body, changes, expanded_devices=(origin or {}).get("expanded_devices") or {})

    def _check_image(self, image, source):
        """A local alias or fingerprint that does not exist fails here, before anything is created."""
        if "server" in source:
            return
        if "fingerprint" in source:
            found = self.client.get_or_none("/1.0/images/" + source["fingerprint"])
        else:
            found = self.client.get_or_none("/1.0/images/aliases/" + self.client.quote(source["alias"]))
        if found is None:
            raise InvalidInput("image %r was not found on the LXD server (project %s)" % (image, self.client.project))

    def _root_for_size(self, raw, disk_gib, profiles):
        if raw is not None:
            root = dict(root_device(raw.get("expanded_devices") or {}))
        else:
            root = {}
            for profile in profiles or ["default"]:
                found = root_device((self.client.get("/1.0/profiles/" + self.client.quote(profile)) or {}).get("devices") or {})
                root = dict(found) if found else root
        if not root.get("pool"):
            raise InvalidInput("disk_size needs a root disk device with a storage pool in the instance's profiles")
        root.update({"type": "disk", "path": "/", "size": "%dGiB" % disk_gib})
        return root

    def check_update(self, raw, changes):
        if "disk_gib" in changes:
            current = self.current_settings(raw)["disk_gib"]
            if isinstance(current, int) and changes["disk_gib"] < current:
                raise InvalidInput("disk_size %dGiB is smaller than the current %dGiB; disks only grow" % (changes["disk_gib"], current))

    def update_instance(self, raw, changes, deadline):
        body = put_body(raw)
        changes = dict(changes)
        if "disk_gib" in changes:
            body["devices"]["root"] = self._root_for_size(raw, changes.pop("disk_gib"), None)
        self._apply(body, changes, raw.get("expanded_devices") or {})
        self.client.run("PUT", self._path(raw["name"]), body, timeout=deadline.remaining())
        return self.get_instance(raw["name"])

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
                config[TAGS_KEY] = ",".join(value)
            elif key == "networks":
                _replace_nics(devices, expanded_devices, value)
            elif key == "profiles":
                body["profiles"] = value
            elif key.startswith("config."):
                config[key[len("config."):]] = value
            elif key.startswith("devices."):
                devices[key[len("devices."):]] = value

    def power(self, raw, action, force, deadline):
        body = {"action": POWER_ACTIONS[action], "force": bool(force)}
        if action in ("stop", "restart") and not force:
            body["timeout"] = max(1, int(deadline.remaining()))
        self.client.run("PUT", self._path(raw["name"], "state"), body, timeout=deadline.remaining())
        return self.get_instance(raw["name"])

    def delete_instance(self, raw, force, deadline):
        if raw.get("status") in ("Running", "Frozen"):
            self.power(raw, "stop", force or raw.get("status") == "Frozen", deadline)
        try:
            self.client.run("DELETE", self._path(raw["name"]), timeout=deadline.remaining())
        except NotFound:
            pass  # gone already: the goal is reached

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(self, name, condition, deadline, raw=None):
        if condition == "cloud_init":
            return self._wait_cloud_init(name, deadline)
        holds, what = WAIT_CONDITIONS[condition]
        what = what % name
        if raw is not None and holds(raw):
            return raw, None  # what we read already answers: no extra API call on idempotent runs

        def check():
            current = self.get_instance(name)
            return current if current is not None and holds(current) else None

        return poll(check, deadline, what), None

    def _wait_cloud_init(self, name, deadline):
        code, out, err = self.execute(name, ["cloud-init", "status", "--wait", "--long"], deadline.remaining())
        report = {"exit_code": code, "status": _cloud_init_status(out), "output": out.strip()}
        if code == 127 or (code != 0 and not out and "cloud-init" in err):
            raise OperationFailed("cloud-init is not installed in instance %s (%s)" % (name, err.strip() or "exit code %s" % code))
        if code == 1 or report["status"] == "error":
            raise OperationFailed("cloud-init finished with an error in instance %s: %s" % (name, out.strip() or err.strip()), result={"cloud_init": report})
        return self.get_instance(name), report

    def execute(self, name, command, timeout):
        """Run ``command`` in the instance without websockets; return (exit code, stdout, stderr)."""
        body = {"command": command, "environment": {}, "wait-for-websocket": False, "record-output": True, "interactive": False}
        operation = self.client.request("POST", self._path(name, "exec"), body)
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

    def rename_instance(self, raw, name, deadline):
        self.client.run("POST", self._path(raw["name"]), {"name": name}, timeout=deadline.remaining())
        return self.get_instance(name)

    # -- clones ---------------------------------------------------------------------------------

    def check_clone(self, source_raw, spec, clone):
        if clone["mode"] == "linked":
            pool = root_device(source_raw.get("expanded_devices") or {}).get("pool")
            driver = (self.client.get_or_none("/1.0/storage-pools/" + self.client.quote(pool or "")) or {}).get("driver")
            if driver not in COW_POOL_DRIVERS:
                raise Unsupported("mode=linked clones is not supported by the lxd backend on storage pool %s (driver %s); LXD makes copy-on-write "
                                  "copies only on %s pools, and a full copy otherwise" % (pool, driver, ", ".join(COW_POOL_DRIVERS)))
        if clone["target"] and not (self.server().get("environment") or {}).get("server_clustered"):
            raise InvalidInput("target %r is an LXD cluster member, and this LXD server is not clustered" % clone["target"])

    def clone_instance(self, source_raw, spec, clone, deadline):
        origin = source_raw
        source = source_raw["name"]
        if clone["snapshot"]:
            origin = [item for item in source_raw.get("snapshots") or [] if item["name"].split("/")[-1] == clone["snapshot"]][0]
            source = "%s/%s" % (source_raw["name"], clone["snapshot"])
        body = {
            "name": spec["name"],
            "type": source_raw.get("type") or "container",
            "source": {"type": "copy", "source": source, "instance_only": True},
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
        return self.get_instance(spec["name"])


def is_running(raw):
    return raw.get("status") == "Running"


def has_address(raw):
    return any(global_addresses(raw).values())


# wait_for conditions that a read of the instance answers: (test, what is awaited).
WAIT_CONDITIONS = {"running": (is_running, "instance %s to run"), "ip": (has_address, "an IP address on instance %s")}


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
            if address.get("scope") != "global":
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
    return size // unit if size % unit == 0 else round(size / float(unit), 2)


def _cloud_init_status(output):
    for line in output.splitlines():
        if line.startswith("status:"):
            return line.split(":", 1)[1].strip()
    return None
