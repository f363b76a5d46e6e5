"""What platform services hand to each other: names, endpoints and credentials.

Components are built in parallel by different hands; the shapes here are the agreement between
them, so one service can be wired to another without reading its internals.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stacks.config import PlatformConfig


@dataclass(frozen=True)
class Hostnames:
    """Public names of the platform's web endpoints, all inside the platform zone."""

    zone: str

    @property
    def authentik(self) -> str:
        return f"auth.{self.zone}"

    @property
    def argocd(self) -> str:
        return f"argocd.{self.zone}"

    @property
    def vault(self) -> str:
        return f"vault.{self.zone}"

    @property
    def hubble(self) -> str:
        return f"hubble.{self.zone}"

    @property
    def traefik_dashboard(self) -> str:
        return f"traefik.{self.zone}"

    def tenant_api(self, tenant: str) -> str:
        return f"api.{tenant}.{self.zone}"

    def tenant_apps(self, tenant: str) -> str:
        return f"*.apps.{tenant}.{self.zone}"


def hostnames(cfg: PlatformConfig) -> Hostnames:
    return Hostnames(cfg.domain.platform_zone)


@dataclass(frozen=True)
class OidcClient:
    """What a consuming component needs to trust an Authentik OIDC application."""

    issuer_url: str  # Authentik's per-application issuer, trailing slash included
    client_id: str
    client_secret: pulumi.Output[str] | None  # None for public clients (kubelogin)


def authentik_issuer_url(cfg: PlatformConfig, application_slug: str) -> str:
    # Ref: goauthentik docs, OAuth2 provider: issuer is https://<host>/application/o/<slug>/
    return f"https://{hostnames(cfg).authentik}/application/o/{application_slug}/"


@dataclass(frozen=True)
class DnsUpdateAccess:
    """RFC2136 dynamic-update access to the platform zone, one TSIG key per client."""

    nameserver: str  # host:port reachable from inside the cluster
    zone: str
    key_name: str
    algorithm: str  # e.g. "hmac-sha256"
    secret: pulumi.Output[str]  # base64 TSIG secret (Pulumi secret)
    ready: pulumi.Resource  # wait for this before using the key (Bind9 serving the zone)


# Authentik's embedded/managed outpost for forward-auth, and the Traefik middleware that calls it.
# Ref: goauthentik docs "Traefik" forward auth: /outpost.goauthentik.io/auth/traefik
FORWARD_AUTH_OUTPOST_SERVICE = "ak-outpost-platform-forward-auth"
FORWARD_AUTH_ADDRESS = (
    f"http://{FORWARD_AUTH_OUTPOST_SERVICE}.authentik.svc.cluster.local:9000/outpost.goauthentik.io/auth/traefik"
)
FORWARD_AUTH_MIDDLEWARE = "authentik-forward-auth"  # traefik.io/v1alpha1 Middleware in namespace "traefik"
TRAEFIK_NAMESPACE = "traefik"
ARGOCD_NAMESPACE = "argocd"
WILDCARD_TLS_SECRET = "platform-wildcard-tls"  # default certificate of Traefik, namespace "traefik"
INTERNAL_CA_ISSUER = "platform-internal-ca"  # ClusterIssuer for service-to-service TLS


# --------------------------------------------------------------------------------------------
# Tenant clusters (components/tenant_cluster.py) and the services wired to them.
# --------------------------------------------------------------------------------------------

from collections.abc import Sequence  # noqa: E402  (appended section: keeps the file append-only)
from typing import Any, Protocol  # noqa: E402

# Shared with other branches, byte-identical (keep one copy when merging): TENANT_NAMESPACE_LABEL,
# TENANT_API_PORT, TALOS_API_PORT as in issue 6; OIDC_* and oidc_group_subject as in issue 5.
# Label every tenant namespace carries (components/tenant_cluster.py). Platform services select
# tenant namespaces by it in network policies (e.g. ArgoCD and Cluster API reach tenant APIs).
TENANT_NAMESPACE_LABEL = "weebo.io/tenant"
TENANT_API_PORT = 6443  # tenant kube-apiserver (VM pods in the tenant namespace)
TALOS_API_PORT = 50000  # Talos apid of tenant nodes (CACPPT)
OIDC_USERNAME_CLAIM = "preferred_username"
OIDC_USERNAME_PREFIX = "oidc:"
OIDC_GROUPS_CLAIM = "groups"  # Authentik profile scope: [group.name for group in user.ak_groups]
OIDC_GROUPS_PREFIX = "oidc:"


def oidc_group_subject(group: str) -> str:
    """The Kubernetes group name an Authentik group arrives as through the apiserver's OIDC."""
    return f"{OIDC_GROUPS_PREFIX}{group}"


def tenant_oidc_slug(tenant: str) -> str:
    """Slug of the Authentik application (OIDC provider) of a tenant's Kubernetes API. The tenant
    API server trusts issuer ``authentik_issuer_url(cfg, slug)`` with client id == slug (a public
    client for kubelogin, redirect http://localhost:8000): Authentik must create exactly this."""
    return f"tenant-{tenant}"


@dataclass(frozen=True)
class TenantAccess:
    """What a tenant cluster offers to the services that wire themselves to it (identity wave).

    ``server`` and ``ca_data`` come from the CAPI kubeconfig and the tenant's token Secrets: they
    are unknown until the tenant control plane exists. Resources created in the tenant cluster go
    through ``provider`` with ``deleted_with=deleted_with`` so they never block its deletion.
    """

    tenant: str
    namespace: str  # its namespace on the management cluster
    server: pulumi.Output[str]  # https://<api lb ip>:6443 (Pulumi secret: it comes from the kubeconfig)
    ca_data: pulumi.Output[str]  # base64 PEM of the tenant cluster CA
    provider: Any  # pulumi_kubernetes.Provider of the tenant cluster
    deleted_with: pulumi.Resource
    oidc_slug: str
    admin_groups: tuple[str, ...]


class TenantIdentity(Protocol):
    """Authentik (issue 5, identity wave): the OIDC application of one tenant's API."""

    def add_tenant_application(self, access: TenantAccess) -> OidcClient:
        """Create application + provider with slug ``access.oidc_slug`` (client id == slug), open to
        ``access.admin_groups``; return what the tenant API server trusts."""
        ...


class TenantSecrets(Protocol):
    """Vault (issue 5, identity wave): a Kubernetes auth mount, role and policy for one tenant."""

    def add_tenant_auth(self, access: TenantAccess) -> pulumi.Resource:
        """Mount ``kubernetes-<tenant>`` validating tokens against ``access.server``/``ca_data``;
        the token reviewer ServiceAccount is created in the tenant through ``access.provider``."""
        ...


class TenantRoutes(Protocol):
    """NetBird: a route to a tenant's networks when the tenant asks for one (``netbirdRoute``)."""

    def add_tenant_route(self, tenant: str, cidrs: Sequence[str], access_groups: Sequence[str],
                         depends_on: Sequence[pulumi.Resource] = ()) -> Any:
        ...
