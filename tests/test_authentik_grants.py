"""OAuth2 grant types: Authentik >= 2026.5 accepts only the grants a provider lists, and
pulumi_authentik 2025.8.1 cannot list them, so the program sets them through the API after every
provider it creates (components.identity.OAuth2GrantTypes)."""

from __future__ import annotations

import pytest

from components.core.bootstrap_http import BootstrapError
from components.identity import (
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    _GrantTypesProvider,
    oidc_application_specs,
)
from offline.mocks import contains_secret
from tests.helpers.factories import config
from tests.helpers.identity_support import fake_http
from tests.helpers.factories import stack_plan

GRANTS_TYPE = "pulumi-python:dynamic/weebo:OAuth2GrantTypes"
OAUTH2_TYPE = "authentik:index/providerOauth2:ProviderOauth2"
# GrantTypeEnum of the Authentik 2026.8.0 schema (authentik-client 2026.8.0 models/grant_type_enum.py).
GRANT_TYPE_ENUM = {
    "authorization_code", "implicit", "hybrid", "refresh_token", "client_credentials", "password",
    "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange",
}


@pytest.fixture(scope="module")
def monitor():
    return stack_plan("prod", preview=False).monitor


def test_applications_get_least_privilege_grants():
    specs = oidc_application_specs(config())
    for role, spec in specs.items():
        assert set(spec.grant_types) <= GRANT_TYPE_ENUM, role
        assert GRANT_AUTHORIZATION_CODE in spec.grant_types, role
        # Never the flows that bypass the browser login or leak tokens in URLs.
        assert not {"implicit", "hybrid", "password", "client_credentials"} & set(spec.grant_types), role
    assert specs["vault"].grant_types == (GRANT_AUTHORIZATION_CODE,)
    assert GRANT_REFRESH_TOKEN in specs["kubernetes"].grant_types  # kubelogin refreshes its token


def test_every_oauth2_provider_of_the_program_gets_its_grants_set(monitor):
    providers = [r for r in monitor.registrations.values() if r.type == OAUTH2_TYPE]
    grants = [r for r in monitor.registrations.values() if r.type == GRANTS_TYPE]
    assert len(providers) == 7  # 4 platform applications + 3 tenants in prod
    by_provider: dict[str, list] = {}
    ready = monitor.named("authentik-config-ready")
    for g in grants:
        assert g.input("grant_types"), g.name
        assert contains_secret(g.inputs["token"]), g.name
        assert g.input("url") == "https://auth.cloud.weebosi.fr"
        assert monitor.depends_on(g, ready), g.name
        own = g.name.removesuffix("-grant-types") + "-oidc"
        [provider] = [p for p in providers if p.name == own and monitor.depends_on(g, p)]
        by_provider.setdefault(provider.urn, []).append(g)
    assert {p.urn for p in providers} == set(by_provider)
    assert all(len(v) == 1 for v in by_provider.values())
    # A confidential client's secret reaches the fingerprint only as a secret.
    assert contains_secret(monitor.named("authentik-config-argocd-grant-types").inputs["fingerprint"])


def _props(url: str, **over):
    return {"url": url, "token": "tok", "verify_tls": False, "provider_id": "42",
            "grant_types": [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN], "fingerprint": "f1", **over}


def test_create_patches_the_provider_and_checks_what_was_stored():
    seen = []

    def handler(method, path, headers, body):
        seen.append((method, path, headers.get("Authorization"), body))
        return 200, {"pk": 42, "grant_types": body["grant_types"]}

    with fake_http(handler) as url:
        out = _GrantTypesProvider().create(_props(url))
    assert seen == [("PATCH", "/api/v3/providers/oauth2/42/", "Bearer tok",
                     {"grant_types": [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN]})]
    assert out.id == "42" and "token" not in out.outs


@pytest.mark.parametrize("answer", [(200, {"pk": 42, "grant_types": []}),  # silently dropped
                                    (200, {"pk": 42}),  # a server without grant_types
                                    (403, {"detail": "denied"})])
def test_create_fails_when_authentik_does_not_store_the_grants(answer):
    with fake_http(lambda *_: answer) as url, pytest.raises(BootstrapError, match="grant_types"):
        _GrantTypesProvider().create(_props(url))


def test_grants_are_set_again_whenever_the_provider_is_written():
    p = _GrantTypesProvider()
    olds = {k: v for k, v in _props("https://auth").items() if k != "token"}
    assert not p.diff("42", olds, _props("https://auth")).changes
    assert p.diff("42", olds, _props("https://auth", fingerprint="f2")).changes
    assert p.diff("42", olds, _props("https://auth", grant_types=[GRANT_AUTHORIZATION_CODE])).changes
    assert p.diff("42", olds, _props("https://auth", provider_id="43")).changes
