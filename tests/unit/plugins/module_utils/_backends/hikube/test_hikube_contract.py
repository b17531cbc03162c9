# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The shared driver contract table (../test_contract.py) run with a Hikube entry, on the loopback emulator.

Every test of that table is taken as it is and parametrised here with HikubeCase only, so the table's
own file needs no change until the integrator adds the entry to its CASES.
"""

import types

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.backend import HikubeBackend  # noqa: E402
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends import test_contract as contract  # noqa: E402
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.hikube.emulator import Emulator, seed_backup, seed_instance  # noqa: E402

EMULATOR = {}


class HikubeCase:
    """Hikube: the emulator in Cozystack mode with tenant RBAC (web1: a running VMInstance with resources, tags, a network and disk data1,
    and backup b0 made by a BackupJob)."""

    backend_class = HikubeBackend
    secrets = ("canned-secret", "contract-secret")
    instance = "web1"
    snapshot = None
    backup = "b0"
    disk = "data1"
    storage = "replicated"
    image = "ubuntu"
    as_it_is = {"cpus": 2, "memory": "512MiB", "tags": ["b", "a"], "networks": [{"name": "tenant-net"}]}

    @staticmethod
    def connect():
        if "sim" not in EMULATOR:
            EMULATOR["sim"] = Emulator()
            seed_instance(EMULATOR["sim"])
            seed_backup(EMULATOR["sim"], "web1", "b0")
        sim = EMULATOR["sim"]
        backend = HikubeBackend(sim.settings())
        return backend, sim.transport()


@pytest.fixture(autouse=True, scope="module")
def _emulator():
    yield
    if "sim" in EMULATOR:
        EMULATOR.pop("sim").stop()


# The table's create puts a secret in user-data (chpasswd); our case lists it in ``secrets``, and the table passes
# "root:<first secret>": the first one is the canned instance's, so the contract's own lands in cloudInit and stays hidden.
def _rebind(function):
    """``function`` without its ``case`` parametrisation (the table's CASES), parametrised with HikubeCase instead."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__, function.__closure__)
    marks = [mark for mark in getattr(function, "pytestmark", []) if not (mark.name == "parametrize" and mark.args[0] == "case")]
    copy.pytestmark = marks
    return pytest.mark.parametrize("case", [pytest.param(HikubeCase(), id="hikube")])(copy)


for _name, _function in list(vars(contract).items()):
    if _name.startswith("test_") and callable(_function):
        globals()[_name] = _rebind(_function)
