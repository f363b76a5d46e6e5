"""Cilium: CNI and kube-proxy replacement of the management cluster, Hubble, and LB IPAM.

Installed first: Talos nodes stay NotReady (and reboot after a while) until a CNI runs, so every
other service waits for this component. The Cilium *operator* installs Cilium's CRDs when it
starts; the LB IPAM pool, the L2 announcement policy and every CiliumNetworkPolicy therefore wait
for :attr:`Cilium.release`.

Hubble UI is only reachable through Traefik behind Authentik forward-auth. Its IngressRoute needs
Traefik's CRDs, which come later: the composition calls :meth:`Cilium.expose_hubble_ui` once
Traefik is installed (explicit ordering instead of a hidden back-reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.core import network_policy as netpol
from components.core.common import MANAGED_BY, helm_release
from components.core.contracts import TRAEFIK_NAMESPACE, hostnames
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.edge.traefik import forward_auth_route
from stacks import facts
from stacks.config import PlatformConfig

NAMESPACE = facts.CILIUM_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
POOL_NAME = "platform-pool"

# KubePrism: Talos' node-local API server load balancer (default since Talos 1.6).
# Ref: https://docs.siderolabs.com/kubernetes-guides/cni/deploying-cilium (assumes KubePrism on 7445).
KUBEPRISM_HOST = "localhost"
KUBEPRISM_PORT = 7445
DEFAULT_APISERVER_PORT = 6443

# Talos forbids kernel module loading by workloads: the chart 1.20.0 default capability sets
# (values.yaml securityContext.capabilities) minus SYS_MODULE.
# Ref: siderolabs "Deploying Cilium CNI" (drop SYS_MODULE); tests compare with the chart defaults.
TALOS_AGENT_CAPABILITIES = [
    "CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN", "SYS_RESOURCE",
    "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "SYSLOG",
]
TALOS_CLEAN_STATE_CAPABILITIES = ["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"]

# Hubble components. Ref: cilium chart templates hubble-relay/service.yaml (80 -> listenPort 4245),
# hubble-ui/service.yaml (80 -> 8081), values.yaml hubble.peerService.targetPort (4244, agents).
RELAY_LABELS = {"k8s-app": "hubble-relay"}
UI_LABELS = {"k8s-app": "hubble-ui"}
RELAY_PORT = 4245
UI_PORT = 8081
HUBBLE_PEER_PORT = 4244

# L2 announcements hold one Lease per announced Service, renewed every leaseRenewDeadline (5s
# default). Ref: cilium Documentation/network/l2-announcements.rst "Sizing client rate limit":
# QPS = #services * (1 / leaseRenewDeadline), on top of the agent's base rate (chart default 10).
BASE_CLIENT_QPS = 10
LEASE_RENEW_DEADLINE_S = 5


def api_server(cfg: PlatformConfig) -> tuple[str, int] | None:
    """Where the agent reaches the API server when it replaces kube-proxy; None keeps kube-proxy.

    ovh-talos: KubePrism (localhost:7445) unless overridden. existing: only when the operator
    configured ``cilium.k8sServiceHost`` - an unknown cluster may run kube-proxy, and Cilium cannot
    replace it safely without knowing how to reach the API before Services work.
    """
    c = cfg.cilium
    if cfg.management_cluster.provisioner == "ovh-talos":
        return (c.k8s_service_host or KUBEPRISM_HOST, c.k8s_service_port or KUBEPRISM_PORT)
    if c.k8s_service_host:
        return (c.k8s_service_host, c.k8s_service_port or DEFAULT_APISERVER_PORT)
    return None


def kube_proxy_replacement(cfg: PlatformConfig) -> bool:
    return api_server(cfg) is not None


def l2_announcements(cfg: PlatformConfig) -> bool:
    # Ref: l2-announcements.rst "Prerequisites": kube-proxy replacement must be enabled.
    return kube_proxy_replacement(cfg) and bool(cfg.management_cluster.load_balancer_ips)


def operator_replicas(cfg: PlatformConfig) -> int:
    # The operator's pod anti-affinity is required per hostname (chart values operator.affinity):
    # never more replicas than nodes. An existing cluster's size is unknown: one.
    mc = cfg.management_cluster
    if mc.provisioner != "ovh-talos":
        return 1
    return max(1, min(2, len(mc.nodes)))


def announced_services(cfg: PlatformConfig) -> int:
    """L2-announced Services to size the client rate for: Traefik, Bind9, and per tenant its API
    and apps LoadBalancers — for as many tenants as the host can hold (each needs at least one
    2-core control-plane VM), not for the tenants listed: adding a tenant must leave the Cilium
    release alone (blast radius); only a change of hostCapacity resizes it."""
    max_tenants = max(1, cfg.host_capacity.cpu // 2)
    return 2 + 2 * max_tenants


def _resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


# Requests for every pod the chart renders (the chart sets none but the CNI installer's): the
# scheduler must count the datapath before the tenant VMs fill the one server. Memory limits,
# no CPU limits, like the platform's other chart workloads (throttling the agent or Envoy would
# stall the datapath). Agent: the chart's own example requests (values.yaml `resources`), its
# example 4Gi memory limit. Keys: cilium chart 1.20.0 values.yaml.
RESOURCES: dict[str, dict[str, Any]] = {
    "agent": _resources("100m", "512Mi", "4Gi"),
    "agentInit": _resources("10m", "32Mi", "128Mi"),  # initResources: mount-bpf-fs, clean-cilium-state...
    "envoy": _resources("50m", "128Mi", "1Gi"),
    "operator": _resources("50m", "128Mi", "512Mi"),
    "hubbleRelay": _resources("20m", "64Mi", "256Mi"),
    "hubbleUiBackend": _resources("10m", "64Mi", "256Mi"),
    "hubbleUiFrontend": _resources("10m", "32Mi", "128Mi"),
    "mountCgroup": _resources("10m", "16Mi", "64Mi"),  # cgroup.autoMount init container
}


def values(cfg: PlatformConfig) -> dict[str, Any]:
    """Helm values of the cilium chart 1.20.0."""
    c = cfg.cilium
    r = RESOURCES
    v: dict[str, Any] = {
        "ipam": {"mode": "kubernetes"},
        "routingMode": "tunnel",
        "tunnelProtocol": c.tunnel_protocol,
        "operator": {"replicas": operator_replicas(cfg), "resources": r["operator"]},
        "rollOutCiliumPods": True,
        "resources": r["agent"],
        "initResources": r["agentInit"],
        # Envoy runs as its own DaemonSet (chart default for new installations, `envoy.enabled`).
        "envoy": {"resources": r["envoy"]},
        "hubble": {
            "enabled": True,
            "relay": {"enabled": True, "resources": r["hubbleRelay"]},
            "ui": {
                "enabled": c.hubble_ui,
                "backend": {"resources": r["hubbleUiBackend"]},
                "frontend": {"resources": r["hubbleUiFrontend"]},
            },
        },
        # Lets Kubernetes NetworkPolicy ipBlocks select nodes (host / remote-node identities):
        # Hubble Relay must reach the agents (host network, 4244) before Cilium's own CRDs exist.
        # Ref: cilium PR #28421 (docs: policy-cidr-match-mode=nodes); configmap joins the list.
        "policyCIDRMatchMode": ["nodes"],
    }
    if c.mtu is not None:
        # The underlay MTU; Cilium derives pod/tunnel MTUs from it. Ref: values.yaml `MTU`.
        v["MTU"] = c.mtu
    api = api_server(cfg)
    if api is None:
        v["kubeProxyReplacement"] = False
    else:
        host, port = api
        v["kubeProxyReplacement"] = True
        v["k8sServiceHost"] = host
        v["k8sServicePort"] = port
    if l2_announcements(cfg):
        qps = BASE_CLIENT_QPS + math.ceil(announced_services(cfg) / LEASE_RENEW_DEADLINE_S)
        v["l2announcements"] = {"enabled": True}
        v["k8sClientRateLimit"] = {"qps": qps, "burst": 2 * qps}
    if cfg.management_cluster.provisioner == "ovh-talos":
        # Talos mounts cgroup v2 itself and forbids module loading.
        # Ref: https://docs.siderolabs.com/kubernetes-guides/cni/deploying-cilium
        v["cgroup"] = {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"}
        v["securityContext"] = {
            "capabilities": {
                "ciliumAgent": list(TALOS_AGENT_CAPABILITIES),
                "cleanCiliumState": list(TALOS_CLEAN_STATE_CAPABILITIES),
            }
        }
    else:
        # The chart's mount-cgroup init container (cgroup.autoMount, on by default) stays.
        v["cgroup"] = {"autoMount": {"resources": r["mountCgroup"]}}
    return v


def lb_pool(cfg: PlatformConfig) -> dict[str, Any]:
    """The LB IPAM pool: the OVH additional IP blocks."""
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": POOL_NAME, "labels": dict(MANAGED_BY)},
        "spec": {
            "blocks": [{"cidr": block} for block in cfg.management_cluster.load_balancer_ips],
            # Network and broadcast addresses stay unallocated, as PlatformConfig.lb_pool_addresses
            # assumes. Explicit: the default flipped to "Yes" in Cilium 1.16.
            # Ref: cilium Documentation/network/lb-ipam.rst "CIDRs, Ranges and reserved IPs".
            "allowFirstLastIPs": "No",
        },
    }


def l2_policy() -> dict[str, Any]:
    """Announce every LoadBalancer IP over ARP from any node (single-node prod: the node itself)."""
    return {
        "apiVersion": "cilium.io/v2alpha1",
        "kind": "CiliumL2AnnouncementPolicy",
        "metadata": {"name": "platform-l2", "labels": dict(MANAGED_BY)},
        # No interfaces: all of the agent's devices. No node selector: control-plane nodes run
        # workloads on this cluster. Ref: l2-announcements.rst "Policies".
        "spec": {"loadBalancerIPs": True, "externalIPs": False},
    }


def policies_before_release(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """Hubble's flows, as Kubernetes NetworkPolicies: they must exist before the release, whose
    readiness wait includes Hubble Relay (ready once connected to an agent, cilium PR #28765).
    The agents, operator and Envoy run on the host network: namespace policies do not apply."""
    out = [
        # Relay -> agents' Hubble servers on every node (host network; needs policyCIDRMatchMode
        # nodes). Node addresses of an existing cluster are unknown, so the destination is any
        # address on the Hubble peer port only.
        netpol.network_policy(
            "hubble-relay-to-agents", NAMESPACE, RELAY_LABELS,
            egress=[netpol.egress_rule([("TCP", HUBBLE_PEER_PORT)], [{"ipBlock": {"cidr": "0.0.0.0/0"}}])],
        ),
    ]
    if cfg.cilium.hubble_ui:
        out += [
            netpol.network_policy(
                "hubble-relay-from-ui", NAMESPACE, RELAY_LABELS,
                ingress=[netpol.ingress_rule([("TCP", RELAY_PORT)], from_pods=UI_LABELS)],
            ),
            netpol.network_policy(
                "hubble-ui-to-relay", NAMESPACE, UI_LABELS,
                egress=[netpol.egress_rule([("TCP", RELAY_PORT)], [{"podSelector": {"matchLabels": dict(RELAY_LABELS)}}])],
            ),
            # Only Traefik serves the UI (behind forward-auth).
            netpol.network_policy(
                "hubble-ui-from-traefik", NAMESPACE, UI_LABELS,
                ingress=[netpol.ingress_rule([("TCP", UI_PORT)], from_namespaces=[TRAEFIK_NAMESPACE])],
            ),
        ]
    return out


def policies_after_release(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """CiliumNetworkPolicies (need the CRDs): Relay and UI list namespaces/pods/nodes through the
    API (their ClusterRoles in the chart); neither readiness depends on it."""
    out = [netpol.allow_kube_apiserver_egress(NAMESPACE, RELAY_LABELS, name="hubble-relay-to-kube-apiserver")]
    if cfg.cilium.hubble_ui:
        out.append(netpol.allow_kube_apiserver_egress(NAMESPACE, UI_LABELS, name="hubble-ui-to-kube-apiserver"))
    return out


def hubble_route(cfg: PlatformConfig) -> dict[str, Any]:
    return forward_auth_route(
        cfg, "hubble-ui", NAMESPACE, hostnames(cfg).hubble, {"name": "hubble-ui", "port": 80}
    )


@dataclass(frozen=True)
class CiliumArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class Cilium(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    lb_pool: k8s.apiextensions.CustomResource
    l2_policy: k8s.apiextensions.CustomResource | None

    def __init__(self, name: str, args: CiliumArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:network:Cilium", name, None, opts)
        cfg = args.config
        self._name = name
        self._cfg = cfg
        self._provider = provider
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=NAMESPACE, pod_security="privileged", depends_on=args.depends_on),
            provider,
            opts=pulumi.ResourceOptions(parent=self),
        )
        early = netpol.apply(f"{name}-netpol", policies_before_release(cfg), provider, parent=self, depends_on=[ns])
        self.release = helm_release(
            name, "cilium", ns.name, values(cfg), parent=self, provider=provider, depends_on=[ns, *early]
        )
        crds = [self.release]  # the operator registers Cilium's CRDs before it reports ready
        netpol.apply(f"{name}-netpol", policies_after_release(cfg), provider, parent=self, depends_on=crds)
        self.lb_pool = self._cr(f"{name}-lb-pool", lb_pool(cfg), crds)
        self.l2_policy = self._cr(f"{name}-l2-policy", l2_policy(), crds) if l2_announcements(cfg) else None
        self.register_outputs({})

    def expose_hubble_ui(self, traefik_ready: Sequence[pulumi.Resource]) -> HubbleUiRoute | None:
        """The Hubble UI IngressRoute (forward-auth); ``traefik_ready`` must install Traefik's CRDs
        and the forward-auth Middleware.

        The route is a sibling component, not a child of this one: every service waits for the
        whole Cilium component, and Traefik is one of them, so a child waiting for Traefik would
        be a cycle.
        """
        if not self._cfg.cilium.hubble_ui:
            return None
        if not traefik_ready:
            raise ValueError("expose_hubble_ui needs what installs Traefik's CRDs (the Traefik release)")
        return HubbleUiRoute(
            f"{self._name}-hubble-ui", self._cfg, [self.release, *traefik_ready], self._provider
        )

    def _cr(self, name: str, obj: dict[str, Any], depends_on: Sequence[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"], spec=obj["spec"],
            opts=pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=list(depends_on)),
        )


class HubbleUiRoute(pulumi.ComponentResource):
    """Hubble UI on ``hostnames(cfg).hubble``, behind Authentik forward-auth (see Cilium.expose_hubble_ui)."""

    route: k8s.apiextensions.CustomResource

    def __init__(self, name: str, cfg: PlatformConfig, depends_on: Sequence[pulumi.Resource], provider: k8s.Provider):
        super().__init__("weebo:network:HubbleUiRoute", name, None, None)
        obj = hubble_route(cfg)
        self.route = k8s.apiextensions.CustomResource(
            f"{name}-route", api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"],
            spec=obj["spec"], opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(depends_on)),
        )
        self.register_outputs({})
