"""Rule ``references``: every Secret, ConfigMap, ServiceAccount and PVC something references exists.

A pod whose volume, ``env``/``envFrom`` or service account names a missing object never starts
(``CreateContainerConfigError``/``FailedMount``, or the ReplicaSet cannot create it); a custom
resource whose ``secretRef`` is missing never becomes Ready. Each reference must resolve to an
object the program creates in that namespace of that cluster, or one a named controller creates
(:mod:`convergence.controllers`: cert-manager's certificate Secrets, CAPI's ``<cluster>-kubeconfig``,
CABPT's ``<cluster>-talosconfig``, the ``default`` ServiceAccount, the charts' own objects).
References marked ``optional: true`` are skipped.

Read from: the program's pod templates; Helm values (``existingSecret``, ``secretKeyRef``,
``configMapKeyRef``, volumes, Argo CD's ``$<secret>:<key>`` references in ``configs.cm``); and custom
resources (cert-manager issuers' ``tsigSecretSecretRef``/``ca.secretName``, Traefik's
``ServersTransport``/``TLSStore``/``IngressRoute`` TLS Secrets, the Cluster API operator's
``configSecret``, CAPK's ``infraClusterSecretRef``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from convergence.model import Obj, Plan, Violation, get, opaque, pod_template

RULE = "references"
_ARGO_SECRET = re.compile(r"\$([a-z0-9][a-z0-9.-]*):[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Ref:
    cluster: str
    urn: str
    where: str
    kind: str
    namespace: str
    name: str


def _pod_refs(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, name, where) referenced by a pod spec."""
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if isinstance(sa, str):
        yield "ServiceAccount", sa, "serviceAccountName"
    for i, s in enumerate(spec.get("imagePullSecrets") or []):
        if isinstance(s, Mapping) and isinstance(s.get("name"), str):
            yield "Secret", s["name"], f"imagePullSecrets[{i}]"
    for v in spec.get("volumes") or []:
        if not isinstance(v, Mapping):
            continue
        yield from _volume_refs(v)
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, Mapping):
                continue
            for e in c.get("env") or []:
                for kind, ref_key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    ref = get(e, "valueFrom", ref_key)
                    if isinstance(ref, Mapping) and not ref.get("optional") and isinstance(ref.get("name"), str):
                        yield kind, ref["name"], f"{c.get('name')} env {e.get('name')}"
            for e in c.get("envFrom") or []:
                for kind, ref_key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    ref = e.get(ref_key) if isinstance(e, Mapping) else None
                    if isinstance(ref, Mapping) and not ref.get("optional") and isinstance(ref.get("name"), str):
                        yield kind, ref["name"], f"{c.get('name')} envFrom"


