"""Network policy manifests shared by the platform's namespaces, and their wiring.

Every namespace starts from default-deny (``components.namespace.PlatformNamespace``); each service
declares the flows it needs next to itself with the renderers here. Renderers are pure: they return
manifests (dicts in Kubernetes' own camelCase), tested directly; :func:`apply` turns a list of them
into resources.

Two kinds are used, on purpose:

- ``networking.k8s.io/v1 NetworkPolicy`` for flows between pods and to/from CIDRs. Its CRD is built
  in, so these can exist *before* Cilium runs (the Cilium namespace's own policies must).
- ``cilium.io/v2 CiliumNetworkPolicy`` where a Kubernetes NetworkPolicy cannot say it precisely:
  the kube-apiserver (Cilium's ``kube-apiserver`` entity: on Talos the API server is a host-network
  static pod, which an ``ipBlock`` does not select) and "the internet" (``world`` entity, which
  excludes every in-cluster endpoint). These need Cilium's CRDs, so they wait for Cilium's release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.common import MANAGED_BY

# Port the API servers listen on (Talos and kubeadm default). Pods reach the API through the
# `kubernetes` Service; policies see the translated destination (endpoint port), not 443.
# Ref: https://docs.cilium.io/en/stable/security/policy/language/#entities-based (kube-apiserver)
KUBE_APISERVER_PORT = 6443


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}


def _ports(ports: Sequence[tuple[str, int | str]]) -> list[dict[str, Any]]:
    return [{"protocol": proto, "port": port} for proto, port in ports]


def _cilium_ports(ports: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"ports": [{"port": str(port), "protocol": proto} for proto, port in ports]}]


def namespace_selector(namespace: str) -> dict[str, Any]:
    # Ref: kubernetes.io/metadata.name is set on every namespace by the API server (k8s >= 1.22).
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


def network_policy(
    name: str,
    namespace: str,
    pod_labels: Mapping[str, str] | None,
    *,
    ingress: Sequence[Mapping[str, Any]] | None = None,
    egress: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Kubernetes NetworkPolicy; ``pod_labels=None`` selects every pod of the namespace."""
    types = []
    spec: dict[str, Any] = {"podSelector": {"matchLabels": dict(pod_labels)} if pod_labels else {}}
    if ingress is not None:
        types.append("Ingress")
        spec["ingress"] = [dict(r) for r in ingress]
    if egress is not None:
        types.append("Egress")
        spec["egress"] = [dict(r) for r in egress]
    spec["policyTypes"] = types
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name, namespace), "spec": spec}


def ingress_rule(
    ports: Sequence[tuple[str, int | str]],
    *,
    from_namespaces: Sequence[str] = (),
    from_pods: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Ingress on ``ports``; from anywhere when neither namespaces nor pods are given."""
    rule: dict[str, Any] = {"ports": _ports(ports)}
    peers: list[dict[str, Any]] = [{"namespaceSelector": namespace_selector(ns)} for ns in from_namespaces]
    if from_pods:
        peers.append({"podSelector": {"matchLabels": dict(from_pods)}})
    if peers:
        rule["from"] = peers
    return rule


def egress_rule(ports: Sequence[tuple[str, int | str]], peers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"to": [dict(p) for p in peers], "ports": _ports(ports)}


def cilium_policy(
    name: str,
    namespace: str,
    endpoint_labels: Mapping[str, str] | None,
    description: str,
    *,
    ingress: Sequence[Mapping[str, Any]] | None = None,
    egress: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A CiliumNetworkPolicy (cilium.io/v2); ``endpoint_labels=None`` selects every pod of the namespace."""
    spec: dict[str, Any] = {
        "description": description,
        "endpointSelector": {"matchLabels": dict(endpoint_labels)} if endpoint_labels else {},
    }
    if ingress is not None:
        spec["ingress"] = [dict(r) for r in ingress]
    if egress is not None:
        spec["egress"] = [dict(r) for r in egress]
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": _meta(name, namespace), "spec": spec}


def allow_kube_apiserver_egress(
    namespace: str, endpoint_labels: Mapping[str, str] | None = None, name: str = "allow-kube-apiserver"
) -> dict[str, Any]:
    """Egress to the Kubernetes API server only (controllers watching the API)."""
    return cilium_policy(
        name, namespace, endpoint_labels,
        "Egress to the Kubernetes API server (the pods are API clients).",
        egress=[{"toEntities": ["kube-apiserver"], "toPorts": _cilium_ports([("TCP", KUBE_APISERVER_PORT)])}],
    )


def allow_ingress_from_kube_apiserver(
    name: str, namespace: str, endpoint_labels: Mapping[str, str], port: int
) -> dict[str, Any]:
    """Ingress from the API server only (admission webhooks, aggregated APIs)."""
    return cilium_policy(
        name, namespace, endpoint_labels,
        f"The Kubernetes API server calls this webhook on {port}/TCP.",
        ingress=[{"fromEntities": ["kube-apiserver"], "toPorts": _cilium_ports([("TCP", port)])}],
    )


def allow_world_egress(
    name: str, namespace: str, endpoint_labels: Mapping[str, str] | None, ports: Sequence[tuple[str, int]], why: str
) -> dict[str, Any]:
    """Egress to addresses outside the cluster (Cilium's ``world`` entity) on ``ports`` only."""
    return cilium_policy(
        name, namespace, endpoint_labels, why,
        egress=[{"toEntities": ["world"], "toPorts": _cilium_ports(ports)}],
    )


def apply(
    name: str,
    manifests: Sequence[Mapping[str, Any]],
    provider: k8s.Provider,
    *,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> list[pulumi.Resource]:
    """One resource per manifest, named ``<name>-<metadata.name>``, each waiting for ``depends_on``."""
    out: list[pulumi.Resource] = []
    opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
    for m in manifests:
        res_name = f"{name}-{m['metadata']['name']}"
        if m["kind"] == "NetworkPolicy":
            out.append(k8s.networking.v1.NetworkPolicy(res_name, metadata=m["metadata"], spec=m["spec"], opts=opts))
        else:
            out.append(
                k8s.apiextensions.CustomResource(
                    res_name, api_version=m["apiVersion"], kind=m["kind"], metadata=m["metadata"],
                    spec=m["spec"], opts=opts,
                )
            )
    return out
