# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulator driven with plain requests: auth, URL forms, instances, the robot, copies, errors."""
from __future__ import annotations

import re

import pytest
import requests

from .conftest import CREDENTIALS, Client, seed

INST = 'compute/instances/'
SNAP = 'compute/snapshots/'
BACK = 'compute/backups/'
VOL = 'storage/volumes/'


def field_error(response, field):
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {'errors'}, body
    error = body['errors'][field]
    assert re.match(r'^[a-z]+_[a-z]+_[a-z]+_\d{3}$', error['error_code']), error
    assert error['detail']
    return error['error_code']


def single_error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {'error_code', 'detail'}, body
    return body['error_code']


# ---------------------------------------------------------------- membership
def test_listening_line(sim):
    assert re.match(r'^listening on http://127\.0\.0\.1:[1-9]\d*/\n$', sim.line)


def test_login_and_errors(sim):
    client = Client(sim.url)
    ok = client.login()
    assert ok.status_code == 201 and set(ok.json()) == {'token'}
    assert len(ok.json()['token'].split('.')) == 3
    no_key = client.session.post(sim.url + 'auth/login/',
                                 json={'email': CREDENTIALS['email'], 'password': CREDENTIALS['password']})
    assert no_key.status_code == 200 and no_key.json() == {}
    missing = client.session.post(sim.url + 'auth/login/', json={'email': CREDENTIALS['email']})
    assert single_error(missing, 400) == 'membership_token_create_001'
    assert single_error(client.login(password='wrong'), 400) == 'membership_token_create_002'
    assert single_error(client.login(email='someone@example.com'), 400) == 'membership_token_create_002'
    assert single_error(client.login(api_key='wrong'), 400) == 'membership_token_create_003'


def test_token_checked_everywhere(sim, api):
    anonymous = Client(sim.url)
    for path in (INST, INST + '1/', SNAP, BACK, 'compute/images/', VOL, 'project/', 'project/1/'):
        response = anonymous.get(path)
        assert response.status_code == 401 and set(response.json()) == {'detail'}, (path, response.text)
    forged = api.token[:-4] + ('AAAA' if not api.token.endswith('AAAA') else 'BBBB')
    assert anonymous.get(INST, headers={'X-Auth-Token': forged}).status_code == 401
    assert anonymous.get(INST, headers={'X-Auth-Token': 'garbage'}).status_code == 401
    assert api.get(INST).status_code == 200


def test_token_refresh(sim, api):
    response = api.put('auth/login/', None)
    assert response.status_code == 200
    fresh = response.json()['token']
    assert fresh != api.token
    assert Client(sim.url, fresh).get('project/1/').status_code == 200
    assert Client(sim.url).put('auth/login/', None).status_code == 401


# ---------------------------------------------------------------- URL forms
def test_url_forms(sim, api):
    token = {'X-Auth-Token': api.token}
    plain = requests.get(sim.url + 'project/1/', headers=token, timeout=10)
    assert plain.status_code == 200
    for path in ('v5.0/project/1/', 'compute/project/1/', 'compute/v5.0/project/1/', 'project/1'):
        response = requests.get(sim.url + path, headers=token, timeout=10)
        assert response.status_code == 200, path
        assert response.json()['content']['name'] == plain.json()['content']['name']
    sub = requests.get(sim.url + 'v5.0/project/1/', headers=dict(token, Host='compute.api.cloudcix.test'), timeout=10)
    assert sub.json()['content']['uri'] == 'http://compute.api.cloudcix.test/v5.0/project/1/'
    login = requests.post(sim.url + 'v5.0/auth/login/', json=CREDENTIALS, headers={'Host': 'membership.api.cloudcix.test'},
                          timeout=10)
    assert login.status_code == 201
    assert requests.post(sim.url + 'membership/v5.0/auth/login/', json=CREDENTIALS, timeout=10).status_code == 201
    # an app addressed by sub-domain serves only its own paths
    wrong = requests.get(sim.url + 'project/1/', headers=dict(token, Host='membership.api.cloudcix.test'), timeout=10)
    assert wrong.status_code == 404
    wrong = requests.post(sim.url + 'auth/login/', json=CREDENTIALS, headers={'Host': 'compute.api.cloudcix.test'},
                          timeout=10)
    assert wrong.status_code == 404
    # as an HTTP proxy (absolute-form request targets), which is how the SDK reaches it
    proxied = requests.get('http://compute.api.cloudcix.test/v5.0/project/1/', headers=token, timeout=10,
                           proxies={'http': sim.url})
    assert proxied.status_code == 200 and proxied.json()['content']['id'] == 1
    assert requests.get(sim.url + 'nothing/here/', headers=token, timeout=10).status_code == 404


