"""A namespace the platform owns: Pod Security level, default-deny network policy, DNS allowed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s

from components.core.common import MANAGED_BY
from components.core.k8s_objects import register
from components.core.network_policy import egress_rule, namespace_selector, network_policy

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]

# Namespaces whose workloads truly need host access (eBPF datapath, VM launchers, CSI mounts,
# WireGuard). Any other namespace asking for 'privileged' is refused at construction time.
PRIVILEGED_NAMESPACES = frozenset(
    {"kube-system", "cilium", "kubevirt", "cdi", "local-path-storage", "netbird",
     # inside tenant clusters: the kubevirt-csi node plugin mounts volumes on the host
     "kubevirt-csi-driver"}
)


@dataclass(frozen=True)
class PlatformNamespaceArgs:
    name: str
    pod_security: PodSecurityLevel = "restricted"
    labels: Mapping[str, str] = field(default_factory=dict)
    # Ingress from the cluster's ingress controller namespace, for namespaces serving HTTP.
    allow_from_namespaces: Sequence[str] = ()
    depends_on: Sequence[pulumi.Resource] = ()


class PlatformNamespace(pulumi.ComponentResource):
    namespace: k8s.core.v1.Namespace
    name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: PlatformNamespaceArgs,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("weebo:kubernetes:PlatformNamespace", name, None, opts)
        if args.pod_security == "privileged" and args.name not in PRIVILEGED_NAMESPACES:
            raise ValueError(f"namespace {args.name!r} is not in the privileged allow-list")
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        level = args.pod_security
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.name,
                labels={
                    **MANAGED_BY,
                    **args.labels,
                    # Ref: https://kubernetes.io/docs/concepts/security/pod-security-admission/
                    "pod-security.kubernetes.io/enforce": level,
                    "pod-security.kubernetes.io/audit": level,
                    "pod-security.kubernetes.io/warn": level,
                },
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.depends_on))),
        )
        self.name = self.namespace.metadata.name
        ns_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.namespace])
        # Default deny both ways; every allowed flow is declared next to the service that needs it.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="default-deny", namespace=args.name, labels=MANAGED_BY),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress", "Egress"],
            ),
            opts=ns_opts,
        )
        kube_dns = {"namespaceSelector": namespace_selector("kube-system"),
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
        register(
            f"{name}-allow-dns",
            network_policy("allow-dns", args.name, egress=[egress_rule([("UDP", 53), ("TCP", 53)], [kube_dns])]),
            ns_opts,
        )
        if args.allow_from_namespaces:
            peers = [{"namespaceSelector": namespace_selector(ns)} for ns in sorted(args.allow_from_namespaces)]
            register(
                f"{name}-allow-ingress-from",
                network_policy("allow-from-platform", args.name, ingress=[{"from": peers}]),
                ns_opts,
            )
        self.register_outputs({"name": self.name})
