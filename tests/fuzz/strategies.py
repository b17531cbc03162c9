# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hypothesis strategies for module arguments, built from each module's documented options.

The option types, choices, element types and suboptions come from ``ansible-doc --json``; what a value
*means* (a name, a size, a path) is known from the option's name. Safety rules, because every case runs
against the real lab:
- every name that could be created starts with the run's prefix, so cleanup finds it and nothing
  else is ever touched; path-shaped names (``..``, ``.``, ``a/b``) appear only where allowed (``dot_names``);
- no value can make LXD or our code reach the network: images never name a remote (``x:y``), URLs and
  image servers are loopback or unix sockets, networks are our bridge or missing ones, devices never
  use host interfaces, config keys are a fixed harmless list (never raw.*, security.privileged, ...);
- files are only read or written under the run's temporary directory.
"""
from __future__ import annotations

import string

from hypothesis import strategies as st

OMIT = object()

# Texts that have broken parsers, shells, paths and terminals before.
ODD = ["", " ", "é", "名前", "\x00", "\n", "a\tb", "\x1b[31m", "\u202e", "\ufeff", "$(id)", "`id`", ";id", "|", "&&", "*", "?",
       "-rf", "--help", "%2e%2e", "%2F", "'", '"', "\\", "\r\n", "x" * 300, "ß" * 70]
# Names that are paths rather than names; never creatable, some dangerous (see dot_names).
PATHLIKE = ["..", ".", "a/b", "/", "../x", "x/..", "./"]
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
INF, NAN = float("inf"), float("nan")

# Values of the wrong type for anything, plus JSON-shaped junk.
JUNK = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1.5, INF, NAN, "", [], {}, [None], {"": None}]),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6),
)
# Ansible turns any value into a string for a str option (true -> "True", [] -> "[]"), and LXD accepts
# such names (a volume "[]"): name options get no junk but null, so nothing outside the namespace is made.
NAME_JUNK = st.none()
EDGE_SIZES = st.sampled_from([
    INF, -INF, NAN, -1, 0, 1, 64, 2 ** 31, 2 ** 64, 10 ** 30, 1.5, 0.5, True, False, None, [], {}, ".inf", ".nan", "inf", "nan",
    "Infinity", "4GiB", "4 XB", "64MiB", "1GiB", "1.5GiB", "-4GiB", "4gib", "4G", "4 GiB", "GiB", "", " ", "1e3", "0x10", "0", "-0",
    "9" * 400 + "GiB", "4GiB\n", "４GiB",
])
SIZES = st.one_of(EDGE_SIZES, EDGE_SIZES, st.integers(), st.floats(), TEXT)
INTS = st.one_of(st.integers(-3, 5), st.sampled_from([0, -1, 2 ** 31, 2 ** 63, 2 ** 64, 10 ** 100, "3", "x", "", 1.5, INF, NAN, True, None, []]))
TIMEOUTS = st.sampled_from([0, -1, 1, 2, 3, "5", "x", 1.5, True, None, 10 ** 9, INF, NAN, [], {}])
BOOLS = st.sampled_from([True, False, "yes", "no", "maybe", 1, 0, 2, None, "", []])

SAFE_CONFIG_KEYS = ["limits.cpu", "limits.memory", "boot.autostart", "user.fz", "environment.FZ", "cloud-init.user-data",
                    "image.os", "volatile.fz", "fz.unknown", "", "user.", "limits.memory.swap", "snapshots.expiry"]
VOLUME_CONFIG_KEYS = ["size", "user.fz", "fz.unknown", "security.shifted", "block.filesystem", "", "snapshots.expiry"]
COMPRESSION = ["gzip", "none", "xz", "zstd", "bzip2", "gzip -9", "fz-no-such-compressor", ""]


class Universe:
    """Everything a strategy needs to know about this run: names, files, the bridge."""

    def __init__(self, prefix, fixtures, tmpdir, subnet_prefix, files, busybox):
        self.prefix = prefix
        self.busybox = busybox  # the fingerprint of image polyvirt/busybox, built by the lab (so it differs per machine)
        self.fixtures = fixtures
        self.tmpdir = tmpdir
        self.net = subnet_prefix  # "10.147.0." of our bridge
        self.files = files  # {"cert": path, "key": path, "garbage": path, "empty": path}
        self.dot_names = {}  # {(module, option): allowed PATHLIKE names}, from the guard probe
        p = prefix
        self.pools = {
            "instance": [p + "-a", p + "-b", p + "-c"],
            "snapshot": [p + "-s1", p + "-s2"],
            "backup": [p + "-b1", p + "-b2"],
            "disk": [p + "-d1", p + "-d2"],
        }
        self.existing = {
            "instance": [fixtures.instance, p + "-none"],
            "snapshot": [fixtures.snapshot, p + "-none"],
            "backup": [p + "-none"],
            "disk": [fixtures.volume, p + "-none"],
            "storage": ["polyvirt", p + "-nopool"],
            "network": ["polyvirtbr0", p + "-nonet"],
        }

    # -- values ----------------------------------------------------------------------------------

    def names(self, role, module=None, option=None):
        pool = self.pools.get(role, []) + self.existing.get(role, [])
        ours = st.one_of(st.sampled_from(pool), st.builds(lambda tail: self.prefix + tail, st.sampled_from(ODD) | TEXT))
        allowed = self.dot_names.get((module, option), PATHLIKE if role in ("instance", "storage", "network") else [])
        return st.one_of(ours, st.sampled_from(allowed)) if allowed else ours

    def paths(self):
        t = self.tmpdir
        return st.one_of(
            st.sampled_from(["", "/no/such/dir/x.tar.gz", t, t + "/", t + "/fz-backup.tar.gz",
                             self.files["garbage"], self.files["empty"], t + "/fzé.tar.gz", t + "/fz\n.tar.gz", t + "/fz\x00",
                             t + "/no/such/dir/x", t + "/" + "x" * 300]),
            st.from_regex(r"\A[a-z0-9_-]{1,12}(\.tar\.gz)?\Z").map(lambda name: t + "/" + name),
        )

    def read_paths(self):
        f = self.files
        return st.sampled_from(["", "/no/such/file.pem", self.tmpdir, f["garbage"], f["empty"], f["cert"], f["key"], "/dev/null"])

    def images(self):
        return st.one_of(
            st.sampled_from(["polyvirt/busybox", "polyvirt/busybox", "polyvirt/debian12", self.prefix + "-noimage", "", self.busybox, self.busybox[:12],
                             "deadbeef", "..", "a/b", "polyvirt/busybox/..", "fz-unknown-remote/x"]),
            TEXT.filter(lambda text: ":" not in text),  # "images:x" would download from the internet
        )

    def urls(self):
        return st.sampled_from(["unix:", "unix:/var/lib/lxd/unix.socket", "unix:/nonexistent/fz.sock", "unix:relative.sock",
                                "unix:" + self.tmpdir, "unix:/dev/null", "https://127.0.0.1:1", "https://[::1]:1",
                                "https://localhost:1", "https://127.0.0.1:99999", "https://127.0.0.1:x", "https://127.0.0.1:-1",
                                "https://127.0.0.1:0", "https://[::1", "https://[", "https://]:1", "https://user:pw@127.0.0.1:1",
                                "HTTPS://127.0.0.1:1", "https://", "https:",
                                "http://127.0.0.1:1", "ftp://127.0.0.1/", "", " ", "fz", "\x00", "unix:\x00", "https://127.0.0.1:1/\n"])

    def connection(self):
        lxd = {
            "url": self.urls(), "client_cert": self.read_paths(), "client_key": self.read_paths(), "ca_path": self.read_paths(),
            "validate_certs": BOOLS, "target": st.sampled_from(["", self.prefix + "-member", "none"]),
        }
        # Other backends' keys and unknown ones: refused for lxd, and never an address outside loopback.
        other = dict(lxd, api_host=st.just("127.0.0.1"), namespace=TEXT, api_key=TEXT, port=INTS)
        other.update(("%s%s" % (self.prefix, tail), JUNK) for tail in ("", "_x"))
        project = st.sampled_from(["polyvirt", "polyvirt", "polyvirt", self.prefix + "-noproject", "", "..", "a/b", None, 1, "default"])
        fuzzed = st.one_of(
            st.fixed_dictionaries({"project": project}, optional=lxd),
            st.fixed_dictionaries({"project": project}, optional=lxd),
            st.fixed_dictionaries({}, optional=lxd),  # no project: LXD's "default"
            st.fixed_dictionaries({"project": project}, optional=other),
            JUNK,
        )
        # Mostly the lab's project, so the cases reach LXD.
        return st.one_of(st.just({"project": "polyvirt"}), st.just({"project": "polyvirt"}), st.just({"project": "polyvirt"}), fuzzed)

    def devices(self):
        device = st.one_of(
            st.sampled_from([
                "none", None, 1, [], {}, "eth0", {"type": "none"}, {"type": "fz-unknown"}, {"type": "disk"},
                {"type": "nic", "network": "polyvirtbr0"}, {"type": "nic", "network": self.prefix + "-nonet"},
                {"type": "nic", "nictype": "bridged", "parent": "polyvirtbr0"}, {"type": "nic"},
                {"type": "disk", "path": "/", "pool": "polyvirt"}, {"type": "disk", "path": "/", "pool": self.prefix + "-nopool"},
                {"type": "disk", "path": "/mnt/fz", "source": self.tmpdir},
                {"type": "disk", "path": "/mnt/v", "pool": "polyvirt", "source": self.fixtures.volume},
            ]),
            st.builds(lambda size: {"type": "disk", "path": "/", "pool": "polyvirt", "size": size}, SIZES),
            st.dictionaries(st.sampled_from(["type", "fz", "", "name"]), JUNK, max_size=3),
        )
        names = st.sampled_from(["eth0", "root", "fz0", "", "..", "a/b", "é", "x" * 300])
        return st.one_of(st.dictionaries(names, device, max_size=3), JUNK)

    def config(self, keys):
        values = st.one_of(st.sampled_from(["", "1", "true", "64MiB", "x" * 300, "\x00"]), JUNK)
        prefixed = st.builds(lambda tail: self.prefix + tail, TEXT)
        return st.one_of(st.dictionaries(st.sampled_from(keys) | prefixed, values, max_size=3), JUNK)

    def backend_options(self, module):
        if module in ("instance", "clone"):
            image_sources = st.sampled_from([
                {"type": "image", "alias": "polyvirt/busybox"}, {"type": "none"}, {"type": "image", "fingerprint": self.busybox[:12]},
                {"type": "image", "fingerprint": "deadbeef"}, {"type": "image", "alias": self.prefix + "-noimage"},
                {"type": "copy", "source": self.fixtures.instance}, {"type": "copy", "source": self.prefix + "-none"},
                {"type": "image", "mode": "pull", "server": "https://127.0.0.1:1", "protocol": "simplestreams", "alias": "x"},
                {"type": "fz-bad"}, {}, "polyvirt/busybox", 1, None,
            ])
            profiles = st.sampled_from([["default"], [], [self.prefix + "-noprofile"], "default", [None], [1], ["default", "default"], None, {}])
            keys = {"config": self.config(SAFE_CONFIG_KEYS), "devices": self.devices(), "profiles": profiles, "source": image_sources}
        elif module == "disk":
            keys = {"path": st.sampled_from(["/mnt/fz", "/", "", "relative", "/mnt/..", "/proc", 1, None]),
                    "config": self.config(VOLUME_CONFIG_KEYS)}
        elif module == "backup":
            keys = {"instance_only": BOOLS, "optimized_storage": BOOLS, "compression_algorithm": st.sampled_from(COMPRESSION) | JUNK,
                    "expires_at": st.sampled_from(["2099-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "yesterday", "", 0, None])}
        else:
            keys = {}
        keys.update(((self.prefix + "_unknown", JUNK), ("nested", st.dictionaries(TEXT, JUNK, max_size=2))))
        return st.one_of(st.fixed_dictionaries({}, optional=keys), JUNK)

    def cloud_init(self):
        user_data = st.one_of(st.sampled_from([
            "#cloud-config\n{}", "#cloud-config\nusers: []", {"users": []}, {"runcmd": [["true"]]}, "not cloud config", "",
            "#cloud-config\n: : :", "#!/bin/sh\ntrue\n", "#cloud-config\n" + "a: b\n" * 2000, {"fz": {"nested": {"deeper": [1, {}]}}},
        ]), JUNK)
        network_config = st.one_of(st.sampled_from([{"version": 2}, "version: 2", {"version": 1, "config": []}, "garbage", ""]), JUNK)
        keys = {"user_data": user_data, "network_config": network_config, self.prefix + "_unknown": JUNK}
        return st.one_of(st.fixed_dictionaries({}, optional=keys), JUNK)

    def networks(self):
        net = self.net
        entry = st.fixed_dictionaries({}, optional={
            "name": self.names("network"),
            "ipv4": st.sampled_from([net + "50/24", net + "51", net + "1/24", "10.0.0.5/99", "999.1.1.1", "", "dhcp", "fz"]) | JUNK,
            "ipv4_gateway": st.sampled_from([net + "1", "", "x", "10.0.0.1"]),
            "ipv6": st.sampled_from(["fd00::5/64", "::1/200", "x", ""]),
            "mac": st.sampled_from(["00:16:3e:00:00:01", "00-16-3E-00-00-02", "zz:zz", "", "ff:ff:ff:ff:ff:ff"]),
            "nat": BOOLS,
            self.prefix + "_unknown": JUNK,
        })
        return st.one_of(st.lists(st.one_of(entry, entry, st.sampled_from(["polyvirtbr0", None, 1, []])), max_size=3), JUNK)

    def filters(self):
        keys = {
            "name": st.sampled_from([self.prefix + "*", "*", "[", "", 1, None, ["x"]]),
            "state": st.sampled_from([["running"], "Running", "running", "stopped", [], None, 1]),
            "type": st.sampled_from(["container", "vm", "x", None]),
            "location": TEXT, "image": TEXT,
            "tags": st.sampled_from(["fz", ["fz", "web"], [], [None], 1, "a,b"]),
            self.prefix + "_unknown": JUNK,
        }
        return st.one_of(st.fixed_dictionaries({}, optional=keys), JUNK)

    def disk_source(self):
        keys = {"disk": self.names("disk") | NAME_JUNK, "image": st.sampled_from(["polyvirt/busybox", self.prefix + "-noimage", ""]),
                "url": st.sampled_from(["http://127.0.0.1:1/x.img", "https://127.0.0.1:1/x", "file:///nonexistent", "", "x"]),
                self.prefix + "_unknown": JUNK}
        return st.one_of(st.fixed_dictionaries({}, optional=keys), JUNK)

    # -- options ---------------------------------------------------------------------------------

    def option(self, module, name, doc, wrong_types=True):
        """A strategy for option ``name`` of ``module``, documented as ``doc``: plausible values, and junk if ``wrong_types``."""
        kind = doc.get("type", "str")
        role = role_of(module, name, doc)
        special = {
            "image": self.images, "memory": lambda: SIZES, "disk_size": lambda: SIZES, "size": lambda: SIZES,
            "cpus": lambda: INTS, "retain": lambda: INTS, "wait_timeout": lambda: TIMEOUTS, "location": self.paths,
            "connection": self.connection, "backend_options": lambda: self.backend_options(module),
            "cloud_init": self.cloud_init, "networks": self.networks, "filters": self.filters,
        }
        if role:
            plausible = self.names(role, module, name)
        elif name == "source" and kind == "dict":
            plausible = self.disk_source()
        elif name in special:
            plausible = special[name]()
        else:
            plausible = self.by_type(doc)
        return st.one_of(plausible, NAME_JUNK if role else JUNK) if wrong_types else plausible

    def by_type(self, doc):
        kind = doc.get("type", "str")
        if doc.get("choices") and kind != "list":
            return st.one_of(st.sampled_from(doc["choices"]), st.sampled_from(["", "fz", doc["choices"][0].upper()]))
        if kind == "bool":
            return BOOLS
        if kind == "int":
            return INTS
        if kind == "path":
            return self.paths()
        if kind == "list":
            element = self.by_type({"type": doc.get("elements", "str"), "choices": doc.get("choices")})
            return st.one_of(st.lists(element, max_size=4), st.lists(element | JUNK, max_size=3), element)
        if kind == "dict":
            subs = dict((key, self.by_type(sub)) for key, sub in (doc.get("suboptions") or {}).items())
            subs[self.prefix + "_unknown"] = JUNK
            return st.fixed_dictionaries({}, optional=subs)
        if kind == "raw":
            return JUNK
        return st.one_of(st.sampled_from(ODD), TEXT, st.text(string.printable, min_size=1, max_size=8))

    # -- cases -----------------------------------------------------------------------------------

    def args(self, module, options, wrong_types):
        """Free-form arguments: each documented option present or not, required ones usually present.

        Without ``wrong_types`` every value has the documented type, so the task gets past Ansible's
        argument checks into our code; with it, any value may be junk.
        """
        required, optional = {"backend": st.just("lxd"), "connection": self.connection()}, {}
        for name, doc in sorted(options.items()):
            if name in ("backend", "connection"):
                continue
            strategy = self.option(module, name, doc, wrong_types)
            if doc.get("required"):
                required[name] = st.one_of(strategy, strategy, strategy, st.just(OMIT))
            else:
                optional[name] = strategy
        if wrong_types:
            optional[self.prefix + "_unknown_option"] = JUNK
        return st.fixed_dictionaries(required, optional=optional).map(_drop_omitted)

    def mutant(self, module, options):
        """A valid task with one or two options replaced by fuzzed values (or removed)."""
        names = sorted(name for name in options if name != "backend")
        overrides = st.dictionaries(st.sampled_from(names), st.just(None), min_size=1, max_size=2).flatmap(
            lambda chosen: st.fixed_dictionaries(dict(
                (name, st.one_of(self.option(module, name, options[name]), st.just(OMIT))) for name in chosen)))
        return st.tuples(self.valid(module), overrides).map(lambda pair: _drop_omitted(dict(pair[0], **pair[1])))

    def valid(self, module):
        """Tasks that should work, on the fixtures or on names of the run's small pools (so they stay few)."""
        fx, pools = self.fixtures, self.pools
        base = {"backend": st.just("lxd"), "connection": st.just({"project": "polyvirt"})}
        instances = st.sampled_from(pools["instance"])
        templates = {
            "instance": ({"name": instances, "image": st.just("polyvirt/busybox"),
                          "state": st.sampled_from(["present", "started", "stopped", "absent", "restarted", "paused"]),
                          "wait_timeout": st.just(30)},
                         {"memory": st.sampled_from(["64MiB", "128MiB", 256]), "cpus": st.just(1), "description": TEXT,
                          "tags": st.lists(st.sampled_from(["fz", "web", "db"]), max_size=2), "wait_for": st.just(["running"])}),
            "instance_info": ({}, {"name": st.sampled_from([fx.instance] + pools["instance"]), "filters": st.just({"name": self.prefix + "*"})}),
            "clone": ({"source": st.just(fx.instance), "name": instances, "state": st.sampled_from(["present", "stopped", "started"]),
                       "wait_timeout": st.just(30)}, {"snapshot": st.just(fx.snapshot)}),
            "snapshot": ({"instance": st.sampled_from([fx.instance] + pools["instance"]),
                          "name": st.sampled_from(pools["snapshot"] + [fx.snapshot]),
                          "state": st.sampled_from(["present", "absent", "restored"])}, {"retain": st.integers(1, 4)}),
            "snapshot_info": ({"instance": st.just(fx.instance)}, {"name": st.sampled_from(pools["snapshot"] + [fx.snapshot])}),
            "backup": ({"instance": st.just(fx.instance), "name": st.sampled_from(pools["backup"]),
                        "state": st.sampled_from(["present", "absent", "restored"])},
                       {"restore_to": instances, "location": st.just(self.tmpdir + "/fz-backup.tar.gz"), "retain": st.integers(1, 3)}),
            "backup_info": ({"instance": st.just(fx.instance)}, {"name": st.sampled_from(pools["backup"])}),
            "disk": ({"name": st.sampled_from(pools["disk"] + [fx.volume]), "storage": st.just("polyvirt"),
                      "state": st.sampled_from(["present", "detached", "absent"])},
                     {"size": st.sampled_from(["1GiB", 2]), "instance": st.sampled_from([fx.instance] + pools["instance"])}),
            "disk_info": ({"storage": st.just("polyvirt")}, {"name": st.sampled_from(pools["disk"] + [fx.volume]), "instance": st.just(fx.instance)}),
        }
        required, optional = templates[module]
        return st.fixed_dictionaries(dict(base, **required), optional=optional)

    def known(self, module, options):
        """The inputs issue 10 found breaking things, each run once per run (as a regression check) where the module has the option."""
        fx, files, lab = self.fixtures, self.files, {"project": "polyvirt"}
        create = {"name": self.pools["instance"][0], "image": "polyvirt/busybox", "state": "present", "wait_timeout": 30}
        https = dict(lab, url="https://127.0.0.1:1")
        cases = {
            "instance": [dict(create, memory=INF), dict(create, memory=NAN), dict(create, memory="4 XB"),
                         dict(create, backend_options={"devices": {"eth0": "none"}}), dict(create, wait_timeout=0),
                         dict(create, wait_timeout=-1), dict(create, networks=[{"name": "polyvirtbr0", "ipv4": "10.0.0.5/99"}]),
                         dict(create, cloud_init={"user_data": "no cloud-config header"}), dict(create, tags=["web", "a,b"])],
            "instance_info": [{"connection": dict(https, client_cert="/no/such/client.crt", client_key=files["key"])},
                              {"connection": dict(https, ca_path="/no/such/ca.crt")}, {"connection": dict(lab, url="unix:")},
                              {"connection": dict(https, client_cert=files["cert"], client_key=files["garbage"])},
                              {"connection": dict(lab, url="https://[::1")}, {"connection": {"project": self.prefix + "-noproject"}},
                              {"filters": {"state": ["running"]}}],
            "snapshot": [{"instance": fx.instance, "name": name, "state": state} for name in ("..", ".")
                         for state in ("present", "absent", "restored")],
            "backup": [{"instance": fx.instance, "name": ".."},
                       {"instance": fx.instance, "name": self.pools["backup"][0], "location": "/no/such/dir/x.tar.gz"}],
            "disk": [{"name": "..", "storage": "polyvirt"}, {"name": ".", "storage": "polyvirt"}],
        }
        result = []
        for args in cases.get(module, []):
            if not all(option in options for option in args):
                continue
            # The guard of names(): a path-shaped name only where the module refuses it itself.
            if any(isinstance(value, str) and value in PATHLIKE and value not in self.dot_names.get((module, option), PATHLIKE)
                   for option, value in args.items()):
                continue
            result.append(dict({"backend": "lxd", "connection": lab}, **args))
        return result

    def case(self, module, options):
        """``(args, check_mode, diff)``: mostly invalid or edge input, a few valid tasks."""
        mutant = self.mutant(module, options)
        args = st.one_of(mutant, self.args(module, options, False), mutant, self.args(module, options, True), self.valid(module))
        return st.tuples(args, st.booleans(), st.booleans()).map(lambda case: (_bounded_waits(module, case[0]), case[1], case[2]))


def role_of(module, option, doc):
    """What an option names: an instance, snapshot, backup, disk or storage pool (None for other options)."""
    if option == "name":
        return module.replace("_info", "").replace("clone", "instance")
    if option in ("instance", "restore_to") or (option == "source" and doc.get("type") == "str"):
        return "instance"
    return {"snapshot": "snapshot", "storage": "storage"}.get(option)


def _drop_omitted(args):
    return dict((key, value) for key, value in args.items() if value is not OMIT)


def _bounded_waits(module, args):
    # Waiting for an IP or cloud-init that busybox never has would use the whole 600 s default.
    if module in ("instance", "clone") and "wait_timeout" not in args:
        args = dict(args, wait_timeout=5)
    return args
