"""Rule 8: the offline engine refuses what the real engine refuses."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest
from pulumi.runtime.proto import resource_pb2

from offline import plan as plan_module
from offline.mocks import EngineRefusal, PlanMocks, RecordingMonitor

STACK_URN = "urn:pulumi:t::p::pulumi:pulumi:Stack::p-t"


@pytest.fixture(autouse=True)
def _collect_failed_program():
    """A refused plan leaves the SDK's failed futures behind (the plan runs with the cyclic
    collector off); collect them here, so their finalizers (asyncio's "exception never
    retrieved") do not run later inside an unrelated compile (CPython 3.11 then fails with "AST
    constructor recursion depth mismatch")."""
    yield
    import gc

    gc.collect()


def monitor() -> RecordingMonitor:
    m = RecordingMonitor(PlanMocks(), project="p", stack="t")
    m.RegisterResource(resource_pb2.RegisterResourceRequest(type="pulumi:pulumi:Stack", name="p-t"))
    return m


def register(m: RecordingMonitor, type_: str, name: str, **kw):
    return m.RegisterResource(resource_pb2.RegisterResourceRequest(type=type_, name=name, parent=STACK_URN, custom=True,
                                                                   **kw))


def test_a_valid_graph_registers():
    m = monitor()
    prov = register(m, "pulumi:providers:kubernetes", "k8s").urn
    a = register(m, "kubernetes:core/v1:Namespace", "a", provider=f"{prov}::id").urn
    register(m, "kubernetes:core/v1:ConfigMap", "b", provider=f"{prov}::id", dependencies=[a])
    assert m.refusals == [] and len(m.registrations) == 3


def test_duplicate_urn_is_refused():
    m = monitor()
    register(m, "kubernetes:core/v1:Namespace", "a")
    with pytest.raises(EngineRefusal, match="duplicate resource URN .*Namespace::a"):
        register(m, "kubernetes:core/v1:Namespace", "a")


def test_unregistered_provider_is_refused():
    m = monitor()
    with pytest.raises(EngineRefusal, match="provider .*providers:kubernetes::ghost is not a registered resource"):
        register(m, "kubernetes:core/v1:Namespace", "a",
                 provider="urn:pulumi:t::p::pulumi:providers:kubernetes::ghost::id")


def test_unregistered_parent_is_refused():
    m = monitor()
    with pytest.raises(EngineRefusal, match="parent .*weebo:x:Ghost::g is not a registered component"):
        m.RegisterResource(resource_pb2.RegisterResourceRequest(
            type="kubernetes:core/v1:Namespace", name="a", custom=True, parent="urn:pulumi:t::p::weebo:x:Ghost::g"))


def test_depends_on_an_unregistered_resource_is_refused():
    m = monitor()
    with pytest.raises(EngineRefusal, match="depends on .*ConfigMap::ghost, which is not a registered resource"):
        register(m, "kubernetes:core/v1:Namespace", "a",
                 dependencies=["urn:pulumi:t::p::kubernetes:core/v1:ConfigMap::ghost"])


def _duplicating_program(tenants=None) -> None:
    """Two config entries that give one resource name, as a range listed twice would."""
    import pulumi_random as random

    for _ in range(2):
        random.RandomPassword("operator-range", length=8)
    pulumi.export("x", 1)


def test_offline_plan_fails_on_a_refusal(monkeypatch: pytest.MonkeyPatch):
    import stacks.program

    monkeypatch.setattr(stacks.program, "main", _duplicating_program)
    with pytest.raises(EngineRefusal, match="1 registration.* would refuse:\n  - duplicate resource URN"):
        plan_module.run_offline(plan_module.read_stack("prod"))


def test_plan_command_exits_1_without_a_traceback_on_a_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys):
    import stacks.program

    monkeypatch.setattr(stacks.program, "main", _duplicating_program)
    assert plan_module.main(["prod", "--quiet", "--jobs", "1", "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "duplicate resource URN" in err and "RandomPassword::operator-range" in err
    assert "Traceback" not in err


def test_urns_are_the_ones_the_engine_gives():
    """As the engine names resources (pulumi/pulumi deployment.go generateURN, urn.go New): no
    root-stack type at the top, and the parent's whole qualified type below (``A$B$C``). The
    stock mock monitor kept only the parent's last type; operators copy these URNs into
    ``pulumi up --target`` and ``pulumi state`` commands."""
    from tests.helpers.factories import stack_plan

    regs = {r.urn: r for r in stack_plan("prod").registrations}
    for reg in regs.values():
        qualified = reg.urn.split("::")[2]
        assert not qualified.startswith("pulumi:pulumi:Stack$"), reg.urn
        parent = regs.get(reg.parent)
        if parent is None:  # parented to the root stack
            assert qualified == reg.type, reg.urn
        else:
            assert qualified == parent.urn.split("::")[2] + "$" + reg.type, reg.urn
    assert max(u.split("::")[2].count("$") for u in regs) >= 3  # the nesting this checks exists
    ns = next(u for u in regs if u.endswith("::authentik-namespace-ns"))
    assert ns.split("::")[2] == ("weebo:identity:Authentik$weebo:kubernetes:IrreplaceableState$"
                                 "weebo:kubernetes:PlatformNamespace$kubernetes:core/v1:Namespace")


def test_aliases_are_the_urns_the_engine_resolves():
    """An alias spec's unset parts are the resource's own, its parent included (the SDK sends an
    empty parentUrn for that); a spec naming another parent keeps it (step_generator.go
    collapseAliasToUrn). Both as plan.json records them."""
    from tests.helpers.factories import stack_plan

    mon = stack_plan("prod").monitor
    job = mon.named("backups-authentik")  # pulumi_kubernetes aliases the CronJob's older API types
    chain = job.urn.split("::")[2].rsplit("$", 1)[0]
    assert f"urn:pulumi:prod::weebo-platform::{chain}$kubernetes:batch/v1beta1:CronJob::backups-authentik" in job.aliases
    storage = mon.named("virtualization-local-storage")  # moved: aliased to its old parent
    assert storage.aliases == ["urn:pulumi:prod::weebo-platform::weebo:virtualization:Virtualization$"
                               "weebo:storage:LocalStorage::virtualization-local-storage"]
    record = next(r for r in plan_module.plan_document(stack_plan("prod"))["resources"] if r["urn"] == storage.urn)
    assert record["aliases"] == storage.aliases and record["customTimeouts"] == storage.custom_timeouts
