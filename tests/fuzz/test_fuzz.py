# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property-based fuzz test of every module against the real LXD lab (make fuzz).

Each module's options come from ``ansible-doc --json`` (so the test does not know our Python layout);
hypothesis draws tasks from them, mostly invalid or edge input, some valid. Every task must:
- return one JSON object (``json``);
- never hit the "Unexpected error" guard (``unexpected``) nor show a traceback (``traceback``);
- change nothing on the server when it fails (``failed-changed``; a wait that times out or cannot be met
  after the change, e.g. ``wait_for: cloud_init`` on an image without cloud-init, and says ``changed: true``
  may leave what it made, as DESIGN.md allows) or runs in check mode
  (``check-mode-changed``), and not report ``changed: false`` after changing something (``unreported-change``);
- return within its own small ``wait_timeout`` (``bounded``).
Changes to objects outside this run's namespace are listed as warnings, not failures: other test
runs share the lab, and nothing here names their objects.

First the inputs issue 10 reported run once each (``Universe.known``), then hypothesis explores each
module in turn until the budget is spent; each distinct failure is shrunk once and then only counted.

Environment: POLYVIRT_FUZZ_SECONDS (time budget, default 90), POLYVIRT_FUZZ_SEED (repeat a run),
POLYVIRT_FUZZ_RUNNER (``inprocess``, the default, or ``subprocess``: one ``python -m`` per task).
The report is printed and written to tests/output/fuzz/report.txt.
"""
from __future__ import annotations

import collections
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import HypothesisException

from . import lab
from .runner import InProcess, Subprocess
from .strategies import PATHLIKE, Universe, role_of

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS = os.path.join(REPO, ".build", "collections")
BUDGET = float(os.environ.get("POLYVIRT_FUZZ_SECONDS", "90"))
SEED = int(os.environ.get("POLYVIRT_FUZZ_SEED") or random.SystemRandom().randrange(2 ** 32))
RUNNERS = {"inprocess": InProcess, "subprocess": Subprocess}
RUNNER = os.environ.get("POLYVIRT_FUZZ_RUNNER", "inprocess")
CASE_TIMEOUT = 20  # seconds; a case still running then is cut off (see ``bounded``)
SHRINK_SECONDS = 8  # for hypothesis to shrink a new failure, even when the module's turn is shorter
TRACEBACK = "Traceback (most recent call last)"
# Names that become paths on the LXD host: sent only where the module itself refuses them (see probe_dot_names).
PATH_ROLES = ("snapshot", "backup", "disk")


class FuzzFailure(AssertionError):
    """A broken property. One subclass per distinct failure, so hypothesis shrinks each on its own."""


_FAILURE_TYPES = {}


def failure_type(key):
    if key not in _FAILURE_TYPES:
        _FAILURE_TYPES[key] = type("FuzzFailure%d" % len(_FAILURE_TYPES), (FuzzFailure,), {})
    return _FAILURE_TYPES[key]


def shape(text):
    """A message with its values blanked, so one bug seen with many values is reported once."""
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "'…'", str(text))
    text = re.sub(r"\bfz[\w.\-]*", "fz…", text)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return text[:160]


def module_docs():
    """``({module: documented options}, {module: ansible-doc error})`` for every module of the collection.

    One ansible-doc call for all modules; only if that fails, one per module, so a module whose
    documentation does not parse is reported and the others are still fuzzed.
    """
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
    doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")

    def ansible_doc(*args):
        proc = subprocess.run([doc, "-t", "module", "--json"] + list(args), env=env, capture_output=True, text=True, timeout=120, check=False)
        return (json.loads(proc.stdout), None) if proc.returncode == 0 else (None, proc.stderr.strip())

    listing, error = ansible_doc("-l", "polyvirt.compute")
    if error:
        pytest.fail("ansible-doc cannot list the collection's modules: %s" % error)
    names = sorted(listing)
    docs, error = ansible_doc(*names)
    errors = {}
    if error:
        docs = {}
        for name in names:
            one, errors[name.split(".")[-1]] = ansible_doc(name)
            docs.update(one or {})
    options = collections.OrderedDict((name.split(".")[-1], docs[name]["doc"]["options"]) for name in names if name in docs)
    return options, dict((module, text) for module, text in errors.items() if text)


class Finding:
    def __init__(self, module, prop, detail, signature):
        self.module, self.prop, self.detail = module, prop, detail
        self.key = (module, prop, signature)
        self.args = self.check_mode = self.diff = self.hidden = None
        self.count = 0


class Fuzz:
    def __init__(self, runner, universe, fixtures, docs, state):
        self.runner, self.universe, self.fixtures, self.docs = runner, universe, fixtures, docs
        self.state = state
        self.findings = collections.OrderedDict()
        self.final = set()  # distinct failures already shrunk: counted, no longer raised
        self.cases = collections.Counter()
        self.past_argspec = collections.Counter()  # cases that got past Ansible's own argument checks
        self.succeeded = collections.Counter()
        self.failed = collections.Counter()  # (module, property)
        self.cut_off = 0
        self.seconds = collections.Counter()  # in the modules, per module
        self.lab_seconds = 0.0  # reading the lab after each case (and re-making fixtures a case removed)
        self.remade = 0
        self.foreign = []

    def run_case(self, module, case):
        args, check_mode, diff = case
        outcome = self.runner.run(module, args, check_mode, diff, CASE_TIMEOUT)
        started = time.monotonic()
        before = self.state
        after = before if outcome.past_argspec is False else lab.fingerprint(self.universe.prefix)
        found = self.properties(module, args, check_mode, outcome, before, after)
        foreign = [key for key in lab.changed_keys(before, after) if not self.ours(key)]
        # An object outside the namespace named after a value of this task was made by it (Ansible
        # stringifies values: a name `[]` becomes "[]"): a hole in the strategies, undone at once.
        made = [key for key in foreign if key not in before and key[0] != "image" and key[-1] in _strings(args)]
        for key in made:
            lab.delete(key)
            found.append(Finding(module, "outside-namespace-created", "the fuzz made %s %s outside its namespace: fix tests/fuzz/strategies.py"
                                 % (key[0], "/".join(key[1:])), key[0]))
        if made:
            after = lab.fingerprint(self.universe.prefix)
            foreign = [key for key in foreign if key not in made]
        if foreign:
            self.foreign.append("%s %s: %s" % (module, json.dumps(args, default=repr, ensure_ascii=False),
                                               "; ".join(lab.changes(_only(before, foreign), _only(after, foreign)))))
        if self.fixtures.ensure(after):
            self.remade += 1
            after = lab.fingerprint()
        self.state = after
        self.lab_seconds += time.monotonic() - started
        self.cases[module] += 1
        self.past_argspec[module] += outcome.past_argspec is True
        self.succeeded[module] += bool(outcome.result) and not outcome.result.get("failed")
        self.seconds[module] += outcome.seconds
        for finding in found:
            self.failed[(module, finding.prop)] += 1
            kept = self.findings.setdefault(finding.key, finding)
            kept.count += 1
            size = len(json.dumps(args, default=repr))
            if kept.args is None or size < len(json.dumps(kept.args, default=repr)):
                kept.args, kept.check_mode, kept.diff, kept.detail = args, check_mode, diff, finding.detail
                kept.hidden = outcome.hidden_traceback or outcome.crash
        return found

    def ours(self, key):
        return key[0] != "image" and key[2].startswith(self.universe.prefix)

    def properties(self, module, args, check_mode, outcome, before, after):
        found = []

        def add(prop, detail, signature):
            found.append(Finding(module, prop, detail, signature))

        if outcome.timed_out:
            limit = _int(args.get("wait_timeout"))
            if limit is not None and limit < CASE_TIMEOUT:
                add("bounded", "still running after %d s with wait_timeout %r" % (CASE_TIMEOUT, args.get("wait_timeout")),
                    "zero or less" if limit <= 0 else "positive")
            else:
                self.cut_off += 1
            return found
        result = outcome.result
        if outcome.crash:
            last = outcome.crash.strip().splitlines()[-1]
            add("json", "an exception escaped main(), so Ansible gets no result: " + last, shape(last))
        elif result is None:
            add("json", "no JSON object on stdout (%s): %r" % (outcome.parse_error, outcome.stdout[-300:]), shape(outcome.parse_error))
        msg = str((result or {}).get("msg", ""))
        if "Unexpected error" in msg:
            add("unexpected", msg, shape(msg))
        # (A crash without a result is already ``json``.)
        if result is not None and ("exception" in result or TRACEBACK in msg or TRACEBACK in outcome.stdout or TRACEBACK in outcome.stderr):
            add("traceback", "the result shows a traceback: %s" % shape((result or {}).get("exception") or msg), shape(msg))
        ours = [key for key in lab.changed_keys(before, after) if self.ours(key)]
        if not ours or result is None:
            return found
        diff_text = "; ".join(lab.changes(_only(before, ours), _only(after, ours)))
        kinds = ",".join(sorted(set("%s%s" % ("+" if k not in before else "-" if k not in after else "~", k[0]) for k in ours)))
        failed = bool(result.get("failed"))
        if check_mode:
            add("check-mode-changed", "check mode %s (%s) but the server changed: %s" % ("failed" if failed else "succeeded", msg, diff_text),
                kinds + shape(msg))
        elif failed and not (result.get("changed") is True and re.search(r"time[ds]? ?out|^Failed to wait for ", msg, re.I)):
            add("failed-changed", "failed (%s, changed=%r) but the server changed: %s" % (msg, result.get("changed"), diff_text),
                kinds + shape(msg))
        elif not failed and result.get("changed") is False:
            add("unreported-change", "reported changed=false but the server changed: %s" % diff_text, kinds)
        return found

    def explore(self, module, strategy, chunk_seed, seconds, examples, deadline):
        """One hypothesis run of ``module``: at most ``examples`` cases, run until ``seconds`` pass or, once a
        new failure is found, SHRINK_SECONDS later to shrink it; never past ``deadline``."""
        stop = time.monotonic() + seconds
        raised = set()

        @seed(chunk_seed)
        @settings(max_examples=examples, deadline=None, database=None, derandomize=False, report_multiple_bugs=True,
                  phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                  print_blob=False)
        @given(case=strategy)
        def cases(case):
            nonlocal stop
            if time.monotonic() > stop:
                return  # out of time: hypothesis winds down (the recorder already kept each failure's smallest case)
            # A bug already shrunk (in any module: shared code) is counted but no longer chased.
            new = [f for f in self.run_case(module, case) if f.key[1:] not in self.final]
            if new:
                if not raised:
                    stop = min(deadline, max(stop, time.monotonic() + SHRINK_SECONDS))
                raised.add(new[0].key[1:])
                raise failure_type(new[0].key[1:])(new[0].detail)

        try:
            cases()
        except Exception as exc:  # pylint: disable=broad-except
            if not _only_findings(exc):
                raise
        self.final.update(raised)


def _strings(value):
    """Every string Ansible could make of ``value`` or of a value inside it."""
    found = {str(value)}
    for inner in (value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()):
        found |= _strings(inner)
    return found


def _only(state, keys):
    return dict((key, state[key]) for key in keys if key in state)


def _only_findings(exc):
    """True when ``exc`` (or every exception in its group) is a finding or hypothesis' own wrapper."""
    inner = getattr(exc, "exceptions", None)
    if inner:
        return all(_only_findings(one) for one in inner)
    return isinstance(exc, (FuzzFailure, HypothesisException))


