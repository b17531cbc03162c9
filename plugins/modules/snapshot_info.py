#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot_info
short_description: List the snapshots of an instance on any backend
version_added: 0.1.0
description:
  - Returns the snapshots of one instance, oldest first, in the shape of M(polyvirt.compute.snapshot).
  - One read of the instance on LXD (its snapshots come with it).
author:
  - polyvirt.compute developers (@polyvirt)
extends_documentation_fragment:
  - polyvirt.compute.connection
  - polyvirt.compute.wait
  - polyvirt.compute.attributes
  - polyvirt.compute.attributes.info_module
options:
  instance:
    description: The instance whose snapshots to list. A missing instance is an error.
    type: str
    required: true
  name:
    description: Only the snapshot of this name (V([]) when it does not exist).
    type: str
seealso:
  - module: polyvirt.compute.snapshot
"""

EXAMPLES = r"""
- name: Snapshots of web1
  polyvirt.compute.snapshot_info:
    backend: lxd
    instance: web1
  register: found

- name: Their names
  ansible.builtin.debug:
    msg: "{{ found.snapshots | map(attribute='name') | list }}"
"""

RETURN = r"""
snapshots:
  description: The snapshots (V([]) when none), oldest first, each as the C(snapshot) return of M(polyvirt.compute.snapshot).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "before-upgrade", "instance": "web1", "backend": "lxd", "created_at": "2026-11-23T09:53:09Z", "stateful": false,
            "description": null, "backend_data": {}}]
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.snapshot import list_snapshots


def run(module):
    params = module.params
    with failing_to("list", "snapshots of instance", params["instance"], params["backend"]):
        return {"changed": False, "snapshots": list_snapshots(module.backend(), params["instance"], params.get("name"))}


def main():
    module = PolyvirtModule(dict(
        instance=dict(type="str", required=True),
        name=dict(type="str"),
    ))
    module.run(run)


if __name__ == "__main__":
    main()
