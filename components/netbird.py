"""NetBird: the platform VPN; a routing peer inside the management cluster."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.common import helm_release
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "netbird"


def values(cfg: PlatformConfig) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class NetbirdArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class Netbird(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetbirdArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:vpn:Netbird", name, None, opts)
        if args.config.netbird.enabled:
            ns = PlatformNamespace(
                f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, pod_security="privileged", depends_on=args.depends_on),
                provider, opts=pulumi.ResourceOptions(parent=self),
            )
            helm_release(name, "netbird-operator", ns.name, values(args.config), parent=self, provider=provider, depends_on=[ns])
        self.register_outputs({})
