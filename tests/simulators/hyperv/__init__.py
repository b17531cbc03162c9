# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A loopback WinRM (WS-Management) endpoint that emulates a Hyper-V host. See README.md."""

from __future__ import annotations
