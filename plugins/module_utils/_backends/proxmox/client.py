# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A thin Proxmox VE API client on proxmoxer: authentication, TLS, errors, retries and task (UPID) waits.

Knows nothing of Ansible. Raises the collection's exceptions (_errors). proxmoxer and requests are
imported when the first request is made, so a task that fails on bad input never pays for them.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import (
    AuthError,
    BackendUnavailable,
    Conflict,
    InvalidInput,
    MissingLibrary,
    NotFound,
    OperationFailed,
    WaitTimeout,
)
from ansible_collections.polyvirt.compute.plugins.module_utils._retry import retry
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline, poll

DEFAULT_PORT = 8006
# Seconds one HTTP request may take; proxmoxer's own default (5 s) is what community.proxmox users hit on big hosts.
REQUEST_TIMEOUT = 60
# How long a read with no task deadline of its own may keep retrying transient errors.
READ_RETRY_SECONDS = 30
LOG_TAIL = 10
# PVE refuses a change while another task holds the guest's config lock; nothing was changed, so it may be tried again.
LOCKED_RE = re.compile(r"(VM|CT) is locked|can't lock file")
MISSING_RE = re.compile(r"does not exist|no such (cluster node|task)|not found", re.I)
EXISTS_RE = re.compile(r"already exists|config file already exists")


class PveError(OperationFailed):
    """An error answer of the API, with its HTTP status and PVE's per-parameter ``errors``."""

    def __init__(self, message, status=None, errors=None):
        super().__init__(message)
        self.status = status
        self.errors = errors or {}


class PveNotFound(NotFound):
    pass


class PveUnavailable(BackendUnavailable):
    """595/596: the node that owns the object did not answer the proxy (offline, rebooting)."""


class PveConflict(Conflict):
    def __init__(self, message, status=None, errors=None):
        super().__init__(message)
        self.status = status
        self.errors = errors or {}


