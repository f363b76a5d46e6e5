"""Cilium: values vs the 1.20.0 chart, LB IPAM / L2 / policy CRs vs Cilium's schemas, ordering."""

from __future__ import annotations

import pytest

from components.network import cilium
from components.core.contracts import FORWARD_AUTH_MIDDLEWARE, TRAEFIK_NAMESPACE, hostnames
from stacks.config import ConfigError
from tests.helpers.edge_support import HELM_RELEASE, as_object, custom_resources, release
from tests.helpers.factories import base_plan, base_raw, config, plan, tenant
from tests.helpers.schemas import chart_defaults, validate_chart_values, validate_custom_resource


def existing_raw(**cilium_cfg):
    raw = base_raw(
        managementCluster={"name": "weebo4cp-dev", "provisioner": "existing", "loadBalancerIps": ["172.18.255.200/29"],
                           "declaredStorageClasses": ["local-path"]},
    )
    if cilium_cfg:
        raw["cilium"] = cilium_cfg
    return raw


@pytest.fixture(scope="module")
def prod_plan():
    return base_plan()  # shared: planned once per test process


# --- values --------------------------------------------------------------------------------------

def test_talos_values_pass_the_chart_schema_and_use_kubeprism():
    cfg = config()
    v = cilium.values(cfg)
    validate_chart_values("cilium", v)
    assert v["kubeProxyReplacement"] is True
    assert (v["k8sServiceHost"], v["k8sServicePort"]) == ("localhost", 7445)
    assert v["ipam"] == {"mode": "kubernetes"}
    assert v["cgroup"] == {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"}
    assert v["l2announcements"] == {"enabled": True}
    assert v["hubble"]["relay"]["enabled"] and v["hubble"]["ui"]["enabled"]


def test_talos_capabilities_are_the_chart_defaults_without_sys_module():
    defaults = chart_defaults("cilium")["securityContext"]["capabilities"]
    caps = cilium.values(config())["securityContext"]["capabilities"]
    assert caps["ciliumAgent"] == [c for c in defaults["ciliumAgent"] if c != "SYS_MODULE"]
    assert caps["cleanCiliumState"] == [c for c in defaults["cleanCiliumState"] if c != "SYS_MODULE"]


def test_existing_cluster_without_api_address_keeps_kube_proxy():
    cfg = config(existing_raw())
    v = cilium.values(cfg)
    validate_chart_values("cilium", v)
    assert v["kubeProxyReplacement"] is False
    assert "k8sServiceHost" not in v and "l2announcements" not in v
    # No Talos assumptions on an unknown cluster: the chart mounts cgroup v2 itself.
    assert "hostRoot" not in v["cgroup"] and "enabled" not in v["cgroup"]["autoMount"]
    assert "securityContext" not in v
    assert not cilium.l2_announcements(cfg)


def test_existing_cluster_with_api_address_replaces_kube_proxy():
    cfg = config(existing_raw(k8sServiceHost="weebo4cp-dev-control-plane"))
    v = cilium.values(cfg)
    validate_chart_values("cilium", v)
    assert v["kubeProxyReplacement"] is True
    assert (v["k8sServiceHost"], v["k8sServicePort"]) == ("weebo4cp-dev-control-plane", 6443)
    assert v["l2announcements"] == {"enabled": True}
    assert "hostRoot" not in v["cgroup"] and "enabled" not in v["cgroup"]["autoMount"]


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [(1, 1), (3, 2)],
)
def test_operator_replicas_never_exceed_nodes(nodes, expected):
    raw = base_raw()
    raw["managementCluster"]["nodes"] = [
        {"hostname": f"node-{i}", "ovhServiceName": f"ns10{i}.ip-10-0-0.eu", "address": f"51.0.0.{10 + i}"}
        for i in range(nodes)
    ]
    assert cilium.values(config(raw))["operator"]["replicas"] == expected
    assert cilium.values(config(existing_raw()))["operator"]["replicas"] == 1