def _int(value):
    if isinstance(value, bool):
        return None
    try:
        return int(value) if isinstance(value, (int, str)) else None
    except ValueError:
        return None


def probe_dot_names(runner, universe, docs):
    """Which path-shaped names each module refuses by itself, found without ever reaching LXD.

    Until a shared name validator lands everywhere, ``..`` can reach LXD, and there a ``..`` snapshot
    wiped every snapshot in the pool (issue 10). So each (module, option) that names a snapshot, backup or
    disk gets a path-shaped name only if the module refuses it in every state, at a socket that does not
    exist: a refusal then differs from the connection error a harmless name gets. As the validator is
    wired in, the fuzz starts sending those names by itself.
    """
    socket = "unix:" + os.path.join(universe.tmpdir, "no-such-lxd.sock")
    safe = universe.prefix + "-probe"
    report = {}
    for module, options in docs.items():
        states = (options.get("state") or {}).get("choices") or [None]
        for option, doc in options.items():
            if role_of(module, option, doc) not in PATH_ROLES:
                continue
            allowed = []
            for value in PATHLIKE:
                if all(_refuses(runner, universe, module, options, option, value, safe, state, socket) for state in states):
                    allowed.append(value)
            universe.dot_names[(module, option)] = allowed
            report["%s.%s" % (module, option)] = allowed
    return report


