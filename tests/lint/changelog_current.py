# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fail when a changelog fragment is not in changelogs/changelog.yaml yet (run `make changelog`).

The fragments are kept after a release (keep_fragments in changelogs/config.yaml), so that
`antsibull-changelog release --update-existing` can fold new ones into the release in preparation;
changelog.yaml lists the fragments each release was made from.
"""

from __future__ import annotations

import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    fragments_dir = os.path.join(ROOT, 'changelogs', 'fragments')
    fragments = sorted(name for name in os.listdir(fragments_dir) if name.endswith(('.yml', '.yaml')))
    with open(os.path.join(ROOT, 'changelogs', 'changelog.yaml'), encoding='utf-8') as f:
        changes = yaml.safe_load(f)
    released = set()
    for release in (changes.get('releases') or {}).values():
        released.update(release.get('fragments') or [])
    missing = [name for name in fragments if name not in released]
    if missing:
        print('changelogs/changelog.yaml lacks the fragments %s: run `make changelog`' % ', '.join(missing))
        return 1
    print('changelogs/changelog.yaml holds all %d fragments' % len(fragments))
    return 0


if __name__ == '__main__':
    sys.exit(main())
