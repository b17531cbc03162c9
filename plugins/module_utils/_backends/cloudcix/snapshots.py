# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CloudCIX snapshots (``compute/snapshots``) and backups (``compute/backups``): copies of a running instance, each a robot request."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Snapshots
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.instances import WAIT_FIRST, WAIT_LONGEST, hypervisor
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, OperationFailed
from ansible_collections.polyvirt.compute.plugins.module_utils._model import snapshot_result
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import poll

GONE = ("delete", "deleting", "deleted", "closed")
FAILED = ("unresourced", "error", "failed")


class Copies:
    """What snapshots and backups share: listed by instance, made by POST, waited for, deleted by request."""

    path = None
    kind = None

    def __init__(self, backend):
        self.backend = backend
        self.client = backend.client

    def natives(self, instance):
        found = self.client.list(self.path, search={"instance_id": instance["id"], "project_id": self.backend.project_id})
        return [native for native in found if native.get("state") not in GONE]

    def check_name(self, name):
        if len(name) > 128 or name != name.strip():
            raise InvalidInput("name %r is not a valid CloudCIX %s name (at most 128 characters, no leading or trailing spaces)" % (name, self.kind))

    def make(self, instance, name, deadline):
        if instance["state"] != "running":
            raise Conflict("CloudCIX takes a %s of a running instance only, and instance %s is %s" % (self.kind, instance["name"], instance["state"]))
        body = {"instance_id": instance["id"], "project_id": self.backend.project_id, "type": hypervisor(instance["_native"])}
        if name:
            body["name"] = name
        native = self.client.write("POST", self.path, body, deadline=deadline)
        return self.wait(native, ("running",), deadline, "%s %s of instance %s to be made" % (self.kind, native.get("name"), instance["name"]))

    def remove(self, native, deadline):
        path = "%s%s/" % (self.path, native["id"])
        try:
            current = self.client.read(path, deadline=deadline)  # fresh: the caller's copy may be older than a delete
            current = self.wait(current, ("running",) + FAILED + GONE, deadline, "%s %s to settle" % (self.kind, native.get("name")))
            if current.get("state") not in GONE:
                current = self.client.write("PATCH", path, {"state": "delete"}, deadline=deadline)
            # The instance accepts no state request while one of its snapshots is busy: wait until it is gone.
            self.wait(current, ("deleted", "closed"), deadline, "%s %s to be deleted" % (self.kind, native.get("name")))
        except NotFound:
            pass

    def wait(self, native, states, deadline, what):
        if native.get("state") in states:
            return native

        def check():
            current = self.client.read("%s%s/" % (self.path, native["id"]), deadline=deadline)
            if current.get("state") in states:
                return current
            if current.get("state") in FAILED:
                raise OperationFailed("%s %s is %s while waiting for %s" % (self.kind, current.get("name"), current["state"], what))
            return None

        return poll(check, deadline, what, first=WAIT_FIRST, longest=WAIT_LONGEST)


class CloudcixSnapshots(Copies, Snapshots):
    path = "compute/snapshots/"
    kind = "snapshot"

    def validate_name(self, name):
        self.check_name(name)

    def describe(self, instance_name, native):
        return snapshot_result(native["name"], instance_name, self.backend.name, created_at=native.get("created"), backend_data=dict(native),
                               _native=native)

    def list(self, instance):
        return [self.describe(instance["name"], native) for native in self.natives(instance)]

    def create(self, instance, name, stateful, description, deadline):
        return self.describe(instance["name"], self.make(instance, name, deadline))

    def delete(self, instance, snapshot, deadline):
        self.remove(snapshot["backend_data"], deadline)

    def restore(self, instance, snapshot, deadline):
        """A revert (``update_running`` on the snapshot) needs a running instance: a stopped one is started for it and stopped again."""
        instances = self.backend.instances
        was = instance["state"]
        current = instance
        if was != "running":
            current = instances.power(instance, "start", False, deadline)
        native = self.client.write("PATCH", "%s%s/" % (self.path, snapshot["backend_data"]["id"]), {"state": "update_running"}, deadline=deadline)
        self.wait(native, ("running",), deadline, "instance %s to revert to snapshot %s" % (instance["name"], snapshot["name"]))
        current = instances.get(instance["name"])
        if was == "stopped":
            current = instances.power(current, "stop", False, deadline)
        return current
