"""The management cluster component: OVH servers, Talos bootstrap order, protection, secrecy."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

import offline.plan
from components.host import ovh_server as ovs
from stacks.config import ConfigError
from offline.mocks import SECRET, PlanMocks, contains_secret
from offline.plan import write_plan
from tests.helpers.factories import base_raw, config, plan
from tests.helpers.factories import stack_plan

MC = "weebo4cp"
K8S_PROVIDER = "pulumi:providers:kubernetes"
REINSTALL = "ovh:Dedicated/serverReinstallTask:ServerReinstallTask"
FIREWALL_RULE = "ovh:Ip/firewallRule:FirewallRule"


def _nodes(cps: int, workers: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "hostname": f"node-{i + 1}",
            "ovhServiceName": f"ns{100 + i}.ip-10-0-0.eu",
            "address": f"51.0.0.{10 + i}",
            "role": "controlplane" if i < cps else "worker",
        }
        for i in range(cps + workers)
    ]


def raw_cluster(cps: int = 1, workers: int = 0, **mc: Any) -> dict[str, Any]:
    raw = base_raw(tenants=[])
    raw["managementCluster"]["nodes"] = _nodes(cps, workers)
    raw["managementCluster"].update(mc)
    return raw


@pytest.fixture(scope="module")
def ha():
    return plan(raw_cluster(3, 1)).monitor


@pytest.fixture(scope="module")
def single():
    return plan(raw_cluster(1)).monitor


def k8s_provider(monitor):
    [p] = [r for r in monitor.of_type(K8S_PROVIDER) if r.name == MC]
    return p


# --- pure parts ----------------------------------------------------------------------------------

def test_firewall_admits_the_apis_only_from_operators_and_denies_the_rest():
    rules = ovs.firewall_rules(["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32"], 51820)
    seqs = [r.sequence for r in rules]
    assert len(set(seqs)) == len(seqs) and all(0 <= s <= 19 for s in seqs)
    assert len({r.role for r in rules}) == len(rules)
    assert rules[0] == ovs.FirewallRuleSpec("tcp-established", 0, "permit", "tcp", tcp_option="established")
    assert rules[-1] == ovs.FirewallRuleSpec("deny-all", 19, "deny", "ipv4")
    for port in (ovs.TALOS_API_PORT, ovs.KUBERNETES_API_PORT):
        admitting = [r for r in rules if r.destination_port == port]
        assert sorted(r.source for r in admitting) == ["198.51.100.0/24", "203.0.113.0/24"]  # IPv6 skipped
        assert all(r.action == "permit" and r.protocol == "tcp" for r in admitting)
    open_to_all = {(r.protocol, r.destination_port) for r in rules if r.action == "permit" and r.source is None and r.destination_port}
    assert open_to_all == {("tcp", 80), ("tcp", 443), ("udp", 53), ("tcp", 53), ("udp", 51820)}
    # Every permit comes before the final deny (the firewall evaluates by sequence).
    assert max(r.sequence for r in rules if r.action == "permit") < 19


def test_firewall_rule_budget_is_a_config_error():
    ranges = [f"203.0.{i}.0/24" for i in range(6)]
    with pytest.raises(ConfigError, match="at most 5"):
        config(raw_cluster(1, operatorSourceRanges=ranges))
    assert len(ovs.firewall_rules(ranges[:5], 51820)) == 20
    with pytest.raises(ValueError):
        ovs.firewall_rules(ranges, 51820)


def test_byoi_image_url_is_the_uncompressed_qcow2():
    url = "https://factory.talos.dev/image/abc/v1.13.9/metal-amd64.raw.zst"
    assert ovs.byoi_image_url(url) == "https://factory.talos.dev/image/abc/v1.13.9/metal-amd64.qcow2"
    with pytest.raises(ValueError):
        ovs.byoi_image_url("https://factory.talos.dev/image/abc/v1.13.9/openstack-amd64.raw.xz")


def test_relative_name():
    assert ovs.relative_name("weebo4cp.example.org", "example.org") == "weebo4cp"
    assert ovs.relative_name("api.k8s.example.org", "example.org") == "api.k8s"
    with pytest.raises(ValueError):
        ovs.relative_name("weebo4cp.example.com", "example.org")


# --- graph order ---------------------------------------------------------------------------------

def test_reinstall_then_apply_then_bootstrap_then_kubeconfig_then_provider(ha):
    bootstrap = ha.named(f"{MC}-bootstrap")
    kubeconfig = ha.named(f"{MC}-kubeconfig")
    provider = k8s_provider(ha)
    for host in ("node-1", "node-2", "node-3", "node-4"):
        reinstall = ha.named(f"{MC}-{host}-reinstall")
        apply = ha.named(f"{MC}-{host}-apply")
        assert ha.depends_on(apply, reinstall)
        assert ha.depends_on(bootstrap, apply)
        assert not ha.depends_on(reinstall, apply)
    assert ha.depends_on(kubeconfig, bootstrap)
    assert ha.depends_on(provider, kubeconfig)
    # Cilium (first service) is deployed through that provider, hence after the bootstrap.
    [cilium] = [r for r in ha.registrations.values() if r.type.startswith("weebo:") and r.name == "cilium"]
    helm = [r for r in ha.descendants(cilium.urn) if r.custom]
    assert helm and all(ha.depends_on(r, bootstrap) for r in helm)


def test_firewall_is_in_place_before_the_server_is_reinstalled(single):
    reinstall = single.named(f"{MC}-node-1-reinstall")
    rules = [r for r in single.of_type(FIREWALL_RULE)]
    assert rules and all(single.depends_on(reinstall, r) for r in rules)
    assert single.depends_on(reinstall, single.named(f"{MC}-node-1-firewall"))


def test_bootstrap_once_on_the_first_control_plane(ha):
    [bootstrap] = ha.of_type("talos:machine/bootstrap:Bootstrap")
    assert bootstrap.input("node") == "51.0.0.10"
    [kubeconfig] = ha.of_type("talos:cluster/kubeconfig:Kubeconfig")
    assert kubeconfig.input("node") == "51.0.0.10"
    applies = ha.of_type("talos:machine/configurationApply:ConfigurationApply")
    assert sorted(a.input("node") for a in applies) == ["51.0.0.10", "51.0.0.11", "51.0.0.12", "51.0.0.13"]


def test_apply_carries_the_node_patches(ha):
    patches = ha.named(f"{MC}-node-4-apply").inputs["configPatches"]
    docs = [json.loads(p) for p in patches[:-1]]  # the last one (installer image) is unknown in preview
    assert any(d.get("kind") == "UserVolumeConfig" for d in docs)  # worker: workloads' local volume
    assert not any("apiServer" in d.get("cluster", {}) for d in docs)
    cp = [json.loads(p) for p in ha.named(f"{MC}-node-1-apply").inputs["configPatches"][:-1]]
    assert any("oidc-issuer-url" in d.get("cluster", {}).get("apiServer", {}).get("extraArgs", {}) for d in cp)


# --- protection ----------------------------------------------------------------------------------

def test_reinstall_is_protected_and_ignores_reinstalling_changes(single):
    reinstall = single.named(f"{MC}-node-1-reinstall")
    assert reinstall.protect
    assert reinstall.ignore_changes == sorted(ovs.REINSTALL_FIELDS)
    assert reinstall.input("os") == "byoi_64"
    assert reinstall.input("customizations", "imageType") == "qcow2"
    assert reinstall.input("serviceName") == "ns100.ip-10-0-0.eu"


def test_allow_reinstall_is_the_explicit_switch():
    monitor = plan(raw_cluster(1, allowReinstall=True)).monitor
    reinstall = monitor.named(f"{MC}-node-1-reinstall")
    assert not reinstall.protect and reinstall.ignore_changes == []


def test_machine_secrets_are_protected_retained_and_secret(single):
    [secrets] = single.of_type("talos:machine/secrets:Secrets")
    assert secrets.protect and secrets.retain_on_delete
    assert {"machineSecrets", "clientConfiguration"} <= set(secrets.additional_secret_outputs)
    assert secrets.input("talosVersion") == config().management_cluster.talos_version
    [kubeconfig] = single.of_type("talos:cluster/kubeconfig:Kubeconfig")
    assert "kubeconfigRaw" in kubeconfig.additional_secret_outputs


# --- OVH resources -------------------------------------------------------------------------------

def test_firewall_resources_match_the_rules(single):
    cfg = config(raw_cluster(1))
    expected = ovs.firewall_rules(cfg.management_cluster.operator_source_ranges, cfg.management_cluster.vpn_udp_port)
    recorded = {r.name: r for r in single.of_type(FIREWALL_RULE)}
    assert len(recorded) == len(expected)
    for spec in expected:
        rule = recorded[f"{MC}-node-1-fw-{spec.role}"]
        assert rule.input("ip") == "51.0.0.10/32" and rule.input("ipOnFirewall") == "51.0.0.10"
        assert rule.input("sequence") == spec.sequence and rule.input("action") == spec.action
        assert rule.input("protocol") == spec.protocol
        assert rule.inputs.get("source") == spec.source
        assert rule.delete_before_replace
    [fw] = single.of_type("ovh:Ip/firewall:Firewall")
    assert fw.input("enabled") is True


def test_load_balancer_ips_are_routed_to_one_server():
    monitor = plan(raw_cluster(3, loadBalancerIps=["51.0.1.0/29", "51.0.2.8/30"], loadBalancerIpsNode="node-2")).monitor
    moves = monitor.of_type("ovh:Ip/move:Move")
    assert sorted(m.input("ip") for m in moves) == ["51.0.1.0/29", "51.0.2.8/30"]
    assert {m.input("routedTo", "serviceName") for m in moves} == {"ns101.ip-10-0-0.eu"}
    assert all(m.retain_on_delete for m in moves)


def test_load_balancer_ips_default_to_the_first_control_plane(single):
    [move] = single.of_type("ovh:Ip/move:Move")
    assert move.input("routedTo", "serviceName") == "ns100.ip-10-0-0.eu"


def test_endpoint_a_record_per_control_plane_and_reverse_dns(ha):
    records = [r for r in ha.of_type("ovh:Domain/zoneRecord:ZoneRecord") if r.name.startswith(f"{MC}-")]
    endpoint = [r for r in records if r.input("subdomain") == MC]
    assert sorted(r.input("target") for r in endpoint) == ["51.0.0.10", "51.0.0.11", "51.0.0.12"]  # not the worker
    assert all(r.input("zone") == "example.org" and r.input("fieldtype") == "A" for r in records)
    reverses = {r.input("ReverseIp"): r for r in ha.of_type("ovh:Ip/reverse:Reverse")}
    assert reverses["51.0.0.13"].input("ReverseValue") == "node-4.example.org."
    node_a = ha.named(f"{MC}-node-4-a")
    assert node_a.input("subdomain") == "node-4" and ha.depends_on(reverses["51.0.0.13"], node_a)
    # The Kubernetes provider waits for the endpoint name to exist.
    assert all(ha.depends_on(k8s_provider(ha), r) for r in endpoint)


def test_endpoint_outside_the_ovh_zone_is_refused():
    # Refused by config validation, before anything is registered (not halfway through 'pulumi up').
    with pytest.raises(ConfigError, match="managementCluster.endpoint: 'api.example.com' is not inside the OVH-hosted zone"):
        plan(raw_cluster(1, endpoint="api.example.com"))


# --- preview and dev -----------------------------------------------------------------------------

def test_preview_needs_neither_factory_nor_servers(single):
    # Invokes whose inputs are unknown (schematic id, machine secrets) are not even called.
    called = {tok for tok, _ in single.invokes}
    assert not any(tok.startswith("talos:") for tok in called)
    assert k8s_provider(single).inputs["kubeconfig"] is not None


def test_dev_stack_does_not_use_this_component():
    monitor = stack_plan("dev").monitor
    types = {r.type for r in monitor.registrations.values()}
    assert "weebo:cluster:ManagementCluster" not in types
    # Tenants still build their VM images through the Image Factory; nothing installs a server.
    assert not any(t.startswith(("talos:machine", "talos:cluster", "ovh:")) for t in types)


# --- secrets -------------------------------------------------------------------------------------

FAKE = {
    "ca": "FAKE-TALOS-CA-CERT-4b1d",
    "crt": "FAKE-TALOS-CLIENT-CERT-77aa",
    "key": "FAKE-TALOS-CLIENT-KEY-9c3e",
    "token": "FAKE-TALOS-BOOTSTRAP-TOKEN-51f0",
    "etcd": "FAKE-TALOS-ETCD-KEY-0d2c",
    "kubeconfig": "FAKE-KUBECONFIG-CLIENT-KEY-e8a1",
}


class DeployedTalosMocks(PlanMocks):
    """An ``up`` (not a preview): Talos resources return outputs shaped like the provider's."""

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == "talos:machine/secrets:Secrets":
            pair = {"cert": FAKE["ca"], "key": FAKE["etcd"]}
            state.update(
                clientConfiguration={"caCertificate": FAKE["ca"], "clientCertificate": FAKE["crt"], "clientKey": FAKE["key"]},
                machineSecrets={
                    "certs": {"etcd": pair, "k8s": pair, "k8sAggregator": pair, "k8sServiceaccount": {"key": FAKE["etcd"]}, "os": pair},
                    "cluster": {"id": "cluster-id", "secret": FAKE["token"]},
                    "secrets": {"bootstrapToken": FAKE["token"], "secretboxEncryptionSecret": FAKE["token"]},
                    "trustdinfo": {"token": FAKE["token"]},
                },
            )
        if args.typ == "talos:cluster/kubeconfig:Kubeconfig":
            state.update(
                kubeconfigRaw=f"apiVersion: v1\nusers:\n- user:\n    client-key-data: {FAKE['kubeconfig']}\n",
                kubernetesClientConfiguration={"host": "https://weebo4cp.example.org:6443", "caCertificate": FAKE["ca"],
                                               "clientCertificate": FAKE["crt"], "clientKey": FAKE["kubeconfig"]},
            )
        return rid, state

    def call(self, args):
        # PlanMocks.call returns (result, None), which pulumi's MockMonitor.Invoke iterates as
        # the failures list: answer with an empty list (reported to the lead; offline/mocks.py).
        result, _ = super().call(args)
        return result, []


