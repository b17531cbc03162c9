# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A thin Kubernetes API client for Hikube / Cozystack on the official ``kubernetes`` library.

The library gives us the kubeconfig loader, authentication (tokens, client certificates, exec plugins)
and its TLS-configured urllib3 pool; requests go straight to the known paths of the groups we use,
so no task pays for discovery round trips (and no discovery cache can leak between clusters).
Knows nothing of Ansible; raises the collection's exceptions. The library is imported on the first
request, so a task that fails on bad input never pays for it.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from urllib.parse import quote, urlencode

from ansible_collections.polyvirt.compute.plugins.module_utils._cloud_init import _yaml
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

APPS = "/apis/apps.cozystack.io/v1alpha1"
OPTIONS = "/apis/core.cozystack.io/v1alpha1"
CORE = "/api/v1"
SUBRESOURCES = "/apis/subresources.kubevirt.io/v1"
KUBEVIRT = "/apis/kubevirt.io/v1"
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = 60
# How long a read with no task deadline of its own may keep retrying transient errors.
READ_RETRY_SECONDS = 20
# One watch request lasts at most this long; then the wait lists again (Cozystack's watch sends no bookmarks).
WATCH_SECONDS = 50


class KubeError(OperationFailed):
    """An error Status of the API server, with its HTTP code and reason."""

    def __init__(self, message, code=None, reason=None):
        super().__init__(message)
        self.code = code
        self.reason = reason


class KubeNotFound(NotFound):
    pass


class KubeExists(Conflict):
    """The object exists already: a 409 AlreadyExists, or Cozystack's 500 "failed to create HelmRelease: ... already exists"."""


