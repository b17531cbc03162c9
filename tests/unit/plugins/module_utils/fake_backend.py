# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one in-memory backend every reconciler test runs against.

``fake_backend(...)`` builds a Backend subclass with all four parts implemented on plain dicts. Every
mutating call is appended to ``backend.calls`` (reads go to ``backend.reads``), so a test can prove that
check mode, or a refusal, made no change. Knobs:

- ``parts`` and ``features``: what the backend declares (``features`` per instance type; by default a
  "vm" type with every feature and a "container" type without cloud-init, like LXC on Proxmox);
  ``without`` removes flags from every type.
- ``effects``: setting key -> ON_RESTART or WHILE_STOPPED, applied while the instance runs. An
  ON_RESTART change is held pending (``restart_required``) until the next start or restart; a
  WHILE_STOPPED change made while the instance runs is refused by the fake, as Hyper-V would.
- ``faults``: call label (``instances.power.start``, ``backups.restore`` ...) -> exception raised
  instead of doing the call; ``late_faults``: the same, raised after the call made its object (a wait
  that times out once the platform accepted the request). ``fail_start``, ``never_ip``,
  ``conflict_on_create`` (another task creates the instance first, with the given settings) and
  ``timeout_in_create`` (the instance exists, then the wait times out) are shortcuts.
