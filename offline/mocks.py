"""An in-process stand-in for the Pulumi engine: mocks plus a monitor that records the graph.

The stock ``MockMonitor`` forgets parents, dependencies and resource options, and does not
mark ``additionalSecretOutputs`` as secret the way the real engine does. ``RecordingMonitor``
keeps all of that so tests and the offline plan see the graph ``pulumi preview`` would build.
"""

from __future__ import annotations

import concurrent.futures
import zlib
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.sync_await import _ensure_event_loop

SECRET = "[secret]"
STACK_TYPE = "pulumi:pulumi:Stack"  # the root stack's type: no part of its children's URNs
UNKNOWN = "[unknown]"


def run_to_completion(coro: Any) -> Any:
    """The result of a coroutine that never waits (serialising plain values).

    The monitor runs inside the event loop's thread (see :class:`InlineExecutor`), where the
    SDK's ``_sync_await`` would re-enter the running loop.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the mock engine was asked to serialise a value that is not known yet")


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each call at once, in the calling thread.

    The SDK hands every engine call to the event loop's default executor, because a real engine
    is a gRPC server. The mock engine is plain Python that never blocks: a thread hop per
    resource only costs time (and thread switches under the GIL).
    """

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine, as a thread would
            future.set_exception(exc)
        return future


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def redact(value: Any) -> Any:
    """Inputs as the plan shows them: secrets and unknowns replaced by markers."""
    # Plain dicts, strings and lists are nearly everything a plan holds: they take the short
    # path (the plan redacts every input of every resource).
    t = type(value)
    if t is dict:
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SECRET
        return {str(k): redact(v) for k, v in value.items()}
    if t is str:
        return UNKNOWN if value == rpc.UNKNOWN else value
    if t is list:
        return [redact(v) for v in value]
    if rpc.is_rpc_secret(value):
        return SECRET
    if is_unknown(value):
        return UNKNOWN
    if isinstance(value, dict):
        return {str(k): redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, pulumi.Resource):  # resource references
        return f"[resource {type(value).__name__}]"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def contains_secret(value: Any) -> bool:
    if rpc.is_rpc_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_secret(v) for v in value)
    return False


def plain(value: Any) -> Any:
    """Inputs with secrets unwrapped (for tests that need the generated value itself)."""
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    retain_on_delete: bool
    deleted_with: str
    ignore_changes: list[str]
    replace_on_changes: list[str]
    additional_secret_outputs: list[str]
    delete_before_replace: bool
    inputs: dict[str, Any] = field(default_factory=dict)  # secrets still wrapped
    replace_with: list[str] = field(default_factory=list)  # URNs whose replacement replaces this
    custom_timeouts: dict[str, str] = field(default_factory=dict)  # create/update/delete, as given
    aliases: list[str] = field(default_factory=list)  # earlier URNs of this resource (state kept)

    @property
    def provider_urn(self) -> str:
        """Provider references are '<urn>::<id>'."""
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    def input(self, *path: str | int) -> Any:
        cur: Any = self.inputs
        for p in path:
            cur = plain(cur)[p]
        return plain(cur)


class PlanMocks(Mocks):
    """Echo inputs as outputs, like a preview of resources that do not exist yet.

    Outputs a provider computes (ids, kubeconfigs, generated passwords…) are left out, so
    they stay unknown during preview: the first preview of a brand-new environment.
    """

    def __init__(self, preview: bool = True):
        self.preview = preview

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        if not args.custom:
            return ("", {})
        if self.preview:
            return ("", dict(args.inputs))
        from offline import invokes

        rid = f"{args.name}-id"
        if args.typ.startswith("authentik:index/"):
            # Authentik's API identifies objects by number; its provider parses ids as such.
            rid = str(zlib.crc32(args.name.encode()) % 100000)
        return (rid, {**args.inputs, **invokes.computed_outputs(args.typ, args.name, args.inputs)})

    def call(self, args: MockCallArgs) -> tuple[dict, list]:
        from offline import invokes

        return invokes.respond(args.token, args.args), []


class EngineRefusal(RuntimeError):
    """A registration the real Pulumi engine would refuse (see :meth:`RecordingMonitor.refuse`)."""


