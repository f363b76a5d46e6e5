"""Rule ``flows``: the network flows each service needs are allowed by the policies in force, and
no policy allows a flow between two tenants.

The flows are declared here, each derived from the plan (so a renamed Service or a moved
nameserver moves the flow with it):

- ExternalDNS -> Bind9 (the ``--rfc2136-host``/``--rfc2136-port`` Service), UDP and TCP;
- cert-manager's controller -> Bind9 (each ACME issuer's ``rfc2136.nameserver``), UDP and TCP,
  and -> the ACME server (``world``, 443/TCP);
- Traefik -> every backend Service an IngressRoute routes to;
- Argo CD's application controller, Vault, the CAPI core, CAPK and CACPPT controllers -> each
  tenant's API (the control-plane VMs behind ``<cluster>-lb``, 6443/TCP; CACPPT also the Talos
  API, 50000/TCP), and each tenant's kubevirt-csi controller -> its tenant's API.

A flow is allowed when the egress policies selecting the source and the ingress policies
selecting the destination both allow it, with Kubernetes NetworkPolicy and CiliumNetworkPolicy
semantics together (as Cilium enforces them): a pod selected by no policy of a direction is open in
that direction; once selected (a NetworkPolicy with that ``policyType``, a CiliumNetworkPolicy with
an ``ingress``/``egress`` section), only what some rule allows passes. CIDR rules select only
addresses outside the cluster; ``toEntities`` ``world``/``cluster``/``kube-apiserver``/``all`` as
Cilium defines them. Traffic to a Service (ClusterIP or load-balancer address, through Cilium's
kube-proxy replacement) is judged against the backend pods and the Service's ``targetPort``.

Not modelled: L7 rules, ``toFQDNs`` DNS visibility, ``toServices``, deny rules, host firewall.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from convergence.model import MANAGEMENT, Obj, Plan, Violation, get, pod_template

RULE = "flows"
NS_LABEL = "kubernetes.io/metadata.name"
TENANT_LABEL = "weebo.io/tenant"


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels), ``world`` (outside the cluster) or ``kube-apiserver``."""

    kind: str  # "pod" | "world" | "kube-apiserver"
    namespace: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    ip: str = ""
    name: str = ""

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def describe(self) -> str:
        if self.kind == "pod":
            return self.name or f"pods {dict(self.labels)} in {self.namespace}"
        return self.name or self.kind


def pod(namespace: str, labels: Mapping[str, Any], name: str = "") -> Endpoint:
    return Endpoint("pod", namespace, tuple(sorted((str(k), str(v)) for k, v in labels.items())), name=name)


@dataclass(frozen=True)
class Flow:
    name: str
    src: Endpoint
    dst: Endpoint
    port: int
    protocol: str = "TCP"
    port_name: str = ""


@dataclass
class Policies:
    """The policies of one cluster, indexed by namespace."""

    namespaces: dict[str, dict[str, str]]
    by_ns: dict[str, list[Obj]] = field(default_factory=dict)
    cluster_wide: list[Obj] = field(default_factory=list)
    _cilium_labels: dict[Endpoint, dict[str, str]] = field(default_factory=dict)

    def cilium_labels(self, ep: Endpoint) -> dict[str, str]:
        """A pod's labels as Cilium's identity has them (namespace and namespace labels added)."""
        found = self._cilium_labels.get(ep)
        if found is None:
            found = dict(ep.label_map)
            found[_CILIUM_NS] = ep.namespace
            for k, v in self.ns_labels(ep.namespace).items():
                found[_CILIUM_NS_LABELS + k] = v
            self._cilium_labels[ep] = found
        return found

    def ns_labels(self, ns: str) -> dict[str, str]:
        return {**self.namespaces.get(ns, {}), NS_LABEL: ns}


# ---------------------------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------------------------

def selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector against labels (None and {} select everything)."""
    if not isinstance(selector, Mapping):
        return selector is None
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(str(k)) != str(v):
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = str(e.get("key")), e.get("operator"), [str(v) for v in e.get("values") or []]
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


_CILIUM_NS = "io.kubernetes.pod.namespace"
_CILIUM_NS_LABELS = "io.cilium.k8s.namespace.labels."


def _strip(key: str) -> str:
    return key[4:] if key.startswith(("k8s:", "any:")) else key


def cilium_selects(selector: Any, ep: Endpoint, own_ns: str | None, pols: Policies) -> bool:
    """A Cilium endpoint selector against a pod. ``own_ns``: the namespace a namespaced policy
    confines the selector to, unless the selector names a namespace itself."""
    if ep.kind != "pod" or not isinstance(selector, Mapping):
        return False
    labels = pols.cilium_labels(ep)
    norm = {"matchLabels": {_strip(str(k)): v for k, v in (selector.get("matchLabels") or {}).items()},
            "matchExpressions": [{**e, "key": _strip(str(e.get("key")))} for e in selector.get("matchExpressions") or []]}
    names_ns = _CILIUM_NS in norm["matchLabels"] or any(e["key"] == _CILIUM_NS for e in norm["matchExpressions"])
    if own_ns is not None and not names_ns and ep.namespace != own_ns:
        return False
    return selects(norm, labels)


# ---------------------------------------------------------------------------------------------
# Policy evaluation
# ---------------------------------------------------------------------------------------------

def _port_ok(ports: Any, flow: Flow, cilium: bool) -> bool:
    if not ports:
        return True
    for p in ports:
        if not isinstance(p, Mapping):
            continue
        proto = str(p.get("protocol") or ("ANY" if cilium else "TCP")).upper()
        if proto not in ("ANY", flow.protocol):
            continue
        port = p.get("port")
        if port in (None, "", "0", 0):
            return True
        if isinstance(port, str) and not port.isdigit():
            if port == flow.port_name:
                return True
            continue
        lo = int(port)
        hi = int(p.get("endPort") or lo)
        if lo <= flow.port <= hi:
            return True
    return False


def _ip_in(blocks: list[Mapping[str, Any]], ep: Endpoint) -> bool:
    if ep.kind != "world":
        return False
    for b in blocks:
        cidr = b.get("cidr")
        if not isinstance(cidr, str):
            continue
        if not ep.ip:
            if cidr in ("0.0.0.0/0", "::/0"):
                return True
            continue
        ip = ipaddress.ip_address(ep.ip)
        if ip in ipaddress.ip_network(cidr, strict=False) and not any(
                ip in ipaddress.ip_network(x, strict=False) for x in b.get("except") or []):
            return True
    return False


def _k8s_peer(peer: Mapping[str, Any], ep: Endpoint, policy_ns: str, pols: Policies) -> bool:
    if "ipBlock" in peer:
        return _ip_in([peer["ipBlock"]], ep)
    if ep.kind != "pod":
        return False
    if "namespaceSelector" in peer:
        if not selects(peer.get("namespaceSelector") or {}, pols.ns_labels(ep.namespace)):
            return False
    elif ep.namespace != policy_ns:
        return False
    return selects(peer.get("podSelector") or {}, ep.label_map)


def _entity(entities: list[Any], ep: Endpoint) -> bool:
    ents = {str(e) for e in entities}
    if "all" in ents:
        return True
    if ep.kind == "world":
        return bool(ents & {"world", "world-ipv4", "world-ipv6"})
    if ep.kind == "kube-apiserver":
        return bool(ents & {"kube-apiserver", "cluster", "host", "remote-node"})
    return "cluster" in ents


def _cilium_peer(rule: Mapping[str, Any], ep: Endpoint, direction: str, own_ns: str | None, pols: Policies) -> bool:
    pre = "to" if direction == "egress" else "from"
    l3 = [k for k in (f"{pre}Endpoints", f"{pre}Entities", f"{pre}CIDR", f"{pre}CIDRSet", f"{pre}FQDNs",
                      f"{pre}Services", f"{pre}Groups", f"{pre}Nodes", f"{pre}Requires") if rule.get(k)]
    if not l3:
        return True  # only toPorts: any peer on those ports
    if any(cilium_selects(s, ep, own_ns, pols) for s in rule.get(f"{pre}Endpoints") or []):
        return True
    if _entity(rule.get(f"{pre}Entities") or [], ep):
        return True
    cidrs = [{"cidr": c} for c in rule.get(f"{pre}CIDR") or []] + [
        {"cidr": c.get("cidr"), "except": c.get("except")} for c in rule.get(f"{pre}CIDRSet") or [] if isinstance(c, Mapping)]
    if _ip_in(cidrs, ep):
        return True
    if ep.kind == "world" and ep.name and any(
            str(f.get("matchName")) == ep.name or _glob(str(f.get("matchPattern", "")), ep.name)
            for f in rule.get(f"{pre}FQDNs") or [] if isinstance(f, Mapping)):
        return True
    return False


def _glob(pattern: str, name: str) -> bool:
    import fnmatch

    return bool(pattern) and fnmatch.fnmatch(name, pattern)


def _cilium_ports(rule: Mapping[str, Any], flow: Flow) -> bool:
    to_ports = rule.get("toPorts")
    if not to_ports:
        return True
    return any(_port_ok(tp.get("ports"), flow, True) for tp in to_ports if isinstance(tp, Mapping))


def allows(pols: Policies, subject: Endpoint, peer: Endpoint, flow: Flow, direction: str) -> tuple[bool, bool]:
    """(selected by some policy of ``direction``, allowed) for ``subject``'s side of ``flow``."""
    if subject.kind != "pod":
        return False, True
    selected = False
    key = "Egress" if direction == "egress" else "Ingress"
    for p in pols.by_ns.get(subject.namespace, []) + pols.cluster_wide:
        spec = p.spec
        if p.kind == "NetworkPolicy":
            if p.namespace != subject.namespace or not selects(spec.get("podSelector") or {}, subject.label_map):
                continue
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") is not None else ["Ingress"])
            if key not in types:
                continue
            selected = True
            for rule in spec.get(direction) or []:
                peers = rule.get("to" if direction == "egress" else "from")
                if (not peers or any(_k8s_peer(x, peer, p.namespace, pols) for x in peers)) \
                        and _port_ok(rule.get("ports"), flow, False):
                    return True, True
        else:
            own_ns = p.namespace if p.kind == "CiliumNetworkPolicy" else None
            specs = [spec] + [s for s in p.body.get("specs") or [] if isinstance(s, Mapping)]
            for s in specs:
                if not cilium_selects(s.get("endpointSelector"), subject, own_ns, pols) or direction not in s:
                    continue
                selected = True
                for rule in s.get(direction) or []:
                    if isinstance(rule, Mapping) and _cilium_peer(rule, peer, direction, own_ns, pols) \
                            and _cilium_ports(rule, flow):
                        return True, True
    return selected, not selected


