# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.module_utils._model import instance_result, normalise_mac, positive_int, size_gib, size_mib


@pytest.mark.parametrize("value, mib", [
    ("4GiB", 4096), ("4G", 4096), ("4g", 4096), ("512MiB", 512), ("512M", 512), (512, 512), ("512", 512),
    ("0.5GiB", 512), ("1 GiB", 1024), ("1048576KiB", 1024), ("1TiB", 1024 * 1024),
])
def test_memory_sizes_normalise_to_mib(value, mib):
    assert size_mib(value, "memory") == mib


@pytest.mark.parametrize("value, gib", [("20GiB", 20), (20, 20), ("20G", 20), ("20480MiB", 20), ("1TiB", 1024)])
def test_disk_sizes_normalise_to_gib(value, gib):
    assert size_gib(value, "disk_size") == gib


@pytest.mark.parametrize("value, message", [
    ("lots", "memory must be a size such as 4GiB or 512MiB, got 'lots'"),
    ("4 parsecs", "memory has an unknown unit 'parsecs'"),
    (0, "memory must be greater than zero, got 0"),
    ("-1GiB", "memory must be a size such as 4GiB or 512MiB, got '-1GiB'"),
    (True, "memory must be a size"),
    ("1GB", "memory must be a whole number of MiB, got '1GB'"),
])
def test_bad_sizes_name_the_option_and_value(value, message):
    with pytest.raises(InvalidInput) as caught:
        size_mib(value, "memory")
    assert message in str(caught.value)


def test_decimal_units_are_decimal():
    assert size_mib("1048576KB", "memory") == 1000
    with pytest.raises(InvalidInput):
        size_gib("1000GB", "disk_size")  # 1000 GB is not a whole number of GiB


@pytest.mark.parametrize("value", [0, -2, True, "2"])
def test_positive_int_refuses(value):
    with pytest.raises(InvalidInput) as caught:
        positive_int(value, "cpus")
    assert "cpus must be a whole number of at least 1" in str(caught.value)


def test_positive_int_passes_none_and_counts():
    assert positive_int(None, "cpus") is None
    assert positive_int(4, "cpus") == 4


def test_mac_normalised_lower_with_colons():
    assert normalise_mac("00-16-3E-AA-BB-CC") == "00:16:3e:aa:bb:cc"
    assert normalise_mac(None) is None


def test_instance_result_prefers_ipv4_for_ansible_host():
    result = instance_result("web", "lxd", addresses={"ipv4": ["10.0.0.2"], "ipv6": ["fd00::2"]})
    assert result["ansible_host"] == "10.0.0.2"
    assert instance_result("web", "lxd", addresses={"ipv4": [], "ipv6": ["fd00::2"]})["ansible_host"] == "fd00::2"
    assert instance_result("web", "lxd")["ansible_host"] is None