class RecordingMonitor(MockMonitor):
    """Records every registration, and refuses what the real engine refuses: a second
    registration of one URN, a provider, parent or ``depends_on`` that was never registered.

    The stock mock monitor accepts all of these silently — a duplicate overwrote the first
    registration, so two config entries producing one resource name (a range listed twice) planned
    fine and failed ``pulumi up``. Each refusal is kept in ``refusals`` and raised into the program,
    as the engine fails the registration; :func:`offline.plan.run_offline` turns them into one
    :class:`EngineRefusal`.
    """

    def __init__(self, mocks: Mocks, project: str, stack: str):
        super().__init__(mocks)
        # The SDK calls the monitor from executor threads, where the settings' context
        # variables are not set: keep project and stack here for the URNs.
        self.project = project
        self.stack = stack
        self.registrations: dict[str, Registration] = {}
        self.stack_outputs: dict[str, Any] = {}
        self.invokes: list[tuple[str, dict]] = []
        self.refusals: list[str] = []
        self._stack_urns: set[str] = set()
        self._read_urns: set[str] = set()  # resources read with .get(): the engine knows them too

    # -- engine behaviour --------------------------------------------------------------------
    def make_urn(self, parent: str, type_: str, name: str, stack: str = "", project: str = "") -> str:
        """The URN the engine gives: the parent's whole qualified type (``A$B``, not only ``B``)
        before the resource's type, and none for a resource of the root stack. The stock mock
        monitor keeps only the parent's last type and prefixes the stack's, so a plan's URNs
        differed from the ones ``pulumi up`` records (and ``--target`` takes) for every resource
        at the top and every resource two components deep.
        Ref: pulumi/pulumi pkg/resource/deploy/deployment.go (generateURN: "use the full qualified
        type", skipping the root stack type) and sdk/go/common/resource/urn/urn.go (New)."""
        if parent:
            qualified = parent.split("::")[2]
            if qualified != STACK_TYPE:
                type_ = qualified + "$" + type_
        return "urn:pulumi:" + "::".join([stack or self.stack, project or self.project, type_, name])

    def RegisterResource(self, request: Any) -> Any:
        from pulumi.runtime.proto import resource_pb2

        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            self._stack_urns.add(urn)
            return resource_pb2.RegisterResourceResponse(urn=urn)
        self.refuse(urn, request)
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        self.registrations[urn] = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent,
            provider=request.provider,
            dependencies=sorted(set(request.dependencies)),
            property_dependencies={
                k: sorted(set(v.urns)) for k, v in sorted(request.propertyDependencies.items())
            },
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            deleted_with=request.deletedWith,
            ignore_changes=sorted(request.ignoreChanges),
            replace_on_changes=sorted(request.replaceOnChanges),
            additional_secret_outputs=sorted(request.additionalSecretOutputs),
            delete_before_replace=bool(request.deleteBeforeReplace),
            inputs=inputs,
            replace_with=sorted(request.replace_with),
            custom_timeouts={k: getattr(request.customTimeouts, k) for k in ("create", "update", "delete")
                             if getattr(request.customTimeouts, k)},
            aliases=sorted(self._alias_urn(a, request) for a in request.aliases),
        )
        rid, state = self.mocks.new_resource(
            MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
            )
        )
        # The engine marks additionalSecretOutputs secret; so does this monitor.
        for key in request.additionalSecretOutputs:
            if key in state and not rpc.is_rpc_secret(state[key]):
                state[key] = rpc.wrap_rpc_secret(state[key])
        if not request.additionalSecretOutputs and state == inputs:
            # A preview echoes the inputs: their wire form is the request's own.
            obj_proto = request.object
        else:
            obj_proto = run_to_completion(rpc.serialize_properties(state, {}))
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, rid or "", state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=rid or "", object=obj_proto)

    def _alias_urn(self, alias: Any, request: Any) -> str:
        """The URN an alias names, as the engine resolves it: given whole, or as a spec whose unset
        parts are the resource's own (name, type, stack, project; its parent unless the spec says
        ``noParent`` or names another; the root stack is no parent). The engine also gives each
        child of an aliased component an alias of its own (generateAliases, inheritedChildAlias):
        those are not listed here, they follow from the parent's.
        Ref: pulumi/pulumi pkg/resource/deploy/step_generator.go (collapseAliasToUrn)."""
        if alias.WhichOneof("alias") == "urn":
            return alias.urn
        spec = alias.spec
        # The SDK sends parentUrn "" for "the same parent" (pulumi/runtime/resource.py
        # create_alias_spec); the engine reads an empty parent so (ParseOptionalURN).
        parent = "" if spec.WhichOneof("parent") == "noParent" and spec.noParent else (spec.parentUrn or request.parent)
        return self.make_urn(parent, spec.type or request.type, spec.name or request.name, spec.stack, spec.project)

    def _known(self, urn: str) -> bool:
        return urn in self.registrations or urn in self._stack_urns or urn in self._read_urns

    def refuse(self, urn: str, request: Any) -> None:
        """Raise :class:`EngineRefusal` when the real engine would refuse this registration.

        The engine's rules: Ref: pulumi/pulumi sdk/go/common/diag/errors.go
        (GetDuplicateResourceURNError: "Duplicate resource URN '%v'; try giving it a unique name"),
        raised by pkg/resource/deploy/step_generator.go, which also refuses a parent, provider
        reference or dependency that names no resource of this deployment."""
        problems = []
        if urn in self.registrations:
            problems.append(f"duplicate resource URN {urn}: two resources of type {request.type} are named "
                            f"{request.name!r} (the second would replace the first); give each a distinct name")
        provider = request.provider.rsplit("::", 1)[0] if request.provider else ""
        if provider and not self._known(provider):
            problems.append(f"{urn}: its provider {provider} is not a registered resource")
        if request.parent and not self._known(request.parent):
            problems.append(f"{urn}: its parent {request.parent} is not a registered component")
        deps = set(request.dependencies)
        for v in request.propertyDependencies.values():
            deps |= set(v.urns)
        for dep in sorted(d for d in deps if not self._known(d)):
            problems.append(f"{urn}: depends on {dep}, which is not a registered resource")
        if problems:
            self.refusals.extend(problems)
            raise EngineRefusal("; ".join(problems))

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            _ensure_event_loop()
            self.stack_outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        return super().RegisterResourceOutputs(request)

    def Invoke(self, request: Any) -> Any:
        from pulumi.runtime.proto import provider_pb2, resource_pb2

        _ensure_event_loop()
        args = rpc.deserialize_properties(request.args, keep_unknowns=True)
        self.invokes.append((request.tok, args))
        ret, failures = self.mocks.call(MockCallArgs(token=request.tok, args=args, provider=request.provider))
        return resource_pb2.ResourceInvokeResponse(
            failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures or []],
            **{"return": run_to_completion(rpc.serialize_properties(ret, {}))},
        )

    def ReadResource(self, request: Any) -> Any:
        """As the stock mock monitor (reads are not part of the plan), without pumping the loop."""
        from pulumi.runtime.proto import resource_pb2

        _ensure_event_loop()
        state = rpc.deserialize_properties(request.properties)
        rid, state = self.mocks.new_resource(MockResourceArgs(
            typ=request.type, name=request.name, inputs=state, provider=request.provider, resource_id=request.id))
        props_proto = run_to_completion(rpc.serialize_properties(state, {}))
        urn = self.make_urn(request.parent, request.type, request.name)
        self._read_urns.add(urn)
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, rid, state)
        return resource_pb2.ReadResourceResponse(urn=urn, properties=props_proto)

    # -- queries for tests -------------------------------------------------------------------
    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations.values() if r.type == type_]

    def named(self, name: str) -> Registration:
        found = [r for r in self.registrations.values() if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def children(self, parent_urn: str) -> list[Registration]:
        return [r for r in self.registrations.values() if r.parent == parent_urn]

    def descendants(self, urn: str) -> list[Registration]:
        out: list[Registration] = []
        stack = [urn]
        while stack:
            cur = stack.pop()
            for child in self.children(cur):
                out.append(child)
                stack.append(child.urn)
        return out

    def depends_on(self, a: Registration, b: Registration) -> bool:
        """True when ``a`` waits for ``b``, directly or transitively (dependencies and providers).

        Parents are not followed: a child does not wait for what its component waits for.
        """
        targets = {b.urn} | {d.urn for d in self.descendants(b.urn)}
        seen: set[str] = set()
        todo = [a.urn]
        while todo:
            cur = todo.pop()
            if cur in seen:
                continue
            seen.add(cur)
            reg = self.registrations.get(cur)
            if reg is None:
                continue
            edges = set(reg.dependencies)
            for deps in reg.property_dependencies.values():
                edges |= set(deps)
            if reg.provider:
                edges.add(reg.provider.rsplit("::", 1)[0])
            if edges & targets:
                return True
            todo.extend(edges)
        return False
