"""Identity of a tenant cluster: its Authentik OIDC application and who is admin inside it.

* Authentik (through the platform's ``components.identity.Identity``): an OAuth2 provider +
  application with slug == client id == ``contracts.tenant_oidc_slug(tenant)``, a public client
  for kubelogin (redirects http://localhost:8000 and :18000). The tenant's kube-apiserver trusts
  exactly that issuer and client id (``components.tenant.talos.apiserver_oidc_args``). Access is
  bound to the tenant's ``adminGroups`` and the platform admin group (Authentik policy bindings:
  with bindings, only users matching one of them may use the application; engine mode "any").
* Inside the tenant (through the tenant's provider, ``deleted_with`` the Cluster): one
  ClusterRoleBinding, the tenant's admin groups -> ``cluster-admin``, with the apiserver's OIDC
  groups prefix (``contracts.oidc_group_subject``). Nothing else: platform admins administer
  tenants through the management cluster and ArgoCD, not as users of the tenant.

Ref: goauthentik docs "Applications > Manage access" (policy/group/user bindings, policy engine
mode any); pulumi_authentik 2025.8.1 PolicyBinding (target = application uuid, group = group pk).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_authentik as authentik  # components.identity applies the SDK shim first

from components.core.common import MANAGED_BY
from components.core.contracts import OidcClient, oidc_group_subject, tenant_oidc_slug
from components.identity import KUBELOGIN_REDIRECTS, Identity, OidcApplicationSpec, RedirectUri, oidc_application
from components.core.k8s_objects import register as k8s_object
from stacks.config import PlatformConfig, Tenant

RBAC = "rbac.authorization.k8s.io"
ADMIN_BINDING = "tenant-admins"


# --------------------------------------------------------------------------------------------
# Pure renderers
# --------------------------------------------------------------------------------------------

def oidc_spec(tenant: Tenant) -> OidcApplicationSpec:
    """The tenant API's application: public client (kubelogin has no secret), slug = client id."""
    return OidcApplicationSpec(
        slug=tenant_oidc_slug(tenant.name),
        name=f"Kubernetes {tenant.name}",
        redirect_uris=tuple(RedirectUri(u) for u in KUBELOGIN_REDIRECTS),
        public=True,
    )


def access_groups(cfg: PlatformConfig, tenant: Tenant) -> list[str]:
    """Authentik groups allowed to sign in to the tenant's application, in binding order."""
    return list(dict.fromkeys([*tenant.admin_groups, cfg.authentik.platform_admin_group]))


def admin_binding(tenant: Tenant) -> dict[str, Any]:
    """The tenant's admin groups are cluster-admins of their own cluster (OIDC subjects)."""
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": ADMIN_BINDING, "labels": dict(MANAGED_BY)},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": oidc_group_subject(g)} for g in tenant.admin_groups],
    }


# --------------------------------------------------------------------------------------------
# Component
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantClusterIdentityArgs:
    config: PlatformConfig
    tenant: Tenant
    identity: Identity | None  # the platform's Authentik configuration; None: no application
    tenant_provider: pulumi.ProviderResource
    cluster: pulumi.Resource  # tenant-side objects are deleted with the Cluster CR
    depends_on: Sequence[pulumi.Resource] = ()  # the tenant's control plane


class TenantClusterIdentity(pulumi.ComponentResource):
    client: OidcClient | None  # what the tenant API server trusts (None without Authentik)
    application: authentik.Application | None

    def __init__(self, name: str, args: TenantClusterIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:tenants:TenantClusterIdentity", name, None, opts)
        cfg, tenant = args.config, args.tenant
        self.client = None
        self.application = None
        if args.identity is not None:
            identity = args.identity
            app = oidc_application(name, identity, oidc_spec(tenant), parent=self)
            self.client, self.application = app.client, app.application
            bind = pulumi.ResourceOptions(parent=self, provider=identity.provider, depends_on=[identity.ready])
            for order, group in enumerate(access_groups(cfg, tenant)):
                authentik.PolicyBinding(
                    f"{name}-access-{group}", target=app.application.uuid, group=identity.group_ids[group],
                    order=order, opts=bind,
                )
        k8s_object(f"{name}-tenant-clusterrolebinding-{ADMIN_BINDING}", admin_binding(tenant),
                   pulumi.ResourceOptions(parent=self, provider=args.tenant_provider, deleted_with=args.cluster,
                                          depends_on=list(args.depends_on)))
        self.register_outputs({"issuer": self.client.issuer_url if self.client else None,
                               "clientId": tenant_oidc_slug(tenant.name)})
