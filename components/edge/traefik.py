"""Traefik: the platform's ingress, on a pinned load-balancer IP.

HTTP is redirected to HTTPS; TLS uses a wildcard certificate of the platform zone (cert-manager,
DNS-01) as the default certificate; the dashboard and every admin UI sit behind Authentik's
forward-auth middleware. Traefik's CRDs are applied at deploy time before the chart (see
``crd_manifests``; the release skips the chart's crds/), so that a chart bump upgrades them too;
the release waits for them, and Middleware/IngressRoute/TLSStore wait for :attr:`Traefik.release`
(hence for the CRDs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s

import versions
from components.core import network_policy as netpol
from components.core import release_manifest
from components.core.common import MANAGED_BY, helm_release
from components.core.contracts import (
    FORWARD_AUTH_ADDRESS,
    FORWARD_AUTH_MIDDLEWARE,
    FORWARD_AUTH_OUTPOST_SERVICE,
    TRAEFIK_NAMESPACE,
    WILDCARD_TLS_SECRET,
    hostnames,
)
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = TRAEFIK_NAMESPACE
# Ref: traefik chart 41.3.0 values.yaml `ports`: container ports of the web/websecure entry points.
WEB_PORT = 8000
WEBSECURE_PORT = 8443
# Ref: traefik chart templates/_helpers.tpl "traefik.labelselector" (name = chart name).
POD_LABELS = {"app.kubernetes.io/name": "traefik"}
# Ref: cilium Documentation/network/lb-ipam.rst "Requesting IPs" (annotation, comma-separated IPs).
LB_IPAM_IPS_ANNOTATION = "lbipam.cilium.io/ips"
# Namespace of Authentik's forward-auth outpost (see contracts.FORWARD_AUTH_ADDRESS).
AUTHENTIK_NAMESPACE = "authentik"
OUTPOST_PORT = 9000
# ExternalDNS's traefik-proxy source publishes every Host() of an IngressRoute with the targets of
# the route's target annotation only: IngressRoutes have no status, and --default-targets is not
# set. Without the annotation the route yields no record at all.
# Ref: kubernetes-sigs/external-dns v0.21.0 source/traefik_proxy.go (extractEndpoints ->
# annotations.TargetsFromTargetAnnotation, endpointsFromIngressRoute), source/annotations/
# annotations.go (TargetKey = AnnotationKeyPrefix + "target", DefaultAnnotationPrefix
# "external-dns.alpha.kubernetes.io/"). v0.22.0 changed DefaultAnnotationPrefix to
# "external-dns.kubernetes.io/" (same file), so both are set and a chart bump keeps publishing.
EXTERNAL_DNS_TARGET_ANNOTATIONS = (
    "external-dns.alpha.kubernetes.io/target",
    "external-dns.kubernetes.io/target",
)
# Ref: goauthentik docs "Traefik" (providers/proxy/server_traefik): the middleware template.
AUTHENTIK_RESPONSE_HEADERS = [
    "X-authentik-username",
    "X-authentik-groups",
    "X-authentik-entitlements",
    "X-authentik-email",
    "X-authentik-name",
    "X-authentik-uid",
    "X-authentik-jwt",
    "X-authentik-meta-jwks",
    "X-authentik-meta-outpost",
    "X-authentik-meta-provider",
    "X-authentik-meta-app",
    "X-authentik-meta-version",
]


# The chart's own crds/ at its tag: what `helm show crds traefik/traefik --version X` prints.
CRDS_BASE_URL = (
    "https://raw.githubusercontent.com/traefik/traefik-helm-chart/"
    f"v{versions.TRAEFIK_CHART_VERSION}/traefik/crds"
)


def crd_manifests() -> list[release_manifest.ReleaseManifest]:
    """Traefik's CRDs (chart crds/, one file per CRD), pinned by sha256 in versions.py.

    Applied server-side by ``release_manifest`` on every change (a chart bump changes the URLs and
    checksums, so the new CRDs are applied before the new chart), as upstream's README prescribes
    for upgrades; the release itself is installed with ``skip_crds``. Each waits until its CRD is
    Established. The file name is ``<group>_<plural>.yaml``, the CRD name ``<plural>.<group>``.
    """
    out = []
    for file, sha256 in sorted(versions.TRAEFIK_CRDS_SHA256.items()):
        group, plural = file.removesuffix(".yaml").split("_", 1)
        out.append(release_manifest.ReleaseManifest(
            url=f"{CRDS_BASE_URL}/{file}", sha256=sha256, crds=(f"{plural}.{group}",),
        ))
    return out


def values(cfg: PlatformConfig) -> dict[str, Any]:
    """Helm values of the traefik chart 41.3.0 (Traefik v3.7.11)."""
    t = cfg.traefik
    annotations = {LB_IPAM_IPS_ANNOTATION: cfg.traefik_ip} if cfg.traefik_ip else {}
    out: dict[str, Any] = {
        "deployment": {"replicas": t.replicas},
        "ingressClass": {"enabled": True, "isDefaultClass": True},
        # The dashboard route is rendered here (forward-auth), not by the chart.
        "ingressRoute": {"dashboard": {"enabled": False}},
        "api": {"dashboard": t.dashboard},
        "providers": {
            "kubernetesCRD": {
                "enabled": True,
                # Admin UIs live in their own namespaces and use the one forward-auth Middleware
                # of the traefik namespace (contracts.FORWARD_AUTH_MIDDLEWARE): cross-namespace
                # references are needed. Only the platform creates IngressRoutes on this cluster.
                "allowCrossNamespace": True,
                # Cross-provider references (`api@internal`, `x@file`...) only from this namespace.
                # Ref: chart values "Requires traefik v3.7.1+"; an empty list means unrestricted.
                "crossProviderNamespaces": [NAMESPACE],
                # The cluster-wide default TLSStore may only come from here. Ref: chart values (v3.7.11+).
                "defaultTLSResourcesNamespace": NAMESPACE,
            },
            "kubernetesIngress": {"enabled": True},
        },
        # Ref: chart values core.strictTLSOptions (mitigates GHSA-g55h-rg46-x9c5, v3.7.11+).
        "core": {"strictTLSOptions": True},
        "ports": {
            "web": {
                # Ref: chart values ports.web.http.redirections.entryPoint (to, scheme, permanent).
                "http": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}}},
            },
            "websecure": {"http": {"tls": {"enabled": True}}},
        },
        "service": {
            "annotations": annotations,
            # externalTrafficPolicy stays at Kubernetes' default, Cluster: Cilium L2 announcements
            # are incompatible with Local. Ref: cilium l2-announcements.rst "Limitations".
            "spec": {"type": "LoadBalancer"},
        },
        "log": {"format": "json"},
        "accessLog": {"enabled": t.access_logs, "format": "json"},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
    }
    if t.replicas > 1:
        out["podDisruptionBudget"] = {"enabled": True, "minAvailable": 1}
    return out


def external_dns_annotations(cfg: PlatformConfig) -> dict[str, str]:
    """The target ExternalDNS publishes a route's hosts with: the pinned LB IPAM address of
    Traefik's Service (``values``), where the route's traffic actually arrives."""
    if not cfg.traefik_ip:
        # Config validation refuses this (stacks.config: Traefik needs a pool address).
        raise ValueError("Traefik has no load-balancer IP: ExternalDNS could not publish any route")
    return {key: cfg.traefik_ip for key in EXTERNAL_DNS_TARGET_ANNOTATIONS}


def route_metadata(cfg: PlatformConfig, name: str, namespace: str) -> dict[str, Any]:
    """Metadata of every IngressRoute the program creates (the one place routes get published):
    the platform labels and ExternalDNS's target annotation."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(MANAGED_BY),
        "annotations": external_dns_annotations(cfg),
    }


