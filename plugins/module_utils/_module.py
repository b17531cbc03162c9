# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ansible glue for modules: the shared argspec, connection resolution, and the one ``fail_json``."""

from __future__ import annotations

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.polyvirt.compute.plugins.module_utils._args import COMMON_ARGS, resolve_connection
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import PolyvirtError
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.registry import load_backend


class PolyvirtModule:
    """Wraps AnsibleModule: adds the common options and turns collection errors into ``fail_json``."""

    def __init__(self, argument_spec, **kwargs):
        spec = copy.deepcopy(COMMON_ARGS)
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.diff_mode = self.module._diff
        self._backend = None

    def backend(self):
        """The driver of the selected backend, connected lazily (its library is imported here)."""
        if self._backend is None:
            settings, secrets = resolve_connection(self.params["backend"], self.params.get("connection"))
            self.module.no_log_values.update(secrets)
            self._backend = load_backend(self.params["backend"], settings)
        return self._backend

    def run(self, action):
        """Call ``action(self)`` and exit with its result; collection errors fail cleanly, once."""
        try:
            result = action(self)
        except PolyvirtError as exc:
            self._close()
            failure = dict(exc.result)
            failure.setdefault("changed", False)
            self.module.fail_json(msg=exc.message, **failure)
        except Exception as exc:  # pylint: disable=broad-except
            # The final guard: an unexpected error is a bug, so keep the traceback for the report.
            self._close()
            self.module.fail_json(msg="Unexpected error in polyvirt.compute: %s" % exc, exception=traceback.format_exc())
        self._close()
        warnings = result.pop("warnings", [])
        for warning in warnings:
            self.module.warn(warning)
        self.module.exit_json(**result)

    def _close(self):
        if self._backend is not None:
            self._backend.close()
