# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The AWX credential types in extensions/awx/credential_types/: AWX's rules, and the code's variables.

AWX's rules are those its API applies to a custom credential type (inputs: ordered fields with an id and
a label, type string or boolean, format ssh_private_key or url, choices, multiline and secret on strings
only; injectors: file templates, env and extra_vars, templates that use only defined fields). The
variables are read from the code, not listed here: ``_args.py`` says which connection keys each backend
reads and how a key's environment variable is named, the ``connection`` doc fragment says which backends
document a key, and each backend's driver must read the key from its settings. A rename there fails here.
"""
from __future__ import annotations

import ast
import os
import re

import jinja2
import jinja2.sandbox
import pytest
import yaml

from ansible.module_utils.parsing.convert_bool import boolean

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TYPES_DIR = os.path.join(ROOT, 'extensions', 'awx', 'credential_types')
ARGS_PY = os.path.join(ROOT, 'plugins', 'module_utils', '_args.py')
FRAGMENT_PY = os.path.join(ROOT, 'plugins', 'doc_fragments', 'connection.py')
BACKENDS_DIR = os.path.join(ROOT, 'plugins', 'module_utils', '_backends')

NAME_RE = re.compile(r'^[a-zA-Z_]+[a-zA-Z0-9_]*$')
FILE_KEY_RE = re.compile(r'^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$')
FIELD_KEYS = {'id', 'label', 'help_text', 'type', 'format', 'choices', 'multiline', 'secret', 'ask_at_runtime', 'default'}
STRING_ONLY = ('choices', 'multiline', 'format', 'secret')


def _module_constants(path):
    """The module-level constants of a Python file (literal assignments), and its functions, by name."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    constants, functions = {}, {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = node
    return constants, functions


ARGS, ARGS_FUNCTIONS = _module_constants(ARGS_PY)


def _env_prefix_format():
    """The format string ``_from_env`` builds a variable name with, e.g. ``POLYVIRT_%s_%s``."""
    formats = [node.value for node in ast.walk(ARGS_FUNCTIONS['_from_env'])
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith('POLYVIRT_')]
    assert len(formats) == 1, formats
    return formats[0]


def env_name(backend, key):
    """The variable the modules read for ``key`` of ``backend`` (as _args._from_env names it)."""
    return _env_prefix_format() % (backend.upper(), key.upper())


def _fragment_backends():
    """Connection key -> the backends its doc names in bold (B(lxd) ...)."""
    with open(FRAGMENT_PY, encoding='utf-8') as f:
        tree = ast.parse(f.read(), FRAGMENT_PY)
    docs = [node.value.value for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'DOCUMENTATION' for t in node.targets)]
    assert len(docs) == 1
    connection = yaml.safe_load(docs[0])['options']['connection']
    result = {}
    for key, spec in connection['suboptions'].items():
        description = spec['description']
        text = ' '.join(description) if isinstance(description, list) else description
        result[key] = set(re.findall(r'B\((\w+)\)', text))
    return result, connection


FRAGMENT_BACKENDS, CONNECTION_DOC = _fragment_backends()


def _driver_source(backend):
    directory = os.path.join(BACKENDS_DIR, backend)
    chunks = []
    for name in sorted(os.listdir(directory)):
        if name.endswith('.py'):
            with open(os.path.join(directory, name), encoding='utf-8') as f:
                chunks.append(f.read())
    return '\n'.join(chunks)


def _load(backend):
    with open(os.path.join(TYPES_DIR, backend + '.yml'), encoding='utf-8') as f:
        return yaml.safe_load(f)


def _render(template, namespace):
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(namespace)


class _Filenames:
    """``tower.filename``: one attribute per file template, as AWX provides it."""

    def __init__(self, names):
        for name in names:
            setattr(self, name, '/runner/env/' + name)


def _namespace(definition, values):
    files = [key.split('.', 1)[1] for key in definition['injectors'].get('file', {})]
    namespace = {field['id']: values(field) for field in definition['inputs']['fields']}
    namespace['tower'] = {'filename': _Filenames(files)}
    return namespace


BACKENDS = ARGS['BACKENDS']


def test_one_credential_type_per_backend():
    files = sorted(name[:-len('.yml')] for name in os.listdir(TYPES_DIR) if name.endswith('.yml'))
    assert files == sorted(BACKENDS)
    names = [_load(backend)['name'] for backend in BACKENDS]
    assert len(set(names)) == len(names)


def test_the_code_names_variables_as_the_doc_fragment_says():
    assert _env_prefix_format() == 'POLYVIRT_%s_%s'
    description = ' '.join(CONNECTION_DOC['description'])
    assert 'E(POLYVIRT_<BACKEND>_<KEY>)' in description
    for backend in BACKENDS:
        for key in ARGS['CONNECTION_KEYS'][backend]:
            assert backend in FRAGMENT_BACKENDS[key], 'the doc of connection.%s does not name B(%s)' % (key, backend)


