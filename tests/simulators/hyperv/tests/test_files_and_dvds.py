# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Folders, files written in chunks through the arguments, DVD drives, and exports' folders."""

from __future__ import annotations

import base64
import io

import pycdlib

from tests.simulators.hyperv import scripts

GB = 1024 ** 3
F = 'E:\\Files\\'


def b64(data):
    return base64.b64encode(data).decode('ascii')


def small_iso():
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge='1.09', vol_ident='cidata')
    data = b'#cloud-config\nhostname: it\'s "$x" `y`\n'
    iso.add_fp(io.BytesIO(data), len(data), '/USER_DATA.;1', rr_name='user-data', joliet_path='/user-data')
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue(), data


def test_files_written_in_chunks_keep_their_bytes(client):
    image, data = small_iso()
    half = len(image) // 2
    first = client.ok('file_write', {'path': F + 'seed [1].iso', 'data': b64(image[:half])})
    assert (first['name'], first['length'], first['directory']) == ('seed [1].iso', half, False)
    assert client.ok('file_write', {'path': F + 'seed [1].iso', 'data': b64(image[half:]), 'append': True})['length'] == len(image)
    back = base64.b64decode(client.ok('file_read', {'path': F + 'seed [1].iso'})['data'])
    assert back == image
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(back))
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, rr_path='/user-data')
    iso.close()
    assert out.getvalue() == data
    # Set-Content without append replaces the file.
    assert client.ok('file_write', {'path': F + 'seed [1].iso', 'data': b64(b'x')})['length'] == 1
    assert "Cannot find path 'E:\\Files\\nothing.bin' because it does not exist." in client.fails('file_read', {'path': F + 'nothing.bin'})
    assert 'Invalid length for a Base-64' in client.fails('file_write', {'path': F + 'bad.bin', 'data': 'abc'})


def test_bytes_must_come_through_the_arguments(client):
    data = b64(b'polyvirt bytes in the script text')
    body = "    Set-Content -LiteralPath $a.path -Value ([Convert]::FromBase64String('%s')) -Encoding Byte\n    $r = 1" % data
    rc, doc = None, None
    out, err, rc = client.raw(scripts.build('file_write', {'path': F + 'inline.bin', 'data': data}, body=body))
    assert rc == 1 and b'script contract' in err
    wrong = "    Add-Content -LiteralPath $a.path -Value ([Convert]::FromBase64String($a.data)) -Encoding Byte\n    $r = 1"
    out, err, rc = client.raw(scripts.build('file_write', {'path': F + 'inline.bin', 'data': data}, body=wrong))
    assert rc == 1 and b'must call Set-Content -LiteralPath -Value -Encoding' in err


def test_folders_list_and_remove(client):
    for name in ('a\\one.bin', 'a\\b\\two.bin', 'top.bin'):
        client.ok('file_write', {'path': F + 'tree\\' + name, 'data': b64(b'12')})
    items = client.ok('dir_list', {'path': F + 'tree'})
    assert [(i['name'], i['directory']) for i in items] == [('a', True), ('top.bin', False)]
    every = client.ok('dir_list', {'path': F + 'tree', 'recurse': True, 'filter': '*.bin'})
    assert sorted(i['path'] for i in every) == [F + 'tree\\a\\b\\two.bin', F + 'tree\\a\\one.bin', F + 'tree\\top.bin']
    assert 'has children and the Recurse parameter was not specified' in client.fails('item_remove', {'path': F + 'tree\\a'})
    client.ok('item_remove', {'path': F + 'tree\\a', 'recurse': True})
    assert [i['name'] for i in client.ok('dir_list', {'path': F + 'tree'})] == ['top.bin']
    client.ok('item_remove', {'path': F + 'tree\\top.bin'})
    assert 'because it does not exist' in client.fails('dir_list', {'path': F + 'tree'})


def test_dvd_drives(client):
    image, _data = small_iso()
    client.ok('file_write', {'path': F + 'dvd.iso', 'data': b64(image)})
    client.ok('file_write', {'path': F + 'dvd2.iso', 'data': b64(image)})
    client.ok('vm_create', {'name': 'dvd1', 'generation': 1, 'memory_startup': GB})
    client.ok('vm_create', {'name': 'dvd2', 'generation': 2, 'memory_startup': GB})
    assert client.ok('dvd_add', {'name': 'dvd1', 'path': F + 'dvd.iso'}) == [
        {'path': F + 'dvd.iso', 'controller_type': 'IDE', 'controller_number': 0, 'controller_location': 0}]
    assert client.ok('dvd_add', {'name': 'dvd2', 'path': F + 'dvd.iso'})[0]['controller_type'] == 'SCSI'
    assert 'cannot find the file specified' in client.fails('dvd_add', {'name': 'dvd2', 'path': F + 'none.iso'})
    assert client.ok('vm_get', {'name': 'dvd2'})['dvds'][0]['path'] == F + 'dvd.iso'
    client.ok('vm_start', {'name': 'dvd2'})
    assert "Failed to modify device 'Virtual CD/DVD Disk'" in client.fails('dvd_add', {'name': 'dvd2'})
    changed = client.ok('dvd_set', {'name': 'dvd2', 'controller_number': 0, 'controller_location': 0, 'path': F + 'dvd2.iso'})
    assert changed[0]['path'] == F + 'dvd2.iso'  # media change while running
    assert 'being used by another process' in client.fails('item_remove', {'path': F + 'dvd2.iso'})
    client.ok('vm_stop', {'name': 'dvd2', 'mode': 'turnoff'})
    assert client.ok('dvd_remove', {'name': 'dvd2', 'controller_number': 0, 'controller_location': 0}) == []
    removed = client.ok('vm_remove', {'name': 'dvd1', 'delete_files': [F + 'dvd.iso']})
    assert removed['deleted_files'] == [F + 'dvd.iso']
    client.ok('vm_remove', {'name': 'dvd2'})
    client.ok('item_remove', {'path': F + 'dvd2.iso'})


def test_export_has_three_folders_and_remove_vm_merges_checkpoints(client):
    client.ok('vhd_create', {'path': F + 'exp\\exp.vhdx', 'size': GB, 'type': 'dynamic'})
    client.ok('vm_create', {'name': 'exp', 'generation': 2, 'memory_startup': GB, 'vhd_path': F + 'exp\\exp.vhdx'})
    cp = client.ok('checkpoint_create', {'name': 'exp', 'checkpoint': 'one'})
    exported = client.ok('vm_export', {'name': 'exp', 'path': F + 'backups'})
    folders = client.ok('dir_list', {'path': exported['path']})
    assert [f['name'] for f in folders] == ['Snapshots', 'Virtual Hard Disks', 'Virtual Machines']
    assert [f['name'] for f in client.ok('dir_list', {'path': exported['path'] + '\\Snapshots'})] == [cp['id'].upper() + '.vmcx']
    vm = client.ok('vm_get', {'name': 'exp'})
    assert vm['disks'][0]['path'].lower().endswith('.avhdx')
    client.ok('vm_remove', {'name': 'exp'})
    left = client.ok('dir_list', {'path': F + 'exp'})
    assert [f['name'] for f in left] == ['exp.vhdx']  # the checkpoint was merged into it
    client.ok('item_remove', {'path': F + 'backups', 'recurse': True})
    client.ok('item_remove', {'path': F + 'exp', 'recurse': True})
