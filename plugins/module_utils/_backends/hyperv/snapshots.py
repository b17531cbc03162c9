# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hyper-V checkpoints: standard ones (with memory) when ``stateful``, production ones otherwise."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Snapshots
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._model import snapshot_result

NAME_MAX = 100  # Hyper-V's limit for checkpoint names


class HyperVSnapshots(Snapshots):
    def validate_name(self, name):
        if len(name) > NAME_MAX:
            raise InvalidInput("name %r is too long for a Hyper-V checkpoint (at most %d characters)" % (name, NAME_MAX))
        if "*" in name or "?" in name or "[" in name:
            # Remove-VMSnapshot -Name reads wildcards: "*" would remove every checkpoint.
            raise InvalidInput("name %r is not a valid checkpoint name here: * ? [ are wildcards to Hyper-V's cmdlets" % name)

    def describe(self, instance_name, native):
        return snapshot_result(native["name"], instance_name, self.backend.name, created_at=native.get("created"),
                               stateful=native.get("type") == "Standard", backend_data=dict(native))

    def list(self, instance):
        return [self.describe(instance["name"], native) for native in self.backend.run("checkpoint_list", name=instance["name"]) or []]

    def create(self, instance, name, stateful, description, deadline):
        wanted = "Standard" if stateful else "Production"
        # Checkpoint-VM takes the VM's checkpoint type; set it first when it differs (Standard includes memory).
        if instance["_native"].get("checkpoint_type") != wanted:
            self.backend.run("vm_set", deadline, name=instance["name"], checkpoint_type=wanted)
        return self.describe(instance["name"], self.backend.run("checkpoint_create", deadline, name=instance["name"], checkpoint=name))

    def delete(self, instance, snapshot, deadline):
        try:
            self.backend.run("checkpoint_remove", deadline, name=instance["name"], checkpoint=snapshot["name"])
        except NotFound:
            pass  # gone already

    def restore(self, instance, snapshot, deadline):
        instances = self.backend.instances
        restored = instances.describe(self.backend.run("checkpoint_restore", deadline, name=instance["name"], checkpoint=snapshot["name"]))
        # A production checkpoint restores to Off, a standard one to the state it saved: go back to the power state before.
        if instance["state"] == "running" and restored["state"] != "running":
            restored = instances.power(restored, "start", False, deadline)
        elif instance["state"] == "stopped" and restored["_native"].get("state") != "Off" and instance["_native"].get("state") == "Off":
            restored = instances.power(restored, "stop", True, deadline)
        return restored
