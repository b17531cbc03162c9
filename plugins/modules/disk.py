#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: disk
short_description: Create, grow, attach, detach and delete a data disk on any backend
version_added: 0.1.0
description:
  - Makes one data disk match the options, and attaches it to an instance.
  - LXD, a custom storage volume (C(/1.0/storage-pools/<pool>/volumes/custom)) mounted in the instance by a C(disk)
    device named like the volume. The root disk is sized with O(polyvirt.compute.instance#module:disk_size) instead.
  - Asking for something the backend cannot do fails before any change with
    C(<feature> is not supported by the <backend> backend); see the capability table in the collection's docs.
author:
  - polyvirt.compute developers (@polyvirt)
extends_documentation_fragment:
  - polyvirt.compute.connection
  - polyvirt.compute.wait
  - polyvirt.compute.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description: The disk's identity (LXD custom volume name, Proxmox slot, Hikube C(VMDisk), CloudCIX volume, Hyper-V VHDX).
    type: str
    required: true
  instance:
    description:
      - The instance to attach the disk to (O(state=present)) or detach it from (O(state=detached)).
      - Unset, the disk's attachment is left as it is.
      - A disk attached to another instance is refused; detach it there first.
    type: str
  state:
    description:
      - V(present) creates the disk if needed, grows it to O(size) and attaches it to O(instance).
      - V(detached) creates the disk if needed and makes sure it is not attached (to O(instance), or to any instance
        when O(instance) is unset); the data stays.
      - V(absent) detaches the disk and deletes it with its data.
    type: str
    choices: [present, detached, absent]
    default: present
  size:
    description:
      - The disk's size, as V(10GiB) or a bare number of GiB. Disks only grow; a smaller size is an error.
      - LXD, the volume's C(size) (enforced where the pool driver supports quotas).
    type: raw
  storage:
    description:
      - Where the disk lives (LXD storage pool, Proxmox storage, Kubernetes storageClass, CloudCIX SKU, Hyper-V directory).
      - LXD, defaults to the pool of O(instance)'s root disk; required without O(instance).
      - Hikube, defaults to the storage class of O(instance)'s system disk, else V(replicated); a disk is found by its name
        alone, so O(state=absent) needs neither O(storage) nor O(instance).
    type: str
  source:
    description:
      - What a new disk is made from; creation only. Unset or V({}), an empty disk.
      - LXD supports only V(disk) (a copy of another custom volume in the same pool).
      - Hikube takes V(image), V(url) or V(disk); a V(disk) copy is a CDI clone, refused while a running VM's pod mounts
        the source (a disk attached to a running VM is mounted from the VM's next start).
      - Without O(size), a copy is as large as its source; a smaller O(size) is refused on Hikube.
    type: dict
    suboptions:
      disk:
        description: Another disk to copy.
        type: str
      image:
        description: An image to fill the disk from.
        type: str
      url:
        description: A URL to download the disk from.
        type: str
  optical:
    description: An optical (CD/DVD) drive rather than a disk. Not supported on LXD.
    type: bool
    default: false
  backend_options:
    description:
      - Backend-specific settings.
      - LXD, C(path) (where the volume is mounted in the instance, default C(/mnt/<name>)) and C(config) (volume config
        keys, creation only).
    type: dict
seealso:
  - module: polyvirt.compute.disk_info
  - module: polyvirt.compute.instance
"""

EXAMPLES = r"""
- name: A 10 GiB data volume mounted at /srv/data in web1
  polyvirt.compute.disk:
    backend: lxd
    name: web1-data
    instance: web1
    size: 10GiB
    backend_options:
      path: /srv/data

- name: Detach it, keeping the data
  polyvirt.compute.disk:
    backend: lxd
    name: web1-data
    storage: default
    state: detached

- name: A copy of it
  polyvirt.compute.disk:
    backend: lxd
    name: web1-data-copy
    storage: default
    source:
      disk: web1-data

- name: Delete it
  polyvirt.compute.disk:
    backend: lxd
    name: web1-data
    storage: default
    state: absent

- name: On Hikube, a copy of a VMDisk no running VM mounts
  polyvirt.compute.disk:
    backend: hikube
    connection:
      namespace: tenant-demo
    name: db1-data-copy
    source:
      disk: db1-data
"""

RETURN = r"""
disk:
  description: The disk after the task (predicted in check mode); V({}) when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: The disk's name.
      type: str
      sample: web1-data
    backend:
      description: The backend.
      type: str
      sample: lxd
    size_gib:
      description: Its size in GiB (a fraction for sizes that are not whole GiB), when it has one.
      type: float
      sample: 10
    size_bytes:
      description: Its size in bytes, when it has one.
      type: int
      sample: 10737418240
    storage:
      description: Where it lives (LXD storage pool).
      type: str
      sample: default
    attached_to:
      description: The instance it is attached to, or V(null).
      type: str
      sample: web1
    path:
      description: Where it is mounted in O(instance), when the backend mounts it (LXD).
      type: str
      sample: /srv/data
    backend_data:
      description: The backend's native object.
      type: dict
      sample: {}
actions:
  description: What the task did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
  sample: ["create disk web1-data in default", "attach disk web1-data to instance web1 at path=/srv/data"]
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import DiskReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule


def main():
    module = PolyvirtModule(dict(
        name=dict(type="str", required=True),
        instance=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "detached", "absent"]),
        size=dict(type="raw"),
        storage=dict(type="str"),
        source=dict(type="dict", options=dict(
            disk=dict(type="str"),
            image=dict(type="str"),
            url=dict(type="str"),
        )),
        optical=dict(type="bool", default=False),
        backend_options=dict(type="dict"),
    ))
    module.run(lambda m: DiskReconciler(m.backend(), m.params, m.check_mode, m.diff_mode).run())


if __name__ == "__main__":
    main()
