# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ansible glue for modules: the shared argspec, connection resolution, and the one ``fail_json``."""

from __future__ import annotations

import copy
import json
import math
import sys
import traceback

from ansible.module_utils.basic import AnsibleModule, _load_params

from ansible_collections.polyvirt.compute.plugins.module_utils._args import COMMON_ARGS, resolve_connection
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import PolyvirtError
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.registry import load_backend


class PolyvirtModule:
    """Wraps AnsibleModule: adds the common options and turns collection errors into ``fail_json``."""

    def __init__(self, argument_spec, **kwargs):
        spec = copy.deepcopy(COMMON_ARGS)
        spec.update(argument_spec)
        try:
            self.module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
        except (TypeError, OverflowError) as exc:
            _fail_before_module(spec, exc)
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


def _fail_before_module(spec, exc):
    """Report the argument ansible-core's own validation crashed on, since no AnsibleModule exists to fail with.

    ansible-core 2.19 raises instead of reporting a scalar given to a dict option with suboptions
    (``connection: true``) and an infinite float given to an int option (``wait_timeout: .inf``).
    The arguments are not echoed, so nothing secret is printed.
    """
    params = _load_params()
    message = "invalid arguments: %s" % exc
    for option, option_spec in spec.items():
        value = params.get(option)
        if value is None:
            continue
        if option_spec.get("type") == "dict" and not isinstance(value, dict):
            message = "%s must be a dict, got %s" % (option, type(value).__name__)
            break
        if option_spec.get("type") == "int" and isinstance(value, float) and not math.isfinite(value):
            message = "%s must be a whole number, got %r" % (option, value)
            break
    # The module's own output, as exit_json would print it: there is no AnsibleModule to call fail_json on.
    print(json.dumps({"failed": True, "changed": False, "msg": message}))  # pylint: disable=ansible-bad-function
    sys.exit(1)  # pylint: disable=ansible-bad-function
