# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line every probe shares: ``<probe>.py --config C --state S <command> [args...]``, printing JSON.

Commands: ``exec NAME COMMAND`` (raw output; only probes with guest exec), ``journal start|stop|mark|since N``,
``session <what>``, and any other method of the probe, called with the arguments (``instance NAME``, ...).
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml


def main(make_probe, description, backend):
    """Run one command on ``make_probe(config, state_dir)``; ``backend`` names it in errors."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the generated integration_config.yml")
    parser.add_argument("--state", required=True, help="a directory of the probe's own (its journal mark, where it keeps one)")
    parser.add_argument("command")
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args()
    with open(opts.config, encoding="utf-8") as handle:
        probe = make_probe(yaml.safe_load(handle), opts.state)
    command, args = opts.command, opts.args
    try:
        if command == "exec":
            if not hasattr(probe, "exec"):
                raise SystemExit("the %s backend has no guest exec (guest_exec: false)" % backend)
            sys.stdout.write(probe.exec(args[0], args[1]))
            return
        if command == "journal" and args[0] == "mark":
            print(probe.journal_mark())
            return
        if command == "journal":
            result = probe.journal_since(int(args[1])) if args[0] == "since" else getattr(probe, "journal_" + args[0])()
        elif command == "session":
            result = getattr(probe, "session_" + args[0])()
        else:
            result = getattr(probe, command)(*args)
    finally:
        if hasattr(probe, "close"):
            probe.close()
    json.dump(result, sys.stdout, sort_keys=True)
    print()
