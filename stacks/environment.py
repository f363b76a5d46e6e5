"""Composition of one environment: management cluster -> platform services -> tenants.

Each arrow of the architecture diagram is an explicit dependency here. A child of a component
does not wait for what its component waits for, so every component receives the resources it
must wait for (``depends_on``) and hands them to its first children. A service waits only for
the services it uses; a tenant waits for the platform, never for another tenant.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.gitops.argocd import ArgoCD, ArgoCDArgs
from components.sso.authentik import Authentik, AuthentikArgs
from components.operations.backups import Backups, BackupsArgs, talos_api_access_patch
from components.core.contracts import authentik_issuer_url
from components.edge.cert_manager import CertManager, CertManagerArgs
from components.network.cilium import Cilium, CiliumArgs
from components.clusters.cluster_api import ClusterApi, ClusterApiArgs
from components.sso.cluster_rbac import ClusterRbac, ClusterRbacArgs
from components.host.existing_cluster import ExistingCluster, ExistingClusterArgs
from components.virtualization.local_storage import LocalStorage, LocalStorageArgs
from components.host.management_cluster import ManagementCluster, ManagementClusterArgs
from components.vpn.netbird import Netbird, NetbirdArgs
from components.dns.platform_dns import PlatformDns, PlatformDnsArgs
from components.tenant.cluster import TenantCluster, TenantClusterArgs
from components.edge.traefik import Traefik, TraefikArgs
from components.secrets.vault import Vault, VaultArgs
from components.virtualization.virtualization import Virtualization, VirtualizationArgs
from stacks.config import ExistingCluster as ExistingClusterConfig
from stacks.config import PlatformConfig


@dataclass
class Environment:
    """What the composition built, for stack outputs and tests."""

    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    services: dict[str, pulumi.ComponentResource] = field(default_factory=dict)
    tenants: dict[str, TenantCluster] = field(default_factory=dict)
    talosconfig: pulumi.Output[str] | None = None
    # What the management nodes were last seen running (Talos per node, Kubernetes): a stack output.
    management_versions: pulumi.Output[dict] | None = None


def build_environment(cfg: PlatformConfig, tenants: Collection[str] | None = None) -> Environment:
    """Build the whole environment; ``tenants`` (names) narrows which tenant clusters are built.

    Only tenant clusters and their bindings are narrowed: every platform resource is built from
    the whole config, so it is the same whichever tenants are built (``offline.plan --jobs``
    relies on it and checks it).
    """
    mc = cfg.management_cluster

    # --- management cluster -------------------------------------------------------------------
    talosconfig = None
    management_versions = None
    if mc.provisioner == "ovh-talos":
        cluster = ManagementCluster(
            mc.name,
            ManagementClusterArgs(
                cluster=mc,
                endpoint=cfg.cluster_endpoint,
                # The issuer of Authentik's application for this cluster's API (trailing slash
                # included: Authentik's issuer string, byte for byte).
                oidc_issuer_url=authentik_issuer_url(cfg, mc.name),
                oidc_client_id=mc.name,
                dns_zone=cfg.domain.parent_zone,
                # The etcd backup job gets a Talos client certificate limited to os:etcd:backup.
                control_plane_patches=[talos_api_access_patch()] if cfg.backups else [],
            ),
        )
        kubeconfig = cluster.kubeconfig
        talosconfig = cluster.talosconfig
        management_versions = cluster.upgrades.versions.apply(
            lambda v: {**v, "machineConfigVersion": mc.machine_config_contract}
        )
    else:
        # ``existing`` may be left out of the stack file: its defaults (KUBECONFIG, the current
        # context) are the config model's, not repeated here.
        existing = mc.existing or ExistingClusterConfig()
        cluster = ExistingCluster(
            mc.name,
            ExistingClusterArgs(name=mc.name, kubeconfig_env=existing.kubeconfig_env, context=existing.context),
        )
        kubeconfig = cluster.kubeconfig

    # One provider per cluster. Server-side apply, so field ownership is explicit.
    provider = k8s.Provider(
        mc.name,
        kubeconfig=kubeconfig,
        context=mc.existing.context if mc.existing else None,
        enable_server_side_apply=True,
    )
    env = Environment(kubeconfig=kubeconfig, provider=provider, talosconfig=talosconfig,
                      management_versions=management_versions)

    # --- platform services --------------------------------------------------------------------
    # Nodes stay NotReady until a CNI runs: Cilium comes before any workload.
    cilium = Cilium("cilium", CiliumArgs(config=cfg), provider)
    base = [cilium]
    # Storage before claims: the management cluster has no default StorageClass, and every volume
    # (Bind9, Vault, Authentik's PostgreSQL, CDI scratch, tenant disks) names this one.
    storage: list[pulumi.Resource] = []
    if cfg.deploys_local_storage:
        local_storage = LocalStorage(
            # Its name from when it was a child of Virtualization: the URNs of its resources stay.
            "virtualization-local-storage",
            LocalStorageArgs(storage_class=cfg.management_cluster.storage_class, depends_on=base),
            provider,
            opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=_old_virtualization_urn())]),
        )
        storage = local_storage.ready
        env.services["local_storage"] = local_storage
    cert_manager = CertManager("cert-manager", CertManagerArgs(config=cfg, depends_on=base), provider)
    dns = PlatformDns("dns", PlatformDnsArgs(config=cfg, depends_on=[*base, *storage]), provider)
    # ACME DNS-01 solves against Bind9 with its TSIG key: issuers wait for Bind9.
    issuers = cert_manager.add_issuers(dns.cert_manager_access)
    traefik = Traefik(
        "traefik",
        TraefikArgs(config=cfg, depends_on=base, certificate_depends_on=[cert_manager.release, issuers],
                    kubeconfig=kubeconfig, kube_context=mc.existing.context if mc.existing else None),
        provider,
    )
    # Hubble UI's IngressRoute needs Traefik's CRDs and forward-auth Middleware.
    cilium.expose_hubble_ui([traefik.release, traefik.middleware])
    # ExternalDNS watches Traefik's IngressRoutes: it comes once Traefik's CRDs exist.
    external_dns = dns.add_external_dns(depends_on=[traefik])
    # The bootstrap gates (Authentik's API, Vault's initialisation) reach their services by their
    # public names, which exist only once ExternalDNS runs and publishes the routes.
    published = [external_dns]
    authentik = Authentik(
        "authentik",
        AuthentikArgs(config=cfg, depends_on=[traefik, issuers, *storage], dns_ready=published),
        provider,
    )
    vault = Vault(
        "vault",
        VaultArgs(config=cfg, depends_on=[cert_manager, traefik, *storage], oidc=authentik.vault_oidc,
                  dns_ready=published),
        provider,
    )
    argocd = ArgoCD(
        "argocd",
        ArgoCDArgs(config=cfg, depends_on=[traefik, issuers], oidc=authentik.argocd_oidc),
        provider,
    )
    netbird = Netbird("netbird", NetbirdArgs(config=cfg, depends_on=base), provider)
    virtualization = Virtualization(
        "virtualization",
        VirtualizationArgs(config=cfg, kubeconfig=kubeconfig, depends_on=base, scratch_storage=storage,
                           kube_context=mc.existing.context if mc.existing else None),
        provider,
    )
    cluster_api = ClusterApi(
        "cluster-api", ClusterApiArgs(config=cfg, depends_on=[cert_manager, virtualization]), provider
    )
    env.services.update(
        cilium=cilium, cert_manager=cert_manager, dns=dns, traefik=traefik, authentik=authentik,
        vault=vault, argocd=argocd, netbird=netbird, virtualization=virtualization, cluster_api=cluster_api,
    )

    # --- backups (after the services they read; tenants add theirs below) ----------------------
    backups = None
    if cfg.backups is not None:
        assert dns.backup_access is not None
        backups = Backups("backups", BackupsArgs(
            config=cfg, dns_access=dns.backup_access, authentik_db_password=authentik.db_password,
            depends_on=[cilium, cert_manager], authentik_ready=[authentik.release],
            # The job's own Vault role and the auth method's config, not all of Vault's config
            # (a policy per tenant): adding a tenant must leave the backups alone.
            vault_ready=[vault.config.backup_role, vault.config.kubernetes_config],
            # The talos.dev ServiceAccount CRD is registered by Talos once the cluster runs.
            talos_ready=[cluster] if talosconfig is not None else [],
        ), provider)
        env.services["backups"] = backups

    # --- tenants ("other clusters") -----------------------------------------------------------
    for tenant in cfg.tenants:
        if tenants is not None and tenant.name not in tenants:
            continue
        env.tenants[tenant.name] = TenantCluster(
            tenant.name,
            TenantClusterArgs(
                tenant=tenant,
                config=cfg,
                # Tenant VM disks are claims on the management cluster's StorageClass.
                depends_on=[cluster_api, virtualization, *storage],
                image_schematic=cluster_api.tenant_image_schematic,
                boot_image=cluster_api.golden_images[tenant.talos_version],
                authentik=authentik,
                vault=vault,
                argocd=argocd,
                netbird=netbird,
            ),
            provider,
        )
        if backups is not None:
            t = env.tenants[tenant.name]
            backups.add_tenant(tenant, t.namespace, depends_on=[t])
    # OIDC groups -> RBAC on the management cluster; a tenant's bindings wait for its namespace.
    env.services["cluster_rbac"] = ClusterRbac(
        "cluster-rbac",
        ClusterRbacArgs(config=cfg, depends_on=base,
                        tenant_dependencies={name: [t] for name, t in env.tenants.items()}),
        provider,
    )
    return env


def _old_virtualization_urn() -> str:
    """URN of the Virtualization component, LocalStorage's parent before it became a service."""
    return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::weebo:virtualization:Virtualization::virtualization"
