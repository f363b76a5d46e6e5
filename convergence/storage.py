"""Rule ``storage``: every claim resolves to a StorageClass of its cluster and waits for its
provisioner.

A claim is a PersistentVolumeClaim (the program's, or one CDI creates for a VM disk), a
StatefulSet ``volumeClaimTemplates`` entry, or a chart's persistence setting. A claim without a
class uses the cluster's default class (``storageclass.kubernetes.io/is-default-class: "true"``);
with no default it stays Pending for ever — and so does every ``helm --wait`` and readiness gate
behind it. The class must be one the program creates on that cluster, and the resource that
makes the claim must wait (graph path) for the component that runs the class's provisioner, so
that on a brand-new cluster the provisioner is there when the claim is made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from convergence.model import Obj, Plan, Violation, get, opaque

RULE = "storage"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


@dataclass(frozen=True)
class Claim:
    cluster: str
    urn: str  # the program resource that makes the claim
    what: str
    storage_class: str | None  # None: the default class


# Chart persistence settings the program's charts read: (chart, path to the setting, enabled when
# the values say nothing, path that must be true for the setting to matter).
# Ref: hashicorp/vault-helm values.yaml (server.dataStorage.enabled: true, storageClass: null,
# server.auditStorage.enabled: false) @ v0.34.1; goauthentik/helm charts/authentik/values.yaml
# (postgresql.enabled, postgresql.primary.persistence) @ authentik-2026.8.0.
CHART_PERSISTENCE: tuple[tuple[str, tuple[str, ...], bool, tuple[str, ...]], ...] = (
    ("vault", ("server", "dataStorage"), True, ()),
    ("vault", ("server", "auditStorage"), False, ()),
    ("authentik", ("postgresql", "primary", "persistence"), True, ("postgresql", "enabled")),
)
GLOBAL_CLASS_KEYS = (("global", "defaultStorageClass"), ("global", "storageClass"))


def _class_of(setting: Mapping[str, Any]) -> str | None:
    for key in ("storageClass", "storageClassName"):
        value = setting.get(key)
        if isinstance(value, str) and value and not opaque(value):
            return value
    return None


def claims(plan: Plan) -> Iterator[Claim]:
    for o in plan.of_kind("PersistentVolumeClaim"):
        yield Claim(o.cluster, o.urn, f"PersistentVolumeClaim {o.namespace}/{o.name}"
                    + (f" (created by {o.source})" if o.source != "program" else ""), o.spec.get("storageClassName"))
    for o in plan.of_kind("StatefulSet"):
        for t in o.spec.get("volumeClaimTemplates") or []:
            yield Claim(o.cluster, o.urn, f"StatefulSet {o.namespace}/{o.name} volumeClaimTemplates "
                        f"'{get(t, 'metadata', 'name')}'", get(t, "spec", "storageClassName"))
    for cluster, r in plan.releases:
        inputs = r.get("inputs") or {}
        chart = inputs.get("chart")
        values = inputs.get("values") if isinstance(inputs.get("values"), Mapping) else {}
        global_class = next((c for p in GLOBAL_CLASS_KEYS if isinstance(c := get(values, *p), str) and c), None)
        for c, path, default_on, gate in CHART_PERSISTENCE:
            if chart != c or (gate and get(values, *gate) is False):
                continue
            setting = get(values, *path)
            setting = setting if isinstance(setting, Mapping) else {}
            enabled = setting.get("enabled", default_on)
            if enabled is True:
                yield Claim(cluster, str(r.get("urn")), f"Helm release {r.get('name')} values.{'.'.join(path)}",
                            _class_of(setting) or global_class)


def check(plan: Plan, context: Mapping[str, Any] | None = None) -> Iterator[Violation]:
    # Classes the stack config declares to exist already on a cluster (an existing cluster's own):
    # claims may name them, and there is no provisioner of the program's to wait for.
    declared: Mapping[str, Any] = (context or {}).get("declaredStorageClasses") or {}
    classes: dict[str, dict[str, Obj]] = {}
    for sc in plan.of_kind("StorageClass"):
        classes.setdefault(sc.cluster, {})[sc.name] = sc
    for claim in claims(plan):
        own = classes.get(claim.cluster, {})
        defaults = sorted(n for n, sc in own.items() if str(sc.annotations.get(DEFAULT_CLASS)) == "true")
        name = claim.storage_class
        if name is None:
            if not defaults:
                yield Violation(RULE, claim.cluster, claim.urn,
                                f"{claim.what} names no StorageClass and the cluster has no default class "
                                f"(classes: {', '.join(sorted(own)) or 'none'}): it stays Pending; name a class the "
                                "program creates")
                continue
            name = defaults[0]
        sc = own.get(name)
        if sc is None and name in (declared.get(claim.cluster) or ()):
            continue
        if sc is None:
            yield Violation(RULE, claim.cluster, claim.urn,
                            f"{claim.what} uses StorageClass '{name}', which the program does not create on this "
                            f"cluster (classes: {', '.join(sorted(own)) or 'none'})")
            continue
        provisioner = plan.records.get(sc.urn, {}).get("parent") or sc.urn
        if plan.records.get(str(provisioner), {}).get("type") == "pulumi:pulumi:Stack":
            provisioner = sc.urn
        if not plan.waits_for(claim.urn, [str(provisioner)]):
            yield Violation(RULE, claim.cluster, claim.urn,
                            f"{claim.what} uses StorageClass '{name}' but does not wait for its provisioner "
                            f"({sc.spec.get('provisioner') or sc.body.get('provisioner')}, "
                            f"{str(provisioner).rsplit('::', 1)[-1]}): add depends_on on it")
