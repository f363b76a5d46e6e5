"""What lives inside Vault, configured with ``pulumi_vault`` through an explicit provider whose
token is ``components.vault_bootstrap.VaultAdminToken``'s: a periodic token of the
``pulumi-admin`` policy (``pulumi_admin_policy``), minted once with the root token of
``VaultInit``, which is then revoked (docs/operations/vault-root-token.md).

* KV v2 at ``vault.kvMountPath`` (protected: deleting the mount deletes every secret).
* An audit device writing to the server's stdout (collected with the pod logs; a full disk can
  never block Vault, which refuses requests when no audit device can record them).
* OIDC auth (``auth/oidc``) through Authentik's ``vault`` application; Authentik groups map
  to Vault external groups (``groups`` claim -> group aliases) carrying policies:
  the platform admin group -> ``platform-admin``; each tenant's ``adminGroups`` ->
  ``tenant-<name>``.
* Kubernetes auth (``auth/kubernetes``) for the management cluster: Vault runs inside it and
  reviews tokens with its own service account (chart ``server.authDelegator``).
* One policy per tenant, least privilege: read/write under ``<kv>/data/tenants/<name>/`` and
  the matching metadata/delete/undelete/destroy paths, nothing else. The tenant component
  (issue 7) adds its own auth mount and binds ``tenant_policy_name(name)`` to it.

Nothing here runs during the first preview: the provider's token is unknown until
``VaultAdminToken`` exists, so every resource previews as "create".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_vault as vault

from components.core.contracts import OIDC_GROUPS_CLAIM, OidcClient
from components.vault_bootstrap import ADMIN_POLICY as PULUMI_ADMIN_POLICY
from components.identity import group_names, oidc_application_specs
from components.core.timeouts import vault_token_ttl_seconds
from stacks.config import PlatformConfig

OIDC_PATH = "oidc"
OIDC_ROLE = "default"
KUBERNETES_PATH = "kubernetes"
PLATFORM_ADMIN_POLICY = "platform-admin"
TENANTS_PREFIX = "tenants"

# KV v2 sub-paths a tenant may use below its prefix, with the capabilities each one needs.
# Ref: Vault docs "KV secrets engine - version 2" > ACL rules (data/, metadata/, delete/,
# undelete/, destroy/).
_TENANT_KV_RULES = (
    ("data", ("create", "read", "update", "patch", "delete")),
    ("metadata", ("read", "list", "delete")),
    ("delete", ("update",)),
    ("undelete", ("update",)),
    ("destroy", ("update",)),
)


def tenant_policy_name(tenant: str) -> str:
    return f"tenant-{tenant}"


def tenant_kv_prefix(tenant: str) -> str:
    """Where a tenant's secrets live inside the KV mount (no leading/trailing slash)."""
    return f"{TENANTS_PREFIX}/{tenant}"


def tenant_policy(tenant: str, kv_mount: str = "kv") -> str:
    """HCL of a tenant's policy: its own KV subtree only.

    Every path ends in ``<tenant>/*``: Vault's trailing ``*`` is a prefix match, so the slash
    keeps ``alpha`` from matching ``alpha-2``.
    """
    lines = [f'# Tenant "{tenant}": its own KV v2 subtree, nothing else.']
    for sub, caps in _TENANT_KV_RULES:
        quoted = ", ".join(f'"{c}"' for c in caps)
        lines.append(f'path "{kv_mount}/{sub}/{tenant_kv_prefix(tenant)}/*" {{')
        lines.append(f"  capabilities = [{quoted}]")
        lines.append("}")
    return "\n".join(lines) + "\n"


def platform_admin_policy() -> str:
    """The platform operators administer Vault (everything but the root token)."""
    return (
        "# Platform operators: full administration.\n"
        'path "*" {\n'
        '  capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"]\n'
        "}\n"
    )


