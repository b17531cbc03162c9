# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Mirrors COMMON_ARGS (wait, wait_timeout) in plugins/module_utils/_args.py one to one.
    DOCUMENTATION = r"""
options:
  wait:
    description:
      - Wait for the requested conditions (for example O(polyvirt.compute.instance#module:wait_for)) before returning.
      - Operations that a later step of the same task depends on are always awaited.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds that all waiting in this task may take together.
      - Waits follow the backend's completion signal (LXD operations, Proxmox task UPIDs, Kubernetes watch,
        CloudCIX state) and back off otherwise. On timeout the task fails and still returns what was done.
    type: int
    default: 600
"""