@pytest.fixture(scope="module")
def deployed():
    mp = pytest.MonkeyPatch()
    mp.setattr(offline.plan, "PlanMocks", DeployedTalosMocks)
    try:
        yield plan(raw_cluster(1, 1), preview=False)
    finally:
        mp.undo()


def test_credential_inputs_are_secrets(deployed):
    m = deployed.monitor
    for reg in m.of_type("talos:machine/configurationApply:ConfigurationApply"):
        assert contains_secret(reg.inputs["clientConfiguration"])
        assert contains_secret(reg.inputs["machineConfigurationInput"])
        assert reg.input("clientConfiguration", "clientKey") == FAKE["key"]  # the real value did arrive
    for type_ in ("talos:machine/bootstrap:Bootstrap", "talos:cluster/kubeconfig:Kubeconfig"):
        [reg] = m.of_type(type_)
        assert contains_secret(reg.inputs["clientConfiguration"])
    assert contains_secret(k8s_provider(m).inputs["kubeconfig"])
    assert contains_secret(m.stack_outputs["kubeconfig"]) and contains_secret(m.stack_outputs["talosconfig"])
    # Deployed, the factory answered: the reinstall gets the qcow2 of the schematic's metal image.
    for reinstall in m.of_type(REINSTALL):
        url = reinstall.input("customizations", "imageUrl")
        assert url.startswith("https://factory.talos.dev/image/") and url.endswith("/v1.13.9/metal-amd64.qcow2")
    patches = m.named(f"{MC}-node-1-apply").input("configPatches")
    assert json.loads(patches[-1])["machine"]["install"]["image"].startswith("factory.talos.dev/metal-installer/")


