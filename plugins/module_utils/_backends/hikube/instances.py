# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hikube instances: one ``VMInstance`` application plus its system ``VMDisk``.

What shapes this code (research/hikube.md): reads come back with the chart's defaults filled in, so only
the keys a user set are compared; the application has no ``observedGeneration``, so a Ready=True read
after a change may be stale and only a Ready that changed after our request counts; tenants cannot read
VirtualMachineInstances, so addresses come from the LoadBalancer Service or the virt-launcher pod.
"""

from __future__ import annotations

import json
import re

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import LIVE, ON_RESTART, Instances
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.client import APPS, CORE, KUBEVIRT, SUBRESOURCES, KubeAuthError, KubeExists
from ansible_collections.polyvirt.compute.plugins.module_utils._cloud_init import CLOUD_CONFIG_HEADER, _yaml
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, OperationFailed, PolyvirtError, Unsupported, WaitTimeout
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, MIB, in_unit, instance_result, parse_size
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline, poll

INSTANCE_PREFIX = "vm-instance-"
DISK_PREFIX = "vm-disk-"
# Cozystack names the Helm release <prefix><name>, and a release name has at most 53 characters.
INSTANCE_NAME_MAX = 53 - len(INSTANCE_PREFIX)
DISK_NAME_MAX = 53 - len(DISK_PREFIX)
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
TAG_PREFIX = "tags.polyvirt.io/"  # one label per tag that is a valid label name, so lists can select by tag
TAGS = "polyvirt.io/tags"  # every tag, as a JSON list (a tag may be no label name: "x,y")
DESCRIPTION = "polyvirt.io/description"
SYSTEM_DISK = "polyvirt.io/system-disk"  # on the VMInstance: the name of its system disk
SYSTEM_DISK_OF = "polyvirt.io/system-disk-of"  # on a VMDisk this backend made: the instance it belongs to
DEFAULT_STORAGE_CLASS = "replicated"
# How long an object that the API says exists may stay unreadable (Cozystack serves reads from an informer cache).
READ_LAG_SECONDS = 10
FAILED_REASONS = ("InstallFailed", "UpgradeFailed")
OPTION_TYPES = {"profile": str, "storage_class": str, "system_disk": str, "external": bool, "external_method": str, "external_ports": list}
EXTERNAL_METHODS = ("PortList", "WholeIP")
# Golden image families whose KubeVirt preference (instanceProfile) is plain from the name.
PROFILES = {"ubuntu": "ubuntu", "fedora": "fedora", "alpine": "alpine", "cirros": "cirros", "opensuse": "opensuse.leap",
            "centos-stream": "centos.stream%s", "rocky": "rhel.%s", "almalinux": "rhel.%s", "oracle": "rhel.%s", "rhel": "rhel.%s"}
DEFAULT_MAJOR = {"centos-stream": "9", "rocky": "9", "almalinux": "9", "oracle": "9", "rhel": "9"}
# Settings a running VM reads at its next start (a KubeVirt template change; the chart does not restart it).
RESTART_KEYS = ("cpus", "memory_mib", "networks", "ssh_keys", "profile")
# Flux's kstatus wait (Cozystack 1.5+) gave up on these objects: "... timeout waiting for: [Kind/ns/name status: 'InProgress', ...]".
KSTATUS_TIMEOUT = re.compile(r"timeout waiting for: \[([^\]]*)\]")
# helm-controller's Ready while an upgrade runs (and, under kstatus, while it waits for the VM).
UPGRADE_RUNNING = "Running 'upgrade' action"
KSTATUS_NOTE = ("on Cozystack 1.5 and later Flux's kstatus wait reads the VM as InProgress until then, so the Helm release of instance %s "
                "shows Ready=Unknown and, after Helm's 10-minute timeout, UpgradeFailed (retried by Flux); the change itself is stored")


def validate_name(name, option, limit, what):
    if not DNS1035.match(name) or len(name) > limit:
        raise InvalidInput("%s %r is not a valid %s name on Hikube: lower-case letters, digits and hyphens, starting with a letter, not ending "
                           "with a hyphen, at most %d characters (Cozystack's release name %s<name> is limited to 53)" % (
                               option, name, what, limit, INSTANCE_PREFIX if what == "VMInstance" else DISK_PREFIX))
    return name


def system_disk_name(spec):
    return spec["backend_options"].get("system_disk") or spec["name"] + "-system"


def derive_profile(image):
    """The instanceProfile obvious from a golden image name (``ubuntu``, ``rocky-9``), or None."""
    match = re.match(r"^([a-z]+(?:-stream)?)(?:-?(\d+))?", image or "")
    if not match or match.group(1) not in PROFILES:
        return None
    family, major = match.group(1), match.group(2)
    profile = PROFILES[family]
    return profile % (major or DEFAULT_MAJOR[family]) if "%s" in profile else profile


def is_url(image):
    return image.startswith(("http://", "https://"))


def split_user_data(text):
    """(cloudInit, sshKeys) from the rendered user-data: keys alone go to ``sshKeys``, anything more stays user-data."""
    if text is None:
        return None, None
    if text.startswith(CLOUD_CONFIG_HEADER + "\n"):
        body = text[len(CLOUD_CONFIG_HEADER) + 1:]
        yaml = _yaml()
        try:
            data = yaml.safe_load(body) if yaml is not None else json.loads(body)
        except Exception:  # pylint: disable=broad-except  # any parse failure: keep it as user-data
            data = None
        if isinstance(data, dict) and list(data) == ["ssh_authorized_keys"] and isinstance(data["ssh_authorized_keys"], list):
            return None, [str(key) for key in data["ssh_authorized_keys"]]
    return text, None


def get_condition(app, kind):
    for item in (app.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def ready_mark(app):
    """What identifies the Ready condition as it is now; a later Ready with another mark is a new one."""
    ready = get_condition(app or {}, "Ready")
    if ready is None:
        return None
    return [ready.get("status"), ready.get("reason"), ready.get("message"), ready.get("lastTransitionTime")]


def run_field(spec):
    """``runStrategy`` on Cozystack 1.0 and later (the defaulted spec has it), ``running`` on older servers."""
    return "runStrategy" if "runStrategy" in spec or "running" not in spec else "running"


def wants_running(spec):
    if run_field(spec) == "runStrategy":
        return spec.get("runStrategy") != "Halted"
    return spec.get("running") is not False


def run_value(spec, running):
    if run_field(spec) == "runStrategy":
        return {"runStrategy": "Always" if running else "Halted"}
    return {"running": bool(running)}


def waits_only_on_its_vm(app):
    """Whether the release failed only because Flux's kstatus wait timed out on the instance's own VirtualMachine.

    KubeVirt keeps a VM's observedGeneration behind its generation while it is halted or while a template change
    awaits a restart; kstatus reads that as InProgress, so the upgrade "fails" although everything was applied.
    """
    ready = get_condition(app or {}, "Ready") or {}
    if ready.get("status") != "False" or ready.get("reason") != "UpgradeFailed":
        return False
    match = KSTATUS_TIMEOUT.search(ready.get("message") or "")
    if not match:
        return False
    meta = app.get("metadata") or {}
    own = "VirtualMachine/%s/%s%s status: 'InProgress'" % (meta.get("namespace"), INSTANCE_PREFIX, meta.get("name"))
    items = [item.strip() for item in match.group(1).split(",") if item.strip()]
    return bool(items) and all(item == own for item in items)


def release_failed(app):
    """The Ready condition of a release that really failed (a chart error, a timeout on anything but its own VM), else None."""
    ready = get_condition(app or {}, "Ready") or {}
    if ready.get("status") == "False" and ready.get("reason") in FAILED_REASONS and not waits_only_on_its_vm(app):
        return ready
    return None


def upgrade_waiting(app):
    ready = get_condition(app or {}, "Ready") or {}
    return ready.get("status") == "Unknown" and (ready.get("message") or "").startswith(UPGRADE_RUNNING)


def vm_restart_required(vm):
    """KubeVirt's RestartRequired: the running VM's template changed in a way it reads only at its next start."""
    return any(item.get("type") == "RestartRequired" and item.get("status") == "True"
               for item in ((vm or {}).get("status") or {}).get("conditions") or [])


def app_state(app):
    """running, stopped, pending or error, from the application alone (no read of KubeVirt objects)."""
    if (app.get("metadata") or {}).get("deletionTimestamp"):
        return "pending"
    if release_failed(app) is not None:
        return "error"
    workloads = get_condition(app, "WorkloadsReady") or {}
    if workloads.get("status") == "True":
        return "running"
    return "pending" if wants_running(app.get("spec") or {}) else "stopped"


def quantity_bytes(value, option):
    if value is None or value == "":
        return None
    try:
        return parse_size(str(value), option, "B")
    except InvalidInput:
        return None


def cpu_count(resources):
    cores, sockets = str(resources.get("cpu") or ""), str(resources.get("sockets") or "1")
    if cores.isdigit() and sockets.isdigit():
        return int(cores) * int(sockets)
    return None


def redacted(app):
    """The application without what may hold secrets (cloud-init user-data carries password hashes)."""
    if not app:
        return {}
    data = dict(app)
    spec = dict(data.get("spec") or {})
    for key in ("cloudInit", "cloudInitSeed"):
        if spec.get(key):
            spec[key] = "(hidden)"
    data["spec"] = spec
    metadata = dict(data.get("metadata") or {})
    metadata.pop("managedFields", None)
    data["metadata"] = metadata
    return data


def pod_addresses(pods):
    """Addresses of the instance's live virt-launcher pods (bridge binding: the guest gets the pod IP)."""
    result = {"ipv4": [], "ipv6": []}
    for pod in pods or []:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        status = pod.get("status") or {}
        ips = [item.get("ip") for item in status.get("podIPs") or [] if item.get("ip")] or ([status["podIP"]] if status.get("podIP") else [])
        for ip in ips:
            key = "ipv6" if ":" in ip else "ipv4"
            if ip not in result[key]:
                result[key].append(ip)
    return result


