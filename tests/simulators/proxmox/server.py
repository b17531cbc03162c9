# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTPS front end: PVE's envelope, authentication (tickets, CSRF, API tokens), routing and faults."""
from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import hmac
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

from .._journal import Journal, JournalingHandler
from . import api
from .model import Fault
from .pvefmt import PveError

USER = 'root@pam'
PASSWORD = 'polyvirt-sim'
TOKEN_ID = 'root@pam!polyvirt'
TOKEN_SECRET = '5e5e5e5e-0000-4000-8000-000000000001'
TICKET_LIFETIME = 7200
MAX_BODY = 512 * 1024
MAX_UPLOAD = 256 * 1024 * 1024
UPLOAD_KEY = '\0upload'  # where a multipart file part travels in params, outside the schema's view
UNAUTHENTICATED = {('GET', '/access/domains'), ('GET', '/access/ticket'), ('POST', '/access/ticket')}


class Auth:
    """PVE-shaped tickets and CSRF tokens, signed with a per-process HMAC key."""

    def __init__(self):
        self.key = os.urandom(32)

    def _sig(self, text):
        return base64.b64encode(hmac.new(self.key, text.encode(), hashlib.sha256).digest()).decode()

    def ticket(self, userid, now=None):
        plain = 'PVE:%s:%08X' % (userid, int(now or time.time()))
        return '%s::%s' % (plain, self._sig(plain))

    def csrf(self, userid, now=None):
        stamp = '%08X' % int(now or time.time())
        return '%s:%s' % (stamp, self._sig('%s:%s' % (stamp, userid)).rstrip('='))

    def verify_ticket(self, ticket):
        m = re.match(r'^(PVE:([^:\s]+):([0-9A-F]{8}))::(.+)$', ticket or '')
        if not m or not hmac.compare_digest(self._sig(m.group(1)), m.group(4)):
            return None
        age = time.time() - int(m.group(3), 16)
        if age < -300 or age > TICKET_LIFETIME:
            return None
        return m.group(2)

    def verify_csrf(self, token, userid):
        m = re.match(r'^([0-9A-F]{8}):(\S+)$', token or '')
        if not m or not hmac.compare_digest(self._sig('%s:%s' % (m.group(1), userid)).rstrip('='), m.group(2)):
            return False
        age = time.time() - int(m.group(1), 16)
        return -300 <= age <= TICKET_LIFETIME


