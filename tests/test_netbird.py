"""NetBird: groups, setup key, network/router/resources, policies, routing peer, tenant routes."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

import versions
from components.vpn import netbird as nb
from stacks.config import ConfigError
from offline.mocks import RecordingMonitor, contains_secret
from offline.plan import write_plan
from tests.helpers.factories import base_raw, config, plan
from tests.helpers.known_secrets import MARKER, KnownSecretMocks, plan_with_known_secrets
from tests.helpers.schemas import validate_custom_resource

GROUP = "netbird:index/group:Group"
POLICY = "netbird:index/policy:Policy"
SETUP_KEY = "netbird:index/setupKey:SetupKey"


def netbird_raw(**netbird):
    spec = {
        "groups": ["platform-admins", "erp-admins"],
        "policies": [
            {"name": "admins-to-platform", "sources": ["platform-admins"], "destinations": ["weebo4cp-services"],
             "protocol": "tcp", "ports": [443, 6443]},
        ],
        **netbird,
    }
    return base_raw(netbird=spec)


@pytest.fixture(scope="module")
def deployed():
    """After a deployment: ids known, so references between NetBird objects can be followed."""
    import offline.plan

    original = offline.plan.PlanMocks
    offline.plan.PlanMocks = KnownSecretMocks
    try:
        return plan(netbird_raw(), preview=False)
    finally:
        offline.plan.PlanMocks = original


def _id(reg) -> str:
    return f"{reg.name}-id"  # PlanMocks(preview=False) ids


# --------------------------------------------------------------------------------------------
# Config rules
# --------------------------------------------------------------------------------------------

def refused(raw) -> list:
    """The problems of a config that validation refuses (NetBird rules run in validation)."""
    with pytest.raises(ConfigError) as caught:
        config(raw)
    return caught.value.problems


def test_policies_must_name_declared_groups_and_ports_need_tcp_or_udp():
    found = refused(netbird_raw(policies=[
        {"name": "p1", "sources": ["nobody"], "destinations": ["weebo4cp-services"], "protocol": "all", "ports": [22]},
        {"name": "p1", "sources": ["platform-admins"], "destinations": ["weebo4cp-routers"], "ports": [70000]},
    ]))
    problems = {p.path: p.problem for p in found}
    assert set(problems) == {
        "netbird.policies[0].sources[0]", "netbird.policies[0].ports",
        "netbird.policies[1].name", "netbird.policies[1].ports[0]",
    }
    with pytest.raises(ConfigError, match="nobody"):
        plan(netbird_raw(policies=[{"name": "p", "sources": ["nobody"], "destinations": ["erp-admins"]}]))


def test_tenant_routes_need_netbird_and_netbird_admin_groups():
    from tests.helpers.factories import tenant

    routed = tenant("alpha", 0, netbirdRoute=True, adminGroups=["platform-admins"])
    assert [p.path for p in refused(base_raw(tenants=[routed], netbird={"enabled": False}))] == ["tenants[0].netbirdRoute"]
    raw = base_raw(tenants=[routed], netbird={"groups": ["erp-admins"]})
    assert [p.path for p in refused(raw)] == ["tenants[0].adminGroups[0]"]
    with pytest.raises(ConfigError, match="platform-admins"):
        plan(raw)


def test_prod_stack_policies_are_valid():
    from stacks.loader import read_stack

    stack = read_stack("prod")
    from stacks.config import parse_config

    assert nb.config_problems(parse_config(stack.raw, stack.secret_keys, stack="prod")) == []


# --------------------------------------------------------------------------------------------
# NetBird objects
# --------------------------------------------------------------------------------------------

def test_groups_network_router_and_service_range(deployed):
    mon = deployed.monitor
    groups = {r.input("name"): r for r in mon.of_type(GROUP)}
    assert set(groups) == {"platform-admins", "erp-admins", "weebo4cp-routers", "weebo4cp-services"}
    network = mon.named("netbird-network")
    resource = mon.named("netbird-service-range").input()
    assert resource["address"] == "10.96.0.0/12"
    assert resource["networkId"] == _id(network)
    assert resource["groups"] == [_id(groups["weebo4cp-services"])]
    router = mon.named("netbird-router").input()
    assert router["networkId"] == _id(network)
    assert router["peerGroups"] == [_id(groups["weebo4cp-routers"])]
    assert router["masquerade"] is True and "peer" not in router


def test_policies_from_config_resolve_group_ids(deployed):
    mon = deployed.monitor
    groups = {r.input("name"): r for r in mon.of_type(GROUP)}
    (policy,) = mon.of_type(POLICY)
    rule = policy.input("rule")
    assert rule["sources"] == [_id(groups["platform-admins"])]
    assert rule["destinations"] == [_id(groups["weebo4cp-services"])]
    assert rule["protocol"] == "tcp" and rule["ports"] == ["443", "6443"] and rule["action"] == "accept"


def test_netbird_objects_use_the_netbird_provider_with_url_from_config_and_no_token(deployed):
    mon = deployed.monitor
    (provider,) = mon.of_type("pulumi:providers:netbird")
    assert provider.input() == {"managementUrl": "https://api.netbird.io"}  # token: NB_PAT
    for reg in mon.registrations.values():
        if reg.type.startswith("netbird:"):
            assert reg.provider_urn == provider.urn, reg.name


def test_setup_key_enrolls_into_the_routers_group_only(deployed):
    mon = deployed.monitor
    (key,) = mon.of_type(SETUP_KEY)
    routers = next(r for r in mon.of_type(GROUP) if r.input("name") == "weebo4cp-routers")
    assert key.input("autoGroups") == [_id(routers)]
    assert key.input("type") == "reusable" and key.input("ephemeral") is True
    assert "key" in key.additional_secret_outputs


# --------------------------------------------------------------------------------------------
# Routing peer
# --------------------------------------------------------------------------------------------

def test_routing_peer_deployment_gets_the_setup_key_from_a_secret(deployed):
    mon = deployed.monitor
    dep = mon.named("netbird-routing-peer")
    spec = dep.input("spec")
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NB_SETUP_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "weebo4cp-routing-peer-setup-key", "key": nb.SETUP_KEY_SECRET_KEY,
    }
    assert "value" not in env["NB_SETUP_KEY"]
    assert env["NB_MANAGEMENT_URL"]["value"] == "https://api.netbird.io"
    assert container["image"] == versions.NETBIRD_CLIENT_IMAGE and "@sha256:" in container["image"]
    assert container["securityContext"]["privileged"] is True
    assert "NET_ADMIN" in container["securityContext"]["capabilities"]["add"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert {"startupProbe", "readinessProbe"} <= set(container)
    assert spec["replicas"] == 2
    # Enrols only once the router exists, and the key Secret.
    assert mon.depends_on(dep, mon.named("netbird-router"))
    assert mon.depends_on(dep, mon.named("netbird-setup-key-secret"))
    assert mon.depends_on(dep, mon.named("netbird-namespace-ns"))


def test_netbird_namespace_is_privileged_with_default_deny_and_explicit_egress(deployed):
    mon = deployed.monitor
    labels = mon.named("netbird-namespace-ns").input("metadata", "labels")
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    egress = mon.named("netbird-routing-peer-egress").input("spec")
    assert egress["policyTypes"] == ["Egress"]
    assert egress["podSelector"]["matchLabels"] == nb.peer_labels("weebo4cp-routing-peer")
    cnp = mon.named("netbird-routing-peer-to-apiserver").input()
    validate_custom_resource({k: cnp[k] for k in ("apiVersion", "kind", "metadata", "spec")})


def test_disabled_netbird_creates_nothing():
    result = plan(base_raw(netbird={"enabled": False}))
    assert not [r for r in result.registrations if r.type.startswith(("netbird:", "pulumi:providers:netbird"))]
    assert not [r for r in result.registrations if r.name.startswith("netbird-") and r.custom]


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------

def test_setup_key_is_secret_and_never_in_plan_files(monkeypatch, tmp_path: Path):
    result = plan_with_known_secrets(monkeypatch, netbird_raw())
    secret = result.monitor.named("netbird-setup-key-secret")
    assert contains_secret(secret.inputs["stringData"])
    assert secret.input("stringData", nb.SETUP_KEY_SECRET_KEY) == f"{MARKER}-setupkey-netbird-setup-key"
    for cm in result.monitor.of_type("kubernetes:core/v1:ConfigMap"):
        assert MARKER not in repr(cm.input())
    assert MARKER not in repr(result.monitor.named("netbird-routing-peer").input())
    write_plan(result, tmp_path / "plan")
    assert [p for p in (tmp_path / "plan").rglob("*") if p.is_file() and MARKER in p.read_text()] == []


# --------------------------------------------------------------------------------------------
# Tenant routes
# --------------------------------------------------------------------------------------------

def _run_netbird(raw, body):
    """Build the Netbird component alone and call ``body(component)`` inside the program."""
    from components.vpn.netbird import Netbird, NetbirdArgs

    mocks = KnownSecretMocks()
    monitor = RecordingMonitor(mocks, "weebo-platform", "unit")
    pulumi.runtime.settings.ROOT.set(None)  # a fresh root Stack per program (the SDK keeps it in this context variable)
    pulumi.runtime.set_mocks(mocks, project="weebo-platform", stack="unit", preview=False, monitor=monitor)
    out = {}

    @pulumi.runtime.test
    def program():
        import pulumi_kubernetes as k8s

        component = Netbird("netbird", NetbirdArgs(config=config(raw)), k8s.Provider("unit", kubeconfig="{}"))
        out["result"] = body(component)

    program()
    return monitor, out["result"]


def test_tenant_route_creates_a_network_routed_by_peers_in_the_tenant():
    monitor, route = _run_netbird(
        netbird_raw(), lambda c: c.add_tenant_route("erp", ["10.128.0.0/16", "10.129.0.0/16"], ["erp-admins"])
    )
    ranges = [r for r in monitor.of_type("netbird:index/networkResource:NetworkResource") if "tenant-erp" in r.name]
    assert sorted(r.input("address") for r in ranges) == ["10.128.0.0/16", "10.129.0.0/16"]
    router = monitor.named("netbird-tenant-erp-router").input()
    assert router["peerGroups"] == ["netbird-tenant-erp-routers-id"]
    key = monitor.named("netbird-tenant-erp-setup-key")
    assert key.input("autoGroups") == ["netbird-tenant-erp-routers-id"]
    rule = monitor.named("netbird-tenant-erp-access").input("rule")
    assert rule["sources"] == ["netbird-group-erp-admins-id"]
    assert rule["destinations"] == ["netbird-tenant-erp-services-id"]
    assert route.management_url == "https://api.netbird.io"


def test_tenant_route_refuses_unknown_groups_and_disabled_netbird():
    with pytest.raises(ValueError, match="unknown NetBird group"):
        _run_netbird(netbird_raw(), lambda c: c.add_tenant_route("erp", ["10.128.0.0/16"], ["ghosts"]))
    with pytest.raises(RuntimeError, match="disabled"):
        _run_netbird(base_raw(netbird={"enabled": False}), lambda c: c.add_tenant_route("erp", ["10.0.0.0/8"], []))


def test_routing_peer_manifest_for_tenants_is_reusable():
    m = nb.routing_peer_manifests(name="erp-routing-peer", namespace="netbird", management_url="https://x",
                                  setup_key_secret="s", replicas=1)
    assert m["kind"] == "Deployment" and m["metadata"]["namespace"] == "netbird"
    assert m["spec"]["selector"]["matchLabels"] == nb.peer_labels("erp-routing-peer")
    assert m["spec"]["template"]["spec"]["automountServiceAccountToken"] is False

