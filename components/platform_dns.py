"""The platform DNS zone: Bind9 authoritative for it, ExternalDNS publishing into it, and the
OVH records that delegate it from the parent zone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.common import helm_release
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "dns"
TSIG_SECRET_NAME = "bind9-tsig"


def external_dns_values(cfg: PlatformConfig) -> dict[str, Any]:
    zone = cfg.domain.platform_zone
    return {
        "provider": {"name": "rfc2136"},
        "policy": "sync",
        "txtOwnerId": cfg.management_cluster.name,
        "domainFilters": [zone],
        "sources": ["service", "ingress", "traefik-proxy"],
        "extraArgs": [
            f"--rfc2136-host=bind9.{NAMESPACE}.svc.cluster.local",
            "--rfc2136-port=53",
            f"--rfc2136-zone={zone}",
            "--rfc2136-tsig-keyname=externaldns",
            f"--rfc2136-tsig-secret-alg={cfg.dns.tsig_algorithm}",
            "--rfc2136-tsig-axfr",
        ],
        "env": [
            {
                "name": "EXTERNAL_DNS_RFC2136_TSIG_SECRET",
                "valueFrom": {"secretKeyRef": {"name": TSIG_SECRET_NAME, "key": "secret"}},
            }
        ],
    }


@dataclass(frozen=True)
class PlatformDnsArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class PlatformDns(pulumi.ComponentResource):
    tsig_key: pulumi.Output[str]
    tsig_secret_name: str
    bind9: pulumi.Resource

    def __init__(self, name: str, args: PlatformDnsArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:dns:PlatformDns", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on), provider,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # 32 random bytes, base64: the TSIG secret format Bind9 expects for hmac-sha256.
        key = random.RandomBytes(f"{name}-tsig", length=32, opts=pulumi.ResourceOptions(parent=self))
        self.tsig_key = pulumi.Output.secret(key.base64)
        self.tsig_secret_name = TSIG_SECRET_NAME
        self.bind9 = k8s.core.v1.Secret(
            f"{name}-tsig-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=TSIG_SECRET_NAME, namespace=NAMESPACE),
            string_data={"secret": self.tsig_key},
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns]),
        )
        helm_release(
            "external-dns", "external-dns", ns.name, external_dns_values(args.config),
            parent=self, provider=provider, depends_on=[self.bind9],
        )
        self.register_outputs({})
