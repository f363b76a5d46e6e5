"""Backups (issue 17): config, least privilege of every job, encryption round trip, runbooks.

What could go wrong for real and is checked here:
- a backup credential that can read, list or delete (S3), read more than the snapshot (Vault),
  read other Secrets (Kubernetes) or call more than EtcdSnapshot (Talos);
- a job whose network policy lets it reach anything but its own source and the S3 endpoint;
- objects that the restore side cannot decrypt or find (flags, remotes, paths drifting apart);
- runbooks whose commands are not the ones the jobs' objects need.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.operations import backups as b
from components.dns import bind9
from components.dns import platform_dns
from components.secrets.vault_config import parse_policy, policy_allows
from stacks.config import ConfigError, parse_config
from stacks.loader import read_stack
from offline.mocks import contains_secret
from offline.plan import write_plan
from stacks.loader import StackFile
from tests.helpers.factories import base_plan, base_raw, config, plan, planned, tenant
from tests.helpers.known_secrets import MARKER, plan_with_known_secrets
from tests.helpers.schemas import validate_custom_resource, validate_talos_patch

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "0123456789abcdef0123456789abcdef"
CRONJOB = "kubernetes:batch/v1:CronJob"


def backup_raw(**backups):
    return base_raw(backups={"cloudProjectId": PROJECT, **backups},
                    tenants=[tenant("alpha", 0), tenant("beta", 1)])


@pytest.fixture(scope="module")
def cfg():
    return config(backup_raw())


@pytest.fixture(scope="module")
def result():
    return plan(backup_raw())


def _problems(raw):
    with pytest.raises(ConfigError) as e:
        parse_config(raw, frozenset(), stack="test")
    return {p.path: p.problem for p in e.value.problems}


def _manifests(result, type_):
    return {r.name: r for r in result.monitor.of_type(type_)}


def _pod(cronjob_reg):
    return cronjob_reg.input("spec")["jobTemplate"]["spec"]["template"]["spec"]


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------

def test_backups_are_off_without_the_section_and_defaults_fill_every_item(cfg):
    assert config(base_raw()).backups is None
    assert not [r for r in base_plan().registrations if "weebo:backups" in r.urn]
    items = cfg.backups.items
    assert cfg.backups.region == "gra" and b.bucket_name(cfg) == "weebo4cp-backups"
    assert {i.name for i in b.all_items(cfg)} == {
        "management-etcd", "vault", "authentik", "dns", "tenant-etcd-alpha", "tenant-etcd-beta"}
    assert items.vault.retention_days >= 1


def test_an_item_may_set_only_its_retention_and_keeps_its_default_schedule():
    c = config(backup_raw(items={"vault": {"retentionDays": 90}}))
    assert c.backups.items.vault.retention_days == 90
    assert c.backups.items.vault.schedule == config(backup_raw()).backups.items.vault.schedule


@pytest.mark.parametrize("schedule", ["30 2 * * *", "*/15 * * * *", "0 0-23/6 * * 1,3,5", "@daily", "0 3 1 1-12 0"])
def test_valid_cron_schedules_are_accepted(schedule):
    c = config(backup_raw(items={"vault": {"schedule": schedule, "retentionDays": 7}}))
    assert c.backups.items.vault.schedule == schedule


@pytest.mark.parametrize("schedule,why", [
    ("30 2 * *", "5 fields"), ("60 2 * * *", "outside 0-59"), ("0 24 * * *", "outside 0-23"),
    ("0 0 0 * *", "outside 1-31"), ("0 0 * 13 *", "outside 1-12"), ("0 5-1 * * *", "backwards"),
    ("*/0 * * * *", "/0"), ("0 0 * * MON", "is not"), ("@sometimes", "5 fields"),
])
def test_bad_cron_schedules_are_refused_with_their_key_path(schedule, why):
    problems = _problems(backup_raw(items={"dns": {"schedule": schedule, "retentionDays": 7}}))
    assert why in problems["backups.items.dns.schedule"]


def test_region_must_be_an_ovh_object_storage_region_and_retention_at_least_one_day():
    problems = _problems(backup_raw(region="eu-west-1", items={"vault": {"schedule": "@daily", "retentionDays": 0}}))
    assert "not an OVHcloud Object Storage region" in problems["backups.region"]
    assert "backups.items.vault.retentionDays" in problems
    assert config(backup_raw(region="eu-west-par")).backups.region == "eu-west-par"
    assert "backups.cloudProjectId" in _problems(base_raw(backups={"region": "gra"}))


# --------------------------------------------------------------------------------------------
# OVH: bucket, users, S3 policies
# --------------------------------------------------------------------------------------------

def test_writer_can_only_upload_into_this_bucket_and_the_reader_only_read_it(cfg):
    (w,) = b.writer_policy("bkt")["Statement"]
    assert w["Effect"] == "Allow" and set(w["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload"}
    assert w["Resource"] == ["arn:aws:s3:::bkt/*"]
    (r,) = b.reader_policy("bkt")["Statement"]
    assert set(r["Action"]) == {"s3:GetObject", "s3:ListBucket"}
    assert set(r["Resource"]) == {"arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"}
    for stmt in (w, r):
        assert not any("Delete" in a or "*" in a or "Policy" in a or "Acl" in a for a in stmt["Action"])


def test_each_user_gets_its_own_policy_on_exactly_the_bucket_and_secret_keys(result, cfg):
    mon = result.monitor
    bucket = mon.named("backups-bucket")
    assert bucket.protect and bucket.retain_on_delete
    assert bucket.inputs["versioning"] == {"status": "enabled"} and bucket.inputs["hideObjects"] is True
    assert bucket.inputs["serviceName"] == PROJECT and bucket.inputs["regionName"] == "GRA"
    for role, policy in (("writer", b.writer_policy), ("reader", b.reader_policy)):
        user = mon.named(f"backups-{role}")
        assert user.inputs["roleNames"] == ["objectstore_operator"]
        pol = mon.named(f"backups-{role}-policy")
        assert json.loads(pol.inputs["policy"]) == policy(b.bucket_name(cfg))
        assert user.urn in pol.property_dependencies["userId"]
        cred = mon.named(f"backups-{role}-credentials")
        assert user.urn in cred.property_dependencies["userId"]
        assert set(cred.additional_secret_outputs) == {"accessKeyId", "secretAccessKey"}
    # Only the writer's keys reach the cluster.
    s3 = mon.named("backups-s3")
    writer = mon.named("backups-writer-credentials").urn
    assert writer in s3.property_dependencies["stringData"]
    assert mon.named("backups-reader-credentials").urn not in s3.property_dependencies["stringData"]


def test_retention_is_a_lifecycle_rule_per_item_prefix(cfg, result):
    cfg2 = config(backup_raw(items={"vault": {"schedule": "@daily", "retentionDays": 90}}))
    rules = {r["id"]: r for r in b.lifecycle_rules(cfg2)}
    assert rules["expire-vault"]["filter"] == {"prefix": "k0/vault/"}
    assert rules["expire-vault"]["expiration"] == {"days": 90}
    assert rules["expire-vault"]["noncurrent_version_expiration"] == {"noncurrent_days": 90}
    # Every tenant's snapshots: one rule on their common prefix, with the tenant item's retention.
    assert rules["expire-tenant-etcd"]["filter"] == {"prefix": "k0/tenant-etcd/"}
    assert rules["expire-tenant-etcd"]["expiration"]["days"] == cfg2.backups.items.tenant_etcd.retention_days
    assert all(i.prefix.startswith("tenant-etcd/") for i in b.all_items(cfg2) if i.tenant)
    assert set(rules) == {"abort-incomplete-uploads", "expire-tenant-etcd",
                          *(f"expire-{i.name}" for i in b.platform_items(cfg2))}
    lifecycle = result.monitor.named("backups-lifecycle")
    assert len(lifecycle.inputs["rules"]) == len(b.platform_items(cfg)) + 2


def test_key_and_credentials_rotate_by_generation_keepers():
    base = plan(backup_raw()).monitor
    rotated = plan({**backup_raw(), "rotation": {"backupEncryptionKey": 1, "backupCredentials": 2}}).monitor
    assert base.named("backups-encryption-key").inputs["keepers"] == {"generation": "0"}
    assert not [r for r in base.registrations.values() if r.name == "backups-encryption-key-g1"]
    # A rotation adds the next key and keeps the old one (protected: objects under k0/ need it).
    assert rotated.named("backups-encryption-key").inputs["keepers"] == {"generation": "0"}
    assert rotated.named("backups-encryption-key-g1").inputs["keepers"] == {"generation": "1"}
    assert rotated.named("backups-encryption-key-g1").protect
    assert rotated.named("backups-credentials-generation").inputs["keepers"] == {"generation": "2"}
    gen = rotated.named("backups-credentials-generation").urn
    cred = rotated.named("backups-writer-credentials")
    assert cred.replace_with == [gen]  # a new generation replaces the keys (created before deleted)
    assert not cred.delete_before_replace
    env = {e["name"]: e.get("value") for e in _pod(rotated.named("backups-vault"))["containers"][0]["env"]}
    assert env["RCLONE_CONFIG_BACKUP_REMOTE"].endswith("/k1")
    assert base.named("backups-encryption-key").protect
    s3 = rotated.named("backups-s3")
    assert rotated.named("backups-encryption-key-g1").urn in s3.property_dependencies["stringData"]
    assert rotated.named("backups-encryption-key").urn not in s3.property_dependencies["stringData"]


# --------------------------------------------------------------------------------------------
# Kubernetes: CronJobs, RBAC, Talos, Vault
# --------------------------------------------------------------------------------------------

def test_each_item_has_its_cronjob_with_the_configured_schedule(result, cfg):
    jobs = _manifests(result, CRONJOB)
    assert set(jobs) == {f"backups-{i.name}" for i in b.all_items(cfg)}
    for item in b.all_items(cfg):
        spec = jobs[f"backups-{item.name}"].input("spec")
        assert spec["schedule"] == item.schedule.schedule and spec["timeZone"] == "Etc/UTC"
        assert spec["concurrencyPolicy"] == "Forbid"


def test_every_backup_pod_runs_restricted_with_its_own_service_account(result):
    jobs = _manifests(result, CRONJOB)
    token_jobs = set()
    for name, job in jobs.items():
        pod = _pod(job)
        assert pod["serviceAccountName"] == job.input("metadata")["name"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["initContainers"] + pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"] == {"drop": ["ALL"]}
            for e in c.get("env", []):
                assert "value" in e or e["valueFrom"]["secretKeyRef"]["name"] in (
                    b.S3_SECRET, b.AUTHENTIK_DB_SECRET, b.DNS_TSIG_SECRET)
        if pod["automountServiceAccountToken"]:
            token_jobs.add(name)
    # Only the jobs that need the Kubernetes API (Vault login, tenant Secret) carry a token.
    assert token_jobs == {"backups-vault", "backups-tenant-etcd-alpha", "backups-tenant-etcd-beta"}
    sas = [r for r in result.monitor.of_type("kubernetes:core/v1:ServiceAccount") if r.name.startswith("backups-")]
    assert all(sa.inputs["automountServiceAccountToken"] is False for sa in sas)


def test_the_only_kubernetes_permission_is_get_on_each_tenants_talosconfig(result, cfg):
    mon = result.monitor
    bindings = [r for t in ("RoleBinding", "ClusterRoleBinding")
                for r in mon.of_type(f"kubernetes:rbac.authorization.k8s.io/v1:{t}")
                if any(s.get("namespace") == b.NAMESPACE for s in r.inputs.get("subjects", []))]
    assert {r.name for r in bindings} == {"backups-tenant-etcd-alpha-rolebinding", "backups-tenant-etcd-beta-rolebinding"}
    for t in ("alpha", "beta"):
        role = mon.named(f"backups-tenant-etcd-{t}-role")
        assert role.inputs["metadata"]["namespace"] == f"tenant-{t}"
        assert role.inputs["rules"] == [{"apiGroups": [""], "resources": ["secrets"],
                                         "resourceNames": [f"{t}-talosconfig"], "verbs": ["get"]}]
        binding = mon.named(f"backups-tenant-etcd-{t}-rolebinding")
        assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": f"tenant-etcd-{t}", "namespace": "backups"}]
        assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"]
        # The Role waits for the tenant (its namespace), the CronJob for its Role.
        assert mon.depends_on(role, mon.named(t))
        assert mon.depends_on(mon.named(f"backups-tenant-etcd-{t}"), role)
        fetch = _pod(mon.named(f"backups-tenant-etcd-{t}"))["initContainers"][0]["command"][-1]
        assert f"--namespace tenant-{t} get secret {t}-talosconfig" in fetch


def test_management_etcd_uses_a_talos_service_account_with_only_the_etcd_backup_role(result, cfg):
    mon = result.monitor
    sa = mon.named("backups-management-etcd-talos-sa")
    assert sa.type == "kubernetes:talos.dev/v1alpha1:ServiceAccount"
    assert sa.inputs["spec"] == {"roles": ["os:etcd:backup"]}
    pod = _pod(mon.named("backups-management-etcd"))
    assert {"name": "talos-secrets", "secret": {"secretName": "management-etcd"}} in pod["volumes"]
    cmd = pod["initContainers"][0]["command"]
    assert cmd[:3] == ["talosctl", "--talosconfig", "/var/run/secrets/talos.dev/config"]
    assert cmd[-3:] == ["etcd", "snapshot", "/backup/etcd.snapshot"]
    cluster = next(r for r in mon.registrations.values() if r.type == "weebo:cluster:ManagementCluster")
    assert mon.depends_on(sa, cluster)  # the CRD is Talos's, once the cluster runs
    # The machine config allows exactly that role from exactly that namespace, on control planes.
    apply = mon.named("weebo4cp-node-1-apply")
    patches = [json.loads(p) for p in apply.inputs["configPatches"] if isinstance(p, str)]
    assert b.talos_api_access_patch() in patches
    access = b.talos_api_access_patch()["machine"]["features"]["kubernetesTalosAPIAccess"]
    assert access == {"enabled": True, "allowedRoles": ["os:etcd:backup"], "allowedKubernetesNamespaces": ["backups"]}
    validate_talos_patch(b.talos_api_access_patch())
    no_backups = base_plan().monitor.named("weebo4cp-node-1-apply")
    assert b.talos_api_access_patch() not in [
        json.loads(p) for p in no_backups.inputs["configPatches"] if isinstance(p, str)]


def test_vault_backup_policy_reads_only_the_raft_snapshot_and_the_role_binds_only_the_job(result):
    rules = parse_policy(b.vault_policy())
    assert rules == {"sys/storage/raft/snapshot": {"read"}}
    assert not policy_allows(rules, "sys/storage/raft/snapshot-force", "update")
    assert not policy_allows(rules, "kv/data/anything", "read")
    mon = result.monitor
    pol = mon.named("vault-config-policy-backup-raft-snapshot")
    assert pol.inputs["policy"] == b.vault_policy() and pol.inputs["name"] == b.VAULT_POLICY
    role = mon.named("vault-config-kubernetes-role-backup")
    assert role.inputs["boundServiceAccountNames"] == ["vault"]
    assert role.inputs["boundServiceAccountNamespaces"] == ["backups"]
    assert role.inputs["tokenPolicies"] == [b.VAULT_POLICY] and role.inputs["tokenNoDefaultPolicy"] is True
    assert role.inputs["tokenTtl"] <= 900
    script = _pod(mon.named("backups-vault"))["initContainers"][0]["command"][-1]
    assert f"role={b.VAULT_ROLE}" in script and "raft snapshot save" in script and "root" not in script
    assert mon.depends_on(mon.named("backups-vault"), role)


def test_bind9_backup_key_may_transfer_but_never_update(cfg, result):
    spec = platform_dns.zone_spec(cfg)
    conf = bind9.named_conf(spec)
    zone = conf[conf.index('zone "'):]
    transfer = zone[zone.index("allow-transfer"):zone.index("update-policy")]
    policy = zone[zone.index("update-policy"):]
    assert "key backup-transfer;" in transfer and "backup-transfer" not in policy
    assert "backup-transfer" not in platform_dns.zone_spec(config(base_raw())).transfer_only_keys
    from dataclasses import replace
    with pytest.raises(ValueError, match="transfer-only"):
        bind9.named_conf(replace(spec, update_rules=[
            *spec.update_rules, bind9.UpdateRule("grant", "backup-transfer", "zonesub", None, ("ANY",))]))
    dns = result.monitor.named("backups-dns-tsig")
    assert result.monitor.named("dns-tsig-backup-transfer").urn in dns.property_dependencies["stringData"]


def test_authentik_job_gets_only_the_database_password(monkeypatch):
    result = plan_with_known_secrets(monkeypatch, backup_raw())
    mon = result.monitor
    secret = mon.named("backups-authentik-db")
    assert contains_secret(secret.inputs["stringData"])
    assert secret.input("stringData", "password") == mon.named("authentik-credentials").input(
        "stringData", "postgres-password")
    pod = _pod(mon.named("backups-authentik"))
    assert pod["initContainers"][0]["command"][:1] == ["pg_dump"]
    assert "--format" in pod["initContainers"][0]["command"]


def test_no_generated_backup_secret_appears_in_plan_files(monkeypatch, tmp_path: Path):
    result = plan_with_known_secrets(monkeypatch, backup_raw())
    mon = result.monitor
    s3 = mon.named("backups-s3")
    assert contains_secret(s3.inputs["stringData"])
    assert MARKER in repr(s3.input("stringData"))  # the check below means something
    write_plan(result, tmp_path)
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and MARKER in p.read_text()]
    assert not leaked
    assert contains_secret(mon.stack_outputs["backupRestoreCredentials"])
    assert contains_secret(mon.stack_outputs["backupEncryptionKey"])


# --------------------------------------------------------------------------------------------
# Network policies: exactly the flows
# --------------------------------------------------------------------------------------------

def _selects(policy, labels):
    sel = policy["spec"].get("podSelector", policy["spec"].get("endpointSelector"))
    if "matchLabels" in sel and any(labels.get(k) != v for k, v in sel["matchLabels"].items()):
        return False
    return all(labels.get(e["key"]) is not None for e in sel.get("matchExpressions", []) if e["operator"] == "Exists")


def test_each_job_may_reach_only_its_source_and_the_s3_endpoint(cfg):
    items = b.platform_items(cfg) + [b.tenant_item(cfg, t) for t in cfg.tenants]
    policies = b.egress_policies(cfg, b.platform_items(cfg))
    for t in cfg.tenants:
        policies += b.tenant_egress_policies(b.tenant_item(cfg, t), f"tenant-{t.name}")
    expected = {
        "management-etcd": {("entities", "host,remote-node", "50000")},
        "vault": {("ns", "vault", "8200")},
        "authentik": {("ns", "authentik", "5432")},
        "dns": {("ns", "dns", "5053")},
        "tenant-etcd-alpha": {("entities", "kube-apiserver", "6443"), ("ns", "tenant-alpha", "50000")},
        "tenant-etcd-beta": {("entities", "kube-apiserver", "6443"), ("ns", "tenant-beta", "50000")},
    }
    for item in items:
        flows = set()
        for p in policies:
            if not _selects(p, item.labels):
                continue
            for rule in p["spec"]["egress"]:
                if "toFQDNs" in rule:
                    assert [f["matchName"] for f in rule["toFQDNs"]] == ["s3.gra.io.cloud.ovh.net"]
                    assert rule["toPorts"] == [{"ports": [{"port": "443", "protocol": "TCP"}]}]
                    flows.add(("s3", "", "443"))
                elif "toEndpoints" in rule:  # DNS through Cilium's proxy, to kube-dns only
                    assert rule["toEndpoints"][0]["matchLabels"]["k8s:k8s-app"] == "kube-dns"
                elif "toEntities" in rule:
                    assert "world" not in rule["toEntities"] and "all" not in rule["toEntities"]
                    port = rule["toPorts"][0]["ports"][0]["port"]
                    flows.add(("entities", ",".join(rule["toEntities"]), port))
                else:
                    (peer,) = rule["to"]
                    (port,) = rule["ports"]
                    sel = peer["namespaceSelector"]
                    assert "podSelector" in peer, f"{p['metadata']['name']}: a whole namespace"
                    ns = sel["matchLabels"]["kubernetes.io/metadata.name"]
                    if ns.startswith("tenant-"):  # only that tenant's control-plane VMs
                        assert peer["podSelector"]["matchLabels"] == {
                            "cluster.x-k8s.io/role": "control-plane", "cluster.x-k8s.io/cluster-name": ns[7:]}
                    flows.add(("ns", ns, str(port["port"])))
        assert flows == expected[item.name] | {("s3", "", "443")}, item.name
    for p in policies:
        if p["kind"] == "CiliumNetworkPolicy":
            validate_custom_resource(p)


def test_target_namespaces_admit_only_the_matching_backup_job(result):
    mon = result.monitor
    for name, ns, port, job in (("backups-vault-ingress", "vault", 8200, "vault"),
                                ("backups-authentik-ingress", "authentik", 5432, "authentik")):
        spec = mon.named(name).inputs["spec"]
        assert mon.named(name).inputs["metadata"]["namespace"] == ns
        assert spec["policyTypes"] == ["Ingress"]
        (rule,) = spec["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "backups"}},
                                 "podSelector": {"matchLabels": {b.JOB_LABEL: job}}}]


def test_certificate_for_the_internal_ca_is_valid_and_waits_for_cert_manager(result):
    mon = result.monitor
    cert = mon.named("backups-internal-ca")
    validate_custom_resource({k: cert.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    cert_manager = next(r for r in mon.registrations.values() if r.type == "weebo:tls:CertManager")
    (issuer,) = [r for r in mon.of_type("kubernetes:cert-manager.io/v1:ClusterIssuer")
                 if r.inputs["metadata"]["name"] == "platform-internal-ca"]
    assert mon.depends_on(cert, cert_manager) and mon.depends_on(cert, issuer)


# --------------------------------------------------------------------------------------------
# Stack output and tenant narrowing
# --------------------------------------------------------------------------------------------

def test_stack_output_lists_every_item_from_the_whole_config_even_when_tenants_are_narrowed():
    raw = backup_raw()
    full = planned(StackFile(stack="test", raw=raw, secret_keys=frozenset())).monitor
    part = planned(StackFile(stack="test", raw=raw, secret_keys=frozenset()), tenants=["alpha"]).monitor
    out = full.stack_outputs["backups"]
    assert out == part.stack_outputs["backups"]
    assert out["bucket"] == "weebo4cp-backups"
    assert out["items"]["tenant-etcd-beta"] == {
        "prefix": "k0/tenant-etcd/beta/", "schedule": "0 3 * * *", "retentionDays": 14,
        "objects": "k0/tenant-etcd/beta/<YYYYmmddTHHMMSSZ>-etcd.snapshot.bin"}
    assert "backups-tenant-etcd-beta" not in {r.name for r in part.registrations.values()}


def test_the_offline_plan_manifests_show_each_schedule(tmp_path: Path):
    result = plan(backup_raw())
    write_plan(result, tmp_path)
    for item in b.all_items(config(backup_raw())):
        doc = yaml.safe_load((tmp_path / "manifests" / f"CronJob-backups-{item.name}.yaml").read_text())
        assert doc["spec"]["schedule"] == item.schedule.schedule


# --------------------------------------------------------------------------------------------
# Read-back: the real rclone, the jobs' own script and flags
# --------------------------------------------------------------------------------------------

def _rclone_env(cfg, remote: Path, passphrase: str) -> dict[str, str]:
    """The upload container's environment with the S3 remote swapped for a local directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    for e in b.rclone_env(cfg):
        if "value" in e:
            env[e["name"]] = e["value"]
    env.update({x["name"]: x["value"] for x in b.crypt_env(str(remote / b.key_prefix(cfg)))})
    env["BACKUP_PASSPHRASE"] = passphrase
    env["HOME"] = str(remote.parent)
    return env


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed (apt-get install rclone)")
@pytest.mark.parametrize("name", ["management-etcd", "vault", "authentik", "dns", "tenant-etcd-alpha"])
def test_an_uploaded_object_decrypts_with_the_restore_command_and_only_with_the_key(cfg, tmp_path: Path, name):
    item = {i.name: i for i in b.all_items(cfg)}[name]
    work, store, restore = tmp_path / "work", tmp_path / "bucket", tmp_path / "restore"
    for d in (work, store, restore):
        d.mkdir()
    payload = os.urandom(300_000) + b"end-of-snapshot"
    (work / item.file).write_bytes(payload)
    env = _rclone_env(cfg, store, "correct horse battery staple " * 2)
    out = subprocess.run(["/bin/sh", "-c", b.upload_script(item, work_dir=str(work))], env=env,
                         capture_output=True, text=True, check=True).stdout
    stamp = out.strip().rsplit("/", 1)[1].split("-", 1)[0]
    # The object sits where the inventory and the runbook say, and is not the plaintext.
    obj = store / b.restore_commands(cfg, stamp)[name]["object"]
    assert obj.exists(), sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    assert b.inventory(cfg)["items"][name]["objects"].replace("<YYYYmmddTHHMMSSZ>", stamp) == str(obj.relative_to(store))
    assert payload[:64] not in obj.read_bytes() and obj.read_bytes()[:8] == b"RCLONE\x00\x00"

    setup = b.OBSCURE
    download = b.download_command(item, stamp)
    assert download == b.restore_commands(cfg, stamp)[name]["download"]
    subprocess.run(["/bin/sh", "-c", f"set -eu\n{setup}\n{download}"], env=env, cwd=restore, check=True,
                   capture_output=True)
    assert (restore / item.file).read_bytes() == payload

    wrong = {**env, "BACKUP_PASSPHRASE": "another key"}
    (restore / item.file).unlink()
    failed = subprocess.run(["/bin/sh", "-c", f"set -eu\n{setup}\n{download}"], env=wrong, cwd=restore,
                            capture_output=True)
    assert failed.returncode != 0 and not (restore / item.file).exists()


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed (apt-get install rclone)")
def test_a_tampered_object_is_refused(cfg, tmp_path: Path):
    item = b.platform_items(cfg)[1]
    work, store = tmp_path / "work", tmp_path / "bucket"
    work.mkdir(), store.mkdir()
    (work / item.file).write_bytes(b"x" * 100_000)
    env = _rclone_env(cfg, store, "k" * 64)
    out = subprocess.run(["/bin/sh", "-c", b.upload_script(item, work_dir=str(work))], env=env,
                         capture_output=True, text=True, check=True).stdout
    stamp = out.strip().rsplit("/", 1)[1].split("-", 1)[0]
    obj = store / b.restore_commands(cfg, stamp)[item.name]["object"]
    data = bytearray(obj.read_bytes())
    data[5000] ^= 0x01
    obj.write_bytes(bytes(data))
    failed = subprocess.run(["/bin/sh", "-c", f"set -eu\n{b.OBSCURE}\n{b.download_command(item, stamp)}"],
                            env=env, cwd=tmp_path, capture_output=True)
    assert failed.returncode != 0


