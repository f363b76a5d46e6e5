"""Platform DNS: Bind9 (named.conf, zone, StatefulSet, Service), ExternalDNS, OVH delegation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import versions
from components.dns import bind9
from components.dns import platform_dns
from components.core.contracts import BIND9_POD_PORT
from offline.mocks import contains_secret
from offline.plan import write_plan
from tests.helpers.factories import base_plan, base_raw, config, plan
from tests.helpers.known_secrets import MARKER, plan_with_known_secrets
from tests.helpers.schemas import validate_chart_values, validate_custom_resource

STS = "kubernetes:apps/v1:StatefulSet"
RELEASE = "kubernetes:helm.sh/v3:Release"
ZONE_RECORD = "ovh:Domain/zoneRecord:ZoneRecord"


def existing_raw(**over):
    """A dev-like environment: existing cluster, no OVH."""
    raw = base_raw(**over)
    mc = dict(raw["managementCluster"])
    mc.update(provisioner="existing", nodes=[], operatorSourceRanges=[], declaredStorageClasses=["local-path"])
    raw["managementCluster"] = mc
    return raw


def _component(mon, name):
    (found,) = [r for r in mon.registrations.values() if r.name == name and not r.custom]
    return found


@pytest.fixture(scope="module")
def prod_like():
    return base_plan()  # shared: planned once per test process


# --------------------------------------------------------------------------------------------
# named.conf and zone
# --------------------------------------------------------------------------------------------

def _spec(**over):
    return platform_dns.zone_spec(config(base_raw(**over)))


def _zone_block(conf: str) -> str:
    return conf[conf.index('zone "'):]


def test_named_conf_is_authoritative_only_and_gates_transfers_and_updates_by_key():
    conf = bind9.named_conf(_spec())
    options = conf[conf.index("options {"):conf.index('zone "')]
    assert "recursion no;" in options
    assert "allow-recursion { none; };" in options
    # Global defaults closed; the zone opens transfers to ExternalDNS's key only.
    assert "allow-transfer { none; };" in options
    assert "allow-update { none; };" in options
    zone = _zone_block(conf)
    assert 'zone "cloud.example.org"' in zone and "type primary;" in zone
    assert re.search(r"allow-transfer \{ key external-dns; \};", zone)
    assert "allow-update" not in zone  # update-policy only: per key, per type
    # Least privilege, first match: ExternalDNS is denied the challenge names before its grant.
    policy = [line.strip() for line in zone[zone.index("update-policy {"):].splitlines()[1:4]]
    assert policy == [
        "deny external-dns subdomain _acme-challenge.cloud.example.org. ANY;",
        "grant external-dns zonesub A AAAA CNAME TXT;",
        "grant cert-manager name _acme-challenge.cloud.example.org. TXT;",
    ]
    assert "zonesub ANY" not in zone and "zonesub TXT" not in zone
    assert f"listen-on port {BIND9_POD_PORT}" in options


def test_named_conf_holds_no_key_material_only_an_include_of_the_secret():
    conf = bind9.named_conf(_spec())
    assert "secret" not in conf
    assert f'include "{bind9.KEYS_DIR}/{bind9.KEYS_FILE}";' in conf


def test_named_conf_refuses_a_transfer_key_without_definition_or_no_keys():
    spec = _spec()
    from dataclasses import replace

    with pytest.raises(ValueError, match="transfer keys"):
        bind9.named_conf(replace(spec, transfer_keys=["nobody"]))
    with pytest.raises(ValueError, match="at least one key"):
        bind9.named_conf(replace(spec, update_rules=[], transfer_keys=[]))


def test_update_rules_refuse_implicit_types_and_nameless_rules():
    with pytest.raises(ValueError, match="record types"):
        bind9.UpdateRule("grant", "k", "zonesub", None, ()).render()
    with pytest.raises(ValueError, match="name is required"):
        bind9.UpdateRule("grant", "k", "name", None, ("TXT",)).render()
    with pytest.raises(ValueError, match="rule type"):
        bind9.UpdateRule("grant", "k", "wildcard", "*.x", ("TXT",)).render()


def test_cert_manager_may_write_the_challenge_of_every_acme_certificate_in_the_plan(prod_like):
    """Derived, not hardcoded: every dnsName of every ACME Certificate the whole program creates
    has its _acme-challenge name granted to cert-manager (TXT only) and denied to ExternalDNS."""
    from components.edge import cert_manager

    m = prod_like.monitor
    certs = [r for r in m.registrations.values() if r.type == "kubernetes:cert-manager.io/v1:Certificate"]
    acme = [c for c in certs if c.input("spec", "issuerRef", "name") in cert_manager.ACME_ISSUERS]
    assert acme, "the plan has no ACME certificate"
    [config_map] = [r for r in m.of_type("kubernetes:core/v1:ConfigMap") if r.name.endswith("bind9-config")]
    conf = config_map.input("data")["named.conf"]
    for cert in acme:
        for dns_name in cert.input("spec", "dnsNames"):
            challenge = "_acme-challenge." + dns_name.removeprefix("*.")
            assert f"grant cert-manager name {challenge}. TXT;" in conf, dns_name
            deny = f"deny external-dns subdomain {challenge}. ANY;"
            assert conf.index(deny) < conf.index("grant external-dns zonesub"), dns_name
    assert conf.count("grant cert-manager ") == len({
        d.removeprefix("*.") for c in acme for d in c.input("spec", "dnsNames")
    })


def test_tsig_keys_conf_renders_one_key_statement_per_client():
    out = bind9.tsig_keys_conf({"external-dns": "QUJD", "cert-manager": "REVG"}, "hmac-sha512")
    assert out.count("key ") == 2
    assert 'key "cert-manager" {\n    algorithm hmac-sha512;\n    secret "REVG";\n};' in out


def test_zone_seed_has_soa_and_ns_at_the_nameserver_of_the_parent_zone():
    raw = base_raw(dns={"nameserverLabel": "ns7"})
    raw["domain"] = {**raw["domain"], "acmeEmail": "plat.form@example.org"}
    seed = bind9.zone_seed(platform_dns.zone_spec(config(raw)))
    assert "$ORIGIN cloud.example.org." in seed
    assert re.search(r"@\s+IN SOA ns7\.example\.org\. plat\\\.form\.example\.org\. \(", seed)
    assert re.search(r"\n\s+IN NS\s+ns7\.example\.org\.\n", seed)


# --------------------------------------------------------------------------------------------
# ExternalDNS values
# --------------------------------------------------------------------------------------------

def test_external_dns_values_pass_the_chart_schema_and_publish_traefik_routes():
    cfg = config()
    values = platform_dns.external_dns_values(cfg, "bind9.dns.svc.cluster.local")
    validate_chart_values("external-dns", values)
    assert values["sources"] == ["service", "ingress", "traefik-proxy"]
    assert values["policy"] == "sync" and values["txtOwnerId"] == "weebo4cp"
    assert values["domainFilters"] == ["cloud.example.org"]
    args = values["extraArgs"]
    assert "--rfc2136-tsig-keyname=external-dns" in args and "--rfc2136-tsig-axfr" in args
    assert "--rfc2136-zone=cloud.example.org" in args
    # The secret never travels in args or values: env from a Secret.
    assert not any(a.startswith("--rfc2136-tsig-secret=") for a in args)
    (env,) = values["env"]
    assert env["name"] == "EXTERNAL_DNS_RFC2136_TSIG_SECRET"
    assert env["valueFrom"]["secretKeyRef"]["name"] == platform_dns.EXTERNAL_DNS_TSIG_SECRET


def test_external_dns_policies_validate_and_target_bind9_pod_port():
    validate_custom_resource(platform_dns.external_dns_apiserver_policy())
    egress = platform_dns.external_dns_egress_spec()["egress"][0]
    assert {p["port"] for p in egress["ports"]} == {BIND9_POD_PORT}
    assert egress["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "bind9"


# --------------------------------------------------------------------------------------------
# The recorded graph
# --------------------------------------------------------------------------------------------

def test_bind9_comes_before_external_dns_and_external_dns_after_traefik(prod_like):
    mon = prod_like.monitor
    sts = mon.named("dns-bind9-statefulset")
    ext = mon.named("dns-external-dns")
    assert ext.type == RELEASE
    assert mon.depends_on(ext, sts)
    assert mon.depends_on(ext, _component(mon, "traefik"))
    assert mon.depends_on(sts, mon.named("dns-namespace-ns"))
    assert mon.depends_on(sts, _component(mon, "cilium"))
    assert not mon.depends_on(sts, ext)
    values = ext.input("values")
    validate_chart_values("external-dns", values)


def test_delegation_records_at_ovh_come_before_bind9_reports_ready(prod_like):
    mon = prod_like.monitor
    records = {r.name: r for r in mon.of_type(ZONE_RECORD) if r.name.startswith("dns-")}
    assert set(records) == {"dns-delegation-ns", "dns-glue-a"}
    ns, glue = records["dns-delegation-ns"], records["dns-glue-a"]
    assert ns.input() == {"zone": "example.org", "subdomain": "cloud", "fieldtype": "NS",
                          "target": "ns1.example.org.", "ttl": 300}
    cfg = config()
    assert glue.input() == {"zone": "example.org", "subdomain": "ns1", "fieldtype": "A",
                            "target": cfg.dns_ip, "ttl": 300}
    assert mon.depends_on(mon.named("dns-bind9-statefulset"), ns)
    assert mon.depends_on(mon.named("dns-bind9-statefulset"), glue)


def test_existing_cluster_has_no_ovh_delegation():
    result = plan(existing_raw())
    assert result.monitor.of_type(ZONE_RECORD) == []
    assert platform_dns.delegation_records(config(existing_raw())) == []


def test_bind9_service_exposes_53_on_the_pool_ip_through_cilium_lb_ipam(prod_like):
    svc = prod_like.monitor.named("dns-bind9-service").input()
    cfg = config()
    assert svc["metadata"]["annotations"] == {"lbipam.cilium.io/ips": cfg.dns_ip}
    assert svc["spec"]["type"] == "LoadBalancer"
    assert sorted((p["protocol"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]) == [
        ("TCP", 53, "dns-tcp"), ("UDP", 53, "dns-udp")
    ]


def test_bind9_without_pool_ip_stays_cluster_internal():
    annotations, spec = bind9.service_spec(None)
    assert annotations == {} and spec["type"] == "ClusterIP"


def test_bind9_statefulset_is_restricted_pinned_probed_and_persistent(prod_like):
    sts = prod_like.monitor.named("dns-bind9-statefulset").input("spec")
    pod = sts["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"] + pod["initContainers"]:
        assert c["image"] == versions.BIND9_IMAGE
        sc = c["securityContext"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    named = pod["containers"][0]
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(named)
    assert {m["mountPath"] for m in named["volumeMounts"]} >= {bind9.DATA_DIR, bind9.KEYS_DIR, bind9.CONFIG_DIR}
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    keys_volume = next(v for v in pod["volumes"] if v["name"] == "keys")
    assert keys_volume["secret"]["secretName"] == "bind9-tsig-keys"


def test_zone_seed_is_copied_only_onto_an_empty_volume():
    sts = bind9.statefulset_spec(_spec(), config_map="c", keys_secret="k", storage_size="1Gi", storage_class="fast")
    (init,) = sts["template"]["spec"]["initContainers"]
    script = init["command"][-1]
    assert 'if [ ! -s "/var/lib/bind/cloud.example.org.db" ]' in script
    assert sts["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"


def test_dns_namespace_is_restricted_with_default_deny_and_dns_ingress(prod_like):
    mon = prod_like.monitor
    labels = mon.named("dns-namespace-ns").input("metadata", "labels")
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert mon.named("dns-namespace-default-deny").input("spec", "policyTypes") == ["Ingress", "Egress"]
    ingress = mon.named("dns-bind9-allow-dns").input("spec")
    (rule,) = ingress["ingress"]
    assert "from" not in rule  # from anywhere
    assert sorted(p["protocol"] for p in rule["ports"]) == ["TCP", "UDP"]
    cnp = mon.named("dns-external-dns-to-apiserver").input()
    validate_custom_resource({k: cnp[k] for k in ("apiVersion", "kind", "metadata", "spec")})


def test_cert_manager_gets_its_own_key_and_waits_for_bind9():
    import pulumi

    from components.dns.platform_dns import PlatformDns, PlatformDnsArgs
    from offline.mocks import PlanMocks, RecordingMonitor

    mocks = PlanMocks(preview=True)
    monitor = RecordingMonitor(mocks, "weebo-platform", "unit")
    pulumi.runtime.settings.ROOT.set(None)  # a fresh root Stack per program (the SDK keeps it in this context variable)
    pulumi.runtime.set_mocks(mocks, project="weebo-platform", stack="unit", preview=True, monitor=monitor)
    seen = {}

    @pulumi.runtime.test
    def program():
        import pulumi_kubernetes as k8s

        provider = k8s.Provider("unit", kubeconfig="{}")
        dns = PlatformDns("dns", PlatformDnsArgs(config=config()), provider)
        seen["cm"], seen["ext"], seen["bind9"] = dns.cert_manager_access, dns.external_dns_access, dns.bind9
        seen["compat"] = (dns.tsig_key, dns.tsig_secret_name)

    program()
    cm, ext = seen["cm"], seen["ext"]
    assert (cm.key_name, ext.key_name) == ("cert-manager", "external-dns")
    assert cm.zone == "cloud.example.org" and cm.algorithm == "hmac-sha256"
    assert cm.nameserver == "bind9.dns.svc.cluster.local:53"
    assert cm.ready is seen["bind9"] and ext.ready is seen["bind9"]
    assert seen["compat"][0] is cm.secret
    keys = [r for r in monitor.of_type("random:index/randomBytes:RandomBytes")]
    assert sorted(r.name for r in keys) == ["dns-tsig-cert-manager", "dns-tsig-external-dns"]
    assert all(r.input("length") == 32 for r in keys)


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------

def test_tsig_keys_are_secret_inputs_and_never_in_plan_files_or_config_maps(monkeypatch, tmp_path: Path):
    result = plan_with_known_secrets(monkeypatch, base_raw())
    mon = result.monitor
    keys_secret = mon.named("dns-bind9-keys")
    ext_secret = mon.named("dns-external-dns-tsig")
    assert contains_secret(keys_secret.inputs["stringData"])
    assert contains_secret(ext_secret.inputs["stringData"])
    # The generated key material really reached the Secrets (so the next checks mean something).
    conf = keys_secret.input("stringData", bind9.KEYS_FILE)
    assert f"{MARKER}-b64-dns-tsig-external-dns" in conf and f"{MARKER}-b64-dns-tsig-cert-manager" in conf
    assert ext_secret.input("stringData", "tsig-secret") == f"{MARKER}-b64-dns-tsig-external-dns"

    for cm in mon.of_type("kubernetes:core/v1:ConfigMap"):
        assert MARKER not in repr(cm.input())
    for rel in mon.of_type(RELEASE):
        assert MARKER not in repr(rel.input("values"))
    out = tmp_path / "plan"
    write_plan(result, out)
    leaked = [p for p in out.rglob("*") if p.is_file() and MARKER in p.read_text()]
    assert leaked == []


# --------------------------------------------------------------------------------------------
# Every route is published (issue 13 item 2), on the prod stack file
# --------------------------------------------------------------------------------------------

# external-dns v0.21.0 source/traefik_proxy.go: traefikHostExtractor / traefikValueProcessor.
_HOST_CALL = re.compile(r"(?:HostSNI|HostHeader|Host)\s*\(\s*(`.*?`)\s*\)")
_HOST_VALUE = re.compile(r"`([^,`]+)`")
TARGETS = ("external-dns.alpha.kubernetes.io/target", "external-dns.kubernetes.io/target")


@pytest.fixture(scope="module")
def prod_stack():
    from stacks.loader import read_stack
    from tests.helpers.factories import stack_plan

    stack = read_stack("prod")
    return stack_plan("prod"), config(stack.raw, stack.secret_keys)


def _in_zone(host: str, zone: str) -> bool:
    return host == zone or host.endswith(f".{zone}")


def test_every_host_of_every_route_is_published_at_traefiks_pinned_ip(prod_stack):
    result, cfg = prod_stack
    zone, traefik_ip = cfg.domain.platform_zone, cfg.traefik_ip
    assert traefik_ip == "51.210.118.41"  # the prod stack's traefik.loadBalancerIp
    routes = [r for r in result.monitor.registrations.values()
              if r.type.startswith("kubernetes:traefik.io/") and r.type.split(":")[-1].startswith("IngressRoute")]
    hosts: dict[str, str] = {}
    for route in routes:
        annotations = route.input("metadata", "annotations") or {}
        matched = [v for rule in route.input("spec", "routes")
                   for call in _HOST_CALL.findall(rule["match"]) for v in _HOST_VALUE.findall(call)]
        assert matched, f"{route.name}: no Host() ExternalDNS could publish"
        for key in TARGETS:
            assert annotations.get(key) == traefik_ip, (route.name, key)
        for host in matched:
            assert _in_zone(host, zone), (route.name, host)
            hosts[host] = route.name
    # Traefik's Service really gets that address (LB IPAM annotation of the chart values).
    traefik = [r for r in result.monitor.of_type(RELEASE) if r.input("name") == "traefik"]
    [release] = traefik or [r for r in result.monitor.of_type(RELEASE) if r.input("chart") == "traefik"]
    assert release.input("values")["service"]["annotations"]["lbipam.cilium.io/ips"] == traefik_ip
    from components.core.contracts import hostnames

    h = hostnames(cfg)
    assert {h.authentik, h.vault, h.argocd, h.hubble, h.traefik_dashboard} <= set(hosts)


def test_every_hostname_annotated_service_is_a_load_balancer_in_the_zone(prod_stack):
    """The service source publishes a Service's hostname annotation at its load-balancer
    address (status), so such a Service must be a LoadBalancer with its name in the zone."""
    result, cfg = prod_stack
    hostname_keys = ("external-dns.alpha.kubernetes.io/hostname", "external-dns.kubernetes.io/hostname")
    found = 0
    for reg in result.monitor.registrations.values():
        obj = reg.inputs or {}
        for meta, spec in _service_like(obj):
            names = [v for k, v in ((meta or {}).get("annotations") or {}).items() if k in hostname_keys]
            for value in names:
                found += 1
                assert (spec or {}).get("type") == "LoadBalancer", reg.name
                for host in value.split(","):
                    assert _in_zone(host.strip().removeprefix("*."), cfg.domain.platform_zone), (reg.name, host)
    assert found or not cfg.tenants


def _service_like(obj):
    """(metadata, spec) of a Service, or of a Service template (CAPK controlPlaneServiceTemplate)."""
    if obj.get("kind") == "Service":
        yield obj.get("metadata"), obj.get("spec")
    template = ((obj.get("spec") or {}) if isinstance(obj.get("spec"), dict) else {}).get("controlPlaneServiceTemplate")
    if template:
        yield template.get("metadata"), template.get("spec")


def test_a_traefik_without_address_is_refused_since_no_route_could_be_published():
    from components.edge import traefik
    from stacks.config import ConfigError

    raw = existing_raw()
    raw["managementCluster"] = {**raw["managementCluster"], "loadBalancerIps": []}
    with pytest.raises(ConfigError, match="ExternalDNS can publish no route"):
        config(raw)
    cfg = config(existing_raw())
    no_pool = cfg.model_copy(update={"management_cluster": cfg.management_cluster.model_copy(
        update={"load_balancer_ips": []})})
    with pytest.raises(ValueError, match="no load-balancer IP"):
        traefik.external_dns_annotations(no_pool)


def test_bootstrap_gates_wait_for_external_dns(prod_stack):
    """AuthentikReady and VaultInit reach auth.<zone>/vault.<zone>: they must wait for what
    publishes those names, and so does everything behind them."""
    m = prod_stack[0].monitor
    external_dns = m.named("dns-external-dns")
    for gate in ("authentik-config-ready", "vault-init", "vault-config-api",
                 "authentik-config-group-platform-admins"):
        assert m.depends_on(m.named(gate), external_dns), gate


def test_external_dns_reads_the_annotation_prefix_the_program_writes(prod_stack):
    """Pinned, so a chart bump to v0.22 (new default prefix) keeps every route and tenant
    hostname published."""
    result, cfg = prod_stack
    args = platform_dns.external_dns_values(cfg, "bind9.dns.svc.cluster.local")["extraArgs"]
    [flag] = [a for a in args if a.startswith("--annotation-prefix=")]
    prefix = flag.split("=", 1)[1]
    assert prefix.endswith("/")
    written = {k for r in result.monitor.registrations.values() for meta, _ in _service_like(r.inputs or {})
               for k in ((meta or {}).get("annotations") or {}) if k.startswith("external-dns")}
    written |= {k for r in result.monitor.registrations.values() if r.type.endswith(":IngressRoute")
                for k in (r.input("metadata", "annotations") or {})}
    assert f"{prefix}target" in written
    assert all(k.startswith(prefix) or k.startswith("external-dns.kubernetes.io/") for k in written)
    assert any(k == f"{prefix}hostname" for k in written) or not cfg.tenants