def _refuses(runner, universe, module, options, option, value, safe, state, socket):
    base = {"backend": "lxd", "connection": {"project": "polyvirt", "url": socket}}
    for name, doc in options.items():
        if doc.get("required") and name not in base:
            base[name] = universe.fixtures.instance if role_of(module, name, doc) == "instance" else safe
    if state:
        base["state"] = state
    results = []
    for given_value in (value, safe):
        outcome = runner.run(module, dict(base, **{option: given_value}), False, False, CASE_TIMEOUT)
        results.append(outcome.result or {})
    bad, good = results
    return bool(bad.get("failed")) and str(bad.get("msg")) != str(good.get("msg")).replace(safe, value)


def _subnet_prefix():
    address = lab.get("/1.0/networks/polyvirtbr0")["config"]["ipv4.address"]
    return address.split("/")[0].rsplit(".", 1)[0] + "."


def _make_files(tmpdir):
    files = {"garbage": os.path.join(tmpdir, "garbage.txt"), "empty": os.path.join(tmpdir, "empty"),
             "cert": os.path.join(tmpdir, "client.crt"), "key": os.path.join(tmpdir, "client.key")}
    with open(files["garbage"], "w") as handle:
        handle.write("not a certificate, a key nor a backup\n")
    open(files["empty"], "w").close()
    if shutil.which("openssl"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "1", "-subj", "/CN=polyvirt-fuzz", "-keyout", files["key"], "-out", files["cert"]],
                       capture_output=True, check=True, timeout=60)
    else:
        files["cert"] = files["key"] = files["garbage"]
    return files


