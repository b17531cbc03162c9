# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The driver contract, one table for every backend: its parts instantiate, its capabilities are
consistent, and each part's verbs map the platform's native objects to the normalised shapes.

A new backend adds one entry to CASES: a class like LxdCase naming its Backend class, the canned native
objects its fake transport answers from (an existing instance with a snapshot, a backup and an attached
disk), the strings that must never reach a result (secrets), and ``connect()``, which returns the
backend wired to that fake transport and the transport (``requests`` and ``mutating()``).
"""

import inspect
import json

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS
from ansible_collections.polyvirt.compute.plugins.module_utils._backends import base
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.lxd.backend import LxdBackend
from ansible_collections.polyvirt.compute.plugins.module_utils._diff import project
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, Unsupported
from ansible_collections.polyvirt.compute.plugins.module_utils._model import backup_result, disk_result, instance_result, public, snapshot_result
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.backup import backup_spec
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.disk import disk_spec
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import desired_spec
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.lxd.fake_lxd import SECRET, FakeLxd


class LxdCase:
    """LXD: LxdClient's one HTTP exchange answered by FakeLxd from canned LXD 5.0 objects."""

    backend_class = LxdBackend
    secrets = (SECRET,)
    instance = "web1"  # running, with snapshot snap0, backup b0 and custom volume data1 attached
    snapshot = "snap0"
    backup = "b0"
    disk = "data1"
    storage = "polyvirt"
    image = "polyvirt/busybox"
    # Instance options that describe the canned instance as it is (so the driver must see no difference).
    as_it_is = {"cpus": 2, "memory": "512MiB", "tags": ["b", "a"], "networks": [{"name": "polyvirtbr0"}]}

    @staticmethod
    def connect():
        fake = FakeLxd()
        backend = LxdBackend({"url": "unix:/nonexistent/lxd/unix.socket"})
        fake.install(backend.client)
        return backend, fake


CASES = [pytest.param(LxdCase(), id="lxd")]
PART_CLASSES = {"instances": base.Instances, "snapshots": base.Snapshots, "backups": base.Backups, "disks": base.Disks}
STATES = ("running", "stopped", "paused", "pending", "error")


def deadline():
    return Deadline(60)


def instance_params(**overrides):
    values = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    values.update({"state": "present"})
    values.update(overrides)
    return values


def spec_for(backend, **overrides):
    return desired_spec(instance_params(**overrides), backend)


def assert_shape(result, template, backend, allowed_extras=()):
    """``result`` has every key of the normalised ``template``; anything more is private (``_``) or allowed."""
    assert set(template) <= set(result), "missing keys: %s" % sorted(set(template) - set(result))
    extras = set(result) - set(template) - set(allowed_extras)
    assert all(key.startswith("_") for key in extras), "unexpected keys: %s" % sorted(extras)
    assert result["backend"] == backend.name
    assert isinstance(result["backend_data"], dict) and result["backend_data"], "backend_data must carry the native object"


def assert_no_secrets(case, value):
    text = json.dumps(public(value), default=str)
    for secret in case.secrets:
        assert secret not in text


def assert_instance(case, backend, instance, name=None):
    assert_shape(instance, instance_result("x", "y"), backend, allowed_extras=("restart_required",))
    assert instance["name"] == (name or instance["name"]) and instance["id"] is not None
    assert instance["type"] in base.INSTANCE_TYPES and instance["type"] in backend.features
    assert instance["state"] in STATES
    assert sorted(instance["addresses"]) == ["ipv4", "ipv6"] and all(isinstance(value, list) for value in instance["addresses"].values())
    assert isinstance(instance["tags"], list) and isinstance(instance["networks"], list)
    assert_no_secrets(case, instance["backend_data"])
    assert_no_secrets(case, instance)


# -- the backend and its parts --------------------------------------------------------------------


def assert_refused(backend, capability, words):
    """A part the backend lacks is absent, and asking for it is refused with the standard message."""
    assert capability not in backend.capabilities_for()
    with pytest.raises(Unsupported, match="^%s is not supported by the %s backend" % (words, backend.name)):
        backend.require(capability)


