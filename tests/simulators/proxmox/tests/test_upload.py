# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage upload (pve-storage API2/Storage/Status.pm): multipart, the content types PVE takes, an imgcopy task."""
from __future__ import annotations

import io

import pytest
from proxmoxer.core import ResourceException

from .conftest import wait_ok


def upload(api, storage, content, name, data=b'x' * 70000):
    handle = io.BytesIO(data)
    handle.name = name
    return api.nodes('pve').storage(storage).upload.post(content=content, filename=handle)


def test_an_iso_uploads_as_an_imgcopy_task_and_is_listed(pve):
    upid = upload(pve, 'local', 'iso', 'seed test.iso', b'ISO' * 30000)
    assert ':imgcopy::' in upid
    wait_ok(pve, upid)
    items = dict((item['volid'], item) for item in pve.nodes('pve').storage('local').content.get(content='iso'))
    assert items['local:iso/seed_test.iso']['size'] == 90000  # the name is normalised, as PVE does
    wait_ok(pve, pve.nodes('pve').storage('local').content('local:iso/seed_test.iso').delete())
    assert 'local:iso/seed_test.iso' not in [item['volid'] for item in pve.nodes('pve').storage('local').content.get(content='iso')]


def test_the_extension_must_fit_the_content_type(pve):
    with pytest.raises(ResourceException) as caught:
        upload(pve, 'local', 'iso', 'notes.txt')
    assert caught.value.status_code == 400 and caught.value.errors == {'filename': 'wrong file extension'}


def test_the_storage_must_take_the_content_type(pve):
    with pytest.raises(ResourceException) as caught:
        upload(pve, 'local-lvm', 'iso', 'seed.iso')
    assert caught.value.status_code == 500 and "storage 'local-lvm' does not support 'iso' content" in caught.value.content


def test_an_unknown_content_type_is_a_parameter_error(pve):
    with pytest.raises(ResourceException) as caught:
        upload(pve, 'local', 'snippets', 'user.yaml')
    assert caught.value.status_code == 400 and 'content' in caught.value.errors
