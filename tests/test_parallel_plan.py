"""Planning tenants in parallel processes (``offline.plan --jobs``) gives the plan of one process,
and refuses to merge parts that disagree on a resource they both built."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

import stacks.program
from offline import plan as plan_module
from stacks.loader import StackFile, read_stack
from offline.plan import RenderedPlan, ShardMismatch, merge, render, run_offline, shard_tenants
from tests.helpers.factories import base_raw, stack_plan, stack_plan_of_tenants, tenant

TENANTS = ["erp", "ci", "data"]  # Pulumi.prod.yaml
# The parts `--jobs 2` deals prod's tenants into (tests/test_convergence_plan.py plans the same
# parts, so the two files share them).
PARTS = [["data"], ["erp", "ci"]]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# The command with forked workers writes the files of a plan in one process, byte for byte:
# tests/test_determinism.py (one run in a process of its own, with another hash seed).


def test_tenants_are_dealt_into_parts_of_even_weight():
    # Heaviest first, each to the lightest part: 9 | 5+3+1 ... whatever the config order.
    assert shard_tenants([("a", 1), ("b", 9), ("c", 3), ("d", 5)], 2) == [["b"], ["a", "c", "d"]]
    assert shard_tenants([("a", 2), ("b", 2), ("c", 2), ("d", 2)], 2) == [["a", "c"], ["b", "d"]]
    assert shard_tenants([("a", 1), ("b", 1)], 8) == [["a"], ["b"]]
    assert shard_tenants([], 4) == [[]]
    assert shard_tenants([("a", 1)], 0) == [["a"]]


def test_the_parts_are_those_of_two_jobs():
    stack_file = read_stack("prod")
    cfg = plan_module.parse_config(stack_file.raw, stack_file.secret_keys, stack="prod",
                                   provider_keys=list(stack_file.provider_config))
    assert shard_tenants([(t.name, plan_module.tenant_weight(t)) for t in cfg.tenants], 2) == PARTS


def test_a_part_builds_its_tenants_and_the_whole_platform():
    part = stack_plan_of_tenants("prod", tuple(PARTS[0]))
    clusters = [r.name for r in part.monitor.of_type("weebo:tenants:TenantCluster")]
    assert clusters == ["data"]
    # Cluster RBAC of a tenant comes with the tenant; Vault's tenant policies are platform
    # (built from the whole config, like the Vault groups that list them).
    rbac = sorted(r.name for r in part.monitor.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
                  if r.name.startswith("cluster-rbac-"))
    assert rbac == ["cluster-rbac-data-role"]
    policies = {r.input("name") for r in part.monitor.of_type("vault:index/policy:Policy")}
    assert {f"tenant-{t}" for t in TENANTS} <= policies
    # Stack outputs describe the whole stack.
    assert part.monitor.stack_outputs["tenants"] == sorted(TENANTS)


def test_program_refuses_tenants_that_are_not_in_the_config():
    with pytest.raises(Exception, match=r"tenants \['nope'\] are not in the stack config"):
        run_offline(read_stack("prod"), tenants=["nope"])


def test_parts_merge_into_the_single_process_plan():
    whole = render(stack_plan("prod"))
    parts = [render(stack_plan_of_tenants("prod", tuple(s))) for s in PARTS]
    merged = merge(parts, PARTS)
    assert merged.document() == whole.document()
    assert merged.files == whole.files
    assert merged.secrets == whole.secrets and merged.violations == whole.violations


def test_merge_refuses_a_platform_resource_that_depends_on_the_tenants_built(monkeypatch: pytest.MonkeyPatch):
    real = stacks.program.build_environment

    def leaky(cfg, tenants=None):
        env = real(cfg, tenants)
        # A platform resource listing the tenants it saw: what adding a tenant must never change.
        pulumi.CustomResource("random:index/randomId:RandomId", "leaky",
                              {"keepers": {"tenants": ",".join(sorted(env.tenants))}, "byteLength": 4})
        return env

    monkeypatch.setattr(stacks.program, "build_environment", leaky)
    # The smallest stack with three tenants (the merge is the same for any stack).
    stack_file = StackFile(stack="test", raw=base_raw(tenants=[tenant("erp", 0), tenant("data", 1), tenant("ci", 2)]),
                           secret_keys=frozenset())
    shards = [["erp", "data"], ["ci"]]
    parts = [render(run_offline(stack_file, tenants=s)) for s in shards]
    with pytest.raises(ShardMismatch, match=r"leaky differs between the parts planning tenants \['erp', 'data'\] and \['ci'\]"):
        merge(parts, shards)


def _part(resources: dict[str, dict], outputs: dict | None = None) -> RenderedPlan:
    return RenderedPlan(stack="s", resources=resources, files={}, outputs=outputs or {}, secrets=set(), violations=set())


def test_merge_refuses_a_resource_built_by_some_parts_only():
    platform = {"urn:p": {"x": 1}}
    parts = [_part({**platform, "urn:shared": {}}), _part({**platform, "urn:shared": {}}), _part(dict(platform))]
    with pytest.raises(ShardMismatch, match="urn:shared is built only with tenants"):
        merge(parts, [["a"], ["b"], ["c"]])


def test_merge_refuses_outputs_that_differ():
    with pytest.raises(ShardMismatch, match="stack outputs"):
        merge([_part({}, {"tenants": ["a"]}), _part({}, {"tenants": ["b"]})], [["a"], ["b"]])


def test_merge_keeps_each_tenant_resource_once():
    platform = {"urn:p": {"x": 1}}
    merged = merge([_part({**platform, "urn:a": {"a": 1}}), _part({**platform, "urn:b": {"b": 1}})], [["a"], ["b"]])
    assert merged.resources == {"urn:p": {"x": 1}, "urn:a": {"a": 1}, "urn:b": {"b": 1}}


def test_cli_reports_a_mismatch_without_a_traceback(monkeypatch: pytest.MonkeyPatch, capsys):
    def refuse(*_args, **_kwargs):
        raise ShardMismatch("resource urn:x differs between the parts planning tenants ['a'] and ['b']")

    monkeypatch.setattr(plan_module, "plan_in_parallel", refuse)
    assert plan_module.main(["prod", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "urn:x differs" in err and "Traceback" not in err


def test_plan_json_assembled_from_encoded_records_is_json_dumps_of_the_document():
    rendered = render(stack_plan("dev"))
    expected = json.dumps(rendered.document(), indent=2, sort_keys=True) + "\n"
    assert rendered.plan_json() == expected
    # Records not encoded beforehand (a merged or hand-made plan) give the same text.
    rendered.encoded.clear()
    assert rendered.plan_json() == expected
    empty = _part({}, {"a": [1]})
    assert empty.plan_json() == json.dumps(empty.document(), indent=2, sort_keys=True) + "\n"


def test_records_are_encoded_as_json_dumps_encodes_them():
    from offline.plan import _encode_record

    odd = {"b": [1, 2.5, float("inf"), None, True, ("t", "u"), {}, [], "é\n\"q\""], "a": {"z": {"y": []}},
           "ünï": "x"}
    for record in [odd, *render(stack_plan("dev")).resources.values()]:
        expected = "    " + json.dumps(record, indent=2, sort_keys=True).replace("\n", "\n    ")
        assert _encode_record(record) == expected
    # Keys json.dumps would convert are left to json.dumps.
    assert _encode_record({1: "x"}) == "    " + json.dumps({1: "x"}, indent=2, sort_keys=True).replace("\n", "\n    ")


def test_a_caller_running_threads_gets_the_plan_built_in_one_process(monkeypatch: pytest.MonkeyPatch,
                                                                     command_shares_plans):
    import multiprocessing
    import threading

    from stacks.config import parse_config

    def no_pool(*_args, **_kwargs):
        raise AssertionError("no worker may be forked while other threads run")

    monkeypatch.setattr(multiprocessing, "get_context", no_pool)
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    stack_file = read_stack("prod")
    cfg = parse_config(stack_file.raw, stack_file.secret_keys, stack="prod", provider_keys=list(stack_file.provider_config))
    rendered = plan_module.plan_in_parallel(stack_file, cfg, jobs=3)
    assert sorted(r.split("::")[-1] for r in rendered.resources if "TenantCluster::" in r) == sorted(TENANTS)
