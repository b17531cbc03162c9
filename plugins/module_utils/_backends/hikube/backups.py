# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hikube backups through Cozystack's ``backups.cozystack.io`` API, as far as a tenant may use it.

A backup B of instance I is made by a ``BackupJob`` named ``I-B`` (backup names are per instance, as on the
other backends, while Kubernetes names are per namespace), whose controller makes the ``Backup`` its
``status.backupRef`` names; a backup's name is that Backup's without the ``I-`` prefix. A restore is a
``RestoreJob`` naming the Backup.
Tenants may create and delete jobs but only read Backups, so a backup cannot be deleted here; and the
platform refuses a restore under another name in the same namespace, so restores are in place only.
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backups
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.client import KubeAuthError, KubeExists
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.instances import wants_running
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import backup_result

BACKUPS = "/apis/backups.cozystack.io/v1alpha1"
API_VERSION = "backups.cozystack.io/v1alpha1"
DEFAULT_CLASS = "cozy-default"  # Cozystack's default BackupClass since v1.5.0
OPTION_TYPES = {"backup_class": str}
# Velero names its backup <namespace>-<job> and labels objects with it: keep job names to DNS-1123 labels.
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
JOB_NAME_MAX = 63
APP_GROUP = "apps.cozystack.io"
APP_KIND = "VMInstance"


def job_name(instance_name, name):
    return "%s-%s" % (instance_name, name)


def backup_name(instance_name, native_name):
    """The backup's name as the modules show it: the Backup's without the ``<instance>-`` of its job (one made elsewhere keeps its own)."""
    prefix = instance_name + "-"
    return native_name[len(prefix):] if native_name.startswith(prefix) and len(native_name) > len(prefix) else native_name


def _phase(job):
    return (job.get("status") or {}).get("phase")


