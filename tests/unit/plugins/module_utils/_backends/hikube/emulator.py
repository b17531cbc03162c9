# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The Hikube tests' transport: the loopback emulator (tests/simulators/hikube), started as documented.

The driver talks to it through the real kubernetes library and a real socket, so nothing of our own code
is mocked; what it sent is read back from the emulator's request journal (``requests``, ``mutating()``).
"""

import atexit
import ctypes
import json
import os
import signal
import subprocess
import sys
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 6))
NAMESPACE = "tenant-demo"
TENANT_TOKEN = "polyvirt-sim"
ADMIN_TOKEN = "polyvirt-sim-admin"
MUTATING = ("POST", "PUT", "PATCH", "DELETE")
PR_SET_PDEATHSIG = 1
STARTED = []  # every emulator process, so none outlives the test run


def _die_with_parent():
    """In the child: ask Linux to end the emulator when the test process ends, however it ends."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@atexit.register
def _stop_all():
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()


class Emulator:
    """One emulator process; ``args`` such as ``--mode crd`` or ``--fault ...``."""

    def __init__(self, *args):
        cmd = [sys.executable, "-m", "tests.simulators.hikube", "--host", "127.0.0.1", "--port", "0", "--time-scale", "0"] + list(args)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     preexec_fn=_die_with_parent)  # pylint: disable=subprocess-popen-preexec-fn
        STARTED.append(self.proc)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("the hikube emulator did not start: %r" % line)
        self.url = line.split()[-1]
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def settings(self, **overrides):
        settings = {"host": self.url, "api_key": TENANT_TOKEN, "namespace": NAMESPACE}
        settings.update(overrides)
        return settings

    def journal(self, since=0):
        with self._opener.open("%s/_sim/requests?since=%d" % (self.url, since), timeout=30) as response:
            return json.loads(response.read())

    def mark(self):
        entries = self.journal()
        return entries[-1]["index"] + 1 if entries else 0

    def admin(self, method, path, body=None, content_type="application/json"):
        """A request as the cluster admin (seeding canned objects, reading what tenants may not), or None on 404."""
        request = urllib.request.Request(self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": "Bearer " + ADMIN_TOKEN, "Content-Type": content_type})
        try:
            with self._opener.open(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.request.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def transport(self):
        return Transport(self)


class Transport:
    """What a driver sent since it was made: the tenant's entries of the journal (the admin's are the test's own)."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.start = emulator.mark()

    @property
    def requests(self):
        return [(entry["method"], entry["path"], entry["query"]) for entry in self.emulator.journal(self.start) if entry.get("user") != "admin"]

    def mutating(self):
        return [request for request in self.requests if request[0] in MUTATING]

    def reads(self):
        return [request for request in self.requests if request[0] == "GET"]


def apps(kind, name=None):
    path = "/apis/apps.cozystack.io/v1alpha1/namespaces/%s/%s" % (NAMESPACE, kind)
    return path + "/" + name if name else path


def seed_instance(emulator, name="web1", running=True):
    """A VMInstance made as a user of kubectl would (not by this driver): resources, tags, a network, its system disk, disk data1."""
    emulator.admin("POST", apps("vmdisks"), {"metadata": {"name": name + "-system"},
                                             "spec": {"source": {"image": {"name": "ubuntu"}}, "storage": "5Gi", "storageClass": "replicated"}})
    emulator.admin("POST", apps("vmdisks"), {"metadata": {"name": "data1"}, "spec": {"source": {}, "storage": "1Gi", "storageClass": "replicated"}})
    emulator.admin("POST", apps("vminstances"), {
        "metadata": {"name": name, "labels": {"tags.polyvirt.io/a": "true", "tags.polyvirt.io/b": "true"},
                     "annotations": {"polyvirt.io/tags": json.dumps(["a", "b"]), "polyvirt.io/description": "canned"}},
        "spec": {"runStrategy": "Always" if running else "Halted", "instanceType": "", "instanceProfile": "ubuntu",
                 "resources": {"cpu": "2", "sockets": "1", "memory": "512Mi"}, "disks": [{"name": name + "-system"}, {"name": "data1"}],
                 "networks": [{"name": "tenant-net"}], "cloudInit": "#cloud-config\nchpasswd: {list: 'root:canned-secret'}\n"}})


def backups(kind, name=None):
    path = "/apis/backups.cozystack.io/v1alpha1/namespaces/%s/%s" % (NAMESPACE, kind)
    return path + "/" + name if name else path


def seed_backup(emulator, instance, name):
    """A backup made with kubectl: a BackupJob of ``instance`` (the emulator, at time scale 0, makes its Backup at once)."""
    emulator.admin("POST", backups("backupjobs"), {"metadata": {"name": name}, "spec": {
        "backupClassName": "cozy-default", "applicationRef": {"apiGroup": "apps.cozystack.io", "kind": "VMInstance", "name": instance}}})
