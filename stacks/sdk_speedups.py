"""A measured speed-up of the Pulumi Python SDK's dependency cycle check.

``pulumi.runtime.resource_cycle_breaker._reachable`` walks the transitive dependencies of every
dependency a resource declares with nested recursive generators, so each resource it visits is
passed up through one generator frame per level of depth. With tenants at the end of 30-deep
chains this dominated planning (bench/README.md). The replacement below is the same depth-first
search, iterative: same answer, same graph, linear in what it visits.

Applied once, before any resource is registered, by ``stacks.program``; the SDK is pinned in
requirements.txt and ``tests/test_sdk_speedups.py`` checks the two give the same answers.
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime import resource_cycle_breaker

_original_reachable = resource_cycle_breaker._reachable


def _reachable(from_resource: Any, to_resource: Any) -> bool:
    deps = resource_cycle_breaker._deps
    visited: set[Any] = set()
    stack = [from_resource]
    while stack:
        r = stack.pop()
        if r in visited:
            continue
        if r == to_resource:
            return True
        visited.add(r)
        stack.extend(deps(r))
    return False


def apply() -> None:
    resource_cycle_breaker._reachable = _reachable
