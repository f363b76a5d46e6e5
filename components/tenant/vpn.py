"""NetBird for a tenant that asks for it (``netbirdRoute: true``): a route to the tenant's pod and
service ranges, open to its admin groups, served by a routing peer running inside the tenant.

NetBird side: ``Netbird.add_tenant_route`` (its own groups, setup key, network, resources, router
and policy, named after the tenant). Tenant side (its provider, ``deleted_with`` the Cluster): a
``netbird`` namespace (privileged: the peer creates a WireGuard interface and routes, see
``components.vpn.netbird.routing_peer_manifests``) with default-deny and only the flows the peer
needs, the setup key as a Secret (from the secret Output), and the peer Deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.core.common import MANAGED_BY
from components.core.contracts import NetbirdRoute
from components.vpn.netbird import (
    NAMESPACE,
    SETUP_KEY_SECRET_KEY,
    routing_peer_egress_spec,
    routing_peer_manifests,
)
from components.core.k8s_objects import register as k8s_object
from stacks.config import PlatformConfig, Tenant

PEER = "tenant-routing-peer"
SETUP_KEY_SECRET = f"{PEER}-setup-key"
_LEVEL = "privileged"


def route_cidrs(tenant: Tenant) -> list[str]:
    return [tenant.pod_cidr, tenant.service_cidr]


def _np(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(MANAGED_BY)}, "spec": spec}


def namespace_objects() -> list[dict[str, Any]]:
    """The peer's namespace in the tenant: Pod Security label, default deny, DNS, the peer's egress."""
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": {
             **MANAGED_BY,
             "pod-security.kubernetes.io/enforce": _LEVEL,
             "pod-security.kubernetes.io/audit": _LEVEL,
             "pod-security.kubernetes.io/warn": _LEVEL,
         }}},
        _np("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _np("allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }]}),
        _np(f"{PEER}-egress", routing_peer_egress_spec(PEER)),
    ]


def peer_deployment(cfg: PlatformConfig, management_url: str) -> dict[str, Any]:
    return routing_peer_manifests(name=PEER, namespace=NAMESPACE, management_url=management_url,
                                  setup_key_secret=SETUP_KEY_SECRET, replicas=cfg.netbird.routing_peer_replicas)


@dataclass(frozen=True)
class TenantClusterVpnArgs:
    config: PlatformConfig
    tenant: Tenant
    netbird: Any  # components.vpn.netbird.Netbird (add_tenant_route)
    tenant_provider: pulumi.ProviderResource
    cluster: pulumi.Resource  # tenant-side objects are deleted with the Cluster CR
    depends_on: Sequence[pulumi.Resource] = ()  # the tenant's control plane
    cni_ready: Sequence[pulumi.Resource] = ()  # the tenant's CNI: the peer's pods need it


class TenantClusterVpn(pulumi.ComponentResource):
    route: NetbirdRoute

    def __init__(self, name: str, args: TenantClusterVpnArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:tenants:TenantClusterVpn", name, None, opts)
        cfg, tenant = args.config, args.tenant
        self.route = args.netbird.add_tenant_route(tenant.name, route_cidrs(tenant), list(tenant.admin_groups))

        remote = pulumi.ResourceOptions(parent=self, provider=args.tenant_provider, deleted_with=args.cluster,
                                        depends_on=list(args.depends_on))
        made = [k8s_object(f"{name}-tenant-{o['kind'].lower()}-{o['metadata']['name']}", o, remote)
                for o in namespace_objects()]
        after_ns = pulumi.ResourceOptions.merge(remote, pulumi.ResourceOptions(depends_on=[made[0]]))
        secret = k8s.core.v1.Secret(
            f"{name}-tenant-setup-key",
            metadata={"name": SETUP_KEY_SECRET, "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
            type="Opaque",
            string_data={SETUP_KEY_SECRET_KEY: pulumi.Output.secret(self.route.setup_key)},
            opts=after_ns,
        )
        # The router must exist before the peer enrolls; Pulumi awaits the rollout: pods need a CNI.
        k8s_object(f"{name}-tenant-routing-peer", peer_deployment(cfg, self.route.management_url),
                   pulumi.ResourceOptions.merge(after_ns, pulumi.ResourceOptions(
                       depends_on=[*made, secret, self.route.ready, *args.cni_ready])))
        self.register_outputs({"network": self.route.network_id})
