"""Network policy manifests shared by the platform's namespaces, and their wiring.

Every namespace starts from default-deny (``components.core.namespace.PlatformNamespace``); each service
declares the flows it needs next to itself with the renderers here. Renderers are pure: they return
manifests (dicts in Kubernetes' own camelCase), tested directly; :func:`apply` (or
``components.core.k8s_objects.register`` for a single manifest) turns them into resources.

Two kinds are used, on purpose:

- ``networking.k8s.io/v1 NetworkPolicy`` for flows between pods and to/from CIDRs. Its CRD is built
  in, so these can exist *before* Cilium runs (the Cilium namespace's own policies must).
- ``cilium.io/v2 CiliumNetworkPolicy`` where a Kubernetes NetworkPolicy cannot say it precisely:
  the kube-apiserver (Cilium's ``kube-apiserver`` entity: on Talos the API server is a host-network
  static pod, which an ``ipBlock`` does not select) and "the internet" (``world`` entity, which
  excludes every in-cluster endpoint). A NetworkPolicy ``ipBlock`` does not match Cilium's
  reserved identities. These need Cilium's CRDs, so they wait for Cilium's release.
  Ref: cilium CiliumNetworkPolicy v2 schema (../shared/schemas/cilium/crd-jsonschema), `toEntities`
  / `fromEntities` enum: world, cluster, host, remote-node, kube-apiserver, ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.core.common import MANAGED_BY
from components.core.contracts import TENANT_NAMESPACE_LABEL
from components.core.k8s_objects import register

CILIUM_API = "cilium.io/v2"

# Port the API servers listen on (Talos and kubeadm default). Pods reach the API through the
# `kubernetes` Service; policies see the translated destination (endpoint port), not 443.
# Ref: https://docs.cilium.io/en/stable/security/policy/language/#entities-based (kube-apiserver)
KUBE_APISERVER_PORT = 6443

Ports = Sequence[tuple[str, int | str]]


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}


def _selector(match_labels: Mapping[str, str] | None) -> dict[str, Any]:
    return {"matchLabels": dict(match_labels)} if match_labels else {}


def tcp(*ports: int) -> list[tuple[str, int]]:
    """``(protocol, port)`` pairs for TCP ports, as the renderers below take them."""
    return [("TCP", p) for p in ports]


def policy_ports(ports: Ports) -> list[dict[str, Any]]:
    """NetworkPolicy ``ports`` of a rule."""
    return [{"protocol": proto, "port": port} for proto, port in ports]


def cilium_ports(ports: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """CiliumNetworkPolicy ``toPorts`` of a rule (ports as strings, per the CRD schema)."""
    return [{"ports": [{"port": str(port), "protocol": proto} for proto, port in ports]}]


def namespace_selector(namespace: str) -> dict[str, Any]:
    # Ref: kubernetes.io/metadata.name is set on every namespace by the API server (k8s >= 1.22).
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------

def network_policy(
    name: str,
    namespace: str,
    pod_labels: Mapping[str, str] | None = None,
    *,
    pod_selector: Mapping[str, Any] | None = None,
    ingress: Sequence[Mapping[str, Any]] | None = None,
    egress: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Kubernetes NetworkPolicy; ``pod_labels=None`` selects every pod of the namespace.

    ``pod_selector`` takes a whole label selector (``matchExpressions``) instead of ``pod_labels``.
    The policy types are those of the rule lists given.
    """
    types = []
    spec: dict[str, Any] = {"podSelector": dict(pod_selector) if pod_selector is not None else _selector(pod_labels)}
    if ingress is not None:
        types.append("Ingress")
        spec["ingress"] = [dict(r) for r in ingress]
    if egress is not None:
        types.append("Egress")
        spec["egress"] = [dict(r) for r in egress]
    spec["policyTypes"] = types
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name, namespace), "spec": spec}


