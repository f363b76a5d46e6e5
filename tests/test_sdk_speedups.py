"""The iterative reachability check answers exactly as the SDK's recursive one."""

from __future__ import annotations

import random

from pulumi.runtime import resource_cycle_breaker

from stacks import sdk_speedups


class Node:
    def __init__(self, i: int):
        self.i = i


def test_iterative_reachability_matches_the_sdk_on_random_graphs():
    rng = random.Random(7)
    for _ in range(30):
        nodes = [Node(i) for i in range(40)]
        for n in nodes:
            for m in rng.sample(nodes, rng.randint(0, 3)):
                resource_cycle_breaker._add_dep(n, m)
        for _ in range(50):
            a, b = rng.choice(nodes), rng.choice(nodes)
            assert sdk_speedups._reachable(a, b) == sdk_speedups._original_reachable(a, b)


def test_apply_swaps_the_sdk_function():
    sdk_speedups.apply()
    assert resource_cycle_breaker._reachable is sdk_speedups._reachable
