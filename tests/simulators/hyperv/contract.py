# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The script contract: from a WinRS command line (and stdin) to stdout, stderr and an exit code.

See README.md, section "The script contract", for the rules this module enforces.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time

from .model import HOST_NAME, HyperVError
from .pwsh import Checker, PSError, clixml_errors, clixml_escape

HEADER_RE = re.compile(r'^# polyvirt-hyperv: ([a-z_]+) ([A-Za-z0-9+/]*={0,2})$')
B64_ARG_RE = re.compile(r"\[Convert\]::FromBase64String\(\s*'([^']*)'\s*\)", re.IGNORECASE)
BOOTSTRAP_RE = re.compile(r'\[Console\]::In\.ReadToEnd\(\)', re.IGNORECASE)
ENCODED_FLAGS = ('-encodedcommand', '-enc', '-ec', '-e', '-en', '-enco', '-encod', '-encode', '-encoded')
PROGRESS_OFF_RE = re.compile(r"\$ProgressPreference\s*=\s*['\"]SilentlyContinue['\"]", re.IGNORECASE)
# What powershell.exe writes to stderr over WinRS when progress records are not silenced (module loading).
PROGRESS_CLIXML = (
    b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><Obj S="progress" RefId="0">'
    b'<TN RefId="0"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N="SourceId">1</I64>'
    b'<PR N="Record"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR>'
    b'<SD> </SD></PR></MS></Obj></Objs>')
# Argument keys whose values come from users: they must never appear literally in the script body.
USER_KEYS = ('name', 'new_name', 'path', 'vhd_path', 'vm_path', 'parent_path', 'notes', 'checkpoint', 'nic', 'switch', 'mac', 'data', 'filter')
# Cmdlets that prompt for confirmation unless one of these parameters is given; -NonInteractive makes the prompt fail.
PROMPTS = {'Restore-VMSnapshot': ('Confirm',), 'Remove-VM': ('Force', 'Confirm'), 'Restart-VM': ('Force', 'Confirm')}


def _need(cmdlet, *params):
    return ((cmdlet, params),)


def _either(*alternatives):
    return tuple((alt[0], tuple(alt[1:])) for alt in alternatives)


def _set_needs(a):
    needs = []
    if a.get('cpu') is not None:
        needs.append(_need('Set-VMProcessor', 'Count'))
    for k, param in (('memory_startup', 'StartupBytes'), ('memory_minimum', 'MinimumBytes'), ('memory_maximum', 'MaximumBytes'),
                     ('dynamic_memory', 'DynamicMemoryEnabled')):
        if a.get(k) is not None:
            needs.append(_need('Set-VMMemory', param))
    if a.get('notes') is not None:
        needs.append(_need('Set-VM', 'Notes'))
    if a.get('checkpoint_type') is not None:
        needs.append(_need('Set-VM', 'CheckpointType'))
    if a.get('secure_boot') is not None:
        needs.append(_need('Set-VMFirmware', 'EnableSecureBoot'))
    if a.get('secure_boot_template'):
        needs.append(_need('Set-VMFirmware', 'SecureBootTemplate'))
    if a.get('kvp') is not None:
        needs.append(_need('Enable-VMIntegrationService' if a['kvp'] else 'Disable-VMIntegrationService', 'Name'))
    return needs


def _create_needs(a):
    params = ['Name']
    for k, param in (('generation', 'Generation'), ('memory_startup', 'MemoryStartupBytes'), ('switch', 'SwitchName'),
                     ('vhd_path', 'VHDPath'), ('path', 'Path')):
        if a.get(k) is not None:
            params.append(param)
    if a.get('new_vhd'):
        params += ['NewVHDPath', 'NewVHDSizeBytes']
    elif not a.get('vhd_path'):
        params.append('NoVHD')
    rest = {k: v for k, v in a.items() if k not in ('memory_startup',)}
    return [_need('New-VM', *params)] + _set_needs(rest)


