# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The official ``cloudcix`` SDK, unchanged, against the simulator (see sdk_scenario.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import REPO

pytest.importorskip('cloudcix')


def run_scenario(url, mode, version=None):
    env = dict(os.environ, CLOUDCIX_SETTINGS_MODULE='tests.simulators.cloudcix.sdk_settings',
               HTTP_PROXY=url, http_proxy=url, NO_PROXY='', no_proxy='')
    if version is not None:
        env['CLOUDCIX_SIM_API_VERSION'] = version
    done = subprocess.run([sys.executable, '-m', 'tests.simulators.cloudcix.tests.sdk_scenario', mode], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def report(sim):
    return run_scenario(sim.url, 'full')


def test_sdk_login(report):
    assert report['bad_login'].startswith('membership_token_create_002')
    assert report['token_parts'] == 3
    assert report['base_url'] == 'http://compute.api.cloudcix.test/v5.0/compute/instances/'


def test_sdk_creates_the_seed_instances(report):
    assert report['create_states'] == {'hyperv_vm': 'pending', 'lxd_container': 'pending', 'lxd_vm': 'pending'}
    assert report['running'] == {'hyperv_vm': 'running', 'lxd_container': 'running', 'lxd_vm': 'running'}


def test_sdk_list_and_read(report):
    assert report['list_total'] == 3
    assert sorted(report['list_names']) == ['sdk-ubuntu-container', 'sdk-ubuntu-vm', 'sdk-windows-server']
    assert report['get_all'] == 3
    assert report['head'] == 200
    assert report['read_name'] == 'sdk-ubuntu-container'
    assert report['project'] == 'polyvirt-sim'
    assert report['missing'] == [404, 'compute_instance_read_001']
    assert report['no_token'] == 401
    assert report['bad_project'] == [400, 'compute_instance_create_103']  # the seed's project 123 does not exist
    assert report['snapshot_of_deleted'] == [400, ['instance_id']]


def test_sdk_stop_restart_update(report):
    assert (report['stopped'], report['restarted']) == ('stopped', 'running')
    assert report['upgraded_specs'] == {'RAM_001': 16, 'vCPU_001': 8, 'SSD_001': 200, 'UBUNTU2404': 1}
    assert report['renamed'] == 'sdk-renamed'
    assert report['bad_transition'] == [400, 'compute_instance_update_107']


def test_sdk_snapshots_and_backups(report):
    assert report['snapshots'] == ['Before Update Snapshot']
    assert (report['snapshot_reverted'], report['snapshot_deleted']) == ('running', 'deleted')
    assert (report['backup_delete'], report['backup_deleted']) == (204, 'deleted')


def test_sdk_delete_through_grace_period(report):
    assert report['queued'] == 'delete_queue' and report['restored'] == 'running'
    assert set(report['delete_status'].values()) == {204}
    assert set(report['deleted'].values()) == {'deleted'}


def test_sdk_without_version_segment(sim):
    quick = run_scenario(sim.url, 'quick', version='2')
    assert quick['base_url'] == 'http://compute.api.cloudcix.test/compute/instances/'
    assert quick['membership_url'] == 'http://membership.api.cloudcix.test/auth/login/'
    assert quick['ubuntu_images'] == ['UBUNTU2204', 'UBUNTU2404']
