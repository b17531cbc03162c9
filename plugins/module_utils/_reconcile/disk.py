# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared disk reconciler: create, grow, attach, detach and delete a disk; backend-neutral."""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, PolyvirtError, failing_to
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, check_name, diffable, disk_result, format_size, in_unit, parse_size
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.base import Reconciler

SOURCE_KINDS = ("image", "url", "disk")


def disk_spec(params, backend):
    """Validate and normalise the disk options; every check that needs no API call happens here."""
    source = dict((key, value) for key, value in (params.get("source") or {}).items() if value is not None)
    spec = {
        "name": check_name(params.get("name"), "name"),
        "instance": check_name(params["instance"], "instance") if params.get("instance") is not None else None,
        "storage": params.get("storage"),
        "size_bytes": parse_size(params["size"], "size", "GiB") if params.get("size") is not None else None,
        "source": source,
        "optical": bool(params.get("optical")),
        "state": params.get("state") or "present",
        "backend_options": params.get("backend_options") or {},
    }
    backend.require("disk")
    if spec["state"] != "absent":
        if len(source) > 1:
            raise InvalidInput("source takes one of %s, got %s" % (", ".join(SOURCE_KINDS), ", ".join(sorted(source))))
        for kind in source:
            backend.require("disk.source." + kind)
        if source.get("disk") is not None:
            check_name(source["disk"], "source.disk")
        if spec["optical"]:
            backend.require("disk.optical")
    backend.disks.validate(spec)
    return spec


