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


# --- Node-local storage of the management cluster ------------------------------------------------
# The Talos UserVolumeConfig named LOCAL_PATH_VOLUME is mounted at /var/mnt/<name>
# (Ref: siderolabs/talos v1.13.9 pkg/machinery/config/types/block/user_volume_config.go); the
# management-cluster component declares it (size: managementCluster.cdiScratchVolumeSize) and
# local-path-provisioner (components/local_storage.py) keeps its volumes in LOCAL_PATH_HOST_DIR.
LOCAL_PATH_VOLUME = "local-path"
LOCAL_PATH_HOST_DIR = f"/var/mnt/{LOCAL_PATH_VOLUME}"
LOCAL_PATH_STORAGE_CLASS = "local-path"  # CDI scratch space and kubevirt-csi infra volumes

# Label every tenant namespace carries (components/tenant_cluster.py). Platform services select
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
