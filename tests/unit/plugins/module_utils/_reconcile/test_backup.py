# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared backup reconciler, against the shared fake backend."""

import os

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, OperationFailed, Unsupported, WaitTimeout
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import BackupReconciler, list_backups
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils.fake_backend import fake_backend


def backend_with(backups=(), **kwargs):
    instances = [{"name": "web", "state": "running", "cpus": 2, "backups": list(backups)}, {"name": "other", "state": "stopped"}]
    return fake_backend(instances, **kwargs)


def params(**overrides):
    base = {"instance": "web", "name": None, "state": "present", "location": None, "storage": None, "mode": None, "retain": None,
            "restore_to": None, "backend_options": None, "wait": True, "wait_timeout": 5}
    base.update(overrides)
    return base


def run(backend, check_mode=False, **overrides):
    return BackupReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run()


def calls(backend):
    return [(call[0].split(".")[1],) + call[2:3] for call in backend.calls]


@pytest.mark.parametrize("existing, overrides, expected", [
    ([], {"name": "b1"}, [("create", "b1")]),
    (["b1"], {"name": "b1"}, []),
    (["b1"], {}, [("create", None)]),
    (["b1", "b2"], {"name": "b3", "retain": 2}, [("create", "b3"), ("delete", "b1")]),
    (["b1", "b2"], {"name": "b1", "retain": 1}, [("delete", "b2")]),
    (["b1"], {"name": "b1", "state": "absent"}, [("delete", "b1")]),
    ([], {"name": "b1", "state": "absent"}, []),
])
def test_plan(existing, overrides, expected):
    backend = backend_with(existing)
    result = run(backend, **overrides)
    assert calls(backend) == expected
    assert result["changed"] == bool(expected)
    checked = backend_with(existing)
    planned = run(checked, check_mode=True, **overrides)
    assert checked.calls == []
    assert planned["changed"] == result["changed"]
    assert len(planned["actions"]) == len(result["actions"])
    if overrides.get("name"):  # a generated name is only known once the backup exists
        assert planned["actions"] == result["actions"] and planned["diff"] == result["diff"]
        assert run(backend, **overrides)["changed"] is False


def test_export_happens_once_and_lands_whole(tmp_path):
    backend = backend_with()
    location = str(tmp_path / "web.tar")
    first = run(backend, name="b1", location=location)
    second = run(backend, name="b1", location=location)
    assert calls(backend) == [("create", "b1"), ("export", "b1")]
    assert first["backup"]["location"] == location and first["backup"]["size_bytes"] == os.path.getsize(location)
    assert first["actions"] == ["create backup b1 of instance web", "export backup b1 of instance web to %s" % location]
    assert second["changed"] is False and second["backup"]["location"] == location
    assert sorted(path.name for path in tmp_path.iterdir()) == ["web.tar"]


def test_check_mode_export_writes_nothing(tmp_path):
    backend = backend_with(["b1"])
    result = run(backend, check_mode=True, name="b1", location=str(tmp_path / "web.tar"))
    assert result["changed"] is True and backend.calls == []
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_no_file(tmp_path):
    backend = backend_with(["b1"], faults={"backups.export": OperationFailed("connection reset")})
    with pytest.raises(OperationFailed) as caught:
        run(backend, name="b1", location=str(tmp_path / "web.tar"))
    assert caught.value.message == "Failed to export backup b1 of instance web on fake: connection reset"
    assert list(tmp_path.iterdir()) == []  # neither the target nor the partial download


@pytest.mark.parametrize("check_mode", [False, True])
def test_an_unusable_export_target_is_refused_before_the_backup_is_made(tmp_path, check_mode):
    backend = backend_with()
    with pytest.raises(InvalidInput) as caught:
        run(backend, check_mode=check_mode, name="b1", location=str(tmp_path / "missing" / "web.tar"))
    assert "is in a directory that does not exist" in caught.value.message
    assert backend.calls == []


