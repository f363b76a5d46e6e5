"""Rule ``names``: every name the program serves or waits on is published, and waiters wait for
the publisher.

Served names: IngressRoute ``Host()`` matches and hostname annotations, Ingress hosts,
LoadBalancer Services with an ``external-dns.alpha.kubernetes.io/hostname`` annotation (the
program's and those controllers create, e.g. CAPK's ``<cluster>-lb``). A served name is published
only when an ExternalDNS release on the same cluster reads that kind of object (its ``sources``),
the object carries what that source needs to make a record, and the name lies inside the zone
ExternalDNS manages (``domainFilters`` and ``--rfc2136-zone``).

Names waited on or connected to: every ``http(s)://`` URL inside the managed zone anywhere in the
program's inputs (provider endpoints, dynamic providers' readiness gates, OIDC issuer URLs in
Talos patches and Argo CD config, Vault and Authentik addresses, Argo CD cluster servers). Each
must be published; and a resource that itself connects during ``pulumi up`` (a provider, a
dynamic resource, a command) must wait for the ExternalDNS release.

What a source needs (external-dns v0.21.0, chart 1.21.1):
- ``traefik-proxy``: the target only from the ``external-dns.alpha.kubernetes.io/target``
  annotation; with no target no endpoint is made. Ref: kubernetes-sigs/external-dns
  source/traefik_proxy.go (extractEndpoints: ``annotations.TargetsFromTargetAnnotation``;
  endpointsFromIngressRoute) @ v0.21.0. ``--default-targets`` fills in for all sources.
- ``ingress``: the target annotation, or the Ingress's load-balancer status (which Traefik writes
  only with ``providers.kubernetesIngress.publishedService.enabled``). Ref: source/ingress.go.
- ``service``: a LoadBalancer Service's own address (see rule ``addresses``). Ref: source/service.go.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from convergence.model import Obj, Plan, Violation, get, opaque

RULE = "names"
HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"
TARGET = "external-dns.alpha.kubernetes.io/target"
_HOST_MATCH = re.compile(r"Host(?:SNI)?\(([^)]*)\)")
_BACKTICKED = re.compile(r"`([^`]*)`")
_URL = re.compile(r"\bhttps?://([A-Za-z0-9*][A-Za-z0-9.*-]*)")
WAITER_PREFIXES = ("pulumi:providers:", "pulumi-python:dynamic", "command:local:")


@dataclass
class ExternalDns:
    cluster: str
    urn: str
    sources: frozenset[str]
    zones: tuple[str, ...]
    default_targets: bool
    annotation_filter: str | None
    ignore_hostname_annotation: bool


def external_dns(plan: Plan) -> list[ExternalDns]:
    out = []
    for cluster, r in plan.releases:
        inputs = r.get("inputs") or {}
        if inputs.get("chart") != "external-dns":
            continue
        values = inputs.get("values") if isinstance(inputs.get("values"), Mapping) else {}
        args = [a for a in values.get("extraArgs") or [] if isinstance(a, str)]
        zones = [z for z in values.get("domainFilters") or [] if isinstance(z, str)]
        zones += [a.split("=", 1)[1] for a in args if a.startswith("--rfc2136-zone=")]
        flt = next((a.split("=", 1)[1] for a in args if a.startswith("--annotation-filter=")), None)
        # Ref: kubernetes-sigs/external-dns charts/external-dns/values.yaml (sources: [service, ingress],
        # domainFilters: []) @ external-dns-helm-chart-1.21.1.
        out.append(ExternalDns(
            cluster=cluster, urn=str(r.get("urn")),
            sources=frozenset(values.get("sources") or ["service", "ingress"]),
            zones=tuple(sorted({z.strip(".").lower() for z in zones})),
            default_targets=any(a.startswith("--default-targets") for a in args),
            annotation_filter=flt,
            ignore_hostname_annotation="--ignore-hostname-annotation" in args))
    return out


def _strings(value: Any) -> Iterator[str]:
    """Every string leaf of a nested structure that may hold a URL (one pass, no paths)."""
    todo = [value]
    while todo:
        v = todo.pop()
        t = type(v)
        if t is str:
            if "http" in v:
                yield v
        elif t is dict or isinstance(v, Mapping):
            todo.extend(v.values())
        elif t is list or t is tuple:
            todo.extend(v)


def in_zone(host: str, zones: tuple[str, ...]) -> bool:
    h = host.lower().strip(".")
    return not zones or any(h == z or h.endswith("." + z) for z in zones)


def covers(pattern: str, host: str) -> bool:
    p, h = pattern.lower().strip("."), host.lower().strip(".")
    if p == h:
        return True
    return p.startswith("*.") and h.endswith(p[1:]) and "." not in h[: -len(p) + 1]


def _passes_filter(o: Obj, flt: str | None) -> bool:
    if not flt:
        return True
    ok = True
    for term in flt.split(","):
        key, _, value = term.partition("=")
        ok &= key.strip() in o.annotations and (not value or str(o.annotations[key.strip()]) == value.strip())
    return ok


def _annotated_hosts(o: Obj) -> list[str]:
    value = o.annotations.get(HOSTNAME)
    return [h.strip() for h in str(value).split(",") if h.strip()] if value and not opaque(value) else []


def served(plan: Plan) -> Iterator[tuple[Obj, str, str]]:
    """(object, hostname, ExternalDNS source that would read it)."""
    for o in plan.of_kind("IngressRoute"):
        hosts = list(_annotated_hosts(o))
        for route in o.spec.get("routes") or []:
            for group in _HOST_MATCH.findall(str(route.get("match") or "")):
                hosts.extend(h for h in _BACKTICKED.findall(group) if h and h != "*")
        for h in dict.fromkeys(hosts):
            yield o, h, "traefik-proxy"
    for o in plan.of_kind("Ingress"):
        hosts = [str(r.get("host")) for r in o.spec.get("rules") or [] if r.get("host")] + _annotated_hosts(o)
        for h in dict.fromkeys(hosts):
            yield o, h, "ingress"
    for o in plan.of_kind("Service"):
        if o.spec.get("type") == "LoadBalancer":
            for h in _annotated_hosts(o):
                yield o, h, "service"


def _has_target(o: Obj, source: str, plan: Plan, edns: ExternalDns) -> bool:
    if edns.default_targets or (o.annotations.get(TARGET) and not opaque(o.annotations.get(TARGET))):
        return True
    if source == "service":
        return True  # the Service's own load-balancer address (rule "addresses" checks it gets one)
    if source == "ingress":
        return any(get(r.get("inputs"), "values", "providers", "kubernetesIngress", "publishedService", "enabled")
                   is True for c, r in plan.releases if c == o.cluster and r.get("inputs", {}).get("chart") == "traefik")
    return False


def check(plan: Plan, context: Mapping[str, Any] | None = None) -> Iterator[Violation]:
    publishers = external_dns(plan)
    by_cluster: dict[str, list[ExternalDns]] = {}
    for e in publishers:
        by_cluster.setdefault(e.cluster, []).append(e)
    zones = tuple(sorted({z for e in publishers for z in e.zones}))
    published: list[str] = []
    for o, host, source in served(plan):
        readers = by_cluster.get(o.cluster, [])
        what = f"{o.kind} {o.namespace}/{o.name}" + (f" (created by {o.source})" if o.source != "program" else "")
        if readers and not any(in_zone(host, e.zones) for e in readers):
            continue  # served under another name space, not this platform's zone
        if not readers:
            if zones and not in_zone(host, zones):
                continue
            yield Violation(RULE, o.cluster, o.urn, f"{what} serves '{host}' but no ExternalDNS reads this cluster")
            continue
        problems = []
        for e in readers:
            if source not in e.sources:
                problems.append(f"ExternalDNS's sources {sorted(e.sources)} do not include '{source}'")
            elif not _passes_filter(o, e.annotation_filter):
                problems.append(f"it does not match --annotation-filter={e.annotation_filter}")
            elif source == "traefik-proxy" and host in _annotated_hosts(o) and e.ignore_hostname_annotation:
                problems.append("ExternalDNS runs with --ignore-hostname-annotation")
            elif not _has_target(o, source, plan, e):
                problems.append(f"the '{source}' source takes the record's target only from the {TARGET} annotation "
                                "(or --default-targets), and neither is set")
            else:
                problems = []
                break
        if problems:
            yield Violation(RULE, o.cluster, o.urn, f"{what} serves '{host}', which is never published: "
                            + "; ".join(dict.fromkeys(problems)))
        else:
            published.append(host)
    if not zones:
        return
    release_urns = [e.urn for e in publishers]
    waiters = plan.waiters(release_urns) if release_urns else set()
    for urn, r in plan.records.items():
        hosts = sorted({h.lower() for v in _strings(r.get("inputs") or {})
                        for h in _URL.findall(v) if in_zone(h, zones)})
        if not hosts:
            continue
        type_ = str(r.get("type", ""))
        for h in hosts:
            if not any(covers(p, h) for p in published):
                yield Violation(RULE, plan.cluster(r) if type_.startswith("kubernetes:") else "management", urn,
                                f"{type_.split(':')[-1]} {r.get('name')} connects to '{h}', which nothing the "
                                "program serves gets published in DNS")
        if type_.startswith(WAITER_PREFIXES) and urn not in waiters:
            yield Violation(RULE, "management", urn,
                            f"{type_.split(':')[-1]} {r.get('name')} connects to {', '.join(hosts)} during the "
                            "deployment but does not wait for the ExternalDNS release that publishes it")
