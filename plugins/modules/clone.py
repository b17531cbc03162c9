#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: clone
short_description: Clone an instance and configure, start and wait for the clone in the same task, on any backend
version_added: 0.1.0
description:
  - Copies instance O(source) (or its snapshot O(snapshot)) to a new instance O(name), applies the instance options
    (O(cpus), O(memory), O(cloud_init), O(networks), O(tags), O(backend_options), ...), powers it to O(state) and waits
    for O(wait_for), all in one task.
  - A clone whose O(name) exists is never cloned again; it is reconciled like M(polyvirt.compute.instance) would.
  - A new clone that fails to start is removed again, so a failed task leaves nothing half-made.
  - LXD, an instance copy (C(source.type=copy), C(instance_only), without the source's snapshots). The copy gets new
    MAC addresses and a new cloud-init instance id, so cloud-init runs again in it with O(cloud_init).
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
    support: full
options:
  source:
    description: The instance to clone.
    type: str
    required: true
  name:
    description: The clone's name, its identity. When an instance of this name exists it is reconciled, not cloned again.
    type: str
    required: true
  snapshot:
    description: Clone from this snapshot of O(source) instead of its current state.
    type: str
  mode:
    description:
      - V(full) makes an independent copy.
      - V(linked) makes a copy that shares unchanged data with the source, where the backend can.
      - LXD, copies are copy-on-write on C(zfs), C(btrfs), C(lvm) and C(ceph) pools, so V(linked) is accepted there;
        on other pools (such as C(dir)) it fails before any change.
    type: str
    choices: [full, linked]
    default: full
  target:
    description:
      - Where the clone runs (node, cluster member or host).
      - LXD, a cluster member; a server that is not clustered refuses it before any change.
    type: str
  state:
    description:
      - V(started) starts the clone (and waits for O(wait_for)); V(present) leaves a new clone stopped and an existing
        one's power as it is; V(stopped) stops it.
    type: str
    choices: [started, present, stopped]
    default: started
seealso:
  - module: polyvirt.compute.instance
  - module: polyvirt.compute.snapshot
"""

EXAMPLES = r"""
- name: Clone the golden Debian container, with its own cloud-init, started and provisioned in one task
  polyvirt.compute.clone:
    backend: lxd
    connection:
      project: polyvirt
    source: golden
    name: web2
    cpus: 2
    memory: 1GiB
    cloud_init:
      user_data:
        hostname: web2
        runcmd:
          - touch /run/provisioned
    tags: [web]
    wait_for: [ip, cloud_init]
  register: web2

- name: Clone from a snapshot, stopped
  polyvirt.compute.clone:
    backend: lxd
    source: web1
    snapshot: before-upgrade
    name: web1-debug
    state: present
"""

RETURN = r"""
instance:
  description: The clone after the task (predicted in check mode).
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
      description: The backend's native object, with secrets (such as cloud-init user data) removed.
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
cloned:
  description: Whether this task made the clone (false when O(name) existed and was reconciled).
  returned: always
  type: bool
  sample: true
restart_required:
  description:
    - Whether a change this task made (or an earlier one left pending) takes effect only at the instance's next restart;
      see O(allow_restart).
  returned: always
  type: bool
  sample: false
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_SETTINGS
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.clone import CloneReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule


def main():
    argument_spec = dict(
        source=dict(type="str", required=True),
        name=dict(type="str", required=True),
        snapshot=dict(type="str"),
        mode=dict(type="str", default="full", choices=["full", "linked"]),
        target=dict(type="str"),
        state=dict(type="str", default="started", choices=["started", "present", "stopped"]),
        **INSTANCE_SETTINGS
    )
    module = PolyvirtModule(argument_spec)
    module.run(lambda m: CloneReconciler(m.backend(), m.params, m.check_mode, m.diff_mode).run())


if __name__ == "__main__":
    main()
