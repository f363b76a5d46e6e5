"""Each SDK replacement in offline/sdk_speedups.py answers exactly as the SDK's own function."""

from __future__ import annotations

import random

import pytest
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import resource_cycle_breaker

from offline import sdk_speedups


class Node:
    def __init__(self, i: int):
        self.i = i


def random_graph(rng: random.Random, size: int = 40) -> list[Node]:
    nodes = [Node(i) for i in range(size)]
    for n in nodes:
        for m in rng.sample(nodes, rng.randint(0, 3)):
            sdk_speedups._add_dep(n, m)
    return nodes


def test_backward_reachability_matches_the_sdk_on_random_graphs():
    rng = random.Random(7)
    answers = set()
    for _ in range(30):
        nodes = random_graph(rng)
        for _ in range(50):
            a, b = rng.choice(nodes), rng.choice(nodes)
            expected = sdk_speedups._original_reachable(a, b)
            assert sdk_speedups._reachable(a, b) == expected
            answers.add(expected)
    assert answers == {True, False}  # both outcomes were exercised


def test_add_dep_records_the_same_forward_edges_as_the_sdk():
    rng = random.Random(11)
    ours, theirs = [Node(i) for i in range(30)], [Node(i) for i in range(30)]
    for _ in range(200):
        a, b = rng.randrange(30), rng.randrange(30)
        sdk_speedups._add_dep(ours[a], ours[b])
        sdk_speedups._original_add_dep(theirs[a], theirs[b])
    for o, t in zip(ours, theirs):
        assert {d.i for d in resource_cycle_breaker._deps(o)} == {d.i for d in resource_cycle_breaker._deps(t)}


def test_declare_dependency_still_refuses_a_cycle():
    sdk_speedups.apply()
    a, b, c = Node(0), Node(1), Node(2)
    assert resource_cycle_breaker.declare_dependency(a, b)
    assert resource_cycle_breaker.declare_dependency(b, c)
    assert not resource_cycle_breaker.declare_dependency(c, a)  # c -> a would close a -> b -> c
    assert not resource_cycle_breaker.declare_dependency(a, a)


class _Resource:
    """Three nested constructors, like Resource <- CustomResource <- a concrete resource."""

    def __init__(self, capture):
        self.trace = capture()


class _Custom(_Resource):
    def __init__(self, capture):
        super().__init__(capture)


class _Concrete(_Custom):
    def __init__(self, capture):
        super().__init__(capture)


def _both():
    return sdk_speedups._original_get_stack_trace(), sdk_speedups._get_stack_trace()


def _user_code(depth: int):
    if depth:
        return _user_code(depth - 1)
    # Both captured from the same line, so every frame outside the constructors is the same.
    made = _Concrete(_both)
    return made.trace


@pytest.mark.parametrize("depth", [0, 3, 25])
def test_stack_trace_matches_the_sdk(depth):
    theirs, ours = _user_code(depth)
    assert len(theirs.frames) >= depth + 2
    assert ours == theirs
    # The first frame is the user code that constructed the resource.
    assert theirs.frames[0].pc.uri.endswith("test_sdk_speedups.py")


def test_stack_trace_without_enough_constructors_is_empty_like_the_sdk():
    theirs, ours = _both()
    assert ours == theirs
    assert len(ours.frames) == 0


def test_apply_swaps_the_sdk_functions():
    sdk_speedups.apply()
    assert resource_cycle_breaker._reachable is sdk_speedups._reachable
    assert resource_cycle_breaker._add_dep is sdk_speedups._add_dep
    assert sdk_resource._get_stack_trace is sdk_speedups._get_stack_trace
    assert sdk_resource.create_urn is sdk_speedups._create_urn


