# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend name -> driver class, importing only that backend's code and library.

Each backend has one loader function here. The imports are written out (not computed) so that
AnsiballZ sees and packs every driver, while a task only executes the one import its ``backend`` needs.
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Unsupported


def _lxd():
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.backend import LxdBackend

    return LxdBackend


def _hikube():
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.backend import HikubeBackend

    return HikubeBackend


def _hyperv():
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hyperv.backend import HyperVBackend

    return HyperVBackend


def _cloudcix():
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.backend import CloudcixBackend

    return CloudcixBackend


def _proxmox():
    from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox.backend import ProxmoxBackend

    return ProxmoxBackend


LOADERS = {
    "lxd": _lxd,
    "hikube": _hikube,
    "hyperv": _hyperv,
    "cloudcix": _cloudcix,
    "proxmox": _proxmox,
}
AVAILABLE = tuple(LOADERS)


def backend_class(name):
    """The Backend subclass of ``name``; Unsupported when this release has no driver for it."""
    if name not in LOADERS:
        raise Unsupported("the %s backend is not available yet in this release of polyvirt.compute (available: %s)" % (name, ", ".join(AVAILABLE)))
    return LOADERS[name]()


def load_backend(name, settings):
    """A driver for backend ``name`` configured from resolved connection ``settings`` (connected lazily)."""
    return backend_class(name)(settings)