def test_sdk_style_null_body_on_get_and_delete(api):
    headers = {'Content-Type': 'application/json'}
    assert api.request('GET', INST, data='null', headers=dict(headers)).status_code == 200
    inst = api.create(INST, seed('lxd_container'))
    api.wait(INST, inst['id'], 'running')
    assert api.request('DELETE', '%s%d/' % (INST, inst['id']), data='null', headers=dict(headers)).status_code == 204
    assert api.request('POST', INST, data='{not json', headers=dict(headers)).status_code == 400


# ---------------------------------------------------------------- instances
@pytest.mark.parametrize('kind', ['lxd_container', 'lxd_vm', 'hyperv_vm'])
def test_create_seed_instances(api, kind):
    body = seed(kind)
    created = api.post(INST, body)
    assert created.status_code == 201, created.text
    content = created.json()['content']
    assert content['state'] == 'pending'
    assert content['name'] == body['name'] and content['type'] == body['type'] and content['project_id'] == 1
    assert content['specs'] == body['specs'] and content['grace_period'] == 72
    assert content['uri'].endswith('/compute/instances/%d/' % content['id'])
    for key in ('created', 'updated', 'metadata', 'interfaces'):
        assert key in content
    running = api.wait(INST, content['id'], ('running', 'unresourced'))
    assert running['state'] == 'running'
    iface = running['interfaces'][0]
    assert iface['gateway'] is True and isinstance(iface['vlan'], int)
    v4 = iface['ipv4_addresses'][0]
    assert v4['address'] == body['interfaces'][0]['ipv4_addresses'][0]['address'] and v4['nat'] is True
    assert re.match(r'^(203\.0\.113|198\.51\.100)\.\d+$', v4['public_ip']), v4
    assert iface['ipv6_addresses'][0]['address'] == body['interfaces'][0]['ipv6_addresses'][0]['address']
    if kind == 'hyperv_vm':
        assert running['metadata']['email'] == 'admin@example.com'
    else:
        # created as container or virtual-machine, read back as container or vm (OpenAPI types, Go SDK)
        assert running['metadata']['instance_type'] == {'virtual-machine': 'vm'}.get(body['metadata']['instance_type'], 'container')
        assert running['metadata']['userdata'] == body['metadata']['userdata']


def test_instance_defaults(api):
    body = seed('lxd_container')
    del body['metadata']['instance_type'], body['grace_period'], body['interfaces']
    body.pop('name')
    body['project_id'] = '1'
    content = api.create(INST, body)
    assert content['name'] == 'LXD' and content['metadata']['instance_type'] == 'container'
    assert content['grace_period'] == 168 and content['interfaces'] == []
    duplicate = api.post(INST, dict(body))
    assert field_error(duplicate, 'name').endswith('_128')
    api.wait(INST, content['id'], 'running')
    renamed = api.patch('%s%d/' % (INST, content['id']), {'name': 'defaults-%d' % content['id']})
    assert renamed.status_code == 200 and renamed.json()['content']['name'].startswith('defaults-')


