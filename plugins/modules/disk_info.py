#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: disk_info
short_description: List data disks on any backend
version_added: 0.1.0
description:
  - Returns data disks in the shape of M(polyvirt.compute.disk).
  - LXD, the custom storage volumes of the project, one list call per storage pool.
author:
  - polyvirt.compute developers (@polyvirt)
extends_documentation_fragment:
  - polyvirt.compute.connection
  - polyvirt.compute.wait
  - polyvirt.compute.attributes
  - polyvirt.compute.attributes.info_module
options:
  name:
    description: Only the disk of this name.
    type: str
  storage:
    description: Only disks in this storage (LXD storage pool). Without it, every pool.
    type: str
  instance:
    description: Only disks attached to this instance (their mount path is returned too). A missing instance is an error.
    type: str
seealso:
  - module: polyvirt.compute.disk
"""

EXAMPLES = r"""
- name: Disks attached to web1
  polyvirt.compute.disk_info:
    backend: lxd
    instance: web1
  register: found

- name: Where they are mounted
  ansible.builtin.debug:
    msg: "{{ found.disks | items2dict(key_name='name', value_name='path') }}"
"""

RETURN = r"""
disks:
  description: The matching disks (V([]) when none), each as the C(disk) return of M(polyvirt.compute.disk).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "web1-data", "backend": "lxd", "size_gib": 10, "size_bytes": 10737418240, "storage": "default",
            "attached_to": "web1", "path": "/srv/data", "backend_data": {}}]
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import list_disks
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule


def run(module):
    params = module.params
    with failing_to("list", "disks", params.get("name") or "(all)", params["backend"]):
        return {"changed": False, "disks": list_disks(module.backend(), params.get("name"), params.get("storage"), params.get("instance"))}


def main():
    module = PolyvirtModule(dict(
        name=dict(type="str"),
        storage=dict(type="str"),
        instance=dict(type="str"),
    ))
    module.run(run)


if __name__ == "__main__":
    main()