def _volume_refs(v: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    where = f"volume {v.get('name')}"
    sec = v.get("secret")
    if isinstance(sec, Mapping) and not sec.get("optional") and isinstance(sec.get("secretName"), str):
        yield "Secret", sec["secretName"], where
    cm = v.get("configMap")
    if isinstance(cm, Mapping) and not cm.get("optional") and isinstance(cm.get("name"), str):
        yield "ConfigMap", cm["name"], where
    pvc = v.get("persistentVolumeClaim")
    if isinstance(pvc, Mapping) and isinstance(pvc.get("claimName"), str):
        yield "PersistentVolumeClaim", pvc["claimName"], where
    for src in get(v, "projected", "sources") or []:
        for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
            ref = src.get(key) if isinstance(src, Mapping) else None
            if isinstance(ref, Mapping) and not ref.get("optional") and isinstance(ref.get("name"), str):
                yield kind, ref["name"], where


def _values_refs(values: Any, path: str = "values") -> Iterator[tuple[str, str, str]]:
    if isinstance(values, Mapping):
        for k, v in values.items():
            p = f"{path}.{k}"
            if k == "existingSecret" and isinstance(v, str) and v:
                yield "Secret", v, p
            elif k in ("secretKeyRef", "configMapKeyRef") and isinstance(v, Mapping) and not v.get("optional") \
                    and isinstance(v.get("name"), str):
                yield ("Secret" if k == "secretKeyRef" else "ConfigMap"), v["name"], p
            elif k == "volumes" and isinstance(v, list):
                for vol in v:
                    if isinstance(vol, Mapping):
                        yield from ((kind, name, f"{p} {where}") for kind, name, where in _volume_refs(vol))
            else:
                yield from _values_refs(v, p)
    elif isinstance(values, list):
        for i, v in enumerate(values):
            yield from _values_refs(v, f"{path}[{i}]")


def references(plan: Plan) -> Iterator[Ref]:
    cm_ns = next((str(r["inputs"].get("namespace")) for _, r in plan.releases
                  if (r.get("inputs") or {}).get("chart") == "cert-manager"), "cert-manager")
    for o in plan.objects:
        if o.source != "program":
            continue
        tmpl = pod_template(o)
        if tmpl is not None and isinstance(tmpl.get("spec"), Mapping):
            for kind, name, where in _pod_refs(tmpl["spec"]):
                yield Ref(o.cluster, o.urn, f"{o.kind} {o.namespace}/{o.name} {where}", kind, o.namespace, name)
            continue
        yield from _cr_refs(o, cm_ns)
    for cluster, r in plan.releases:
        inputs = r.get("inputs") or {}
        ns = str(inputs.get("namespace") or "default")
        values = inputs.get("values") or {}
        for kind, name, where in _values_refs(values):
            yield Ref(cluster, str(r.get("urn")), f"Helm release {r.get('name')} {where}", kind, ns, name)
        if inputs.get("chart") == "argo-cd":
            # Ref: argoproj/argo-cd docs/operator-manual/user-management/index.md (sensitive data in
            # argocd-cm: "$<k8s secret name>:<key>" reads that Secret in Argo CD's namespace).
            for key, text in (get(values, "configs", "cm") or {}).items():
                for name in _ARGO_SECRET.findall(str(text)):
                    yield Ref(cluster, str(r.get("urn")), f"Helm release {r.get('name')} configs.cm.{key}",
                              "Secret", ns, name)


def _cr_refs(o: Obj, cm_ns: str) -> Iterator[Ref]:
    def ref(kind: str, name: Any, where: str, ns: str | None = None) -> Iterator[Ref]:
        if isinstance(name, str) and name and not opaque(name):
            yield Ref(o.cluster, o.urn, f"{o.kind} {o.namespace + '/' if o.namespace else ''}{o.name} {where}",
                      kind, ns if ns is not None else o.namespace, name)

    s = o.spec
    if o.kind in ("ClusterIssuer", "Issuer"):
        ns = cm_ns if o.kind == "ClusterIssuer" else o.namespace
        yield from ref("Secret", get(s, "ca", "secretName"), "spec.ca.secretName", ns)
        for i, solver in enumerate(get(s, "acme", "solvers") or []):
            yield from ref("Secret", get(solver, "dns01", "rfc2136", "tsigSecretSecretRef", "name"),
                           f"spec.acme.solvers[{i}].dns01.rfc2136.tsigSecretSecretRef", ns)
    elif o.kind == "ServersTransport":
        for i, ca in enumerate(s.get("rootCAs") or []):
            if isinstance(ca, Mapping):
                yield from ref("Secret", ca.get("secret"), f"spec.rootCAs[{i}].secret")
                yield from ref("ConfigMap", ca.get("configMap"), f"spec.rootCAs[{i}].configMap")
        for name in s.get("rootCAsSecrets") or []:
            yield from ref("Secret", name, "spec.rootCAsSecrets")
        for name in s.get("certificatesSecrets") or []:
            yield from ref("Secret", name, "spec.certificatesSecrets")
    elif o.kind == "TLSStore":
        yield from ref("Secret", get(s, "defaultCertificate", "secretName"), "spec.defaultCertificate.secretName")
    elif o.kind == "IngressRoute":
        yield from ref("Secret", get(s, "tls", "secretName"), "spec.tls.secretName")
    elif o.kind in ("CoreProvider", "BootstrapProvider", "ControlPlaneProvider", "InfrastructureProvider"):
        cs = s.get("configSecret") or {}
        yield from ref("Secret", cs.get("name"), "spec.configSecret", str(cs.get("namespace") or o.namespace))
    elif o.kind == "KubevirtCluster":
        cs = s.get("infraClusterSecretRef") or {}
        yield from ref("Secret", cs.get("name"), "spec.infraClusterSecretRef", str(cs.get("namespace") or o.namespace))


def check(plan: Plan, context: Mapping[str, Any] | None = None) -> Iterator[Violation]:
    known: dict[tuple[str, str, str, str], Obj] = {}
    for o in plan.objects:
        known.setdefault((o.cluster, o.kind, o.namespace, o.name), o)
    for r in references(plan):
        if (r.cluster, r.kind, r.namespace, r.name) in known:
            continue
        yield Violation(RULE, r.cluster, r.urn, f"{r.where} references {r.kind} {r.namespace}/{r.name}, which neither "
                        "the program nor a known controller creates")
