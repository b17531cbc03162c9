# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Mirrors INSTANCE_SETTINGS in plugins/module_utils/_args.py one to one (instance and clone).
    DOCUMENTATION = r"""
options:
  cpus:
    description: Number of virtual CPUs (LXD C(limits.cpu)).
    type: int
  memory:
    description:
      - Memory, as V(4GiB), V(512MiB), V(4G) (binary) or a bare number of MiB (LXD C(limits.memory)).
    type: raw
  disk_size:
    description:
      - Size of the root disk, as V(20GiB) or a bare number of GiB. Disks only grow; a smaller size is an error.
      - LXD, the size of the instance's root disk device (its storage pool must support quotas).
    type: raw
  flavor:
    description: A backend's named size (for example a Hikube C(instanceType) such as V(u1.medium)).
    type: str
  networks:
    description:
      - The instance's network interfaces, in order. When set, the list is the whole set of interfaces.
      - LXD, NIC devices V(eth0), V(eth1), ... on managed networks.
    type: list
    elements: dict
    suboptions:
      name:
        description: The network, bridge or switch to connect to. Required by LXD.
        type: str
      ipv4:
        description: A static IPv4 address (LXD reserves it in the network's DHCP), or V(dhcp).
        type: str
      ipv4_gateway:
        description: The IPv4 gateway, where the backend sets it.
        type: str
      ipv6:
        description: A static IPv6 address.
        type: str
      mac:
        description: The MAC address (compared case-insensitively).
        type: str
      nat:
        description: CloudCIX, give the interface a public address through NAT.
        type: bool
  ssh_keys:
    description: Public SSH keys for the default user, merged into the cloud-init C(ssh_authorized_keys).
    type: list
    elements: str
  cloud_init:
    description:
      - cloud-init configuration, rendered into the backend's own mechanism (LXD C(cloud-init.user-data) and
        C(cloud-init.network-config), or C(user.user-data) on servers that predate them).
      - cloud-init reads it at an instance's first boot, so it is applied when the instance is created. On an existing
        instance a difference is reported as a warning and left alone.
    type: dict
    suboptions:
      user_data:
        description:
          - "A dict (rendered as C(#cloud-config)) or a complete user-data string, which must start with a header
            cloud-init acts on (C(#cloud-config), C(#!), C(#include), C(#cloud-boothook), C(#part-handler),
            C(## template: jinja) or a MIME C(Content-Type:)); cloud-init ignores any other text."
          - It may hold password hashes, so it is never logged or returned, not even at C(-vvv).
        type: raw
      network_config:
        description: cloud-init network configuration (version 1 or 2), as a dict or a YAML string.
        type: raw
  description:
    description: A free-text description, where the backend has one.
    type: str
  tags:
    description: Tags of the instance, compared as a set (LXD stores them in C(user.polyvirt.tags)).
    type: list
    elements: str
  backend_options:
    description:
      - Raw backend-specific settings, merged last.
      - LXD, C(config) (instance config keys), C(devices) (device name to device), C(profiles) (the list of profiles,
        creation and update) and C(source) (a raw LXD image source, creation only).
    type: dict
  wait_for:
    description:
      - What to wait for after starting, within O(wait_timeout).
      - V(running) the instance runs; V(ip) it has a global IPv4 or IPv6 address on an interface (interfaces without
        addresses and link-local addresses are ignored); V(cloud_init) cloud-init reports it is done (LXD runs
        C(cloud-init status --wait) in the instance; an error fails the task and returns the report).
      - Defaults to V(running) when the instance is started.
    type: list
    elements: str
    choices: [running, ip, cloud_init]
  force:
    description:
      - Make sure a running instance stops when the task stops or deletes it.
      - On LXD it is stopped at once, without a clean shutdown. On Proxmox VE and Hyper-V a clean shutdown is
        tried first and the guest is stopped hard when it has not shut down within O(wait_timeout).
    type: bool
    default: false
  allow_restart:
    description:
      - What to do when a requested change to a running instance takes effect only after a restart, or can be made
        only while the instance is stopped.
      - V(true) restarts the instance after the change (or stops it, applies the change and starts it again) and says
        so in RV(actions). It also restarts an instance whose platform shows changes an earlier task left waiting for a
        restart (Proxmox VE C([PENDING]) values), so that they take effect.
      - V(false) applies a change the platform can hold until the next restart and returns RV(restart_required=true)
        with a warning; a change the platform refuses while the instance runs fails before anything changes, naming the
        setting and this option.
      - "On LXD, config keys that LXD documents as not live-updatable (C(linux.sysctl.*), C(raw.lxc), C(raw.idmap),
        C(security.privileged), C(security.idmap.*), C(security.syscalls.*)) take effect at the next restart; every other
        setting is applied at once."
    type: bool
    default: false
"""
