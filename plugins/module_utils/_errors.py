# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's exception hierarchy.

Transport clients raise these; the reconcilers add context; the Ansible glue turns them into one
``fail_json`` (modules) or ``AnsibleError`` (plugins). ``result`` carries what is known so far (for
example the instance that was created before a wait timed out) so a failure still reports it.
"""

from __future__ import annotations


class PolyvirtError(Exception):
    """Base of every error the collection raises on purpose (never shown with a traceback)."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.message = message
        self.result = dict(result or {})

    def __str__(self):
        return self.message


class InvalidInput(PolyvirtError):
    """An option has a value the collection or the backend cannot accept; raised before any change."""


class Unsupported(InvalidInput):
    """The backend cannot do what was asked (see the capability table)."""


class MissingLibrary(PolyvirtError):
    """The Python library a backend needs is not installed where the module runs."""


class BackendUnavailable(PolyvirtError):
    """The backend's API could not be reached (connection refused, DNS, TLS)."""


class AuthError(PolyvirtError):
    """The backend refused our credentials."""


class NotFound(PolyvirtError):
    """The object does not exist."""


class Conflict(PolyvirtError):
    """The backend refused the change because of the object's current state (exists, locked, running)."""


class OperationFailed(PolyvirtError):
    """The backend accepted an operation and then reported that it failed."""


class WaitTimeout(PolyvirtError):
    """``wait_timeout`` ran out before the backend reported the awaited condition."""


class failing_to:  # pylint: disable=invalid-name
    """Context manager that prefixes errors with ``Failed to <verb> <object> <name> on <backend>:``.

    The first (innermost) context wins, so a message is prefixed once with the most precise verb.
    """

    def __init__(self, verb, obj, name, backend):
        self.prefix = "Failed to %s %s %s on %s: " % (verb, obj, name, backend)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if isinstance(exc, PolyvirtError) and not getattr(exc, "has_context", False):
            exc.message = self.prefix + exc.message
            exc.args = (exc.message,)
            exc.has_context = True
        return False
