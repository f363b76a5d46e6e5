"""Credential rotation (issue 17 item 4): config, triggers, and the blast radius of each rotation.

The blast radius is measured with the plan's own diff (``offline.plan.diff_plans``) between the
plan of a config and the same config with one ``rotation`` counter raised. Plans are run as after
a deployment (generated values known, ``offline.invokes`` gives a regenerated credential a new
value) and compared with secrets revealed, in memory only: plan files show ``[secret]``, which
would hide exactly the change under test. A replaced resource has unknown outputs in a real
preview, so whatever takes one of its outputs (``propertyDependencies``) or names it in
``replace_with`` is affected too - the closure below is how ``pulumi up`` propagates it.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.core import rotation
from pulumi.runtime import rpc
from stacks.config import ConfigError, parse_config
from offline.mocks import is_unknown
from offline.plan import diff_plans, resource_record
from tests.helpers.factories import base_raw, plan, tenant

PROJECT = "0123456789abcdef0123456789abcdef"


def raw(**rot: Any) -> dict[str, Any]:
    return base_raw(backups={"cloudProjectId": PROJECT},
                    tenants=[tenant("alpha", 0, netbirdRoute=True), tenant("beta", 1, netbirdRoute=True)],
                    **({"rotation": rot} if rot else {}))


def _reveal(value: Any) -> Any:
    if is_unknown(value) or value == rpc.UNKNOWN:
        return "[unknown]"
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _reveal(value.get("value"))
        return {str(k): _reveal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_reveal(v) for v in value]
    return value


def _document(result) -> dict[str, Any]:
    records = []
    for reg in result.registrations:
        rec = resource_record(reg)
        rec["inputs"] = _reveal(reg.inputs)
        rec["replaceWith"] = list(reg.replace_with)
        records.append(rec)
    return {"resources": records}


def _replaces(rec: dict[str, Any], paths: list[str]) -> bool:
    """Whether a change of these input paths replaces the resource (not an update in place)."""
    if rec["type"].startswith("random:"):
        return any(p.startswith("inputs.keepers") for p in paths)
    if rec["type"].startswith("kubernetes:") and not rec["type"].startswith("kubernetes:helm"):
        return "inputs.metadata.name" in paths
    return any(p.startswith(f"inputs.{field}") for field in rec.get("replaceOnChanges") or [] for p in paths)


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return _document(plan(raw(), preview=False))


def blast_radius(base: dict[str, Any], **rot: Any) -> tuple[set[str], set[str]]:
    """(added or changed, replaced) resource names after raising the given counters."""
    new = _document(plan(raw(**rot), preview=False))
    diff = diff_plans(base, new)
    by_urn = {r["urn"]: r for r in new["resources"]}
    assert not diff["removed"], diff["removed"]
    replaced = {u for u, paths in diff["changed"].items() if _replaces(by_urn[u], paths)} | set(diff["added"])
    affected = set(diff["changed"]) | set(diff["added"])
    grown = True
    while grown:
        grown = False
        for urn, rec in by_urn.items():
            if urn in affected:
                continue
            deps = {d for ds in (rec["propertyDependencies"] or {}).values() for d in ds}
            if set(rec["replaceWith"]) & replaced:
                affected.add(urn)
                replaced.add(urn)
                grown = True
            elif deps & replaced:
                affected.add(urn)
                grown = True
    name = {u: by_urn[u]["name"] for u in by_urn}
    return {name[u] for u in affected}, {name[u] for u in replaced}


BIND9 = {"dns-bind9-keys", "dns-bind9-statefulset"}


def test_rotating_the_external_dns_tsig_key_reaches_bind9_and_external_dns_only(base):
    affected, replaced = blast_radius(base, tsigExternalDns=1)
    assert replaced == {"dns-tsig-external-dns"}
    # ExternalDNS and named read the key at start-up: their pod templates carry its checksum.
    assert affected == {"dns-tsig-external-dns", *BIND9, "dns-external-dns-tsig", "dns-external-dns"}


def test_rotating_the_cert_manager_tsig_key_reaches_bind9_and_cert_managers_secret_only(base):
    affected, replaced = blast_radius(base, tsigCertManager=1)
    assert replaced == {"dns-tsig-cert-manager"}
    assert affected == {"dns-tsig-cert-manager", *BIND9, "cert-manager-issuers-tsig"}


def test_rotating_the_backup_transfer_key_reaches_bind9_and_the_zone_backup_only(base):
    affected, replaced = blast_radius(base, tsigBackupTransfer=1)
    assert replaced == {"dns-tsig-backup-transfer"}
    assert affected == {"dns-tsig-backup-transfer", *BIND9, "backups-dns-tsig"}


def test_rotating_argocds_client_secret_reaches_authentik_and_argocd_only(base):
    affected, replaced = blast_radius(base, argocdClientSecret=1)
    assert replaced == {"authentik-config-argocd-client-secret"}
    # The grant types are re-asserted when the provider is written (their fingerprint has the secret);
    # argocd-server rolls (checksum annotation).
    assert affected == {"authentik-config-argocd-client-secret", "authentik-config-argocd-oidc",
                        "authentik-config-argocd-grant-types", "argocd-oidc", "argocd"}


def test_rotating_vaults_client_secret_reaches_authentik_and_vaults_oidc_mount_only(base):
    affected, replaced = blast_radius(base, vaultClientSecret=1)
    assert replaced == {"authentik-config-vault-client-secret"}
    assert affected == {"authentik-config-vault-client-secret", "authentik-config-vault-oidc",
                        "authentik-config-vault-grant-types", "vault-config-oidc"}


def test_rotating_the_management_setup_key_reaches_its_routing_peers_secret_only(base):
    affected, replaced = blast_radius(base, netbirdSetupKey=1)
    assert replaced == {"netbird-setup-key"}
    assert affected == {"netbird-setup-key", "netbird-setup-key-secret"}


def test_rotating_a_tenants_setup_key_reaches_that_tenant_only(base):
    affected, replaced = blast_radius(base, tenants={"alpha": {"netbirdSetupKey": 2}})
    assert replaced == {"netbird-tenant-alpha-setup-key"}
    assert affected == {"netbird-tenant-alpha-setup-key", "alpha-vpn-tenant-setup-key"}


def test_rotating_a_tenants_argocd_token_makes_a_new_token_secret_for_that_tenant_only(base):
    affected, replaced = blast_radius(base, tenants={"beta": {"argocdToken": 1}})
    assert replaced == {"beta-gitops-tenant-manager-token"}
    assert affected == {"beta-gitops-tenant-manager-token", "beta-gitops-cluster"}


def test_rotating_the_backup_key_adds_a_key_and_switches_every_job(base):
    affected, replaced = blast_radius(base, backupEncryptionKey=1)
    jobs = {r["name"] for r in base["resources"] if r["type"] == "kubernetes:batch/v1:CronJob"}
    # Nothing replaced: the old key stays (protected) for the objects written with it.
    assert replaced == {"backups-encryption-key-g1"}
    # The lifecycle gains the rules of the new prefix k1/ (k0/ keeps its own).
    assert affected == {"backups-encryption-key-g1", "backups-s3", "backups-lifecycle", *jobs}


def test_rotating_the_backup_credentials_replaces_both_keys_and_the_writers_secret(base):
    affected, replaced = blast_radius(base, backupCredentials=1)
    assert replaced == {"backups-credentials-generation", "backups-writer-credentials", "backups-reader-credentials"}
    assert affected == replaced | {"backups-s3"}


def test_lifecycle_keeps_expiring_objects_of_older_keys():
    from components.operations import backups
    from tests.helpers.factories import config
    rules = {r["id"]: r["filter"]["prefix"] for r in backups.lifecycle_rules(config(raw(backupEncryptionKey=1)))
             if "filter" in r}
    assert rules["expire-vault"] == "k0/vault/" and rules["expire-vault-g1"] == "k1/vault/"


def test_no_rotation_is_no_change(base):
    assert blast_radius(base, tenants={"alpha": {}}) == (set(), set())


# --------------------------------------------------------------------------------------------
# Config and triggers
# --------------------------------------------------------------------------------------------

def _problems(r: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as e:
        parse_config(r, frozenset(), stack="test")
    return {p.path: f"{p.problem} / {p.hint}" for p in e.value.problems}


def test_rotation_config_refuses_unknown_names_and_negative_generations():
    problems = _problems(raw(tsigExternalDNS=1, vaultClientSecret=-1, tenants={"beta": {"argoToken": 1}}))
    assert "did you mean 'tsigExternalDns'" in problems["rotation.tsigExternalDNS"]
    assert "greater than or equal to 0" in problems["rotation.vaultClientSecret"]
    assert "did you mean 'argocdToken'" in problems["rotation.tenants.beta.argoToken"]


def test_rotation_config_refuses_counters_of_tenants_that_do_not_exist():
    problems = _problems(raw(tenants={"alpah": {"argocdToken": 1}}))
    assert "no tenant is named 'alpah'" in problems["rotation.tenants.alpah"]
    assert "did you mean 'alpha'" in problems["rotation.tenants.alpah"]


def test_generation_zero_keeps_the_names_and_later_ones_suffix_them():
    assert rotation.suffixed("argocd-manager-token", 0) == "argocd-manager-token"
    assert rotation.suffixed("argocd-manager-token", 3) == "argocd-manager-token-g3"
    assert rotation.keepers(2) == {"generation": "2"}


def test_rotated_resources_are_created_before_the_old_ones_are_deleted():
    # The rotated plans the blast-radius tests above made (shared, not planned again).
    mon = plan(raw(netbirdSetupKey=1), preview=False).monitor
    key = mon.named("netbird-setup-key")
    assert key.inputs["name"] == "weebo4cp-routing-peers-g1" and key.replace_on_changes == ["name"]
    token = plan(raw(tenants={"beta": {"argocdToken": 1}}), preview=False).monitor.named("beta-gitops-tenant-manager-token")
    assert token.inputs["metadata"]["name"] == "argocd-manager-token-g1"
    tsig = plan(raw(tsigExternalDns=1), preview=False).monitor.named("dns-tsig-external-dns")
    for reg in (key, token, tsig):
        assert not reg.delete_before_replace
