# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory plugin polyvirt.compute.instances end to end (config file -> InventoryData), on stub drivers.

The stubs stand in for the drivers only (``load_backend``): options, templating, constructed features,
the cache and the error handling are ansible-core's and ours, run for real.
"""

from __future__ import annotations

import json
import threading

import pytest

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.utils.display import Display

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import AuthError
from ansible_collections.polyvirt.compute.plugins.module_utils._model import instance_result
from ansible_collections.polyvirt.compute.plugins.plugin_utils import _inventory


class StubInstances:
    def __init__(self, backend):
        self.backend = backend

    def list(self, filters=None):
        self.backend.calls.append(("list", dict(filters or {})))
        if self.backend.fail:
            raise self.backend.fail
        return [dict(item, addresses=item["addresses"] if not self.backend.runtime_only else {"ipv4": [], "ipv6": []},
                     ansible_host=item["ansible_host"] if not self.backend.runtime_only else None)
                for item in self.backend.items]

    def get(self, name, runtime=False):
        self.backend.calls.append(("get", name, runtime))
        return next((item for item in self.backend.items if item["name"] == name), None)


class StubBackend:
    """A driver with canned instances; every object built is kept in ``made`` with its settings and thread."""

    made = []

    def __init__(self, name, settings, items, fail=None, runtime_only=False):
        self.name = name
        self.settings = settings
        self.items = items
        self.fail = fail
        self.runtime_only = runtime_only
        self.calls = []
        self.closed = False
        self.thread = threading.get_ident()
        self.instances = StubInstances(self)

    def close(self):
        self.closed = True


def lxd_items():
    return [
        instance_result("web1", "lxd", id="web1", type="container", state="running", cpus=2, memory_mib=512, tags=["web", "env:prod"],
                        addresses={"ipv4": ["10.147.0.5", "192.168.5.5"], "ipv6": ["fd42::5"]},
                        networks=[{"name": "polyvirtbr0", "addresses": ["10.147.0.5", "fd42::5"]}, {"name": "lan", "addresses": ["192.168.5.5"]}],
                        backend_data={"status": "Running"}, _native={"secret": "x"}),
        instance_result("db1", "lxd", id="db1", type="container", state="stopped", cpus=1, memory_mib=256, tags=["db"], backend_data={}),
    ]


def cloudcix_items():
    # The driver puts the NAT (public) address first and chooses it as ansible_host.
    return [instance_result("win1", "cloudcix", id=7, type="vm", state="running", addresses={"ipv4": ["91.103.0.7", "10.0.5.7"], "ipv6": []},
                            ansible_host="91.103.0.7", backend_data={"type": "hyperv"}),
            instance_result("lin1", "cloudcix", id=8, type="container", state="running", addresses={"ipv4": ["10.0.5.8"], "ipv6": []},
                            backend_data={"type": "lxd"})]


@pytest.fixture()
def backends(monkeypatch):
    """``load_backend`` replaced: ``catalogue[backend]`` gives the canned items (or ``fail`` the error)."""
    catalogue = {"lxd": {"items": lxd_items()}, "cloudcix": {"items": cloudcix_items()}, "proxmox": {"items": []}, "hyperv": {"items": []}}
    made = []

    def load(name, settings):
        spec = catalogue[name]
        backend = StubBackend(name, settings, spec["items"], spec.get("fail"), spec.get("runtime_only", False))
        made.append(backend)
        return backend

    monkeypatch.setattr(_inventory, "load_backend", load)
    return catalogue, made


def run(tmp_path, config, name="test.polyvirt.yml", cache=True):
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    inventory = InventoryData()
    module = load_plugin()
    assert module.verify_file(str(path))
    module.parse(inventory, DataLoader(), str(path), cache=cache)
    if getattr(module, "_cache", None):
        module.update_cache_if_changed()  # as InventoryManager does after parse
    return inventory


def load_plugin():
    """The plugin through ansible-core's loader, which registers its options (as ansible-inventory does)."""
    init_plugin_loader()  # does nothing when ansible-test's collection finder is installed already
    module = inventory_loader.get("polyvirt.compute.instances")
    assert module is not None, "the plugin loader does not find polyvirt.compute.instances"
    return module


def hostvars(inventory, host):
    return inventory.get_host(host).get_vars()


def members(inventory, group):
    return sorted(host.name for host in inventory.groups[group].get_hosts())


def test_file_names_it_reads(tmp_path):
    module = load_plugin()
    for name, wanted in (("a.polyvirt.yml", True), ("polyvirt.yaml", True), ("hosts.yml", False), ("polyvirt.yml.bak", False)):
        (tmp_path / name).write_text("plugin: polyvirt.compute.instances\n")
        assert module.verify_file(str(tmp_path / name)) is wanted, name


