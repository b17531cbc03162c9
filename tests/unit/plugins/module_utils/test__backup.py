# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared backup reconciler, against a small in-memory backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backend import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._backup import BackupReconciler, list_backups
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import instance_result
from ansible_collections.polyvirt.compute.plugins.module_utils._resources import backup_result


class BackupBackend(Backend):
    """Instances with lists of backup names; every mutating call is logged."""

    name = "memory"
    capabilities = frozenset(("backup", "backup.export"))

    def __init__(self, instances=None, fail_import=False):
        self.instances = dict(instances if instances is not None else {"web": {"state": "running", "backups": []}})
        self.calls = []
        self.fail_import = fail_import

    def get_instance(self, name):
        raw = self.instances.get(name)
        return dict(raw, name=name, backups=list(raw["backups"])) if raw is not None else None

    def describe_instance(self, raw):
        return instance_result(raw["name"], self.name, state=raw["state"])

    def list_backups(self, raw):
        return [backup_result(name, raw["name"], self.name, created_at="2026-01-01T00:00:%02dZ" % index) for index, name in enumerate(raw["backups"])]

    def create_backup(self, raw, spec, deadline):
        self.calls.append(("create", spec["name"]))
        self.instances[raw["name"]]["backups"].append(spec["name"] or "backup%d" % len(raw["backups"]))
        return self.get_instance(raw["name"])

    def delete_backup(self, raw, name, deadline):
        self.calls.append(("delete", name))
        self.instances[raw["name"]]["backups"].remove(name)

    def export_backup(self, raw, name, path, deadline):
        self.calls.append(("export", name))
        with open(path, "w") as handle:
            handle.write("backup %s" % name)
        return 9

    def check_backup_file(self, path):
        with open(path) as handle:
            if not handle.read().startswith("backup "):
                raise InvalidInput("%s is not a backup" % path)
        return {}

    def import_backup(self, path, name, storage, deadline):
        self.calls.append(("import", name))
        if self.fail_import:
            raise OperationFailed("import failed")
        self.instances[name] = {"state": "stopped", "backups": []}
        return self.get_instance(name)

    def delete_instance(self, raw, force, deadline):
        self.calls.append(("delete instance", raw["name"]))
        del self.instances[raw["name"]]

    def rename_instance(self, raw, name, deadline):
        self.calls.append(("rename", name))
        self.instances[name] = self.instances.pop(raw["name"])
        return self.get_instance(name)

    def power(self, raw, action, force, deadline):
        self.calls.append((action, raw["name"]))
        self.instances[raw["name"]]["state"] = "running"
        return self.get_instance(raw["name"])


def run(backend, check_mode=False, **params):
    params.setdefault("instance", "web")
    return BackupReconciler(backend, params, check_mode=check_mode, diff_mode=True).run()


@pytest.mark.parametrize("existing, params, calls", [
    ([], {"name": "b1"}, [("create", "b1")]),
    (["b1"], {"name": "b1"}, []),
    (["b1"], {}, [("create", None)]),
    (["b1", "b2"], {"name": "b3", "retain": 2}, [("create", "b3"), ("delete", "b1")]),
    (["b1", "b2"], {"name": "b1", "retain": 1}, [("delete", "b2")]),
    (["b1"], {"name": "b1", "state": "absent"}, [("delete", "b1")]),
    ([], {"name": "b1", "state": "absent"}, []),
])
def test_plan(existing, params, calls):
    backend = BackupBackend({"web": {"state": "running", "backups": list(existing)}})
    result = run(backend, **params)
    assert backend.calls == calls
    assert result["changed"] == bool(calls)
    planned = run(BackupBackend({"web": {"state": "running", "backups": list(existing)}}), check_mode=True, **params)
    assert len(planned["actions"]) == len(result["actions"])


def test_export_happens_once_and_lands_whole(tmp_path):
    backend = BackupBackend()
    location = str(tmp_path / "web.tar")
    first = run(backend, name="b1", location=location)
    second = run(backend, name="b1", location=location)
    assert backend.calls == [("create", "b1"), ("export", "b1")]
    assert first["backup"]["location"] == location and first["backup"]["size_bytes"] == 9
    assert second["changed"] is False
    assert sorted(path.name for path in tmp_path.iterdir()) == ["web.tar"]


def test_restore_in_place_imports_first_then_replaces_and_starts(tmp_path):
    backend = BackupBackend({"web": {"state": "running", "backups": ["b1"]}})
    result = run(backend, name="b1", state="restored")
    names = [call[0] for call in backend.calls]
    assert names == ["export", "import", "delete instance", "rename", "start"]
    assert backend.calls[1][1].startswith("web-r")
    assert list(backend.instances) == ["web"]
    assert result["instance"]["state"] == "running"
    assert "b1" in result["warnings"][0]


def test_a_failed_import_leaves_the_instance_alone(tmp_path):
    backend = BackupBackend({"web": {"state": "running", "backups": ["b1"]}}, fail_import=True)
    with pytest.raises(OperationFailed):
        run(backend, name="b1", state="restored")
    assert list(backend.instances) == ["web"]
    assert ("delete instance", "web") not in backend.calls


def test_restore_to_a_new_name_from_a_file(tmp_path):
    path = tmp_path / "b.tar"
    path.write_text("backup b1")
    backend = BackupBackend()
    result = run(backend, state="restored", location=str(path), restore_to="web2")
    assert backend.calls == [("import", "web2")]
    assert result["instance"]["name"] == "web2"


@pytest.mark.parametrize("params, error, message", [
    ({"name": "b1", "state": "restored", "restore_to": "other"}, Conflict, "restore_to other already exists"),
    ({"name": "nope", "state": "restored"}, NotFound, "backup nope of instance web does not exist"),
    ({"state": "restored"}, InvalidInput, "needs name"),
    ({"state": "absent"}, InvalidInput, "name is required to delete a backup"),
    ({"name": "b1", "mode": "stop"}, Unsupported, "backup mode is not supported by the memory backend"),
    ({"name": "b1", "storage": "s"}, Unsupported, "backup storage is not supported by the memory backend"),
    ({"name": "b1", "retain": 0}, InvalidInput, "retain must be a whole number"),
    ({"name": "b1", "restore_to": "x"}, InvalidInput, "restore_to is only used with state=restored"),
    ({"name": "b1", "instance": "gone"}, NotFound, "instance gone does not exist"),
])
def test_bad_input_fails_before_any_call(params, error, message):
    backend = BackupBackend({"web": {"state": "running", "backups": ["b1"]}, "other": {"state": "stopped", "backups": []}})
    with pytest.raises(error) as caught:
        run(backend, **params)
    assert message in caught.value.message
    assert backend.calls == []


def test_a_file_that_is_not_a_backup_is_refused(tmp_path):
    path = tmp_path / "junk"
    path.write_text("junk")
    backend = BackupBackend()
    with pytest.raises(InvalidInput):
        run(backend, state="restored", location=str(path), restore_to="web2")
    assert backend.calls == []


def test_info():
    backend = BackupBackend({"web": {"state": "running", "backups": ["a", "b"]}})
    assert [item["name"] for item in list_backups(backend, "web")] == ["a", "b"]
    assert [item["name"] for item in list_backups(backend, "web", "b")] == ["b"]
