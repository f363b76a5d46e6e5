"""Runs of the program where generated credentials have recognisable values.

In a preview the engine leaves provider-generated outputs (random bytes, NetBird setup keys)
unknown, so a leak could never show. Here the mock provider "generates" a distinct, greppable
value per resource, as a real update would, so tests can look for it in every rendered input
and in the plan files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

import stacks.plan
from stacks.mocks import PlanMocks
from tests.factories import plan

MARKER = "GENERATED-SECRET"


def generated(kind: str, name: str) -> str:
    return f"{MARKER}-{kind}-{name}"


class KnownSecretMocks(PlanMocks):
    """Like the plan's mocks after a deployment (ids known), with generated credentials."""

    GENERATORS: dict[str, Callable[[MockResourceArgs], dict[str, Any]]] = {
        "random:index/randomBytes:RandomBytes": lambda a: {
            "base64": generated("b64", a.name), "hex": generated("hex", a.name)
        },
        "netbird:index/setupKey:SetupKey": lambda a: {"key": generated("setupkey", a.name)},
    }

    def __init__(self, preview: bool = False):
        super().__init__(preview=False)

    def call(self, args: MockCallArgs) -> Any:
        # PlanMocks.call answers (result, None); pulumi's MockMonitor iterates the second item
        # as check failures, which only happens once invokes run (not in previews).
        result, _ = super().call(args)
        return result

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        rid, state = super().new_resource(args)
        gen = self.GENERATORS.get(args.typ)
        if gen is not None:
            state = {**state, **gen(args)}
        return rid, state


def plan_with_known_secrets(monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any]) -> stacks.plan.PlanResult:
    monkeypatch.setattr(stacks.plan, "PlanMocks", KnownSecretMocks)
    return plan(raw, preview=False)
