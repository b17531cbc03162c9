# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every benchmark in bench/ shares: the looped play, running playbooks and inventories, timing imports."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")

# One task looping over ``count`` items; each row fills in its module and arguments.
PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: {name}
      {module}:
{args}
      loop: "{{{{ range(1, {count} + 1) | list }}}}"
"""


def tool(name):
    """An ansible command of the venv that runs the benchmark (the tools venv, which has the other collections)."""
    return os.path.join(os.path.dirname(sys.executable), name)


def ansible_env(**extra):
    """The environment for the playbooks: our collection, the repository's ansible.cfg, this interpreter."""
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_STDOUT_CALLBACK="default", **extra)


def write_plays(work, rows, count):
    """One playbook per row ({row: (module, args)}); returns {row: path}."""
    paths = {}
    for row, (module, module_args) in rows.items():
        paths[row] = os.path.join(work, "%s.yml" % re.sub(r"[^A-Za-z0-9.]+", "-", row).strip("-"))
        with open(paths[row], "w", encoding="utf-8") as handle:
            handle.write(PLAY.format(name=row, module=module, args=module_args, count=count))
    return paths


def run_playbook(path, env, check_noop=True):
    """Wall time of one ansible-playbook run; a failure, or a change where a no-op was meant, ends the benchmark."""
    started = time.perf_counter()
    done = subprocess.run([tool("ansible-playbook"), path], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit("%s failed:\n%s\n%s" % (path, done.stdout[-3000:], done.stderr[-3000:]))
    if check_noop and "changed=0" not in done.stdout:
        sys.exit("%s was not a no-op:\n%s" % (path, done.stdout[-3000:]))
    return elapsed


def python_seconds(code, env, repeat=5):
    """Median wall time of running ``code`` in a fresh interpreter (what a module pays at start)."""
    times = []
    for _attempt in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def unwrap(value):
    """ansible-inventory's JSON with the unsafe markers taken off."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return dict((key, unwrap(item)) for key, item in value.items())
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def inventory(path, env):
    """One ``ansible-inventory --list`` in a fresh process: (seconds, the listing, its stderr)."""
    started = time.perf_counter()
    done = subprocess.run([tool("ansible-inventory"), "-i", path, "--list"], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit("%s failed:\n%s" % (path, done.stderr[-3000:]))
    return elapsed, unwrap(json.loads(done.stdout)), done.stderr