def test_upload_script_never_passes_the_passphrase_or_a_listing_call(cfg):
    for item in b.all_items(cfg):
        script = b.upload_script(item)
        assert '"$BACKUP_PASSPHRASE" | rclone obscure -' in script  # stdin, not argv
        assert "rclone copyto" in script and "rclone ls" not in script and "rclone delete" not in script
    env = {e["name"]: e.get("value") for e in b.rclone_env(cfg)}
    # Write-only key: the upload must not HEAD, list or create the bucket.
    for flag in ("RCLONE_CONFIG_OVH_NO_HEAD", "RCLONE_CONFIG_OVH_NO_HEAD_OBJECT", "RCLONE_CONFIG_OVH_NO_CHECK_BUCKET",
                 "RCLONE_NO_CHECK_DEST"):
        assert env[flag] == "true", flag
    assert env["RCLONE_CONFIG_BACKUP_FILENAME_ENCRYPTION"] == "off"


# --------------------------------------------------------------------------------------------
# Runbooks: the commands the objects need
# --------------------------------------------------------------------------------------------

def _prod():
    sf = read_stack("prod")
    return parse_config(sf.raw, sf.secret_keys, stack="prod")


def test_runbooks_hold_the_rendered_restore_commands_and_access_setup():
    cfg = _prod()
    ops = ROOT / "docs" / "operations"
    readme = (ops / "README.md").read_text()
    assert b.restore_shell_env(cfg).strip() in readme
    files = {"management-etcd": "management-etcd.md", "vault": "vault.md", "authentik": "authentik.md",
             "dns": "dns.md"}
    for name, cmds in b.restore_commands(cfg).items():
        item = next(i for i in b.all_items(cfg) if i.name == name)
        text = (ops / files.get(name, "tenant-etcd.md")).read_text()
        for key in ("download", "restore"):
            cmd = cmds[key]
            if item.tenant:
                cmd = cmd.replace(f"/{item.tenant}/", "/<TENANT>/")
            assert cmd in text, f"{name} {key}: {cmd}"
        assert f"[{files.get(name, 'tenant-etcd.md')}]" in readme or item.tenant
    assert "docs/operations" in (ROOT / "README.md").read_text()


