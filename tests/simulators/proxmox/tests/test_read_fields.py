# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read fields of a PVE 9 server (simulator_fidelity.md section 1: memhost, pressure, serial, balloon, LXC swap and pid, lvmthin content)."""
from __future__ import annotations

from .conftest import wait_ok


def test_qemu_status_and_resources_carry_pve9_fields(pve):
    newid = int(pve.cluster.nextid.get())
    wait_ok(pve, pve.nodes('pve').qemu(9000).clone.post(newid=newid, name='fields-%d' % newid))
    guest = pve.nodes('pve').qemu(newid)
    stopped = guest.status.current.get()
    assert 'memhost' in stopped and 'pressurecpusome' not in stopped and stopped['serial'] == 1  # the seed has serial0
    entry = [item for item in pve.cluster.resources.get(type='vm') if item['vmid'] == newid][0]
    assert 'memhost' in entry
    wait_ok(pve, guest.status.start.post())
    running = guest.status.current.get()
    assert {'pid', 'balloon', 'pressurecpusome', 'pressureiosome', 'pressureiofull', 'pressurememorysome', 'pressurememoryfull'} <= set(running)
    wait_ok(pve, guest.status.stop.post())
    wait_ok(pve, guest.delete())


def test_lxc_status_has_swap_always_and_pid_when_running(pve):
    newid = int(pve.cluster.nextid.get())
    wait_ok(pve, pve.nodes('pve').lxc.post(vmid=newid, ostemplate='local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst', rootfs='local-lvm:1',
                                           hostname='fields-ct'))
    ct = pve.nodes('pve').lxc(newid)
    assert 'swap' in ct.status.current.get() and 'pid' not in ct.status.current.get()
    wait_ok(pve, ct.status.start.post())
    assert {'swap', 'pid', 'pressurecpusome'} <= set(ct.status.current.get())
    wait_ok(pve, ct.status.stop.post())
    wait_ok(pve, ct.delete())


def test_lvmthin_content_has_no_used_or_parent(pve):
    items = pve.nodes('pve').storage('local-lvm').content.get()
    assert items and all('used' not in item and 'parent' not in item for item in items)
