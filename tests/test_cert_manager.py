"""cert-manager: values vs the v1.21.1 chart, ClusterIssuers/Certificates vs the CRDs, ordering,
and the TSIG key never in clear."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.edge import cert_manager as cm
from components.core.contracts import INTERNAL_CA_ISSUER, DnsUpdateAccess
from offline.mocks import contains_secret
from offline.plan import PlanResult, write_plan
from tests.helpers.edge_support import as_object, custom_resources, release, run_components
from tests.helpers.factories import base_plan, base_raw, config
from tests.helpers.schemas import validate_chart_values, validate_custom_resource

TSIG_PLAINTEXT = "c2VjcmV0LXRzaWcta2V5LW5ldmVyLWluLWNsZWFyLTEyMzQ="


def access(secret=None, ready=None, **overrides) -> DnsUpdateAccess:
    args = {
        "nameserver": "bind9.dns.svc.cluster.local:53",
        "zone": "cloud.example.org",
        "key_name": "cert-manager",
        "algorithm": "hmac-sha256",
        "secret": secret,
        "ready": ready,
    }
    args.update(overrides)
    return DnsUpdateAccess(**args)


@pytest.fixture(scope="module")
def prod_plan():
    return base_plan()  # shared: planned once per test process


def test_values_pass_the_chart_schema_and_install_crds():
    v = cm.values(config())
    validate_chart_values("cert-manager", v)
    assert v["crds"] == {"enabled": True, "keep": True}
    # Nothing secret ever goes through Helm values.
    assert "tsig" not in repr(v).lower()


@pytest.mark.parametrize("issuer", cm.ACME_ISSUERS)
def test_acme_issuers_solve_dns01_with_rfc2136_and_tsig(issuer):
    cfg = config()
    obj = cm.acme_issuer(cfg, issuer, access())
    validate_custom_resource(obj)
    acme = obj["spec"]["acme"]
    expected_server = cfg.cert_manager.acme_staging_server if "staging" in issuer else cfg.cert_manager.acme_production_server
    assert acme["server"] == expected_server
    assert acme["email"] == cfg.domain.acme_email
    [solver] = acme["solvers"]
    assert solver["selector"] == {"dnsZones": ["cloud.example.org"]}
    assert solver["dns01"]["rfc2136"] == {
        "nameserver": "bind9.dns.svc.cluster.local:53",
        "tsigKeyName": "cert-manager",
        "tsigAlgorithm": "HMACSHA256",
        "tsigSecretSecretRef": {"name": cm.TSIG_SECRET_NAME, "key": cm.TSIG_SECRET_KEY},
    }


def test_tsig_algorithm_names_follow_cert_manager():
    assert cm.tsig_algorithm("hmac-sha512") == "HMACSHA512"
    with pytest.raises(ValueError, match="not supported"):
        cm.tsig_algorithm("hmac-md4")


def test_internal_ca_chain():
    cfg = config()
    selfsigned, cert, ca = cm.selfsigned_issuer(), cm.internal_ca_certificate(cfg), cm.internal_ca_issuer()
    for obj in (selfsigned, cert, ca):
        validate_custom_resource(obj)
    assert selfsigned["spec"] == {"selfSigned": {}}
    assert cert["metadata"]["namespace"] == cm.NAMESPACE  # the ClusterIssuer's resource namespace
    assert cert["spec"]["isCA"] is True
    assert cert["spec"]["issuerRef"]["name"] == selfsigned["metadata"]["name"]
    assert cert["spec"]["commonName"] == cfg.cert_manager.internal_ca_common_name
    assert ca["metadata"]["name"] == INTERNAL_CA_ISSUER
    assert ca["spec"]["ca"]["secretName"] == cert["spec"]["secretName"]


def test_policies_validate_and_are_precise():
    by_name = {p["metadata"]["name"]: p for p in cm.policies()}
    for p in by_name.values():
        validate_custom_resource(p)
    assert by_name["allow-kube-apiserver"]["spec"]["egress"] == [
        {"toEntities": ["kube-apiserver"], "toPorts": [{"ports": [{"port": "6443", "protocol": "TCP"}]}]}
    ]
    webhook = by_name["webhook-from-kube-apiserver"]["spec"]
    assert webhook["endpointSelector"] == {"matchLabels": cm.WEBHOOK_LABELS}
    assert webhook["ingress"][0]["fromEntities"] == ["kube-apiserver"]
    acme = by_name["controller-to-acme"]["spec"]
    assert acme["endpointSelector"] == {"matchLabels": cm.CONTROLLER_LABELS}
    assert acme["egress"] == [{"toEntities": ["world"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]


def test_nameserver_peer():
    assert cm.nameserver_peer("bind9.dns.svc.cluster.local:53") == (
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dns"}}}, 53,
    )
    assert cm.nameserver_peer("192.0.2.10:5353") == ({"ipBlock": {"cidr": "192.0.2.10/32"}}, 5353)
    with pytest.raises(ValueError, match="expected"):
        cm.nameserver_peer("ns1.example.org:53")
    policy = cm.dns_update_policy(access())
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


# --- the recorded graph (whole program) -----------------------------------------------------------

def test_issuers_wait_for_the_release_and_bind9(prod_plan):
    m = prod_plan.monitor
    rel = release(m, "cert-manager")
    [bind9] = [r for r in m.of_type("kubernetes:apps/v1:StatefulSet") if r.name.endswith("bind9-statefulset")]
    issuers = {r.input("metadata", "name"): r for r in custom_resources(m, "ClusterIssuer")}
    assert set(issuers) == {*cm.ACME_ISSUERS, cm.SELFSIGNED_ISSUER, INTERNAL_CA_ISSUER}
    for name, reg in issuers.items():
        assert m.depends_on(reg, rel), name
        validate_custom_resource(as_object(reg))
    for name in cm.ACME_ISSUERS:
        assert m.depends_on(issuers[name], bind9), name
        assert m.depends_on(issuers[name], m.named("cert-manager-issuers-tsig")), name
    [ca_cert] = [r for r in custom_resources(m, "Certificate") if r.input("metadata", "name") == cm.INTERNAL_CA_SECRET]
    assert m.depends_on(issuers[INTERNAL_CA_ISSUER], ca_cert)
    assert m.depends_on(ca_cert, issuers[cm.SELFSIGNED_ISSUER])


def test_release_waits_for_cilium_and_its_own_policies(prod_plan):
    m = prod_plan.monitor
    rel = release(m, "cert-manager")
    assert m.depends_on(rel, release(m, "cilium"))
    for name in ("allow-kube-apiserver", "webhook-from-kube-apiserver", "controller-to-acme"):
        assert m.depends_on(rel, m.named(f"cert-manager-netpol-{name}")), name
    ns = m.named("cert-manager-namespace-ns")
    assert ns.input("metadata", "labels")["pod-security.kubernetes.io/enforce"] == "restricted"


# --- secrets -------------------------------------------------------------------------------------

def test_tsig_key_is_a_secret_end_to_end(tmp_path):
    def build(provider):
        bind9 = k8s.core.v1.Secret("bind9-ready", metadata={"name": "x", "namespace": "dns"},
                                   opts=pulumi.ResourceOptions(provider=provider))
        manager = cm.CertManager("cert-manager", cm.CertManagerArgs(config=config()), provider)
        manager.add_issuers(access(secret=pulumi.Output.secret(TSIG_PLAINTEXT), ready=bind9))

    m = run_components(build)
    secret = m.named("cert-manager-issuers-tsig")
    assert secret.input("metadata", "namespace") == cm.NAMESPACE
    assert contains_secret(secret.inputs["stringData"])
    assert set(secret.additional_secret_outputs) >= {"data", "stringData"}
    assert secret.input("stringData") == {cm.TSIG_SECRET_KEY: TSIG_PLAINTEXT}
    # Nowhere else: not in Helm values, not in an issuer, not in the written plan.
    for reg in m.registrations.values():
        if reg is not secret:
            assert TSIG_PLAINTEXT not in repr(reg.input()), reg.name
    write_plan(PlanResult(stack="unit", monitor=m), tmp_path / "plan")
    for path in (tmp_path / "plan").rglob("*"):
        if path.is_file():
            assert TSIG_PLAINTEXT not in path.read_text(), path


def test_controller_reaches_bind9_on_its_pod_port(prod_plan):
    from components.core.contracts import BIND9_POD_PORT

    policy = prod_plan.monitor.named("cert-manager-issuers-netpol-controller-to-nameserver")
    ports = {p["port"] for rule in policy.input("spec", "egress") for p in rule["ports"]}
    assert ports == {BIND9_POD_PORT}


def test_dns01_self_check_asks_bind9_at_its_fixed_cluster_ip_only(prod_plan):
    """cert-manager checks the challenge TXT at Bind9 itself: an "<ip>:<port>" (what its config
    validation accepts) that is the ClusterIP the Bind9 Service really gets, in the service range."""
    import ipaddress

    from components.core.contracts import BIND9_POD_LABELS

    m = prod_plan.monitor
    values = release(m, "cert-manager").input("values")
    validate_chart_values("cert-manager", values)
    assert values["dns01RecursiveNameserversOnly"] is True
    host, _, port = values["dns01RecursiveNameservers"].rpartition(":")
    ip = ipaddress.IPv4Address(host)  # an address, not a name cert-manager would have to resolve
    assert port == "53"
    [service] = [r for r in m.of_type("kubernetes:core/v1:Service") if r.name == "dns-bind9-service"]
    assert service.input("spec", "clusterIP") == str(ip)
    assert service.input("spec", "selector") == BIND9_POD_LABELS
    assert {p["port"] for p in service.input("spec", "ports")} == {53}
    assert ip in ipaddress.ip_network(config().management_cluster.service_cidr)
    # The controller may reach those pods (after the Service translation: the pod port).
    policy = m.named("cert-manager-issuers-netpol-controller-to-nameserver")
    [rule] = policy.input("spec", "egress")
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dns"}}}]


def test_a_service_range_without_room_for_bind9s_fixed_address_is_refused():
    from stacks.config import ConfigError

    raw = base_raw()
    raw["managementCluster"] = {**raw["managementCluster"], "serviceCidr": "10.96.0.0/24"}
    with pytest.raises(ConfigError, match="managementCluster.serviceCidr"):
        config(raw)
