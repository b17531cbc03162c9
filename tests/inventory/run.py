# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The inventory plugin against everything at once: the LXD lab and the four simulators, in ONE config file.

Starts each simulator once (the conformance suite's start_simulator, tests/integration/run.py), makes instances with the
collection's modules (seed.yml), runs ``ansible-inventory --list`` and ``--graph`` on one
``*.polyvirt.yml`` with five sources, checks hosts, groups, variables and ``ansible_host``, then removes
the LXD containers it made (always) and stops the simulators. Run from the repository root with the
collection on ANSIBLE_COLLECTIONS_PATH (``make inventory`` does both).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from run import start_simulator  # noqa: E402  pylint: disable=wrong-import-position

BIN = os.path.dirname(sys.executable)
SIMULATORS = {
    "proxmox": {"module": "proxmox", "args": ["--time-scale", "0", "--nodes", "2"]},
    "hikube": {"module": "hikube", "args": ["--mode", "cozystack", "--time-scale", "0"]},
    "cloudcix": {"module": "cloudcix", "args": ["--time-scale", "0"]},
    "hyperv": {"module": "hyperv", "args": ["--time-scale", "0"]},
}


def host_port(url):
    host, dummy, port = re.match(r"^\w+://([^/]+)", url).group(1).rpartition(":")
    return host, port


def connections(urls):
    pve_host, pve_port = host_port(urls["proxmox"])
    hv_host, hv_port = host_port(urls["hyperv"])
    return {
        "proxmox_connection": {"api_host": pve_host, "api_port": int(pve_port), "api_token_id": "root@pam!polyvirt",
                               "api_token_secret": "5e5e5e5e-0000-4000-8000-000000000001", "validate_certs": False},
        "hikube_connection": {"host": urls["hikube"], "api_key": "polyvirt-sim", "namespace": "tenant-demo"},
        "cloudcix_connection": {"api_url": urls["cloudcix"], "email": "admin@example.com", "password": "polyvirt-sim",
                                "api_key": "polyvirt-sim-key", "project_id": "1"},
        "hyperv_connection": {"host": hv_host, "port": int(hv_port), "scheme": "http", "transport": "basic", "username": "Administrator",
                              "password": "polyvirt-sim", "vm_path": "C:\\VMs", "switch": "Default Switch"},
    }


def inventory_config(prefix, conns):
    """One inventory file, five sources; the Proxmox VE token secret comes from the environment, as users would keep it."""
    proxmox = dict((key, value) for key, value in conns["proxmox_connection"].items() if key != "api_token_secret")
    return {
        "plugin": "polyvirt.compute.instances",
        "sources": [
            {"backend": "lxd", "connection": {"project": "polyvirt"}, "filters": {"name": prefix + "-*"}},
            {"backend": "proxmox", "name": "pve", "connection": proxmox, "filters": {"name": prefix + "-*"}, "want_addresses": True},
            {"backend": "hikube", "connection": conns["hikube_connection"]},
            {"backend": "cloudcix", "connection": conns["cloudcix_connection"], "hostname": "'cx-' ~ polyvirt_name"},
            {"backend": "hyperv", "connection": conns["hyperv_connection"]},
        ],
        "keyed_groups": [{"key": "polyvirt_location", "prefix": "at"}],
        "groups": {"big": "(polyvirt_memory_mib or 0) >= 2048"},
        "compose": {"polyvirt_gib": "(polyvirt_memory_mib or 0) // 1024"},
        "windows_vars": {"ansible_port": 5985, "ansible_winrm_scheme": "http"},
    }


def run(cmd, env, **kwargs):
    print(">>> " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=env, check=True, text=True, **kwargs)


def check(listing, graph, prefix):
    """The assertions; each failure names what was expected and what came."""
    hostvars = listing["_meta"]["hostvars"]
    web, db, pve_a, pve_b = prefix + "-web", prefix + "-db", prefix + "-pve-a", prefix + "-pve-b"
    hk, cx, cxwin, hv = prefix + "-hk", "cx-" + prefix + "-cx", "cx-" + prefix + "-cxwin", prefix + "-hv"
    expected_hosts = {web, db, pve_a, pve_b, hk, cx, cxwin, hv}
    assert set(hostvars) == expected_hosts, "hosts: %s, wanted %s" % (sorted(hostvars), sorted(expected_hosts))

    def members(group):
        return set(listing.get(group, {}).get("hosts", []))

    wanted_groups = {
        "polyvirt_lxd": {web, db}, "polyvirt_proxmox": {pve_a, pve_b}, "polyvirt_hikube": {hk}, "polyvirt_cloudcix": {cx, cxwin},
        "polyvirt_hyperv": {hv}, "polyvirt_running": {web, pve_a, hk, cx, cxwin, hv}, "polyvirt_stopped": {db, pve_b},
        "polyvirt_tag_web": {web, pve_a, pve_b, hk}, "polyvirt_tag_env_ci": {web}, "polyvirt_tag_db": {db},
        "polyvirt_windows": {cxwin, hv}, "big": {cxwin, hv}, "at_pve": {pve_a, pve_b},
    }
    for group, hosts in wanted_groups.items():
        assert members(group) == hosts, "group %s: %s, wanted %s" % (group, sorted(members(group)), sorted(hosts))
        assert "@%s:" % group in graph, "--graph lacks @%s" % group

    for host in expected_hosts:
        variables = hostvars[host]
        for key in ("polyvirt_backend", "polyvirt_state", "polyvirt_cpus", "polyvirt_memory_mib", "polyvirt_tags", "polyvirt_addresses", "polyvirt_source"):
            assert key in variables, "%s has no %s: %s" % (host, key, sorted(variables))
        assert variables["polyvirt_gib"] == (variables["polyvirt_memory_mib"] or 0) // 1024, "%s: compose polyvirt_gib" % host
        assert host in graph, "--graph lacks %s" % host

    assert (hostvars[pve_a]["polyvirt_cpus"], hostvars[pve_a]["polyvirt_memory_mib"], hostvars[pve_a]["polyvirt_tags"]) == (2, 1024, ["web"]), hostvars[pve_a]
    assert hostvars[pve_a]["polyvirt_source"] == "pve"
    # ansible_host: the address each platform reaches the guest at
    for host in (web, pve_a, hk, cx, cxwin, hv):
        assert hostvars[host].get("ansible_host"), "%s has no ansible_host: %s" % (host, hostvars[host].get("polyvirt_addresses"))
        assert hostvars[host]["ansible_host"] in hostvars[host]["polyvirt_addresses"]["ipv4"] + hostvars[host]["polyvirt_addresses"]["ipv6"]
    assert "ansible_host" not in hostvars[db] and "ansible_host" not in hostvars[pve_b], "stopped guests have no address"
    assert hostvars[web]["ansible_host"].startswith("10."), hostvars[web]["ansible_host"]
    cx_nat = [address["public_ip"] for interface in hostvars[cx]["polyvirt_backend_data"]["interfaces"] for address in interface["ipv4_addresses"]
              if address.get("nat")]
    assert cx_nat and hostvars[cx]["ansible_host"] == cx_nat[0] and not hostvars[cx]["ansible_host"].startswith("10.0.0."), hostvars[cx]
    # Hikube: the external Service's LoadBalancer address (the emulator hands them out of 203.0.113.0/24), not the pod's (10.244.x)
    assert hostvars[hk]["ansible_host"].startswith("203.0.113."), "hikube: %s" % hostvars[hk]["polyvirt_addresses"]
    for host in (cxwin, hv):
        assert hostvars[host]["polyvirt_windows"] is True
    assert listing["polyvirt_windows"]["vars"] == {"ansible_connection": "winrm", "ansible_port": 5985, "ansible_winrm_scheme": "http",
                                                   "ansible_winrm_transport": "ntlm"}, listing["polyvirt_windows"]


def unwrap(value, marked):
    """ansible-inventory's JSON without its ``{"__ansible_unsafe": ...}`` wrappers; ``marked`` collects the wrapped strings."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            marked.add(value["__ansible_unsafe"])
            return value["__ansible_unsafe"]
        return dict((key, unwrap(item, marked)) for key, item in value.items())
    if isinstance(value, list):
        return [unwrap(item, marked) for item in value]
    return value


def graph_group(graph, group):
    """The hosts --graph shows under ``@group:`` (its direct members)."""
    lines = graph.splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.strip().endswith("@%s:" % group):
            depth = line.index("@")
            for follower in lines[index + 1:]:
                name = follower.lstrip(" |-")
                if follower.index(name[0]) <= depth:
                    break
                if not name.startswith("@"):
                    found.append(name)
    return set(found)


def main():
    started = time.monotonic()
    prefix = "inv-" + secrets.token_hex(3)
    procs, urls = [], {}
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    with tempfile.TemporaryDirectory(prefix="polyvirt-inventory-") as work:
        vars_file = os.path.join(work, "vars.json")
        seeded = False
        try:
            for name, spec in SIMULATORS.items():
                proc, url = start_simulator(spec)
                procs.append(proc)
                urls[name] = url
            conns = connections(urls)
            with open(vars_file, "w") as handle:
                json.dump(dict(conns, prefix=prefix), handle)
            seeded = True
            run([os.path.join(BIN, "ansible-playbook"), os.path.join(HERE, "seed.yml"), "-e", "@" + vars_file, "-e", "inventory_state=present"], env)
            config = os.path.join(work, "everything.polyvirt.yml")
            with open(config, "w") as handle:
                yaml.safe_dump(inventory_config(prefix, conns), handle)
            inv_env = dict(env, POLYVIRT_PROXMOX_API_TOKEN_SECRET=conns["proxmox_connection"]["api_token_secret"])
            marked = set()
            listing = unwrap(json.loads(run([os.path.join(BIN, "ansible-inventory"), "-i", config, "--list", "--export"], inv_env,
                                            stdout=subprocess.PIPE).stdout), marked)
            graph = run([os.path.join(BIN, "ansible-inventory"), "-i", config, "--graph"], inv_env, stdout=subprocess.PIPE).stdout
            print(graph)
            check(listing, graph, prefix)
            # every string that came from a platform is marked unsafe (never templated)
            for variables in listing["_meta"]["hostvars"].values():
                for key in ("polyvirt_name", "polyvirt_state", "ansible_host"):
                    assert variables.get(key) is None or variables[key] in marked, "%s is not marked unsafe" % key
            assert graph_group(graph, "polyvirt_windows") == set(listing["polyvirt_windows"]["hosts"]), graph
        finally:
            try:
                if seeded:
                    run([os.path.join(BIN, "ansible-playbook"), os.path.join(HERE, "seed.yml"), "-e", "@" + vars_file, "-e", "inventory_state=absent"], env)
            finally:
                for proc in procs:  # also when the clean-up failed
                    proc.terminate()
                    proc.wait(timeout=30)
    print("inventory test passed in %.0f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