def forward_auth_middleware() -> dict[str, Any]:
    """The Middleware every admin UI uses (name and namespace are contracts)."""
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": FORWARD_AUTH_MIDDLEWARE, "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {
            "forwardAuth": {
                "address": FORWARD_AUTH_ADDRESS,
                "trustForwardHeader": True,
                "authResponseHeaders": list(AUTHENTIK_RESPONSE_HEADERS),
            }
        },
    }


def forward_auth_route(
    cfg: PlatformConfig, name: str, namespace: str, host: str, service: Mapping[str, Any]
) -> dict[str, Any]:
    """An IngressRoute serving ``service`` on ``host`` (websecure) only to users Authentik lets in.

    Two routes, as in Authentik's Traefik template: the outpost's own path goes to the outpost
    (priority 15), everything else through the forward-auth middleware (priority 10).
    """
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": route_metadata(cfg, name, namespace),
        "spec": {
            "entryPoints": ["websecure"],
            "routes": [
                {
                    "kind": "Rule",
                    "match": f"Host(`{host}`) && PathPrefix(`/outpost.goauthentik.io/`)",
                    "priority": 15,
                    "services": [
                        {"name": FORWARD_AUTH_OUTPOST_SERVICE, "namespace": AUTHENTIK_NAMESPACE, "port": OUTPOST_PORT}
                    ],
                },
                {
                    "kind": "Rule",
                    "match": f"Host(`{host}`)",
                    "priority": 10,
                    "middlewares": [{"name": FORWARD_AUTH_MIDDLEWARE, "namespace": NAMESPACE}],
                    "services": [dict(service)],
                },
            ],
            # Empty: the default TLSStore's certificate (the platform wildcard) serves the host.
            "tls": {},
        },
    }