def test_host_vars_groups_and_ansible_host(tmp_path, backends):
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd"}]})
    assert sorted(inventory.hosts) == ["db1", "web1"]
    web = hostvars(inventory, "web1")
    assert web["ansible_host"] == "10.147.0.5"
    assert (web["polyvirt_backend"], web["polyvirt_state"], web["polyvirt_cpus"], web["polyvirt_memory_mib"]) == ("lxd", "running", 2, 512)
    assert web["polyvirt_tags"] == ["web", "env:prod"]
    assert web["polyvirt_addresses"] == {"ipv4": ["10.147.0.5", "192.168.5.5"], "ipv6": ["fd42::5"]}
    assert web["polyvirt_source"] == "lxd" and web["polyvirt_windows"] is False
    assert not any(key.startswith("polyvirt__") for key in web)  # the driver's _native stays out
    assert "ansible_host" not in hostvars(inventory, "db1")  # stopped, no address: nothing invented
    assert members(inventory, "polyvirt_lxd") == ["db1", "web1"]
    assert members(inventory, "polyvirt_running") == ["web1"]
    assert members(inventory, "polyvirt_stopped") == ["db1"]
    assert members(inventory, "polyvirt_tag_web") == ["web1"]
    assert members(inventory, "polyvirt_tag_env_prod") == ["web1"]
    assert "polyvirt_windows" not in inventory.groups


def test_platform_strings_are_never_templated(tmp_path, backends):
    catalogue, dummy = backends
    catalogue["lxd"]["items"] = [instance_result("evil", "lxd", state="running", description="{{ lookup('pipe', 'id') }}", tags=["{{ 7 * 7 }}"])]
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd"}],
                               "compose": {"shown": "polyvirt_description", "first_tag": "polyvirt_tags[0]"}})
    variables = hostvars(inventory, "evil")
    assert variables["shown"] == "{{ lookup('pipe', 'id') }}"
    assert variables["first_tag"] == "{{ 7 * 7 }}"


@pytest.mark.parametrize("preference, wanted", [
    ({}, "10.147.0.5"),
    ({"ansible_host_family": "ipv6"}, "fd42::5"),
    ({"ansible_host_network": "lan"}, "192.168.5.5"),
    ({"ansible_host_cidr": "192.168.0.0/16"}, "192.168.5.5"),
    ({"ansible_host_cidr": "172.16.0.0/12"}, "10.147.0.5"),  # nothing inside: the family order decides
])
def test_ansible_host_preferences(tmp_path, backends, preference, wanted):
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [dict({"backend": "lxd"}, **preference)]})
    assert hostvars(inventory, "web1")["ansible_host"] == wanted


def test_top_level_preference_is_the_sources_default(tmp_path, backends):
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "ansible_host_family": "ipv6",
                               "sources": [{"backend": "lxd", "name": "a", "filters": {"name": "web1"}},
                                           {"backend": "lxd", "name": "b", "filters": {"name": "web1"}, "ansible_host_family": "ipv4",
                                            "hostname": "'b-' ~ polyvirt_name"}]})
    assert hostvars(inventory, "web1")["ansible_host"] == "fd42::5"
    assert hostvars(inventory, "b-web1")["ansible_host"] == "10.147.0.5"


def test_nat_address_and_windows_guests(tmp_path, backends):
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "windows_vars": {"ansible_port": 5985, "ansible_winrm_scheme": "http"},
                               "sources": [{"backend": "cloudcix", "connection": {"api_url": "http://127.0.0.1:1", "project_id": "1"}}],
                               "compose": {"ansible_winrm_transport": "'credssp'"}})
    win = inventory.get_host("win1")
    assert hostvars(inventory, "win1")["ansible_host"] == "91.103.0.7"
    assert members(inventory, "polyvirt_windows") == ["win1"]
    group_vars = inventory.groups["polyvirt_windows"].get_vars()
    assert group_vars == {"ansible_connection": "winrm", "ansible_port": 5985, "ansible_winrm_scheme": "http", "ansible_winrm_transport": "ntlm"}
    # compose sets host vars, which win over the group's: the user's override
    assert win.get_vars()["ansible_winrm_transport"] == "credssp"
    assert hostvars(inventory, "lin1")["polyvirt_windows"] is False


def test_windows_never_and_always(tmp_path, backends):
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [
        {"backend": "cloudcix", "windows": "never", "connection": {"api_url": "http://127.0.0.1:1"}},
        {"backend": "lxd", "windows": "always", "filters": {"name": "db1"}}]})
    assert members(inventory, "polyvirt_windows") == ["db1"]


