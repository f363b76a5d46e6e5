"""A gate for the Authentik API: ``pulumi up`` waits here until Authentik answers with the
program's API token (``components/authentik_token.py``) and its default objects exist.

Why a gate: the Helm release is "ready" when the server pods answer their health checks, but
the worker creates the akadmin token (``AUTHENTIK_BOOTSTRAP_TOKEN``) and applies the default
blueprints (flows, scope mappings, the self-signed certificate) asynchronously afterwards.
Terraform data sources (``authentik_flow``...) do not retry, so they would fail on a brand-new
environment. Every ``pulumi_authentik`` invoke and resource depends on this resource.

During preview nothing here runs (a dynamic resource is only created by ``pulumi up``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from components.core.bootstrap_http import NotYet, request_json, wait_until

# Ref: goauthentik/authentik blueprints/default/*.yaml (flow slugs) and
# blueprints/system/providers-oauth2.yaml (managed scope mappings).
AUTHORIZATION_FLOW = "default-provider-authorization-implicit-consent"
INVALIDATION_FLOW = "default-provider-invalidation-flow"
SELF_SIGNED_CERTIFICATE = "authentik Self-signed Certificate"
SCOPE_OPENID = "goauthentik.io/providers/oauth2/scope-openid"
SCOPE_EMAIL = "goauthentik.io/providers/oauth2/scope-email"
SCOPE_PROFILE = "goauthentik.io/providers/oauth2/scope-profile"
SCOPE_OFFLINE_ACCESS = "goauthentik.io/providers/oauth2/scope-offline_access"
OIDC_SCOPES = (SCOPE_OPENID, SCOPE_EMAIL, SCOPE_PROFILE, SCOPE_OFFLINE_ACCESS)


def _missing(url: str, token: str, verify_tls: bool, flows: Sequence[str], scopes: Sequence[str],
             certificate: str) -> list[str]:
    """What is not there yet; raises NotYet while the API itself does not answer."""
    headers = {"Authorization": f"Bearer {token}"}
    checks = [(f"flow {s}", f"/api/v3/flows/instances/?slug={urllib.parse.quote(s)}") for s in flows]
    checks += [(f"scope mapping {m}", f"/api/v3/propertymappings/provider/scope/?managed={urllib.parse.quote(m)}")
               for m in scopes]
    checks.append((f"certificate {certificate}",
                   f"/api/v3/crypto/certificatekeypairs/?name={urllib.parse.quote(certificate)}"))
    missing = []
    for what, path in checks:
        resp = request_json("GET", url.rstrip("/") + path, headers=headers, verify_tls=verify_tls)
        if resp.status in (401, 403):
            raise NotYet(f"API refuses the program's token (HTTP {resp.status})")
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise NotYet(f"API answered HTTP {resp.status} for {what}")
        if not resp.body.get("results"):
            missing.append(what)
    return missing


class _AuthentikReadyProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        def check() -> None:
            missing = _missing(props["url"], props["token"], props["verify_tls"], props["flows"],
                               props["scopes"], props["certificate"])
            if missing:
                raise NotYet("not applied yet: " + ", ".join(missing))

        wait_until(check, timeout=float(props["timeout_seconds"]),
                   interval=float(props.get("poll_interval_seconds") or 10),
                   what=f"the Authentik API at {props['url']}")
        return dynamic.CreateResult(id_=props["url"], outs={k: v for k, v in props.items() if k != "token"})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # A one-time gate: only a new address is worth checking again.
        return dynamic.DiffResult(changes=olds.get("url") != news.get("url"))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=self.create(news).outs)


@dataclass(frozen=True)
class AuthentikReadyArgs:
    url: str  # public base URL, e.g. https://auth.cloud.example.org
    token: pulumi.Input[str]  # AuthentikApiToken.key (secret), never the bootstrap token
    verify_tls: bool = True
    timeout_seconds: int = 900
    poll_interval_seconds: int = 10
    flows: Sequence[str] = (AUTHORIZATION_FLOW, INVALIDATION_FLOW)
    scopes: Sequence[str] = OIDC_SCOPES
    certificate: str = SELF_SIGNED_CERTIFICATE


class AuthentikReady(dynamic.Resource, module="weebo", name="AuthentikReady"):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: AuthentikReadyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            _AuthentikReadyProvider(),
            name,
            {
                "url": args.url,
                "token": pulumi.Output.secret(args.token),
                "verify_tls": args.verify_tls,
                "timeout_seconds": args.timeout_seconds,
                "poll_interval_seconds": args.poll_interval_seconds,
                "flows": list(args.flows),
                "scopes": list(args.scopes),
                "certificate": args.certificate,
            },
            opts,
        )