def test_runbook_snapshot_commands_agree_with_the_jobs(cfg):
    for item in b.all_items(cfg):
        cmds = b.restore_commands(cfg)[item.name]
        assert f"./{item.file}" in cmds["restore"] and cmds["download"].endswith(f'"./{item.file}"')
        if item.name.endswith("etcd") or item.tenant:
            # talosctl etcd snapshot writes what bootstrap --recover-from reads.
            assert b.talos_snapshot_command(item, "cfg")[-3:-1] == ["etcd", "snapshot"]
            assert "--recover-from=" in cmds["restore"]


# --------------------------------------------------------------------------------------------
# The keys' least privilege against an S3 server that evaluates the policies (moto), with the
# real rclone and the jobs' / the runbook's own configuration
# --------------------------------------------------------------------------------------------

moto_server = pytest.importorskip("moto.server") if shutil.which("rclone") else None


@pytest.fixture
def s3(tmp_path: Path):
    import socket

    import boto3
    from moto.core.authorization import disable_iam_authentication, enable_iam_authentication

    if moto_server is None:
        pytest.skip("rclone not installed (apt-get install rclone)")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    cfg = config(backup_raw())
    bucket = b.bucket_name(cfg)
    keys = {}
    try:
        with disable_iam_authentication():
            admin = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="admin",
                         aws_secret_access_key="admin")
            boto3.client("s3", **admin).create_bucket(Bucket=bucket)
            boto3.client("s3", **admin).put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            iam = boto3.client("iam", **admin)
            for role, policy in (("writer", b.writer_policy(bucket)), ("reader", b.reader_policy(bucket))):
                iam.create_user(UserName=role)
                # The same statements as the OVH S3 policy; moto wants the policy language version.
                iam.put_user_policy(UserName=role, PolicyName="backup",
                                    PolicyDocument=json.dumps({"Version": "2012-10-17", **policy}))
                k = iam.create_access_key(UserName=role)["AccessKey"]
                keys[role] = (k["AccessKeyId"], k["SecretAccessKey"])
        with enable_iam_authentication():
            yield {"cfg": cfg, "endpoint": endpoint, "bucket": bucket, "keys": keys, "admin": admin}
    finally:
        server.stop()


