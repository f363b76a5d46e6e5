"""Every version the platform installs, pinned in one place.

Each pin matches the upstream contract files in ``../shared/schemas`` (see its
``SOURCES.md``), so what the program renders is validated against exactly what
gets installed. The ``# renovate:`` line above each pin is read by the regex
manager in ``renovate.json``; ``tests/test_versions.py`` fails on a pin
without one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChartSpec:
    """A Helm chart: where it lives and the exact version installed."""

    chart: str
    repo: str
    version: str

    @property
    def is_oci(self) -> bool:
        return self.repo.startswith("oci://")

    @property
    def reference(self) -> str:
        """The chart name as Helm takes it (OCI charts are addressed by URL)."""
        return f"{self.repo}/{self.chart}" if self.is_oci else self.chart


# --- Talos / Kubernetes of the management cluster --------------------------------------------
# renovate: datasource=github-releases depName=siderolabs/talos
TALOS_VERSION = "v1.13.9"
# renovate: datasource=github-releases depName=kubernetes/kubernetes
KUBERNETES_VERSION = "1.36.3"  # Talos v1.13.9 default (constants.DefaultKubernetesVersion)
# talosctl on the machine running `pulumi up` (upgrades, components/talos_upgrade.py): the newest
# Talos the program installs. It drives older servers too: its upgrade command falls back to the
# legacy API below 1.13 (talos v1.13.9 cmd/talosctl/cmd/talos/upgrade.go, talosUpgradeAPIVersionRange).
# renovate: datasource=github-releases depName=siderolabs/talos
TALOSCTL_VERSION = "v1.13.9"

# Management-cluster Talos minor -> Kubernetes minors it supports (config validation refuses
# other pairs). Ref: talos v1.13.9 pkg/machinery/compatibility/talos111, talos112, talos113
# (MinimumKubernetesVersion/MaximumKubernetesVersion): 1.11 -> 1.29-1.34, 1.12 -> 1.30-1.35,
# 1.13 -> 1.31-1.36. Older Talos minors are not offered (out of upstream support).
MANAGEMENT_VERSION_MATRIX: dict[str, tuple[str, ...]] = {
    "1.11": ("1.29", "1.30", "1.31", "1.32", "1.33", "1.34"),
    "1.12": ("1.30", "1.31", "1.32", "1.33", "1.34", "1.35"),
    "1.13": ("1.31", "1.32", "1.33", "1.34", "1.35", "1.36"),
}

# --- Helm charts --------------------------------------------------------------------------------
# renovate: datasource=helm depName=cilium registryUrl=https://helm.cilium.io/
CILIUM_CHART_VERSION = "1.20.0"
# renovate: datasource=helm depName=cert-manager registryUrl=https://charts.jetstack.io
CERT_MANAGER_CHART_VERSION = "v1.21.1"
# renovate: datasource=helm depName=traefik registryUrl=https://traefik.github.io/charts
TRAEFIK_CHART_VERSION = "41.3.0"
# renovate: datasource=helm depName=external-dns registryUrl=https://kubernetes-sigs.github.io/external-dns/
EXTERNAL_DNS_CHART_VERSION = "1.21.1"
# renovate: datasource=helm depName=vault registryUrl=https://helm.releases.hashicorp.com
VAULT_CHART_VERSION = "0.34.1"
# renovate: datasource=helm depName=authentik registryUrl=https://charts.goauthentik.io
AUTHENTIK_CHART_VERSION = "2026.8.0"
# renovate: datasource=helm depName=argo-cd registryUrl=https://argoproj.github.io/argo-helm
ARGOCD_CHART_VERSION = "10.1.1"
# renovate: datasource=helm depName=cluster-api-operator registryUrl=https://kubernetes-sigs.github.io/cluster-api-operator
CAPI_OPERATOR_CHART_VERSION = "0.28.0"
# renovate: datasource=docker depName=ghcr.io/netbirdio/helm-charts/netbird-operator
NETBIRD_OPERATOR_CHART_VERSION = "0.8.0"

# Traefik's CRDs, applied by components/edge/traefik.py before the chart (installed with skip_crds):
# Helm installs a chart's crds/ only on first install (HIP-0011), so a chart bump would leave them
# stale. The separate `traefik-crds` chart is no answer: deprecated since traefik chart v38.0.2 and
# removed from traefik/traefik-helm-chart (commit fd6fca32, May 2026); its last release, crds 1.18.0,
# shipped with chart 40.0.0, not 41.x. Upstream's own upgrade path is to server-side-apply the
# chart's crds/ ("helm show crds traefik/traefik | kubectl apply --server-side --force-conflicts",
# README "Upgrade the Standalone Traefik Chart" @ v41.3.0), which is what is done here, file by
# file, each checked against its sha256. Only the traefik.io CRDs: Traefik Hub (hub.traefik.io) is
# not installed, and chart 41.x ships no Gateway API CRDs (commit ab7dbb15; the Gateway provider,
# `providers.kubernetesGateway`, stays disabled). sha256 of traefik/crds/<file> at tag v41.3.0
# (commit a8a66d00); bump with TRAEFIK_CHART_VERSION (tests/test_traefik.py checks them against the
# contract files in ../shared/schemas/traefik).
TRAEFIK_CRDS_SHA256: dict[str, str] = {
    "traefik.io_ingressroutes.yaml": "6c78d0550ca4dcce238b4a6b470f7e98b8ca834a02b5103b5c29e2dbdc05ad8a",
    "traefik.io_ingressroutetcps.yaml": "c136e95e25ca2ccf9c8a9f481018ef82795a3bdb7a5e1216d4606eb87cd75bdf",
    "traefik.io_ingressrouteudps.yaml": "ae071b931020038031f04e26ecbf08dc05261446c51d06bac629f8e1c637d97f",
    "traefik.io_middlewares.yaml": "2d2e097725637a7fc372fab3492db2cb94860e7d463424bd6b341f6a2a81c685",
    "traefik.io_middlewaretcps.yaml": "d9f8fba46ba6f96273de5c126175a7d222f9f9c3458b3df38d603bbf30e69bb5",
    "traefik.io_serverstransports.yaml": "164d529984ce726950383a34ea38c5cfd5aedb67dc6e04dfd1ea0854f28cb954",
    "traefik.io_serverstransporttcps.yaml": "5029d3326548033343dca5c9676a34699cf8c4e6327744902b705d845872fb97",
    "traefik.io_tlsoptions.yaml": "d3f7095426cf8e899d3062fadb460cf1b6749f86af2616b50ff6a6c1c1e1ce21",
    "traefik.io_tlsstores.yaml": "b649ddb4c1be3304f2edac2dc4fc16a93d44738968dcb2a810bc4dedef8f48a9",
    "traefik.io_traefikservices.yaml": "3ef2d4c3badc9119a967be771176b0c604aacbe489ed770f9642c330dab943e5",
}

CHARTS: dict[str, ChartSpec] = {
    "cilium": ChartSpec("cilium", "https://helm.cilium.io/", CILIUM_CHART_VERSION),
    "cert-manager": ChartSpec("cert-manager", "https://charts.jetstack.io", CERT_MANAGER_CHART_VERSION),
    "traefik": ChartSpec("traefik", "https://traefik.github.io/charts", TRAEFIK_CHART_VERSION),
    "external-dns": ChartSpec(
        "external-dns", "https://kubernetes-sigs.github.io/external-dns/", EXTERNAL_DNS_CHART_VERSION
    ),
    "vault": ChartSpec("vault", "https://helm.releases.hashicorp.com", VAULT_CHART_VERSION),
    "authentik": ChartSpec("authentik", "https://charts.goauthentik.io", AUTHENTIK_CHART_VERSION),
    "argo-cd": ChartSpec("argo-cd", "https://argoproj.github.io/argo-helm", ARGOCD_CHART_VERSION),
    "cluster-api-operator": ChartSpec(
        "cluster-api-operator",
        "https://kubernetes-sigs.github.io/cluster-api-operator",
        CAPI_OPERATOR_CHART_VERSION,
    ),
    "netbird-operator": ChartSpec(
        "netbird-operator", "oci://ghcr.io/netbirdio/helm-charts", NETBIRD_OPERATOR_CHART_VERSION
    ),
}

# --- Operators installed from release manifests -----------------------------------------------
# renovate: datasource=github-releases depName=kubevirt/kubevirt
KUBEVIRT_VERSION = "v1.9.0"
# renovate: datasource=github-releases depName=kubevirt/containerized-data-importer
CDI_VERSION = "v1.66.0"

# --- Cluster API providers (installed by the operator; one set that works together) -------------
# Capped below v1.16 in renovate.json (packageRules allowedVersions "<1.16.0"): CAPI v1.16 stops
# serving the v1beta1 contract (docs/book/src/reference/versions.md @ v1.14.0: "in v1.16, April 2027
# v1beta1 will stop to be served", cluster-api#11920), and CAPK v0.11.2, CABPT v0.6.12 and CACPPT
# v0.5.12 are still v1beta1-contract providers. Lift the cap once all three ship v1beta2 releases.
# renovate: datasource=github-releases depName=kubernetes-sigs/cluster-api
CAPI_CORE_VERSION = "v1.14.0"
# renovate: datasource=github-releases depName=kubernetes-sigs/cluster-api-provider-kubevirt
CAPK_VERSION = "v0.11.2"
# renovate: datasource=github-releases depName=siderolabs/cluster-api-bootstrap-provider-talos
CABPT_VERSION = "v0.6.12"
# renovate: datasource=github-releases depName=siderolabs/cluster-api-control-plane-provider-talos
CACPPT_VERSION = "v0.5.12"

# --- Tenant version matrix -----------------------------------------------------------------------
# Tenant Talos minor -> Kubernetes minors, the intersection of:
#  - CACPPT v0.5.12 README: Talos v1.3-v1.12, Kubernetes v1.26-v1.35 (Talos 1.13 needs CACPPT >= 0.5.13);
#  - CABPT v0.6.12 README: Talos v1.2-v1.13, Kubernetes v1.26-v1.36;
#  - Talos compatibility (pkg/machinery/compatibility/talos112 @ v1.13.9): 1.12 -> 1.30-1.35;
#  - CAPI v1.14 workload clusters: Kubernetes 1.31-1.36 (docs/book/src/reference/versions.md).
# Only Talos minors still patched upstream are offered: Talos 1.11 is end of life (its last patch,
# v1.11.6, shipped 2025-12) and is no longer accepted. Config validation rejects any other pair.
TENANT_VERSION_MATRIX: dict[str, tuple[str, ...]] = {
    "1.12": ("1.31", "1.32", "1.33", "1.34", "1.35"),
}

# --- Images the platform renders itself (DNS, NetBird) ------------------------------------------
# ISC publishes the official BIND image under major.minor tags only (no 9.20.x tags): each branch
# is pushed as "9.NN" (Ref: isc-projects/bind9-docker build.sh + */tags; the canonical repository
# is gitlab.isc.org/isc-projects/bind9-docker). 9.20 is a stable branch (even minor: ISC KB
# aa-01540). The tag moves with every 9.20.x build, so the image is pinned by digest: the 9.20 build
# of BIND 9.20.29 (2026-09), the same digest pinned by two unrelated public repositories (code
# search, 2026-12: an AXON registry-backed authoritative DNS README, "bind9:9.20@sha256:0714...",
# and an internal-dns e2e harness recording it with bindVersion 9.20.29). Docker Hub is not
# reachable from where this was written, so it was not re-read from the registry: Renovate's
# docker datasource does (digest updates of "9.20", and pinDigests in renovate.json re-adds a
# dropped digest).
# renovate: datasource=docker depName=docker.io/internetsystemsconsortium/bind9
BIND9_IMAGE = "docker.io/internetsystemsconsortium/bind9:9.20@sha256:071465f88068854d0ceadd9b985fb1acae4071e80754e545cd811fde57541ad0"  # noqa: E501
# The NetBird client the netbird-operator itself runs as routing peer (tag + digest).
# Ref: netbirdio/kubernetes-operator@627e388 pkg/version/version.go (NetbirdClientImage).
# renovate: datasource=docker depName=ghcr.io/netbirdio/netbird
NETBIRD_CLIENT_IMAGE = "ghcr.io/netbirdio/netbird:0.74.7@sha256:b63f4c1584118aeebacfdfd841f0351122a53fccac182b4c43be428c2c9a6b73"

# --- Backups (components/operations/backups.py) ------------------------------------------------------------
# rclone: S3 upload with client-side encryption (crypt remote). Alpine-based, so it has a shell.
# Digest as pinned in a public Dockerfile (search: "rclone/rclone:1.75.1@sha256:45401ad...").
# renovate: datasource=docker depName=docker.io/rclone/rclone
RCLONE_IMAGE = "docker.io/rclone/rclone:1.75.1@sha256:45401ad7410db1d67ffdb58e19059ad20b0d8e0285a60e38bbec55cc1019c7a5"  # noqa: E501
# The Vault CLI of the server version the vault chart installs (chart 0.34.1 appVersion 2.0.4).
# renovate: datasource=docker depName=docker.io/hashicorp/vault
VAULT_IMAGE = "docker.io/hashicorp/vault:2.0.4"
# pg_dump/pg_restore of exactly the server Authentik's chart runs (authentik chart 2026.8.0 values
# postgresql.image: library/postgres 17.11-bookworm): same major, so the dump restores with the
# same client. Debian tags are rebuilt for OS updates: pinned by digest (the multi-arch index, the
# same digest recorded by several independent public pins of this tag), kept by pinDigests.
# renovate: datasource=docker depName=docker.io/library/postgres
POSTGRES_IMAGE = "docker.io/library/postgres:17.11-bookworm@sha256:051f7b7b3abdd564d5d1bd1e8c4b9c1b6e77087d1dd22020ede611c096a272e0"  # noqa: E501
# kubectl with bash + coreutils (Ref: kubernetes/kubernetes build/server-image/kubectl/Dockerfile).
# renovate: datasource=docker depName=registry.k8s.io/kubectl
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.36.4"

# --- Release manifests installed at deploy time (pinned by version AND content) -------------------
# The operator manifests are fetched by `components.core.release_manifest` during `pulumi up` and applied
# only when their sha256 matches these pins. Upstream publishes no checksum file for these assets;
# the values were computed from the release assets and cross-checked against independent pins
# (KubeVirt: tym83/kubepkg-recipes recipes/kubevirt/recipe.yaml, and a byte-identical vendored copy
# in AlinaNova21/home-ops; CDI: the vendored, unmodified copy in AlinaNova21/home-ops
# kubernetes/kubevirt/core/app/cdi-operator-v1.66.0.yaml, 5807 lines). Bump with the version.
# renovate: datasource=github-release-attachments depName=kubevirt/kubevirt digestVersion=v1.9.0
KUBEVIRT_OPERATOR_SHA256 = "f11307caafc3c23ffedf9887d8beb5a4419e2694da242fa68f63d1ec820de2e0"
# renovate: datasource=github-release-attachments depName=kubevirt/containerized-data-importer digestVersion=v1.66.0
CDI_OPERATOR_SHA256 = "f81f2730f3404649196e9777b67a3c69fd6ea5d9eb60775dfd97ac90d2edf8e7"

# --- local-path-provisioner (CDI scratch space, kubevirt-csi infra volumes) ------------------------
# Manifests rendered by components/virtualization/local_storage.py from deploy/local-path-storage.yaml @ v0.0.37
# (rancher/local-path-provisioner 49b2be8e). Digests as pinned by several public repos (2026-08).
# renovate: datasource=docker depName=docker.io/rancher/local-path-provisioner
LOCAL_PATH_PROVISIONER_IMAGE = "docker.io/rancher/local-path-provisioner:v0.0.37@sha256:e757967a5ec338f6a9b371c5a9688bedaa8c3578ea3dd4db329ea0084be0a86f"  # noqa: E501
# renovate: datasource=docker depName=docker.io/library/busybox
LOCAL_PATH_HELPER_IMAGE = "docker.io/library/busybox:1.37.0@sha256:9db7b59979c38555a39def84a31fb98b5296952f9e3afd4f6f11f05b07adfab0"  # noqa: E501

# --- kubevirt-csi-driver (tenant volumes) ------------------------------------------------------
# Upstream kubevirt/csi-driver has no releases and publishes only quay.io/kubevirt/...:latest
# (.github/workflows/create_image.yaml @27b52aa); no digest of it is published anywhere we could
# read. Kubermatic builds the same driver (same flags, split mode included) with exact tags; its
# KubeOne image list pins quay.io/kubermatic/kubevirt-csi-driver:v0.4.5 (KubeVirtCSI). An exact
# tag, no digest: replace with an upstream digest once one is published.
# Known gap: this image predates kubevirt/csi-driver#184 (27b52aa, merged 2026-06-24: unplug from
# the VMI when the VM is gone); Kubermatic's images track upstream commits, the last bumps we could
# read being 9ad38f9e (2025-04, kubermatic/kubermatic#14502) and a request of 2026-02
# (kubermatic/kubermatic#15362). The only image built from 27b52aa is upstream's mutable
# quay.io/kubevirt/kubevirt-csi-driver:latest, for which no digest is published anywhere we can
# read, so it is not pinned here. The infra Role already grants what #184 needs
# (components.tenant.storage.infra_rules); move to an image containing it once one can be pinned.
# renovate: datasource=docker depName=quay.io/kubermatic/kubevirt-csi-driver
KUBEVIRT_CSI_DRIVER_VERSION = "v0.4.5"
# Kubernetes CSI sidecars, exact upstream tags (no digest found in the sources we can read).
# renovate: datasource=docker depName=registry.k8s.io/sig-storage/csi-provisioner
CSI_PROVISIONER_VERSION = "v5.3.0"
# renovate: datasource=docker depName=registry.k8s.io/sig-storage/csi-attacher
CSI_ATTACHER_VERSION = "v4.8.1"
# renovate: datasource=docker depName=registry.k8s.io/sig-storage/csi-resizer
CSI_RESIZER_VERSION = "v1.13.1"
# renovate: datasource=docker depName=registry.k8s.io/sig-storage/csi-node-driver-registrar
CSI_NODE_DRIVER_REGISTRAR_VERSION = "v2.15.0"
# renovate: datasource=docker depName=registry.k8s.io/sig-storage/livenessprobe
CSI_LIVENESS_PROBE_VERSION = "v2.17.0"

KUBEVIRT_CSI_IMAGES: dict[str, str] = {
    "driver": f"quay.io/kubermatic/kubevirt-csi-driver:{KUBEVIRT_CSI_DRIVER_VERSION}",
    "provisioner": f"registry.k8s.io/sig-storage/csi-provisioner:{CSI_PROVISIONER_VERSION}",
    "attacher": f"registry.k8s.io/sig-storage/csi-attacher:{CSI_ATTACHER_VERSION}",
    "resizer": f"registry.k8s.io/sig-storage/csi-resizer:{CSI_RESIZER_VERSION}",
    "registrar": f"registry.k8s.io/sig-storage/csi-node-driver-registrar:{CSI_NODE_DRIVER_REGISTRAR_VERSION}",
    "livenessprobe": f"registry.k8s.io/sig-storage/livenessprobe:{CSI_LIVENESS_PROBE_VERSION}",
}

# --- Authentik API: pulumi_authentik (provider) vs the Authentik server ---------------------------
# pulumi-authentik 2025.8.1 (requirements.txt; the newest on PyPI) wraps terraform-provider-authentik
# v2025.8.1 (its pulumi-plugin.json parameterization), built on goauthentik.io/api/v3 v3.2025100.4
# (Ref: goauthentik/terraform-provider-authentik go.mod @ v2025.8.1), i.e. the API schema of
# Authentik 2025.10 (Ref: goauthentik/client-go schema.yml @ v3.2025100.4). The server is
# AUTHENTIK_CHART_VERSION (2026.8.0). Decision: keep the 2026.8 server (2025.10 is out of upstream
# support, and chart 2026.8 is what the values are validated against) after comparing, for every
# resource type and field the program uses (below; tests/test_authentik_api.py keeps this set equal
# to what the program registers), the request/response models and their enums of schema 2025.10.4
# with schema 2026.8.0 (authentik-client 2025.10.4 vs 2026.8.0 on PyPI, generated from those
# schema.yml; endpoints /core/applications/, /core/groups/, /providers/oauth2/, /providers/proxy/,
# /policies/bindings/, /outposts/instances/, /outposts/service_connections/kubernetes/,
# /flows/instances/, /propertymappings/provider/scope/, /crypto/certificatekeypairs/):
#  - unchanged: every field the program sets, their types, and the enums it sends (ClientTypeEnum,
#    SubModeEnum, IssuerModeEnum, MatchingModeEnum, ProxyMode, OutpostTypeEnum); ProxyProvider,
#    Outpost, KubernetesServiceConnection and ScopeMapping models entirely.
#  - changed, harmless here: Group `parent`/`children` -> `parents` (never set; the server ignores
#    unknown request keys); Application +`meta_hide`/`meta_icon` (optional), +`pbm_uuid`, and
#    PolicyBinding `*_obj` now optional, +`expires`/`expiring` (responses: the 6.2.0-generated Go
#    client ignores unknown keys and checks no required keys); CertificateKeyPair
#    `private_key_type` -> `key_type` (not read); Flow `background` optional, +`background_url`.
#  - changed, watched: new response enum values FlowLayoutEnum (+sidebar_*_frame_background) and
#    AuthenticationEnum (+require_token) break the old client's decoding of a flow using them; the
#    program reads only the two default flows (components.authentik_ready), not those layouts.
#    RedirectURI +`redirect_uri_type` (optional; not sent, the server default applies).
#  - changed, BREAKING, worked around: OAuth2Provider +`grant_types` (Authentik 2026.5,
#    goauthentik/authentik PR #20363). A provider only accepts the grants it lists, and one created
#    without them through the API has none (logins fail: claytono/infra#2525 on 2026.5,
#    CowDogMoo/Walls-of-Excellence#1828 on 2026.8). This provider cannot send the field (it came
#    with terraform-provider-authentik v2026.5.0, no Pulumi SDK of which is published), so
#    components.identity.OAuth2GrantTypes PATCHes /providers/oauth2/{id}/ with each application's
#    grants after every write of its provider and fails the deploy unless Authentik stored them.
#    Replace it by the provider's own `grant_types` once a pulumi-authentik >= 2026.5 exists.
# Bump the provider or the server: redo this comparison, then update the "server" value below.
AUTHENTIK_API_CHECK: dict[str, object] = {
    "provider": "pulumi-authentik==2025.8.1",
    "server": "2026.8.0",
    # The program's own calls (components.authentik_ready, components.identity,
    # components.authentik_token), checked the same way (the token calls: request models
    # GroupRequest, UserRequest/UserTypeEnum, UserAccountRequest, TokenRequest/IntentEnum,
    # TokenSetKeyRequest; response SessionUser.user.username, paginated results[].pk).
    "api_calls": (
        "GET /api/v3/crypto/certificatekeypairs/?name=",
        "GET /api/v3/flows/instances/?slug=",
        "GET /api/v3/propertymappings/provider/scope/?managed=",
        "PATCH /api/v3/providers/oauth2/{id}/ grant_types",
        "GET /api/v3/core/users/me/",
        "GET /api/v3/core/groups/?name=",
        "POST /api/v3/core/groups/ name is_superuser",
        "POST /api/v3/core/groups/{group_uuid}/ add_user/ pk",
        "GET /api/v3/core/users/?username=",
        "POST /api/v3/core/users/ username name type groups",
        "POST /api/v3/core/tokens/ identifier intent user expiring description",
        "GET /api/v3/core/tokens/{identifier}/",
        "POST /api/v3/core/tokens/{identifier}/ set_key/ key",
        "DELETE /api/v3/core/tokens/{identifier}/",
    ),
    # Pulumi type token -> the input fields (or invoke arguments) checked.
    "uses": {
        "authentik:index/application:Application": ("metaLaunchUrl", "name", "protocolProvider", "slug"),
        "authentik:index/group:Group": ("isSuperuser", "name"),
        "authentik:index/outpost:Outpost": ("config", "name", "protocolProviders", "serviceConnection", "type"),
        "authentik:index/policyBinding:PolicyBinding": ("group", "order", "target"),
        "authentik:index/providerOauth2:ProviderOauth2": (
            "accessCodeValidity", "allowedRedirectUris", "authorizationFlow", "clientId", "clientSecret",
            "clientType", "invalidationFlow", "issuerMode", "name", "propertyMappings", "signingKey", "subMode",
        ),
        "authentik:index/providerProxy:ProviderProxy": (
            "authorizationFlow", "externalHost", "invalidationFlow", "mode", "name",
        ),
        "authentik:index/serviceConnectionKubernetes:ServiceConnectionKubernetes": ("local", "name"),
        "authentik:index/getCertificateKeyPair:getCertificateKeyPair": ("fetchCertificate", "fetchKey", "name"),
        "authentik:index/getFlow:getFlow": ("slug",),
        "authentik:index/getPropertyMappingProviderScope:getPropertyMappingProviderScope": ("managedLists",),
    },
}
