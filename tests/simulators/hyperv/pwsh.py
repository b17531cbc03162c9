# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the emulator knows about PowerShell: the grammar check, the cmdlet table and error records.

The emulator never runs PowerShell. It parses every script with the tree-sitter PowerShell grammar,
checks every command the script calls against ``cmdlets.txt`` and renders failures the way
``powershell.exe -EncodedCommand`` prints them on stderr over WinRS (CLIXML).
"""

from __future__ import annotations

import os
import re
from xml.sax.saxutils import escape

import tree_sitter_powershell
from tree_sitter import Language, Parser

_LANGUAGE = Language(tree_sitter_powershell.language())
TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cmdlets.txt')


class PSError(Exception):
    """A PowerShell error record: what ends up on stderr (CLIXML) with exit code 1."""

    def __init__(self, message, category='NotSpecified', reason='', target=':', fqid='', command='', position=None, activity=None):
        super().__init__(message)
        self.message = message
        self.category = category
        self.reason = reason
        self.target = target
        self.fqid = fqid
        self.command = command  # printed before the message: "Get-VM : ..."
        self.activity = command if activity is None else activity  # printed in CategoryInfo: "[Get-VM]"
        self.position = position  # (line text, 0-based line, 0-based column, width)

    def render(self):
        """The text PowerShell prints for this error record (lines, without line ends)."""
        lines = []
        if self.command:
            lines.append('%s : %s' % (self.command, self.message))
        elif self.category != 'ParserError':
            lines.append(self.message)
        if self.position is not None:
            text, row, col, width = self.position
            lines.append('At line:%d char:%d' % (row + 1, col + 1))
            lines.append('+ %s' % text)
            lines.append('+ %s%s' % (' ' * col, '~' * max(1, width)))
        if self.category == 'ParserError':
            lines.append(self.message)
        lines.append('    + CategoryInfo          : %s: (%s) [%s], %s' % (self.category, self.target, self.activity, self.reason))
        lines.append('    + FullyQualifiedErrorId : %s' % self.fqid)
        lines.append(' ')
        return lines

    def clixml(self):
        """The stderr bytes of a failed ``powershell.exe`` over WinRS: a CLIXML error stream."""
        return clixml_errors(self.render())


def clixml_escape(text):
    """Escape a string the way the CLIXML serializer does (control characters as _xHHHH_)."""
    out = []
    for i, ch in enumerate(text):
        if ch == '_' and re.match(r'_x[0-9A-Fa-f]{4}_', text[i:i + 7]):
            out.append('_x005F_')
        elif ord(ch) < 32 or ch in '\ufffe\uffff':
            out.append('_x%04X_' % ord(ch))
        else:
            out.append(ch)
    return escape(''.join(out))


def clixml_errors(lines):
    """``#< CLIXML`` followed by one ``<S S="Error">`` string per line, as powershell.exe writes stderr."""
    parts = ['<S S="Error">%s</S>' % clixml_escape(line + '\r\n') for line in lines]
    doc = '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">%s</Objs>' % ''.join(parts)
    return doc.encode('utf-8')


