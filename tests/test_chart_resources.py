"""Every pod a platform Helm release renders asks for cpu and memory and has a memory limit.

The charts cannot be rendered offline (no chart archives here, and helm.v3.Release renders only
at deploy time), so the check runs over the values: for every release of the stack's plan, every
place of the chart's values.yaml that holds a container's resources (a ``resources`` or
``*Resources`` key) must, merged with the program's values as Helm merges them, request cpu and
memory and limit memory -- unless the chart does not render that container with these values,
which OFF states per place as a condition over the merged values (from the chart templates at the
pinned version). A chart bump that adds a component therefore fails here until it is sized or
shown to be off; enabling a component (e.g. Dex) fails until it is sized. Subchart containers,
absent from the parent's values.yaml, are listed in SUBCHARTS with when they are rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers.edge_support import HELM_RELEASE
from tests.helpers.schemas import _merge, chart_defaults
from tests.helpers.factories import stack_plan

Values = dict[str, Any]


def _get(values: Values, path: str, default: Any = None) -> Any:
    cur: Any = values
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _off(path: str) -> Callable[[Values], bool]:
    """Off when ``<path>`` is false (the usual ``enabled`` switch)."""
    return lambda v: _get(v, path) is False


# Places the chart does not render with the given values (condition true = not rendered).
OFF: dict[str, dict[str, Callable[[Values], bool]]] = {
    "cilium": {
        # Hubble certificates come from the chart itself (method helm); certgen runs only as a CronJob.
        "certgen.resources": lambda v: _get(v, "hubble.tls.auto.method") != "cronJob",
        "encryption.ztunnel.resources": _off("encryption.enabled"),
        "nodeinit.resources": _off("nodeinit.enabled"),
        "preflight.resources": _off("preflight.enabled"),
        "cgroup.autoMount.resources": _off("cgroup.autoMount.enabled"),
        "clustermesh.mcsapi.corednsAutoConfigure.resources": _off("clustermesh.mcsapi.enabled"),
        "clustermesh.apiserver.resources": _off("clustermesh.useAPIServer"),
        "clustermesh.apiserver.etcd.resources": _off("clustermesh.useAPIServer"),
        "clustermesh.apiserver.etcd.init.resources": _off("clustermesh.useAPIServer"),
        "clustermesh.apiserver.kvstoremesh.resources": _off("clustermesh.useAPIServer"),
        "authentication.mutual.spire.install.agent.resources": _off("authentication.mutual.spire.enabled"),
        "authentication.mutual.spire.install.server.resources": _off("authentication.mutual.spire.enabled"),
        "hubble.relay.resources": lambda v: _get(v, "hubble.enabled") is False or _get(v, "hubble.relay.enabled") is False,
        "hubble.ui.backend.resources": lambda v: _get(v, "hubble.enabled") is False or _get(v, "hubble.ui.enabled") is False,
        "hubble.ui.frontend.resources": lambda v: _get(v, "hubble.enabled") is False or _get(v, "hubble.ui.enabled") is False,
        # null = on for new installations (values.yaml envoy.enabled).
        "envoy.resources": _off("envoy.enabled"),
        "operator.resources": _off("operator.enabled"),
    },
    "argo-cd": {
        "dex.resources": _off("dex.enabled"),
        "dex.initImage.resources": _off("dex.enabled"),
        # templates/redis/deployment.yaml: only with redis.enabled and without redis-ha.
        "redis.resources": lambda v: _get(v, "redis.enabled") is False or _get(v, "redis-ha.enabled") is True,
        "redis.exporter.resources": lambda v: _get(v, "redis.enabled") is False or _get(v, "redis-ha.enabled") is True
        or _get(v, "redis.exporter.enabled") is False,
        "redisSecretInit.resources": _off("redisSecretInit.enabled"),
        "server.extensions.resources": _off("server.extensions.enabled"),
        "commitServer.resources": _off("commitServer.enabled"),
        "notifications.resources": _off("notifications.enabled"),
    },
    "authentik": {"geoip.resources": _off("geoip.enabled")},
    "cert-manager": {
        "cainjector.resources": _off("cainjector.enabled"),
        "startupapicheck.resources": _off("startupapicheck.enabled"),
    },
    "external-dns": {"provider.webhook.resources": lambda v: _get(v, "provider.name") != "webhook"},
    "vault": {
        "injector.resources": _off("injector.enabled"),
        "csi.resources": _off("csi.enabled"),
        "csi.agent.resources": _off("csi.enabled"),
    },
}

# Subchart containers (not in the parent's values.yaml): place -> rendered when.
SUBCHARTS: dict[str, dict[str, Callable[[Values], bool]]] = {
    # redis-ha 4.38.0: statefulset (redis, sentinel, split-brain-fix, config-init) and haproxy
    # (haproxy, config-init); its exporter is off in argo-cd's values and checked by OFF-like rule.
    "argo-cd": {
        p: (lambda v: _get(v, "redis-ha.enabled") is True)
        for p in ("redis-ha.redis.resources", "redis-ha.sentinel.resources",
                  "redis-ha.splitBrainDetection.resources", "redis-ha.init.resources",
                  "redis-ha.haproxy.resources", "redis-ha.haproxy.init.resources")
    },
    # Bitnami postgresql 18.8.11: the primary StatefulSet.
    "authentik": {"postgresql.primary.resources": lambda v: _get(v, "postgresql.enabled") is True},
}

# Charts whose `resources` maps container names to resources.
PER_CONTAINER = {"cluster-api-operator": {"resources"}}


def _resource_places(defaults: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(defaults, dict):
        for key, value in defaults.items():
            path = f"{prefix}{key}"
            if (key == "resources" or key.endswith("Resources")) and isinstance(value, dict):
                yield path
            else:
                yield from _resource_places(value, f"{path}.")


def _problems(resources: Any) -> list[str]:
    if not isinstance(resources, dict):
        return ["no resources"]
    need = [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")]
    return [f"{a}.{b}" for a, b in need if not (resources.get(a) or {}).get(b)]


@pytest.fixture(scope="module", params=["prod", "dev"])
def releases(request) -> list[tuple[str, str, Values]]:
    monitor = stack_plan(request.param, preview=True).monitor
    out = []
    for reg in monitor.of_type(HELM_RELEASE):
        out.append((reg.name, reg.input("chart"), reg.input("values") or {}))
    assert out
    return out


def test_every_container_of_every_release_requests_cpu_and_memory(releases):
    missing: list[str] = []
    for name, chart, values in releases:
        chart = chart.rsplit("/", 1)[-1]  # OCI charts are named by URL
        defaults = chart_defaults(chart)
        merged = _merge(defaults, values)
        off = OFF.get(chart, {})
        for place in _resource_places(defaults):
            if place in off and off[place](merged):
                continue
            value = _get(merged, place)
            if place in PER_CONTAINER.get(chart, set()):
                assert value, f"{name}: {place} names no container"
                missing += [f"{name}: {place}.{c} sets no {', '.join(p)}"
                            for c, r in value.items() if (p := _problems(r))]
            elif problems := _problems(value):
                missing.append(f"{name}: {place} sets no {', '.join(problems)}")
        for place, rendered in SUBCHARTS.get(chart, {}).items():
            if rendered(merged) and (problems := _problems(_get(merged, place))):
                missing.append(f"{name}: {place} sets no {', '.join(problems)}")
    assert not missing, "\n".join(missing)


def test_every_off_condition_names_a_place_the_chart_has():
    """OFF stays in step with the charts: a renamed or removed place must not linger."""
    for chart, places in OFF.items():
        known = set(_resource_places(chart_defaults(chart)))
        assert set(places) <= known, (chart, sorted(set(places) - known))
