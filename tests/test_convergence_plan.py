"""The convergence checks on the real plans: run by `python -m offline.plan`, reported in
convergence.json and the summary, failing the plan; and what they find on prod today."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

import convergence
from offline import plan as plan_module
from stacks.config import parse_config
from stacks.loader import read_stack
from tests.helpers.factories import stack_plan, stack_plan_of_tenants


@lru_cache(maxsize=None)
def _prod_doc_text() -> str:
    result = stack_plan("prod")
    return json.dumps(plan_module.render(result).document())


def prod_doc() -> dict:
    """The prod plan document (planned once per test session)."""
    return json.loads(_prod_doc_text())


@lru_cache(maxsize=None)
def _dev_doc_text() -> str:
    result = stack_plan("dev")
    return json.dumps(plan_module.render(result).document())


def _record(doc: dict, name: str) -> dict:
    return next(r for r in doc["resources"] if r["urn"].endswith(f"::{name}"))


def test_prod_and_dev_plans_converge():
    assert [v.render() for v in convergence.run(prod_doc())] == []
    dev, stack = json.loads(_dev_doc_text()), read_stack("dev")
    cfg = parse_config(stack.raw, stack.secret_keys, stack="dev", provider_keys=stack.provider_config)
    assert [v.render() for v in convergence.run(dev, plan_module.policy_context(cfg))] == []


def test_an_existing_clusters_volumes_name_a_declared_class():
    """On dev the program creates no StorageClass: its volumes name the cluster's own declared
    class, and the storage rule takes it only when declared (the config refuses the rest)."""
    dev, stack = json.loads(_dev_doc_text()), read_stack("dev")
    cfg = parse_config(stack.raw, stack.secret_keys, stack="dev", provider_keys=stack.provider_config)
    assert cfg.management_cluster.storage_class in cfg.management_cluster.declared_storage_classes
    undeclared = {"declaredStorageClasses": {"management": []}}
    fired = {v.urn.rsplit("::", 1)[-1] for v in convergence.run(dev, undeclared) if v.rule == "storage"}
    assert {"dns-bind9-statefulset", "vault", "authentik"} <= fired


def test_the_bootstrap_defects_of_issues_13_and_14_are_caught_when_put_back():
    """Each defect the reviews found (and the program no longer has), put back into today's prod
    plan, makes its rule fire at the resource that has it."""
    doc = prod_doc()
    # Bind9's claim names no class (the management cluster has no default one).
    bind9 = _record(doc, "dns-bind9-statefulset")["inputs"]["spec"]["volumeClaimTemplates"][0]["spec"]
    bind9.pop("storageClassName")
    # Authentik's route has no ExternalDNS target: traefik-proxy publishes nothing for it.
    _record(doc, "authentik-route")["inputs"]["metadata"]["annotations"].clear()
    # The tenant quota admits one LoadBalancer: CAPK's <cluster>-lb is refused.
    _record(doc, "erp-resourcequota-tenant-size")["inputs"]["spec"]["hard"]["services.loadbalancers"] = "1"
    found = {(v.rule, v.urn.rsplit("::", 1)[-1]) for v in convergence.run(doc)}
    assert {("storage", "dns-bind9-statefulset"), ("names", "authentik-route"),
            ("quotas", "erp-resourcequota-tenant-size")} <= found
    # Whatever reaches auth.<zone> during the deployment now waits on an unpublished name.
    assert ("names", "authentik-config-ready") in found


# The command's handling of the verdict, on dev (the smaller stack; prod's verdict is the first test).

def test_plan_command_writes_convergence_json_and_fails_without_a_traceback(tmp_path: Path, capsys, command_shares_plans):
    code = plan_module.main(["dev", "--quiet", "--jobs", "1", "--out", str(tmp_path / "dev")])
    captured = capsys.readouterr()
    report = json.loads((tmp_path / "dev" / "convergence.json").read_text())
    assert {r["id"] for r in report["rules"]} == {r.id for r in convergence.RULES}
    assert report["count"] == len(report["violations"])
    assert f"convergence: {report['count']} violation(s)" in captured.out
    assert "Traceback" not in captured.err
    assert report["count"] == 0 and code == 0


def test_a_violation_fails_the_plan_command_with_exit_1_and_no_traceback(tmp_path: Path, monkeypatch, capsys,
                                                                         command_shares_plans):
    from convergence import runner
    from convergence.model import Violation

    def fires(plan, context=None):
        yield Violation("test-rule", "management", "urn:pulumi:dev::weebo-platform::x::y", "always fires")

    monkeypatch.setattr(runner, "RULES", (runner.Rule("test-rule", "Always fires.", fires),))
    code = plan_module.main(["dev", "--quiet", "--jobs", "1", "--out", str(tmp_path / "dev")])
    captured = capsys.readouterr()
    assert code == 1 and "convergence violation(s)" in captured.err and "Traceback" not in captured.err
    assert json.loads((tmp_path / "dev" / "convergence.json").read_text())["count"] == 1


def test_plan_command_passes_when_no_rule_fires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                                command_shares_plans):
    from convergence import runner

    monkeypatch.setattr(runner, "RULES", ())
    assert plan_module.main(["dev", "--quiet", "--jobs", "1", "--out", str(tmp_path / "p")]) == 0
    assert "convergence: 0 violation(s)" in capsys.readouterr().out
    assert json.loads((tmp_path / "p" / "convergence.json").read_text())["violations"] == []


def test_convergence_runs_on_the_merged_parallel_plan():
    """The rules need every cluster at once: they run in the parent, on the merged plan, which is
    the one-process plan — so both give the same verdicts."""
    stack = read_stack("prod")
    cfg = plan_module.parse_config(stack.raw, stack.secret_keys, stack="prod", provider_keys=list(stack.provider_config))
    shards = plan_module.shard_tenants([(t.name, plan_module.tenant_weight(t)) for t in cfg.tenants], 2)
    parts = [plan_module.render(stack_plan_of_tenants("prod", tuple(s))) for s in shards]
    merged = plan_module.merge(parts, shards).document()
    assert convergence.run(merged) == convergence.run(prod_doc())
    # A part alone misses the other tenants' clusters and objects (it must not be judged alone):
    # with the CAPK Service of a missing tenant's quota, say, uncounted.
    from convergence.model import load

    whole, part = load(merged), load(parts[0].document())
    assert set(part.clusters) < set(whole.clusters)
    assert len(part.objects) < len(whole.objects)


def test_the_authentik_provider_is_configured_only_once_its_api_answers():
    """pulumi_authentik talks to auth.<zone> as soon as it is configured: it waits for the
    readiness gate (which waits for the route to be published)."""
    doc = prod_doc()
    provider, ready = _record(doc, "authentik-config-api"), _record(doc, "authentik-config-ready")
    assert ready["urn"] in provider["dependencies"]
