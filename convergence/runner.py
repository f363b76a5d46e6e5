"""Run every convergence rule over a plan document, per cluster, and report."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from convergence import addresses, flows, names, pod_security, quotas, references, storage
from convergence.model import Plan, Violation, load


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    check: Callable[[Plan, Mapping[str, Any] | None], Iterator[Violation]]


RULES: tuple[Rule, ...] = (
    Rule(storage.RULE, "Every claim resolves to a StorageClass of its cluster (or its default) and waits for the "
         "class's provisioner.", storage.check),
    Rule(names.RULE, "Every hostname served or connected to is published by an ExternalDNS source that reads it, "
         "inside the managed zone; whoever connects during the deployment waits for ExternalDNS.", names.check),
    Rule(quotas.RULE, "What will exist in a namespace (program and controller objects, pools at full size plus "
         "surge) fits its ResourceQuota.", quotas.check),
    Rule(addresses.RULE, "Every LoadBalancer Service gets an address: pinned addresses inside a pool and unique, "
         "pools large enough, no node address in a pool.", addresses.check),
    Rule(pod_security.RULE, "Every pod template the program renders passes its namespace's Pod Security level; "
         "privileged namespaces only from the allow-list.", pod_security.check),
    Rule(flows.RULE, "The network flows the services need are allowed by the policies in force; no cross-tenant "
         "flow is.", flows.check),
    Rule(references.RULE, "Every referenced Secret/ConfigMap/ServiceAccount/PVC is created by the program or a "
         "known controller in that namespace.", references.check),
)


def run(doc: Mapping[str, Any], context: Mapping[str, Any] | None = None,
        rules: Iterable[Rule] | None = None) -> list[Violation]:
    """Every convergence violation of a plan document, sorted."""
    plan = load(doc)
    out: set[Violation] = set()
    for rule in RULES if rules is None else rules:
        out.update(rule.check(plan, context))
    return sorted(out)


def report(violations: Iterable[Violation]) -> dict[str, Any]:
    """The convergence.json document."""
    vs = sorted(violations)
    return {
        "rules": [{"id": r.id, "description": r.description} for r in RULES],
        "violations": [v.to_dict() for v in vs],
        "count": len(vs),
    }
