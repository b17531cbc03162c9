# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The Hikube transport: a bearer token and a CA need no kubernetes library import (urllib3, its lower layer, talks);
anything more goes through the library's kubeconfig loader."""

import base64
import os
import subprocess
import sys

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.client import KubeClient  # noqa: E402
from ansible_collections.polyvirt.compute.tests.unit.plugins.module_utils._backends.hikube.emulator import Emulator  # noqa: E402

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def kubeconfig(tmp_path, cluster, user):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: %s\nusers:\n- name: u\n  user: %s\n"
                    "contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n" % (cluster, user))
    return str(path)


def test_token_kubeconfigs_and_host_settings_are_read_without_the_library(tmp_path):
    data = base64.b64encode(PEM.encode()).decode()
    path = kubeconfig(tmp_path, "{server: 'https://k.example:6443/', certificate-authority-data: %s}" % data, "{token: t0k}")
    assert KubeClient(kubeconfig=path, namespace="n")._plain() == ("https://k.example:6443", "t0k", None, PEM, True)
    path = kubeconfig(tmp_path, "{server: 'https://k.example', certificate-authority: ca.pem, insecure-skip-tls-verify: true}", "{}")
    assert KubeClient(kubeconfig=path, namespace="n")._plain() == ("https://k.example", None, str(tmp_path / "ca.pem"), None, False)
    assert KubeClient(kubeconfig=path, namespace="n", ca_cert="/etc/my.pem")._plain()[2:4] == ("/etc/my.pem", None)  # connection.ca_cert wins
    assert KubeClient(host="https://h/", api_key="k", namespace="n", validate_certs=False)._plain() == ("https://h", "k", None, None, False)


@pytest.mark.parametrize("cluster, user", [
    ("{server: 'https://k'}", "{client-certificate-data: QQ==, client-key-data: QQ==}"),
    ("{server: 'https://k'}", "{exec: {apiVersion: client.authentication.k8s.io/v1, command: kubelogin}}"),
    ("{server: 'https://k', proxy-url: 'http://proxy:3128'}", "{token: t}"),
    ("{server: 'https://k', tls-server-name: other}", "{token: t}"),
])
def test_anything_more_goes_through_the_librarys_loader(tmp_path, cluster, user):
    assert KubeClient(kubeconfig=kubeconfig(tmp_path, cluster, user), namespace="n")._plain() is None


def test_a_missing_file_or_a_merged_kubeconfig_is_left_to_the_library(tmp_path):
    assert KubeClient(kubeconfig=str(tmp_path / "none"), namespace="n")._plain() is None
    assert KubeClient(kubeconfig=str(tmp_path / "a") + os.pathsep + str(tmp_path / "b"), namespace="n")._plain() is None


def test_a_task_with_a_token_kubeconfig_never_imports_the_library(tmp_path):
    emulator = Emulator()
    try:
        path = kubeconfig(tmp_path, "{server: '%s'}" % emulator.url, "{token: polyvirt-sim}")
        code = ("import sys\n"
                "from ansible_collections.polyvirt.compute.plugins.module_utils._backends.hikube.backend import HikubeBackend\n"
                "backend = HikubeBackend({'kubeconfig': %r, 'namespace': 'tenant-demo'})\n"
                "assert backend.instances.get('nosuch') is None\n"
                "print(sorted(name for name in sys.modules if name.split('.')[0] == 'kubernetes'))\n" % path)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        assert done.stdout.strip() == "[]"
        assert any(entry["path"].endswith("/namespaces/tenant-demo") for entry in emulator.journal())  # it did talk to the server
    finally:
        emulator.stop()
