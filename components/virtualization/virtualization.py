"""Virtualization on the management cluster: CDI and KubeVirt (tenant nodes are VMs). This
component only composes; each part is its own component (cdi, kubevirt).

Order: node-local storage (``components/virtualization/local_storage.py``, a platform service of its own since
Bind9, Vault and Authentik claim volumes too) -> CDI (its scratch space uses the storage class);
KubeVirt in parallel. Tenants depend on this component, i.e. on the KubeVirt and CDI CRs, which
Pulumi only reports created once the operators report them Available.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.virtualization.cdi import CDI, CDIArgs
from components.virtualization.kubevirt import KubeVirt, KubeVirtArgs
from stacks.config import PlatformConfig


@dataclass(frozen=True)
class VirtualizationArgs:
    config: PlatformConfig
    # The management cluster's kubeconfig: the operator manifests are applied at deploy time.
    kubeconfig: pulumi.Input[str]
    kube_context: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()
    # What provides the scratch StorageClass (LocalStorage.ready), when the platform creates it.
    scratch_storage: Sequence[pulumi.Resource] = ()


class Virtualization(pulumi.ComponentResource):
    kubevirt: KubeVirt
    cdi: CDI
    ready: list[pulumi.Resource]  # wait for these before creating VMs or DataVolumes

    def __init__(self, name: str, args: VirtualizationArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:virtualization:Virtualization", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg = args.config
        self.cdi = CDI(
            f"{name}-cdi",
            CDIArgs(config=cfg, kubeconfig=args.kubeconfig, kube_context=args.kube_context,
                    depends_on=args.depends_on, scratch_storage=args.scratch_storage),
            provider, opts=child,
        )
        self.kubevirt = KubeVirt(
            f"{name}-kubevirt",
            KubeVirtArgs(config=cfg, kubeconfig=args.kubeconfig, kube_context=args.kube_context,
                         depends_on=args.depends_on),
            provider, opts=child,
        )
        self.ready = [self.kubevirt.cr, self.cdi.cr]
        self.register_outputs({})