def test_no_credential_in_any_plan_file(deployed, tmp_path: Path):
    out = tmp_path / "plan"
    doc = write_plan(deployed, out)
    assert doc["outputs"]["kubeconfig"] == SECRET and doc["outputs"]["talosconfig"] == SECRET
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = path.read_text()
        for value in FAKE.values():
            assert value not in text, f"{value} in clear in {path.relative_to(out)}"
        assert "offline-talosconfig-" not in text and "offline-machineconfig-" not in text


def test_operator_ranges_are_valid_networks():
    # Sanity of the factory config the firewall tests rely on.
    for r in config(raw_cluster(1)).management_cluster.operator_source_ranges:
        ipaddress.ip_network(r)


def test_schematic_carries_the_configured_extensions():
    import yaml

    monitor = plan(raw_cluster(1, systemExtensions=["siderolabs/amd-ucode"])).monitor
    # The management cluster's own (the tenants' image has its own schematic, in Cluster API).
    [schematic] = [s for s in monitor.of_type("talos:imageFactory/schematic:Schematic")
                   if "ManagementCluster" in s.parent]
    doc = yaml.safe_load(schematic.input("schematic"))
    assert doc == {"customization": {"systemExtensions": {"officialExtensions": ["siderolabs/amd-ucode"]}}}
