# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The LXD snapshots, backups and disks parts on FakeLxd: LXD's detours (the export-and-import restore) live here."""

import io
import tarfile

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd import disks as lxd_disks
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.backend import LxdBackend
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound, OperationFailed
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import BackupReconciler, backup_spec
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import DiskReconciler, disk_spec
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.snapshot import SnapshotReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.lxd.fake_lxd import SECRET, FakeLxd


def connect(**fake_options):
    fake = FakeLxd(**fake_options)
    backend = LxdBackend({"url": "unix:/nonexistent/lxd/unix.socket"})
    fake.install(backend.client)
    return backend, fake


def deadline():
    return Deadline(60)


def changes(fake):
    return [path for path in fake.paths() if path[0] != "GET"]


# -- snapshots ------------------------------------------------------------------------------------


def test_snapshots_come_with_the_runtime_read_or_from_one_list():
    backend, fake = connect()
    full = backend.instances.get("web1", runtime=True)
    assert [item["name"] for item in backend.snapshots.list(full)] == ["snap0"]
    assert len(fake.requests) == 1  # recursion=1 carried them
    plain = backend.instances.get("web1")
    assert [item["name"] for item in backend.snapshots.list(plain)] == ["snap0"]
    assert fake.requests[-1][:3] == ("GET", "/1.0/instances/web1/snapshots", {"recursion": "1"})


def test_snapshot_names_with_the_instance_prefix_are_shortened():
    backend, _fake = connect()
    described = backend.snapshots.describe("web1", {"name": "web1/snap7", "created_at": "x", "config": {"cloud-init.user-data": SECRET}})
    assert described["name"] == "snap7" and SECRET not in repr(described)


def test_a_snapshot_name_with_a_space_is_refused():
    backend, _fake = connect()
    with pytest.raises(InvalidInput) as caught:
        backend.snapshots.validate_name("a b")
    assert "is not a valid LXD snapshot name" in caught.value.message


@pytest.mark.parametrize("before, brought_back, actions", [
    ("Running", "Stopped", ["start"]),
    ("Stopped", "Running", ["stop"]),
    ("Running", "Running", []),
    ("Stopped", "Stopped", []),
])
def test_a_restore_keeps_the_power_state(before, brought_back, actions):
    backend, fake = connect()
    fake._power(fake.instances["web1"], {"Running": "start", "Stopped": "stop"}[before])  # pylint: disable=protected-access
    fake.status_after_restore = brought_back
    instance = backend.instances.get("web1")
    restored = backend.snapshots.restore(instance, {"name": "snap0"}, deadline())
    puts = [request for request in fake.requests if request[:2] == ("PUT", "/1.0/instances/web1")]
    assert len(puts) == 1 and puts[0][3]["restore"] == "snap0"
    assert [request[3]["action"] for request in fake.requests if request[1] == "/1.0/instances/web1/state"] == actions
    assert restored["state"] == instance["state"]


def test_a_snapshot_named_dot_dot_never_reaches_lxd():
    backend, fake = connect()
    with pytest.raises(InvalidInput):
        SnapshotReconciler(backend, {"instance": "web1", "name": "..", "state": "absent"}).run()
    assert fake.requests == []


# -- backups --------------------------------------------------------------------------------------


def test_a_backup_without_a_name_is_found_from_its_operation():
    backend, fake = connect()
    made = backend.backups.create(backend.instances.get("web1"), backup_spec({"instance": "web1"}, backend), deadline())
    assert made["name"] == "backup1"
    assert fake.requests[-1][:2] == ("GET", "/1.0/instances/web1/backups/backup1")


def test_backup_options_are_checked():
    backend, _fake = connect()
    with pytest.raises(InvalidInput) as caught:
        backup_spec({"instance": "web1", "name": "b", "backend_options": {"compression": "xz"}}, backend)
    assert "backend_options.compression is not an LXD backup option" in caught.value.message


def tar_with(member, text):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = text.encode("utf-8")
        info = tarfile.TarInfo(member)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_check_file_reads_the_index_of_a_backup(tmp_path):
    backend, _fake = connect()
    path = tmp_path / "b.tar.gz"
    path.write_bytes(FakeLxd.tarball({"name": "web1", "type": "container"}))
    assert backend.backups.check_file(str(path)) == {"name": "web1", "backend": "dir", "pool": "polyvirt", "type": "container"}
    zstd = tmp_path / "b.tar.zst"
    zstd.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    assert backend.backups.check_file(str(zstd)) == {}  # left to LXD