# What the program's pulumi_vault resources do, path by path (the policy of its standing token,
# components.vault_bootstrap.VaultAdminToken). No secret data (kv/*), no sys/raft, sys/seal,
# sys/rekey, sys/generate-root, no token creation beyond the provider's own child token.
# Ref: hashicorp/terraform-provider-vault v5.10.1 - vault_mount (sys/mounts/<path>, tune under
# sys/mounts/<path>/tune), vault_auth_backend / vault_jwt_auth_backend (sys/auth/<path>, tune under
# sys/mounts/auth/<path>/tune, auth/<path>/config), *_auth_backend_role (auth/<path>/role/<name>),
# vault_policy (sys/policies/acl/<name>), vault_audit (sys/audit/<path>, sudo), vault_identity_group
# and _group_alias (identity/group*, identity/lookup/group); internal/provider/meta.go
# (createChildToken: auth/token/create; token lookup-self).
_PULUMI_ADMIN_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sys/mounts", ("read",)),
    ("sys/mounts/*", ("create", "read", "update", "delete", "sudo")),  # the KV mount, auth tunes
    ("sys/auth", ("read",)),
    ("sys/auth/*", ("create", "read", "update", "delete", "sudo")),  # oidc, kubernetes, kubernetes-<tenant>
    ("sys/policies/acl", ("list",)),
    ("sys/policies/acl/*", ("create", "read", "update", "delete")),
    ("auth/+/config", ("create", "read", "update", "delete")),
    ("auth/+/role/*", ("create", "read", "update", "delete", "list")),
    ("identity/group", ("create", "update")),
    ("identity/group/*", ("create", "read", "update", "delete", "list")),
    ("identity/group-alias", ("create", "update")),
    ("identity/group-alias/*", ("create", "read", "update", "delete", "list")),
    ("identity/lookup/group", ("update",)),
    ("sys/audit", ("read", "sudo")),
    ("sys/audit/*", ("create", "read", "update", "delete", "sudo")),
    # The provider's one child token per run (skip_child_token false), and its own lifecycle.
    ("auth/token/create", ("create", "update")),
    ("auth/token/lookup-self", ("read",)),
    ("auth/token/renew-self", ("update",)),
    ("auth/token/revoke-self", ("update",)),
)


def pulumi_admin_policy() -> str:
    """HCL of the program's own Vault policy: configuration only, never secret data. It can still
    write policies and roles (that is its job), so it is as trusted as the stack state itself."""
    lines = ["# The Pulumi program's standing token: configuration paths only."]
    for path, caps in _PULUMI_ADMIN_RULES:
        quoted = ", ".join(f'"{c}"' for c in caps)
        lines += [f'path "{path}" {{', f"  capabilities = [{quoted}]", "}"]
    return "\n".join(lines) + "\n"


def group_policies(cfg: PlatformConfig) -> dict[str, list[str]]:
    """Authentik group name -> Vault policies of its external group."""
    out: dict[str, list[str]] = {g: [] for g in group_names(cfg)}
    out[cfg.authentik.platform_admin_group].append(PLATFORM_ADMIN_POLICY)
    for tenant in cfg.tenants:
        for g in tenant.admin_groups:
            # Platform admins already hold everything: listing tenant policies on their group would
            # make every added tenant change a shared platform resource.
            if g != cfg.authentik.platform_admin_group:
                out.setdefault(g, []).append(tenant_policy_name(tenant.name))
    return {g: sorted(set(p)) for g, p in out.items()}


# --- a reader for the HCL rendered above (tests check what the policy grants) ---------------

_RULE = re.compile(r'path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}')


def parse_policy(hcl: str) -> dict[str, set[str]]:
    """Path -> capabilities. Raises ValueError on anything else than comments and path rules."""
    body = "\n".join(line for line in hcl.splitlines() if not line.strip().startswith("#"))
    rules: dict[str, set[str]] = {}
    pos = 0
    for m in _RULE.finditer(body):
        if body[pos:m.start()].strip():
            raise ValueError(f"unexpected policy text: {body[pos:m.start()].strip()[:80]!r}")
        caps = {c.strip().strip('"') for c in m.group(2).split(",") if c.strip()}
        rules.setdefault(m.group(1), set()).update(caps)
        pos = m.end()
    if body[pos:].strip():
        raise ValueError(f"unexpected policy text: {body[pos:].strip()[:80]!r}")
    return rules


