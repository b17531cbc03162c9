# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Hikube disks through the shared disk reconciler, on the emulator."""

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.backend import HikubeBackend  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import DiskReconciler, list_disks  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler  # noqa: E402
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.hikube.emulator import Emulator, apps  # noqa: E402


def instance_values():
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"name": "host1", "state": "started", "image": "ubuntu", "wait_timeout": 30})
    return values


@pytest.fixture(scope="module")
def sim():
    emulator = Emulator()
    backend = HikubeBackend(emulator.settings())
    InstanceReconciler(backend, instance_values()).run()
    yield emulator
    emulator.stop()


def disk(sim, check_mode=False, **params):
    values = {"name": None, "instance": None, "storage": None, "size": None, "source": None, "optical": False, "state": "present",
              "backend_options": None, "wait_timeout": 30}
    values.update(params)
    backend = HikubeBackend(sim.settings())
    transport = sim.transport()
    return DiskReconciler(backend, values, check_mode=check_mode, diff_mode=True).run(), transport


def test_create_attach_grow_detach_delete(sim):
    check, transport = disk(sim, check_mode=True, name="d1", instance="host1", size="1GiB", optical=False)
    assert check["changed"] and transport.mutating() == []
    made, transport = disk(sim, name="d1", instance="host1", size="1GiB")
    assert made["actions"] == ["create disk d1 in replicated", "attach disk d1 to instance host1 at path=disk-d1"]
    assert [name["name"] for name in sim.admin("GET", apps("vminstances", "host1"))["spec"]["disks"]] == ["host1-system", "d1"]
    again, transport = disk(sim, name="d1", instance="host1", size="1GiB")
    assert not again["changed"] and transport.mutating() == [] and len(transport.reads()) == 4
    grown, transport = disk(sim, name="d1", instance="host1", size="2GiB")
    assert grown["disk"]["size_gib"] == 2 and sim.admin("GET", apps("vmdisks", "d1"))["spec"]["storage"] == "2Gi"
    shrink = pytest.raises(InvalidInput, disk, sim, name="d1", instance="host1", size="1GiB")
    assert "disks only grow" in shrink.value.message
    detached, transport = disk(sim, name="d1", storage="replicated", state="detached")
    assert detached["disk"]["attached_to"] is None
    assert [name["name"] for name in sim.admin("GET", apps("vminstances", "host1"))["spec"]["disks"]] == ["host1-system"]
    gone, transport = disk(sim, name="d1", storage="replicated", state="absent")
    assert gone["changed"] and sim.admin("GET", apps("vmdisks", "d1")) is None


def test_sources_and_optical_disks(sim):
    made, transport = disk(sim, name="iso1", storage="replicated", source={"url": "https://example.com/x.iso"}, optical=True)
    native = sim.admin("GET", apps("vmdisks", "iso1"))
    assert native["spec"]["source"] == {"http": {"url": "https://example.com/x.iso"}} and native["spec"]["optical"] is True
    refused = pytest.raises(InvalidInput, disk, sim, name="img1", storage="replicated", source={"image": "beos"})
    assert "source.image 'beos' is not a golden image of this cluster" in refused.value.message
    refused = pytest.raises(InvalidInput, disk, sim, name="img1", storage="gold")
    assert "storage 'gold' is not a storage class of this cluster" in refused.value.message
    refused = pytest.raises(InvalidInput, disk, sim, name="Img1", storage="replicated")
    assert "is not a valid VMDisk name on Hikube" in refused.value.message
    disk(sim, name="iso1", storage="replicated", state="absent")


def test_system_disks_belong_to_their_instance(sim):
    backend = HikubeBackend(sim.settings())
    assert "host1-system" not in [item["name"] for item in list_disks(backend)]
    refused = pytest.raises(InvalidInput, disk, sim, name="host1-system", storage="replicated", state="detached")
    assert "is the system disk of instance host1" in refused.value.message


def test_a_copy_needs_its_source_unused_by_a_running_vm_and_at_least_its_size(sim):
    restart = dict(instance_values(), state="restarted")
    disk(sim, name="orig", instance="host1", size="2GiB")
    InstanceReconciler(HikubeBackend(sim.settings()), restart).run()  # from its next start, host1's pod mounts the disk
    in_use = pytest.raises(Conflict, disk, sim, name="copy1", storage="replicated", source={"disk": "orig"})
    assert "source.disk orig is used by instance host1, which runs" in in_use.value.message
    missing = pytest.raises(NotFound, disk, sim, name="copy1", storage="replicated", source={"disk": "nothing"})
    assert "source.disk nothing does not exist" in missing.value.message
    assert sim.admin("GET", apps("vmdisks", "copy1")) is None
    disk(sim, name="orig", storage="replicated", state="detached")
    # Detached, but host1's pod still mounts it until the next start: CDI would still wait.
    held = pytest.raises(Conflict, disk, sim, name="copy1", storage="replicated", source={"disk": "orig"})
    assert "is used by instance host1" in held.value.message
    InstanceReconciler(HikubeBackend(sim.settings()), restart).run()
    small = pytest.raises(InvalidInput, disk, sim, name="copy1", storage="replicated", size="1GiB", source={"disk": "orig"})
    assert "size 1GiB is smaller than source.disk orig (2GiB)" in small.value.message
    made, transport = disk(sim, name="copy1", storage="replicated", source={"disk": "orig"})
    assert made["actions"] == ["create disk copy1 in replicated as a copy of orig"]
    assert sim.admin("GET", apps("vmdisks", "copy1"))["spec"]["source"] == {"disk": {"name": "orig"}}
    assert sim.admin("GET", apps("vmdisks", "copy1"))["spec"]["storage"] == "2Gi"  # the source's size, not the chart's default


def test_a_disk_is_found_by_its_name_alone_to_delete_it(sim):
    disk(sim, name="loose", storage="replicated", size="1GiB")
    gone, transport = disk(sim, name="loose", state="absent")
    assert gone["actions"] == ["delete disk loose"] and sim.admin("GET", apps("vmdisks", "loose")) is None
    again, transport = disk(sim, name="loose", state="absent")
    assert not again["changed"] and transport.mutating() == []