@pytest.fixture(scope="module")
def lab_run():
    """This run's namespace, files and fixtures; everything is removed afterwards, also on failure."""
    if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "polyvirt", "compute", "plugins")):
        pytest.fail("the collection is not under %s: run `make collection`" % COLLECTIONS)
    try:
        lab.get("/1.0/projects/polyvirt")
        lab.get("/1.0/storage-pools/%s" % lab.POOL)
    except (OSError, lab.LabError) as exc:
        pytest.fail("the LXD lab is not ready (run `make lab`): %s" % exc)
    prefix = "fz" + secrets.token_hex(2)
    fixtures = lab.Fixtures(prefix)
    tmpdir = tempfile.mkdtemp(prefix="polyvirt-fuzz-")
    try:
        fixtures.ensure({})
        yield prefix, fixtures, tmpdir, _make_files(tmpdir)
    finally:
        left = fixtures.remove_all()
        shutil.rmtree(tmpdir, ignore_errors=True)
        assert not left, "the fuzz test could not remove %s" % left


def test_fuzz_modules(lab_run, monkeypatch, capsys):
    prefix, fixtures, tmpdir, files = lab_run
    for name in list(os.environ):
        if name.startswith("POLYVIRT_") and name not in ("POLYVIRT_FUZZ_SECONDS", "POLYVIRT_FUZZ_SEED", "POLYVIRT_FUZZ_RUNNER"):
            monkeypatch.delenv(name)  # the modules read their connection from POLYVIRT_LXD_*
    monkeypatch.delenv("LXD_DIR", raising=False)
    monkeypatch.chdir(tmpdir)  # relative paths in fuzzed options land here, not in the checkout
    set_hypothesis_home_dir(os.path.join(REPO, ".build", "hypothesis"))  # its caches, out of the checkout's tracked tree
    docs, doc_errors = module_docs()
    runner = RUNNERS[RUNNER](COLLECTIONS, tmpdir)
    busybox = lab.get("/1.0/images/aliases/polyvirt%2Fbusybox")["target"]
    universe = Universe(prefix, fixtures, tmpdir, _subnet_prefix(), files, busybox)
    dot_names = probe_dot_names(runner, universe, docs)
    fuzz = Fuzz(runner, universe, fixtures, docs, lab.fingerprint())
    strategies = dict((module, universe.case(module, options)) for module, options in docs.items())

    start = time.monotonic()
    deadline = start + BUDGET
    for module, options in docs.items():
        for args in universe.known(module, options):
            fuzz.final.update(finding.key[1:] for finding in fuzz.run_case(module, (args, False, True)))
    # Two rounds over the modules, each module's share of time growing with its number of options.
    weights = dict((module, len(options)) for module, options in docs.items())
    rng = random.Random(SEED)
    turn = 0
    while time.monotonic() < deadline:
        module = list(docs)[turn % len(docs)]
        turn += 1
        share = max(2.0, BUDGET / 2 * weights[module] / sum(weights.values()))
        seconds = min(share, deadline - time.monotonic())
        per_case = fuzz.seconds[module] / fuzz.cases[module] if fuzz.cases[module] else 0.05
        # Enough cases to fill the slice at this module's pace, so hypothesis is not left generating unused ones.
        examples = int(min(500, max(5, seconds / (per_case + 0.03))))
        fuzz.explore(module, strategies[module], rng.randrange(2 ** 32), seconds, examples, deadline)
    elapsed = time.monotonic() - start

    for module, error in sorted(doc_errors.items()):
        finding = Finding(module, "docs", "ansible-doc cannot read its documentation, so it was not fuzzed: " + " ".join(error.splitlines()[:2]), "-")
        finding.count = 1
        fuzz.findings[finding.key] = finding
    report = render(fuzz, docs, dot_names, elapsed, runner.name, prefix)
    out_dir = os.path.join(REPO, "tests", "output", "fuzz")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.txt"), "w") as handle:
        handle.write(report)
    with capsys.disabled():
        sys.stdout.write("\n" + report)
    assert not fuzz.findings, "%d distinct failures (report above and in tests/output/fuzz/report.txt)" % len(fuzz.findings)


