"""Encrypted backups to OVHcloud Object Storage (issue 17): one bucket per environment, one
CronJob per backed-up item in the ``backups`` namespace, each with only the access it needs.

Design:

* **Bucket** (``ovh.cloudproject.Storage``): versioning on, protected and retained on delete.
  Retention is a lifecycle rule per item prefix (current and noncurrent versions expire after
  ``retentionDays``). Object lock is not used: the writer credential below cannot delete or
  overwrite-and-lose anything already (versioning keeps every overwritten version, and it has no
  ``s3:DeleteObject*``), while a compliance lock would also stop the operators from ever
  removing a bad object before its term.
* **Two OVH users**, each with its own S3 policy on exactly this bucket: the *writer* (the
  CronJobs: ``s3:PutObject`` + ``s3:AbortMultipartUpload`` on ``<bucket>/*``, nothing else - it
  cannot list, read or delete) and the *reader* (restores: ``s3:GetObject`` + ``s3:ListBucket``).
  Their keys are Pulumi secrets; the reader's is only a stack output for the runbooks.
* **Client-side encryption**: rclone's ``crypt`` remote (NaCl secretbox, XSalsa20-Poly1305,
  authenticated) over the S3 remote, passphrase from ``random.RandomPassword``. File names stay
  readable (``filename_encryption off``: rclone appends ``.bin``), so the lifecycle rules and the
  runbooks can name objects. Ref: rclone docs/content/crypt.md ("File formats").
* **Rotation** (issue 17 item 4): the key and the S3 credentials each have a generation in config
  (``rotation.backupEncryptionKey`` / ``rotation.backupCredentials``) feeding ``keepers``; objects
  are written under ``k<generation>/`` so a restore knows which key opens them.
* **Dumps** run in init containers writing to an ``emptyDir``; the uploader container (rclone)
  encrypts and uploads. Each CronJob's ServiceAccount, Vault role, Talos role, Kubernetes Role
  and network policies allow exactly its own flows.

Every command line and object path used by the runbooks (``docs/operations``) comes from the
renderers here (``restore_commands``), so backup and restore cannot drift apart (tested).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_ovh as ovh
import pulumi_random as random

import versions
from components.core import network_policy as netpol
from components.core import rotation
from components.tenant import capi as tenant_capi
from components.core.common import MANAGED_BY, irreplaceable
from components.core.contracts import (
    BIND9_POD_LABELS, BIND9_POD_PORT, DNS_NAMESPACE, INTERNAL_CA_ISSUER, TALOS_API_PORT, DnsUpdateAccess,
)
from components.core.k8s_objects import register
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks import facts
from stacks.config import BackupSchedule, PlatformConfig, Tenant

NAMESPACE = facts.BACKUPS_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
S3_SECRET = "backup-s3"  # writer credentials + encryption passphrase, in NAMESPACE
KEY_ACCESS_KEY = "access-key-id"
KEY_SECRET_KEY = "secret-access-key"
KEY_PASSPHRASE = "passphrase"
WORK_DIR = "/backup"  # emptyDir shared by the dump and upload containers
TMP_DIR = "/tmp"
UID = 65532  # any non-root id: none of the tools needs a user of its own
# rclone remotes, configured only from the environment (RCLONE_CONFIG_<REMOTE>_<OPTION>).
# Ref: rclone docs/content/docs.md ("Config file" > environment variables).
S3_REMOTE = "ovh"
CRYPT_REMOTE = "backup"
# Talos: the role that may call only MachineService/EtcdSnapshot.
# Ref: siderolabs/talos v1.13.9 docs "Role-based access control" (os:etcd:backup).
TALOS_ETCD_BACKUP_ROLE = "os:etcd:backup"
# Ref: siderolabs/talos v1.13.9 pkg/machinery/constants/constants.go (ServiceAccountMountPath,
# TalosconfigFilename) and internal/.../kubeaccess/serviceaccount/crd_controller.go (newSecret:
# the Secret is named like the talos.dev ServiceAccount, key "config", endpoint "talos.default").
TALOS_SA_MOUNT = "/var/run/secrets/talos.dev"
TALOS_SA_KEY = "config"
# CACPPT/CABPT write "<cluster>-talosconfig" (key "talosconfig") in the cluster's namespace.
# Ref: siderolabs/cluster-api-control-plane-provider-talos v0.5.12 controllers/configs.go
# (talosconfigForMachines).
TENANT_TALOSCONFIG_KEY = "talosconfig"
VAULT_ROLE = "backup"
VAULT_JOB = "vault"  # the CronJob and its ServiceAccount, bound to VAULT_ROLE
VAULT_POLICY = "backup-raft-snapshot"
VAULT_SNAPSHOT_PATH = "sys/storage/raft/snapshot"
VAULT_ADDR = "https://vault-active.vault.svc:8200"  # in the Vault certificate's SANs
VAULT_CA_SECRET = "backup-internal-ca"  # a Certificate from the internal CA: its ca.crt
VAULT_PORT = 8200
POSTGRES_PORT = 5432
AUTHENTIK_DB_SECRET = "backup-authentik-db"
AUTHENTIK_DB_HOST = "authentik-postgresql.authentik.svc"  # chart: {{ .Release.Name }}-postgresql
AUTHENTIK_DB = "authentik"  # chart defaults: authentik.postgresql.name / .user
AUTHENTIK_DB_LABELS = {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "authentik"}
DNS_TSIG_SECRET = "backup-dns-tsig"
JOB_LABEL = "weebo.io/backup"


# ---------------------------------------------------------------------------------------------
# What is backed up where
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackupItem:
    """One backup: a CronJob writing ``<prefix>/<UTC stamp>-<file>`` through the crypt remote,
    i.e. the object ``k<generation>/<prefix>/<stamp>-<file>.bin`` in the bucket."""

    name: str  # CronJob / ServiceAccount name
    prefix: str  # under k<generation>/
    file: str  # what the dump step writes in WORK_DIR
    schedule: BackupSchedule
    tenant: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {**MANAGED_BY, JOB_LABEL: self.name}


def bucket_name(cfg: PlatformConfig) -> str:
    assert cfg.backups is not None
    return cfg.backups.bucket_name or f"{cfg.management_cluster.name}-backups"


def s3_endpoint(region: str) -> str:
    # Ref: ovh/docs s3_location guide: one endpoint per region, https://s3.<region>.io.cloud.ovh.net
    return f"s3.{region}.io.cloud.ovh.net"


def key_prefix(cfg: PlatformConfig) -> str:
    assert cfg.backups is not None
    return f"k{cfg.rotation.backup_encryption_key}"


# Every tenant's etcd snapshots live under this prefix (tenant_item) and share one retention.
TENANT_ETCD_PREFIX = "tenant-etcd"


def tenant_item(cfg: PlatformConfig, tenant: Tenant) -> BackupItem:
    assert cfg.backups is not None
    return BackupItem(f"tenant-etcd-{tenant.name}", f"{TENANT_ETCD_PREFIX}/{tenant.name}", "etcd.snapshot",
                      cfg.backups.items.tenant_etcd, tenant=tenant.name)


def platform_items(cfg: PlatformConfig) -> list[BackupItem]:
    """The platform's items (tenants come from :func:`tenant_item`)."""
    assert cfg.backups is not None
    items = cfg.backups.items
    out = []
    if cfg.management_cluster.provisioner == "ovh-talos":  # an existing cluster may not run Talos
        out.append(BackupItem("management-etcd", "management-etcd", "etcd.snapshot", items.management_etcd))
    out += [
        BackupItem(VAULT_JOB, "vault", "vault.snap", items.vault),
        BackupItem("authentik", "authentik", "authentik.dump", items.authentik),
        BackupItem("dns", "dns", "zone.db", items.dns),
    ]
    return out


