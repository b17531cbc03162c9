# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every PowerShell script of the Hyper-V backend, in one place (Windows PowerShell 5.1).

A script is built by ``build(op, args)``: line 1 is the contract header ``# polyvirt-hyperv: <op>
<base64 JSON>``, the body decodes exactly that base64 into ``$a`` and reads user values only from it,
so no name, path or note is ever part of the script text (quotes, ``$``, backticks and newlines
reach Hyper-V unchanged). Each script prints one line ``{"ok":true,"result":...}`` or, for a caught
error, ``{"ok":false,"error":"<PowerShell's message>","type":...}`` with exit code 1.
"""

from __future__ import annotations

import base64
import json

HEADER = "# polyvirt-hyperv: %s %s"

# Ops that change nothing: the journal and check mode tell reads from writes by these.
READ_OPS = frozenset(("host_get", "switch_list", "vm_list", "vm_get", "vhd_get", "disk_list", "nic_list", "checkpoint_list", "dir_list", "file_read"))

PRELUDE = r"""$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [Text.Encoding]::UTF8
$a = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('@B64@')) | ConvertFrom-Json
function Get-PvVm($vmName) {
    # Get-VM -Name takes wildcards and returns every VM of a duplicated name: keep exact matches only.
    $found = @(Get-VM -Name $vmName -ErrorAction SilentlyContinue | Where-Object { $_.Name -eq $vmName })
    if ($found.Count -gt 1) {
        $ids = ($found | ForEach-Object { [string]$_.Id }) -join ', '
        throw "There are $($found.Count) virtual machines named '$vmName' on this host (ids $ids); rename all but one."
    }
    if ($found.Count -eq 0) { return $null }
    return $found[0]
}
function Get-PvVmOrFail($vmName) {
    $vm = Get-PvVm $vmName
    if (-not $vm) { throw "Hyper-V was unable to find a virtual machine with name `"$vmName`"." }
    return $vm
}
# The projections: Hyper-V's objects as the JSON the driver reads (enums as their names, ids as strings, sizes in bytes).
function Out-PvAdapter($adapter) {
    $vlan = Get-VMNetworkAdapterVlan -VMNetworkAdapter $adapter
    [ordered]@{
        name = $adapter.Name
        mac = $adapter.MacAddress
        switch = $adapter.SwitchName
        ips = @($adapter.IPAddresses)
        vlan_id = [int]$vlan.AccessVlanId
    }
}
function Out-PvDrive($drive) {
    # Hard disk and DVD drives alike: where they sit, and the file they hold ($null for an empty DVD drive).
    [ordered]@{
        path = $drive.Path
        controller_type = [string]$drive.ControllerType
        controller_number = [int]$drive.ControllerNumber
        controller_location = [int]$drive.ControllerLocation
    }
}
function Out-PvVhd($vhd) {
    $parent = $null
    if ($vhd.ParentPath) { $parent = $vhd.ParentPath }
    [ordered]@{
        path = $vhd.Path
        format = [string]$vhd.VhdFormat
        type = [string]$vhd.VhdType
        size = [long]$vhd.Size
        file_size = [long]$vhd.FileSize
        parent_path = $parent
        attached = [bool]$vhd.Attached
    }
}
function Out-PvCheckpoint($checkpoint) {
    $parent = $null
    if ($checkpoint.ParentSnapshotName) { $parent = $checkpoint.ParentSnapshotName }
    [ordered]@{
        name = $checkpoint.Name
        id = [string]$checkpoint.Id
        type = [string]$checkpoint.SnapshotType
        created = $checkpoint.CreationTime.ToUniversalTime().ToString('o')
        parent = $parent
        vm_name = $checkpoint.VMName
    }
}
function Out-PvVm($machine) {
    # One VM with everything an idempotent task compares: firmware, KVP, adapters (with addresses), drives.
    $view = [ordered]@{
        name = $machine.Name
        id = [string]$machine.Id
        state = [string]$machine.State
        status = $machine.Status
        generation = $machine.Generation
        cpu = $machine.ProcessorCount
        memory_startup = [long]$machine.MemoryStartup
        memory_minimum = [long]$machine.MemoryMinimum
        memory_maximum = [long]$machine.MemoryMaximum
        memory_assigned = [long]$machine.MemoryAssigned
        dynamic_memory = [bool]$machine.DynamicMemoryEnabled
        uptime_s = [int]$machine.Uptime.TotalSeconds
        notes = $machine.Notes
        path = $machine.Path
        checkpoint_type = [string]$machine.CheckpointType
        secure_boot = $null
        kvp = [bool](Get-VMIntegrationService -VM $machine -Name 'Key-Value Pair Exchange').Enabled
        parent_checkpoint = $null
    }
    if ($machine.Generation -eq 2) { $view.secure_boot = [string](Get-VMFirmware -VM $machine).SecureBoot }
    if ($machine.ParentSnapshotName) { $view.parent_checkpoint = $machine.ParentSnapshotName }
    $view.nics = @(Get-VMNetworkAdapter -VM $machine | ForEach-Object { Out-PvAdapter $_ })
    $view.disks = @(Get-VMHardDiskDrive -VM $machine | ForEach-Object { Out-PvDrive $_ })
    $view.dvds = @(Get-VMDvdDrive -VM $machine | ForEach-Object { Out-PvDrive $_ })
    $view
}
function Out-PvFile($entry) {
    # Get-ChildItem / Get-Item objects: a DirectoryInfo has no Length.
    $folder = $entry -is [IO.DirectoryInfo]
    $created = $null
    $length = $null
    if (-not $folder) {
        $created = $entry.CreationTimeUtc.ToString('o')
        $length = $entry.Length
    }
    [pscustomobject]@{ name = $entry.Name; path = $entry.FullName; directory = $folder; length = $length; created = $created }
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

# Settings of an existing VM (vm_set) and of a new one (vm_create); only the keys present are touched.
SET_BODY = r"""    if ($null -ne $a.cpu) { Set-VMProcessor -VM $vm -Count $a.cpu }
    if ($null -ne $a.dynamic_memory) { Set-VMMemory -VM $vm -DynamicMemoryEnabled $a.dynamic_memory }
    if ($null -ne $a.memory_minimum) { Set-VMMemory -VM $vm -MinimumBytes $a.memory_minimum }
    if ($null -ne $a.memory_maximum) { Set-VMMemory -VM $vm -MaximumBytes $a.memory_maximum }
    if ($null -ne $a.memory_startup) { Set-VMMemory -VM $vm -StartupBytes $a.memory_startup }
    if ($null -ne $a.notes) { Set-VM -VM $vm -Notes $a.notes }
    if ($null -ne $a.checkpoint_type) { Set-VM -VM $vm -CheckpointType $a.checkpoint_type }
    if ($null -ne $a.secure_boot) {
        $state = if ($a.secure_boot) { 'On' } else { 'Off' }
        Set-VMFirmware -VM $vm -EnableSecureBoot $state
    }
    if ($a.secure_boot_template) { Set-VMFirmware -VM $vm -SecureBootTemplate $a.secure_boot_template }
"""

VM_RESULT = r"""    $r = Out-PvVm (Get-VM -Id $vm.Id)"""

BODIES = {
    "host_get": r"""    $h = Get-VMHost
    $r = [pscustomobject]@{
        name = $h.ComputerName
        virtual_machine_path = $h.VirtualMachinePath
        virtual_hard_disk_path = $h.VirtualHardDiskPath
        logical_processor_count = $h.LogicalProcessorCount
        memory_capacity = $h.MemoryCapacity
        switches = @(Get-VMSwitch | ForEach-Object { [pscustomobject]@{ name = $_.Name; type = $_.SwitchType.ToString(); id = "$($_.Id)" } })
    }""",
    "vm_list": r"""    $r = @(Get-VM | Sort-Object -Property Name | ForEach-Object { Out-PvVm $_ })""",
    "vm_get": r"""    $found = @(Get-VM -Name $a.name -ErrorAction SilentlyContinue | Where-Object { $_.Name -eq $a.name })
    if ($found.Count -gt 1) {
        $ids = ($found | ForEach-Object { [string]$_.Id }) -join ', '
        throw "There are $($found.Count) virtual machines named '$($a.name)' on this host (ids $ids); rename all but one."
    }
    $r = if ($found.Count -eq 1) { Out-PvVm $found[0] } else { $null }""",
    "vm_create": r"""    if (Get-PvVm $a.name) { throw "A virtual machine with this name already exists." }
    $p = @{ Name = $a.name; Generation = $a.generation; MemoryStartupBytes = $a.memory_startup }
    if ($a.switch) { $p.SwitchName = $a.switch }
    if ($a.path) { $p.Path = $a.path }
    if ($a.vhd_path) {
        $vm = New-VM @p -VHDPath $a.vhd_path
    } else {
        $vm = New-VM @p -NoVHD
    }
""" + SET_BODY + VM_RESULT,
    "vm_set": r"""    $vm = Get-PvVmOrFail $a.name
""" + SET_BODY + VM_RESULT,
    "vm_start": r"""    $vm = Get-PvVmOrFail $a.name
    Start-VM -VM $vm
    if ($a.wait_ip) { Wait-VM -VM $vm -For IPAddress -Timeout $a.timeout }
""" + VM_RESULT,
    "vm_wait": r"""    $vm = Get-PvVmOrFail $a.name
    Wait-VM -VM $vm -For $a.for -Timeout $a.timeout
""" + VM_RESULT,
    "vm_stop": r"""    $vm = Get-PvVmOrFail $a.name
    switch ($a.mode) {
        'force' { Stop-VM -VM $vm -Force }
        'turnoff' { Stop-VM -VM $vm -TurnOff }
        'save' { Stop-VM -VM $vm -Save }
        default { Stop-VM -VM $vm }
    }
""" + VM_RESULT,
    "vm_restart": r"""    $vm = Get-PvVmOrFail $a.name
    Restart-VM -VM $vm -Force
""" + VM_RESULT,
    "vm_suspend": r"""    $vm = Get-PvVmOrFail $a.name
    Suspend-VM -VM $vm
""" + VM_RESULT,
    "vm_resume": r"""    $vm = Get-PvVmOrFail $a.name
    Resume-VM -VM $vm
""" + VM_RESULT,
    # Remove-VM keeps the disk files: collect the VM's own chain (checkpoint .avhdx files down to its
    # first .vhdx) first, never a shared parent image, and delete those after the VM is gone.
    "vm_remove": r"""    $vm = Get-PvVm $a.name
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
        # Hyper-V merges the checkpoints into the disks as the VM goes: an .avhdx collected above may be gone.
        $doomed = @()
        if ($a.delete_disks) { $doomed += $paths }
        if ($a.delete_files) { $doomed += @($a.delete_files) }
        foreach ($path in $doomed) {
            if (Test-Path -LiteralPath $path) {
                Remove-Item -LiteralPath $path -Force
                $deleted += $path
            }
        }
    }
    $r = [pscustomobject]@{ removed = [bool]$vm; deleted_files = $deleted }""",
    "vm_rename": r"""    $vm = Get-PvVmOrFail $a.name
    if (Get-PvVm $a.new_name) { throw "A virtual machine with the new name already exists." }
    Rename-VM -VM $vm -NewName $a.new_name
""" + VM_RESULT,
    "vhd_get": r"""    $vhd = Get-VHD -Path $a.path -ErrorAction SilentlyContinue
    $r = if ($vhd) { Out-PvVhd $vhd } else { $null }""",
    "vhd_create": r"""    switch ($a.type) {
        'fixed' { $vhd = New-VHD -Path $a.path -SizeBytes $a.size -Fixed }
        'differencing' { $vhd = New-VHD -Path $a.path -ParentPath $a.parent_path -Differencing }
        default { $vhd = New-VHD -Path $a.path -SizeBytes $a.size -Dynamic }
    }
    $r = Out-PvVhd $vhd""",
    "vhd_resize": r"""    Resize-VHD -Path $a.path -SizeBytes $a.size
    $r = Out-PvVhd (Get-VHD -Path $a.path)""",
    "vhd_remove": r"""    $exists = Test-Path -LiteralPath $a.path
    if ($exists) { Remove-Item -LiteralPath $a.path -Force }
    $r = [pscustomobject]@{ removed = $exists }""",
    "disk_attach": r"""    $vm = Get-PvVmOrFail $a.name
    $p = @{ VM = $vm; Path = $a.path }
    if ($a.controller_type) { $p.ControllerType = $a.controller_type }
    if ($null -ne $a.controller_number) { $p.ControllerNumber = $a.controller_number }
    if ($null -ne $a.controller_location) { $p.ControllerLocation = $a.controller_location }
    $attached = @(Get-VMHardDiskDrive -VM $vm | Where-Object { $_.Path -eq $a.path })
    if (-not $attached) { Add-VMHardDiskDrive @p }
    $r = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object { Out-PvDrive $_ })""",
    "disk_detach": r"""    $vm = Get-PvVmOrFail $a.name
    Get-VMHardDiskDrive -VM $vm | Where-Object { $_.Path -eq $a.path } | Remove-VMHardDiskDrive
    $r = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object { Out-PvDrive $_ })""",
    "nic_add": r"""    $vm = Get-PvVmOrFail $a.name
    $p = @{ VM = $vm; Name = $a.nic }
    if ($a.switch) { $p.SwitchName = $a.switch }
    if ($a.mac) { $p.StaticMacAddress = $a.mac }
    Add-VMNetworkAdapter @p
    $r = @(Get-VMNetworkAdapter -VM $vm | ForEach-Object { Out-PvAdapter $_ })""",
    "nic_remove": r"""    $vm = Get-PvVmOrFail $a.name
    Remove-VMNetworkAdapter -VM $vm -Name $a.nic
    $r = @(Get-VMNetworkAdapter -VM $vm | ForEach-Object { Out-PvAdapter $_ })""",
    "nic_connect": r"""    $vm = Get-PvVmOrFail $a.name
    if ($a.switch) {
        Connect-VMNetworkAdapter -VMName $vm.Name -Name $a.nic -SwitchName $a.switch
    } else {
        Disconnect-VMNetworkAdapter -VMName $vm.Name -Name $a.nic
    }
    $r = @(Get-VMNetworkAdapter -VM $vm | ForEach-Object { Out-PvAdapter $_ })""",
    "checkpoint_list": r"""    $vm = Get-PvVmOrFail $a.name
    $r = @(Get-VMSnapshot -VM $vm | Sort-Object -Property CreationTime | ForEach-Object { Out-PvCheckpoint $_ })""",
    "checkpoint_create": r"""    $vm = Get-PvVmOrFail $a.name
    if ($a.checkpoint_type) { Set-VM -VM $vm -CheckpointType $a.checkpoint_type }
    $cp = Checkpoint-VM -VM $vm -SnapshotName $a.checkpoint -Passthru
    $r = Out-PvCheckpoint $cp""",
    "checkpoint_restore": r"""    $vm = Get-PvVmOrFail $a.name
    Restore-VMSnapshot -VMName $vm.Name -Name $a.checkpoint -Confirm:$false
""" + VM_RESULT,
    "checkpoint_remove": r"""    $vm = Get-PvVmOrFail $a.name
    if ($a.include_children) {
        Remove-VMSnapshot -VMName $vm.Name -Name $a.checkpoint -IncludeAllChildSnapshots
    } else {
        Remove-VMSnapshot -VMName $vm.Name -Name $a.checkpoint
    }
    $r = [pscustomobject]@{
        removed = @($a.checkpoint)
        checkpoints = @(Get-VMSnapshot -VM $vm | ForEach-Object { Out-PvCheckpoint $_ })
    }""",
    "vm_export": r"""    $vm = Get-PvVmOrFail $a.name
    Export-VM -VM $vm -Path $a.path
    $root = Join-Path -Path $a.path -ChildPath $vm.Name
    $config = Get-ChildItem -Path (Join-Path -Path $root -ChildPath 'Virtual Machines') -Filter '*.vmcx' | Select-Object -First 1
    $disks = @(Get-ChildItem -Path (Join-Path -Path $root -ChildPath 'Virtual Hard Disks') | ForEach-Object { $_.FullName })
    $r = [pscustomobject]@{ path = $root; config_path = $config.FullName; disks = $disks }""",
    # -Copy -GenerateNewId: a new VM (new id, new dynamic MACs) from copies of the exported files; it keeps the old name until renamed.
    "vm_import": r"""    if ($a.new_name -and (Get-PvVm $a.new_name)) { throw "A virtual machine with the new name already exists." }
    $p = @{ Path = $a.path }
    if ($a.vm_path) { $p.VirtualMachinePath = $a.vm_path }
    if ($a.vhd_path) { $p.VhdDestinationPath = $a.vhd_path }
    $vm = Import-VM @p -Copy -GenerateNewId
    if ($a.new_name) {
        Rename-VM -VM $vm -NewName $a.new_name
    }
""" + VM_RESULT,
    # A folder that does not exist fails with "Cannot find path ...": the caller reads that as empty.
    "dir_list": r"""    $q = @{ LiteralPath = $a.path; Force = $true }
    if ($a.filter) { $q.Filter = $a.filter }
    if ($a.recurse) { $q.Recurse = $true }
    $r = @(Get-ChildItem @q | ForEach-Object { Out-PvFile $_ })""",
    # One chunk of a file: its bytes arrive base64 in the arguments; the first chunk creates the folder and replaces the file.
    "file_write": r"""    $chunk = [Convert]::FromBase64String($a.data)
    if ($a.append) {
        Add-Content -LiteralPath $a.path -Value $chunk -Encoding Byte
    } else {
        $folder = Split-Path -Path $a.path -Parent
        if (-not (Test-Path -LiteralPath $folder)) { New-Item -Path $folder -ItemType Directory -Force | Out-Null }
        Set-Content -LiteralPath $a.path -Value $chunk -Encoding Byte
    }
    $r = Out-PvFile (Get-Item -LiteralPath $a.path)""",
    "item_remove": r"""    $gone = -not (Test-Path -LiteralPath $a.path)
    if (-not $gone) {
        if ($a.recurse) { Remove-Item -LiteralPath $a.path -Recurse -Force } else { Remove-Item -LiteralPath $a.path -Force }
    }
    $r = [pscustomobject]@{ removed = -not $gone }""",
    "dvd_add": r"""    $vm = Get-PvVmOrFail $a.name
    $q = @{ VM = $vm; Path = $a.path }
    Add-VMDvdDrive @q
    $r = @(Get-VMDvdDrive -VM $vm | ForEach-Object { Out-PvDrive $_ })""",
    "dvd_set": r"""    $vm = Get-PvVmOrFail $a.name
    Set-VMDvdDrive -VMName $vm.Name -ControllerNumber $a.controller_number -ControllerLocation $a.controller_location -Path $a.path
    $r = @(Get-VMDvdDrive -VM $vm | ForEach-Object { Out-PvDrive $_ })""",
    "dvd_remove": r"""    $vm = Get-PvVmOrFail $a.name
    Remove-VMDvdDrive -VMName $vm.Name -ControllerNumber $a.controller_number -ControllerLocation $a.controller_location
    $r = @(Get-VMDvdDrive -VM $vm | ForEach-Object { Out-PvDrive $_ })""",
}


def b64_args(args):
    """Standard padded base64 of the UTF-8 JSON of ``args`` (None values left out: unset means untouched)."""
    data = dict((key, value) for key, value in args.items() if value is not None)
    return base64.b64encode(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).decode("ascii")


def build(op, args):
    """The full script of ``op`` with ``args``; CRLF line ends as Windows PowerShell writes them."""
    b64 = b64_args(args)
    text = HEADER % (op, b64) + "\n" + PRELUDE.replace("@B64@", b64) + TRY % BODIES[op]
    return text.replace("\n", "\r\n")
