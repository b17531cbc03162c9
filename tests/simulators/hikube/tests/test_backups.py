# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# backups.cozystack.io as a Hikube tenant sees it: BackupClasses readable cluster-wide, Backups read-only,
# a failed BackupJob left Failed with its message and no Backup.

import pytest
from kubernetes.dynamic import exceptions as dexc

from .conftest import NS, unique, wait_for
from .test_cozystack import fetch, make_vm, res

BACKUPS = "backups.cozystack.io/v1alpha1"


@pytest.fixture(scope="module")
def tenant(sims):
    """Tenant RBAC (the default), the backup-fail and restore-fail faults for fail-vm and fail-restore."""
    return sims("--time-scale", "0", "--fault", "backup-fail:app=fail-vm,message=velero: upload of volume system failed",
                "--fault", "restore-fail:app=fail-restore,message=velero: restore partially failed").dynamic()


def job(dyn, name, app, backup_class="cozy-default"):
    res(dyn, BACKUPS, "BackupJob").create(namespace=NS, body={"metadata": {"name": name}, "spec": {
        "backupClassName": backup_class, "applicationRef": {"apiGroup": "apps.cozystack.io", "kind": "VMInstance", "name": app}}})
    return wait_for(fetch(dyn, BACKUPS, "BackupJob", name), lambda j: (j.get("status") or {}).get("phase") in ("Succeeded", "Failed"))


def test_a_tenant_reads_backup_classes_but_cannot_write_them(tenant):
    classes = res(tenant, BACKUPS, "BackupClass")
    assert [item.metadata.name for item in classes.get().items] == ["cozy-default"]
    assert classes.get(name="cozy-default").metadata.name == "cozy-default"
    with pytest.raises(dexc.ForbiddenError):
        classes.create(body={"metadata": {"name": "mine"}, "spec": {"strategies": []}})


def test_a_tenant_makes_backup_jobs_but_cannot_delete_backups(tenant):
    vm = unique("tb")
    make_vm(tenant, vm, {"instanceType": "u1.medium"})
    done = job(tenant, vm + "-b", vm)
    assert done["status"]["phase"] == "Succeeded"
    backup = fetch(tenant, BACKUPS, "Backup", done["status"]["backupRef"]["name"])()
    assert backup["spec"]["applicationRef"]["name"] == vm and backup["status"]["phase"] == "Ready"
    with pytest.raises(dexc.ForbiddenError):
        res(tenant, BACKUPS, "Backup").delete(namespace=NS, name=backup["metadata"]["name"])
    # the tenant may delete its job; the Backup stays
    res(tenant, BACKUPS, "BackupJob").delete(namespace=NS, name=vm + "-b")
    assert fetch(tenant, BACKUPS, "Backup", backup["metadata"]["name"])() is not None


def test_a_failed_job_keeps_its_message_and_makes_no_backup(tenant):
    make_vm(tenant, "fail-vm", {"instanceType": "u1.medium"})
    failed = job(tenant, unique("fj"), "fail-vm")
    assert failed["status"]["phase"] == "Failed" and failed["status"]["message"] == "velero: upload of volume system failed"
    assert "backupRef" not in failed["status"]
    assert not [item for item in res(tenant, BACKUPS, "Backup").get(namespace=NS).items if item.spec.applicationRef.name == "fail-vm"]
    vm = unique("tc")
    make_vm(tenant, vm, {"instanceType": "u1.medium"})
    unknown = job(tenant, unique("fc"), vm, backup_class="gold")
    assert unknown["status"]["phase"] == "Failed" and unknown["status"]["message"] == 'BackupClass "gold" not found'


def test_a_failed_restore_job_keeps_its_message_and_restores_nothing(tenant):
    make_vm(tenant, "fail-restore", {"instanceType": "u1.medium"})
    name = unique("rb")
    assert job(tenant, name, "fail-restore")["status"]["phase"] == "Succeeded"
    res(tenant, "apps.cozystack.io/v1alpha1", "VMInstance").patch(namespace=NS, name="fail-restore", body={"spec": {"instanceType": "u1.large"}},
                                                                  content_type="application/merge-patch+json")
    res(tenant, BACKUPS, "RestoreJob").create(namespace=NS, body={"metadata": {"name": name + "-r"}, "spec": {"backupRef": {"name": name}}})
    failed = wait_for(fetch(tenant, BACKUPS, "RestoreJob", name + "-r"), lambda j: (j.get("status") or {}).get("phase") in ("Succeeded", "Failed"))
    assert failed["status"]["phase"] == "Failed" and failed["status"]["message"] == "velero: restore partially failed"
    assert fetch(tenant, "apps.cozystack.io/v1alpha1", "VMInstance", "fail-restore")()["spec"]["instanceType"] == "u1.large"
