# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Proxmox disks on FakePve: a disk is a slot of one guest (scsiN... on a VM, mpN on a container)."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import DiskReconciler, list_disks
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.proxmox.fake_pve import ISO
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.proxmox.test_proxmox_instances import connect


def disk(backend, check_mode=False, **params):
    values = {"state": "present", "wait_timeout": 30, "optical": False}
    values.update(params)
    return DiskReconciler(backend, values, check_mode=check_mode, diff_mode=True).run()


def writes(fake):
    return [(method, path) for method, path, dummy in fake.requests if method != "GET"]


@pytest.mark.parametrize("params, message", [
    ({"name": "data1", "instance": "web1", "size": "1GiB"}, "name 'data1' is not a Proxmox VE disk slot"),
    ({"name": "scsi1", "storage": "local-lvm", "size": "1GiB"}, "instance is required by the proxmox backend"),
    ({"name": "virtio16", "instance": "web1", "size": "1GiB"}, "Proxmox VE has virtio0 to virtio15"),
    ({"name": "mp0", "instance": "web1", "size": "1GiB"}, "mp0 is a container mount point; instance web1 is a VM"),
    ({"name": "scsi1", "instance": "ct1", "size": "1GiB"}, "scsi1 is a VM drive slot; instance ct1 is a container"),
    ({"name": "scsi0", "instance": "web1", "size": "2GiB"}, "size 2GiB is smaller than the current 3GiB; disks only grow"),
    ({"name": "scsi1", "instance": "web1"}, "size is required to create disk scsi1"),
    ({"name": "scsi1", "instance": "web1", "size": "1GiB", "storage": "local"}, "storage local on node pve cannot hold VM disks"),
    ({"name": "virtio1", "instance": "web1", "optical": True}, "a CD-ROM goes into an ide, sata or scsi slot"),
    ({"name": "ide1", "instance": "web1", "optical": True, "size": "1GiB"}, "size cannot be set for an optical drive"),
    ({"name": "ide1", "instance": "web1", "optical": True, "backend_options": {"iso": "local:iso/missing.iso"}}, "local:iso/missing.iso does not exist"),
    ({"name": "scsi0", "instance": "web1", "optical": True}, "slot scsi0 of instance web1 holds a disk; set optical: false"),
    ({"name": "mp1", "instance": "ct1", "size": "1GiB", "backend_options": {"path": "rel"}}, "backend_options.path is the absolute path"),
    ({"name": "scsi1", "instance": "web1", "size": "1GiB", "backend_options": {"cache": "none"}}, "backend_options.cache is not a Proxmox VE disk"),
    ({"name": "unused0", "instance": "web1"}, "an unusedN volume can only be deleted"),
    ({"name": "scsi1", "instance": "web1", "state": "detached", "size": "1GiB"}, "size cannot be set with state=detached"),
])
def test_bad_input_is_refused_before_any_change(params, message):
    backend, fake = connect()
    with pytest.raises((InvalidInput, NotFound)) as err:
        disk(backend, **params)
    assert message in err.value.message
    assert fake.mutating() == []


def test_a_source_is_refused_as_unsupported():
    backend, fake = connect()
    with pytest.raises(Unsupported) as err:
        disk(backend, name="scsi1", instance="web1", size="1GiB", source={"image": "x"})
    assert err.value.message.endswith("disk source.image is not supported by the proxmox backend")
    assert fake.mutating() == []


def test_create_grow_move_detach_delete_a_vm_slot():
    backend, fake = connect()
    check = disk(backend, check_mode=True, name="scsi1", instance="web1", storage="local-lvm", size="1GiB")
    assert check["changed"] and fake.mutating() == []
    made = disk(backend, name="scsi1", instance="web1", storage="local-lvm", size="1GiB")
    assert made["actions"] == check["actions"] == ["create disk scsi1 in local-lvm", "attach disk scsi1 to instance web1 at storage=local-lvm"]
    assert fake.guests[100]["config"]["scsi1"] == "local-lvm:vm-100-disk-1,size=1G"
    assert made["disk"]["attached_to"] == "web1" and made["disk"]["size_gib"] == 1 and made["disk"]["storage"] == "local-lvm"
    del fake.requests[:]
    again = disk(backend, name="scsi1", instance="web1", storage="local-lvm", size="1GiB")
    assert not again["changed"] and fake.mutating() == []
    assert [path for method, path, dummy in fake.requests] == ["cluster/resources", "nodes/pve/qemu/100/pending"]
    grown = disk(backend, name="scsi1", instance="web1", size="2GiB")
    assert grown["diff"] == {"before": {"size_gib": 1}, "after": {"size_gib": 2}}
    assert fake.guests[100]["config"]["scsi1"] == "local-lvm:vm-100-disk-1,size=2G"
    del fake.requests[:]
    moved = disk(backend, name="scsi1", instance="web1", storage="nfs1")
    assert moved["diff"] == {"before": {"storage": "local-lvm"}, "after": {"storage": "nfs1"}}
    assert ("POST", "nodes/pve/qemu/100/move_disk") in writes(fake)
    assert [params for method, path, params in fake.requests if path.endswith("move_disk")] == [{"disk": "scsi1", "storage": "nfs1", "delete": 1}]
    assert fake.guests[100]["config"]["scsi1"].startswith("nfs1:vm-100-disk-1,") and "unused0" not in fake.guests[100]["config"]
    detached = disk(backend, name="scsi1", instance="web1", state="detached")
    assert detached["changed"] and detached["disk"]["attached_to"] is None
    assert "scsi1" not in fake.guests[100]["config"] and fake.guests[100]["config"]["unused0"] == "nfs1:vm-100-disk-1"
    del fake.requests[:]
    still = disk(backend, name="scsi1", instance="web1", state="detached")
    assert not still["changed"] and fake.mutating() == [] and still["disk"]["backend_data"]["unused"] == {"unused0": "nfs1:vm-100-disk-1"}
    assert not disk(backend, name="scsi1", instance="web1", state="absent")["changed"]  # nothing in the slot
    gone = disk(backend, name="unused0", instance="web1", state="absent")
    assert gone["actions"] == ["delete disk unused0"] and "unused0" not in fake.guests[100]["config"]


def test_absent_detaches_and_deletes_the_volume():
    backend, fake = connect()
    disk(backend, name="virtio1", instance="web1", size="1GiB")  # the storage of the boot disk
    assert fake.guests[100]["config"]["virtio1"] == "local-lvm:vm-100-disk-1,size=1G"
    result = disk(backend, name="virtio1", instance="web1", state="absent")
    assert result["actions"] == ["detach disk virtio1 from instance web1", "delete disk virtio1"]
    assert not any(key.startswith(("virtio1", "unused")) for key in fake.guests[100]["config"])


def test_container_mount_point_with_path():
    backend, fake = connect()
    made = disk(backend, name="mp0", instance="ct1", size="2GiB", backend_options={"path": "/data"})
    assert fake.guests[101]["config"]["mp0"] == "local-lvm:vm-101-disk-1,mp=/data,size=2G"
    assert made["disk"]["path"] == "/data" and made["disk"]["attached_to"] == "ct1"
    assert ("PUT", "nodes/pve/lxc/101/config") in writes(fake)
    moved_path = disk(backend, name="mp0", instance="ct1", backend_options={"path": "/srv"})
    assert moved_path["diff"] == {"before": {"path": "/data"}, "after": {"path": "/srv"}}
    assert fake.guests[101]["config"]["mp0"] == "local-lvm:vm-101-disk-1,mp=/srv,size=2G"
    del fake.requests[:]
    disk(backend, name="mp0", instance="ct1", storage="nfs1")
    assert [params for method, path, params in fake.requests if path.endswith("move_volume")] == [{"volume": "mp0", "storage": "nfs1", "delete": 1}]


def test_a_running_container_volume_is_not_moved():
    backend, fake = connect()
    disk(backend, name="mp0", instance="ct1", size="1GiB")
    fake.guests[101]["status"] = "running"
    del fake.requests[:]
    with pytest.raises(Conflict) as err:
        disk(backend, name="mp0", instance="ct1", storage="nfs1")
    assert "only while the container is stopped" in err.value.message and fake.mutating() == []


def test_cdrom_with_an_iso_and_ejected():
    backend, fake = connect()
    made = disk(backend, name="scsi5", instance="web1", optical=True, backend_options={"iso": ISO})
    assert fake.guests[100]["config"]["scsi5"] == ISO + ",media=cdrom" and made["disk"]["backend_data"]["optical"]
    assert not disk(backend, name="scsi5", instance="web1", optical=True, backend_options={"iso": ISO})["changed"]
    ejected = disk(backend, name="scsi5", instance="web1", optical=True, backend_options={"iso": "none"})
    assert ejected["changed"] and fake.guests[100]["config"]["scsi5"] == "none,media=cdrom"
    disk(backend, name="scsi5", instance="web1", optical=True, state="absent")
    assert "scsi5" not in fake.guests[100]["config"] and not any(key.startswith("unused") for key in fake.guests[100]["config"])


def test_an_ide_drive_of_a_running_vm_waits_for_a_restart_and_says_so():
    backend, fake = connect()
    made = disk(backend, name="ide1", instance="web1", optical=True, backend_options={"iso": ISO})
    assert fake.guests[100]["pending"]["ide1"] == ISO + ",media=cdrom" and "ide1" not in fake.guests[100]["config"]
    assert made["disk"]["backend_data"]["pending"] is True


def test_the_cloud_init_drive_is_left_to_the_instance_module():
    backend, fake = connect()
    fake.guests[100]["config"]["ide2"] = "local-lvm:vm-100-cloudinit,media=cdrom"
    with pytest.raises(InvalidInput) as err:
        disk(backend, name="ide2", instance="web1", optical=True, state="absent")
    assert "cloud-init drive" in err.value.message and fake.mutating() == []


def test_disk_info_lists_the_slots_of_guests():
    backend = connect()[0]
    disk(backend, name="scsi1", instance="web1", size="1GiB")
    names = sorted((item["attached_to"], item["name"]) for item in list_disks(backend))
    assert names == [("web1", "scsi0"), ("web1", "scsi1")]  # a container's rootfs is the instance's disk_size, not a slot
    assert [item["name"] for item in list_disks(backend, instance="web1")] == ["scsi0", "scsi1"]
    assert [item["name"] for item in list_disks(backend, storage="nfs1")] == []
