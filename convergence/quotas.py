"""Rule ``quotas``: what will exist in a namespace fits its ResourceQuota.

Per namespace with a ResourceQuota, the sum over every object that will exist there at the same
time — the program's (Services, PVCs, workloads with their replicas) and the controllers'
(CAPK's ``<cluster>-lb``, CDI's PVCs and importer pods, virt-launcher pods, each pool at full size
plus its rolling-update surge; see :mod:`convergence.controllers`) — must fit every ``hard``
entry. The quota admission plugin refuses an object that would exceed it, and a controller
retrying a refused object never converges (issue 14: CAPK's Service refused, no API endpoint).

Containers without requests get the namespace's LimitRange ``defaultRequest`` (as the LimitRanger
admission plugin does before the quota is charged).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from convergence.controllers import PHASES, quantity
from convergence.model import Obj, Plan, Violation, get, pod_template

RULE = "quotas"


def _container_requests(containers: list[Any], default: Mapping[str, Any]) -> dict[str, float]:
    total: dict[str, float] = defaultdict(float)
    for c in containers:
        if not isinstance(c, Mapping):
            continue
        req = get(c, "resources", "requests") or {}
        lim = get(c, "resources", "limits") or {}
        for res in ("cpu", "memory"):
            # Kubernetes defaults a missing request to the limit, then to the LimitRange default.
            q = quantity(req.get(res)) if res in req else quantity(lim.get(res)) if res in lim else quantity(default.get(res))
            if q is not None:
                total[res] += q
    return total


def pod_requests(spec: Mapping[str, Any], default: Mapping[str, Any]) -> dict[str, float]:
    """A pod's effective requests: the sum of its containers, or the largest init container if
    larger (Kubernetes' effective request)."""
    main = _container_requests(spec.get("containers") or [], default)
    for ic in spec.get("initContainers") or []:
        one = _container_requests([ic], default)
        for res, q in one.items():
            main[res] = max(main.get(res, 0.0), q)
    return dict(main)


def usage(objs: list[Obj], default: Mapping[str, Any], phase: str = "running") -> dict[str, float]:
    """What the objects of one namespace charge against a quota in one phase, by quota key."""
    used: dict[str, float] = defaultdict(float)
    for o in objs:
        n = o.count(phase)
        if not n:
            continue
        if o.kind == "Service":
            used["services"] += n
            used["count/services"] += n
            if o.spec.get("type") == "LoadBalancer":
                used["services.loadbalancers"] += n
            if o.spec.get("type") == "NodePort":
                used["services.nodeports"] += n
        elif o.kind == "PersistentVolumeClaim":
            size = quantity(get(o.spec, "resources", "requests", "storage")) or 0.0
            used["persistentvolumeclaims"] += n
            used["count/persistentvolumeclaims"] += n
            used["requests.storage"] += n * size
            sc = o.spec.get("storageClassName")
            if isinstance(sc, str):
                used[f"{sc}.storageclass.storage.k8s.io/requests.storage"] += n * size
                used[f"{sc}.storageclass.storage.k8s.io/persistentvolumeclaims"] += n
        elif o.kind in ("Secret", "ConfigMap", "ServiceAccount"):
            used[f"count/{o.kind.lower()}s"] += 1
            if o.kind in ("Secret", "ConfigMap"):
                used[f"{o.kind.lower()}s"] += 1
        tmpl = pod_template(o)
        if tmpl is not None and o.kind != "DaemonSet":
            req = pod_requests(tmpl.get("spec") or {}, default)
            used["pods"] += n
            used["count/pods"] += n
            for res, q in req.items():
                used[f"requests.{res}"] += n * q
                used[res] += n * q
        if o.kind == "StatefulSet":
            for t in o.spec.get("volumeClaimTemplates") or []:
                size = quantity(get(t, "spec", "resources", "requests", "storage")) or 0.0
                used["persistentvolumeclaims"] += n
                used["requests.storage"] += n * size
    return dict(used)


PHASE_TEXT = {
    "running": "every pool runs at full size",
    "surge-importing": "every pool rolls (surge machines importing their disks, old machines running)",
    "surged": "every pool rolls (surge machines running)",
}


def _fmt(key: str, value: float) -> str:
    if key.endswith("cpu"):
        return f"{value * 1000:.0f}m"
    if "storage" in key:
        return f"{value / 2**30:g}Gi"
    if "memory" in key:
        return f"{value / 2**20:.0f}Mi"
    return f"{value:g}"


def check(plan: Plan, context: Mapping[str, Any] | None = None) -> Iterator[Violation]:
    by_ns: dict[tuple[str, str], list[Obj]] = defaultdict(list)
    quotas: list[Obj] = []
    defaults: dict[tuple[str, str], dict[str, Any]] = {}
    for o in plan.objects:
        by_ns[(o.cluster, o.namespace)].append(o)
        if o.kind == "ResourceQuota":
            quotas.append(o)
        elif o.kind == "LimitRange":
            for lim in o.spec.get("limits") or []:
                if lim.get("type") == "Container" and isinstance(lim.get("defaultRequest"), Mapping):
                    defaults[(o.cluster, o.namespace)] = dict(lim["defaultRequest"])
    for q in quotas:
        key = (q.cluster, q.namespace)
        default = defaults.get(key, {})
        phases = PHASES if any(o.phases for o in by_ns[key]) else PHASES[:1]
        hard = {entry: quantity(limit) for entry, limit in (q.spec.get("hard") or {}).items()}
        reported: set[str] = set()
        for phase in phases:
            used = usage(by_ns[key], default, phase)
            for entry, limit in sorted(hard.items()):
                have = used.get(entry, 0.0)
                if limit is None or entry in reported or have <= limit + 1e-9:
                    continue
                reported.add(entry)
                culprits = sorted({f"{o.kind} {o.name}" + (f" ×{o.count(phase)}" if o.count(phase) > 1 else "")
                                   + (f" [{o.source}]" if o.source != "program" else "")
                                   for o in by_ns[key] if usage([o], default, phase).get(entry)})
                yield Violation(RULE, q.cluster, q.urn,
                                f"ResourceQuota {q.namespace}/{q.name}: {entry} hard {q.spec['hard'][entry]} but "
                                f"{_fmt(entry, have)} will exist when {PHASE_TEXT[phase]}: {', '.join(culprits)}")
