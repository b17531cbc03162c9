# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Drive the simulator with the official ``cloudcix`` SDK, unchanged, exactly as its docs do.

Run by test_sdk.py as ``python -m tests.simulators.cloudcix.tests.sdk_scenario full|quick`` with
``CLOUDCIX_SETTINGS_MODULE=tests.simulators.cloudcix.sdk_settings`` and ``HTTP_PROXY``/``http_proxy`` set to
the simulator's URL (the SDK reads its settings at import). Prints one JSON report on stdout; a failed
step raises, so the exit code is not 0.
"""
from __future__ import annotations

import copy
import json
import sys
import time

import cloudcix.api
import cloudcix.auth
import cloudcix.exceptions
from cloudcix.api.compute import Compute
from cloudcix.api.membership import Membership

from .conftest import SEEDS

REPORT = {}


def ok(response, status=200):
    if response.status_code != status:
        raise AssertionError('%s %s -> %s %s' % (response.request.method, response.request.url, response.status_code,
                                                 response.text))
    return response.json()['content'] if status != 204 else None


def wait(service, token, pk, states, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        content = ok(service.read(token=token, pk=pk))
        if content['state'] in states:
            return content
        if time.monotonic() > deadline:
            raise AssertionError('%s never reached %s (now %s)' % (pk, states, content['state']))
        time.sleep(0.02)


def quick():
    token = cloudcix.auth.get_admin_token()
    REPORT['base_url'] = Compute.compute_instances.base_url
    REPORT['membership_url'] = Membership.token.base_url
    images = Compute.compute_images.list(token=token, params={'search[os_variant__icontains]': 'ubuntu'})
    REPORT['ubuntu_images'] = sorted(i['sku_name'] for i in ok(images))


def full():
    REPORT['base_url'] = Compute.compute_instances.base_url
    try:
        cloudcix.auth.get_token('admin@example.com', 'wrong', 'polyvirt-sim-key')
    except cloudcix.exceptions.CloudCIXAuthException as exc:
        REPORT['bad_login'] = str(exc)
    token = cloudcix.auth.get_admin_token()
    REPORT['token_parts'] = len(token.split('.'))

    ids = {}
    for kind, body in sorted(SEEDS.items()):
        data = copy.deepcopy(body)
        data['project_id'] = 1
        data['name'] = 'sdk-' + data['name']
        for iface in data['interfaces']:
            iface['ipv4_addresses'][0]['address'] = iface['ipv4_addresses'][0]['address'].replace('10.0.1.', '10.9.1.')
            iface['ipv6_addresses'][0]['address'] = iface['ipv6_addresses'][0]['address'].replace('::', '::9:')
        response = Compute.compute_instances.create(token=token, data=data)
        REPORT.setdefault('create_states', {})[kind] = ok(response, 201)['state']
        ids[kind] = response.json()['content']['id']
    for kind, pk in ids.items():
        REPORT.setdefault('running', {})[kind] = wait(Compute.compute_instances, token, pk, ('running',))['state']

    params = {'limit': 50, 'page': 0, 'search[project_id]': 1, 'order': '-created', 'search[name__startswith]': 'sdk-'}
    listed = Compute.compute_instances.list(token=token, params=params).json()
    REPORT['list_total'] = listed['_metadata']['total_records']
    REPORT['list_names'] = [i['name'] for i in listed['content']]
    REPORT['get_all'] = len(Compute.compute_instances.get_all(token=token, params={'search[name__startswith]': 'sdk-'}))
    REPORT['head'] = Compute.compute_instances.head(token=token).status_code
    REPORT['read_name'] = ok(Compute.compute_instances.read(token=token, pk=ids['lxd_container']))['name']

    pk = ids['lxd_container']
    ok(Compute.compute_instances.partial_update(token=token, pk=pk, data={'state': 'stop'}))
    REPORT['stopped'] = wait(Compute.compute_instances, token, pk, ('stopped',))['state']
    ok(Compute.compute_instances.partial_update(token=token, pk=pk, data={'state': 'restart'}))
    REPORT['restarted'] = wait(Compute.compute_instances, token, pk, ('running',))['state']
    upgrade = {'specs': [{'quantity': 16, 'sku_name': 'RAM_001'}, {'quantity': 8, 'sku_name': 'vCPU_001'},
                         {'quantity': 200, 'sku_name': 'SSD_001'}], 'state': 'update_running'}
    ok(Compute.compute_instances.partial_update(token=token, pk=pk, data=upgrade))
    upgraded = wait(Compute.compute_instances, token, pk, ('running',))
    REPORT['upgraded_specs'] = {s['sku_name']: s['quantity'] for s in upgraded['specs']}
    renamed = ok(Compute.compute_instances.partial_update(token=token, pk=pk,
                                                          data={'name': 'sdk-renamed', 'state': 'update_running'}))
    REPORT['renamed'] = renamed['name']
    wait(Compute.compute_instances, token, pk, ('running',))
    bad = Compute.compute_instances.partial_update(token=token, pk=pk, data={'state': 'restart'})
    REPORT['bad_transition'] = [bad.status_code, bad.json()['errors']['state']['error_code']]

    snap = ok(Compute.compute_snapshots.create(token=token, data={'instance_id': pk, 'name': 'Before Update Snapshot',
                                                                  'project_id': 1, 'type': 'lxd'}), 201)
    wait(Compute.compute_snapshots, token, snap['id'], ('running',))
    snaps = Compute.compute_snapshots.list(token=token, params={'search[instance_id]': pk, 'order': '-created'})
    REPORT['snapshots'] = [s['name'] for s in ok(snaps)]
    ok(Compute.compute_snapshots.partial_update(token=token, pk=snap['id'], data={'state': 'update_running'}))
    REPORT['snapshot_reverted'] = wait(Compute.compute_snapshots, token, snap['id'], ('running',))['state']
    ok(Compute.compute_snapshots.partial_update(token=token, pk=snap['id'], data={'state': 'delete'}))
    REPORT['snapshot_deleted'] = wait(Compute.compute_snapshots, token, snap['id'], ('deleted',))['state']

    backup = ok(Compute.compute_backups.create(token=token, data={'instance_id': pk, 'project_id': 1,
                                                                  'name': 'sdk-backup', 'type': 'lxd'}), 201)
    wait(Compute.compute_backups, token, backup['id'], ('running',))
    REPORT['backup_delete'] = Compute.compute_backups.delete(token=token, pk=backup['id']).status_code
    REPORT['backup_deleted'] = wait(Compute.compute_backups, token, backup['id'], ('deleted',))['state']

    ok(Compute.compute_instances.partial_update(token=token, pk=pk, data={'state': 'delete'}))
    REPORT['queued'] = wait(Compute.compute_instances, token, pk, ('delete_queue', 'deleted'))['state']
    ok(Compute.compute_instances.partial_update(token=token, pk=pk, data={'state': 'restart'}))
    REPORT['restored'] = wait(Compute.compute_instances, token, pk, ('running',))['state']
    for kind, pk in ids.items():
        REPORT.setdefault('delete_status', {})[kind] = Compute.compute_instances.delete(token=token, pk=pk).status_code
        REPORT.setdefault('deleted', {})[kind] = wait(Compute.compute_instances, token, pk, ('deleted',))['state']
    REPORT['project'] = ok(Compute.project.read(token=token, pk=1))['name']
    missing = Compute.compute_instances.read(token=token, pk=999999)
    REPORT['missing'] = [missing.status_code, missing.json()['error_code']]
    REPORT['no_token'] = Compute.compute_instances.list(token=None).status_code
    bad = Compute.compute_instances.create(token=token, data=dict(SEEDS['lxd_container'], name='sdk-bad'))
    REPORT['bad_project'] = [bad.status_code, bad.json()['errors']['project_id']['error_code']]
    bad = Compute.compute_snapshots.create(token=token, data={'instance_id': ids['lxd_vm'], 'project_id': 1})
    REPORT['snapshot_of_deleted'] = [bad.status_code, sorted(bad.json()['errors'])]


def main():
    {'full': full, 'quick': quick}[sys.argv[1]]()
    sys.stdout.write(json.dumps(REPORT, default=str) + '\n')


if __name__ == '__main__':
    main()
