# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# kubernetes.core modules (k8s, k8s_info) work against the emulator unchanged, in both modes.
# kubernetes.core comes from the `ansible` package; `make simulators` installs it in the tools venv
# and points POLYVIRT_TEST_COLLECTIONS at it.

import json
import os
import subprocess
import sys

import pytest

from tests.simulators.hikube.tests.conftest import COZY, CRD, NS

COLLECTIONS = os.environ.get("POLYVIRT_TEST_COLLECTIONS")

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
  module_defaults:
    group/kubernetes.core.k8s:
      kubeconfig: {kubeconfig}
  tasks:
    - name: A VMDisk and a VMInstance
      kubernetes.core.k8s:
        state: "{{{{ wanted }}}}"
        wait: "{{{{ wanted == 'absent' }}}}"
        definition:
          - apiVersion: apps.cozystack.io/v1alpha1
            kind: VMDisk
            metadata: {{name: {disk}, namespace: {ns}, labels: {{suite: kcore}}}}
            spec: {{source: {{}}, storage: 1Gi, storageClass: replicated}}
          - apiVersion: apps.cozystack.io/v1alpha1
            kind: VMInstance
            metadata: {{name: {vm}, namespace: {ns}, labels: {{suite: kcore}}}}
            spec: {{instanceType: u1.medium, disks: [{{name: {disk}}}]}}
      register: applied

    - name: What k8s_info sees with a label selector
      kubernetes.core.k8s_info:
        api_version: apps.cozystack.io/v1alpha1
        kind: VMInstance
        namespace: {ns}
        label_selectors: [suite=kcore]
      register: found

    - name: Report
      ansible.builtin.copy:
        dest: {report}
        content: "{{{{ {{'changed': applied.changed, 'names': found.resources | map(attribute='metadata.name') | list}} | to_json }}}}"
        mode: "0644"
"""


def run(tmp_path, sim, mode, wanted):
    report = tmp_path / ("report-%s-%s.json" % (mode, wanted))
    playbook = tmp_path / ("play-%s.yml" % mode)
    playbook.write_text(PLAYBOOK.format(python=sys.executable, kubeconfig=sim.kubeconfig, ns=NS, disk="kc-disk-" + mode, vm="kc-vm-" + mode,
                                        report=report))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.pop("ANSIBLE_CONFIG", None)
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook), "-e", "wanted=" + wanted],
                          env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(report.read_text())


@pytest.mark.skipif(not COLLECTIONS, reason="kubernetes.core is not installed here: run through `make simulators`, which provides it")
@pytest.mark.parametrize("mode, args", [("cozystack", COZY), ("crd", CRD)])
def test_kubernetes_core_manages_vminstances(tmp_path, sims, mode, args):
    sim = sims(*args)
    first = run(tmp_path, sim, mode, "present")
    assert first["changed"] is True
    assert first["names"] == ["kc-vm-" + mode]
    again = run(tmp_path, sim, mode, "present")
    assert again["changed"] is False, "kubernetes.core found a difference on an unchanged object"
    gone = run(tmp_path, sim, mode, "absent")
    assert gone["changed"] is True
    assert gone["names"] == []
