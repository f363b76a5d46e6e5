"""ArgoCD: GitOps for the platform and the tenants' applications."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts import OidcClient
from components.common import helm_release
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "argocd"


def values(cfg: PlatformConfig, oidc: OidcClient) -> dict[str, Any]:
    return {
        "global": {"domain": f"argocd.{cfg.domain.platform_zone}"},
        "configs": {
            "cm": {"admin.enabled": False},
            "params": {"server.insecure": True},
        },
    }


@dataclass(frozen=True)
class ArgoCDArgs:
    config: PlatformConfig
    oidc: OidcClient
    depends_on: Sequence[pulumi.Resource] = ()


class ArgoCD(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    namespace: str = NAMESPACE

    def __init__(self, name: str, args: ArgoCDArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:gitops:ArgoCD", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on, allow_from_namespaces=["traefik"]),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = helm_release(name, "argo-cd", ns.name, values(args.config, args.oidc), parent=self, provider=provider, depends_on=[ns])
        self.register_outputs({})
