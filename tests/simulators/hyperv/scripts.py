# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reference scripts that follow the script contract (README.md), one per operation.

They are real Windows PowerShell 5.1 and would print the same JSON on a Hyper-V host as the emulator
does. ``build(op, args)`` returns the full script; ``bootstrap_command()`` the short command line that
reads a long script from stdin; ``encoded_command(script)`` the one-shot command line.
"""

from __future__ import annotations

import base64
import json

HEADER = '# polyvirt-hyperv: {op} {b64}'

PRELUDE = r"""$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [Text.Encoding]::UTF8
$a = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('{b64}')) | ConvertFrom-Json
function ConvertTo-PvNic($nic) {
    [pscustomobject]@{
        name = $nic.Name
        mac = $nic.MacAddress
        switch = $nic.SwitchName
        ips = @($nic.IPAddresses)
        vlan_id = [int](Get-VMNetworkAdapterVlan -VMNetworkAdapter $nic).AccessVlanId
    }
}
function ConvertTo-PvDisk($drive) {
    [pscustomobject]@{
        path = $drive.Path
        controller_type = $drive.ControllerType.ToString()
        controller_number = $drive.ControllerNumber
        controller_location = $drive.ControllerLocation
    }
}
function ConvertTo-PvVhd($vhd) {
    [pscustomobject]@{
        path = $vhd.Path
        format = $vhd.VhdFormat.ToString()
        type = $vhd.VhdType.ToString()
        size = $vhd.Size
        file_size = $vhd.FileSize
        parent_path = if ($vhd.ParentPath) { $vhd.ParentPath } else { $null }
        attached = $vhd.Attached
    }
}
function ConvertTo-PvCheckpoint($cp) {
    [pscustomobject]@{
        name = $cp.Name
        id = "$($cp.Id)"
        type = $cp.SnapshotType.ToString()
        created = $cp.CreationTime.ToUniversalTime().ToString('o')
        parent = if ($cp.ParentSnapshotName) { $cp.ParentSnapshotName } else { $null }
        vm_name = $cp.VMName
    }
}
function ConvertTo-PvVm($vm) {
    $secure = $null
    if ($vm.Generation -eq 2) {
        $secure = (Get-VMFirmware -VM $vm).SecureBoot.ToString()
    }
    [pscustomobject]@{
        name = $vm.Name
        id = "$($vm.Id)"
        state = $vm.State.ToString()
        status = $vm.Status
        generation = $vm.Generation
        cpu = $vm.ProcessorCount
        memory_startup = $vm.MemoryStartup
        memory_minimum = $vm.MemoryMinimum
        memory_maximum = $vm.MemoryMaximum
        memory_assigned = $vm.MemoryAssigned
        dynamic_memory = $vm.DynamicMemoryEnabled
        uptime_s = [int]$vm.Uptime.TotalSeconds
        notes = $vm.Notes
        path = $vm.Path
        checkpoint_type = $vm.CheckpointType.ToString()
        secure_boot = $secure
        kvp = (Get-VMIntegrationService -VM $vm -Name 'Key-Value Pair Exchange').Enabled
        parent_checkpoint = if ($vm.ParentSnapshotName) { $vm.ParentSnapshotName } else { $null }
        nics = @(Get-VMNetworkAdapter -VM $vm | ForEach-Object { ConvertTo-PvNic $_ })
        disks = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object { ConvertTo-PvDisk $_ })
        dvds = @(Get-VMDvdDrive -VM $vm | ForEach-Object { ConvertTo-PvDisk $_ })
    }
}
function ConvertTo-PvItem($item) {
    [pscustomobject]@{
        name = $item.Name
        path = $item.FullName
        directory = $item.PSIsContainer
        length = if ($item.PSIsContainer) { $null } else { $item.Length }
        created = if ($item.PSIsContainer) { $null } else { $item.CreationTimeUtc.ToString('o') }
    }
}
"""

TRY = r"""try {
%s
    ConvertTo-Json -InputObject @{ ok = $true; result = $r } -Depth 8 -Compress
} catch {
    ConvertTo-Json -InputObject @{ ok = $false; error = "$_"; type = $_.Exception.GetType().FullName } -Compress
    exit 1
}
"""

SET_BODY = r"""    if ($null -ne $a.cpu) { Set-VMProcessor -VMName $a.name -Count $a.cpu }
    if ($null -ne $a.dynamic_memory) { Set-VMMemory -VMName $a.name -DynamicMemoryEnabled $a.dynamic_memory }
    if ($null -ne $a.memory_minimum) { Set-VMMemory -VMName $a.name -MinimumBytes $a.memory_minimum }
    if ($null -ne $a.memory_maximum) { Set-VMMemory -VMName $a.name -MaximumBytes $a.memory_maximum }
    if ($null -ne $a.memory_startup) { Set-VMMemory -VMName $a.name -StartupBytes $a.memory_startup }
    if ($null -ne $a.notes) { Set-VM -Name $a.name -Notes $a.notes }
    if ($null -ne $a.checkpoint_type) { Set-VM -Name $a.name -CheckpointType $a.checkpoint_type }
    if ($null -ne $a.secure_boot) {
        $state = if ($a.secure_boot) { 'On' } else { 'Off' }
        Set-VMFirmware -VMName $a.name -EnableSecureBoot $state
    }
    if ($a.secure_boot_template) { Set-VMFirmware -VMName $a.name -SecureBootTemplate $a.secure_boot_template }
    if ($a.kvp -eq $true) { Enable-VMIntegrationService -VMName $a.name -Name 'Key-Value Pair Exchange' }
    if ($a.kvp -eq $false) { Disable-VMIntegrationService -VMName $a.name -Name 'Key-Value Pair Exchange' }
