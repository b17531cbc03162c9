# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side glue of the inventory plugin polyvirt.compute.instances, kept free of the plugin class.

Sources are validated with the modules' own connection spec (``_args``) and fetched with the modules'
drivers (``_backends.registry``) and filters (``_reconcile.instance.list_instances``): there is no second
client. Each source runs in a thread of its own, with a driver object of its own; per-guest reads
(``want_addresses``) run in a bounded pool where every thread again builds its own driver.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import ipaddress
import json
import re
import threading

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.polyvirt.compute.plugins.module_utils._args import BACKENDS, CONNECTION_OPTIONS, SECRET_KEYS, resolve_connection
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.registry import load_backend
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, PolyvirtError
from ansible_collections.polyvirt.compute.plugins.module_utils._net import pick_ansible_host
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import INFO_FILTERS, list_instances

PREFIX = "polyvirt_"
# The normalised instance (DESIGN section 3) as host variables, each under PREFIX.
INSTANCE_FIELDS = ("name", "backend", "id", "type", "state", "cpus", "memory_mib", "disk_gib", "image", "description", "addresses",
                   "networks", "location", "tags", "backend_data")
FAMILIES = ("ipv4", "ipv6")
WINDOWS_CHOICES = ("auto", "always", "never")
# What Windows guests connect with, as vars of the group polyvirt_windows (so host vars, compose and
# group_vars/polyvirt_windows.yml all override them).
DEFAULT_WINDOWS_VARS = {
    "ansible_connection": "winrm",
    "ansible_port": 5986,
    "ansible_winrm_scheme": "https",
    "ansible_winrm_transport": "ntlm",
}

SOURCE_SPEC = {
    "backend": {"type": "str", "required": True, "choices": list(BACKENDS)},
    "name": {"type": "str"},
    "connection": {"type": "dict", "default": {}},
    "filters": {"type": "dict", "default": {}},
    "hostname": {"type": "str"},
    "want_addresses": {"type": "bool"},
    "ansible_host_family": {"type": "str", "choices": list(FAMILIES)},
    "ansible_host_network": {"type": "str"},
    "ansible_host_cidr": {"type": "str"},
    "windows": {"type": "str", "choices": list(WINDOWS_CHOICES), "default": "auto"},
}
INHERITED = ("hostname", "want_addresses", "ansible_host_family", "ansible_host_network", "ansible_host_cidr")


class SourceError(Exception):
    """A source failed; the message names it (``sources[1] (proxmox pve1)``)."""


class Source:
    """One validated entry of ``sources``: where to read, what to keep, how to name and reach its hosts."""

    def __init__(self, index, backend, label, settings, secrets, filters, options):
        self.index = index
        self.backend = backend
        self.label = label
        self.settings = settings
        self.secrets = secrets
        self.filters = filters
        self.hostname = options.get("hostname")
        self.want_addresses = bool(options.get("want_addresses"))
        self.family = options.get("ansible_host_family")
        self.network = options.get("ansible_host_network")
        self.cidr = options.get("ansible_host_cidr")
        self.windows = options.get("windows") or "auto"

    @property
    def where(self):
        return "sources[%d] (%s)" % (self.index, self.label)

    def public(self):
        """What identifies the source, without its secrets: the cache key is made of it."""
        settings = dict((key, value) for key, value in self.settings.items() if key not in SECRET_KEYS and value is not None)
        return {"backend": self.backend, "name": self.label, "connection": settings, "filters": self.filters, "want_addresses": self.want_addresses}