def ingress_rule(
    ports: Ports,
    *,
    from_namespaces: Sequence[str] = (),
    from_pods: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Ingress on ``ports``; from anywhere when neither namespaces nor pods are given."""
    rule: dict[str, Any] = {"ports": policy_ports(ports)}
    peers: list[dict[str, Any]] = [{"namespaceSelector": namespace_selector(ns)} for ns in from_namespaces]
    if from_pods:
        peers.append({"podSelector": {"matchLabels": dict(from_pods)}})
    if peers:
        rule["from"] = peers
    return rule


def egress_rule(ports: Ports, peers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Egress to ``peers``; on any port when ``ports`` is empty."""
    rule: dict[str, Any] = {"to": [dict(p) for p in peers]}
    if ports:
        rule["ports"] = policy_ports(ports)
    return rule


def cilium_policy(
    name: str,
    namespace: str,
    endpoint_labels: Mapping[str, str] | None = None,
    description: str | None = None,
    *,
    ingress: Sequence[Mapping[str, Any]] | None = None,
    egress: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A CiliumNetworkPolicy (cilium.io/v2); ``endpoint_labels=None`` selects every pod of the namespace."""
    spec: dict[str, Any] = {"endpointSelector": _selector(endpoint_labels)}
    if description is not None:
        spec["description"] = description
    if ingress is not None:
        spec["ingress"] = [dict(r) for r in ingress]
    if egress is not None:
        spec["egress"] = [dict(r) for r in egress]
    return {"apiVersion": CILIUM_API, "kind": "CiliumNetworkPolicy", "metadata": _meta(name, namespace), "spec": spec}


def _entity_rule(direction: str, entity: str, ports: Sequence[tuple[str, int]] | None) -> dict[str, Any]:
    rule: dict[str, Any] = {direction: [entity]}
    if ports is not None:
        rule["toPorts"] = cilium_ports(ports)
    return rule


# --------------------------------------------------------------------------------------------
# Common flows
# --------------------------------------------------------------------------------------------

APISERVER_EGRESS_WHY = "Egress to the Kubernetes API server (the pods are API clients)."
# The virtualization, Cluster API and ArgoCD namespaces named their policy so (kept: a new name
# would replace the objects). They allowed any port of the API server's identity until issue 18's
# review: on Talos that identity is the control-plane nodes' own (a node running the API server on
# its host network gets the kube-apiserver identity; Ref: cilium/cilium#17714, #29432), so "any
# port" also opened etcd (2379), the kubelet (10250) and the Talos API (50000) to those pods. Their
# clients use the API server only, on 6443 after Cilium's service translation, like every other
# namespace.
APISERVER_EGRESS_NAMED_AS_BEFORE: dict[str, Any] = {"name": "allow-apiserver-egress"}


def allow_kube_apiserver_egress(
    namespace: str,
    endpoint_labels: Mapping[str, str] | None = None,
    name: str = "allow-kube-apiserver",
    *,
    ports: Sequence[tuple[str, int]] | None = tuple(tcp(KUBE_APISERVER_PORT)),
    description: str | None = APISERVER_EGRESS_WHY,
) -> dict[str, Any]:
    """Egress to the Kubernetes API server only (controllers watching the API); any port when
    ``ports`` is None."""
    return cilium_policy(
        name, namespace, endpoint_labels, description,
        egress=[_entity_rule("toEntities", "kube-apiserver", ports)],
    )


def allow_ingress_from_kube_apiserver(
    namespace: str,
    ports: Sequence[tuple[str, int]],
    endpoint_labels: Mapping[str, str] | None = None,
    name: str = "allow-apiserver-webhooks",
    *,
    description: str | None = None,
) -> dict[str, Any]:
    """Ingress from the API server only (admission/conversion webhooks, aggregated APIs)."""
    return cilium_policy(
        name, namespace, endpoint_labels, description,
        ingress=[_entity_rule("fromEntities", "kube-apiserver", ports)],
    )


def allow_world_egress(
    namespace: str,
    ports: Sequence[tuple[str, int]] | None,
    endpoint_labels: Mapping[str, str] | None = None,
    name: str = "allow-world-egress",
    *,
    description: str | None = None,
) -> dict[str, Any]:
    """Egress to addresses outside the cluster (Cilium's ``world`` entity) on ``ports`` only (any
    port when None)."""
    return cilium_policy(
        name, namespace, endpoint_labels, description,
        egress=[_entity_rule("toEntities", "world", ports)],
    )


def same_namespace(namespace: str, name: str = "allow-same-namespace") -> dict[str, Any]:
    """Pods of the namespace may talk to each other (both directions)."""
    peer = [{"podSelector": {}}]
    return network_policy(name, namespace, ingress=[{"from": peer}], egress=[{"to": peer}])


def egress_to_namespace(
    namespace: str,
    target: str,
    ports: Ports = (),
    pod_labels: Mapping[str, str] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Egress to one other namespace on ``ports`` (any port when empty)."""
    return network_policy(
        name or f"allow-egress-to-{target}", namespace, pod_labels,
        egress=[egress_rule(ports, [{"namespaceSelector": namespace_selector(target)}])],
    )


def egress_to_tenants(
    namespace: str,
    ports: Ports,
    pod_labels: Mapping[str, str] | None = None,
    name: str = "allow-egress-to-tenants",
) -> dict[str, Any]:
    """Pods may reach the tenant clusters' endpoints (VM pods in every tenant namespace)."""
    tenants = {"namespaceSelector": {"matchExpressions": [{"key": TENANT_NAMESPACE_LABEL, "operator": "Exists"}]}}
    return network_policy(name, namespace, pod_labels, egress=[egress_rule(ports, [tenants])])


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------

def apply(
    name: str,
    manifests: Sequence[Mapping[str, Any]],
    provider: k8s.Provider,
    *,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> list[pulumi.Resource]:
    """One resource per manifest, named ``<name>-<metadata.name>``, each waiting for ``depends_on``."""
    opts = pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on))
    return [register(f"{name}-{m['metadata']['name']}", m, opts) for m in manifests]
