# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CloudCIX simulator (tests/simulators/cloudcix) served on loopback from a thread, for the driver's unit tests.

The driver then runs for real, over HTTP with requests, against the simulator's model of CloudCIX; the
journal (``requests()``) is the simulator's own record of what it was asked.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.backend import CloudcixBackend
from ansible_collections.polyvirt.compute.tests.simulators.cloudcix.api import API_KEY, EMAIL, PASSWORD, Simulator
from ansible_collections.polyvirt.compute.tests.simulators.cloudcix.server import make_server

MUTATING = ("POST", "PUT", "PATCH", "DELETE")


class LoopbackSimulator:
    def __init__(self, time_scale=0.0, faults=(), throttle_rate=0):
        self.offset = 0.0  # seconds added to the simulator's clock (tokens expire, grace periods pass) without sleeping
        # Throttling off unless a test asks: the tests send requests as fast as loopback allows.
        self.sim = Simulator(time_scale=time_scale, faults=faults, clock=lambda: time.time() + self.offset, throttle_rate=throttle_rate)
        self.server = make_server(self.sim, "127.0.0.1", 0)
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def settings(self, **overrides):
        settings = {"api_url": self.url, "email": EMAIL, "password": PASSWORD, "api_key": API_KEY, "project_id": "1"}
        settings.update(overrides)
        return settings

    def backend(self, **overrides):
        return CloudcixBackend(self.settings(**overrides))

    def fault(self, spec):
        with self.sim.lock:
            self.sim.faults.add(spec)

    def record(self, kind, name):
        """The simulator's own record of the ``kind`` named ``name`` (the newest)."""
        with self.sim.lock:
            self.sim.advance()
            found = [record for record in self.sim.data[kind].values() if record["name"] == name]
        return max(found, key=lambda record: record["id"]) if found else None

    def requests(self):
        """Every request answered so far: ``(method, path, status)``."""
        return [(entry["method"], entry["path"], entry["status"]) for entry in self.server.journal.entries()]

    def mutating(self, since=0):
        """The state-changing requests after the first ``since`` (a login is not one: it changes nothing)."""
        return [entry for entry in self.requests()[since:] if entry[0] in MUTATING and not entry[1].rstrip("/").endswith("auth/login")]
