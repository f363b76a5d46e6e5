"""Helpers for the identity/secrets tests (Authentik, Vault, RBAC).

``plan_with_values`` runs the program as a ``pulumi up`` would see it after creation: generated
passwords, the Vault root token and unseal keys get recognisable fake values, so tests can prove
those strings never reach a plan file, and that every input carrying them is a secret.
Authentik resources get numeric ids, as the Authentik API gives them.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from offline.mocks import PlanMocks
from offline.plan import PlanResult
from tests.helpers.factories import base_raw, plan

FAKE_PREFIX = "GENERATED-SECRET-"


def fake_secret(name: str) -> str:
    return f"{FAKE_PREFIX}{name}"


@contextmanager
def engine_with_values() -> Iterator[None]:
    """The mock engine after a deployment already gives generated credentials recognisable
    values and Authentik objects numeric ids (offline/invokes.py, offline/mocks.py)."""
    yield


def plan_with_values(raw: dict[str, Any] | None = None) -> PlanResult:
    with engine_with_values():
        return plan(raw if raw is not None else base_raw(), preview=False)


@functools.cache
def preview_plan() -> PlanResult:
    """A first preview of a brand-new environment (shared by the tests: plans are not cheap)."""
    return plan(base_raw())


@functools.cache
def deployed_plan() -> PlanResult:
    return plan_with_values(base_raw())


# --- a tiny HTTP server for the bootstrap dynamic providers -----------------------------------

Handler = Callable[[str, str, dict[str, str], Any], tuple[int, Any]]


@contextmanager
def fake_http(handler: Handler) -> Iterator[str]:
    """Serve ``handler(method, path, headers, json_body) -> (status, json)`` on 127.0.0.1."""

    class H(http.server.BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, out = handler(self.command, self.path, dict(self.headers), body)
            raw = json.dumps(out).encode() if out is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_program(fn: Callable[[], Any], *, preview: bool = True) -> tuple[Any, Any]:
    """Run ``fn`` as a Pulumi program under the recording mock engine; return (result, monitor)."""
    import pulumi
    from pulumi.runtime import settings as runtime_settings

    from stacks.config import PROJECT
    from offline.mocks import RecordingMonitor

    mocks = PlanMocks(preview=preview)
    monitor = RecordingMonitor(mocks, project=PROJECT, stack="unit")
    runtime_settings.ROOT.set(None)  # a fresh root Stack per program (the SDK keeps it in this context variable)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="unit", preview=preview, monitor=monitor)
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> None:
        box["result"] = fn()

    program()
    return box["result"], monitor