class CmdletTable:
    """The cmdlets the emulator accepts (``cmdlets.txt``)."""

    def __init__(self, path=TABLE_FILE):
        self.cmdlets = {}   # lower name -> (Name, module, [params], {alias lower: Param}, should_process)
        self.aliases = {}   # lower alias -> lower cmdlet name
        self.common = []
        self.common_aliases = {}
        self.exclusive = {}  # lower cmdlet -> [[parameters that belong to different parameter sets]]
        with open(path, encoding='utf-8') as handle:
            for raw in handle:
                line = raw.strip()
                if not line or line.startswith('#'):
                    continue
                words = line.split()
                if words[0] == 'common':
                    self.common, self.common_aliases = self._params(words[1:])
                elif words[0] == 'alias':
                    self.aliases[words[1].lower()] = words[2].lower()
                elif words[0] == 'exclusive':
                    self.exclusive.setdefault(words[1].lower(), []).append(words[2:])
                else:
                    name = words[1]
                    should_process = name.endswith('*')
                    name = name.rstrip('*')
                    params, aliases = self._params(words[2:])
                    self.cmdlets[name.lower()] = (name, words[0], params, aliases, should_process)

    @staticmethod
    def _params(words):
        params, aliases = [], {}
        for word in words:
            if '=' in word:
                alias, target = word.split('=', 1)
                aliases[alias.lower()] = target
            else:
                params.append(word)
        return params, aliases

    def resolve(self, name):
        """The canonical cmdlet name for a command name or alias, or None."""
        key = name.lower()
        key = self.aliases.get(key, key)
        entry = self.cmdlets.get(key)
        return entry[0] if entry else None

    def class_name(self, cmdlet):
        name, module = self.cmdlets[cmdlet.lower()][:2]
        if module == 'Hyper-V':
            return 'Microsoft.HyperV.PowerShell.Commands.' + name.replace('-', '')
        return 'Microsoft.PowerShell.Commands.%sCommand' % name.replace('-', '')

    def bind(self, cmdlet, given):
        """The canonical parameter for ``-given``; raises KeyError or ValueError (ambiguous)."""
        name, _module, params, aliases, should_process = self.cmdlets[cmdlet.lower()]
        del name
        every = list(params) + list(self.common) + (['WhatIf', 'Confirm'] if should_process else [])
        alias_map = dict(self.common_aliases)
        alias_map.update(aliases)
        if should_process:
            alias_map.update({'wi': 'WhatIf', 'cf': 'Confirm'})
        key = given.lower()
        for param in every:
            if param.lower() == key:
                return param
        if key in alias_map:
            return alias_map[key]
        matches = sorted({p for p in every if p.lower().startswith(key)} | {t for a, t in alias_map.items() if a.startswith(key)})
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ValueError(matches)
        raise KeyError(given)


class Call:
    """One command of a parsed script: the canonical cmdlet (or function) and its named parameters."""

    def __init__(self, name, cmdlet, params, node, values=None):
        self.name = name
        self.cmdlet = cmdlet
        self.params = params
        self.node = node
        self.values = values or {}  # parameter -> the text of its value (None for a switch), splatted ones included


class Script:
    """A parsed and checked script."""

    def __init__(self, text, tree, calls):
        self.text = text
        self.tree = tree
        self.calls = calls

    def calls_to(self, cmdlet):
        return [c for c in self.calls if c.cmdlet is not None and c.cmdlet.lower() == cmdlet.lower()]


# A numeric literal with an optional type suffix (l, d) and multiplier (kb ... pb), as about_Numeric_Literals lists them.
NUMBER_RE = re.compile(r'^(0x[0-9a-f]+|\d+(\.\d+)?(e[+-]?\d+)?)[ld]?(kb|mb|gb|tb|pb)?$', re.IGNORECASE)
_PARAM_RE = re.compile(r'^-([A-Za-z_][A-Za-z0-9_]*)')


def _position(lines, node, width=None):
    row, col = node.start_point
    text = lines[row] if row < len(lines) else ''
    if width is None:
        if node.end_point[0] == row:
            width = node.end_point[1] - col
        else:
            width = len(text) - col
    # tree-sitter columns are byte offsets: convert to characters
    line_bytes = text.encode('utf-8')
    col_chars = len(line_bytes[:col].decode('utf-8', 'replace'))
    return (text, row, col_chars, width)


