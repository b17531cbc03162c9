# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one module task the way Ansible does, minus the controller: arguments in, one JSON result out.

``InProcess`` imports each module once and calls its ``main()`` (milliseconds per task); ``Subprocess``
starts ``python -m <module>`` per task, as a controller would (slower, fully isolated). Both use only
the modules' public entry point and ansible-core's module protocol, never our module_utils.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback

MODULES_PACKAGE = "ansible_collections.polyvirt.compute.plugins.modules."


class CaseTimeout(BaseException):
    """Raised by the watchdog; a BaseException so a module's ``except Exception`` cannot swallow it."""


class Outcome:
    def __init__(self, stdout, stderr, seconds, timed_out=False, crash=None, hidden_traceback=None, past_argspec=None):
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.timed_out = timed_out
        self.crash = crash  # an exception that escaped main() (a controller would get no JSON)
        self.hidden_traceback = hidden_traceback  # passed to fail_json, dropped from the result by default
        # False when ansible-core refused the arguments before any module code ran (nothing can have
        # changed); None when the runner cannot tell.
        self.past_argspec = past_argspec
        self.result = None
        self.parse_error = None
        try:
            result = json.loads(stdout)
        except ValueError as exc:
            self.parse_error = str(exc)
        else:
            if isinstance(result, dict):
                self.result = result
            else:
                self.parse_error = "the result is a %s, not an object" % type(result).__name__


def _payload(args, check_mode, diff, tmpdir):
    # No _ansible_tracebacks_for: the default, so a result shows what a user sees.
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_tmpdir=tmpdir,
                _ansible_remote_tmp=tmpdir, _ansible_keep_remote_files=False)
    return json.dumps({"ANSIBLE_MODULE_ARGS": args})


class InProcess:
    name = "in-process"

    def __init__(self, collections_path, tmpdir):
        if collections_path not in sys.path:
            sys.path.insert(0, collections_path)
        from ansible.module_utils import basic
        from ansible.module_utils.common import warnings
        self._basic = basic
        self._warnings = warnings
        self._tmpdir = tmpdir
        self._hidden = None
        self._constructed = False
        original_init, original_fail = basic.AnsibleModule.__init__, basic.AnsibleModule.fail_json
        runner = self

        def __init__(module, *args, **kwargs):
            original_init(module, *args, **kwargs)
            runner._constructed = True

        def fail_json(module, *args, **kwargs):
            runner._hidden = kwargs.get("exception")
            return original_fail(module, *args, **kwargs)

        basic.AnsibleModule.__init__ = __init__
        basic.AnsibleModule.fail_json = fail_json

    def run(self, module, args, check_mode, diff, timeout):
        basic = self._basic
        basic._ANSIBLE_ARGS = _payload(args, check_mode, diff, self._tmpdir).encode()
        basic._ANSIBLE_PROFILE = "legacy"
        # ansible-core collects warnings in globals, meant for one task per process.
        self._warnings._global_warnings.clear()
        self._warnings._global_deprecations.clear()
        self._hidden = None
        self._constructed = False
        out, err = io.StringIO(), io.StringIO()
        timed_out, crash = False, None
        start = time.monotonic()
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    importlib.import_module(MODULES_PACKAGE + module).main()
                except SystemExit:
                    pass
                except CaseTimeout:
                    timed_out = True
                except Exception:  # pylint: disable=broad-except
                    crash = traceback.format_exc()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        hidden = self._hidden if isinstance(self._hidden, str) else (
            "".join(traceback.format_exception(type(self._hidden), self._hidden, self._hidden.__traceback__)) if self._hidden else None)
        return Outcome(out.getvalue(), err.getvalue(), time.monotonic() - start, timed_out, crash, hidden, self._constructed)


def _alarm(signum, frame):
    raise CaseTimeout()


class Subprocess:
    name = "subprocess"

    def __init__(self, collections_path, tmpdir):
        self._env = dict(os.environ, PYTHONPATH=collections_path)
        self._tmpdir = tmpdir

    def run(self, module, args, check_mode, diff, timeout):
        start = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-m", MODULES_PACKAGE + module], input=_payload(args, check_mode, diff, self._tmpdir),
                                  capture_output=True, text=True, env=self._env, cwd=self._tmpdir, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            return Outcome(_text(exc.stdout), _text(exc.stderr), time.monotonic() - start, timed_out=True, past_argspec=None)
        crash = proc.stderr if "Traceback (most recent call last)" in proc.stderr else None
        return Outcome(proc.stdout, proc.stderr, time.monotonic() - start, crash=crash, past_argspec=None)


def _text(data):
    # TimeoutExpired carries bytes whatever text= said.
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
