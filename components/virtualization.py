"""KubeVirt and CDI: virtual machines on the management cluster (tenant nodes are VMs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig


@dataclass(frozen=True)
class VirtualizationArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class Virtualization(pulumi.ComponentResource):
    def __init__(self, name: str, args: VirtualizationArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:virtualization:Virtualization", name, None, opts)
        for ns in ("kubevirt", "cdi"):
            PlatformNamespace(
                f"{name}-{ns}-namespace", PlatformNamespaceArgs(name=ns, pod_security="privileged", depends_on=args.depends_on),
                provider, opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({})
