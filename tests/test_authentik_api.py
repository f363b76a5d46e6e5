"""The Authentik API surface the program uses is exactly the one checked against the pinned
server (versions.AUTHENTIK_API_CHECK): a new resource type or field, a provider bump or a server
bump fails here until the schema comparison is redone."""

from __future__ import annotations

import re

import pytest

import versions
from stacks.loader import ROOT
from tests.helpers.factories import stack_plan

CHECK = versions.AUTHENTIK_API_CHECK


@pytest.fixture(scope="module")
def used() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    # Deployed (not preview): every invoke is called, every resource registered, tenants included.
    monitor = stack_plan("prod", preview=False).monitor
    for reg in monitor.registrations.values():
        if reg.custom and reg.type.startswith("authentik:index/"):
            out.setdefault(reg.type, set()).update(reg.input())
    for token, args in monitor.invokes:
        if token.startswith("authentik:index/"):
            out.setdefault(token, set()).update(args)
    return out


def test_every_authentik_type_and_field_the_program_uses_was_checked(used):
    checked = {k: set(v) for k, v in CHECK["uses"].items()}
    assert set(used) == set(checked), "Authentik types used vs checked differ: redo the check in versions.py"
    for token, fields in used.items():
        assert fields <= checked[token], (token, sorted(fields - checked[token]))


def test_the_check_is_for_the_pinned_provider_and_server():
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(rf"^{re.escape(CHECK['provider'])}$", requirements, re.M), "provider bumped: redo the check"
    assert CHECK["server"] == versions.AUTHENTIK_CHART_VERSION, "Authentik server bumped: redo the check"


def test_the_programs_own_api_calls_are_the_checked_ones():
    """Every Authentik API path written in the components is in the checked list (and back)."""
    found = set()
    for path in (ROOT / "components").rglob("*.py"):
        for m in re.finditer(r"/api/v3/[a-z0-9_/]+/(?:\?[a-z_]+=|\{[a-z_]+\}/)?", path.read_text()):
            found.add(m.group(0).replace("{provider_id}", "{id}"))
    checked = {call.split()[1] for call in CHECK["api_calls"]}
    assert found == checked
