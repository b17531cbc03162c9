# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Find the driver of a backend, importing only that backend's code and library.

The imports are written out (not computed) so that AnsiballZ sees and packs every driver, while a
task only executes the one import its ``backend`` needs.
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Unsupported

AVAILABLE = ("lxd",)


def load_backend(name, settings, resources=False):
    """A connected driver for backend ``name`` configured from resolved connection ``settings``.

    ``resources`` asks for the snapshot, backup and disk operations too; instance tasks leave them out,
    because every file a module imports is compiled again on every task.
    """
    if name == "lxd":
        if resources:
            from ansible_collections.polyvirt.compute.plugins.module_utils._lxd.resources import LxdResourceBackend

            return LxdResourceBackend(settings)
        from ansible_collections.polyvirt.compute.plugins.module_utils._lxd.driver import LxdBackend

        return LxdBackend(settings)
    raise Unsupported("the %s backend is not available yet in this release of polyvirt.compute (available: %s)" % (name, ", ".join(AVAILABLE)))
