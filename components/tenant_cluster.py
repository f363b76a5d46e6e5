"""A tenant ("other cluster"): a Kubernetes cluster of KubeVirt VMs made through Cluster API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig, Tenant


@dataclass(frozen=True)
class TenantClusterArgs:
    tenant: Tenant
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()
    authentik: Any = None
    vault: Any = None
    argocd: Any = None
    netbird: Any = None


class TenantCluster(pulumi.ComponentResource):
    namespace: str

    def __init__(self, name: str, args: TenantClusterArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:tenants:TenantCluster", name, None, opts)
        self.namespace = f"{args.config.cluster_api.tenant_namespace_prefix}{args.tenant.name}"
        PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=self.namespace, pod_security="baseline", depends_on=args.depends_on,
                                  labels={"weebo.io/tenant": args.tenant.name}),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
