"""The whole plan as the convergence rules read it: objects per cluster, and the wait graph.

The input is the plan document (``plan.json``: ``{"resources": [record, ...], "outputs": ...}``,
records as ``offline.plan.resource_record`` writes them, the same shape ``policy/`` reads). Every
Kubernetes object belongs to the cluster of its provider: the management cluster (the stack's
``weebo4cp`` provider, or any provider that is not a tenant's) or a tenant (the provider a
``weebo:tenants:TenantCluster`` component owns). Objects that known controllers will create are
added by :mod:`convergence.controllers` and carry the controller's name in ``source``.

Only the standard library and ``policy.rules`` (itself standard-library only) are imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.rules import UNKNOWN, SECRET, k8s_kind

MANAGEMENT = "management"
TENANT_COMPONENT = "weebo:tenants:TenantCluster"
K8S_PROVIDER = "pulumi:providers:kubernetes"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
PROGRAM = "program"


@dataclass(frozen=True, order=True)
class Violation:
    """One place where a real cluster would not converge."""

    rule: str
    cluster: str
    urn: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "cluster": self.cluster, "urn": self.urn, "message": self.message}

    def render(self) -> str:
        return f"[convergence] {self.rule} ({self.cluster}): {self.urn or '(stack)'}\n    {self.message}"


def opaque(value: Any) -> bool:
    return isinstance(value, str) and value in (SECRET, UNKNOWN)


def get(obj: Any, *path: str | int) -> Any:
    for p in path:
        if isinstance(p, int):
            if not isinstance(obj, list) or p >= len(obj):
                return None
        elif not isinstance(obj, Mapping):
            return None
        obj = obj[p] if isinstance(p, int) else obj.get(p)
    return obj


@dataclass
class Obj:
    """A Kubernetes object that will exist on a cluster (rendered by the program, or created by
    a controller from what the program rendered)."""

    cluster: str
    api_version: str
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str
    body: Mapping[str, Any]  # the object (``inputs`` for program objects)
    urn: str  # the program resource it comes from (for controller objects: the one that causes it)
    source: str = PROGRAM  # PROGRAM, or "<controller> (<upstream file>)"
    replicas: int = 1  # how many of it exist (workload replicas: pods), in every phase unless ``phases``
    # For controller objects whose number changes during a rolling update: phase -> how many
    # exist then (see convergence.controllers.PHASES).
    phases: Mapping[str, int] | None = None

    def count(self, phase: str) -> int:
        return self.replicas if self.phases is None else self.phases.get(phase, 0)

    @property
    def metadata(self) -> Mapping[str, Any]:
        md = self.body.get("metadata")
        return md if isinstance(md, Mapping) else {}

    @property
    def labels(self) -> Mapping[str, Any]:
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, Mapping) else {}

    @property
    def annotations(self) -> Mapping[str, Any]:
        ann = self.metadata.get("annotations")
        return ann if isinstance(ann, Mapping) else {}

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, Mapping) else {}


@dataclass
class Plan:
    """An index of a plan document. Build it with :func:`load`."""

    records: dict[str, Mapping[str, Any]]
    cluster_of_provider: dict[str, str]
    objects: list[Obj] = field(default_factory=list)
    releases: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)  # (cluster, record)
    _reverse: dict[str, list[str]] = field(default_factory=dict)
    _children: dict[str, list[str]] = field(default_factory=dict)
    _waiters: dict[frozenset[str], set[str]] = field(default_factory=dict)
    # (cluster or None, kind or None) -> objects; built once by load(), so that per-cluster
    # questions cost the cluster's objects, not the whole plan's (linear in tenants).
    _index: dict[tuple[str | None, str | None], list[Obj]] = field(default_factory=dict)

    # -- clusters ------------------------------------------------------------------------------
    @property
    def clusters(self) -> list[str]:
        return sorted(set(self.cluster_of_provider.values()) | {o.cluster for o in self.objects})

    def cluster(self, record: Mapping[str, Any]) -> str:
        return self.cluster_of_provider.get(str(record.get("provider") or ""), MANAGEMENT)

    def index(self) -> None:
        self._index = {}
        for o in self.objects:
            for key in ((o.cluster, o.kind), (o.cluster, None), (None, o.kind)):
                self._index.setdefault(key, []).append(o)

    def on(self, cluster: str, kind: str | None = None) -> Iterator[Obj]:
        yield from self._index.get((cluster, kind), ())

    def of_kind(self, *kinds: str) -> Iterator[Obj]:
        for kind in kinds:
            yield from self._index.get((None, kind), ())

    def namespaces(self, cluster: str) -> dict[str, Obj]:
        return {o.name: o for o in self.on(cluster, "Namespace")}

    def releases_on(self, cluster: str) -> Iterator[Mapping[str, Any]]:
        for c, r in self.releases:
            if c == cluster:
                yield r

    # -- the wait graph --------------------------------------------------------------------------
    def descendants(self, urn: str) -> set[str]:
        out: set[str] = set()
        todo = [urn]
        while todo:
            for child in self._children.get(todo.pop(), ()):
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out

    def waiters(self, targets: Iterable[str]) -> set[str]:
        """Every resource that waits for one of ``targets`` (a component counts as all of its
        descendants), directly or through others — dependencies, property dependencies and
        providers, as the engine orders a deployment. Parents are not followed: a child does not
        wait for what its component waits for. One reverse walk per target set (cached), so a rule
        asking about every claim of a cluster stays linear in the plan."""
        key = frozenset(targets)
        if key in self._waiters:
            return self._waiters[key]
        start: set[str] = set()
        for t in key:
            start.add(t)
            start |= self.descendants(t)
        seen: set[str] = set()
        todo = list(start)
        while todo:
            cur = todo.pop()
            for w in self._reverse.get(cur, ()):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        self._waiters[key] = seen
        return seen

    def waits_for(self, urn: str, targets: Iterable[str]) -> bool:
        return urn in self.waiters(targets)

    def component_of(self, urn: str, type_: str) -> str | None:
        """The nearest ancestor of ``urn`` of component type ``type_``."""
        cur = self.records.get(urn)
        while cur is not None:
            parent = str(cur.get("parent") or "")
            rec = self.records.get(parent)
            if rec is None:
                return None
            if rec.get("type") == type_:
                return parent
            cur = rec
        return None


def _edges(record: Mapping[str, Any]) -> set[str]:
    edges = set(record.get("dependencies") or ())
    for deps in (record.get("propertyDependencies") or {}).values():
        edges |= set(deps)
    if record.get("provider"):
        edges.add(str(record["provider"]))
    return edges


def load(doc: Mapping[str, Any]) -> Plan:
    """Index a plan document and add the controllers' objects."""
    from convergence import controllers

    records = {str(r["urn"]): r for r in doc.get("resources", []) if isinstance(r, Mapping) and r.get("urn")}
    cluster_of_provider: dict[str, str] = {}
    for urn, r in records.items():
        if r.get("type") != K8S_PROVIDER:
            continue
        parent = records.get(str(r.get("parent") or ""))
        if parent is not None and parent.get("type") == TENANT_COMPONENT:
            cluster_of_provider[urn] = f"tenant {parent.get('name')}"
        else:
            cluster_of_provider[urn] = MANAGEMENT
    plan = Plan(records=records, cluster_of_provider=cluster_of_provider)
    for urn, r in records.items():
        for e in _edges(r):
            plan._reverse.setdefault(e, []).append(urn)
        if r.get("parent"):
            plan._children.setdefault(str(r["parent"]), []).append(urn)
        type_ = str(r.get("type", ""))
        if not r.get("custom") or not type_.startswith("kubernetes:") or type_.startswith("pulumi:providers:"):
            continue
        inputs = r.get("inputs") or {}
        cluster = plan.cluster(r)
        if type_ == HELM_RELEASE:
            plan.releases.append((cluster, r))
            continue
        kk = k8s_kind(type_)
        if kk is None or not isinstance(inputs, Mapping):
            continue
        md = inputs.get("metadata") if isinstance(inputs.get("metadata"), Mapping) else {}
        plan.objects.append(Obj(
            cluster=cluster, api_version=str(inputs.get("apiVersion", "")), kind=kk[1],
            namespace=str(md.get("namespace") or ("" if kk[1] in CLUSTER_SCOPED else "default")),
            name=str(md.get("name") or r.get("name")), body=inputs, urn=urn,
            replicas=_replicas(kk[1], inputs)))
    plan.index()
    plan.objects.extend(controllers.objects(plan))
    plan.index()
    return plan


def _replicas(kind: str, inputs: Mapping[str, Any]) -> int:
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        n = get(inputs, "spec", "replicas")
        return n if isinstance(n, int) else 1
    return 1


CLUSTER_SCOPED = frozenset({
    "Namespace", "StorageClass", "ClusterRole", "ClusterRoleBinding", "CSIDriver", "ClusterIssuer",
    "CiliumLoadBalancerIPPool", "CiliumL2AnnouncementPolicy", "CiliumClusterwideNetworkPolicy", "KubeVirt", "CDI",
    "CustomResourceDefinition", "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
})

WORKLOAD_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})


def pod_template(o: Obj) -> Mapping[str, Any] | None:
    """(metadata, spec) of the pods a workload makes, as one ``{"metadata", "spec"}`` map."""
    if o.kind not in WORKLOAD_KINDS:
        return None
    if o.kind == "Pod":
        return {"metadata": o.metadata, "spec": o.spec}
    t = get(o.spec, "jobTemplate", "spec", "template") if o.kind == "CronJob" else o.spec.get("template")
    return t if isinstance(t, Mapping) else None
