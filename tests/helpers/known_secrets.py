"""Runs of the program where generated credentials have recognisable values.

In a preview the engine leaves provider-generated outputs (random bytes, NetBird setup keys)
unknown, so a leak could never show. After a (mock) deployment, ``offline.invokes`` gives each
generated credential a distinct value carrying ``MARKER``, so tests can look for it in every
rendered input and in the plan files.
"""

from __future__ import annotations

from typing import Any

import pytest

import offline.plan
from offline.invokes import SECRET_MARKER as MARKER
from offline.mocks import PlanMocks
from tests.helpers.factories import plan

__all__ = ["MARKER", "KnownSecretMocks", "plan_with_known_secrets"]


class KnownSecretMocks(PlanMocks):
    """The plan's mocks after a deployment: ids and generated outputs known."""

    def __init__(self, preview: bool = False):
        super().__init__(preview=False)


def plan_with_known_secrets(monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any]) -> offline.plan.PlanResult:
    del monkeypatch  # kept for the callers' signature
    return plan(raw, preview=False)