def service_addresses(service):
    result = {"ipv4": [], "ipv6": []}
    for item in ((service or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
        ip = item.get("ip")
        if ip:
            result["ipv6" if ":" in ip else "ipv4"].append(ip)
    return result


def tag_labels(tags, current):
    """The tag labels for ``tags`` (a merge patch: labels of tags no longer wanted become None)."""
    labels = dict((key, None) for key in current if key.startswith(TAG_PREFIX))
    labels.update((TAG_PREFIX + tag, "true") for tag in tags if LABEL_NAME.match(tag))
    return labels


def read_tags(text, labels):
    if text:
        try:
            return sorted(json.loads(text))
        except (ValueError, TypeError):
            pass
    return sorted(key[len(TAG_PREFIX):] for key in labels or {} if key.startswith(TAG_PREFIX))


def pod_ready(pod):
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and any(
        item.get("type") == "Ready" and item.get("status") == "True" for item in (pod.get("status") or {}).get("conditions") or [])


class HikubeInstances(Instances):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client

    # -- paths ----------------------------------------------------------------------------------

    def app_path(self, name=None):
        return self.client.ns_path(APPS, "vminstances", name)

    def disk_path(self, name=None):
        return self.client.ns_path(APPS, "vmdisks", name)

    # -- validation -----------------------------------------------------------------------------

    def validate(self, spec):
        validate_name(spec["name"], "name", INSTANCE_NAME_MAX, "VMInstance")
        options = spec["backend_options"]
        for key, value in options.items():
            if key not in OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not a Hikube instance option (use %s)" % (key, ", ".join(sorted(OPTION_TYPES))))
            if not isinstance(value, OPTION_TYPES[key]):
                raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, OPTION_TYPES[key].__name__, value))
        validate_name(system_disk_name(spec), "backend_options.system_disk" if options.get("system_disk") else "the system disk (name + '-system')",
                      DISK_NAME_MAX, "VMDisk")
        if options.get("external_method") is not None and options["external_method"] not in EXTERNAL_METHODS:
            raise InvalidInput("backend_options.external_method must be one of %s, got %r" % (", ".join(EXTERNAL_METHODS), options["external_method"]))
        for index, port in enumerate(options.get("external_ports") or []):
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise InvalidInput("backend_options.external_ports[%d] must be a port number (1-65535), got %r" % (index, port))
        if spec["flavor"] is not None and (spec["cpus"] is not None or spec["memory_mib"] is not None):
            raise InvalidInput("flavor %r and cpus/memory exclude each other on the hikube backend: an instanceType fixes both (leave flavor out to "
                               "set resources)" % spec["flavor"])
        for index, network in enumerate(spec["networks"] or ()):
            if not network.get("name"):
                raise InvalidInput("networks[%d].name is required by the hikube backend (the network attachment)" % index)
            for key in ("mac", "ipv6"):
                if network.get(key):
                    raise InvalidInput("networks[%d].%s is not supported by the hikube backend: a Cozystack VMInstance's networks take a name only" % (
                        index, key))
            if network.get("ipv4") not in (None, "dhcp"):
                raise InvalidInput("networks[%d].ipv4 %r is not supported by the hikube backend: addresses come from the network (dhcp)" % (
                    index, network["ipv4"]))
        if spec["network_config"] is not None:
            raise Unsupported("cloud_init.network_config is not supported by the hikube backend (a VMInstance takes cloud-init user-data only)")
        image = spec["image"]
        if image and not is_url(image) and not DNS1035.match(image.replace(".", "-")):
            raise InvalidInput("image %r must be a golden image name (such as ubuntu) or an http(s) URL" % image)

    # -- reading --------------------------------------------------------------------------------

    def get(self, name, runtime=False):
        try:
            app = self.client.get_or_none(self.app_path(name))
        except KubeAuthError as exc:
            raise self.backend.refused(exc)
        if app is None:
            self.backend.check_namespace()
            return None
        return self._read(app, runtime)

    def _read(self, app, runtime):
        disk = self.client.get_or_none(self.disk_path(self._system_disk(app)))
        pods = service = None
        if runtime:
            pods, service = self._runtime(app)
        return self.describe(app, disk, pods, service)

    def _runtime(self, app):
        """The Service when the instance is external (its address is the one to connect to), else its pods."""
        release = INSTANCE_PREFIX + app["metadata"]["name"]
        if (app.get("spec") or {}).get("external"):
            return None, self.client.get_or_none(self.client.ns_path(CORE, "services", release))
        return self._pods(release), None

    def _pods(self, release):
        return self.client.get(self.client.ns_path(CORE, "pods"), query={"labelSelector": "vm.kubevirt.io/name=" + release}).get("items") or []

    @staticmethod
    def _system_disk(app):
        annotations = (app.get("metadata") or {}).get("annotations") or {}
        if annotations.get(SYSTEM_DISK):
            return annotations[SYSTEM_DISK]
        disks = (app.get("spec") or {}).get("disks") or []
        return disks[0].get("name") if disks and isinstance(disks[0], dict) else app["metadata"]["name"] + "-system"

    def list(self, filters=None):
        tags = (filters or {}).get("tags") or []
        tags = [tags] if isinstance(tags, str) else tags
        # Every tag is a label: the server filters (the caller filters again, so a tag that is no label name just matches nothing here).
        selector = ",".join(TAG_PREFIX + tag for tag in tags if LABEL_NAME.match(tag))
        query = {"labelSelector": selector} if selector else None
        try:
            apps = self.client.get(self.app_path(), query=query).get("items") or []
        except KubeAuthError as exc:
            raise self.backend.refused(exc)
        if not apps:
            self.backend.check_namespace()
            return []
        disks = dict((disk["metadata"]["name"], disk) for disk in self.client.get(self.disk_path()).get("items") or [])
        pods = self.client.get(self.client.ns_path(CORE, "pods"), query={"labelSelector": "kubevirt.io=virt-launcher"}).get("items") or []
        by_vm = {}
        for pod in pods:
            by_vm.setdefault(((pod.get("metadata") or {}).get("labels") or {}).get("vm.kubevirt.io/name"), []).append(pod)
        services = {}
        if any((app.get("spec") or {}).get("external") for app in apps):
            # An external instance is reached at its Service's address (as get(runtime=True) reads it): one more list, not one per VM.
            services = dict((item["metadata"]["name"], item) for item in self.client.get(self.client.ns_path(CORE, "services")).get("items") or [])
        return [self.describe(app, disks.get(self._system_disk(app)), by_vm.get(INSTANCE_PREFIX + app["metadata"]["name"], []),
                              services.get(INSTANCE_PREFIX + app["metadata"]["name"]) if (app.get("spec") or {}).get("external") else None)
                for app in apps]

    def describe(self, app, disk, pods=None, service=None, request=None):
        meta = app.get("metadata") or {}
        spec = app.get("spec") or {}
        settings = self._settings(app, disk)
        addresses = {"ipv4": [], "ipv6": []}
        for found in (service_addresses(service), pod_addresses(pods)):
            for key in addresses:
                addresses[key].extend(ip for ip in found[key] if ip not in addresses[key])
        nodes = sorted(set(((pod.get("spec") or {}).get("nodeName")) for pod in pods or [] if (pod.get("spec") or {}).get("nodeName")))
        disk_spec = (disk or {}).get("spec") or {}
        source = disk_spec.get("source") or {}
        image = (source.get("image") or {}).get("name") or (source.get("http") or {}).get("url")
        data = {"vminstance": redacted(app), "vmdisk": disk or {}, "release": INSTANCE_PREFIX + meta.get("name", "")}
        workloads = get_condition(app, "WorkloadsReady") or {}
        # Flux gave up waiting on a VM that runs: it runs an older template than its spec (a change awaits its restart).
        restart_required = wants_running(spec) and workloads.get("status") == "True" and waits_only_on_its_vm(app)
        if spec.get("external") and spec.get("externalMethod") == "WholeIP":
            data["warnings"] = ["externalMethod WholeIP forwards every port of the public address to the VM (no cozy-proxy port filter)"]
        return instance_result(
            meta.get("name"),
            self.backend.name,
            id=meta.get("uid"),
            type="vm",
            state=app_state(app),
            cpus=settings["cpus"],
            memory_mib=settings["memory_mib"],
            disk_gib=settings["disk_gib"],
            image=image,
            description=settings["description"],
            addresses=addresses,
            networks=settings["networks"],
            location=nodes[0] if nodes else None,
            tags=settings["tags"],
            backend_data=data,
            restart_required=restart_required,
            _native=app,
            _disk=disk,
            _request=request,
        )

    def settings(self, instance):
        return self._settings(instance["_native"], instance.get("_disk"))

    @staticmethod
    def _settings(app, disk):
        meta = app.get("metadata") or {}
        spec = app.get("spec") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        resources = spec.get("resources") or {}
        flavor = spec.get("instanceType") or None
        memory = None if flavor else quantity_bytes(resources.get("memory"), "resources.memory")
        size = quantity_bytes(((disk or {}).get("spec") or {}).get("storage"), "storage")
        return {
            "flavor": flavor,
            "cpus": None if flavor else cpu_count(resources),
            "memory_mib": in_unit(memory, MIB),
            "disk_gib": in_unit(size, GIB),
            "description": annotations.get(DESCRIPTION),
            "tags": read_tags(annotations.get(TAGS), labels),
            "networks": [{"name": item.get("name")} for item in spec.get("networks") or [] if isinstance(item, dict)],
            "ssh_keys": list(spec.get("sshKeys") or []),
            "profile": spec.get("instanceProfile"),
            "external": spec.get("external"),
            "external_method": spec.get("externalMethod"),
            "external_ports": spec.get("externalPorts"),
            "cloud_init.user_data": spec.get("cloudInit") or None,
        }

    def desired(self, spec):
        desired = {}
        for key in ("flavor", "cpus", "memory_mib", "disk_gib", "description", "tags"):
            if spec[key] is not None:
                desired[key] = spec[key]
        if spec["networks"] is not None:
            desired["networks"] = [{"name": network["name"]} for network in spec["networks"]]
        keys = split_user_data(spec["user_data"])[1]
        if keys is not None:
            desired["ssh_keys"] = keys
        options = spec["backend_options"]
        for key in ("profile", "external", "external_method", "external_ports"):
            if key in options:
                desired[key] = options[key]
        return desired

    # -- checks before any change -----------------------------------------------------------------

    def _check_option(self, source, value, option, what, hint=""):
        values = self.backend.options(source)
        if values is not None and value not in values:
            raise InvalidInput("%s %r is not %s of this cluster (available: %s)%s" % (option, value, what, ", ".join(sorted(values)) or "none", hint))

    def profile_for(self, spec):
        options = spec["backend_options"]
        if options.get("profile"):
            return options["profile"]
        profile = None if is_url(spec["image"]) else derive_profile(spec["image"])
        if profile is None:
            raise InvalidInput("backend_options.profile is required for image %r: the hikube backend cannot tell its instanceProfile (the KubeVirt "
                               "preference, such as ubuntu, fedora or rhel.9) from the image" % spec["image"])
        return profile

    def check_create(self, spec):
        if spec["flavor"] is None and (spec["cpus"] is None) != (spec["memory_mib"] is None):
            raise InvalidInput("cpus and memory go together on the hikube backend when no flavor is set: a VM's resources need both (or set flavor "
                               "to an instanceType)")
        if spec["flavor"] is not None:
            self._check_option("instancetype", spec["flavor"], "flavor", "an instanceType")
        self._check_option("instanceprofile", self.profile_for(spec), "backend_options.profile", "an instanceProfile")
        if not is_url(spec["image"]):
            self._check_option("image", spec["image"], "image", "a golden image", "; use an http(s) URL for any other image")
        storage_class = spec["backend_options"].get("storage_class")
        if storage_class:
            self._check_option("storageclass", storage_class, "backend_options.storage_class", "a storage class")

    def check_update(self, instance, changes):
        current = self.settings(instance)
        if "disk_gib" in changes and isinstance(current["disk_gib"], (int, float)) and changes["disk_gib"] < current["disk_gib"]:
            raise InvalidInput("disk_size %dGiB is smaller than the current %sGiB; disks only grow" % (changes["disk_gib"], current["disk_gib"]))
        if "disk_gib" in changes and instance.get("_disk") is None:
            raise InvalidInput("disk_size cannot change: the system disk %s of instance %s does not exist" % (
                self._system_disk(instance["_native"]), instance["name"]))
        if "flavor" in changes:
            self._check_option("instancetype", changes["flavor"], "flavor", "an instanceType")
        if "profile" in changes:
            self._check_option("instanceprofile", changes["profile"], "backend_options.profile", "an instanceProfile")
        if ("cpus" in changes or "memory_mib" in changes) and current["flavor"]:
            missing = [key for key in ("cpus", "memory_mib") if key not in changes]
            if missing:
                raise InvalidInput("instance %s uses the instanceType %s; to give it resources instead set both cpus and memory" % (
                    instance["name"], current["flavor"]))

    def effects(self, instance, changes):
        running = instance["state"] in ("running", "pending")
        return dict((key, ON_RESTART if running and key in RESTART_KEYS else LIVE) for key in changes)

    # -- changing -------------------------------------------------------------------------------

    def create(self, spec, deadline):
        disk_name = system_disk_name(spec)
        made_disk = self._ensure_system_disk(spec, disk_name, deadline)
        body = {
            "apiVersion": "apps.cozystack.io/v1alpha1",
            "kind": "VMInstance",
            "metadata": {"name": spec["name"], "labels": tag_labels(spec["tags"] or [], {}), "annotations": {SYSTEM_DISK: disk_name}},
            "spec": {"disks": [{"name": disk_name}], "instanceProfile": self.profile_for(spec), "runStrategy": "Halted"},
        }
        if spec["description"] is not None:
            body["metadata"]["annotations"][DESCRIPTION] = spec["description"]
        if spec["tags"]:
            body["metadata"]["annotations"][TAGS] = json.dumps(spec["tags"])
        self._write_settings(body["spec"], self.desired(spec), {})  # ssh_keys alone included, as sshKeys
        user_data = split_user_data(spec["user_data"])[0]
        if user_data:
            body["spec"]["cloudInit"] = user_data
        try:
            app = self.client.create(self.app_path(), body, timeout=deadline.remaining())
        except KubeExists:
            # Another task's, or ours before a GET that Cozystack answered from a lagging informer cache: wait until a
            # read shows it (briefly), so that the reconciler converges on it instead of failing.
            self._readable(spec["name"], deadline)
            raise Conflict("instance %s exists already" % spec["name"])
        except PolyvirtError:
            if made_disk:  # nothing half-made: the disk was only for this instance
                self._delete_disk(disk_name, deadline)
            raise
        if "running" in (app.get("spec") or {}):
            # Only a server before Cozystack 1.0 fills in `running` (we never send it); it ignores runStrategy, and its
            # default running: true would start the VM.
            app = self.client.patch(self.app_path(spec["name"]), {"spec": {"runStrategy": None, "running": False}}, timeout=deadline.remaining())
        return self.describe(app, self.client.get_or_none(self.disk_path(disk_name)))

    # -- cloning --------------------------------------------------------------------------------

    @staticmethod
    def _disk_names(app):
        return [item["name"] for item in (app.get("spec") or {}).get("disks") or [] if isinstance(item, dict) and item.get("name")]

    def _clone_plan(self, source, spec):
        """[(source disk, copy name)]: the system disk becomes the clone's system disk, any other ``<clone>-<disk>``."""
        system = self._system_disk(source["_native"])
        plan = []
        for disk in self._disk_names(source["_native"]) or [system]:
            copy = system_disk_name(spec) if disk == system else "%s-%s" % (spec["name"], disk)
            validate_name(copy, "the copy of disk %s (name + '-' + disk)" % disk, DISK_NAME_MAX, "VMDisk")
            plan.append((disk, copy))
        return plan

    def check_clone(self, source, spec, clone):
        # CDI does not clone a PVC a running VM uses: the copy would wait (CloneSourceInUse) until the source stops.
        if source["state"] != "stopped":
            raise Conflict("instance %s is %s: Hikube copies a VM's disks with CDI, which does not clone a disk a running VM uses "
                           "(CloneSourceInUse); stop it first (state: stopped)" % (source["name"], source["state"]))
        taken = [copy for disk, copy in self._clone_plan(source, spec) if self.client.get_or_none(self.disk_path(copy)) is not None]
        if taken:
            raise Conflict("clone %s would copy the disks of %s to %s, which exist already" % (spec["name"], source["name"], ", ".join(taken)))
        if spec["flavor"] is not None:
            self._check_option("instancetype", spec["flavor"], "flavor", "an instanceType")
        if spec["backend_options"].get("profile"):
            self._check_option("instanceprofile", spec["backend_options"]["profile"], "backend_options.profile", "an instanceProfile")
        if spec["flavor"] is None and (spec["cpus"] is None) != (spec["memory_mib"] is None) and (source["_native"].get("spec") or {}).get("instanceType"):
            raise InvalidInput("instance %s uses the instanceType %s; to give its clone resources instead set both cpus and memory" % (
                source["name"], source["_native"]["spec"]["instanceType"]))

    def clone(self, source, spec, clone, deadline):
        """A VMDisk copy (``source.disk``) of each disk of ``source``, then a halted VMInstance on the copies with ``spec`` applied."""
        app = source["_native"]
        source_spec = app.get("spec") or {}
        made = []
        try:
            for disk, copy in self._clone_plan(source, spec):
                original = (self.client.get_or_none(self.disk_path(disk)) or {}).get("spec") or {}
                disk_spec = {"source": {"disk": {"name": disk}}}
                for key in ("storage", "storageClass", "optical"):
                    if original.get(key) not in (None, ""):
                        disk_spec[key] = original[key]
                if copy == system_disk_name(spec) and spec["disk_gib"] is not None:
                    disk_spec["storage"] = "%dGi" % spec["disk_gib"]
                labels = {SYSTEM_DISK_OF: spec["name"]} if copy == system_disk_name(spec) else {}
                self.client.create(self.disk_path(), {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "VMDisk",
                                                      "metadata": {"name": copy, "labels": labels}, "spec": disk_spec}, timeout=deadline.remaining())
                made.append(copy)
            copies = dict(self._clone_plan(source, spec))
            body_spec = dict((key, value) for key, value in source_spec.items() if key not in ("cloudInitSeed", "running", "runStrategy"))
            body_spec["disks"] = [dict(item, name=copies.get(item.get("name"), item.get("name"))) for item in source_spec.get("disks") or []
                                  if isinstance(item, dict)] or [{"name": system_disk_name(spec)}]
            body_spec.update(run_value(source_spec, False))
            self._write_settings(body_spec, self.desired(spec), source_spec)
            user_data = split_user_data(spec["user_data"])[0]
            if user_data:
                body_spec["cloudInit"] = user_data
            meta = app.get("metadata") or {}
            labels = dict((key, value) for key, value in (meta.get("labels") or {}).items() if key.startswith(TAG_PREFIX))
            annotations = dict((key, value) for key, value in (meta.get("annotations") or {}).items() if key in (TAGS, DESCRIPTION))
            annotations[SYSTEM_DISK] = system_disk_name(spec)
            if spec["tags"] is not None:
                labels = dict((key, value) for key, value in tag_labels(spec["tags"], labels).items() if value is not None)
                annotations[TAGS] = json.dumps(spec["tags"])
            if spec["description"] is not None:
                annotations[DESCRIPTION] = spec["description"]
            body = {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "VMInstance",
                    "metadata": {"name": spec["name"], "labels": labels, "annotations": annotations}, "spec": body_spec}
            created = self.client.create(self.app_path(), body, timeout=deadline.remaining())
        except PolyvirtError:
            for copy in made:  # nothing half-made: the copies were only for this clone
                self._delete_disk(copy, deadline)
            raise
        return self.describe(created, self.client.get_or_none(self.disk_path(system_disk_name(spec))))

    def _readable(self, name, deadline):
        lag = Deadline(min(READ_LAG_SECONDS, deadline.remaining()))
        try:
            poll(lambda: self.client.get_or_none(self.app_path(name)), lag, "instance %s to be readable" % name)
        except WaitTimeout:
            pass

    def _ensure_system_disk(self, spec, name, deadline):
        """Create the system disk first (the chart fails on a missing disk); an existing one is used as it is."""
        if self.client.get_or_none(self.disk_path(name)) is not None:
            return False
        source = {"http": {"url": spec["image"]}} if is_url(spec["image"]) else {"image": {"name": spec["image"]}}
        disk_spec = {"source": source, "storageClass": spec["backend_options"].get("storage_class") or DEFAULT_STORAGE_CLASS}
        if spec["disk_gib"] is not None:
            disk_spec["storage"] = "%dGi" % spec["disk_gib"]
        body = {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "VMDisk",
                "metadata": {"name": name, "labels": {SYSTEM_DISK_OF: spec["name"]}}, "spec": disk_spec}
        try:
            self.client.create(self.disk_path(), body, timeout=deadline.remaining())
        except KubeExists:
            return False  # made at the same moment by another task: use it
        return True

    @staticmethod
    def _write_settings(target, changes, current_spec):
        """Write normalised ``changes`` into a VMInstance spec (or a merge patch of one)."""
        if "flavor" in changes and changes["flavor"] is not None:
            target["instanceType"] = changes["flavor"]
            if current_spec.get("resources"):
                target["resources"] = None
        if changes.get("cpus") is not None or changes.get("memory_mib") is not None:
            resources = dict((key, value) for key, value in (current_spec.get("resources") or {}).items() if value not in (None, ""))
            if changes.get("cpus") is not None:
                resources.update({"cpu": str(changes["cpus"]), "sockets": "1"})
            resources.setdefault("sockets", "1")
            if changes.get("memory_mib") is not None:
                resources["memory"] = "%dMi" % changes["memory_mib"]
            target["instanceType"] = ""  # the chart uses resources only without an instanceType (whose default is u1.medium)
            target["resources"] = resources
        if changes.get("networks") is not None:
            target["networks"] = [{"name": network["name"]} for network in changes["networks"]]
        if changes.get("ssh_keys") is not None:
            target["sshKeys"] = list(changes["ssh_keys"])
        if changes.get("profile") is not None:
            target["instanceProfile"] = changes["profile"]
        for key, field in (("external", "external"), ("external_method", "externalMethod"), ("external_ports", "externalPorts")):
            if changes.get(key) is not None:
                target[field] = changes[key]

    def update(self, instance, changes, deadline):
        app = instance["_native"]
        name = instance["name"]
        patch = {"spec": {}}
        self._write_settings(patch["spec"], changes, app.get("spec") or {})
        if "description" in changes:
            patch.setdefault("metadata", {}).setdefault("annotations", {})[DESCRIPTION] = changes["description"]
        if "tags" in changes:
            patch.setdefault("metadata", {})["labels"] = tag_labels(changes["tags"], app["metadata"].get("labels") or {})
            patch["metadata"].setdefault("annotations", {})[TAGS] = json.dumps(changes["tags"])
        disk = instance.get("_disk")
        if "disk_gib" in changes:
            # The chart grows the PVC in a pre-upgrade hook; a smaller size would be ignored (refused in check_update).
            disk = self.client.patch(self.disk_path(disk["metadata"]["name"]), {"spec": {"storage": "%dGi" % changes["disk_gib"]}},
                                     timeout=deadline.remaining())
        if patch["spec"] or patch.get("metadata"):
            before = ready_mark(app)
            app = self.client.patch(self.app_path(name), patch, timeout=deadline.remaining())
            if not patch["spec"]:
                # Labels and annotations are not Helm values: no upgrade follows, so there is no new Ready to wait for.
                return self.describe(app, disk)
            # A change a running VM reads at its next start leaves KubeVirt's VirtualMachine "InProgress" to Flux's kstatus
            # (Cozystack 1.5+) until the restart: a wait must not expect a fresh Ready=True before it.
            restart = instance["state"] == "running" and any(key in RESTART_KEYS for key in changes)
            result = self.describe(app, disk, request={"ready": before, "since": "update", "restart_pending": restart})
            if restart:
                result["_restart_note"] = KSTATUS_NOTE % name
            return result
        return self.describe(app, disk)

    def power(self, instance, action, force, deadline):
        name = instance["name"]
        app = instance["_native"]
        spec = app.get("spec") or {}
        if action in ("pause", "resume"):
            raise Unsupported("state=paused is not supported by the hikube backend")
        if action == "restart":
            return self._restart(instance, deadline)
        running = action == "start"
        before = ready_mark(app)
        if wants_running(spec) == running:
            # Nothing to write (a failed release retried by Flux, or a VM still starting): wait on what is there.
            current = self.describe(app, instance.get("_disk"), request={"ready": None, "since": action})
            return self._wait_running(current, deadline) if running else current
        app = self.client.patch(self.app_path(name), {"spec": run_value(spec, running)}, timeout=deadline.remaining())
        if running:
            return self._wait_running(self.describe(app, instance.get("_disk"), request={"ready": before, "since": action}), deadline)
        # Stopping: Flux never calls the release Ready under kstatus (a halted VM is InProgress, then UpgradeFailed after
        # 10 minutes), so the VM is stopped once the application reports no ready virt-launcher pod (WorkloadsReady).

        def stopped(current):
            self._fail_on_release(current, before)
            return app_state(current) == "stopped"

        app = self._wait_app(name, stopped, deadline, "instance %s to stop (the application's WorkloadsReady no longer True)" % name)
        return self.describe(app, instance.get("_disk"))

    @staticmethod
    def _fail_on_release(app, before):
        """Raise when the release failed after our request (``before``: the Ready mark then; None: any failure counts)."""
        failed = release_failed(app)
        if failed is not None and (before is None or ready_mark(app) != before):
            raise OperationFailed("the Helm release of instance %s failed (%s): %s" % (app["metadata"]["name"], failed.get("reason"),
                                                                                       failed.get("message")))

    def _vm_restart_required(self, name):
        """KubeVirt's RestartRequired on the instance's VirtualMachine; None when this tenant may not read VMs."""
        try:
            vm = self.client.get_or_none(self.client.ns_path(KUBEVIRT, "virtualmachines", INSTANCE_PREFIX + name))
        except KubeAuthError:
            return None
        return vm_restart_required(vm) if vm is not None else None

    def _restart(self, instance, deadline):
        name = instance["name"]
        release = INSTANCE_PREFIX + name
        old = set(pod["metadata"].get("uid") for pod in self._pods(release))
        try:
            self.client.put(self.client.ns_path(SUBRESOURCES, "virtualmachines", release, "restart"), {}, timeout=deadline.remaining())
        except Conflict:
            # virt-api refuses to restart a VM that is not running: start it instead.
            return self.power(instance, "start", False, deadline)
        # After a change in this task, the Ready to wait for is one newer than the change's.
        return self._wait_running(self.describe(instance["_native"], instance.get("_disk"), request={
            "ready": (instance.get("_request") or {}).get("ready"), "pods_before": sorted(filter(None, old)), "since": "restart"}), deadline)

    def delete(self, instance, force, deadline):
        name = instance["name"]
        app = instance.get("_native") or {}
        disk_name = self._system_disk(app) if app else name + "-system"
        disk = instance.get("_disk")
        self.client.delete(self.app_path(name), timeout=deadline.remaining())
        # Helm uninstalls the release before the application disappears; the disk's PVC is in use until then.
        self._wait_gone(self.app_path(), name, deadline, "instance %s to be deleted" % name)
        labels = ((disk or {}).get("metadata") or {}).get("labels") or {}
        if disk is None or labels.get(SYSTEM_DISK_OF) == name:
            self._delete_disk(disk_name, deadline)

    def _delete_disk(self, name, deadline):
        if self.client.delete(self.disk_path(name), timeout=deadline.remaining()):
            self._wait_gone(self.disk_path(), name, deadline, "the system disk %s to be deleted" % name)

    def _wait_gone(self, path, name, deadline, what):
        self.client.wait_list(path, lambda items: not any(item["metadata"]["name"] == name for item in items), deadline, what,
                              query={"fieldSelector": "metadata.name=" + name})

    def _wait_app(self, name, check, deadline, what):
        def found(items):
            for item in items:
                if item["metadata"]["name"] == name and check(item):
                    return item
            return None

        return self.client.wait_list(self.app_path(), found, deadline, what, query={"fieldSelector": "metadata.name=" + name})

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(self, instance, condition, deadline):
        if condition == "cloud_init":
            raise Unsupported("wait_for=cloud_init is not supported by the hikube backend")
        instance = self._wait_running(instance, deadline)
        if condition == "ip" and not any(instance["addresses"].values()):
            found = self._wait_address(instance, deadline)
            # what the wait for running learnt (a change awaiting the restart) holds for the same VM
            found.update((key, instance[key]) for key in ("restart_required", "_restart_note") if key in instance)
            instance = found
        return instance, None

    def _wait_running(self, instance, deadline):
        request = instance.get("_request")
        if (request is None or request.get("restart_pending")) and instance["state"] == "running":
            # What we read already answers (no API call on idempotent runs); a change awaiting the restart gets no
            # fresh Ready under kstatus until then, so the running VM is all there is to wait for.
            return instance
        name = instance["name"]
        request = request or {"ready": None}
        restarted = request.get("pods_before") is not None
        if restarted:
            release = INSTANCE_PREFIX + name
            old = set(request["pods_before"])

            def renewed(pods):
                return [pod for pod in pods if pod_ready(pod) and pod["metadata"].get("uid") not in old]

            self.client.wait_list(self.client.ns_path(CORE, "pods"), renewed, deadline, "instance %s to run again after the restart" % name,
                                  query={"labelSelector": "vm.kubevirt.io/name=" + release})
            request = {"ready": request.get("ready")}
        seen = {"asked": None, "pending": False}

        def ready(app):
            mark = ready_mark(app)
            self._fail_on_release(app, request["ready"])
            if app_state(app) != "running":
                return False
            fresh = request["ready"] is None or mark != request["ready"]
            if fresh and (get_condition(app, "Ready") or {}).get("status") == "True":
                return True
            if restarted and waits_only_on_its_vm(app):
                return True  # the restart applied what Flux waited for; the release heals at Flux's next retry (every 30 s)
            if request.get("restart_pending") or (fresh and waits_only_on_its_vm(app)):
                seen["pending"] = True  # Flux gave up on the VM, or we know a change awaits its restart: it runs, and that is all
                return True
            if upgrade_waiting(app) and seen["asked"] != mark:
                # Helm waits on the running VM: under kstatus that may be a change awaiting its restart (then it never
                # ends before the restart); KubeVirt's RestartRequired tells. Read once per Ready state.
                seen["asked"] = mark
                seen["pending"] = bool(self._vm_restart_required(name))
                return seen["pending"]
            return False

        app = self._wait_app(name, ready, deadline, "instance %s to run (application Ready after the change, and its virt-launcher pod Ready)" % name)
        result = self.describe(app, instance.get("_disk"))
        if restarted:
            result["restart_required"] = False  # it runs its current template now, whatever the release still says
        if seen["pending"]:
            result["restart_required"] = True
            result["_restart_note"] = KSTATUS_NOTE % name
        return result

    def _wait_address(self, instance, deadline):
        app = instance["_native"]
        release = INSTANCE_PREFIX + instance["name"]
        if (app.get("spec") or {}).get("external"):
            service = self.client.wait_list(self.client.ns_path(CORE, "services"), lambda items: [item for item in items if any(
                service_addresses(item).values())], deadline, "a LoadBalancer address for instance %s" % instance["name"],
                query={"fieldSelector": "metadata.name=" + release})[0]
            return self.describe(app, instance.get("_disk"), None, service)
        pods = self.client.wait_list(self.client.ns_path(CORE, "pods"), lambda items: [item for item in items if any(pod_addresses([item]).values())],
                                     deadline, "an IP address on instance %s" % instance["name"], query={"labelSelector": "vm.kubevirt.io/name=" + release})
        return self.describe(app, instance.get("_disk"), pods)
