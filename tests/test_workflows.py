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