@pytest.mark.parametrize("state", ["present", "restored"])
def test_an_empty_location_is_refused_before_any_call(state):
    # fuzz: state=restored with location "" reached the LXD upload of a file named "".
    backend = backend_with(["b1"])
    with pytest.raises(InvalidInput) as caught:
        run(backend, name="b1", state=state, location="", restore_to="web" if state == "restored" else None)
    assert caught.value.message.endswith(": location must be a file path, got ''")
    assert backend.calls == []


def test_restore_in_place_is_one_driver_call_and_keeps_the_power_state():
    backend = backend_with(["b1", "b2"])
    result = run(backend, name="b1", state="restored")
    assert backend.calls == [("backups.restore", "web", "web", "b1", None)]
    assert result["instance"]["name"] == "web" and result["instance"]["state"] == "running"
    assert result["actions"] == ["restore instance web from backup b1 (replacing the current one)"]
    assert result["diff"]["after"] == {"restored": {"from": "b1", "to": "web"}}
    assert result["warnings"] == ["restoring in place replaced instance web, and its backups on the server went with it: b1, b2"]
    assert result["backups"] == []


def test_check_mode_restore_calls_nothing_and_predicts_the_actions():
    checked = backend_with(["b1"])
    planned = run(checked, check_mode=True, name="b1", state="restored")
    real = run(backend_with(["b1"]), name="b1", state="restored")
    assert checked.calls == []
    assert planned["actions"] == real["actions"] and planned["diff"] == real["diff"] and planned["changed"] is True


def test_restore_to_a_new_name_from_a_file(tmp_path):
    path = tmp_path / "b.tar"
    path.write_text("fake-backup web b1\n")
    backend = backend_with()
    result = run(backend, state="restored", location=str(path), restore_to="web2")
    assert backend.calls == [("backups.restore", "web2", None, None, str(path))]
    assert result["instance"]["name"] == "web2"
    assert result["actions"] == ["restore instance web2 from %s" % path]


def test_restore_in_place_from_a_file_replaces_the_instance(tmp_path):
    path = tmp_path / "b.tar"
    path.write_text("fake-backup web b1\n")
    backend = backend_with()
    result = run(backend, state="restored", location=str(path))
    assert backend.calls == [("backups.restore", "web", "web", None, str(path))]
    assert result["actions"] == ["restore instance web from %s (replacing the current one)" % path]


def test_restore_of_a_backup_into_a_new_name_warns_about_shared_disks():
    backend = fake_backend([{"name": "web", "state": "running", "backups": ["b1"], "shared_disks": ["pool0/data"]}])
    result = run(backend, name="b1", state="restored", restore_to="web2")
    assert backend.calls == [("backups.restore", "web2", "web", "b1", None)]
    assert result["warnings"] == ["restored instance web2 mounts the same disks as web (pool0/data): both write to them; detach them, or attach "
                                  "copies (disk with source.disk), if that is not what you want"]
    assert sorted(backend.world) == ["web", "web2"]


def test_a_failed_restore_reports_no_change():
    backend = backend_with(["b1"], faults={"backups.restore": OperationFailed("import failed")})
    with pytest.raises(OperationFailed) as caught:
        run(backend, name="b1", state="restored")
    assert caught.value.message == "Failed to restore backup b1 of instance web on fake: import failed"
    assert caught.value.result["changed"] is False
    assert backend.world["web"]["backups"]  # the instance is as it was


def test_a_restore_that_times_out_after_the_instance_exists_reports_it():
    backend = backend_with(["b1"], late_faults={"backups.restore": WaitTimeout("timed out after 5 s waiting for the import")})
    with pytest.raises(WaitTimeout) as caught:
        run(backend, name="b1", state="restored", restore_to="web2")
    assert "web2" in backend.world
    assert caught.value.result["changed"] is True
    assert caught.value.result["instance"]["name"] == "web2"