class Handler(JournalingHandler, http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'pve-api-daemon/3.0'
    sys_version = ''

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        self.dispatch('GET')

    def do_POST(self):
        self.dispatch('POST')

    def do_PUT(self):
        self.dispatch('PUT')

    def do_DELETE(self):
        self.dispatch('DELETE')

    # --- response ------------------------------------------------------------------------------------------------
    def reply(self, code, payload, reason=None, body_override=None):
        if body_override is not None:
            body = body_override
        else:
            body = json.dumps(payload, separators=(',', ':')).encode()
        headers = {'Content-Type': 'application/json;charset=UTF-8', 'Cache-Control': 'max-age=0', 'Pragma': 'no-cache',
                   'Expires': self.date_time_string(time.time())}
        if len(body) > 1024 and 'gzip' in (self.headers.get('Accept-Encoding') or ''):
            body = gzip.compress(body)
            headers['Content-Encoding'] = 'gzip'
        self.send_response(code, reason)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header('Content-Length', str(len(body)))
        if code >= 400:
            self.send_header('Connection', 'close')
            self.close_connection = True
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def error(self, exc):
        msg = exc.msg if exc.msg.endswith('\n') else exc.msg + '\n'
        # a CR in the first line makes PVE fall back to the standard phrase; the status line is latin-1
        first = msg.split('\n')[0]
        reason = None if '\r' in first else first.encode('latin-1', 'replace').decode('latin-1')
        if exc.bare:
            self.reply(exc.code, None, reason, body_override=b'')
            return
        payload = {'data': None, 'message': msg}
        if exc.errors:
            payload['errors'] = exc.errors
        self.reply(exc.code, payload, reason)

    # --- request -------------------------------------------------------------------------------------------------
    def read_params(self):
        url = urllib.parse.urlsplit(self.path)
        params = {}
        length = int(self.headers.get('Content-Length') or 0)
        ctype = (self.headers.get('Content-Type') or '').split(';')[0].strip().lower()
        # PVE streams multipart uploads to a temporary file; only urlencoded and JSON bodies have the 512 KiB limit.
        if length > (MAX_UPLOAD if ctype == 'multipart/form-data' else MAX_BODY):
            raise PveError('for data too large', 501)
        raw = self.rfile.read(length) if length else b''
        if raw and ctype == 'multipart/form-data':
            params.update(parse_multipart(self.headers.get('Content-Type'), raw))
        elif raw and ctype == 'application/json':
            try:
                data = json.loads(raw)
            except ValueError:
                raise PveError('malformed JSON body', 400) from None
            if not isinstance(data, dict):
                raise PveError('malformed JSON body', 400)
            for key, value in data.items():
                if isinstance(value, bool):
                    params[key] = '1' if value else '0'
                elif isinstance(value, (int, float)):
                    params[key] = str(value)
                elif value is None:
                    continue
                else:
                    params[key] = value
        elif raw:
            for key, value in urllib.parse.parse_qsl(raw.decode('utf-8', 'replace'), keep_blank_values=True):
                self._add(params, key, value)
        query = {}
        for key, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
            self._add(query, key, value)
        params.update(query)
        params.pop('_dc', None)
        return urllib.parse.unquote(url.path), params

    @staticmethod
    def _add(params, key, value):
        if key in params:
            if not isinstance(params[key], list):
                params[key] = [params[key]]
            params[key].append(value)
        else:
            params[key] = value

    def authenticate(self, method):
        """Return the auth id (user or user!token) or raise the 401 PVE sends."""
        srv = self.server
        authz = self.headers.get('Authorization') or ''
        m = re.search(r'(?:^|\s)PVEAPIToken(?:=| )([^;]*)', authz)
        if m:
            token = urllib.parse.unquote(m.group(1).strip())
            tokenid, dummy, secret = token.rpartition('=')
            if re.match(r'^[^\s!]+@[^\s!]+![A-Za-z][A-Za-z0-9.\-_]+$', tokenid) and tokenid == TOKEN_ID and hmac.compare_digest(secret, TOKEN_SECRET):
                return tokenid
            self.delay()
            raise PveError('Authentication failed!', 401, bare=True)
        ticket = None
        for part in (self.headers.get('Cookie') or '').split(';'):
            name, dummy, value = part.strip().partition('=')
            if name == 'PVEAuthCookie':
                ticket = urllib.parse.unquote(value)
        if ticket is None:
            m = re.search(r'PVEAuthCookie=([^;\s]+)', authz)
            if m:
                ticket = urllib.parse.unquote(m.group(1))
        if ticket is None:
            self.delay()
            raise PveError('No ticket', 401, bare=True)
        userid = srv.auth.verify_ticket(ticket)
        if not userid:
            self.delay()
            raise PveError('Authentication failed!', 401, bare=True)
        if method != 'GET' and not srv.auth.verify_csrf(self.headers.get('CSRFPreventionToken'), userid):
            self.delay()
            raise PveError('Permission denied - invalid csrf token', 401, bare=True)
        return userid

    def delay(self):
        if self.server.auth_delay:
            time.sleep(self.server.auth_delay)

    def login(self, params):
        srv = self.server
        username = params.get('username', '')
        if params.get('realm') and '@' not in username:
            username = '%s@%s' % (username, params['realm'])
        password = params.get('password', '')
        ok = username == USER and (password == PASSWORD or srv.auth.verify_ticket(password) == USER)
        if not ok:
            self.delay()
            raise PveError('authentication failure', 401)
        return {'username': USER, 'ticket': srv.auth.ticket(USER), 'CSRFPreventionToken': srv.auth.csrf(USER),
                'clustername': 'polyvirt-sim',
                'cap': {'vms': {p: 1 for p in ('VM.Allocate', 'VM.Audit', 'VM.Backup', 'VM.Clone', 'VM.Config.CDROM', 'VM.Config.CPU',
                                               'VM.Config.Cloudinit', 'VM.Config.Disk', 'VM.Config.HWType', 'VM.Config.Memory',
                                               'VM.Config.Network', 'VM.Config.Options', 'VM.Console', 'VM.Migrate', 'VM.PowerMgmt',
                                               'VM.Snapshot', 'VM.Snapshot.Rollback')},
                        'storage': {p: 1 for p in ('Datastore.Allocate', 'Datastore.AllocateSpace', 'Datastore.AllocateTemplate', 'Datastore.Audit')},
                        'nodes': {p: 1 for p in ('Sys.Audit', 'Sys.Modify', 'Sys.PowerMgmt')},
                        'access': {p: 1 for p in ('User.Modify', 'Permissions.Modify')},
                        'dc': {p: 1 for p in ('Sys.Audit', 'Sys.Modify')}, 'sdn': {'SDN.Audit': 1}, 'mapping': {'Mapping.Audit': 1}}}

    def dispatch(self, method):
        try:
            path, params = self.read_params()
            if self.answer_journal():
                return
            if path.startswith('/_sim/'):
                self.authenticate(method)
                self.reply(200, {'data': self.control(method, path, params)})
                return
            if self.server.latency:
                time.sleep(self.server.latency)  # --latency: a network and pveproxy's cost per API answer
            m = re.match(r'^/api2/json(/.*)?$', path)
            if not m:
                raise PveError("Method '%s %s' not implemented" % (method, path), 501)
            rel = (m.group(1) or '/').rstrip('/') or '/'
            data = self.handle_api(method, rel, params)
            self.reply(200, {'data': data})
        except PveError as exc:
            self.error(exc)
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:  # pylint: disable=broad-except
            self.error(PveError('internal simulator error: %r' % exc, 500))

    def handle_api(self, method, rel, params):
        srv = self.server
        schema = srv.schema
        template, pathvars = schema.match(rel)
        info = schema.method(template, method) if template else None
        if (method, template) in UNAUTHENTICATED and template == '/access/ticket' and method == 'POST':
            errors = schema.validate(info, params)
            if errors:
                raise PveError('Parameter verification failed.', 400, errors)
            return self.login(params)
        if (method, template) not in UNAUTHENTICATED:
            authid = self.authenticate(method)
        else:
            authid = None
        if not info:
            raise PveError("Method '%s %s' not implemented" % (method, rel), 501)
        if authid and '!' in authid and not info.get('allowtoken', 1):
            raise PveError("Permission check failed (URI '%s' not available with API token, need proper ticket.\n)" % rel, 403)
        for key, value in pathvars.items():
            if key in params and params[key] != value:
                raise PveError('Parameter verification failed.', 400, {key: 'duplicate parameter (already defined in URI) with conflicting values!'})
            params[key] = value
        upload = params.pop(UPLOAD_KEY, None)
        errors = schema.validate(info, params)
        if errors:
            raise PveError('Parameter verification failed.', 400, errors)
        if upload is not None:
            params[UPLOAD_KEY] = upload
        cluster = srv.cluster
        fault = cluster.fault('http-500', '*')
        if fault is None:
            with cluster.lock:
                for f in cluster.faults:
                    if f.kind == 'http-500' and f.target != '*' and f.target in rel and f.matches('http-500', f.target):
                        f.consume()
                        fault = f
                        break
        if fault:
            raise PveError(fault.arg or 'simulated server error (fault http-500)', 500)
        node = pathvars.get('node')
        if node is not None:
            if node not in cluster.nodes and node != 'localhost':
                raise PveError("no such cluster node '%s'" % node, 500)
            if node == 'localhost':
                params['node'] = node = next(iter(cluster.nodes))
            if cluster.node_offline(node):
                raise PveError('Errors during connection establishment, proxy handshake: Connection refused', 595)
        handler = api.ROUTES.get((method, template))
        if not handler:
            raise PveError("Method '%s %s' not implemented" % (method, rel), 501)
        ctx = api.Ctx(cluster, schema, authid, template)
        with cluster.lock:
            result = handler(ctx, params)
            if method != 'GET':
                cluster.save()
        return result

    def control(self, method, path, params):
        """Out-of-API test hooks: /_sim/faults (GET list, POST spec=..., DELETE clear)."""
        cluster = self.server.cluster
        if path == '/_sim/faults':
            with cluster.lock:
                if method == 'POST':
                    specs = params.get('spec')
                    for spec in specs if isinstance(specs, list) else [specs]:
                        try:
                            cluster.faults.append(Fault(spec or ''))
                        except ValueError as exc:
                            raise PveError(str(exc), 400) from None
                elif method == 'DELETE':
                    cluster.faults.clear()
                return [f.as_dict() for f in cluster.faults]
        raise PveError("Method '%s %s' not implemented" % (method, path), 501)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, cluster, schema, auth_delay=0.0, verbose=False, latency=0.0):
        self.cluster = cluster
        self.latency = latency
        self.schema = schema
        self.auth = Auth()
        self.journal = Journal()
        self.auth_delay = auth_delay
        self.verbose = verbose
        self.ssl_context = None
        if ':' in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        """TLS handshake in the worker thread, so a slow client never blocks accept()."""
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()


