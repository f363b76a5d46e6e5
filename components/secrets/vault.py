"""Vault: the platform's secrets store. HA with integrated storage (raft), TLS from the internal
CA, served by Traefik on ``vault.<zone>``, initialised and unsealed by Pulumi, protected.

Bootstrap order (``pulumi up`` on a brand-new environment):

1. namespace (protected) and network policies;
2. ``Certificate`` from ``contracts.INTERNAL_CA_ISSUER`` (SANs: the services, ``*.vault-internal``
   for raft ``retry_join``, 127.0.0.1); Pulumi waits until it is Ready (``pulumi.com/waitFor``);
3. Helm release (protected): the pods start sealed. Their readiness probe reports sealed and
   uninitialised servers as ready (``sealedcode=204&uninitcode=204``) so that Helm's wait ends;
   clients never rely on readiness: the public route targets ``vault-active``, which only selects
   the unsealed leader (kubernetes service registration labels);
4. one Service per pod + IngressRoutes (public host, and per-pod routes selected by the
   ``X-Weebo-Vault-Pod`` header, limited to the operator ranges);
5. ``VaultInit`` then ``VaultUnseal`` (components/vault_bootstrap.py): init (root token and
   unseal keys kept only as Pulumi secrets, in the state as soon as ``sys/init`` answers), then
   unseal and wait for the active node - the design and its threat model are documented there;
6. ``VaultConfig`` (components/secrets/vault_config.py) with a ``pulumi_vault`` provider built from the
   root token: KV v2, audit device, OIDC (waits for Authentik's ``vault`` application through
   the client secret it receives), Kubernetes auth, per-tenant policies.

Protection: the namespace and the Helm release are children of an ``IrreplaceableState``
(protected: no ``pulumi destroy``/replacement without ``pulumi state unprotect``), deleting the
namespace would delete the raft volumes; ``VaultInit`` and the KV mount are protected and
retained on delete; the StatefulSet's PVC retention policy is ``Retain`` for deletion and
scale-down, and ``helm uninstall`` never deletes volumeClaimTemplate PVCs. The StorageClass's
reclaim policy is the remaining layer (outside this component).

TLS rotation: Vault reads its certificate at start (or SIGHUP). The certificate lasts a year
and is renewed 30 days before expiry: restart the Vault pods within that window; the next
``pulumi up`` unseals them (``VaultUnseal`` checks the seal status in every diff).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_vault

from components.core import network_policy as netpol
from components.sso.authentik import verify_public_tls
from components.core.common import MANAGED_BY, helm_release, irreplaceable
from components.core.contracts import INTERNAL_CA_ISSUER, TRAEFIK_NAMESPACE, OidcClient, hostnames
from components.core.k8s_objects import register
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.edge.traefik import route_metadata
from components.core.protected import IrreplaceableState
from components.vault_bootstrap import (
    POD_HEADER,
    VaultAdminToken,
    VaultAdminTokenArgs,
    VaultInit,
    VaultInitArgs,
    VaultUnseal,
    VaultUnsealArgs,
)
from components.secrets.vault_config import VaultConfig, VaultConfigArgs, pulumi_admin_policy
from stacks import facts
from stacks.config import PlatformConfig

NAMESPACE = facts.VAULT_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
RELEASE = "vault"  # chart fullname: services vault, vault-active, vault-internal; pods vault-N
TLS_SECRET = "vault-server-tls"
TLS_DIR = f"/vault/userconfig/{TLS_SECRET}"
SERVERS_TRANSPORT = "vault-internal-ca"
TLS_SERVER_NAME = f"{RELEASE}.{NAMESPACE}.svc"
POD_LABELS = {"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": RELEASE, "component": "server"}
TRAEFIK_WEBSECURE_PORT = 8443  # traefik chart ports.websecure.port (container port)

# Keys set here that the chart reads but its values.yaml only shows as comments.
# server.readinessProbe.path: templates/server-statefulset.yaml ("if .Values.server.readinessProbe.path").
COMMENTED_KEYS = ("server.readinessProbe.path",)


def pod_names(cfg: PlatformConfig) -> list[str]:
    return [f"{RELEASE}-{i}" for i in range(cfg.vault.replicas)]


def tls_dns_names() -> list[str]:
    names: list[str] = []
    for svc in (RELEASE, f"{RELEASE}-active", f"{RELEASE}-standby", f"{RELEASE}-internal"):
        names += [svc, f"{svc}.{NAMESPACE}", f"{svc}.{NAMESPACE}.svc", f"{svc}.{NAMESPACE}.svc.cluster.local"]
    internal = f"{RELEASE}-internal"
    # Raft peers reach each other as <pod>.vault-internal (retry_join leader_api_addr).
    names += [f"*.{internal}", f"*.{internal}.{NAMESPACE}", f"*.{internal}.{NAMESPACE}.svc",
              f"*.{internal}.{NAMESPACE}.svc.cluster.local"]
    return names


def certificate(cfg: PlatformConfig) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {
            "name": TLS_SECRET,
            "namespace": NAMESPACE,
            "labels": dict(MANAGED_BY),
            # Pulumi waits for the secret before the release mounts it.
            "annotations": {"pulumi.com/waitFor": "condition=Ready"},
        },
        "spec": {
            "secretName": TLS_SECRET,
            "issuerRef": {"name": INTERNAL_CA_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "commonName": TLS_SERVER_NAME,
            "dnsNames": tls_dns_names(),
            "ipAddresses": ["127.0.0.1"],  # VAULT_ADDR inside the pod
            "duration": "8760h",
            "renewBefore": "720h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "client auth", "digital signature"],
        },
    }


def raft_config(cfg: PlatformConfig) -> str:
    """Server configuration (HCL). Ref: Vault docs "Integrated storage" (retry_join,
    leader_ca_cert_file), "Kubernetes service registration", vault-helm server.ha.raft.config."""
    joins = "".join(
        "  retry_join {\n"
        f'    leader_api_addr = "https://{pod}.{RELEASE}-internal:8200"\n'
        f'    leader_ca_cert_file = "{TLS_DIR}/ca.crt"\n'
        "  }\n"
        for pod in pod_names(cfg)
    )
    return (
        "ui = true\n"
        # Integrated storage: mlock is not used (and swap is off on Kubernetes nodes).
        "disable_mlock = true\n"
        'listener "tcp" {\n'
        '  address = "[::]:8200"\n'
        '  cluster_address = "[::]:8201"\n'
        f'  tls_cert_file = "{TLS_DIR}/tls.crt"\n'
        f'  tls_key_file = "{TLS_DIR}/tls.key"\n'
        '  tls_min_version = "tls12"\n'
        "}\n"
        'storage "raft" {\n'
        '  path = "/vault/data"\n'
        f"{joins}"
        "}\n"
        'service_registration "kubernetes" {}\n'
    )


def values(cfg: PlatformConfig) -> dict[str, Any]:
    """Helm values: no secret (the TLS key is mounted from its Secret)."""
    return {
        "global": {"enabled": True, "tlsDisable": False},
        "injector": {"enabled": False},
        "server": {
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            # Sealed/uninitialised servers are "ready" (see module docstring, step 3).
            "readinessProbe": {"enabled": True, "path": "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204"},
            "extraEnvironmentVars": {"VAULT_CACERT": f"{TLS_DIR}/ca.crt"},
            "volumes": [{"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o440}}],
            "volumeMounts": [{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}],
            # Soft anti-affinity: one-node environments still schedule every raft voter.
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": dict(POD_LABELS)},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }]
                }
            },
            # The class is always named: the management cluster has no default StorageClass.
            # Ref: hashicorp/vault-helm values.yaml server.dataStorage.storageClass (null = default).
            "dataStorage": {"enabled": True, "size": cfg.vault.storage_size, "storageClass": cfg.storage_class()},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "auditStorage": {"enabled": False},  # the audit device writes to stdout
            "authDelegator": {"enabled": True},  # Kubernetes auth: TokenReview with Vault's SA
            "serviceAccount": {"serviceDiscovery": {"enabled": True}},
            "statefulSet": {
                "securityContext": {
                    "pod": {
                        "runAsNonRoot": True, "runAsUser": 100, "runAsGroup": 1000, "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    # No capability needed: mlock is disabled and the chart sets SKIP_SETCAP.
                    "container": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            },
            "ha": {
                "enabled": True,
                "replicas": cfg.vault.replicas,
                # A name in the certificate (the default is the pod IP). VAULT_K8S_POD_NAME is
                # declared before VAULT_API_ADDR in the StatefulSet, so it expands.
                "apiAddr": f"https://$(VAULT_K8S_POD_NAME).{RELEASE}-internal:8200",
                "raft": {"enabled": True, "setNodeId": True, "config": raft_config(cfg)},
                "disruptionBudget": {"enabled": True},
            },
        },
        "ui": {"enabled": False},  # the UI is served by the listener, through the IngressRoute
    }


def pod_service_name(pod: str) -> str:
    return f"{pod}-direct"


def pod_service(cfg: PlatformConfig, pod: str) -> dict[str, Any]:
    """A Service selecting one pod, sealed or not (bootstrap and unseal address pods one by one)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": pod_service_name(pod), "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {
            "type": "ClusterIP",
            "selector": {**POD_LABELS, "statefulset.kubernetes.io/pod-name": pod},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "https", "port": 8200, "targetPort": 8200}],
        },
    }


