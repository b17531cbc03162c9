# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""Decision logic of the shared instance reconciler, against the shared fake backend."""

import pytest

from ansible_collections.polyvirt.compute.plugins.module_utils._args import INSTANCE_OPTIONS
from ansible_collections.polyvirt.compute.plugins.module_utils._backends.base import ON_RESTART, WHILE_STOPPED
from ansible_collections.polyvirt.compute.plugins.module_utils._errors import Conflict, InvalidInput, OperationFailed, Unsupported, WaitTimeout
from ansible_collections.polyvirt.compute.plugins.module_utils._reconcile.instance import InstanceReconciler, list_instances
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils.fake_backend import fake_backend


def params(**overrides):
    """What the instance module passes: every option, unset ones None (defaults as in the argspec)."""
    base = dict((key, spec.get("default")) for key, spec in INSTANCE_OPTIONS.items())
    base.update({"name": "web", "state": "started", "image": "debian", "wait": True, "wait_timeout": 5})
    base.update(overrides)
    return base


def run(backend, check_mode=False, **overrides):
    return InstanceReconciler(backend, params(**overrides), check_mode=check_mode, diff_mode=True).run()


def fails(backend, error, check_mode=False, **overrides):
    with pytest.raises(error) as caught:
        run(backend, check_mode=check_mode, **overrides)
    return caught.value


RUNNING = {"name": "web", "state": "running", "cpus": 1, "memory_mib": 256}


# -- create ---------------------------------------------------------------------------------------


def test_check_mode_create_predicts_and_calls_nothing():
    backend = fake_backend()
    result = run(backend, check_mode=True, memory="1GiB")
    assert backend.calls == []
    assert ("instances.check_create", "web") in backend.reads  # read-only checks run in check mode too
    assert result["changed"] is True
    assert result["instance"]["state"] == "running"
    assert result["instance"]["memory_mib"] == 1024
    assert result["actions"] == ["create vm web from debian", "start instance web"]
    assert result["diff"]["before"] == {}
    assert result["restart_required"] is False


def test_check_create_failure_is_predicted_in_check_mode():
    for check_mode in (True, False):
        backend = fake_backend()
        error = fails(backend, InvalidInput, check_mode=check_mode, image="nope")
        assert error.message == "Failed to create instance web on fake: image 'nope' was not found on the fake backend"
        assert backend.calls == []
        assert error.result["changed"] is False


def test_create_then_nothing_to_do():
    backend = fake_backend()
    first = run(backend, memory=512, tags=["b", "a"])
    assert backend.calls == [("instances.create", "web"), ("instances.power", "web", "start")]
    assert first["instance"]["state"] == "running"
    backend.calls = []
    second = run(backend, memory="512MiB", tags=["a", "b"])
    assert backend.calls == []
    assert second["changed"] is False
    assert second["actions"] == []
    assert second["diff"] == {"before": {}, "after": {}}


def test_tags_may_hold_commas():
    backend = fake_backend()
    assert run(backend, tags=["a,b", "c"])["instance"]["tags"] == ["a,b", "c"]
    assert run(backend, tags=["c", "a,b"])["changed"] is False


def test_a_new_instance_that_cannot_start_is_removed_again():
    backend = fake_backend(fail_start=True)
    error = fails(backend, OperationFailed)
    assert backend.calls == [("instances.create", "web"), ("instances.power", "web", "start"), ("instances.delete", "web")]
    assert "the instance created by this task was removed again" in error.message
    assert error.result["instance"] == {}
    assert error.result["changed"] is True  # something was made and removed: the actions say so
    assert error.result["actions"][-1] == "remove instance web again"
    assert backend.world == {}


def test_a_wait_timeout_still_returns_what_was_created():
    backend = fake_backend(never_ip=True)
    error = fails(backend, WaitTimeout, wait_for=["ip"])
    assert error.result["changed"] is True
    assert error.result["instance"]["name"] == "web"
    assert "_native" not in error.result["instance"]
    assert error.message.startswith("Failed to wait for instance web on fake: timed out")
    assert "web" in backend.world  # a timeout is not a failure to start: nothing is removed