def make_certificate(host, directory):
    """Self-signed CA + server certificate for HOST; returns (certfile, keyfile, cafile)."""
    cert, key, ca = (os.path.join(directory, n) for n in ('pve-ssl.pem', 'pve-ssl.key', 'pve-root-ca.pem'))
    try:
        from cryptography import x509  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
        from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel
        import ipaddress  # pylint: disable=import-outside-toplevel
    except ImportError:
        _openssl_certificate(host, cert, key)
        with open(cert, 'rb') as src, open(ca, 'wb') as dst:
            dst.write(src.read())  # self-signed: the certificate is its own CA
        return cert, key, ca
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'polyvirt simulator Proxmox VE CA'),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'PVE Cluster Manager CA')])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    srv_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName('localhost'), x509.DNSName('pve'), x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    srv_cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host),
                                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'PVE Cluster Node')]))
                .issuer_name(ca_name).public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
    with open(key, 'wb') as fh:
        fh.write(srv_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(cert, 'wb') as fh:
        fh.write(srv_cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(ca, 'wb') as fh:
        fh.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, ca


def _openssl_certificate(host, cert, key):
    san = 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:pve'
    if re.match(r'^[\d.]+$', host) or ':' in host:
        san += ',IP:%s' % host if host != '127.0.0.1' else ''
    elif host not in ('localhost', 'pve'):
        san += ',DNS:%s' % host
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '365',
                    '-subj', '/CN=%s' % host, '-addext', san, '-keyout', key, '-out', cert], check=True, capture_output=True)


