# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A settings module for the official ``cloudcix`` SDK pointing at the simulator.

Use it with ``CLOUDCIX_SETTINGS_MODULE=tests.simulators.cloudcix.sdk_settings`` and
``HTTP_PROXY`` and ``http_proxy`` set to the URL the simulator printed (see README.md): the SDK builds
``http://compute.api.cloudcix.test/v5.0/...`` and ``http://membership.api.cloudcix.test/v5.0/...``; the
``.test`` names never resolve, the proxy setting sends the requests to the simulator, which dispatches on
the Host header. ``CLOUDCIX_SIM_API_VERSION`` may override the version (``2`` = no version segment).
"""
from __future__ import annotations

import os

CLOUDCIX_API_URL = 'http://api.cloudcix.test/'
CLOUDCIX_API_V2_URL = 'http://api.cloudcix.test/'
CLOUDCIX_API_VERSION = os.environ.get('CLOUDCIX_SIM_API_VERSION', '5.0')
if CLOUDCIX_API_VERSION == '2':
    CLOUDCIX_API_VERSION = 2
CLOUDCIX_API_USERNAME = 'admin@example.com'
CLOUDCIX_API_PASSWORD = 'polyvirt-sim'
CLOUDCIX_API_KEY = 'polyvirt-sim-key'
