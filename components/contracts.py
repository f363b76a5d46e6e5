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


# --- Kubernetes API server OIDC (issue 5) -----------------------------------------------------
# The management cluster's apiserver flags (Talos side) and the RBAC subjects (components/
# cluster_rbac.py) must agree on these. Both prefixes keep OIDC identities apart from
# certificate/service-account ones ("oidc:platform-admins" can never be a system group).
# Ref: https://kubernetes.io/docs/reference/access-authn-authz/authentication/#openid-connect-tokens
# Username claim: Authentik's profile scope sets preferred_username to the username and always
# sends email_verified=false (blueprints/system/providers-oauth2.yaml), which the apiserver
# rejects for the "email" claim.
OIDC_USERNAME_CLAIM = "preferred_username"
OIDC_USERNAME_PREFIX = "oidc:"
OIDC_GROUPS_CLAIM = "groups"  # Authentik profile scope: [group.name for group in user.ak_groups]
OIDC_GROUPS_PREFIX = "oidc:"


def oidc_group_subject(group: str) -> str:
    """The Kubernetes group name an Authentik group arrives as through the apiserver's OIDC."""
    return f"{OIDC_GROUPS_PREFIX}{group}"


# The forward-auth outpost answers on the protected hosts under this path prefix (sign-in
# callback): the IngressRoute of a protected host routes it to the outpost service.
# Ref: goauthentik docs "Forward auth / Traefik"; outpost ports: authentik/providers/proxy/
# controllers/kubernetes.py (http 9000).
FORWARD_AUTH_OUTPOST_NAMESPACE = "authentik"
FORWARD_AUTH_OUTPOST_PORT = 9000
FORWARD_AUTH_OUTPOST_PATH_PREFIX = "/outpost.goauthentik.io/"
