"""Measured speed-ups of Pulumi Python SDK internals, each giving exactly the SDK's answer.

Profiling the plan of 30-100 tenants (bench/README.md) found these costs, paid for every
resource (the first three grow with the size of the graph):

* **Dependency cycle check** (``resource_cycle_breaker``). Before recording "A depends on B" the
  SDK asks whether B already reaches A, by walking *everything B depends on* - for a tenant
  resource that is most of the platform, for every dependency of every resource. The same
  question is answered here from the other end: walk *what depends on A*. A is being registered,
  so usually little depends on it yet. Both walks run in turn and stop when either side is
  exhausted or they meet: the cost is that of the smaller side. Reverse edges are kept as the
  SDK records forward ones; "B reaches A forwards" and "A reaches B backwards" are the same path.
* **Recording a dependency** (``_add_dep``) copied the whole dependency set to add one element:
  quadratic for resources that wait on large components. It now adds in place.
* **Source positions** (``resource._get_stack_trace``). The SDK captures the caller's stack for
  every resource with ``traceback.extract_stack``, which also reads every frame's source line
  (``linecache``, one ``stat`` per file per resource) and builds a ``file://`` URI per frame,
  only to keep file name and line number. The replacement walks the same frames, keeps the same
  fields and caches the URI per file.
* **The URN computed before every registration** (``resource.create_urn``) through a chain of
  outputs, although every part is a known string: built as a string in that case.
* **Type annotations** (``_types.unwrap_type``): ``Optional[Input[T]]`` unwrapped again for every
  value serialised or deserialised: remembered per annotation object.

Applied before any resource is registered by the offline plan only (``offline.plan.run_offline``):
a real ``pulumi up`` runs ``stacks.program`` on the stock SDK, where a wrong "cycle" answer would
silently drop a dependency edge and a Renovate bump could move the patched code. The SDK is pinned in requirements.txt; ``tests/test_sdk_speedups.py`` checks each
replacement against the SDK's own function.
"""

from __future__ import annotations

import pathlib
import sys
from functools import lru_cache
from typing import Any

from pulumi import _types as sdk_types
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import resource_cycle_breaker
from pulumi.runtime.proto import source_pb2

_original_reachable = resource_cycle_breaker._reachable
_original_add_dep = resource_cycle_breaker._add_dep
_original_get_stack_trace = sdk_resource._get_stack_trace
_original_create_urn = sdk_resource.create_urn
_original_unwrap_type = sdk_types.unwrap_type
_original_unwrap_optional_type = sdk_types.unwrap_optional_type

_DEPENDENTS = "_weebo_dependents"  # reverse edges: the resources that depend on this one


def _dependents(res: Any) -> set[Any]:
    return getattr(res, _DEPENDENTS, ())  # type: ignore[return-value]


def _add_dep(from_resource: Any, to_resource: Any) -> None:
    deps = getattr(from_resource, resource_cycle_breaker._DEPENDENCIES_PROPERTY, None)
    if deps is None:
        deps = set()
        setattr(from_resource, resource_cycle_breaker._DEPENDENCIES_PROPERTY, deps)
    deps.add(to_resource)
    dependents = getattr(to_resource, _DEPENDENTS, None)
    if dependents is None:
        dependents = set()
        setattr(to_resource, _DEPENDENTS, dependents)
    dependents.add(from_resource)


def _reachable(from_resource: Any, to_resource: Any) -> bool:
    """Whether ``to_resource`` is among the transitive dependencies of ``from_resource``
    (``from_resource`` itself included).

    Searched from both ends at once, one step each in turn: forwards from ``from_resource``
    along dependencies, backwards from ``to_resource`` along dependents. A path exists when the
    two searches meet; none exists as soon as either side runs out, so the cost is bounded by
    the smaller of the two neighbourhoods.
    """
    deps = resource_cycle_breaker._deps
    if from_resource == to_resource:
        return True
    ahead, behind = {from_resource}, {to_resource}
    ahead_todo, behind_todo = [from_resource], [to_resource]
    while ahead_todo and behind_todo:
        for r in deps(ahead_todo.pop()):
            if r in behind:
                return True
            if r not in ahead:
                ahead.add(r)
                ahead_todo.append(r)
        for r in _dependents(behind_todo.pop()):
            if r in ahead:
                return True
            if r not in behind:
                behind.add(r)
                behind_todo.append(r)
    return False


