# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import CONNECTION_KEYS, CONNECTION_OPTIONS, resolve_connection
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput


def test_every_backend_key_has_an_option():
    for keys in CONNECTION_KEYS.values():
        assert set(keys) <= set(CONNECTION_OPTIONS)


def test_task_values_then_environment(monkeypatch):
    monkeypatch.setenv("POLYVIRT_LXD_PROJECT", "from-env")
    monkeypatch.setenv("POLYVIRT_LXD_URL", "unix:/env.socket")
    settings, secrets = resolve_connection("lxd", {"url": "unix:/task.socket", "project": None})
    assert settings["url"] == "unix:/task.socket"
    assert settings["project"] == "from-env"
    assert settings["target"] is None
    assert secrets == []


def test_environment_values_are_typed(monkeypatch):
    monkeypatch.setenv("POLYVIRT_PROXMOX_API_HOST", "pve.example")
    monkeypatch.setenv("POLYVIRT_PROXMOX_API_PORT", "8443")
    monkeypatch.setenv("POLYVIRT_PROXMOX_VALIDATE_CERTS", "no")
    monkeypatch.setenv("POLYVIRT_PROXMOX_API_TOKEN_SECRET", "s3cret")
    settings, secrets = resolve_connection("proxmox", {})
    assert settings["api_port"] == 8443
    assert settings["validate_certs"] is False
    assert secrets == ["s3cret"]


def test_bad_environment_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("POLYVIRT_LXD_VALIDATE_CERTS", "maybe")
    with pytest.raises(InvalidInput) as caught:
        resolve_connection("lxd", {})
    assert "POLYVIRT_LXD_VALIDATE_CERTS must be true or false, got 'maybe'" in str(caught.value)


def test_keys_of_other_backends_are_refused():
    with pytest.raises(InvalidInput) as caught:
        resolve_connection("lxd", {"api_host": "pve.example"})
    assert "connection.api_host is not used by the lxd backend" in str(caught.value)


def test_required_keys(monkeypatch):
    monkeypatch.delenv("POLYVIRT_HIKUBE_NAMESPACE", raising=False)
    with pytest.raises(InvalidInput) as caught:
        resolve_connection("hikube", {})
    assert "connection.namespace is required for the hikube backend (or set POLYVIRT_HIKUBE_NAMESPACE)" in str(caught.value)
