# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# The verbs (create, get, list, update, patch, delete) with Kubernetes semantics, and the Cozystack quirks of
# the apps.cozystack.io aggregated API server.

import base64
import copy
import ipaddress
import json
import random

from . import cozystack
from .kube import (DNS1035_LABEL, DNS1123_SUBDOMAIN, ApiError, PatchError, already_exists, bad_request, conflict,
                   apply_patch, fields_match, invalid, json_patch, labels_match, merge_patch, namespace_not_found, new_meta,
                   not_found, now_rfc3339, parse_field_selector, parse_label_selector, strategic_merge_patch)

MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
# apiserver storage/names: generateName appends 5 of these (no vowels, no look-alikes)
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
SERVER_MANAGED = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                  "resourceVersion", "namespace", "name", "selfLink")


class Api:
    def __init__(self, store, registry, mode="cozystack", version="head", faults=None, time_scale=1.0):
        self.store = store
        self.registry = registry
        self.mode = mode
        self.version = version
        self.schemas = cozystack.load_schemas(version)
        self.faults = faults
        self.time_scale = time_scale
        self.controller = None
        self.ns_rt = registry.get("", "v1", "namespaces")
        self._cluster_ip = ipaddress.ip_address("10.96.0.10")

    # ------------------------------------------------------------ helpers
    def cozy(self, rt):
        """True when rt is an apps.cozystack.io application served with the aggregated-apiserver quirks."""
        return rt.app_prefix is not None and self.mode == "cozystack"

    def check_namespace(self, rt, ns, creating=False):
        if not rt.namespaced:
            return
        nsobj = self.store.get(self.ns_rt.key, "", ns)
        if nsobj is None:
            raise namespace_not_found(ns, self.ns_rt)
        if creating and nsobj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", "%s \"%s\" is forbidden: unable to create new content in namespace %s because it is "
                           "being terminated" % (rt.group_label, "", ns), rt=rt,
                           causes=[{"reason": "NamespaceTerminating", "message": "namespace %s is being terminated" % ns,
                                    "field": "metadata.namespace"}])

    def present(self, rt, obj):
        """The object as the server returns it (Cozystack fills spec defaults on every read)."""
        if obj is None:
            return None
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if rt.app_prefix is not None:
            spec = obj.get("spec")
            if not isinstance(spec, dict):
                spec = {}
            obj["spec"] = cozystack.apply_defaults(spec, self.schemas[rt.kind])
            obj.setdefault("status", {})
        return obj

    def notify(self):
        if self.controller is not None:
            self.controller.kick()

    def _validate_name(self, rt, name, ns):
        if not name:
            raise invalid(rt, name or "", [("metadata.name", "Required value: name or generateName is required")])
        if rt.app_prefix is not None:
            limit = 53 - len(rt.app_prefix)
            causes = []
            if not DNS1035_LABEL.match(name):
                causes.append(("metadata.name", 'Invalid value: "%s": a DNS-1035 label must consist of lower case alphanumeric '
                               "characters or '-', start with an alphabetic character, and end with an alphanumeric character"
                               % name))
            if len(name) > limit:
                causes.append(("metadata.name", 'Invalid value: "%s": name is too long; max length is %d (the release name '
                               '"%s%s" must be no more than 53 characters)' % (name, limit, rt.app_prefix, name)))
            if causes:
                raise invalid(rt, name, causes)
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            raise invalid(rt, name, [("metadata.name", 'Invalid value: "%s": a lowercase RFC 1123 subdomain must consist of lower '
                                      "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                                      "character" % name)])
        if rt.plural == "namespaces" and (len(name) > 63 or "." in name):
            raise invalid(rt, name, [("metadata.name", 'Invalid value: "%s": a lowercase RFC 1123 label must consist of lower case '
                                      "alphanumeric characters or '-'" % name)])

    def _check_body(self, rt, body):
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (body.get("apiVersion"), rt.api_version) if body.get("apiVersion") != rt.api_version
                              else "%s in version \"%s\" cannot be handled as a %s: kind mismatch" % (kind, rt.version, rt.kind))
        if body.get("apiVersion") and body.get("apiVersion") != rt.api_version:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (body.get("apiVersion"), rt.api_version))
        if not isinstance(body.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")
        if rt.app_prefix is not None and isinstance(body.get("spec"), dict):
            bad = sorted(k for k in body["spec"] if k.startswith("_"))
            if bad:
                raise bad_request("spec key \"%s\" is not allowed: keys starting with '_' are reserved" % bad[0])

    @staticmethod
    def _validate_schema(rt, name, body):
        """What the CRD's openAPIV3Schema requires (backups.cozystack.io_backupjobs.yaml: applicationRef{kind, name}, backupClassName)."""
        if (rt.group, rt.plural) != ("backups.cozystack.io", "backupjobs"):
            return
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        causes = []
        ref = spec.get("applicationRef")
        if not isinstance(ref, dict):
            causes.append(("spec.applicationRef", "Required value"))
        else:
            causes.extend(("spec.applicationRef.%s" % key, "Required value") for key in ("kind", "name") if not ref.get(key))
        if "backupClassName" not in spec:
            causes.append(("spec.backupClassName", "Required value"))
        elif not isinstance(spec["backupClassName"], str) or not spec["backupClassName"]:
            causes.append(("spec.backupClassName", 'Invalid value: "%s": spec.backupClassName in body should be at least 1 chars long'
                           % spec["backupClassName"]))
        if causes:
            raise invalid(rt, name, causes)

    def _inject(self, verb, rt, name=None):
        if self.faults is not None:
            self.faults.api(verb, rt, name)

    def _builtin_defaults(self, rt, obj, old=None):
        spec = obj.setdefault("spec", {}) if rt.plural in ("services", "persistentvolumeclaims", "pods", "namespaces") else None
        if rt.plural == "namespaces":
            spec.setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {})["phase"] = (old or {}).get("status", {}).get("phase", "Active")
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rt.plural == "services":
            spec.setdefault("type", "ClusterIP")
            old_ip = (old or {}).get("spec", {}).get("clusterIP")
            if old_ip:
                spec["clusterIP"] = old_ip
            elif spec.get("clusterIP") != "None" and not spec.get("clusterIP"):
                self._cluster_ip += 1
                spec["clusterIP"] = str(self._cluster_ip)
            spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports", []):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
            obj.setdefault("status", {}).setdefault("loadBalancer", {})
        elif rt.plural == "persistentvolumeclaims":
            if old is None:
                obj["metadata"].setdefault("finalizers", [])
                if PVC_PROTECTION not in obj["metadata"]["finalizers"]:
                    obj["metadata"]["finalizers"].append(PVC_PROTECTION)
            spec.setdefault("volumeMode", "Filesystem")
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        elif rt.plural == "pods":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
            spec.setdefault("restartPolicy", "Always")
        elif rt.plural == "secrets":
            obj.setdefault("type", "Opaque")
            for k, v in (obj.pop("stringData", None) or {}).items():
                obj.setdefault("data", {})[k] = base64.b64encode(str(v).encode()).decode()

    # ------------------------------------------------------------ reads
    def get(self, rt, ns, name):
        self._inject("get", rt, name)
        if rt.virtual:
            return self.option(ns, name)
        self.check_namespace(rt, ns)
        obj = self.store.get(rt.key, ns, name)
        if obj is None:
            raise not_found(rt, name)
        if self.cozy(rt) and self.faults is not None and self.faults.read_lag(obj):
            raise not_found(rt, name)
        return self.present(rt, obj)

    def parse_selectors(self, rt, params):
        labels = parse_label_selector(params.get("labelSelector", ""))
        fields = parse_field_selector(params.get("fieldSelector", ""), rt)
        return labels, fields

    @staticmethod
    def matches(obj, labels, fields):
        return labels_match(labels, obj.get("metadata", {}).get("labels")) and fields_match(fields, obj)

    def list(self, rt, ns, params):
        self._inject("list", rt)
        if ns and rt.namespaced and not self.cozy(rt):
            # Cozystack lists HelmReleases with a label selector: a missing namespace is an empty 200
            self.check_namespace(rt, ns)
        labels, fields = self.parse_selectors(rt, params)
        with self.store.lock:
            rv = self.store.rv
            if rt.virtual:
                items = [self.option(ns, n) for n in sorted(OPTION_SOURCES)]
            else:
                items = [self.present(rt, o) for o in self.store.list(rt.key, ns if rt.namespaced else None)]
        items = [o for o in items if self.matches(o, labels, fields)]
        if self.cozy(rt):
            rv = max([int(o["metadata"]["resourceVersion"]) for o in items] or [rv])
        meta = {"resourceVersion": str(rv)}
        limit = int(params.get("limit") or 0)
        start = 0
        if self.cozy(rt):
            # rest.go does not pass limit/continue to the HelmRelease list: one page, no continue token
            limit = 0
        elif params.get("continue"):
            try:
                token = json.loads(base64.b64decode(params["continue"]).decode())
                start = int(token["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request("continue key is not valid: %s" % exc) from exc
            if token.get("rv", 0) <= self.store.oldest_rv():
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent list result. "
                               "You can start a new list without the continue parameter, or use the continue token in "
                               "this response to retrieve the remainder of the results.")
        if limit > 0:
            rest = items[start + limit:]
            items = items[start:start + limit]
            if rest:
                meta["continue"] = base64.b64encode(json.dumps({"rv": rv, "start": start + limit}).encode()).decode()
                meta["remainingItemCount"] = len(rest)
        elif start:
            items = items[start:]
        if rt.builtin:
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": meta, "items": items}

    # ------------------------------------------------------------ create
    def create(self, rt, ns, body, params):
        self._check_body(rt, body)
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if not name and meta.get("generateName"):
            if self.cozy(rt):  # Cozystack's application validation wants a name (the release is named after it)
                raise invalid(rt, "", [("metadata.name", "Required value: name is required")])
            # as apiserver storage/names: 5 characters from an alphabet without vowels or look-alikes
            name = meta["generateName"][:253 - 5] + "".join(random.choice(NAME_ALPHABET) for _index in range(5))
            meta["name"] = name
        self._inject("create", rt, name)
        if rt.virtual or "create" not in rt.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        self._validate_name(rt, name, ns)
        self._validate_schema(rt, name, body)
        if meta.get("resourceVersion") and not self.cozy(rt):
            raise bad_request("resourceVersion should not be set on objects to be created")
        self.check_namespace(rt, ns, creating=True)
        with self.store.lock:
            if self.store.get(rt.key, ns if rt.namespaced else "", name) is not None:
                if self.cozy(rt):
                    raise ApiError(500, "", 'failed to create HelmRelease: helmreleases.helm.toolkit.fluxcd.io "%s%s" already exists'
                                   % (rt.app_prefix, name))
                raise already_exists(rt, name)
            obj = copy.deepcopy(body)
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
            obj["metadata"] = new_meta(meta, ns if rt.namespaced else None)
            if rt.generation and not self.cozy(rt):
                obj["metadata"]["generation"] = 1
            if rt.app_prefix is not None:
                obj["status"] = {}
                if self.mode == "crd":
                    obj["spec"] = cozystack.apply_defaults(obj.get("spec") or {}, self.schemas[rt.kind])
            elif rt.status and not rt.builtin:
                obj.pop("status", None)
            if rt.builtin:
                self._builtin_defaults(rt, obj)
            if params.get("dryRun"):
                return self.present(rt, obj)
            out = self.store.put(rt.key, obj, create=True)
        self.notify()
        return self.present(rt, out)

    # ------------------------------------------------------------ update / patch
    def _merge_update(self, rt, old, new, sub):
        """Apply the server-owned parts of old to new (PUT or patched object); returns the object to store."""
        new = copy.deepcopy(new)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        meta = new.get("metadata") or {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        for key in SERVER_MANAGED:
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        new["metadata"] = meta
        if old["metadata"].get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                raise invalid(rt, meta["name"], [("metadata.finalizers", "Forbidden: no new finalizers can be added if the object "
                                                  "is being deleted, found new finalizers %s" % json.dumps(sorted(added)))])
        if rt.app_prefix is not None:
            new["status"] = old.get("status", {})
            if self.mode == "crd":
                new["spec"] = cozystack.apply_defaults(new.get("spec") or {}, self.schemas[rt.kind])
        elif sub == "status":
            keep = copy.deepcopy(old)
            keep["status"] = new.get("status")
            keep["metadata"] = old["metadata"]
            new = keep
        elif rt.status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if rt.builtin:
            self._builtin_defaults(rt, new, old)
        if rt.generation and not self.cozy(rt):
            gen = old["metadata"].get("generation", 1)
            if rt.status:
                changed = new.get("spec") != old.get("spec")
            else:
                strip = ("metadata", "status")
                changed = {k: v for k, v in new.items() if k not in strip} != {k: v for k, v in old.items() if k not in strip}
            meta["generation"] = gen + 1 if changed else gen
        return new

    def _store_update(self, rt, ns, old, new, params):
        if new == old:
            return self.present(rt, old)
        if params.get("dryRun"):
            return self.present(rt, new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.plural != "namespaces":
            out = self.store.remove(rt.key, ns, meta["name"])
        else:
            out = self.store.put(rt.key, new)
        self.notify()
        return self.present(rt, out)

    def update(self, rt, ns, name, body, params, sub=None):
        self._check_body(rt, body)
        self._inject("update", rt, name)
        if rt.virtual or "update" not in rt.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (meta["name"], name))
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        self.check_namespace(rt, ns)
        key_ns = ns if rt.namespaced else ""
        with self.store.lock:
            old = self.store.get(rt.key, key_ns, name)
            if old is None:
                raise not_found(rt, name)
            rv = meta.get("resourceVersion")
            if not self.cozy(rt):
                if rv and rv != old["metadata"]["resourceVersion"]:
                    raise conflict(rt, name)
                if not rv and not rt.builtin:
                    raise invalid(rt, name, [("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")])
            if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
                raise conflict(rt, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (meta["uid"], old["metadata"]["uid"]))
            body = copy.deepcopy(body)
            body.setdefault("metadata", {})["name"] = name
            new = self._merge_update(rt, old, body, sub)
            return self._store_update(rt, key_ns, old, new, params)

    def patch(self, rt, ns, name, body_bytes, ctype, params, sub=None):
        self._inject("patch", rt, name)
        if rt.virtual or "patch" not in rt.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        ctype = (ctype or "").split(";")[0].strip()
        if ctype not in (MERGE, JSONPATCH, STRATEGIC, APPLY):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types "
                           "include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        if ctype == STRATEGIC and not rt.builtin and not self.cozy(rt):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types "
                           "include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        try:
            patch = json.loads(body_bytes or b"null")
        except ValueError as exc:
            if ctype == APPLY:  # YAML is not parsed here (standard library only): JSON is YAML too, and what clients send
                raise ApiError(415, "UnsupportedMediaType", "server-side apply: the emulator reads JSON bodies only (a YAML subset)") from exc
            raise bad_request("error decoding patch: %s" % exc) from exc
        if ctype == APPLY:
            patch = self._apply_body(rt, name, patch, params)
        self.check_namespace(rt, ns)
        key_ns = ns if rt.namespaced else ""
        with self.store.lock:
            old = self.store.get(rt.key, key_ns, name)
            if old is None and ctype == APPLY:
                return self.create(rt, ns, patch, params)  # an apply creates a missing object (patch.go forceAllowCreate)
            if old is None:
                raise not_found(rt, name)
            current = self.present(rt, old) if self.cozy(rt) else copy.deepcopy(old)
            try:
                if ctype == APPLY:
                    result = apply_patch(current, patch)
                elif ctype == MERGE:
                    if not isinstance(patch, dict):
                        raise bad_request("error decoding patch: merge patch must be a JSON object")
                    result = merge_patch(current, patch)
                elif ctype == JSONPATCH:
                    result = json_patch(current, patch)
                elif self.cozy(rt):
                    result = self._cozy_strategic(current, patch)
                else:
                    if not isinstance(patch, dict):
                        raise bad_request("error decoding patch: strategic merge patch must be a JSON object")
                    result = strategic_merge_patch(current, patch)
            except PatchError as exc:
                raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request: %s" % exc,
                               name=name, rt=rt) from exc
            if not isinstance(result, dict):
                raise bad_request("the patched object is not a JSON object")
            rmeta = result.get("metadata") or {}
            prv = rmeta.get("resourceVersion")
            if not self.cozy(rt) and prv and prv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if rmeta.get("name", name) != name:
                raise bad_request("metadata.name: Invalid value: the name cannot be changed by a patch")
            if rt.app_prefix is not None and isinstance(result.get("spec"), dict):
                self._check_body(rt, {"spec": result["spec"]})
            new = self._merge_update(rt, old, result, sub)
            return self._store_update(rt, key_ns, old, new, params)

    def _apply_body(self, rt, name, body, params):
        """Server-side apply (Cozystack >= 1.6.0 serves it too): the applied configuration, checked as the apiserver does."""
        if not params.get("fieldManager"):
            raise bad_request("fieldManager is required for apply requests")
        if not isinstance(body, dict):
            raise bad_request("error decoding patch: an applied configuration must be an object")
        self._check_body(rt, body)
        if not body.get("apiVersion") or not body.get("kind"):
            raise bad_request("invalid object type: apiVersion and kind are required for apply requests")
        meta = body.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (meta.get("name"), name))
        meta["name"] = name
        return body

    @staticmethod
    def _cozy_strategic(current, patch):
        """Cozystack: spec is an opaque JSON blob, so SMP fails as soon as it must descend into spec with an object/list."""
        if not isinstance(patch, dict):
            raise bad_request("error decoding patch: strategic merge patch must be a JSON object")
        spec_patch = patch.get("spec")
        if isinstance(spec_patch, dict):
            for key, value in spec_patch.items():
                if isinstance(value, (dict, list)):
                    raise ApiError(500, "", 'unable to find api field in struct JSON for the json field "%s"' % key)
        return merge_patch(current, patch)

    # ------------------------------------------------------------ delete
    def delete(self, rt, ns, name, body, params):
        self._inject("delete", rt, name)
        if rt.virtual or "delete" not in rt.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        self.check_namespace(rt, ns)
        key_ns = ns if rt.namespaced else ""
        opts = body if isinstance(body, dict) else {}
        with self.store.lock:
            old = self.store.get(rt.key, key_ns, name)
            if old is None:
                raise not_found(rt, name)
            pre = opts.get("preconditions") or {}
            if self.cozy(rt):
                self._cozy_preconditions(rt, name, old, pre)
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise conflict(rt, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                               % (pre["uid"], old["metadata"]["uid"]))
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"] and not self.cozy(rt):
                raise conflict(rt, name, "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object "
                               "meta: %s" % (pre["resourceVersion"], old["metadata"]["resourceVersion"]))
            if params.get("dryRun"):
                return 200, self.present(rt, old)
            success = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                       "details": {"name": name, "kind": rt.plural, "uid": old["metadata"]["uid"]}}
            if rt.group:
                success["details"]["group"] = rt.group
            if self.cozy(rt) or (rt.app_prefix is not None and self.controller is not None):
                # the HelmRelease is deleted; Flux uninstalls, then the application disappears
                if not old["metadata"].get("deletionTimestamp"):
                    old["metadata"]["deletionTimestamp"] = now_rfc3339()
                    old["metadata"]["deletionGracePeriodSeconds"] = 0
                    if self.mode == "crd":
                        old["metadata"].setdefault("finalizers", [])
                        if "polyvirt.sim/uninstall" not in old["metadata"]["finalizers"]:
                            old["metadata"]["finalizers"].append("polyvirt.sim/uninstall")
                    out = self.store.put(rt.key, old)
                else:
                    out = old
                self.notify()
                return 200, (success if self.cozy(rt) else self.present(rt, out))
            finalizers = old["metadata"].get("finalizers") or []
            if rt.plural == "namespaces" or finalizers:
                if not old["metadata"].get("deletionTimestamp"):
                    old["metadata"]["deletionTimestamp"] = now_rfc3339()
                    old["metadata"]["deletionGracePeriodSeconds"] = 0
                    if rt.plural == "namespaces":
                        old["status"] = {"phase": "Terminating"}
                    old = self.store.put(rt.key, old)
                self.notify()
                return 200, self.present(rt, old)
            gone = self.store.remove(rt.key, key_ns, name)
        self.notify()
        return 200, (self.present(rt, gone) if rt.return_deleted else success)

    @staticmethod
    def _cozy_preconditions(rt, name, old, pre):
        """Cozystack forwards DeleteOptions to the HelmRelease delete and wraps its 409 in a plain error: a 500."""
        failed = None
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            failed = "UID in precondition: %s, UID in object meta: %s" % (pre["uid"], old["metadata"]["uid"])
        elif pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            failed = "ResourceVersion in precondition: %s, ResourceVersion in object meta: %s" % (
                pre["resourceVersion"], old["metadata"]["resourceVersion"])
        if failed:
            raise ApiError(500, "", 'failed to delete HelmRelease: Operation cannot be fulfilled on '
                           'helmreleases.helm.toolkit.fluxcd.io "%s%s": Precondition failed: %s' % (rt.app_prefix, name, failed))

    def delete_collection(self, rt, ns, params, body):
        if "deletecollection" not in rt.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        listing = self.list(rt, ns, params)
        for item in listing["items"]:
            try:
                self.delete(rt, item["metadata"].get("namespace", ""), item["metadata"]["name"], body, params)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        listing["metadata"] = {"resourceVersion": str(self.store.rv)}
        return listing

    # ------------------------------------------------------------ Options (core.cozystack.io, computed on read)
    def option(self, ns, name):
        rt = self.registry.get("core.cozystack.io", "v1alpha1", "options")
        if name not in OPTION_SOURCES:
            raise not_found(rt, name)
        items = []
        if name == "instancetype":
            for it in self.store.list("instancetype.kubevirt.io/virtualmachineclusterinstancetypes"):
                guest = it.get("spec", {})
                items.append({"value": it["metadata"]["name"], "description": "%s vCPU, %s RAM"
                              % (guest.get("cpu", {}).get("guest"), guest.get("memory", {}).get("guest"))})
        elif name == "instanceprofile":
            items = [{"value": p["metadata"]["name"]} for p in self.store.list("instancetype.kubevirt.io/virtualmachineclusterpreferences")]
        elif name == "vmdisk":
            schema = self.schemas["VMDisk"]
            items = [{"value": d["metadata"]["name"],
                      "description": str(cozystack.apply_defaults(d.get("spec") or {}, schema).get("storage"))}
                     for d in self.store.list("apps.cozystack.io/vmdisks", ns)]
        elif name == "image":
            items = [{"value": p["metadata"]["name"][len("vm-default-images-"):]}
                     for p in self.store.list("/persistentvolumeclaims", "cozy-public")
                     if p["metadata"]["name"].startswith("vm-default-images-")]
        elif name == "storageclass":
            for sc in self.store.list("storage.k8s.io/storageclasses"):
                item = {"value": sc["metadata"]["name"]}
                if (sc["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
                    item["default"] = True
                items.append(item)
        return {"apiVersion": rt.api_version, "kind": rt.kind,
                "metadata": {"name": name, "namespace": ns, "resourceVersion": str(self.store.rv)},
                "spec": {"items": items}}


OPTION_SOURCES = ("instancetype", "instanceprofile", "vmdisk", "image", "storageclass", "network", "gpu")