def test_constructed_features_and_strict(tmp_path, backends):
    config = {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd"}],
              "compose": {"ansible_user": "'debian'", "mem_gib": "polyvirt_memory_mib / 1024"},
              "groups": {"big": "polyvirt_cpus > 1"},
              "keyed_groups": [{"key": "polyvirt_type", "prefix": "type"}, {"key": "polyvirt_tags", "prefix": "t"}]}
    inventory = run(tmp_path, config)
    assert hostvars(inventory, "web1")["ansible_user"] == "debian"
    assert hostvars(inventory, "db1")["mem_gib"] == 0.25
    assert members(inventory, "big") == ["web1"]
    assert members(inventory, "type_container") == ["db1", "web1"]
    assert members(inventory, "t_db") == ["db1"]
    config["compose"] = {"broken": "polyvirt_no_such_var + 1"}
    config["strict"] = True
    with pytest.raises(AnsibleError, match="Could not set broken for host"):
        run(tmp_path, config)
    config["strict"] = False
    assert "broken" not in hostvars(run(tmp_path, config), "web1")


def test_hostname_expression_and_duplicates(tmp_path, backends):
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "hostname": "polyvirt_backend ~ '-' ~ polyvirt_name",
                               "sources": [{"backend": "lxd", "name": "one"}, {"backend": "lxd", "name": "two"}]})
    assert sorted(inventory.hosts) == ["lxd-db1", "lxd-web1"]  # the second source's duplicates are left out
    assert hostvars(inventory, "lxd-web1")["polyvirt_source"] == "one"


def test_hostname_error_falls_back_to_the_name_unless_strict(tmp_path, backends):
    config = {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd", "hostname": "polyvirt_nothing.upper()"}]}
    assert sorted(run(tmp_path, config).hosts) == ["db1", "web1"]
    config["strict"] = True
    with pytest.raises(AnsibleError, match=r"sources\[0\] \(lxd\): hostname"):
        run(tmp_path, config)


def test_filters_are_the_modules_filters(tmp_path, backends):
    catalogue, made = backends
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd", "filters": {"tags": "web", "state": "running"}}]})
    assert list(inventory.hosts) == ["web1"]
    assert made[0].calls == [("list", {"tags": "web", "state": "running"})]  # one list call, the filters passed as a hint
    with pytest.raises(AnsibleParserError, match=r"sources\[0\] \(lxd\): filters.colour is not a known filter"):
        run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd", "filters": {"colour": "red"}}]})


def test_connection_keys_and_environment(tmp_path, backends, monkeypatch):
    catalogue, made = backends
    monkeypatch.setenv("POLYVIRT_PROXMOX_API_HOST", "pve.example.com")
    monkeypatch.setenv("POLYVIRT_PROXMOX_API_TOKEN_SECRET", "s3cret")
    run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [
        {"backend": "proxmox", "connection": {"api_port": "8007", "validate_certs": "no", "api_user": "root@pam", "api_token_id": "inv"}}]})
    settings = made[0].settings
    assert (settings["api_host"], settings["api_port"], settings["validate_certs"], settings["api_token_secret"]) == ("pve.example.com", 8007, False, "s3cret")
    with pytest.raises(AnsibleParserError, match=r"sources\[0\] \(lxd\): connection.api_host is not used by the lxd backend"):
        run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd", "connection": {"api_host": "x"}}]})
    monkeypatch.delenv("POLYVIRT_PROXMOX_API_HOST")
    with pytest.raises(AnsibleParserError, match=r"sources\[0\] \(proxmox\): connection.api_host is required"):
        run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "proxmox"}]})
    with pytest.raises(AnsibleParserError, match=r"sources\[0\].*backend"):
        run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "vmware"}]})


def test_templated_and_vaulted_connection_values(tmp_path, backends, monkeypatch):
    catalogue, made = backends
    monkeypatch.setenv("INV_TEST_SECRET", "from-env")
    run(tmp_path, "plugin: polyvirt.compute.instances\nsources:\n  - backend: proxmox\n    connection:\n      api_host: pve\n"
                  "      api_token_secret: \"{{ lookup('env', 'INV_TEST_SECRET') }}\"\n")
    assert made[0].settings["api_token_secret"] == "from-env"
    assert type(made[0].settings["api_token_secret"]) is str  # pylint: disable=unidiomatic-typecheck


