# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared disk reconciler: create, grow, attach, detach and delete a disk; backend-neutral."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, parse_size
from ansible_collections.polyvirt.compute.plugins.module_utils._reconciler import Reconciler
from ansible_collections.polyvirt.compute.plugins.module_utils._resources import diffable, disk_result
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline

SOURCE_KINDS = ("image", "url", "disk")


def disk_spec(params, backend):
    """Validate and normalise the disk options; every check that needs no API call happens here."""
    source = dict((key, value) for key, value in (params.get("source") or {}).items() if value is not None)
    spec = {
        "name": params.get("name"),
        "instance": params.get("instance"),
        "storage": params.get("storage"),
        "size_bytes": parse_size(params["size"], "size", "GiB") if params.get("size") is not None else None,
        "source": source,
        "optical": bool(params.get("optical")),
        "state": params.get("state") or "present",
        "backend_options": params.get("backend_options") or {},
    }
    if not spec["name"]:
        raise InvalidInput("name must not be empty")
    backend.require("disk")
    if spec["state"] != "absent":
        if len(source) > 1:
            raise InvalidInput("source takes one of %s, got %s" % (", ".join(SOURCE_KINDS), ", ".join(sorted(source))))
        for kind in source:
            backend.require("disk.source." + kind)
        if spec["optical"]:
            backend.require("disk.optical")
    backend.validate_disk(spec)
    return spec