def _matches(pattern: str, path: str) -> bool:
    # Ref: Vault docs "Policies": '*' only at the end = prefix match; '+' = one path segment.
    prefix = pattern.endswith("*")
    regex = "".join("[^/]+" if part == "+" else re.escape(part)
                    for part in re.split(r"(\+)", pattern.rstrip("*")))
    return re.fullmatch(regex + (".*" if prefix else ""), path) is not None


def policy_allows(rules: dict[str, set[str]], path: str, capability: str) -> bool:
    return any(capability in caps and "deny" not in caps for pattern, caps in rules.items() if _matches(pattern, path))


# --- the component ----------------------------------------------------------------------------

@dataclass(frozen=True)
class VaultConfigArgs:
    config: PlatformConfig
    address: str  # public URL of Vault
    token: pulumi.Output[str]  # VaultAdminToken.token (secret), never the root token
    oidc: OidcClient  # Authentik's "vault" application
    depends_on: Sequence[pulumi.Resource] = ()  # VaultUnseal: Vault unsealed with an active node
    verify_tls: bool = True


class VaultConfig(pulumi.ComponentResource):
    """Typed attributes for the tenant component: ``provider``, ``kv_mount_path``,
    ``tenant_policies``/``tenant_policy_names`` (by tenant name), ``kubernetes_auth_path``."""

    provider: vault.Provider
    kv_mount: vault.Mount
    kv_mount_path: str
    audit: vault.Audit
    oidc_backend: vault.jwt.AuthBackend
    oidc_role: vault.jwt.AuthBackendRole
    kubernetes_backend: vault.AuthBackend
    kubernetes_auth_path: str
    policies: dict[str, vault.Policy]
    tenant_policies: dict[str, vault.Policy]
    tenant_policy_names: dict[str, str]
    groups: dict[str, vault.identity.Group]

    def __init__(self, name: str, args: VaultConfigArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:secrets:VaultConfig", name, None, opts)
        cfg = args.config
        self.provider = vault.Provider(
            f"{name}-api",
            address=args.address,
            token=pulumi.Output.secret(args.token),
            skip_tls_verify=not args.verify_tls,
            # The admin token only mints one child token per run; it must outlive the run
            # (tenants' control planes included), see components/core/timeouts.py.
            skip_child_token=False,
            max_lease_ttl_seconds=vault_token_ttl_seconds(),
            # Every pulumi_vault resource uses this provider: none is diffed before Vault is
            # unsealed in this run (the provider waits for VaultUnseal), so a `pulumi up
            # --skip-preview` of a sealed Vault unseals it first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=list(args.depends_on))

        self.kv_mount_path = cfg.vault.kv_mount_path
        self.kv_mount = vault.Mount(
            f"{name}-kv",
            path=self.kv_mount_path,
            type="kv",
            options={"version": "2"},
            description="Platform and tenant secrets (KV v2)",
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=True, retain_on_delete=True)),
        )
        # Ref: Vault docs "File audit device": file_path "stdout" writes to standard output.
        self.audit = vault.Audit(
            f"{name}-audit", type="file", path="stdout", options={"file_path": "stdout"}, opts=child
        )

        self.policies = {
            PLATFORM_ADMIN_POLICY: vault.Policy(f"{name}-policy-{PLATFORM_ADMIN_POLICY}",
                                                name=PLATFORM_ADMIN_POLICY, policy=platform_admin_policy(), opts=child),
            # Written first by VaultAdminToken (with the root token); a change is applied from here.
            PULUMI_ADMIN_POLICY: vault.Policy(f"{name}-policy-{PULUMI_ADMIN_POLICY}",
                                              name=PULUMI_ADMIN_POLICY, policy=pulumi_admin_policy(), opts=child),
        }
        self.tenant_policies = {}
        self.tenant_policy_names = {}
        for tenant in cfg.tenants:
            policy_name = tenant_policy_name(tenant.name)
            self.tenant_policy_names[tenant.name] = policy_name
            self.tenant_policies[tenant.name] = self.policies[policy_name] = vault.Policy(
                f"{name}-policy-{policy_name}", name=policy_name,
                policy=tenant_policy(tenant.name, self.kv_mount_path), opts=child,
            )

        self._oidc(name, cfg, args.oidc, child)
        self.kubernetes_auth_path = KUBERNETES_PATH
        self.kubernetes_backend = vault.AuthBackend(
            f"{name}-kubernetes", type="kubernetes", path=KUBERNETES_PATH,
            description="Service accounts of the management cluster", opts=child,
        )
        # Vault runs in the cluster: its own service account token and CA review the tokens.
        self.kubernetes_config = vault.kubernetes.AuthBackendConfig(
            f"{name}-kubernetes-config", backend=self.kubernetes_backend.path,
            kubernetes_host="https://kubernetes.default.svc", opts=child,
        )
        if cfg.backups is not None:
            self._backup_role(name, child)
        self.register_outputs({"kvMountPath": self.kv_mount_path, "tenantPolicies": self.tenant_policy_names})

    def _backup_role(self, name: str, child: pulumi.ResourceOptions) -> None:
        """The raft-snapshot CronJob (components/operations/backups.py) logs in with its ServiceAccount and
        may read sys/storage/raft/snapshot only; short-lived, no default policy."""
        from components.operations import backups

        policy = vault.Policy(f"{name}-policy-{backups.VAULT_POLICY}", name=backups.VAULT_POLICY,
                              policy=backups.vault_policy(), opts=child)
        self.policies[backups.VAULT_POLICY] = policy
        self.backup_role = vault.kubernetes.AuthBackendRole(
            f"{name}-kubernetes-role-{backups.VAULT_ROLE}", backend=self.kubernetes_backend.path,
            role_name=backups.VAULT_ROLE, bound_service_account_names=[backups.VAULT_JOB],
            bound_service_account_namespaces=[backups.NAMESPACE], token_policies=[policy.name],
            token_no_default_policy=True, token_ttl=600, token_max_ttl=900, opts=child,
        )

    def _oidc(self, name: str, cfg: PlatformConfig, oidc: OidcClient, child: pulumi.ResourceOptions) -> None:
        if oidc.client_secret is None:
            raise ValueError("Vault's OIDC application must be a confidential client")
        self.oidc_backend = vault.jwt.AuthBackend(
            f"{name}-oidc",
            path=OIDC_PATH,
            type="oidc",
            description="Authentik SSO",
            # Authentik's issuer, trailing slash included: Vault compares it with the discovery
            # document byte for byte.
            oidc_discovery_url=oidc.issuer_url,
            bound_issuer=oidc.issuer_url,
            oidc_client_id=oidc.client_id,
            oidc_client_secret=oidc.client_secret,
            default_role=OIDC_ROLE,
            tune=vault.jwt.AuthBackendTuneArgs(listing_visibility="unauth", default_lease_ttl="1h", max_lease_ttl="8h"),
            opts=child,
        )
        spec = oidc_application_specs(cfg)["vault"]
        self.oidc_role = vault.jwt.AuthBackendRole(
            f"{name}-oidc-role",
            backend=self.oidc_backend.path,
            role_name=OIDC_ROLE,
            role_type="oidc",
            user_claim="sub",
            groups_claim=OIDC_GROUPS_CLAIM,
            oidc_scopes=["openid", "profile", "email"],
            bound_audiences=[oidc.client_id],
            allowed_redirect_uris=[r.url for r in spec.redirect_uris],
            token_policies=["default"],
            token_ttl=3600,
            token_max_ttl=8 * 3600,
            opts=child,
        )
        self.groups = {}
        for group, policies in group_policies(cfg).items():
            g = vault.identity.Group(
                f"{name}-group-{group}", name=group, type="external", policies=policies,
                metadata={"source": "authentik"}, opts=child,
            )
            vault.identity.GroupAlias(
                f"{name}-group-{group}-alias", name=group, mount_accessor=self.oidc_backend.accessor,
                canonical_id=g.id, opts=child,
            )
            self.groups[group] = g
