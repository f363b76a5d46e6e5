"""The program's standing Vault credential is not the root token (issue 17 item 4): the graph,
the policy, and the dynamic provider's logic against a fake Vault (tokens, revocation, renewal)."""

from __future__ import annotations

from typing import Any

import pytest

from components.secrets import vault_config as vc
from components.core.bootstrap_http import BootstrapError
from components.vault_bootstrap import ADMIN_POLICY, RECOVERY_RUNBOOK, _VaultAdminTokenProvider
from offline.invokes import SECRET_MARKER as MARKER
from offline.mocks import contains_secret
from tests.helpers.identity_support import deployed_plan, fake_http, preview_plan

PERIOD = 30 * 24 * 3600


# --- graph ------------------------------------------------------------------------------------

def test_the_vault_provider_uses_the_admin_token_not_the_root_token():
    mon = preview_plan().monitor
    api, admin, init = mon.named("vault-config-api"), mon.named("vault-admin-token"), mon.named("vault-init")
    assert api.property_dependencies["token"] == [admin.urn]
    assert init.urn in admin.property_dependencies["root_token"]
    assert mon.depends_on(admin, mon.named("vault-unseal"))
    assert admin.inputs["policy"] == vc.pulumi_admin_policy() and admin.inputs["period_seconds"] == PERIOD
    for r in mon.registrations.values():
        if r.type.startswith("vault:"):
            assert mon.depends_on(r, admin), r.name
    deployed = deployed_plan().monitor
    # After a (mock) deployment the values are known (offline/invokes.py): the provider gets the
    # admin token; the root token reaches only the admin token resource.
    root = f"{MARKER}-vault-init-root-token"
    assert deployed.named("vault-config-api").input("token") == f"{MARKER}-vault-admin-token-token"
    assert deployed.named("vault-admin-token").input("root_token") == root
    holders = [r.name for r in deployed.registrations.values() if root in repr(r.inputs)]
    assert holders == ["vault-admin-token"]
    assert contains_secret(deployed.named("vault-admin-token").inputs["root_token"])


def test_the_admin_policy_is_managed_by_the_program_after_the_first_write():
    mon = preview_plan().monitor
    policy = mon.named(f"vault-config-policy-{ADMIN_POLICY}")
    assert policy.input("name") == ADMIN_POLICY and policy.input("policy") == vc.pulumi_admin_policy()
    assert mon.depends_on(policy, mon.named("vault-admin-token"))


def test_a_recovery_root_token_from_config_replaces_the_admin_token_input():
    from tests.helpers.factories import base_raw, plan

    raw = base_raw(vault={"recoveryRootToken": "hvs.recovery"})
    mon = plan(raw, secret_keys=frozenset({"vault"})).monitor
    admin = mon.named("vault-admin-token")
    assert mon.named("vault-init").urn not in admin.property_dependencies.get("root_token", [])
    assert admin.inputs["recovery"] is True
    assert contains_secret(admin.inputs["root_token"])


# --- policy -----------------------------------------------------------------------------------

def test_admin_policy_covers_the_program_and_nothing_of_the_data():
    rules = vc.parse_policy(vc.pulumi_admin_policy())
    allowed = [
        ("sys/mounts/kv", "create"), ("sys/auth/oidc", "sudo"), ("sys/auth/kubernetes-alpha", "create"),
        ("sys/mounts/auth/oidc/tune", "update"), ("auth/oidc/config", "update"),
        ("auth/kubernetes-alpha/role/default", "create"), ("auth/oidc/role/default", "update"),
        ("sys/policies/acl/tenant-alpha", "update"), ("identity/group/id/abc", "update"),
        ("identity/group-alias", "update"), ("sys/audit/stdout", "sudo"), ("auth/token/create", "update"),
        ("auth/token/renew-self", "update"),
    ]
    for path, cap in allowed:
        assert vc.policy_allows(rules, path, cap), (path, cap)
    denied = [
        ("kv/data/tenants/alpha/x", "read"), ("kv/data/x", "create"), ("sys/storage/raft/snapshot", "read"),
        ("sys/generate-root/attempt", "update"), ("sys/rekey/init", "update"), ("sys/seal", "update"),
        ("auth/token/create-orphan", "update"), ("auth/token/create/role", "update"),
        ("auth/token/revoke", "update"), ("auth/oidc/login", "update"),
    ]
    for path, cap in denied:
        assert not vc.policy_allows(rules, path, cap), (path, cap)


# --- the dynamic provider against a fake Vault -------------------------------------------------

