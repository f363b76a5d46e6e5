"""Bind9, authoritative for the platform zone: a one-replica StatefulSet we render ourselves.

What it serves: the platform zone only, no recursion; dynamic updates (RFC 2136) and zone
transfers only with TSIG keys, one per client. The zone file and its journal live on a
persistent volume; the ConfigMap only seeds the zone the first time.

Security: the official ISC image starts ``named -u bind`` as root to drop privileges; here named
starts directly as the unprivileged user (named skips ``initgroups``/capabilities when not root,
Ref: isc-projects/bind9 bin/named/os.c ``named_os_inituserinfo``/``linux_setcaps``), listens on an
unprivileged port (5053) and the Service maps 53 -> 5053. So the pod passes Pod Security
``restricted``: no capability, read-only root filesystem, RuntimeDefault seccomp.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

import versions
from components.core import rotation
from components.core.common import MANAGED_BY
from components.core.contracts import BIND9_POD_LABELS, BIND9_POD_PORT

NAME = "bind9"
UID = 53  # the image's "bind" user on current builds; any non-root id works (named never setuid()s here)
CONFIG_DIR = "/etc/bind/conf"
KEYS_DIR = "/etc/bind/keys"
KEYS_FILE = "tsig-keys.conf"
DATA_DIR = "/var/lib/bind"
SEED_DIR = "/seed"
# Ref: cilium pkg/annotation/k8s.go, LBIPAMIPsKey = "lbipam.cilium.io/ips".
LB_IPAM_IPS = "lbipam.cilium.io/ips"

# Bytes of key material per algorithm: the HMAC output size (RFC 8945 section 6.1 recommends at
# least that much).
TSIG_KEY_BYTES = {"hmac-sha256": 32, "hmac-sha512": 64}


# Rule types of update-policy this module renders. Ref: BIND 9.20 ARM (doc/arm/reference.rst,
# "update-policy"): ``name`` matches exactly that name, ``subdomain`` the name and everything
# below it, ``zonesub`` everything in the zone (no name field).
_RULE_TYPES = ("name", "subdomain", "zonesub")


@dataclass(frozen=True)
class UpdateRule:
    """One update-policy rule: ``(grant|deny) <key> <ruletype> [<name>] <types>``.

    BIND checks the rules in order and the first rule that matches the key, the name and the
    type of a record decides (ARM, "update-policy"): deny rules must come before the broader
    grant they carve out of.
    """

    action: str  # "grant" | "deny"
    key: str  # TSIG key name (the identity)
    ruletype: str  # one of _RULE_TYPES
    name: str | None  # absolute name; None for zonesub
    types: Sequence[str]  # record types, e.g. ("TXT",) or ("ANY",)

    def render(self) -> str:
        if self.action not in ("grant", "deny"):
            raise ValueError(f"update-policy action {self.action!r}: expected grant or deny")
        if self.ruletype not in _RULE_TYPES:
            raise ValueError(f"update-policy rule type {self.ruletype!r}: expected one of {_RULE_TYPES}")
        if (self.ruletype == "zonesub") != (self.name is None):
            raise ValueError(f"update-policy {self.ruletype}: a name is required except for zonesub")
        if not self.types:
            # Without types BIND would match every type but NS/SOA/RRSIG/NSEC*: never implicit here.
            raise ValueError("update-policy rule without record types")
        name = "" if self.name is None else f" {_fqdn(self.name)}"
        return f"{self.action} {self.key} {self.ruletype}{name} {' '.join(self.types)};"


@dataclass(frozen=True)
class ZoneSpec:
    """The platform zone as Bind9 serves it."""

    zone: str  # e.g. cloud.weebosi.fr
    nameserver: str  # FQDN of the name server, in the parent zone: ns1.weebosi.fr
    hostmaster: str  # SOA RNAME as a mail address: platform@weebosi.fr
    ttl: int
    algorithm: str  # TSIG algorithm of every key
    update_rules: Sequence[UpdateRule]  # the zone's update-policy, in order (first match wins)
    transfer_keys: Sequence[str]  # key names allowed to AXFR the zone
    # Keys that may only AXFR the zone, never update it (the backup job's key).
    transfer_only_keys: Sequence[str] = ()

    @property
    def update_keys(self) -> list[str]:
        return sorted({rule.key for rule in self.update_rules if rule.action == "grant"})

    @property
    def zone_file(self) -> str:
        return f"{self.zone}.db"


# ---------------------------------------------------------------------------------------------
# Pure renderers
# ---------------------------------------------------------------------------------------------

def _fqdn(name: str) -> str:
    return name if name.endswith(".") else f"{name}."


def soa_rname(mail: str) -> str:
    """A mail address as the SOA RNAME: dots of the local part escaped, '@' becomes a dot (RFC 1035 8)."""
    local, _, domain = mail.partition("@")
    return _fqdn(f"{local.replace('.', chr(92) + '.')}.{domain}")


def named_conf(spec: ZoneSpec) -> str:
    """named.conf: authoritative only, for one zone. Holds no secret (the keys are included from
    the Secret mounted at KEYS_DIR)."""
    if not spec.update_keys or not spec.transfer_keys:
        raise ValueError("Bind9 needs at least one key allowed to update and one to transfer the zone")
    unknown = set(spec.transfer_keys) - set(spec.update_keys)
    if set(spec.transfer_only_keys) & set(spec.update_keys):
        raise ValueError(f"transfer-only keys must not be granted updates: {sorted(spec.transfer_only_keys)}")
    if unknown:
        raise ValueError(f"transfer keys without a key definition: {sorted(unknown)}")
    # Kept in the given order: update-policy is first-match.
    grants = "\n".join(f"        {rule.render()}" for rule in spec.update_rules)
    transfer = " ".join(f"key {key};" for key in [*spec.transfer_keys, *spec.transfer_only_keys])
    # Ref: BIND 9.20 ARM, "options" / "zone" statement grammar (recursion, allow-transfer,
    # update-policy (grant|deny ... name|subdomain|zonesub), pid-file none, type primary).
    return f"""// Rendered by weebo-platform. Authoritative only: {spec.zone}.
