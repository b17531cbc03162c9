# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the simulators' tests."""
from __future__ import annotations

import pytest

# the journal checks live outside the test modules; this gives their asserts pytest's detailed messages
pytest.register_assert_rewrite('tests.simulators.journal_checks')