"""

BODIES = {
    'host_get': r"""    $h = Get-VMHost
    $r = [pscustomobject]@{
        name = $h.ComputerName
        virtual_machine_path = $h.VirtualMachinePath
        virtual_hard_disk_path = $h.VirtualHardDiskPath
        logical_processor_count = $h.LogicalProcessorCount
        memory_capacity = $h.MemoryCapacity
        switches = @(Get-VMSwitch | ForEach-Object { [pscustomobject]@{ name = $_.Name; type = $_.SwitchType.ToString(); id = "$($_.Id)" } })
    }""",
    'switch_list': r"""    $r = @(Get-VMSwitch | ForEach-Object { [pscustomobject]@{ name = $_.Name; type = $_.SwitchType.ToString(); id = "$($_.Id)" } })""",
    'vm_list': r"""    $r = @(Get-VM | Sort-Object -Property Name | ForEach-Object { ConvertTo-PvVm $_ })""",
    'vm_get': r"""    $vm = Get-VM -Name $a.name -ErrorAction SilentlyContinue
    $r = if ($vm) { ConvertTo-PvVm $vm } else { $null }""",
    'vm_create': r"""    $p = @{ Name = $a.name; Generation = $a.generation; MemoryStartupBytes = $a.memory_startup }
    if ($a.switch) { $p.SwitchName = $a.switch }
    if ($a.path) { $p.Path = $a.path }
    if ($a.new_vhd) {
        $vm = New-VM @p -NewVHDPath $a.new_vhd.path -NewVHDSizeBytes $a.new_vhd.size
    } elseif ($a.vhd_path) {
        $vm = New-VM @p -VHDPath $a.vhd_path
    } else {
        $vm = New-VM @p -NoVHD
    }
