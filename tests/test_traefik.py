"""Traefik: values vs the 41.3.0 chart, Middleware / IngressRoute / TLSStore / Certificate vs the
CRDs, network policies, ordering."""

from __future__ import annotations

import pytest

import versions
from components.edge import traefik
from components.core.common import MANAGED_BY
from components.core.contracts import (
    FORWARD_AUTH_ADDRESS,
    FORWARD_AUTH_MIDDLEWARE,
    WILDCARD_TLS_SECRET,
    hostnames,
)
from tests.helpers.edge_support import as_object, custom_resources, release, run_components
from tests.helpers.factories import base_plan, base_raw, config
from tests.helpers.schemas import require_schemas, validate_chart_values, validate_custom_resource

COMMAND = "command:local:Command"


@pytest.fixture(scope="module")
def prod_plan():
    return base_plan()  # shared: planned once per test process


def test_values_pass_the_chart_schema():
    validate_chart_values("traefik", traefik.values(config()))
    validate_chart_values("traefik", traefik.values(config(base_raw(traefik={"replicas": 1, "dashboard": False}))))


def test_load_balancer_on_the_pinned_pool_ip():
    cfg = config(base_raw(traefik={"loadBalancerIp": "51.0.1.3"}))
    service = traefik.values(cfg)["service"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["annotations"] == {"lbipam.cilium.io/ips": "51.0.1.3"}
    # Default: the first pool address.
    default = traefik.values(config())["service"]["annotations"]
    assert default == {"lbipam.cilium.io/ips": config().lb_pool_addresses()[0]}


def test_http_redirects_to_https_and_access_logs_follow_config():
    v = traefik.values(config())
    assert v["ports"]["web"]["http"]["redirections"]["entryPoint"] == {
        "to": "websecure", "scheme": "https", "permanent": True,
    }
    assert v["accessLog"]["enabled"] is True
    assert traefik.values(config(base_raw(traefik={"accessLogs": False})))["accessLog"]["enabled"] is False


def test_pdb_only_with_several_replicas():
    assert traefik.values(config())["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert "podDisruptionBudget" not in traefik.values(config(base_raw(traefik={"replicas": 1})))


def test_forward_auth_middleware_follows_authentik():
    mw = traefik.forward_auth_middleware()
    validate_custom_resource(mw)
    assert mw["metadata"] == {"name": FORWARD_AUTH_MIDDLEWARE, "namespace": traefik.NAMESPACE, "labels": MANAGED_BY}
    fa = mw["spec"]["forwardAuth"]
    assert fa["address"] == FORWARD_AUTH_ADDRESS
    assert fa["trustForwardHeader"] is True
    assert {"X-authentik-username", "X-authentik-groups", "X-authentik-email"} <= set(fa["authResponseHeaders"])


def test_dashboard_route_is_only_reachable_through_forward_auth():
    cfg = config()
    route = traefik.dashboard_route(cfg)
    validate_custom_resource(route)
    assert route["spec"]["entryPoints"] == ["websecure"]
    host = hostnames(cfg).traefik_dashboard
    [main] = [r for r in route["spec"]["routes"] if r["match"] == f"Host(`{host}`)"]
    assert main["services"] == [{"name": "api@internal", "kind": "TraefikService"}]
    assert main["middlewares"] == [{"name": FORWARD_AUTH_MIDDLEWARE, "namespace": traefik.NAMESPACE}]
    [outpost] = [r for r in route["spec"]["routes"] if r is not main]
    assert outpost["priority"] > main["priority"]
    assert outpost["services"][0]["port"] == traefik.OUTPOST_PORT
    # ExternalDNS publishes the host on Traefik's IP.
    assert set(route["metadata"]["annotations"].values()) == {cfg.traefik_ip}


def test_default_certificate_is_the_platform_wildcard():
    store = traefik.tls_store()
    validate_custom_resource(store)
    assert store["metadata"]["name"] == "default"
    assert store["spec"] == {"defaultCertificate": {"secretName": WILDCARD_TLS_SECRET}}
    cfg = config(base_raw(certManager={"defaultIssuer": "letsencrypt-staging"}))
    cert = traefik.wildcard_certificate(cfg)
    validate_custom_resource(cert)
    assert cert["metadata"]["namespace"] == traefik.NAMESPACE
    assert cert["spec"]["secretName"] == WILDCARD_TLS_SECRET
    assert cert["spec"]["dnsNames"] == ["cloud.example.org", "*.cloud.example.org"]
    assert cert["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt-staging"}


def test_network_policies():
    by_name = {p["metadata"]["name"]: p for p in traefik.policies()}
    web = by_name["allow-web-ingress"]["spec"]
    assert web["policyTypes"] == ["Ingress"]
    # From anywhere (no `from`), on the two entry points only.
    assert web["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}, {"protocol": "TCP", "port": 8443}]}]
    backends = by_name["allow-backend-egress"]["spec"]
    assert backends["egress"] == [{"to": [{"namespaceSelector": {"matchLabels": MANAGED_BY}}]}]
    validate_custom_resource(by_name["allow-kube-apiserver"])


# --- the recorded graph ---------------------------------------------------------------------------

def test_crs_wait_for_their_crds(prod_plan):
    m = prod_plan.monitor
    rel = release(m, "traefik")
    assert m.depends_on(rel, release(m, "cilium"))
    for name in ("traefik-forward-auth", "traefik-tls-store", "traefik-dashboard"):
        reg = m.named(name)
        assert m.depends_on(reg, rel), name
        validate_custom_resource(as_object(reg))
    cert = m.named("traefik-wildcard-certificate")
    validate_custom_resource(as_object(cert))
    assert m.depends_on(cert, release(m, "cert-manager"))
    [issuer] = [r for r in custom_resources(m, "ClusterIssuer")
                if r.input("metadata", "name") == config().cert_manager.default_issuer]
    assert m.depends_on(cert, issuer)
    # Policies before the pods they let through.
    assert m.depends_on(rel, m.named("traefik-netpol-allow-web-ingress"))
    ns = m.named("traefik-namespace-ns")
    assert ns.input("metadata", "labels")["pod-security.kubernetes.io/enforce"] == "restricted"


def test_certificate_without_its_dependencies_is_refused():
    def build(provider):
        traefik.Traefik("traefik", traefik.TraefikArgs(config=config(), certificate_depends_on=[], kubeconfig="{}"), provider)

    with pytest.raises(ValueError, match="certificate_depends_on"):
        run_components(build)


def test_no_dashboard_route_when_disabled():
    def build(provider):
        traefik.Traefik(
            "traefik",
            traefik.TraefikArgs(config=config(base_raw(traefik={"dashboard": False})), certificate_depends_on=[provider],
                                kubeconfig="{}"),
            provider,
        )

    m = run_components(build, preview=True)
    assert not custom_resources(m, "IngressRoute")
    assert release(m, "traefik").input("values", "api") == {"dashboard": False}


# --- CRDs: applied before the chart, upgraded with it ----------------------------------------------

def test_crd_pins_are_the_crds_of_the_pinned_chart():
    """Every pinned CRD is fetched from the chart's crds/ at the chart's tag, and the pins are the
    bytes of the contract files the CRs are validated against (same tag)."""
    import hashlib

    schemas = require_schemas() / "traefik"
    manifests = traefik.crd_manifests()
    assert len(manifests) == len(versions.TRAEFIK_CRDS_SHA256) == 10
    for m in manifests:
        assert m.url.startswith(
            f"https://raw.githubusercontent.com/traefik/traefik-helm-chart/v{versions.TRAEFIK_CHART_VERSION}/traefik/crds/"
        )
        file = m.url.rsplit("/", 1)[1]
        group, plural = file.removesuffix(".yaml").split("_", 1)
        assert m.crds == (f"{plural}.{group}",) and group == "traefik.io"
        if (schemas / file).exists():
            assert hashlib.sha256((schemas / file).read_bytes()).hexdigest() == m.sha256, file
    checked = [f for f in versions.TRAEFIK_CRDS_SHA256 if (schemas / f).exists()]
    assert len(checked) >= 6


def test_release_skips_chart_crds_and_every_traefik_cr_waits_for_the_applied_crds(prod_plan):
    m = prod_plan.monitor
    rel = release(m, "traefik")
    # Helm would install crds/ on first install only; the release must not own them at all.
    assert rel.input("skipCrds") is True
    crds = [r for r in m.of_type(COMMAND) if r.name.startswith("traefik-crd-")]
    applied = set()
    for cmd in crds:
        env = cmd.input("environment")
        assert env["MANIFEST_SHA256"] in versions.TRAEFIK_CRDS_SHA256.values()
        applied.add(env["MANIFEST_WAIT_CRDS"])
        assert m.depends_on(rel, cmd), cmd.name
        assert m.depends_on(cmd, release(m, "cilium")), cmd.name
    assert len(applied) == len(versions.TRAEFIK_CRDS_SHA256)
    # Every Traefik CR of the whole program (Traefik's own, Vault's, Authentik's, ArgoCD's,
    # Hubble UI's...) is of an applied kind and waits for every CRD apply.
    traefik_crs = [r for r in m.registrations.values()
                   if r.custom and r.type.startswith("kubernetes:traefik.io/")]
    assert len(traefik_crs) >= 5
    for cr in traefik_crs:
        kind = cr.type.rsplit(":", 1)[1]
        assert any(c.split(".", 1)[0] == kind.lower() + "s" for c in applied), kind
        for cmd in crds:
            assert m.depends_on(cr, cmd), (cr.name, cmd.name)
