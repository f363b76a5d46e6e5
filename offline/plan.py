"""Offline plan: run the real program in-process under Pulumi's mock engine.

    python -m offline.plan prod                 # plan the prod stack into build/plan/prod
    python -m offline.plan prod --diff OLD_DIR  # and show the blast radius against an older plan

No CLI, no credentials, no network. ``secure:`` values are replaced by placeholders. The result
is what a first ``pulumi preview`` of the stack would register: every resource with its parent,
provider, dependencies, protect flags and inputs (secrets shown as ``[secret]``, values only known
after deployment as ``[unknown]``), every Kubernetes object as YAML and every Helm release with its
values. The same config always gives byte-identical output.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy import rules as policy_rules
from stacks import config as config_module
from offline import plan_yaml
from stacks.config import PROJECT, ConfigError, PlatformConfig, Tenant, parse_config
from stacks.loader import ROOT, StackFile, read_stack, read_stack_file
from offline.mocks import EngineRefusal, InlineExecutor, PlanMocks, RecordingMonitor, Registration, redact

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


@dataclass
class PlanResult:
    stack: str
    monitor: RecordingMonitor

    @property
    def registrations(self) -> list[Registration]:
        return sorted(self.monitor.registrations.values(), key=lambda r: r.urn)


def run_offline(stack_file: StackFile, preview: bool = True,
                tenants: Collection[str] | None = None) -> PlanResult:
    """Run the program of ``stack_file`` under the mock engine and return the recorded graph.

    ``tenants`` narrows which tenant clusters are built (see :func:`plan_in_parallel`).
    Raises :class:`ConfigError` (before anything is registered) when the config is invalid.
    """
    import pulumi
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.sync_await import _ensure_event_loop

    flat, secret_keys = stack_file.pulumi_config()
    pulumi.runtime.set_all_config(flat, secret_keys)
    mocks = PlanMocks(preview=preview)
    monitor = RecordingMonitor(mocks, project=PROJECT, stack=stack_file.stack)
    # A fresh root stack for every run, so several plans can run in one process (tests). The SDK
    # keeps the root in a context variable (pulumi.runtime.settings.ROOT; reset_options clears it
    # the same way): without this, a second plan parented its resources to the first plan's Stack,
    # which the engine refuses (RecordingMonitor.refuse).
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack_file.stack, preview=preview, monitor=monitor)
    _ensure_event_loop().set_default_executor(InlineExecutor())

    from offline import sdk_speedups
    from stacks.program import main

    # Only the offline plan patches the SDK (measured: bench/README.md); the real program never does.
    sdk_speedups.apply()

    @pulumi.runtime.test
    def program() -> None:
        main(tenants)

    # The SDK allocates several futures, tasks and closures per resource, nearly all alive until
    # the end: the cyclic collector would re-scan that growing heap again and again (a quarter
    # of the plan's time) to free little. It runs once, after the program.
    was_enabled = gc.isenabled()
    gc.disable()
    # The program checks secure values leaf by leaf against this stack file (not whatever
    # Pulumi.<stack>.yaml lies in the working directory).
    config_module.SECURE_PATHS_OVERRIDE.append(stack_file.secure_paths)
    try:
        try:
            program()
            monitor.stack_outputs = _resolve_stack_outputs()
        except Exception:
            if monitor.refusals:
                raise _refused(monitor) from None
            raise
        if monitor.refusals:
            raise _refused(monitor)
    finally:
        config_module.SECURE_PATHS_OVERRIDE.pop()
        if was_enabled:
            gc.enable()
    return PlanResult(stack=stack_file.stack, monitor=monitor)


def _refused(monitor: RecordingMonitor) -> EngineRefusal:
    """One error naming every registration the real engine would refuse."""
    problems = list(dict.fromkeys(monitor.refusals))
    return EngineRefusal(f"{len(problems)} registration(s) the Pulumi engine would refuse:\n"
                         + "\n".join(f"  - {p}" for p in problems))


def _resolve_stack_outputs() -> dict[str, Any]:
    """Stack exports, secrets wrapped as the engine would store them (the mock engine does not
    receive the root stack's outputs)."""
    import pulumi
    from pulumi.runtime import rpc
    from pulumi.runtime.settings import get_root_resource
    from pulumi.runtime.sync_await import _sync_await

    root = get_root_resource()
    outputs: dict[str, Any] = {}

    async def resolve(value: Any) -> Any:
        out = pulumi.Output.from_input(value)
        known = await out.is_known()
        secret = await out.is_secret()
        resolved = await out.future(with_unknowns=True) if known else rpc.UNKNOWN
        return rpc.wrap_rpc_secret(resolved) if secret else resolved

    for key, value in sorted(getattr(root, "outputs", {}).items()):
        outputs[key] = _sync_await(resolve(value))
    return outputs


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def _short_type(type_: str) -> str:
    return type_.split(":")[-1]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def resource_record(reg: Registration) -> dict[str, Any]:
    return {
        "urn": reg.urn,
        "type": reg.type,
        "name": reg.name,
        "custom": reg.custom,
        "parent": reg.parent,
        "provider": reg.provider_urn,
        "dependencies": reg.dependencies,
        "propertyDependencies": reg.property_dependencies,
        "protect": reg.protect,
        "retainOnDelete": reg.retain_on_delete,
        "deletedWith": reg.deleted_with,
        "ignoreChanges": reg.ignore_changes,
        "replaceOnChanges": reg.replace_on_changes,
        "additionalSecretOutputs": reg.additional_secret_outputs,
        "customTimeouts": reg.custom_timeouts,
        "aliases": reg.aliases,
        "inputs": redact(reg.inputs),
    }


def plan_document(result: PlanResult) -> dict[str, Any]:
    return _document(result.stack, [resource_record(r) for r in result.registrations],
                     redact(result.monitor.stack_outputs))


def _document(stack: str, records: list[dict[str, Any]], outputs: Any) -> dict[str, Any]:
    """plan.json: the records sorted by URN, and the stack outputs."""
    return {"project": PROJECT, "stack": stack, "resources": records, "outputs": outputs}


@dataclass
class RenderedPlan:
    """Everything a plan writes, as data, plus what the policy needs from the program.

    ``files`` maps paths under the plan directory (``manifests/…``, ``releases/…``) to their text;
    ``secrets`` holds every value that was a Pulumi secret (to look for leaks in the files);
    ``violations`` are those of the per-resource rules.
    """

    stack: str
    resources: dict[str, dict[str, Any]]
    files: dict[str, str]
    outputs: Any
    secrets: set[str]
    violations: set[policy_rules.Violation]
    # Each record as it appears in plan.json, encoded where it was rendered (in parallel).
    encoded: dict[str, str] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return _document(self.stack, [self.resources[urn] for urn in sorted(self.resources)], self.outputs)

    def plan_json(self) -> str:
        """``json.dumps(self.document(), indent=2, sort_keys=True)`` plus a newline, assembled
        from the records encoded by :func:`render` (tested to be the same text)."""
        text = json.dumps(_document(self.stack, [], self.outputs), indent=2, sort_keys=True)
        if self.resources:
            records = ",\n".join(self.encoded[urn] if urn in self.encoded else _encode_record(self.resources[urn])
                                  for urn in sorted(self.resources))
            text = text.replace('\n  "resources": [],\n', f'\n  "resources": [\n{records}\n  ],\n', 1)
        return text + "\n"


def _encode_record(record: dict[str, Any]) -> str:
    """A record as an item of plan.json's ``resources`` list (two levels deep): the text
    ``json.dumps(indent=2, sort_keys=True)`` gives, written by :func:`_pretty_json` (twice as
    fast: the standard library's encoder is pure Python as soon as it indents)."""
    out = ["    "]
    try:
        _pretty_json(record, "    ", out)
    except TypeError:
        return "    " + json.dumps(record, indent=2, sort_keys=True).replace("\n", "\n    ")
    return "".join(out)


def _pretty_json(value: Any, indent: str, out: list[str]) -> None:
    t = type(value)
    if t is str:
        out.append(_json_string(value))
    elif t is dict:
        if not value:
            out.append("{}")
            return
        inner = indent + "  "
        sep = "{\n"
        for key in sorted(value):
            if type(key) is not str:
                raise TypeError(key)
            out.append(sep)
            out.append(inner)
            out.append(_json_string(key))
            out.append(": ")
            _pretty_json(value[key], inner, out)
            sep = ",\n"
        out.append("\n" + indent + "}")
    elif t is list or t is tuple:
        if not value:
            out.append("[]")
            return
        inner = indent + "  "
        sep = "[\n"
        for item in value:
            out.append(sep)
            out.append(inner)
            _pretty_json(item, inner, out)
            sep = ",\n"
        out.append("\n" + indent + "]")
    elif value is None or t is bool or t is int or t is float:
        out.append(json.dumps(value))
    else:
        raise TypeError(t)


_json_string = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def render(result: PlanResult, context: dict[str, Any] | None = None) -> RenderedPlan:
    """Records, files and per-resource policy verdicts of a recorded run (``context``: see
    :func:`policy_context`)."""
    resources: dict[str, dict[str, Any]] = {}
    files: dict[str, str] = {}
    secrets: set[str] = set()
    for reg in result.registrations:
        record = resources[reg.urn] = resource_record(reg)
        secrets.update(policy_rules.secret_values(reg.inputs))
        if not reg.custom or not reg.type.startswith("kubernetes:") or reg.type.startswith("pulumi:providers:"):
            continue
        inputs = record["inputs"]
        if reg.type == HELM_RELEASE:
            repo = (inputs.get("repositoryOpts") or {}).get("repo")
            release = {
                "name": inputs.get("name", reg.name),
                "namespace": inputs.get("namespace"),
                "chart": inputs.get("chart"),
                "repo": repo,
                "version": inputs.get("version"),
                "values": inputs.get("values", {}),
            }
            files[f"releases/{_safe(reg.name)}.yaml"] = plan_yaml.dump(release)
        else:
            manifest = {k: v for k, v in inputs.items() if k not in ("__defaults",)}
            files[f"manifests/{_safe(_short_type(reg.type))}-{_safe(reg.name)}.yaml"] = plan_yaml.dump(manifest)
    secrets.update(policy_rules.secret_values(result.monitor.stack_outputs))
    violations = set(policy_rules.resource_violations(resources.values(), context))
    return RenderedPlan(stack=result.stack, resources=resources, files=files,
                        outputs=redact(result.monitor.stack_outputs), secrets=secrets, violations=violations,
                        encoded={urn: _encode_record(record) for urn, record in resources.items()})


def _write(path: Path, text: str) -> None:
    # os-level writes: pathlib's write_text costs ten times more per file, and a plan of 100
    # tenants writes thousands of files.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_rendered(plan: RenderedPlan, out: Path) -> dict[str, Any]:
    """Write plan.json, manifests/ and releases/ into ``out`` (replaced as a whole)."""
    # The previous plan is moved aside and deleted last: creating thousands of files right
    # after deleting thousands of others waits on the filesystem journal (several seconds).
    previous = out.with_name(f".{out.name}.previous-{os.getpid()}")
    if out.exists():
        out.rename(previous)
    try:
        (out / "manifests").mkdir(parents=True)
        (out / "releases").mkdir()
        _write(out / "plan.json", plan.plan_json())
        for path, text in plan.files.items():
            _write(out / path, text)
    finally:
        if previous.exists():
            shutil.rmtree(previous)
    return plan.document()


def write_plan(result: PlanResult, out: Path) -> dict[str, Any]:
    """Write plan.json, manifests/ and releases/ into ``out`` (replaced as a whole)."""
    return write_rendered(render(result), out)


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------

def policy_context(cfg: PlatformConfig) -> dict[str, Any]:
    """What the rules need from the stack config (explicit exemptions)."""
    mc = cfg.management_cluster
    return {
        "allowReinstall": mc.allow_reinstall,
        # StorageClasses that exist on a cluster without the program creating them (convergence
        # rule "storage"): the management cluster's declared classes.
        "declaredStorageClasses": {"management": sorted(mc.declared_storage_classes)},
    }


def judge(plan: RenderedPlan, doc: dict[str, Any], out: Path,
          context: dict[str, Any] | None = None) -> list[policy_rules.Violation]:
    """All violations of a written plan: the per-resource verdicts already in ``plan``, the
    rules over the whole plan, and any secret value found in a written file. Writes
    ``<out>/policy.json``."""
    files = {**plan.files, "plan.json": plan.plan_json()}
    violations = sorted(plan.violations | set(policy_rules.stack_violations(doc, context))
                        | set(policy_rules.secret_leaks(plan.secrets, files)))
    (out / "policy.json").write_text(json.dumps(policy_rules.report(violations), indent=2, sort_keys=True) + "\n")
    return violations


def write_policy(result: PlanResult, doc: dict[str, Any], out: Path,
                 context: dict[str, Any] | None = None) -> list[policy_rules.Violation]:
    """:func:`judge` for a run written by :func:`write_plan` (``doc`` is what it returned)."""
    return judge(render(result, context), doc, out, context)


def converge(doc: dict[str, Any], out: Path, context: dict[str, Any] | None = None) -> list[Any]:
    """The convergence rules (``convergence/``) over the whole written plan — the merged one when
    planned in parallel: the rules need every cluster's objects at once. Writes
    ``<out>/convergence.json``."""
    import convergence

    violations = convergence.run(doc, context)
    (out / "convergence.json").write_text(json.dumps(convergence.report(violations), indent=2, sort_keys=True) + "\n")
    return violations


# ---------------------------------------------------------------------------------------------
# Parallel planning
# ---------------------------------------------------------------------------------------------

class ShardMismatch(RuntimeError):
    """Two parallel parts of a plan disagree on a resource both built: that resource depends on
    which tenants exist."""


class WorkerFailed(RuntimeError):
    """A worker of a parallel plan failed with an error that is not a :class:`ConfigError`;
    ``status`` is the exit status of the command line."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.status))


@dataclass(frozen=True)
class _ShardError:
    """What a worker returns instead of its part when it fails: always picklable (an error that
    does not survive pickling would leave the parent waiting for a result that never comes)."""

    error: BaseException


def _plan_shard(stack_file: StackFile, tenants: list[str], context: dict[str, Any]) -> RenderedPlan | _ShardError:
    gc.disable()  # a short-lived worker: see main()
    try:
        return render(run_offline(stack_file, tenants=tenants), context)
    except BaseException as exc:  # noqa: BLE001 - every error goes back to the parent, intact
        return _shard_error(exc, tenants)


def _shard_error(exc: BaseException, tenants: list[str]) -> _ShardError:
    import pickle
    import traceback

    if isinstance(exc, (ConfigError, ShardMismatch, WorkerFailed)):
        try:
            if type(pickle.loads(pickle.dumps(exc))) is type(exc):
                return _ShardError(exc)
        except Exception:  # noqa: BLE001 - fall back to the summary below
            pass
    text = "".join(traceback.format_exception(exc)).rstrip()
    return _ShardError(WorkerFailed(f"the worker planning tenants {tenants} failed:\n{text}"))


def merge(parts: list[RenderedPlan], shards: list[list[str]]) -> RenderedPlan:
    """One plan from plans of disjoint sets of tenants (``shards[i]`` for ``parts[i]``).

    What every part built is the platform: it must be identical in every part, or it depends on
    the tenant list (a tenant would then change a shared resource). What one part built belongs
    to its tenants. Anything else (built by some parts only) is refused the same way.
    """
    def combine(kind: str, maps: list[dict[str, Any]]) -> dict[str, Any]:
        owners: dict[str, list[int]] = {}
        for i, m in enumerate(maps):
            for key in m:
                owners.setdefault(key, []).append(i)
        merged: dict[str, Any] = {}
        for key, found in owners.items():
            first = maps[found[0]][key]
            if 1 < len(found) < len(maps) or any(maps[i][key] != first for i in found[1:]):
                differ = next((i for i in found[1:] if maps[i][key] != first), None)
                where = (f"differs between the parts planning tenants {shards[found[0]]} and {shards[differ]}"
                         if differ is not None else f"is built only with tenants {[shards[i] for i in found]}")
                raise ShardMismatch(
                    f"{kind} {key} {where}: a resource outside the tenants depends on which tenants are "
                    "built, so adding a tenant would change it: build it from the whole stack config "
                    "(stacks.environment.build_environment), not from the tenants being built.")
            merged[key] = first
        return merged

    if len(parts) == 1:
        return parts[0]
    outputs = {p.stack: None for p in parts}
    if len(outputs) != 1 or any(p.outputs != parts[0].outputs for p in parts):
        raise ShardMismatch("the parts of the plan disagree on the stack outputs: an output depends on which "
                            "tenants are built; derive it from the stack config")
    return RenderedPlan(
        stack=parts[0].stack,
        resources=combine("resource", [p.resources for p in parts]),
        files=combine("file", [p.files for p in parts]),
        outputs=parts[0].outputs,
        secrets=set().union(*(p.secrets for p in parts)),
        violations=set().union(*(p.violations for p in parts)),
        encoded={urn: text for p in parts for urn, text in p.encoded.items()},
    )


def shard_tenants(tenants: list[tuple[str, int]], jobs: int) -> list[list[str]]:
    """(name, weight) tenants dealt into at most ``jobs`` non-empty parts of even total weight:
    heaviest first, each to the lightest part so far (ties: the first part). Each part lists its
    tenants in config order."""
    n = max(1, min(jobs, len(tenants)))
    order = {name: i for i, (name, _) in enumerate(tenants)}
    parts: list[list[str]] = [[] for _ in range(n)]
    load = [0] * n
    for name, weight in sorted(tenants, key=lambda t: (-t[1], order[t[0]])):
        i = load.index(min(load))
        parts[i].append(name)
        load[i] += weight
    return [sorted(p, key=order.__getitem__) for p in parts]


def tenant_weight(tenant: Tenant) -> int:
    """Roughly the resources a tenant registers (measured on the prod plan): a fixed set, four per
    worker pool, one per application, seven for a NetBird route."""
    return 60 + 4 * len(tenant.worker_pools) + len(tenant.apps) + (7 if tenant.netbird_route else 0)


def plan_in_parallel(stack_file: StackFile, cfg: PlatformConfig, jobs: int) -> RenderedPlan:
    """The plan of ``stack_file``, built by up to ``jobs`` processes.

    Tenants never wait on one another and the platform does not depend on them (tested), so
    each process runs the real program for its share of the tenants, platform included, and the
    parts are merged by :func:`merge`, which refuses any disagreement. The result is the plan of
    one process, byte for byte (tested).
    """
    import multiprocessing
    import threading

    context = policy_context(cfg)
    shards = shard_tenants([(t.name, tenant_weight(t)) for t in cfg.tenants], jobs)
    # Workers are forked: they inherit the imports (a second of start-up each). Forking is only
    # safe while this process runs no other thread (a lock held by one would stay held in the
    # children); otherwise (a caller with threads) the plan is built here, in one process.
    if len(shards) == 1 or threading.active_count() != 1:
        return render(run_offline(stack_file), context)
    import stacks.program  # noqa: F401 - imported once here, inherited by every worker

    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # A process pool that notices a dead worker (BrokenProcessPool) instead of waiting forever;
    # with "fork" it starts every worker up front, before its own manager thread.
    try:
        with ProcessPoolExecutor(len(shards), mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_plan_shard, [stack_file] * len(shards), shards, [context] * len(shards)))
    except BrokenProcessPool as exc:
        raise WorkerFailed(f"a worker of the parallel plan died ({exc}); rerun with --jobs 1 to see why") from None
    for part in parts:
        if isinstance(part, _ShardError):
            raise part.error
    return merge(parts, shards)  # type: ignore[arg-type]


def print_violations(violations: list[policy_rules.Violation], console: Any) -> None:
    for v in violations:
        style = "red" if v.mandatory else "yellow"
        console.print(v.render(), style=style, markup=False, highlight=False)


def print_tree(doc: dict[str, Any], console: Any) -> None:
    from rich.tree import Tree

    resources = doc["resources"]
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_parent.setdefault(r["parent"], []).append(r)
    counts = Counter("custom" if r["custom"] else "component" for r in resources)
    root = Tree(
        f"[bold]{doc['project']}[/] / stack [bold]{doc['stack']}[/]: "
        f"{counts['custom']} resources in {counts['component']} components"
    )

    def total(urn: str) -> int:
        return sum(1 + total(c["urn"]) if not c["custom"] else 1 for c in by_parent.get(urn, []))

    def add(node: Any, urn: str) -> None:
        children = by_parent.get(urn, [])
        for comp in (c for c in children if not c["custom"]):
            flags = " [red]protected[/]" if comp["protect"] else ""
            sub = node.add(f"[cyan]{comp['type']}[/] [bold]{comp['name']}[/] ({total(comp['urn'])}){flags}")
            add(sub, comp["urn"])
        leaf = Counter(c["type"] for c in children if c["custom"])
        protected = Counter(c["type"] for c in children if c["custom"] and c["protect"])
        for type_, n in sorted(leaf.items()):
            mark = f" [red]{protected[type_]} protected[/]" if protected[type_] else ""
            node.add(f"{type_} × {n}{mark}")

    roots = sorted({r["parent"] for r in resources if r["parent"] not in {x["urn"] for x in resources}})
    for parent in roots:
        add(root, parent)
    console.print(root)


# ---------------------------------------------------------------------------------------------
# Diff
# ---------------------------------------------------------------------------------------------

_COMPARED = ("inputs", "dependencies", "propertyDependencies", "provider", "parent", "protect", "retainOnDelete", "deletedWith")


def _changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(path)
            else:
                out.extend(_changed_paths(old[k], new[k], path))
        return out
    return [] if old == new else [prefix or "."]


def diff_plans(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    old_by = {r["urn"]: r for r in old["resources"]}
    new_by = {r["urn"]: r for r in new["resources"]}
    changed: dict[str, list[str]] = {}
    for urn in sorted(set(old_by) & set(new_by)):
        paths: list[str] = []
        for key in _COMPARED:
            paths.extend(f"{key}.{p}" if p != "." else key for p in _changed_paths(old_by[urn].get(key), new_by[urn].get(key)))
        if paths:
            changed[urn] = paths
    return {
        "added": sorted(set(new_by) - set(old_by)),
        "removed": sorted(set(old_by) - set(new_by)),
        "changed": changed,
    }


def print_diff(diff: dict[str, Any], console: Any) -> None:
    console.print(
        f"[bold]blast radius[/]: {len(diff['added'])} to add, {len(diff['changed'])} to change, "
        f"{len(diff['removed'])} to remove"
    )
    for urn in diff["added"]:
        console.print(f"[green]+ {urn}[/]", markup=True, highlight=False)
    for urn, paths in diff["changed"].items():
        console.print(f"[yellow]~ {urn}[/]", highlight=False)
        for p in paths:
            console.print(f"    {p}", highlight=False, markup=False)
    for urn in diff["removed"]:
        console.print(f"[red]- {urn}[/]", highlight=False)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def _read(stack_or_path: str) -> StackFile:
    path = Path(stack_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise FileNotFoundError(f"no stack file {path}")
        return read_stack_file(path, source=stack_or_path)
    return read_stack(stack_or_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="stack name (reads Pulumi.<stack>.yaml) or the path of a stack file")
    parser.add_argument("--out", type=Path, help="output directory (default build/plan/<stack>)")
    parser.add_argument("--diff", type=Path, metavar="OLD_DIR", help="a previous plan directory to compare with")
    parser.add_argument("--quiet", action="store_true", help="do not print the resource tree")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="plan the tenants in up to N processes (default: one per CPU); same output")
    args = parser.parse_args(argv)
    # A plan builds one large heap that lives until the process ends; the cyclic collector
    # would re-scan it again and again to free next to nothing (bench/README.md).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _main(args)
    finally:
        if was_enabled:
            gc.enable()


def _main(args: argparse.Namespace) -> int:
    from rich.console import Console

    # Not on a terminal (CI logs, a pipe), rich would wrap every line at its width: a URN, a
    # policy or convergence message would be split mid-value. There, lines are printed whole
    # (soft_wrap); the tree keeps its 140-column layout either way.
    console = Console(highlight=False, width=140, soft_wrap=not sys.stdout.isatty())
    # soft_wrap: a message is never re-wrapped at the terminal width (paths stay whole for grep).
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    try:
        stack_file = _read(args.stack)
        # Validate first, exactly as the program does, so bad config registers nothing.
        cfg = parse_config(stack_file.raw, stack_file.secret_keys, stack=stack_file.stack,
                           provider_keys=stack_file.provider_config, secure_paths=stack_file.secure_paths)
        plan = plan_in_parallel(stack_file, cfg, args.jobs)
    except ConfigError as exc:
        err.print(str(exc), markup=False)
        return 2
    except FileNotFoundError as exc:
        err.print(str(exc), markup=False)
        return 2
    except ShardMismatch as exc:
        err.print(f"stack '{args.stack}': {exc}", markup=False)
        return 1
    except WorkerFailed as exc:
        err.print(f"stack '{args.stack}': {exc}", markup=False)
        return exc.status
    except EngineRefusal as exc:
        err.print(f"stack '{args.stack}': {exc}", markup=False, soft_wrap=True)
        return 1

    out = args.out or ROOT / "build" / "plan" / stack_file.stack
    doc = write_rendered(plan, out)
    if not args.quiet:
        print_tree(doc, console)
    console.print(f"plan written to {out}")
    if args.diff:
        old_path = args.diff / "plan.json"
        if not old_path.exists():
            err.print(f"--diff: {old_path} does not exist", markup=False)
            return 2
        print_diff(diff_plans(json.loads(old_path.read_text()), doc), console)

    violations = judge(plan, doc, out, policy_context(cfg))
    print_violations(violations, console)
    failed = policy_rules.mandatory(violations)
    console.print(f"policy: {len(failed)} mandatory, {len(violations) - len(failed)} advisory violation(s) "
                  f"(report in {out / 'policy.json'})")
    unconverged = converge(doc, out, policy_context(cfg))
    for v in unconverged:
        console.print(v.render(), style="red", markup=False, highlight=False)
    console.print(f"convergence: {len(unconverged)} violation(s) (report in {out / 'convergence.json'})")
    if failed:
        err.print(f"stack '{args.stack}': {len(failed)} mandatory policy violation(s); see above.", markup=False)
    if unconverged:
        err.print(f"stack '{args.stack}': {len(unconverged)} convergence violation(s): a real cluster would not "
                  "converge; see above.", markup=False)
    return 1 if failed or unconverged else 0


if __name__ == "__main__":
    code = main()
    # Everything is written and closed: skip tearing down a heap of hundreds of MB object by
    # object (half a second on a plan of 100 tenants) at interpreter exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
