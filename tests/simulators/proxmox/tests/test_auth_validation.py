# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Authentication, envelope and schema validation, as PVE answers them."""
from __future__ import annotations

import re

import pytest
import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException

from .conftest import PASSWORD, TOKEN_VALUE, USER


def login(sim, **data):
    return requests.post(sim.url + '/access/ticket', data=data, verify=sim.cafile, timeout=10)


def test_ticket_shape_and_headers(sim):
    resp = login(sim, username=USER, password=PASSWORD)
    assert resp.status_code == 200
    assert resp.headers['Server'] == 'pve-api-daemon/3.0'
    assert resp.headers['Content-Type'] == 'application/json;charset=UTF-8'
    data = resp.json()['data']
    assert data['username'] == USER
    assert re.match(r'^PVE:root@pam:[0-9A-F]{8}::\S+$', data['ticket'])
    assert re.match(r'^[0-9A-F]{8}:\S{43}$', data['CSRFPreventionToken'])
    assert data['cap']['vms']['VM.Allocate'] == 1


def test_ticket_renewal_with_ticket_as_password(sim):
    first = login(sim, username=USER, password=PASSWORD).json()['data']['ticket']
    resp = login(sim, username=USER, password=first)
    assert resp.status_code == 200
    assert resp.json()['data']['ticket'].startswith('PVE:root@pam:')
    assert login(sim, username=USER, password=first + 'x').status_code == 401


def test_bad_password_is_401_with_pve_reason(sim):
    resp = login(sim, username=USER, password='wrong')
    assert resp.status_code == 401
    assert resp.reason == 'authentication failure'
    assert resp.json() == {'data': None, 'message': 'authentication failure\n'}
    with pytest.raises(AuthenticationError):
        sim.api(user=USER, password='wrong')


def test_missing_ticket_and_csrf(sim):
    resp = requests.get(sim.url + '/nodes', verify=sim.cafile, timeout=10)
    assert (resp.status_code, resp.reason) == (401, 'No ticket')
    data = login(sim, username=USER, password=PASSWORD).json()['data']
    cookies = {'PVEAuthCookie': data['ticket']}
    assert requests.get(sim.url + '/nodes', cookies=cookies, verify=sim.cafile, timeout=10).status_code == 200
    resp = requests.post(sim.url + '/nodes/pve/qemu/9000/status/start', cookies=cookies, verify=sim.cafile, timeout=10)
    assert (resp.status_code, resp.reason) == (401, 'Permission denied - invalid csrf token')
    resp = requests.get(sim.url + '/nodes', cookies={'PVEAuthCookie': data['ticket'][:-4] + 'AAAA'}, verify=sim.cafile, timeout=10)
    assert (resp.status_code, resp.reason) == (401, 'Authentication failed!')


def test_token_auth(sim, pve_token):
    assert pve_token.version.get()['release'] == '9.1'
    bad = ProxmoxAPI(sim.host, port=sim.port, user=USER, token_name='polyvirt', token_value=TOKEN_VALUE[:-1] + '2', verify_ssl=sim.cafile)
    with pytest.raises(ResourceException) as err:
        bad.nodes.get()
    assert err.value.status_code == 401


def test_token_refused_where_pve_needs_a_ticket(raw):
    resp = raw.put(raw.base + '/access/password', data={'userid': 'root@pam', 'password': 'x' * 8})
    assert resp.status_code == 403
    assert resp.reason == "Permission check failed (URI '/access/password' not available with API token, need proper ticket."


@pytest.mark.filterwarnings('ignore:Unverified HTTPS request')
def test_generated_ca_verifies_and_unverified_works(sim):
    assert requests.get(sim.url + '/access/domains', verify=sim.cafile, timeout=10).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(sim.url + '/access/domains', timeout=10)
    api = ProxmoxAPI(sim.host, port=sim.port, user=USER, password=PASSWORD, verify_ssl=False)
    assert api.cluster.nextid.get()


def test_unknown_path_is_501(raw):
    resp = raw.get(raw.base + '/nodes/pve/foo')
    assert resp.status_code == 501
    assert resp.reason == "Method 'GET /nodes/pve/foo' not implemented"
    resp = raw.delete(raw.base + '/version')
    assert resp.status_code == 501