class DiskReconciler(Reconciler):
    """Bring one disk to ``state``; ``run()`` returns the module result."""

    def __init__(self, backend, params, check_mode=False, diff_mode=False):
        super().__init__(backend, params, check_mode, diff_mode)
        self.disks = backend.disks
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
        instance = None
        with self._context("read"):
            if spec["instance"]:
                instance = self.backend.instances.get(spec["instance"])
                if instance is None and spec["state"] == "present":
                    raise NotFound("instance %s does not exist" % spec["instance"])
            if instance is None and not spec["storage"] and spec["state"] != "present" and not self.disks.found_by_name_alone:
                return self._result({})  # nothing to find the disk by: the instance is gone, so is its attachment
            spec["storage"] = self.disks.pool(spec, instance)
            self.disk = self.disks.get(spec, instance)
        if spec["state"] == "absent":
            return self._absent()
        attached_here = self.disk is not None and spec["instance"] in self.disk["attachments"]
        attachment = self.disks.attachment(spec, attached_here) if spec["instance"] else None
        self._check(spec)
        if self.disk is None:
            self._create(spec)
        else:
            self._resize(spec)
        if spec["state"] == "detached":
            for name in list(self.disk["attachments"]):
                if spec["instance"] in (None, name):
                    self._detach(name)
        elif attachment is not None:
            self._attach(instance, attachment)
        return self._result(self.disk)

    def _check(self, spec):
        """Refuse what cannot be done, before any change."""
        with self._context("update" if self.disk else "create"):
            if self.disk is None:
                self.disks.check_source(spec)
                return
            current = self.disk.get("size_bytes")
            if spec["size_bytes"] is not None and current is not None and spec["size_bytes"] < current:
                raise InvalidInput("size %s is smaller than the current %s; disks only grow" % (self.params["size"], format_size(current)))
            others = [name for name in self.disk["attachments"] if name != spec["instance"]]
            if spec["state"] == "present" and spec["instance"] and others:
                raise Conflict("disk %s is attached to instance %s; detach it there first (state=detached)" % (self.name, ", ".join(others)))

    def _create(self, spec):
        predicted = disk_result(self.name, self.backend.name, size_bytes=spec["size_bytes"], storage=spec["storage"],
                                size_gib=in_unit(spec["size_bytes"], GIB))
        self.tracker.whole(None, diffable(predicted))
        source = " as a copy of %s" % spec["source"]["disk"] if spec["source"].get("disk") else ""
        with self._context("create"):
            if not self.check_mode:
                predicted = self.disks.create(spec, self.deadline)
        self.tracker.action("create disk %s in %s%s" % (self.name, spec["storage"], source))
        self.disk = predicted
        self.created = True

    def _resize(self, spec):
        current = self.disk.get("size_bytes")
        if spec["size_bytes"] is None or current == spec["size_bytes"]:
            return
        self.tracker.add("size_gib", self.disk.get("size_gib"), in_unit(spec["size_bytes"], GIB))
        with self._context("resize"):
            if not self.check_mode:
                self.disks.resize(self.disk, spec["size_bytes"], self.deadline)
        self.tracker.action("grow disk %s to %s" % (self.name, format_size(spec["size_bytes"])))
        self.disk = dict(self.disk, size_bytes=spec["size_bytes"], size_gib=in_unit(spec["size_bytes"], GIB))

    def _attach(self, instance_obj, attachment):
        instance = instance_obj["name"] if instance_obj else self.params["instance"]
        before = {"attached_to": self.disk.get("attached_to")}
        before.update((key, self.disk.get(key)) for key in attachment)
        after = dict(attachment, attached_to=instance)
        if before == after:
            return
        for key in sorted(after):
            self.tracker.add(key, before.get(key), after[key])
        with self._context("attach"):
            if not self.check_mode:
                try:
                    self.disks.attach(self.disk, instance_obj, attachment, self.deadline)
                except PolyvirtError:
                    self._remove_new_disk()
                    raise
        verb = "attach" if before["attached_to"] is None else "update the attachment of"
        self.tracker.action("%s disk %s to instance %s at %s" % (verb, self.name, instance, ", ".join("%s=%s" % item for item in sorted(attachment.items()))))
        self.disk = dict(self.disk, attachments=[instance], **after)

    def _remove_new_disk(self):
        """A disk this task made and could not attach is deleted again, so the failed task leaves nothing half-made;
        should the delete fail too, the result still reports the disk."""
        if not self.created:
            return
        try:
            self.disks.delete(self.disk, self.deadline)
        except PolyvirtError:
            return
        self.tracker.action("delete disk %s again, as it could not be attached" % self.name)
        self.created = False
        self.disk = None

    def _detach(self, instance):
        remaining = [name for name in self.disk["attachments"] if name != instance]
        self.tracker.add("attached_to", self.tracker.diff()["before"].get("attached_to", self.disk["attached_to"]), remaining[0] if remaining else None)
        with self._context("detach"):
            if not self.check_mode:
                self.disks.detach(self.disk, instance, self.deadline)
        self.tracker.action("detach disk %s from instance %s" % (self.name, instance))
        self.disk = dict(self.disk, attachments=remaining, attached_to=remaining[0] if remaining else None, path=None)

    def _absent(self):
        """Detach from every instance that uses the disk, then delete it: never leave it behind on one of them."""
        if self.disk is None:
            return self._result({})
        before = diffable(self.disk)
        for instance in list(self.disk["attachments"]):
            self._detach(instance)
        with self._context("delete"):
            if not self.check_mode:
                self.disks.delete(self.disk, self.deadline)
        self.tracker.action("delete disk %s" % self.name)
        self.tracker.whole(before, None)
        self.disk = None
        return self._result({})

    def _result(self, disk):
        if self.created:  # a new disk shows as a whole, attachment included
            self.tracker.whole(None, diffable(disk))
        return self._finish(disk=disk or {})


def list_disks(backend, name=None, storage=None, instance=None):
    """The ``disk_info`` result: disks (in ``storage``, named ``name``, attached to ``instance``)."""
    backend.require("disk")
    found = None
    if instance:
        found = backend.instances.get(instance)
        if found is None:
            raise NotFound("instance %s does not exist" % instance)
    disks = backend.disks.list(storage, found)
    return [disk for disk in disks if (name is None or disk["name"] == name) and (instance is None or instance in disk["attachments"])]
