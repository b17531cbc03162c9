#!/usr/bin/python
# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup
short_description: Make, export, prune, delete and restore backups of an instance on any backend
version_added: 0.1.0
description:
  - Makes a backup of an instance once by O(name), optionally downloads it to a file (O(location)), keeps only the
    newest O(retain), deletes it, or restores an instance from it (in place or as a new instance).
  - LXD, instance backups (C(/1.0/instances/<name>/backups)); an export streams the backup tarball to the file, and a
    restore uploads it (C(POST /1.0/instances) with C(X-LXD-name) and C(X-LXD-pool)). Every step waits on LXD's operation.
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
    details:
      - V(present) with O(name) and V(absent) are idempotent; without O(name) every run makes a new backup.
      - V(restored) restores on every run; with O(restore_to) a second run fails because that instance exists.
options:
  instance:
    description: The instance whose backup this is.
    type: str
    required: true
  name:
    description:
      - The backup's name. When given, the backup is found by it, so re-runs do not make another.
      - Required with O(state=absent); with O(state=restored), the backup to restore when O(location) is not set.
    type: str
  state:
    description:
      - V(present) makes the backup unless one with O(name) exists, downloads it to O(location) unless that file exists,
        then prunes to O(retain).
      - V(absent) deletes the backup on the server (a file at O(location) is left alone). Hikube tenants may not delete
        backups, so there it is refused before any change (capability C(backup.delete)).
      - V(restored) restores from the file O(location), or else from the backup O(name) on the server, into
        O(restore_to) or in place. In place, the backup is imported under a temporary name first and replaces the
        instance only once that worked; the instance is started again if it was running.
      - LXD has no in-place restore of a backup, so restoring in place replaces the instance, and LXD deletes the old
        instance's snapshots and server-side backups with it (the task warns which backups went). Export backups you
        want to keep with O(location) first.
    type: str
    choices: [present, absent, restored]
    default: present
  location:
    description:
      - A file path where the module runs (the controller with a local connection).
      - With O(state=present), where to download the backup (the file is written only when complete).
      - With O(state=restored), the backup file to restore from; a file that is not a backup of the backend is refused.
    type: path
  storage:
    description:
      - Where the backup is kept, where the backend lets you choose.
      - LXD keeps backups on the server, so this is refused with O(state=present); with O(state=restored) it is the
        storage pool of the restored instance (default, the pool the backup names).
    type: str
  mode:
    description:
      - How the instance is held while it is backed up, where the backend lets you choose (Proxmox vzdump modes).
      - Not supported on LXD.
    type: str
    choices: [snapshot, suspend, stop]
  retain:
    description:
      - After making the backup, keep only the newest O(retain) backups of the instance (O(name) is never pruned).
      - Needs backup deletion, so it is refused on Hikube before any change.
    type: int
  restore_to:
    description:
      - With O(state=restored), restore as a new instance of this name instead of in place.
      - An instance of that name that exists is refused before anything is done.
      - Hikube restores in place only (Cozystack refuses another name in the same namespace), so it is refused there
        (capability C(backup.restore_to)).
    type: str
  backend_options:
    description:
      - Backend-specific backup settings.
      - LXD, C(instance_only) (leave the instance's snapshots out), C(optimized_storage) (the pool driver's own format),
        C(compression_algorithm) and C(expires_at).
      - Hikube, C(backup_class) (the BackupClass of the BackupJob, default C(cozy-default)), checked against the
        BackupClasses the cluster lists before any change.
    type: dict
seealso:
  - module: polyvirt.compute.backup_info
  - module: polyvirt.compute.snapshot
"""

EXAMPLES = r"""
- name: Nightly backup of web1 downloaded to the controller, keeping seven on the server
  polyvirt.compute.backup:
    backend: lxd
    instance: web1
    name: "nightly-{{ now(fmt='%Y%m%d') }}"
    location: "/srv/backups/web1-{{ now(fmt='%Y%m%d') }}.tar.gz"
    retain: 7

- name: Restore that file as a new instance
  polyvirt.compute.backup:
    backend: lxd
    instance: web1
    location: /srv/backups/web1-20260101.tar.gz
    state: restored
    restore_to: web1-restored

- name: Roll web1 back in place to a backup on the server
  polyvirt.compute.backup:
    backend: lxd
    instance: web1
    name: nightly-20260101
    state: restored
"""

RETURN = r"""
backup:
  description: The backup (predicted in check mode); V({}) after O(state=absent).
  returned: always
  type: dict
  contains:
    id:
      description: The backend's id of the backup (LXD, its name).
      type: str
      sample: nightly-20260101
    name:
      description: The backup's name.
      type: str
      sample: nightly-20260101
    instance:
      description: The instance it belongs to.
      type: str
      sample: web1
    backend:
      description: The backend.
      type: str
      sample: lxd
    created_at:
      description: When it was made, as the backend reports it.
      type: str
      sample: "2026-01-01T02:00:00Z"
    size_bytes:
      description: Its size in bytes, when known (LXD, the size of the exported file).
      type: int
      sample: 104857600
    location:
      description: The file it was exported to, when O(location) is set.
      type: str
      sample: /srv/backups/web1-20260101.tar.gz
    backend_data:
      description: The backend's native object.
      type: dict
      sample: {}
backups:
  description: Every backup of the instance after the change, oldest first, each shaped like RV(backup).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "nightly-20260101", "instance": "web1", "backend": "lxd"}]
instance:
  description: The restored instance, as the C(instance) return of M(polyvirt.compute.instance).
  returned: when O(state=restored), outside check mode
  type: dict
  sample: {"name": "web1-restored", "backend": "lxd", "state": "stopped"}
actions:
  description: What the task did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
  sample: ["create backup nightly-20260101 of instance web1", "export backup nightly-20260101 of instance web1 to /srv/backups/web1.tar.gz"]
"""

from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import BackupReconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule


def main():
    module = PolyvirtModule(dict(
        instance=dict(type="str", required=True),
        name=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent", "restored"]),
        location=dict(type="path"),
        storage=dict(type="str"),
        mode=dict(type="str", choices=["snapshot", "suspend", "stop"]),
        retain=dict(type="int"),
        restore_to=dict(type="str"),
        backend_options=dict(type="dict"),
    ))
    module.run(lambda m: BackupReconciler(m.backend(), m.params, m.check_mode, m.diff_mode).run())


if __name__ == "__main__":
    main()
