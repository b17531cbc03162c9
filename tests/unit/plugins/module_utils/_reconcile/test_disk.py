# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared disk reconciler, against the shared fake backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, OperationFailed, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import DiskReconciler, list_disks
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils.fake_backend import fake_backend

INSTANCES = [{"name": "i1", "state": "running"}, {"name": "i2", "state": "running"}]


def backend_with(disks=(), **kwargs):
    return fake_backend(INSTANCES, disks=[dict(disk) for disk in disks], **kwargs)


def disk(attachments=(), size_bytes=GIB, path=None, name="d1"):
    return {"name": name, "storage": "pool0", "size_bytes": size_bytes, "attachments": list(attachments),
            "path": path if path is not None or not attachments else "/mnt/" + name}


def params(**overrides):
    base = {"name": "d1", "instance": None, "state": "present", "size": None, "storage": "pool0", "source": None, "optical": False,
            "backend_options": None, "wait": True, "wait_timeout": 5}
    base.update(overrides)
    return base


def run(backend, check_mode=False, **overrides):
    return DiskReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run()


def calls(backend):
    return [(call[0].split(".")[1],) + call[1:] for call in backend.calls]


@pytest.mark.parametrize("disks, overrides, expected", [
    ([], {"size": 1}, [("create", "d1")]),
    ([], {"size": 1, "instance": "i1"}, [("create", "d1"), ("attach", "d1", "i1", "/mnt/d1")]),
    ([disk(["i1"])], {"size": "1GiB", "instance": "i1"}, []),
    ([disk(["i1"], path="/data")], {"instance": "i1"}, []),
    ([disk(["i1"], path="/data")], {"instance": "i1", "backend_options": {"path": "/srv"}}, [("attach", "d1", "i1", "/srv")]),
    ([disk()], {"instance": "i2"}, [("attach", "d1", "i2", "/mnt/d1")]),
    ([disk()], {"size": "2GiB"}, [("resize", "d1", 2 * GIB)]),
    ([disk(size_bytes=None)], {"size": "2GiB"}, [("resize", "d1", 2 * GIB)]),
    ([disk(["i1"])], {"state": "detached"}, [("detach", "d1", "i1")]),
    ([disk(["i1", "i2"])], {"state": "detached"}, [("detach", "d1", "i1"), ("detach", "d1", "i2")]),
    ([disk(["i1", "i2"])], {"state": "detached", "instance": "i2"}, [("detach", "d1", "i2")]),
    ([disk(["i1"])], {"state": "detached", "instance": "i2"}, []),
    ([disk()], {"state": "detached"}, []),
    ([disk(["i1"])], {"state": "absent"}, [("detach", "d1", "i1"), ("delete", "d1")]),
    ([disk(["i1", "i2"])], {"state": "absent"}, [("detach", "d1", "i1"), ("detach", "d1", "i2"), ("delete", "d1")]),
    ([disk(["i1", "i2"])], {"state": "absent", "instance": "i2", "storage": None}, [("detach", "d1", "i1"), ("detach", "d1", "i2"), ("delete", "d1")]),
    ([disk()], {"state": "absent"}, [("delete", "d1")]),
    ([], {"state": "absent"}, []),
    ([disk(name="d0")], {"source": {"disk": "d0"}}, [("create", "d1")]),
])
def test_plan(disks, overrides, expected):
    backend = backend_with(disks)
    result = run(backend, **overrides)
    assert calls(backend) == expected
    assert result["changed"] == bool(expected)
    checked = backend_with(disks)
    planned = run(checked, check_mode=True, **overrides)
    assert checked.calls == []
    assert planned["actions"] == result["actions"]
    assert planned["diff"] == result["diff"]
    assert run(backend, **overrides)["changed"] is False


def test_absent_detaches_from_every_instance_then_deletes():
    backend = backend_with([disk(["i1", "i2"])])
    result = run(backend, state="absent")
    assert result["actions"] == ["detach disk d1 from instance i1", "detach disk d1 from instance i2", "delete disk d1"]
    assert result["disk"] == {}
    assert result["diff"]["before"]["attachments"] == ["i1", "i2"] and result["diff"]["after"] == {}
    assert backend.disk_world == {}


def test_detached_from_two_instances_shows_the_attachment_going():
    result = run(backend_with([disk(["i1", "i2"])]), state="detached")
    assert result["diff"] == {"before": {"attached_to": "i1"}, "after": {"attached_to": None}}
    assert result["disk"]["attachments"] == [] and result["disk"]["attached_to"] is None


def test_a_new_attached_disk_diffs_as_a_whole():
    result = run(backend_with(), size=1, instance="i1")
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"] == {"name": "d1", "backend": "fake", "size_gib": 1, "size_bytes": GIB, "storage": "pool0", "attached_to": "i1",
                                       "attachments": ["i1"], "path": "/mnt/d1"}


def test_a_resize_diffs_the_size():
    result = run(backend_with([disk()]), size="3GiB")
    assert result["diff"] == {"before": {"size_gib": 1}, "after": {"size_gib": 3}}
    assert result["disk"]["size_bytes"] == 3 * GIB


