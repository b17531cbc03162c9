# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The module adapter: the one fail_json, warnings, closing the backend, and secrets kept out of the output."""

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.polyvirt.compute.plugins.module_utils import _module
from ansible_collections.polyvirt.compute.plugins.module_utils._args import CONNECTION_REQUIRED
from ansible_collections.polyvirt.compute.plugins.module_utils._backends import registry
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import NotFound, OperationFailed
from ansible_collections.polyvirt.compute.plugins.module_utils._module import PolyvirtModule
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils.fake_backend import fake_backend

SPEC = {"name": {"type": "str"}, "state": {"type": "str", "default": "started"}, "image": {"type": "str"}, "cpus": {"type": "int"}}


def run_module(action, capsys, **args):
    """Run ``PolyvirtModule(SPEC).run(action)`` with ``args``; return (exit code, the JSON it printed, what fail_json was given)."""
    failures = []
    with patch_module_args(args):
        module = PolyvirtModule(SPEC)
        fail_json = module.module.fail_json

        def recording(**kwargs):
            failures.append(kwargs)
            fail_json(**kwargs)

        module.module.fail_json = recording
        with pytest.raises(SystemExit) as caught:
            module.run(action)
    assert len(failures) == (0 if caught.value.code == 0 else 1)  # one fail_json, in one place
    return caught.value.code, json.loads(capsys.readouterr().out), failures


def warning_texts(output):
    """The warnings of a module's output (ansible-core 2.19 returns them as summaries with an event)."""
    return [item["event"]["msg"] if isinstance(item, dict) else item for item in output.get("warnings", [])]


@pytest.fixture(name="fake")
def fixture_fake(monkeypatch):
    """The registry answers with the shared fake backend; ``loaded`` records what it was asked for."""
    backend = fake_backend([{"name": "web", "state": "stopped", "cpus": 1}])
    backend.loaded = []

    def load(name, settings):
        backend.loaded.append((name, settings))
        return backend

    monkeypatch.setattr(_module, "load_backend", load)
    return backend


def reconcile(module):
    return InstanceReconciler(module.backend(), module.params, module.check_mode, module.diff_mode).run()


def test_a_result_is_exited_with_and_the_backend_closed(fake, capsys):
    code, output, _failures = run_module(reconcile, capsys, backend="lxd", name="web", cpus=2)
    assert code == 0
    assert output["changed"] is True and output["instance"]["cpus"] == 2 and output["instance"]["state"] == "running"
    assert fake.closed is True
    assert fake.loaded == [("lxd", {"url": None, "client_cert": None, "client_key": None, "validate_certs": None, "ca_path": None,
                                    "project": None, "target": None})]


def test_check_mode_reaches_the_reconciler(fake, capsys):
    code, output, _failures = run_module(reconcile, capsys, backend="lxd", name="web", cpus=2, _ansible_check_mode=True)
    assert code == 0 and output["changed"] is True and fake.calls == []


def test_warnings_go_through_module_warn(fake, capsys):
    def action(module):
        return {"changed": False, "warnings": ["cpus of instance web take effect at its next restart"]}

    _code, output, _failures = run_module(action, capsys, backend="lxd")
    assert warning_texts(output) == ["cpus of instance web take effect at its next restart"]


def test_a_collection_error_fails_once_with_its_message_and_result(fake, capsys):
    def action(module):
        module.backend()
        raise OperationFailed("Failed to start instance web on fake: no vhost_vsock", result={"changed": True, "instance": {"name": "web"}})

    code, output, failures = run_module(action, capsys, backend="lxd")
    assert code == 1 and output["failed"] is True
    assert output["msg"] == "Failed to start instance web on fake: no vhost_vsock"
    assert output["changed"] is True and output["instance"] == {"name": "web"}
    assert "exception" not in failures[0]  # expected failures carry no traceback
    assert fake.closed is True


def test_a_collection_error_without_a_result_is_not_changed(capsys):
    def action(module):
        raise NotFound("Failed to read instance web on lxd: instance web does not exist")

    code, output, _failures = run_module(action, capsys, backend="lxd")
    assert code == 1 and output["changed"] is False and output["msg"].endswith("instance web does not exist")


def test_an_unexpected_exception_is_reported_with_its_traceback(fake, capsys):
    def action(module):
        module.backend()
        return {}["missing"]

    code, output, failures = run_module(action, capsys, backend="lxd")
    assert code == 1
    assert output["msg"] == "Unexpected error in polyvirt.compute: 'missing'"
    assert "Traceback" in failures[0]["exception"] and "KeyError: 'missing'" in failures[0]["exception"]
    assert fake.closed is True


def test_an_unavailable_backend_fails_cleanly(capsys, monkeypatch):
    # Every backend has a driver in this release: take one out of the registry to see the refusal.
    monkeypatch.delitem(registry.LOADERS, "hyperv")
    available = tuple(registry.LOADERS)
    monkeypatch.setattr(registry, "AVAILABLE", available)
    connection = dict((key, "x") for key in CONNECTION_REQUIRED.get("hyperv", ()))
    code, output, _failures = run_module(lambda module: module.backend(), capsys, backend="hyperv", connection=connection)
    assert code == 1
    assert output["msg"] == "the hyperv backend is not available yet in this release of polyvirt.compute (available: %s)" % ", ".join(available)


def test_secrets_become_no_log_values(fake, capsys, monkeypatch):
    monkeypatch.setenv("POLYVIRT_PROXMOX_API_PASSWORD", "env-pa55word")

    def action(module):
        module.backend()
        action.no_log_values = set(module.module.no_log_values)
        return {"changed": False}

    code, _output, _failures = run_module(action, capsys, backend="proxmox",
                                          connection={"api_host": "pve.example", "api_token_id": "root@pam!ci", "api_token_secret": "t0ken-s3cret"})
    assert code == 0
    assert {"t0ken-s3cret", "env-pa55word"} <= action.no_log_values  # the one from the environment too, which AnsibleModule cannot know
    assert fake.loaded[0][1]["api_token_secret"] == "t0ken-s3cret" and fake.loaded[0][1]["api_password"] == "env-pa55word"


def test_a_secret_in_a_failure_is_masked(fake, capsys, monkeypatch):
    monkeypatch.setenv("POLYVIRT_CLOUDCIX_PASSWORD", "cl0ud-s3cret")

    def action(module):
        module.backend()
        raise OperationFailed("Failed to log in as admin with cl0ud-s3cret", result={"changed": False, "detail": "cl0ud-s3cret"})

    code, output, _failures = run_module(action, capsys, backend="cloudcix")
    assert code == 1 and output["msg"].startswith("Failed to log in as admin with ")
    assert "cl0ud-s3cret" not in json.dumps(output)


def test_bad_connection_keys_fail_cleanly(capsys):
    code, output, _failures = run_module(lambda module: module.backend(), capsys, backend="lxd", connection={"api_host": "pve.example"})
    assert code == 1 and output["msg"].startswith("connection.api_host is not used by the lxd backend")
