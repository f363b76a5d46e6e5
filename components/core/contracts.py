"""What platform services hand to each other: names, endpoints and credentials.

Components are built in parallel by different hands; the shapes here are the agreement between
them, so one service can be wired to another without reading its internals.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi

from stacks import facts
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
    # The port the server's pods listen on: network policies see the address after the Service's
    # translation, so egress rules must name this port, not the Service's 53.
    pod_port: int | None = None


# Authentik's embedded/managed outpost for forward-auth, and the Traefik middleware that calls it.
# Ref: goauthentik docs "Traefik" forward auth: /outpost.goauthentik.io/auth/traefik
FORWARD_AUTH_OUTPOST_SERVICE = "ak-outpost-platform-forward-auth"
FORWARD_AUTH_ADDRESS = (
    f"http://{FORWARD_AUTH_OUTPOST_SERVICE}.authentik.svc.cluster.local:9000/outpost.goauthentik.io/auth/traefik"
)
FORWARD_AUTH_MIDDLEWARE = "authentik-forward-auth"  # traefik.io/v1alpha1 Middleware in namespace "traefik"
TRAEFIK_NAMESPACE = facts.TRAEFIK_NAMESPACE
ARGOCD_NAMESPACE = facts.ARGOCD_NAMESPACE
WILDCARD_TLS_SECRET = "platform-wildcard-tls"  # default certificate of Traefik, namespace "traefik"
INTERNAL_CA_ISSUER = "platform-internal-ca"  # ClusterIssuer for service-to-service TLS

# Bind9 (namespace "dns"): clients reach it through the Service on port 53; NetworkPolicies see
# the pod port after the Service's translation, so egress rules towards Bind9 name BIND9_POD_PORT
# (UDP and TCP) and select BIND9_POD_LABELS in namespace DNS_NAMESPACE.
DNS_NAMESPACE = facts.DNS_NAMESPACE
BIND9_POD_LABELS = {"app.kubernetes.io/name": "bind9", "app.kubernetes.io/instance": "platform-dns"}
BIND9_POD_PORT = 5053
# Bind9's Service gets a fixed ClusterIP: the 53rd address of the management cluster's service
# range. cert-manager's DNS-01 self-check queries it directly (its --dns01-recursive-nameservers
# take "<ip>:<port>", Ref: cert-manager v1.21.1 internal/apis/config/controller/validation/
# validation.go), so it must be an address known before the Service exists. Kubernetes keeps the
# low part of the range, min(max(16, size/16), 256) addresses, for such static picks and allocates
# dynamic ClusterIPs from above it first (Ref: kubernetes.io/docs/concepts/services-networking/
# cluster-ip-allocation, "Avoid ClusterIP conflicts"; KEP-3070). The 10th is CoreDNS's by convention.
BIND9_CLUSTER_IP_OFFSET = 53


def bind9_cluster_ip(cfg: PlatformConfig) -> str:
    """Bind9's fixed ClusterIP inside ``managementCluster.serviceCidr`` (its static band)."""
    net = ipaddress.ip_network(cfg.management_cluster.service_cidr)
    static_band = min(max(16, net.num_addresses // 16), 256)
    if BIND9_CLUSTER_IP_OFFSET >= static_band:
        raise ValueError(
            f"managementCluster.serviceCidr {net} is too small: its static ClusterIP band has "
            f"{static_band} addresses, Bind9's fixed address is the {BIND9_CLUSTER_IP_OFFSET}th (use /22 or larger)"
        )
    return str(net.network_address + BIND9_CLUSTER_IP_OFFSET)


@dataclass(frozen=True)
class NetbirdRoute:
    """What a tenant needs to run a NetBird routing peer in its own cluster.

    Returned by ``Netbird.add_tenant_route``: the peer enrolls with ``setup_key`` (a Pulumi
    secret: put it in a Secret, reference it as env ``NB_SETUP_KEY``) against ``management_url``
    and joins ``routers_group_id``, the peer group of the tenant's NetBird network router.
    ``components.vpn.netbird.routing_peer_manifests`` renders that peer.
    """

    network_id: pulumi.Output[str]
    routers_group_id: pulumi.Output[str]
    resources_group_id: pulumi.Output[str]
    management_url: str
    setup_key: pulumi.Output[str]  # Pulumi secret
    ready: pulumi.Resource


# --- Kubernetes API of the platform's clusters (management and tenants) -----------------------
@dataclass(frozen=True)
class KubernetesOidcClaims:
    """How kube-apiserver maps an Authentik ID token to a Kubernetes user: RBAC bindings name
    users and groups WITH these prefixes, e.g. group ``oidc:platform-admins``."""

    username_claim: str = "email"
    groups_claim: str = "groups"
    username_prefix: str = "oidc:"
    groups_prefix: str = "oidc:"


KUBERNETES_OIDC = KubernetesOidcClaims()

# KubePrism: Talos' node-local load balancer of the Kubernetes API, what Cilium's
# k8sServiceHost/k8sServicePort point at on Talos (kube-proxy is disabled).
# Ref: siderolabs/talos v1.13.9 pkg/machinery/config/generate/init.go (default port 7445).
KUBEPRISM_HOST = "localhost"
KUBEPRISM_PORT = 7445

# The management nodes' local volume (Talos UserVolumeConfig), mounted at /var/mnt/<name>: the
# host path local-path-provisioner serves (CDI scratch space, local-path StorageClass).
# Ref: siderolabs/talos v1.13.9 pkg/machinery/constants/constants.go UserVolumeMountPoint.
LOCAL_VOLUME_NAME = "local-path"
LOCAL_VOLUME_HOST_PATH = f"/var/mnt/{LOCAL_VOLUME_NAME}"


# --- Node-local storage of the management cluster ------------------------------------------------
# The Talos UserVolumeConfig named LOCAL_PATH_VOLUME is mounted at /var/mnt/<name>
# (Ref: siderolabs/talos v1.13.9 pkg/machinery/config/types/block/user_volume_config.go); the
# management-cluster component declares it (size: managementCluster.cdiScratchVolumeSize) and
# local-path-provisioner (components/virtualization/local_storage.py) keeps its volumes in LOCAL_PATH_HOST_DIR.
LOCAL_PATH_VOLUME = "local-path"
LOCAL_PATH_HOST_DIR = f"/var/mnt/{LOCAL_PATH_VOLUME}"
LOCAL_PATH_STORAGE_CLASS = "local-path"  # CDI scratch space and kubevirt-csi infra volumes



# --------------------------------------------------------------------------------------------
# Tenant clusters (components/tenant/cluster.py) and the services wired to them.
# --------------------------------------------------------------------------------------------

from collections.abc import Sequence  # noqa: E402
from typing import Any, Protocol  # noqa: E402

# Label every tenant namespace carries (components/tenant/cluster.py). Platform services select
# tenant namespaces by it in network policies (e.g. ArgoCD and Cluster API reach tenant APIs).
TENANT_NAMESPACE_LABEL = "weebo.io/tenant"
TENANT_API_PORT = 6443  # tenant kube-apiserver (VM pods in the tenant namespace)
TALOS_API_PORT = 50000  # Talos apid of tenant nodes (CACPPT)


# --- ArgoCD: what the tenant component needs to register a cluster -------------------------------
# Ref: argo-cd docs/operator-manual/declarative-setup.md "Clusters": a Secret in ArgoCD's namespace
# labelled argocd.argoproj.io/secret-type=cluster with name, server, config (JSON) and optionally
# project / namespaces / clusterResources.
ARGOCD_CLUSTER_SECRET_LABELS = {"argocd.argoproj.io/secret-type": "cluster"}


@dataclass(frozen=True)
class ArgoCDAccess:
    """Where and when a tenant can register itself with ArgoCD."""

    namespace: str  # cluster Secrets, AppProjects and Applications go here
    ready: pulumi.Resource  # wait for this (the Helm release: CRDs and controllers)
    url: str
    platform_project: str  # AppProject of the management cluster's own apps


def argocd_cluster_secret_data(
    name: str,
    server: pulumi.Input[str],
    *,
    ca_data: pulumi.Input[str],
    cert_data: pulumi.Input[str] | None = None,
    key_data: pulumi.Input[str] | None = None,
    bearer_token: pulumi.Input[str] | None = None,
    project: str | None = None,
) -> dict[str, pulumi.Input[str]]:
    """``string_data`` of an ArgoCD cluster Secret. ``ca_data``/``cert_data``/``key_data`` are the
    base64 PEM values of a kubeconfig (``certificate-authority-data``...). ``config`` is a Pulumi
    secret: it carries the client key or token. Use with ``metadata.labels=ARGOCD_CLUSTER_SECRET_LABELS``."""
    if (cert_data is None) != (key_data is None):
        raise ValueError("cert_data and key_data go together")
    if cert_data is None and bearer_token is None:
        raise ValueError("a cluster needs client certificates or a bearer token")

    import json  # local: this file is append-only for its many authors

    def render(args: list[str | None]) -> str:
        ca, cert, key, token = args
        tls: dict[str, object] = {"insecure": False, "caData": ca}
        if cert is not None:
            tls.update(certData=cert, keyData=key)
        config: dict[str, object] = {"tlsClientConfig": tls}
        if token is not None:
            config["bearerToken"] = token
        return json.dumps(config, sort_keys=True)

    config = pulumi.Output.secret(pulumi.Output.all(ca_data, cert_data, key_data, bearer_token).apply(render))
    data: dict[str, pulumi.Input[str]] = {"name": name, "server": server, "config": config}
    if project is not None:
        data["project"] = project
    return data


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
