"""Config factories and program runners for the tests."""

from __future__ import annotations

import copy
import functools
from typing import Any

from stacks.config import PlatformConfig, parse_config
from stacks.loader import StackFile, read_stack
from offline.plan import PlanResult, run_offline


def base_raw(**overrides: Any) -> dict[str, Any]:
    """A small, valid ovh-talos environment (project keys without prefix), with overrides
    replacing whole top-level keys."""
    raw: dict[str, Any] = {
        "managementCluster": {
            "name": "weebo4cp",
            "nodes": [
                {"hostname": "node-1", "ovhServiceName": "ns100.ip-10-0-0.eu", "address": "51.0.0.10"},
            ],
            "loadBalancerIps": ["51.0.1.0/29"],
            "operatorSourceRanges": ["203.0.113.0/24"],
        },
        "domain": {"parentZone": "example.org", "platformSubdomain": "cloud", "acmeEmail": "ops@example.org"},
        "hostCapacity": {"cpu": 64, "memoryGib": 256, "diskGib": 2000},
        "tenants": [tenant("alpha", 0)],
    }
    raw.update(copy.deepcopy(overrides))
    return raw


def tenant(name: str, index: int, **overrides: Any) -> dict[str, Any]:
    t: dict[str, Any] = {
        "name": name,
        "talosVersion": "v1.12.11",
        "kubernetesVersion": "1.35.4",
        "controlPlane": {"replicas": 1, "cpu": 2, "memoryGib": 4, "diskGib": 20},
        "workerPools": [{"name": "general", "replicas": 1, "cpu": 2, "memoryGib": 4, "diskGib": 30}],
        "podCidr": f"10.{128 + 2 * index}.0.0/16",
        "serviceCidr": f"10.{129 + 2 * index}.0.0/16",
        "adminGroups": ["platform-admins"],
    }
    t.update(overrides)
    return t


def config(raw: dict[str, Any] | None = None, secret_keys: set[str] | frozenset[str] = frozenset()) -> PlatformConfig:
    return parse_config(raw if raw is not None else base_raw(), secret_keys, stack="test")


def plan(raw: dict[str, Any] | None = None, *, stack: str = "test", preview: bool = True,
         secret_keys: frozenset[str] = frozenset()) -> PlanResult:
    return run_offline(StackFile(stack=stack, raw=raw if raw is not None else base_raw(), secret_keys=secret_keys),
                       preview=preview)


def servers(count: int) -> dict:
    """A management cluster of ``count`` servers (one control plane, the others workers): four give
    a three-VM tenant control plane one server per VM plus one for its rolling-update VM
    (stacks.config.tenant_control_plane_problems)."""
    mc = base_raw()["managementCluster"]
    mc["nodes"] = [*mc["nodes"], *({"hostname": f"node-{i}", "ovhServiceName": f"ns10{i}.ip-10-0-0.eu",
                                    "address": f"51.0.0.1{i}", "role": "worker"} for i in range(2, count + 1))]
    return mc


# Whole-program plans that many test modules read: computed once per test process (each xdist
# worker has its own) and shared. Treat them as read-only; a test that changes a config plans it
# itself. A plan is deterministic (tests/test_determinism.py), so sharing one changes no result.
@functools.cache
def stack_plan(stack: str, preview: bool = True) -> PlanResult:
    """The offline plan of ``Pulumi.<stack>.yaml``, as ``python -m offline.plan <stack>`` makes it."""
    return run_offline(read_stack(stack), preview=preview)


@functools.cache
def base_plan() -> PlanResult:
    """The plan of :func:`base_raw` unchanged."""
    return plan(base_raw())


@functools.cache
def stack_plan_of_tenants(stack: str, tenants: tuple[str, ...]) -> PlanResult:
    """One part of a parallel plan: the whole platform and only these tenants."""
    return run_offline(read_stack(stack), tenants=list(tenants))
