"""Authentik: chart values, routes, OIDC applications and their issuer wiring, the bootstrap
gate, secrets."""

from __future__ import annotations

import json

import pytest

from components.sso import authentik as ak
from components import identity
from components.authentik_ready import (
    AUTHORIZATION_FLOW,
    INVALIDATION_FLOW,
    OIDC_SCOPES,
    SELF_SIGNED_CERTIFICATE,
    _AuthentikReadyProvider,
)
from components.core.bootstrap_http import BootstrapError
from components.core.contracts import (
    FORWARD_AUTH_OUTPOST_NAMESPACE,
    FORWARD_AUTH_OUTPOST_SERVICE,
    authentik_issuer_url,
    hostnames,
)
from offline.mocks import UNKNOWN, contains_secret, redact
from offline.plan import write_plan
from tests.helpers.factories import base_raw, config, plan
from tests.helpers.identity_support import FAKE_PREFIX, deployed_plan, fake_http, preview_plan, run_program
from tests.helpers.schemas import validate_chart_values, validate_custom_resource

AK = "authentik:index/"


def _of(mon, type_: str, name: str):
    found = [r for r in mon.of_type(type_) if r.name == name]
    assert len(found) == 1, (type_, name)
    return found[0]


RELEASE = "kubernetes:helm.sh/v3:Release"