def servers_transport() -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "ServersTransport",
        "metadata": {"name": SERVERS_TRANSPORT, "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {"serverName": TLS_SERVER_NAME, "rootCAs": [{"secret": TLS_SECRET}]},
    }


def operator_allowlist(cfg: PlatformConfig) -> dict[str, Any] | None:
    ranges = cfg.management_cluster.operator_source_ranges
    if not ranges:
        return None
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "vault-operators-only", "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {"ipAllowList": {"sourceRange": list(ranges)}},
    }


def _backend(service: str) -> dict[str, Any]:
    return {"name": service, "port": 8200, "scheme": "https", "serversTransport": SERVERS_TRANSPORT}


def ingress_routes(cfg: PlatformConfig) -> list[dict[str, Any]]:
    host = hostnames(cfg).vault
    allow = operator_allowlist(cfg)
    pod_routes = []
    for pod in pod_names(cfg):
        route: dict[str, Any] = {
            "kind": "Rule",
            "match": f"Host(`{host}`) && Header(`{POD_HEADER}`, `{pod}`)",
            "priority": 1000,
            "services": [_backend(pod_service_name(pod))],
        }
        if allow:
            route["middlewares"] = [{"name": allow["metadata"]["name"]}]
        pod_routes.append(route)
    return [
        {
            "apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute", "metadata": route_metadata(cfg, "vault", NAMESPACE),
            "spec": {
                "entryPoints": ["websecure"],
                "routes": [{"kind": "Rule", "match": f"Host(`{host}`)", "services": [_backend(f"{RELEASE}-active")]}],
                "tls": {},
            },
        },
        {
            "apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
            "metadata": route_metadata(cfg, "vault-pods", NAMESPACE),
            "spec": {"entryPoints": ["websecure"], "routes": pod_routes, "tls": {}},
        },
    ]


