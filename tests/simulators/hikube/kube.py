# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Kubernetes API machinery: Status errors, selectors, patches and the versioned object store with watch history.

import collections
import copy
import datetime
import json
import os
import re
import threading
import uuid

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def now_rfc3339(ts=None):
    ts = datetime.datetime.now(datetime.timezone.utc) if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error answered as a `v1 Status` (code, reason, message, details)."""

    def __init__(self, code, reason, message, name=None, rt=None, causes=None, retry_after=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.name = name
        self.rt = rt
        self.causes = causes
        self.retry_after = retry_after

    def status(self):
        out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
               "code": self.code}
        if self.reason:
            out["reason"] = self.reason
        details = {}
        if self.name is not None:
            details["name"] = self.name
        if self.rt is not None:
            if self.rt.group:
                details["group"] = self.rt.group
            details["kind"] = self.rt.plural
        if self.causes:
            details["causes"] = self.causes
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            out["details"] = details
        return out


def not_found(rt, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (rt.group_label, name), name=name, rt=rt)


def namespace_not_found(ns, ns_rt):
    return ApiError(404, "NotFound", 'namespaces "%s" not found' % ns, name=ns, rt=ns_rt)


def already_exists(rt, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (rt.group_label, name), name=name, rt=rt)


def conflict(rt, name, msg="the object has been modified; please apply your changes to the latest version and try again"):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (rt.group_label, name, msg),
                    name=name, rt=rt)


def invalid(rt, name, causes):
    """422 Invalid; causes = [(field, message)]."""
    text = ", ".join("%s: %s" % (f, m) for f, m in causes)
    kind = "%s.%s" % (rt.kind, rt.group) if rt.group else rt.kind
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind, name, text), name=name, rt=rt,
                    causes=[{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes])


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


# ---------------------------------------------------------------- selectors

_LABEL_REQ = re.compile(r"^\s*(!?)\s*([A-Za-z0-9._/-]+)\s*(?:(==|=|!=|\s+in\s+|\s+notin\s+)\s*(.*?))?\s*$")


def _split_top(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_label_selector(text):
    """Parse `a=b,c!=d,e in (f,g),h notin (i),j,!k` into [(key, op, values)]; raise ApiError 400 on bad syntax."""
    reqs = []
    if not text:
        return reqs
    for part in _split_top(text):
        m = _LABEL_REQ.match(part)
        if not m:
            raise bad_request("unable to parse requirement: %r" % part)
        neg, key, op, val = m.groups()
        if neg:
            if op:
                raise bad_request("unable to parse requirement: %r" % part)
            reqs.append((key, "!", []))
            continue
        if not op:
            reqs.append((key, "exists", []))
            continue
        op = op.strip()
        if op in ("in", "notin"):
            if not (val.startswith("(") and val.endswith(")")):
                raise bad_request("unable to parse requirement: found '%s', expected: '('" % val)
            values = [v.strip() for v in val[1:-1].split(",") if v.strip()]
            reqs.append((key, op, values))
        else:
            reqs.append((key, "!=" if op == "!=" else "=", [val]))
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, values in reqs:
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
        if op == "=" and labels.get(key) != values[0]:
            return False
        if op == "!=" and labels.get(key) == values[0]:
            return False
        if op == "in" and labels.get(key) not in values:
            return False
        if op == "notin" and key in labels and labels[key] in values:
            return False
    return True


def parse_field_selector(text, rt):
    reqs = []
    if not text:
        return reqs
    for part in text.split(","):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, part))
        field, op, value = m.groups()
        if field not in rt.field_labels:
            raise bad_request('field label not supported: %s' % field)
        reqs.append((field, op != "!=", value))
    return reqs


def _dig(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(reqs, obj):
    for field, equal, value in reqs:
        if (_dig(obj, field) == value) != equal:
            return False
    return True


# ---------------------------------------------------------------- patches

def apply_patch(current, applied):
    """Server-side apply without managedFields: the applied fields win, maps merge, lists are atomic (no list-type markers on
    these kinds); fields the same manager applied before and left out now are not removed (that needs field ownership)."""
    if not isinstance(current, dict) or not isinstance(applied, dict):
        return copy.deepcopy(applied)
    result = copy.deepcopy(current)
    for key, value in applied.items():
        result[key] = apply_patch(result.get(key), value) if isinstance(value, dict) else copy.deepcopy(value)
    return result


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class PatchError(Exception):
    pass


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise PatchError("doc is missing path: %s" % "/" + "/".join(parts))
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError) as exc:
                raise PatchError("doc is missing path: /%s" % "/".join(parts)) from exc
        else:
            raise PatchError("doc is missing path: /%s" % "/".join(parts))
    return cur


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError as exc:
                raise PatchError("invalid array index %r" % last) from exc
            if idx < 0 or idx > len(parent):
                raise PatchError("add operation does not apply: doc is missing path: /%s" % "/".join(parts))
            parent.insert(idx, value)
    else:
        raise PatchError("doc is missing path: /%s" % "/".join(parts))
    return doc


def _remove(doc, parts):
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    try:
        if isinstance(parent, dict):
            return parent.pop(last)
        if isinstance(parent, list):
            return parent.pop(int(last))
    except (KeyError, ValueError, IndexError) as exc:
        raise PatchError("unable to remove nonexistent key: %s: missing value" % last) from exc
    raise PatchError("doc is missing path: /%s" % "/".join(parts))


def json_patch(doc, ops):
    """RFC 6902 JSON patch."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("invalid operation %r" % (op,))
        kind = op["op"]
        parts = _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            if not parts:
                doc = copy.deepcopy(op.get("value"))
                continue
            _resolve(doc, parts)
            parent = _resolve(doc, parts[:-1])
            if isinstance(parent, list):
                parent[int(parts[-1])] = copy.deepcopy(op.get("value"))
            else:
                parent[parts[-1]] = copy.deepcopy(op.get("value"))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = copy.deepcopy(_resolve(doc, src))
            if kind == "move":
                _remove(doc, src)
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _resolve(doc, parts) != op.get("value"):
                raise PatchError("testing value /%s failed" % "/".join(parts))
        else:
            raise PatchError("Unexpected kind: %s" % kind)
    return doc


