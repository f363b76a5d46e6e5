"""ArgoCD: GitOps for the platform and the tenants' applications.

- Login through Authentik (OIDC, no Dex); the client secret lives in a Secret that argocd-cm
  references with ``$<secret>:<key>``, never in the Helm values.
- RBAC from the identity groups: the platform admin group is ``role:admin``; anyone else gets
  ``argocd.defaultRole`` (none by default). Tenant groups get project roles from the tenant
  component (one AppProject per tenant).
- Served by Traefik with the platform's wildcard certificate (IngressRoute, UI + gRPC).
- Repositories from config, as labelled Secrets; a ``platform`` AppProject.
- Ready for tenants: ``access`` (components.core.contracts.ArgoCDAccess) says where to put cluster
  Secrets (components.core.contracts.argocd_cluster_secret_data) and what to wait for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.core import network_policy as netpol
from components.core import rotation
from components.core.common import MANAGED_BY, helm_release
from components.core.contracts import (
    ARGOCD_NAMESPACE,
    TENANT_API_PORT,
    TRAEFIK_NAMESPACE,
    ArgoCDAccess,
    OidcClient,
    hostnames,
)
from components.core.k8s_objects import register
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.edge.traefik import route_metadata
from stacks.config import GitRepository, PlatformConfig

NAMESPACE = ARGOCD_NAMESPACE
RELEASE = "argocd"  # chart nameOverride "argocd" is contained in it: objects are named argocd-*
SERVER_SERVICE = "argocd-server"  # Ref: argo-helm argo-cd-10.1.1 templates/_helpers.tpl
SERVER_HTTP_PORT = 80  # values.yaml server.service.servicePortHttp
OIDC_SECRET = "argocd-oidc-authentik"
OIDC_SECRET_KEY = "clientSecret"
PLATFORM_PROJECT = "platform"
IN_CLUSTER = "https://kubernetes.default.svc"
# Ref: argo-cd docs/operator-manual/user-management/index.md: Argo CD resolves "$<secret>:<key>"
# only in Secrets carrying this label.
PART_OF_ARGOCD = {"app.kubernetes.io/part-of": "argocd"}
REPOSITORY_LABELS = {"argocd.argoproj.io/secret-type": "repository"}

# Keys of the redis-ha 4.38.0 subchart (argo-cd 10.1.1 Chart.yaml dependencies) that the argo-cd
# values.yaml does not list. Checked against DandyDeveloper/charts charts/redis-ha/values.yaml at
# tag redis-ha-4.38.0: redis.resources, sentinel.resources, splitBrainDetection.resources,
# init.resources (the config-init init containers), haproxy.resources, haproxy.init.resources
# (templates/redis-ha-statefulset.yaml, redis-haproxy-deployment.yaml).
SUBCHART_KEYS = (
    "redis-ha.redis.resources",
    "redis-ha.sentinel",
    "redis-ha.splitBrainDetection",
    "redis-ha.init",
    "redis-ha.haproxy.resources",
    "redis-ha.haproxy.init",
)


def _resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


# Every container the chart renders gets requests (the chart sets none) and a memory limit, like
# the platform's other chart workloads; sized for one server shared with the tenant VMs.
# Ref: argo-helm argo-cd-10.1.1 templates (toYaml .Values.<component>.resources).
SMALL = _resources("10m", "32Mi", "128Mi")  # init containers, the redis-secret-init Job


def oidc_config(oidc: OidcClient) -> str:
    """argocd-cm ``oidc.config``. Authentik's default 'profile' scope mapping emits the ``groups``
    claim (goauthentik blueprints/system/providers-oauth2.yaml), which RBAC reads (``scopes``)."""
    config: dict[str, Any] = {
        "name": "Authentik",
        "issuer": oidc.issuer_url,
        "clientID": oidc.client_id,
        "requestedScopes": ["openid", "profile", "email"],
    }
    if oidc.client_secret is not None:
        config["clientSecret"] = f"${OIDC_SECRET}:{OIDC_SECRET_KEY}"
    else:  # public client
        config["enablePKCEAuthentication"] = True
    return yaml.safe_dump(config, sort_keys=False)


def rbac_policy(cfg: PlatformConfig) -> str:
    """``policy.csv``: the platform admin group is admin. Other groups map to project roles the
    tenant component defines; nothing else is granted here."""
    return f"g, {cfg.authentik.platform_admin_group}, role:admin\n"


def values(cfg: PlatformConfig, oidc: OidcClient) -> dict[str, Any]:
    """Helm values of argo-cd 10.1.1 (values.yaml; the chart has no values.schema.json).

    ``configs.cm`` and ``configs.params`` are pass-through maps (any key lands in argocd-cm /
    argocd-cmd-params-cm); their keys here are documented Argo CD settings.
    """
    host = hostnames(cfg).argocd
    ha = cfg.argocd.ha
    # Redis HA pods refuse to share a node by default (hard anti-affinity): with fewer than three
    # nodes they would never schedule. Below three nodes the replicas still protect against a
    # crashed pod, not a lost node.
    nodes = len(cfg.management_cluster.nodes)
    hard_anti_affinity = nodes >= 3
    resources = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    out: dict[str, Any] = {
        "global": {"domain": host, "networkPolicy": {"create": False}},
        "dex": {"enabled": False},
        "configs": {
            "cm": {
                "admin.enabled": False,  # humans log in through Authentik only
                "exec.enabled": False,
                "oidc.config": oidc_config(oidc),
            },
            # TLS ends at Traefik. Ref: argo-cd docs operator-manual/ingress.md "Traefik (v3.0)".
            "params": {"server.insecure": True},
            "rbac": {
                "policy.default": cfg.argocd.default_role,
                "policy.csv": rbac_policy(cfg),
                "scopes": "[groups]",
                "policy.matchMode": "glob",
            },
        },
        "controller": {"replicas": 1, "resources": {**resources, "limits": {"memory": "2Gi"}}},
        "server": {"replicas": 2 if ha else 1, "resources": resources,
                   # argocd-server does not reliably reload a changed $-referenced OIDC secret
                   # (argoproj/argo-cd#18576): a rotated client secret rolls its pods.
                   "podAnnotations": {"weebo.io/oidc-client-secret-generation": rotation.stamp(cfg.rotation.argocd_client_secret)}},
        "repoServer": {
            "replicas": 2 if ha else 1,
            "resources": {**resources, "limits": {"memory": "1Gi"}},
            # Its init container (copies the argocd binary); would inherit repoServer.resources.
            "copyutil": {"resources": SMALL},
        },
        "applicationSet": {"replicas": 2 if ha else 1, "resources": resources},
        "notifications": {"resources": _resources("20m", "64Mi", "256Mi")},
        # The pre-install/pre-upgrade Job that generates the Redis password.
        "redisSecretInit": {"resources": SMALL},
    }
    # Ref: argo-helm charts/argo-cd/README.md "HA mode without autoscaling".
    if ha:
        out["redis-ha"] = {
            "enabled": True,
            "hardAntiAffinity": hard_anti_affinity,
            "redis": {"resources": _resources("50m", "128Mi", "512Mi")},
            "sentinel": {"resources": _resources("10m", "32Mi", "128Mi")},
            "splitBrainDetection": {"resources": _resources("10m", "16Mi", "64Mi")},
            "init": {"resources": SMALL},
            "haproxy": {
                "hardAntiAffinity": hard_anti_affinity,
                "resources": _resources("20m", "64Mi", "256Mi"),
                "init": {"resources": SMALL},
            },
        }
    else:
        # The single Redis Deployment (rendered only without redis-ha: templates/redis/deployment.yaml).
        out["redis"] = {"resources": _resources("50m", "128Mi", "512Mi")}
    return out


def ingress_route(cfg: PlatformConfig) -> dict[str, Any]:
    """UI and gRPC (CLI) on one host name. ``tls: {}`` serves Traefik's default certificate, the
    platform wildcard (components.core.contracts.WILDCARD_TLS_SECRET)."""
    host = hostnames(cfg).argocd
    service = {"name": SERVER_SERVICE, "port": SERVER_HTTP_PORT}
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": route_metadata(cfg, "argocd-server", NAMESPACE),
        "spec": {
            "entryPoints": ["websecure"],
            "routes": [
                {"kind": "Rule", "match": f"Host(`{host}`)", "priority": 10, "services": [service]},
                {"kind": "Rule", "match": f"Host(`{host}`) && Header(`Content-Type`, `application/grpc`)",
                 "priority": 11, "services": [{**service, "scheme": "h2c"}]},
            ],
            "tls": {},
        },
    }


def platform_project(cfg: PlatformConfig) -> dict[str, Any]:
    """The management cluster's own applications. Sources: the configured repositories only.
    Destination: this cluster, any namespace, cluster-scoped kinds included (platform add-ons
    install CRDs and ClusterRoles). Tenant clusters are not destinations here: each tenant gets
    its own project."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": PLATFORM_PROJECT, "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {
            "description": "Platform services of the management cluster",
            "sourceRepos": [r.url for r in cfg.argocd.repositories],
            "destinations": [{"server": IN_CLUSTER, "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            "orphanedResources": {"warn": True},
        },
    }