def dashboard_route(cfg: PlatformConfig) -> dict[str, Any]:
    return forward_auth_route(
        cfg, "traefik-dashboard", NAMESPACE, hostnames(cfg).traefik_dashboard,
        {"name": "api@internal", "kind": "TraefikService"},
    )


def tls_store() -> dict[str, Any]:
    # Ref: traefik.io_tlsstores.yaml; only the store named "default" is used for the default cert.
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TLSStore",
        "metadata": {"name": "default", "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {"defaultCertificate": {"secretName": WILDCARD_TLS_SECRET}},
    }


def wildcard_certificate(cfg: PlatformConfig) -> dict[str, Any]:
    zone = cfg.domain.platform_zone
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "platform-wildcard", "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {
            "secretName": WILDCARD_TLS_SECRET,
            "dnsNames": [zone, f"*.{zone}"],
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": cfg.cert_manager.default_issuer},
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    }


def acme_certificates(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """Every Certificate of this program issued through ACME (DNS-01). Bind9's update-policy
    lets cert-manager write only the challenge names of these (components.dns.platform_dns)."""
    return [wildcard_certificate(cfg)]


def policies() -> list[dict[str, Any]]:
    """The traefik namespace's flows on top of default-deny + DNS."""
    return [
        # The whole point of an ingress: clients from anywhere, on the two HTTP entry points only
        # (the `traefik` port with /ping and the API stays closed; kubelet probes come from the
        # node, which Cilium always lets through).
        netpol.network_policy(
            "allow-web-ingress", NAMESPACE, POD_LABELS,
            ingress=[netpol.ingress_rule([("TCP", WEB_PORT), ("TCP", WEBSECURE_PORT)])],
        ),
        # Backends: pods in the platform's own namespaces (every PlatformNamespace carries the
        # managed-by label); each backend namespace still admits Traefik explicitly on its side.
        netpol.network_policy(
            "allow-backend-egress", NAMESPACE, POD_LABELS,
            egress=[{"to": [{"namespaceSelector": {"matchLabels": dict(MANAGED_BY)}}]}],
        ),
        # Traefik watches IngressRoutes, Services, EndpointSlices, Secrets through the API.
        netpol.allow_kube_apiserver_egress(NAMESPACE, POD_LABELS),
    ]


@dataclass(frozen=True)
class TraefikArgs:
    config: PlatformConfig
    # What the wildcard Certificate waits for: cert-manager's release (CRDs) and the ClusterIssuers.
    certificate_depends_on: Sequence[pulumi.Resource]
    # The management cluster's kubeconfig: Traefik's CRDs are applied with kubectl at deploy time.
    kubeconfig: pulumi.Input[str]
    kube_context: str | None = None
    # What Traefik itself waits for (Cilium).
    depends_on: Sequence[pulumi.Resource] = ()


class Traefik(pulumi.ComponentResource):
    """``crds`` are the deploy-time applies of Traefik's CRDs; ``release`` waits for them, so
    whatever creates Traefik CRs can depend on ``release`` (or the component)."""

    crds: list[command.local.Command]
    release: k8s.helm.v3.Release
    middleware: k8s.apiextensions.CustomResource
    certificate: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: TraefikArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:edge:Traefik", name, None, opts)
        if not args.certificate_depends_on:
            raise ValueError("TraefikArgs.certificate_depends_on must hold cert-manager's release and issuers")
        cfg = args.config
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=NAMESPACE, pod_security="restricted", depends_on=args.depends_on),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        # Policies before the pods they let through.
        allow = netpol.apply(f"{name}-netpol", policies(), provider, parent=self, depends_on=[ns])
        # Cluster-scoped; after Cilium like everything else (the API server answers by then).
        self.crds = [
            release_manifest.install(
                f"{name}-crd-{m.crds[0].split('.', 1)[0]}", m, args.kubeconfig, args.kube_context,
                pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            )
            for m in crd_manifests()
        ]
        self.release = helm_release(
            name, "traefik", ns.name, values(cfg), parent=self, provider=provider,
            depends_on=[ns, *allow, *self.crds], skip_crds=True,
        )
        after_crds = [self.release]
        self.middleware = self._cr(f"{name}-forward-auth", forward_auth_middleware(), provider, after_crds)
        self._cr(f"{name}-tls-store", tls_store(), provider, after_crds)
        self.certificate = self._cr(
            f"{name}-wildcard-certificate", wildcard_certificate(cfg), provider,
            [ns, *args.certificate_depends_on],
        )
        if cfg.traefik.dashboard:
            self._cr(f"{name}-dashboard", dashboard_route(cfg), provider, [*after_crds, self.middleware])
        self.register_outputs({})

    def _cr(self, name: str, obj: Mapping[str, Any], provider: k8s.Provider,
            depends_on: Sequence[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"], spec=obj["spec"],
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(depends_on)),
        )