@pytest.mark.parametrize("content, message", [
    (b"junk", "is not an LXD backup (not a tarball"),
    (tar_with("etc/passwd", "root:x:0:0"), "is not an LXD backup (it has no backup/index.yaml)"),
])
def test_check_file_refuses_what_is_not_a_backup(tmp_path, content, message):
    backend, _fake = connect()
    path = tmp_path / "b.tar"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as caught:
        backend.backups.check_file(str(path))
    assert message in caught.value.message


def test_restore_in_place_imports_first_then_replaces_and_starts():
    backend, fake = connect()
    instance = backend.instances.get("web1")
    restored = backend.backups.restore("web1", deadline(), instance=instance, backup=backend.backups.list(instance)[0])
    steps = changes(fake)
    assert [step[0] for step in steps] == ["POST", "PUT", "DELETE", "POST", "PUT"]
    imported = [request for request in fake.requests if request[:2] == ("POST", "/1.0/instances")][0]
    assert isinstance(imported[3], str) and imported[3].endswith("bytes>")  # the export, streamed back as the body
    staging = steps[3][1].rsplit("/", 1)[1]
    assert staging.startswith("web1-r")
    assert steps[1] == ("PUT", "/1.0/instances/web1/state") and steps[2] == ("DELETE", "/1.0/instances/web1")
    assert steps[4] == ("PUT", "/1.0/instances/web1/state")  # it was running, so it runs again
    assert sorted(fake.instances) == ["db1", "web1"]
    assert restored["name"] == "web1" and restored["state"] == "running"


def test_a_failed_import_leaves_the_instance_alone():
    backend, fake = connect()
    fake.operation_errors[("POST", "/1.0/instances")] = "Failed importing backup: no space left on device"
    instance = backend.instances.get("web1")
    with pytest.raises(OperationFailed):
        backend.backups.restore("web1", deadline(), instance=instance, backup=backend.backups.list(instance)[0])
    assert ("DELETE", "/1.0/instances/web1") not in fake.paths()
    assert fake.instances["web1"]["status"] == "Running"
    assert sorted(fake.instances) == ["db1", "web1"]


def test_a_failed_replace_removes_the_restored_copy_again():
    backend, fake = connect()
    fake.operation_errors[("DELETE", "/1.0/instances/web1")] = "Instance is busy"
    instance = backend.instances.get("web1")
    with pytest.raises(OperationFailed) as caught:
        backend.backups.restore("web1", deadline(), instance=instance, backup=backend.backups.list(instance)[0])
    assert "could not replace instance web1 (the restored copy was removed again; the instance is unchanged)" in caught.value.message
    assert sorted(fake.instances) == ["db1", "web1"]


def test_a_restore_into_a_new_name_imports_under_that_name(tmp_path):
    backend, fake = connect()
    path = tmp_path / "web1.tar.gz"
    path.write_bytes(FakeLxd.tarball(fake.instances["web1"]))
    restored = backend.backups.restore("web2", deadline(), path=str(path), storage="polyvirt")
    assert restored["name"] == "web2" and restored["state"] == "stopped"
    assert ("DELETE", "/1.0/instances/web1") not in fake.paths()


def test_an_export_lands_whole_through_the_reconciler(tmp_path):
    backend, _fake = connect()
    location = tmp_path / "b0.tar.gz"
    result = BackupReconciler(backend, {"instance": "web1", "name": "b0", "location": str(location)}).run()
    assert result["backup"]["size_bytes"] == location.stat().st_size > 0
    assert backend.backups.check_file(str(location))["name"] == "web1"
    assert sorted(item.name for item in tmp_path.iterdir()) == ["b0.tar.gz"]


# -- disks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("used_by, names", [
    (["/1.0/instances/web1"], ["web1"]),
    (["/1.0/instances/web2?project=demo"], ["web2"]),
    (["/1.0/instances/web%201"], ["web 1"]),
    (["/1.0/profiles/default", "/1.0/instances/web1/snapshots/snap0"], []),
])
def test_the_instances_that_use_a_volume(used_by, names):
    assert lxd_disks._volume_instances({"used_by": used_by}) == names  # pylint: disable=protected-access


