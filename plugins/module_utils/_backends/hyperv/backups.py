# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hyper-V backups: ``Export-VM`` into a folder of the host, found again by that folder's name.

A backup named B of VM V lives in ``<storage>\\V\\B``, where Export-VM writes ``V\\Virtual Machines``,
``V\\Virtual Hard Disks`` and ``V\\Snapshots``. ``storage`` is a host folder; without it, ``Backups``
under the VM folder root (``connection.vm_path`` or the host's default). A restore is
``Import-VM -Copy -GenerateNewId`` of the export, so the backup stays as it was: into a new name
directly, in place through a staging copy that replaces the VM only once the import worked.
"""

from __future__ import annotations

import datetime
import uuid

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backups
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.backend import check_path, join
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import backup_result

# A backup's name is a folder name on the host.
NAME_BAD = set('<>:"|?*[]')
NAME_MAX = 100


class HyperVBackups(Backups):
    def __init__(self, backend):
        super().__init__(backend)
        self._storage = None  # the task's storage (validate sees the spec first); backup_info reads the default

    def validate(self, spec):
        if spec["backend_options"]:
            raise InvalidInput("backend_options: Hyper-V backups take none, got %s" % ", ".join(sorted(spec["backend_options"])))
        name = spec.get("name")
        if name is not None:
            bad = sorted(set(name) & NAME_BAD)
            if bad or len(name) > NAME_MAX or name != name.strip() or name.endswith("."):
                raise InvalidInput("name %r is not a valid Hyper-V backup name: it is a folder name on the host (at most %d characters, "
                                   "none of < > : \" | ? * [ ], no leading or trailing space, no trailing dot)" % (name, NAME_MAX))
        if spec.get("storage"):
            check_path(spec["storage"], "storage")
            self._storage = spec["storage"]

    def root(self, storage=None):
        storage = storage or self._storage
        if storage:
            return storage
        return join(self.backend.settings.get("vm_path") or self.backend.host()["virtual_machine_path"], "Backups")

    def _folder(self, instance_name, name=None):
        return join(self.root(), instance_name, name) if name else join(self.root(), instance_name)

    def list(self, instance):
        name = instance["name"]
        folder = self._folder(name)
        found = []
        # One read: every exported configuration below the VM's folder; a backup is <folder>\<backup>\<vm>\Virtual Machines\<id>.vmcx.
        try:
            items = self.backend.run("dir_list", path=folder, recurse=True, filter="*.vmcx") or []
        except NotFound:
            items = []  # no backup of this VM yet
        for item in items:
            parts = item["path"][len(folder) + 1:].split("\\")
            if len(parts) != 4 or parts[2].lower() != "virtual machines" or item.get("directory"):
                continue
            found.append(backup_result(parts[0], name, self.backend.name, created_at=item.get("created"),
                                       backend_data={"path": join(folder, parts[0]), "config_path": item["path"], "vm_name": parts[1]}))
        return found

    def create(self, instance, spec, deadline):
        name = spec.get("name") or "backup-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = self._folder(instance["name"], name)
        exported = self.backend.run("vm_export", deadline, name=instance["name"], path=path)
        return backup_result(name, instance["name"], self.backend.name,
                             created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                             backend_data={"path": path, "config_path": exported["config_path"], "vm_name": instance["name"]})

    def delete(self, instance, backup, deadline):
        try:
            self.backend.run("item_remove", deadline, path=backup["backend_data"]["path"], recurse=True)
        except NotFound:
            pass  # gone already

    def restore(self, target, deadline, instance=None, backup=None, path=None, storage=None):
        if path is not None:  # needs backup.export, which the backend does not have: refused before
            raise InvalidInput("location: Hyper-V restores only backups kept on the host")
        instances = self.backend.instances
        config = backup["backend_data"]["config_path"]
        if instance is None or instance["name"] != target:
            self._import(config, target, deadline)
            return instances.get(target)
        staging = "%s-r%s" % (target[:80], uuid.uuid4().hex[:8])
        self._import(config, staging, deadline)
        return self.replace_in_place(
            instance, instances.get(staging),
            lambda: instances.remove(instance, True, deadline, keep_seed=True),  # the copy's DVD drive holds the same seed ISO
            lambda: instances.describe(self.backend.run("vm_rename", deadline, name=staging, new_name=target)), deadline)

    def _import(self, config, name, deadline):
        """Import-VM -Copy -GenerateNewId into the new VM's own folder under the VM folder root (``storage`` is where backups are)."""
        folder = join(self.backend.instances.vm_root(), name)
        self.backend.run("vm_import", deadline, path=config, vm_path=folder, vhd_path=join(folder, "Virtual Hard Disks"), new_name=name)