@pytest.mark.parametrize("case", CASES)
def test_every_declared_part_instantiates_without_connecting(case):
    backend, transport = case.connect()
    assert not inspect.isabstract(case.backend_class)
    assert "instances" in backend.parts
    for name, cls in PART_CLASSES.items():
        part = getattr(backend, name)
        if name not in backend.parts:
            assert part is None
            continue
        assert isinstance(part, cls)
        assert not inspect.isabstract(type(part)), "%s misses %s" % (type(part).__name__, sorted(type(part).__abstractmethods__))
        assert getattr(backend, name) is part  # loaded once
    assert transport.requests == []  # building a backend and its parts costs no API call
    backend.close()


@pytest.mark.parametrize("case", CASES)
def test_capabilities_for_every_type(case):
    cls = case.backend_class
    assert cls.features and set(cls.features) <= set(base.INSTANCE_TYPES)
    assert cls.default_type in cls.features
    parts = set(flag for part, flag in base.PART_CAPABILITIES.items() if part in cls.parts)
    union = set()
    for kind, flags in cls.features.items():
        assert set(flags) <= set(base.CAPABILITIES), "unknown flags %s" % sorted(set(flags) - set(base.CAPABILITIES))
        assert not set(flags) & set(base.PART_CAPABILITIES.values()), "part flags come from parts, not features"
        capabilities = cls.capabilities_for(kind)
        assert capabilities == frozenset(flags) | parts | {"instance." + kind}
        union |= capabilities
    assert cls.capabilities_for() == frozenset(union)
    for kind in set(base.INSTANCE_TYPES) - set(cls.features):
        assert "instance." + kind not in cls.capabilities_for()


@pytest.mark.parametrize("case", CASES)
def test_feature_flags_are_backed_by_parts_and_verbs(case):
    backend, _transport = case.connect()
    flags = backend.capabilities_for()
    for flag in flags:
        family = flag.split(".")[0]
        if family in ("snapshot", "backup", "disk"):
            assert family in flags, "%s needs the %ss part" % (flag, family)
    if "clone" in flags:
        assert type(backend.instances).clone is not base.Instances.clone
    if "backup.export" in flags:
        assert type(backend.backups).export is not base.Backups.export and type(backend.backups).check_file is not base.Backups.check_file


@pytest.mark.parametrize("case", CASES)
def test_a_missing_capability_is_refused_with_the_standard_message(case):
    backend, transport = case.connect()
    missing = sorted(set(base.CAPABILITIES) - backend.capabilities_for())
    if not missing:
        pytest.skip("this backend has every capability")
    for flag in missing:
        with pytest.raises(Unsupported) as caught:
            backend.require(flag)
        assert caught.value.message == "%s is not supported by the %s backend" % (base.CAPABILITIES[flag], backend.name)
    assert transport.requests == []


# -- instances ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("runtime", [False, True])
def test_get_maps_the_native_instance(case, runtime):
    backend, transport = case.connect()
    instance = backend.instances.get(case.instance, runtime=runtime)
    assert_instance(case, backend, instance, case.instance)
    if runtime and instance["state"] == "running":
        assert instance["ansible_host"] is not None
    assert backend.instances.get("nothing-by-this-name") is None
    assert transport.mutating() == []


@pytest.mark.parametrize("case", CASES)
def test_list_maps_every_instance(case):
    backend, transport = case.connect()
    instances = backend.instances.list()
    assert case.instance in [instance["name"] for instance in instances]
    for instance in instances:
        assert_instance(case, backend, instance)
    assert transport.mutating() == []


@pytest.mark.parametrize("case", CASES)
def test_the_settings_of_an_instance_match_the_options_that_describe_it(case):
    backend, transport = case.connect()
    instance = backend.instances.get(case.instance)
    desired = backend.instances.desired(spec_for(backend, name=case.instance, **case.as_it_is))
    current = backend.instances.settings(instance)
    assert desired and set(desired) <= set(current)
    assert dict((key, project(current[key], value)) for key, value in desired.items()) == desired
    assert transport.mutating() == []