def serve(host, port, cluster, schema, cert=None, key=None, cert_dir=None, auth_delay=0.0, verbose=False, latency=0.0):
    """Create the HTTPS server; returns (server, url, cafile)."""
    server = Server((host, port), cluster, schema, auth_delay=auth_delay, verbose=verbose, latency=latency)
    cafile = None
    if not cert:
        cert_dir = cert_dir or tempfile.mkdtemp(prefix='pve-sim-')
        cert, key, cafile = make_certificate(host, cert_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.ssl_context = context
    shown = '[%s]' % host if ':' in host else host
    url = 'https://%s:%d/api2/json' % (shown, server.server_address[1])
    return server, url, cafile


def parse_multipart(content_type, raw):
    """Fields of a multipart/form-data body; the file part (PVE's ``filename``) gives its name and its bytes."""
    import email.parser  # pylint: disable=import-outside-toplevel
    import email.policy  # pylint: disable=import-outside-toplevel

    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(b'Content-Type: ' + content_type.encode('latin-1') + b'\r\n\r\n' + raw)
    if not message.is_multipart():
        raise PveError('malformed multipart body', 400)
    params = {}
    for part in message.iter_parts():
        name = part.get_param('name', header='content-disposition')
        data = part.get_payload(decode=True) or b''
        filename = part.get_param('filename', header='content-disposition')
        if filename is not None:
            params['filename'] = filename
            params[UPLOAD_KEY] = data
        elif name:
            params[name] = data.decode('utf-8', 'replace')
    return params
