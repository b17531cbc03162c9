# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The Proxmox client: credentials, TLS settings, error mapping, retries and task waits (no server needed)."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.proxmox import client as pve
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import (
    AuthError, BackendUnavailable, Conflict, InvalidInput, NotFound, OperationFailed, WaitTimeout,
)
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.proxmox.fake_pve import FakePve, TEMPLATE

TOKEN = "5e5e5e5e-0000-4000-8000-000000000001"


def make(**kwargs):
    options = {"host": "127.0.0.1", "token_id": "root@pam!polyvirt", "token_secret": TOKEN}
    options.update(kwargs)
    return pve.ProxmoxClient(**options)


def test_token_id_with_or_without_the_user():
    assert make().user == "root@pam" and make()._token == ("polyvirt", TOKEN)  # pylint: disable=protected-access
    other = make(user="ops@pve", token_id="ci")
    assert other.user == "ops@pve" and other._token == ("ci", TOKEN)  # pylint: disable=protected-access


@pytest.mark.parametrize("kwargs, text", [
    ({"token_secret": None}, "go together"),
    ({"token_id": None, "token_secret": None}, "needs connection.api_password or connection.api_token_id"),
    ({"token_id": "polyvirt", "user": "root"}, "must be user@realm"),
    ({"ca_path": "/nonexistent/ca.pem"}, "connection.ca_path /nonexistent/ca.pem is not a file"),
    ({"host": None}, "connection.api_host is required"),
])
def test_bad_connection_settings_fail_before_any_request(kwargs, text):
    with pytest.raises(InvalidInput) as caught:
        make(**kwargs)
    assert text in caught.value.message


def test_verify_is_never_true_so_the_environment_cannot_replace_it(tmp_path, monkeypatch):
    """requests swaps verify=True (not False, not a path) for REQUESTS_CA_BUNDLE: we never pass True."""
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    assert make(validate_certs=False)._verify() is False  # pylint: disable=protected-access
    assert make(ca_path=str(ca))._verify() == str(ca)  # pylint: disable=protected-access
    default = make()._verify()  # pylint: disable=protected-access
    assert isinstance(default, str) and default.endswith(".pem") and default != "/nonexistent/bundle.pem"


def test_the_session_ignores_the_environment(monkeypatch):
    client = make(validate_certs=False)
    api = client.api()  # token auth: no request is made here
    assert api._store["session"].trust_env is False  # pylint: disable=protected-access
    client.close()


