#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: instance
short_description: Create, configure, power and delete a virtual machine or container on any backend
version_added: 0.1.0
description:
  - Makes one instance (container or virtual machine) match the options, on LXD, Proxmox VE, Hikube, CloudCIX or
    Hyper-V, with one vocabulary.
  - An option that is not set is left as it is. Sizes are compared after normalising units, so V(4GiB), V(4096MiB)
    and V(4096) are the same memory.
  - The name is the instance's identity; a second instance with the same name is never created.
  - Asking for something the backend cannot do fails before any change with
    C(<feature> is not supported by the <backend> backend); see the capability table in the collection's README.
author:
  - polyvirt.compute developers (@polyvirt)
extends_documentation_fragment:
  - polyvirt.compute.connection
  - polyvirt.compute.wait
  - polyvirt.compute.instance_settings
  - polyvirt.compute.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: partial
    details: V(restarted) restarts the instance on every run, as with other Ansible modules.
options:
  name:
    description: The instance's name (LXD instance name, Proxmox guest name, Kubernetes object name, ...).
    type: str
    required: true
  state:
    description:
      - V(started) creates the instance if needed, applies the options and makes sure it runs.
      - V(present) creates and configures it and leaves the power state alone (a new one is created, not started).
      - V(stopped), V(paused) and V(restarted) set the power state; V(paused) needs a running instance.
      - V(absent) deletes it (stopping it first; see O(force)).
    type: str
    choices: [started, present, stopped, restarted, paused, absent]
    default: started
  type:
    description:
      - V(container) or V(vm). Creation only.
      - Defaults to V(container) on LXD and V(vm) elsewhere.
    type: str
    choices: [container, vm]
  image:
    description:
      - What a new instance is made from. Creation only; required to create.
      - LXD, a local image alias or fingerprint, or V(remote:alias) for the V(images), V(ubuntu) and V(ubuntu-daily) remotes
        (another image server goes in O(backend_options) C(source)).
    type: str
seealso:
  - module: polyvirt.compute.instance_info
"""

EXAMPLES = r"""
- name: A Debian container with a user made by cloud-init, waiting until cloud-init is done
  polyvirt.compute.instance:
    backend: lxd
    connection:
      project: polyvirt
    name: web1
    image: polyvirt/debian12
    cpus: 2
    memory: 1GiB
    ssh_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly alice@example
    cloud_init:
      user_data:
        users:
          - name: alice
            shell: /bin/bash
        runcmd:
          - touch /run/provisioned
    tags: [web, demo]
    wait_for: [ip, cloud_init]
  register: web1

- name: Show where to reach it
  ansible.builtin.debug:
    msg: "{{ web1.instance.ansible_host }}"

- name: Give it more memory (applied live on LXD containers)
  polyvirt.compute.instance:
    backend: lxd
    name: web1
    memory: 2GiB

- name: Freeze it
  polyvirt.compute.instance:
    backend: lxd
    name: web1
    state: paused

- name: Remove it, even while it runs
  polyvirt.compute.instance:
    backend: lxd
    name: web1
    state: absent
    force: true
"""

RETURN = r"""
instance:
  description: The instance after the task (predicted in check mode); empty when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: The instance's name.
      type: str
      sample: web1
    backend:
      description: The backend.
      type: str
      sample: lxd
    id:
      description: The backend's own id (LXD name, Proxmox vmid, Kubernetes uid, CloudCIX id, Hyper-V VM id).
      type: str
      sample: web1
    type:
      description: V(container) or V(vm).
      type: str
      sample: container
    state:
      description: V(running), V(stopped), V(paused), V(pending) or V(error).
      type: str
      sample: running
    cpus:
      description: Virtual CPUs, when limited.
      type: int
      sample: 2
    memory_mib:
      description: Memory in MiB, when limited.
      type: int
      sample: 1024
    disk_gib:
      description: Root disk size in GiB, when set.
      type: int
      sample: 10
    image:
      description: The image the instance was made from, as the backend reports it.
      type: str
      sample: Debian 12 with cloud-init (polyvirt lab)
    description:
      description: The description.
      type: str
      sample: web server
    addresses:
      description:
        - Global addresses by family (loopback and link-local left out).
        - Filled when the task waits for an address (O(wait_for) includes V(ip)). Otherwise a backend may leave it empty
          to keep the idempotent check to its cheapest read (LXD computes runtime state only on request); use
          M(polyvirt.compute.instance_info), which always reads them.
      type: dict
      sample: {"ipv4": ["10.231.0.12"], "ipv6": []}
    ansible_host:
      description: The address to connect to (the first IPv4, else the first IPv6), when RV(instance.addresses) has one.
      type: str
      sample: 10.231.0.12
    networks:
      description: The network interfaces (device, network name, MAC, addresses).
      type: list
      elements: dict
      sample: [{"device": "eth0", "name": "polyvirtbr0", "ipv4": "dhcp", "mac": "00:16:3e:aa:bb:cc", "addresses": ["10.231.0.12"]}]
    location:
      description: The node, cluster member or host that runs it, where there is one.
      type: str
      sample: null
    tags:
      description: The tags.
      type: list
      elements: str
      sample: [demo, web]
    backend_data:
      description:
        - The backend's native object, with secrets (such as cloud-init user data) removed.
        - Runtime state (LXD's C(state) counters), snapshots and backups are left out; the normalised fields and the
          C(_info) modules carry them. This keeps the per-task result small, which matters for long loops.
      type: dict
      sample: {}
actions:
  description: What the task did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
  sample: ["create container web1 from polyvirt/debian12", "start instance web1"]
cloud_init:
  description: The result of waiting for cloud-init (O(wait_for=cloud_init)).
  returned: when O(wait_for) contains V(cloud_init) and the instance was started
  type: dict
  contains:
    status:
      description: cloud-init's status (V(done), V(error), ...).
      type: str
      sample: done
    exit_code:
      description: The exit code of C(cloud-init status --wait).
      type: int
      sample: 0
    output:
      description: What C(cloud-init status --wait --long) printed.
      type: str
      sample: "status: done"
restart_required:
  description:
    - Whether a change this task made (or an earlier one left pending) takes effect only at the instance's next restart;
      see O(allow_restart).
  returned: always
  type: bool
  sample: false
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="started", choices=["started", "present", "stopped", "restarted", "paused", "absent"]),
        **INSTANCE_OPTIONS
    )
    module = PolyvirtModule(argument_spec)
    module.run(lambda m: InstanceReconciler(m.backend(), m.params, m.check_mode, m.diff_mode).run())


if __name__ == "__main__":
    main()