def test_a_timeout_inside_create_reports_the_instance_that_exists():
    backend = fake_backend(timeout_in_create=True)
    error = fails(backend, WaitTimeout)
    assert error.message.startswith("Failed to create instance web on fake: timed out")
    assert error.result["changed"] is True
    assert error.result["instance"]["name"] == "web" and "_native" not in error.result["instance"]
    assert error.result["actions"] == ["create instance web (then failed)"]
    assert backend.calls == [("instances.create", "web")]


def test_a_failed_create_that_made_nothing_reports_no_change():
    backend = fake_backend(faults={"instances.create": OperationFailed("quota exceeded")})
    error = fails(backend, OperationFailed)
    assert error.message == "Failed to create instance web on fake: quota exceeded"
    assert error.result["changed"] is False
    assert "instance" not in error.result


def test_a_conflict_on_create_converges_on_the_instance_another_task_made():
    backend = fake_backend(conflict_on_create={"cpus": 1})
    result = run(backend, cpus=2)
    assert backend.calls == [("instances.create", "web"), ("instances.update", "web", ["cpus"]), ("instances.power", "web", "start")]
    assert result["changed"] is True
    assert result["actions"] == ["update cpus of instance web", "start instance web"]
    assert result["diff"] == {"before": {"cpus": 1, "state": "stopped"}, "after": {"cpus": 2, "state": "running"}}
    assert result["instance"]["cpus"] == 2 and result["instance"]["state"] == "running"


def test_a_conflict_on_create_with_a_matching_instance_is_no_change():
    backend = fake_backend(conflict_on_create={"cpus": 2, "state": "running"})
    result = run(backend, cpus=2)
    assert backend.calls == [("instances.create", "web")]
    assert result["changed"] is False and result["diff"] == {"before": {}, "after": {}}


def test_a_conflict_on_create_without_an_instance_is_an_error():
    backend = fake_backend(faults={"instances.create": Conflict("the name is reserved")})
    error = fails(backend, Conflict)
    assert error.message == "Failed to create instance web on fake: the name is reserved"
    assert error.result["changed"] is False and "instance" not in error.result


def test_image_is_needed_to_create():
    backend = fake_backend()
    assert "image is required to create a new instance" in fails(backend, InvalidInput, image=None).message
    assert backend.calls == []


# -- update ---------------------------------------------------------------------------------------


def test_update_reports_only_what_differs():
    backend = fake_backend([dict(RUNNING, cpus=2)])
    result = run(backend, cpus=2, memory="0.5GiB")
    assert backend.calls == [("instances.update", "web", ["memory_mib"])]
    assert result["diff"] == {"before": {"memory_mib": 256}, "after": {"memory_mib": 512}}
    assert result["actions"] == ["update memory_mib of instance web"]


def test_check_mode_update_calls_nothing():
    backend = fake_backend([dict(RUNNING, state="stopped")])
    result = run(backend, check_mode=True, memory=512)
    assert backend.calls == []
    assert result["actions"] == ["update memory_mib of instance web", "start instance web"]
    assert result["diff"]["after"] == {"memory_mib": 512, "state": "running"}


def test_shrinking_the_disk_is_refused_before_any_change():
    backend = fake_backend([dict(RUNNING, disk_gib=20)])
    error = fails(backend, InvalidInput, disk_size="10GiB", cpus=4)
    assert error.message == "Failed to update instance web on fake: disk_size 10GiB is smaller than the current 20GiB; disks only grow"
    assert backend.calls == [] and error.result["changed"] is False


def test_changed_user_data_is_a_warning_not_a_change():
    backend = fake_backend([dict(RUNNING, user_data="#cloud-config\n{}\n")])
    result = run(backend, cloud_init={"user_data": {"runcmd": ["true"]}, "network_config": None})
    assert result["changed"] is False and backend.calls == []
    assert "only reads it at first boot" in result["warnings"][0]


def test_the_same_user_data_is_no_warning():
    backend = fake_backend([dict(RUNNING, user_data="#cloud-config\nruncmd: [true]\n")])
    result = run(backend, cloud_init={"user_data": "#cloud-config\nruncmd: [true]\n", "network_config": None})
    assert "warnings" not in result