STOP_NEEDS = {
    'shutdown': _need('Stop-VM'), 'force': _need('Stop-VM', 'Force'), 'turnoff': _need('Stop-VM', 'TurnOff'),
    'save': _either(('Stop-VM', 'Save'), ('Save-VM',)),
}
VHD_NEEDS = {'dynamic': ('SizeBytes', 'Dynamic'), 'fixed': ('SizeBytes', 'Fixed'), 'differencing': ('ParentPath', 'Differencing')}

# op -> (required argument keys, function(args) -> list of requirements). A requirement is a tuple of
# alternatives (cmdlet, parameters): the script must call one of them with at least those parameters.
OPS = {
    'host_get': ((), lambda a: [_need('Get-VMHost')]),
    'switch_list': ((), lambda a: [_need('Get-VMSwitch')]),
    'vm_list': ((), lambda a: [_need('Get-VM')]),
    'vm_get': (('name',), lambda a: [_need('Get-VM', 'Name')]),
    'vm_create': (('name', 'generation', 'memory_startup'), _create_needs),
    'vm_set': (('name',), _set_needs),
    'vm_rename': (('name', 'new_name'), lambda a: [_need('Rename-VM', 'NewName')]),
    'vm_start': (('name',), lambda a: [_need('Start-VM')] + ([_need('Wait-VM', 'For')] if a.get('wait_ip') else [])),
    'vm_wait': (('name',), lambda a: [_need('Wait-VM', 'For', 'Timeout')]),
    'vm_stop': (('name',), lambda a: [STOP_NEEDS.get(a.get('mode', 'shutdown'), _need('Stop-VM'))]),
    'vm_restart': (('name',), lambda a: [_need('Restart-VM', 'Force')]),
    'vm_suspend': (('name',), lambda a: [_need('Suspend-VM')]),
    'vm_resume': (('name',), lambda a: [_need('Resume-VM')]),
    'vm_remove': (('name',), lambda a: [_need('Remove-VM', 'Force')] + ([_need('Remove-Item')] if a.get('delete_disks') or a.get('delete_files') else [])),
    'vhd_get': (('path',), lambda a: [_need('Get-VHD', 'Path')]),
    'vhd_create': (('path',), lambda a: [_need('New-VHD', 'Path', *VHD_NEEDS.get(a.get('type', 'dynamic'), ()))]),
    'vhd_resize': (('path', 'size'), lambda a: [_need('Resize-VHD', 'Path', 'SizeBytes')]),
    'vhd_remove': (('path',), lambda a: [_need('Remove-Item')]),
    'disk_list': (('name',), lambda a: [_need('Get-VMHardDiskDrive')]),
    'disk_attach': (('name', 'path'), lambda a: [_need('Add-VMHardDiskDrive', 'Path', *[
        p for k, p in (('controller_type', 'ControllerType'), ('controller_number', 'ControllerNumber'),
                       ('controller_location', 'ControllerLocation')) if a.get(k) is not None])]),
    'disk_detach': (('name', 'path'), lambda a: [_need('Remove-VMHardDiskDrive')]),
    'nic_list': (('name',), lambda a: [_need('Get-VMNetworkAdapter')]),
    'nic_add': (('name', 'nic'), lambda a: [_need('Add-VMNetworkAdapter', 'Name', *(
        (['SwitchName'] if a.get('switch') else []) + (['StaticMacAddress'] if a.get('mac') else [])))]),
    'nic_remove': (('name', 'nic'), lambda a: [_need('Remove-VMNetworkAdapter', 'Name')]),
    'nic_connect': (('name', 'nic'), lambda a: [
        _need('Connect-VMNetworkAdapter', 'SwitchName') if a.get('switch') else _need('Disconnect-VMNetworkAdapter')]),
    'nic_vlan': (('name', 'nic'), lambda a: [
        _need('Set-VMNetworkAdapterVlan', 'Access', 'VlanId') if a.get('vlan_id') else _need('Set-VMNetworkAdapterVlan', 'Untagged')]),
    'checkpoint_list': (('name',), lambda a: [_need('Get-VMSnapshot')]),
    'checkpoint_create': (('name', 'checkpoint'), lambda a: [_need('Checkpoint-VM', 'SnapshotName')]),
    'checkpoint_restore': (('name', 'checkpoint'), lambda a: [_need('Restore-VMSnapshot', 'Name')]),
    'checkpoint_remove': (('name', 'checkpoint'), lambda a: [_need('Remove-VMSnapshot', 'Name', *(
        ['IncludeAllChildSnapshots'] if a.get('include_children') else []))]),
    'vm_export': (('name', 'path'), lambda a: [_need('Export-VM', 'Path')]),
    'vm_import': (('path',), lambda a: [_need('Import-VM', 'Path', 'Copy', 'GenerateNewId', *(
        (['VirtualMachinePath'] if a.get('vm_path') else []) + (['VhdDestinationPath'] if a.get('vhd_path') else [])))]
        + ([_need('Rename-VM', 'NewName')] if a.get('new_name') else [])),
    'dir_list': (('path',), lambda a: [_need('Get-ChildItem', 'LiteralPath', *(
        (['Recurse'] if a.get('recurse') else []) + (['Filter'] if a.get('filter') else [])))]),
    'file_write': (('path', 'data'), lambda a: [
        _need('Add-Content' if a.get('append') else 'Set-Content', 'LiteralPath', 'Value', 'Encoding')]),
    'file_read': (('path',), lambda a: [_need('Get-Content', 'LiteralPath', 'Encoding')]),
    'item_remove': (('path',), lambda a: [_need('Remove-Item', 'LiteralPath', *(['Recurse'] if a.get('recurse') else []))]),
    'dvd_add': (('name',), lambda a: [_need('Add-VMDvdDrive', *[
        p for k, p in (('path', 'Path'), ('controller_number', 'ControllerNumber'), ('controller_location', 'ControllerLocation'))
        if a.get(k) is not None])]),
    'dvd_set': (('name', 'controller_number', 'controller_location'), lambda a: [
        _need('Set-VMDvdDrive', 'ControllerNumber', 'ControllerLocation', 'Path')]),
    'dvd_remove': (('name', 'controller_number', 'controller_location'), lambda a: [
        _need('Remove-VMDvdDrive', 'ControllerNumber', 'ControllerLocation')]),
}


