"""Answers of the offline engine to provider functions (invokes).

Shapes follow each provider's schema (camelCase, as on the wire). Values are recognisable
fakes: nothing here stands for a real credential.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handles(token: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[token] = fn
        return fn

    return register


def respond(token: str, args: dict[str, Any]) -> dict[str, Any]:
    handler = HANDLERS.get(token)
    if handler is None:
        raise NotImplementedError(
            f"the offline engine has no answer for invoke {token}: add one in stacks/invokes.py"
        )
    return handler(args)


def _fake(kind: str, *parts: Any) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:16]
    return f"offline-{kind}-{digest}"


@handles("talos:machine/getConfiguration:getConfiguration")
def _talos_machine_configuration(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "machineConfiguration": _fake("machineconfig", args.get("clusterName"), args.get("machineType"))}


@handles("talos:client/getConfiguration:getConfiguration")
def _talos_client_configuration(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "talosConfig": _fake("talosconfig", args.get("clusterName"))}


# --- Authentik (issue 5). Shapes: pulumi_authentik 2025.8.1 Get*Result (camelCase on the wire).
@handles("authentik:index/getFlow:getFlow")
def _authentik_flow(args: dict[str, Any]) -> dict[str, Any]:
    slug = args.get("slug")
    return {**args, "id": _fake("flow", slug), "slug": slug, "name": slug, "title": slug,
            "designation": "authorization", "authentication": "none"}


@handles("authentik:index/getPropertyMappingProviderScope:getPropertyMappingProviderScope")
def _authentik_scope_mappings(args: dict[str, Any]) -> dict[str, Any]:
    managed = list(args.get("managedLists") or ([args["managed"]] if args.get("managed") else []))
    ids = [_fake("scope-mapping", m) for m in managed]
    return {**args, "ids": ids, "id": ids[0] if len(ids) == 1 else _fake("scope-mapping-list", *managed)}


@handles("authentik:index/getCertificateKeyPair:getCertificateKeyPair")
def _authentik_certificate(args: dict[str, Any]) -> dict[str, Any]:
    # Never a key: the program asks with fetchKey=false.
    return {**args, "id": _fake("certificate", args.get("name")), "name": args.get("name")}
