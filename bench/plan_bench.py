"""Benchmark of the offline plan: wall time and peak memory of the whole process, for the prod
stack with 1, 10, 50 and 100 generated tenants, plus graph metrics.

    python bench/plan_bench.py                 # measure and print the table
    python bench/plan_bench.py --write         # also rewrite the table in bench/README.md
    python bench/plan_bench.py --sizes 1 10    # other sizes

Each plan runs as its own process (`python -m offline.plan <file>`), as a user would run it (one
worker process per CPU), so the numbers include interpreter start-up and imports; it runs again
with `--jobs 1` for the cost in one process, and the two plans must be identical. Not a test:
nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

# Tenant ranges come from blocks no default range overlaps.
POD_BLOCKS = list(ipaddress.ip_network("10.128.0.0/9").subnets(new_prefix=20))
SERVICE_BLOCKS = list(ipaddress.ip_network("172.16.0.0/12").subnets(new_prefix=22))


def generated_tenant(i: int) -> dict[str, Any]:
    shapes = [
        {"controlPlane": {"replicas": 1, "cpu": 2, "memoryGib": 4, "diskGib": 20},
         "workerPools": [{"name": "general", "replicas": 2, "cpu": 2, "memoryGib": 4, "diskGib": 30}]},
        # One control-plane VM: on prod's single server a multi-VM control plane is refused
        # (stacks.config.tenant_control_plane_problems).
        {"controlPlane": {"replicas": 1, "cpu": 2, "memoryGib": 4, "diskGib": 20},
         "workerPools": [{"name": "general", "replicas": 3, "cpu": 4, "memoryGib": 8, "diskGib": 50},
                         {"name": "db", "replicas": 1, "cpu": 4, "memoryGib": 16, "diskGib": 100}]},
    ]
    return {
        "name": f"t{i:03d}",
        "talosVersion": "v1.12.11",
        "kubernetesVersion": "1.35.4",
        **copy.deepcopy(shapes[i % 2]),
        "podCidr": str(POD_BLOCKS[i]),
        "serviceCidr": str(SERVICE_BLOCKS[i]),
        "adminGroups": ["platform-admins"],
        "netbirdRoute": i % 3 == 0,
        "apps": [{"name": "web", "repoUrl": "https://git.weebosi.fr/apps/web.git", "path": "deploy",
                  "targetRevision": "v1.0.0", "namespace": "web"}],
    }


# One host size for every run: capacity is config, and changing it between two plans would show
# up in the blast radius (Cilium sizes its client rate by it).
HOST_FOR_TENANTS = 101


def stack_document(tenants: int) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    cfg = doc["config"]
    cfg["weebo-platform:tenants"] = [generated_tenant(i) for i in range(tenants)]
    # Capacity is not what is measured here: size the host for the generated fleet.
    n = HOST_FOR_TENANTS
    cfg["weebo-platform:hostCapacity"] = {"cpu": 40 * n, "memoryGib": 100 * n, "diskGib": 600 * n}
    # Each tenant's API and apps LoadBalancers take one pool address (validation counts them):
    # a /25 holds Traefik, Bind9 (their pinned addresses included) and the fleet.
    cfg["weebo-platform:managementCluster"]["loadBalancerIps"] = ["51.210.118.0/25"]
    return doc


def _tree_pss_kib(pid: int) -> int:
    """Proportional set size of a process and all its descendants (KiB), from /proc: pages that
    forked workers share with their parent count once in total, not once per process."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError, StopIteration):
            continue
    return total


def run_plan(doc: dict[str, Any], workdir: Path, name: str, jobs: int | None = None,
             sample_memory: bool = False) -> tuple[float, float, Path]:
    """Wall seconds and peak resident memory (MiB) of one offline plan, as a user runs it.

    With ``sample_memory``, memory is the largest proportional set size of the plan process and
    its workers (``--jobs``) together, sampled every 100 ms. Sampling costs a 2-core machine
    noticeable CPU, so timings come from runs that do not sample.
    """
    # Same stack name for every run: URNs carry it, and the blast radius compares URNs.
    (workdir / name).mkdir()
    stack_file = workdir / name / "Pulumi.bench.yaml"
    stack_file.write_text(yaml.safe_dump(doc))
    out = workdir / name / "plan"
    cmd = [sys.executable, "-m", "offline.plan", str(stack_file), "--quiet", "--out", str(out)]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    start = time.perf_counter()
    # Output goes to files, not pipes: this loop does not read while the plan runs, and a plan
    # printing more than a pipe holds (its violations, say) would block on the write.
    with open(workdir / name / "stdout", "w") as out_f, open(workdir / name / "stderr", "w+") as err_f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out_f, stderr=err_f, text=True)
        peak = 0
        while proc.poll() is None:
            if sample_memory:
                peak = max(peak, _tree_pss_kib(proc.pid))
            time.sleep(0.1 if sample_memory else 0.01)
        wall = time.perf_counter() - start
        err_f.seek(0)
        stderr = err_f.read()
    if proc.returncode != 0:
        # The generated tenants fit the host, the pool and the quotas: a plan that fails (policy,
        # convergence or anything else) is not a plan to time.
        raise SystemExit(f"plan of {name} failed:\n{stderr[-3000:]}")
    return wall, peak / 1024, out


