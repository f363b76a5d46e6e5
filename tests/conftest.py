import sys
from pathlib import Path

import pytest

# The project root holds the program's packages (stacks/, components/) and versions.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# tests.helpers.factories (which imports the program) is imported inside the fixtures below, not
# here: the pytest-xdist controller loads this file too, and never plans.


# The test files that take longest (each plans many configs of its own; measured with
# `pytest --durations=0`, bench/README.md), handed to the pytest-xdist workers first: a long file
# started last would leave the other worker idle at the end. Only the order changes.
SLOWEST_FIRST = ["test_rotation", "test_backups", "test_parallel_plan", "test_policy", "test_determinism",
                 "test_config_stack_mutations", "test_tenant_cluster", "test_talos_upgrade",
                 "test_config_properties", "test_checkov", "test_stacks", "test_bad_input"]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    counts: dict[str, int] = {}
    for item in items:
        counts[item.path.stem] = counts.get(item.path.stem, 0) + 1
    # The slowest files in their order, then the others by their number of tests (as pytest-xdist
    # orders them by default); a file's tests keep their order.
    items.sort(key=lambda item: (rank.get(item.path.stem, len(rank)), -counts[item.path.stem], item.path.stem))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported so far (the SDK, every provider's classes, the program) lives as long as
    the process: out of the cyclic collector's sight, so collections during the tests scan only
    what the tests make (``gc.freeze``)."""
    import gc

    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _share_plans_unless_patched(request: pytest.FixtureRequest):
    """Plans are shared between tests (tests/helpers/factories.py), except while the test's
    ``monkeypatch`` (its own or a fixture's) has patched something: what it patched may change
    what the program or the engine does, so such a test plans afresh and keeps nothing."""
    from tests.helpers import factories

    if "monkeypatch" in request.fixturenames:
        mp: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        # MonkeyPatch records every patch (attributes, items and environment variables, the
        # working directory, sys.path) to undo it: nothing recorded, nothing patched yet.
        factories.SHARING["patched"] = lambda: bool(mp._setattr or mp._setitem or mp._cwd is not None
                                                    or mp._savesyspath is not None)
    yield
    factories.SHARING["patched"] = factories.never_patched


@pytest.fixture
def command_shares_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m offline.plan``'s code (``offline.plan.main``), run in the test, plans through the
    shared plans: for tests of what the command does with a plan (files, verdicts, messages, exit
    status) that patch only what runs after planning (the policy or convergence rules). The plan
    itself is the same either way (tests/test_determinism.py plans afresh)."""
    from offline import plan as plan_module
    from tests.helpers import factories

    def run_offline(stack_file, preview=True, tenants=None):
        return factories.planned(stack_file, preview=preview, tenants=tenants, share=True)

    monkeypatch.setattr(plan_module, "run_offline", run_offline)


@pytest.fixture(scope="session", autouse=True)
def _shared_plans_stay_unchanged(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """Plans are shared with the other pytest-xdist processes of this run (their common temporary
    directory); and the run fails (an error at the teardown of the last test) if a test changed a
    shared plan in place: the tests that read it after would have checked the change, not the
    program."""
    from tests.helpers import factories

    if worker_id != "master":
        shared = tmp_path_factory.getbasetemp().parent / "shared-plans"
        shared.mkdir(exist_ok=True)
        factories.SHARED_DIR["path"] = shared
    yield
    changed = factories.check_unchanged()
    assert not changed, "shared plans changed in place by a test (copy before changing): " + "; ".join(changed)


@pytest.fixture
def monitors(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every RecordingMonitor the offline engine creates during the test (to check that nothing
    was registered before a config error)."""
    from offline import plan as plan_module

    created: list[plan_module.RecordingMonitor] = []

    class Capturing(plan_module.RecordingMonitor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(plan_module, "RecordingMonitor", Capturing)
    return created