@pytest.mark.parametrize('backend', BACKENDS)
def test_follows_awx_rules_for_inputs(backend):
    definition = _load(backend)
    assert set(definition) <= {'name', 'description', 'kind', 'inputs', 'injectors'}
    assert isinstance(definition['name'], str) and definition['name']
    assert definition['kind'] in ('cloud', 'net')  # the kinds AWX allows a custom credential type
    inputs = definition['inputs']
    assert set(inputs) <= {'fields', 'required'}
    ids, labels = [], []
    for field in inputs['fields']:
        assert set(field) <= FIELD_KEYS, field
        assert NAME_RE.match(field['id']) and field['id'] != 'tower', field
        assert isinstance(field['label'], str) and field['label'], field
        ids.append(field['id'])
        labels.append(field['label'])
        field_type = field.get('type', 'string')
        assert field_type in ('string', 'boolean'), field
        for key in STRING_ONLY:
            assert key not in field or field_type == 'string', (key, field)
        assert field.get('format', 'ssh_private_key') in ('ssh_private_key', 'url'), field
        for key in ('multiline', 'secret', 'ask_at_runtime'):
            assert isinstance(field.get(key, False), bool), (key, field)
        if 'choices' in field:
            choices = field['choices']
            assert choices and all(isinstance(c, str) for c in choices) and len(set(choices)) == len(choices), field
        if 'default' in field:
            assert isinstance(field['default'], {'string': str, 'boolean': bool}[field_type]), field
        if field.get('format') == 'ssh_private_key':
            assert field.get('secret') is True, field
    assert len(set(ids)) == len(ids), ids
    assert len(set(labels)) == len(labels), labels
    assert set(inputs.get('required', [])) <= set(ids)


@pytest.mark.parametrize('backend', BACKENDS)
def test_follows_awx_rules_for_injectors(backend):
    definition = _load(backend)
    injectors = definition['injectors']
    assert set(injectors) <= {'file', 'env', 'extra_vars'}
    files = list(injectors.get('file', {}))
    assert all(FILE_KEY_RE.match(key) for key in files), files
    assert 'template' not in files or len(files) == 1, 'single and multi-file syntax mixed'
    for name, value in injectors.get('env', {}).items():
        assert NAME_RE.match(name) and not name.startswith('ANSIBLE_'), name
        assert isinstance(value, str) and value.isascii(), (name, value)
    for name, value in injectors.get('extra_vars', {}).items():
        assert NAME_RE.match(name) and isinstance(value, str), name
    # AWX renders each template with every field defined; an undefined name fails to render
    namespace = _namespace(definition, lambda field: 'EXAMPLE')
    for kind in injectors:
        for name, template in injectors[kind].items():
            _render(template, namespace)


@pytest.mark.parametrize('backend', BACKENDS)
def test_injects_only_variables_the_modules_read(backend):
    definition = _load(backend)
    keys = ARGS['CONNECTION_KEYS'][backend]
    source = _driver_source(backend)
    env = definition['injectors']['env']
    for name in env:
        key = next((k for k in keys if env_name(backend, k) == name), None)
        assert key is not None, '%s is not read by the %s modules (their keys: %s)' % (name, backend, ', '.join(keys))
        assert re.search(r'settings(\.get\(|\[)["\']%s["\']' % key, source), 'the %s driver never reads connection.%s' % (backend, key)


@pytest.mark.parametrize('backend', BACKENDS)
def test_secrets_and_required_keys(backend):
    definition = _load(backend)
    fields = {field['id']: field for field in definition['inputs']['fields']}
    env = definition['injectors']['env']
    files = definition['injectors'].get('file', {})
    required = set(definition['inputs'].get('required', []))

    def fields_of(variable):
        used = set(re.findall(r'\b(\w+)\b', env[variable])) & set(fields)
        for name in re.findall(r'tower\.filename\.(\w+)', env[variable]):
            used |= set(re.findall(r'\b(\w+)\b', files['template.' + name])) & set(fields)
        return used

    for key in ARGS['SECRET_KEYS']:
        if key in ARGS['CONNECTION_KEYS'][backend]:
            variable = env_name(backend, key)
            assert variable in env, '%s (a secret) has no input' % variable
            assert all(fields[f].get('secret') for f in fields_of(variable)), variable
    for key in ARGS['CONNECTION_REQUIRED'].get(backend, ()):
        variable = env_name(backend, key)
        assert variable in env and fields_of(variable) <= required and fields_of(variable), variable
    # every input reaches the modules
    used = set()
    for variable in env:
        used |= fields_of(variable)
    assert used == set(fields), set(fields) - used


@pytest.mark.parametrize('backend', BACKENDS)
def test_empty_inputs_inject_nothing_the_modules_would_use(backend):
    """AWX leaves inputs the user did not give empty: the modules must then see empty variables (unset)."""
    definition = _load(backend)
    namespace = _namespace(definition, lambda field: False if field.get('type') == 'boolean' else '')
    rendered = {name: _render(value, namespace) for name, value in definition['injectors']['env'].items()}
    assert rendered == dict.fromkeys(rendered, '')


@pytest.mark.parametrize('backend', BACKENDS)
def test_values_have_the_type_the_modules_expect(backend):
    """Booleans render to what _args accepts, file contents to the file's path."""
    definition = _load(backend)
    namespace = _namespace(definition, lambda field: True if field.get('type') == 'boolean' else 'EXAMPLE')
    options = ARGS['CONNECTION_OPTIONS']
    for name, template in definition['injectors']['env'].items():
        key = next(k for k in ARGS['CONNECTION_KEYS'][backend] if env_name(backend, k) == name)
        value = _render(template, namespace)
        if options[key]['type'] == 'bool':
            assert boolean(value, strict=True) is False, (name, value)  # only ever turns verification off
        if options[key]['type'] == 'path':
            assert value.startswith('/runner/env/'), (name, value)  # a file AWX wrote, never the content
