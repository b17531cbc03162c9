# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LXD snapshots of instances."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Snapshots
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.instances import public_data, put_body
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import snapshot_result


class LxdSnapshots(Snapshots):
    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client

    def validate_name(self, name):
        if " " in name:
            raise InvalidInput("name %r is not a valid LXD snapshot name (it cannot contain spaces)" % name)

    def _path(self, instance, *rest):
        return self.backend.instance_path(instance["name"], "snapshots", *[self.client.quote(part) for part in rest])

    def describe(self, instance_name, native):
        name = native["name"].split("/")[-1]
        public = public_data(native)
        data = dict(native, config=public["config"], expanded_config=public["expanded_config"])
        return snapshot_result(name, instance_name, self.backend.name, created_at=native.get("created_at"), stateful=bool(native.get("stateful")),
                               backend_data=data)

    def list(self, instance):
        natives = instance["_native"].get("snapshots")  # present when the instance was read with its runtime state
        if natives is None:
            natives = self.client.get(self._path(instance), query={"recursion": 1}) or []
        return [self.describe(instance["name"], native) for native in natives]

    def create(self, instance, name, stateful, description, deadline):
        self.client.run("POST", self._path(instance), {"name": name, "stateful": bool(stateful)}, timeout=deadline.remaining())
        return self.describe(instance["name"], self.client.get(self._path(instance, name)))

    def delete(self, instance, snapshot, deadline):
        try:
            self.client.run("DELETE", self._path(instance, snapshot["name"]), timeout=deadline.remaining())
        except NotFound:
            pass

    def restore(self, instance, snapshot, deadline):
        self._check_volumes(snapshot)
        body = put_body(instance["_native"])
        body["restore"] = snapshot["name"]
        self.client.run("PUT", self.backend.instance_path(instance["name"]), body, timeout=deadline.remaining())
        instances = self.backend.instances
        restored = instances.get(instance["name"])
        # Leave the instance in the power state it had (a stateful snapshot may bring it back running).
        if instance["state"] == "running" and restored["state"] != "running":
            restored = instances.power(restored, "start", False, deadline)
        elif instance["state"] == "stopped" and restored["state"] == "running":
            restored = instances.power(restored, "stop", True, deadline)
        return restored

    def _check_volumes(self, snapshot):
        """LXD puts a snapshot's devices back before it starts the instance: a custom volume deleted since the
        snapshot leaves the instance stopped with a device it cannot start. Refuse that before any change."""
        devices = (snapshot.get("backend_data") or {}).get("devices") or {}
        for device_name, device in sorted(devices.items()):
            if device.get("type") != "disk" or not device.get("pool") or not device.get("source") or device.get("path") == "/":
                continue
            path = "/1.0/storage-pools/%s/volumes/custom/%s" % (self.client.quote(device["pool"]), self.client.quote(device["source"]))
            if self.client.get_or_none(path) is None:
                raise NotFound("snapshot %s has the disk device %s on storage volume %s of pool %s, which no longer exists; "
                               "LXD cannot restore it" % (snapshot["name"], device_name, device["source"], device["pool"]))
