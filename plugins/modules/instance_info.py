#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: instance_info
short_description: List virtual machines and containers on any backend
version_added: 0.1.0
description:
  - Returns the instances of a backend in the same normalised shape as M(polyvirt.compute.instance).
  - One list call per backend where its API allows, never one call per instance.
author:
  - polyvirt.compute developers (@polyvirt)
extends_documentation_fragment:
  - polyvirt.compute.connection
  - polyvirt.compute.wait
  - polyvirt.compute.attributes
  - polyvirt.compute.attributes.info_module
options:
  name:
    description: Only the instance of this name (one read). Without it, every instance.
    type: str
  filters:
    description:
      - Keep only instances that match every filter.
      - V(name) (a shell-style pattern), V(state), V(type), V(location) and V(image) compare with the returned
        fields; V(tags) (a tag or a list) must all be present.
    type: dict
    default: {}
seealso:
  - module: polyvirt.compute.instance
"""

EXAMPLES = r"""
- name: Every running container of the lab project tagged demo
  polyvirt.compute.instance_info:
    backend: lxd
    connection:
      project: polyvirt
    filters:
      state: running
      tags: demo
  register: found

- name: Their addresses
  ansible.builtin.debug:
    msg: "{{ found.instances | map(attribute='ansible_host') | list }}"
"""

RETURN = r"""
instances:
  description: The matching instances (V([]) when none), each as the C(instance) return of M(polyvirt.compute.instance).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "web1", "backend": "lxd", "id": "web1", "type": "container", "state": "running", "cpus": 2,
            "memory_mib": 1024, "disk_gib": null, "addresses": {"ipv4": ["10.231.0.12"], "ipv6": []},
            "ansible_host": "10.231.0.12", "tags": ["demo"], "backend_data": {}}]
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import list_instances
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule


def run(module):
    params = module.params
    with failing_to("list", "instances", params.get("name") or "(all)", params["backend"]):
        return {"changed": False, "instances": list_instances(module.backend(), params.get("name"), params.get("filters"))}


def main():
    module = PolyvirtModule(dict(
        name=dict(type="str"),
        filters=dict(type="dict", default={}),
    ))
    module.run(run)


if __name__ == "__main__":
    main()