def repository_secret_name(repo: GitRepository) -> str:
    return f"repo-{repo.name}"


def repository_secret_data(repo: GitRepository) -> dict[str, pulumi.Input[str]]:
    """Ref: argo-cd docs/operator-manual/declarative-setup.md "Repositories"."""
    data: dict[str, pulumi.Input[str]] = {"type": repo.type, "name": repo.name, "url": repo.url}
    if repo.username is not None:
        data["username"] = repo.username
    if repo.password is not None:
        data["password"] = repo.password.output()
    return data


def network_policies() -> list[dict[str, Any]]:
    """Ingress from Traefik comes with the namespace; these add what ArgoCD itself needs."""
    return [
        netpol.same_namespace(NAMESPACE),  # server/controller/repo-server/redis
        netpol.allow_kube_apiserver_egress(NAMESPACE, **netpol.APISERVER_EGRESS_NAMED_AS_BEFORE),
        # Git and Helm repositories (HTTPS, SSH).
        netpol.allow_world_egress(NAMESPACE, netpol.tcp(443, 22)),
        # OIDC discovery and token calls to Authentik's public name, served by Traefik: the
        # load-balancer IP is translated in-cluster to the Traefik pods.
        netpol.egress_to_namespace(NAMESPACE, TRAEFIK_NAMESPACE),
        netpol.egress_to_tenants(NAMESPACE, netpol.tcp(TENANT_API_PORT)),
    ]