def verdict(pols: Policies, flow: Flow) -> str | None:
    """None when allowed, else why not."""
    _, eg = allows(pols, flow.src, flow.dst, flow, "egress")
    _, ing = allows(pols, flow.dst, flow.src, flow, "ingress")
    if eg and ing:
        return None
    sides = [s for s, ok in (("egress from the source", eg), ("ingress into the destination", ing)) if not ok]
    return " and ".join(sides) + " denied"


def policies(plan: Plan, cluster: str) -> Policies:
    pols = Policies(namespaces={n: {str(k): str(v) for k, v in o.labels.items()} for n, o in plan.namespaces(cluster).items()})
    for o in plan.on(cluster):
        if o.kind in ("NetworkPolicy", "CiliumNetworkPolicy"):
            pols.by_ns.setdefault(o.namespace, []).append(o)
        elif o.kind == "CiliumClusterwideNetworkPolicy":
            pols.cluster_wide.append(o)
    return pols


# ---------------------------------------------------------------------------------------------
# The declared flows
# ---------------------------------------------------------------------------------------------

def _service(plan: Plan, cluster: str, namespace: str, name: str) -> Obj | None:
    return next((o for o in plan.on(cluster, "Service") if o.namespace == namespace and o.name == name), None)


def _backends(plan: Plan, cluster: str, svc: Obj, port: Any) -> list[tuple[Endpoint, int, str]]:
    """(pod endpoint, container port, port name) behind one port of a Service."""
    entry = next((p for p in svc.spec.get("ports") or [] if p.get("port") == port or p.get("name") == port), None)
    if entry is None and len(svc.spec.get("ports") or []) == 1:
        entry = svc.spec["ports"][0]
    target = (entry or {}).get("targetPort", (entry or {}).get("port", port))
    selector = svc.spec.get("selector") or {}
    out = []
    for o in plan.on(cluster):
        tmpl = pod_template(o) if o.namespace == svc.namespace else None
        labels = (tmpl or {}).get("metadata", {}).get("labels") if tmpl else None
        if not isinstance(labels, Mapping) or not selector or not selects({"matchLabels": selector}, labels):
            continue
        number, name = target, ""
        if isinstance(target, str):
            name = target
            number = next((p.get("containerPort") for _, c in _containers(tmpl.get("spec") or {})
                           for p in c.get("ports") or [] if p.get("name") == target), None)
        if isinstance(number, int):
            out.append((pod(o.namespace, labels, f"{o.kind} {o.namespace}/{o.name}"), number, name))
    if not out and isinstance(target, int):
        # A chart's Service: its pods are not in the plan; any pod of its namespace stands in.
        out.append((pod(svc.namespace, selector, f"Service {svc.namespace}/{svc.name}"), target, ""))
    return out


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for i, c in enumerate((spec.get("containers") or []) + (spec.get("initContainers") or [])):
        if isinstance(c, Mapping):
            yield i, c


