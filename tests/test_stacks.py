"""Whole-program tests: each stack file planned offline, as `python -m offline.plan <stack>` does."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml

from stacks.loader import ROOT, read_stack
from offline.mocks import contains_secret
from offline import plan as plan_module
from offline.plan import diff_plans, write_plan
from tests.helpers.factories import planned, stack_plan


@pytest.fixture(scope="module")
def prod():
    return stack_plan("prod")  # shared: planned once per test process


@pytest.fixture(scope="module")
def dev():
    return stack_plan("dev")


def test_prod_installs_talos_on_ovh_and_every_platform_service(prod):
    types = {r.type for r in prod.registrations}
    assert "talos:machine/secrets:Secrets" in types
    assert "talos:machine/bootstrap:Bootstrap" in types
    components = {r.type for r in prod.registrations if not r.custom}
    for expected in ("weebo:network:Cilium", "weebo:tls:CertManager", "weebo:edge:Traefik", "weebo:dns:PlatformDns",
                     "weebo:secrets:Vault", "weebo:identity:Authentik", "weebo:gitops:ArgoCD", "weebo:vpn:Netbird",
                     "weebo:virtualization:Virtualization", "weebo:clusters:ClusterApi"):
        assert expected in components, expected
    tenants = sorted(r.name for r in prod.registrations if r.type == "weebo:tenants:TenantCluster")
    assert tenants == sorted(t["name"] for t in read_stack("prod").raw["tenants"])


def test_prod_protects_the_talos_secrets(prod):
    secrets = [r for r in prod.registrations if r.type == "talos:machine/secrets:Secrets"]
    assert secrets and all(r.protect and r.retain_on_delete for r in secrets)


def test_dev_uses_the_existing_cluster_and_installs_no_talos(dev):
    types = {r.type for r in dev.registrations}
    assert not any(t.startswith(("talos:machine", "talos:cluster", "ovh:")) for t in types)
    assert "weebo:cluster:ExistingCluster" in types
    assert [r.name for r in dev.registrations if r.type == "weebo:tenants:TenantCluster"] == ["sandbox"]


def test_plan_files_show_secrets_as_markers_only(prod, tmp_path):
    doc = write_plan(prod, tmp_path / "plan")
    assert doc["outputs"]["kubeconfig"] == "[secret]"
    assert doc["outputs"]["talosconfig"] == "[secret]"
    text = "".join(p.read_text() for p in (tmp_path / "plan").rglob("*") if p.is_file())
    assert "offline-plan-placeholder" not in text  # the stand-in for secure: values
    for reg in prod.registrations:
        for key in reg.additional_secret_outputs:
            assert not isinstance(reg.inputs.get(key), str) or contains_secret(reg.inputs[key])


def test_plan_writes_manifests_and_releases(prod, tmp_path):
    out = tmp_path / "plan"
    doc = write_plan(prod, out)
    releases = {p.stem: yaml.safe_load(p.read_text()) for p in (out / "releases").glob("*.yaml")}
    assert releases["cilium"]["version"] and releases["cilium"]["repo"].startswith("https://")
    manifests = list((out / "manifests").glob("*.yaml"))
    assert any(p.name.startswith("Namespace-") for p in manifests)
    plan = json.loads((out / "plan.json").read_text())
    assert plan == doc
    assert {"urn", "type", "parent", "provider", "dependencies", "protect", "retainOnDelete", "inputs"} <= set(plan["resources"][0])


def test_diff_shows_the_blast_radius_of_a_config_change(tmp_path):
    sf = read_stack("prod")
    old = write_plan(stack_plan("prod"), tmp_path / "old")
    raw = json.loads(json.dumps(sf.raw))
    raw["traefik"]["replicas"] = 3
    new = write_plan(planned(type(sf)(stack="prod", raw=raw, secret_keys=sf.secret_keys)), tmp_path / "new")
    diff = diff_plans(old, new)
    assert diff["added"] == [] and diff["removed"] == []
    assert len(diff["changed"]) == 1
    (urn, paths), = diff["changed"].items()
    assert urn.endswith("Release::traefik")
    assert any("replicas" in p for p in paths)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offline.plan", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _planned(result) -> bool:
    """Planned, judged and converged: exit 0."""
    return result.returncode == 0


def test_cli_plans_a_stack_and_diffs(tmp_path, capsys, command_shares_plans):
    # The command's own code, in this process (the command as a process: the tests below).
    assert plan_module.main(["dev", "--quiet", "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert plan_module.main(["dev", "--out", str(tmp_path / "b"), "--diff", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "0 to add, 0 to change, 0 to remove" in out
    assert "weebo:tenants:TenantCluster sandbox" in out


def test_cli_rejects_bad_config_without_traceback(tmp_path):
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    # A deep copy: a shared object would be dumped as a YAML alias, which stack files refuse.
    doc["config"]["weebo-platform:tenants"].append(copy.deepcopy(doc["config"]["weebo-platform:tenants"][0]))
    doc["config"]["weebo-platform:managementCluster"]["podCidrr"] = "10.0.0.0/8"
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    result = _run_cli(str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "managementCluster.podCidrr: unknown key" in result.stderr
    assert "tenants[1].name" in result.stderr
    assert not (tmp_path / "out").exists()


def _pipe_env() -> dict[str, str]:
    import os

    # No terminal, no width hint: as in CI, where rich falls back to wrapping at 80 columns.
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TERM")
            and not k.startswith("PULUMI_")}


def test_cli_prints_long_values_on_one_line_through_a_pipe(dev, tmp_path, monkeypatch, capsys, command_shares_plans):
    # A config problem (stderr) and a blast-radius URN (stdout) longer than any console width
    # stay whole, so a CI log can be grepped for them.
    raw = copy.deepcopy(yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text()))
    bad_email = "not-an-email-" + "x" * 150 + "@@example.org"
    raw["config"]["weebo-platform:domain"]["acmeEmail"] = bad_email
    bad = tmp_path / "Pulumi.longbad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    run = subprocess.run([sys.executable, "-m", "offline.plan", str(bad), "--quiet"], cwd=ROOT, env=_pipe_env(),
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert any(f"'{bad_email}'" in line and "domain.acmeEmail" in line for line in run.stderr.splitlines()), run.stderr

    # The same soft wrapping for stdout, which the command chooses when stdout is not a terminal
    # (here pytest's capture, without a width hint in the environment).
    for var in ("COLUMNS", "LINES", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(var, raising=False)
    old = write_plan(dev, tmp_path / "old")
    longest = max((r["urn"] for r in old["resources"]), key=len)
    assert len(longest) > 140
    old["resources"] = [r for r in old["resources"] if r["urn"] != longest]
    (tmp_path / "old" / "plan.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert plan_module.main(["dev", "--quiet", "--out", str(tmp_path / "new"), "--diff", str(tmp_path / "old")]) == 0
    out = capsys.readouterr().out
    assert f"+ {longest}" in out.splitlines(), out
