"""The plan sharing of the tests themselves (tests/helpers/factories.py): a test gets the plan
another test made of the same input, never one of another input, never one made under a patch,
and a plan changed in place is reported."""

from __future__ import annotations

import pytest

from tests.helpers import factories
from tests.helpers.factories import base_raw, plan


def test_the_same_input_gets_the_same_plan_and_another_input_its_own():
    # Configs other tests plan too (shared, so this costs no plan of its own).
    first = plan(base_raw())
    assert plan(base_raw()) is first
    assert factories.stack_plan("dev") is factories.stack_plan("dev") is not first
    deployed = plan(base_raw(), preview=False)
    assert deployed is not first
    assert deployed.monitor.registrations.keys() == first.monitor.registrations.keys()


def test_a_patching_test_plans_afresh_and_keeps_nothing(monkeypatch: pytest.MonkeyPatch):
    shared = plan(base_raw())
    assert plan(base_raw()) is shared  # monkeypatch at hand, nothing patched yet: shared
    monkeypatch.setenv("WEEBO_TEST_PATCHED", "1")  # any patch, even one the program never reads
    kept = dict(factories._PLANS)
    fresh = plan(base_raw())
    assert all(fresh is not result for result, _ in kept.values())
    assert factories._PLANS.keys() == kept.keys()


def test_a_plan_changed_in_place_is_reported():
    result = factories.stack_plan("dev")  # shared; restored below before any other test reads it
    assert factories.check_unchanged() == []
    reg = next(r for r in result.registrations if r.custom)
    saved = reg.inputs
    reg.inputs = {**saved, "changed-by-a-test": True}
    try:
        changed = factories.check_unchanged()
        assert len(changed) == 1 and changed[0].startswith("dev plan")
    finally:
        reg.inputs = saved
    assert factories.check_unchanged() == []


def test_a_plan_made_while_a_fixture_patched_the_engine_is_not_shared():
    """Module fixtures plan a deployed stack by replacing the engine's mocks without the
    ``monkeypatch`` fixture: such a plan is neither served from nor kept in the shared plans."""
    import offline.plan as plan_module

    class Deployed(plan_module.PlanMocks):
        pass

    shared = plan(base_raw())
    mp = pytest.MonkeyPatch()
    mp.setattr(plan_module, "PlanMocks", Deployed)
    try:
        kept = dict(factories._PLANS)
        patched = plan(base_raw())
        assert patched is not shared and factories._PLANS.keys() == kept.keys()
    finally:
        mp.undo()
    assert plan(base_raw()) is shared


def test_a_plan_is_made_once_for_all_test_processes(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Under pytest-xdist, the first process to ask makes the plan and leaves it for the others;
    a failed plan leaves nothing."""
    monkeypatch.setitem(factories.SHARED_DIR, "path", tmp_path)
    made = []

    def make():
        made.append(1)
        return {"plan": len(made)}

    assert factories._from_other_processes("key-a", make) == {"plan": 1}
    assert factories._from_other_processes("key-a", make) == {"plan": 1}  # read back, not made again
    assert made == [1]
    assert factories._from_other_processes("key-b", make) == {"plan": 2}

    def refused():
        raise ValueError("a refused config")

    with pytest.raises(ValueError):
        factories._from_other_processes("key-c", refused)
    assert factories._from_other_processes("key-c", make) == {"plan": 3}
    assert sorted(p.suffix for p in tmp_path.iterdir() if p.suffix != ".lock") == [".pickle"] * 3