@pytest.mark.parametrize("user_data", ["hello", "runcmd: [true]\n", "  \n"])
def test_user_data_strings_need_a_cloud_init_header(user_data):
    backend = fake_backend()
    error = fails(backend, InvalidInput, cloud_init={"user_data": user_data, "network_config": None})
    assert "cloud_init.user_data is a string that cloud-init would ignore" in error.message
    assert backend.calls == [] and backend.reads == []


@pytest.mark.parametrize("user_data", ["#cloud-config\n{}\n", "#!/bin/sh\ntrue\n", "## template: jinja\n#cloud-config\n{}\n"])
def test_user_data_strings_with_a_header_are_accepted(user_data):
    assert run(fake_backend(), cloud_init={"user_data": user_data, "network_config": None})["changed"] is True


def test_results_never_show_what_the_driver_keeps_for_itself():
    backend = fake_backend()
    result = run(backend, cloud_init={"user_data": {"chpasswd": {"list": "root:hunter2"}}, "network_config": None})
    assert "hunter2" in backend.world["web"]["user_data"]  # the driver has it (under _native) ...
    assert "hunter2" not in repr(result) and "_native" not in result["instance"]  # ... the result does not


# -- allow_restart, restart_required ---------------------------------------------------------------


def test_an_on_restart_change_without_allow_restart_is_left_pending():
    backend = fake_backend([RUNNING], effects={"cpus": ON_RESTART})
    result = run(backend, cpus=2)
    assert backend.calls == [("instances.update", "web", ["cpus"])]
    assert result["changed"] is True and result["restart_required"] is True
    assert result["warnings"] == ["cpus of instance web take effect at its next restart (set allow_restart: true to restart it now)"]
    again = run(backend, cpus=2)
    assert again["changed"] is False and again["restart_required"] is True  # still pending, not applied twice
    assert backend.calls == [("instances.update", "web", ["cpus"])]


def test_an_on_restart_change_with_allow_restart_restarts_and_says_so():
    backend = fake_backend([RUNNING], effects={"cpus": ON_RESTART})
    result = run(backend, cpus=2, allow_restart=True)
    assert backend.calls == [("instances.update", "web", ["cpus"]), ("instances.power", "web", "restart")]
    assert result["actions"] == ["update cpus of instance web", "restart instance web (so that cpus take effect)"]
    assert result["restart_required"] is False and "warnings" not in result
    assert result["instance"]["cpus"] == 2
    again = run(backend, cpus=2, allow_restart=True)
    assert again["changed"] is False and len(backend.calls) == 2


@pytest.mark.parametrize("state, calls", [
    ("restarted", [("instances.update", "web", ["cpus"]), ("instances.power", "web", "restart")]),
    ("stopped", [("instances.update", "web", ["cpus"]), ("instances.power", "web", "stop")]),
])
def test_an_on_restart_change_needs_no_extra_restart_when_the_state_restarts_or_stops(state, calls):
    backend = fake_backend([RUNNING], effects={"cpus": ON_RESTART})
    result = run(backend, cpus=2, state=state)
    assert backend.calls == calls
    assert "warnings" not in result


def test_an_on_restart_change_to_a_stopped_instance_is_simply_applied():
    backend = fake_backend([dict(RUNNING, state="stopped")], effects={"cpus": ON_RESTART})
    result = run(backend, cpus=2, state="present")
    assert backend.calls == [("instances.update", "web", ["cpus"])]
    assert result["restart_required"] is False


@pytest.mark.parametrize("check_mode", [False, True])
def test_allow_restart_applies_a_change_an_earlier_task_left_waiting(check_mode):
    backend = fake_backend([dict(RUNNING, pending={"cpus": 2})], effects={"cpus": ON_RESTART})
    result = run(backend, cpus=2, allow_restart=True, check_mode=check_mode)
    assert result["changed"] is True
    assert result["actions"] == ["restart instance web (so that the changes waiting for its restart take effect)"]
    assert backend.calls == ([] if check_mode else [("instances.power", "web", "restart")])
    if not check_mode:
        assert result["restart_required"] is False
        assert run(backend, cpus=2, allow_restart=True)["changed"] is False


def test_without_allow_restart_a_waiting_change_is_only_reported():
    backend = fake_backend([dict(RUNNING, pending={"cpus": 2})], effects={"cpus": ON_RESTART})
    result = run(backend, cpus=2)
    assert result["changed"] is False and result["restart_required"] is True and backend.calls == []


