# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Hyper-V backend: one WinRM client (client.py) and its scripts (scripts.py), shared by the parts."""

from __future__ import annotations

import re

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv import scripts
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.client import HyperVClient
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline

# A read has no task deadline of its own (Instances.get takes none): bound it anyway.
READ_SECONDS = 120
# Absolute Windows paths: a drive letter, or a UNC share (which needs CredSSP or Kerberos delegation).
WINDOWS_PATH_RE = re.compile(r"^([A-Za-z]:\\|\\\\[^\\/]+\\[^\\/]+)")
BAD_PATH_CHARS = '<>"|?*\r\n\t'


def check_path(value, option, extensions=None):
    """``value`` as an absolute Windows path of the host (no ``..``, no wildcard), with one of ``extensions``."""
    if not isinstance(value, str) or not WINDOWS_PATH_RE.match(value):
        raise InvalidInput("%s must be an absolute Windows path on the Hyper-V host (such as C:\\Images\\debian12.vhdx), got %r" % (option, value))
    rest = value[2:]
    bad = [char for char in rest if char in BAD_PATH_CHARS or char == ":" or ord(char) < 32]
    if bad:
        raise InvalidInput("%s %r contains %r, which a Windows path cannot hold" % (option, value, bad[0]))
    if any(part in (".", "..") for part in value.replace("/", "\\").split("\\")):
        raise InvalidInput("%s %r must not contain . or .. components" % (option, value))
    if extensions and not value.lower().endswith(extensions):
        raise InvalidInput("%s %r must end with %s" % (option, value, " or ".join(extensions)))
    return value


def join(*parts):
    return "\\".join(part.rstrip("\\") for part in parts)


class HyperVBackend(Backend):
    name = "hyperv"
    default_type = "vm"
    parts = ("instances", "snapshots", "backups", "disks")
    features = {"vm": frozenset(("instance.paused", "instance.disk_size", "instance.description", "wait_for.ip", "snapshot.stateful", "clone",
                                 "backup.restore", "backup.delete", "backup.restore_to", "backup.storage", "instance.cloud_init",
                                 "instance.ssh_keys", "disk.optical", "clone.linked"))}
    notes = {
        "instance.vm": "VMs on a differencing disk of the parent VHDX named by `image`",
        "instance.paused": "`Suspend-VM` / `Resume-VM`",
        "instance.disk_size": "`Resize-VHD` of the boot VHDX, grow only (online on generation 2)",
        "instance.description": "the VM's Notes",
        "instance.tags": "Hyper-V has no tags, and Notes hold the description",
        "instance.cloud_init": "a NoCloud seed ISO (`cidata`) in a DVD drive, copied to the host over WinRM; read at first boot",
        "instance.ssh_keys": "in the seed ISO's user-data (`ssh_authorized_keys`)",
        "wait_for.ip": "from the integration services' KVP data",
        "wait_for.cloud_init": "no guest exec without guest credentials",
        "snapshot": "checkpoints",
        "snapshot.stateful": "standard checkpoints (production checkpoints otherwise)",
        "snapshot.description": "checkpoints have no description",
        "backup": "`Export-VM` into a host folder, `<storage>\\<instance>\\<name>` (default storage: `Backups` under the VM folder), "
                  "found again by that name; a running VM is exported live",
        "backup.restore": "`Import-VM -Copy -GenerateNewId` into a new name, or in place through a staging copy that replaces the VM once imported",
        "backup.storage": "a folder on the Hyper-V host (an absolute Windows path)",
        "backup.export": "an export is a folder of VHDX files on the host; WinRM has no sound way to stream gigabytes to the controller",
        "backup.mode": "Export-VM has one mode (a running VM is exported live)",
        "clone": "Export-VM, then Import-VM -Copy -GenerateNewId under the new name, without the source's checkpoints",
        "clone.linked": "a differencing disk on each VHDX of a stopped source (a running one is refused), in a new VM with the source's "
                        "settings; the source must not change while the clone uses its disks",
        "clone.target": "one host per connection",
        "disk": "VHDX files in a host directory, attached to the SCSI controller (IDE on generation 1)",
        "disk.optical": "a DVD drive of `instance` (added while the VM is off) holding the host's ISO file `backend_options.iso` "
                        "(default `<storage>\\<name>.iso`); detach removes the drive, never the ISO; the seed ISO is refused",
    }

    def __init__(self, settings):
        super().__init__(settings)
        if settings.get("vm_path"):
            check_path(settings["vm_path"], "connection.vm_path")
        self.client = HyperVClient(
            host=settings.get("host"),
            port=settings.get("port"),
            scheme=settings.get("scheme"),
            username=settings.get("username"),
            password=settings.get("password"),
            transport=settings.get("transport"),
            validate_certs=settings.get("validate_certs") is not False,
            ca_path=settings.get("ca_path"),
        )
        self._host = None

    def _load_part(self, name):
        if name == "instances":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.instances import HyperVInstances

            return HyperVInstances(self)
        if name == "snapshots":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.snapshots import HyperVSnapshots

            return HyperVSnapshots(self)
        if name == "backups":
            from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.backups import HyperVBackups

            return HyperVBackups(self)
        from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.disks import HyperVDisks

        return HyperVDisks(self)

    def close(self):
        self.client.close()

    def run(self, op, deadline=None, **args):
        """Run script ``op`` with ``args`` (values only through its base64 JSON) and return its result."""
        return self.client.run(op, scripts.build(op, args), deadline or Deadline(READ_SECONDS))

    def host(self):
        """``Get-VMHost`` (default paths, switches), read once and only when a decision needs it."""
        if self._host is None:
            self._host = self.run("host_get")
        return self._host

    def check_switch(self, switch, option):
        names = [item["name"] for item in self.host().get("switches") or []]
        if switch.lower() not in [name.lower() for name in names]:
            raise InvalidInput("%s %r is not a virtual switch of the Hyper-V host %s (its switches: %s)" % (
                option, switch, self.client.host, ", ".join(names) or "none"))
