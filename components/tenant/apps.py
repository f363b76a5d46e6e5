"""The tenant's apps endpoint: ``*.apps.<tenant>.<zone>`` on the address of the tenant's API.

Design (no DNSEndpoint, no change to ExternalDNS): the tenant's ingress is Cilium's ingress
controller inside the tenant (shared mode, a NodePort Service on fixed ports, see
``components.tenant.gitops.cilium_values``). On the management cluster, in the tenant namespace,
a LoadBalancer Service selects the tenant's VM pods and forwards 80/443 to those node ports, as
the kubevirt cloud-provider would. Its hostname annotation makes ExternalDNS (``service`` source,
already enabled) publish the wildcard with whatever address LB IPAM gave it — nothing to know in
advance, nothing to keep in sync. It shares the IP of the tenant's API Service (same Cilium
sharing key, ports 6443 vs 80/443), so a tenant still costs one public address of the pool.

Ref: cilium v1.20 Documentation/network/lb-ipam.rst "Sharing Keys" (annotation
``lbipam.cilium.io/sharing-key``; services with the same key and no port conflict share an IP);
external-dns v0.21.0 docs/annotations (``external-dns.alpha.kubernetes.io/hostname`` on a
Service of type LoadBalancer, wildcard names allowed); cilium chart 1.20.0 values
``ingressController.service.{type,insecureNodePort,secureNodePort}``.
"""

from __future__ import annotations

from typing import Any

from components.core.common import MANAGED_BY
from components.core.contracts import TENANT_NAMESPACE_LABEL, hostnames
from components.tenant.capi import (
    CLUSTER_NAME_LABEL,
    EXTERNAL_DNS_HOSTNAME,
    LB_SHARING_KEY,
    cluster_name,
    namespace,
    sharing_key,
)
from stacks.config import PlatformConfig, Tenant

# Node ports of the tenant's Cilium ingress (shared mode): inside the default 30000-32767 range.
INGRESS_HTTP_NODE_PORT = 30080
INGRESS_HTTPS_NODE_PORT = 30443
APPS_SERVICE = "apps-ingress"


def vm_selector(tenant: Tenant) -> dict[str, str]:
    """Every VM pod of the tenant cluster (CAPK labels VMs with their cluster's name)."""
    return {CLUSTER_NAME_LABEL: cluster_name(tenant)}


def apps_service(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": APPS_SERVICE,
            "namespace": namespace(cfg, tenant),
            "labels": {**MANAGED_BY, TENANT_NAMESPACE_LABEL: tenant.name},
            "annotations": {
                EXTERNAL_DNS_HOSTNAME: hostnames(cfg).tenant_apps(tenant.name),
                LB_SHARING_KEY: sharing_key(tenant),
            },
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": vm_selector(tenant),
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": INGRESS_HTTP_NODE_PORT},
                {"name": "https", "protocol": "TCP", "port": 443, "targetPort": INGRESS_HTTPS_NODE_PORT},
            ],
        },
    }


def apps_ingress_policy(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    """Anyone may reach the tenant's ingress node ports on its VMs (its apps are public); nothing
    else of the VMs is opened."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-apps-ingress", "namespace": namespace(cfg, tenant), "labels": dict(MANAGED_BY)},
        "spec": {
            "podSelector": {"matchLabels": vm_selector(tenant)},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                "ports": [{"protocol": "TCP", "port": INGRESS_HTTP_NODE_PORT},
                          {"protocol": "TCP", "port": INGRESS_HTTPS_NODE_PORT}],
            }],
        },
    }


def ingress_controller_values() -> dict[str, Any]:
    """Cilium ingress in the tenant: default class, one shared listener on fixed node ports."""
    return {
        "enabled": True,
        "default": True,
        "loadbalancerMode": "shared",
        "service": {"type": "NodePort", "insecureNodePort": INGRESS_HTTP_NODE_PORT,
                    "secureNodePort": INGRESS_HTTPS_NODE_PORT},
    }
