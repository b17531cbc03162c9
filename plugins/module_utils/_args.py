# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument specs shared by every module, mirrored 1:1 by the doc fragments, and connection handling.

``connection`` is one dict for all backends; each backend uses a subset of its keys (CONNECTION_KEYS).
Every key can also come from ``POLYVIRT_<BACKEND>_<KEY>``; defaults differ by backend, so they are
applied by the backend, not here.
"""

from __future__ import annotations

import os

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput

BACKENDS = ("lxd", "proxmox", "hikube", "cloudcix", "hyperv")

CONNECTION_KEYS = {
    "lxd": ("url", "client_cert", "client_key", "validate_certs", "ca_path", "project", "target"),
    "proxmox": ("api_host", "api_port", "api_user", "api_password", "api_token_id", "api_token_secret", "validate_certs", "ca_path", "node"),
    "hikube": ("kubeconfig", "context", "host", "api_key", "namespace", "validate_certs", "ca_cert"),
    "cloudcix": ("api_url", "email", "password", "api_key", "project_id"),
    "hyperv": ("host", "port", "scheme", "username", "password", "transport", "validate_certs", "ca_path", "vm_path", "switch"),
}
CONNECTION_REQUIRED = {"proxmox": ("api_host",), "hikube": ("namespace",), "hyperv": ("host",)}
SECRET_KEYS = ("api_password", "api_token_secret", "api_key", "password")

CONNECTION_OPTIONS = {
    "url": {"type": "str"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path", "no_log": False},
    "validate_certs": {"type": "bool"},
    "ca_path": {"type": "path"},
    "project": {"type": "str"},
    "target": {"type": "str"},
    "api_host": {"type": "str"},
    "api_port": {"type": "int"},
    "api_user": {"type": "str"},
    "api_password": {"type": "str", "no_log": True},
    "api_token_id": {"type": "str"},
    "api_token_secret": {"type": "str", "no_log": True},
    "node": {"type": "str"},
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "namespace": {"type": "str"},
    "ca_cert": {"type": "path"},
    "api_url": {"type": "str"},
    "email": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "project_id": {"type": "str"},
    "port": {"type": "int"},
    "scheme": {"type": "str", "choices": ["http", "https"]},
    "username": {"type": "str"},
    "transport": {"type": "str", "choices": ["ntlm", "kerberos", "credssp", "basic"]},
    "vm_path": {"type": "str"},
    "switch": {"type": "str"},
}

COMMON_ARGS = {
    "backend": {"type": "str", "required": True, "choices": list(BACKENDS)},
    "connection": {"type": "dict", "options": CONNECTION_OPTIONS, "default": {}},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "int", "default": 600},
}


def _from_env(backend, key, option_type):
    """The value of ``POLYVIRT_<BACKEND>_<KEY>`` converted to the key's type, or None."""
    name = "POLYVIRT_%s_%s" % (backend.upper(), key.upper())
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    if option_type == "bool":
        try:
            return boolean(raw, strict=True)
        except TypeError:
            raise InvalidInput("environment variable %s must be true or false, got %r" % (name, raw))
    if option_type == "int":
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput("environment variable %s must be a number, got %r" % (name, raw))
    return raw


def resolve_connection(backend, connection):
    """The connection settings of ``backend``: the task's keys, then the environment; None when unset.

    Keys that belong only to other backends are refused, so a typo or a copied block fails loudly.
    Returns ``(settings, secrets)`` where ``secrets`` lists the secret values, for ``no_log``.
    """
    given = dict((key, value) for key, value in (connection or {}).items() if value is not None)
    allowed = CONNECTION_KEYS[backend]
    foreign = sorted(set(given) - set(allowed))
    if foreign:
        raise InvalidInput("connection.%s is not used by the %s backend (its keys: %s)" % (foreign[0], backend, ", ".join(allowed)))
    settings = {}
    for key in allowed:
        value = given.get(key)
        if value is None:
            value = _from_env(backend, key, CONNECTION_OPTIONS[key]["type"])
        settings[key] = value
    missing = [key for key in CONNECTION_REQUIRED.get(backend, ()) if not settings.get(key)]
    if missing:
        raise InvalidInput("connection.%s is required for the %s backend (or set POLYVIRT_%s_%s)" % (missing[0], backend, backend.upper(), missing[0].upper()))
    secrets = [settings[key] for key in SECRET_KEYS if settings.get(key) is not None and key in allowed]
    return settings, secrets


# The settings of an instance, shared by instance and clone (doc fragment polyvirt.compute.instance_settings).
INSTANCE_SETTINGS = {
    "cpus": {"type": "int"},
    "memory": {"type": "raw"},
    "disk_size": {"type": "raw"},
    "flavor": {"type": "str"},
    "networks": {
        "type": "list",
        "elements": "dict",
        "options": {
            "name": {"type": "str"},
            "ipv4": {"type": "str"},
            "ipv4_gateway": {"type": "str"},
            "ipv6": {"type": "str"},
            "mac": {"type": "str"},
            "nat": {"type": "bool"},
        },
    },
    "ssh_keys": {"type": "list", "elements": "str", "no_log": False},
    "cloud_init": {
        "type": "dict",
        "options": {
            # user-data carries password hashes and chpasswd lists: never printed, not even at -vvv.
            "user_data": {"type": "raw", "no_log": True},
            "network_config": {"type": "raw"},
        },
    },
    "description": {"type": "str"},
    "tags": {"type": "list", "elements": "str"},
    "backend_options": {"type": "dict"},
    "wait_for": {"type": "list", "elements": "str", "choices": ["running", "ip", "cloud_init"]},
    "force": {"type": "bool", "default": False},
    "allow_restart": {"type": "bool", "default": False},
}

# instance adds what only creation from an image needs.
INSTANCE_OPTIONS = dict(
    type={"type": "str", "choices": ["container", "vm"]},
    image={"type": "str"},
    **INSTANCE_SETTINGS
)