def _dns_flows(plan: Plan, name: str, src: Endpoint, host_port: str, cluster: str) -> Iterator[Flow | str]:
    host, _, port = host_port.partition(":")
    parts = host.split(".")
    if len(parts) < 2:
        return
    svc = _service(plan, cluster, parts[1], parts[0])
    if svc is None:
        yield f"{name}: no Service {parts[1]}/{parts[0]} for nameserver {host_port}"
        return
    for dst, number, pname in _backends(plan, cluster, svc, int(port or 53)):
        for proto in ("UDP", "TCP"):
            yield Flow(f"{name} ({proto})", src, dst, number, proto, pname)


# Pod labels of the charts' and providers' pods that the flows start from.
# Ref: kubernetes-sigs/external-dns charts/external-dns/templates/_helpers.tpl (selectorLabels:
# app.kubernetes.io/name) @ external-dns-helm-chart-1.21.1; cert-manager/cert-manager
# deploy/charts/cert-manager/templates/deployment.yaml (app.kubernetes.io/name: cert-manager,
# app.kubernetes.io/component: controller); argoproj/argo-helm charts/argo-cd/templates/
# argocd-application-controller (app.kubernetes.io/name: argocd-application-controller) @
# argo-cd-10.1.1; hashicorp/vault-helm templates/server-statefulset.yaml (app.kubernetes.io/name:
# vault, component: server) @ v0.34.1; traefik/traefik-helm-chart (app.kubernetes.io/name:
# traefik) @ v41.3.0. Cluster API providers: one manager pod in each provider's namespace.
def declared(plan: Plan) -> Iterator[Flow | str]:
    """Every flow the platform needs, or a message when a flow's end cannot be found."""
    cluster = MANAGEMENT
    launchers = [o for o in plan.on(cluster, "Pod") if o.labels.get("cluster.x-k8s.io/role") == "control-plane"
                 and o.source != "program"]
    for _, r in plan.releases:
        inputs = r.get("inputs") or {}
        if inputs.get("chart") != "external-dns":
            continue
        args = [a for a in get(inputs, "values", "extraArgs") or [] if isinstance(a, str)]
        host = next((a.split("=", 1)[1] for a in args if a.startswith("--rfc2136-host=")), None)
        port = next((a.split("=", 1)[1] for a in args if a.startswith("--rfc2136-port=")), "53")
        if host:
            src = pod(str(inputs.get("namespace")), {"app.kubernetes.io/name": "external-dns"}, "ExternalDNS")
            yield from _dns_flows(plan, "ExternalDNS -> nameserver", src, f"{host}:{port}", cluster)
    cm_ns = next((str(r["inputs"].get("namespace")) for _, r in plan.releases
                  if (r.get("inputs") or {}).get("chart") == "cert-manager"), None)
    if cm_ns:
        src = pod(cm_ns, {"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/component": "controller"},
                  "cert-manager controller")
        for issuer in plan.of_kind("ClusterIssuer"):
            acme = issuer.spec.get("acme") or {}
            if not acme:
                continue
            server = str(acme.get("server") or "")
            acme_host = server.split("://", 1)[-1].split("/", 1)[0]
            yield Flow(f"cert-manager -> ACME {acme_host}", src, Endpoint("world", name=acme_host), 443)
            for solver in acme.get("solvers") or []:
                ns_ = get(solver, "dns01", "rfc2136", "nameserver")
                if isinstance(ns_, str):
                    yield from _dns_flows(plan, f"cert-manager -> nameserver ({issuer.name})", src, ns_, cluster)
    traefik_ns = next((str(r["inputs"].get("namespace")) for _, r in plan.releases
                       if (r.get("inputs") or {}).get("chart") == "traefik"), None)
    if traefik_ns:
        src = pod(traefik_ns, {"app.kubernetes.io/name": "traefik"}, "Traefik")
        for route in plan.on(cluster, "IngressRoute"):
            for rr in route.spec.get("routes") or []:
                for s in rr.get("services") or []:
                    if s.get("kind") == "TraefikService":
                        continue
                    ns_ = str(s.get("namespace") or route.namespace)
                    svc = _service(plan, cluster, ns_, str(s.get("name")))
                    if svc is None:
                        yield f"IngressRoute {route.namespace}/{route.name} routes to Service {ns_}/{s.get('name')}, " \
                              "which nothing creates"
                        continue
                    for dst, number, pname in _backends(plan, cluster, svc, s.get("port")):
                        yield Flow(f"Traefik -> {ns_}/{s.get('name')}", src, dst, number, "TCP", pname)
    if not launchers:
        return
    clients: list[tuple[str, Endpoint, tuple[int, ...]]] = []
    for _, r in plan.releases:
        inputs = r.get("inputs") or {}
        if inputs.get("chart") == "argo-cd":
            clients.append(("Argo CD", pod(str(inputs.get("namespace")),
                                           {"app.kubernetes.io/name": "argocd-application-controller"},
                                           "Argo CD application controller"), (6443,)))
        elif inputs.get("chart") == "vault":
            clients.append(("Vault", pod(str(inputs.get("namespace")), {
                "app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": str(inputs.get("name") or r.get("name")),
                "component": "server"}, "Vault server"), (6443,)))
    providers = {"CoreProvider": ((6443,), "CAPI core"), "InfrastructureProvider": ((6443,), "CAPK"),
                 "ControlPlaneProvider": ((6443, 50000), "CACPPT")}
    for o in plan.on(cluster):
        if o.kind in providers and o.namespace:
            ports, label = providers[o.kind]
            # The operator labels the provider's manager pod itself; the program's policies for
            # provider namespaces select every pod, which a pod without labels stands in for.
            clients.append((label, pod(o.namespace, {}, f"{label} controller"), ports))
    csi: dict[str, Endpoint] = {}
    for o in plan.on(cluster, "Deployment"):
        labels = get(o.spec, "template", "metadata", "labels") or {}
        if labels.get("app.kubernetes.io/name") == "kubevirt-csi-controller":
            csi[o.namespace] = pod(o.namespace, labels, f"kubevirt-csi controller {o.namespace}")
    for lp in launchers:
        tenant = lp.labels.get("cluster.x-k8s.io/cluster-name")
        dst = pod(lp.namespace, lp.labels, f"tenant {tenant} control plane")
        for label, src, ports in clients:
            for port in ports:
                yield Flow(f"{label} -> tenant {tenant} API:{port}", src, dst, port)
        if lp.namespace in csi:
            yield Flow(f"kubevirt-csi controller -> tenant {tenant} API", csi[lp.namespace], dst, 6443)