include "{KEYS_DIR}/{KEYS_FILE}";

options {{
    directory "{DATA_DIR}";
    listen-on port {BIND9_POD_PORT} {{ any; }};
    listen-on-v6 {{ none; }};
    pid-file none;
    recursion no;
    allow-recursion {{ none; }};
    allow-query-cache {{ none; }};
    allow-query {{ any; }};
    allow-transfer {{ none; }};
    allow-update {{ none; }};
    dnssec-validation no;
    notify no;
    minimal-responses yes;
    version none;
    hostname none;
    server-id none;
}};

zone "{spec.zone}" {{
    type primary;
    file "{spec.zone_file}";
    allow-transfer {{ {transfer} }};
    update-policy {{
{grants}
    }};
}};
"""


def tsig_keys_conf(keys: Mapping[str, str], algorithm: str) -> str:
    """The key statements (secret material: only ever rendered inside an Output into a Secret)."""
    return "".join(
        f'key "{name}" {{\n    algorithm {algorithm};\n    secret "{secret}";\n}};\n'
        for name, secret in sorted(keys.items())
    )


def zone_seed(spec: ZoneSpec) -> str:
    """The zone as first served: SOA and NS pointing at the name server in the parent zone.
    Everything else arrives by dynamic update (ExternalDNS, cert-manager)."""
    ns = _fqdn(spec.nameserver)
    return f"""$ORIGIN {_fqdn(spec.zone)}
$TTL {spec.ttl}
@   IN SOA {ns} {soa_rname(spec.hostmaster)} (
        1       ; serial (Bind9 increments it on every dynamic update)
        3600    ; refresh
        600     ; retry
        1209600 ; expire
        {spec.ttl} )   ; negative-caching TTL
    IN NS  {ns}
