"""Management-cluster upgrades: the dynamic providers against a fake talosctl on PATH, the upgrade
chain in the recorded graph, and config validation of version steps."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from components import talos_upgrade as tu
from offline import invokes
from stacks.config import ConfigError, DeployedVersions, parse_config
from tests.helpers.factories import plan
from tests.test_management_cluster import raw_cluster

TALOSCONFIG = "context: weebo4cp\ncontexts:\n  weebo4cp:\n    key: TALOSCONFIG-PRIVATE-KEY-MATERIAL-0123456789\n"
INSTALLER = "factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.13.9"

NODE_UPGRADE = "pulumi-python:dynamic/weebo:TalosNodeUpgrade"
K8S_UPGRADE = "pulumi-python:dynamic/weebo:KubernetesUpgrade"

# A stand-in for talosctl: records each invocation (argv, environment, the talosconfig file's
# mode and whether it holds the expected config) and keeps each node's version in a state file.
FAKE_TALOSCTL = textwrap.dedent("""\
    #!{python}
    import hashlib, json, os, stat, sys
    log, state_path = os.environ["FAKE_LOG"], os.environ["FAKE_STATE"]
    argv = sys.argv[1:]
    cfg = argv[argv.index("--talosconfig") + 1]
    mode = stat.S_IMODE(os.stat(cfg).st_mode)
    with open(cfg) as f:
        holds = hashlib.sha256(f.read().encode()).hexdigest() == os.environ["FAKE_EXPECTED_SHA256"]
    state = json.load(open(state_path))
    with open(log, "a") as f:
        f.write(json.dumps({{"argv": argv, "env": dict(os.environ), "mode": mode, "config_ok": holds,
                            "config_path": cfg}}) + "\\n")
    args = argv[2:]
    cmd = args[0]
    fail = os.environ.get("FAKE_FAIL", "")
    def opt(name):
        return args[args.index(name) + 1]
    if cmd == fail:
        sys.stderr.write("rpc error: something broke\\n" + os.environ.get("FAKE_ECHO", ""))
        sys.exit(1)
    node_mode = state.get("mode", {{}}).get(opt("--nodes"), "configured") if "--nodes" in args else ""
    if cmd == "version" and node_mode != ("maintenance" if "--insecure" in args else "configured"):
        sys.stderr.write("rpc error: connection refused\\n")
        sys.exit(1)
    if cmd == "version":
        node = opt("--nodes")
        print("Client:")
        print(json.dumps({{"metadata": {{"hostname": node}}, "version": {{"tag": state["talos"][node]}}}}))
    elif cmd == "upgrade":
        if os.environ.get("FAKE_ROLLBACK") != "1":
            state["talos"][opt("--nodes")] = opt("--image").rsplit(":", 1)[1]
    elif cmd == "upgrade-k8s":
        state["kubernetes"] = opt("--to")
    json.dump(state, open(state_path, "w"))
""")


class FakeTalosctl:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, talos: dict[str, str], kubernetes: str = "1.35.4",
                 mode: dict[str, str] | None = None):
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        exe = bin_dir / "talosctl"
        exe.write_text(FAKE_TALOSCTL.format(python=sys.executable))
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        self.log, self.state = tmp / "calls.jsonl", tmp / "state.json"
        # mode per node: configured (default), maintenance (fresh install) or down (booting)
        self.state.write_text(json.dumps({"talos": talos, "kubernetes": kubernetes, "mode": mode or {}}))
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_LOG", str(self.log))
        monkeypatch.setenv("FAKE_STATE", str(self.state))
        monkeypatch.setenv("FAKE_EXPECTED_SHA256", hashlib.sha256(TALOSCONFIG.encode()).hexdigest())

    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def commands(self) -> list[list[str]]:
        """Each call's argv after '--talosconfig <file>'."""
        return [c["argv"][2:] for c in self.calls()]

    def versions(self) -> dict[str, Any]:
        return json.loads(self.state.read_text())


CP1, CP2, W1 = "51.0.0.10", "51.0.0.11", "51.0.0.12"