# Cmdlet parameters that carry an operation's argument: when the argument is given, the call the operation
# needs must pass exactly $a.<key> (directly or through splatting), so a typo ($a.nmae), a units change
# ($a.memory_startup * 1mb) or swapped keys is refused instead of answered as if right.
ARG_PARAMS = {
    'Get-VM': {'Name': 'name'},
    'New-VM': {'Name': 'name', 'Generation': 'generation', 'MemoryStartupBytes': 'memory_startup', 'SwitchName': 'switch', 'Path': 'path',
               'VHDPath': 'vhd_path'},
    'Set-VMProcessor': {'Count': 'cpu'},
    'Set-VMMemory': {'StartupBytes': 'memory_startup', 'MinimumBytes': 'memory_minimum', 'MaximumBytes': 'memory_maximum',
                     'DynamicMemoryEnabled': 'dynamic_memory'},
    'Set-VM': {'Notes': 'notes', 'CheckpointType': 'checkpoint_type'},
    'Set-VMFirmware': {'SecureBootTemplate': 'secure_boot_template'},
    'Rename-VM': {'NewName': 'new_name'},
    'Wait-VM': {'Timeout': 'timeout'},
    'New-VHD': {'Path': 'path', 'SizeBytes': 'size', 'ParentPath': 'parent_path'},
    'Resize-VHD': {'Path': 'path', 'SizeBytes': 'size'},
    'Get-VHD': {'Path': 'path'},
    'Add-VMHardDiskDrive': {'Path': 'path', 'ControllerType': 'controller_type', 'ControllerNumber': 'controller_number',
                            'ControllerLocation': 'controller_location'},
    'Add-VMNetworkAdapter': {'Name': 'nic', 'SwitchName': 'switch', 'StaticMacAddress': 'mac'},
    'Remove-VMNetworkAdapter': {'Name': 'nic'},
    'Connect-VMNetworkAdapter': {'SwitchName': 'switch'},
    'Set-VMNetworkAdapterVlan': {'VlanId': 'vlan_id'},
    'Checkpoint-VM': {'SnapshotName': 'checkpoint'},
    'Restore-VMSnapshot': {'Name': 'checkpoint'},
    'Remove-VMSnapshot': {'Name': 'checkpoint'},
    'Export-VM': {'Path': 'path'},
    'Import-VM': {'Path': 'path', 'VirtualMachinePath': 'vm_path', 'VhdDestinationPath': 'vhd_path'},
    'Get-ChildItem': {'LiteralPath': 'path', 'Filter': 'filter'},
    'Set-Content': {'LiteralPath': 'path'},
    'Add-Content': {'LiteralPath': 'path'},
    'Get-Content': {'LiteralPath': 'path'},
    'Add-VMDvdDrive': {'Path': 'path', 'ControllerNumber': 'controller_number', 'ControllerLocation': 'controller_location'},
    'Set-VMDvdDrive': {'Path': 'path', 'ControllerNumber': 'controller_number', 'ControllerLocation': 'controller_location'},
    'Remove-VMDvdDrive': {'ControllerNumber': 'controller_number', 'ControllerLocation': 'controller_location'},
}
ARG_VALUE_RE = re.compile(r'^\(*\s*\$a\.([A-Za-z_][A-Za-z0-9_]*)\s*\)*$', re.IGNORECASE)