@lru_cache(maxsize=None)
def _position(filename: str, line: int) -> source_pb2.SourcePosition | None:
    try:
        uri = pathlib.Path(filename).as_uri()
    except BaseException:  # noqa: BLE001 - the SDK drops frames it cannot name, so does this
        return None
    return source_pb2.SourcePosition(uri=uri, line=line)


def _get_stack_trace() -> source_pb2.StackTrace:
    """The SDK's stack trace: the frames outside the third ``__init__`` from the top (the
    concrete resource's constructor), innermost first, as (file URI, line)."""
    if getattr(sys, "tracebacklimit", None) is not None:
        return _original_get_stack_trace()
    frames = []
    f = sys._getframe(1)
    while f is not None:
        frames.append(f)
        f = f.f_back
    # frames[0] is the caller; the SDK's own list also holds this function's frame (never an
    # ``__init__``), so indexes below are shifted by one against it.
    seen = 0
    for j, frame in enumerate(frames):
        if frame.f_code.co_name == "__init__":
            seen += 1
            if seen == 3:
                break
    else:
        return source_pb2.StackTrace()
    if j >= len(frames) - 1:
        return source_pb2.StackTrace()
    out = []
    for frame in frames[j + 1:]:
        filename, line = frame.f_code.co_filename, frame.f_lineno
        pos = None if filename == "" or line is None else _position(filename, line)
        out.append(source_pb2.StackFrame(pc=pos))
    return source_pb2.StackTrace(frames=out)


def _create_urn(name: Any, type_: Any, parent: Any = None, project: str | None = None,
                stack: str | None = None) -> Any:
    """The SDK's ``create_urn`` without its chain of outputs when every part is a plain string
    (as for the URN it computes before every registration, from the parent's resolved URN)."""
    if not (isinstance(name, str) and isinstance(type_, str) and (parent is None or isinstance(parent, str))):
        return _original_create_urn(name, type_, parent, project, stack)
    from pulumi import Output
    from pulumi.runtime import settings

    if parent is not None:
        prefix = parent[0: parent.rfind("::")] + "$"
    else:
        prefix = ("urn:pulumi:" + (settings.get_stack() if stack is None else stack) + "::"
                  + (settings.get_project() if project is None else project) + "::")
    return Output.from_input(prefix + type_ + "::" + name)


def _memoized_by_identity(fn: Any) -> Any:
    """``fn`` remembered per argument object. The SDK unwraps the type annotations of resource
    and input classes (``Optional[Input[T]]`` -> ``T``) for every value it serialises or
    deserialises: the same few hundred annotation objects, hundreds of thousands of times. The
    answer depends only on the annotation, and annotations live as long as their classes; the
    cache keeps each argument alive so that its ``id`` is never reused."""
    cache: dict[int, tuple[Any, Any]] = {}

    def memoized(val: Any) -> Any:
        hit = cache.get(id(val))
        if hit is not None and hit[0] is val:
            return hit[1]
        result = fn(val)
        cache[id(val)] = (val, result)
        return result

    memoized.__wrapped__ = fn  # type: ignore[attr-defined]
    return memoized


_unwrap_type = _memoized_by_identity(_original_unwrap_type)
_unwrap_optional_type = _memoized_by_identity(_original_unwrap_optional_type)


def apply() -> None:
    resource_cycle_breaker._reachable = _reachable
    resource_cycle_breaker._add_dep = _add_dep
    sdk_resource._get_stack_trace = _get_stack_trace
    sdk_resource.create_urn = _create_urn
    sdk_types.unwrap_type = _unwrap_type
    sdk_types.unwrap_optional_type = _unwrap_optional_type