def test_list_pagination_order_search_exclude(api):
    ids = []
    for i in range(5):
        ids.append(api.create(INST, seed('lxd_container', name='listme-%d' % i))['id'])
    base = {'search[name__istartswith]': 'LISTME-'}
    page0 = api.get(INST, params=dict(base, limit=2, page=0, order='-name')).json()
    assert page0['_metadata'] == {'page': 0, 'limit': 2, 'order': '-name', 'total_records': 5, 'warnings': []}
    assert [c['name'] for c in page0['content']] == ['listme-4', 'listme-3']
    page2 = api.get(INST, params=dict(base, limit=2, page=2, order='-name')).json()
    assert [c['name'] for c in page2['content']] == ['listme-0']
    by_id = api.get(INST, params={'search[id__in]': '%d,%d' % (ids[1], ids[3]), 'order': 'id'}).json()
    assert [c['id'] for c in by_id['content']] == [ids[1], ids[3]]
    sdk_style = api.get(INST, params={'search[id__in]': str([str(ids[0]), str(ids[2])])}).json()
    assert sorted(c['id'] for c in sdk_style['content']) == [ids[0], ids[2]]
    excluded = api.get(INST, params=dict(base, **{'exclude[name]': 'listme-0', 'search[project_id]': 1})).json()
    assert excluded['_metadata']['total_records'] == 4
    ranged = api.get(INST, params={'search[id__range]': '%d,%d' % (ids[0], ids[2]), 'search[id__gte]': ids[1]}).json()
    assert [c['id'] for c in ranged['content']] == [ids[1], ids[2]]
    by_project = api.get(INST, params=dict(base, **{'search[project__name]': 'polyvirt-sim'})).json()
    assert by_project['_metadata']['total_records'] == 5
    warned = api.get(INST, params=dict(base, **{'search[colour]': 'blue', 'order': 'colour'})).json()
    assert warned['_metadata']['total_records'] == 5 and len(warned['_metadata']['warnings']) == 1  # the order falls back silently
    assert warned['_metadata']['order'] == 'name'
    # documented order fields only (name, id, project_id, state): -created falls back to name without a warning
    created = api.get(INST, params=dict(base, order='-created')).json()['_metadata']
    assert created['order'] == 'name' and created['warnings'] == []
    # a lookup the field's type lacks, and a malformed range, are skipped with a SearchFilterWarning
    skipped = api.get(INST, params=dict(base, **{'search[name__gt]': 'a', 'search[id__range]': '1'})).json()
    assert skipped['_metadata']['total_records'] == 5
    assert sorted(skipped['_metadata']['warnings']) == ['SearchFilterWarning: search[id__range] was skipped.',
                                                        'SearchFilterWarning: search[name__gt] was skipped.']
    assert single_error(api.get(INST, params={'search[id]': 'abc'}), 400) == 'compute_instance_list_001'
    for limit in (1000, 0, 'x'):  # validate_limit: out of range or not a number -> 50, without an error
        reset = api.get(INST, params={'limit': limit, 'page': 'y'}).json()['_metadata']
        assert (reset['limit'], reset['page'], reset['warnings']) == (50, 0, [])
    for pk in ids:
        assert api.delete('%s%d/' % (INST, pk)).status_code in (204, 400)


def test_lifecycle_stop_update_restart(api):
    pk = api.create(INST, seed('lxd_vm'))['id']
    path = '%s%d/' % (INST, pk)
    api.wait(INST, pk, 'running')
    # resending the current state is a no-op
    same = api.patch(path, {'state': 'running'})
    assert same.status_code == 200 and same.json()['content']['state'] == 'running'
    # spec change without an update_* state is refused
    specs = [{'quantity': 8, 'sku_name': 'RAM_001'}, {'quantity': 4, 'sku_name': 'vCPU_001'}]
    assert field_error(api.patch(path, {'specs': specs}), 'specs').endswith('_117')
    assert field_error(api.patch(path, {'specs': specs, 'state': 'update_stopped'}), 'state').endswith('_107')
    stopping = api.patch(path, {'state': 'stop'})
    assert stopping.status_code == 200 and stopping.json()['content']['state'] == 'stop'
    assert api.wait(INST, pk, 'stopped')['state'] == 'stopped'
    assert api.patch(path, {'state': 'stopped'}).status_code == 200
    assert field_error(api.patch(path, {'state': 'update_running'}), 'state').endswith('_107')
    updated = api.patch(path, {'state': 'update_stopped', 'specs': specs})
    assert updated.status_code == 200
    stopped = api.wait(INST, pk, 'stopped')
    specs_by_sku = {s['sku_name']: s['quantity'] for s in stopped['specs']}
    assert specs_by_sku == {'RAM_001': 8, 'vCPU_001': 4, 'SSD_001': 50, 'UBUNTU2404': 1}
    assert api.patch(path, {'state': 'restart'}).status_code == 200
    api.wait(INST, pk, 'running')
    grow = api.patch(path, {'name': 'resized', 'state': 'update_running',
                            'specs': [{'quantity': 100, 'sku_name': 'SSD_001'}]})
    assert grow.status_code == 200 and grow.json()['content']['name'] == 'resized'
    running = api.wait(INST, pk, 'running')
    assert {s['sku_name']: s['quantity'] for s in running['specs']}['SSD_001'] == 100
    shrink = api.patch(path, {'state': 'update_running', 'specs': [{'quantity': 10, 'sku_name': 'SSD_001'}]})
    assert field_error(shrink, 'specs').endswith('_124')
    # PUT needs metadata and specs
    assert field_error(api.put(path, {'name': 'x'}), 'metadata')
    full = api.put(path, {'name': 'put-name', 'metadata': running['metadata'], 'specs': running['specs']})
    assert full.status_code == 200 and full.json()['content']['name'] == 'put-name'