@pytest.mark.parametrize("overrides, without, error, message", [
    ({"name": "b1", "state": "restored", "restore_to": "other"}, (), Conflict, "restore_to other already exists"),
    ({"name": "nope", "state": "restored"}, (), NotFound, "backup nope of instance web does not exist (existing: b1)"),
    ({"name": "b1", "state": "restored", "instance": "gone"}, (), NotFound, "instance gone does not exist, so it has no backup b1"),
    ({"state": "restored"}, (), InvalidInput, "state=restored needs name (a backup of the instance) or location (a backup file)"),
    ({"state": "restored", "location": "/nonexistent/b.tar"}, (), InvalidInput, "location /nonexistent/b.tar is not a file"),
    ({"state": "absent"}, (), InvalidInput, "name is required to delete a backup"),
    ({"name": "b1", "mode": "stop"}, ("backup.mode",), Unsupported, "backup mode is not supported by the fake backend"),
    ({"name": "b1", "storage": "s"}, ("backup.storage",), Unsupported, "backup storage is not supported by the fake backend"),
    ({"name": "b1", "location": "/tmp/x.tar"}, ("backup.export",), Unsupported,
     "backup location (export to the controller) is not supported by the fake backend"),
    ({"name": "b1", "retain": 0}, (), InvalidInput, "retain must be a whole number"),
    ({"name": "b1", "restore_to": "x"}, (), InvalidInput, "restore_to is only used with state=restored"),
    ({"name": "b1", "instance": "gone"}, (), NotFound, "Failed to create backup b1 of instance gone on fake: instance gone does not exist"),
    ({"name": ".."}, (), InvalidInput, "name '..' is not a valid name"),
    ({"name": "b1", "state": "restored", "restore_to": "a\\b"}, (), InvalidInput, "restore_to 'a\\\\b' is not a valid name"),
    ({"name": "b 1"}, (), InvalidInput, "not a valid fake backup name"),
    ({"name": "b1", "state": "absent"}, ("backup.delete",), Unsupported, "backup deletion (state=absent, retain) is not supported by the fake backend"),
    ({"state": "absent"}, ("backup.delete",), Unsupported, "backup deletion (state=absent, retain) is not supported by the fake backend"),
    ({"name": "b2", "retain": 1}, ("backup.delete",), Unsupported, "backup deletion (state=absent, retain) is not supported by the fake backend"),
    ({"name": "b1", "state": "restored", "restore_to": "web2"}, ("backup.restore_to",), Unsupported,
     "backup restore into another instance (restore_to) is not supported by the fake backend"),
    ({"name": "b1", "state": "restored", "restore_to": "web2"}, ("backup.restore", "backup.restore_to"), Unsupported,
     "backup restore (state=restored) is not supported by the fake backend"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_bad_input_fails_before_any_call(overrides, without, error, message, check_mode):
    backend = backend_with(["b1"], without=without)
    with pytest.raises(error) as caught:
        run(backend, check_mode=check_mode, **overrides)
    assert message in caught.value.message
    assert backend.calls == []
    assert caught.value.result["changed"] is False


def test_without_delete_and_restore_to_backups_are_made_and_restored_in_place():
    backend = backend_with(["b1"], without=("backup.delete", "backup.restore_to"))
    made = run(backend, name="b2")
    assert made["changed"] and [item["name"] for item in made["backups"]] == ["b1", "b2"]
    restored = run(backend, name="b1", state="restored", restore_to="web")  # restore_to naming the instance itself is in place
    assert restored["changed"] and ("restore", "web") in calls(backend)


def test_a_backend_without_backups_refuses_before_any_call():
    backend = backend_with(parts=("instances",))
    with pytest.raises(Unsupported) as caught:
        run(backend, name="b1")
    assert caught.value.message == "Failed to validate backup b1 of instance web on fake: backups is not supported by the fake backend"
    assert backend.reads == []
    with pytest.raises(Unsupported):
        list_backups(backend, "web")


def test_a_file_that_is_not_a_backup_is_refused(tmp_path):
    path = tmp_path / "junk"
    path.write_text("junk")
    backend = backend_with()
    with pytest.raises(InvalidInput) as caught:
        run(backend, state="restored", location=str(path), restore_to="web2")
    assert "is not a fake backup" in caught.value.message
    assert backend.calls == []


def test_info():
    backend = backend_with(["a", "b"])
    assert [item["name"] for item in list_backups(backend, "web")] == ["a", "b"]
    assert [item["name"] for item in list_backups(backend, "web", "b")] == ["b"]
    with pytest.raises(NotFound):
        list_backups(backend, "gone")
    assert backend.calls == []
