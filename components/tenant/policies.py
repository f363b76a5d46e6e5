"""A tenant's namespace on the management cluster: its quota and its network isolation (pure
renderers; the namespace itself is a ``components.core.namespace.PlatformNamespace``, which already
denies everything both ways and allows DNS to kube-dns).

What a tenant's pods (virt-launcher pods of its VMs, CDI upload and importer pods, the kubevirt-csi
controller) may do, and nothing more:

- talk to each other (VM to VM, nodes to the API load balancer's backends, CSI controller to the
  tenant API);
- be reached on the API (6443) and Talos (50000) ports of the control-plane VMs from platform
  namespaces (Cluster API providers, ArgoCD, NetBird's routing peer: every namespace *without* the
  tenant label), and on 6443 from the tenant's API source ranges outside the cluster;
- reach the Internet (Cilium entity ``world``: outside the cluster, so neither other tenants'
  pods, nor nodes, nor the management kube-apiserver) and Traefik's HTTPS port, through which the
  tenant API server fetches its OIDC issuer's keys from Authentik (auth.<zone>);
- the CSI controller alone reaches the management kube-apiserver (it manages DataVolumes).

Other tenants stay out both ways: their namespaces carry the tenant label, so neither selector
admits them, and their VMs are not ``world``. NetworkPolicy ``ipBlock`` does not match Cilium's
reserved identities, hence CiliumNetworkPolicy for ``world`` and ``kube-apiserver``.
Ref: cilium CiliumNetworkPolicy v2 (../shared/schemas/cilium/crd-jsonschema), toEntities enum.
"""

from __future__ import annotations

from typing import Any

from components.core import network_policy as netpol
from components.tenant import capacity as tenant_capacity
from components.core.common import MANAGED_BY
from components.core.contracts import TALOS_API_PORT, TENANT_API_PORT, TENANT_NAMESPACE_LABEL, TRAEFIK_NAMESPACE
from components.tenant.capi import (
    CLUSTER_NAME_LABEL,
    CONTROL_PLANE_ROLE,
    ROLE_LABEL,
    cluster_name,
    namespace,
)
from stacks.config import PlatformConfig, Tenant

TRAEFIK_WEBSECURE_POD_PORT = 8443  # traefik chart 41.3.0 values.yaml ports.websecure.port
# Containers that declare no requests get these (the quota requires requests on every pod).
DEFAULT_REQUEST = {"cpu": "50m", "memory": "64Mi"}


# --------------------------------------------------------------------------------------------
# Quota
# --------------------------------------------------------------------------------------------

def quota_hard(cfg: PlatformConfig, tenant: Tenant) -> dict[str, str]:
    """The tenant's size, derived from every object the program and the controllers (CAPK,
    KubeVirt, CDI, kubevirt-csi) create in its namespace: components.tenant.capacity."""
    return tenant_capacity.quota_hard(cfg, tenant)


def resource_quota(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "tenant-size", "namespace": namespace(cfg, tenant), "labels": dict(MANAGED_BY)},
        "spec": {"hard": quota_hard(cfg, tenant)},
    }


def limit_range(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "default-requests", "namespace": namespace(cfg, tenant), "labels": dict(MANAGED_BY)},
        "spec": {"limits": [{"type": "Container", "defaultRequest": dict(DEFAULT_REQUEST)}]},
    }


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------

def api_source_ranges(cfg: PlatformConfig, tenant: Tenant) -> list[str]:
    if tenant.api_source_ranges is not None:
        return list(tenant.api_source_ranges)
    return list(cfg.management_cluster.operator_source_ranges) or ["0.0.0.0/0"]


def network_policies(cfg: PlatformConfig, tenant: Tenant,
                     csi_controller_labels: dict[str, str]) -> list[dict[str, Any]]:
    ns = namespace(cfg, tenant)
    platform_namespaces = {"namespaceSelector": {"matchExpressions": [
        {"key": TENANT_NAMESPACE_LABEL, "operator": "DoesNotExist"}]}}
    control_plane_vms = {ROLE_LABEL: CONTROL_PLANE_ROLE, CLUSTER_NAME_LABEL: cluster_name(tenant)}
    return [
        netpol.same_namespace(ns),
        netpol.network_policy("allow-api-ingress", ns, control_plane_vms, ingress=[
            {"from": [platform_namespaces], "ports": netpol.policy_ports(netpol.tcp(TENANT_API_PORT, TALOS_API_PORT))},
            {"from": [{"ipBlock": {"cidr": c}} for c in api_source_ranges(cfg, tenant)],
             "ports": netpol.policy_ports(netpol.tcp(TENANT_API_PORT))},
        ]),
        netpol.egress_to_namespace(ns, TRAEFIK_NAMESPACE, netpol.tcp(TRAEFIK_WEBSECURE_POD_PORT)),
        netpol.allow_world_egress(ns, None),
        netpol.allow_kube_apiserver_egress(ns, csi_controller_labels, "allow-csi-controller-to-apiserver",
                                           description=None),
    ]