class FakeTokenVault:
    def __init__(self, root: str = "root-token", revoke_status: int = 204, ttl: int = PERIOD):
        self.valid = {root: "root"}
        self.root = root
        self.revoke_status = revoke_status
        self.ttl = ttl
        self.calls: list[tuple[str, str, str]] = []  # (method, path, which token)
        self.policies: dict[str, str] = {}
        self.created: list[dict[str, Any]] = []

    def __call__(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        token = next((v for k, v in headers.items() if k.lower() == "x-vault-token"), "")
        self.calls.append((method, path, self.valid.get(token, "invalid")))
        if token not in self.valid:
            return 403, {"errors": ["permission denied"]}
        if path.startswith("/v1/sys/policies/acl/") and method == "PUT":
            self.policies[path.rsplit("/", 1)[1]] = body["policy"]
            return 204, None
        if path == "/v1/auth/token/create-orphan" and method == "POST":
            self.created.append(body)
            self.valid["admin-token"] = "admin"
            return 200, {"auth": {"client_token": "admin-token", "accessor": "acc-1"}}
        if path == "/v1/auth/token/revoke-self":
            if self.revoke_status >= 300:
                return self.revoke_status, {"errors": ["boom"]}
            del self.valid[token]
            return 204, None
        if path == "/v1/auth/token/lookup-self":
            return 200, {"data": {"ttl": self.ttl, "policies": [ADMIN_POLICY]}}
        if path == "/v1/auth/token/renew-self":
            self.ttl = PERIOD
            return 200, {"auth": {"client_token": token}}
        return 404, None


def _props(url: str, **kw: Any) -> dict[str, Any]:
    return {"address": url, "verify_tls": True, "root_token": "root-token", "policy_name": ADMIN_POLICY,
            "policy": vc.pulumi_admin_policy(), "period_seconds": PERIOD, "token": None, "accessor": None, **kw}


def test_create_mints_a_periodic_orphan_admin_token_and_then_revokes_the_root_token():
    fake = FakeTokenVault()
    with fake_http(fake) as url:
        outs = _VaultAdminTokenProvider().create(_props(url)).outs
    assert outs["token"] == "admin-token" and outs["accessor"] == "acc-1"
    assert fake.policies == {ADMIN_POLICY: vc.pulumi_admin_policy()}
    assert fake.created == [{"policies": [ADMIN_POLICY], "renewable": True,
                             "period": f"{PERIOD}s", "display_name": ADMIN_POLICY}]
    paths = [p for _, p, _ in fake.calls]
    # The revocation comes last, after the admin token exists, and with the root token.
    assert paths.index("/v1/auth/token/revoke-self") > paths.index("/v1/auth/token/create-orphan")
    assert fake.calls[-1] == ("POST", "/v1/auth/token/revoke-self", "root")
    assert "root-token" not in fake.valid and "admin-token" in fake.valid


def test_later_runs_never_use_the_root_token_and_renew_only_when_due():
    fake = FakeTokenVault()
    provider = _VaultAdminTokenProvider()
    with fake_http(fake) as url:
        olds = provider.create(_props(url)).outs
        fake.calls.clear()
        assert not provider.diff("acc-1", olds, _props(url)).changes  # fresh: nothing to do
        fake.ttl = PERIOD // 3
        assert provider.diff("acc-1", olds, _props(url)).changes  # below half the period
        new = provider.update("acc-1", olds, _props(url)).outs
    assert new["token"] == "admin-token" and fake.ttl == PERIOD
    assert {who for _, _, who in fake.calls} == {"admin"}  # the (revoked) root token is never sent again
    assert ("POST", "/v1/auth/token/renew-self", "admin") in fake.calls


def test_a_failed_revocation_fails_the_create_so_nothing_half_done_is_recorded():
    fake = FakeTokenVault(revoke_status=500)
    with fake_http(fake) as url, pytest.raises(BootstrapError, match="revoking the root token failed"):
        _VaultAdminTokenProvider().create(_props(url))
    assert "root-token" in fake.valid  # still usable: the next run mints again


def test_a_root_token_that_no_longer_works_points_to_the_runbook():
    fake = FakeTokenVault(root="other")
    with fake_http(fake) as url, pytest.raises(BootstrapError, match=RECOVERY_RUNBOOK):
        _VaultAdminTokenProvider().create(_props(url))
    assert not fake.created


def test_an_expired_admin_token_fails_the_update_with_the_recovery_procedure():
    fake = FakeTokenVault()
    with fake_http(fake) as url:
        olds = {**_props(url), "token": "expired", "accessor": "acc-0"}
        assert _VaultAdminTokenProvider().diff("acc-0", olds, _props(url)).changes  # 403: renew is due
        with pytest.raises(BootstrapError, match=RECOVERY_RUNBOOK):
            _VaultAdminTokenProvider().update("acc-0", olds, _props(url))


def test_a_recovery_root_token_replaces_the_admin_token_without_calling_vault():
    fake = FakeTokenVault()
    with fake_http(fake) as url:
        olds = {**_props(url), "token": "admin-token", "recovery": False}
        diff = _VaultAdminTokenProvider().diff("acc-1", olds, _props(url, root_token="recovered", recovery=True))
        assert diff.replaces == ["root_token"] and not diff.delete_before_replace
        # The recovery key removed again: back to the revoked init token, an update (renew) only.
        after = {**_props(url, root_token="recovered", recovery=True), "token": "admin-token"}
        fake.valid["admin-token"] = "admin"
        diff = _VaultAdminTokenProvider().diff("acc-1", after, _props(url, recovery=False))
        assert diff.changes and not diff.replaces
    assert {who for _, _, who in fake.calls} <= {"admin"}


def test_deleting_revokes_the_old_admin_token():
    fake = FakeTokenVault()
    with fake_http(fake) as url:
        olds = _VaultAdminTokenProvider().create(_props(url)).outs
        _VaultAdminTokenProvider().delete("acc-1", olds)
    assert "admin-token" not in fake.valid
