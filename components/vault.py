"""Vault: the platform's secrets store, HA raft, protected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contracts import OidcClient
from components.common import helm_release
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "vault"


def values(cfg: PlatformConfig) -> dict[str, Any]:
    return {
        "server": {
            "ha": {"enabled": True, "replicas": cfg.vault.replicas, "raft": {"enabled": True}},
            "dataStorage": {"enabled": True, "size": cfg.vault.storage_size},
        },
        "injector": {"enabled": False},
    }


@dataclass(frozen=True)
class VaultArgs:
    config: PlatformConfig
    oidc: OidcClient
    depends_on: Sequence[pulumi.Resource] = ()


class Vault(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: VaultArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:secrets:Vault", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on, allow_from_namespaces=["traefik"]),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = helm_release(name, "vault", ns.name, values(args.config), parent=self, provider=provider, depends_on=[ns])
        self.register_outputs({})
