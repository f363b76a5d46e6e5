"""Cluster API through the cluster-api-operator: core, KubeVirt infrastructure, Talos providers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.common import helm_release
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "capi-operator-system"


def values(cfg: PlatformConfig) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ClusterApiArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class ClusterApi(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterApiArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:clusters:ClusterApi", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        helm_release(name, "cluster-api-operator", ns.name, values(args.config), parent=self, provider=provider, depends_on=[ns])
        self.register_outputs({})
