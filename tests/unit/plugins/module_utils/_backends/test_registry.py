# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The registry: backend name -> driver class, loaded lazily and without connecting."""

import sys

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import BACKENDS
from ansible_collections.polyvirt.compute.plugins.module_utils._backends import registry
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.backend import LxdBackend
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Unsupported


def test_lxd_is_the_lxd_backend():
    assert registry.backend_class("lxd") is LxdBackend
    assert issubclass(LxdBackend, Backend) and LxdBackend.name == "lxd"


def test_loading_lxd_does_not_connect():
    backend = registry.load_backend("lxd", {"url": "unix:/nonexistent/lxd/unix.socket", "project": "demo"})
    assert isinstance(backend, LxdBackend)
    assert backend.client.endpoint == "unix:/nonexistent/lxd/unix.socket" and backend.client.project == "demo"
    assert backend.client._conn is None  # pylint: disable=protected-access
    assert backend._parts == {}  # parts are loaded when a task first uses them  # pylint: disable=protected-access
    backend.close()


@pytest.mark.parametrize("name", [name for name in BACKENDS if name not in registry.AVAILABLE] + ["nope"])
def test_a_backend_without_a_driver_is_unsupported_and_names_the_available_ones(name):
    with pytest.raises(Unsupported) as caught:
        registry.load_backend(name, {})
    assert caught.value.message == "the %s backend is not available yet in this release of polyvirt.compute (available: %s)" % (
        name, ", ".join(registry.AVAILABLE))
    assert "lxd" in registry.AVAILABLE


def test_every_available_backend_is_an_option_and_loads():
    assert set(registry.AVAILABLE) <= set(BACKENDS)
    for name in registry.AVAILABLE:
        cls = registry.backend_class(name)
        assert cls.name == name


def test_parts_are_imported_when_first_used():
    backend = registry.load_backend("lxd", {"url": "unix:/nonexistent/lxd/unix.socket"})
    assert backend.disks is backend.disks
    assert set(backend._parts) == {"disks"}  # pylint: disable=protected-access
    assert "ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.disks" in sys.modules