def parse_sources(raw_sources, defaults=None):
    """``sources`` (already templated and decrypted) as Source objects; InvalidInput names the entry at fault.

    ``defaults`` holds the top-level values of INHERITED options; a source's own value wins.
    """
    if not isinstance(raw_sources, list) or not raw_sources:
        raise InvalidInput("sources must be a non-empty list of {backend, connection, filters, hostname, ...}")
    parsed = []
    labels = set()
    for index, raw in enumerate(raw_sources):
        where = "sources[%d]" % index
        if not isinstance(raw, dict):
            raise InvalidInput("%s must be a dict with at least a backend, got %r" % (where, type(raw).__name__))
        result = ArgumentSpecValidator(SOURCE_SPEC).validate(raw)
        if result.error_messages:
            raise InvalidInput("%s: %s" % (where, "; ".join(result.error_messages)))
        params = result.validated_parameters
        for key in INHERITED:
            if params.get(key) is None and (defaults or {}).get(key) is not None:
                params[key] = defaults[key]
        backend = params["backend"]
        connection = _connection(where, backend, params["connection"])
        try:
            settings, secrets = resolve_connection(backend, connection)
            _check_filters(params["filters"])
            _check_cidr(params.get("ansible_host_cidr"))
        except InvalidInput as exc:
            raise InvalidInput("%s (%s): %s" % (where, backend, exc.message))
        label = params.get("name") or _default_label(backend, settings, labels)
        if label in labels:
            raise InvalidInput("%s: another source is already named %s (names identify sources in errors and in polyvirt_source)" % (where, label))
        labels.add(label)
        parsed.append(Source(index, backend, label, settings, secrets, params["filters"], params))
    return parsed


def _connection(where, backend, connection):
    """``connection`` converted to the modules' types (a port given as a string, a bool as "yes")."""
    unknown = sorted(set(connection) - set(CONNECTION_OPTIONS))
    if unknown:
        raise InvalidInput("%s (%s): connection.%s is not a connection key of any backend" % (where, backend, unknown[0]))
    result = ArgumentSpecValidator(CONNECTION_OPTIONS).validate(dict((key, value) for key, value in connection.items() if value is not None))
    if result.error_messages:
        raise InvalidInput("%s (%s): connection: %s" % (where, backend, "; ".join(result.error_messages)))
    return dict((key, value) for key, value in result.validated_parameters.items() if value is not None)


def _default_label(backend, settings, taken):
    """``backend``, or ``backend@endpoint`` when that name is taken (two sources of one backend)."""
    if backend not in taken:
        return backend
    endpoint = settings.get("api_host") or settings.get("host") or settings.get("url") or settings.get("api_url") or settings.get("namespace")
    label = "%s@%s" % (backend, endpoint) if endpoint else backend
    number = 2
    candidate = label
    while candidate in taken:
        candidate = "%s#%d" % (label, number)
        number += 1
    return candidate


def _check_filters(filters):
    unknown = sorted(set(filters) - set(INFO_FILTERS))
    if unknown:
        raise InvalidInput("filters.%s is not a known filter (use %s)" % (unknown[0], ", ".join(INFO_FILTERS)))


def _check_cidr(cidr):
    if cidr:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise InvalidInput("ansible_host_cidr must be a network such as 10.0.0.0/24 or fd00::/64, got %r" % cidr)