def _truthy(value):
    """PowerShell's truth: $null, $false, 0, '' and empty arrays are false."""
    return value not in (None, False, 0, '', [])


def _same(value, literal):
    low = literal.lower()
    if low in ('$true', '$false'):
        return value is (low == '$true')
    if literal[0] in '\'"':
        return value is not None and str(value).lower() == literal[1:-1].lower()
    return value == int(literal)


def evaluate(condition, args):
    """True or False for the condition forms scripts use on their arguments; None when it depends on anything else."""
    text = condition.strip()
    while text.startswith('(') and text.endswith(')'):
        text = text[1:-1].strip()
    if text.lower() in ('$true', '$false'):
        return text.lower() == '$true'
    match = re.match(r'^\$a\.(\w+)$', text, re.I)
    if match:
        return _truthy(args.get(match.group(1)))
    match = re.match(r'^(?:-not\s+|!\s*)\(?\$a\.(\w+)\)?$', text, re.I)
    if match:
        return not _truthy(args.get(match.group(1)))
    match = re.match(r'^\$null\s+-(ne|eq)\s+\$a\.(\w+)$', text, re.I) or re.match(r'^\$a\.(\w+)\s+-(ne|eq)\s+\$null$', text, re.I)
    if match:
        operator, key = (match.group(1), match.group(2)) if text.lower().startswith('$null') else (match.group(2), match.group(1))
        return (args.get(key) is None) == (operator.lower() == 'eq')
    match = re.match(r"^\$a\.(\w+)\s+-eq\s+(\$true|\$false|'[^']*'|-?\d+)$", text, re.I)
    if match:
        return _same(args.get(match.group(1)), match.group(2))
    return None


def reachable(node, args):
    """Whether ``node`` sits only in branches that run for ``args`` (an unknown condition counts as running)."""
    child, parent = node, node.parent
    while parent is not None:
        if child.type == 'statement_block':
            if parent.type == 'if_statement' and not _if_takes(parent, 'if', args):
                return False
            if parent.type == 'elseif_clause' and not _if_takes(parent.parent.parent, parent, args):
                return False
            if parent.type == 'else_clause' and not _if_takes(parent.parent, 'else', args):
                return False
            if parent.type == 'switch_clause' and not _switch_takes(parent, args):
                return False
        child, parent = parent, parent.parent
    return True


def _if_takes(statement, branch, args):
    """Whether ``branch`` ('if', an elseif_clause node, 'else') of an if_statement runs; True when a condition is unknown."""
    clauses = [('if', next(c for c in statement.children if c.type == 'pipeline'))]
    for part in statement.children:
        if part.type == 'elseif_clauses':
            clauses.extend((clause, next(c for c in clause.children if c.type == 'pipeline')) for clause in part.children if clause.type == 'elseif_clause')
    for name, condition in clauses:
        result = evaluate(condition.text.decode('utf-8'), args)
        if result is None:
            return True
        if result:
            return name == branch or (branch != 'else' and name is branch)
    return branch == 'else'


