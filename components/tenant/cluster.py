"""A tenant ("other cluster"): a Talos Kubernetes cluster of KubeVirt VMs made through Cluster API,
with its storage and its GitOps registration.

Per tenant, on the management cluster: a namespace (Pod Security ``baseline``, a quota from the
tenant's size, default-deny plus the flows the tenant needs), the Cluster API object set, the
kubevirt-csi controller, and its ArgoCD cluster, project and Applications. In the tenant cluster
(through a provider built from the CAPI kubeconfig): CSI node side, ArgoCD's ServiceAccount, RBAC
of the tenant's admin groups.

Why Pod Security ``baseline`` (``privileged`` is reserved to PRIVILEGED_NAMESPACES): KubeVirt
v1.9.0 runs virt-launcher non-root without privileged containers, host namespaces or hostPath
(unless a VM uses hostDisk, which ours do not); its compute container only adds NET_BIND_SERVICE,
which baseline allows. ``restricted`` fails: the pod has no seccomp profile unless the KubeVirt CR
sets one, and the compute container keeps a capability. Ref: kubevirt v1.9.0
pkg/virt-controller/services/{template.go (computePodSecurityContext, newContainerSpecRenderer),
rendercontainer.go (requiredCapabilities), rendervolumes.go (hostDisk only)}; CDI importer and
hotplug pods are restricted-compliant.

Lifecycle:
- preview of a new tenant: the CAPI kubeconfig Secret does not exist; it is read with an ID derived
  from the TalosControlPlane's ID, unknown until that object exists, so the read is skipped and the
  tenant provider's kubeconfig is unknown (typed resources preview fine with it);
- the TalosControlPlane is awaited (``pulumi.com/waitFor``) until its API answers
  (``status.initialized``; ``ready`` needs a Ready node, i.e. the CNI ArgoCD installs afterwards);
- scaling, Talos/Kubernetes upgrades: see components.tenant.capi (new immutable templates, the
  Cluster object is never replaced);
- deletion: namespace, Cluster, KubevirtCluster and TalosControlPlane are protected unless the
  tenant has ``allowDeletion: true``; objects in the tenant cluster are ``deleted_with`` the Cluster,
  and its provider has ``delete_unreachable``, so a vanished cluster never blocks the deletion.

Identity, secrets, DNS and VPN (the tenant wires itself to the platform services it is given):
- components.tenant.identity: Authentik application ``tenant_oidc_slug(name)`` (the issuer and
  client id the tenant API server trusts), open to the tenant's admin groups and the platform
  admins; the admin groups are cluster-admins inside the tenant;
- components.tenant.secrets: Vault Kubernetes auth mount ``kubernetes-<name>`` reviewing tokens
  against the tenant API, one role bound to the tenant's policy only;
- components.tenant.apps: ``api.<name>.<zone>`` (the API Service annotation) and
  ``*.apps.<name>.<zone>`` (a LoadBalancer Service to the tenant's ingress, same address);
- components.tenant.vpn: with ``netbirdRoute``, a NetBird route to the pod and service ranges and
  its routing peer inside the tenant.
Each only adds resources of its own tenant: no shared platform object changes with the tenant list
(except the registration lists named in tests/test_tenant_cluster.py).
``TenantCluster.access`` (contracts.TenantAccess) remains for services that wire themselves.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.sso.authentik import Authentik
from components.core.contracts import (
    TENANT_NAMESPACE_LABEL,
    TenantAccess,
    hostnames,
    tenant_oidc_slug,
)
from components.core.namespace import PlatformNamespace
from components.vpn.netbird import Netbird, PlatformNamespaceArgs
from components.tenant.apps import apps_ingress_policy, apps_service
from components.tenant.capi import (
    ClusterObjects,
    cluster_objects,
    kubeconfig_secret_name,
    machine_delete_timeout_minutes,
    namespace,
)
from components.tenant.images import clone_binding, tenant_upload_ingress
from components.tenant.gitops import TenantGitOps, TenantGitOpsArgs
from components.tenant.identity import TenantClusterIdentity, TenantClusterIdentityArgs
from components.core.k8s_objects import register as k8s_object
from components.tenant.policies import limit_range, network_policies, resource_quota
from components.tenant.storage import CONTROLLER_LABELS, TenantStorage, TenantStorageArgs
from components.tenant.secrets import TenantClusterSecrets, TenantClusterSecretsArgs
from components.tenant.vpn import TenantClusterVpn, TenantClusterVpnArgs
from components.core.timeouts import TENANT_CLUSTER_DELETE_TIMEOUTS, TENANT_CONTROL_PLANE_TIMEOUTS
from components.secrets.vault import Vault
from stacks.config import PlatformConfig, Tenant

# The control plane answers once its first VM cloned its boot disk, booted and bootstrapped etcd.
CONTROL_PLANE_INITIALIZED = "jsonpath={.status.initialized}=true"
# In components/core/timeouts.py, with what must outlive them (the Vault provider token).
CONTROL_PLANE_TIMEOUTS = TENANT_CONTROL_PLANE_TIMEOUTS
CLUSTER_DELETE_TIMEOUTS = TENANT_CLUSTER_DELETE_TIMEOUTS  # CAPI drains and deletes every VM


@dataclass(frozen=True)
class TenantClusterArgs:
    tenant: Tenant
    config: PlatformConfig
    # The Image Factory schematic of the tenants' Talos image (components.clusters.cluster_api): the VM
    # templates wait for it.
    image_schematic: pulumi.Resource
    # The golden boot image (CDI DataSource, components.tenant.images) of the tenant's Talos
    # version, which every VM disk is cloned from (components.clusters.cluster_api.ClusterApi.golden_images).
    boot_image: pulumi.Resource | None = None
    depends_on: Sequence[pulumi.Resource] = ()  # Cluster API providers, KubeVirt/CDI (their CRDs)
    argocd: pulumi.Resource | None = None  # ArgoCD: its CRDs; None leaves the tenant out of GitOps
    # Platform services the tenant wires itself to; None leaves that part out (see the docstring).
    authentik: Authentik | None = None  # its ``identity`` (components.identity.Identity)
    vault: Vault | None = None
    netbird: Netbird | None = None  # a route only for tenants with netbirdRoute


class TenantCluster(pulumi.ComponentResource):
    namespace: str
    cluster: k8s.apiextensions.CustomResource
    control_plane: k8s.apiextensions.CustomResource
    kubeconfig: pulumi.Output[str]  # CAPI admin kubeconfig (Pulumi secret; unknown before the cluster exists)
    provider: k8s.Provider  # the tenant cluster
    access: TenantAccess

    def __init__(self, name: str, args: TenantClusterArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:tenants:TenantCluster", name, None, opts)
        cfg, tenant = args.config, args.tenant
        self._cfg = cfg
        protect = not tenant.allow_deletion
        self.namespace = namespace(cfg, tenant)

        # --- namespace, quota, isolation -------------------------------------------------------
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=self.namespace, pod_security="baseline",
                                  labels={TENANT_NAMESPACE_LABEL: tenant.name}, depends_on=args.depends_on),
            provider,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        local = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns])
        for obj in [resource_quota(cfg, tenant), limit_range(cfg, tenant),
                    *network_policies(cfg, tenant, CONTROLLER_LABELS), apps_ingress_policy(cfg, tenant),
                    tenant_upload_ingress(self.namespace)]:
            k8s_object(f"{name}-{obj['kind'].lower()}-{obj['metadata']['name']}", obj, local)
        # The tenant's VMs may clone the golden boot images (components.tenant.images): a binding
        # in the images namespace, this tenant's own (created with it, deleted with it).
        k8s_object(f"{name}-golden-image-clone", clone_binding(tenant, self.namespace), local)
        # *.apps.<tenant>.<zone>: published by ExternalDNS from this Service (components.tenant.apps).
        k8s_object(f"{name}-apps-service", apps_service(cfg, tenant), local)

        # --- Cluster API -------------------------------------------------------------------------
        objs = cluster_objects(cfg, tenant)
        boot = [args.image_schematic, *([args.boot_image] if args.boot_image is not None else [])]
        self._capi(name, objs, provider, ns, boot, protect)

        # --- the tenant's kubeconfig and provider ------------------------------------------------
        secret_id = self.control_plane.id.apply(lambda _: f"{self.namespace}/{kubeconfig_secret_name(tenant)}")
        capi_kubeconfig = k8s.core.v1.Secret.get(
            f"{name}-capi-kubeconfig", secret_id, opts=pulumi.ResourceOptions(parent=self, provider=provider))
        self.kubeconfig = pulumi.Output.secret(capi_kubeconfig.data.apply(_kubeconfig_from_data))
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            delete_unreachable=True,
            enable_server_side_apply=True,
            # The read above has no dependencies in the engine's graph: make the order explicit.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.control_plane]),
        )
        server = pulumi.Output.secret(self.kubeconfig.apply(lambda k: _cluster_entry(k)["server"]))
        ca_data = pulumi.Output.secret(self.kubeconfig.apply(lambda k: _cluster_entry(k)["certificate-authority-data"]))

        # --- GitOps and storage --------------------------------------------------------------------
        cni_ready: list[pulumi.Resource] = []
        if args.argocd is not None:
            gitops = TenantGitOps(
                f"{name}-gitops",
                TenantGitOpsArgs(config=cfg, tenant=tenant, tenant_provider=self.provider, tenant_server=server,
                                 cluster=self.cluster, depends_on=[args.argocd]),
                provider,
                opts=pulumi.ResourceOptions(parent=self),
            )
            cni_ready.append(gitops.cilium)
        TenantStorage(
            f"{name}-storage",
            TenantStorageArgs(config=cfg, tenant=tenant, tenant_provider=self.provider, tenant_server=server,
                              cluster=self.cluster, depends_on=[ns], cni_ready=cni_ready),
            provider,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # --- identity, secrets, VPN ----------------------------------------------------------------
        up = [self.control_plane]
        identity = args.authentik.identity if args.authentik is not None else None
        self.identity = TenantClusterIdentity(
            f"{name}-identity",
            TenantClusterIdentityArgs(config=cfg, tenant=tenant, identity=identity, tenant_provider=self.provider,
                               cluster=self.cluster, depends_on=up),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.vault is not None:
            TenantClusterSecrets(
                f"{name}-secrets",
                TenantClusterSecretsArgs(
                    tenant=tenant, vault_provider=args.vault.provider, vault_ready=args.vault.ready,
                    policy_name=args.vault.tenant_policy_names[tenant.name],
                    policy=args.vault.config.tenant_policies.get(tenant.name),
                    tenant_provider=self.provider, tenant_server=server, tenant_ca_data=ca_data,
                    cluster=self.cluster, depends_on=up,
                ),
                provider,
                opts=pulumi.ResourceOptions(parent=self),
            )
        if tenant.netbird_route and args.netbird is not None and args.netbird.enabled:
            TenantClusterVpn(
                f"{name}-vpn",
                TenantClusterVpnArgs(config=cfg, tenant=tenant, netbird=args.netbird, tenant_provider=self.provider,
                              cluster=self.cluster, depends_on=up, cni_ready=cni_ready),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.access = TenantAccess(
            tenant=tenant.name, namespace=self.namespace, server=server, ca_data=ca_data,
            provider=self.provider, deleted_with=self.cluster, oidc_slug=tenant_oidc_slug(tenant.name),
            admin_groups=tuple(tenant.admin_groups),
        )
        self.register_outputs({
            "namespace": self.namespace,
            "apiHostname": hostnames(cfg).tenant_api(tenant.name),
            "kubeconfig": self.kubeconfig,
        })

    def _capi(self, name: str, objs: ClusterObjects, provider: k8s.Provider, ns: pulumi.Resource,
              boot: Sequence[pulumi.Resource], protect: bool) -> None:
        """The Cluster (CAPI waits for the objects it references), the infrastructure and templates,
        then the control plane (awaited until its API answers; it cannot initialise before the
        Cluster exists, so the Cluster must not wait for it), then the worker machine sets.

        Deleting the tenant deletes the Cluster object only: CAPI owns every other object of the
        set (owner references) and tears it down in its own order, machines first ("delete the
        Cluster, not its parts", CAPI book). The others are ``deleted_with`` the Cluster; removing a
        single pool from the config still deletes its objects."""
        self.cluster = k8s_object(f"{name}-cluster", objs.cluster, pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=[ns], protect=protect, custom_timeouts=CLUSTER_DELETE_TIMEOUTS))

        def opts(*deps: pulumi.Resource, **kw: Any) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns, *deps],
                                          deleted_with=self.cluster, **kw)

        k8s_object(f"{name}-kubevirt-cluster", objs.kubevirt_cluster, opts(protect=protect))
        cp_template = k8s_object(f"{name}-control-plane-template", objs.control_plane_template, opts(*boot))
        control_plane = dict(objs.control_plane)
        control_plane["metadata"] = {**control_plane["metadata"],
                                     "annotations": {"pulumi.com/waitFor": CONTROL_PLANE_INITIALIZED}}
        self.control_plane = k8s_object(f"{name}-control-plane", control_plane,
                                        opts(self.cluster, cp_template, protect=protect,
                                             custom_timeouts=CONTROL_PLANE_TIMEOUTS))
        for p in objs.pools:
            pool = p.pool.name
            template = k8s_object(f"{name}-{pool}-template", p.machine_template, opts(*boot))
            bootstrap = k8s_object(f"{name}-{pool}-bootstrap", p.config_template, opts())
            # Shrinking a pool or removing it waits for CAPI to drain and delete its machines,
            # each bounded by the deletion timeouts of components.tenant.capi.deletion.
            k8s_object(f"{name}-{pool}-machines", p.machine_deployment, opts(
                self.cluster, template, bootstrap,
                custom_timeouts=pulumi.CustomTimeouts(delete=f"{machine_delete_timeout_minutes(self._cfg)}m")))
            k8s_object(f"{name}-{pool}-health-check", p.health_check, opts(self.cluster))


def _unknown() -> Any:
    from pulumi.output import UNKNOWN

    return UNKNOWN


def _kubeconfig_from_data(data: Any) -> Any:
    """``value`` of the CAPI kubeconfig Secret (base64 in ``data``). Absent data — the read was
    skipped in preview, or the offline engine has no such Secret — leaves it unknown: never an
    empty string, which would send the tenant provider to the ambient kubeconfig."""
    if not isinstance(data, dict) or not data.get("value"):
        return _unknown()
    return base64.b64decode(data["value"]).decode()


def _cluster_entry(kubeconfig: str) -> dict[str, Any]:
    return yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]
