"""Network policies a platform namespace adds on top of PlatformNamespace's default deny.

Pure renderers (dicts) plus thin wrappers that create them, so the flows a service needs are
declared next to it and tested as data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.common import MANAGED_BY


def same_namespace_policy(namespace: str) -> dict[str, Any]:
    """Pods of the namespace talk to each other (server <-> database, raft peers, outposts)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-same-namespace", "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [{"to": [{"podSelector": {}}]}],
        },
    }


def egress_to_namespace_policy(namespace: str, target: str, ports: Sequence[int]) -> dict[str, Any]:
    """Egress to one other namespace on the given TCP ports."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"allow-egress-{target}", "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": target}}}],
                "ports": [{"protocol": "TCP", "port": p} for p in ports],
            }],
        },
    }


def apiserver_egress_policy(namespace: str, pod_labels: dict[str, str]) -> dict[str, Any]:
    """Egress to the Kubernetes API server for the selected pods.

    A plain NetworkPolicy cannot select the API server (host network, reached through the
    ``kubernetes`` Service): Cilium's ``kube-apiserver`` entity can.
    Ref: https://docs.cilium.io/en/stable/security/policy/language/#entities-based
    """
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "allow-kube-apiserver", "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "endpointSelector": {"matchLabels": dict(pod_labels)},
            "egress": [{"toEntities": ["kube-apiserver"], "toPorts": [{"ports": [{"port": "6443", "protocol": "TCP"}]}]}],
        },
    }


def create_policy(name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Create a policy rendered by the functions above."""
    if manifest["kind"] == "NetworkPolicy":
        return k8s.networking.v1.NetworkPolicy(
            name,
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=opts,
        )
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )
