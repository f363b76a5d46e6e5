"""Mutations of the real stack files (Pulumi.prod.yaml, Pulumi.dev.yaml): every leaf given wrong
types, every key removed, unknown keys at every level, YAML-level breakage. Each one is refused
with a ConfigError that names the mutated path (exit 2 on the command line) and registers
nothing, or it is a config that plans — never another exception, never a hang.

Sampled with a fixed seed (the same cases on every run); run in-process against the validation
entry point and the mock engine, not a subprocess per case.
"""

from __future__ import annotations

import copy
import random
import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

import offline.plan as plan_module
from stacks.config import ConfigError, _loc_to_path, parse_config
from stacks.loader import ROOT, load_yaml, parse_stack_document, project_defaults

SEED = 16
CASES_PER_KIND = 40
PLANNED_PER_STACK = 1  # accepted mutations are planned in full (about a second each)
PROJECT = "weebo-platform"
WRONG = [None, True, "not-a-value", 80.5, float("nan"), 10**30, -1, [], {}, ["x"], {"x": 1}, "", "1e30"]


def leaves(value: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every location in a document (containers included), depth first."""
    if loc:
        yield loc
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*loc, i))


def config_path(loc: tuple[Any, ...]) -> str | None:
    """The config path of a location under config: (project keys only), as problems name it."""
    if len(loc) < 2 or loc[0] != "config" or not str(loc[1]).startswith(f"{PROJECT}:"):
        return None
    return _loc_to_path((str(loc[1]).removeprefix(f"{PROJECT}:"), *loc[2:]))


def related(a: str, b: str) -> bool:
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def names(problem: Any, path: str) -> bool:
    """The problem is at the mutated key, or (a cross-field rule reported where the fix is not)
    its text names the mutated list or key: e.g. a tenant's group missing from ``netbird.groups``
    after ``netbird.groups[2]`` changed."""
    key = re.sub(r"(\[\d+\])+$", "", path)
    return related(problem.path, path) or key in problem.problem or key in problem.hint


def mutations(doc: dict[str, Any], rng: random.Random) -> list[tuple[str, str, dict[str, Any] | str]]:
    """(kind, mutated location, mutated document or YAML text)."""
    locs = [loc for loc in leaves(doc) if loc[0] == "config" and len(loc) > 1]
    out: list[tuple[str, str, dict[str, Any] | str]] = []

    def at(d: Any, loc: tuple[Any, ...]) -> Any:
        for part in loc:
            d = d[part]
        return d

    for loc in rng.sample(locs, min(CASES_PER_KIND, len(locs))):
        mutated = copy.deepcopy(doc)
        at(mutated, loc[:-1])[loc[-1]] = copy.deepcopy(rng.choice(WRONG))
        out.append(("wrong-type", repr(loc), mutated))
    for loc in rng.sample(locs, min(CASES_PER_KIND, len(locs))):
        mutated = copy.deepcopy(doc)
        parent = at(mutated, loc[:-1])
        del parent[loc[-1]]
        out.append(("removed", repr(loc), mutated))
    # Every mapping, the document and its config: included.
    maps = [(), ("config",)] + [loc for loc in leaves(doc) if isinstance(at(doc, loc), dict) and len(loc) > 1]
    for loc in [(), ("config",)] + rng.sample(maps[2:], min(CASES_PER_KIND, len(maps) - 2)):
        mutated = copy.deepcopy(doc)
        at(mutated, loc)["zzUnknownKey"] = 1
        out.append(("unknown-key", repr((*loc, "zzUnknownKey")), mutated))
    text = yaml.safe_dump(doc, sort_keys=False)
    lines = text.splitlines(keepends=True)
    for _ in range(CASES_PER_KIND // 2):
        i = rng.randrange(1, len(lines))
        broken = rng.choice([
            lambda: "".join(lines[:i]) + lines[i][: len(lines[i]) // 2] + ":\n  - [\n",  # truncated
            lambda: "".join(lines[:i]) + "\t" + "".join(lines[i:]),  # a tab indent
            lambda: "".join(lines[:i]) + lines[i - 1] + "".join(lines[i:]),  # a line twice
            lambda: "".join(lines[:i]) + lines[i].replace(": ", ": &a ", 1) + "".join(lines[i + 1:]),  # an anchor
        ])()
        out.append(("yaml", f"line {i + 1}", broken))
    return out


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang("a case took more than 20 s")


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_mutated_stack_files_are_refused_at_the_mutated_path_or_plan(stack: str, monitors: list):
    created = monitors
    source = f"Pulumi.{stack}.yaml"
    doc = load_yaml((ROOT / source).read_bytes(), source, stack)
    defaults = project_defaults()
    rng = random.Random(SEED)
    planned = refused = 0
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for kind, where, mutated in mutations(doc, rng):
            signal.alarm(20)  # the hang guard of one case (not a timing assertion)
            stack_file = None
            try:
                if isinstance(mutated, str):
                    mutated = load_yaml(mutated.encode(), source, stack)  # may refuse: ConfigError
                stack_file = parse_stack_document(stack, mutated, defaults, source=source)
                parse_config(stack_file.raw, stack_file.secret_keys, stack=stack, provider_keys=stack_file.provider_config,
                             secure_paths=stack_file.secure_paths)
            except ConfigError as error:
                refused += 1
                assert error.problems and all(p.path and p.problem and p.hint for p in error.problems), (kind, where)
                assert "Traceback" not in str(error)
                loc = eval(where) if kind != "yaml" else None  # noqa: S307 - our own repr of a tuple
                path = config_path(loc) if loc else None
                if kind == "yaml":
                    pass  # refused by the loader (file:line:column) or, when still valid YAML, by validation
                elif path is not None and kind != "removed":
                    assert any(names(p, path) for p in error.problems), (kind, where, str(error))
                elif loc and path is None and kind != "removed":
                    # a key outside the project namespace, or of the document: named as written
                    named = str(loc[1] if len(loc) >= 2 else loc[0])
                    assert any(named in p.path for p in error.problems), (kind, where, str(error))
                if stack_file is not None:
                    # The program refuses it too, before the first resource.
                    created.clear()
                    with pytest.raises(ConfigError):
                        plan_module.run_offline(stack_file)
                    assert all(m.registrations == {} and m.invokes == [] for m in created), (kind, where)
                continue
            finally:
                signal.alarm(0)
            if planned < PLANNED_PER_STACK:
                signal.alarm(120)
                try:
                    result = plan_module.run_offline(stack_file)
                finally:
                    signal.alarm(0)
                assert result.registrations, (kind, where)
                planned += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert refused >= CASES_PER_KIND  # the sample exercises the refusals, not only accepted configs