@pytest.mark.parametrize("case", CASES)
def test_create_update_power_and_delete(case):
    backend, transport = case.connect()
    instances = backend.instances
    tags = ["x,y", "z"]
    if not getattr(case, "tags_hold_commas", True):
        # A platform whose tags cannot hold a comma (PVE's pve-tag) refuses it when validating, before any call.
        with pytest.raises(InvalidInput, match="x,y"):
            spec_for(backend, name="new1", image=case.image, tags=tags)
        assert transport.mutating() == []
        tags = ["x-y", "z"]
    spec = spec_for(backend, name="new1", image=case.image, cpus=1, memory="256MiB", tags=tags, description="made by the contract test",
                    cloud_init={"user_data": {"chpasswd": {"list": "root:%s" % case.secrets[0]}}, "network_config": None})
    instances.check_create(spec)
    assert transport.mutating() == []  # check_create reads only: it also runs in check mode
    created = instances.create(spec, deadline())
    assert_instance(case, backend, created, "new1")
    assert created["state"] == "stopped"
    desired = instances.desired(spec)
    current = instances.settings(created)
    assert dict((key, project(current[key], value)) for key, value in desired.items()) == desired
    updated = instances.update(created, {"cpus": 3}, deadline())
    assert instances.settings(updated)["cpus"] == 3
    assert set(instances.effects(updated, {"cpus": 3}).values()) <= {base.LIVE, base.ON_RESTART, base.WHILE_STOPPED}
    started = instances.power(updated, "start", False, deadline())
    assert_instance(case, backend, started, "new1")
    assert started["state"] == "running"
    before = len(transport.requests)
    assert instances.wait_for(started, "running", deadline())[0]["name"] == "new1"
    assert len(transport.requests) == before  # the condition holds already: no API call
    stopped = instances.power(started, "stop", True, deadline())
    assert stopped["state"] == "stopped"
    instances.delete(stopped, True, deadline())
    assert instances.get("new1") is None
    instances.delete(stopped, True, deadline())  # gone already: not an error


@pytest.mark.parametrize("case", CASES)
def test_clone(case):
    backend, _transport = case.connect()
    if "clone" not in backend.capabilities_for():
        # no clones: asked for anyway, the backend refuses with the standard message
        assert_refused(backend, "clone", "clone")
        with pytest.raises(Unsupported, match="clone is not supported by the %s backend" % backend.name):
            backend.instances.clone(backend.instances.get(case.instance), spec_for(backend, name="copy1"), {"snapshot": None, "mode": "full",
                                                                                                            "target": None}, deadline())
        return
    source = backend.instances.get(case.instance)
    clone = backend.instances.clone(source, spec_for(backend, name="copy1", cpus=1), {"snapshot": None, "mode": "full", "target": None}, deadline())
    assert_instance(case, backend, clone, "copy1")
    assert clone["type"] == source["type"] and clone["cpus"] == 1
    assert all(isinstance(name, str) for name in backend.instances.shared_disks(source))


# -- snapshots, backups, disks --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_snapshot_verbs(case):
    backend, transport = case.connect()
    if backend.snapshots is None:
        assert_refused(backend, "snapshot", "snapshots")
        return
    part = backend.snapshots
    instance = backend.instances.get(case.instance)
    listed = part.list(instance)
    assert case.snapshot in [item["name"] for item in listed]
    for item in listed:
        assert_shape(item, snapshot_result("x", "y", "z"), backend)
        assert item["instance"] == case.instance and item["created_at"]
        assert_no_secrets(case, item)
    assert transport.mutating() == []
    made = part.create(instance, "contract1", False, None, deadline())
    assert_shape(made, snapshot_result("x", "y", "z"), backend)
    assert made["name"] == "contract1" and made["instance"] == case.instance
    assert_no_secrets(case, made)
    restored = part.restore(instance, made, deadline())
    assert_instance(case, backend, restored, case.instance)
    assert restored["state"] == instance["state"]  # a restore keeps the power state
    part.delete(instance, made, deadline())
    assert "contract1" not in [item["name"] for item in part.list(backend.instances.get(case.instance))]
    part.delete(instance, made, deadline())  # gone already: not an error