"""

from __future__ import annotations

import copy

from ansible_collections.polyvirt.compute.plugins.module_utils._backends import base
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, OperationFailed, WaitTimeout
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, backup_result, disk_result, in_unit, instance_result, snapshot_result

NAME = "fake"
ALL_PARTS = ("instances", "snapshots", "backups", "disks")
# Every feature flag (the part flags and instance.<type> come from parts and types).
EVERY_FEATURE = frozenset(flag for flag in base.CAPABILITIES
                          if flag not in base.PART_CAPABILITIES.values() and flag not in ("instance.container", "instance.vm"))
CLOUD_INIT_FLAGS = frozenset(("instance.cloud_init", "instance.ssh_keys", "wait_for.cloud_init"))
DEFAULT_FEATURES = {"vm": EVERY_FEATURE, "container": EVERY_FEATURE - CLOUD_INIT_FLAGS}
SETTINGS = ("cpus", "memory_mib", "disk_gib", "description", "tags", "networks")
POWER_STATE = {"start": "running", "resume": "running", "restart": "running", "stop": "stopped", "pause": "paused"}


def fake_backend(instances=(), disks=(), parts=ALL_PARTS, features=None, without=(), default_type="vm", effects=None, faults=None,
                 late_faults=None, images=("debian",), fail_start=False, never_ip=False, conflict_on_create=None, timeout_in_create=False):
    """A FakeBackend (a fresh subclass, since ``parts`` and ``features`` are class attributes) holding ``instances`` and ``disks``.

    ``instances``: dicts with ``name`` and optionally ``type``, ``state``, the settings, ``snapshots``
    and ``backups`` (lists of names, oldest first), ``shared_disks``, ``addresses``, ``restart_required``
    with ``pending``. ``disks``: dicts with ``name`` and optionally ``storage``, ``size_bytes``,
    ``attachments`` (instance names) and ``path``.
    """
    chosen = dict((kind, frozenset(flags) - frozenset(without)) for kind, flags in (features or DEFAULT_FEATURES).items())
    cls = type("FakeBackend", (FakeBackend,), {"parts": tuple(parts), "features": chosen, "default_type": default_type})
    faults = dict(faults or {})
    if fail_start:
        faults.setdefault("instances.power.start", OperationFailed("no vhost_vsock"))
    backend = cls({})
    backend.images = set(images)
    backend.effect_map = dict(effects or {})
    late_faults = dict(late_faults or {})
    if timeout_in_create:
        late_faults.setdefault("instances.create", WaitTimeout("timed out after 5 s waiting for the create operation"))
    backend.faults = faults
    backend.late_faults = late_faults
    backend.never_ip = never_ip
    backend.conflict_on_create = conflict_on_create
    for item in instances:
        backend.add_instance(**item)
    for item in disks:
        backend.add_disk(**item)
    return backend


class FakeBackend(base.Backend):
    """State on dicts; see the module docstring. Build it with ``fake_backend``."""

    name = NAME
    default_type = "vm"
    parts = ALL_PARTS
    features = DEFAULT_FEATURES

    def __init__(self, settings):
        super().__init__(settings)
        self.world = {}  # instance name -> native dict
        self.disk_world = {}  # disk name -> native dict
        self.calls = []
        self.reads = []
        self.clock = 0
        self.closed = False
        self.images = set()
        self.effect_map = {}
        self.faults = {}
        self.late_faults = {}
        self.never_ip = False
        self.conflict_on_create = None

    def _load_part(self, name):
        return {"instances": FakeInstances, "snapshots": FakeSnapshots, "backups": FakeBackups, "disks": FakeDisks}[name](self)

    def close(self):
        self.closed = True

    # -- the fake's own plumbing (not part of the driver contract) -------------------------------------

    def tick(self):
        self.clock += 1
        return "2026-01-01T00:%02d:%02dZ" % divmod(self.clock, 60)

    def call(self, label, *details, **kwargs):
        """Record a mutating call, then raise the fault injected for it (or for ``fault_label``), if any."""
        self.calls.append((label,) + details)
        for key in (label, kwargs.get("fault_label")):
            if key in self.faults:
                raise copy.copy(self.faults[key])  # a copy: reconcilers add context to the message of what they catch

    def late(self, label):
        """Raise the late fault of ``label`` (the call's object exists by now), if any."""
        if label in self.late_faults:
            raise copy.copy(self.late_faults[label])

    def read(self, label, *details):
        self.reads.append((label,) + details)

    def add_instance(self, name, type="vm", state="stopped", snapshots=(), backups=(), **fields):  # pylint: disable=redefined-builtin
        native = {"name": name, "type": type, "state": state, "cpus": None, "memory_mib": None, "disk_gib": None, "description": None, "tags": [],
                  "networks": [], "image": None, "user_data": None, "network_config": None, "config": {}, "addresses": None, "pending": {},
                  "shared_disks": [], "storage": "pool0", "snapshots": [], "backups": []}
        native.update(copy.deepcopy(fields))
        native["snapshots"] = [self._item(entry) for entry in snapshots]
        native["backups"] = [self._item(entry) for entry in backups]
        self.world[name] = native
        return native

    def _item(self, entry):
        item = {"name": entry} if isinstance(entry, str) else dict(entry)
        item.setdefault("created_at", self.tick())
        return item

    def add_disk(self, name, storage="pool0", size_bytes=GIB, attachments=(), path=None):
        self.disk_world[name] = {"name": name, "storage": storage, "size_bytes": size_bytes, "attachments": list(attachments), "path": path}

    def instance(self, name):
        """The normalised view of instance ``name`` (None when it does not exist): what every part returns."""
        native = self.world.get(name)
        if native is None:
            return None
        effective = dict(native, **native["pending"])
        addresses = native["addresses"] if native["state"] == "running" and native["addresses"] else {"ipv4": [], "ipv6": []}
        data = dict((key, copy.deepcopy(value)) for key, value in native.items() if key not in ("user_data", "network_config", "snapshots", "backups"))
        result = instance_result(name, NAME, id="fake-%s" % name, type=native["type"], state=native["state"],
                                 image=native["image"], addresses=copy.deepcopy(addresses), location="rack1", backend_data=data,
                                 _native=native, **dict((key, copy.deepcopy(effective[key])) for key in SETTINGS))
        if native["pending"]:
            result["restart_required"] = True
        return result


class FakeInstances(base.Instances):
    def validate(self, spec):
        if len(spec["name"]) > 63:
            raise InvalidInput("name %r is longer than the fake backend allows (63)" % spec["name"])
        for key in spec["backend_options"]:
            if key != "config":
                raise InvalidInput("backend_options.%s is not a fake option (use config)" % key)

    def get(self, name, runtime=False):
        self.backend.read("instances.get", name, runtime)
        return self.backend.instance(name)

    def list(self, filters=None):
        self.backend.read("instances.list")
        return [self.backend.instance(name) for name in sorted(self.backend.world)]

    def settings(self, instance):
        native = instance["_native"]
        effective = dict(native, **native["pending"])
        current = dict((key, copy.deepcopy(effective[key])) for key in SETTINGS)
        current["cloud_init.user_data"] = native["user_data"]
        current["cloud_init.network_config"] = native["network_config"]
        current.update(("config." + key, value) for key, value in effective["config"].items())
        current.update((key, value) for key, value in native["pending"].items() if key.startswith("config."))
        return current

    def desired(self, spec):
        desired = dict((key, spec[key]) for key in ("cpus", "memory_mib", "disk_gib", "description", "tags") if spec[key] is not None)
        if spec["networks"] is not None:
            desired["networks"] = [dict((key, value) for key, value in network.items() if value is not None) for network in spec["networks"]]
        desired.update(("config." + key, str(value)) for key, value in (spec["backend_options"].get("config") or {}).items())
        return desired

    def check_create(self, spec):
        self.backend.read("instances.check_create", spec["name"])
        if spec["image"] not in self.backend.images:
            raise InvalidInput("image %r was not found on the fake backend" % spec["image"])

    def check_update(self, instance, changes):
        current = instance["_native"]["disk_gib"]
        if "disk_gib" in changes and current is not None and changes["disk_gib"] < current:
            raise InvalidInput("disk_size %dGiB is smaller than the current %dGiB; disks only grow" % (changes["disk_gib"], current))

    def effects(self, instance, changes):
        running = instance["state"] in ("running", "paused")
        return dict((key, self.backend.effect_map.get(key, base.LIVE) if running else base.LIVE) for key in changes)

    def create(self, spec, deadline):
        self.backend.call("instances.create", spec["name"])
        if self.backend.conflict_on_create is not None:
            other = dict({"state": "stopped", "type": spec["type"], "image": spec["image"]}, **self.backend.conflict_on_create)
            self.backend.add_instance(spec["name"], **other)
            raise Conflict("instance %s already exists" % spec["name"])
        self.backend.add_instance(spec["name"], type=spec["type"], image=spec["image"], user_data=spec["user_data"],
                                  network_config=spec["network_config"], **self._initial(spec))
        self.backend.late("instances.create")
        return self.backend.instance(spec["name"])

    def _initial(self, spec):
        desired = self.desired(spec)
        fields = dict((key, desired[key]) for key in SETTINGS if key in desired)
        fields["config"] = dict((key[len("config."):], value) for key, value in desired.items() if key.startswith("config."))
        return fields

    def update(self, instance, changes, deadline):
        name = instance["name"]
        self.backend.call("instances.update", name, sorted(changes))
        native = self.backend.world[name]
        running = native["state"] in ("running", "paused")
        for key, value in changes.items():
            effect = self.backend.effect_map.get(key, base.LIVE)
            if running and effect == base.WHILE_STOPPED:
                raise Conflict("%s cannot change while instance %s runs" % (key, name))
            if running and effect == base.ON_RESTART:
                native["pending"][key] = copy.deepcopy(value)
            else:
                _set(native, key, value)
        return self.backend.instance(name)

    def power(self, instance, action, force, deadline):
        name = instance["name"]
        self.backend.call("instances.power", name, action, fault_label="instances.power." + action)
        native = self.backend.world[name]
        if action in ("start", "restart"):
            for key, value in native["pending"].items():
                _set(native, key, value)
            native["pending"] = {}
        native["state"] = POWER_STATE[action]
        return self.backend.instance(name)

    def delete(self, instance, force, deadline):
        name = instance["name"]
        self.backend.call("instances.delete", name)
        self.backend.world.pop(name, None)
        for disk in self.backend.disk_world.values():
            if name in disk["attachments"]:
                disk["attachments"].remove(name)

    def wait_for(self, instance, condition, deadline):
        name = instance["name"]
        if condition == "running" and instance["state"] == "running":
            return instance, None
        self.backend.read("instances.wait_for", name, condition)
        native = self.backend.world[name]
        if condition == "ip":
            if self.backend.never_ip:
                raise WaitTimeout("timed out after %s s waiting for an IP address on instance %s" % (deadline.seconds, name))
            if not native["addresses"]:
                native["addresses"] = {"ipv4": ["192.0.2.%d" % (len(self.backend.world) + 10)], "ipv6": []}
            return self.backend.instance(name), None
        if condition == "cloud_init":
            return self.backend.instance(name), {"status": "done", "exit_code": 0}
        if native["state"] != "running":
            raise WaitTimeout("timed out after %s s waiting for instance %s to run" % (deadline.seconds, name))
        return self.backend.instance(name), None

    def shared_disks(self, instance):
        return list(instance["_native"]["shared_disks"])

    def check_clone(self, source, spec, clone):
        self.backend.read("instances.check_clone", source["name"])

    def clone(self, source, spec, clone, deadline):
        self.backend.call("instances.clone", source["name"], spec["name"], clone["snapshot"])
        origin = source["_native"]
        fields = dict((key, copy.deepcopy(origin[key])) for key in SETTINGS + ("image", "config", "shared_disks", "user_data", "network_config"))
        initial = self._initial(spec)
        fields["config"].update(initial.pop("config"))
        fields.update(initial)
        self.backend.add_instance(spec["name"], type=origin["type"], state="stopped", **fields)
        self.backend.late("instances.clone")
        return self.backend.instance(spec["name"])


def _set(native, key, value):
    if key.startswith("config."):
        native["config"][key[len("config."):]] = value
    else:
        native[key] = copy.deepcopy(value)


class FakeSnapshots(base.Snapshots):
    def validate_name(self, name):
        if " " in name:
            raise InvalidInput("name %r is not a valid fake snapshot name (no spaces)" % name)

    def _result(self, instance_name, item):
        return snapshot_result(item["name"], instance_name, NAME, created_at=item["created_at"], stateful=bool(item.get("stateful")),
                               description=item.get("description"), backend_data=dict(item))

    def list(self, instance):
        self.backend.read("snapshots.list", instance["name"])
        return [self._result(instance["name"], item) for item in self.backend.world[instance["name"]]["snapshots"]]

    def create(self, instance, name, stateful, description, deadline):
        self.backend.call("snapshots.create", instance["name"], name)
        item = {"name": name, "created_at": self.backend.tick(), "stateful": stateful, "description": description}
        self.backend.world[instance["name"]]["snapshots"].append(item)
        self.backend.late("snapshots.create")
        return self._result(instance["name"], item)

    def delete(self, instance, snapshot, deadline):
        self.backend.call("snapshots.delete", instance["name"], snapshot["name"])
        native = self.backend.world[instance["name"]]
        native["snapshots"] = [item for item in native["snapshots"] if item["name"] != snapshot["name"]]

    def restore(self, instance, snapshot, deadline):
        self.backend.call("snapshots.restore", instance["name"], snapshot["name"])
        return self.backend.instance(instance["name"])


class FakeBackups(base.Backups):
    """Backups as names; an export is a small file starting with ``fake-backup``."""

    def validate(self, spec):
        if spec["name"] is not None and " " in spec["name"]:
            raise InvalidInput("name %r is not a valid fake backup name (no spaces)" % spec["name"])

    def _result(self, instance_name, item):
        return backup_result(item["name"], instance_name, NAME, created_at=item["created_at"], backend_data=dict(item))

    def list(self, instance):
        self.backend.read("backups.list", instance["name"])
        return [self._result(instance["name"], item) for item in self.backend.world[instance["name"]]["backups"]]

    def create(self, instance, spec, deadline):
        self.backend.call("backups.create", instance["name"], spec["name"])
        native = self.backend.world[instance["name"]]
        item = {"name": spec["name"] or "backup%d" % len(native["backups"]), "created_at": self.backend.tick()}
        native["backups"].append(item)
        self.backend.late("backups.create")
        return self._result(instance["name"], item)

    def delete(self, instance, backup, deadline):
        self.backend.call("backups.delete", instance["name"], backup["name"])
        native = self.backend.world[instance["name"]]
        native["backups"] = [item for item in native["backups"] if item["name"] != backup["name"]]

    def export(self, instance, backup, path, deadline):
        self.backend.call("backups.export", instance["name"], backup["name"])
        text = "fake-backup %s %s\n" % (instance["name"], backup["name"])
        with open(path, "w") as handle:
            handle.write(text)
        return len(text)

    def check_file(self, path):
        self.backend.read("backups.check_file", path)
        with open(path) as handle:
            words = handle.read().split()
        if len(words) != 3 or words[0] != "fake-backup":
            raise InvalidInput("%s is not a fake backup" % path)
        return {"instance": words[1], "name": words[2]}

    def restore(self, target, deadline, instance=None, backup=None, path=None, storage=None):
        self.backend.call("backups.restore", target, instance["name"] if instance else None, backup["name"] if backup else None, path)
        origin = instance["_native"] if instance is not None else {"type": "vm", "state": "stopped"}
        fields = dict((key, copy.deepcopy(origin[key])) for key in SETTINGS + ("type", "config", "shared_disks") if key in origin)
        in_place = instance is not None and instance["name"] == target
        # Like LXD's import, an in-place restore makes a new instance: the backups the server kept go with the old one.
        self.backend.add_instance(target, state=origin["state"] if in_place else "stopped", **fields)
        self.backend.late("backups.restore")
        return self.backend.instance(target)


class FakeDisks(base.Disks):
    def validate(self, spec):
        if " " in spec["name"]:
            raise InvalidInput("name %r is not a valid fake disk name (no spaces)" % spec["name"])

    def pool(self, spec, instance):
        return spec["storage"] or (instance["_native"]["storage"] if instance else "pool0")

    def _result(self, native, instance):
        users = list(native["attachments"])
        attached_to = instance["name"] if instance is not None and instance["name"] in users else (users[0] if users else None)
        return disk_result(native["name"], NAME, size_bytes=native["size_bytes"], size_gib=in_unit(native["size_bytes"], GIB),
                           storage=native["storage"], attached_to=attached_to, attachments=users, path=native["path"],
                           backend_data=copy.deepcopy(native))

    def get(self, spec, instance):
        self.backend.read("disks.get", spec["name"])
        native = self.backend.disk_world.get(spec["name"])
        if native is None or native["storage"] != spec["storage"]:
            return None
        return self._result(native, instance)

    def check_source(self, spec):
        self.backend.read("disks.check_source", spec["name"])
        other = spec["source"].get("disk")
        if other and other not in self.backend.disk_world:
            raise NotFound("source.disk %s does not exist in %s" % (other, spec["storage"]))

    def attachment(self, spec, attached):
        path = spec["backend_options"].get("path")
        if path is None and not attached:
            path = "/mnt/" + spec["name"]
        return {"path": path} if path is not None else {}

    def list(self, storage=None, instance=None):
        self.backend.read("disks.list", storage)
        return [self._result(native, instance) for name, native in sorted(self.backend.disk_world.items()) if storage in (None, native["storage"])]

    def create(self, spec, deadline):
        self.backend.call("disks.create", spec["name"])
        self.backend.add_disk(spec["name"], storage=spec["storage"], size_bytes=spec["size_bytes"])
        return self._result(self.backend.disk_world[spec["name"]], None)

    def resize(self, disk, size_bytes, deadline):
        self.backend.call("disks.resize", disk["name"], size_bytes)
        self.backend.disk_world[disk["name"]]["size_bytes"] = size_bytes

    def attach(self, disk, instance, options, deadline):
        self.backend.call("disks.attach", disk["name"], instance["name"], options.get("path"))
        native = self.backend.disk_world[disk["name"]]
        if instance["name"] not in native["attachments"]:
            native["attachments"].append(instance["name"])
        native["path"] = options.get("path") or native["path"]

    def detach(self, disk, instance_name, deadline):
        self.backend.call("disks.detach", disk["name"], instance_name)
        native = self.backend.disk_world[disk["name"]]
        native["attachments"] = [name for name in native["attachments"] if name != instance_name]
        if not native["attachments"]:
            native["path"] = None

    def delete(self, disk, deadline):
        self.backend.call("disks.delete", disk["name"])
        native = self.backend.disk_world.get(disk["name"])
        if native is not None and native["attachments"]:
            raise Conflict("disk %s is still attached to %s" % (disk["name"], ", ".join(native["attachments"])))
        self.backend.disk_world.pop(disk["name"], None)
