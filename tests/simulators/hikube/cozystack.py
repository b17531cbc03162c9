# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Cozystack application knowledge: the vendored values schemas, read-time defaulting and Helm-style validation.

import copy
import json
import os
import re

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

SCHEMA_FILES = {
    "head": ("vm-instance.values.schema.json", "vm-disk.values.schema.json"),
    "1.0.0": ("vm-instance.v1.0.0.values.schema.json", "vm-disk.v1.0.0.values.schema.json"),
    "0.41.11": ("vm-instance.v0.41.11.values.schema.json", "vm-disk.v0.41.11.values.schema.json"),
}

# release version reported in status.version per emulated Cozystack version
CHART_VERSIONS = {"head": "1.6.2", "1.0.0": "1.0.0", "0.41.11": "0.41.11"}

# Hikube's instance types (public docs) and their guest sizes
INSTANCE_TYPES = {}
for _n, (_c, _m) in {"small": (1, 2), "medium": (2, 4), "large": (4, 8), "xlarge": (8, 16), "3large": (12, 24),
                     "2xlarge": (16, 32), "3xlarge": (24, 48), "4xlarge": (32, 64), "8xlarge": (64, 128)}.items():
    INSTANCE_TYPES["s1." + _n] = (_c, _m)
for _n, (_c, _m) in {"medium": (1, 4), "large": (2, 8), "xlarge": (4, 16), "2xlarge": (8, 32), "4xlarge": (16, 64),
                     "8xlarge": (32, 128)}.items():
    INSTANCE_TYPES["u1." + _n] = (_c, _m)
for _n, (_c, _m) in {"large": (2, 16), "xlarge": (4, 32), "2xlarge": (8, 64), "4xlarge": (16, 128), "8xlarge": (32, 256)}.items():
    INSTANCE_TYPES["m1." + _n] = (_c, _m)

PREFERENCES = ["alpine", "centos.7", "centos.7.desktop", "centos.stream10", "centos.stream10.desktop", "centos.stream8",
               "centos.stream8.desktop", "centos.stream9", "centos.stream9.desktop", "cirros", "fedora", "opensuse.leap",
               "opensuse.tumbleweed", "rhel.10", "rhel.7", "rhel.7.desktop", "rhel.8", "rhel.8.desktop", "rhel.9",
               "rhel.9.desktop", "sles", "ubuntu", "windows.2k16", "windows.2k16.virtio", "windows.2k19",
               "windows.2k19.virtio", "windows.2k22", "windows.2k22.virtio", "windows.2k25", "windows.2k25.virtio"]

# Hikube golden images (public docs), served as PVCs vm-default-images-<name> in cozy-public
GOLDEN_IMAGES = ["almalinux", "centos-stream", "cloudlinux", "debian", "fedora", "opensuse", "oracle", "proxmox",
                 "rocky", "talos", "ubuntu"]

STORAGE_CLASSES = {"replicated": "Immediate", "replicated-async": "Immediate", "local": "WaitForFirstConsumer"}


def load_schemas(version):
    inst, disk = SCHEMA_FILES[version]
    out = {}
    for kind, name in (("VMInstance", inst), ("VMDisk", disk)):
        with open(os.path.join(DATA, name), encoding="utf-8") as handle:
            out[kind] = json.load(handle)
    return out


def apply_defaults(value, schema):
    """Structural defaulting: fill missing properties that declare a default, recursing into objects and arrays."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict) and schema.get("properties"):
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value, expected):
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(expected, object)) and not (expected != "boolean" and isinstance(value, bool))


def validate(value, schema, path="(root)"):
    """Validate like Helm's values.schema.json check (gojsonschema wording); returns ["field: message"]."""
    errors = []
    if not isinstance(schema, dict):
        return errors
    expected = schema.get("type")
    if expected and not _type_ok(value, expected):
        return ["%s: Invalid type. Expected: %s, given: %s" % (path, expected, _type_name(value))]
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %s must be one of the following: %s" % (path, path, ", ".join(json.dumps(e) for e in schema["enum"])))
    if "anyOf" in schema:
        if not any(not validate(value, sub, path) for sub in schema["anyOf"]):
            errors.append("%s: Must validate at least one schema (anyOf)" % path)
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append("%s: Does not match pattern '%s'" % (path, schema["pattern"]))
    if isinstance(value, dict):
        for req in schema.get("required", []):
            if req not in value:
                errors.append("%s: %s is required" % (path, req))
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                errors.extend(validate(value[key], sub, key if path == "(root)" else "%s.%s" % (path, key)))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for idx, item in enumerate(value):
            errors.extend(validate(item, schema["items"], "%s.%d" % (path, idx)))
    return errors


def helm_schema_error(chart, errors):
    return ("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s\n"
            % (chart, "\n".join("- " + e for e in errors)))