def _walk(node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _parse_error(text, tree):
    lines = text.split('\n')
    lines = [line.rstrip('\r') for line in lines]
    for node in _walk(tree.root_node):
        if node.is_missing:
            token = node.type
            if token == '}':
                msg, fqid = "Missing closing '}' in statement block or type definition.", 'MissingEndCurlyBrace'
            elif token == ')':
                msg, fqid = "Missing closing ')' in expression.", 'MissingEndParenthesisInExpression'
            elif token == ']':
                msg, fqid = "Missing ']' at end of attribute or type literal.", 'EndSquareBracketExpectedAtEndOfAttribute'
            elif token in ('"', "'"):
                msg, fqid = 'The string is missing the terminator: %s.' % token, 'TerminatorExpectedAtEndOfString'
            else:
                msg, fqid = "Missing '%s' in statement." % token, 'MissingToken'
            return PSError(msg, 'ParserError', 'ParentContainsErrorRecordException', fqid=fqid, position=_position(lines, node, 1))
        if node.type == 'ERROR':
            leaf = node
            while leaf.children:
                leaf = leaf.children[0]
            bad = (leaf.text.decode('utf-8', 'replace').strip() or node.text.decode('utf-8', 'replace').strip()).split('\n')[0][:40]
            if bad.startswith(('"', "'")):
                msg, fqid = 'The string is missing the terminator: %s.' % bad[0], 'TerminatorExpectedAtEndOfString'
            else:
                msg, fqid = "Unexpected token '%s' in expression or statement." % bad, 'UnexpectedToken'
            return PSError(msg, 'ParserError', 'ParentContainsErrorRecordException', fqid=fqid, position=_position(lines, leaf))
    return PSError('The script could not be parsed.', 'ParserError', 'ParentContainsErrorRecordException', fqid='ParseError')


def _splat_keys(tree):
    """Hashtable keys assigned to each variable (``$p = @{ K = 1 }``, ``$p.K = 1``, ``$p['K'] = 1``): splatting."""
    keys = {}
    for node in _walk(tree.root_node):
        if node.type != 'assignment_expression' or not node.children:
            continue
        left = node.children[0]
        target = left.text.decode('utf-8').strip()
        if re.match(r'^\$[A-Za-z_][A-Za-z0-9_]*$', target):
            value = node.children[-1]
            hashes = [n for n in _walk(value) if n.type == 'hash_literal_expression']
            if hashes:
                body = next((c for c in hashes[0].children if c.type == 'hash_literal_body'), None)
                for entry in (body.children if body is not None else []):
                    name = next((c for c in entry.children if c.type == 'key_expression'), None)
                    if name is not None:
                        keys.setdefault(target[1:].lower(), []).append(name.text.decode('utf-8').strip('\'"'))
            continue
        match = re.match(r'^\$([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*[\'"]([A-Za-z_][A-Za-z0-9_]*)[\'"]\s*\])$', target)
        if match:
            keys.setdefault(match.group(1).lower(), []).append(match.group(2) or match.group(3))
    return keys


def _splat_values(tree):
    """The value text of each splatted key: ``{variable: {Key: text}}`` (the last assignment wins, as it would at run time)."""
    values = {}
    for node in _walk(tree.root_node):
        if node.type == 'hash_entry':
            name = next((c for c in node.children if c.type == 'key_expression'), None)
            value = next((c for c in node.children if c.type == 'pipeline'), None)
            owner = node.parent
            while owner is not None and owner.type != 'assignment_expression':
                owner = owner.parent
            if name is not None and value is not None and owner is not None:
                target = owner.children[0].text.decode('utf-8').strip()
                if re.match(r'^\$[A-Za-z_][A-Za-z0-9_]*$', target):
                    values.setdefault(target[1:].lower(), {})[name.text.decode('utf-8').strip('\'"')] = value.text.decode('utf-8')
        elif node.type == 'assignment_expression' and node.children:
            target = node.children[0].text.decode('utf-8').strip()
            match = re.match(r'^\$([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*[\'"]([A-Za-z_][A-Za-z0-9_]*)[\'"]\s*\])$', target)
            if match:
                values.setdefault(match.group(1).lower(), {})[match.group(2) or match.group(3)] = node.children[-1].text.decode('utf-8')
    return values


def _argument_after(element):
    """The text of the argument that follows a ``-Parameter`` element (``-P value`` or ``-P:value``), or None for a switch."""
    sibling = element.next_sibling
    while sibling is not None and sibling.type == 'command_argument_sep':
        sibling = sibling.next_sibling
    if sibling is None or sibling.type == 'command_parameter':
        return None
    return sibling.text.decode('utf-8')


class Checker:
    """Parses scripts and checks their commands against the cmdlet table."""

    def __init__(self, table=None):
        self.table = table or CmdletTable()
        self.parser = Parser(_LANGUAGE)

    def check(self, text):
        """Parse and check ``text``; return a Script or raise PSError like PowerShell would."""
        tree = self.parser.parse(text.encode('utf-8'))
        if tree.root_node.has_error:
            raise _parse_error(text, tree)
        lines = [line.rstrip('\r') for line in text.split('\n')]
        functions = set()
        for node in _walk(tree.root_node):
            if node.type == 'function_statement':
                for child in node.children:
                    if child.type == 'function_name':
                        functions.add(child.text.decode('utf-8').lower())
        splats = _splat_keys(tree)
        splat_values = _splat_values(tree)
        calls = []
        for node in _walk(tree.root_node):
            if node.type != 'command':
                continue
            name_node = node.child_by_field_name('command_name')
            if name_node is None or name_node.type != 'command_name':
                continue  # & (expression), . (expression): nothing to look up statically
            name = name_node.text.decode('utf-8')
            if NUMBER_RE.match(name):
                # 1GB, 512MB * 2, 0x10kb: a statement that starts with a numeric literal (multiplier suffix and all) is an
                # expression to PowerShell; the grammar reads the literal as a command name.
                continue
            if name.lower() in functions:
                calls.append(Call(name, None, {}, node))
                continue
            cmdlet = self.table.resolve(name)
            if cmdlet is None:
                raise PSError(
                    "The term '%s' is not recognized as the name of a cmdlet, function, script file, or operable program. "
                    'Check the spelling of the name, or if a path was included, verify that the path is correct and try again.' % name,
                    'ObjectNotFound', 'CommandNotFoundException', target='%s:String' % name, fqid='CommandNotFoundException',
                    command=name, activity='', position=_position(lines, name_node))
            params = {}
            elements = node.child_by_field_name('command_elements')
            given_params = []
            given_values = {}
            for element in (elements.children if elements is not None else []):
                if element.type == 'command_parameter':
                    match = _PARAM_RE.match(element.text.decode('utf-8'))
                    if match:
                        given_params.append((match.group(1), element))
                        given_values[element] = _argument_after(element)
                    continue
                for inner in _walk(element):
                    word = inner.text.decode('utf-8')
                    if inner.type == 'variable' and word.startswith('@'):
                        for k in dict.fromkeys(splats.get(word[1:].lower(), ())):
                            given_params.append((k, inner))
                            given_values[(inner, k)] = splat_values.get(word[1:].lower(), {}).get(k)
            values = {}
            for given, element in given_params:
                try:
                    param = self.table.bind(cmdlet, given)
                except KeyError:
                    raise PSError(
                        "A parameter cannot be found that matches parameter name '%s'." % given,
                        'InvalidArgument', 'ParameterBindingException', fqid='NamedParameterNotFound,%s' % self.table.class_name(cmdlet),
                        command=cmdlet, target=':', position=_position(lines, element)) from None
                except ValueError as exc:
                    raise PSError(
                        "Parameter cannot be processed because the parameter name '%s' is ambiguous. Possible matches include: %s."
                        % (given, ' '.join('-' + p for p in exc.args[0])),
                        'InvalidArgument', 'ParameterBindingException', fqid='AmbiguousParameter,%s' % self.table.class_name(cmdlet),
                        command=cmdlet, target=':', position=_position(lines, element)) from None
                if param in params:
                    raise PSError(
                        "Cannot bind parameter because parameter '%s' is specified more than once. To provide multiple values to "
                        'parameters that can accept multiple values, use the array syntax. For example, "-parameter value1,value2,value3".'
                        % param, 'InvalidArgument', 'ParameterBindingException', fqid='ParameterAlreadyBound,%s' % self.table.class_name(cmdlet),
                        command=cmdlet, position=_position(lines, element))
                params[param] = element
                values[param] = given_values.get(element, given_values.get((element, given)))
            for group in self.table.exclusive.get(cmdlet.lower(), ()):
                if len([p for p in group if p in params]) > 1:
                    raise PSError(
                        'Parameter set cannot be resolved using the specified named parameters.', 'InvalidArgument',
                        'ParameterBindingException', fqid='AmbiguousParameterSet,%s' % self.table.class_name(cmdlet), command=cmdlet,
                        position=_position(lines, node))
            calls.append(Call(name, cmdlet, params, node, values))
        return Script(text, tree, calls)