"""


def labels() -> dict[str, str]:
    return {**MANAGED_BY, **BIND9_POD_LABELS}


def _restricted_container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def statefulset_spec(
    spec: ZoneSpec, *, config_map: str, keys_secret: str, storage_size: str, storage_class: str,
    keys_checksum: Any = None,
) -> dict[str, Any]:
    """The StatefulSet spec (camelCase, as the API takes it). ``keys_checksum`` (an Output of
    ``components.core.rotation.checksum``) rolls named when a TSIG key is rotated."""
    zone_path = f"{DATA_DIR}/{spec.zone_file}"
    # The seed is copied only when the volume holds no zone yet: after that the zone file and its
    # journal on the volume are the truth (dynamic updates must survive restarts).
    seed = f'set -eu; if [ ! -s "{zone_path}" ]; then cp "{SEED_DIR}/{spec.zone_file}" "{zone_path}"; fi'
    # Authoritative answer for the zone's SOA: named is up and the zone is loaded.
    ready = (
        f"dig +norecurse +time=2 +tries=1 -p {BIND9_POD_PORT} @127.0.0.1 SOA {spec.zone} "
        "| grep -q 'status: NOERROR'"
    )
    checksum = hashlib.sha256((named_conf(spec) + zone_seed(spec)).encode()).hexdigest()
    volume_claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage_size}},
        # Always named: the management cluster has no default StorageClass (issue 13).
        "storageClassName": storage_class,
    }
    mounts_common = [{"name": "data", "mountPath": DATA_DIR}]
    return {
        "replicas": 1,  # one primary: the zone is written by dynamic updates, not replicated
        "serviceName": NAME,
        "selector": {"matchLabels": dict(BIND9_POD_LABELS)},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "template": {
            "metadata": {
                "labels": labels(),
                # Restart named when its configuration or a TSIG key changes: named reads both at
                # start-up only (a rotated key, components/core/rotation.py, changes the keys Secret).
                "annotations": {"weebo.io/config-sha256": checksum,
                                **({"weebo.io/tsig-keys-sha256": keys_checksum} if keys_checksum is not None else {})},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": UID,
                    "runAsGroup": UID,
                    "fsGroup": UID,
                    "fsGroupChangePolicy": "OnRootMismatch",
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "initContainers": [
                    {
                        "name": "seed-zone",
                        "image": versions.BIND9_IMAGE,
                        "command": ["/bin/sh", "-c", seed],
                        "securityContext": _restricted_container_security(),
                        "resources": {
                            "requests": {"cpu": "10m", "memory": "16Mi"},
                            "limits": {"cpu": "100m", "memory": "32Mi"},
                        },
                        "volumeMounts": [
                            *mounts_common,
                            {"name": "config", "mountPath": SEED_DIR, "readOnly": True},
                        ],
                    }
                ],
                "containers": [
                    {
                        "name": "named",
                        "image": versions.BIND9_IMAGE,
                        # -g: foreground, log to stderr. No "-u bind": already unprivileged.
                        "command": ["/usr/sbin/named"],
                        "args": ["-g", "-c", f"{CONFIG_DIR}/named.conf"],
                        "ports": [
                            {"name": "dns-udp", "containerPort": BIND9_POD_PORT, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": BIND9_POD_PORT, "protocol": "TCP"},
                        ],
                        "securityContext": _restricted_container_security(),
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"cpu": "1", "memory": "256Mi"},
                        },
                        "startupProbe": {
                            "tcpSocket": {"port": "dns-tcp"},
                            "periodSeconds": 2,
                            "failureThreshold": 30,
                        },
                        "readinessProbe": {
                            "exec": {"command": ["/bin/sh", "-c", ready]},
                            "periodSeconds": 10,
                            "timeoutSeconds": 5,
                        },
                        "livenessProbe": {
                            "tcpSocket": {"port": "dns-tcp"},
                            "periodSeconds": 20,
                            "failureThreshold": 3,
                        },
                        "volumeMounts": [
                            *mounts_common,
                            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                            {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
                            # named's session key (nsupdate -l) and scratch space: the root fs is read-only.
                            {"name": "run", "mountPath": "/run/named"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "config", "configMap": {"name": config_map}},
                    # 0440 + fsGroup: readable by named's group only.
                    {"name": "keys", "secret": {"secretName": keys_secret, "defaultMode": 0o440}},
                    {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
                ],
            },
        },
        "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": labels()}, "spec": volume_claim}],
    }


def service_spec(load_balancer_ip: str | None, cluster_ip: str | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """(annotations, spec) of the Service: 53/udp+tcp, a LoadBalancer on the pinned pool IP when
    there is one (Cilium LB IPAM), otherwise cluster-internal only. ``cluster_ip``: a fixed
    ClusterIP (components.core.contracts.bind9_cluster_ip), for clients that need an address."""
    ports = [
        {"name": "dns-udp", "port": 53, "targetPort": "dns-udp", "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "targetPort": "dns-tcp", "protocol": "TCP"},
    ]
    spec: dict[str, Any] = {"selector": dict(BIND9_POD_LABELS), "ports": ports}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if load_balancer_ip is None:
        return {}, {"type": "ClusterIP", **spec}
    return {LB_IPAM_IPS: load_balancer_ip}, {"type": "LoadBalancer", **spec}


def ingress_policy_spec() -> dict[str, Any]:
    """DNS to Bind9 from anywhere (public resolvers, cluster clients); nothing else."""
    return {
        "podSelector": {"matchLabels": dict(BIND9_POD_LABELS)},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "ports": [
                    {"protocol": "UDP", "port": BIND9_POD_PORT},
                    {"protocol": "TCP", "port": BIND9_POD_PORT},
                ]
            }
        ],
    }


# ---------------------------------------------------------------------------------------------
# Component
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bind9Args:
    namespace: str
    zone: ZoneSpec
    keys: Mapping[str, pulumi.Output[str]]  # TSIG key name -> base64 secret (Pulumi secrets)
    storage_size: str
    storage_class: str  # a StorageClass that exists on the cluster (PlatformConfig.storage_class)
    load_balancer_ip: str | None = None
    cluster_ip: str | None = None  # fixed ClusterIP of the Service (immutable once created)
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class Bind9(pulumi.ComponentResource):
    """Bind9 serving the platform zone. Waiting on this component means: named is up with the
    zone loaded and reachable through ``service_host``."""

    service_host: str
    statefulset: k8s.apps.v1.StatefulSet
    service: k8s.core.v1.Service

    def __init__(self, name: str, args: Bind9Args, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:dns:Bind9", name, None, opts)
        first = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(args.depends_on))
        meta = {"namespace": args.namespace, "labels": labels()}
        self.service_host = f"{NAME}.{args.namespace}.svc.cluster.local"

        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={**meta, "name": f"{NAME}-config"},
            data={"named.conf": named_conf(args.zone), args.zone.zone_file: zone_seed(args.zone)},
            opts=first,
        )
        names = sorted(args.keys)
        material = pulumi.Output.all(*(args.keys[n] for n in names)).apply(
            lambda secrets: tsig_keys_conf(dict(zip(names, secrets)), args.zone.algorithm)
        )
        keys = k8s.core.v1.Secret(
            f"{name}-keys",
            metadata={**meta, "name": f"{NAME}-tsig-keys"},
            type="Opaque",
            string_data={KEYS_FILE: pulumi.Output.secret(material)},
            opts=first,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-dns",
            metadata={**meta, "name": "bind9-allow-dns"},
            spec=ingress_policy_spec(),
            opts=first,
        )
        annotations, svc_spec = service_spec(args.load_balancer_ip, args.cluster_ip)
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={**meta, "name": NAME, "annotations": annotations},
            spec=svc_spec,
            opts=first,
        )
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata={**meta, "name": NAME},
            spec=statefulset_spec(
                args.zone,
                config_map=f"{NAME}-config",
                keys_secret=f"{NAME}-tsig-keys",
                storage_size=args.storage_size,
                storage_class=args.storage_class,
                keys_checksum=rotation.checksum(*(args.keys[n] for n in names)),
            ),
            opts=pulumi.ResourceOptions(
                parent=self, provider=provider, depends_on=[*args.depends_on, config, keys, self.service]
            ),
        )
        self.register_outputs({"serviceHost": self.service_host})