def test_bad_transitions(api):
    pk = api.create(INST, seed('lxd_container'))['id']
    path = '%s%d/' % (INST, pk)
    early = api.patch(path, {'state': 'stop'})  # still pending/building: no user transition allowed
    assert field_error(early, 'state').endswith('_107')
    api.wait(INST, pk, 'running')
    assert field_error(api.patch(path, {'state': 'restart'}), 'state').endswith('_107')
    assert field_error(api.patch(path, {'state': 'update_stopped'}), 'state').endswith('_107')
    assert field_error(api.patch(path, {'state': 'building'}), 'state').endswith('_106')
    assert field_error(api.patch(path, {'state': 'bogus'}), 'state').endswith('_106')
    assert field_error(api.patch(path, {'state': 'deleted'}), 'state').endswith('_106')
    assert api.read(INST, pk)['state'] == 'running'
    assert single_error(api.get(INST + '999999/'), 404) == 'compute_instance_read_001'
    assert single_error(api.patch(INST + '999999/', {'state': 'stop'}), 404) == 'compute_instance_update_001'
    assert single_error(api.delete(INST + '999999/'), 404) == 'compute_instance_delete_001'


def test_delete_grace_period_and_restore(api):
    pk = api.create(INST, seed('lxd_container', grace_period=1))['id']  # 1 h = 3.6 s at --time-scale 0.001
    path = '%s%d/' % (INST, pk)
    api.wait(INST, pk, 'running')
    assert api.patch(path, {'state': 'delete'}).json()['content']['state'] == 'delete'
    queued = api.wait(INST, pk, ('delete_queue', 'deleting', 'deleted'))
    assert queued['state'] == 'delete_queue', 'the 1 h grace period must hold the instance in delete_queue'
    assert field_error(api.patch(path, {'state': 'update_running'}), 'state').endswith('_107')
    assert api.patch(path, {'state': 'restart'}).status_code == 200  # restore during the grace period
    assert api.wait(INST, pk, ('running', 'deleted'))['state'] == 'running'
    api.patch(path, {'state': 'delete'})
    assert api.wait(INST, pk, ('delete_queue', 'deleted'))['state'] == 'delete_queue'
    assert api.patch(path, {'state': 'stop'}).status_code == 200  # v5: restore straight to stopped
    assert api.wait(INST, pk, ('stopped', 'deleted'))['state'] == 'stopped'
    api.patch(path, {'state': 'delete'})
    api.wait(INST, pk, 'delete_queue')
    gone = api.wait(INST, pk, 'deleted', timeout=20)
    assert gone['interfaces'][0]['ipv4_addresses'][0]['public_ip'] is None
    assert field_error(api.patch(path, {'state': 'restart'}), 'state').endswith('_107')


def test_delete_verb_is_immediate(api):
    pk = api.create(INST, seed('hyperv_vm', grace_period=72))['id']
    api.wait(INST, pk, 'running')
    response = api.delete('%s%d/' % (INST, pk))
    assert response.status_code == 204 and response.content == b''
    gone = api.wait(INST, pk, 'deleted', timeout=5)  # 72 h grace would be 259 s: DELETE means grace 0
    assert gone['grace_period'] == 0