class DiskReconciler(Reconciler):
    """Bring one disk to ``state``; ``run()`` returns the module result."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        super().__init__(backend, params, check_mode, diff_mode)
        self.name = params.get("name")
        self.disk = None
        self.created = False

    def _context(self, verb):
        return failing_to(verb, "disk", self.name, self.backend.name)

    def _known(self):
        return {"disk": self.disk} if self.disk is not None else {}

    def _run(self):
        with self._context("validate"):
            spec = disk_spec(self.params, self.backend)
        deadline = Deadline(self.params.get("wait_timeout") or 600)
        instance_raw = None
        with self._context("read"):
            if spec["instance"]:
                instance_raw = self.backend.get_instance(spec["instance"])
                if instance_raw is None and spec["state"] == "present":
                    raise NotFound("instance %s does not exist" % spec["instance"])
            if instance_raw is None and not spec["storage"] and spec["state"] != "present":
                return self._result({})  # nothing to find the disk by: the instance is gone, so is its attachment
            spec["storage"] = self.backend.disk_pool(spec, instance_raw)
            self.disk = self.backend.get_disk(spec, instance_raw)
        if spec["state"] == "absent":
            return self._absent(deadline)
        attached_here = self.disk is not None and self.disk.get("attached_to") == spec["instance"]
        attachment = self.backend.disk_attachment(spec, attached_here) if spec["instance"] else None
        self._check(spec)
        if self.disk is None:
            self._create(spec, deadline)
        else:
            self._resize(spec, deadline)
        if spec["state"] == "detached":
            if self.disk.get("attached_to") and spec["instance"] in (None, self.disk["attached_to"]):
                self._detach(deadline)
        elif attachment is not None:
            self._attach(instance_raw, attachment, deadline)
        return self._result(self.disk)

    def _check(self, spec):
        """Refuse what cannot be done, before any change."""
        with self._context("update" if self.disk else "create"):
            if self.disk is None:
                self.backend.check_disk_source(spec)
                return
            current = self.disk.get("size_bytes")
            if spec["size_bytes"] is not None and current is not None and spec["size_bytes"] < current:
                raise InvalidInput("size %s is smaller than the current %s; disks only grow" % (self.params["size"], _human(current)))
            attached = self.disk.get("attached_to")
            if spec["state"] == "present" and spec["instance"] and attached not in (None, spec["instance"]):
                raise Conflict("disk %s is attached to instance %s; detach it there first (state=detached)" % (self.name, attached))

    def _create(self, spec, deadline):
        predicted = disk_result(self.name, self.backend.name, size_bytes=spec["size_bytes"], storage=spec["storage"],
                                size_gib=_gib(spec["size_bytes"]))
        self.tracker.whole(None, diffable(predicted))
        source = " as a copy of %s" % spec["source"]["disk"] if spec["source"].get("disk") else ""
        with self._context("create"):
            if not self.check_mode:
                predicted = self.backend.create_disk(spec, deadline)
        self.tracker.action("create disk %s in %s%s" % (self.name, spec["storage"], source))
        self.disk = predicted
        self.created = True

    def _resize(self, spec, deadline):
        current = self.disk.get("size_bytes")
        if spec["size_bytes"] is None or current == spec["size_bytes"]:
            return
        self.tracker.add("size_gib", self.disk.get("size_gib"), _gib(spec["size_bytes"]))
        with self._context("resize"):
            if not self.check_mode:
                self.backend.resize_disk(self.disk, spec["size_bytes"], deadline)
        self.tracker.action("grow disk %s to %s" % (self.name, _human(spec["size_bytes"])))
        self.disk = dict(self.disk, size_bytes=spec["size_bytes"], size_gib=_gib(spec["size_bytes"]))

    def _attach(self, instance_raw, attachment, deadline):
        instance = instance_raw["name"] if instance_raw else self.params["instance"]
        before = {"attached_to": self.disk.get("attached_to")}
        before.update((key, self.disk.get(key)) for key in attachment)
        after = dict(attachment, attached_to=instance)
        if before == after:
            return
        for key in sorted(after):
            self.tracker.add(key, before.get(key), after[key])
        with self._context("attach"):
            if not self.check_mode:
                self.backend.attach_disk(self.disk, instance_raw, attachment, deadline)
        verb = "attach" if before["attached_to"] is None else "update the attachment of"
        self.tracker.action("%s disk %s to instance %s at %s" % (verb, self.name, instance, ", ".join("%s=%s" % item for item in sorted(attachment.items()))))
        self.disk = dict(self.disk, **after)

    def _detach(self, deadline):
        instance = self.disk["attached_to"]
        self.tracker.add("attached_to", instance, None)
        with self._context("detach"):
            if not self.check_mode:
                self.backend.detach_disk(self.disk, instance, deadline)
        self.tracker.action("detach disk %s from instance %s" % (self.name, instance))
        self.disk = dict(self.disk, attached_to=None, path=None)

    def _absent(self, deadline):
        if self.disk is None:
            return self._result({})
        self.tracker.whole(diffable(self.disk), None)
        if self.disk.get("attached_to"):
            instance = self.disk["attached_to"]
            with self._context("detach"):
                if not self.check_mode:
                    self.backend.detach_disk(self.disk, instance, deadline)
            self.tracker.action("detach disk %s from instance %s" % (self.name, instance))
        with self._context("delete"):
            if not self.check_mode:
                self.backend.delete_disk(self.disk, deadline)
        self.tracker.action("delete disk %s" % self.name)
        self.disk = None
        return self._result({})

    def _result(self, disk):
        if self.created:  # a new disk shows as a whole, attachment included
            self.tracker.whole(None, diffable(disk))
        return self._finish(disk=disk or {})


def list_disks(backend, name=None, storage=None, instance=None):
    """The ``disk_info`` result: disks (in ``storage``, named ``name``, attached to ``instance``)."""
    backend.require("disk")
    instance_raw = None
    if instance:
        instance_raw = backend.get_instance(instance)
        if instance_raw is None:
            raise NotFound("instance %s does not exist" % instance)
    disks = backend.list_disks(storage, instance_raw)
    return [disk for disk in disks if (name is None or disk["name"] == name) and (instance is None or disk["attached_to"] == instance)]


def _gib(size):
    if size is None:
        return None
    return size // GIB if size % GIB == 0 else round(size / float(GIB), 2)


def _human(size):
    for unit, factor in (("GiB", GIB), ("MiB", 1024 ** 2)):
        if size % factor == 0:
            return "%d%s" % (size // factor, unit)
    return "%d bytes" % size
