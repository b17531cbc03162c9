# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hikube disks: ``VMDisk`` applications, attached by listing them in a VMInstance's ``spec.disks``.

The storage is the disk's storageClass. An instance's system disk belongs to the instance module and is
left out of lists. A disk attached to a running VM is in its template at once and in the guest from its
next start (the chart re-renders the VirtualMachine; KubeVirt does not hot-plug it).
"""

from __future__ import annotations

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import Disks
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.client import APPS, CORE
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.instances import (
    DEFAULT_STORAGE_CLASS, DISK_NAME_MAX, DISK_PREFIX, FAILED_REASONS, INSTANCE_PREFIX, SYSTEM_DISK_OF, get_condition, is_url, quantity_bytes,
    validate_name,
)
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, NotFound, OperationFailed
from ansible_collections.polyvirt.compute.plugins.module_utils._model import GIB, disk_result, format_size, in_unit

DISK_OPTION_TYPES = {"bus": str}


def device_name(name):
    """The chart names the VM's disk ``disk-<name>``: the closest thing to a path a VMDisk has."""
    return "disk-" + name


def _vm_of(pod):
    """The instance a virt-launcher pod runs (KubeVirt labels it with its VirtualMachine), else the pod's name."""
    vm = ((pod.get("metadata") or {}).get("labels") or {}).get("vm.kubevirt.io/name") or ""
    return vm[len(INSTANCE_PREFIX):] if vm.startswith(INSTANCE_PREFIX) else "pod " + pod["metadata"]["name"]


def quantity(size_bytes):
    """A size as a Kubernetes quantity in binary units ("2Gi", "1536Mi")."""
    return format_size(size_bytes).replace("iB", "i")