@pytest.mark.parametrize("parent", [None, "urn:pulumi:prod::weebo-platform::weebo:tenants:TenantCluster::erp"])
def test_create_urn_matches_the_sdk(parent):
    import pulumi
    from pulumi.runtime import mocks

    class Echo(mocks.Mocks):
        def new_resource(self, args):
            return "", {}

        def call(self, args):
            return {}, []

    pulumi.runtime.set_mocks(Echo(), project="weebo-platform", stack="prod", preview=True)
    from pulumi.runtime.sync_await import _sync_await

    async def both():
        ours = sdk_speedups._create_urn("erp-namespace", "kubernetes:core/v1:Namespace", parent)
        theirs = sdk_speedups._original_create_urn("erp-namespace", "kubernetes:core/v1:Namespace", parent)
        return ([await ours.future(), await ours.is_known(), await ours.is_secret()],
                [await theirs.future(), await theirs.is_known(), await theirs.is_secret()])

    ours, theirs = _sync_await(both())
    assert ours == theirs
    assert ours[0].endswith("kubernetes:core/v1:Namespace::erp-namespace")


def test_create_urn_leaves_outputs_and_resources_to_the_sdk(monkeypatch: pytest.MonkeyPatch):
    import pulumi

    handed = []
    monkeypatch.setattr(sdk_speedups, "_original_create_urn", lambda *a: handed.append(a) or "sdk")
    out = pulumi.Output.from_input("x")
    assert sdk_speedups._create_urn(out, "t") == "sdk"
    assert sdk_speedups._create_urn("n", "t", parent=out) == "sdk"
    assert len(handed) == 2


def test_unwrap_type_is_remembered_per_annotation_and_matches_the_sdk():
    from typing import Optional

    import pulumi
    import pulumi_kubernetes as k8s

    hints = [Optional[pulumi.Input[str]], pulumi.Output[int], Optional[pulumi.Input["k8s.meta.v1.ObjectMetaArgs"]],
             pulumi.Input[k8s.meta.v1.ObjectMetaArgs], str, list]
    for hint in hints:
        assert sdk_speedups._unwrap_type(hint) == sdk_speedups._original_unwrap_type(hint)
        assert sdk_speedups._unwrap_type(hint) == sdk_speedups._original_unwrap_type(hint)  # from the cache
        assert sdk_speedups._unwrap_optional_type(hint) == sdk_speedups._original_unwrap_optional_type(hint)


_SDK_FUNCTIONS = (
    (resource_cycle_breaker, "_reachable", "_original_reachable"),
    (resource_cycle_breaker, "_add_dep", "_original_add_dep"),
    (sdk_resource, "_get_stack_trace", "_original_get_stack_trace"),
    (sdk_resource, "create_urn", "_original_create_urn"),
)


def _stock_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the SDK's own functions back for this test (an earlier plan in this process patched them)."""
    from pulumi import _types as sdk_types

    for module, attr, original in _SDK_FUNCTIONS:
        monkeypatch.setattr(module, attr, getattr(sdk_speedups, original))
    monkeypatch.setattr(sdk_types, "unwrap_type", sdk_speedups._original_unwrap_type)
    monkeypatch.setattr(sdk_types, "unwrap_optional_type", sdk_speedups._original_unwrap_optional_type)


def test_the_real_program_runs_on_the_stock_sdk(monkeypatch):
    """``pulumi up`` runs stacks.program.main: it must leave every SDK function as the SDK made it."""
    import pulumi
    from pulumi import _types as sdk_types

    from stacks.loader import StackFile
    from stacks.program import main
    from tests.helpers.factories import base_raw
    from tests.helpers.identity_support import run_program

    _stock_sdk(monkeypatch)
    flat, secret_keys = StackFile(stack="unit", raw=base_raw(tenants=[]), secret_keys=frozenset()).pulumi_config()
    pulumi.runtime.set_all_config(flat, secret_keys)
    _, monitor = run_program(main)
    assert monitor.registrations  # the program did run
    for module, attr, original in _SDK_FUNCTIONS:
        assert getattr(module, attr) is getattr(sdk_speedups, original), f"{module.__name__}.{attr} was patched"
    assert sdk_types.unwrap_type is sdk_speedups._original_unwrap_type
    assert sdk_types.unwrap_optional_type is sdk_speedups._original_unwrap_optional_type


def test_the_offline_plan_still_gets_the_speedups(monkeypatch):
    from tests.helpers.factories import base_raw, plan

    _stock_sdk(monkeypatch)
    plan(base_raw(tenants=[]))
    assert resource_cycle_breaker._reachable is sdk_speedups._reachable
    assert sdk_resource.create_urn is sdk_speedups._create_urn
