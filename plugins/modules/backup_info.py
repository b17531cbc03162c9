#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_info
short_description: List the backups of an instance on any backend
version_added: 0.1.0
description:
  - Returns the backups of one instance, oldest first, in the shape of M(polyvirt.compute.backup).
  - One read of the instance on LXD (its backups come with it).
author:
  - polyvirt.compute developers (@polyvirt)
extends_documentation_fragment:
  - polyvirt.compute.connection
  - polyvirt.compute.wait
  - polyvirt.compute.attributes
  - polyvirt.compute.attributes.info_module
options:
  instance:
    description: The instance whose backups to list. A missing instance is an error.
    type: str
    required: true
  name:
    description: Only the backup of this name (V([]) when it does not exist).
    type: str
seealso:
  - module: polyvirt.compute.backup
"""

EXAMPLES = r"""
- name: Backups of web1
  polyvirt.compute.backup_info:
    backend: lxd
    instance: web1
  register: found

- name: Their names
  ansible.builtin.debug:
    msg: "{{ found.backups | map(attribute='name') | list }}"
"""

RETURN = r"""
backups:
  description: The backups (V([]) when none), oldest first, each as the C(backup) return of M(polyvirt.compute.backup).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "nightly-20260101", "name": "nightly-20260101", "instance": "web1", "backend": "lxd", "created_at": "2026-01-01T02:00:00Z",
            "size_bytes": null, "location": null, "backend_data": {}}]
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import list_backups
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule


def run(module):
    params = module.params
    with failing_to("list", "backups of instance", params["instance"], params["backend"]):
        return {"changed": False, "backups": list_backups(module.backend(), params["instance"], params.get("name"))}


def main():
    module = PolyvirtModule(dict(
        instance=dict(type="str", required=True),
        name=dict(type="str"),
    ))
    module.run(run)


if __name__ == "__main__":
    main()
