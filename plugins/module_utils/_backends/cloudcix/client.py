# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A thin CloudCIX REST client on requests: app URLs, the login token, errors, pagination and read retries.

Why not the ``cloudcix`` SDK: it reads its settings from a Python module at import time (one account per
process), builds hundreds of sessions on import, pulls in psycopg2, pylxd and paramiko, and its JSON
decoder turns ``"007"`` into ``7``. The API is plain JSON over HTTPS. Knows nothing of Ansible.
"""

from __future__ import annotations

from urllib.parse import urlsplit

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
from ansible_collections.polyvirt.compute.plugins.module_utils._wait import Deadline

DEFAULT_API_URL = "https://{app}.api.cloudcix.com/"
# The SDK's CLOUDCIX_API_V2_URL: the app name becomes a sub-domain of it.
SDK_V2_HOST = "api.cloudcix.com"
REQUEST_TIMEOUT = 60
# How long a read with no task deadline of its own may keep retrying transient errors.
READ_RETRY_SECONDS = 30
PAGE_SIZE = 100  # the framework's largest page
MEMBERSHIP, COMPUTE = "membership", "compute"


class ApiError(OperationFailed):
    """An error answer: HTTP ``status``, CloudCIX's ``error_code`` and its per-field ``errors``."""

    def __init__(self, message, status=None, error_code=None, errors=None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.errors = errors or {}


class ApiInvalid(InvalidInput):
    def __init__(self, message, status=None, error_code=None, errors=None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.errors = errors or {}


class ApiConflict(Conflict):
    def __init__(self, message, status=None, error_code=None, errors=None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.errors = errors or {}


class Transient(ApiError):
    """5xx or throttling (429): the request may be tried again if it is safe to repeat."""


class Unreachable(BackendUnavailable):
    """No answer (refused, reset, DNS): a read may be tried again."""


def app_urls(api_url):
    """``api_url`` -> a function of the app name giving that app's base URL (always ending in ``/``).

    ``{app}`` in the URL is replaced by the app (the default, one sub-domain per app); the SDK's
    ``https://api.cloudcix.com/`` is read the same way; any other URL is one base for every app
    (a proxy, a gateway, the simulator).
    """
    url = api_url or DEFAULT_API_URL
    parts = urlsplit(url.replace("{app}", "app"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("connection.api_url must be an http(s) URL such as %s, got %r" % (DEFAULT_API_URL, api_url))
    if not url.endswith("/"):
        url += "/"
    if "{app}" in url:
        return lambda app: url.replace("{app}", app)
    if parts.hostname == SDK_V2_HOST:
        return lambda app: url.replace("://", "://%s." % app, 1)
    return lambda app: url


class CloudcixClient:
    """One CloudCIX account. ``request`` returns the ``content`` of the answer."""

    def __init__(self, api_url=None, email=None, password=None, api_key=None, timeout=REQUEST_TIMEOUT):
        self.app_url = app_urls(api_url)
        self.endpoint = self.app_url(COMPUTE)
        self._credentials = (email, password, api_key)
        self._timeout = timeout
        self._session = None
        self._token = None
        self.calls = 0  # requests sent, the login included (the benchmarks and tests read it)

    # -- plumbing -------------------------------------------------------------------------------

    def _requests(self):
        if self._session is None:
            try:
                import requests  # pylint: disable=import-outside-toplevel
            except ImportError:
                raise MissingLibrary("the cloudcix backend needs the Python library requests where the module runs (pip install requests)")
            self._session = requests.Session()
            self._exceptions = requests.exceptions
        return self._session

    def close(self):
        if self._session is not None:
            self._session.close()
            self._session = None

    def _send(self, method, url, body=None, params=None, token=True, timeout=None):
        session = self._requests()
        headers = {"Accept": "application/json"}
        if token:
            headers["X-Auth-Token"] = self.token()
        self.calls += 1
        try:
            # verify=True on every request: TLS is always verified (the API is public HTTPS).
            response = session.request(method, url, json=body, params=params, headers=headers, timeout=timeout or self._timeout, verify=True)
        except self._exceptions.SSLError as exc:
            raise BackendUnavailable("TLS verification of %s failed: %s" % (url, exc))
        except self._exceptions.Timeout:
            raise WaitTimeout("CloudCIX did not answer %s %s within %s s" % (method, url, timeout or self._timeout))
        except self._exceptions.ConnectionError as exc:
            raise Unreachable("CloudCIX is not reachable at %s: %s" % (url, _short(exc)))
        except self._exceptions.RequestException as exc:
            raise BackendUnavailable("CloudCIX request %s %s failed: %s" % (method, url, _short(exc)))
        return response

    def token(self):
        """The login token, fetched once (``POST membership auth/login/``)."""
        if self._token is None:
            email, password, api_key = self._credentials
            for option, value in (("email", email), ("password", password), ("api_key", api_key)):
                if not value:
                    raise InvalidInput("connection.%s is required for the cloudcix backend (or set POLYVIRT_CLOUDCIX_%s)" % (option, option.upper()))
            url = self.app_url(MEMBERSHIP) + "auth/login/"
            response = self._send("POST", url, {"email": email, "password": password, "api_key": api_key}, token=False)
            payload = _json(response)
            if response.status_code >= 400 or not isinstance(payload, dict) or not payload.get("token"):
                if response.status_code >= 500:
                    raise Transient("CloudCIX login at %s answered HTTP %s" % (url, response.status_code), status=response.status_code)
                raise AuthError("CloudCIX refused the login of %s at %s: %s" % (email, url, _message(response.status_code, payload)))
            self._token = payload["token"]
        return self._token

    def request(self, method, path, body=None, params=None, app=COMPUTE):
        """One call; a 401 or 403 logs in again and repeats it once (tokens expire after 2 h; the Go SDK does the same)."""
        url = self.app_url(app) + path
        response = self._send(method, url, body, params)
        if response.status_code in (401, 403):
            self._token = None
            response = self._send(method, url, body, params)
        payload = _json(response)
        if response.status_code >= 400:
            raise error_for(response.status_code, payload, "%s %s" % (method, path))
        if isinstance(payload, dict) and "content" in payload:
            return payload["content"]
        return payload

    def read(self, path, params=None, deadline=None):
        """A GET, retried on transient errors inside ``deadline`` (reads are safe to repeat)."""
        return retry(lambda: self.request("GET", path, params=params), deadline or Deadline(READ_RETRY_SECONDS), is_transient)

    def read_or_none(self, path, deadline=None):
        try:
            return self.read(path, deadline=deadline)
        except NotFound:
            return None

    def list(self, path, search=None, order=None, deadline=None):
        """Every item of a list, page by page (0-based) until ``_metadata.total_records`` are read."""
        params = dict(("search[%s]" % key, value) for key, value in (search or {}).items())
        params["limit"] = PAGE_SIZE
        if order:
            params["order"] = order
        items = []
        page = 0
        while True:
            params["page"] = page
            payload = retry(lambda: self._page(path, params), deadline or Deadline(READ_RETRY_SECONDS), is_transient)
            content = payload.get("content") or []
            items.extend(content)
            metadata = payload.get("_metadata") or {}
            total = metadata.get("total_records", metadata.get("totalRecords", payload.get("total")))
            if not content or total is None or len(items) >= int(total):
                return items
            page += 1

    def _page(self, path, params):
        url = self.app_url(COMPUTE) + path
        response = self._send("GET", url, params=params)
        if response.status_code in (401, 403):
            self._token = None
            response = self._send("GET", url, params=params)
        payload = _json(response)
        if response.status_code >= 400:
            raise error_for(response.status_code, payload, "GET %s" % path)
        return payload if isinstance(payload, dict) else {"content": payload or []}

    def write(self, method, path, body=None, deadline=None):
        """A POST, PUT, PATCH or DELETE: repeated only when CloudCIX throttled it (429: nothing was done)."""
        return retry(lambda: self.request(method, path, body=body), deadline or Deadline(READ_RETRY_SECONDS), is_throttled)


def _json(response):
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None  # nginx error pages are HTML


def _short(exc):
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def _message(status, payload):
    """CloudCIX's error text: ``detail``, or one ``field: detail`` per invalid field."""
    if isinstance(payload, dict):
        if isinstance(payload.get("errors"), dict):
            parts = []
            for field, error in sorted(payload["errors"].items()):
                detail = error.get("detail") if isinstance(error, dict) else error
                code = error.get("error_code") if isinstance(error, dict) else None
                parts.append("%s: %s%s" % (field, detail, " (%s)" % code if code else ""))
            return "; ".join(parts)
        if payload.get("detail"):
            code = payload.get("error_code")
            return "%s%s" % (payload["detail"], " (%s)" % code if code else "")
    return "HTTP %s" % status


def error_for(status, payload, what):
    """Map an error answer to the collection's exceptions."""
    text = "%s: %s" % (what, _message(status, payload))
    code = payload.get("error_code") if isinstance(payload, dict) else None
    errors = payload.get("errors") if isinstance(payload, dict) and isinstance(payload.get("errors"), dict) else {}
    if status in (401, 403):
        return AuthError("CloudCIX refused %s" % text)
    if status == 404:
        return NotFound(text)
    if status == 429 or status >= 500:
        return Transient(text, status=status, error_code=code)
    if status == 409 or "state" in errors:
        return ApiConflict(text, status=status, error_code=code, errors=errors)  # a state the robot's machine forbids now
    if status == 400:
        return ApiInvalid(text, status=status, error_code=code, errors=errors)
    return ApiError(text, status=status, error_code=code, errors=errors)


def is_transient(exc):
    return isinstance(exc, (Transient, Unreachable))


def is_throttled(exc):
    return isinstance(exc, Transient) and exc.status == 429
