# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The CloudCIX transport (client.py) over HTTP against the loopback simulator: URLs, login, errors, pages, retries."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import resolve_connection
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix import client as cloudcix_client
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.backend import CloudcixBackend
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.cloudcix.client import (
    ApiConflict,
    ApiInvalid,
    CloudcixClient,
    Transient,
    app_urls,
)
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import AuthError, BackendUnavailable, InvalidInput, NotFound
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline
from ansible_collections.polyvirt.compute.tests.simulators.cloudcix.api import API_KEY, EMAIL, PASSWORD
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.cloudcix.sim import LoopbackSimulator

LXD_BODY = {"project_id": 1, "name": "c1", "type": "lxd", "metadata": {"instance_type": "container"},
            "specs": [{"sku_name": "RAM_001", "quantity": 1}, {"sku_name": "vCPU_001", "quantity": 1},
                      {"sku_name": "SSD_001", "quantity": 10}, {"sku_name": "UBUNTU2404", "quantity": 1}]}


@pytest.fixture
def sim():
    simulator = LoopbackSimulator()
    yield simulator
    simulator.stop()


def connect(sim, **overrides):
    settings = dict(api_url=sim.url, email=EMAIL, password=PASSWORD, api_key=API_KEY)
    settings.update(overrides)
    return CloudcixClient(**settings)


def test_app_urls():
    assert app_urls(None)("compute") == "https://compute.api.cloudcix.com/"
    assert app_urls(None)("membership") == "https://membership.api.cloudcix.com/"
    assert app_urls("https://api.cloudcix.com")("compute") == "https://compute.api.cloudcix.com/"  # the SDK's V2 URL
    assert app_urls("https://{app}.cloud.example/v5.0/")("membership") == "https://membership.cloud.example/v5.0/"
    assert app_urls("http://127.0.0.1:8080")("compute") == "http://127.0.0.1:8080/"  # one base for every app
    for bad in ("ftp://x/", "compute.api.cloudcix.com", "https://"):
        with pytest.raises(InvalidInput, match="connection.api_url must be an http"):
            app_urls(bad)


def test_login_once_and_requests_carry_the_token(sim):
    client = connect(sim)
    assert client.read("project/1/")["name"] == "polyvirt-sim"
    assert client.read("project/1/")["id"] == 1
    assert [entry[:2] for entry in sim.requests()] == [("POST", "/auth/login/"), ("GET", "/project/1/"), ("GET", "/project/1/")]
    assert client.calls == 3


@pytest.mark.parametrize("missing", ["email", "password", "api_key"])
def test_missing_credentials_are_refused_before_any_request(sim, missing):
    client = connect(sim, **{missing: None})
    with pytest.raises(InvalidInput, match="connection.%s is required for the cloudcix backend" % missing):
        client.read("project/1/")
    assert sim.requests() == []


def test_bad_credentials_fail_with_cloudcix_reason(sim):
    with pytest.raises(AuthError, match="combination is invalid.*membership_token_create_002"):
        connect(sim, password="wrong").read("project/1/")
    with pytest.raises(AuthError, match="api_key.*is invalid"):
        connect(sim, api_key="wrong").read("project/1/")


def test_an_expired_token_is_renewed_once(sim):
    client = connect(sim)
    client.read("project/1/")
    sim.offset += 3 * 3600  # past the token's 2 hours
    assert client.read("project/1/")["id"] == 1
    assert sim.requests()[-3:] == [("GET", "/project/1/", 401), ("POST", "/auth/login/", 201), ("GET", "/project/1/", 200)]


def test_a_token_refused_twice_is_an_auth_error(sim, monkeypatch):
    client = connect(sim)
    client.read("project/1/")
    monkeypatch.setattr(client, "token", lambda: "forged.token.value")
    with pytest.raises(AuthError, match="An error occurred while decoding your token"):
        client.request("GET", "project/1/")
    assert [status for _method, _path, status in sim.requests()[-2:]] == [401, 401]