class HikubeBackups(Backups):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client

    def _path(self, plural, name=None):
        return self.client.ns_path(BACKUPS, plural, name)

    def validate(self, spec):
        for key, value in spec["backend_options"].items():
            if key not in OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not a Hikube backup option (use %s)" % (key, ", ".join(sorted(OPTION_TYPES))))
            if not isinstance(value, OPTION_TYPES[key]) or not value:
                raise InvalidInput("backend_options.%s must be a non-empty %s, got %r" % (key, OPTION_TYPES[key].__name__, value))
        name = spec.get("name")
        if name is not None and (not NAME.match(name) or len(job_name(spec["instance"], name)) > JOB_NAME_MAX):
            raise InvalidInput("name %r is not a valid Hikube backup name: the BackupJob <instance>-<name> it makes takes lower-case "
                               "letters, digits and hyphens, starting and ending with a letter or digit, at most %d characters "
                               "(here %d for the name)" % (name, JOB_NAME_MAX, JOB_NAME_MAX - len(spec["instance"]) - 1))

    def check_create(self, instance, spec):
        """The BackupClass must be one the cluster lists (a job naming another would only fail later)."""
        wanted = self._backup_class(spec)
        try:
            listing = self.client.get(BACKUPS + "/backupclasses")
        except NotFound:
            raise Unsupported("backups are not supported by this hikube cluster: it does not serve backups.cozystack.io (Cozystack 0.40 or later)")
        except KubeAuthError as exc:
            if exc.code == 401:
                raise self.backend.refused(exc)
            return  # a cluster that hides its classes from tenants: the job reports an unknown one
        names = sorted(item["metadata"]["name"] for item in listing.get("items") or [])
        if wanted not in names:
            given = bool(spec["backend_options"].get("backup_class"))
            raise InvalidInput("%s %r is not a BackupClass of this cluster (available: %s)%s" % (
                "backend_options.backup_class" if given else "the default backup class", wanted, ", ".join(names) or "none",
                "" if given else "; choose one with backend_options.backup_class"))

    @staticmethod
    def _backup_class(spec):
        return spec["backend_options"].get("backup_class") or DEFAULT_CLASS

    def describe(self, instance_name, native):
        meta = native.get("metadata") or {}
        spec = native.get("spec") or {}
        return backup_result(backup_name(instance_name, meta.get("name")), instance_name, self.backend.name, id=meta.get("uid") or meta.get("name"),
                             created_at=spec.get("takenAt") or meta.get("creationTimestamp"), backend_data=native)

    def list(self, instance):
        name = instance["name"]
        found = []
        # A cluster without backups.cozystack.io has no backups (404); making one is refused by check_create.
        for native in (self.client.get_or_none(self._path("backups")) or {}).get("items") or []:
            ref = (native.get("spec") or {}).get("applicationRef") or {}
            if ref.get("kind") == APP_KIND and ref.get("name") == name and ref.get("apiGroup", APP_GROUP) == APP_GROUP:
                found.append(native)
        found.sort(key=lambda item: ((item.get("spec") or {}).get("takenAt") or item["metadata"].get("creationTimestamp") or "",
                                     item["metadata"]["name"]))
        return [self.describe(name, native) for native in found]

    def create(self, instance, spec, deadline):
        instance_name = instance["name"]
        name = job_name(instance_name, spec.get("name") or "backup-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S"))
        body = {"apiVersion": API_VERSION, "kind": "BackupJob", "metadata": {"name": name, "labels": {"polyvirt.io/instance": instance_name}},
                "spec": {"backupClassName": self._backup_class(spec), "applicationRef": {"apiGroup": APP_GROUP, "kind": APP_KIND, "name": instance_name}}}
        try:
            self.client.create(self._path("backupjobs"), body, timeout=deadline.remaining())
        except KubeExists:
            raise Conflict("a BackupJob named %s exists already in namespace %s (one still running, or one whose Backup has expired); "
                           "choose another name" % (name, self.client.namespace))
        job = self._wait_job("backupjobs", name, deadline, "the BackupJob %s" % name)
        if _phase(job) == "Failed":
            # Nothing half-made: the failed job goes, so the same name can be tried again.
            self.client.delete(self._path("backupjobs", name), timeout=deadline.remaining())
            raise OperationFailed("the BackupJob %s failed (it was deleted again): %s" % (name, (job.get("status") or {}).get("message") or "no message"))
        made = ((job.get("status") or {}).get("backupRef") or {}).get("name") or name
        return self.describe(instance_name, self.client.get(self._path("backups", made), timeout=deadline.remaining()))

    def _wait_job(self, plural, name, deadline, what):
        """Watch the job until it Succeeded or Failed (the client lists, then watches, within the task deadline)."""
        def done(items):
            for item in items:
                if item["metadata"]["name"] == name and _phase(item) in ("Succeeded", "Failed"):
                    return item
            return None

        return self.client.wait_list(self._path(plural), done, deadline, what, query={"fieldSelector": "metadata.name=" + name})

    def delete(self, instance, backup, deadline):
        # Refused before by the missing backup.delete capability; kept so no caller can get past it.
        raise Unsupported("backup deletion (state=absent, retain) is not supported by the hikube backend")

    def restore(self, target, deadline, instance=None, backup=None, path=None, storage=None):
        if path is not None or instance is None or backup is None or target != instance["name"]:
            raise Unsupported("backup restore into another instance (restore_to) is not supported by the hikube backend")
        instances = self.backend.instances
        was_running = wants_running((instance["_native"] or {}).get("spec") or {})
        # In place: no targetApplicationRef. The platform halts the VM, restores its volumes and release, keeps its IP and MAC.
        native_name = backup["backend_data"]["metadata"]["name"]
        body = {"apiVersion": API_VERSION, "kind": "RestoreJob", "metadata": {"generateName": native_name[:50] + "-restore-",
                                                                              "labels": {"polyvirt.io/instance": target}},
                "spec": {"backupRef": {"name": native_name}}}
        made = self.client.create(self._path("restorejobs"), body, timeout=deadline.remaining())
        name = made["metadata"]["name"]
        job = self._wait_job("restorejobs", name, deadline, "the RestoreJob %s of instance %s" % (name, target))
        if _phase(job) == "Failed":
            self.client.delete(self._path("restorejobs", name), timeout=deadline.remaining())
            raise OperationFailed("the RestoreJob %s failed (it was deleted again): %s" % (name, (job.get("status") or {}).get("message") or "no message"))
        restored = instances.get(target)
        if restored is None:
            raise OperationFailed("instance %s is gone after its RestoreJob %s succeeded" % (target, name))
        # The restored spec has the power state of backup time: put back the one the instance had.
        if was_running:
            restored = instances.power(restored, "start", False, deadline)  # waits until it runs again; no write when its spec runs it
        elif wants_running(restored["_native"].get("spec") or {}):
            restored = instances.power(restored, "stop", False, deadline)
        return restored
