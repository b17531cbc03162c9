# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render ``cloud_init`` options into the text documents cloud-init reads.

``user_data`` may be a dict (rendered as ``#cloud-config``) or a string (used as given). ``ssh_keys``
are merged into ``ssh_authorized_keys`` of a cloud-config. YAML is written with PyYAML when the target
has it; otherwise as JSON, which is valid YAML and which cloud-init reads the same way. PyYAML is
imported only when something is rendered: it costs more than a whole idempotent LXD check.
"""

from __future__ import annotations

import json

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput

CLOUD_CONFIG_HEADER = "#cloud-config"
# The first lines cloud-init recognises in user-data; anything else is ignored at boot.
USER_DATA_HEADERS = (CLOUD_CONFIG_HEADER, "#!", "#include", "#cloud-boothook", "#part-handler", "## template: jinja", "Content-Type:")


def _yaml():
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:  # depends on the target's Python
        return None
    return yaml


def _dump(data):
    yaml = _yaml()
    if yaml is not None:
        return yaml.safe_dump(data, default_flow_style=False, sort_keys=False)
    return json.dumps(data, indent=2) + "\n"


def _load_cloud_config(text, option):
    yaml = _yaml()
    if yaml is None:
        raise InvalidInput("%s is a string and ssh_keys must be merged into it, which needs PyYAML on the target; pass user_data as a dict" % option)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput("%s is not valid YAML: %s" % (option, exc))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput("%s must be a #cloud-config mapping, got %s" % (option, type(data).__name__))
    return data


def render_user_data(user_data, ssh_keys=None, option="cloud_init.user_data"):
    """The user-data text for ``user_data`` and ``ssh_keys``; None when neither is set."""
    if user_data is None and not ssh_keys:
        return None
    if isinstance(user_data, str):
        if not user_data.lstrip().startswith(USER_DATA_HEADERS):
            raise InvalidInput("%s is a string that cloud-init would ignore: it must start with #cloud-config (or another cloud-init header: %s), "
                               "or be a dict" % (option, ", ".join(USER_DATA_HEADERS[1:])))
        if not ssh_keys:
            return user_data
        if not user_data.lstrip().startswith(CLOUD_CONFIG_HEADER):
            raise InvalidInput("%s is not a #cloud-config document, so ssh_keys cannot be merged into it" % option)
        data = _load_cloud_config(user_data, option)
    elif user_data is None:
        data = {}
    elif isinstance(user_data, dict):
        data = dict(user_data)
    else:
        raise InvalidInput("%s must be a dict or a #cloud-config string, got %s" % (option, type(user_data).__name__))
    if ssh_keys:
        keys = list(data.get("ssh_authorized_keys") or [])
        keys.extend(key for key in ssh_keys if key not in keys)
        data["ssh_authorized_keys"] = keys
    return CLOUD_CONFIG_HEADER + "\n" + _dump(data)


def render_network_config(network_config, option="cloud_init.network_config"):
    """The network-config text (cloud-init network config v1 or v2) or None."""
    if network_config is None or isinstance(network_config, str):
        return network_config
    if isinstance(network_config, dict):
        return _dump(network_config)
    raise InvalidInput("%s must be a dict or a YAML string, got %s" % (option, type(network_config).__name__))
