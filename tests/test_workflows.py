"""CI/CD workflows: actions pinned by commit, least privilege, prod deploys behind approval."""

from __future__ import annotations

import re

import yaml

from stacks.loader import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _steps(wf: dict):
    for job in wf["jobs"].values():
        yield from job.get("steps", [])


def test_every_action_is_pinned_by_commit():
    for path in WORKFLOWS.glob("*.yaml"):
        for step in _steps(yaml.safe_load(path.read_text())):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), (path.name, step["uses"])


def test_permissions_are_read_only_unless_a_job_needs_more():
    for path in WORKFLOWS.glob("*.yaml"):
        wf = yaml.safe_load(path.read_text())
        assert wf["permissions"] == {"contents": "read"}, path.name
        for name, job in wf["jobs"].items():
            extra = {k: v for k, v in job.get("permissions", {}).items() if v != "read"}
            assert extra in ({}, {"pull-requests": "write"}), (path.name, name)


def test_pull_requests_test_then_preview_every_stack_with_the_policy_pack():
    wf = _load("pull-request.yaml")
    assert any(s.get("run") == "bash .ci/run" for s in wf["jobs"]["test"]["steps"])
    preview = wf["jobs"]["preview"]
    assert preview["needs"] == "test"
    stacks = {p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml")}
    assert set(preview["strategy"]["matrix"]["stack"]) == stacks
    pulumi = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policy"


def test_main_deploys_prod_only_behind_the_production_environment():
    wf = _load("main.yaml")
    deploy = wf["jobs"]["deploy-prod"]
    assert deploy["environment"] == "production" and deploy["needs"] == "test"
    pulumi = next(s for s in deploy["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "up" and pulumi["with"]["stack-name"] == "prod"
    assert wf["concurrency"]["cancel-in-progress"] is False


# --- where pulumi runs: a source the OVH firewall and Traefik admit ------------------------------

def _runs_on(job: dict) -> set[str]:
    labels = job["runs-on"]
    return {labels} if isinstance(labels, str) else set(labels)


def test_jobs_that_reach_the_platform_run_on_self_hosted_runners_inside_the_operator_ranges():
    """A GitHub-hosted runner's address is never in operatorSourceRanges, so `pulumi up`/`preview`
    from one cannot reach the Talos and Kubernetes APIs: they run on the office runners."""
    deploy = _load("main.yaml")["jobs"]["deploy-prod"]
    preview = _load("pull-request.yaml")["jobs"]["preview"]
    assert {"self-hosted", "weebo-deploy"} <= _runs_on(deploy)
    assert {"self-hosted", "weebo-preview"} <= _runs_on(preview)
    # Pull-request code never runs on the pool that deploys prod.
    assert "weebo-deploy" not in _runs_on(preview)
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"


def test_jobs_without_platform_access_stay_on_github_hosted_runners():
    """The test jobs run code of any pull request (forks included): never on a self-hosted runner."""
    for name in ("main.yaml", "pull-request.yaml"):
        test = _load(name)["jobs"]["test"]
        assert not any(label == "self-hosted" for label in _runs_on(test)), name
        assert all(label.startswith("ubuntu-") for label in _runs_on(test)), name


def test_deploy_checks_its_runner_tools_before_pulumi_up():
    steps = _load("main.yaml")["jobs"]["deploy-prod"]["steps"]
    up = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("pulumi/actions@"))
    check = next(i for i, s in enumerate(steps) if "kubectl version --client" in s.get("run", ""))
    assert check < up


def test_the_prod_operator_ranges_are_public_so_the_runner_can_match_them():
    """The OVH firewall and Traefik see public sources only: the prod stack lists none other."""
    import ipaddress

    from stacks.config import NON_PUBLIC_BLOCKS

    raw = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]["weebo-platform:managementCluster"]
    ranges = [ipaddress.ip_network(r) for r in raw["operatorSourceRanges"]]
    assert ranges
    for r in ranges:
        assert not any(r.version == b.version and r.subnet_of(b) for b in NON_PUBLIC_BLOCKS), r
