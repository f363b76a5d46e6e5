"""Cilium: CNI and kube-proxy replacement of the management cluster, with LB IPAM.

Installed first: Talos nodes stay NotReady (and reboot after a while) until a CNI runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.common import helm_release
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "cilium"


def values(cfg: PlatformConfig) -> dict[str, Any]:
    """Talos-specific values. Ref: siderolabs docs "Deploying Cilium CNI" (KubePrism on 7445)."""
    return {
        "ipam": {"mode": "kubernetes"},
        "kubeProxyReplacement": True,
        "k8sServiceHost": "localhost",
        "k8sServicePort": 7445,
        "cgroup": {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"},
        "securityContext": {
            "capabilities": {
                # Talos forbids loading kernel modules: no SYS_MODULE.
                "ciliumAgent": [
                    "CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN",
                    "SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID",
                ],
                "cleanCiliumState": ["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"],
            }
        },
        "l2announcements": {"enabled": True},
        "routingMode": "tunnel",
        "tunnelProtocol": cfg.cilium.tunnel_protocol,
        "hubble": {"enabled": True, "relay": {"enabled": True}, "ui": {"enabled": cfg.cilium.hubble_ui}},
        "operator": {"replicas": 1 if len(cfg.management_cluster.nodes) <= 1 else 2},
    }


@dataclass(frozen=True)
class CiliumArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class Cilium(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: CiliumArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:network:Cilium", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=NAMESPACE, pod_security="privileged", depends_on=args.depends_on),
            provider,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = helm_release(
            name, "cilium", ns.name, values(args.config), parent=self, provider=provider, depends_on=[ns]
        )
        self.register_outputs({})
