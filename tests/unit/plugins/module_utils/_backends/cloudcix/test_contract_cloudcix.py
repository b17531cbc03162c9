# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""CloudCIX's entry in the shared driver contract table (../test_contract.py), kept in this folder.

The case's transport is the loopback simulator; the canned objects are made through its API before the
test starts (a running instance with a snapshot, a backup and an attached cephfs volume). Two shared
tests do not fit CloudCIX and are not run here (see the notes at the end).
"""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.backend import CloudcixBackend
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends import test_contract as contract
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.cloudcix.sim import LoopbackSimulator

SECRET = "s3cr3t-in-user-data"
RUNNING = []


class Journal:
    """``requests`` and ``mutating()`` as the contract table reads them: what the simulator was asked after the setup."""

    def __init__(self, sim):
        self.sim = sim
        self.base = len(sim.requests())

    @property
    def requests(self):
        return self.sim.requests()[self.base:]

    def mutating(self):
        return self.sim.mutating(self.base)


class CloudcixCase:
    backend_class = CloudcixBackend
    secrets = (SECRET,)
    instance = "web1"
    snapshot = "snap0"
    backup = "b0"
    disk = "data1"
    storage = "CEPH_001"
    image = "UBUNTU2404"
    as_it_is = {"cpus": 2, "memory": "2GiB", "disk_size": "20GiB", "networks": [{"ipv4": "10.0.0.5", "nat": True}]}

    @staticmethod
    def connect():
        sim = LoopbackSimulator()
        RUNNING.append(sim)
        client = sim.backend().client
        made = client.write("POST", "compute/instances/", {
            "project_id": 1, "name": "web1", "type": "lxd",
            "metadata": {"instance_type": "container", "userdata": "#cloud-config\nchpasswd:\n  list: root:%s\n" % SECRET},
            "interfaces": [{"gateway": True, "ipv4_addresses": [{"address": "10.0.0.5", "nat": True}]}],
            "specs": [{"sku_name": "RAM_001", "quantity": 2}, {"sku_name": "vCPU_001", "quantity": 2}, {"sku_name": "SSD_001", "quantity": 20},
                      {"sku_name": "UBUNTU2404", "quantity": 1}]})
        client.read("compute/instances/%s/" % made["id"])  # the robot builds it (time runs at scale 0)
        client.write("POST", "compute/snapshots/", {"project_id": 1, "instance_id": made["id"], "name": "snap0", "type": "lxd"})
        client.write("POST", "compute/backups/", {"project_id": 1, "instance_id": made["id"], "name": "b0", "type": "lxd"})
        volume = client.write("POST", "storage/volumes/", {"project_id": 1, "name": "data1", "type": "cephfs",
                                                           "specs": [{"sku_name": "CEPH_001", "quantity": 5}]})
        client.read("storage/volumes/%s/" % volume["id"])
        client.write("PATCH", "storage/volumes/%s/" % volume["id"], {"state": "update_running", "metadata": {
            "attach_instance_ids": [made["id"]], "mount_path": "/mnt/data1"}})
        client.read("storage/volumes/%s/" % volume["id"])
        client.close()
        return sim.backend(), Journal(sim)


CASES = [pytest.param(CloudcixCase(), id="cloudcix")]


@pytest.fixture(autouse=True)
def stop_simulators():
    yield
    while RUNNING:
        RUNNING.pop().stop()


@pytest.mark.parametrize("case", CASES)
def test_every_declared_part_instantiates_without_connecting(case):
    contract.test_every_declared_part_instantiates_without_connecting(case)


@pytest.mark.parametrize("case", CASES)
def test_capabilities_for_every_type(case):
    contract.test_capabilities_for_every_type(case)


@pytest.mark.parametrize("case", CASES)
def test_feature_flags_are_backed_by_parts_and_verbs(case):
    contract.test_feature_flags_are_backed_by_parts_and_verbs(case)


@pytest.mark.parametrize("case", CASES)
def test_a_missing_capability_is_refused_with_the_standard_message(case):
    contract.test_a_missing_capability_is_refused_with_the_standard_message(case)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("runtime", [False, True])
def test_get_maps_the_native_instance(case, runtime):
    contract.test_get_maps_the_native_instance(case, runtime)


@pytest.mark.parametrize("case", CASES)
def test_list_maps_every_instance(case):
    contract.test_list_maps_every_instance(case)


@pytest.mark.parametrize("case", CASES)
def test_the_settings_of_an_instance_match_the_options_that_describe_it(case):
    contract.test_the_settings_of_an_instance_match_the_options_that_describe_it(case)


@pytest.mark.parametrize("case", CASES)
def test_snapshot_verbs(case):
    contract.test_snapshot_verbs(case)


@pytest.mark.parametrize("case", CASES)
def test_disk_verbs(case):
    contract.test_disk_verbs(case)


# Not run for CloudCIX, and why (reported; the shared table is not ours to change):
# - test_create_update_power_and_delete asks for memory="256MiB", tags and a description: CloudCIX sells RAM in
#   whole GB (refused, naming the value) and has neither tags nor descriptions (refused as unsupported).
#   The same lifecycle runs in test_cloudcix_instances.py with sizes CloudCIX sells.
# - test_backup_verbs restores a backup into a new instance: CloudCIX restores backups only through its support
#   desk, so restore is refused (state=restored) before any change.