class KubeAuthError(AuthError):
    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class KubeClient:
    """One API server, one tenant namespace. ``request`` returns the decoded JSON body."""

    def __init__(self, kubeconfig=None, context=None, host=None, api_key=None, namespace=None, validate_certs=True, ca_cert=None,
                 timeout=REQUEST_TIMEOUT):
        if host and kubeconfig:
            raise InvalidInput("connection.host and connection.kubeconfig exclude each other (host and api_key, or a kubeconfig and its context)")
        if api_key and not host:
            raise InvalidInput("connection.api_key needs connection.host (the API server URL)")
        if host and not host.startswith(("https://", "http://")):
            raise InvalidInput("connection.host must be the API server URL (https://host:port), got %r" % host)
        self.namespace = namespace
        self._settings = (kubeconfig, context, host, api_key, validate_certs, ca_cert)
        self._timeout = timeout
        self._config = None
        self._pool = None
        self._host = self._token = None
        self.endpoint = host or kubeconfig or "the default kubeconfig"

    # -- plumbing -------------------------------------------------------------------------------

    def _connect(self):
        if self._pool is not None:
            return
        plain = self._plain()
        if plain is not None:
            self._connect_plain(*plain)
            return
        kubeconfig, context, host = self._settings[:3]
        validate_certs, ca_cert = self._settings[4:]
        try:
            from kubernetes.client.configuration import Configuration  # pylint: disable=import-outside-toplevel
            from kubernetes.client.rest import RESTClientObject  # pylint: disable=import-outside-toplevel
            from kubernetes.config.config_exception import ConfigException  # pylint: disable=import-outside-toplevel
            from kubernetes.config.kube_config import load_kube_config  # pylint: disable=import-outside-toplevel
        except ImportError as exc:
            raise MissingLibrary("the hikube backend needs the kubernetes Python library where the module runs (pip install kubernetes): %s" % exc)
        config = Configuration()
        if host:
            config.host = host.rstrip("/")
        else:
            try:
                load_kube_config(config_file=kubeconfig, context=context, client_configuration=config, persist_config=False)
            except (ConfigException, OSError, ValueError, TypeError) as exc:
                where = "connection.kubeconfig %s" % kubeconfig if kubeconfig else "the default kubeconfig (KUBECONFIG or ~/.kube/config)"
                raise InvalidInput("%s could not be loaded%s: %s" % (where, " with connection.context %s" % context if context else "", exc))
            self.endpoint = config.host
        if ca_cert:
            config.ssl_ca_cert = ca_cert
        if validate_certs is False:
            config.verify_ssl = False  # per pool, so REQUESTS_CA_BUNDLE and friends cannot turn it back on
        self._config = config
        self._host = config.host
        self._pool = RESTClientObject(config).pool_manager

    def _plain(self):
        """(server, token, CA file, CA data, verify) when no more than a bearer token and a CA are needed, else None.

        Then the kubernetes library, whose import costs more than a whole no-op task's API reads, is not loaded at all:
        its lower layer (urllib3) talks to the server. Client certificates, exec plugins, auth providers, proxies
        and merged kubeconfigs go through the library's loader.
        """
        kubeconfig, context, host, api_key, validate_certs, ca_cert = self._settings
        if host:
            return host.rstrip("/"), api_key, ca_cert, None, validate_certs is not False
        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        yaml = _yaml()
        if yaml is None or os.pathsep in path:
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
            contexts = dict((item["name"], item.get("context") or {}) for item in data.get("contexts") or [])
            chosen = contexts[context or data["current-context"]]
            cluster = dict((item["name"], item.get("cluster") or {}) for item in data.get("clusters") or [])[chosen["cluster"]]
            user = dict((item["name"], item.get("user") or {}) for item in data.get("users") or []).get(chosen.get("user")) or {}
        except Exception:  # pylint: disable=broad-except  # anything unusual: the library's loader reports it in its words
            return None
        if set(user) - {"token"} or set(cluster) - {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"}:
            return None
        server = str(cluster.get("server") or "")
        if not server.startswith(("https://", "http://")):
            return None
        authority = cluster.get("certificate-authority")
        if authority and not os.path.isabs(authority):
            authority = os.path.join(os.path.dirname(os.path.abspath(path)), authority)
        ca_data = cluster.get("certificate-authority-data")
        try:
            ca_data = base64.b64decode(ca_data).decode("ascii") if ca_data else None
        except (ValueError, UnicodeDecodeError):
            return None
        if ca_cert:
            authority, ca_data = ca_cert, None
        verify = validate_certs is not False and not cluster.get("insecure-skip-tls-verify")
        return server.rstrip("/"), user.get("token"), authority, ca_data, verify

    def _connect_plain(self, server, token, authority, data, verify):
        try:
            import urllib3  # pylint: disable=import-outside-toplevel
        except ImportError as exc:
            raise MissingLibrary("the hikube backend needs the kubernetes Python library where the module runs (pip install kubernetes): %s" % exc)
        options = {"num_pools": 4, "maxsize": 4}
        if server.startswith("https://"):
            if not verify:
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                options["cert_reqs"] = "CERT_NONE"
            else:
                context = ssl.create_default_context(cafile=authority if authority else (None if data else _certifi()), cadata=data)
                options["ssl_context"] = context
        self._host = server
        self._token = token
        self.endpoint = self._settings[2] or server
        self._pool = urllib3.PoolManager(**options)

    def close(self):
        if self._pool is not None:
            self._pool.clear()
            self._pool = None

    def _headers(self, content_type=None):
        headers = {"Accept": "application/json", "User-Agent": "polyvirt.compute"}
        api_key = self._settings[3] if self._config is not None else self._token
        if api_key:
            headers["Authorization"] = "Bearer " + api_key
        elif self._config is not None:
            # The kubeconfig's credentials as the library resolved them (token, exec plugin; its key name differs by version).
            for setting in self._config.auth_settings().values():
                if setting.get("in") == "header" and setting.get("value"):
                    headers[setting["key"].title()] = setting["value"]
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, method, path, body=None, query=None, content_type=None, timeout=None, stream=False):
        self._connect()
        url = self._host + path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        import urllib3  # pylint: disable=import-outside-toplevel  # loaded by the kubernetes library already

        if isinstance(timeout, tuple):
            limit = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        else:
            limit = urllib3.Timeout(connect=min(timeout or self._timeout, 30), read=timeout or self._timeout)
        try:
            response = self._pool.request(method, url, body=data, headers=self._headers(content_type or ("application/json" if data else None)),
                                          timeout=limit, preload_content=False, retries=False)
        except urllib3.exceptions.ReadTimeoutError:
            raise WaitTimeout("the Kubernetes API at %s did not answer %s %s in time" % (self.endpoint, method, path))
        except urllib3.exceptions.HTTPError as exc:
            raise BackendUnavailable("the Kubernetes API is not reachable at %s: %s" % (self.endpoint, exc))
        if stream and response.status < 400:
            return response
        raw = response.read()
        response.release_conn()
        try:
            payload = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            payload = {"message": raw.decode("utf-8", "replace")[:300]}
        if response.status >= 400:
            raise error_for(response.status, payload, method, path)
        return payload

    def request(self, method, path, body=None, query=None, content_type=None, timeout=None):
        """One request; reads (GET) are retried on transient errors within ``timeout`` or READ_RETRY_SECONDS."""
        if method != "GET":
            return self._send(method, path, body, query, content_type, timeout)
        deadline = Deadline(min(timeout, READ_RETRY_SECONDS) if timeout else READ_RETRY_SECONDS)
        return retry(lambda: self._send(method, path, body, query, content_type, timeout), deadline, is_transient)

    def get(self, path, query=None, timeout=None):
        return self.request("GET", path, query=query, timeout=timeout)

    def get_or_none(self, path, query=None, timeout=None):
        try:
            return self.get(path, query, timeout)
        except NotFound:
            return None

    def create(self, path, body, timeout=None):
        """POST ``body``; an object that exists already raises KubeExists (never a blind retry of a create)."""
        return self._send("POST", path, body, timeout=timeout)

    def patch(self, path, body, timeout=None):
        """JSON merge-patch (RFC 7386): lists are replaced whole, None deletes a key. Cozystack breaks on strategic merge."""
        return self._send("PATCH", path, body, content_type=MERGE_PATCH, timeout=timeout)

    def put(self, path, body=None, timeout=None):
        return self._send("PUT", path, body if body is not None else {}, timeout=timeout)

    def delete(self, path, timeout=None):
        """DELETE; one that is gone already is not an error. Returns whether the server still had it."""
        try:
            self._send("DELETE", path, timeout=timeout)
        except NotFound:
            return False
        return True

    # -- watches --------------------------------------------------------------------------------

    def wait_list(self, path, check, deadline, what, query=None):
        """List ``path``, then watch it until ``check(items)`` returns something truthy; return that.

        Every (re)connect starts with a fresh list: Cozystack's application API ignores resourceVersion on
        watch and sends neither bookmarks nor 410s, so no event stream can be trusted to resume.
        """
        while True:
            listing = self.get(path, query, timeout=max(1.0, deadline.remaining()))
            items = dict((item["metadata"]["name"], item) for item in listing.get("items") or [])
            found = check(list(items.values()))
            if found:
                return found
            left = deadline.remaining()
            if left <= 0:
                raise WaitTimeout("timed out after %s s waiting for %s" % (deadline.seconds, what))
            seconds = max(1, min(int(left), WATCH_SECONDS))
            params = dict(query or {}, watch="true", timeoutSeconds=seconds)
            rv = (listing.get("metadata") or {}).get("resourceVersion")
            if rv:
                params["resourceVersion"] = rv
            try:
                for event in self._events(path, params, seconds):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        break
                    name = (obj.get("metadata") or {}).get("name")
                    if not name or event.get("type") == "BOOKMARK":
                        continue
                    if event.get("type") == "DELETED":
                        items.pop(name, None)
                    else:
                        items[name] = obj
                    found = check(list(items.values()))
                    if found:
                        return found
                    if deadline.remaining() <= 0:
                        break
            except (WaitTimeout, BackendUnavailable):
                pass  # the stream broke or went quiet: list again (within the deadline)
            if deadline.remaining() <= 0:
                raise WaitTimeout("timed out after %s s waiting for %s" % (deadline.seconds, what))

    def _events(self, path, params, seconds):
        response = self._send("GET", path, query=params, timeout=(10, seconds + 5), stream=True)
        buffer = b""
        try:
            for chunk in response.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        try:
                            yield json.loads(line.decode("utf-8"))
                        except ValueError:
                            return
        except Exception as exc:  # pylint: disable=broad-except  # urllib3 raises several kinds when a stream ends badly
            raise BackendUnavailable("the watch on %s ended: %s" % (path, exc))
        finally:
            response.release_conn()

    # -- paths ----------------------------------------------------------------------------------

    def ns_path(self, base, plural, name=None, subresource=None):
        parts = [base, "namespaces", quote(self.namespace, safe=""), plural]
        if name is not None:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


def _certifi():
    """The CA bundle the kubernetes library trusts by default (certifi's), where certifi is installed."""
    try:
        import certifi  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return certifi.where()


def error_for(code, payload, method, path):
    """Map a Kubernetes Status to the collection's exceptions (Cozystack's 500 for a duplicate is an "exists")."""
    message = payload.get("message") or payload.get("reason") or "HTTP %s" % code
    reason = payload.get("reason")
    if code == 404:
        return KubeNotFound(message)
    if code == 409 and reason == "AlreadyExists":
        return KubeExists(message)
    if code == 500 and method == "POST" and "already exists" in message:
        return KubeExists(message)
    if code == 409:
        return Conflict(message)
    if code in (401, 403):
        return KubeAuthError(message, code)
    if code in (400, 415, 422):
        return InvalidInput(message)
    return KubeError("%s (HTTP %s on %s %s)" % (message, code, method, path), code, reason)


def is_transient(exc):
    """Errors a repeated read may not see: 5xx and 429 (an unreachable server is reported at once)."""
    if isinstance(exc, KubeError):
        return exc.code in (429, 500, 502, 503, 504)
    return False
