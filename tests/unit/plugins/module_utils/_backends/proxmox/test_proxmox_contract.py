# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The shared driver contract table (../test_contract.py) run with a Proxmox entry, on FakePve.

Every test of that table is taken as it is and parametrised here with ProxmoxCase only, so the
table's own file needs no change until the integrator adds the entry to its CASES.
"""

import types

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.backend import ProxmoxBackend
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends import test_contract as contract
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.proxmox.fake_pve import SECRET, FakePve


class ProxmoxCase:
    """Proxmox VE: ProxmoxClient.request answered by FakePve (web1: a running QEMU VM with snapshot snap0 and backup b0)."""

    backend_class = ProxmoxBackend
    secrets = (SECRET,)
    instance = "web1"
    snapshot = "snap0"
    backup = "b0"
    disk = "scsi0"
    storage = "local-lvm"
    image = "debian-12-cloud"
    as_it_is = {"cpus": 2, "memory": "512MiB", "tags": ["b", "a"], "networks": [{"name": "vmbr0"}]}
    tags_hold_commas = False  # pve-tag: the table's "x,y" is refused, "x-y" made instead
    disk_slots = True  # a disk is a slot of one guest, no free disks: test_proxmox_disks.py runs the verbs on slots

    @staticmethod
    def connect():
        backend = ProxmoxBackend({"api_host": "127.0.0.1", "api_token_id": "root@pam!polyvirt", "api_token_secret": "x"})
        fake = FakePve().install(backend.client)
        return backend, fake


def _rebind(function):
    """``function`` without its ``case`` parametrisation (the table's CASES), parametrised with ProxmoxCase instead."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__, function.__closure__)
    marks = [mark for mark in getattr(function, "pytestmark", []) if not (mark.name == "parametrize" and mark.args[0] == "case")]
    copy.pytestmark = marks
    copy = pytest.mark.parametrize("case", [pytest.param(ProxmoxCase(), id="proxmox")])(copy)
    return copy


for _name, _function in list(vars(contract).items()):
    if _name.startswith("test_") and callable(_function):
        globals()[_name] = _rebind(_function)