def _drop(values: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    cur = values
    for p in parents:
        cur = cur[p]
    del cur[leaf]


# --- chart values -----------------------------------------------------------------------------

def test_values_match_the_chart_apart_from_the_listed_postgresql_subchart_keys():
    from tests.helpers.schemas import FREE_FORM, _unknown_keys, chart_defaults

    values = ak.values(config())
    validate_chart_values("authentik", values)
    # The authentik values.yaml does not list the Bitnami subchart's keys: exactly the ones we
    # declare (and checked against the subchart) are outside it, nothing else.
    assert set(_unknown_keys(values, chart_defaults("authentik"))) == set(ak.SUBCHART_KEYS) == FREE_FORM["authentik"]


def test_values_carry_no_secret_only_references_to_the_credentials_secret():
    values = ak.values(config())
    env = {e["name"]: e for e in values["global"]["env"]}
    assert set(env) == {"AUTHENTIK_SECRET_KEY", "AUTHENTIK_BOOTSTRAP_TOKEN", "AUTHENTIK_BOOTSTRAP_PASSWORD",
                        "AUTHENTIK_POSTGRESQL__PASSWORD"}
    for e in env.values():
        assert "value" not in e
        assert e["valueFrom"]["secretKeyRef"]["name"] == ak.CREDENTIALS_SECRET
    assert "secret_key" not in values["authentik"]
    assert "password" not in json.dumps(values["authentik"])
    pg = values["postgresql"]
    assert pg["auth"]["existingSecret"] == ak.CREDENTIALS_SECRET
    assert not {"password", "postgresPassword"} & set(pg["auth"])
    # The user password the database gets is the one Authentik reads.
    assert pg["auth"]["secretKeys"]["userPasswordKey"] == env["AUTHENTIK_POSTGRESQL__PASSWORD"]["valueFrom"][
        "secretKeyRef"]["key"]


def test_database_is_persistent_and_kept():
    cfg = config(base_raw(authentik={"storageSize": "20Gi"}))
    primary = ak.values(cfg)["postgresql"]["primary"]
    assert primary["persistence"] == {"enabled": True, "size": "20Gi", "storageClass": "local-path"}
    assert primary["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_pods_fit_the_restricted_pod_security_level():
    values = ak.values(config())
    pod = values["global"]["securityContext"]
    assert pod["runAsNonRoot"] and pod["seccompProfile"]["type"] == "RuntimeDefault"
    for part in ("server", "worker"):
        c = values[part]["containerSecurityContext"]
        assert c["allowPrivilegeEscalation"] is False and c["capabilities"]["drop"] == ["ALL"]
        assert values[part]["resources"]["limits"]["memory"]


def test_ingress_route_serves_the_contract_hostname_with_tls():
    cfg = config()
    route = ak.ingress_route(cfg)
    validate_custom_resource(route)
    assert route["spec"]["routes"][0]["match"] == f"Host(`{hostnames(cfg).authentik}`)"
    assert route["spec"]["routes"][0]["services"] == [{"name": ak.SERVER_SERVICE, "port": 80}]
    assert route["spec"]["entryPoints"] == ["websecure"] and "tls" in route["spec"]


# --- OIDC applications ------------------------------------------------------------------------

def test_redirect_uris_of_each_application():
    cfg = config(base_raw(netbird={"managementUrl": "https://netbird.example.org"}))
    specs = identity.oidc_application_specs(cfg)
    zone = cfg.domain.platform_zone

    def uris(role: str) -> list[tuple[str, str]]:
        return [(r.matching_mode, r.url) for r in specs[role].redirect_uris]

    assert uris("kubernetes") == [("strict", "http://localhost:8000"), ("strict", "http://localhost:18000")]
    assert uris("argocd") == [("strict", f"https://argocd.{zone}/auth/callback"),
                              ("strict", "http://localhost:8085/auth/callback")]
    assert uris("vault") == [("strict", f"https://vault.{zone}/ui/vault/auth/oidc/oidc/callback"),
                             ("strict", "http://localhost:8250/oidc/callback")]
    assert uris("netbird") == [("regex", r"https://netbird\.example\.org/.*"), ("strict", "http://localhost:53000")]
    assert specs["kubernetes"].public and specs["netbird"].public
    assert not specs["argocd"].public and not specs["vault"].public


def test_kubernetes_application_issuer_is_the_one_talos_gets():
    cfg = config()
    spec = identity.oidc_application_specs(cfg)["kubernetes"]
    # stacks/environment.py hands this issuer and client id to ManagementCluster.
    assert spec.slug == cfg.management_cluster.name
    assert authentik_issuer_url(cfg, spec.slug) == f"https://auth.{cfg.domain.platform_zone}/application/o/weebo4cp/"


def test_recorded_applications_issuers_match_the_consumers():
    result = preview_plan()
    mon = result.monitor
    apps = {r.input("slug"): r for r in mon.of_type(f"{AK}application:Application")}
    cfg = config()
    assert {cfg.management_cluster.name, "argocd", "vault", "netbird", "hubble", "traefik-dashboard"} <= set(apps)
    providers = {r.input("clientId"): r for r in mon.of_type(f"{AK}providerOauth2:ProviderOauth2")}
    for slug in (cfg.management_cluster.name, "argocd", "vault", "netbird"):
        assert providers[slug].input("issuerMode") == "per_provider"  # issuer = .../application/o/<slug>/
    # Vault's side uses exactly the Authentik issuer of the application registered with that slug.
    oidc = mon.named("vault-config-oidc")
    assert oidc.input("oidcDiscoveryUrl") == authentik_issuer_url(cfg, apps["vault"].input("slug"))
    assert oidc.input("oidcClientId") == providers["vault"].input("clientId")
    # Vault's role accepts exactly the redirect URIs Authentik allows.
    role = mon.named("vault-config-oidc-role")
    assert role.input("allowedRedirectUris") == [u["url"] for u in providers["vault"].input("allowedRedirectUris")]


def test_component_hands_consumers_the_issuer_of_their_application():
    import pulumi_kubernetes as k8s

    cfg = config()

    def build():
        component = ak.Authentik("authentik", ak.AuthentikArgs(config=cfg), k8s.Provider("k"))
        return {"argocd": component.argocd_oidc, "vault": component.vault_oidc,
                "kubernetes": component.kubernetes_oidc, "netbird": component.netbird_oidc}

    clients, mon = run_program(build)
    apps = {r.input("slug") for r in mon.of_type(f"{AK}application:Application")}
    zone = cfg.domain.platform_zone
    for role, client in clients.items():
        assert client.client_id in apps
        assert client.issuer_url == f"https://auth.{zone}/application/o/{client.client_id}/"
    assert clients["kubernetes"].client_id == cfg.management_cluster.name
    assert clients["kubernetes"].client_secret is None and clients["netbird"].client_secret is None
    assert clients["argocd"].client_secret is not None


def test_tokens_are_signed_with_a_key_pair_and_carry_groups():
    result = deployed_plan()
    mon = result.monitor
    invokes = {tok: args for tok, args in mon.invokes}
    cert = invokes["authentik:index/getCertificateKeyPair:getCertificateKeyPair"]
    assert cert["name"] == SELF_SIGNED_CERTIFICATE and cert["fetchKey"] is False
    scopes = invokes["authentik:index/getPropertyMappingProviderScope:getPropertyMappingProviderScope"]
    assert list(scopes["managedLists"]) == list(OIDC_SCOPES)  # profile carries the groups claim
    flows = {args["slug"] for tok, args in mon.invokes if tok == "authentik:index/getFlow:getFlow"}
    assert flows == {AUTHORIZATION_FLOW, INVALIDATION_FLOW}
    for p in mon.of_type(f"{AK}providerOauth2:ProviderOauth2"):
        assert p.input("signingKey") and p.input("signingKey") != UNKNOWN
        assert len(p.input("propertyMappings")) == len(OIDC_SCOPES)


def test_netbird_application_only_when_netbird_is_enabled():
    specs = identity.oidc_application_specs(config(base_raw(netbird={"enabled": False})))
    assert "netbird" not in specs


# --- groups, forward auth ---------------------------------------------------------------------

def test_groups_from_config_platform_admins_are_superusers():
    raw = base_raw(authentik={"groups": [{"name": "erp-admins"}, {"name": "auditors", "superuser": True}]})
    cfg = config(raw)
    assert identity.group_names(cfg) == ["platform-admins", "erp-admins", "auditors"]


def test_forward_auth_outpost_matches_the_traefik_middleware_contract():
    cfg = config()
    conf = identity.outpost_config(cfg)
    name = conf["object_naming_template"] % {"name": identity.OUTPOST_NAME}
    assert name == FORWARD_AUTH_OUTPOST_SERVICE
    assert conf["kubernetes_namespace"] == FORWARD_AUTH_OUTPOST_NAMESPACE == ak.NAMESPACE
    # The platform owns the middleware and the routes, not Authentik.
    assert set(conf["kubernetes_disabled_components"]) == {"ingress", "traefik middleware"}
    patched = {p["path"] for p in conf["kubernetes_json_patches"]["deployment"]}
    assert "/spec/template/spec/containers/0/securityContext" in patched


def test_forward_auth_applications_are_for_platform_admins_only():
    mon = deployed_plan().monitor
    outpost = mon.named("authentik-config-outpost")
    assert outpost.input("type") == "proxy" and len(outpost.input("protocolProviders")) == 2
    proxies = {r.input("externalHost"): r for r in mon.of_type(f"{AK}providerProxy:ProviderProxy")}
    zone = config().domain.platform_zone
    assert set(proxies) == {f"https://hubble.{zone}", f"https://traefik.{zone}"}
    assert all(p.input("mode") == "forward_single" for p in proxies.values())
    admins = mon.named("authentik-config-group-platform-admins")
    # The platform's own bindings (tenants bind their applications to their admin groups).
    config_urn = next(c.urn for c in mon.of_type("weebo:identity:AuthentikConfig"))
    mine = {r.urn for r in mon.descendants(config_urn)}
    bindings = [b for b in mon.of_type(f"{AK}policyBinding:PolicyBinding") if b.urn in mine]
    assert len(bindings) == 2
    assert all(mon.depends_on(b, admins) for b in bindings)


# --- bootstrap order --------------------------------------------------------------------------

def test_every_authentik_resource_uses_the_explicit_provider_and_waits_for_the_gate():
    mon = preview_plan().monitor
    api = mon.named("authentik-config-api")
    assert api.type == "pulumi:providers:authentik" and api.input("url") == "https://auth.cloud.example.org"
    ready = mon.named("authentik-config-ready")
    resources = [r for r in mon.registrations.values() if r.type.startswith(AK)]
    assert len(resources) > 10
    for r in resources:
        assert r.provider_urn == api.urn, r.name
        assert mon.depends_on(r, ready), r.name
    release = _of(mon, RELEASE, "authentik")
    route = mon.named("authentik-route")
    assert mon.depends_on(ready, release) and mon.depends_on(ready, route)
    traefik = _of(mon, RELEASE, "traefik")
    assert mon.depends_on(route, traefik)  # Traefik's CRDs


def test_first_preview_does_not_call_authentik():
    mon = preview_plan().monitor
    assert not [tok for tok, _ in mon.invokes if tok.startswith("authentik:")]
    # The token comes from a RandomPassword not created yet: the provider is not configured.
    assert redact(mon.named("authentik-config-api").inputs["token"]) == UNKNOWN


def test_readiness_gate_waits_for_token_flows_mappings_and_certificate():
    calls: list[str] = []

    def handler(method, path, headers, body):
        calls.append(path)
        if headers.get("Authorization") != "Bearer tok":
            return 403, {"detail": "no"}
        if len(calls) < 3:  # the bootstrap blueprint has not created the token yet
            return 403, {"detail": "no"}
        return 200, {"results": [{"pk": "x"}]}

    with fake_http(handler) as url:
        props = {"url": url, "token": "tok", "verify_tls": True, "timeout_seconds": 10, "poll_interval_seconds": 0.01,
                 "flows": [AUTHORIZATION_FLOW], "scopes": list(OIDC_SCOPES), "certificate": SELF_SIGNED_CERTIFICATE}
        out = _AuthentikReadyProvider().create(props)
    assert "token" not in out.outs  # never copied into outputs
    assert any("managed=goauthentik.io" in c for c in calls)
    assert any("certificatekeypairs" in c for c in calls)


def test_readiness_gate_gives_up_with_a_clear_error():
    with fake_http(lambda *a: (200, {"results": []})) as url:
        props = {"url": url, "token": "t", "verify_tls": True, "timeout_seconds": 0.05, "poll_interval_seconds": 0.01,
                 "flows": [AUTHORIZATION_FLOW], "scopes": [], "certificate": SELF_SIGNED_CERTIFICATE}
        with pytest.raises(BootstrapError, match="not applied yet: flow default-provider"):
            _AuthentikReadyProvider().create(props)


# --- secrets ----------------------------------------------------------------------------------

def test_generated_credentials_are_secret_inputs_everywhere():
    mon = deployed_plan().monitor
    assert contains_secret(mon.named("authentik-credentials").inputs["stringData"])
    assert contains_secret(mon.named("authentik-config-api").inputs["token"])
    assert contains_secret(mon.named("authentik-config-ready").inputs["token"])
    confidential = {"argocd", "vault"}
    for p in mon.of_type(f"{AK}providerOauth2:ProviderOauth2"):
        if p.input("clientId") in confidential:
            assert p.input("clientType") == "confidential"
            assert contains_secret(p.inputs["clientSecret"]), p.name
            assert "clientSecret" in p.additional_secret_outputs
        else:
            assert p.input("clientType") == "public" and "clientSecret" not in p.inputs
    release = _of(mon, RELEASE, "authentik")
    assert not contains_secret(release.inputs["values"])  # values stay readable in the plan


def test_no_generated_secret_reaches_the_plan_files(tmp_path):
    result = deployed_plan()
    write_plan(result, tmp_path)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_PREFIX not in path.read_text(), path


def test_secrets_that_must_never_change_are_protected():
    mon = preview_plan().monitor
    for name in ("authentik-secret-key", "authentik-bootstrap-token", "authentik-db-password",
                 "authentik-namespace-ns"):
        assert mon.named(name).protect, name
    assert _of(mon, RELEASE, "authentik").protect


def test_tenant_component_gets_typed_identity_handles():
    # What issue 7 builds on: the Identity attributes exist with these names.
    ann = identity.Identity.__annotations__
    for attr in ("provider", "ready", "authorization_flow_id", "invalidation_flow_id", "scope_mapping_ids",
                 "signing_key_id", "groups", "group_ids"):
        assert attr in ann
    assert callable(identity.oidc_application)


def test_a_second_plan_is_identical():
    a, b = plan(base_raw()), preview_plan()
    assert [r.urn for r in a.registrations] == [r.urn for r in b.registrations]


def test_public_tls_is_verified_unless_the_stack_uses_lets_encrypt_staging():
    assert ak.verify_public_tls(config()) is True
    assert ak.verify_public_tls(config(base_raw(certManager={"defaultIssuer": "letsencrypt-staging"}))) is False
    mon = preview_plan().monitor
    assert mon.named("authentik-config-api").input("insecure") in (False, "false")
    assert mon.named("vault-config-api").input("skipTlsVerify") in (False, "false")
    assert mon.named("authentik-config-ready").input("verify_tls") is True
