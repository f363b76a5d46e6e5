"""Traefik: the platform's ingress, on a pinned load-balancer IP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.common import helm_release
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "traefik"


def values(cfg: PlatformConfig) -> dict[str, Any]:
    annotations = {}
    if cfg.traefik_ip:
        annotations["lbipam.cilium.io/ips"] = cfg.traefik_ip
    return {
        "deployment": {"replicas": cfg.traefik.replicas},
        "service": {"annotations": annotations, "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}},
        "providers": {"kubernetesCRD": {"enabled": True}, "kubernetesIngress": {"enabled": True}},
    }


@dataclass(frozen=True)
class TraefikArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class Traefik(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: TraefikArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:edge:Traefik", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, pod_security="baseline", depends_on=args.depends_on),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = helm_release(name, "traefik", ns.name, values(args.config), parent=self, provider=provider, depends_on=[ns])
        self.register_outputs({})
