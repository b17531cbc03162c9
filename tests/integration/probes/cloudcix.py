# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The conformance suite's probe for CloudCIX: reads the real objects of the simulator with plain HTTP calls
(requests), never with this collection's code, and prints JSON. The commands are every probe's (see
probes/lxd.py):

  instance NAME           {exists, name, id, type, state, cpus, memory_mib, disk_gib, image, tags, description,
                           networks: [{network, mac, ipv4, ipv6, nat, public_ip}], disks: [{name, path}],
                           snapshots: [{name, stateful, created_at}], backups: [{name, created_at}],
                           hypervisor, grace_period, metadata (userdata left out)}
  instances PREFIX        [{name, state}] of the instances whose name starts with PREFIX
  disk NAME               {exists, name, storage, size_gib, attached_to: [instance], paths: {instance: path}}
  cleanup PREFIX          deletes at once (HTTP DELETE, no grace period) every instance, volume, snapshot and backup named PREFIX...
  session start|stop      nothing to set up here (the simulator is the suite's own)
  journal start|stop      the simulator records every request itself (GET /_sim/requests)
  journal mark            prints a mark: the requests after it are the next window
  journal since MARK      {entries: [{index, method, path, status}], reads, writes, mark}
  fault SPEC | clear      adds a simulator fault (POST /_sim/faults) or clears them all (CloudCIX's own tests)
  queued NAME             {exists, state, id} of the newest instance NAME in any state (the delete queue included)

An instance in the delete queue (or further along: delete_prep, deleting, deleted) is absent, as for the modules.

Telling our requests apart: the modules use the single base URL the suite gives them
(``http://HOST:PORT/compute/...``, ``/auth/login/``); this probe uses the simulator's app-prefixed form
(``/compute/v5.0/...``, ``/membership/auth/login/``), so the journal leaves out every path that starts
with those prefixes. A login (POST auth/login/) changes nothing on CloudCIX: it counts as a read.
"""

from __future__ import annotations

import os
import time

import requests
from _cli import main  # the probes' shared command line; this folder is on sys.path when a probe runs

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
PROBE_PREFIXES = ("/compute/v5.0/", "/membership/")
GONE = ("delete", "delete_prep", "delete_queue", "deleting", "deleted", "closed")
COPY_GONE = ("delete", "deleting", "deleted", "closed")
CPU_SKUS = ("vCPU_001", "vCPU_002")
STORAGE_SKUS = ("SSD_001", "HDD_001")
THROTTLE_RETRIES = 20
SETTLE_TIMEOUT = 120  # seconds the robot may take to finish a snapshot before clean-up gives up


class Probe:
    def __init__(self, config, state_dir):
        connection = config["backend"]["connection"]
        self.base = connection["api_url"].rstrip("/") + "/"
        self.credentials = {"email": connection["email"], "password": connection["password"], "api_key": connection["api_key"]}
        self.project = int(connection["project_id"])
        self.state_dir = state_dir
        self.session = requests.Session()
        self._token = None

    # -- plain HTTP -------------------------------------------------------------------------------

    def token(self):
        if self._token is None:
            response = self.session.post(self.base + "membership/auth/login/", json=self.credentials, timeout=30)
            if response.status_code != 201:
                raise SystemExit("login: HTTP %s %s" % (response.status_code, response.text[:300]))
            self._token = response.json()["token"]
        return self._token

    def call(self, method, path, **kwargs):
        for attempt in range(THROTTLE_RETRIES):
            response = self.session.request(method, self.base + "compute/v5.0/" + path, headers={"X-Auth-Token": self.token()}, timeout=30, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(0.1 * (attempt + 1))  # CloudCIX throttles a user at 20 requests a second; a 429 did nothing, so ask again
        if response.status_code >= 400:
            raise SystemExit("%s %s: HTTP %s %s" % (method, path, response.status_code, response.text[:300]))
        return response.json() if response.content else None

    def all(self, path, **search):
        params = dict(("search[%s]" % key, value) for key, value in search.items())
        params.update({"search[project_id]": self.project, "limit": 100})
        items, page = [], 0
        while True:
            params["page"] = page
            payload = self.call("GET", path, params=params)
            items.extend(payload["content"])
            if not payload["content"] or len(items) >= payload["_metadata"]["total_records"]:
                return items
            page += 1

    # -- reads ------------------------------------------------------------------------------------

    def _instances(self, name=None):
        found = self.all("compute/instances/", **({"name": name} if name else {}))
        return [item for item in found if name is None or item["name"] == name]

    def instance(self, name):
        live = [item for item in self._instances(name) if item["state"] not in GONE]
        if not live:
            return {"exists": False, "name": name}
        if len(live) > 1:
            raise SystemExit("%d live instances named %s" % (len(live), name))
        raw = live[0]
        specs = dict((item["sku_name"], item["quantity"]) for item in raw.get("specs") or [])
        metadata = dict(raw.get("metadata") or {})
        metadata.pop("userdata", None)
        networks = []
        for interface in raw.get("interfaces") or []:
            ipv4 = interface.get("ipv4_addresses") or []
            ipv6 = interface.get("ipv6_addresses") or []
            networks.append({"network": None, "mac": None, "ipv4": ipv4[0]["address"] if ipv4 else None, "ipv6": ipv6[0]["address"] if ipv6 else None,
                             "nat": bool(ipv4 and ipv4[0].get("nat")), "public_ip": ipv4[0].get("public_ip") if ipv4 else None,
                             "gateway": bool(interface.get("gateway"))})
        volumes = [volume for volume in self.all("storage/volumes/") if volume["state"] not in COPY_GONE and raw["id"] in served(volume)]
        snapshots = [item for item in self.all("compute/snapshots/", instance_id=raw["id"]) if item["state"] not in COPY_GONE]
        backups = [item for item in self.all("compute/backups/", instance_id=raw["id"]) if item["state"] not in COPY_GONE]
        hyperv = raw.get("type") == "hyperv"
        return {
            "exists": True,
            "name": raw["name"],
            "id": raw["id"],
            "type": "vm" if hyperv or metadata.get("instance_type", "container") != "container" else "container",
            "hypervisor": raw.get("type"),
            "state": raw["state"],
            "cpus": next((specs[sku] for sku in CPU_SKUS if sku in specs), None),
            "memory_mib": specs["RAM_001"] * 1024 if "RAM_001" in specs else None,
            "disk_gib": next((specs[sku] for sku in STORAGE_SKUS if sku in specs), None),
            "image": next((sku for sku in specs if not sku.startswith(("RAM_", "vCPU_", "SSD_", "HDD_", "CEPH_"))), None),
            "tags": [],  # CloudCIX instances have no tags
            "description": "",
            "grace_period": raw.get("grace_period"),
            "metadata": metadata,
            "has_userdata": bool((raw.get("metadata") or {}).get("userdata")),
            "networks": networks,
            "disks": [{"name": volume["name"], "path": (volume.get("metadata") or {}).get("mount_path")} for volume in volumes],
            "snapshots": [{"name": item["name"], "stateful": False, "created_at": item.get("created")}
                          for item in sorted(snapshots, key=lambda item: item.get("created") or "")],
            "backups": [{"name": item["name"], "created_at": item.get("created")} for item in sorted(backups, key=lambda item: item.get("created") or "")],
        }

    def queued(self, name):
        found = self._instances(name)
        if not found:
            return {"exists": False, "name": name}
        newest = max(found, key=lambda item: item["id"])
        return {"exists": True, "name": name, "id": newest["id"], "state": newest["state"], "grace_period": newest.get("grace_period"),
                "count": len(found)}

    def instances(self, prefix):
        return sorted(({"name": item["name"], "state": item["state"]} for item in self._instances()
                       if item["name"].startswith(prefix) and item["state"] not in GONE), key=lambda item: item["name"])

    def disk(self, name):
        found = [volume for volume in self.all("storage/volumes/", name=name) if volume["name"] == name and volume["state"] not in COPY_GONE]
        if not found:
            return {"exists": False, "name": name}
        raw = found[0]
        names = dict((item["id"], item["name"]) for item in self._instances() if item["state"] not in GONE)
        metadata = raw.get("metadata") or {}
        users = sorted(names.get(iid, "id %s" % iid) for iid in served(raw))
        return {"exists": True, "name": name, "storage": raw["specs"][0]["sku_name"], "size_gib": raw["specs"][0]["quantity"],
                "attached_to": users, "paths": dict((user, metadata.get("mount_path")) for user in users), "state": raw["state"]}

    def cleanup(self, prefix):
        if len(prefix) < 3:
            raise SystemExit("refusing to clean up prefix %r: too short to be a test run's own" % prefix)
        removed = []
        mine = [item for item in self._instances() if item["name"].startswith(prefix) and item["state"] not in ("deleted", "closed")]
        ids = set(item["id"] for item in mine)
        for item in self.all("compute/backups/"):
            if (item.get("instance") or {}).get("id") in ids and item["state"] == "running":
                self.call("DELETE", "compute/backups/%s/" % item["id"])
                removed.append(item["name"])
        # An instance's snapshots go with it; CloudCIX refuses the delete while one of them is busy, so wait for them to settle.
        self._settle_snapshots(ids)
        mine = self._settle_instances(prefix)  # a state request is refused from a transitional state
        for item in mine:  # HTTP DELETE: no grace period, and it expedites an instance in the delete queue
            if item["state"] != "unresourced":  # only CloudCIX support may remove those
                self.call("DELETE", "compute/instances/%s/" % item["id"])
                removed.append(item["name"])
        for volume in self.all("storage/volumes/"):
            if volume["name"].startswith(prefix) and volume["state"] not in COPY_GONE:
                self.call("DELETE", "storage/volumes/%s/" % volume["id"])
                removed.append(volume["name"])
        left = [item["name"] for item in self.instances(prefix) if item["state"] != "unresourced"]
        left += [volume["name"] for volume in self.all("storage/volumes/") if volume["name"].startswith(prefix) and volume["state"] not in COPY_GONE]
        return {"removed": removed, "left": left}

    def _settle_snapshots(self, ids):
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            busy = [item for item in self.all("compute/snapshots/") if (item.get("instance") or {}).get("id") in ids
                    and item["state"] not in ("running", "deleted", "closed", "unresourced")]
            if not busy:
                return
            if time.monotonic() > deadline:
                raise SystemExit("snapshots %s still busy after %d s" % (", ".join(item["name"] for item in busy), SETTLE_TIMEOUT))
            time.sleep(0.2)  # polls the robot's progress; the deadline above bounds it

    def _settle_instances(self, prefix):
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            mine = [item for item in self._instances() if item["name"].startswith(prefix) and item["state"] not in ("deleted", "closed")]
            busy = [item for item in mine if item["state"] not in ("running", "stopped", "unresourced") + GONE]
            if not busy:
                return mine
            if time.monotonic() > deadline:
                raise SystemExit("instances %s still busy after %d s" % (", ".join(item["name"] for item in busy), SETTLE_TIMEOUT))
            time.sleep(0.2)  # polls the robot's progress; the deadline above bounds it

    # -- session, faults and journal ----------------------------------------------------------------

    def session_start(self):
        os.makedirs(self.state_dir, exist_ok=True)
        path = os.path.join(self.state_dir, "journal.mark")
        if os.path.exists(path):  # a mark of an earlier simulator: this one numbers from 0 again
            os.unlink(path)
        return {"identity": "the probe's app-prefixed URLs"}

    def session_stop(self):
        return {"stopped": None}

    def fault(self, spec):
        response = self.session.post(self.base + "_sim/faults", json={"spec": spec}, timeout=30)
        if response.status_code != 201:
            raise SystemExit("fault %s: HTTP %s %s" % (spec, response.status_code, response.text[:300]))
        return response.json()

    def clear(self):
        self.session.delete(self.base + "_sim/faults", timeout=30)
        return {"cleared": True}

    def _journal(self, since):
        response = self.session.get(self.base + "_sim/requests", params={"since": since}, timeout=30)
        response.raise_for_status()
        return response.json()

    def _last_mark(self):
        path = os.path.join(self.state_dir, "journal.mark")
        try:
            with open(path) as handle:
                return int(handle.read())
        except (OSError, ValueError):
            return 0

    def journal_mark(self):
        """The index the next request will get: found from the previous mark, so the whole journal is not read each time."""
        entries = self._journal(self._last_mark())
        mark = entries[-1]["index"] + 1 if entries else self._last_mark()
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, "journal.mark"), "w") as handle:
            handle.write(str(mark))
        return mark

    def journal_start(self):
        return {"mark": self.journal_mark()}

    def journal_stop(self):
        return {"stopped": None}

    def journal_since(self, mark):
        entries = [entry for entry in self._journal(mark) if not entry["path"].startswith(PROBE_PREFIXES)]
        login = [entry for entry in entries if entry["method"] == "POST" and entry["path"].rstrip("/").endswith("auth/login")]
        return {
            "entries": [{"index": e["index"], "method": e["method"], "path": e["path"], "status": e["status"]} for e in entries],
            "reads": sum(1 for entry in entries if entry["method"] in ("GET", "HEAD")) + len(login),
            "writes": sum(1 for entry in entries if entry["method"] in MUTATING) - len(login),
            "mark": self.journal_mark(),
        }


def served(volume):
    """Ids of the instances a volume serves: ``contra_instances`` as CloudCIX reads it back."""
    return [ref["id"] for ref in volume.get("contra_instances") or []]


if __name__ == "__main__":
    main(Probe, __doc__, "cloudcix")
