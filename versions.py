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
# aa-01540). No digest could be verified upstream here: renovate's docker datasource adds it
# (pinDigests) on its first run.
# renovate: datasource=docker depName=docker.io/internetsystemsconsortium/bind9
BIND9_IMAGE = "docker.io/internetsystemsconsortium/bind9:9.20"
# The NetBird client the netbird-operator itself runs as routing peer (tag + digest).
# Ref: netbirdio/kubernetes-operator@627e388 pkg/version/version.go (NetbirdClientImage).
# renovate: datasource=docker depName=ghcr.io/netbirdio/netbird
NETBIRD_CLIENT_IMAGE = "ghcr.io/netbirdio/netbird:0.74.7@sha256:b63f4c1584118aeebacfdfd841f0351122a53fccac182b4c43be428c2c9a6b73"

# --- Release manifests installed at deploy time (pinned by version AND content) -------------------
# The operator manifests are fetched by `components.release_manifest` during `pulumi up` and applied
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
# Manifests rendered by components/local_storage.py from deploy/local-path-storage.yaml @ v0.0.37
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
# (components.tenant_storage.infra_rules); move to an image containing it once one can be pinned.
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
