"""Vault for a tenant cluster: a Kubernetes auth mount that trusts the tenant's service accounts
and gives them the tenant's policy, nothing else.

* In the tenant (through its provider, ``deleted_with`` the Cluster): ServiceAccount
  ``vault-token-reviewer`` in kube-system bound to ``system:auth-delegator`` (TokenReview), and a
  long-lived token Secret of it (valid as long as the Secret exists; revoked by deleting it).
* In Vault (explicit ``vault.Provider``, after ``vault.ready`` and the tenant's control plane):
  ``AuthBackend`` type kubernetes at ``kubernetes-<tenant>``; its config points at the tenant API
  (server and CA from the CAPI kubeconfig) with the reviewer token (a Pulumi secret); one role,
  ``default``, binding the tenant's ``vaultServiceAccounts``/``vaultNamespaces`` to the tenant
  policy (``VaultConfig.tenant_policy_names[tenant]``) only.
* On the management cluster: Vault's pods may reach this tenant's API (port 6443 of its VM pods);
  the tenant namespace already admits platform namespaces on that port.

Ref: Vault docs "Kubernetes auth method" (configuration with a token reviewer JWT and
kubernetes_ca_cert for a remote cluster, system:auth-delegator), pulumi_vault 7.x
``kubernetes.AuthBackendConfig``/``AuthBackendRole``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_vault as vault

from components.core.common import MANAGED_BY
from components.core.contracts import TENANT_API_PORT, TENANT_NAMESPACE_LABEL
from components.core.k8s_objects import register as k8s_object
from components.core.k8s_objects import service_account_with_cluster_role
from components.tenant.storage import token_secret
from components.secrets.vault import NAMESPACE as VAULT_NAMESPACE
from components.secrets.vault import POD_LABELS as VAULT_POD_LABELS
from stacks.config import Tenant

REVIEWER_SA = "vault-token-reviewer"
REVIEWER_NAMESPACE = "kube-system"
REVIEWER_TOKEN = "vault-token-reviewer-token"
ROLE = "default"
TOKEN_TTL = 3600
TOKEN_MAX_TTL = 24 * 3600


# --------------------------------------------------------------------------------------------
# Pure renderers
# --------------------------------------------------------------------------------------------

def auth_path(tenant: str) -> str:
    return f"kubernetes-{tenant}"


def reviewer_objects() -> list[dict[str, Any]]:
    """The token reviewer identity in the tenant: may create TokenReviews, nothing else."""
    return service_account_with_cluster_role(REVIEWER_SA, REVIEWER_NAMESPACE, "system:auth-delegator", MANAGED_BY)


def role_args(tenant: Tenant, policy: str) -> dict[str, Any]:
    """The one login role of the tenant's mount: its service accounts get its policy only."""
    return {
        "role_name": ROLE,
        "bound_service_account_names": list(tenant.vault_service_accounts),
        "bound_service_account_namespaces": list(tenant.vault_namespaces),
        "token_policies": [policy],
        "token_ttl": TOKEN_TTL,
        "token_max_ttl": TOKEN_MAX_TTL,
    }


def vault_egress_policy(tenant: Tenant) -> dict[str, Any]:
    """Vault -> this tenant's API (TokenReview). Selected by the tenant label: never another tenant."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"allow-egress-to-tenant-{tenant.name}", "namespace": VAULT_NAMESPACE,
                     "labels": dict(MANAGED_BY)},
        "spec": {
            "podSelector": {"matchLabels": dict(VAULT_POD_LABELS)},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {TENANT_NAMESPACE_LABEL: tenant.name}}}],
                "ports": [{"protocol": "TCP", "port": TENANT_API_PORT}],
            }],
        },
    }


def ca_pem(ca_data: Any) -> Any:
    """PEM of the tenant CA from the kubeconfig's base64 ``certificate-authority-data``."""
    from pulumi.output import UNKNOWN

    if not isinstance(ca_data, str) or not ca_data:
        return UNKNOWN
    return base64.b64decode(ca_data).decode()