def test_unresourced(api):
    cases = [
        seed('lxd_container', specs=[{'quantity': 2, 'sku_name': 'RAM_001'}, {'quantity': 1, 'sku_name': 'vCPU_001'},
                                     {'quantity': 20, 'sku_name': 'SSD_001'}, {'quantity': 1, 'sku_name': 'NOSUCHOS'}]),
        seed('hyperv_vm', specs=[{'quantity': 8, 'sku_name': 'RAM_001'}, {'quantity': 4, 'sku_name': 'vCPU_001'},
                                 {'quantity': 100, 'sku_name': 'SSD_001'}, {'quantity': 1, 'sku_name': 'MSServer2022'}]),
        seed('lxd_vm', specs=[{'quantity': 4, 'sku_name': 'RAM_001'}, {'quantity': 2, 'sku_name': 'vCPU_001'},
                              {'quantity': 50, 'sku_name': 'SSD_001'}, {'quantity': 1, 'sku_name': 'MSServer2022'}]),
        seed('lxd_vm', specs=[{'quantity': 512, 'sku_name': 'RAM_001'}, {'quantity': 2, 'sku_name': 'vCPU_001'},
                              {'quantity': 50, 'sku_name': 'SSD_001'}, {'quantity': 1, 'sku_name': 'UBUNTU2404'}]),
    ]
    for body in cases:
        pk = api.create(INST, body)['id']
        done = api.wait(INST, pk, ('running', 'unresourced'))
        assert done['state'] == 'unresourced', body['specs']
        assert field_error(api.patch('%s%d/' % (INST, pk), {'state': 'stop'}), 'state').endswith('_107')


def test_bad_input(api):
    good = seed('lxd_container')
    cases = [
        ({'project_id': None}, 'project_id', '_101'),
        ({'project_id': 'abc'}, 'project_id', '_102'),
        ({'project_id': 123}, 'project_id', '_103'),
        ({'type': 'kvm'}, 'type', None),
        ({'metadata': 'x'}, 'metadata', None),
        ({'specs': 'RAM_001'}, 'specs', None),
        ({'specs': [{'sku_name': 'RAM_001', 'quantity': 0}]}, 'specs', None),
        ({'name': 'x' * 129}, 'name', '_127'),
        ({'grace_period': -1}, 'grace_period', None),
        ({'interfaces': [{'ipv4_addresses': [{'address': '8.8.8.8', 'nat': True}]}]}, 'interfaces', '_139'),
        ({'interfaces': [{'ipv4_addresses': [{'address': '10.0.0.300'}]}]}, 'interfaces', '_138'),
        ({'interfaces': [{'gateway': True}, {'gateway': True}]}, 'interfaces', None),
        ({'metadata': {'instance_type': 'pod'}}, 'metadata', None),
    ]
    for change, field, suffix in cases:
        body = dict(good, **change)
        if change.get('project_id', 0) is None:
            del body['project_id']
        code = field_error(api.post(INST, body), field)
        assert code.startswith('compute_instance_create_'), code
        if suffix:
            assert code.endswith(suffix), (change, code)
    no_email = seed('hyperv_vm')
    del no_email['metadata']['email']
    assert field_error(api.post(INST, no_email), 'metadata')
    small_windows = seed('hyperv_vm')
    small_windows['specs'][2]['quantity'] = 20
    assert field_error(api.post(INST, small_windows), 'specs').endswith('_116')
    for missing in ('metadata', 'specs'):
        body = dict(good)
        del body[missing]
        assert field_error(api.post(INST, body), missing)
    first = api.create(INST, good)
    again = seed('lxd_container')
    again['interfaces'] = good['interfaces']
    assert field_error(api.post(INST, again), 'interfaces').endswith('_141')
    assert api.post(INST, ['not', 'a', 'dict']).status_code == 400
    assert api.post('compute/images/', {}).status_code == 405
    assert api.delete('project/1/').status_code == 405
    api.wait(INST, first['id'], 'running')


