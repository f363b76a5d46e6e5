"""Authentik: the platform's identity provider (SSO, OIDC for Kubernetes, ArgoCD, Vault, NetBird,
forward auth for the dashboards).

Chart ``authentik`` (versions.CHARTS) with its bundled PostgreSQL (Bitnami chart, persistent),
served by Traefik on ``auth.<zone>`` with the platform's wildcard certificate.

Secrets: the secret key, the bootstrap token (API token of ``akadmin``), the ``akadmin``
bootstrap password and the database passwords are ``RandomPassword``s, written only into the
Kubernetes Secret ``authentik-credentials``; the chart reads them through ``global.env``
``valueFrom.secretKeyRef`` (server and worker) and PostgreSQL through ``auth.existingSecret``.
No Helm value carries a secret, so the release values stay readable in previews. The generated
values are protected: Authentik reads the bootstrap token/password on first start only and
the secret key must never change (sessions, encrypted fields).
Ref: goauthentik docs "Automated install" (AUTHENTIK_BOOTSTRAP_PASSWORD/TOKEN, first start
only); chart templates server/deployment.yaml (env: concat global.env server.env).

Bootstrap order (``pulumi up`` on a brand-new environment):
namespace -> random secrets -> Secret -> Helm release (waits for ready pods) -> IngressRoute
-> ``components.identity.Identity``: the API gate, then groups/applications/outpost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.core import network_policy as netpol
from components.core.common import MANAGED_BY, helm_release
from components.core.contracts import TRAEFIK_NAMESPACE, OidcClient, hostnames
from components.identity import Identity, IdentityArgs
from components.core.k8s_objects import register
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.edge.traefik import route_metadata
from components.core.protected import IrreplaceableState
from stacks import facts
from stacks.config import PlatformConfig

NAMESPACE = facts.AUTHENTIK_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
CREDENTIALS_SECRET = "authentik-credentials"
SERVER_SERVICE = "authentik-server"  # chart: <release>-server, port 80 -> 9000

# Keys of the credentials Secret.
KEY_SECRET_KEY = "secret-key"
KEY_BOOTSTRAP_TOKEN = "bootstrap-token"
KEY_BOOTSTRAP_PASSWORD = "bootstrap-password"
KEY_DB_PASSWORD = "postgres-password"
KEY_DB_ADMIN_PASSWORD = "postgres-admin-password"

# Environment variable -> key of the credentials Secret.
# Ref: goauthentik docs, configuration: AUTHENTIK_SECRET_KEY, AUTHENTIK_POSTGRESQL__PASSWORD.
SECRET_ENV = {
    "AUTHENTIK_SECRET_KEY": KEY_SECRET_KEY,
    "AUTHENTIK_BOOTSTRAP_TOKEN": KEY_BOOTSTRAP_TOKEN,
    "AUTHENTIK_BOOTSTRAP_PASSWORD": KEY_BOOTSTRAP_PASSWORD,
    "AUTHENTIK_POSTGRESQL__PASSWORD": KEY_DB_PASSWORD,
}

# Values of the PostgreSQL subchart (Bitnami "postgresql" 18.8.x, a dependency of the authentik
# chart) that the authentik values.yaml does not list. Checked against bitnami/charts
# bitnami/postgresql/values.yaml: auth.existingSecret, auth.secretKeys.{adminPasswordKey,
# userPasswordKey}, primary.persistence.{enabled,size}, primary.persistentVolumeClaimRetentionPolicy
# .{enabled,whenScaled,whenDeleted}, primary.resources.
SUBCHART_KEYS = (
    "postgresql.auth.existingSecret",
    "postgresql.auth.secretKeys",
    "postgresql.primary.persistence",
    "postgresql.primary.persistentVolumeClaimRetentionPolicy",
    "postgresql.primary.resources",
)

_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,  # the 'authentik' user of ghcr.io/goauthentik/server
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _secret_env(var: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": key}}}


def values(cfg: PlatformConfig) -> dict[str, Any]:
    """Helm values: no secret in here, only references to ``authentik-credentials``."""
    ak = cfg.authentik
    resources = {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    return {
        "global": {
            "env": [_secret_env(var, key) for var, key in SECRET_ENV.items()],
            "securityContext": _POD_SECURITY,
        },
        "authentik": {
            "log_level": "info",
            "error_reporting": {"enabled": False},
        },
        "server": {
            "replicas": ak.server_replicas,
            "pdb": {"enabled": ak.server_replicas > 1, "minAvailable": 1},
            "resources": resources,
            "containerSecurityContext": _CONTAINER_SECURITY,
        },
        "worker": {
            "replicas": ak.worker_replicas,
            "resources": resources,
            "containerSecurityContext": _CONTAINER_SECURITY,
        },
        "postgresql": {
            "enabled": True,
            "auth": {
                "existingSecret": CREDENTIALS_SECRET,
                "secretKeys": {"adminPasswordKey": KEY_DB_ADMIN_PASSWORD, "userPasswordKey": KEY_DB_PASSWORD},
            },
            "primary": {
                # Named: the management cluster has no default StorageClass. Ref: authentik chart
                # values.yaml (postgresql.primary.persistence.storageClass, commented example) and
                # bitnami/charts bitnami/postgresql/values.yaml primary.persistence.storageClass.
                "persistence": {"enabled": True, "size": ak.storage_size, "storageClass": cfg.storage_class()},
                # StatefulSet deletion or scale-down never deletes the database volume.
                "persistentVolumeClaimRetentionPolicy": {
                    "enabled": True, "whenDeleted": "Retain", "whenScaled": "Retain",
                },
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            },
        },
    }


def ingress_route(cfg: PlatformConfig) -> dict[str, Any]:
    """``auth.<zone>`` -> the server Service, TLS with Traefik's default (wildcard) certificate."""
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": route_metadata(cfg, "authentik", NAMESPACE),
        "spec": {
            "entryPoints": ["websecure"],
            "routes": [{
                "kind": "Rule",
                "match": f"Host(`{hostnames(cfg).authentik}`)",
                "services": [{"name": SERVER_SERVICE, "port": 80}],
            }],
            "tls": {},
        },
    }