@dataclass(frozen=True)
class ArgoCDArgs:
    config: PlatformConfig
    oidc: OidcClient
    depends_on: Sequence[pulumi.Resource] = ()


class ArgoCD(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    namespace: str = NAMESPACE
    access: ArgoCDAccess

    def __init__(self, name: str, args: ArgoCDArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:gitops:ArgoCD", name, None, opts)
        cfg = args.config
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on, allow_from_namespaces=[TRAEFIK_NAMESPACE]),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns])
        for obj in network_policies():
            register(f"{name}-{obj['metadata']['name']}", obj, in_ns)

        secrets: list[pulumi.Resource] = []
        if args.oidc.client_secret is not None:
            secrets.append(k8s.core.v1.Secret(
                f"{name}-oidc",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=OIDC_SECRET, namespace=NAMESPACE,
                                                    labels={**MANAGED_BY, **PART_OF_ARGOCD}),
                string_data={OIDC_SECRET_KEY: pulumi.Output.secret(args.oidc.client_secret)},
                opts=in_ns,
            ))
        for repo in cfg.argocd.repositories:
            secrets.append(k8s.core.v1.Secret(
                f"{name}-repo-{repo.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=repository_secret_name(repo), namespace=NAMESPACE,
                                                    labels={**MANAGED_BY, **REPOSITORY_LABELS}),
                string_data=repository_secret_data(repo),
                opts=in_ns,
            ))

        self.release = helm_release(
            RELEASE, "argo-cd", ns.name, values(cfg, args.oidc),
            parent=self, provider=provider, depends_on=[ns, *secrets],
        )
        after_release = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.release])
        register(f"{name}-ingress-route", ingress_route(cfg), after_release)
        register(f"{name}-platform-project", platform_project(cfg), after_release)
        self.access = ArgoCDAccess(
            namespace=NAMESPACE, ready=self.release, url=f"https://{hostnames(cfg).argocd}",
            platform_project=PLATFORM_PROJECT,
        )
        self.register_outputs({"url": self.access.url})