@dataclass(frozen=True)
class VaultArgs:
    config: PlatformConfig
    oidc: OidcClient
    depends_on: Sequence[pulumi.Resource] = ()
    # What publishes vault.<zone> (the ExternalDNS release): initialisation goes through that name.
    dns_ready: Sequence[pulumi.Resource] = ()


class Vault(pulumi.ComponentResource):
    """For the tenant component: ``provider`` (pulumi_vault), ``ready`` (depend on it),
    ``kv_mount_path``, ``tenant_policy_names`` (tenant -> policy), ``config`` (VaultConfig)."""

    release: k8s.helm.v3.Release
    address: str
    init: VaultInit
    unseal: VaultUnseal
    ready: pulumi.Resource
    config: VaultConfig
    provider: pulumi_vault.Provider
    kv_mount_path: str
    tenant_policy_names: dict[str, str]

    def __init__(self, name: str, args: VaultArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:secrets:Vault", name, None, opts)
        cfg = args.config
        self.address = f"https://{hostnames(cfg).vault}"
        state = IrreplaceableState(f"{name}-state", parent=self)
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on, allow_from_namespaces=[TRAEFIK_NAMESPACE]),
            provider, opts=pulumi.ResourceOptions(parent=state),
        )
        in_ns = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns])
        policies = [
            register(f"{name}-allow-same-namespace", netpol.same_namespace(NAMESPACE), in_ns),
            # OIDC discovery and JWKS of https://auth.<zone> go through Traefik.
            register(
                f"{name}-allow-egress-traefik",
                netpol.egress_to_namespace(
                    NAMESPACE, TRAEFIK_NAMESPACE, netpol.tcp(TRAEFIK_WEBSECURE_PORT),
                    name=f"allow-egress-{TRAEFIK_NAMESPACE}",
                ),
                in_ns,
            ),
            # Service registration (pod labels) and Kubernetes auth (TokenReview).
            register(
                f"{name}-allow-kube-apiserver",
                netpol.allow_kube_apiserver_egress(NAMESPACE, POD_LABELS, description=None),
                in_ns,
            ),
        ]
        # The issuer and Traefik's CRDs come with args.depends_on (cert-manager, traefik).
        crd_opts = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns, *args.depends_on])
        cert = _custom(f"{name}-tls", certificate(cfg), crd_opts)
        self.release = helm_release(
            name, "vault", ns.name, values(cfg), parent=state, provider=provider,
            depends_on=[ns, cert, *policies],
            # Removing Vault from the program must leave it running: its raft data is every secret.
            retain_on_delete=True,
        )
        routing: list[pulumi.Resource] = [
            k8s.core.v1.Service(f"{name}-{pod}", metadata=svc["metadata"], spec=svc["spec"], opts=in_ns)
            for pod in pod_names(cfg)
            for svc in [pod_service(cfg, pod)]
        ]
        routing.append(_custom(f"{name}-servers-transport", servers_transport(), crd_opts))
        allow = operator_allowlist(cfg)
        if allow:
            routing.append(_custom(f"{name}-operators-only", allow, crd_opts))
        routing += [_custom(f"{name}-route-{r['metadata']['name']}", r, crd_opts) for r in ingress_routes(cfg)]

        verify_tls = verify_public_tls(cfg)
        self.init = VaultInit(
            f"{name}-init",
            VaultInitArgs(
                address=self.address,
                pods=pod_names(cfg),
                key_shares=cfg.vault.key_shares,
                key_threshold=cfg.vault.key_threshold,
                verify_tls=verify_tls,
                timeout_seconds=cfg.vault.bootstrap_timeout_seconds,
            ),
            opts=irreplaceable(parent=self, depends_on=[self.release, *routing, *args.dns_ready]),
        )
        # Every run: unseal what is sealed. Its own resource, so that sys/init's keys are in the
        # state before anything can fail, and so that it can run alone (README, sealed Vault).
        self.unseal = VaultUnseal(
            f"{name}-unseal",
            VaultUnsealArgs(
                address=self.address,
                pods=pod_names(cfg),
                unseal_keys=self.init.unseal_keys,
                key_threshold=self.init.key_threshold,
                verify_tls=verify_tls,
                timeout_seconds=cfg.vault.bootstrap_timeout_seconds,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.init, self.release, *routing]),
        )
        self.ready = self.unseal
        # The program's standing credential: minted once with the root token, which it revokes
        # (components/vault_bootstrap.py). A root token regenerated from the unseal keys for a
        # recovery replaces it (docs/operations/vault-root-token.md).
        recovery = cfg.vault.recovery_root_token
        self.admin_token = VaultAdminToken(
            f"{name}-admin-token",
            VaultAdminTokenArgs(
                address=self.address,
                root_token=recovery.output() if recovery is not None else self.init.root_token,
                policy=pulumi_admin_policy(), verify_tls=verify_tls, recovery=recovery is not None,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.init, self.unseal]),
        )
        self.config = VaultConfig(
            f"{name}-config",
            VaultConfigArgs(config=cfg, address=self.address, token=self.admin_token.token, oidc=args.oidc,
                            depends_on=[self.unseal, self.admin_token], verify_tls=verify_tls),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.provider = self.config.provider
        self.kv_mount_path = self.config.kv_mount_path
        self.tenant_policy_names = self.config.tenant_policy_names
        self.register_outputs({"address": self.address, "kvMountPath": self.kv_mount_path})


def _custom(name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )
