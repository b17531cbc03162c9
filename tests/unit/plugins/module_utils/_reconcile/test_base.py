# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""What every reconciler shares: the task deadline, check mode in _do, the result and the one error path."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import InvalidInput, OperationFailed
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.base import DEFAULT_WAIT_TIMEOUT, Reconciler, task_deadline
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils.fake_backend import fake_backend


class PowerCycle(Reconciler):
    """A minimal reconciler on the shared fake backend: stop and start instance web, then fail if asked to."""

    def _run(self):
        instance = self.backend.instances.get("web")
        self.tracker.add("state", "running", "stopped")
        self._do("stop instance web", self.backend.instances.power, instance, "stop", False, self.deadline)
        self._do("start instance web", self.backend.instances.power, instance, "start", False, self.deadline)
        self._warn("restarted web")
        if self.params.get("fail"):
            raise OperationFailed("then it broke")
        return self._finish(instance=self.backend.instances.get("web"))

    def _known(self):
        return {"instance": self.backend.instances.get("web")}


def backend():
    return fake_backend([{"name": "web", "state": "running"}])


def test_the_deadline_comes_from_wait_timeout():
    assert task_deadline({"wait_timeout": 7}).seconds == 7
    assert task_deadline({}).seconds == DEFAULT_WAIT_TIMEOUT == 600
    assert task_deadline({"wait_timeout": None}).seconds == 600


@pytest.mark.parametrize("value", [0, -5, True, False, 2.5, "10"])
def test_the_deadline_refuses_what_is_not_a_whole_positive_number(value):
    with pytest.raises(InvalidInput) as caught:
        task_deadline({"wait_timeout": value})
    assert caught.value.message == "wait_timeout must be a whole number of seconds, at least 1, got %r" % (value,)


def test_do_calls_and_records_outside_check_mode():
    fake = backend()
    result = PowerCycle(fake, {}, diff_mode=True).run()
    assert fake.calls == [("instances.power", "web", "stop"), ("instances.power", "web", "start")]
    assert result["actions"] == ["stop instance web", "start instance web"] and result["changed"] is True
    assert result["warnings"] == ["restarted web"]
    assert result["diff"] == {"before": {"state": "running"}, "after": {"state": "stopped"}}
    assert "_native" not in result["instance"]  # results go through public()


def test_do_records_without_calling_in_check_mode():
    fake = backend()
    result = PowerCycle(fake, {}, check_mode=True).run()
    assert fake.calls == []
    assert result["actions"] == ["stop instance web", "start instance web"]
    assert "diff" not in result  # diff only in diff mode


def test_a_failed_call_is_not_reported_as_done():
    fake = fake_backend([{"name": "web", "state": "running"}], fail_start=True)
    with pytest.raises(OperationFailed) as caught:
        PowerCycle(fake, {}).run()
    assert caught.value.result["actions"] == ["stop instance web"]
    assert caught.value.result["changed"] is True


def test_the_error_path_adds_what_is_known_without_private_keys():
    with pytest.raises(OperationFailed) as caught:
        PowerCycle(backend(), {"fail": True}).run()
    result = caught.value.result
    assert result["changed"] is True and result["actions"] == ["stop instance web", "start instance web"]
    assert result["instance"]["name"] == "web" and "_native" not in result["instance"]


def test_the_error_path_keeps_what_the_error_already_carries():
    class Failing(Reconciler):
        def _run(self):
            self.tracker.action("did something")
            raise OperationFailed("boom", result={"changed": False, "instance": {"name": "kept", "_secret": 1}})

    with pytest.raises(OperationFailed) as caught:
        Failing(backend(), {}).run()
    assert caught.value.result == {"changed": False, "actions": ["did something"], "instance": {"name": "kept"}}
