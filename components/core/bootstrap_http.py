"""A small JSON-over-HTTPS client for the bootstrap dynamic providers (Authentik readiness,
Vault init/unseal).

Standard library only: the Pulumi dynamic-provider host imports these modules by reference
(dill pickles importable classes by name), so they must stay light and import nothing that is
not in the stack's virtualenv anyway. Nothing here ever logs a request or response body: they
carry tokens and unseal keys.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class BootstrapError(Exception):
    """A bootstrap step failed for good (not a transient error worth retrying)."""


class NotYet(Exception):
    """A condition polled by :func:`wait_until` does not hold yet."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # decoded JSON, or None


@functools.cache
def _context(verify_tls: bool) -> ssl.SSLContext:
    if not verify_tls:
        # Only for stacks whose public certificate comes from a non-public CA (Let's Encrypt
        # staging): the traffic stays encrypted, the server is not authenticated.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        import certifi  # present in the stack's virtualenv (requests depends on it)

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - system trust store
        return ssl.create_default_context()


def request_json(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    verify_tls: bool = True,
    timeout: float = 15.0,
) -> Response:
    """One HTTP request. HTTP error statuses are returned, transport errors raised (OSError)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    context = _context(verify_tls) if url.startswith("https://") else None
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:  # noqa: S310
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw = err.read()
        status = err.code
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = None
    return Response(status, decoded)


def wait_until(check: Callable[[], T], *, timeout: float, interval: float = 5.0, what: str) -> T:
    """Call ``check`` until it returns instead of raising NotYet/OSError, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: str = "no attempt"
    while True:
        try:
            return check()
        except (NotYet, OSError) as exc:  # OSError covers DNS, TCP, TLS and timeouts
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise BootstrapError(f"gave up waiting for {what} after {timeout:.0f}s (last: {last})")
        time.sleep(interval)
