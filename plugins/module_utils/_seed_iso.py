# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""NoCloud seed ISOs (volume label ``cidata``), built in Python with pycdlib, for backends that attach one to a VM.

cloud-init's NoCloud datasource (and cloudbase-init's) reads ``user-data``, ``meta-data`` and, when present,
``network-config`` from the root of a volume labelled ``cidata``. pycdlib is imported only when an ISO is built or read.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid

from ansible_collections.polyvirt.compute.plugins.module_utils._errors import MissingLibrary

VOLUME_LABEL = "cidata"


def require_pycdlib(what):
    try:
        import pycdlib  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingLibrary("%s needs the pycdlib Python library where the module runs, to build the NoCloud seed ISO "
                             "(pip install pycdlib): %s" % (what, exc))
    return pycdlib


def digest(text):
    """A short digest of a cloud-init document (a seed's name carries it: an ISO's content is costly to read back)."""
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()[:12]


def meta_data(name):
    """A fresh ``instance-id`` for every seed, so cloud-init treats the guest as new and runs the user-data."""
    return json.dumps({"instance-id": "polyvirt-%s" % uuid.uuid4(), "local-hostname": name.split(".")[0]}) + "\n"


def build(user_data, meta, network=None, what="cloud_init"):
    """The ISO image as bytes: ``user-data``, ``meta-data`` and, when given, ``network-config`` at its root."""
    pycdlib = require_pycdlib(what)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    for name, text in (("user-data", user_data), ("meta-data", meta), ("network-config", network)):
        if text is None:
            continue
        data = text.encode("utf-8")
        iso.add_fp(io.BytesIO(data), len(data), "/%s.;1" % name.upper().replace("-", "_"), rr_name=name, joliet_path="/" + name)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read(image):
    """(volume label, {name: text}) of a seed ISO given as bytes."""
    pycdlib = require_pycdlib("reading a seed ISO")
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    files = {}
    try:
        for child in iso.list_children(rr_path="/"):
            name = child.rock_ridge.name() if child.rock_ridge else None
            name = name.decode("utf-8") if isinstance(name, bytes) else name
            if not name or name in (".", ".."):
                continue
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path="/" + name)
            files[name] = out.getvalue().decode("utf-8")
        label = iso.pvd.volume_identifier.decode("ascii").strip()
    finally:
        iso.close()
    return label, files
