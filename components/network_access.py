"""Network policies for flows plain NetworkPolicies cannot express on Cilium.

Every platform namespace denies all traffic by default (components.namespace). A NetworkPolicy
``ipBlock`` does not match Cilium's reserved identities, so traffic to and from the
kube-apiserver (host network) and to the Internet is allowed with CiliumNetworkPolicy entities.
Ref: cilium CiliumNetworkPolicy v2 schema (../shared/schemas/cilium/crd-jsonschema), `toEntities`
/ `fromEntities` enum: world, cluster, host, remote-node, kube-apiserver, ...

All functions are pure: they return manifests as dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from components.common import MANAGED_BY
from components.contracts import TENANT_NAMESPACE_LABEL

CILIUM_API = "cilium.io/v2"


def _selector(match_labels: Mapping[str, str] | None) -> dict[str, Any]:
    return {"matchLabels": dict(match_labels)} if match_labels else {}


def _ports(ports: Iterable[int], protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"ports": [{"port": str(p), "protocol": protocol} for p in ports]}]


def cilium_policy(name: str, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": CILIUM_API,
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": dict(spec),
    }


def apiserver_egress(namespace: str, match_labels: Mapping[str, str] | None = None,
                     name: str = "allow-apiserver-egress") -> dict[str, Any]:
    """Pods (all, or those matching ``match_labels``) may call the Kubernetes API."""
    return cilium_policy(name, namespace, {
        "endpointSelector": _selector(match_labels),
        "egress": [{"toEntities": ["kube-apiserver"]}],
    })


def apiserver_webhook_ingress(namespace: str, ports: Sequence[int], match_labels: Mapping[str, str] | None = None,
                              name: str = "allow-apiserver-webhooks") -> dict[str, Any]:
    """The kube-apiserver may call the admission/conversion webhooks served on ``ports``."""
    return cilium_policy(name, namespace, {
        "endpointSelector": _selector(match_labels),
        "ingress": [{"fromEntities": ["kube-apiserver"], "toPorts": _ports(ports)}],
    })


def world_egress(namespace: str, ports: Sequence[int], match_labels: Mapping[str, str] | None = None,
                 name: str = "allow-world-egress") -> dict[str, Any]:
    """Pods may open connections to addresses outside the cluster on ``ports`` only."""
    return cilium_policy(name, namespace, {
        "endpointSelector": _selector(match_labels),
        "egress": [{"toEntities": ["world"], "toPorts": _ports(ports)}],
    })


def network_policy(name: str, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": dict(spec),
    }


def same_namespace(namespace: str, name: str = "allow-same-namespace") -> dict[str, Any]:
    """Pods of the namespace may talk to each other (both directions)."""
    peer = [{"podSelector": {}}]
    return network_policy(name, namespace, {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": peer}],
        "egress": [{"to": peer}],
    })


def egress_to_namespace(namespace: str, target: str, ports: Sequence[int] = (),
                        match_labels: Mapping[str, str] | None = None, name: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": target}}}]}
    if ports:
        rule["ports"] = [{"protocol": "TCP", "port": p} for p in ports]
    return network_policy(name or f"allow-egress-to-{target}", namespace, {
        "podSelector": _selector(match_labels),
        "policyTypes": ["Egress"],
        "egress": [rule],
    })


def egress_to_tenants(namespace: str, ports: Sequence[int], match_labels: Mapping[str, str] | None = None,
                      name: str = "allow-egress-to-tenants") -> dict[str, Any]:
    """Pods may reach the tenant clusters' endpoints (VM pods in every tenant namespace)."""
    return network_policy(name, namespace, {
        "podSelector": _selector(match_labels),
        "policyTypes": ["Egress"],
        "egress": [{
            "to": [{"namespaceSelector": {"matchExpressions": [{"key": TENANT_NAMESPACE_LABEL, "operator": "Exists"}]}}],
            "ports": [{"protocol": "TCP", "port": p} for p in ports],
        }],
    })