def test_a_disk_shows_every_instance_that_mounts_it():
    backend, _fake = connect()
    web1 = backend.instances.get("web1")
    disk = backend.disks.get(disk_spec({"name": "data1", "storage": "polyvirt"}, backend), web1)
    assert disk["attachments"] == ["db1", "web1"] and disk["attached_to"] == "web1" and disk["path"] == "/srv/data"
    assert disk["size_gib"] == 10 and disk["size_bytes"] == 10 * 1024 ** 3


def test_the_storage_defaults_to_the_pool_of_the_root_disk():
    backend, _fake = connect()
    web1 = backend.instances.get("web1")
    assert backend.disks.pool(disk_spec({"name": "d", "instance": "web1"}, backend), web1) == "polyvirt"


def test_storage_or_instance_is_needed():
    backend, _fake = connect()
    with pytest.raises(InvalidInput) as caught:
        disk_spec({"name": "d"}, backend)
    assert "storage (the LXD storage pool) is required when instance is not set" in caught.value.message


def test_absent_detaches_from_both_instances_then_deletes():
    backend, fake = connect()
    result = DiskReconciler(backend, {"name": "data1", "storage": "polyvirt", "state": "absent"}).run()
    assert result["actions"] == ["detach disk data1 from instance db1", "detach disk data1 from instance web1", "delete disk data1"]
    assert changes(fake) == [("PUT", "/1.0/instances/db1"), ("PUT", "/1.0/instances/web1"), ("DELETE", "/1.0/storage-pools/polyvirt/volumes/custom/data1")]
    assert ("polyvirt", "data1") not in fake.volumes
    assert "shared" not in fake.instances["db1"]["devices"] and "data" not in fake.instances["web1"]["devices"]


def test_check_mode_absent_makes_no_change():
    backend, fake = connect()
    result = DiskReconciler(backend, {"name": "data1", "storage": "polyvirt", "state": "absent"}, check_mode=True).run()
    assert result["changed"] is True and fake.mutating() == []


def test_a_disk_attached_through_a_profile_cannot_be_detached_here():
    backend, fake = connect()
    fake.instances["web1"]["devices"] = {}
    fake.instances["web1"]["expanded_devices"]["data"] = {"type": "disk", "pool": "polyvirt", "source": "data1", "path": "/srv/data"}
    disk = backend.disks.get(disk_spec({"name": "data1", "storage": "polyvirt"}, backend), None)
    with pytest.raises(InvalidInput) as caught:
        backend.disks.detach(disk, "web1", deadline())
    assert "disk data1 is attached to instance web1 through a profile" in caught.value.message


def test_attaching_keeps_an_existing_device_name_and_path():
    backend, fake = connect()
    web1 = backend.instances.get("web1")
    disk = backend.disks.get(disk_spec({"name": "data1", "storage": "polyvirt"}, backend), web1)
    backend.disks.attach(disk, web1, {}, deadline())
    assert fake.instances["web1"]["devices"]["data"] == {"type": "disk", "pool": "polyvirt", "source": "data1", "path": "/srv/data"}


def test_a_device_name_taken_by_something_else_is_refused():
    backend, fake = connect()
    fake.instances["db1"]["devices"]["scratch"] = {"type": "disk", "path": "/scratch", "source": "/tmp"}
    fake._expand(fake.instances["db1"])  # pylint: disable=protected-access
    db1 = backend.instances.get("db1")
    disk = backend.disks.get(disk_spec({"name": "scratch", "storage": "polyvirt"}, backend), db1)
    with pytest.raises(InvalidInput) as caught:
        backend.disks.attach(disk, db1, {"path": "/mnt/scratch"}, deadline())
    assert "instance db1 already has a device named scratch that is not this disk" in caught.value.message


def test_a_copy_needs_its_source():
    backend, _fake = connect()
    with pytest.raises(NotFound) as caught:
        backend.disks.check_source(disk_spec({"name": "d", "storage": "polyvirt", "source": {"disk": "nope"}}, backend))
    assert caught.value.message == "source.disk nope does not exist in storage pool polyvirt"


@pytest.mark.parametrize("options, message", [
    ({"path": "relative"}, "backend_options.path must be an absolute path in the instance"),
    ({"mode": "rw"}, "backend_options.mode is not an LXD disk option"),
])
def test_disk_options_are_checked(options, message):
    backend, _fake = connect()
    with pytest.raises(InvalidInput) as caught:
        disk_spec({"name": "d", "storage": "polyvirt", "backend_options": options}, backend)
    assert message in caught.value.message
