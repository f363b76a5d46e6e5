"""Cluster API through the cluster-api-operator: core, KubeVirt infrastructure (CAPK), Talos
bootstrap (CABPT) and Talos control plane (CACPPT), pinned to one set that works together
(versions.py; the tenant Talos/Kubernetes matrix it supports is versions.TENANT_VERSION_MATRIX,
enforced by config validation).

The chart installs the operator only (its webhook certificate comes from cert-manager, so
cert-manager comes first); the four provider CRs are created here, each in its own namespace as
the operator docs do (capi-system, ...), and each waits until the operator reports it Ready. With
``clusterApi.githubToken`` each provider also gets a ``configSecret`` holding the token, so the
operator's GitHub downloads are not rate limited as anonymous ones.

Also here, shared by all tenants: the Image Factory schematic of the tenants' Talos image and the
golden boot images (one per Talos version in use, components.tenant.images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumiverse_talos as talos

import versions
from components.core import network_policy as netpol
from components.tenant import images as tenant_images
from components.core.common import MANAGED_BY, helm_release
from components.core.contracts import TALOS_API_PORT, TENANT_API_PORT
from components.core.k8s_objects import register
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.tenant.talos import TENANT_EXTENSIONS, schematic_yaml
from components.core.timeouts import CAPI_PROVIDER_TIMEOUTS
from stacks import facts
from stacks.config import PlatformConfig

NAMESPACE = facts.CAPI_OPERATOR_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
OPERATOR_API = "operator.cluster.x-k8s.io/v1alpha2"
WEBHOOK_PORT = 9443  # operator and providers serve their webhooks here (controller-runtime default)


@dataclass(frozen=True)
class Provider:
    kind: str
    name: str  # clusterctl provider name: resolves the built-in fetch configuration
    namespace: str
    version: str
    reaches_tenants: bool  # talks to the tenant clusters' API servers / Talos API


# Names and fetch configuration: the operator applies clusterctl's embedded provider list when
# spec.fetchConfig is not set (docs/book/src/03_topics/01_capi-providers-lifecycle/
# 01_installing-provider.md @ v0.28.0). That list (sigs.k8s.io/cluster-api
# cmd/clusterctl/client/config/providers_client.go, v1.12.10 in the operator's go.mod) holds
# "cluster-api" (core), "kubevirt" (infrastructure, kubernetes-sigs/cluster-api-provider-kubevirt),
# "talos" (bootstrap, siderolabs/cluster-api-bootstrap-provider-talos) and "talos" (control plane,
# siderolabs/cluster-api-control-plane-provider-talos): no fetchConfig is needed.
# The operator accepts providers of the v1beta1 and v1beta2 contracts (internal/controller/
# phase_load.go @ v0.28.0), so core v1.14 (v1beta2) installs beside CAPK/CABPT/CACPPT (v1beta1).
PROVIDERS: tuple[Provider, ...] = (
    Provider("CoreProvider", "cluster-api", facts.CAPI_CORE_NAMESPACE, versions.CAPI_CORE_VERSION, True),
    Provider("InfrastructureProvider", "kubevirt", facts.CAPK_NAMESPACE, versions.CAPK_VERSION, True),
    Provider("BootstrapProvider", "talos", facts.CABPT_NAMESPACE, versions.CABPT_VERSION, False),
    Provider("ControlPlaneProvider", "talos", facts.CACPPT_NAMESPACE, versions.CACPPT_VERSION, True),
)


def values(cfg: PlatformConfig) -> dict[str, Any]:
    """Helm values of cluster-api-operator 0.28.0 (hack/charts/cluster-api-operator/values.yaml)."""
    return {
        # Providers are CRs of this component (they must wait for the operator, and for
        # KubeVirt in the case of CAPK); the chart's own provider sections stay empty.
        "core": {},
        "bootstrap": {},
        "controlPlane": {},
        "infrastructure": {},
        "replicaCount": 1,
        "leaderElection": {"enabled": True},
        "resources": {"manager": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                  "limits": {"cpu": "500m", "memory": "512Mi"}}},
        # Restricted Pod Security: the chart has no pod-level securityContext value, the
        # container-level one satisfies the profile (the image runs as uid 65532, Dockerfile @
        # v0.28.0). The root filesystem stays writable: the embedded clusterctl library may
        # write its config/cache directory.
        "containerSecurityContext": {"manager": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }},
    }


# The operator reads the GitHub token from the provider's configSecret under clusterctl's variable
# name, and validates it before installing. The Secret must live in the provider's namespace.
# Ref: cluster-api-operator v0.28.0 api/v1alpha2/provider_types.go (ConfigSecret),
# internal/controller/preflight_checks.go (configclient.GitHubTokenVariable), docs/README.md
# ("recommended to include a github-token ... may exceed the rate limit"); sigs.k8s.io/cluster-api
# v1.12.10 (the operator's go.mod) cmd/clusterctl/client/config/variables_client.go:
# GitHubTokenVariable = "github-token".
GITHUB_TOKEN_KEY = "github-token"
CONFIG_SECRET = "cluster-api-provider-config"


def provider_cr(p: Provider, config_secret: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"version": p.version}
    if config_secret:
        spec["configSecret"] = {"name": CONFIG_SECRET, "namespace": p.namespace}
    return {
        "apiVersion": OPERATOR_API,
        "kind": p.kind,
        "metadata": {
            "name": p.name,
            "namespace": p.namespace,
            "labels": dict(MANAGED_BY),
            # Ready: the provider's deployment is available (internal/controller/healthcheck).
            "annotations": {"pulumi.com/waitFor": "condition=Ready"},
        },
        "spec": spec,
    }


def operator_policies() -> list[dict[str, Any]]:
    return [
        netpol.allow_kube_apiserver_egress(NAMESPACE, **netpol.APISERVER_EGRESS_NAMED_AS_BEFORE),
        netpol.allow_ingress_from_kube_apiserver(NAMESPACE, netpol.tcp(WEBHOOK_PORT)),
        # The operator downloads provider components and metadata from GitHub releases.
        netpol.allow_world_egress(NAMESPACE, netpol.tcp(443)),
    ]


def provider_policies(p: Provider) -> list[dict[str, Any]]:
    out = [
        netpol.allow_kube_apiserver_egress(p.namespace, **netpol.APISERVER_EGRESS_NAMED_AS_BEFORE),
        netpol.allow_ingress_from_kube_apiserver(p.namespace, netpol.tcp(WEBHOOK_PORT)),
    ]
    if p.reaches_tenants:
        out.append(netpol.egress_to_tenants(p.namespace, netpol.tcp(TENANT_API_PORT, TALOS_API_PORT)))
    return out


@dataclass(frozen=True)
class ClusterApiArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()  # cert-manager (webhook certificates), virtualization


class ClusterApi(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    providers: dict[str, k8s.apiextensions.CustomResource]
    tenant_image_schematic: talos.imagefactory.Schematic
    golden_images: dict[str, k8s.apiextensions.CustomResource]  # Talos version -> its DataSource

    def __init__(self, name: str, args: ClusterApiArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:clusters:ClusterApi", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns])
        for obj in operator_policies():
            register(f"{name}-{obj['metadata']['name']}", obj, in_ns)
        self.release = helm_release(
            name, "cluster-api-operator", ns.name, values(args.config),
            parent=self, provider=provider, depends_on=[ns, *args.depends_on],
        )
        self.providers = {}
        for p in PROVIDERS:
            short = p.namespace.removesuffix("-system")
            # Provider pods: baseline (Talos' default); their manifests come from each
            # provider's release and are not all verified against 'restricted'.
            pns = PlatformNamespace(
                f"{name}-{short}-namespace",
                PlatformNamespaceArgs(name=p.namespace, pod_security="baseline", depends_on=args.depends_on),
                provider, opts=pulumi.ResourceOptions(parent=self),
            )
            p_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[pns])
            for obj in provider_policies(p):
                register(f"{name}-{short}-{obj['metadata']['name']}", obj, p_opts)
            config: list[pulumi.Resource] = []
            token = args.config.cluster_api.github_token
            if token is not None:
                config.append(k8s.core.v1.Secret(
                    f"{name}-{short}-config",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=CONFIG_SECRET, namespace=p.namespace,
                                                        labels=dict(MANAGED_BY)),
                    type="Opaque",
                    string_data={GITHUB_TOKEN_KEY: token.output()},
                    opts=p_opts,
                ))
            self.providers[p.kind] = register(
                f"{name}-{short}", provider_cr(p, config_secret=token is not None),
                pulumi.ResourceOptions(
                    parent=self, provider=provider, depends_on=[pns, self.release, *config, *args.depends_on],
                    custom_timeouts=CAPI_PROVIDER_TIMEOUTS,
                ),
            )
        # Every tenant node boots the same Talos image (TENANT_EXTENSIONS): one schematic,
        # registered once with the Image Factory (idempotent), for all tenants. The ID used in
        # image URLs is computed locally (components.tenant.talos.schematic_id), known at preview.
        self.tenant_image_schematic = talos.imagefactory.Schematic(
            f"{name}-tenant-image-schematic", schematic=schematic_yaml(TENANT_EXTENSIONS),
            opts=pulumi.ResourceOptions(parent=self))
        self._golden_images(name, args, provider)
        self.register_outputs({"namespace": ns.name})

    def _golden_images(self, name: str, args: ClusterApiArgs, provider: k8s.Provider) -> None:
        """One golden image per Talos version in use (components.tenant.images), imported after
        the schematic exists and CDI runs (``args.depends_on``: virtualization). Tenants wait for
        this component, hence for their image, before creating VMs. The set derives from the whole
        tenant list of the config (identical in every parallel plan worker); it changes only when a
        tenant brings a new Talos version or the last tenant of one leaves."""
        cfg = args.config
        images_ns = PlatformNamespace(
            f"{name}-images-namespace",
            # CDI's importer and clone source pods set a restricted security context.
            # Ref: CDI v1.66.0 pkg/controller/common/util.go (SetRestrictedSecurityContext),
            # import-controller.go, clone-controller.go.
            PlatformNamespaceArgs(name=tenant_images.NAMESPACE, depends_on=args.depends_on),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[images_ns])
        for obj in [*tenant_images.network_policies(), tenant_images.clone_role()]:
            register(f"{name}-images-{obj['metadata']['name']}", obj, in_ns)
        self.golden_images = {}
        for version in tenant_images.talos_versions(cfg):
            image = tenant_images.image_name(version)
            dv = register(
                f"{name}-image-{image}", tenant_images.golden_data_volume(cfg, version),
                pulumi.ResourceOptions(
                    parent=self, provider=provider,
                    depends_on=[images_ns, self.tenant_image_schematic, *args.depends_on],
                    custom_timeouts=pulumi.CustomTimeouts(create=f"{tenant_images.IMPORT_TIMEOUT_MINUTES}m"),
                    # CDI refuses changes to a DataVolume's spec (e.g. a new infra storage class;
                    # CDI v1.66.0 pkg/apiserver/webhooks/datavolume-validate.go "Cannot update DataVolume Spec"):
                    # re-import under the same name instead. Existing VM disks are independent clones.
                    replace_on_changes=["spec"], delete_before_replace=True,
                ),
            )
            self.golden_images[version] = register(
                f"{name}-image-{image}-source", tenant_images.data_source(version),
                pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[dv]),
            )