def reviewer_jwt(data: Any) -> Any:
    """The token controller fills the Secret's ``token`` once the tenant runs; unknown before."""
    from pulumi.output import UNKNOWN

    if not isinstance(data, dict) or not data.get("token"):
        return UNKNOWN
    return base64.b64decode(data["token"]).decode()


# --------------------------------------------------------------------------------------------
# Component
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantClusterSecretsArgs:
    tenant: Tenant
    vault_provider: pulumi.ProviderResource
    vault_ready: pulumi.Resource
    policy_name: str  # the tenant's Vault policy (VaultConfig.tenant_policy_names[tenant])
    policy: pulumi.Resource | None  # that policy's resource, waited for
    tenant_provider: pulumi.ProviderResource
    tenant_server: pulumi.Output[str]
    tenant_ca_data: pulumi.Output[str]
    cluster: pulumi.Resource  # tenant-side objects are deleted with the Cluster CR
    depends_on: Sequence[pulumi.Resource] = ()  # the tenant's control plane


class TenantClusterSecrets(pulumi.ComponentResource):
    backend: vault.AuthBackend
    role: vault.kubernetes.AuthBackendRole
    path: str

    def __init__(self, name: str, args: TenantClusterSecretsArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:tenants:TenantClusterSecrets", name, None, opts)
        tenant = args.tenant
        self.path = auth_path(tenant.name)

        # Tenant side.
        remote = pulumi.ResourceOptions(parent=self, provider=args.tenant_provider, deleted_with=args.cluster,
                                        depends_on=list(args.depends_on))
        sa, binding = (k8s_object(f"{name}-tenant-{o['kind'].lower()}-{o['metadata']['name']}", o, remote)
                       for o in reviewer_objects())
        token_obj = token_secret(REVIEWER_TOKEN, REVIEWER_NAMESPACE, REVIEWER_SA)
        token = k8s.core.v1.Secret(
            f"{name}-tenant-reviewer-token", metadata=token_obj["metadata"], type=token_obj["type"],
            opts=pulumi.ResourceOptions.merge(remote, pulumi.ResourceOptions(depends_on=[sa, binding])),
        )

        # Management side: Vault may call this tenant's API.
        k8s_object(f"{name}-vault-egress", vault_egress_policy(tenant),
                   pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[args.vault_ready]))

        # Vault side.
        in_vault = pulumi.ResourceOptions(parent=self, provider=args.vault_provider,
                                          depends_on=[args.vault_ready, *args.depends_on])
        self.backend = vault.AuthBackend(
            f"{name}-auth", type="kubernetes", path=self.path,
            description=f"Service accounts of tenant cluster {tenant.name}", opts=in_vault,
        )
        config = vault.kubernetes.AuthBackendConfig(
            f"{name}-auth-config",
            backend=self.backend.path,
            kubernetes_host=args.tenant_server,
            kubernetes_ca_cert=pulumi.Output.secret(pulumi.Output.from_input(args.tenant_ca_data).apply(ca_pem)),
            token_reviewer_jwt=pulumi.Output.secret(token.data.apply(reviewer_jwt)),
            # Vault runs on the management cluster: never fall back to its own pod's CA and token.
            disable_local_ca_jwt=True,
            opts=pulumi.ResourceOptions.merge(in_vault, pulumi.ResourceOptions(
                depends_on=[token], additional_secret_outputs=["tokenReviewerJwt"])),
        )
        policy_deps = [args.policy] if args.policy is not None else []
        self.role = vault.kubernetes.AuthBackendRole(
            f"{name}-auth-role", backend=self.backend.path, **role_args(tenant, args.policy_name),
            opts=pulumi.ResourceOptions.merge(in_vault, pulumi.ResourceOptions(depends_on=[config, *policy_deps])),
        )
        self.register_outputs({"path": self.path, "role": ROLE, "policy": args.policy_name})
