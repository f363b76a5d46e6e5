"""Two plans of the same config are byte-identical: plan.json, every manifest, every release,
policy.json — in one process, and across processes with different hash seeds (set and dict
ordering must not leak into the output)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.loader import ROOT, read_stack
from offline import plan as plan_module
from offline.plan import PlanResult, policy_context, run_offline, write_plan, write_policy
from stacks.config import parse_config
from tests.helpers.factories import stack_plan


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def plan_into(stack: str, out: Path, result: PlanResult | None = None) -> dict[str, bytes]:
    stack_file = read_stack(stack)
    cfg = parse_config(stack_file.raw, stack_file.secret_keys, stack=stack, provider_keys=list(stack_file.provider_config))
    result = result or run_offline(stack_file)
    doc = write_plan(result, out)
    write_policy(result, doc, out, policy_context(cfg))
    return snapshot(out)


def assert_identical(one: dict[str, bytes], two: dict[str, bytes]) -> None:
    assert sorted(one) == sorted(two)
    different = [name for name in one if one[name] != two[name]]
    assert not different, f"files differ between two plans of the same config: {different}"


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_two_plans_in_one_process_are_byte_identical(stack: str, tmp_path: Path):
    # The first plan is the one this process made for the other tests (planned once, shared),
    # the second a new one: two plans of the same config in one process.
    one = plan_into(stack, tmp_path / "one", stack_plan(stack))
    two = plan_into(stack, tmp_path / "two")
    assert {"plan.json", "policy.json"} <= set(one)
    assert any(name.startswith("manifests/") for name in one)
    assert any(name.startswith("releases/") for name in one)
    assert_identical(one, two)


def _another_hash_seed() -> str:
    """A hash seed this process does not use: its own is random unless PYTHONHASHSEED fixes it
    (then one more); a random one equals "1" with a chance of one in 2**32."""
    own = os.environ.get("PYTHONHASHSEED", "random")
    return "1" if own == "random" else str((int(own) + 1) % 4294967296)


def test_plans_from_processes_with_different_hash_seeds_and_workers_are_byte_identical(tmp_path: Path,
                                                                                     command_shares_plans):
    """The command in a process of its own, with another hash seed and its tenants planned by
    two forked workers, writes every file the command writes here, in one process (the shared
    plan: its equality to a fresh plan is the test above). One run checks both: set and dict
    ordering never reach the output, and the parallel plan is the plan of one process."""
    assert plan_module.main(["prod", "--quiet", "--jobs", "1", "--out", str(tmp_path / "here")]) == 0
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")},
           "PYTHONHASHSEED": _another_hash_seed()}
    proc = subprocess.run([sys.executable, "-m", "offline.plan", "prod", "--quiet", "--jobs", "2",
                           "--out", str(tmp_path / "there")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    here, there = snapshot(tmp_path / "here"), snapshot(tmp_path / "there")
    assert {"plan.json", "policy.json", "convergence.json"} <= set(here)
    assert any(name.startswith("manifests/") for name in here)
    assert_identical(here, there)