def test_client_rate_limit_is_sized_by_host_capacity_not_by_listed_tenants():
    def rate(n: int, cpu: int) -> dict:
        raw = base_raw(tenants=[tenant(f"t{i}", i) for i in range(n)],
                       hostCapacity={"cpu": cpu, "memoryGib": 10000, "diskGib": 100000})
        # One pool address per tenant (config validation counts them): a /27 for 10 tenants.
        raw["managementCluster"]["loadBalancerIps"] = ["51.0.1.0/27"]
        return cilium.values(config(raw))[
            "k8sClientRateLimit"]

    assert rate(0, 64) == rate(1, 64) == rate(10, 64)  # adding a tenant leaves Cilium alone
    assert rate(1, 640)["qps"] > rate(1, 64)["qps"] >= 10
    assert rate(1, 64)["burst"] == 2 * rate(1, 64)["qps"]


def test_mtu_is_the_underlay_mtu_and_tenant_mtu_must_fit_nested_encapsulation():
    assert "MTU" not in cilium.values(config())
    cfg = config(base_raw(cilium={"mtu": 9000, "tenantMtu": 1500}))
    v = cilium.values(cfg)
    validate_chart_values("cilium", v)
    assert v["MTU"] == 9000
    assert cfg.cilium.pod_mtu == 8950
    # Default underlay 1500: VM NIC 1450, minus the tenant's own VXLAN 50 -> at most 1400.
    assert config(base_raw(cilium={"tenantMtu": 1400})).cilium.tenant_mtu == 1400
    with pytest.raises(ConfigError, match="tenantMtu 1450 does not fit"):
        config(base_raw(cilium={"tenantMtu": 1450}))


# --- custom resources ----------------------------------------------------------------------------

def test_lb_pool_holds_the_additional_ip_blocks():
    cfg = config(base_raw(managementCluster={**base_raw()["managementCluster"], "loadBalancerIps": ["51.0.1.0/29", "51.0.2.8/30"]}))
    pool = cilium.lb_pool(cfg)
    validate_custom_resource(pool)
    assert pool["apiVersion"] == "cilium.io/v2"
    assert pool["spec"]["blocks"] == [{"cidr": "51.0.1.0/29"}, {"cidr": "51.0.2.8/30"}]
    # The first/last addresses stay reserved, matching PlatformConfig.lb_pool_addresses().
    assert pool["spec"]["allowFirstLastIPs"] == "No"
    assert "51.0.1.0" not in cfg.lb_pool_addresses() and "51.0.1.7" not in cfg.lb_pool_addresses()


def test_l2_policy_and_cilium_network_policies_validate():
    policy = cilium.l2_policy()
    validate_custom_resource(policy)
    assert policy["apiVersion"] == "cilium.io/v2alpha1"
    assert policy["spec"]["loadBalancerIPs"] is True
    for cnp in cilium.policies_after_release(config()):
        validate_custom_resource(cnp)
        assert cnp["spec"]["egress"][0]["toEntities"] == ["kube-apiserver"]


def test_hubble_route_is_behind_forward_auth():
    cfg = config()
    route = cilium.hubble_route(cfg)
    validate_custom_resource(route)
    assert route["metadata"]["namespace"] == cilium.NAMESPACE
    main = [r for r in route["spec"]["routes"] if r.get("middlewares")]
    assert len(main) == 1
    assert main[0]["match"] == f"Host(`{hostnames(cfg).hubble}`)"
    assert main[0]["middlewares"] == [{"name": FORWARD_AUTH_MIDDLEWARE, "namespace": TRAEFIK_NAMESPACE}]
    assert main[0]["services"] == [{"name": "hubble-ui", "port": 80}]
    # Every route without the middleware only serves Authentik's outpost path.
    for r in route["spec"]["routes"]:
        if not r.get("middlewares"):
            assert "PathPrefix(`/outpost.goauthentik.io/`)" in r["match"]