def test_reads_are_retried_on_5xx_writes_are_not(sim):
    client = connect(sim)
    sim.fault("error:status=503,count=2,method=GET")
    assert client.read("project/1/", deadline=Deadline(30))["id"] == 1
    assert [status for _method, path, status in sim.requests() if path == "/project/1/"] == [503, 503, 200]
    sim.fault("error:status=502,count=1,method=POST,path=compute/instances")
    with pytest.raises(Transient, match="HTTP 502"):
        client.write("POST", "compute/instances/", LXD_BODY)
    assert sim.record("instance", "c1") is None  # and nothing was made by a retry


def test_throttled_writes_are_retried(sim):
    client = connect(sim)
    sim.fault("error:status=429,count=1,method=POST,path=compute/instances")
    assert client.write("POST", "compute/instances/", LXD_BODY, deadline=Deadline(30))["name"] == "c1"
    assert [status for method, path, status in sim.requests() if method == "POST" and "instances" in path] == [429, 201]


def test_the_user_throttle_is_ridden_out_by_reads_and_writes():
    sim = LoopbackSimulator(faults=["throttle:rate=3"])
    try:
        client = connect(sim)
        for index in range(6):
            assert client.read("project/1/", deadline=Deadline(30))["id"] == 1
        assert client.write("POST", "compute/instances/", LXD_BODY, deadline=Deadline(30))["name"] == "c1"
        statuses = [status for _method, path, status in sim.requests() if path != "/auth/login/"]
        assert 429 in statuses and statuses.count(201) == 1 and statuses.count(200) == 6
    finally:
        sim.stop()


def test_a_read_retry_stops_at_the_deadline(sim):
    client = connect(sim)
    sim.fault("error:status=503,count=1000,method=GET")
    with pytest.raises(Transient):
        client.read("project/1/", deadline=Deadline(1))


def test_lists_follow_the_pages(sim, monkeypatch):
    monkeypatch.setattr(cloudcix_client, "PAGE_SIZE", 2)
    images = connect(sim).list("compute/images/")
    assert len(images) == 6 and len(set(image["sku_name"] for image in images)) == 6
    pages = [entry for entry in sim.server.journal.entries() if entry["path"] == "/compute/images/"]
    assert [entry["query"] for entry in pages] == ["limit=2&page=%d" % page for page in range(3)]


def test_error_envelopes_map_to_the_collection_exceptions(sim):
    client = connect(sim)
    with pytest.raises(NotFound, match="compute_instance_read_001"):
        client.read("compute/instances/99/")
    with pytest.raises(ApiInvalid, match="project_id.*does not correspond") as caught:
        client.write("POST", "compute/instances/", dict(LXD_BODY, project_id=99))
    assert caught.value.errors["project_id"]["error_code"] == "compute_instance_create_103"
    made = client.write("POST", "compute/instances/", LXD_BODY)
    with pytest.raises(ApiConflict, match="not valid to change from the current state"):
        client.write("PATCH", "compute/instances/%s/" % made["id"], {"state": "restart"})


def test_an_unreachable_api_is_named(sim):
    port = sim.server.server_address[1]
    sim.stop()
    with pytest.raises(BackendUnavailable, match="CloudCIX is not reachable at http://127.0.0.1:%d/" % port):
        connect(sim).read("project/1/", deadline=Deadline(1))


def test_connection_keys_come_from_the_environment_too(sim, monkeypatch):
    for key, value in (("API_URL", sim.url), ("EMAIL", EMAIL), ("PASSWORD", PASSWORD), ("API_KEY", API_KEY), ("PROJECT_ID", "1")):
        monkeypatch.setenv("POLYVIRT_CLOUDCIX_" + key, value)
    settings, secrets = resolve_connection("cloudcix", {})
    assert sorted(secrets) == sorted([PASSWORD, API_KEY])
    backend = CloudcixBackend(settings)
    assert backend.project_id == 1 and backend.client.read("project/1/")["id"] == 1