def test_parameter_verification_shapes(pve):
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu.post(vmid=50, cores='x', foo='1', onboot='True', agent='enabled=maybe', ostype='dos',
                                   sshkeys='ssh-rsa AAAA user@host', memory='8')
    exc = err.value
    assert exc.status_code == 400
    assert exc.content == 'Parameter verification failed.'
    assert exc.errors == {
        'vmid': 'invalid format - value does not look like a valid VM ID\n',
        'cores': "type check ('integer') failed - got 'x'",
        'foo': 'property is not defined in schema and the schema does not allow additional properties',
        'onboot': "type check ('boolean') failed - got 'True'",
        'agent': "invalid format - format error\nagent.enabled: type check ('boolean') failed - got 'maybe'\n",
        'ostype': "value 'dos' does not have a value in the enumeration 'other, wxp, w2k, w2k3, w2k8, wvista, win7, win8, win10, win11, l24, l26, solaris'",
        'sshkeys': 'invalid format - invalid urlencoded string: ssh-rsa AAAA user@host\n',
        'memory': 'invalid format - format error\nmemory.current: value must have a minimum value of 16\n',
    }


def test_missing_and_required_by(raw):
    resp = raw.post(raw.base + '/nodes/pve/qemu', data={'cores': '1'})
    assert resp.status_code == 400
    assert resp.json()['errors'] == {'vmid': 'property is missing and it is not optional'}
    resp = requests.post(raw.base + '/access/ticket', data={'username': USER, 'password': PASSWORD, 'path': '/vms'}, verify=raw.verify, timeout=10)
    assert resp.json()['errors'] == {'privs': "missing property required by 'path'"}


def test_property_string_key_errors(pve):
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(9000).config.put(net1='virtio,bridge=vmbr0,colour=red', scsi1='local-lvm:1,cache=fast')
    assert err.value.errors['net1'] == 'invalid format - invalid key in comma-separated list property: colour\n'
    assert err.value.errors['scsi1'].startswith("invalid format - format error\nscsi1.cache: value 'fast' does not have a value in the enumeration")


def test_json_bodies_accept_json_booleans(raw):
    resp = raw.post(raw.base + '/nodes/pve/qemu', json={'vmid': 'abc', 'onboot': True})
    assert resp.json()['errors'] == {'vmid': "type check ('integer') failed - got 'abc'"}


def test_nextid_is_a_string_and_checks_vmid(pve, raw):
    nextid = pve.cluster.nextid.get()
    assert isinstance(nextid, str) and int(nextid) >= 100
    resp = raw.get(raw.base + '/cluster/nextid', params={'vmid': 9000})
    assert resp.status_code == 400
    assert resp.json()['errors'] == {'vmid': 'VM 9000 already exists'}


def test_missing_guest_wrong_node_unknown_node(pve):
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve').qemu(999).config.get()
    assert (err.value.status_code, err.value.content) == (500, "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist")
    with pytest.raises(ResourceException) as err:
        pve.nodes('pve2').qemu(9000).config.get()
    assert err.value.content == "Configuration file 'nodes/pve2/qemu-server/9000.conf' does not exist"
    with pytest.raises(ResourceException) as err:
        pve.nodes('nope').qemu.get()
    assert err.value.content == "no such cluster node 'nope'"


def test_cluster_resources_and_storage(pve):
    res = pve.cluster.resources.get(type='vm')
    seed = [r for r in res if r['vmid'] == 9000][0]
    assert seed['id'] == 'qemu/9000' and seed['template'] == 1 and seed['node'] == 'pve'
    kinds = {r['type'] for r in pve.cluster.resources.get()}
    assert kinds == {'node', 'qemu', 'storage'}
    content = pve.nodes('pve').storage('local').content.get(content='vztmpl')
    assert [c['volid'] for c in content] == ['local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst']
    stores = {s['storage']: s for s in pve.nodes('pve').storage.get()}
    assert set(stores) == {'local', 'local-lvm', 'nfs1'} and stores['local-lvm']['type'] == 'lvmthin' and stores['nfs1']['shared'] == 1