def node_props(address: str = CP1, version: str = "v1.13.9", hostname: str = "node-1", **over: Any) -> dict[str, Any]:
    props = {
        "hostname": hostname, "node": address, "endpoint": address, "talosVersion": version,
        "installerImage": INSTALLER.rsplit(":", 1)[0] + ":" + version, "drain": True, "talosconfig": TALOSCONFIG,
        "healthEndpoint": CP1, "controlPlaneNodes": [CP1, CP2], "workerNodes": [W1],
    }
    props.update(over)
    return props


def k8s_props(version: str = "1.36.3") -> dict[str, Any]:
    return {"node": CP1, "endpoint": CP1, "kubernetesVersion": version, "talosconfig": TALOSCONFIG,
            "healthEndpoint": CP1, "controlPlaneNodes": [CP1, CP2], "workerNodes": [W1]}


def public(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != "talosconfig"}


HEALTH = ["health", "--nodes", CP1, "--endpoints", CP1, "--control-plane-nodes", f"{CP1},{CP2}",
          "--worker-nodes", W1, "--wait-timeout", tu.HEALTH_TIMEOUT]


# --- pure rules ------------------------------------------------------------------------------------

@pytest.mark.parametrize("current,target,ok", [
    ("v1.12.6", "v1.12.11", True), ("v1.12.11", "v1.13.9", True), ("v1.13.9", "v1.13.9", True),
    ("v1.11.6", "v1.13.9", False), ("v1.13.9", "v1.12.11", False), ("v1.12.11", "v2.0.0", False),
])
def test_talos_steps_are_one_minor_forward(current, target, ok):
    assert (tu.step_problem(current, target, "talos") is None) is ok


def test_kubernetes_steps_are_one_minor_forward():
    assert tu.step_problem("1.35.4", "1.36.3", "kubernetes") is None
    assert "skips a minor" in tu.step_problem("1.34.1", "1.36.3", "kubernetes")
    assert "older" in tu.step_problem("1.36.3", "1.35.4", "kubernetes")


# --- the node upgrade provider against a fake talosctl ----------------------------------------------

