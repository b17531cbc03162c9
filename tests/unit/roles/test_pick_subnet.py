# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

"""The lab's subnet choice (roles/lxd_lab/files/pick_subnet.py) from canned `ip -j` output: no traffic, no LXD auto mode."""

import importlib.util
import json
import os
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "lxd_lab", "files", "pick_subnet.py")


@pytest.fixture
def pick(monkeypatch):
    spec = importlib.util.spec_from_file_location("pick_subnet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answers = {"route": [], "addr": []}

    def run(command, **kwargs):
        kind = "route" if "route" in command else "addr"
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps(answers[kind]), stderr="")

    monkeypatch.setattr(module.subprocess, "run", run)
    return module, answers


def test_first_candidate_on_an_empty_machine(pick, capsys):
    module, _answers = pick
    assert module.main(["pick_subnet.py"]) == 0
    assert capsys.readouterr().out.strip() == "10.147.0.1/24"


def test_skips_routes_addresses_and_lxd_networks(pick, capsys):
    module, answers = pick
    answers["route"] = [{"dst": "default", "gateway": "192.0.2.1"}, {"dst": "10.147.0.0/16"}]
    answers["addr"] = [{"addr_info": [{"local": "10.148.0.7", "prefixlen": 24}]}]
    assert module.main(["pick_subnet.py", "10.148.17.1/24", "none", "auto"]) == 0
    # 10.147/16 is routed, 10.148.0/24 holds an address, 10.148.17/24 is an LXD network: the next free one
    assert capsys.readouterr().out.strip() == "10.148.34.1/24"


def test_a_route_covering_all_of_ten_moves_to_172(pick, capsys):
    module, answers = pick
    answers["route"] = [{"dst": "10.0.0.0/8"}]
    assert module.main(["pick_subnet.py"]) == 0
    assert capsys.readouterr().out.strip() == "172.16.0.1/24"


def test_nothing_free_is_an_error_naming_the_variable(pick, capsys):
    module, answers = pick
    answers["route"] = [{"dst": "10.0.0.0/8"}, {"dst": "172.16.0.0/12"}]
    assert module.main(["pick_subnet.py"]) == 1
    assert "lxd_lab_network_ipv4" in capsys.readouterr().err