def _clean_env() -> dict[str, str]:
    """This machine's environment without rclone/AWS settings and proxies (the pod has none)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("RCLONE_", "AWS_")) and "proxy" not in k.lower()}


def _job_env(s3, role: str, passphrase: str) -> dict[str, str]:
    """The upload container's environment (values and secretKeyRefs), pointed at the test server."""
    env = _clean_env()
    ak, sk = s3["keys"][role]
    secrets = {b.KEY_ACCESS_KEY: ak, b.KEY_SECRET_KEY: sk, b.KEY_PASSPHRASE: passphrase}
    for e in b.rclone_env(s3["cfg"]):
        env[e["name"]] = e["value"] if "value" in e else secrets[e["valueFrom"]["secretKeyRef"]["key"]]
    env["RCLONE_CONFIG_OVH_ENDPOINT"], env["RCLONE_CONFIG_OVH_REGION"] = s3["endpoint"], "us-east-1"
    return env


def _sh(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_writer_key_can_upload_but_not_read_list_or_delete_and_the_reader_restores(s3, tmp_path: Path):
    import boto3

    cfg = s3["cfg"]
    item = {i.name: i for i in b.all_items(cfg)}["vault"]
    work = tmp_path / "work"
    work.mkdir()
    payload = os.urandom(200_000)
    (work / item.file).write_bytes(payload)
    passphrase = "p" * 64
    env = {**_job_env(s3, "writer", passphrase), "HOME": str(tmp_path)}
    up = _sh(b.upload_script(item, work_dir=str(work)), env, tmp_path)
    assert up.returncode == 0, up.stderr
    stamp = up.stdout.strip().rsplit("/", 1)[1].split("-", 1)[0]
    obj = b.restore_commands(cfg, stamp)["vault"]["object"]
    # Write-only: it cannot list, read, delete or reconfigure anything, not even what it wrote,
    # nor write to another bucket (S3 API calls, as the server evaluates them).
    from botocore.exceptions import ClientError

    def client(role):
        ak, sk = s3["keys"][role]
        return boto3.client("s3", endpoint_url=s3["endpoint"], region_name="us-east-1",
                            aws_access_key_id=ak, aws_secret_access_key=sk)

    def denied(call, **kw):
        with pytest.raises(ClientError) as e:
            call(**kw)
        assert e.value.response["Error"]["Code"] == "AccessDenied", e.value.response["Error"]

    bkt = s3["bucket"]
    writer = client("writer")
    version = writer.put_object(Bucket=bkt, Key="k0/vault/probe", Body=b"x").get("VersionId")
    denied(writer.get_object, Bucket=bkt, Key=obj)
    denied(writer.list_objects_v2, Bucket=bkt)
    denied(writer.delete_object, Bucket=bkt, Key=obj)
    denied(writer.delete_object, Bucket=bkt, Key="k0/vault/probe", VersionId=version or "null")
    denied(writer.put_bucket_versioning, Bucket=bkt, VersioningConfiguration={"Status": "Suspended"})
    denied(writer.put_bucket_lifecycle_configuration, Bucket=bkt, LifecycleConfiguration={"Rules": [
        {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]})
    denied(writer.put_object, Bucket="another-bucket", Key="x", Body=b"x")
    assert _sh(f"{b.OBSCURE}\n{b.download_command(item, stamp)}", env, tmp_path).returncode != 0
    reader = client("reader")
    denied(reader.put_object, Bucket=bkt, Key=obj, Body=b"x")
    denied(reader.delete_object, Bucket=bkt, Key=obj)

    # The runbook's own shell setup, with its `pulumi stack output` answered by a stand-in.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    rak, rsk = s3["keys"]["reader"]
    (bindir / "pulumi").write_text(
        "#!/bin/sh\ncase \"$*\" in\n"
        f"  *backupRestoreCredentials*) echo '{{\"accessKeyId\": \"{rak}\", \"secretAccessKey\": \"{rsk}\"}}';;\n"
        f"  *backupEncryptionKey*) echo '{passphrase}';;\n  *) exit 1;;\nesac\n")
    (bindir / "pulumi").chmod(0o755)
    restore_env = _clean_env()
    restore_env.update(PATH=f"{bindir}:{os.environ['PATH']}", HOME=str(tmp_path))
    setup = (b.restore_shell_env(cfg) + f'export RCLONE_CONFIG_OVH_ENDPOINT="{s3["endpoint"]}" '
             'RCLONE_CONFIG_OVH_REGION="us-east-1"\n')
    restore_dir = tmp_path / "restore"
    restore_dir.mkdir()
    listed = _sh(setup + "rclone lsf backup:vault/", restore_env, restore_dir)
    assert listed.returncode == 0 and f"{stamp}-{item.file}" in listed.stdout, listed.stderr
    down = _sh(setup + b.download_command(item, stamp), restore_env, restore_dir)
    assert down.returncode == 0, down.stderr
    assert (restore_dir / item.file).read_bytes() == payload
    # And the object is still there, with no delete marker (nothing could delete it).
    from moto.core.authorization import disable_iam_authentication
    with disable_iam_authentication():
        versions = boto3.client("s3", **s3["admin"]).list_object_versions(Bucket=s3["bucket"], Prefix=obj)
    assert [v["Key"] for v in versions.get("Versions", [])] == [obj] and not versions.get("DeleteMarkers")


def test_adding_a_tenant_changes_no_existing_backup_resource(result):
    """A new tenant adds its own CronJob, Role and policies and leaves everything that exists
    alone: the bucket's lifecycle covers every tenant with one rule on their common prefix, and the
    Vault job waits for its own role, not for the whole Vault configuration (which grows a policy
    per tenant)."""
    from offline.plan import diff_plans, render

    raw = backup_raw()
    raw["tenants"] = [*raw["tenants"], tenant("gamma", 2)]
    grown = plan(raw)
    diff = diff_plans(render(result).document(), render(grown).document())
    assert diff["changed"] == {} and diff["removed"] == []
    assert any("tenant-etcd-gamma" in urn for urn in diff["added"])
    rules = b.lifecycle_rules(config(raw))
    assert [r["filter"]["prefix"] for r in rules if "tenant-etcd" in r["id"]] == ["k0/tenant-etcd/"]
