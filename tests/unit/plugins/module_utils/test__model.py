# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput
from ansible_collections.polyvirt.compute.plugins.module_utils._model import (
    GIB,
    MIB,
    backup_result,
    check_name,
    diffable,
    disk_result,
    format_size,
    in_unit,
    instance_result,
    normalise_mac,
    oldest_first,
    parse_size,
    positive_int,
    public,
    size_gib,
    size_mib,
    snapshot_result,
    to_prune,
)


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


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["web-1", "web.example", "...", "a..b", "wébserver", "日本語", "straße", "snap 1", "x" * 300])
def test_names_the_shared_validator_accepts(name):
    assert check_name(name, "name") == name


@pytest.mark.parametrize("name, reason", [
    (".", ". and .. are path components"),
    ("..", ". and .. are path components"),
    ("a/b", "it contains '/'"),
    ("/", "it contains '/'"),
    ("../etc", "it contains '/'"),
    ("a\\b", "it contains '\\\\'"),
    ("a\x00b", "it contains '\\x00'"),
    ("a\nb", "it contains '\\n'"),
    ("\tweb", "it contains '\\t'"),
    ("web\x7f", "it contains '\\x7f'"),
    ("web\x1b[31m", "it contains '\\x1b'"),
    ("web\u200b", "it contains '\\u200b'"),  # zero-width space (Cf)
    ("web\u202e", "it contains '\\u202e'"),  # right-to-left override (Cf)
    ("web\u2028", "it contains '\\u2028'"),  # line separator (Zl)
    ("web\u2029", "it contains '\\u2029'"),  # paragraph separator (Zp)
])
def test_names_the_shared_validator_refuses(name, reason):
    with pytest.raises(InvalidInput) as caught:
        check_name(name, "snapshot")
    assert caught.value.message.startswith("snapshot %r is not a valid name: " % name)
    assert reason in caught.value.message


@pytest.mark.parametrize("value", ["", None, 5, ["web"]])
def test_names_must_be_non_empty_strings(value):
    with pytest.raises(InvalidInput) as caught:
        check_name(value, "instance")
    assert caught.value.message == "instance must be a non-empty name, got %r" % (value,)


# -- sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), "inf", "nan", "Infinity", True, False, None, [], "1e3GiB", "0x10"])
def test_parse_size_refuses_what_is_not_a_size(value):
    with pytest.raises(InvalidInput) as caught:
        parse_size(value, "size", "GiB")
    assert caught.value.message.startswith("size ")


@pytest.mark.parametrize("value", [0, 0.0, "0", "0GiB", -1, -0.5, "-1GiB", "-1", 0.0000000001])
def test_parse_size_refuses_zero_and_negatives(value):
    with pytest.raises(InvalidInput) as caught:
        parse_size(value, "size", "B")
    assert "size must be" in caught.value.message


@pytest.mark.parametrize("value, default_unit, size", [
    (1, "GiB", GIB), (1.5, "GiB", 3 * GIB // 2), ("1.5GiB", "B", 3 * GIB // 2), ("2048", "MiB", 2 * GIB), ("512B", "GiB", 512),
    ("1 TB", "GiB", 1000 ** 4), ("1kib", "B", 1024), ("1K", "B", 1024), (" 3 GiB ", "B", 3 * GIB),
])
def test_parse_size(value, default_unit, size):
    assert parse_size(value, "size", default_unit) == size


@pytest.mark.parametrize("value", [1e308, "9" * 400, 10 ** 400])
def test_parse_size_refuses_a_size_too_large_to_compute(value):
    with pytest.raises(InvalidInput) as caught:
        parse_size(value, "memory", "MiB")
    assert caught.value.message.startswith("memory ")


def test_sizes_in_units():
    assert (format_size(4 * GIB), format_size(512 * MIB), format_size(1536), format_size(1000), format_size(1024 ** 4)) == (
        "4GiB", "512MiB", "1536B", "1000B", "1TiB")
    assert format_size(1536 * 1024) == "1536KiB"
    assert (in_unit(2 * GIB, GIB), in_unit(GIB + GIB // 4, GIB), in_unit(None, GIB)) == (2, 1.25, None)


# -- result shapes --------------------------------------------------------------------------------


def test_result_shapes_have_every_documented_key():
    assert set(instance_result("web", "lxd")) == {"name", "backend", "id", "type", "state", "cpus", "memory_mib", "disk_gib", "image", "description",
                                                  "addresses", "ansible_host", "networks", "location", "tags", "backend_data"}
    assert set(snapshot_result("s", "web", "lxd")) == {"name", "instance", "backend", "created_at", "stateful", "description", "backend_data"}
    assert set(backup_result("b", "web", "lxd")) == {"id", "name", "instance", "backend", "created_at", "size_bytes", "location", "backend_data"}
    assert set(disk_result("d", "lxd")) == {"name", "backend", "size_gib", "size_bytes", "storage", "attached_to", "attachments", "path", "backend_data"}
    assert backup_result("b", "web", "lxd")["id"] == "b"


def test_each_result_gets_its_own_containers():
    first, second = instance_result("a", "lxd"), instance_result("b", "lxd")
    first["addresses"]["ipv4"].append("10.0.0.1")
    first["tags"].append("x")
    assert second["addresses"] == {"ipv4": [], "ipv6": []} and second["tags"] == []


def test_ansible_host_follows_the_shared_policy_and_can_be_given():
    networks = [{"name": "lan", "addresses": ["fd00::2"]}]
    assert instance_result("web", "lxd", addresses={"ipv4": ["10.0.0.2"], "ipv6": ["fd00::2"]}, networks=networks)["ansible_host"] == "10.0.0.2"
    assert instance_result("web", "lxd", addresses={"ipv4": ["10.0.0.2"], "ipv6": []}, ansible_host="203.0.113.9")["ansible_host"] == "203.0.113.9"


def test_public_removes_private_keys_at_every_depth():
    value = {"instance": {"name": "web", "_native": {"secret": 1}, "networks": [{"name": "lan", "_raw": 2}]}, "_cache": 3, 1: "kept"}
    assert public(value) == {"instance": {"name": "web", "networks": [{"name": "lan"}]}, 1: "kept"}
    assert value["instance"]["_native"] == {"secret": 1}  # the input is not changed
    assert public(["a", {"_b": 1}]) == ["a", {}] and public("text") == "text"


def test_diffable_drops_the_native_object_private_keys_and_empty_values():
    item = dict(disk_result("d", "lxd", size_gib=1, storage="pool"), _native={"x": 1}, backend_data={"raw": True})
    assert diffable(item) == {"name": "d", "backend": "lxd", "size_gib": 1, "storage": "pool"}
    assert diffable(None) == {}


@pytest.mark.parametrize("names, retain, keep, pruned", [
    (["a", "b", "c"], 2, None, ["a"]),
    (["a", "b", "c"], 2, "a", ["b"]),
    (["a", "b", "c"], 1, "b", ["a", "c"]),
    (["a"], 3, None, []),
    (["a", "b"], None, None, []),
])
def test_to_prune(names, retain, keep, pruned):
    items = [{"name": name, "created_at": "2026-01-01T00:00:%02dZ" % index} for index, name in enumerate(names)]
    assert [item["name"] for item in to_prune(items, retain, keep)] == pruned


def test_oldest_first_keeps_the_backend_order_for_ties_and_unknown_times():
    items = [{"name": "b", "created_at": "2026-01-02"}, {"name": "x", "created_at": None}, {"name": "a", "created_at": "2026-01-01"},
             {"name": "y"}]
    assert [item["name"] for item in oldest_first(items)] == ["x", "y", "a", "b"]
