"""One ``pulumi up`` of a brand-new environment runs to the end (issue 13: storage, API gate,
Vault token lifetime)."""

from __future__ import annotations

from typing import Any

import pytest

import stacks.plan
from components.timeouts import duration_seconds
from stacks.loader import read_stack
from stacks.mocks import RecordingMonitor


class TimeoutRecordingMonitor(RecordingMonitor):
    """Also records each registration's custom timeouts (the engine receives them the same way)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.timeouts: dict[str, dict[str, str]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        ct = request.customTimeouts
        found = {k: getattr(ct, k) for k in ("create", "update", "delete") if getattr(ct, k)}
        if found:
            self.timeouts[response.urn] = found
        return response


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(stacks.plan, "RecordingMonitor", TimeoutRecordingMonitor)
    try:
        yield stacks.plan.run_offline(read_stack("prod")).monitor
    finally:
        mp.undo()


def _longest(timeouts: dict[str, str]) -> int:
    return max(duration_seconds(v) for v in timeouts.values())


def test_vault_provider_token_outlives_every_wait_that_follows_it(prod):
    """The provider's child token is minted once Vault answers; the tenants' control planes
    (and the waits around them) come later in the same run and need it at their end."""
    (provider,) = [r for r in prod.registrations.values() if r.type == "pulumi:providers:vault"]
    ttl = int(provider.inputs["maxLeaseTtlSeconds"])

    def longest_of(kind: str) -> int:
        found = [_longest(t) for urn, t in prod.timeouts.items() if urn.split("::")[2].endswith(kind)]
        assert found, f"no {kind} with custom timeouts in the plan"
        return max(found)

    # CAPI providers -> a tenant's control plane -> its CNI Application, one after the other.
    chain = (longest_of("operator.cluster.x-k8s.io/v1alpha2:InfrastructureProvider")
             + longest_of("TalosControlPlane") + longest_of("argoproj.io/v1alpha1:Application"))
    assert ttl > chain, f"Vault token lives {ttl}s, the waits after it take up to {chain}s"
    # No single wait of a tenant outlives the token either.
    tenant_waits = [_longest(t) for urn, t in prod.timeouts.items() if "weebo:tenants:TenantCluster" in urn]
    assert tenant_waits and max(tenant_waits) < ttl


def test_duration_parser_reads_pulumi_timeouts():
    assert duration_seconds("45m") == 2700
    assert duration_seconds("1h30m") == 5400
    with pytest.raises(ValueError):
        duration_seconds("soon")
