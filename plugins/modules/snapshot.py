#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot
short_description: Take, restore and delete snapshots of an instance on any backend
version_added: 0.1.0
description:
  - Takes a snapshot of an instance once by name, rolls the instance back to it, or deletes it, on any backend that
    has snapshots (see the capability table in the collection's docs).
  - A snapshot is taken once; re-running the task with the same O(name) changes nothing.
  - LXD, instance snapshots (C(/1.0/instances/<name>/snapshots)).
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
    support: partial
    details: V(restored) rolls the instance back on every run; V(present) and V(absent) are idempotent.
options:
  instance:
    description: The instance whose snapshot this is.
    type: str
    required: true
  name:
    description: The snapshot's name, its identity within the instance.
    type: str
    required: true
  state:
    description:
      - V(present) takes the snapshot unless one with this name exists.
      - V(restored) rolls the instance back to the snapshot. The instance is left in the power state it had
        (a running instance runs again afterwards, a stopped one stays stopped).
      - V(absent) deletes the snapshot.
    type: str
    choices: [present, absent, restored]
    default: present
  description:
    description:
      - A description of a new snapshot, where the backend stores one.
      - LXD snapshots have no description, so setting it fails there with C(snapshot description is not supported by the lxd backend).
    type: str
  stateful:
    description:
      - Include the running instance's memory (LXD needs CRIU on the server; without it LXD's refusal is reported).
      - Creation only.
    type: bool
    default: false
  retain:
    description:
      - After taking the snapshot, keep only the newest O(retain) snapshots of the instance and delete the older ones.
      - The snapshot named by O(name) is never deleted by this.
    type: int
seealso:
  - module: polyvirt.compute.snapshot_info
  - module: polyvirt.compute.instance
"""

EXAMPLES = r"""
- name: Snapshot web1 before an upgrade, keeping the newest three snapshots
  polyvirt.compute.snapshot:
    backend: lxd
    instance: web1
    name: before-upgrade
    retain: 3

- name: Roll web1 back
  polyvirt.compute.snapshot:
    backend: lxd
    instance: web1
    name: before-upgrade
    state: restored

- name: Delete the snapshot
  polyvirt.compute.snapshot:
    backend: lxd
    instance: web1
    name: before-upgrade
    state: absent
"""

RETURN = r"""
snapshot:
  description: The snapshot (V({}) after O(state=absent)); in check mode, the predicted one.
  returned: always
  type: dict
  contains:
    name:
      description: The snapshot's name.
      type: str
      sample: before-upgrade
    instance:
      description: The instance it belongs to.
      type: str
      sample: web1
    backend:
      description: The backend.
      type: str
      sample: lxd
    created_at:
      description: When it was taken, as the backend reports it.
      type: str
      sample: "2026-11-23T09:53:09.603704175Z"
    stateful:
      description: Whether it includes memory.
      type: bool
      sample: false
    description:
      description: Its description, where the backend has one.
      type: str
      sample: null
    backend_data:
      description: The backend's native object, with secrets removed.
      type: dict
      sample: {}
snapshots:
  description: Every snapshot of the instance after the change, oldest first, each shaped like RV(snapshot).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "before-upgrade", "instance": "web1", "backend": "lxd", "stateful": false}]
actions:
  description: What the task did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
  sample: ["create snapshot before-upgrade of instance web1"]
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.snapshot import SnapshotReconciler


def main():
    module = PolyvirtModule(dict(
        instance=dict(type="str", required=True),
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent", "restored"]),
        description=dict(type="str"),
        stateful=dict(type="bool", default=False),
        retain=dict(type="int"),
    ))
    module.run(lambda m: SnapshotReconciler(m.backend(), m.params, m.check_mode, m.diff_mode).run())


if __name__ == "__main__":
    main()