def test_a_restart_clears_restart_required():
    backend = fake_backend([dict(RUNNING, pending={"cpus": 2})], effects={"cpus": ON_RESTART})
    result = run(backend, cpus=2, state="restarted")
    assert backend.calls == [("instances.power", "web", "restart")]
    assert result["instance"]["cpus"] == 2
    assert result["restart_required"] is False


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_while_stopped_change_without_allow_restart_is_refused_before_any_change(check_mode):
    backend = fake_backend([RUNNING], effects={"cpus": WHILE_STOPPED})
    error = fails(backend, InvalidInput, check_mode=check_mode, cpus=2, memory=512)
    assert error.message.startswith("Failed to update instance web on fake: cpus cannot change while instance web runs on the fake backend; "
                                    "set allow_restart: true")
    assert "memory_mib" not in error.message  # a live change is not named
    assert backend.calls == []
    assert error.result["changed"] is False and error.result["instance"]["name"] == "web"


def test_a_while_stopped_change_with_allow_restart_stops_applies_and_starts():
    backend = fake_backend([RUNNING], effects={"cpus": WHILE_STOPPED})
    planned = run(fake_backend([RUNNING], effects={"cpus": WHILE_STOPPED}), check_mode=True, cpus=2, allow_restart=True)
    result = run(backend, cpus=2, allow_restart=True)
    assert backend.calls == [("instances.power", "web", "stop"), ("instances.update", "web", ["cpus"]), ("instances.power", "web", "start")]
    assert result["actions"] == ["stop instance web (so that cpus can change)", "update cpus of instance web", "start instance web"]
    assert planned["actions"] == result["actions"] and planned["diff"] == result["diff"]
    assert result["diff"] == {"before": {"cpus": 1}, "after": {"cpus": 2}}  # stopped and started again: the power state is as it was
    assert result["instance"]["state"] == "running" and result["instance"]["cpus"] == 2
    assert run(backend, cpus=2, allow_restart=True)["changed"] is False


@pytest.mark.parametrize("state, allow_restart, calls", [
    ("stopped", False, [("instances.power", "web", "stop"), ("instances.update", "web", ["cpus"])]),
    ("present", True, [("instances.power", "web", "stop"), ("instances.update", "web", ["cpus"]), ("instances.power", "web", "start")]),
    ("restarted", True, [("instances.power", "web", "stop"), ("instances.update", "web", ["cpus"]), ("instances.power", "web", "start")]),
])
def test_a_while_stopped_change_and_the_power_state(state, allow_restart, calls):
    backend = fake_backend([RUNNING], effects={"cpus": WHILE_STOPPED})
    run(backend, cpus=2, state=state, allow_restart=allow_restart)
    assert backend.calls == calls


def test_a_while_stopped_change_to_a_stopped_instance_needs_no_restart():
    backend = fake_backend([dict(RUNNING, state="stopped")], effects={"cpus": WHILE_STOPPED})
    run(backend, cpus=2, state="present")
    assert backend.calls == [("instances.update", "web", ["cpus"])]


def test_while_stopped_and_on_restart_changes_together_restart_once():
    backend = fake_backend([RUNNING], effects={"cpus": WHILE_STOPPED, "memory_mib": ON_RESTART})
    result = run(backend, cpus=2, memory=512, allow_restart=True)
    assert backend.calls == [("instances.power", "web", "stop"), ("instances.update", "web", ["cpus", "memory_mib"]),
                             ("instances.power", "web", "start")]
    assert result["restart_required"] is False and "warnings" not in result
    assert (result["instance"]["cpus"], result["instance"]["memory_mib"]) == (2, 512)


def test_a_while_stopped_change_keeps_a_requested_pause():
    backend = fake_backend([RUNNING], effects={"cpus": WHILE_STOPPED})
    result = run(backend, cpus=2, state="paused", allow_restart=True)
    assert result["instance"]["state"] == "paused"


def test_a_while_stopped_change_with_state_stopped_shows_the_stop_in_the_diff():
    backend = fake_backend([RUNNING], effects={"cpus": WHILE_STOPPED})
    result = run(backend, cpus=2, state="stopped")
    assert result["diff"] == {"before": {"cpus": 1, "state": "running"}, "after": {"cpus": 2, "state": "stopped"}}