# ---------------------------------------------------------------- snapshots, backups
def test_snapshots_need_running_and_revert(api):
    pk = api.create(INST, seed('lxd_vm'))['id']
    path = '%s%d/' % (INST, pk)
    refused = api.post(SNAP, {'instance_id': pk, 'project_id': 1, 'name': 'too-early', 'type': 'lxd'})
    assert field_error(refused, 'instance_id')
    api.wait(INST, pk, 'running')
    assert field_error(api.post(SNAP, {'instance_id': pk, 'project_id': 1, 'type': 'hyperv'}), 'type')
    assert field_error(api.post(SNAP, {'instance_id': 999999, 'project_id': 1, 'type': 'lxd'}), 'instance_id')
    snap = api.create(SNAP, {'instance_id': pk, 'project_id': 1, 'name': 'before', 'type': 'lxd'})
    assert snap['state'] == 'pending' and snap['instance']['id'] == pk and snap['specs'] == api.read(INST, pk)['specs']
    assert field_error(api.post(SNAP, {'instance_id': pk, 'project_id': 1, 'name': 'before', 'type': 'lxd'}), 'name')
    snap = api.wait(SNAP, snap['id'], 'running')
    assert snap['instance'] == {'id': pk, 'name': api.read(INST, pk)['name'], 'state': 'running'}
    listed = api.get(SNAP, params={'search[instance_id]': pk, 'search[project_id]': 1}).json()
    assert [s['id'] for s in listed['content']] == [snap['id']]
    # change the instance, then revert it to the snapshot
    api.patch(path, {'state': 'update_running', 'specs': [{'quantity': 16, 'sku_name': 'RAM_001'}]})
    changed = api.wait(INST, pk, 'running')
    assert {s['sku_name']: s['quantity'] for s in changed['specs']}['RAM_001'] == 16
    assert field_error(api.patch('%s%d/' % (SNAP, snap['id']), {'state': 'restart'}), 'state').endswith('_107')
    revert = api.patch('%s%d/' % (SNAP, snap['id']), {'state': 'update_running'})
    assert revert.status_code == 200 and revert.json()['content']['state'] == 'update_running'
    api.wait(SNAP, snap['id'], 'running')
    assert {s['sku_name']: s['quantity'] for s in api.read(INST, pk)['specs']}['RAM_001'] == 4
    assert api.patch('%s%d/' % (SNAP, snap['id']), {'state': 'delete'}).status_code == 200
    assert api.wait(SNAP, snap['id'], 'deleted')['state'] == 'deleted'


def test_hyperv_snapshot_active_flag_and_instance_delete(api):
    pk = api.create(INST, seed('hyperv_vm'))['id']
    api.wait(INST, pk, 'running')
    first = api.create(SNAP, {'instance_id': pk, 'project_id': 1, 'name': 'one', 'type': 'hyperv'})
    assert first['metadata'] == {'active': True, 'remove_subtree': False}
    api.wait(SNAP, first['id'], 'running')
    second = api.create(SNAP, {'instance_id': pk, 'project_id': 1, 'name': 'two', 'type': 'hyperv'})
    api.wait(SNAP, second['id'], 'running')
    assert api.read(SNAP, first['id'])['metadata']['active'] is False
    api.patch('%s%d/' % (SNAP, first['id']), {'state': 'update_running'})
    api.wait(SNAP, first['id'], 'running')
    assert api.read(SNAP, first['id'])['metadata']['active'] is True
    assert api.read(SNAP, second['id'])['metadata']['active'] is False
    assert api.delete('%s%d/' % (INST, pk)).status_code == 204
    api.wait(INST, pk, 'deleted')
    assert api.read(SNAP, second['id'])['state'] == 'deleted'


def test_backups(api):
    pk = api.create(INST, seed('lxd_container'))['id']
    api.wait(INST, pk, 'running')
    backup = api.create(BACK, {'instance_id': pk, 'project_id': 1, 'name': 'nightly', 'type': 'lxd'})
    assert backup['state'] == 'pending' and backup['instance']['id'] == pk
    api.wait(BACK, backup['id'], 'running')
    path = '%s%d/' % (BACK, backup['id'])
    assert field_error(api.patch(path, {'state': 'update_running'}), 'state').endswith('_107')
    renamed = api.patch(path, {'name': 'weekly'})
    assert renamed.status_code == 200 and renamed.json()['content']['name'] == 'weekly'
    api.patch('%s%d/' % (INST, pk), {'state': 'stop'})
    api.wait(INST, pk, 'stopped')
    assert field_error(api.post(BACK, {'instance_id': pk, 'project_id': 1, 'type': 'lxd'}), 'instance_id')
    assert api.delete(path).status_code == 204
    assert api.wait(BACK, backup['id'], 'deleted')['state'] == 'deleted'
    assert api.delete(path).status_code == 204  # deleting a deleted backup again is harmless
    assert single_error(api.get(BACK + '999999/'), 404) == 'compute_backup_read_001'


