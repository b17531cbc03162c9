# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: instances
short_description: Virtual machines and containers of every polyvirt.compute backend, from one inventory file
version_added: 0.1.0
description:
  - Lists the instances of one or more O(sources) (LXD, Proxmox VE, Hikube, CloudCIX, Hyper-V), each read
    with the same drivers, connection keys and E(POLYVIRT_<BACKEND>_<KEY>) environment variables as the modules.
  - Sources are read concurrently. Each costs one list call for the basic facts (Proxmox VE's
    C(cluster/resources), LXD's C(/1.0/instances?recursion=2), one C(Get-VM) script on Hyper-V, the
    VMInstance, VMDisk and pod lists on Hikube, the instance list on CloudCIX), never one call per guest
    unless O(sources[].want_addresses) asks for it.
  - Every host gets the normalised instance as C(polyvirt_*) variables (C(polyvirt_backend), C(polyvirt_state),
    C(polyvirt_cpus), C(polyvirt_memory_mib), C(polyvirt_tags), C(polyvirt_addresses), ...), C(polyvirt_source)
    (the source's name) and C(ansible_host) where an address is known.
  - Hosts are put in the groups C(polyvirt_<backend>), C(polyvirt_<state>) and C(polyvirt_tag_<tag>) (characters
    other than letters, digits and C(_) become C(_)); Windows guests also in C(polyvirt_windows), which
    carries the WinRM connection variables of O(windows_vars).
  - The configuration file's name must end in C(polyvirt.yml) or C(polyvirt.yaml).
author:
  - polyvirt.compute developers (@polyvirt)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; it must be V(polyvirt.compute.instances) for the file to be read by it.
    type: str
    required: true
    choices: [polyvirt.compute.instances]
  sources:
    description:
      - Where to read instances from. Each entry is one backend endpoint (an LXD server or project, a Proxmox VE
        cluster, a Hikube tenant namespace, a CloudCIX project, a Hyper-V host).
      - Values may be vaulted (C(!vault)) or Jinja2 templates such as C({{ lookup('env', 'PVE_SECRET') }}).
    type: list
    elements: dict
    required: true
    suboptions:
      backend:
        description: The platform.
        type: str
        required: true
        choices: [lxd, proxmox, hikube, cloudcix, hyperv]
      name:
        description:
          - The source's name, shown in errors and warnings and set as C(polyvirt_source) on its hosts.
          - Defaults to the backend, or C(<backend>@<endpoint>) when another source already has that name.
        type: str
      connection:
        description:
          - Where and how to connect, with the keys of the modules' O(polyvirt.compute.instance#module:connection) option.
          - Every key unset here is read from E(POLYVIRT_<BACKEND>_<KEY>) as in the modules, for example
            E(POLYVIRT_PROXMOX_API_TOKEN_SECRET).
        type: dict
        default: {}
      filters:
        description:
          - Keep only the instances that match every filter, as O(polyvirt.compute.instance_info#module:filters)
            (V(name) a shell-style pattern, V(state), V(type), V(location), V(image); V(tags) all present).
        type: dict
        default: {}
      hostname:
        description:
          - A Jinja2 expression over the host's C(polyvirt_*) variables giving its inventory name, for example
            V(polyvirt_backend ~ '-' ~ polyvirt_name). Defaults to O(hostname), then to V(polyvirt_name).
          - Two hosts with the same name keep the first one, with a warning.
        type: str
      want_addresses:
        description:
          - Read the addresses that the list call does not carry, with one more read per running guest that has
            none (M(polyvirt.compute.instance_info) with O(polyvirt.compute.instance_info#module:name)).
          - Only Proxmox VE needs it (QEMU guest agent, LXC interfaces; 2 to 3 API calls per running guest, plus one
            C(cluster/resources) per worker thread); the other backends list addresses in their list call.
          - At most O(address_concurrency) of these reads run at a time per source. Defaults to O(want_addresses).
        type: bool
      ansible_host_family:
        description: Prefer addresses of this family for C(ansible_host). Defaults to O(ansible_host_family).
        type: str
        choices: [ipv4, ipv6]
      ansible_host_network:
        description: Prefer an address on the network (bridge, switch, network name) of this name. Defaults to O(ansible_host_network).
        type: str
      ansible_host_cidr:
        description: Prefer an address inside this network, such as V(10.0.0.0/24). Defaults to O(ansible_host_cidr).
        type: str
      windows:
        description:
          - Which hosts are Windows guests (group C(polyvirt_windows), C(polyvirt_windows=true)).
          - V(auto) takes every Hyper-V guest and the CloudCIX VMs that run on Hyper-V; V(always) and V(never) take all or none.
        type: str
        choices: [auto, always, never]
        default: auto
  hostname:
    description: The default of O(sources[].hostname).
    type: str
    default: polyvirt_name
  want_addresses:
    description: The default of O(sources[].want_addresses).
    type: bool
    default: false
  ansible_host_family:
    description:
      - The default of O(sources[].ansible_host_family).
      - Without any C(ansible_host_*) preference the driver's choice stands, as in the modules' C(instance.ansible_host),
        which is the first global IPv4 address, else IPv6; the NAT (public) address on CloudCIX; the external Service
        address on Hikube.
    type: str
    choices: [ipv4, ipv6]
  ansible_host_network:
    description: The default of O(sources[].ansible_host_network).
    type: str
  ansible_host_cidr:
    description: The default of O(sources[].ansible_host_cidr).
    type: str
  concurrency:
    description: How many sources are read at the same time.
    type: int
    default: 4
  address_concurrency:
    description: How many per-guest reads of O(sources[].want_addresses) run at the same time, per source.
    type: int
    default: 8
  fail_on_errors:
    description:
      - V(true) fails the inventory when a source fails, naming it.
      - V(false) keeps the hosts of the other sources and warns about the failed one (which is then not cached).
    type: bool
    default: true
  windows_vars:
    description:
      - The variables of the group C(polyvirt_windows), merged over the defaults C(ansible_connection=winrm),
        C(ansible_port=5986), C(ansible_winrm_scheme=https), C(ansible_winrm_transport=ntlm).
      - Host variables (O(compose), C(host_vars)) and C(group_vars/polyvirt_windows.yml) override them.
    type: dict
    default: {}
notes:
  - The cache (O(cache)) is keyed by the sources without their secrets and holds the normalised instances, never
    credentials; O(compose), O(groups) and O(keyed_groups) are applied again on every run.
  - Strings that came from a platform (names, tags, descriptions, addresses) are marked unsafe, so they are never
    templated.
seealso:
  - module: polyvirt.compute.instance_info
"""

EXAMPLES = r"""
# inventory/polyvirt.yml: the LXD server here and a Proxmox VE cluster, in one inventory
plugin: polyvirt.compute.instances
sources:
  - backend: lxd
  - backend: proxmox
    connection:
      api_host: pve.example.com
      api_user: root@pam
      api_token_id: inventory
      # api_token_secret from POLYVIRT_PROXMOX_API_TOKEN_SECRET, or vaulted here
    filters:
      tags: [web]
    hostname: "'pve-' ~ polyvirt_name"
keyed_groups:
  - key: polyvirt_location
    prefix: at
compose:
  ansible_user: "'debian'"

---
# Only running Proxmox VE guests, with guest-agent addresses and ansible_host in 10.0.0.0/8
plugin: polyvirt.compute.instances
sources:
  - backend: proxmox
    connection: {api_host: pve.example.com, api_user: root@pam, api_token_id: inventory}
    filters: {state: running}
    want_addresses: true
    ansible_host_cidr: 10.0.0.0/8
address_concurrency: 16
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/polyvirt-inventory
"""

import os

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.plugin_utils import _inventory

SUFFIXES = ("polyvirt.yml", "polyvirt.yaml")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "polyvirt.compute.instances"

    def verify_file(self, path):
        return super().verify_file(path) and os.path.basename(path).endswith(SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        defaults = dict((key, self.get_option(key)) for key in _inventory.INHERITED)
        raw = self.get_option("sources")
        try:
            sources = _inventory.parse_sources(_plain(self.templar.template(raw)), defaults)
        except InvalidInput as exc:
            raise AnsibleParserError("%s: %s" % (path, exc.message))
        for source in sources:
            # The expression as written (trusted, since it comes from the inventory file), not its plain copy.
            if isinstance(raw[source.index], dict) and raw[source.index].get("hostname"):
                source.hostname = raw[source.index]["hostname"]
        key = "%s_%s" % (self.get_cache_key(path), _inventory.cache_key(sources))
        use_cache = self.get_option("cache") and cache
        found = None
        if use_cache:
            try:
                found = self._cache[key]
            except KeyError:
                found = None
        if found is None:
            results, failures = _inventory.fetch_all(sources, self.get_option("concurrency"), self.get_option("address_concurrency"))
            if failures:
                messages = [str(failures[index]) for index in sorted(failures)]
                if self.get_option("fail_on_errors"):
                    raise AnsibleError("polyvirt.compute.instances: %s" % "; ".join(messages))
                for message in messages:
                    self.display.warning("polyvirt.compute.instances: %s; its hosts are left out (fail_on_errors is false)" % message)
            found = dict((str(index), instances) for index, instances in results.items())
            if self.get_option("cache") and not failures:
                self._cache[key] = found
        self._populate(sources, found)

    def _populate(self, sources, found):
        strict = self.get_option("strict")
        windows_vars = dict(_inventory.DEFAULT_WINDOWS_VARS, **(self.get_option("windows_vars") or {}))
        seen = {}
        for source in sources:
            for instance in found.get(str(source.index)) or []:
                variables = wrap_var(_inventory.host_vars(source, instance))
                name = self._hostname(source, variables, strict)
                if not name:
                    continue
                if name in seen:
                    self.display.warning("polyvirt.compute.instances: %s of %s has the inventory name %s of a host of %s; it is left out "
                                         "(set sources[].hostname to tell them apart)" % (instance.get("name"), source.where, name, seen[name]))
                    continue
                seen[name] = source.where
                self.inventory.add_host(name)
                for var, value in variables.items():
                    self.inventory.set_variable(name, var, value)
                for group in _inventory.host_groups(variables):
                    self.inventory.add_group(group)
                    self.inventory.add_child(group, name)
                self._set_composite_vars(self.get_option("compose"), variables, name, strict=strict)
                self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict=strict)
                self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict=strict)
        windows = self.inventory.groups.get(_inventory.group_name("windows"))
        if windows is not None:
            for var, value in windows_vars.items():
                windows.set_variable(var, value)

    def _hostname(self, source, variables, strict):
        expression = source.hostname or self.get_option("hostname")
        if expression in (None, "", "polyvirt_name"):
            return variables["polyvirt_name"]
        try:
            name = self._compose(expression, variables)
        except Exception as exc:  # pylint: disable=broad-except
            if strict:
                raise AnsibleError("polyvirt.compute.instances: %s: hostname %r failed for %s: %s" % (
                    source.where, expression, variables["polyvirt_name"], exc))
            self.display.warning("polyvirt.compute.instances: %s: hostname %r failed for %s (%s); its name is used" % (
                source.where, expression, variables["polyvirt_name"], exc))
            return variables["polyvirt_name"]
        return str(name) if name not in (None, "") else variables["polyvirt_name"]


def _plain(value):
    """Templated, decrypted configuration as plain Python values (vaulted and tagged strings become str)."""
    if isinstance(value, dict):
        return dict((str(key), _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str.__str__(value) if isinstance(value, str) else str(value)