def test_create_of_a_node_at_the_target_only_reads_its_version(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.13.9"})
    res = tu._TalosNodeUpgradeProvider().create(node_props())
    assert fake.commands() == [["version", "--nodes", CP1, "--endpoints", CP1, "--json"]]
    assert res.outs["talosVersion"] == "v1.13.9" and "talosconfig" not in res.outs


def test_update_upgrades_with_the_installer_then_waits_for_health(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.12.11"})
    olds, news = public(node_props(version="v1.12.11")), node_props()
    res = tu._TalosNodeUpgradeProvider().update("node-1", olds, news)
    assert fake.commands() == [
        ["version", "--nodes", CP1, "--endpoints", CP1, "--json"],
        ["upgrade", "--nodes", CP1, "--endpoints", CP1, "--image", INSTALLER, "--preserve", "--drain=true",
         "--wait", "--timeout", tu.UPGRADE_TIMEOUT],
        ["version", "--nodes", CP1, "--endpoints", CP1, "--json"],
        HEALTH,
    ]
    assert fake.versions()["talos"][CP1] == "v1.13.9"
    assert res.outs["talosVersion"] == "v1.13.9"


def test_a_new_schematic_at_the_same_version_upgrades_with_the_new_installer(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.13.9"})
    other = "factory.talos.dev/metal-installer/" + "0" * 64 + ":v1.13.9"
    olds, news = public(node_props()), node_props(installerImage=other)
    assert tu._TalosNodeUpgradeProvider().diff("node-1", olds, news).changes is True
    tu._TalosNodeUpgradeProvider().update("node-1", olds, news)
    assert [c[0] for c in fake.commands()] == ["version", "upgrade", "version", "health"]
    assert fake.commands()[1][fake.commands()[1].index("--image") + 1] == other


def test_a_lone_node_is_upgraded_without_drain(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.12.11"})
    news = node_props(drain=False, controlPlaneNodes=[CP1], workerNodes=[])
    tu._TalosNodeUpgradeProvider().update("node-1", public(node_props(version="v1.12.11")), news)
    [upgrade] = [c for c in fake.commands() if c[0] == "upgrade"]
    assert "--drain=false" in upgrade
    assert fake.commands()[-1] == ["health", "--nodes", CP1, "--endpoints", CP1, "--control-plane-nodes", CP1,
                                   "--wait-timeout", tu.HEALTH_TIMEOUT]


def test_an_interrupted_upgrade_resumes_with_the_health_gate_and_no_second_upgrade(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.12.11"})
    provider = tu._TalosNodeUpgradeProvider()
    olds, news = public(node_props(version="v1.12.11")), node_props()
    monkeypatch.setenv("FAKE_FAIL", "health")
    with pytest.raises(tu.TalosctlError, match="health"):
        provider.update("node-1", olds, news)
    # The failed update left the old state: the next `up` sees the same change and resumes.
    assert fake.versions()["talos"][CP1] == "v1.13.9"
    monkeypatch.delenv("FAKE_FAIL")
    fake.log.unlink()
    provider.update("node-1", olds, news)
    assert fake.commands() == [["version", "--nodes", CP1, "--endpoints", CP1, "--json"], HEALTH]


def test_a_node_that_comes_back_on_the_old_version_fails_the_update(tmp_path, monkeypatch):
    FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.12.11"})
    monkeypatch.setenv("FAKE_ROLLBACK", "1")
    with pytest.raises(tu.TalosctlError, match="runs v1.12.11 after the upgrade to v1.13.9"):
        tu._TalosNodeUpgradeProvider().update("node-1", public(node_props(version="v1.12.11")), node_props())


def test_create_on_a_fresh_server_in_maintenance_mode_records_its_version_and_touches_nothing(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.13.9"}, mode={CP1: "maintenance"})
    res = tu._TalosNodeUpgradeProvider().create(node_props())
    assert fake.commands() == [["version", "--nodes", CP1, "--endpoints", CP1, "--json"],
                               ["version", "--nodes", CP1, "--endpoints", CP1, "--json", "--insecure"]]
    assert res.outs["talosVersion"] == "v1.13.9"


def test_a_fresh_server_with_another_version_is_refused(tmp_path, monkeypatch):
    FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.12.11"}, mode={CP1: "maintenance"})
    with pytest.raises(tu.UpgradeRefused, match="maintenance mode with Talos v1.12.11"):
        tu._TalosNodeUpgradeProvider().create(node_props())


def test_a_node_that_never_answers_fails_after_the_probe_timeout(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.13.9"}, mode={CP1: "down"})
    monkeypatch.setattr(tu, "PROBE_TIMEOUT_SECONDS", 0)
    with pytest.raises(tu.TalosctlError, match=f"node {CP1} did not answer"):
        tu._TalosNodeUpgradeProvider().create(node_props())
    assert not any(c[0] == "upgrade" for c in fake.commands())


def test_create_refuses_a_node_two_minors_behind_without_touching_it(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.11.6"})
    with pytest.raises(tu.UpgradeRefused, match="runs v1.11.6.*skips a minor"):
        tu._TalosNodeUpgradeProvider().create(node_props())
    assert [c[0] for c in fake.commands()] == ["version"]


def test_diff_shows_the_version_change_and_refuses_skipped_minors():
    provider = tu._TalosNodeUpgradeProvider()
    old = public(node_props(version="v1.12.11"))
    d = provider.diff("node-1", old, node_props())
    assert d.changes is True and not d.replaces  # an in-place update, never a replacement
    assert old["talosVersion"] == "v1.12.11" and node_props()["talosVersion"] == "v1.13.9"
    assert provider.diff("node-1", public(node_props()), node_props()).changes is False
    # A new talosconfig (certificates renewed) is no reason to run an upgrade.
    assert provider.diff("node-1", public(node_props()), node_props(talosconfig="other")).changes is False
    with pytest.raises(tu.UpgradeRefused, match="node node-1: Talos v1.11.6 -> v1.13.9 skips a minor"):
        provider.diff("node-1", public(node_props(version="v1.11.6")), node_props())
    with pytest.raises(tu.UpgradeRefused, match="older"):
        provider.diff("node-1", public(node_props()), node_props(version="v1.12.11"))


def test_kubernetes_upgrade_runs_upgrade_k8s_on_one_node_then_health(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.13.9"}, kubernetes="1.35.4")
    provider = tu._KubernetesUpgradeProvider()
    provider.create(k8s_props("1.35.4"))
    assert fake.commands() == []  # created with the cluster, at that version
    provider.update("kubernetes", public(k8s_props("1.35.4")), k8s_props("1.36.3"))
    assert fake.commands() == [
        ["upgrade-k8s", "--nodes", CP1, "--endpoints", CP1, "--to", "1.36.3",
         "--with-docs=false", "--with-examples=false"],
        HEALTH,
    ]
    assert fake.versions()["kubernetes"] == "1.36.3"
    # A replaced first control plane (same version) is recorded without calling talosctl.
    fake.log.unlink()
    moved = {**k8s_props("1.36.3"), "node": CP2, "endpoint": CP2}
    assert provider.diff("kubernetes", public(k8s_props("1.36.3")), moved).changes is True
    provider.update("kubernetes", public(k8s_props("1.36.3")), moved)
    assert fake.commands() == []
    with pytest.raises(tu.UpgradeRefused, match="1.34.1 -> 1.36.3 skips a minor"):
        provider.diff("kubernetes", public(k8s_props("1.34.1")), k8s_props("1.36.3"))
    assert provider.diff("kubernetes", public(k8s_props("1.35.4")), k8s_props("1.36.3")).changes is True


def test_the_talosconfig_reaches_talosctl_only_as_a_0600_file_that_is_removed(tmp_path, monkeypatch):
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.12.11"})
    tu._TalosNodeUpgradeProvider().update("node-1", public(node_props(version="v1.12.11")), node_props())
    calls = fake.calls()
    assert calls
    for call in calls:
        assert call["mode"] == 0o600 and call["config_ok"]
        assert not any("PRIVATE-KEY" in a for a in call["argv"])
        assert not any("PRIVATE-KEY" in v for v in call["env"].values())
        assert not Path(call["config_path"]).exists()


def test_a_failure_message_never_carries_the_talosconfig(tmp_path, monkeypatch):
    FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.12.11"})
    monkeypatch.setenv("FAKE_FAIL", "upgrade")
    monkeypatch.setenv("FAKE_ECHO", "    key: TALOSCONFIG-PRIVATE-KEY-MATERIAL-0123456789\n")
    with pytest.raises(tu.TalosctlError) as err:
        tu._TalosNodeUpgradeProvider().update("node-1", public(node_props(version="v1.12.11")), node_props())
    assert "rpc error" in str(err.value) and "PRIVATE-KEY" not in str(err.value)


def test_a_missing_talosctl_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tu.TalosctlError, match="not on PATH"):
        tu.Talosctl(TALOSCONFIG).version(CP1, CP1)


# --- the upgrade chain in the recorded graph ----------------------------------------------------------

@pytest.fixture(scope="module")
def ha():
    return plan(raw_cluster(3, 1)).monitor


def test_nodes_upgrade_one_at_a_time_control_planes_first_kubernetes_last(ha):
    ups = {r.name: r for r in ha.of_type(NODE_UPGRADE)}
    order = ["weebo4cp-upgrade-talos-node-1", "weebo4cp-upgrade-talos-node-2",
             "weebo4cp-upgrade-talos-node-3", "weebo4cp-upgrade-talos-node-4"]
    assert sorted(ups) == order
    assert [ups[n].inputs["node"] for n in order] == ["51.0.0.10", "51.0.0.11", "51.0.0.12", "51.0.0.13"]
    for prev, nxt in zip(order, order[1:], strict=False):
        # Each node waits for the previous node's resource, i.e. its upgrade and health gate.
        assert ups[nxt].dependencies == [ups[prev].urn]
    # The chain starts once every server is installed, and Kubernetes comes after the last node.
    reinstalls = {r.urn for r in ha.of_type("ovh:Dedicated/serverReinstallTask:ServerReinstallTask")}
    assert len(reinstalls) == 4 and set(ups[order[0]].dependencies) == reinstalls
    [k8s] = ha.of_type(K8S_UPGRADE)
    assert k8s.dependencies == [ups[order[-1]].urn]
    # Every configuration apply waits for the whole chain: the apply after an upgrade only
    # aligns what Talos applies without a reboot, and never races an upgrade.
    applies = ha.of_type("talos:machine/configurationApply:ConfigurationApply")
    assert len(applies) == 4
    for a in applies:
        assert k8s.urn in a.dependencies
    for r in [*ups.values(), k8s]:
        assert r.inputs["controlPlaneNodes"] == ["51.0.0.10", "51.0.0.11", "51.0.0.12"]
        assert r.inputs["workerNodes"] == ["51.0.0.13"]
        assert r.inputs["healthEndpoint"] == "51.0.0.10"
        assert "talosconfig" in r.additional_secret_outputs
    assert all(u.inputs["drain"] is True for u in ups.values())


def test_workers_wait_for_every_control_plane_whatever_the_config_order():
    raw = raw_cluster(3, 1)
    nodes = raw["managementCluster"]["nodes"]
    raw["managementCluster"]["nodes"] = [nodes[3], *nodes[:3]]  # the worker listed first
    mon = plan(raw).monitor
    ups = {r.urn: r for r in mon.of_type(NODE_UPGRADE)}
    chain, cur = [], next(r for r in ups.values() if not any(d in ups for d in r.dependencies))
    while cur:
        chain.append(cur.inputs["hostname"])
        cur = next((r for r in ups.values() if r.dependencies == [cur.urn]), None)
    assert chain == ["node-1", "node-2", "node-3", "node-4"]


def test_upgrade_inputs_carry_the_versions_and_the_talosconfig_only_as_a_secret():
    from offline.mocks import contains_secret

    mon = plan(raw_cluster(3, 1), preview=False).monitor
    ups = sorted(mon.of_type(NODE_UPGRADE), key=lambda r: r.name)
    [k8s] = mon.of_type(K8S_UPGRADE)
    assert {u.inputs["talosVersion"] for u in ups} == {"v1.13.9"}
    assert {u.inputs["installerImage"].rsplit(":", 1)[1] for u in ups} == {"v1.13.9"}
    assert k8s.inputs["kubernetesVersion"] == "1.36.3"
    for r in [*ups, k8s]:
        assert contains_secret(r.inputs["talosconfig"])  # known once the secrets exist, and secret


def test_installer_follows_talos_version_while_the_config_contract_stays():
    mon = plan(raw_cluster(1, talosVersion="v1.13.9", kubernetesVersion="1.35.4",
                           machineConfigVersion="v1.12.11"), preview=False).monitor
    gen = [a for t, a in mon.invokes if t == "talos:machine/getConfiguration:getConfiguration"]
    urls = [a for t, a in mon.invokes if t == "talos:imageFactory/getUrls:getUrls"]
    assert gen and all(a["talosVersion"] == "v1.12.11" for a in gen)
    assert urls and all(a["talosVersion"] == "v1.13.9" for a in urls)
    [secrets] = mon.of_type("talos:machine/secrets:Secrets")
    assert secrets.inputs["talosVersion"] == "v1.12.11"
    [up] = mon.of_type(NODE_UPGRADE)
    assert up.inputs["talosVersion"] == "v1.13.9"
    # The reinstall stays protected and ignores the new image: an upgrade is not a reinstall.
    [reinstall] = mon.of_type("ovh:Dedicated/serverReinstallTask:ServerReinstallTask")
    assert reinstall.protect and "customizations" in reinstall.ignore_changes


def test_version_dependent_patches_follow_the_contract_not_the_running_release():
    # Talos 1.12 nodes with a 1.11 contract keep the legacy hostname field: a HostnameConfig
    # document would change the configuration an upgrade applies.
    mon = plan(raw_cluster(1, talosVersion="v1.12.11", kubernetesVersion="1.34.1",
                           machineConfigVersion="v1.11.6"), preview=False).monitor
    [apply] = mon.of_type("talos:machine/configurationApply:ConfigurationApply")
    docs = [json.loads(p) for p in apply.inputs["configPatches"] if isinstance(p, str)]
    assert not any(d.get("kind") == "HostnameConfig" for d in docs)
    assert any(d.get("machine", {}).get("network", {}).get("hostname") == "node-1" for d in docs)


# --- config validation against the recorded versions -------------------------------------------------

def deployed(talos: str | dict[str, str], k8s: str = "1.35.4", contract: str | None = None) -> DeployedVersions:
    nodes = talos if isinstance(talos, dict) else {"node-1": talos}
    return DeployedVersions.model_validate({"talos": nodes, "kubernetes": k8s, "machineConfigVersion": contract})


def problems(deployed_versions: DeployedVersions | None, **mc: Any) -> list[tuple[str, str]]:
    try:
        parse_config(raw_cluster(1, **mc), stack="test", deployed=deployed_versions)
    except ConfigError as err:
        return [(p.path, p.problem + " | " + p.hint) for p in err.problems]
    return []


def test_one_minor_talos_step_with_the_contract_kept_is_accepted():
    assert problems(deployed("v1.12.11", contract="v1.12.11"), talosVersion="v1.13.9",
                    kubernetesVersion="1.35.4", machineConfigVersion="v1.12.11") == []


def test_a_skipped_talos_minor_is_refused_with_its_path():
    [(path, text)] = problems(deployed("v1.11.6", k8s="1.34.1"), talosVersion="v1.13.9",
                              kubernetesVersion="1.34.1", machineConfigVersion="v1.11.6")
    assert path == "managementCluster.talosVersion"
    assert "v1.11.6 -> v1.13.9 skips a minor" in text and "1.12" in text


def test_the_oldest_node_decides_a_skip():
    got = problems(deployed({"node-1": "v1.12.11", "node-2": "v1.11.6"}, k8s="1.34.1"), talosVersion="v1.13.9",
                   kubernetesVersion="1.34.1", machineConfigVersion="v1.11.6")
    assert [p for p, _ in got] == ["managementCluster.talosVersion"]


def test_a_downgrade_is_refused():
    got = problems(deployed("v1.13.9", k8s="1.36.3"), talosVersion="v1.12.11", kubernetesVersion="1.35.4")
    assert ("managementCluster.talosVersion" in [p for p, _ in got]) and any("older" in t for _, t in got)


def test_a_minor_change_without_the_contract_pinned_is_refused():
    [(path, text)] = problems(deployed("v1.12.11"), talosVersion="v1.13.9", kubernetesVersion="1.35.4")
    assert path == "managementCluster.machineConfigVersion" and "machineConfigVersion: v1.12.11" in text


def test_a_skipped_kubernetes_minor_is_refused():
    [(path, text)] = problems(deployed("v1.13.9", k8s="1.34.1"), talosVersion="v1.13.9", kubernetesVersion="1.36.3")
    assert path == "managementCluster.kubernetesVersion" and "skips a minor" in text


@pytest.mark.parametrize("talos,k8s,path", [
    ("v1.13.9", "1.30.4", "managementCluster.kubernetesVersion"),
    ("v1.11.6", "1.35.4", "managementCluster.kubernetesVersion"),
    ("v1.10.7", "1.33.1", "managementCluster.talosVersion"),
])
def test_unsupported_pairs_are_refused_without_any_deployment(talos, k8s, path):
    assert [p for p, _ in problems(None, talosVersion=talos, kubernetesVersion=k8s)] == [path]


def test_a_contract_newer_than_the_running_release_is_refused():
    assert [p for p, _ in problems(None, talosVersion="v1.12.11", kubernetesVersion="1.35.4",
                                   machineConfigVersion="v1.13.9")] == ["managementCluster.machineConfigVersion"]


def test_the_program_refuses_a_skip_recorded_in_its_own_stack_outputs(monkeypatch):
    """End to end: the versions the last `up` exported come back through readStackOutputs."""
    seen: list[dict[str, Any]] = []

    def outputs(args: dict[str, Any]) -> dict[str, Any]:
        seen.append(args)
        return {"name": args["name"], "secretOutputNames": [],
                "outputs": {"managementClusterVersions": {"talos": {"node-1": "v1.11.6"}, "kubernetes": "1.34.1",
                                                         "machineConfigVersion": "v1.11.6"}}}

    monkeypatch.setitem(invokes.HANDLERS, "pulumi:pulumi:readStackOutputs", outputs)
    with pytest.raises(ConfigError, match=r"managementCluster\.talosVersion: deployed nodes run v1\.11\.6"):
        plan(raw_cluster(1, talosVersion="v1.13.9", kubernetesVersion="1.35.4", machineConfigVersion="v1.11.6"))
    assert seen and seen[0]["name"].endswith("/test")


def test_the_stack_output_records_what_the_upgrade_resources_reached():
    result = plan(raw_cluster(3, 1), preview=False)
    assert result.monitor.stack_outputs["managementClusterVersions"] == {
        "talos": {f"node-{i}": "v1.13.9" for i in range(1, 5)},
        "kubernetes": "1.36.3",
        "machineConfigVersion": "v1.13.9",
    }


@pytest.mark.parametrize("answer", ["no outputs", "backend error"])
def test_without_recorded_versions_validation_compares_nothing_and_the_program_runs(monkeypatch, answer):
    from offline.mocks import PlanMocks

    real_call = PlanMocks.call

    def call(self, args):
        if args.token == "pulumi:pulumi:readStackOutputs":
            if answer == "backend error":  # the engine answers an invoke error (e.g. unknown stack)
                return {}, [("name", "unknown stack")]
            return {"name": args.args["name"], "outputs": {}, "secretOutputNames": []}, []
        return real_call(self, args)

    monkeypatch.setattr(PlanMocks, "call", call)
    # A new stack (or an unreadable backend): the provider diff remains the check.
    result = plan(raw_cluster(1, talosVersion="v1.13.9", kubernetesVersion="1.36.3"))
    assert len(result.monitor.of_type(NODE_UPGRADE)) == 1


# --- recording a rollback ------------------------------------------------------------------------------

def test_a_rollback_is_recorded_only_with_allow_downgrade_and_never_performed(tmp_path, monkeypatch):
    provider = tu._TalosNodeUpgradeProvider()
    newer = public(node_props(version="v1.13.9"))
    with pytest.raises(tu.UpgradeRefused, match="older"):
        provider.diff("node-1", newer, node_props(version="v1.12.11"))
    assert provider.diff("node-1", newer, node_props(version="v1.12.11", allowDowngrade=True)).changes is True
    # The operator ran `talosctl rollback`: the node runs v1.12.11; the update records it after the gate.
    fake = FakeTalosctl(tmp_path, monkeypatch, {CP1: "v1.12.11"})
    provider.update("node-1", newer, node_props(version="v1.12.11", allowDowngrade=True))
    assert [c[0] for c in fake.commands()] == ["version", "health"]
    # A node still on the newer release is not downgraded by the program.
    fake.state.write_text(json.dumps({"talos": {CP1: "v1.13.9"}, "kubernetes": "1.35.4"}))
    with pytest.raises(tu.UpgradeRefused, match="runs v1.13.9.*older"):
        provider.update("node-1", newer, node_props(version="v1.12.11", allowDowngrade=True))
    assert not any(c[0] == "upgrade" for c in fake.commands())


def test_config_accepts_recording_a_talos_rollback_only_when_allowed():
    got = problems(deployed("v1.13.9", contract="v1.12.11"), talosVersion="v1.12.11", kubernetesVersion="1.35.4",
                   machineConfigVersion="v1.12.11")
    assert [p for p, _ in got] == ["managementCluster.talosVersion"]
    assert problems(deployed("v1.13.9", contract="v1.12.11"), talosVersion="v1.12.11", kubernetesVersion="1.35.4",
                    machineConfigVersion="v1.12.11", allowTalosDowngrade=True) == []