def _cross_tenant(plan: Plan, pols: Policies) -> Iterator[Violation]:
    """A pod of one tenant namespace reaching a pod of another, on any port. Linear in tenants:
    each tenant is tested against the tenants its policies name and one stand-in for the rest."""
    tenants = {ns: labels.get(TENANT_LABEL) for ns, labels in pols.namespaces.items() if TENANT_LABEL in labels}
    if len(tenants) < 2:
        return
    sample: dict[str, Endpoint] = {}
    for o in plan.on(MANAGEMENT, "Pod"):
        if o.namespace in tenants and o.namespace not in sample:
            sample[o.namespace] = pod(o.namespace, o.labels, f"tenant {tenants[o.namespace]} VMs")
    for ns in tenants:
        sample.setdefault(ns, pod(ns, {}, f"pods in {ns}"))
    by_value: dict[str, str] = {v: ns for ns, v in tenants.items() if v}
    order = sorted(tenants)
    for ns in order:
        named: set[str] = set()
        for p in pols.by_ns.get(ns, []):
            for _, v in _walk_values(p.spec):
                if v in by_value and by_value[v] != ns:
                    named.add(by_value[v])
                if v in tenants and v != ns:
                    named.add(v)
        other = next(o for o in order if o != ns)
        for dst_ns in sorted(named | {other}):
            for port, proto in ((6443, "TCP"), (50000, "TCP"), (30443, "TCP"), (53, "UDP")):
                f = Flow(f"tenant {tenants[ns]} -> tenant {tenants[dst_ns]}", sample[ns], sample[dst_ns], port, proto)
                if verdict(pols, f) is None:
                    yield Violation(RULE, MANAGEMENT, "", f"cross-tenant flow allowed: {f.src.describe()} ({ns}) -> "
                                    f"{f.dst.describe()} ({dst_ns}) on {port}/{proto}")
                    break


def _walk_values(value: Any) -> Iterator[tuple[None, str]]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _walk_values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_values(v)
    elif isinstance(value, str):
        yield None, value


def check(plan: Plan, context: Mapping[str, Any] | None = None) -> Iterator[Violation]:
    pols = policies(plan, MANAGEMENT)
    seen: set[tuple[str, str]] = set()
    for f in declared(plan):
        if isinstance(f, str):
            yield Violation(RULE, MANAGEMENT, "", f)
            continue
        why = verdict(pols, f)
        if why is not None and (f.name, why) not in seen:
            seen.add((f.name, why))
            yield Violation(RULE, MANAGEMENT, "", f"flow {f.name}: {f.src.describe()} -> {f.dst.describe()} on "
                            f"{f.port}/{f.protocol}: {why} by the policies in force")
    yield from _cross_tenant(plan, pols)