def _switch_takes(clause, args):
    statement = clause.parent
    while statement is not None and statement.type != 'switch_statement':
        statement = statement.parent
    condition = next((c for c in statement.children if c.type == 'switch_condition'), None)
    match = re.match(r'^\(\s*\$a\.(\w+)\s*\)$', condition.text.decode('utf-8').strip()) if condition is not None else None
    if match is None:
        return True
    value = args.get(match.group(1))
    labels = []
    for other in clause.parent.children:
        if other.type == 'switch_clause':
            label = next(c for c in other.children if c.type == 'switch_clause_condition').text.decode('utf-8').strip()
            labels.append((other, label))
    literal = dict(labels)[clause]
    matches = [node for node, label in labels if label.lower() != 'default' and str(value).lower() == label.strip('\'"').lower()]
    if literal.lower() == 'default':
        return not matches
    return clause in matches


def script_operation(script):
    """The operation a script's header line names, or None when the script has no header."""
    match = HEADER_RE.match(script.split('\n', 1)[0].rstrip('\r'))
    return match.group(1) if match else None


def contract_error(message):
    return PSError('polyvirt-sim script contract: ' + message, 'InvalidData', 'ScriptContractException',
                   fqid='PolyvirtScriptContract', command='', activity='')


def parse_command_line(command, arguments):
    """Split a WinRS command line; return (program, [flags], encoded_command or None)."""
    words = command.split() + [a for arg in arguments for a in arg.split()]
    if not words:
        return '', [], None
    program = words[0].strip('"').replace('/', '\\').rsplit('\\', 1)[-1].lower()
    if program.endswith('.exe'):
        program = program[:-4]
    flags, encoded, i = [], None, 1
    while i < len(words):
        word = words[i].lower()
        if word.startswith('/') and len(word) > 1:
            word = '-' + word[1:]
        if word in ENCODED_FLAGS and i + 1 < len(words):
            encoded = words[i + 1]
            i += 2
            continue
        flags.append(word)
        i += 1
    return program, flags, encoded


def decode_command(encoded):
    try:
        return base64.b64decode(encoded, validate=True).decode('utf-16-le').lstrip('\ufeff')
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


class Result:
    def __init__(self, stdout=b'', stderr=b'', rc=0):
        self.stdout = stdout
        self.stderr = stderr
        self.rc = rc