def all_items(cfg: PlatformConfig) -> list[BackupItem]:
    return platform_items(cfg) + [tenant_item(cfg, t) for t in cfg.tenants]


def inventory(cfg: PlatformConfig) -> dict[str, Any]:
    """The ``backups`` stack output: what is backed up where. Built from the whole config (never
    from the tenants being built: offline.plan --jobs requires it)."""
    assert cfg.backups is not None
    return {
        "bucket": bucket_name(cfg),
        "region": cfg.backups.region,
        "endpoint": f"https://{s3_endpoint(cfg.backups.region)}",
        "encryption": "rclone crypt (XSalsa20-Poly1305), file names in clear, suffix .bin",
        "items": {
            i.name: {
                "prefix": f"{key_prefix(cfg)}/{i.prefix}/",
                "schedule": i.schedule.schedule,
                "retentionDays": i.schedule.retention_days,
                "objects": f"{key_prefix(cfg)}/{i.prefix}/<YYYYmmddTHHMMSSZ>-{i.file}.bin",
            }
            for i in all_items(cfg)
        },
    }


# ---------------------------------------------------------------------------------------------
# S3 policies (OVH users): exactly the actions each side needs, on exactly this bucket
# ---------------------------------------------------------------------------------------------

WRITER_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
READER_ACTIONS = ("s3:GetObject", "s3:ListBucket")