# -- power ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("current, state, actions", [
    ("stopped", "started", ["start"]),
    ("paused", "started", ["resume"]),
    ("error", "started", ["start"]),
    ("running", "started", []),
    ("running", "stopped", ["stop"]),
    ("paused", "stopped", ["stop"]),
    ("stopped", "stopped", []),
    ("running", "paused", ["pause"]),
    ("paused", "paused", []),
    ("running", "restarted", ["restart"]),
    ("stopped", "restarted", ["start"]),
    ("paused", "restarted", ["resume", "restart"]),
    ("running", "present", []),
    ("stopped", "present", []),
])
def test_power_plan(current, state, actions):
    backend = fake_backend([dict(RUNNING, state=current)])
    result = run(backend, state=state)
    assert backend.calls == [("instances.power", "web", action) for action in actions]
    assert result["changed"] is bool(actions)
    planned = run(fake_backend([dict(RUNNING, state=current)]), check_mode=True, state=state)
    assert planned["actions"] == result["actions"] and planned["diff"] == result["diff"]


def test_pausing_a_stopped_instance_is_refused_before_any_change():
    backend = fake_backend([dict(RUNNING, state="stopped")])
    error = fails(backend, InvalidInput, state="paused", memory=512)
    assert "state=paused needs a running instance" in error.message
    assert backend.calls == []


def test_a_failure_after_a_change_reports_the_change_and_the_instance():
    backend = fake_backend([dict(RUNNING, state="stopped")], fail_start=True)
    error = fails(backend, OperationFailed, cpus=2)
    assert error.message == "Failed to start instance web on fake: no vhost_vsock"
    assert backend.calls == [("instances.update", "web", ["cpus"]), ("instances.power", "web", "start")]
    assert error.result["changed"] is True and error.result["actions"] == ["update cpus of instance web"]
    assert error.result["instance"]["cpus"] == 2 and "_native" not in error.result["instance"]
    assert "web" in backend.world  # an existing instance is never removed because it cannot start


def test_no_waiting_when_wait_is_false():
    backend = fake_backend(never_ip=True)
    assert run(backend, wait_for=["ip"], wait=False)["instance"]["state"] == "running"


def test_waiting_for_an_address_reads_it():
    backend = fake_backend()
    result = run(backend, wait_for=["running", "ip"])
    assert result["instance"]["ansible_host"] == result["instance"]["addresses"]["ipv4"][0]


def test_waiting_for_cloud_init_returns_its_report():
    assert run(fake_backend(), wait_for=["cloud_init"])["cloud_init"] == {"status": "done", "exit_code": 0}


def test_an_idempotent_run_reads_once():
    backend = fake_backend([RUNNING])
    run(backend, cpus=1)
    assert backend.reads == [("instances.get", "web", False)]


def test_absent_in_check_mode_and_for_real():
    backend = fake_backend([RUNNING])
    check = run(backend, check_mode=True, state="absent")
    assert backend.calls == [] and check["changed"] is True
    assert check["diff"]["before"]["name"] == "web" and check["diff"]["after"] == {}
    real = run(backend, state="absent")
    assert backend.calls == [("instances.delete", "web")] and real["instance"] == {}
    assert real["actions"] == check["actions"] == ["delete instance web"]
    again = run(backend, state="absent")
    assert again["changed"] is False and again["instance"] == {}


def test_absent_needs_no_capability():
    backend = fake_backend([RUNNING], without=("instance.tags",))
    assert run(backend, state="absent", tags=["x"])["changed"] is True


# -- refusals before any change -------------------------------------------------------------------


