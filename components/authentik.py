"""Authentik: the platform's identity provider (SSO, OIDC for Kubernetes, ArgoCD, Vault...)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.common import helm_release
from components.contracts import OidcClient, authentik_issuer_url
from components.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks.config import PlatformConfig

NAMESPACE = "authentik"




def values(cfg: PlatformConfig) -> dict[str, Any]:
    return {
        "authentik": {"error_reporting": {"enabled": False}},
        "server": {"replicas": 2},
        "postgresql": {"enabled": True, "primary": {"persistence": {"enabled": True, "size": cfg.authentik.storage_size}}},
    }


@dataclass(frozen=True)
class AuthentikArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class Authentik(pulumi.ComponentResource):
    vault_oidc: OidcClient
    argocd_oidc: OidcClient

    def __init__(self, name: str, args: AuthentikArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:identity:Authentik", name, None, opts)
        cfg = args.config
        ns = PlatformNamespace(
            f"{name}-namespace", PlatformNamespaceArgs(name=NAMESPACE, depends_on=args.depends_on, allow_from_namespaces=["traefik"]),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        secret_key = random.RandomPassword(f"{name}-secret-key", length=64, special=False, opts=pulumi.ResourceOptions(parent=self))
        # The chart reads configuration from this Secret (authentik.existingSecret): no secret in values.
        config_secret = k8s.core.v1.Secret(
            f"{name}-config",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="authentik-config", namespace=NAMESPACE),
            string_data={"AUTHENTIK_SECRET_KEY": pulumi.Output.secret(secret_key.result)},
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns]),
        )
        release_values = values(cfg)
        release_values["authentik"]["existingSecret"] = {"secretName": "authentik-config"}
        helm_release(name, "authentik", ns.name, release_values, parent=self, provider=provider, depends_on=[config_secret])

        def client(app: str) -> OidcClient:
            secret = random.RandomPassword(f"{name}-{app}-client-secret", length=48, special=False, opts=pulumi.ResourceOptions(parent=self))
            return OidcClient(authentik_issuer_url(cfg, app), app, pulumi.Output.secret(secret.result))

        self.vault_oidc = client("vault")
        self.argocd_oidc = client("argocd")
        self.register_outputs({})
