"""Virtualization on the management cluster: node-local storage, CDI and KubeVirt (tenant nodes are
VMs). This component only composes; each part is its own component (local_storage, cdi, kubevirt).

Order: local-path storage -> CDI (its scratch space uses the storage class); KubeVirt in
parallel. Tenants depend on this component, i.e. on the KubeVirt and CDI CRs, which Pulumi only
reports created once the operators report them Available.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cdi import CDI, CDIArgs
from components.kubevirt import KubeVirt, KubeVirtArgs
from components.local_storage import LocalStorage, LocalStorageArgs
from stacks.config import PlatformConfig


def deploys_local_storage(cfg: PlatformConfig) -> bool:
    """local-path-provisioner needs the Talos user volume: on by default on Talos only."""
    if cfg.kubevirt.local_path_provisioner is not None:
        return cfg.kubevirt.local_path_provisioner
    return cfg.management_cluster.provisioner == "ovh-talos"


@dataclass(frozen=True)
class VirtualizationArgs:
    config: PlatformConfig
    # The management cluster's kubeconfig: the operator manifests are applied at deploy time.
    kubeconfig: pulumi.Input[str]
    kube_context: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


class Virtualization(pulumi.ComponentResource):
    kubevirt: KubeVirt
    cdi: CDI
    local_storage: LocalStorage | None
    ready: list[pulumi.Resource]  # wait for these before creating VMs or DataVolumes

    def __init__(self, name: str, args: VirtualizationArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:virtualization:Virtualization", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg = args.config
        self.local_storage = None
        scratch: list[pulumi.Resource] = []
        if deploys_local_storage(cfg):
            self.local_storage = LocalStorage(
                f"{name}-local-storage", LocalStorageArgs(depends_on=args.depends_on), provider, opts=child
            )
            scratch = [self.local_storage.storage_class, self.local_storage.deployment]
        self.cdi = CDI(
            f"{name}-cdi",
            CDIArgs(config=cfg, kubeconfig=args.kubeconfig, kube_context=args.kube_context,
                    depends_on=args.depends_on, scratch_storage=scratch),
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
