# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# The request journal (GET/DELETE /_sim/requests) seen through the kubernetes client's calls, watches included.

import pytest
from kubernetes import client as kclient
from kubernetes import watch as kwatch

from tests.simulators.journal_checks import JournalReader, assert_since_and_clear, summary

from .conftest import CRD, NS, Sim

CONFIGMAPS = "/api/v1/namespaces/%s/configmaps" % NS


@pytest.fixture(scope="module")
def quiet_sim(tmp_path_factory):
    """An instance of its own, so no other test's calls (or their watches) land in the journal."""
    sim = Sim(str(tmp_path_factory.mktemp("hikube-journal")), CRD)
    yield sim
    assert sim.stop() == 0


def test_journal_records_reads_writes_failures_and_watches(quiet_sim):
    core = kclient.CoreV1Api(quiet_sim.api_client())
    journal = JournalReader(quiet_sim.url)
    journal.clear()
    core.list_namespaced_config_map(NS, label_selector="app=journal")
    core.create_namespaced_config_map(NS, {"metadata": {"name": "journal", "labels": {"app": "journal"}}})
    with pytest.raises(kclient.ApiException):
        core.read_namespaced_config_map("missing", NS)
    for _event in kwatch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=5):
        watching = journal.entries()  # while the stream is still open
        break
    assert summary(watching, "query")[:3] == [
        ("GET", CONFIGMAPS, 200, "labelSelector=app%3Djournal"),
        ("POST", CONFIGMAPS, 201, ""),
        ("GET", CONFIGMAPS + "/missing", 404, ""),
    ]
    assert summary(watching[3:]) == [("GET", CONFIGMAPS, 200)]
    assert "watch=true" in watching[3]["query"].split("&")
    later = assert_since_and_clear(journal, watching, kclient.VersionApi(quiet_sim.api_client()).get_code)
    assert summary(later) == [("GET", "/version/", 200)]  # the path as the client sent it