@pytest.mark.parametrize("case", CASES)
def test_backup_verbs(case, tmp_path):
    backend, transport = case.connect()
    if backend.backups is None:
        assert_refused(backend, "backup", "backups")
        return
    part = backend.backups
    instance = backend.instances.get(case.instance)
    listed = part.list(instance)
    assert case.backup in [item["name"] for item in listed]
    for item in listed:
        assert_shape(item, backup_result("x", "y", "z"), backend)
        assert item["instance"] == case.instance
    assert transport.mutating() == []
    spec = backup_spec({"instance": case.instance, "name": "contract1"}, backend)
    made = part.create(instance, spec, deadline())
    assert_shape(made, backup_result("x", "y", "z"), backend)
    assert made["name"] == "contract1"
    if "backup.export" in backend.capabilities_for():
        path = str(tmp_path / "contract1.backup")
        size = part.export(instance, made, path, deadline())
        assert size == (tmp_path / "contract1.backup").stat().st_size > 0
        assert isinstance(part.check_file(path), dict)
    flags = backend.capabilities_for()
    if "backup.restore_to" in flags:
        restored = part.restore("restored1", deadline(), instance=instance, backup=made)
        assert_instance(case, backend, restored, "restored1")
        assert backend.instances.get(case.instance) is not None  # a restore into a new name leaves the original alone
    elif "backup.restore" in flags:
        restored = part.restore(case.instance, deadline(), instance=instance, backup=made)
        assert_instance(case, backend, restored, case.instance)
        instance = restored
    if "backup.delete" in flags:
        part.delete(instance, made, deadline())
        assert "contract1" not in [item["name"] for item in part.list(backend.instances.get(case.instance))]


@pytest.mark.parametrize("case", CASES)
def test_disk_verbs(case):
    backend, transport = case.connect()
    if backend.disks is None:
        assert_refused(backend, "disk", "disks")
        return
    part = backend.disks
    instance = backend.instances.get(case.instance)
    if getattr(case, "disk_slots", False):
        # No free disks (a PVE volume belongs to one guest): one without an instance is refused before any call;
        # the backend's own tests run these verbs on slots.
        with pytest.raises(InvalidInput, match="instance is required"):
            disk_spec({"name": case.disk, "storage": case.storage, "size": "1GiB"}, backend)
        assert transport.mutating() == []
        return
    found = part.get(disk_spec({"name": case.disk, "storage": case.storage}, backend), instance)
    assert_shape(found, disk_result("x", "y"), backend)
    assert case.instance in found["attachments"] and found["attached_to"] == case.instance
    assert part.get(disk_spec({"name": "nothing-by-this-name", "storage": case.storage}, backend), None) is None
    for item in part.list():
        assert_shape(item, disk_result("x", "y"), backend)
        assert isinstance(item["attachments"], list)
    assert transport.mutating() == []
    spec = disk_spec({"name": "contract1", "storage": case.storage, "size": "1GiB"}, backend)
    made = part.create(spec, deadline())
    assert_shape(made, disk_result("x", "y"), backend)
    assert made["name"] == "contract1" and made["attachments"] == [] and made["size_bytes"] == 1024 ** 3
    part.resize(made, 2 * 1024 ** 3, deadline())
    grown = part.get(spec, None)
    assert grown["size_bytes"] == 2 * 1024 ** 3 and grown["size_gib"] == 2
    part.attach(grown, instance, part.attachment(spec, False), deadline())
    attached = part.get(spec, backend.instances.get(case.instance))
    assert attached["attachments"] == [case.instance] and attached["attached_to"] == case.instance
    part.detach(attached, case.instance, deadline())
    assert part.get(spec, backend.instances.get(case.instance))["attachments"] == []
    part.delete(attached, deadline())
    assert part.get(spec, None) is None
    part.delete(attached, deadline())  # gone already: not an error