def test_the_storage_defaults_to_the_instances():
    backend = backend_with()
    result = run(backend, storage=None, instance="i1", size=1)
    assert result["disk"]["storage"] == "pool0"


def test_absent_of_a_disk_of_an_instance_that_is_gone_is_no_change():
    backend = backend_with([disk()])
    assert run(backend, state="absent", instance="gone", storage=None)["changed"] is False
    assert backend.calls == []


@pytest.mark.parametrize("disks, overrides, without, error, message", [
    ([disk(size_bytes=2 * GIB)], {"size": "1GiB"}, (), InvalidInput, "Failed to update disk d1 on fake: size 1GiB is smaller than the current 2GiB; "
                                                                     "disks only grow"),
    ([disk(["i1"])], {"instance": "i2", "size": "3GiB"}, (), Conflict, "disk d1 is attached to instance i1; detach it there first"),
    ([disk(["i1", "i2"])], {"instance": "i2"}, (), Conflict, "disk d1 is attached to instance i1; detach it there first"),
    ([], {"instance": "nope"}, (), NotFound, "Failed to read disk d1 on fake: instance nope does not exist"),
    ([], {"source": {"image": "x"}}, ("disk.source.image",), Unsupported, "Failed to validate disk d1 on fake: disk source.image is not supported by the "
                                                                          "fake backend"),
    ([], {"source": {"url": "http://x"}}, ("disk.source.url",), Unsupported, "disk source.url is not supported by the fake backend"),
    ([], {"source": {"disk": "a", "url": "b"}}, (), InvalidInput, "source takes one of image, url, disk, got disk, url"),
    ([], {"optical": True}, ("disk.optical",), Unsupported, "optical disks is not supported by the fake backend"),
    ([], {"source": {"disk": "nope"}}, (), NotFound, "Failed to create disk d1 on fake: source.disk nope does not exist"),
    ([], {"source": {"disk": ".."}}, (), InvalidInput, "source.disk '..' is not a valid name"),
    ([], {"size": "big"}, (), InvalidInput, "size must be a size"),
    ([], {"size": 0}, (), InvalidInput, "size must be greater than zero"),
    ([], {"name": "d/1"}, (), InvalidInput, "name 'd/1' is not a valid name"),
    ([], {"name": "d 1"}, (), InvalidInput, "not a valid fake disk name"),
    ([], {"instance": "."}, (), InvalidInput, "instance '.' is not a valid name"),
])
def test_bad_input_fails_before_any_call(disks, overrides, without, error, message):
    backend = backend_with(disks, without=without)
    with pytest.raises(error) as caught:
        run(backend, **overrides)
    assert message in caught.value.message
    assert backend.calls == []
    assert caught.value.result["changed"] is False


def test_a_backend_without_disks_refuses_before_any_call():
    backend = backend_with(parts=("instances",))
    with pytest.raises(Unsupported) as caught:
        run(backend)
    assert caught.value.message == "Failed to validate disk d1 on fake: disks is not supported by the fake backend"
    assert backend.reads == []
    with pytest.raises(Unsupported):
        list_disks(backend)


def test_a_new_disk_that_cannot_be_attached_is_deleted_again():
    backend = backend_with(faults={"disks.attach": OperationFailed("device busy")})
    with pytest.raises(OperationFailed) as caught:
        run(backend, size=1, instance="i1")
    assert caught.value.message == "Failed to attach disk d1 on fake: device busy"
    assert calls(backend) == [("create", "d1"), ("attach", "d1", "i1", "/mnt/d1"), ("delete", "d1")]
    assert caught.value.result["actions"] == ["create disk d1 in pool0", "delete disk d1 again, as it could not be attached"]
    assert "disk" not in caught.value.result


def test_a_new_disk_that_can_be_neither_attached_nor_deleted_is_reported():
    backend = backend_with(faults={"disks.attach": OperationFailed("device busy"), "disks.delete": OperationFailed("pool offline")})
    with pytest.raises(OperationFailed) as caught:
        run(backend, size=1, instance="i1")
    assert caught.value.message == "Failed to attach disk d1 on fake: device busy"
    assert caught.value.result["changed"] is True
    assert caught.value.result["disk"]["name"] == "d1"


def test_a_failed_attach_of_an_existing_disk_deletes_nothing():
    backend = backend_with([disk()], faults={"disks.attach": OperationFailed("device busy")})
    with pytest.raises(OperationFailed):
        run(backend, instance="i1")
    assert calls(backend) == [("attach", "d1", "i1", "/mnt/d1")]


def test_info_filters():
    backend = backend_with([disk(["i1"], name="a"), disk(name="b")])
    assert [item["name"] for item in list_disks(backend)] == ["a", "b"]
    assert [item["name"] for item in list_disks(backend, name="b")] == ["b"]
    assert [item["name"] for item in list_disks(backend, instance="i1")] == ["a"]
    assert [item["name"] for item in list_disks(backend, storage="elsewhere")] == []
    with pytest.raises(NotFound):
        list_disks(backend, instance="nope")
    assert backend.calls == []
