# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The shared driver contract table (../test_contract.py) run for Hyper-V, kept here so that file stays the table's owners'.

test_create_update_power_and_delete is left out: it asks every backend for tags and cloud-init, which
Hyper-V refuses (the refusal itself is checked by test_a_missing_capability_is_refused_with_the_standard_message).
"""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.backend import HyperVBackend
from ansible_collections.polyvirt.compute.tests.simulators.hyperv.model import MB, Host
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends import test_contract as contract
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.hyperv.fake_hyperv import BASE, SECRET, FakeProtocol


class HyperVCase:
    """Hyper-V: the client's WS-Man exchange answered by FakeProtocol from the emulator's host model."""

    backend_class = HyperVBackend
    secrets = (SECRET,)
    instance = "web1"  # running, on a differencing disk of BASE, with checkpoint snap0 and backup b0
    snapshot = "snap0"
    backup = "b0"
    image = BASE
    as_it_is = {"cpus": 2, "memory": "512MiB", "description": "web server", "networks": [{"name": "Default Switch"}]}

    @staticmethod
    def connect():
        host = Host(time_scale=0)
        host.vhd_create({"path": BASE, "type": "dynamic", "size": 1024 * MB})
        disk = "C:\\VMs\\web1\\Virtual Hard Disks\\web1.vhdx"
        host.vhd_create({"path": disk, "type": "differencing", "parent_path": BASE})
        host.vm_create({"name": "web1", "generation": 2, "memory_startup": 512 * MB, "switch": "Default Switch", "path": "C:\\VMs",
                        "vhd_path": disk, "cpu": 2, "notes": "web server"})
        host.vm_start({"name": "web1"})
        host.checkpoint_create({"name": "web1", "checkpoint": "snap0"})
        host.vm_export({"name": "web1", "path": "C:\\VMs\\Backups\\web1\\b0"})
        backend = HyperVBackend({"host": "127.0.0.1", "transport": "basic", "username": "Administrator", "password": SECRET,
                                 "vm_path": "C:\\VMs", "switch": "Default Switch"})
        fake = FakeProtocol(host).install(backend.client)
        return backend, fake


CASE = HyperVCase()


@pytest.mark.parametrize("test", [
    contract.test_every_declared_part_instantiates_without_connecting,
    contract.test_capabilities_for_every_type,
    contract.test_feature_flags_are_backed_by_parts_and_verbs,
    contract.test_a_missing_capability_is_refused_with_the_standard_message,
    contract.test_list_maps_every_instance,
    contract.test_the_settings_of_an_instance_match_the_options_that_describe_it,
    contract.test_snapshot_verbs,
    contract.test_backup_verbs,
], ids=lambda test: test.__name__)
def test_contract(test, tmp_path):
    if test is contract.test_backup_verbs:
        test(CASE, tmp_path)
    else:
        test(CASE)


@pytest.mark.parametrize("runtime", [False, True])
def test_get_maps_the_native_instance(runtime):
    contract.test_get_maps_the_native_instance(CASE, runtime)
