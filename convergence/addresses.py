"""Rule ``addresses``: every LoadBalancer Service of a cluster gets an address.

Cilium LB IPAM hands out addresses from the ``CiliumLoadBalancerIPPool`` blocks of the cluster
(a Service without one stays ``<pending>``, and ExternalDNS publishes nothing for it). Checked per
cluster, over the program's Services and those controllers create (CAPK's ``<cluster>-lb``,
Traefik's chart Service):

- a pinned address (``lbipam.cilium.io/ips``) lies inside a pool, and no two Services pin the
  same address unless they share it (same ``lbipam.cilium.io/sharing-key``, distinct ports);
- the pools hold at least as many addresses as the Services need: one per pinned address, one
  per sharing key, one per other Service;
- no pool address is a node's address (the node would answer for it, or the announcement would
  steal the node's own address).

Ref: cilium/cilium pkg/ipam/... LB IPAM (``lbipam.cilium.io/ips``, ``lbipam.cilium.io/sharing-key``;
``allowFirstLastIPs: "No"`` keeps the first and last address of each block out) @ the chart
version pinned in versions.py (Documentation/network/lb-ipam.rst).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from convergence.model import Plan, Violation, get, opaque

RULE = "addresses"
IPS = "lbipam.cilium.io/ips"
SHARING = "lbipam.cilium.io/sharing-key"
NODE_TYPES = ("talos:machine/configurationApply:ConfigurationApply",)


def _pool_addresses(pool: Mapping[str, Any]) -> tuple[list[ipaddress._BaseNetwork], int]:
    """(networks, usable address count) of one pool's spec."""
    nets: list[ipaddress._BaseNetwork] = []
    count = 0
    drop_edges = str(pool.get("allowFirstLastIPs", "No")) != "Yes"
    for block in pool.get("blocks") or []:
        if isinstance(block.get("cidr"), str):
            net = ipaddress.ip_network(block["cidr"], strict=False)
            nets.append(net)
            size = net.num_addresses
            if drop_edges and size > 2:
                size -= 2
            count += size
        elif isinstance(block.get("start"), str):
            start = ipaddress.ip_address(block["start"])
            stop = ipaddress.ip_address(block.get("stop") or block["start"])
            nets.extend(ipaddress.summarize_address_range(start, stop))
            count += int(stop) - int(start) + 1
    return nets, count


def node_addresses(plan: Plan) -> dict[str, str]:
    """Management node addresses (from the Talos machine configuration applies): address -> urn."""
    out = {}
    for urn, r in plan.records.items():
        if r.get("type") in NODE_TYPES:
            node = get(r.get("inputs"), "node")
            if isinstance(node, str) and not opaque(node):
                out[node] = urn
    return out


def check(plan: Plan, context: Mapping[str, Any] | None = None) -> Iterator[Violation]:
    nodes = node_addresses(plan)
    for cluster in plan.clusters:
        pools = list(plan.on(cluster, "CiliumLoadBalancerIPPool"))
        nets: list[ipaddress._BaseNetwork] = []
        capacity = 0
        for p in pools:
            n, c = _pool_addresses(p.spec)
            nets.extend(n)
            capacity += c
            for addr, urn in sorted(nodes.items()) if cluster == "management" else ():
                if any(ipaddress.ip_address(addr) in net for net in n):
                    yield Violation(RULE, cluster, p.urn, f"CiliumLoadBalancerIPPool {p.name} contains the node address "
                                    f"{addr} ({urn.rsplit('::', 1)[-1]})")
        services = [o for o in plan.on(cluster, "Service") if o.spec.get("type") == "LoadBalancer"]
        if not services:
            continue
        pinned: dict[str, list[Any]] = defaultdict(list)
        groups: set[str] = set()
        loose = 0
        for s in services:
            what = f"Service {s.namespace}/{s.name}" + (f" (created by {s.source})" if s.source != "program" else "")
            ips = s.annotations.get(IPS)
            key = s.annotations.get(SHARING)
            if isinstance(ips, str) and ips and not opaque(ips):
                for ip in (x.strip() for x in ips.split(",") if x.strip()):
                    pinned[ip].append(s)
                    if not any(ipaddress.ip_address(ip) in net for net in nets):
                        yield Violation(RULE, cluster, s.urn, f"{what} pins {ip}, which is in no CiliumLoadBalancerIPPool "
                                        f"of the cluster ({', '.join(map(str, nets)) or 'no pool'})")
            elif isinstance(key, str) and key:
                groups.add(key)
            else:
                loose += 1
        for ip, owners in sorted(pinned.items()):
            keys = {o.annotations.get(SHARING) for o in owners}
            if len(owners) > 1 and (len(keys) != 1 or None in keys):
                yield Violation(RULE, cluster, owners[1].urn, f"{ip} is pinned by "
                                f"{', '.join(f'{o.namespace}/{o.name}' for o in owners)} without a common sharing key")
        needed = len(pinned) + len(groups) + loose
        if needed > capacity:
            yield Violation(RULE, cluster, pools[0].urn if pools else services[0].urn,
                            f"{len(services)} LoadBalancer Services need {needed} addresses ({len(pinned)} pinned, "
                            f"{len(groups)} sharing keys, {loose} others) but the pools hold {capacity}"
                            + ("" if pools else " (no CiliumLoadBalancerIPPool on this cluster)"))