def test_hubble_ui_disabled_means_no_route_and_no_ui_policies():
    cfg = config(base_raw(cilium={"hubbleUi": False}))
    assert cilium.values(cfg)["hubble"]["ui"]["enabled"] is False
    names = {p["metadata"]["name"] for p in cilium.policies_before_release(cfg) + cilium.policies_after_release(cfg)}
    assert not any("ui" in n for n in names)
    graph = plan(base_raw(cilium={"hubbleUi": False})).monitor
    assert not [r for r in custom_resources(graph, "IngressRoute") if r.input("metadata", "name") == "hubble-ui"]


# --- the recorded graph ---------------------------------------------------------------------------

def test_cilium_comes_before_every_other_helm_release(prod_plan):
    m = prod_plan.monitor
    cilium_release = release(m, "cilium")
    others = [r for r in m.of_type(HELM_RELEASE) if r.name != "cilium"]
    assert others
    for other in others:
        assert m.depends_on(other, cilium_release), f"{other.name} does not wait for Cilium"


def test_ipam_crs_wait_for_the_cilium_release(prod_plan):
    m = prod_plan.monitor
    rel = release(m, "cilium")
    for kind in ("CiliumLoadBalancerIPPool", "CiliumL2AnnouncementPolicy"):
        [cr] = custom_resources(m, kind)
        assert m.depends_on(cr, rel)
        validate_custom_resource(as_object(cr))
    for cnp in custom_resources(m, "CiliumNetworkPolicy"):
        assert m.depends_on(cnp, rel), cnp.name
        validate_custom_resource(as_object(cnp))


def test_hubble_network_policies_exist_before_the_release(prod_plan):
    m = prod_plan.monitor
    rel = release(m, "cilium")
    relay_egress = m.named("cilium-netpol-hubble-relay-to-agents")
    assert m.depends_on(rel, relay_egress)
    assert relay_egress.input("spec", "egress") == [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": cilium.HUBBLE_PEER_PORT}]}
    ]
    assert rel.input("values", "policyCIDRMatchMode") == ["nodes"]


def test_hubble_route_waits_for_traefik_and_its_middleware(prod_plan):
    m = prod_plan.monitor
    [route] = [r for r in custom_resources(m, "IngressRoute") if r.input("metadata", "name") == "hubble-ui"]
    assert m.depends_on(route, release(m, "traefik"))
    assert m.depends_on(route, m.named("traefik-forward-auth"))
    assert m.depends_on(route, release(m, "cilium"))
    validate_custom_resource(as_object(route))


def test_cilium_namespace_is_privileged_with_default_deny(prod_plan):
    m = prod_plan.monitor
    ns = m.named("cilium-namespace-ns")
    assert ns.input("metadata", "labels")["pod-security.kubernetes.io/enforce"] == "privileged"
    deny = m.named("cilium-namespace-default-deny")
    assert deny.input("spec", "policyTypes") == ["Ingress", "Egress"]


def test_dev_stack_has_no_l2_policy():
    m = plan(existing_raw()).monitor
    assert custom_resources(m, "CiliumLoadBalancerIPPool")
    assert not custom_resources(m, "CiliumL2AnnouncementPolicy")
    assert release(m, "cilium").input("values", "kubeProxyReplacement") is False


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_egress_to_the_api_servers_identity_names_its_port(stack):
    """On Talos the kube-apiserver identity is the control-plane nodes' (the API server runs on
    their host network): an egress rule to it without ports would open etcd, the kubelet and the
    Talos API too. Every one, in every namespace of every cluster, allows TCP 6443 only."""
    from tests.helpers.factories import stack_plan

    rules = []
    for reg in stack_plan(stack).registrations:
        if reg.type.endswith(("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")):
            spec = reg.input("spec")
            for egress in (spec or {}).get("egress", []):
                if "kube-apiserver" in egress.get("toEntities", []):
                    rules.append((reg.name, egress.get("toPorts")))
    assert len(rules) > 10  # the check below means something
    unported = [name for name, ports in rules if not ports]
    assert unported == [], f"egress to kube-apiserver on any port: {unported}"
    ports = {(p["protocol"], p["port"]) for _, to_ports in rules for tp in to_ports for p in tp["ports"]}
    assert ports == {("TCP", "6443")}
