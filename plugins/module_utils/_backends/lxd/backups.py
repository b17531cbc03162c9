# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LXD instance backups: kept by the server, exported as tarballs, restored by import.

LXD has no in-place restore: the backup is imported under a temporary name first, and only once that
worked is the old instance deleted and the copy renamed to it, so a failed restore loses nothing.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
import uuid

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backups
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.instances import validate_options
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import backup_result

BACKUP_OPTION_TYPES = {"instance_only": bool, "optimized_storage": bool, "compression_algorithm": str, "expires_at": str}


class LxdBackups(Backups):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client

    def _path(self, instance_name, *rest):
        return self.backend.instance_path(instance_name, "backups", *[self.client.quote(part) for part in rest])

    def validate(self, spec):
        validate_options(spec["backend_options"], BACKUP_OPTION_TYPES, "LXD backup")
        if spec.get("name") is not None and " " in spec["name"]:
            raise InvalidInput("name %r is not a valid LXD backup name (it cannot contain spaces)" % spec["name"])

    def list(self, instance):
        natives = instance["_native"].get("backups")  # present when the instance was read with its runtime state
        if natives is None:
            natives = self.client.get(self._path(instance["name"]), query={"recursion": 1}) or []
        return [backup_result(native["name"], instance["name"], self.backend.name, created_at=native.get("created_at"), backend_data=native)
                for native in natives]

    def create(self, instance, spec, deadline):
        body = {"instance_only": False, "optimized_storage": False}
        body.update(spec["backend_options"])
        if spec.get("name"):
            body["name"] = spec["name"]
        operation = self.client.run("POST", self._path(instance["name"]), body, timeout=deadline.remaining())
        name = spec.get("name") or _made_backup(operation)
        if name is None:  # a server that does not say which backup it made: the newest one
            return max(self.list(dict(instance, _native={})), key=lambda item: item["created_at"] or "")
        return self._read(instance["name"], name)

    def _read(self, instance_name, name):
        native = self.client.get(self._path(instance_name, name))
        return backup_result(native["name"], instance_name, self.backend.name, created_at=native.get("created_at"), backend_data=native)

    def delete(self, instance, backup, deadline):
        try:
            self.client.run("DELETE", self._path(instance["name"], backup["name"]), timeout=deadline.remaining())
        except NotFound:
            pass

    def export(self, instance, backup, path, deadline):
        return self.client.download(self._path(instance["name"], backup["name"], "export"), path, timeout=max(1, deadline.remaining()))

    def check_file(self, path):
        """An LXD backup is a tarball whose first member is ``backup/index.yaml``; zstd/squashfs ones are left to LXD."""
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic in (b"\x28\xb5\x2f\xfd", b"hsqs"):
            return {}
        try:
            with tarfile.open(path, "r:*") as archive:
                for count, member in enumerate(archive):
                    if member.name.lstrip("./") == "backup/index.yaml":
                        index = archive.extractfile(member).read(65536).decode("utf-8", "replace")
                        return _index_fields(index)
                    if count >= 20:
                        break
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidInput("%s is not an LXD backup (not a tarball: %s)" % (path, exc))
        raise InvalidInput("%s is not an LXD backup (it has no backup/index.yaml)" % path)

    def restore(self, target, deadline, instance=None, backup=None, path=None, storage=None):
        if path is not None:
            return self._import_as(path, target, instance, storage, deadline)
        handle, exported = tempfile.mkstemp(prefix=".polyvirt-backup-")
        os.close(handle)
        try:
            self.export(instance, backup, exported, deadline)
            return self._import_as(exported, target, instance, storage, deadline)
        finally:
            os.remove(exported)

    def _import_as(self, path, target, instance, storage, deadline):
        """Import ``path`` as ``target``; in place (``instance`` named ``target``) through a staging copy."""
        instances = self.backend.instances
        if instance is None or instance["name"] != target:
            self._import(path, target, storage, deadline)
            return instances.get(target)
        staging = "%s-r%s" % (target[:48], uuid.uuid4().hex[:8])
        self._import(path, staging, storage, deadline)

        def rename():
            self.client.run("POST", self.backend.instance_path(staging), {"name": target}, timeout=deadline.remaining())
            return instances.get(target)

        return self.replace_in_place(instance, instances.get(staging), lambda: instances.delete(instance, True, deadline), rename, deadline)

    def _import(self, path, name, storage, deadline):
        headers = {"X-LXD-name": name}
        if storage:
            headers["X-LXD-pool"] = storage
        query = {"target": self.client.target} if self.client.target else None
        operation = self.client.upload("/1.0/instances", path, headers=headers, query=query, timeout=max(1, deadline.remaining()))
        self.client.wait(operation, deadline.remaining())


def _made_backup(operation):
    """The name of the backup an LXD create operation made, from its resources (``.../backups/<name>``)."""
    for url in ((operation or {}).get("resources") or {}).get("backups") or []:
        return url.rstrip("/").split("/")[-1]
    return None


def _index_fields(index):
    """``name`` and ``pool`` from a backup's index.yaml (top-level scalars; no YAML library needed)."""
    fields = {}
    for line in index.splitlines():
        match = re.match(r"^(name|pool|backend|type):\s*(\S.*)$", line)
        if match:
            fields[match.group(1)] = match.group(2).strip().strip("\"'")
    return fields
