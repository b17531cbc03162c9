# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Hikube backups (backups.cozystack.io) through the shared backup reconciler, on the emulator with tenant RBAC."""

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.backend import HikubeBackend  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, OperationFailed, Unsupported  # noqa: E402
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import BackupReconciler, list_backups  # noqa: E402
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.hikube.emulator import (  # noqa: E402
    Emulator, apps, backups, seed_backup, seed_instance,
)

FAILING = "fail1"  # the emulator's backup-fail fault is set for this instance
RESTORE_FAILING = "fail2"  # and its restore-fail fault for this one


@pytest.fixture(scope="module")
def sim():
    emulator = Emulator("--fault", "backup-fail:app=%s,message=velero: snapshot of volume system timed out" % FAILING,
                        "--fault", "restore-fail:app=%s,message=velero: restore partially failed" % RESTORE_FAILING)
    seed_instance(emulator, "web1")
    for name in ("other1", FAILING, RESTORE_FAILING):
        plain_instance(emulator, name)
    seed_backup(emulator, "other1", "other-b0")  # another instance's backup: never listed for web1
    yield emulator
    emulator.stop()


def plain_instance(emulator, name):
    emulator.admin("POST", apps("vmdisks"), {"metadata": {"name": name + "-system"},
                                             "spec": {"source": {"image": {"name": "ubuntu"}}, "storage": "5Gi", "storageClass": "replicated"}})
    emulator.admin("POST", apps("vminstances"), {"metadata": {"name": name}, "spec": {
        "runStrategy": "Always", "instanceType": "u1.medium", "instanceProfile": "ubuntu", "disks": [{"name": name + "-system"}]}})


def backup(sim, check_mode=False, **params):
    values = {"instance": "web1", "name": None, "state": "present", "location": None, "storage": None, "mode": None, "retain": None,
              "restore_to": None, "backend_options": None, "wait": True, "wait_timeout": 30}
    values.update(params)
    transport = sim.transport()
    return BackupReconciler(HikubeBackend(sim.settings()), values, check_mode=check_mode, diff_mode=True).run(), transport


def job_names(sim, plural="backupjobs"):
    return sorted(item["metadata"]["name"] for item in sim.admin("GET", backups(plural))["items"])


def test_create_list_and_idempotent(sim):
    check, transport = backup(sim, check_mode=True, name="bk1")
    assert check["changed"] and check["actions"] == ["create backup bk1 of instance web1"] and transport.mutating() == []
    assert "web1-bk1" not in job_names(sim)
    made, transport = backup(sim, name="bk1")
    assert made["changed"] and made["backup"]["name"] == "bk1" and made["backup"]["created_at"]
    assert [request[:2] for request in transport.mutating()] == [("POST", backups("backupjobs"))]
    job = sim.admin("GET", backups("backupjobs", "web1-bk1"))  # backup names are per instance; Kubernetes names per namespace
    assert job["spec"] == {"backupClassName": "cozy-default", "applicationRef": {"apiGroup": "apps.cozystack.io", "kind": "VMInstance", "name": "web1"}}
    again, transport = backup(sim, name="bk1")
    assert not again["changed"] and transport.mutating() == []
    # the VMInstance, its system disk, the Backup list; the BackupClasses are read only when a backup is to be made
    assert [request[1] for request in transport.reads()] == [apps("vminstances", "web1"), apps("vmdisks", "web1-system"), backups("backups")]
    backup(sim, name="bk2", backend_options={"backup_class": "cozy-default"})
    listed = list_backups(HikubeBackend(sim.settings()), "web1")
    assert [item["name"] for item in listed] == ["bk1", "bk2"]  # oldest first, other1's left out
    assert all(item["instance"] == "web1" and item["backend_data"]["spec"]["applicationRef"]["name"] == "web1" for item in listed)


def test_a_failed_job_is_deleted_and_its_message_reported(sim):
    with pytest.raises(OperationFailed) as caught:
        backup(sim, instance=FAILING, name="fb1")
    assert "the BackupJob %s-fb1 failed (it was deleted again): velero: snapshot of volume system timed out" % FAILING in caught.value.message
    assert FAILING + "-fb1" not in job_names(sim)  # nothing half-made
    assert not [item for item in sim.admin("GET", backups("backups"))["items"] if item["spec"]["applicationRef"]["name"] == FAILING]