def public_url(cfg: PlatformConfig) -> str:
    return f"https://{hostnames(cfg).authentik}"


def verify_public_tls(cfg: PlatformConfig) -> bool:
    """Let's Encrypt staging certificates are not publicly trusted: Pulumi (the bootstrap gates and
    the providers) then encrypts without authenticating the server. Production verifies."""
    return cfg.cert_manager.default_issuer == "letsencrypt-production"


@dataclass(frozen=True)
class AuthentikArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()
    # What publishes auth.<zone> (the ExternalDNS release): the API gate resolves that name.
    dns_ready: Sequence[pulumi.Resource] = ()


class Authentik(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    identity: Identity
    url: str
    admin_password: pulumi.Output[str]  # akadmin break-glass password (secret)
    db_password: pulumi.Output[str]  # PostgreSQL password of the authentik user (secret)
    kubernetes_oidc: OidcClient
    vault_oidc: OidcClient
    argocd_oidc: OidcClient
    netbird_oidc: OidcClient | None

    def __init__(self, name: str, args: AuthentikArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:identity:Authentik", name, None, opts)
        cfg = args.config
        self.url = public_url(cfg)
        # Users, groups, MFA devices and the keys live here: protected (see components/core/protected.py).
        state = IrreplaceableState(f"{name}-state", parent=self)
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on, allow_from_namespaces=[TRAEFIK_NAMESPACE]),
            provider, opts=pulumi.ResourceOptions(parent=state),
        )

        def generated(role: str, length: int) -> pulumi.Output[str]:
            pw = random.RandomPassword(f"{name}-{role}", length=length, special=False,
                                       opts=pulumi.ResourceOptions(parent=state))
            return pulumi.Output.secret(pw.result)

        secret_key = generated("secret-key", 64)
        token = generated("bootstrap-token", 64)
        self.admin_password = generated("bootstrap-password", 32)
        # Also handed to the backup job (components/operations/backups.py), which needs nothing else.
        self.db_password = generated("db-password", 32)
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=CREDENTIALS_SECRET, namespace=NAMESPACE, labels=MANAGED_BY),
            type="Opaque",
            string_data={
                KEY_SECRET_KEY: secret_key,
                KEY_BOOTSTRAP_TOKEN: token,
                KEY_BOOTSTRAP_PASSWORD: self.admin_password,
                KEY_DB_PASSWORD: self.db_password,
                KEY_DB_ADMIN_PASSWORD: generated("db-admin-password", 32),
            },
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns]),
        )
        ns_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns])
        policies = [
            register(f"{name}-allow-same-namespace", netpol.same_namespace(NAMESPACE), ns_opts),
            # The worker manages the outpost Deployment/Service through the API server.
            register(
                f"{name}-allow-kube-apiserver",
                netpol.allow_kube_apiserver_egress(
                    NAMESPACE, {"app.kubernetes.io/name": "authentik", "app.kubernetes.io/component": "worker"},
                    description=None,
                ),
                ns_opts,
            ),
        ]
        self.release = helm_release(
            name, "authentik", ns.name, values(cfg), parent=state, provider=provider,
            depends_on=[ns, credentials, *policies],
        )
        route = k8s.apiextensions.CustomResource(
            f"{name}-route",
            **_cr_args(ingress_route(cfg)),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns, *args.depends_on]),
        )
        self.identity = Identity(
            f"{name}-config",
            IdentityArgs(config=cfg, url=self.url, token=token, depends_on=[self.release, route, *args.dns_ready],
                         verify_tls=verify_public_tls(cfg)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.kubernetes_oidc = self.identity.kubernetes_oidc
        self.vault_oidc = self.identity.vault_oidc
        self.argocd_oidc = self.identity.argocd_oidc
        self.netbird_oidc = self.identity.netbird_oidc
        self.register_outputs({"url": self.url})


def _cr_args(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "api_version": manifest["apiVersion"],
        "kind": manifest["kind"],
        "metadata": manifest["metadata"],
        "spec": manifest["spec"],
    }