def test_a_failing_source_is_named(tmp_path, backends):
    catalogue, made = backends
    catalogue["proxmox"]["fail"] = AuthError("401 authentication failure for token s3cret")
    config = {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd"}, {"backend": "proxmox", "name": "pve-prod", "connection": {
        "api_host": "pve", "api_token_secret": "s3cret"}}]}
    with pytest.raises(AnsibleError) as caught:
        run(tmp_path, config)
    assert "sources[1] (pve-prod) failed: 401 authentication failure for token ********" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert all(backend.closed for backend in made)


def test_fail_on_errors_false_keeps_the_other_sources(tmp_path, backends, monkeypatch):
    catalogue, made = backends
    catalogue["proxmox"]["fail"] = RuntimeError("driver bug")
    warnings = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *args, **kwargs: warnings.append(msg))
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "fail_on_errors": False,
                               "sources": [{"backend": "lxd"}, {"backend": "proxmox", "connection": {"api_host": "pve"}}]})
    assert sorted(inventory.hosts) == ["db1", "web1"]
    assert len(warnings) == 1
    assert "sources[1] (proxmox) failed with an unexpected error: RuntimeError: driver bug" in warnings[0]


def test_sources_run_concurrently_one_driver_each(tmp_path, backends):
    catalogue, made = backends
    barrier = threading.Barrier(2, timeout=10)
    original = StubInstances.list

    def meet(self, filters=None):
        barrier.wait()  # both sources must be listing at the same time, or this times out
        return original(self, filters)

    StubInstances.list = meet
    try:
        inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "concurrency": 2, "sources": [
            {"backend": "lxd"}, {"backend": "cloudcix", "connection": {"api_url": "http://127.0.0.1:1"}}]})
    finally:
        StubInstances.list = original
    assert sorted(inventory.hosts) == ["db1", "lin1", "web1", "win1"]
    assert len(made) == 2 and made[0].thread != made[1].thread


def test_want_addresses_reads_running_guests_without_addresses(tmp_path, backends):
    catalogue, made = backends
    catalogue["lxd"]["runtime_only"] = True
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd"}]})
    assert "ansible_host" not in hostvars(inventory, "web1")
    assert [call for backend in made for call in backend.calls if call[0] == "get"] == []  # opt-in only
    made.clear()
    inventory = run(tmp_path, {"plugin": "polyvirt.compute.instances", "address_concurrency": 3, "sources": [{"backend": "lxd", "want_addresses": True}]})
    assert hostvars(inventory, "web1")["ansible_host"] == "10.147.0.5"
    gets = [call for backend in made for call in backend.calls if call[0] == "get"]
    assert gets == [("get", "web1", True)]  # the stopped db1 is not asked
    assert len(made) == 2 and all(backend.closed for backend in made)  # the list's driver and one for the address thread
    made.clear()
    run(tmp_path, {"plugin": "polyvirt.compute.instances", "want_addresses": True, "sources": [{"backend": "lxd", "want_addresses": False}]})
    assert [call for backend in made for call in backend.calls if call[0] == "get"] == []  # a source's own false wins over the default


def test_cache_is_keyed_by_the_sources_and_holds_no_secret(tmp_path, backends):
    catalogue, made = backends
    cache_dir = tmp_path / "cache"
    config = {"plugin": "polyvirt.compute.instances", "cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(cache_dir),
              "sources": [{"backend": "proxmox", "connection": {"api_host": "pve", "api_token_secret": "s3cret"}}]}
    catalogue["proxmox"]["items"] = [instance_result("vm1", "proxmox", id=100, state="running", backend_data={"vmid": 100})]
    assert list(run(tmp_path, config).hosts) == ["vm1"]
    assert len(made) == 1
    files = list(cache_dir.iterdir())
    assert len(files) == 1
    assert "s3cret" not in files[0].read_text() and "vm1" in files[0].read_text()
    catalogue["proxmox"]["items"] = []
    assert list(run(tmp_path, config).hosts) == ["vm1"]  # from the cache: no driver made
    assert len(made) == 1
    assert list(run(tmp_path, config, cache=False).hosts) == []  # a refresh (--flush-cache, meta: refresh_inventory) reads again
    assert len(made) == 2
    config["sources"][0]["filters"] = {"state": "running"}  # another source set: another key, never the old data
    assert list(run(tmp_path, config).hosts) == []
    assert len(made) == 3


def test_sources_must_be_a_list(tmp_path, backends):
    with pytest.raises(AnsibleParserError, match="sources must be a non-empty list"):
        run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": []})
    with pytest.raises(AnsibleParserError, match=r"another source is already named lxd"):
        run(tmp_path, {"plugin": "polyvirt.compute.instances", "sources": [{"backend": "lxd"}, {"backend": "lxd", "name": "lxd"}]})
