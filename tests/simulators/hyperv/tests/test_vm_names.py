# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Get-VM -Name takes wildcards and answers every VM of a duplicated name; a cmdlet given a duplicated name fails."""

from __future__ import annotations

import pytest

from tests.simulators.hyperv.model import Host, HyperVError, wildcard_regex
from tests.simulators.hyperv.tests.conftest import Client, Emulator


@pytest.mark.parametrize('pattern, name, matches', [
    ('web*', 'WEB12', True),
    ('web?', 'web1', True),
    ('web?', 'web12', False),
    ('web[12]', 'web2', True),
    ('web[1-3]', 'web3', True),
    ('web[1-3]', 'web4', False),
    ('w[1]', 'w[1]', False),  # a literal bracket in a name is a character class to Get-VM
    ('w`[1`]', 'w[1]', True),  # unless escaped with backticks
    ('a.b', 'axb', False),
])
def test_wildcard_patterns_follow_powershell(pattern, name, matches):
    assert bool(wildcard_regex(pattern).match(name)) is matches


def test_an_unclosed_bracket_is_an_invalid_pattern():
    with pytest.raises(HyperVError) as failure:
        wildcard_regex('web[1')
    assert failure.value.type_name == 'System.Management.Automation.WildcardPatternException'


def test_get_vm_answers_every_match_and_scripts_keep_exact_names():
    host = Host(time_scale=0)
    for name in ('web1', 'web2', 'w[1]', 'w1'):
        host.vm_create({'name': name})
    assert [vm['name'] for vm in host.get_vms('web*')] == ['web1', 'web2']
    assert [vm['name'] for vm in host.get_vms('w[1]')] == ['w1']
    assert host.vm_get({'name': 'web*'}) is None  # no VM is named web*
    assert host.vm_get({'name': 'w[1]'}) is None  # the VM named w[1] is not found by its name
    assert host.vm_get({'name': 'WEB1'})['name'] == 'web1'


def test_a_duplicated_name_is_answered_twice_and_fails_cmdlets():
    host = Host(time_scale=0)
    first = host.vm_create({'name': 'twin'})
    second = host.vm_create({'name': 'twin'})  # New-VM does not refuse a name in use
    assert len(host.get_vms('twin')) == 2 and len(host.vm_list({})) == 2
    for op in (host.vm_get, host.vm_start, host.vm_remove):
        with pytest.raises(HyperVError) as failure:
            op({'name': 'twin'})
        assert "There are 2 virtual machines named 'twin' on this host" in failure.value.message
        assert first['id'] in failure.value.message and second['id'] in failure.value.message
    assert [vm['state'] for vm in host.vm_list({})] == ['Off', 'Off']


def test_the_contract_scripts_fail_on_a_duplicated_name():
    emulator = Emulator('--time-scale', '0')  # its own host: two VMs of one name cannot be removed by name
    try:
        client = Client(emulator)
        for dummy in range(2):
            client.ok('vm_create', {'name': 'twin', 'generation': 2, 'memory_startup': 512 * 1024 ** 2})
        ids = [vm['id'] for vm in client.ok('vm_list')]
        message = client.fails('vm_get', {'name': 'twin'})
        assert "There are 2 virtual machines named 'twin' on this host" in message and all(vm_id in message for vm_id in ids)
        assert "There are 2 virtual machines named 'twin'" in client.fails('vm_start', {'name': 'twin'})
        assert client.ok('vm_get', {'name': 'tw*'}) is None
        assert [vm['state'] for vm in client.ok('vm_list')] == ['Off', 'Off']
    finally:
        assert emulator.stop() == 0