# ---------------------------------------------------------------- images, projects, volumes
def test_images(api):
    images = api.get('compute/images/').json()
    skus = {i['sku_name'] for i in images['content']}
    assert {'UBUNTU2404', 'MSServer2022'} <= skus
    assert set(images['content'][0]) >= {'id', 'filename', 'os_variant', 'sku_name'}
    windows = api.get('compute/images/', params={'search[os_variant__icontains]': 'windows'}).json()['content']
    assert windows and all('Windows' in i['os_variant'] for i in windows)
    one = api.read('compute/images/', images['content'][0]['id'])
    assert one['sku_name'] == images['content'][0]['sku_name']
    assert single_error(api.get('compute/images/9999/'), 404) == 'compute_image_read_001'


def test_projects(api):
    first = api.read('project/', 1)
    assert set(first) >= {'id', 'address_id', 'closed', 'created', 'manager_id', 'name', 'note', 'region_id',
                          'reseller_id', 'updated', 'uri'}
    created = api.create('project/', {'name': 'second-project', 'region_id': 1, 'note': 'made by a test'})
    assert created['region_id'] == 1 and created['closed'] is False
    assert field_error(api.post('project/', {'name': 'second-project', 'region_id': 1}), 'name')
    assert field_error(api.post('project/', {'name': 'third', 'region_id': 77}), 'region_id')
    assert field_error(api.post('project/', {'region_id': 1}), 'name')
    path = 'project/%d/' % created['id']
    assert api.patch(path, {'note': 'changed'}).json()['content']['note'] == 'changed'
    assert field_error(api.patch(path, {'region_id': 2}), 'region_id')
    assert api.put(path, {'name': 'renamed-project'}).json()['content']['name'] == 'renamed-project'
    names = [p['name'] for p in api.get('project/', params={'order': 'id'}).json()['content']]
    assert names[0] == 'polyvirt-sim' and 'renamed-project' in names
    # instances in the new project use its id
    inst = api.create(INST, seed('lxd_container', project_id=created['id']))
    assert inst['project_id'] == created['id']
    found = api.get(INST, params={'search[project__name]': 'renamed-project'}).json()['content']
    assert [i['id'] for i in found] == [inst['id']]


def test_volumes(api):
    lxd = api.create(INST, seed('lxd_container'))['id']
    win = api.create(INST, seed('hyperv_vm'))['id']
    ceph = api.create(VOL, {'project_id': 1, 'name': 'shared', 'type': 'cephfs',
                            'specs': [{'quantity': 500, 'sku_name': 'CEPH_001'}]})
    assert ceph['state'] == 'pending'
    api.wait(VOL, ceph['id'], 'running')
    path = '%s%d/' % (VOL, ceph['id'])
    mount = api.patch(path, {'metadata': {'attach_instance_ids': [lxd], 'mount_path': '/mnt/shared'},
                             'state': 'update_running'})
    assert mount.status_code == 200, mount.text
    mounted = api.wait(VOL, ceph['id'], 'running')
    assert mounted['metadata'] == {'mount_path': '/mnt/shared', 'attached_instance_ids': [lxd]}
    assert [ref['id'] for ref in mounted['contra_instances']] == [lxd] and mounted['instance'] is None
    assert field_error(api.patch(path, {'metadata': {'attach_instance_ids': [win]}, 'state': 'update_running'}),
                       'metadata')
    api.patch(path, {'specs': [{'quantity': 1000, 'sku_name': 'CEPH_001'}], 'state': 'update_running'})
    assert api.wait(VOL, ceph['id'], 'running')['specs'] == [{'quantity': 1000, 'sku_name': 'CEPH_001'}]
    assert field_error(api.patch(path, {'specs': [{'quantity': 10, 'sku_name': 'CEPH_001'}],
                                        'state': 'update_running'}), 'specs')
    ssd = [{'quantity': 250, 'sku_name': 'SSD_001'}]
    assert field_error(api.post(VOL, {'project_id': 1, 'type': 'hyperv', 'specs': ssd}), 'instance_id')
    assert field_error(api.post(VOL, {'project_id': 1, 'type': 'cephfs', 'specs': ssd}), 'specs')
    disk = api.create(VOL, {'project_id': 1, 'instance_id': win, 'name': 'extra', 'type': 'hyperv',
                            'specs': [{'quantity': 250, 'sku_name': 'SSD_001'}]})
    assert disk['instance_id'] == win and disk['instance']['id'] == win and disk['contra_instances'][0]['id'] == win
    api.wait(VOL, disk['id'], 'running')
    assert api.patch(path, {'state': 'delete'}).status_code == 200
    assert api.wait(VOL, ceph['id'], 'deleted')['state'] == 'deleted'
    assert [v['id'] for v in api.get(VOL, params={'search[type]': 'hyperv', 'search[instance_id]': win}).json()[
        'content']] == [disk['id']]