@pytest.mark.parametrize("status, reason, errors, expected", [
    (401, "Authentication failed!", None, AuthError),
    (403, "Permission check failed (/vms/100, VM.Config.Disk)", None, AuthError),
    (400, "Parameter verification failed.", {"memory": "value must have a minimum value of 16"}, InvalidInput),
    (400, "Parameter verification failed.", {"vmid": "VM 218 already exists"}, Conflict),
    (500, "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist", None, NotFound),
    (500, "no such cluster node 'pve9'", None, NotFound),
    (500, "VM is locked (clone)", None, Conflict),
    (500, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout", None, Conflict),
    (500, "unable to create VM 100 - VM 100 already exists on node 'pve'", None, Conflict),
    (595, "Errors during connection establishment, proxy handshake: Connection refused", None, BackendUnavailable),
    (500, "simulated server error", None, OperationFailed),
])
def test_errors_map_to_the_collection_exceptions(status, reason, errors, expected):
    exc = pve.error_for(status, reason, errors, "GET", "cluster/resources")
    assert isinstance(exc, expected)
    assert reason in exc.message and "(GET cluster/resources)" in exc.message
    for key, value in (errors or {}).items():
        assert "%s: %s" % (key, value) in exc.message


def test_reads_are_retried_on_5xx_595_and_locks_but_not_on_other_errors():
    client = make()
    fake = FakePve().install(client)
    fake.fail("cluster/resources", 500, "simulated server error")
    fake.fail("cluster/resources", 595, "Errors during connection establishment, proxy handshake: Connection refused")
    fake.fail("cluster/resources", 500, "VM is locked (backup)")
    assert len(client.get("cluster/resources", Deadline(30))) == 3
    assert fake.paths() == ["cluster/resources"] * 4
    fake.fail("nodes/pve/qemu/100/pending", 403, "Permission check failed")
    with pytest.raises(AuthError):
        client.get("nodes/pve/qemu/100/pending", Deadline(30))
    assert fake.paths().count("nodes/pve/qemu/100/pending") == 1


def test_a_read_that_keeps_failing_gives_up_inside_the_deadline():
    client = make()
    fake = FakePve().install(client)
    fake.fail("cluster/resources", 500, "simulated server error", times=50)
    with pytest.raises(OperationFailed) as caught:
        client.get("cluster/resources", Deadline(1))
    assert "simulated server error" in caught.value.message
    assert 1 < len(fake.requests) < 10


def test_changes_are_retried_only_when_refused_for_a_lock():
    client = make()
    fake = FakePve().install(client)
    fake.fail("config", 500, "VM is locked (clone)")
    client.run("POST", "nodes/pve/qemu/100/config", Deadline(30), cores=4)
    assert [request[0] for request in fake.requests if request[1].endswith("/config")] == ["POST", "POST"]
    fake.fail("config", 500, "unable to parse value of 'cores'")
    with pytest.raises(OperationFailed):
        client.run("POST", "nodes/pve/qemu/100/config", Deadline(30), cores=4)
    assert [request[0] for request in fake.requests if request[1].endswith("/config")] == ["POST", "POST", "POST"]


def test_a_task_is_awaited_on_its_upid():
    client = make()
    fake = FakePve().install(client)
    status = client.run("POST", "nodes/pve/qemu/100/status/start", Deadline(30))
    assert status["exitstatus"] == "OK"
    assert fake.paths()[-1].startswith("nodes/pve/tasks/UPID%3Apve%3A") and fake.paths()[-1].endswith("/status")


def test_warnings_are_success_and_kept():
    client = make()
    fake = FakePve().install(client)
    fake.task_exits["qmconfig"] = "WARNINGS: 1"
    assert client.run("POST", "nodes/pve/qemu/100/config", Deadline(30), cores=4)["exitstatus"] == "WARNINGS: 1"
    assert client.warnings == ["qmconfig: WARN: something odd"]


def test_a_failed_task_reports_its_exit_status_and_log_tail():
    client = make()
    fake = FakePve().install(client)
    fake.task_exits["qmstart"] = "start failed: no memory"
    with pytest.raises(OperationFailed) as caught:
        client.run("POST", "nodes/pve/qemu/100/status/start", Deadline(30))
    assert caught.value.message == "task qmstart failed: start failed: no memory (log: starting | worker said why)"
    fake.task_exits["qmconfig"] = "VM is locked (backup)"
    with pytest.raises(Conflict):
        client.run("POST", "nodes/pve/qemu/100/config", Deadline(30), cores=4)


def test_a_task_still_running_at_the_deadline_times_out_and_says_it_goes_on():
    client = make()
    fake = FakePve().install(client)
    upid = fake._upid("qmclone", TEMPLATE)  # pylint: disable=protected-access
    fake._task = lambda upid, what: {"status": "running"}  # pylint: disable=protected-access
    with pytest.raises(WaitTimeout) as caught:
        client.wait_task(upid, Deadline(0.5))
    assert "keeps running on the server" in caught.value.message


def test_booleans_go_on_the_wire_as_0_and_1():
    assert pve._wire(True) == 1 and pve._wire(False) == 0 and pve._wire("x") == "x"  # pylint: disable=protected-access


def test_paths_encode_volume_ids():
    assert pve.ProxmoxClient.path("nodes", "pve", "storage", "local", "content", "local:vztmpl/a b.tar.zst") == \
        "nodes/pve/storage/local/content/local%3Avztmpl%2Fa%20b.tar.zst"
