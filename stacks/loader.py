"""Read ``Pulumi.<env>.yaml`` the way the Pulumi CLI hands it to the program.

Used by the offline plan and the tests (the mock engine reads no stack file by itself):
``secure:`` values are replaced by placeholders and their top-level keys are reported as
secret, exactly as the engine marks them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stacks.config import PROJECT, ConfigError, ConfigProblem

ROOT = Path(__file__).resolve().parent.parent
SECURE_PLACEHOLDER = "offline-plan-placeholder"


@dataclass(frozen=True)
class StackFile:
    stack: str
    raw: dict[str, Any]  # project keys without prefix -> decoded values
    secret_keys: frozenset[str]  # project keys whose value contains a secure: entry
    provider_config: dict[str, Any] = field(default_factory=dict)  # other namespaces, e.g. 'kubernetes:context'

    def pulumi_config(self) -> tuple[dict[str, str], list[str]]:
        """The flat ``namespace:key -> string`` map that ``set_all_config`` takes."""
        flat: dict[str, str] = {}
        for key, value in self.raw.items():
            flat[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
        for key, value in self.provider_config.items():
            flat[key] = value if isinstance(value, str) else json.dumps(value)
        return flat, sorted(f"{PROJECT}:{k}" for k in self.secret_keys)


def _strip_secure(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECURE_PLACEHOLDER, True
        out, found = {}, False
        for k, v in value.items():
            out[k], s = _strip_secure(v)
            found |= s
        return out, found
    if isinstance(value, list):
        items = [_strip_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def stack_path(stack: str, root: Path = ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def parse_stack_document(stack: str, doc: Any, defaults: dict[str, Any] | None = None) -> StackFile:
    """``defaults``: Pulumi.yaml's declared defaults, applied under the stack's own values."""
    if doc is not None and not isinstance(doc, dict):
        raise ConfigError(stack, [ConfigProblem(path="<document>", problem="the stack file is not a YAML mapping",
                                                hint="start the file with 'config:' and list keys under it")])
    config = (doc or {}).get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(stack, [ConfigProblem(path="config", problem="'config' is not a mapping",
                                                hint="write 'weebo-platform:<key>: <value>' entries under config:")])
    config = {**(defaults or {}), **config}
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    provider: dict[str, Any] = {}
    for full_key, value in config.items():
        value, is_secret = _strip_secure(value)
        ns, _, key = str(full_key).partition(":")
        if not key:
            # A bare key belongs to the project namespace, as the CLI reads it.
            ns, key = PROJECT, ns
        if ns == PROJECT:
            raw[key] = value
            if is_secret:
                secret.add(key)
        else:
            provider[f"{ns}:{key}"] = value
    return StackFile(stack=stack, raw=raw, secret_keys=frozenset(secret), provider_config=provider)


def project_defaults(root: Path = ROOT) -> dict[str, Any]:
    """Defaults declared in Pulumi.yaml's config block, which the CLI applies to every stack."""
    project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    out: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            out[key if ":" in key else f"{PROJECT}:{key}"] = decl["default"]
    return out


def read_stack(stack: str, root: Path = ROOT) -> StackFile:
    path = stack_path(stack, root)
    if not path.exists():
        available = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path.name}; stacks here: {', '.join(available)}")
    return parse_stack_document(stack, yaml.safe_load(path.read_text()), project_defaults(root))
