"""A tenant in ArgoCD: the cluster registration, a project that can only deploy there, and the
Applications of its add-ons (Cilium) and of its own apps from the config ("other apps").

Credentials: a ServiceAccount token Secret made in the tenant (``argocd-manager``), not the CAPI
admin client certificate (it expires and is rotated by the control plane provider): the token
lives as long as its Secret. Applications carry no ``resources-finalizer``: deleting one (or the
whole tenant) never makes ArgoCD reach into a cluster that may already be gone.

Ref: argo-cd v3.4 docs operator-manual/declarative-setup.md ("Clusters", project-scoped
clusters), user-guide/oci.md (native OCI Helm sources: ``oci://…/<chart>`` with ``path: .``);
CRDs in ../shared/schemas/argocd.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

import versions
from components.core import rotation
from components.core.common import MANAGED_BY
from components.core.contracts import ARGOCD_NAMESPACE, TENANT_NAMESPACE_LABEL
from components.tenant.apps import ingress_controller_values
from components.core.k8s_objects import register as k8s_object
from components.core.k8s_objects import service_account_with_cluster_role
from components.tenant.storage import token_secret
from components.tenant.talos import KUBEPRISM_PORT
from components.core.timeouts import TENANT_CNI_APPLICATION_TIMEOUTS
from stacks.config import PlatformConfig, Tenant, TenantApp

ARGOCD_API = "argoproj.io/v1alpha1"
CLUSTER_SECRET_LABELS = {"argocd.argoproj.io/secret-type": "cluster"}
MANAGER_SA = "argocd-manager"
MANAGER_NAMESPACE = "kube-system"
MANAGER_TOKEN = "argocd-manager-token"
CILIUM_REPO = versions.CHARTS["cilium"].repo
# The management cluster's Cilium keeps the chart's default tunnel port (values.yaml tunnelPort: 0
# = 8472 for VXLAN, 6081 for Geneve; components.network.cilium sets none). Tenant Cilium runs inside VMs
# on that same host and tunnels again: CAPK's FAQ asks nested clusters for a port of their own,
# so the inner tunnel's UDP flows are never mistaken for the outer one's.
# Ref: CAPK v0.11.2 docs/faq.md ("How do I use x CNI with cluster?"); cilium chart 1.20.0
# values.yaml tunnelPort.
MANAGEMENT_TUNNEL_PORTS = {"vxlan": 8472, "geneve": 6081}
TENANT_TUNNEL_PORTS = {"vxlan": 8473, "geneve": 6082}
# Pulumi waits until ArgoCD reports the tenant's CNI healthy: workloads (the CSI node plugin)
# come after it. Ref: pulumi-kubernetes CHANGELOG v4.18 "pulumi.com/waitFor".
CILIUM_READY = "jsonpath={.status.health.status}=Healthy"


def argocd_cluster_name(tenant: Tenant) -> str:
    return tenant.name


def project_name(tenant: Tenant) -> str:
    return f"tenant-{tenant.name}"


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ARGOCD_NAMESPACE, "labels": {**MANAGED_BY, **extra.pop("labels", {})}, **extra}


# --------------------------------------------------------------------------------------------
# Cilium inside the tenant
# --------------------------------------------------------------------------------------------

def cilium_values(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    """Cilium on Talos (siderolabs docs "Deploying Cilium CNI": KubePrism, no kube-proxy, cgroup v2
    mounted by Talos, no SYS_MODULE) with the nested-virtualisation MTU (cilium#38828; Cozystack
    pins 1350 in KubeVirt tenants) and a tunnel port distinct from the management cluster's."""
    nodes = tenant.control_plane.replicas + sum(p.replicas for p in tenant.worker_pools)
    return {
        "ipam": {"mode": "kubernetes"},
        "kubeProxyReplacement": True,
        "k8sServiceHost": "localhost",
        "k8sServicePort": KUBEPRISM_PORT,
        "cgroup": {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"},
        "securityContext": {
            "capabilities": {
                "ciliumAgent": ["CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN",
                                "SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
                "cleanCiliumState": ["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"],
            }
        },
        "routingMode": "tunnel",
        "tunnelProtocol": cfg.cilium.tunnel_protocol,
        "tunnelPort": TENANT_TUNNEL_PORTS[cfg.cilium.tunnel_protocol],
        "MTU": cfg.cilium.tenant_mtu,
        "operator": {"replicas": 2 if nodes >= 2 else 1},
        "hubble": {"enabled": True, "relay": {"enabled": False}, "ui": {"enabled": False}},
        # The tenant's ingress: reached through the apps LoadBalancer of components.tenant.apps.
        "ingressController": ingress_controller_values(),
    }


# --------------------------------------------------------------------------------------------
# Project and Applications
# --------------------------------------------------------------------------------------------

def app_source(app: TenantApp) -> dict[str, Any]:
    if app.path is not None:
        return {"repoURL": app.repo_url, "path": app.path, "targetRevision": app.target_revision}
    if app.repo_url.startswith("oci://"):
        return {"repoURL": f"{app.repo_url.rstrip('/')}/{app.chart}", "path": ".",
                "targetRevision": app.target_revision}
    return {"repoURL": app.repo_url, "chart": app.chart, "targetRevision": app.target_revision}


def cilium_source(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    return {
        "repoURL": CILIUM_REPO,
        "chart": "cilium",
        "targetRevision": versions.CHARTS["cilium"].version,
        "helm": {"releaseName": "cilium", "valuesObject": cilium_values(cfg, tenant)},
    }


def source_repos(cfg: PlatformConfig, tenant: Tenant) -> list[str]:
    return sorted({CILIUM_REPO} | {app_source(a)["repoURL"] for a in tenant.apps})


def app_project(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    project = project_name(tenant)
    return {
        "apiVersion": ARGOCD_API,
        "kind": "AppProject",
        "metadata": _meta(project, labels={TENANT_NAMESPACE_LABEL: tenant.name}),
        "spec": {
            "description": f"Add-ons and applications of tenant cluster {tenant.name}",
            "sourceRepos": source_repos(cfg, tenant),
            # Only this tenant's cluster, which is scoped to this project (cluster Secret 'project').
            "destinations": [{"name": argocd_cluster_name(tenant), "namespace": "*"}],
            "permitOnlyProjectScopedClusters": True,
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            "roles": [{
                "name": "admins",
                "description": "The tenant's admin groups manage its applications",
                "groups": list(tenant.admin_groups),
                "policies": [f"p, proj:{project}:admins, applications, *, {project}/*, allow"],
            }],
        },
    }


def _application(tenant: Tenant, app_name: str, dest_namespace: str, source: dict[str, Any],
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta = _meta(f"{tenant.name}-{app_name}", labels={TENANT_NAMESPACE_LABEL: tenant.name})
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": ARGOCD_API,
        "kind": "Application",
        "metadata": meta,
        "spec": {
            "project": project_name(tenant),
            "destination": {"name": argocd_cluster_name(tenant), "namespace": dest_namespace},
            "source": source,
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
                "retry": {"limit": 10, "backoff": {"duration": "30s", "factor": 2, "maxDuration": "10m"}},
            },
        },
    }


def cilium_application(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    return _application(tenant, "cilium", "kube-system", cilium_source(cfg, tenant),
                        annotations={"pulumi.com/waitFor": CILIUM_READY})


def app_applications(cfg: PlatformConfig, tenant: Tenant) -> list[dict[str, Any]]:
    return [_application(tenant, a.name, a.namespace, app_source(a)) for a in tenant.apps]


def manager_token_name(cfg: PlatformConfig, tenant: Tenant) -> str:
    """The token Secret's name at the tenant's ``argocdToken`` generation."""
    return rotation.suffixed(MANAGER_TOKEN, cfg.rotation.tenant(tenant.name).argocd_token)


def cluster_config(ca_data_b64: str, token_b64: str) -> str:
    """The cluster Secret's ``config`` JSON from the token Secret's ``data`` (base64 values)."""
    import base64

    return json.dumps({"bearerToken": base64.b64decode(token_b64).decode(),
                       "tlsClientConfig": {"insecure": False, "caData": ca_data_b64}}, sort_keys=True)


# --------------------------------------------------------------------------------------------
# Tenant side: ArgoCD's identity
# --------------------------------------------------------------------------------------------

def tenant_objects(tenant: Tenant) -> list[dict[str, Any]]:
    """``argocd-manager`` is cluster-admin of the tenant (ArgoCD installs CRDs and cluster-scoped
    add-ons there); the project limits what may be deployed with it. The tenant's admin groups
    are bound by components.tenant.identity."""
    return service_account_with_cluster_role(MANAGER_SA, MANAGER_NAMESPACE, "cluster-admin", MANAGED_BY)


# --------------------------------------------------------------------------------------------
# Component
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantGitOpsArgs:
    config: PlatformConfig
    tenant: Tenant
    tenant_provider: k8s.Provider
    tenant_server: pulumi.Output[str]
    cluster: pulumi.Resource  # tenant-side objects are deleted with the Cluster CR
    depends_on: Sequence[pulumi.Resource] = ()  # ArgoCD (its CRDs and namespace)


class TenantGitOps(pulumi.ComponentResource):
    cilium: pulumi.Resource  # the tenant's CNI, healthy once this resource is

    def __init__(self, name: str, args: TenantGitOpsArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:tenants:TenantClusterGitOps", name, None, opts)
        cfg, tenant = args.config, args.tenant
        remote = pulumi.ResourceOptions(parent=self, provider=args.tenant_provider, deleted_with=args.cluster)
        made = [k8s_object(f"{name}-tenant-{obj['kind'].lower()}-{obj['metadata']['name']}", obj, remote)
                for obj in tenant_objects(tenant)]
        # Rotation (rotation.tenants.<name>.argocdToken): a new Secret name - pulumi-kubernetes
        # replaces a renamed object create-before-delete, so the new token exists and the cluster
        # Secret below switches to it before the old Secret (and with it the old token) is deleted.
        token_obj = token_secret(manager_token_name(cfg, tenant), MANAGER_NAMESPACE, MANAGER_SA)
        token = k8s.core.v1.Secret(
            f"{name}-tenant-manager-token", metadata=token_obj["metadata"], type=token_obj["type"],
            opts=pulumi.ResourceOptions.merge(remote, pulumi.ResourceOptions(depends_on=[made[0]])),
        )
        config = pulumi.Output.secret(token.data.apply(_config_or_unknown))

        local = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(args.depends_on))
        cluster_secret = k8s.core.v1.Secret(
            f"{name}-cluster",
            metadata={"name": f"cluster-{tenant.name}", "namespace": ARGOCD_NAMESPACE,
                      "labels": {**MANAGED_BY, **CLUSTER_SECRET_LABELS, TENANT_NAMESPACE_LABEL: tenant.name}},
            type="Opaque",
            string_data={
                "name": argocd_cluster_name(tenant),
                "server": args.tenant_server,
                "config": config,
                "project": project_name(tenant),
            },
            opts=local,
        )
        project = k8s_object(f"{name}-project", app_project(cfg, tenant), local)
        # merge() appends depends_on: Applications wait for ArgoCD, the cluster and the project.
        after = pulumi.ResourceOptions(depends_on=[cluster_secret, project])
        self.cilium = k8s_object(
            f"{name}-app-cilium", cilium_application(cfg, tenant),
            pulumi.ResourceOptions.merge(local, pulumi.ResourceOptions(
                depends_on=[cluster_secret, project],
                custom_timeouts=TENANT_CNI_APPLICATION_TIMEOUTS)),
        )
        for obj in app_applications(cfg, tenant):
            k8s_object(f"{name}-app-{obj['metadata']['name'].removeprefix(tenant.name + '-')}", obj,
                       pulumi.ResourceOptions.merge(local, after))
        self.register_outputs({"project": project_name(tenant)})


def _unknown() -> Any:
    from pulumi.output import UNKNOWN

    return UNKNOWN


def _config_or_unknown(data: Any) -> Any:
    """The token Secret's data exists once the tenant's token controller filled it (the Kubernetes
    provider waits for it); before that — preview, first deployment — the config is unknown."""
    if not isinstance(data, dict) or not data.get("token") or not data.get("ca.crt"):
        return _unknown()
    return cluster_config(data["ca.crt"], data["token"])