def cache_key(sources):
    """A digest of every source without its secrets, so a changed source never reads another's cache."""
    text = json.dumps([source.public() for source in sources], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fetch_all(sources, concurrency=4, address_concurrency=8, loader=None):
    """Every source's instances, read concurrently: ``{index: [instance, ...]}`` and ``{index: SourceError}``."""
    results, failures = {}, {}
    workers = max(1, min(concurrency, len(sources)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="polyvirt-source") as pool:
        futures = dict((pool.submit(fetch_source, source, address_concurrency, loader), source) for source in sources)
        for future in concurrent.futures.as_completed(futures):
            source = futures[future]
            try:
                results[source.index] = future.result()
            except SourceError as exc:
                failures[source.index] = exc
    return results, failures


def fetch_source(source, address_concurrency=8, loader=None):
    """The instances of one source, as plain data (``_``-keys dropped), with addresses when asked for."""
    loader = loader or load_backend
    driver = None
    try:
        driver = loader(source.backend, source.settings)
        instances = list_instances(driver, None, source.filters)
        if source.want_addresses:
            instances = _with_addresses(source, instances, address_concurrency, loader)
        return [plain(instance) for instance in instances]
    except PolyvirtError as exc:
        raise SourceError("%s failed: %s" % (source.where, _redact(exc.message, source.secrets)))
    except Exception as exc:  # pylint: disable=broad-except
        # A driver bug must not hide the other sources: name the source, keep the type for the report.
        raise SourceError("%s failed with an unexpected error: %s: %s" % (source.where, type(exc).__name__, _redact(str(exc), source.secrets)))
    finally:
        if driver is not None:
            driver.close()


def _with_addresses(source, instances, concurrency, loader):
    """Running instances without addresses read again one by one (``get(runtime=True)``), ``concurrency`` at a time.

    Each pool thread builds its own driver (drivers and their HTTP sessions are not shared between threads).
    """
    wanted = [index for index, instance in enumerate(instances)
              if instance.get("state") == "running" and not (instance["addresses"].get("ipv4") or instance["addresses"].get("ipv6"))]
    if not wanted:
        return instances
    local = threading.local()
    drivers = []
    lock = threading.Lock()

    def read(index):
        if getattr(local, "driver", None) is None:
            local.driver = loader(source.backend, source.settings)
            with lock:
                drivers.append(local.driver)
        return index, local.driver.instances.get(instances[index]["name"], runtime=True)

    result = list(instances)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(wanted))), thread_name_prefix="polyvirt-address") as pool:
            for index, found in pool.map(read, wanted):
                if found is not None:
                    result[index] = found
    finally:
        for driver in drivers:
            driver.close()
    return result


def plain(instance):
    """The normalised instance without the driver's private keys (``_native``), as JSON-able data."""
    return json.loads(json.dumps(dict((key, value) for key, value in instance.items() if not key.startswith("_")), default=str))


def _redact(text, secrets):
    for secret in secrets or ():
        if secret:
            text = text.replace(str(secret), "********")
    return text


def is_windows(source, instance):
    """Whether ``instance`` is a Windows guest: Hyper-V guests and CloudCIX Hyper-V VMs under ``windows: auto``."""
    if source.windows != "auto":
        return source.windows == "always"
    if instance.get("backend") == "hyperv":
        return True
    return instance.get("backend") == "cloudcix" and (instance.get("backend_data") or {}).get("type") == "hyperv"


def ansible_host(source, instance):
    """The address to connect to, by the shared policy (_net.pick_ansible_host).

    Without a preference the driver's choice stands (it knows the platform's reachable address: the
    NAT address on CloudCIX, the external Service address on Hikube); with one, the policy picks among
    the addresses, which the drivers list reachable ones first.
    """
    if not (source.family or source.network or source.cidr):
        return instance.get("ansible_host") or pick_ansible_host(instance.get("addresses") or {}, instance.get("networks"))
    return pick_ansible_host(instance.get("addresses") or {}, instance.get("networks"), family=source.family, network=source.network, cidr=source.cidr)


GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def group_name(*parts):
    """``polyvirt_`` + the parts joined by ``_``, every character outside [A-Za-z0-9_] made ``_``."""
    return PREFIX + "_".join(GROUP_UNSAFE.sub("_", str(part)) for part in parts)


def host_vars(source, instance):
    """The host variables of ``instance``: every normalised field under ``polyvirt_``, the source, and ansible_host."""
    variables = dict((PREFIX + key, instance.get(key)) for key in INSTANCE_FIELDS)
    variables[PREFIX + "source"] = source.label
    variables[PREFIX + "windows"] = is_windows(source, instance)
    address = ansible_host(source, instance)
    if address:
        variables["ansible_host"] = address
    return variables


def host_groups(variables):
    """The groups of a host: polyvirt_<backend>, polyvirt_<state>, polyvirt_tag_<tag> and polyvirt_windows."""
    groups = [group_name(variables[PREFIX + "backend"])]
    if variables.get(PREFIX + "state"):
        groups.append(group_name(variables[PREFIX + "state"]))
    for tag in variables.get(PREFIX + "tags") or []:
        groups.append(group_name("tag", tag))
    if variables.get(PREFIX + "windows"):
        groups.append(group_name("windows"))
    return groups
