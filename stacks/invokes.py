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