@pytest.mark.parametrize("overrides, missing, message", [
    ({"flavor": "u1.medium"}, "instance.flavor", "flavor is not supported by the fake backend"),
    ({"wait_for": ["cloud_init"]}, "wait_for.cloud_init", "wait_for=cloud_init is not supported by the fake backend"),
    ({"wait_for": ["ip"]}, "wait_for.ip", "wait_for=ip is not supported by the fake backend"),
    ({"state": "paused"}, "instance.paused", "state=paused is not supported by the fake backend"),
    ({"tags": ["a"]}, "instance.tags", "tags is not supported by the fake backend"),
    ({"description": "d"}, "instance.description", "description is not supported by the fake backend"),
    ({"disk_size": 10}, "instance.disk_size", "disk_size is not supported by the fake backend"),
    ({"ssh_keys": ["ssh-ed25519 AAAA x"]}, "instance.ssh_keys", "ssh_keys is not supported by the fake backend"),
    ({"networks": [{"name": "br0", "ipv4_gateway": "10.0.0.1"}]}, "instance.networks.ipv4_gateway",
     "networks[].ipv4_gateway is not supported by the fake backend"),
    ({"networks": [{"name": "br0", "nat": True}]}, "instance.networks.nat", "networks[].nat is not supported by the fake backend"),
])
def test_unsupported_features_fail_before_any_call(overrides, missing, message):
    backend = fake_backend([RUNNING], without=(missing,))
    error = fails(backend, Unsupported, **overrides)
    assert error.message == "Failed to validate instance web on fake: " + message
    assert backend.calls == [] and backend.reads == []
    assert error.result["changed"] is False


def test_a_type_the_backend_lacks_is_refused():
    backend = fake_backend(features={"vm": frozenset()})
    error = fails(backend, Unsupported, type="container")
    assert error.message == "Failed to validate instance web on fake: type=container is not supported by the fake backend"
    assert backend.calls == [] and backend.reads == []


def test_a_feature_one_type_lacks_is_refused_for_a_new_instance_of_that_type():
    backend = fake_backend()
    error = fails(backend, Unsupported, type="container", cloud_init={"user_data": {"runcmd": ["true"]}, "network_config": None})
    assert error.message == "Failed to validate instance web on fake: cloud_init is not supported by the fake backend for type=container"
    assert backend.calls == []
    assert run(fake_backend(), type="vm", cloud_init={"user_data": {"runcmd": ["true"]}, "network_config": None})["changed"] is True


def test_a_feature_one_type_lacks_is_refused_after_reading_an_existing_instance_of_that_type():
    backend = fake_backend([dict(RUNNING, type="container")])
    error = fails(backend, Unsupported, type="container", cloud_init={"user_data": None, "network_config": {"version": 2}})
    assert error.message == "Failed to validate instance web on fake: cloud_init is not supported by the fake backend for type=container"
    assert backend.calls == [] and backend.reads == [("instances.get", "web", False)]


def test_an_existing_instance_of_the_non_default_type_is_reconciled_without_type():
    backend = fake_backend([dict(RUNNING, type="container")], default_type="vm")
    result = run(backend, cpus=2)
    assert backend.calls == [("instances.update", "web", ["cpus"])]
    assert result["instance"]["type"] == "container"


@pytest.mark.parametrize("overrides, message", [
    ({"name": ".."}, "name '..' is not a valid name"),
    ({"name": "a/b"}, "name 'a/b' is not a valid name"),
    ({"name": "web\n"}, "is not a valid name"),
    ({"name": ""}, "name must be a non-empty name"),
    ({"name": "w" * 64}, "is longer than the fake backend allows"),
    ({"cpus": 0}, "cpus must be a whole number of at least 1, got 0"),
    ({"memory": "lots"}, "memory must be a size"),
    ({"tags": ["ok", " "]}, "tags[1] must not be empty"),
    ({"networks": [{"name": "br0", "ipv4": "10.0.0.300/24"}]}, "networks[0].ipv4 must be an IPv4 address"),
    ({"networks": [{"name": "br0", "ipv4": "fd00::5/64"}]}, "networks[0].ipv4 must be an IPv4 address, got the IPv6 address"),
    ({"networks": [{"name": "br0", "ipv6": "10.0.0.5"}]}, "networks[0].ipv6 must be an IPv6 address, got the IPv4 address"),
    ({"networks": [{"name": "br0", "ipv4_gateway": "10.0.0.1/24"}]}, "networks[0].ipv4_gateway must be an IPv4 address"),
    ({"backend_options": {"colour": "blue"}}, "backend_options.colour is not a fake option"),
])
def test_bad_input_is_refused_before_any_call(overrides, message):
    backend = fake_backend([RUNNING])
    error = fails(backend, InvalidInput, **overrides)
    assert message in error.message
    assert backend.calls == [] and backend.reads == []


