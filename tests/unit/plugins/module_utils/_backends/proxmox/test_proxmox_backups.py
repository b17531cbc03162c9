# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Proxmox backups on FakePve: vzdump with the name in the notes, retain, restore in place and into a new guest."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import BackupReconciler
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.proxmox.test_proxmox_instances import connect


def backup(backend, check_mode=False, **params):
    values = {"instance": "web1", "state": "present", "wait_timeout": 30}
    values.update(params)
    return BackupReconciler(backend, values, check_mode=check_mode, diff_mode=True).run()


def test_a_backup_is_made_once_by_name_with_mode_and_storage():
    backend, fake = connect()
    made = backup(backend, name="nightly", mode="stop", storage="local")
    assert made["changed"] and made["backup"]["name"] == "nightly" and made["backup"]["id"].startswith("local:backup/vzdump-qemu-100-")
    sent = [request for request in fake.mutating() if request[1] == "nodes/pve/vzdump"][0][2]
    assert sent == {"vmid": 100, "storage": "local", "mode": "stop", "compress": "zstd", "notes-template": "polyvirt:nightly"}
    backend.forget()
    assert not backup(backend, name="nightly")["changed"]
    assert [item["name"] for item in backup(backend, name="nightly")["backups"]] == ["b0", "nightly"]


def test_retain_prunes_the_oldest():
    backend = connect()[0]
    result = backup(backend, name="new", retain=1)
    assert result["actions"] == ["create backup new of instance web1", "delete backup b0 of instance web1 (retain 1)"]


@pytest.mark.parametrize("params, text", [
    ({"name": "x", "location": "/tmp/backup.vma"}, "backup location (export to the controller) is not supported by the proxmox backend"),
    ({"name": "{{vmid}}"}, "cannot be kept in a Proxmox VE backup's notes"),
    ({"name": "x", "backend_options": {"zip": 1}}, "backend_options.zip is not a Proxmox VE backup option"),
    ({"name": "x", "storage": "local-lvm"}, "storage local-lvm on node pve cannot hold backups (those that can: local)"),
])
def test_bad_input_is_refused_before_any_change(params, text):
    backend, fake = connect()
    with pytest.raises(InvalidInput) as caught:
        backup(backend, **params)
    assert text in caught.value.message
    assert fake.mutating() == []


def test_restore_in_place_stops_restores_and_starts_again():
    backend, fake = connect()
    fake.guests[100]["config"]["cores"] = 8
    result = backup(backend, name="b0", state="restored")
    assert result["changed"] and result["instance"]["state"] == "running" and fake.guests[100]["config"]["cores"] == 2
    writes = [(method, path) for method, path, _sent in fake.mutating()]
    assert writes == [("POST", "nodes/pve/qemu/100/status/stop"), ("POST", "nodes/pve/qemu"), ("POST", "nodes/pve/qemu/100/status/start")]
    assert fake.mutating()[1][2] == {"archive": "local:backup/vzdump-qemu-100-2025_11_24-16_00_00.vma.zst", "vmid": 100, "force": 1}


def test_restore_into_a_new_guest_gets_a_new_vmid_and_the_name():
    backend, fake = connect()
    result = backup(backend, name="b0", state="restored", restore_to="web2")
    assert result["instance"]["name"] == "web2" and result["instance"]["id"] == 102
    sent = fake.mutating()[0][2]
    assert sent["unique"] == 1 and sent["name"] == "web2" and sent["vmid"] == 102
    assert fake.guests[100]["name"] == "web1"  # the original is left alone