def convergence_cost(out: Path) -> tuple[float, int]:
    """Seconds the convergence rules take over a written plan (in this process, best of three),
    and how many violations they report."""
    import convergence

    doc = json.loads((out / "plan.json").read_text())
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        found = convergence.run(doc)
        best = min(best, time.perf_counter() - start)
    return best, len(found)


def tenants_by_resource(resources: list[dict[str, Any]]) -> dict[str, str]:
    """URN -> tenant name, for every resource under a TenantCluster component."""
    by_urn = {r["urn"]: r for r in resources}
    out: dict[str, str] = {}
    for r in resources:
        cur = r
        while cur is not None:
            if cur["type"] == "weebo:tenants:TenantCluster":
                out[r["urn"]] = cur["name"]
                break
            cur = by_urn.get(cur["parent"])
    return out


def longest_chain(resources: list[dict[str, Any]], within: set[str] | None = None) -> int:
    """Length (in resources) of the longest chain of waits: dependencies and providers."""
    by_urn = {r["urn"]: r for r in resources if r["custom"]}
    # Waiting on a component means waiting on its custom descendants.
    children: dict[str, list[str]] = {}
    for r in resources:
        children.setdefault(r["parent"], []).append(r["urn"])
    component = {r["urn"] for r in resources if not r["custom"]}

    def expand(urn: str) -> list[str]:
        if urn not in component:
            return [urn]
        return [d for c in children.get(urn, []) for d in expand(c)]

    edges: dict[str, set[str]] = {}
    for urn, r in by_urn.items():
        deps = set(r["dependencies"]) | {d for ds in r["propertyDependencies"].values() for d in ds}
        if r["provider"]:
            deps.add(r["provider"])
        edges[urn] = {e for d in deps for e in expand(d) if e in by_urn}

    def member(urn: str) -> bool:
        return within is None or urn in within

    sys.setrecursionlimit(100000)

    @cache
    def depth(urn: str) -> int:
        return 1 + max((depth(d) for d in edges[urn] if member(d)), default=0)

    return max((depth(u) for u in by_urn if member(u)), default=0)


def blast_radius(old: Path, new: Path) -> tuple[int, int, int]:
    from offline.plan import diff_plans

    diff = diff_plans(json.loads((old / "plan.json").read_text()), json.loads((new / "plan.json").read_text()))
    return len(diff["added"]), len(diff["changed"]), len(diff["removed"])


def measure(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in sizes:
            wall, _, out = run_plan(stack_document(n), work, f"bench{n}")
            _, peak, _ = run_plan(stack_document(n), work, f"bench{n}memory", sample_memory=True)
            serial, _, out_serial = run_plan(stack_document(n), work, f"bench{n}serial", jobs=1)
            if (out_serial / "plan.json").read_bytes() != (out / "plan.json").read_bytes():
                raise SystemExit(f"{n} tenants: the plan in one process differs from the parallel plan")
            checks_s, unconverged = convergence_cost(out)
            plan = json.loads((out / "plan.json").read_text())
            resources = plan["resources"]
            tenant_of = tenants_by_resource(resources)
            per_tenant = len([r for r in resources if r["custom"] and r["urn"] in tenant_of]) / n if n else 0
            _, _, out_plus = run_plan(stack_document(n + 1), work, f"bench{n}plus")
            added, changed, removed = blast_radius(out, out_plus)
            rows.append({
                "tenants": n,
                "resources": len([r for r in resources if r["custom"]]),
                "wall_s": round(wall, 2),
                "serial_s": round(serial, 2),
                "convergence_s": round(checks_s, 2),
                "unconverged": unconverged,
                "peak_mib": round(peak),
                "per_tenant": round(per_tenant, 1),
                "chain": longest_chain(resources),
                "tenant_chain": longest_chain(resources, within={u for u, t in tenant_of.items() if t == "t000"}),
                "add_one": f"+{added} ~{changed} -{removed}",
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        f"Machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; measured {time.strftime('%Y-%m-%d')}.",
        "",
        "| tenants | resources | wall time (s) | one process (s) | convergence checks (s) | convergence violations | peak memory (MiB) | resources / tenant | longest chain | longest chain inside tenants | add one tenant: +added ~changed -removed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['tenants']} | {r['resources']} | {r['wall_s']} | {r['serial_s']} | {r['convergence_s']} | "
                     f"{r['unconverged']} | {r['peak_mib']} | {r['per_tenant']} | "
                     f"{r['chain']} | {r['tenant_chain']} | {r['add_one']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--write", action="store_true", help="rewrite the table in bench/README.md")
    args = parser.parse_args()
    rows = measure(sorted(args.sizes))
    text = table(rows)
    print(text)
    if args.write:
        readme = ROOT / "bench" / "README.md"
        body = readme.read_text()
        start, end = body.index(BEGIN), body.index(END)
        readme.write_text(body[: start + len(BEGIN)] + "\n" + text + "\n" + body[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
