"""The platform DNS zone: Bind9 authoritative for it, ExternalDNS publishing into it, and the
OVH records that delegate it from the parent zone.

Order: namespace -> (OVH delegation) -> Bind9 -> ExternalDNS. Bind9 being ready means it serves
the zone *and* the zone is delegated, so ACME DNS-01 issuers waiting on it can be validated.
ExternalDNS also watches Traefik's IngressRoutes, whose CRDs come with Traefik, which itself
waits for the ACME issuers: ExternalDNS is therefore added once Traefik exists
(:meth:`PlatformDns.add_external_dns`). The bootstrap gates that reach a platform name (Authentik's
API, Vault's initialisation) wait for that release (``stacks/environment.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_ovh as ovh
import pulumi_random as random

from components.dns import bind9

from components.core import rotation
from components.dns.bind9 import Bind9, Bind9Args, UpdateRule, ZoneSpec
from components.edge.cert_manager import acme_challenge_names
from components.core.common import MANAGED_BY, helm_release
from components.core.contracts import (
    BIND9_POD_LABELS,
    BIND9_POD_PORT,
    DNS_NAMESPACE,
    DnsUpdateAccess,
    bind9_cluster_ip,
)
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from components.edge.traefik import acme_certificates
from stacks.config import PlatformConfig

NAMESPACE = DNS_NAMESPACE
EXTERNAL_DNS_ANNOTATION_PREFIX = "external-dns.alpha.kubernetes.io/"
EXTERNAL_DNS_KEY = "external-dns"
CERT_MANAGER_KEY = "cert-manager"
BACKUP_KEY = "backup-transfer"  # AXFR only (components/operations/backups.py), when backups are configured
EXTERNAL_DNS_TSIG_SECRET = "external-dns-tsig"  # in NAMESPACE, key "tsig-secret"
EXTERNAL_DNS_LABELS = {"app.kubernetes.io/name": "external-dns"}  # the chart's selector label
# The Secret cert-manager is expected to create in its own namespace from
# ``cert_manager_access.secret`` (cert-manager reads RFC2136 secrets from its namespace only).
CERT_MANAGER_TSIG_SECRET = "rfc2136-tsig-cert-manager"
KUBE_APISERVER_PORT = 6443  # Talos runs kube-apiserver on the hosts' port 6443


# ---------------------------------------------------------------------------------------------
# Pure renderers
# ---------------------------------------------------------------------------------------------

def nameserver(cfg: PlatformConfig) -> str:
    """The name server of the platform zone, a name in the parent zone (it has glue there)."""
    return f"{cfg.dns.nameserver_label}.{cfg.domain.parent_zone}"


# What ExternalDNS writes: address records, aliases, and the TXT records of its registry
# ("a-<name>", "cname-<name>"; Ref: external-dns v0.21.0 registry/mapper/mapper.go ToTXTName).
# Never NS (a sub-delegation), SOA or anything else.
EXTERNAL_DNS_RECORD_TYPES = ("A", "AAAA", "CNAME", "TXT")


def update_rules(cfg: PlatformConfig) -> list[UpdateRule]:
    """The zone's update-policy, least privilege per key (first match wins, so denies first).

    - cert-manager: TXT at exactly the ``_acme-challenge`` name of each ACME certificate the
      program creates (``traefik.acme_certificates``) and nowhere else, so it can neither touch
      ExternalDNS's records nor its TXT registry.
    - ExternalDNS: A/AAAA/CNAME/TXT anywhere in the zone except at and under those challenge
      names (it would otherwise be able to answer or wipe a DNS-01 challenge).
    """
    challenges = acme_challenge_names(acme_certificates(cfg))
    zone = cfg.domain.platform_zone
    outside = [c for c in challenges if not (c == zone or c.endswith(f".{zone}"))]
    if outside:
        raise ValueError(f"ACME challenge names outside the platform zone {zone}: {outside}")
    return [
        *(UpdateRule("deny", EXTERNAL_DNS_KEY, "subdomain", c, ("ANY",)) for c in challenges),
        UpdateRule("grant", EXTERNAL_DNS_KEY, "zonesub", None, EXTERNAL_DNS_RECORD_TYPES),
        *(UpdateRule("grant", CERT_MANAGER_KEY, "name", c, ("TXT",)) for c in challenges),
    ]


def zone_spec(cfg: PlatformConfig) -> ZoneSpec:
    return ZoneSpec(
        zone=cfg.domain.platform_zone,
        nameserver=nameserver(cfg),
        hostmaster=cfg.domain.acme_email,
        ttl=cfg.dns.ttl,
        algorithm=cfg.dns.tsig_algorithm,
        update_rules=update_rules(cfg),
        # ExternalDNS lists the zone with AXFR (--rfc2136-tsig-axfr); cert-manager never does.
        transfer_keys=[EXTERNAL_DNS_KEY],
        transfer_only_keys=[BACKUP_KEY] if cfg.backups is not None else [],
    )


def tsig_generation(cfg: PlatformConfig, key: str) -> int:
    """The rotation counter of a TSIG key (``rotation.tsig*``)."""
    r = cfg.rotation
    return {EXTERNAL_DNS_KEY: r.tsig_external_dns, CERT_MANAGER_KEY: r.tsig_cert_manager,
            BACKUP_KEY: r.tsig_backup_transfer}[key]


def external_dns_values(cfg: PlatformConfig, bind9_host: str) -> dict[str, Any]:
    """Values of the external-dns chart 1.21.1. No secret in here: the TSIG secret comes from a
    Secret through the environment (kingpin maps every flag to EXTERNAL_DNS_<FLAG>).
    Ref: external-dns v0.21.0 docs/tutorials/rfc2136.md ("Helm"), pkg/apis/externaldns/types.go."""
    zone = cfg.domain.platform_zone
    return {
        "provider": {"name": "rfc2136"},
        # traefik-proxy: IngressRoute/IngressRouteTCP/UDP of traefik.io (legacy traefik.containo.us
        # is off by default); the chart adds their RBAC when this source is listed
        # (templates/clusterrole.yaml, `has "traefik-proxy" .Values.sources`).
        "sources": ["service", "ingress", "traefik-proxy"],
        "policy": "sync",
        "registry": "txt",
        "txtOwnerId": cfg.management_cluster.name,
        "domainFilters": [zone],
        "triggerLoopOnEvent": True,
        "extraArgs": [
            f"--rfc2136-host={bind9_host}",
            "--rfc2136-port=53",
            f"--rfc2136-zone={zone}",
            f"--rfc2136-tsig-keyname={EXTERNAL_DNS_KEY}",
            f"--rfc2136-tsig-secret-alg={cfg.dns.tsig_algorithm}",
            "--rfc2136-tsig-axfr",
            f"--rfc2136-min-ttl={cfg.dns.ttl}s",
            # The annotation prefix read, pinned: v0.22 changes the default to
            # "external-dns.kubernetes.io/" (source/annotations/annotations.go), which would
            # silently unpublish every route target and tenant hostname written with the alpha
            # prefix on a chart bump. Ref: external-dns v0.21.0 pkg/apis/externaldns/types.go
            # ("annotation-prefix"), controller/execute.go (SetAnnotationPrefix).
            f"--annotation-prefix={EXTERNAL_DNS_ANNOTATION_PREFIX}",
        ],
        "env": [
            {
                "name": "EXTERNAL_DNS_RFC2136_TSIG_SECRET",
                "valueFrom": {"secretKeyRef": {"name": EXTERNAL_DNS_TSIG_SECRET, "key": "tsig-secret"}},
            }
        ],
        "resources": {
            "requests": {"cpu": "20m", "memory": "64Mi"},
            "limits": {"memory": "128Mi"},
        },
        # The key is read from the environment at start-up only: a rotated key must roll the pod
        # (its generator's inputs: the rotation counter and the algorithm's key length).
        "podAnnotations": {"weebo.io/tsig-key-generation": rotation.stamp(
            tsig_generation(cfg, EXTERNAL_DNS_KEY), cfg.dns.tsig_algorithm)},
    }


def external_dns_egress_spec() -> dict[str, Any]:
    """ExternalDNS -> Bind9 (updates and AXFR; the pod port, after the Service translation)."""
    return {
        "podSelector": {"matchLabels": dict(EXTERNAL_DNS_LABELS)},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"podSelector": {"matchLabels": dict(BIND9_POD_LABELS)}}],
                "ports": [
                    {"protocol": "UDP", "port": BIND9_POD_PORT},
                    {"protocol": "TCP", "port": BIND9_POD_PORT},
                ],
            }
        ],
    }


def external_dns_apiserver_policy() -> dict[str, Any]:
    """ExternalDNS -> kube-apiserver. The API server runs on the hosts: plain NetworkPolicies
    cannot select it, Cilium's ``kube-apiserver`` entity can.
    Ref: Cilium docs "Layer 3 examples / Entities based" (entity kube-apiserver)."""
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "external-dns-to-apiserver", "namespace": NAMESPACE},
        "spec": {
            "endpointSelector": {"matchLabels": dict(EXTERNAL_DNS_LABELS)},
            "egress": [
                {
                    "toEntities": ["kube-apiserver"],
                    "toPorts": [{"ports": [{"port": str(KUBE_APISERVER_PORT), "protocol": "TCP"}]}],
                }
            ],
        },
    }


def delegation_records(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """The parent-zone records delegating the platform zone to Bind9 (OVH DNS): an NS record for
    the subdomain and the glue A record of the name server. Empty without a public DNS IP."""
    ip = cfg.dns_ip
    if cfg.management_cluster.provisioner != "ovh-talos" or ip is None:
        return []
    ttl = max(cfg.dns.ttl, 60)  # OVH: ttl >= 60 (terraform-provider-ovh docs, ovh_domain_zone_record)
    return [
        {
            "role": "delegation-ns",
            "zone": cfg.domain.parent_zone,
            "subdomain": cfg.domain.platform_subdomain,
            "fieldtype": "NS",
            "target": f"{nameserver(cfg)}.",  # absolute: a bare name would be relative to the zone
            "ttl": ttl,
        },
        {
            "role": "glue-a",
            "zone": cfg.domain.parent_zone,
            "subdomain": cfg.dns.nameserver_label,
            "fieldtype": "A",
            "target": ip,
            "ttl": ttl,
        },
    ]


# ---------------------------------------------------------------------------------------------
# Component
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlatformDnsArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class PlatformDns(pulumi.ComponentResource):
    """Bind9 + ExternalDNS + OVH delegation of the platform zone.

    ``cert_manager_access`` / ``external_dns_access``: RFC2136 access per client (one TSIG key each).
    ``tsig_key`` / ``tsig_secret_name`` / ``bind9``: cert-manager's key, the name of the Secret it
    should hold it in (in its own namespace) and what to wait for; kept for the current
    ``CertManager.add_issuers`` call.
    """

    bind9: Bind9
    cert_manager_access: DnsUpdateAccess
    external_dns_access: DnsUpdateAccess
    tsig_key: pulumi.Output[str]
    tsig_secret_name: str
    external_dns: k8s.helm.v3.Release | None

    def __init__(self, name: str, args: PlatformDnsArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:dns:PlatformDns", name, None, opts)
        cfg = args.config
        self._name = name
        self._cfg = cfg
        self._provider = provider
        self._depends_on = list(args.depends_on)
        self.external_dns = None

        self.namespace = PlatformNamespace(
            f"{name}-namespace",
            # Bind9 and ExternalDNS both run unprivileged, without capabilities.
            PlatformNamespaceArgs(name=NAMESPACE, pod_security="restricted", depends_on=args.depends_on),
            provider,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # One TSIG key per client, so one can be revoked or narrowed without the other.
        key_bytes = bind9.TSIG_KEY_BYTES[cfg.dns.tsig_algorithm]
        keys = {
            key: pulumi.Output.secret(
                random.RandomBytes(
                    f"{name}-tsig-{key}", length=key_bytes, keepers=rotation.keepers(tsig_generation(cfg, key)),
                    opts=pulumi.ResourceOptions(parent=self),
                ).base64
            )
            for key in (EXTERNAL_DNS_KEY, CERT_MANAGER_KEY, *zone_spec(cfg).transfer_only_keys)
        }

        # Delegation at OVH: only where OVH hosts the parent zone (ovh-talos). The dev stack
        # (provisioner "existing") has no OVH account: its zone is not delegated.
        delegation = [
            ovh.domain.ZoneRecord(
                f"{name}-{rec['role']}",
                zone=rec["zone"],
                subdomain=rec["subdomain"],
                fieldtype=rec["fieldtype"],
                target=rec["target"],
                ttl=rec["ttl"],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for rec in delegation_records(cfg)
        ]

        self.bind9 = Bind9(
            f"{name}-bind9",
            Bind9Args(
                namespace=NAMESPACE,
                zone=zone_spec(cfg),
                keys=keys,
                storage_size=cfg.dns.storage_size,
                storage_class=cfg.storage_class(cfg.dns.storage_class),
                load_balancer_ip=cfg.dns_ip,
                # cert-manager's DNS-01 self-check asks Bind9 at this address (cert_manager.values).
                cluster_ip=bind9_cluster_ip(cfg),
                depends_on=[*args.depends_on, self.namespace, *delegation],
            ),
            provider,
            opts=pulumi.ResourceOptions(parent=self),
        )

        def access(key: str) -> DnsUpdateAccess:
            return DnsUpdateAccess(
                nameserver=f"{self.bind9.service_host}:53",
                zone=cfg.domain.platform_zone,
                key_name=key,
                algorithm=cfg.dns.tsig_algorithm,
                secret=keys[key],
                ready=self.bind9,
                pod_port=BIND9_POD_PORT,
            )

        self.cert_manager_access = access(CERT_MANAGER_KEY)
        self.external_dns_access = access(EXTERNAL_DNS_KEY)
        self.backup_access = access(BACKUP_KEY) if BACKUP_KEY in keys else None
        self.tsig_key = self.cert_manager_access.secret
        self.tsig_secret_name = CERT_MANAGER_TSIG_SECRET
        self.register_outputs({"zone": cfg.domain.platform_zone, "nameserver": nameserver(cfg)})

    def add_external_dns(self, depends_on: Sequence[pulumi.Resource] = ()) -> k8s.helm.v3.Release:
        """ExternalDNS publishing Services, Ingresses and Traefik IngressRoutes into the zone.

        ``depends_on`` must hold what installs Traefik's CRDs: ExternalDNS's traefik-proxy source
        waits for its informers to sync at start-up and fails without the CRDs.
        """
        if self.external_dns is not None:
            raise RuntimeError("ExternalDNS was already added")
        name, cfg, access = self._name, self._cfg, self.external_dns_access
        opts = pulumi.ResourceOptions(
            parent=self, provider=self._provider, depends_on=[*self._depends_on, self.namespace]
        )
        secret = k8s.core.v1.Secret(
            f"{name}-external-dns-tsig",
            metadata={"name": EXTERNAL_DNS_TSIG_SECRET, "namespace": NAMESPACE, "labels": MANAGED_BY},
            type="Opaque",
            string_data={"tsig-secret": access.secret},
            opts=opts,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-external-dns-to-bind9",
            metadata={"name": "external-dns-to-bind9", "namespace": NAMESPACE, "labels": MANAGED_BY},
            spec=external_dns_egress_spec(),
            opts=opts,
        )
        policy = external_dns_apiserver_policy()
        api_policy = k8s.apiextensions.CustomResource(
            f"{name}-external-dns-to-apiserver",
            api_version=policy["apiVersion"],
            kind=policy["kind"],
            metadata={**policy["metadata"], "labels": MANAGED_BY},
            spec=policy["spec"],
            opts=opts,  # the CRD is Cilium's: self._depends_on holds Cilium
        )
        self.external_dns = helm_release(
            f"{name}-external-dns",
            "external-dns",
            NAMESPACE,
            external_dns_values(cfg, self.bind9.service_host),
            parent=self,
            provider=self._provider,
            depends_on=[access.ready, secret, api_policy, *depends_on],
        )
        return self.external_dns
