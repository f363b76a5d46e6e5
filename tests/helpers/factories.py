"""Config factories and program runners for the tests."""

from __future__ import annotations

import copy
import fcntl
import functools
import gc
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Collection

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
    return planned(StackFile(stack=stack, raw=raw if raw is not None else base_raw(), secret_keys=secret_keys),
                   preview=preview)


def servers(count: int) -> dict:
    """A management cluster of ``count`` servers (one control plane, the others workers): four give
    a three-VM tenant control plane one server per VM plus one for its rolling-update VM
    (stacks.config.tenant_control_plane_problems)."""
    mc = base_raw()["managementCluster"]
    mc["nodes"] = [*mc["nodes"], *({"hostname": f"node-{i}", "ovhServiceName": f"ns10{i}.ip-10-0-0.eu",
                                    "address": f"51.0.0.1{i}", "role": "worker"} for i in range(2, count + 1))]
    return mc


# ---------------------------------------------------------------------------------------------
# Shared plans
# ---------------------------------------------------------------------------------------------
# A plan is a whole program run (about a second): many tests read the plan of the same config.
# Every plan made here is kept for the rest of the test process, left for the other pytest-xdist
# worker of the run (:func:`_from_other_processes`), and handed to every test that asks for the
# same input, identified by everything that decides
# it: the stack file (name, values, secret keys, provider config, secure paths), preview or not,
# the tenants built, and the one environment variable the program reads (an existing cluster's
# KUBECONFIG). A plan is deterministic (tests/test_determinism.py), so sharing changes no result.
#
# Two things could still make a shared plan wrong, and both are guarded:
# * a test that patched the engine or a component would store a plan of patched code, or read one
#   made without its patch: tests/conftest.py switches sharing off while a test's ``monkeypatch``
#   has patched anything, and so does any replaced part of the engine (:func:`_engine`, for
#   module fixtures that patch without the fixture): such a plan is made afresh and not kept;
# * a test that changed a shared plan in place would hand the change to later tests: each plan's
#   fingerprint is taken when it is made and checked again when the session ends
#   (:func:`check_unchanged`, called from tests/conftest.py), which fails the run naming it.

def never_patched() -> bool:
    return False


# "patched": whether the running test's monkeypatch has patched anything (set by tests/conftest.py).
SHARING: dict[str, Callable[[], bool]] = {"patched": never_patched}
_PLANS: dict[str, tuple[PlanResult, bytes]] = {}
# Set by tests/conftest.py when pytest-xdist runs the tests in several processes: a directory of
# this run that they all see, where a plan one process made is left for the others (pickled,
# under a lock per plan, so two processes asking at once plan it once).
SHARED_DIR: dict[str, Path | None] = {"path": None}


def _engine() -> tuple[Any, ...]:
    """The parts of the offline engine tests replace to plan a deployed stack (module fixtures
    patch them without the ``monkeypatch`` fixture): while any differs from the engine as
    imported, plans are not shared."""
    import offline.plan as plan_module
    import stacks.program as program

    return (plan_module.PlanMocks, plan_module.RecordingMonitor, plan_module.PlanMocks.call,
            plan_module.PlanMocks.new_resource, program.main, program.build_environment)


# The engine as imported: this module is imported while the test modules are collected, before
# any test or fixture runs.
_PRISTINE = _engine()


def _pristine() -> bool:
    return _engine() == _PRISTINE


def _key(stack_file: StackFile, preview: bool, tenants: Collection[str] | None) -> str:
    return json.dumps([stack_file.stack, stack_file.raw, sorted(stack_file.secret_keys), stack_file.provider_config,
                       None if stack_file.secure_paths is None else sorted(stack_file.secure_paths), preview,
                       None if tenants is None else list(tenants), os.environ.get("KUBECONFIG")],
                      sort_keys=True, default=repr)


def _fingerprint(result: PlanResult) -> bytes:
    mon = result.monitor
    return hashlib.blake2b(pickle.dumps((result.stack, mon.registrations, mon.stack_outputs),
                                        protocol=5)).digest()


def planned(stack_file: StackFile, *, preview: bool = True, tenants: Collection[str] | None = None,
            share: bool = False) -> PlanResult:
    """``run_offline(stack_file, preview, tenants)``, shared with every other test of this process
    that asks for the same plan (see above). Treat the result as read-only. ``share``: even in a
    test that uses ``monkeypatch`` (see tests/conftest.py, ``command_shares_plans``)."""
    if (SHARING["patched"]() and not share) or not _pristine():
        return run_offline(stack_file, preview=preview, tenants=tenants)
    key = _key(stack_file, preview, tenants)
    hit = _PLANS.get(key)
    if hit is None:
        result = _from_other_processes(key, lambda: run_offline(stack_file, preview=preview, tenants=tenants))
        hit = _PLANS[key] = (result, _fingerprint(result))
        _keep_out_of_collections()
    return hit[0]


def _keep_out_of_collections() -> None:
    """A kept plan lives until the process ends, as millions of objects: moved out of the cyclic
    collector's generations (``gc.freeze``), so that later collections do not scan them again
    and again (which made every later test slower than the plans saved). The garbage of the run
    is collected first, so none of it is frozen with the plan."""
    gc.collect()
    gc.freeze()


def _from_other_processes(key: str, make: Callable[[], PlanResult]) -> PlanResult:
    """The plan another test process of this run made and left in :data:`SHARED_DIR`, or
    ``make()``'s, left there for the others. An error (a refused config) leaves nothing."""
    shared = SHARED_DIR["path"]
    if shared is None:
        return make()
    digest = hashlib.sha256(key.encode()).hexdigest()
    data = shared / f"{digest}.pickle"
    with open(shared / f"{digest}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if data.exists():
            with open(data, "rb") as fh:
                return pickle.load(fh)
        result = make()
        partial = data.with_suffix(f".{os.getpid()}.partial")
        with open(partial, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, data)
        return result


def check_unchanged() -> list[str]:
    """The shared plans some test changed in place (stack and the start of the plan's key)."""
    return [f"{result.stack} plan ({key[:120]}...)" for key, (result, fp) in _PLANS.items()
            if _fingerprint(result) != fp]


@functools.cache
def _stack_file(stack: str) -> StackFile:
    return read_stack(stack)


def stack_plan(stack: str, preview: bool = True) -> PlanResult:
    """The offline plan of ``Pulumi.<stack>.yaml``, as ``python -m offline.plan <stack>`` makes it."""
    return planned(_stack_file(stack), preview=preview)


def base_plan() -> PlanResult:
    """The plan of :func:`base_raw` unchanged."""
    return plan(base_raw())


def stack_plan_of_tenants(stack: str, tenants: tuple[str, ...]) -> PlanResult:
    """One part of a parallel plan: the whole platform and only these tenants."""
    return planned(_stack_file(stack), tenants=list(tenants))
