# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
import yaml

from ansible_collections.polyvirt.compute.plugins.module_utils._cloud_init import render_network_config, render_user_data
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput

KEY = "ssh-ed25519 AAAAC3Nza test@example"


def _load(text):
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def test_nothing_to_render():
    assert render_user_data(None, None) is None
    assert render_user_data(None, []) is None


def test_dict_becomes_cloud_config_in_order():
    text = render_user_data({"users": [{"name": "alice"}], "runcmd": ["true"]})
    assert _load(text) == {"users": [{"name": "alice"}], "runcmd": ["true"]}
    assert text.index("users") < text.index("runcmd")


def test_ssh_keys_alone_make_a_cloud_config():
    assert _load(render_user_data(None, [KEY])) == {"ssh_authorized_keys": [KEY]}


def test_ssh_keys_merge_without_duplicates():
    text = render_user_data({"ssh_authorized_keys": [KEY]}, [KEY, "ssh-rsa AAAAB other"])
    assert _load(text)["ssh_authorized_keys"] == [KEY, "ssh-rsa AAAAB other"]


def test_string_user_data_is_used_as_given():
    script = "#!/bin/sh\necho hello\n"
    assert render_user_data(script) == script


def test_string_cloud_config_gets_the_keys():
    text = render_user_data("#cloud-config\npackages: [curl]\n", [KEY])
    assert _load(text) == {"packages": ["curl"], "ssh_authorized_keys": [KEY]}


def test_keys_cannot_go_into_a_script():
    with pytest.raises(InvalidInput) as caught:
        render_user_data("#!/bin/sh\ntrue\n", [KEY])
    assert "cloud_init.user_data is not a #cloud-config document" in str(caught.value)


def test_bad_types_are_refused():
    with pytest.raises(InvalidInput) as caught:
        render_user_data(["not", "a", "dict"])
    assert "cloud_init.user_data must be a dict or a #cloud-config string, got list" in str(caught.value)
    with pytest.raises(InvalidInput):
        render_network_config(5)


def test_network_config_dict_and_string():
    text = render_network_config({"version": 2, "ethernets": {"eth0": {"dhcp4": True}}})
    assert yaml.safe_load(text) == {"version": 2, "ethernets": {"eth0": {"dhcp4": True}}}
    assert render_network_config("version: 1\n") == "version: 1\n"
    assert render_network_config(None) is None


@pytest.mark.parametrize("text", ["hello", "packages: [curl]\n", "", "cloud-config\n{}\n"])
def test_strings_cloud_init_would_ignore_are_refused(text):
    with pytest.raises(InvalidInput) as caught:
        render_user_data(text)
    assert "cloud_init.user_data is a string that cloud-init would ignore: it must start with #cloud-config" in caught.value.message


@pytest.mark.parametrize("text", ["#cloud-config\n{}\n", "#!/bin/sh\ntrue\n", "#include\nhttps://example.com/ud\n", "#cloud-boothook\ntrue\n",
                                  "#part-handler\n", "## template: jinja\n#cloud-config\n{}\n", "Content-Type: multipart/mixed\n",
                                  "\n  #cloud-config\n{}\n"])
def test_every_cloud_init_header_is_accepted(text):
    assert render_user_data(text) == text


def test_keys_can_be_merged_only_into_a_cloud_config():
    with pytest.raises(InvalidInput) as caught:
        render_user_data("#include\nhttps://example.com/ud\n", [KEY])
    assert "is not a #cloud-config document, so ssh_keys cannot be merged into it" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        render_user_data("#cloud-config\n- a list\n", [KEY])
    assert "must be a #cloud-config mapping, got list" in caught.value.message