def writer_policy(bucket: str) -> dict[str, Any]:
    """Upload only. PutObject covers the multipart calls (Create/UploadPart/Complete); rclone is
    run with ``--no-check-dest`` and ``no_head``/``no_head_object``/``no_check_bucket`` so it
    never reads, lists or creates anything but the new object.
    Ref: pulumi_ovh 2.22.0 cloudproject/s3_policy.py (example policy document)."""
    return {"Statement": [{"Sid": "BackupWriteOnly", "Effect": "Allow", "Action": list(WRITER_ACTIONS),
                           "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}


def reader_policy(bucket: str) -> dict[str, Any]:
    return {"Statement": [{"Sid": "BackupRestoreRead", "Effect": "Allow", "Action": list(READER_ACTIONS),
                           "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}


def lifecycle_rules(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """One rule per item prefix and key generation (the prefix starts with k<generation>: after a
    rotation of the key, objects written with the older keys must still expire), plus aborting
    forgotten multipart uploads. The tenants' snapshots share one rule on their common prefix, so
    adding or removing a tenant leaves the bucket's configuration alone."""
    assert cfg.backups is not None
    rules = [{"id": "abort-incomplete-uploads", "status": "enabled",
              "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}]
    expiring = [(i.name, i.prefix, i.schedule) for i in platform_items(cfg)]
    expiring.append((TENANT_ETCD_PREFIX, TENANT_ETCD_PREFIX, cfg.backups.items.tenant_etcd))
    for g in range(cfg.rotation.backup_encryption_key + 1):
        for name, prefix, schedule in expiring:
            days = schedule.retention_days
            rules.append({
                "id": rotation.suffixed(f"expire-{name}", g), "status": "enabled",
                "filter": {"prefix": f"k{g}/{prefix}/"},
                "expiration": {"days": days},
                "noncurrent_version_expiration": {"noncurrent_days": days},
            })
    return rules


# ---------------------------------------------------------------------------------------------
# The upload step (shared by every CronJob and the runbooks)
# ---------------------------------------------------------------------------------------------

def rclone_env(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """rclone's whole configuration, from the environment; secrets only through secretKeyRef.
    Ref: rclone docs/content/s3.md (provider Other, endpoint, region, no_check_bucket, no_head),
    docs/content/crypt.md (remote, password, filename_encryption, directory_name_encryption)."""
    assert cfg.backups is not None
    s3 = S3_REMOTE.upper()

    def secret(var: str, key: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": key}}}

    return [
        {"name": f"RCLONE_CONFIG_{s3}_TYPE", "value": "s3"},
        {"name": f"RCLONE_CONFIG_{s3}_PROVIDER", "value": "Other"},
        {"name": f"RCLONE_CONFIG_{s3}_ENDPOINT", "value": f"https://{s3_endpoint(cfg.backups.region)}"},
        {"name": f"RCLONE_CONFIG_{s3}_REGION", "value": cfg.backups.region},
        {"name": f"RCLONE_CONFIG_{s3}_FORCE_PATH_STYLE", "value": "true"},
        {"name": f"RCLONE_CONFIG_{s3}_NO_CHECK_BUCKET", "value": "true"},
        {"name": f"RCLONE_CONFIG_{s3}_NO_HEAD", "value": "true"},
        # Without it, opening "<bucket>/k<gen>/<prefix>" HEADs and then lists that path (to tell a
        # file from a directory), which a write-only key may not: rclone would then take the
        # prefix for a file and refuse the upload.
        # Ref: rclone v1.75.0 backend/s3/s3.go NewFs ("Check to see if the (bucket,directory) is
        # actually an existing file", skipped when no_head_object is set); cmd/cmd.go newFsDir.
        {"name": f"RCLONE_CONFIG_{s3}_NO_HEAD_OBJECT", "value": "true"},
        secret(f"RCLONE_CONFIG_{s3}_ACCESS_KEY_ID", KEY_ACCESS_KEY),
        secret(f"RCLONE_CONFIG_{s3}_SECRET_ACCESS_KEY", KEY_SECRET_KEY),
        *crypt_env(f"{S3_REMOTE}:{bucket_name(cfg)}/{key_prefix(cfg)}"),
        secret("BACKUP_PASSPHRASE", KEY_PASSPHRASE),
        {"name": "RCLONE_NO_CHECK_DEST", "value": "true"},
        {"name": "HOME", "value": TMP_DIR},
    ]


def crypt_env(remote: str) -> list[dict[str, str]]:
    """The crypt remote over ``remote`` (its password is set by :data:`OBSCURE` at run time)."""
    crypt = CRYPT_REMOTE.upper()
    return [
        {"name": f"RCLONE_CONFIG_{crypt}_TYPE", "value": "crypt"},
        {"name": f"RCLONE_CONFIG_{crypt}_REMOTE", "value": remote},
        {"name": f"RCLONE_CONFIG_{crypt}_FILENAME_ENCRYPTION", "value": "off"},
        {"name": f"RCLONE_CONFIG_{crypt}_DIRECTORY_NAME_ENCRYPTION", "value": "false"},
    ]


# rclone takes crypt passwords obscured; the passphrase goes through stdin, never argv.
# Ref: rclone docs/content/commands/rclone_obscure.md ("-" reads the password from stdin).
OBSCURE = (f'RCLONE_CONFIG_{CRYPT_REMOTE.upper()}_PASSWORD="$(printf \'%s\' "$BACKUP_PASSPHRASE" | rclone obscure -)"; '
           f"export RCLONE_CONFIG_{CRYPT_REMOTE.upper()}_PASSWORD")


def upload_command(item: BackupItem, stamp: str = "$stamp", work_dir: str = WORK_DIR) -> str:
    return f'rclone copyto "{work_dir}/{item.file}" "{CRYPT_REMOTE}:{item.prefix}/{stamp}-{item.file}"'


def upload_script(item: BackupItem, work_dir: str = WORK_DIR) -> str:
    """What the upload container runs (``work_dir`` differs only in tests)."""
    return "\n".join([
        "set -eu",
        OBSCURE,
        'stamp="$(date -u +%Y%m%dT%H%M%SZ)"',
        f'test -s "{work_dir}/{item.file}"',
        upload_command(item, work_dir=work_dir),
        f'echo "uploaded {item.prefix}/$stamp-{item.file}"',
    ]) + "\n"


# Where the restore side takes the secrets from: the stack outputs (reader keys, not the writer's).
RESTORE_SECRETS = {
    KEY_ACCESS_KEY: "$(pulumi stack output --show-secrets backupRestoreCredentials | jq -r .accessKeyId)",
    KEY_SECRET_KEY: "$(pulumi stack output --show-secrets backupRestoreCredentials | jq -r .secretAccessKey)",
    KEY_PASSPHRASE: "$(pulumi stack output --show-secrets backupEncryptionKey)",
}
# Upload-only settings the reader does not want (it may HEAD and read).
_UPLOAD_ONLY = {f"RCLONE_CONFIG_{S3_REMOTE.upper()}_NO_HEAD", f"RCLONE_CONFIG_{S3_REMOTE.upper()}_NO_HEAD_OBJECT",
                "RCLONE_NO_CHECK_DEST", "HOME"}


def restore_shell_env(cfg: PlatformConfig) -> str:
    """The operator's shell setup for a restore: the jobs' rclone configuration (same remotes,
    same crypt settings, same bucket and key generation) with the reader's credentials."""
    lines = []
    for e in rclone_env(cfg):
        if e["name"] in _UPLOAD_ONLY:
            continue
        value = RESTORE_SECRETS[e["valueFrom"]["secretKeyRef"]["key"]] if "valueFrom" in e else e["value"]
        lines.append(f'export {e["name"]}="{value}"')
    return "\n".join([*lines, OBSCURE]) + "\n"


def download_command(item: BackupItem, stamp: str) -> str:
    """The restore side of :func:`upload_command` (same remote, same path)."""
    return f'rclone copyto "{CRYPT_REMOTE}:{item.prefix}/{stamp}-{item.file}" "./{item.file}"'


# ---------------------------------------------------------------------------------------------
# The dump step of each item
# ---------------------------------------------------------------------------------------------

def talos_snapshot_command(item: BackupItem, talosconfig: str, node: str | None = None) -> list[str]:
    """``talosctl etcd snapshot``. Ref: siderolabs/talos v1.13.9 cmd/talosctl/cmd/talos/etcd.go
    (etcdSnapshotCmd: "snapshot <path>"), cmd/talosctl/cmd/root.go (--talosconfig, --nodes)."""
    cmd = ["talosctl", "--talosconfig", talosconfig]
    if node:
        cmd += ["--nodes", node]
    return cmd + ["etcd", "snapshot", f"{WORK_DIR}/{item.file}"]


def vault_snapshot_script(item: BackupItem) -> str:
    """Kubernetes-auth login with the pod's own token, then a raft snapshot. Ref: Vault docs
    "Kubernetes auth method" (auth/kubernetes/login role + jwt), "operator raft snapshot save"."""
    return "\n".join([
        "set -eu",
        'VAULT_TOKEN="$(vault write -field=token auth/kubernetes/login '
        f'role={VAULT_ROLE} jwt=@/var/run/secrets/kubernetes.io/serviceaccount/token)"',
        "export VAULT_TOKEN",
        f'vault operator raft snapshot save "{WORK_DIR}/{item.file}"',
    ]) + "\n"


def pg_dump_command(item: BackupItem) -> list[str]:
    """A logical dump in pg_dump's custom format (pg_restore reads it, table by table)."""
    return ["pg_dump", "--host", AUTHENTIK_DB_HOST, "--username", AUTHENTIK_DB, "--dbname", AUTHENTIK_DB,
            "--format", "custom", "--no-owner", "--file", f"{WORK_DIR}/{item.file}"]


def axfr_script(item: BackupItem, zone: str, key_name: str, algorithm: str, server: str) -> str:
    """AXFR with the transfer-only TSIG key (from a key file, not argv). ``+onesoa`` and no
    comments: the output is a zone file named-checkzone and Bind9 load as is."""
    return "\n".join([
        "set -eu",
        f"printf 'key \"{key_name}\" {{ algorithm {algorithm}; secret \"%s\"; }};\\n' \"$TSIG_SECRET\" > {TMP_DIR}/tsig.key",
        f'dig -k {TMP_DIR}/tsig.key +tcp +onesoa +nocomments +nocmd +nostats @{server} {zone} AXFR > "{WORK_DIR}/{item.file}"',
        f'grep -q "SOA" "{WORK_DIR}/{item.file}"',
    ]) + "\n"


def kubectl_fetch_script(namespace: str, secret: str, key: str, out: str) -> str:
    """One key of one Secret to a file (the kubectl image has bash and coreutils).
    Ref: kubernetes/kubernetes build/server-image/kubectl/Dockerfile (bash, coreutils, jq)."""
    return (f"set -euo pipefail\nkubectl --namespace {namespace} get secret {secret} "
            f"--output 'jsonpath={{.data.{key}}}' | base64 -d > {out}\ntest -s {out}\n")


# ---------------------------------------------------------------------------------------------
# Pod and CronJob rendering
# ---------------------------------------------------------------------------------------------

def _security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
_WORK_MOUNTS = [{"name": "work", "mountPath": WORK_DIR}, {"name": "tmp", "mountPath": TMP_DIR}]


def container(name: str, image: str, *, command: list[str], env: Sequence[Mapping[str, Any]] = (),
              mounts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    # HOME on the writable scratch volume: the root filesystem is read-only (CLI caches, tokens).
    env = [*env, {"name": "HOME", "value": TMP_DIR}] if not any(e["name"] == "HOME" for e in env) else env
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
            "env": [dict(e) for e in env], "securityContext": _security(), "resources": _RESOURCES,
            "volumeMounts": [*_WORK_MOUNTS, *[dict(m) for m in mounts]]}


def uploader(cfg: PlatformConfig, item: BackupItem) -> dict[str, Any]:
    return container("upload", versions.RCLONE_IMAGE, command=["/bin/sh", "-c", upload_script(item)],
                     env=rclone_env(cfg))


def cronjob(cfg: PlatformConfig, item: BackupItem, dump_steps: Sequence[dict[str, Any]],
            *, volumes: Sequence[Mapping[str, Any]] = (), api_token: bool = False) -> dict[str, Any]:
    """The CronJob: dump steps as init containers (in order), then the upload."""
    pod = {
        "metadata": {"labels": item.labels},
        "spec": {
            "serviceAccountName": item.name,
            # Only the jobs that log in (Vault) or read a Secret (tenants) get an API token.
            "automountServiceAccountToken": api_token,
            "enableServiceLinks": False,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": list(dump_steps),
            "containers": [uploader(cfg, item)],
            "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "20Gi"}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                        *[dict(v) for v in volumes]],
        },
    }
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": item.name, "namespace": NAMESPACE, "labels": item.labels},
        "spec": {
            "schedule": item.schedule.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": item.labels},
                            "spec": {"backoffLimit": 2, "activeDeadlineSeconds": 3600, "template": pod}},
        },
    }


def management_etcd_cronjob(cfg: PlatformConfig, item: BackupItem) -> dict[str, Any]:
    node = cfg.management_cluster.control_planes[0].address
    # talosctl of the cluster's own Talos version (as its installer image): no separate pin.
    step = container("etcd-snapshot", f"ghcr.io/siderolabs/talosctl:{cfg.management_cluster.talos_version}",
                     command=talos_snapshot_command(item, f"{TALOS_SA_MOUNT}/{TALOS_SA_KEY}", node),
                     mounts=[{"name": "talos-secrets", "mountPath": TALOS_SA_MOUNT, "readOnly": True}])
    return cronjob(cfg, item, [step], volumes=[{"name": "talos-secrets", "secret": {"secretName": item.name}}])


def vault_cronjob(cfg: PlatformConfig, item: BackupItem) -> dict[str, Any]:
    step = container("raft-snapshot", versions.VAULT_IMAGE, command=["/bin/sh", "-c", vault_snapshot_script(item)],
                     env=[{"name": "VAULT_ADDR", "value": VAULT_ADDR},
                          {"name": "VAULT_CACERT", "value": "/ca/ca.crt"}],
                     mounts=[{"name": "ca", "mountPath": "/ca", "readOnly": True}])
    ca = {"name": "ca", "secret": {"secretName": VAULT_CA_SECRET, "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    return cronjob(cfg, item, [step], volumes=[ca], api_token=True)


def authentik_cronjob(cfg: PlatformConfig, item: BackupItem) -> dict[str, Any]:
    step = container("pg-dump", versions.POSTGRES_IMAGE, command=pg_dump_command(item),
                     env=[{"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": AUTHENTIK_DB_SECRET,
                                                                                "key": "password"}}}])
    return cronjob(cfg, item, [step])


def dns_cronjob(cfg: PlatformConfig, item: BackupItem, key_name: str) -> dict[str, Any]:
    server = f"bind9.{DNS_NAMESPACE}.svc.cluster.local"
    step = container("axfr", versions.BIND9_IMAGE,
                     command=["/bin/sh", "-c", axfr_script(item, cfg.domain.platform_zone, key_name,
                                                            cfg.dns.tsig_algorithm, server)],
                     env=[{"name": "TSIG_SECRET", "valueFrom": {"secretKeyRef": {"name": DNS_TSIG_SECRET,
                                                                                 "key": "secret"}}}])
    return cronjob(cfg, item, [step])


def tenant_cronjob(cfg: PlatformConfig, item: BackupItem, tenant_namespace: str) -> dict[str, Any]:
    talosconfig = f"{TMP_DIR}/talosconfig"
    fetch = container("talosconfig", versions.KUBECTL_IMAGE,
                      command=["/bin/bash", "-c", kubectl_fetch_script(
                          tenant_namespace, tenant_talosconfig_secret(item), TENANT_TALOSCONFIG_KEY, talosconfig)])
    tenant = next(t for t in cfg.tenants if t.name == item.tenant)
    # CACPPT's talosconfig is the tenant's admin credential (it writes no narrower one): it lives
    # only in this pod's memory-backed /tmp, for the one call that takes the snapshot.
    # No --nodes: the request goes to one of the talosconfig's endpoints (the control planes).
    snap = container("etcd-snapshot", f"ghcr.io/siderolabs/talosctl:{tenant.talos_version}",
                     command=talos_snapshot_command(item, talosconfig))
    return cronjob(cfg, item, [fetch, snap], api_token=True)


def tenant_talosconfig_secret(item: BackupItem) -> str:
    assert item.tenant is not None
    return f"{item.tenant}-talosconfig"  # components.tenant.capi.cluster_name(tenant) == tenant.name


# --- RBAC, Talos and network policies ----------------------------------------------------------

def service_account(item: BackupItem) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
            "metadata": {"name": item.name, "namespace": NAMESPACE, "labels": item.labels}}


def tenant_rbac(item: BackupItem, tenant_namespace: str) -> list[dict[str, Any]]:
    """get on exactly the tenant's talosconfig Secret, nothing else."""
    rbac = "rbac.authorization.k8s.io"
    meta = {"name": f"backup-{item.name}", "namespace": tenant_namespace, "labels": item.labels}
    return [
        {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [tenant_talosconfig_secret(item)],
                    "verbs": ["get"]}]},
        {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": rbac, "kind": "Role", "name": meta["name"]},
         "subjects": [{"kind": "ServiceAccount", "name": item.name, "namespace": NAMESPACE}]},
    ]


def talos_service_account(item: BackupItem) -> dict[str, Any]:
    """Talos issues a client certificate with only these roles into the Secret ``item.name``.
    Ref: siderolabs/talos v1.13.9 crd_controller.go (spec.roles, checked against allowedRoles)."""
    return {"apiVersion": "talos.dev/v1alpha1", "kind": "ServiceAccount",
            "metadata": {"name": item.name, "namespace": NAMESPACE, "labels": item.labels},
            "spec": {"roles": [TALOS_ETCD_BACKUP_ROLE]}}


def talos_api_access_patch() -> dict[str, Any]:
    """Machine config: pods of NAMESPACE may get Talos credentials with the etcd-backup role only.
    Ref: siderolabs/talos v1.13.9 docs "Talos API access from Kubernetes";
    ../shared/schemas/talos/config.schema.json v1alpha1.KubernetesTalosAPIAccessConfig."""
    return {"machine": {"features": {"kubernetesTalosAPIAccess": {
        "enabled": True, "allowedRoles": [TALOS_ETCD_BACKUP_ROLE], "allowedKubernetesNamespaces": [NAMESPACE]}}}}


def egress_policies(cfg: PlatformConfig, items: Sequence[BackupItem]) -> list[dict[str, Any]]:
    """Each job's flows and nothing else (the namespace is default-deny, DNS to kube-dns allowed)."""
    assert cfg.backups is not None
    out = []
    uploaders = {"matchExpressions": [{"key": JOB_LABEL, "operator": "Exists"}]}
    # The S3 endpoint by name: Cilium's DNS proxy learns its addresses (toFQDNs needs the DNS
    # rule on the kube-dns flow of the same endpoints). Ref: Cilium docs "DNS based" policies.
    out.append({
        "apiVersion": netpol.CILIUM_API, "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "backup-to-object-storage", "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {
            "endpointSelector": uploaders,
            "description": "Backup uploads reach the OVHcloud Object Storage endpoint over HTTPS only.",
            "egress": [
                {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                                  "k8s:k8s-app": "kube-dns"}}],
                 "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}]},
                {"toFQDNs": [{"matchName": s3_endpoint(cfg.backups.region)}],
                 "toPorts": netpol.cilium_ports(netpol.tcp(443))},
            ],
        },
    })
    names = {i.name for i in items}
    if "management-etcd" in names:
        # talos.default has the control planes' host addresses as endpoints (apid, 50000).
        out.append({
            "apiVersion": netpol.CILIUM_API, "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "management-etcd-to-talos-api", "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
            "spec": {"endpointSelector": {"matchLabels": {JOB_LABEL: "management-etcd"}},
                     "description": "The etcd snapshot job reaches apid on the nodes.",
                     "egress": [{"toEntities": ["host", "remote-node"],
                                 "toPorts": netpol.cilium_ports(netpol.tcp(TALOS_API_PORT))}]},
        })
    out.append(netpol.network_policy(
        "vault-to-vault", NAMESPACE, {JOB_LABEL: "vault"},
        egress=[netpol.egress_rule(netpol.tcp(VAULT_PORT), [{
            "namespaceSelector": netpol.namespace_selector("vault"),
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "vault", "component": "server"}}}])]))
    out.append(netpol.network_policy(
        "authentik-to-postgresql", NAMESPACE, {JOB_LABEL: "authentik"},
        egress=[netpol.egress_rule(netpol.tcp(POSTGRES_PORT), [{
            "namespaceSelector": netpol.namespace_selector("authentik"),
            "podSelector": {"matchLabels": dict(AUTHENTIK_DB_LABELS)}}])]))
    out.append(netpol.network_policy(
        "dns-to-bind9", NAMESPACE, {JOB_LABEL: "dns"},
        egress=[netpol.egress_rule(netpol.tcp(BIND9_POD_PORT), [{
            "namespaceSelector": netpol.namespace_selector(DNS_NAMESPACE),
            "podSelector": {"matchLabels": dict(BIND9_POD_LABELS)}}])]))
    return out


def tenant_egress_policies(item: BackupItem, tenant_namespace: str) -> list[dict[str, Any]]:
    """The API server (its Secret) and the Talos API of *its* tenant's control-plane VMs only (the
    labels CAPK puts on them, as components.tenant.policies selects them for ingress)."""
    assert item.tenant is not None
    labels = {JOB_LABEL: item.name}
    control_planes = {tenant_capi.ROLE_LABEL: tenant_capi.CONTROL_PLANE_ROLE,
                      tenant_capi.CLUSTER_NAME_LABEL: item.tenant}  # cluster_name(tenant) == tenant.name
    return [
        netpol.allow_kube_apiserver_egress(NAMESPACE, labels, f"{item.name}-to-apiserver",
                                           description="Reads the tenant's talosconfig Secret."),
        netpol.network_policy(f"{item.name}-to-talos-api", NAMESPACE, labels, egress=[netpol.egress_rule(
            netpol.tcp(TALOS_API_PORT), [{"namespaceSelector": netpol.namespace_selector(tenant_namespace),
                                          "podSelector": {"matchLabels": control_planes}}])]),
    ]


def ingress_from_backups(name: str, namespace: str, pod_labels: Mapping[str, str], port: int,
                         job: str) -> dict[str, Any]:
    """The target namespace's side of a flow (every platform namespace is default-deny)."""
    return netpol.network_policy(
        name, namespace, pod_labels,
        ingress=[{"ports": netpol.policy_ports(netpol.tcp(port)),
                  "from": [{"namespaceSelector": netpol.namespace_selector(NAMESPACE),
                            "podSelector": {"matchLabels": {JOB_LABEL: job}}}]}])


def vault_policy() -> str:
    """The backup job's Vault policy: read the raft snapshot endpoint, nothing else."""
    return ('# Backups: raft snapshots only.\n'
            f'path "{VAULT_SNAPSHOT_PATH}" {{\n  capabilities = ["read"]\n}}\n')


def restore_commands(cfg: PlatformConfig, stamp: str = "<STAMP>") -> dict[str, dict[str, str]]:
    """What the runbooks tell the operator to run, from the same constants as the jobs."""
    items = {i.name: i for i in all_items(cfg)}
    zone = cfg.domain.platform_zone
    out: dict[str, dict[str, str]] = {}
    for name, item in items.items():
        cmds = {"download": download_command(item, stamp),
                "object": f"{key_prefix(cfg)}/{item.prefix}/{stamp}-{item.file}.bin"}
        if name == "management-etcd" or item.tenant:
            cmds["restore"] = f"talosctl --nodes <CONTROL_PLANE_IP> bootstrap --recover-from=./{item.file}"
        elif name == "vault":
            cmds["restore"] = f"vault operator raft snapshot restore -force ./{item.file}"
        elif name == "authentik":
            cmds["restore"] = (f"pg_restore --clean --if-exists --no-owner --host 127.0.0.1 --username {AUTHENTIK_DB} "
                               f"--dbname {AUTHENTIK_DB} ./{item.file}")
        elif name == "dns":
            cmds["restore"] = f"named-checkzone {zone} ./{item.file}"
        out[name] = cmds
    return out


# ---------------------------------------------------------------------------------------------
# Component
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackupsArgs:
    config: PlatformConfig
    dns_access: DnsUpdateAccess  # the transfer-only TSIG key
    authentik_db_password: pulumi.Output[str]
    depends_on: Sequence[pulumi.Resource] = ()  # Cilium (CRDs of the policies), cert-manager (issuer)
    vault_ready: Sequence[pulumi.Resource] = field(default_factory=tuple)  # policy + role exist
    authentik_ready: Sequence[pulumi.Resource] = field(default_factory=tuple)  # its namespace and database
    talos_ready: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the Talos SA CRD exists


class Backups(pulumi.ComponentResource):
    """``bucket``, ``reader_credentials`` (secret, for restores), ``inventory`` (stack output) and
    :meth:`add_tenant` for each tenant cluster built."""

    bucket: ovh.cloudproject.Storage
    reader_credentials: pulumi.Output[dict[str, str]]
    passphrase: pulumi.Output[str]
    passphrases: dict[str, pulumi.Output[str]]  # every generation's key, by object prefix (k<N>)
    inventory: dict[str, Any]

    def __init__(self, name: str, args: BackupsArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:backups:Backups", name, None, opts)
        cfg = args.config
        if cfg.backups is None:
            raise ValueError("Backups needs the backups section of the stack config")
        b = cfg.backups
        self._name, self._cfg, self._provider = name, cfg, provider
        self.inventory = inventory(cfg)
        bucket = bucket_name(cfg)
        child = pulumi.ResourceOptions(parent=self)
        # OVH's API names regions in upper case ("GRA"), the S3 endpoint in lower case.
        # Ref: pulumi registry ovh.CloudProject.Storage example (regionName "GRA").
        self.bucket = ovh.cloudproject.Storage(
            f"{name}-bucket", service_name=b.cloud_project_id, region_name=b.region.upper(), name=bucket,
            versioning=ovh.cloudproject.StorageVersioningArgs(status="enabled"),
            # Thousands of backup objects must not be listed into the stack state on every refresh.
            hide_objects=True,
            opts=irreplaceable(parent=self),
        )
        ovh.CloudProjectStorageObjectBucketLifecycleConfiguration(
            f"{name}-lifecycle", service_name=b.cloud_project_id, region_name=b.region.upper(),
            container_name=self.bucket.name, rules=lifecycle_rules(cfg), opts=child,
        )
        # A change of generation (rotation.backupCredentials) replaces the credentials (new keys
        # before the old are deleted): S3 credentials have no name or keeper of their own to vary.
        generation = rotation.generation_id(f"{name}-credentials-generation", cfg.rotation.backup_credentials, self)
        writer = self._user(name, "writer", b.cloud_project_id, writer_policy(bucket), generation)
        reader = self._user(name, "reader", b.cloud_project_id, reader_policy(bucket), generation)
        self.reader_credentials = pulumi.Output.secret(pulumi.Output.all(reader.access_key_id, reader.secret_access_key)
                                                       .apply(lambda v: {"accessKeyId": v[0], "secretAccessKey": v[1]}))
        # One key per generation (rotation.backupEncryptionKey), all kept and protected: objects
        # written under k<old>/ stay readable until they expire, and a rotation only adds a key (a
        # protected key could not be replaced). The newest is the one the CronJobs write with.
        self.passphrases = {
            f"k{g}": pulumi.Output.secret(random.RandomPassword(
                rotation.suffixed(f"{name}-encryption-key", g), length=64, special=False,
                keepers=rotation.keepers(g), opts=pulumi.ResourceOptions(parent=self, protect=True)).result)
            for g in range(cfg.rotation.backup_encryption_key + 1)
        }
        self.passphrase = self.passphrases[key_prefix(cfg)]

        self.namespace = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on),
            provider, opts=child)
        self._ns_opts = pulumi.ResourceOptions(parent=self, provider=provider,
                                               depends_on=[self.namespace, *args.depends_on])
        k8s.core.v1.Secret(
            f"{name}-s3", metadata={"name": S3_SECRET, "namespace": NAMESPACE, "labels": MANAGED_BY}, type="Opaque",
            string_data={KEY_ACCESS_KEY: pulumi.Output.secret(writer.access_key_id),
                         KEY_SECRET_KEY: pulumi.Output.secret(writer.secret_access_key),
                         KEY_PASSPHRASE: self.passphrase},
            opts=self._ns_opts)
        items = platform_items(cfg)
        for m in egress_policies(cfg, items):
            register(f"{name}-{m['metadata']['name']}", m, self._ns_opts)
        for item in items:
            getattr(self, f"_{item.name.replace('-', '_')}")(name, cfg, item, args)
        self.register_outputs({"bucket": bucket, "inventory": self.inventory})

    def _user(self, name: str, role: str, project: str, policy: dict[str, Any],
              generation: random.RandomId) -> ovh.cloudproject.S3Credential:
        child = pulumi.ResourceOptions(parent=self)
        # objectstore_operator: the S3 policy below narrows it to one bucket and its actions.
        user = ovh.cloudproject.User(f"{name}-{role}", service_name=project, description=f"backups {role}",
                                     role_names=["objectstore_operator"], opts=child)
        ovh.cloudproject.S3Policy(f"{name}-{role}-policy", service_name=project, user_id=user.id,
                                  policy=json.dumps(policy, sort_keys=True), opts=child)
        return ovh.cloudproject.S3Credential(
            f"{name}-{role}-credentials", service_name=project, user_id=user.id,
            opts=pulumi.ResourceOptions(parent=self, replace_with=[generation],
                                        additional_secret_outputs=["accessKeyId", "secretAccessKey"]))

    def _job(self, name: str, item: BackupItem, manifest: dict[str, Any], extra: Sequence[pulumi.Resource] = ()) -> None:
        sa = register(f"{name}-{item.name}-sa", service_account(item), self._ns_opts)
        k8s.batch.v1.CronJob(f"{name}-{item.name}", metadata=manifest["metadata"], spec=manifest["spec"],
                             opts=pulumi.ResourceOptions.merge(self._ns_opts,
                                                               pulumi.ResourceOptions(depends_on=[sa, *extra])))

    def _management_etcd(self, name: str, cfg: PlatformConfig, item: BackupItem, args: BackupsArgs) -> None:
        opts = pulumi.ResourceOptions.merge(self._ns_opts, pulumi.ResourceOptions(depends_on=list(args.talos_ready)))
        talos_sa = register(f"{name}-{item.name}-talos-sa", talos_service_account(item), opts)
        self._job(name, item, management_etcd_cronjob(cfg, item), [talos_sa])

    def _vault(self, name: str, cfg: PlatformConfig, item: BackupItem, args: BackupsArgs) -> None:
        ca = register(f"{name}-internal-ca", {
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": VAULT_CA_SECRET, "namespace": NAMESPACE, "labels": dict(MANAGED_BY)},
            # Only its ca.crt is used: the internal CA that signs Vault's certificate.
            "spec": {"secretName": VAULT_CA_SECRET, "commonName": "backups.internal", "duration": "8760h",
                     "issuerRef": {"name": INTERNAL_CA_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
                     "privateKey": {"algorithm": "ECDSA", "size": 256}, "usages": ["client auth"]},
        }, self._ns_opts)
        register(f"{name}-vault-ingress", ingress_from_backups(
            "allow-backups", "vault", {"app.kubernetes.io/name": "vault", "component": "server"}, VAULT_PORT, item.name),
            pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=list(args.vault_ready)))
        self._job(name, item, vault_cronjob(cfg, item), [ca, *args.vault_ready])

    def _authentik(self, name: str, cfg: PlatformConfig, item: BackupItem, args: BackupsArgs) -> None:
        secret = k8s.core.v1.Secret(
            f"{name}-authentik-db", metadata={"name": AUTHENTIK_DB_SECRET, "namespace": NAMESPACE, "labels": MANAGED_BY},
            type="Opaque", string_data={"password": pulumi.Output.secret(args.authentik_db_password)}, opts=self._ns_opts)
        register(f"{name}-authentik-ingress", ingress_from_backups(
            "allow-backups", "authentik", AUTHENTIK_DB_LABELS, POSTGRES_PORT, item.name),
            pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=list(args.authentik_ready)))
        self._job(name, item, authentik_cronjob(cfg, item), [secret, *args.authentik_ready])

    def _dns(self, name: str, cfg: PlatformConfig, item: BackupItem, args: BackupsArgs) -> None:
        secret = k8s.core.v1.Secret(
            f"{name}-dns-tsig", metadata={"name": DNS_TSIG_SECRET, "namespace": NAMESPACE, "labels": MANAGED_BY},
            type="Opaque", string_data={"secret": args.dns_access.secret}, opts=self._ns_opts)
        self._job(name, item, dns_cronjob(cfg, item, args.dns_access.key_name), [secret, args.dns_access.ready])

    def add_tenant(self, tenant: Tenant, tenant_namespace: str, depends_on: Sequence[pulumi.Resource]) -> None:
        """The tenant's etcd backup: a CronJob here and a Role on its talosconfig Secret."""
        name, cfg = self._name, self._cfg
        item = tenant_item(cfg, tenant)
        in_tenant = pulumi.ResourceOptions(parent=self, provider=self._provider, depends_on=list(depends_on))
        rbac = [register(f"{name}-{item.name}-{m['kind'].lower()}", m, in_tenant) for m in tenant_rbac(item, tenant_namespace)]
        # The tenant namespace already admits platform namespaces on 50000
        # (components.tenant.policies): nothing to add on its side.
        for m in tenant_egress_policies(item, tenant_namespace):
            register(f"{name}-{m['metadata']['name']}", m, self._ns_opts)
        self._job(name, item, tenant_cronjob(cfg, item, tenant_namespace), rbac)