# merge keys of the lists the strategic merge patch knows for core kinds (others are replaced)
SMP_MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
                  "env": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name", "conditions": "type",
                  "tolerations": "key", "hostAliases": "ip", "ownerReferences": "uid"}
SMP_SET_LISTS = {"finalizers"}


def strategic_merge_patch(target, patch, field=None):
    """A strategic merge patch for core kinds: merge keys for known lists, `$patch: replace|delete` directives."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in copy.deepcopy(patch).items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in SMP_SET_LISTS:
            merged = list(result.get(key) or [])
            merged.extend(v for v in value if v not in merged)
            result[key] = merged
        elif isinstance(value, list) and key == "ports" and field in ("spec",):
            result[key] = _merge_list(result.get(key), value, "port")
        elif isinstance(value, list) and key == "ports":
            result[key] = _merge_list(result.get(key), value, "containerPort")
        elif isinstance(value, list) and key in SMP_MERGE_KEYS:
            result[key] = _merge_list(result.get(key), value, SMP_MERGE_KEYS[key])
        else:
            merged = strategic_merge_patch(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    return result


def _merge_list(current, patch, mkey):
    out = copy.deepcopy(current) if isinstance(current, list) else []
    for item in patch:
        if not isinstance(item, dict) or mkey not in item:
            return copy.deepcopy(patch)
        idx = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(mkey) == item[mkey]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(copy.deepcopy(item))
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out


# ---------------------------------------------------------------- the store

Event = collections.namedtuple("Event", "rv key ns type obj old")


class Store:
    """All objects, a global resourceVersion counter and a bounded history of change events for watches."""

    def __init__(self, history=10000, state_file=None):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.objects = {}            # key -> {(ns, name): obj}
        self.history = collections.deque(maxlen=history)
        self.dropped = False
        self.state_file = state_file
        self.listeners = []
        self.closed = False

    # persistence
    def load(self):
        if not self.state_file or not os.path.exists(self.state_file):
            return False
        with open(self.state_file, encoding="utf-8") as handle:
            data = json.load(handle)
        with self.lock:
            self.rv = int(data.get("resourceVersion", 0))
            for key, items in data.get("objects", {}).items():
                self.objects[key] = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in items}
        return True

    def save(self):
        if not self.state_file:
            return
        with self.lock:
            data = {"resourceVersion": self.rv,
                    "objects": {k: list(v.values()) for k, v in self.objects.items() if v}}
            tmp = self.state_file + ".tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.replace(tmp, self.state_file)

    # reads
    def get(self, key, ns, name):
        with self.lock:
            obj = self.objects.get(key, {}).get((ns or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, key, ns=None):
        with self.lock:
            items = [copy.deepcopy(o) for (ons, _n), o in self.objects.get(key, {}).items() if ns is None or ons == ns]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items

    # writes: every one bumps the global resourceVersion and records an event
    def _record(self, key, ns, etype, obj, old):
        if len(self.history) == self.history.maxlen:
            self.dropped = True
        self.history.append(Event(self.rv, key, ns, etype, copy.deepcopy(obj), old))
        self.cond.notify_all()
        for listener in self.listeners:
            listener(key, etype, obj)
        self.save()

    def put(self, key, obj, create=False):
        """Store obj (already validated) with a fresh resourceVersion; returns a copy."""
        with self.lock:
            meta = obj["metadata"]
            ns = meta.get("namespace", "")
            bucket = self.objects.setdefault(key, {})
            old = bucket.get((ns, meta["name"]))
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            stored = copy.deepcopy(obj)
            bucket[(ns, meta["name"])] = stored
            self._record(key, ns, "ADDED" if old is None or create else "MODIFIED", stored, old)
            return copy.deepcopy(stored)

    def remove(self, key, ns, name):
        with self.lock:
            old = self.objects.get(key, {}).pop((ns or "", name), None)
            if old is None:
                return None
            self.rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._record(key, ns or "", "DELETED", gone, old)
            return gone

    def oldest_rv(self):
        """Watches from a resourceVersion older than this get 410 Expired."""
        with self.lock:
            if not self.dropped or not self.history:
                return 0
            return self.history[0].rv - 1

    def events_after(self, rv):
        with self.lock:
            return [e for e in self.history if e.rv > rv]


def new_meta(meta, ns):
    meta = dict(meta or {})
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    if ns:
        meta["namespace"] = ns
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink", "managedFields"):
        meta.pop(key, None)
    return meta
