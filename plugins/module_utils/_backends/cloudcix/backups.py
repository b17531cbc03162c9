# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CloudCIX backups (``compute/backups``): kept by CloudCIX; restoring one is a request to CloudCIX support, so it is refused."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backups
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.snapshots import Copies
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.module_utils._model import backup_result


class CloudcixBackups(Copies, Backups):
    path = "compute/backups/"
    kind = "backup"

    def validate(self, spec):
        if spec["backend_options"]:
            raise InvalidInput("backend_options.%s is not a cloudcix backup option (it has none)" % sorted(spec["backend_options"])[0])
        if spec.get("name") is not None:
            self.check_name(spec["name"])

    def describe(self, instance_name, native):
        return backup_result(native["name"], instance_name, self.backend.name, id=native["id"], created_at=native.get("created"),
                             backend_data=dict(native), _native=native)

    def list(self, instance):
        return [self.describe(instance["name"], native) for native in self.natives(instance)]

    def create(self, instance, spec, deadline):
        return self.describe(instance["name"], self.make(instance, spec.get("name"), deadline))

    def delete(self, instance, backup, deadline):
        self.remove(backup["backend_data"], deadline)