""" + SET_BODY + r"""    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'vm_set': r"""    $vm = Get-VM -Name $a.name
""" + SET_BODY + r"""    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'vm_rename': r"""    Rename-VM -Name $a.name -NewName $a.new_name
    $r = ConvertTo-PvVm (Get-VM -Name $a.new_name)""",
    'vm_start': r"""    Start-VM -Name $a.name
    if ($a.wait_ip) { Wait-VM -Name $a.name -For IPAddress -Timeout $a.timeout }
    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'vm_wait': r"""    Wait-VM -Name $a.name -For $a.for -Timeout $a.timeout
    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'vm_stop': r"""    switch ($a.mode) {
        'force' { Stop-VM -Name $a.name -Force }
        'turnoff' { Stop-VM -Name $a.name -TurnOff }
        'save' { Stop-VM -Name $a.name -Save }
        default { Stop-VM -Name $a.name }
    }
    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'vm_restart': r"""    Restart-VM -Name $a.name -Force
    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'vm_suspend': r"""    Suspend-VM -Name $a.name
    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'vm_resume': r"""    Resume-VM -Name $a.name
    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'vm_remove': r"""    $vm = Get-VM -Name $a.name -ErrorAction SilentlyContinue
    $deleted = @()
    if ($vm) {
        $drives = @(Get-VMHardDiskDrive -VM $vm) + @(Get-VMSnapshot -VM $vm | ForEach-Object { Get-VMHardDiskDrive -VMSnapshot $_ })
        $paths = @()
        foreach ($drive in $drives) {
            $path = $drive.Path
            while ($path) {
                if ($paths -notcontains $path) { $paths += $path }
                if ($path -notlike '*.avhdx') { break }
                $path = (Get-VHD -Path $path).ParentPath
            }
        }
        Remove-VM -VM $vm -Force
        if ($a.delete_disks) {
            foreach ($path in $paths) {
                if (Test-Path -LiteralPath $path) {
                    Remove-Item -LiteralPath $path -Force
                    $deleted += $path
                }
            }
        }
        foreach ($path in @($a.delete_files)) {
            if ($path -and (Test-Path -LiteralPath $path)) {
                Remove-Item -LiteralPath $path -Force
                $deleted += $path
            }
        }
    }
    $r = [pscustomobject]@{ removed = [bool]$vm; deleted_files = $deleted }""",
    'vhd_get': r"""    $vhd = Get-VHD -Path $a.path -ErrorAction SilentlyContinue
    $r = if ($vhd) { ConvertTo-PvVhd $vhd } else { $null }""",
    'vhd_create': r"""    switch ($a.type) {
        'fixed' { $vhd = New-VHD -Path $a.path -SizeBytes $a.size -Fixed }
        'differencing' { $vhd = New-VHD -Path $a.path -ParentPath $a.parent_path -Differencing }
        default { $vhd = New-VHD -Path $a.path -SizeBytes $a.size -Dynamic }
    }
    $r = ConvertTo-PvVhd $vhd""",
    'vhd_resize': r"""    Resize-VHD -Path $a.path -SizeBytes $a.size
    $r = ConvertTo-PvVhd (Get-VHD -Path $a.path)""",
    'vhd_remove': r"""    $exists = Test-Path -LiteralPath $a.path
    if ($exists) { Remove-Item -LiteralPath $a.path -Force }
    $r = [pscustomobject]@{ removed = $exists }""",
    'disk_list': r"""    $r = @(Get-VMHardDiskDrive -VMName $a.name | ForEach-Object { ConvertTo-PvDisk $_ })""",
    'disk_attach': r"""    $p = @{ VMName = $a.name; Path = $a.path }
    if ($a.controller_type) { $p.ControllerType = $a.controller_type }
    if ($null -ne $a.controller_number) { $p.ControllerNumber = $a.controller_number }
    if ($null -ne $a.controller_location) { $p.ControllerLocation = $a.controller_location }
    $attached = @(Get-VMHardDiskDrive -VMName $a.name | Where-Object { $_.Path -eq $a.path })
    if (-not $attached) { Add-VMHardDiskDrive @p }
    $r = @(Get-VMHardDiskDrive -VMName $a.name | ForEach-Object { ConvertTo-PvDisk $_ })""",
    'disk_detach': r"""    Get-VMHardDiskDrive -VMName $a.name | Where-Object { $_.Path -eq $a.path } | Remove-VMHardDiskDrive
    $r = @(Get-VMHardDiskDrive -VMName $a.name | ForEach-Object { ConvertTo-PvDisk $_ })""",
    'nic_list': r"""    $r = @(Get-VMNetworkAdapter -VMName $a.name | ForEach-Object { ConvertTo-PvNic $_ })""",
    'nic_add': r"""    $p = @{ VMName = $a.name; Name = $a.nic }
    if ($a.switch) { $p.SwitchName = $a.switch }
    if ($a.mac) { $p.StaticMacAddress = $a.mac }
    Add-VMNetworkAdapter @p
    $r = @(Get-VMNetworkAdapter -VMName $a.name | ForEach-Object { ConvertTo-PvNic $_ })""",
    'nic_remove': r"""    Remove-VMNetworkAdapter -VMName $a.name -Name $a.nic
    $r = @(Get-VMNetworkAdapter -VMName $a.name | ForEach-Object { ConvertTo-PvNic $_ })""",
    'nic_connect': r"""    if ($a.switch) {
        Connect-VMNetworkAdapter -VMName $a.name -Name $a.nic -SwitchName $a.switch
    } else {
        Disconnect-VMNetworkAdapter -VMName $a.name -Name $a.nic
    }
    $r = @(Get-VMNetworkAdapter -VMName $a.name | ForEach-Object { ConvertTo-PvNic $_ })""",
    'nic_vlan': r"""    if ($a.vlan_id) {
        Set-VMNetworkAdapterVlan -VMName $a.name -VMNetworkAdapterName $a.nic -Access -VlanId $a.vlan_id
    } else {
        Set-VMNetworkAdapterVlan -VMName $a.name -VMNetworkAdapterName $a.nic -Untagged
    }
    $r = @(Get-VMNetworkAdapter -VMName $a.name | ForEach-Object { ConvertTo-PvNic $_ })""",
    'checkpoint_list': r"""    $r = @(Get-VMSnapshot -VMName $a.name | ForEach-Object { ConvertTo-PvCheckpoint $_ })""",
    'checkpoint_create': r"""    $cp = Checkpoint-VM -Name $a.name -SnapshotName $a.checkpoint -Passthru
    $r = ConvertTo-PvCheckpoint $cp""",
    'checkpoint_restore': r"""    Restore-VMSnapshot -VMName $a.name -Name $a.checkpoint -Confirm:$false
    $r = ConvertTo-PvVm (Get-VM -Name $a.name)""",
    'checkpoint_remove': r"""    if ($a.include_children) {
        Remove-VMSnapshot -VMName $a.name -Name $a.checkpoint -IncludeAllChildSnapshots
    } else {
        Remove-VMSnapshot -VMName $a.name -Name $a.checkpoint
    }
    $r = [pscustomobject]@{
        removed = @($a.checkpoint)
        checkpoints = @(Get-VMSnapshot -VMName $a.name | ForEach-Object { ConvertTo-PvCheckpoint $_ })
    }""",
    'vm_export': r"""    $vm = Get-VM -Name $a.name
    Export-VM -VM $vm -Path $a.path
    $root = Join-Path -Path $a.path -ChildPath $vm.Name
    $config = Get-ChildItem -Path (Join-Path -Path $root -ChildPath 'Virtual Machines') -Filter '*.vmcx' | Select-Object -First 1
    $disks = @(Get-ChildItem -Path (Join-Path -Path $root -ChildPath 'Virtual Hard Disks') | ForEach-Object { $_.FullName })
    $r = [pscustomobject]@{ path = $root; config_path = $config.FullName; disks = $disks }""",
    'vm_import': r"""    $p = @{ Path = $a.path }
    if ($a.vm_path) { $p.VirtualMachinePath = $a.vm_path }
    if ($a.vhd_path) { $p.VhdDestinationPath = $a.vhd_path }
    $vm = Import-VM @p -Copy -GenerateNewId
    if ($a.new_name) {
        Rename-VM -VM $vm -NewName $a.new_name
    }
    $r = ConvertTo-PvVm (Get-VM -Id $vm.Id)""",
    # Files and folders: -LiteralPath, so [ ] * ? in a path are characters, not wildcards.
    'dir_list': r"""    $p = @{ LiteralPath = $a.path }
    if ($a.recurse) { $p.Recurse = $true }
    if ($a.filter) { $p.Filter = $a.filter }
    $r = @(Get-ChildItem @p -Force | ForEach-Object { ConvertTo-PvItem $_ })""",
    # The bytes travel base64 in the arguments; -Encoding Byte writes them as they are (Windows PowerShell 5.1).
    'file_write': r"""    $bytes = [Convert]::FromBase64String($a.data)
    if ($a.append) {
        Add-Content -LiteralPath $a.path -Value $bytes -Encoding Byte
    } else {
        Set-Content -LiteralPath $a.path -Value $bytes -Encoding Byte
    }
    $r = ConvertTo-PvItem (Get-Item -LiteralPath $a.path)""",
    'file_read': r"""    $bytes = Get-Content -LiteralPath $a.path -Encoding Byte -Raw
    $r = [pscustomobject]@{ path = $a.path; data = [Convert]::ToBase64String($bytes) }""",
    'item_remove': r"""    if ($a.recurse) {
        Remove-Item -LiteralPath $a.path -Recurse -Force
    } else {
        Remove-Item -LiteralPath $a.path -Force
    }
    $r = [pscustomobject]@{ removed = $true }""",
    'dvd_add': r"""    $p = @{ VMName = $a.name }
    if ($a.path) { $p.Path = $a.path }
    if ($null -ne $a.controller_number) { $p.ControllerNumber = $a.controller_number }
    if ($null -ne $a.controller_location) { $p.ControllerLocation = $a.controller_location }
    Add-VMDvdDrive @p
    $r = @(Get-VMDvdDrive -VMName $a.name | ForEach-Object { ConvertTo-PvDisk $_ })""",
    'dvd_set': r"""    Set-VMDvdDrive -VMName $a.name -ControllerNumber $a.controller_number -ControllerLocation $a.controller_location -Path $a.path
    $r = @(Get-VMDvdDrive -VMName $a.name | ForEach-Object { ConvertTo-PvDisk $_ })""",
    'dvd_remove': r"""    Remove-VMDvdDrive -VMName $a.name -ControllerNumber $a.controller_number -ControllerLocation $a.controller_location
    $r = @(Get-VMDvdDrive -VMName $a.name | ForEach-Object { ConvertTo-PvDisk $_ })""",
}

BOOTSTRAP = '$s = [Console]::In.ReadToEnd(); & ([ScriptBlock]::Create($s))'


def b64_args(args):
    return base64.b64encode(json.dumps(args, sort_keys=True).encode('utf-8')).decode('ascii')


def build(op, args, body=None, minimal=False):
    """The full script for ``op`` with ``args`` (a dict); ``body`` overrides the operation body.

    ``minimal`` leaves out the projection functions (for short bodies that do not use them)."""
    b64 = b64_args(args)
    prelude = PRELUDE.replace('{b64}', b64)
    if minimal:
        prelude = prelude.split('function ', 1)[0]
    text = HEADER.format(op=op, b64=b64) + '\n' + prelude + TRY % (BODIES[op] if body is None else body)
    return text.replace('\n', '\r\n')


def encode(script):
    return base64.b64encode(script.encode('utf-16-le')).decode('ascii')


def encoded_command(script):
    """A one-shot command line (fine up to about 3 KB of script: cmd.exe stops at 8191 characters)."""
    return 'powershell.exe -NoProfile -NonInteractive -EncodedCommand ' + encode(script)


def bootstrap_command():
    """The short command line that runs the script sent on stdin (send it UTF-8, shell codepage 65001)."""
    return 'powershell.exe -NoProfile -NonInteractive -EncodedCommand ' + encode(BOOTSTRAP)
