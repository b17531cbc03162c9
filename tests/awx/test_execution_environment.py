# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/execution-environment.yml: the build context ansible-builder renders from it, and its requirements.

No container is built. ``ansible-builder create`` renders the context; the builder stage's own script
(``_build/scripts/introspect.py``, the one the image build runs) then reads it laid out as the
Containerfile's COPY steps lay it out, and must find every backend's requirements. A fresh venv gets the
Python requirements and must import every backend's driver and library.

POLYVIRT_LINT_BIN is the bin directory of the venv with ansible-builder (the Makefile's .build/lint-venv).
"""
from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import venv

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EE_FILE = os.path.join(ROOT, 'meta', 'execution-environment.yml')
LINT_BIN = os.environ.get('POLYVIRT_LINT_BIN', os.path.join(ROOT, '.build', 'lint-venv', 'bin'))
BACKENDS = ('lxd', 'proxmox', 'hikube', 'cloudcix', 'hyperv')


def _read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def _requirement_lines(path):
    """The requirement lines of a pip file, with -r files expanded (relative to the including file)."""
    lines = []
    for line in _read(path).splitlines():
        line = re.sub(r'(^|\s+)#.*$', '', line).strip()
        if not line:
            continue
        if line.startswith('-r '):
            lines.extend(_requirement_lines(os.path.join(os.path.dirname(path), line[3:].strip())))
        else:
            lines.append(line)
    return lines


def _bindep_lines(path):
    return [line.strip() for line in _read(path).splitlines() if line.strip() and not line.startswith('#')]


def _introspected(path):
    """introspect.py's written file: the entries without its '# from collection X' notes."""
    return sorted(set(line.split('  #')[0].strip() for line in _read(path).splitlines() if line.strip()))


@pytest.fixture(scope='module')
def definition():
    with open(EE_FILE, encoding='utf-8') as f:
        return yaml.safe_load(f)


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    builder = os.path.join(LINT_BIN, 'ansible-builder')
    assert os.path.exists(builder), 'no ansible-builder at %s (make awx installs it)' % builder
    out = tmp_path_factory.mktemp('context')
    result = subprocess.run([builder, 'create', '-f', EE_FILE, '-c', str(out), '--output-filename', 'Containerfile'],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_backend_requirements_are_all_in_the_environment():
    """requirements.txt (what the environment installs) includes each backend's file, and meta/ has the same files."""
    included = re.findall(r'^-r (\S+)$', _read(os.path.join(ROOT, 'requirements.txt')), re.M)
    assert sorted(included) == sorted('requirements/%s.txt' % backend for backend in BACKENDS)
    assert sorted(os.listdir(os.path.join(ROOT, 'requirements'))) == sorted('%s.txt' % backend for backend in BACKENDS)
    for name in ('requirements.txt', 'bindep.txt'):
        assert filecmp.cmp(os.path.join(ROOT, name), os.path.join(ROOT, 'meta', name), shallow=False), name


def test_rendered_containerfile(context, definition):
    containerfile = _read(os.path.join(str(context), 'Containerfile'))
    deps = definition['dependencies']
    assert 'ARG EE_BASE_IMAGE="%s"' % definition['images']['base_image']['name'] in containerfile
    assert 'ARG PYCMD="%s"' % deps['python_interpreter']['python_path'] in containerfile
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, re.M).group(1)
    assert refs.split() == [deps['ansible_core']['package_pip'], deps['ansible_runner']['package_pip']]
    builder_stage = containerfile.split('FROM base AS builder', 1)[1].split('FROM base AS final', 1)[0]
    assert 'introspect --user-pip=requirements.txt --user-bindep=bindep.txt' in builder_stage
    assert builder_stage.index('COPY _build/requirements/ requirements/') < builder_stage.index('introspect.py')
    build = os.path.join(str(context), '_build')
    assert filecmp.cmp(os.path.join(build, 'requirements.txt'), os.path.join(ROOT, 'meta', 'requirements.txt'), shallow=False)
    assert filecmp.cmp(os.path.join(build, 'bindep.txt'), os.path.join(ROOT, 'meta', 'bindep.txt'), shallow=False)
    for backend in BACKENDS:
        name = os.path.join('requirements', '%s.txt' % backend)
        assert filecmp.cmp(os.path.join(build, name), os.path.join(ROOT, name), shallow=False), name


def _builder_workdir(context, tmp_path):
    """The builder stage's WORKDIR after the Containerfile's COPY steps from _build, done here."""
    containerfile = _read(os.path.join(str(context), 'Containerfile'))
    builder_stage = containerfile.split('FROM base AS builder', 1)[1].split('FROM base AS final', 1)[0]
    workdir = tmp_path / 'build'
    workdir.mkdir()
    copies = re.findall(r'^COPY (_build/\S*) (\S+)$', builder_stage, re.M)
    assert copies, builder_stage
    for src, dest in copies:
        src_path = os.path.join(str(context), src)
        if os.path.isdir(src_path):
            shutil.copytree(src_path, str(workdir / dest), dirs_exist_ok=True)
        else:
            shutil.copy(src_path, str(workdir / dest))
    return workdir


def _introspect(context, workdir, collections, tmp_path):
    result = subprocess.run(
        [os.path.join(LINT_BIN, 'python'), os.path.join(str(context), '_build', 'scripts', 'introspect.py'), 'introspect',
         '--user-pip=requirements.txt', '--user-bindep=bindep.txt',
         '--write-pip=%s' % (tmp_path / 'pip.txt'), '--write-bindep=%s' % (tmp_path / 'bindep.txt'), str(collections)],
        cwd=str(workdir), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return _introspected(str(tmp_path / 'pip.txt')), _introspected(str(tmp_path / 'bindep.txt'))


def test_the_builder_stage_finds_every_backend_requirement(context, tmp_path):
    """What the image build installs: introspect.py run on the rendered context, with no collection installed."""
    workdir = _builder_workdir(context, tmp_path)
    empty = tmp_path / 'collections'
    empty.mkdir()
    pip, bindep = _introspect(context, workdir, empty, tmp_path)
    assert pip == sorted(set(_requirement_lines(os.path.join(ROOT, 'requirements.txt'))))
    assert bindep == sorted(set(_bindep_lines(os.path.join(ROOT, 'bindep.txt'))))
    for backend in BACKENDS:
        assert set(_requirement_lines(os.path.join(ROOT, 'requirements', '%s.txt' % backend))) <= set(pip), backend


def test_the_collection_declares_the_same_when_installed_elsewhere(context, tmp_path):
    """ansible-builder building another environment with this collection in it reads meta/ from the collection root."""
    collections = tmp_path / 'collections'
    (collections / 'ansible_collections' / 'polyvirt').mkdir(parents=True)
    os.symlink(ROOT, str(collections / 'ansible_collections' / 'polyvirt' / 'compute'))
    workdir = tmp_path / 'nothing'
    workdir.mkdir()
    (workdir / 'requirements.txt').write_text('')
    (workdir / 'bindep.txt').write_text('')
    pip, bindep = _introspect(context, workdir, collections, tmp_path)
    assert pip == sorted(set(_requirement_lines(os.path.join(ROOT, 'requirements.txt'))))
    assert bindep == sorted(set(_bindep_lines(os.path.join(ROOT, 'bindep.txt'))))


_IMPORT_CHECK = r'''
import importlib, importlib.metadata as md, json, re, sys
from packaging.requirements import Requirement
from ansible_collections.polyvirt.compute.plugins.module_utils._backends import registry

def top_levels(dist):
    """The import names a distribution installs (top_level.txt, else its RECORD)."""
    d = md.distribution(dist)
    text = d.read_text('top_level.txt')
    if text:
        return [n for n in text.split() if not n.startswith('_')]
    names = set()
    for f in d.files or []:
        first = f.parts[0]
        if first.endswith(('.dist-info', '.data')) or first.startswith('_') or first == '..':
            continue
        names.add(first[:-3] if first.endswith('.py') else first)
    return sorted(n for n in names if re.match(r'^[A-Za-z]\w*$', n))

report = {}
for backend, lines in json.loads(sys.argv[1]).items():
    cls = registry.backend_class(backend)
    imported = []
    for line in lines:
        req = Requirement(line)
        dists = [req.name]
        for extra in req.extras:
            for dep in md.requires(req.name) or []:
                dep_req = Requirement(dep)
                if dep_req.marker is not None and dep_req.marker.evaluate({'extra': extra}):
                    dists.append(dep_req.name)
        for dist in dists:
            for name in top_levels(dist):
                importlib.import_module(name)
                imported.append(name)
    report[backend] = {'driver': cls.__name__, 'imported': sorted(set(imported))}
print(json.dumps(report))
'''


def test_requirements_install_into_a_fresh_venv_and_every_backend_imports(context, tmp_path, definition):
    """What the builder stage hands to pip (with the environment's ansible-core) is enough for every driver."""
    empty = tmp_path / 'collections-none'
    empty.mkdir()
    pip_lines = _introspect(context, _builder_workdir(context, tmp_path), empty, tmp_path)[0]
    (tmp_path / 'install.txt').write_text('\n'.join(pip_lines) + '\n')
    env_dir = tmp_path / 'venv'
    venv.EnvBuilder(with_pip=True).create(str(env_dir))
    python = str(env_dir / 'bin' / 'python')
    install = subprocess.run(
        [python, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', definition['dependencies']['ansible_core']['package_pip'],
         '-r', str(tmp_path / 'install.txt')],
        capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    per_backend = {backend: _requirement_lines(os.path.join(ROOT, 'requirements', '%s.txt' % backend)) for backend in BACKENDS}
    extras = [line for line in _requirement_lines(os.path.join(ROOT, 'requirements.txt'))
              if not any(line in lines for lines in per_backend.values())]
    per_backend['hyperv'] = per_backend['hyperv'] + extras
    collections = tmp_path / 'collections'
    (collections / 'ansible_collections' / 'polyvirt').mkdir(parents=True)
    os.symlink(ROOT, str(collections / 'ansible_collections' / 'polyvirt' / 'compute'))
    result = subprocess.run([python, '-c', _IMPORT_CHECK, json.dumps(per_backend)], cwd=str(tmp_path),
                            env={'PYTHONPATH': str(collections), 'PATH': os.environ.get('PATH', '')},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert sorted(report) == sorted(BACKENDS)
    for backend in BACKENDS:
        assert report[backend]['driver'].endswith('Backend'), report[backend]
        if per_backend[backend]:
            assert report[backend]['imported'], backend
    assert 'requests_credssp' in report['hyperv']['imported']
