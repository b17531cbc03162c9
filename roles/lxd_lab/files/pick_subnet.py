# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print a free IPv4 /24 for the lab bridge, as ``<gateway>/24``, chosen from local facts only.

LXD's ``ipv4.address=auto`` probes random private addresses on the machine's network to find one that
nothing answers on; the lab must not send traffic off the machine. So the choice is made here from what
this machine already knows: every route in every routing table, every address on its interfaces, and
every subnet LXD networks already use (passed as arguments). Candidates come from 10.0.0.0/8 first,
then 172.16.0.0/12, in a fixed order, so the same machine gets the same answer every time.
"""

import ipaddress
import json
import subprocess
import sys


def used_networks(extra):
    """Every IPv4 network the machine routes or has an address in, plus ``extra`` (CIDR strings)."""
    used = [ipaddress.ip_network(item, strict=False) for item in extra if item and item not in ("none", "auto")]
    for command in (["ip", "-4", "-j", "route", "show", "table", "all"], ["ip", "-4", "-j", "addr", "show"]):
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        for entry in json.loads(output or "[]"):
            if "dst" in entry:
                dst = entry["dst"]
                if dst in ("default", "0.0.0.0/0"):
                    continue  # the default route covers everything; it does not occupy a subnet
                used.append(ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False))
            for info in entry.get("addr_info") or []:
                used.append(ipaddress.ip_network("%s/%s" % (info["local"], info["prefixlen"]), strict=False))
    return used


def candidates():
    # The middle of 10/8 first: the ends (10.0.x, 10.255.x) are where other tools put their defaults.
    for second in list(range(147, 256)) + list(range(1, 147)):
        for third in range(0, 256, 17):
            yield ipaddress.ip_network("10.%d.%d.0/24" % (second, third))
    for second in range(16, 32):
        for third in range(0, 256):
            yield ipaddress.ip_network("172.%d.%d.0/24" % (second, third))


def main(argv):
    used = used_networks(argv[1:])
    for network in candidates():
        if not any(network.overlaps(other) for other in used):
            print("%s/%d" % (next(network.hosts()), network.prefixlen))
            return 0
    sys.stderr.write("no free IPv4 /24 found in 10.0.0.0/8 or 172.16.0.0/12; set lxd_lab_network_ipv4\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