class HikubeDisks(Disks):
    found_by_name_alone = True  # VMDisks are named in the tenant namespace, whatever their storage class

    def __init__(self, backend):
        super().__init__(backend)
        self.client = backend.client
        self._copy_of = None  # the source VMDisk check_source read, for create to copy its size from

    def _path(self, name=None):
        return self.client.ns_path(APPS, "vmdisks", name)

    def _instances_path(self, name=None):
        return self.client.ns_path(APPS, "vminstances", name)

    def validate(self, spec):
        validate_name(spec["name"], "name", DISK_NAME_MAX, "VMDisk")
        for key, value in spec["backend_options"].items():
            if key not in DISK_OPTION_TYPES:
                raise InvalidInput("backend_options.%s is not a Hikube disk option (use %s)" % (key, ", ".join(sorted(DISK_OPTION_TYPES))))
            if not isinstance(value, DISK_OPTION_TYPES[key]):
                raise InvalidInput("backend_options.%s must be a %s, got %r" % (key, DISK_OPTION_TYPES[key].__name__, value))
        url = (spec["source"] or {}).get("url")
        if url is not None and not is_url(url):
            raise InvalidInput("source.url must be an http(s) URL, got %r" % url)

    def pool(self, spec, instance):
        """The storage class: ``storage``, else that of the instance's system disk, else Cozystack's default."""
        if spec["storage"]:
            return spec["storage"]
        system = ((instance or {}).get("_disk") or {}).get("spec") or {}
        return system.get("storageClass") or DEFAULT_STORAGE_CLASS

    def check_source(self, spec):
        self._copy_of = None
        if (spec["source"] or {}).get("disk"):
            self._check_copy(spec)
        options = self.backend.options
        image = (spec["source"] or {}).get("image")
        values = options("image") if image else None
        if values is not None and image not in values:
            raise InvalidInput("source.image %r is not a golden image of this cluster (available: %s)" % (image, ", ".join(sorted(values))))
        classes = options("storageclass")
        if classes is not None and spec["storage"] not in classes:
            raise InvalidInput("storage %r is not a storage class of this cluster (available: %s)" % (spec["storage"], ", ".join(sorted(classes))))

    def _check_copy(self, spec):
        """A copy (CDI clones the source's PVC) needs the source disk, no running VM on it, and at least its size."""
        name = spec["source"]["disk"]
        original = self.client.get_or_none(self._path(name))
        if original is None:
            raise NotFound("source.disk %s does not exist in namespace %s" % (name, self.client.namespace))
        # CDI's own test: a pod that mounts the volume leaves the copy waiting (CloneSourceInUse) until the pod is gone.
        # A VM keeps a disk detached while it runs until its next start, so the pods tell, not the instances' disk lists.
        claim = DISK_PREFIX + name
        pods = self.client.get(self.client.ns_path(CORE, "pods")).get("items") or []
        users = sorted(set(_vm_of(pod) for pod in pods if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and any(
            (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim for volume in (pod.get("spec") or {}).get("volumes") or [])))
        if users:
            raise Conflict("source.disk %s is used by instance %s, which runs: CDI does not copy a disk a running VM uses (CloneSourceInUse); "
                           "stop it first (state: stopped)" % (name, ", ".join(users)))
        size = quantity_bytes((original.get("spec") or {}).get("storage"), "storage")
        if spec["size_bytes"] is not None and size is not None and spec["size_bytes"] < size:
            raise InvalidInput("size %s is smaller than source.disk %s (%s); a copy is at least as large as its source" % (
                format_size(spec["size_bytes"]), name, format_size(size)))
        self._copy_of = original

    def get(self, spec, instance):
        app = self.client.get_or_none(self._path(spec["name"]))
        if app is None:
            return None
        return self.describe(app, self._users(spec["name"]), instance)

    def _users(self, name, apps=None):
        if apps is None:
            apps = self.client.get(self._instances_path()).get("items") or []
        return sorted(app["metadata"]["name"] for app in apps if any(
            isinstance(disk, dict) and disk.get("name") == name for disk in (app.get("spec") or {}).get("disks") or []))

    def describe(self, app, users, instance=None):
        name = app["metadata"]["name"]
        spec = app.get("spec") or {}
        size = quantity_bytes(spec.get("storage"), "storage")
        here = instance is not None and instance["name"] in users
        attached_to = instance["name"] if here else (users[0] if users else None)
        return disk_result(name, self.backend.name, size_gib=in_unit(size, GIB), size_bytes=size, storage=spec.get("storageClass"),
                           attached_to=attached_to, attachments=users, path=device_name(name) if attached_to else None, backend_data=app)

    def attachment(self, spec, attached):
        options = {"path": device_name(spec["name"])}
        if spec["backend_options"].get("bus"):
            options["bus"] = spec["backend_options"]["bus"]
        return options

    def list(self, storage=None, instance=None):
        apps = self.client.get(self._instances_path()).get("items") or []
        disks = []
        for app in self.client.get(self._path()).get("items") or []:
            if ((app["metadata"].get("labels") or {}).get(SYSTEM_DISK_OF)):
                continue  # an instance's system disk: the instance module's
            if storage and (app.get("spec") or {}).get("storageClass") != storage:
                continue
            disks.append(self.describe(app, self._users(app["metadata"]["name"], apps), instance))
        return disks

    def create(self, spec, deadline):
        source = spec["source"] or {}
        disk_spec = {"storageClass": spec["storage"], "optical": bool(spec["optical"])}
        if source.get("image"):
            disk_spec["source"] = {"image": {"name": source["image"]}}
        elif source.get("url"):
            disk_spec["source"] = {"http": {"url": source["url"]}}
        elif source.get("disk"):
            disk_spec["source"] = {"disk": {"name": source["disk"]}}
        else:
            disk_spec["source"] = {}
        if spec["size_bytes"]:
            disk_spec["storage"] = quantity(spec["size_bytes"])
        elif source.get("disk") and self._copy_of is not None:
            disk_spec["storage"] = (self._copy_of.get("spec") or {}).get("storage")  # the chart's default may be smaller than the source
        body = {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "VMDisk", "metadata": {"name": spec["name"]}, "spec": disk_spec}
        self.client.create(self._path(), body, timeout=deadline.remaining())

        def installed(items):
            for item in items:
                ready = get_condition(item, "Ready") or {}
                if ready.get("status") == "False" and ready.get("reason") in FAILED_REASONS:
                    raise OperationFailed("the Helm release of disk %s failed: %s" % (spec["name"], ready.get("message")))
                if ready.get("status") == "True":
                    return item
            return None

        app = self.client.wait_list(self._path(), installed, deadline, "disk %s to be installed" % spec["name"],
                                    query={"fieldSelector": "metadata.name=" + spec["name"]})
        return self.describe(app, [])

    def resize(self, disk, size_bytes, deadline):
        # The chart grows the PVC in a pre-upgrade hook; decreases are ignored (the reconciler refuses them first).
        self.client.patch(self._path(disk["name"]), {"spec": {"storage": quantity(size_bytes)}}, timeout=deadline.remaining())

    def attach(self, disk, instance, options, deadline):
        app = instance["_native"]
        disks = [dict(item) for item in (app.get("spec") or {}).get("disks") or [] if isinstance(item, dict) and item.get("name") != disk["name"]]
        entry = {"name": disk["name"]}
        if options.get("bus"):
            entry["bus"] = options["bus"]
        self.client.patch(self._instances_path(instance["name"]), {"spec": {"disks": disks + [entry]}}, timeout=deadline.remaining())

    def detach(self, disk, instance_name, deadline):
        app = self.client.get_or_none(self._instances_path(instance_name))
        if app is None:
            return
        if ((app.get("metadata") or {}).get("annotations") or {}).get("polyvirt.io/system-disk") == disk["name"]:
            raise InvalidInput("disk %s is the system disk of instance %s; it goes with the instance (instance state=absent)" % (disk["name"], instance_name))
        disks = [item for item in (app.get("spec") or {}).get("disks") or [] if not (isinstance(item, dict) and item.get("name") == disk["name"])]
        self.client.patch(self._instances_path(instance_name), {"spec": {"disks": disks}}, timeout=deadline.remaining())

    def delete(self, disk, deadline):
        if self.client.delete(self._path(disk["name"]), timeout=deadline.remaining()):
            name = disk["name"]
            self.client.wait_list(self._path(), lambda items: not any(item["metadata"]["name"] == name for item in items), deadline,
                                  "disk %s to be deleted" % name, query={"fieldSelector": "metadata.name=" + name})