def test_validation_reports_every_invalid_field(api):
    body = seed('lxd_container', grace_period=-1)
    body['name'] = ''
    del body['specs']
    errors = api.post(INST, body).json()['errors']
    assert sorted(errors) == ['grace_period', 'name', 'specs']
    assert errors['specs']['error_code'] == 'compute_instance_create_112'


def test_default_names_of_backups_and_volumes(api):
    # Terraform's defaults (the read shapes it relies on): "Backup LXD" / "Backup HyperV", "Ceph" / "Storage HyperV"
    inst = api.create(INST, seed('lxd_container'))['id']
    api.wait(INST, inst, 'running')
    assert api.create('compute/backups/', {'project_id': 1, 'instance_id': inst, 'type': 'lxd'})['name'] == 'Backup LXD'
    assert api.create(VOL, {'project_id': 1, 'type': 'cephfs', 'specs': [{'quantity': 5, 'sku_name': 'CEPH_001'}]})['name'] == 'Ceph'


def test_interfaces_update(api):
    body = seed('lxd_container')
    pk = api.create(INST, body)['id']
    path = '%s%d/' % (INST, pk)
    before = api.wait(INST, pk, 'running')['interfaces'][0]['ipv4_addresses'][0]
    interfaces = [dict(body['interfaces'][0])]
    extra = '10.0.200.%d' % (pk % 200 + 2)
    interfaces[0]['ipv4_addresses'] = interfaces[0]['ipv4_addresses'] + [{'address': extra, 'nat': True}]
    assert field_error(api.patch(path, {'interfaces': interfaces}), 'interfaces').endswith('_117')
    same = api.patch(path, {'interfaces': body['interfaces']})  # unchanged interfaces need no state
    assert same.status_code == 200
    assert api.patch(path, {'interfaces': interfaces, 'state': 'update_running'}).status_code == 200
    after = api.wait(INST, pk, 'running')['interfaces'][0]['ipv4_addresses']
    assert [a['address'] for a in after] == [before['address'], extra]
    assert after[0]['id'] == before['id'] and after[0]['public_ip'] == before['public_ip']
    assert after[1]['public_ip'] and after[1]['public_ip'] != before['public_ip']


def test_openapi_names(api):
    pk = api.create(INST, seed('lxd_container'))['id']
    api.wait(INST, pk, 'running')
    snap = api.create(SNAP, {'instance_id': pk, 'project_id': 1})
    assert snap['name'] == 'Compute Snapshot' and snap['type'] == 'lxd'
    found = api.get(SNAP, params={'search[resource_links__contra_resource_id]': pk}).json()
    assert [s['id'] for s in found['content']] == [snap['id']]
    assert (found['count'], found['page'], found['total']) == (50, 0, 1)
    assert field_error(api.put('%s%d/' % (SNAP, snap['id']), {'name': 'x'}), 'state')