class Engine:
    """Runs one WinRS command against the model."""

    def __init__(self, host):
        self.host = host
        self.checker = Checker()

    # --------------------------------------------------------------- entry points
    def prepare(self, command, arguments):
        """Look at the command line. Returns ('stdin', flags) when the script comes on stdin,
        ('run', flags, script) when it is complete, or ('done', Result) when nothing is to run."""
        program, flags, encoded = parse_command_line(command, arguments)
        if program not in ('powershell', 'pwsh'):
            name = command.split()[0] if command.split() else command
            msg = "'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n" % name
            return ('done', Result(stderr=msg.encode('utf-8'), rc=1))
        if encoded is None:
            return ('done', Result(stderr=clixml_text(
                'polyvirt-sim runs only "powershell.exe -EncodedCommand <base64 UTF-16LE>" command lines.'), rc=1))
        script = decode_command(encoded)
        if script is None:
            return ('done', Result(stderr=(
                'Cannot process the command because the value specified with -EncodedCommand is not properly encoded. '
                'The value must be Base64 encoded.\r\n').encode('utf-8'), rc=1))
        if not script.startswith('# polyvirt-hyperv:') and BOOTSTRAP_RE.search(script):
            try:
                self.checker.check(script)
            except PSError as err:
                return ('done', Result(stderr=err.clixml(), rc=1))
            return ('stdin', flags)
        return ('run', flags, script)

    def run(self, script, flags, user_is_admin, from_stdin=False):
        """Run a decoded script; returns a Result."""
        try:
            parsed = self.checker.check(script)
        except PSError as err:
            if from_stdin and err.category == 'ParserError':
                text, row, col, _width = err.position or ('', 0, 0, 1)
                wrapped = PSError('Exception calling "Create" with "1" argument(s): "At line:%d char:%d\n+ %s\n+ %s~\n%s"'
                                  % (row + 1, col + 1, text, ' ' * col, err.message), 'NotSpecified', 'ParentContainsErrorRecordException',
                                  fqid='ParseException')
                return Result(stderr=wrapped.clixml(), rc=1)
            return Result(stderr=err.clixml(), rc=1)
        try:
            op, args = self.check_contract(parsed)
            self.check_prompts(parsed, flags)
        except PSError as err:
            return Result(stderr=err.clixml(), rc=1)
        result = self.apply(op, args, parsed, user_is_admin)
        if not PROGRESS_OFF_RE.search(script):
            result.stderr = PROGRESS_CLIXML + result.stderr
        return result

    # --------------------------------------------------------------- checks
    def check_contract(self, parsed):
        lines = parsed.text.split('\n')
        header = lines[0].rstrip('\r')
        match = HEADER_RE.match(header)
        if not match:
            first = next((c.name for c in parsed.calls), None)
            raise PSError(
                "The term '%s' is not recognized as the name of a cmdlet, function, script file, or operable program. "
                'Check the spelling of the name, or if a path was included, verify that the path is correct and try again. '
                "(polyvirt-sim: the first line of every script must be '# polyvirt-hyperv: <op> <base64 JSON arguments>')"
                % (header[:60] or first or ''), 'ObjectNotFound', 'CommandNotFoundException', target='%s:String' % header[:60],
                fqid='CommandNotFoundException', command=header[:60], activity='')
        op, b64 = match.group(1), match.group(2)
        if op not in OPS:
            raise contract_error("unknown operation '%s' (known: %s)" % (op, ', '.join(sorted(OPS))))
        try:
            args = json.loads(base64.b64decode(b64, validate=True).decode('utf-8'))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise contract_error('the header arguments are not base64 of UTF-8 JSON: %s' % exc) from None
        if not isinstance(args, dict):
            raise contract_error('the header arguments must be a JSON object')
        body = '\n'.join(lines[1:])
        literals = B64_ARG_RE.findall(body)
        if not literals:
            raise contract_error("the body never decodes its arguments: it must contain [Convert]::FromBase64String('<the header's base64>')")
        if any(literal != b64 for literal in literals):
            raise contract_error('the arguments the body decodes differ from the header arguments')
        required, needs = OPS[op]
        missing = [k for k in required if args.get(k) in (None, '')]
        if missing:
            raise contract_error("operation '%s' needs the arguments %s" % (op, ', '.join(missing)))
        self.check_interpolation(parsed, args, b64)
        for alternatives in needs(args):
            if not any(self.calls_with(parsed, cmdlet, params) for cmdlet, params in alternatives):
                wanted = ' or '.join('%s%s' % (c, ''.join(' -' + p for p in ps)) for c, ps in alternatives)
                raise contract_error("operation '%s' with these arguments must call %s" % (op, wanted))
            if not any(self.calls_with(parsed, cmdlet, params, args) for cmdlet, params in alternatives):
                wanted = ' or '.join('%s%s' % (c, ''.join(' -%s %s' % (p, self.expected(c, p, args) or '...') for p in ps)) for c, ps in alternatives)
                raise contract_error("operation '%s' must pass its arguments as they are, in a branch that runs for them: %s" % (op, wanted))
        return op, args

    @staticmethod
    def expected(cmdlet, param, args):
        key = ARG_PARAMS.get(cmdlet, {}).get(param)
        return '$a.%s' % key if key is not None and args.get(key) is not None else None

    @classmethod
    def calls_with(cls, parsed, cmdlet, params, args=None):
        for call in parsed.calls_to(cmdlet):
            if not all(p in call.params for p in params):
                continue
            if args is not None:
                if not reachable(call.node, args):
                    continue
                wanted = dict((p, cls.expected(cmdlet, p, args)) for p in params)
                given = dict((p, ARG_VALUE_RE.match((call.values.get(p) or '').strip())) for p in params)
                if any(value and (given[p] is None or '$a.' + given[p].group(1).lower() != value.lower()) for p, value in wanted.items()):
                    continue
            return True
        return False

    @staticmethod
    def check_interpolation(parsed, args, b64):
        values = []
        for k in USER_KEYS:
            value = args.get(k)
            if isinstance(value, str) and len(value) >= 3:
                values.append((k, value))
        if not values:
            return
        stack = [parsed.tree.root_node]
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            if node.type == 'comment' or not ('string' in node.type or node.type == 'generic_token'):
                continue
            text = node.text.decode('utf-8', 'replace')
            if b64 in text:
                continue
            for k, value in values:
                if value in text:
                    raise contract_error("the value of argument '%s' appears literally in the script (%s): pass it through the base64 "
                                         'JSON arguments, never interpolate it' % (k, text[:60]))

    @staticmethod
    def check_prompts(parsed, flags):
        non_interactive = any('-noninteractive'.startswith(f) and len(f) > 4 for f in flags)
        for call in parsed.calls:
            options = PROMPTS.get(call.cmdlet or '')
            if options and not any(o in call.params for o in options):
                if non_interactive:
                    raise PSError('PowerShell is in NonInteractive mode. Read and Prompt functionality is not available.',
                                  'NotImplemented', 'HostException', fqid='HostFunctionNotImplemented', command=call.cmdlet)
                raise PSError('The confirmation prompt of %s waits for input that WinRS never sends (launch powershell.exe with '
                              '-NonInteractive and pass %s).' % (call.cmdlet, ' or '.join('-' + o for o in options)),
                              'OperationStopped', 'PipelineStoppedException', fqid='ConfirmationPrompt', command=call.cmdlet)

    # --------------------------------------------------------------- the operation
    def apply(self, op, args, parsed, user_is_admin):
        host = self.host
        delay = host.faults.get('timeout', op=op)
        if delay is not None:
            time.sleep(float(delay.get('seconds', 30)))
        try:
            if not user_is_admin and any(c.cmdlet and self.checker.table.cmdlets[c.cmdlet.lower()][1] == 'Hyper-V' for c in parsed.calls):
                raise HyperVError("You do not have the required permission to complete this task. Contact the administrator of the "
                                  "authorization policy for the computer '%s'." % HOST_NAME)
            failure = host.faults.get('fail', op=op)
            if failure is not None:
                raise HyperVError(failure.get('message', 'The operation failed (injected fault).'))
            with host.lock:
                host.warnings = []
                stuck = [vm for vm in host.vms.values() if vm.get('stuck')]
                for vm in stuck:
                    if vm['state'] == 'Stopping' and op != 'vm_stop' and args.get('name', '').lower() == vm['name'].lower() \
                            and op not in ('vm_get', 'vm_list'):
                        raise host.wrong_state(vm, op)
                before = json.dumps([host.vms, host.files], sort_keys=True, default=str)
                try:
                    result = getattr(host, op)(args)
                finally:
                    if json.dumps([host.vms, host.files], sort_keys=True, default=str) != before:
                        host.save()
        except HyperVError as err:
            out = {'ok': False, 'error': err.message, 'type': err.type_name}
            return Result(stdout=(json.dumps(out, ensure_ascii=False, separators=(',', ':')) + '\r\n').encode('utf-8'), rc=1)
        out = {'ok': True, 'result': result}
        return Result(stdout=(json.dumps(out, ensure_ascii=False, separators=(',', ':')) + '\r\n').encode('utf-8'),
                      stderr=clixml_warnings(host.warnings), rc=0)


def clixml_warnings(lines):
    """Warnings as powershell.exe writes them to stderr over WinRS (a CLIXML ``warning`` string each); nothing when none."""
    if not lines:
        return b''
    parts = ''.join('<S S="warning">%s</S>' % clixml_escape('WARNING: ' + line + '\r\n') for line in lines)
    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">%s</Objs>' % parts).encode('utf-8')


def clixml_text(message):
    return clixml_errors([message])
