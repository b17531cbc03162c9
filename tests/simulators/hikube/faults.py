# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Fault injection: `--fault NAME[:key=value[,key=value...]]` (see README.md for the list).

import datetime
import threading
import time

from .kube import ApiError

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 410: "Expired",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
KNOWN = {"error", "latency", "read-lag", "slow-import", "import-fail", "no-ip", "unschedulable", "lb-pending", "install-fail",
         "backup-fail", "restore-fail", "kstatus-timeout"}


class Fault:
    def __init__(self, spec):
        name, _sep, rest = spec.partition(":")
        self.name = name.strip()
        if self.name not in KNOWN:
            raise ValueError("unknown fault %r (known: %s)" % (self.name, ", ".join(sorted(KNOWN))))
        self.args = {}
        for part in filter(None, rest.split(",")):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError("fault %r: expected key=value, got %r" % (spec, part))
            self.args[key.strip()] = value.strip()
        self.remaining = int(self.args.get("count", "0")) or None

    def target(self, key, name):
        want = self.args.get(key, "*")
        return want in ("*", name)


class Faults:
    def __init__(self, specs=()):
        self.lock = threading.Lock()
        self.items = [Fault(s) for s in specs]

    def _find(self, name, key=None, value=None):
        return [f for f in self.items if f.name == name and (key is None or f.target(key, value))]

    def api(self, verb, rt, name):
        """Raise an injected ApiError for matching requests (error:verb=,resource=,name=,code=,count=,message=)."""
        for fault in self._find("error"):
            args = fault.args
            if args.get("verb", "*") not in ("*", verb) or args.get("resource", "*") not in ("*", rt.plural, rt.kind):
                continue
            if not fault.target("name", name):
                continue
            with self.lock:
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        continue
                    fault.remaining -= 1
            code = int(args.get("code", "500"))
            retry = int(args["retry"]) if "retry" in args else (1 if code in (429, 503) else None)
            raise ApiError(code, args.get("reason", REASONS.get(code, "InternalError")),
                           args.get("message", "injected fault: %s %s" % (verb, rt.plural)), retry_after=retry)

    def latency(self):
        for fault in self._find("latency"):
            time.sleep(float(fault.args.get("ms", "100")) / 1000.0)

    def read_lag(self, obj):
        """Cozystack reads come from an informer cache: a GET right after create can 404 for a moment."""
        for fault in self._find("read-lag"):
            created = obj["metadata"].get("creationTimestamp")
            if not created:
                return False
            born = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
            return time.time() - born < float(fault.args.get("seconds", "1"))
        return False

    def factor(self, name, key, value, default=1.0):
        for fault in self._find(name, key, value):
            return float(fault.args.get("factor", default))
        return None

    def active(self, name, key, value):
        found = self._find(name, key, value)
        return found[0] if found else None