def render(fuzz, docs, dot_names, elapsed, runner_name, prefix):
    total = sum(fuzz.cases.values())
    lines = ["polyvirt.compute fuzz: %d cases in %.0f s (%.0f per minute, %s runner; %.0f s in the modules, %.0f s reading the lab),"
             " seed %d, namespace %s" % (total, elapsed, total * 60.0 / max(elapsed, 1e-9), runner_name, sum(fuzz.seconds.values()),
                                         fuzz.lab_seconds, SEED, prefix),
             "%-14s %6s %9s %9s %8s  %s" % ("module", "cases", "past-spec", "succeeded", "ms/case", "cases failing each property")]
    for module in docs:
        props = ", ".join("%s %d" % (prop, n) for (mod, prop), n in sorted(fuzz.failed.items()) if mod == module)
        pace = 1000.0 * fuzz.seconds[module] / fuzz.cases[module] if fuzz.cases[module] else 0
        past = str(fuzz.past_argspec[module]) if runner_name == InProcess.name else "n/a"
        lines.append("%-14s %6d %9s %9d %8.0f  %s" % (module, fuzz.cases[module], past, fuzz.succeeded[module], pace, props or "-"))
    if fuzz.remade:
        lines.append("fixtures re-made after a case removed them: %d times" % fuzz.remade)
    if fuzz.cut_off:
        lines.append("cases cut off at %d s while waiting as told (a long wait_timeout, not a failure): %d" % (CASE_TIMEOUT, fuzz.cut_off))
    withheld = ["%s (%s)" % (opt, " ".join(repr(v) for v in PATHLIKE if v not in allowed)) for opt, allowed in sorted(dot_names.items())
                if set(allowed) != set(PATHLIKE)]
    lines.append("path-shaped names withheld because the module does not refuse them itself: %s" % (", ".join(withheld) or "none"))
    # One bug seen in several modules (a shared code path) is listed once, with its smallest case.
    groups = collections.OrderedDict()
    for finding in fuzz.findings.values():
        groups.setdefault(finding.key[1:], []).append(finding)
    lines.append("distinct failures: %d" % len(groups))
    for number, group in enumerate(groups.values(), 1):
        smallest = min(group, key=lambda f: len(json.dumps(f.args, default=repr)) if f.args is not None else 0)
        lines.append("%d. %s in %s (seen %d times)" % (number, smallest.prop, ", ".join(f.module for f in group), sum(f.count for f in group)))
        if smallest.args is not None:
            lines.append("   %s: %s%s%s" % (smallest.module, json.dumps(smallest.args, sort_keys=True, default=repr, ensure_ascii=False),
                                            "  (check mode)" if smallest.check_mode else "", "  (diff)" if smallest.diff else ""))
        lines.append("   what: %s" % smallest.detail)
        where = _where(smallest.hidden)
        if where:
            lines.append("   where: %s" % where)
    if fuzz.foreign:
        lines.append("warnings: objects outside the namespace changed during %d cases (other runs share the lab); the first ones,"
                     " with the case that ran meanwhile:" % len(fuzz.foreign))
        lines.extend("   " + line for line in fuzz.foreign[:10])
    return "\n".join(lines) + "\n"


def _where(trace):
    """Where a traceback ends: in our collection, and (when elsewhere, such as ansible-core) where it was raised."""
    if not trace:
        return None
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', trace)
    last = trace.strip().splitlines()[-1]
    ours = [frame for frame in frames if "polyvirt/compute/" in frame[0]]
    where = ["%s:%s in %s" % (path.split("polyvirt/compute/")[-1], line, func) for path, line, func in ours[-1:]]
    if frames and frames[-1] not in ours:
        path, line, func = frames[-1]
        where.append("raised in %s:%s in %s" % (re.sub(r".*/(site-packages|python3\.\d+)/", "", path), line, func))
    return "%s: %s" % (", ".join(where), last) if where else last
