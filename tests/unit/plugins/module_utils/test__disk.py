# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared disk reconciler, against a small in-memory backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backend import Backend
from ansible_collections.polyvirt.compute.plugins.module_utils._disk import DiskReconciler, list_disks
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB
from ansible_collections.polyvirt.compute.plugins.module_utils._resources import disk_result


class DiskBackend(Backend):
    """Disks as dicts {name: (size_bytes, attached_to, path)}; every mutating call is logged."""

    name = "memory"
    capabilities = frozenset(("disk", "disk.source.disk"))

    def __init__(self, disks=None, instances=("i1", "i2")):
        self.disks = dict(disks or {})
        self.instances = set(instances)
        self.calls = []

    def get_instance(self, name):
        return {"name": name} if name in self.instances else None

    def _describe(self, name):
        size, attached, path = self.disks[name]
        return disk_result(name, self.name, size_bytes=size, size_gib=size // GIB if size else None, storage="pool", attached_to=attached, path=path)

    def get_disk(self, spec, instance_raw):
        return self._describe(spec["name"]) if spec["name"] in self.disks else None

    def list_disks(self, storage=None, instance_raw=None):
        return [self._describe(name) for name in sorted(self.disks)]

    def check_disk_source(self, spec):
        if spec["source"].get("disk") and spec["source"]["disk"] not in self.disks:
            raise NotFound("source.disk %s does not exist" % spec["source"]["disk"])

    def disk_attachment(self, spec, attached):
        path = spec["backend_options"].get("path") or (None if attached else "/mnt/" + spec["name"])
        return {"path": path} if path else {}

    def create_disk(self, spec, deadline):
        self.calls.append(("create", spec["name"]))
        self.disks[spec["name"]] = (spec["size_bytes"], None, None)
        return self._describe(spec["name"])

    def resize_disk(self, disk, size_bytes, deadline):
        self.calls.append(("resize", disk["name"], size_bytes))

    def attach_disk(self, disk, instance_raw, options, deadline):
        self.calls.append(("attach", disk["name"], instance_raw["name"], options.get("path")))

    def detach_disk(self, disk, instance, deadline):
        self.calls.append(("detach", disk["name"], instance))

    def delete_disk(self, disk, deadline):
        self.calls.append(("delete", disk["name"]))


def run(backend, check_mode=False, **params):
    params.setdefault("name", "d1")
    params.setdefault("storage", "pool")
    return DiskReconciler(backend, params, check_mode=check_mode, diff_mode=True).run()


@pytest.mark.parametrize("disks, params, calls", [
    ({}, {"size": 1}, [("create", "d1")]),
    ({}, {"size": 1, "instance": "i1"}, [("create", "d1"), ("attach", "d1", "i1", "/mnt/d1")]),
    ({"d1": (GIB, "i1", "/mnt/d1")}, {"size": "1GiB", "instance": "i1"}, []),
    ({"d1": (GIB, "i1", "/data")}, {"instance": "i1"}, []),
    ({"d1": (GIB, "i1", "/data")}, {"instance": "i1", "backend_options": {"path": "/srv"}}, [("attach", "d1", "i1", "/srv")]),
    ({"d1": (GIB, None, None)}, {"size": "2GiB"}, [("resize", "d1", 2 * GIB)]),
    ({"d1": (None, None, None)}, {"size": "2GiB"}, [("resize", "d1", 2 * GIB)]),
    ({"d1": (GIB, "i1", "/mnt/d1")}, {"state": "detached"}, [("detach", "d1", "i1")]),
    ({"d1": (GIB, "i1", "/mnt/d1")}, {"state": "detached", "instance": "i2"}, []),
    ({"d1": (GIB, None, None)}, {"state": "detached"}, []),
    ({"d1": (GIB, "i1", "/mnt/d1")}, {"state": "absent"}, [("detach", "d1", "i1"), ("delete", "d1")]),
    ({}, {"state": "absent"}, []),
    ({"d0": (GIB, None, None)}, {"source": {"disk": "d0"}}, [("create", "d1")]),
])
def test_plan(disks, params, calls):
    backend = DiskBackend(disks)
    result = run(backend, **params)
    assert backend.calls == calls
    assert result["changed"] == bool(calls)
    planned = run(DiskBackend(disks), check_mode=True, **params)
    assert planned["actions"] == result["actions"]
    assert planned["diff"] == result["diff"]


def test_a_new_attached_disk_diffs_as_a_whole():
    result = run(DiskBackend(), size=1, instance="i1")
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"] == {"name": "d1", "backend": "memory", "size_gib": 1, "size_bytes": GIB, "storage": "pool", "attached_to": "i1",
                                       "path": "/mnt/d1"}


@pytest.mark.parametrize("disks, params, error, message", [
    ({"d1": (2 * GIB, None, None)}, {"size": "1GiB"}, InvalidInput, "size 1GiB is smaller than the current 2GiB; disks only grow"),
    ({"d1": (GIB, "i1", "/mnt/d1")}, {"instance": "i2", "size": "3GiB"}, Conflict, "disk d1 is attached to instance i1"),
    ({}, {"instance": "nope"}, NotFound, "instance nope does not exist"),
    ({}, {"source": {"image": "x"}}, Unsupported, "disk source.image is not supported by the memory backend"),
    ({}, {"source": {"disk": "a", "url": "b"}}, InvalidInput, "source takes one of image, url, disk"),
    ({}, {"optical": True}, Unsupported, "optical disks is not supported by the memory backend"),
    ({}, {"source": {"disk": "nope"}}, NotFound, "source.disk nope does not exist"),
    ({}, {"size": "big"}, InvalidInput, "size must be a size"),
])
def test_bad_input_fails_before_any_call(disks, params, error, message):
    backend = DiskBackend(disks)
    with pytest.raises(error) as caught:
        run(backend, **params)
    assert message in caught.value.message
    assert backend.calls == []


def test_info_filters():
    backend = DiskBackend({"a": (GIB, "i1", "/mnt/a"), "b": (GIB, None, None)})
    assert [disk["name"] for disk in list_disks(backend)] == ["a", "b"]
    assert [disk["name"] for disk in list_disks(backend, name="b")] == ["b"]
    assert [disk["name"] for disk in list_disks(backend, instance="i1")] == ["a"]
    with pytest.raises(NotFound):
        list_disks(backend, instance="nope")
