"""cert-manager with its CRDs, and the platform's ClusterIssuers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.common import helm_release
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "cert-manager"


def values(cfg: PlatformConfig) -> dict[str, Any]:
    return {
        "crds": {"enabled": True, "keep": True},
        "replicaCount": 2,
        "podDisruptionBudget": {"enabled": True},
    }


@dataclass(frozen=True)
class CertManagerArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class CertManager(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: CertManagerArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:tls:CertManager", name, None, opts)
        self._name = name
        self._cfg = args.config
        self._provider = provider
        ns = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on), provider,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = helm_release(name, "cert-manager", ns.name, values(args.config), parent=self, provider=provider, depends_on=[ns])
        self.register_outputs({})

    def add_issuers(self, tsig_secret_name: str, tsig_key: pulumi.Output[str], bind9: pulumi.Resource) -> pulumi.Resource:
        """ClusterIssuers; created once cert-manager's CRDs and Bind9 exist."""
        issuer = k8s.apiextensions.CustomResource(
            f"{self._name}-selfsigned",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="selfsigned"),
            spec={"selfSigned": {}},
            opts=pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=[self.release, bind9]),
        )
        return issuer