def test_a_failed_restore_job_is_deleted_and_its_message_reported(sim):
    backup(sim, instance=RESTORE_FAILING, name="rb1")
    with pytest.raises(OperationFailed) as caught:
        backup(sim, instance=RESTORE_FAILING, name="rb1", state="restored")
    assert "(it was deleted again): velero: restore partially failed" in caught.value.message
    assert not [item for item in sim.admin("GET", backups("restorejobs"))["items"] if item["spec"]["backupRef"]["name"] == RESTORE_FAILING + "-rb1"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_an_unknown_backup_class_is_refused_before_any_change(sim, check_mode):
    with pytest.raises(InvalidInput) as caught:
        backup(sim, check_mode=check_mode, name="bk9", backend_options={"backup_class": "gold"})
    assert "backend_options.backup_class 'gold' is not a BackupClass of this cluster (available: cozy-default)" in caught.value.message
    assert "web1-bk9" not in job_names(sim)
    with pytest.raises(InvalidInput) as caught:
        backup(sim, check_mode=check_mode, name="bk9", backend_options={"class": "gold"})
    assert "backend_options.class is not a Hikube backup option (use backup_class)" in caught.value.message


@pytest.mark.parametrize("params, words", [
    ({"name": "bk1", "state": "restored", "restore_to": "web2"}, "backup restore into another instance (restore_to)"),
    ({"name": "bk1", "state": "absent"}, "backup deletion (state=absent, retain)"),
    ({"name": "bk5", "retain": 1}, "backup deletion (state=absent, retain)"),
    ({"name": "bk5", "mode": "stop"}, "backup mode"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_what_a_tenant_cannot_do_is_refused_before_any_request(sim, params, words, check_mode):
    with pytest.raises(Unsupported) as caught:
        backup(sim, check_mode=check_mode, **params)
    assert caught.value.message.endswith("%s is not supported by the hikube backend" % words)
    assert caught.value.result["changed"] is False


def test_restore_in_place_keeps_the_power_state(sim):
    backup(sim, name="bk1")
    sim.admin("PATCH", apps("vminstances", "web1"), {"spec": {"resources": {"cpu": "4"}}}, content_type="application/merge-patch+json")
    check, transport = backup(sim, check_mode=True, name="bk1", state="restored")
    assert check["changed"] and transport.mutating() == []
    restored, transport = backup(sim, name="bk1", state="restored")
    assert restored["actions"] == ["restore instance web1 from backup bk1 (replacing the current one)"]
    assert restored["instance"]["state"] == "running" and restored["instance"]["cpus"] == 2
    posts = [request[1] for request in transport.mutating() if request[0] == "POST"]
    assert posts == [backups("restorejobs")]
    jobs = [item for item in sim.admin("GET", backups("restorejobs"))["items"] if item["spec"]["backupRef"]["name"] == "web1-bk1"]
    assert [job["spec"] for job in jobs] == [{"backupRef": {"name": "web1-bk1"}}]  # no targetApplicationRef: in place
    # a stopped instance stays stopped, though its backup was taken while it ran
    sim.admin("PATCH", apps("vminstances", "web1"), {"spec": {"runStrategy": "Halted"}}, content_type="application/merge-patch+json")
    stopped, transport = backup(sim, name="bk1", state="restored")
    assert stopped["instance"]["state"] == "stopped"
    assert sim.admin("GET", apps("vminstances", "web1"))["spec"]["runStrategy"] == "Halted"
    sim.admin("PATCH", apps("vminstances", "web1"), {"spec": {"runStrategy": "Always"}}, content_type="application/merge-patch+json")


def test_a_bad_backup_name_is_refused_before_any_request(sim):
    with pytest.raises(InvalidInput) as caught:
        backup(sim, name="Nightly_1")
    assert "name 'Nightly_1' is not a valid Hikube backup name" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        backup(sim, name="x" * 59)  # web1-xxx... would be 64 characters
    assert "at most 63 characters (here 58 for the name)" in caught.value.message


def test_two_instances_may_have_backups_of_the_same_name(sim):
    first, transport = backup(sim, instance="web1", name="final")
    second, transport = backup(sim, instance="other1", name="final")
    assert first["backup"]["name"] == second["backup"]["name"] == "final"
    assert second["backups"][-1]["instance"] == "other1" and {"web1-final", "other1-final"} <= set(job_names(sim))


def test_a_cluster_without_the_backups_api_has_none_and_refuses_to_make_one():
    # Before Cozystack 0.40: backups.cozystack.io is not served (404 on its paths).
    emulator = Emulator("--fault", "error:verb=list,resource=backups,code=404", "--fault", "error:verb=list,resource=backupclasses,code=404")
    try:
        seed_instance(emulator, "web1")
        assert list_backups(HikubeBackend(emulator.settings()), "web1") == []
        with pytest.raises(Unsupported) as caught:
            backup(emulator, name="bk1")
        assert "it does not serve backups.cozystack.io" in caught.value.message
        assert caught.value.result["changed"] is False
    finally:
        emulator.stop()