class ProxmoxClient:
    """One PVE API endpoint. ``request`` returns the ``data`` of the answer; ``run`` also waits for its task."""

    def __init__(self, host, port=None, user=None, password=None, token_id=None, token_secret=None, validate_certs=True, ca_path=None,
                 timeout=REQUEST_TIMEOUT):
        if not host:
            raise InvalidInput("connection.api_host is required for the proxmox backend")
        self.host = host
        self.port = port or DEFAULT_PORT
        self.endpoint = "https://%s:%s" % (host, self.port)
        self.user = user or "root@pam"
        self._password = password
        self._token = None
        if token_id or token_secret:
            if not (token_id and token_secret):
                raise InvalidInput("connection.api_token_id and connection.api_token_secret go together (the token id and its secret)")
            # Either the full id (user@realm!name) or just the name with api_user.
            if "!" in token_id:
                self.user, name = token_id.split("!", 1)
            else:
                name = token_id
            self._token = (name, token_secret)
        elif not password:
            raise InvalidInput("the proxmox backend needs connection.api_password or connection.api_token_id and connection.api_token_secret")
        if "@" not in self.user:
            raise InvalidInput("connection.api_user %r must be user@realm (such as root@pam)" % self.user)
        if ca_path is not None:
            import os  # pylint: disable=import-outside-toplevel

            if not os.path.isfile(ca_path):
                raise InvalidInput("connection.ca_path %s is not a file" % ca_path)
        self.validate_certs = validate_certs is not False
        self.ca_path = ca_path
        self.timeout = timeout
        self._api = None
        self.warnings = []  # task warnings (WARNINGS: n) of this client's tasks, passed on to the user

    # -- plumbing -------------------------------------------------------------------------------

    def _verify(self):
        """What ``verify`` every request gets: never True, which requests would replace with REQUESTS_CA_BUNDLE."""
        if not self.validate_certs:
            return False
        if self.ca_path:
            return self.ca_path
        import requests.certs  # pylint: disable=import-outside-toplevel

        return requests.certs.where()

    def api(self):
        if self._api is None:
            try:
                from proxmoxer import ProxmoxAPI  # pylint: disable=import-outside-toplevel
                from proxmoxer.core import AuthenticationError  # pylint: disable=import-outside-toplevel
            except ImportError as exc:
                raise MissingLibrary("the proxmox backend needs the proxmoxer and requests Python libraries where the module runs "
                                     "(pip install proxmoxer requests): %s" % exc)
            kwargs = {"port": self.port, "user": self.user, "verify_ssl": self._verify(), "timeout": self.timeout}
            if self._token:
                kwargs.update(token_name=self._token[0], token_value=self._token[1])
            else:
                kwargs["password"] = self._password
            try:
                api = ProxmoxAPI(self.host, backend="https", **kwargs)  # a password login happens here
            except AuthenticationError as exc:
                raise AuthError("Proxmox VE at %s refused the login of %s: %s" % (self.endpoint, self.user, exc))
            except Exception as exc:  # pylint: disable=broad-except
                raise self._transport_error(exc)
            # Environment settings (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, netrc) must not change what was asked for.
            api._store["session"].trust_env = False  # pylint: disable=protected-access
            self._api = api
        return self._api

    def _transport_error(self, exc):
        name = type(exc).__name__
        if "SSLError" in name or "CERTIFICATE" in str(exc):
            return BackendUnavailable("TLS to Proxmox VE at %s failed (%s); set connection.ca_path to the PVE CA (pve-root-ca.pem) or "
                                      "connection.validate_certs: false" % (self.endpoint, exc))
        if "Timeout" in name:
            return WaitTimeout("Proxmox VE at %s did not answer within %s s: %s" % (self.endpoint, self.timeout, exc))
        return BackendUnavailable("Proxmox VE is not reachable at %s: %s" % (self.endpoint, exc))

    def close(self):
        if self._api is not None:
            self._api._store["session"].close()  # pylint: disable=protected-access
            self._api = None

    @staticmethod
    def path(*parts):
        """An API path from parts, each percent-encoded (volume ids hold ':' and '/')."""
        return "/".join(quote(str(part), safe="") for part in parts)

    def request(self, method, path, **params):
        from proxmoxer.core import ResourceException  # pylint: disable=import-outside-toplevel

        api = self.api()
        resource = api(path.split("/"))
        params = dict((key, _wire(value)) for key, value in params.items() if value is not None)
        try:
            if method == "GET":
                return resource.get(**params)
            if method == "POST":
                return resource.post(**params)
            if method == "PUT":
                return resource.put(**params)
            return resource.delete(**params)
        except ResourceException as exc:
            raise error_for(exc.status_code, exc.content, exc.errors, method, path)
        except Exception as exc:  # pylint: disable=broad-except
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise self._transport_error(exc)
            raise

    def get(self, path, deadline=None, **params):
        """An idempotent read, retried on 5xx (595: node offline), locks and resets inside ``deadline``."""
        return retry(lambda: self.request("GET", path, **params), deadline or Deadline(READ_RETRY_SECONDS), is_transient_read)

    def get_or_none(self, path, **params):
        try:
            return self.get(path, **params)
        except NotFound:
            return None

    def run(self, method, path, deadline, **params):
        """A change: retried only when PVE refused it for a lock (nothing done); waits for its task when it returns a UPID."""
        result = retry(lambda: self.request(method, path, **params), deadline, is_locked)
        if is_upid(result):
            return self.wait_task(result, deadline)
        return result

    # -- tasks ----------------------------------------------------------------------------------

    def wait_task(self, upid, deadline):
        """Wait on ``tasks/{upid}/status`` with backoff; OK and ``WARNINGS: n`` succeed, anything else fails with the log tail."""
        node = upid.split(":")[1]
        base = self.path("nodes", node, "tasks", upid)

        def done():
            status = self.get(base + "/status", deadline)
            return status if status.get("status") == "stopped" else None

        try:
            status = poll(done, deadline, "Proxmox task %s" % upid, first=0.1, longest=2.0)
        except WaitTimeout as exc:
            exc.message = "%s (the task keeps running on the server)" % exc.message
            raise
        exit_status = status.get("exitstatus") or ""
        if exit_status == "OK":
            return status
        if exit_status.startswith("WARNINGS"):
            lines = self._log(base)
            self.warnings.extend("%s: %s" % (status.get("type"), line) for line in lines if line.startswith("WARN"))
            return status
        lines = self._log(base)
        tail = [line for line in lines if not line.startswith("TASK ")][-LOG_TAIL:]
        message = "task %s failed: %s" % (status.get("type"), exit_status)
        if tail and tail[-1] != exit_status:
            message += " (log: %s)" % " | ".join(tail)
        if LOCKED_RE.search(exit_status):
            raise PveConflict(message)
        raise PveError(message)

    def _log(self, base):
        try:
            entries = self.get(base + "/log", limit=500) or []
        except (NotFound, OperationFailed, BackendUnavailable):
            return []
        return [entry.get("t", "") for entry in entries]


def _wire(value):
    """PVE takes booleans only as 0/1 (``True`` answers 400 "type check ('boolean') failed")."""
    if isinstance(value, bool):
        return int(value)
    return value


def is_upid(value):
    return isinstance(value, str) and value.startswith("UPID:")


def error_for(status, reason, errors, method, path):
    """Map an API error (status, PVE's message, per-parameter errors) to the collection's exceptions."""
    text = (reason or "HTTP %s" % status).strip()
    if errors and isinstance(errors, dict) and not isinstance(errors.get("errors"), bytes):
        text += " " + "; ".join("%s: %s" % (key, str(value).strip()) for key, value in sorted(errors.items()))
    text = "%s (%s %s)" % (text, method, path)
    if status in (401, 403):
        return AuthError(text)
    if status == 400:
        if errors and any(EXISTS_RE.search(str(value)) for value in errors.values()):
            return PveConflict(text, status, errors)
        return InvalidInput(text)
    if status in (595, 596) and not MISSING_RE.search(reason or ""):
        return PveUnavailable(text)
    if LOCKED_RE.search(text) or EXISTS_RE.search(text):
        return PveConflict(text, status, errors)
    if MISSING_RE.search(reason or ""):
        return PveNotFound(text)
    return PveError(text, status, errors)


def is_locked(exc):
    return isinstance(exc, Conflict) and bool(LOCKED_RE.search(exc.message))


def is_transient_read(exc):
    """Reads are retried on 5xx, 595 (node offline behind the proxy), locks and resets: they change nothing."""
    if is_locked(exc):
        return True
    # 501 is "not implemented": asking again will not help.
    return isinstance(exc, PveUnavailable) or (isinstance(exc, PveError) and (exc.status or 0) >= 500 and exc.status != 501)