@pytest.mark.parametrize("wait_timeout", [0, -1, True, "5", 1.5])
def test_wait_timeout_must_be_a_whole_number_of_seconds(wait_timeout):
    backend = fake_backend()
    with pytest.raises(InvalidInput) as caught:
        InstanceReconciler(backend, params(wait_timeout=wait_timeout))
    assert "wait_timeout must be a whole number of seconds, at least 1, got %r" % (wait_timeout,) in caught.value.message
    assert backend.calls == [] and backend.reads == []


def test_networks_accept_addresses_with_prefixes_and_keywords():
    networks = [{"name": "br0", "ipv4": "10.0.0.5/24", "ipv6": "fd00::5/64", "ipv4_gateway": "10.0.0.1"}, {"name": "br1", "ipv4": "dhcp", "ipv6": "slaac"}]
    assert run(fake_backend(), networks=networks)["changed"] is True


# -- check mode predicts what a real run does -------------------------------------------------------


SCENARIOS = {
    "create": ([], {"cpus": 2, "tags": ["a"]}),
    "create stopped": ([], {"state": "stopped"}),
    "create paused": ([], {"state": "paused"}),
    "update and start": ([dict(RUNNING, state="stopped")], {"cpus": 2}),
    "restart": ([RUNNING], {"state": "restarted", "memory": 1024}),
    "on restart pending": ([RUNNING], {"cpus": 2}),
    "on restart allowed": ([RUNNING], {"cpus": 2, "allow_restart": True}),
    "absent": ([RUNNING], {"state": "absent"}),
    "nothing": ([RUNNING], {"cpus": 1}),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_check_mode_predicts_the_same_actions_and_diff(scenario):
    instances, overrides = SCENARIOS[scenario]
    checked = fake_backend(instances, effects={"cpus": ON_RESTART})
    planned = run(checked, check_mode=True, **overrides)
    real = run(fake_backend(instances, effects={"cpus": ON_RESTART}), **overrides)
    assert checked.calls == []
    assert planned["changed"] == real["changed"]
    assert planned["actions"] == real["actions"]
    assert planned["diff"] == real["diff"]
    assert planned["restart_required"] == real["restart_required"]
    assert planned.get("warnings") == real.get("warnings")


# -- instance_info --------------------------------------------------------------------------------


def names(instances):
    return sorted(instance["name"] for instance in instances)


def info_backend():
    return fake_backend([
        {"name": "web1", "state": "running", "tags": ["web"]},
        {"name": "web2", "state": "stopped", "tags": ["web", "old"], "type": "container"},
        {"name": "db", "state": "running", "tags": []},
    ])


@pytest.mark.parametrize("filters, expected", [
    ({}, ["db", "web1", "web2"]),
    ({"tags": "web"}, ["web1", "web2"]),
    ({"tags": ["web", "old"]}, ["web2"]),
    ({"state": "running", "name": "web*"}, ["web1"]),
    ({"state": ["running", "stopped"]}, ["db", "web1", "web2"]),
    ({"name": ["web1", "d*"]}, ["db", "web1"]),
    ({"type": "container"}, ["web2"]),
    ({"state": "paused"}, []),
])
def test_info_filters(filters, expected):
    backend = info_backend()
    assert names(list_instances(backend, filters=filters)) == expected
    assert backend.calls == []


def test_info_by_name():
    backend = info_backend()
    assert names(list_instances(backend, name="db")) == ["db"]
    assert backend.reads == [("instances.get", "db", True)]  # addresses wanted: the runtime read
    assert list_instances(backend, name="nope") == []
    assert names(list_instances(backend, name="db", filters={"state": "stopped"})) == []


@pytest.mark.parametrize("filters, message", [
    ({"colour": "blue"}, "filters.colour is not a known filter"),
    ({"state": 5}, "filters.state must be a string or a list of strings, got 5"),
    ({"state": []}, "filters.state must be a string or a list of strings, got []"),
    ({"tags": ["web", 1]}, "filters.tags must be a string or a list of strings"),
])
def test_bad_info_filters_are_refused(filters, message):
    backend = info_backend()
    with pytest.raises(InvalidInput) as caught:
        list_instances(backend, filters=filters)
    assert message in caught.value.message
    assert backend.reads == []
