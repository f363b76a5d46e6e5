"""Kubernetes RBAC of the management cluster for the identities Authentik vouches for.

The apiserver authenticates OIDC tokens of Authentik's ``<managementCluster.name>`` application
(kubelogin) and prefixes their groups with ``contracts.OIDC_GROUPS_PREFIX``. Here:

* the platform admin group -> ``cluster-admin`` (the only OIDC subject bound to it);
* each tenant admin group -> the Role ``tenant-admin`` in that tenant's namespace only
  (``<clusterApi.tenantNamespacePrefix><tenant>``): read the tenant's Cluster API, KubeVirt and
  workload objects, and ``get`` the tenant cluster's kubeconfig Secret - no write, no RBAC, no
  other Secret. Tenant clusters are administered through that kubeconfig, not here.

Any other authenticated user is bound to nothing (the built-in discovery roles only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.core.common import MANAGED_BY
from components.core.contracts import oidc_group_subject
from stacks.config import PlatformConfig

TENANT_ADMIN_ROLE = "tenant-admin"
READ = ["get", "list", "watch"]


def tenant_namespace(cfg: PlatformConfig, tenant: str) -> str:
    return f"{cfg.cluster_api.tenant_namespace_prefix}{tenant}"


def tenant_kubeconfig_secret(tenant: str) -> str:
    # Cluster API writes "<cluster name>-kubeconfig" (key "value") next to the Cluster.
    # Ref: cluster-api book, "Cluster API Kubeconfig" (secret naming).
    return f"{tenant}-kubeconfig"


def platform_admin_binding(cfg: PlatformConfig) -> dict[str, Any]:
    group = cfg.authentik.platform_admin_group
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"oidc-{group}-cluster-admin", "labels": dict(MANAGED_BY)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": oidc_group_subject(group)}],
    }


def tenant_admin_role(cfg: PlatformConfig, tenant: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": TENANT_ADMIN_ROLE, "namespace": tenant_namespace(cfg, tenant), "labels": dict(MANAGED_BY)},
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "endpoints", "events",
                                              "configmaps", "persistentvolumeclaims"], "verbs": READ},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": READ},
            {"apiGroups": ["cluster.x-k8s.io"], "resources": ["clusters", "machines", "machinesets",
                                                              "machinedeployments", "machinehealthchecks"],
             "verbs": READ},
            {"apiGroups": ["controlplane.cluster.x-k8s.io"], "resources": ["taloscontrolplanes"], "verbs": READ},
            {"apiGroups": ["infrastructure.cluster.x-k8s.io"], "resources": ["kubevirtclusters", "kubevirtmachines"],
             "verbs": READ},
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines", "virtualmachineinstances"], "verbs": READ},
            {"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes"], "verbs": READ},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [tenant_kubeconfig_secret(tenant)],
             "verbs": ["get"]},
        ],
    }


def tenant_admin_binding(cfg: PlatformConfig, tenant: str, groups: Sequence[str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"oidc-{TENANT_ADMIN_ROLE}", "namespace": tenant_namespace(cfg, tenant),
                     "labels": dict(MANAGED_BY)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": TENANT_ADMIN_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": oidc_group_subject(g)}
                     for g in sorted(set(groups))],
    }


@dataclass(frozen=True)
class ClusterRbacArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()
    # The tenants built by this program, each with what creates its namespace: a tenant's bindings
    # wait for that only (not for other tenants), and a tenant not built here gets none.
    tenant_dependencies: Mapping[str, Sequence[pulumi.Resource]] = field(default_factory=dict)


class ClusterRbac(pulumi.ComponentResource):
    platform_admins: k8s.rbac.v1.ClusterRoleBinding
    tenant_roles: dict[str, k8s.rbac.v1.Role]
    tenant_bindings: dict[str, k8s.rbac.v1.RoleBinding]

    def __init__(self, name: str, args: ClusterRbacArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:identity:ClusterRbac", name, None, opts)
        cfg = args.config
        crb = platform_admin_binding(cfg)
        self.platform_admins = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-platform-admins",
            metadata=crb["metadata"], role_ref=crb["roleRef"], subjects=crb["subjects"],
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(args.depends_on)),
        )
        self.tenant_roles = {}
        self.tenant_bindings = {}
        for tenant in cfg.tenants:
            if tenant.name not in args.tenant_dependencies:
                continue
            deps = list(args.tenant_dependencies[tenant.name])
            child = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=deps)
            role = tenant_admin_role(cfg, tenant.name)
            self.tenant_roles[tenant.name] = r = k8s.rbac.v1.Role(
                f"{name}-{tenant.name}-role", metadata=role["metadata"], rules=role["rules"], opts=child,
            )
            binding = tenant_admin_binding(cfg, tenant.name, tenant.admin_groups)
            self.tenant_bindings[tenant.name] = k8s.rbac.v1.RoleBinding(
                f"{name}-{tenant.name}-binding",
                metadata=binding["metadata"], role_ref=binding["roleRef"], subjects=binding["subjects"],
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[r])),
            )
        self.register_outputs({})
