# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

# Hikube tenant RBAC (on unless --no-tenant-rbac): what a tenant "admin" may do in its own namespace
# (Cozystack's cozystack-basics cluster roles, as summarised in the project's research notes).

import types

from .kube import ApiError

ALL = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
READ = {"get", "list", "watch"}

TENANT_RULES = {
    ("apps.cozystack.io", "*"): ALL,
    ("core.cozystack.io", "options"): {"get", "list"},
    ("", "pods"): READ,
    ("", "services"): READ,
    ("", "events"): READ,
    ("kubevirt.io", "virtualmachines"): {"get", "list"},
    # clusterroles.yaml: tenants read the WorkloadMonitors their applications' charts make
    ("cozystack.io", "workloadmonitors"): READ,
    ("subresources.kubevirt.io", "virtualmachines/start"): {"update"},
    ("subresources.kubevirt.io", "virtualmachines/stop"): {"update"},
    ("subresources.kubevirt.io", "virtualmachines/restart"): {"update"},
    # A per-release Role (vm-disk's dashboard-resourcemap.yaml) names each DataVolume: get by name, no list.
    ("cdi.kubevirt.io", "datavolumes"): {"get"},
    ("backups.cozystack.io", "plans"): ALL,
    ("backups.cozystack.io", "backupjobs"): ALL,
    ("backups.cozystack.io", "restorejobs"): ALL,
    ("backups.cozystack.io", "backups"): READ,
    ("backups.cozystack.io", "backupclasses"): READ,
}

# Cluster-scoped kinds every tenant may read: the BackupClasses a BackupJob names (cozystack-basics' view role).
CLUSTER_READ = {
    ("backups.cozystack.io", "backupclasses"): READ,
}

TENANT_USER = "tenant-demo-admin"


def authorize(tenant_ns, verb, group, resource, ns, name):
    """Raise 403 Forbidden unless the tenant may do verb on group/resource in ns."""
    allowed = set()
    if ns == tenant_ns:
        allowed = TENANT_RULES.get((group, resource)) or TENANT_RULES.get((group, "*")) or set()
    elif group == "" and resource == "namespaces" and name == tenant_ns:
        allowed = {"get"}
    elif not ns:
        allowed = CLUSTER_READ.get((group, resource)) or set()
    if verb in allowed:
        return
    plural = resource.split("/")[0]
    label = "%s.%s" % (plural, group) if group else plural
    subject = '%s "%s"' % (label, name) if name else label
    where = ' in the namespace "%s"' % ns if ns else ""
    what = 'resource "%s"' % plural + (' subresource "%s"' % resource.split("/")[1] if "/" in resource else "")
    message = '%s is forbidden: User "%s" cannot %s %s in API group "%s"%s' % (subject, TENANT_USER, verb, what, group, where)
    raise ApiError(403, "Forbidden", message, name=name, rt=types.SimpleNamespace(group=group, plural=plural))
