"""Helpers for the Cilium / cert-manager / Traefik tests: run a few components under the mock
engine (without the whole program) and look things up in the recorded graph."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.config import PROJECT
from offline.mocks import PlanMocks, RecordingMonitor, Registration

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def run_components(build: Callable[[k8s.Provider], Any], *, preview: bool = False) -> RecordingMonitor:
    """Register what ``build(provider)`` creates under mocks; return the recording monitor."""
    from pulumi.runtime import settings as runtime_settings

    mocks = PlanMocks(preview=preview)
    monitor = RecordingMonitor(mocks, project=PROJECT, stack="unit")
    runtime_settings.ROOT.set(None)  # a fresh root Stack per program (the SDK keeps it in this context variable)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="unit", preview=preview, monitor=monitor)

    @pulumi.runtime.test
    def program() -> None:
        build(k8s.Provider("unit", kubeconfig="{}"))

    program()
    return monitor


def custom_resources(monitor: RecordingMonitor, kind: str) -> list[Registration]:
    return [r for r in monitor.registrations.values() if r.custom and r.type.endswith(f":{kind}")]


def as_object(reg: Registration) -> dict[str, Any]:
    """A registered CustomResource as the manifest the API server receives."""
    inputs = reg.input()
    return {k: inputs[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in inputs}


def release(monitor: RecordingMonitor, name: str) -> Registration:
    found = [r for r in monitor.of_type(HELM_RELEASE) if r.name == name]
    assert len(found) == 1, f"{len(found)} Helm releases named {name!r}"
    return found[0]
