"""Read ``Pulumi.<env>.yaml`` the way the Pulumi CLI hands it to the program.

Used by the offline plan and the tests (the mock engine reads no stack file by itself):
``secure:`` values are replaced by placeholders and their top-level keys are reported as
secret, exactly as the engine marks them; the path of every ``secure:`` leaf is kept too, so
that validation can tell, leaf by leaf, a credential written in clear.

The YAML is read strictly (:func:`load_yaml`): UTF-8 only, no anchors or aliases, no duplicate
keys, no deep nesting, only the JSON types (a date stays the text it was written as). Every
refusal is a :class:`ConfigError` naming the file as given, the line and column, and a fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from stacks.config import PROJECT, ConfigError, ConfigProblem

ROOT = Path(__file__).resolve().parent.parent
SECURE_PLACEHOLDER = "offline-plan-placeholder"

# The keys a Pulumi stack file may hold at its top level (Ref: pulumi/pulumi
# sdk/go/common/workspace/project.go ProjectStack: secretsprovider, encryptedkey, encryptionsalt,
# config, environment).
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
# Deeper than any real stack file (the deepest key of ours is 5 levels under config:); bounds the
# recursive composer and constructor long before Python's recursion limit.
MAX_DEPTH = 32
MAX_BYTES = 1 << 20  # 1 MiB: stack files of 100 tenants are ~60 KiB


@dataclass(frozen=True)
class StackFile:
    stack: str
    raw: dict[str, Any]  # project keys without prefix -> decoded values
    secret_keys: frozenset[str]  # project keys whose value contains a secure: entry
    provider_config: dict[str, Any] = field(default_factory=dict)  # other namespaces, e.g. 'kubernetes:context'
    # Config paths (without the project prefix, as 'pulumi config set --path' takes them) of every
    # secure: leaf; None when unknown (a StackFile built by hand).
    secure_paths: frozenset[str] | None = None

    def pulumi_config(self) -> tuple[dict[str, str], list[str]]:
        """The flat ``namespace:key -> string`` map that ``set_all_config`` takes."""
        flat: dict[str, str] = {}
        for key, value in self.raw.items():
            flat[f"{PROJECT}:{key}"] = value if isinstance(value, str) else json.dumps(value)
        for key, value in self.provider_config.items():
            flat[key] = value if isinstance(value, str) else json.dumps(value)
        return flat, sorted(f"{PROJECT}:{k}" for k in self.secret_keys)


# ---------------------------------------------------------------------------------------------
# Strict YAML
# ---------------------------------------------------------------------------------------------

class _Refused(Exception):
    def __init__(self, mark: Any, problem: str, hint: str):
        super().__init__(problem)
        self.mark, self.problem, self.hint = mark, problem, hint


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases, duplicate keys, deep nesting or non-JSON types."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise _Refused(event.start_mark, f"YAML alias '*{event.anchor}'",
                           "write the value out in full: stack files take no anchors or aliases")
        if isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.anchor is not None:
            raise _Refused(event.start_mark, f"YAML anchor '&{event.anchor}'",
                           "remove the anchor and write every value out in full")
        if isinstance(event, CollectionStartEvent):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep",
                               "flatten the value: no stack key is that deep")
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                    raise _Refused(key_node.start_mark, f"key {_node_text(key_node)} is not a string",
                                   "write the key as plain text (quote it if it looks like a number or a boolean)")
                key = key_node.value
                if key in seen:
                    raise _Refused(key_node.start_mark,
                                   f"key '{key}' appears twice in one mapping (first on line {seen[key].line + 1})",
                                   "keep one of them: YAML would silently take the last")
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_undefined(self, node: Any) -> Any:
        raise _Refused(node.start_mark, f"YAML tag '{node.tag}' is not a JSON type",
                       "remove the tag: stack values are strings, numbers, booleans, lists and mappings")


def _node_text(node: Any) -> str:
    if isinstance(node, ScalarNode):
        return repr(node.value)
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


# Only JSON types: timestamps stay strings (as Pulumi's Go YAML hands them over), and the tags
# that build Python sets, bytes or ordered pairs are refused.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.yaml_constructors = dict(yaml.SafeLoader.yaml_constructors)
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _StrictLoader.yaml_constructors.pop(f"tag:yaml.org,2002:{_tag}", None)
_StrictLoader.add_constructor(None, _StrictLoader.construct_undefined)


def _at(source: str, mark: Any) -> str:
    """``file:line:column``, as compilers and editors take it."""
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source


def _where(mark: Any) -> str:
    return f"at line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def load_yaml(data: bytes | str, source: str, stack: str) -> Any:
    """The document of a stack file, read strictly; :class:`ConfigError` naming ``source``."""
    def refuse(where: str, problem: str, hint: str) -> ConfigError:
        return ConfigError(stack, [ConfigProblem(path=where, problem=problem, hint=hint)], source=source)

    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise refuse(source, f"{len(data)} bytes; a stack file is far smaller",
                         "check that this is the stack file (at most 1 MiB)")
        if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
            raise refuse(source, "not UTF-8 text (UTF-16 or binary)", "save the file as UTF-8")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise refuse(f"{source}:{line}", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                         "save the file as UTF-8") from None
    else:
        text = data
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise refuse(_at(source, exc.mark), _where(exc.mark) + exc.problem, exc.hint) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        hint = ("check the indentation, quoting and brackets at that spot"
                if not isinstance(exc, ConstructorError) else "write a plain string, number, list or mapping")
        raise refuse(_at(source, mark), f"{_where(mark)}not valid YAML: {what}", hint) from None
    except yaml.YAMLError as exc:
        raise refuse(source, f"not valid YAML: {exc}", "check the file's syntax") from None
    except RecursionError:
        raise refuse(source, "nested too deeply", "flatten the value: no stack key is that deep") from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------------------------
# The stack document
# ---------------------------------------------------------------------------------------------

def _strip_secure(value: Any, path: str, leaves: set[str]) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            leaves.add(path)
            return SECURE_PLACEHOLDER, True
        out, found = {}, False
        for k, v in value.items():
            out[k], s = _strip_secure(v, _join(path, k), leaves)
            found |= s
        return out, found
    if isinstance(value, list):
        items = [_strip_secure(v, f"{path}[{i}]", leaves) for i, v in enumerate(value)]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _join(path: str, key: Any) -> str:
    from stacks.config import _loc_to_path

    segment = _loc_to_path((key,))
    return f"{path}.{segment}" if path and not segment.startswith("[") else path + segment


def stack_path(stack: str, root: Path = ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def parse_stack_document(stack: str, doc: Any, defaults: dict[str, Any] | None = None,
                         source: str | None = None) -> StackFile:
    """``defaults``: Pulumi.yaml's declared defaults, applied under the stack's own values.

    Keys outside the project namespace go to ``provider_config`` as written (a bare key, a
    misspelled namespace, a credential): validation refuses what does not belong there."""
    source = source or f"Pulumi.{stack}.yaml"

    def refuse(problems: list[ConfigProblem]) -> ConfigError:
        return ConfigError(stack, problems, source=source)

    if doc is not None and not isinstance(doc, dict):
        raise refuse([ConfigProblem(path="<document>", problem="the stack file is not a YAML mapping",
                                    hint="start the file with 'config:' and list keys under it")])
    doc = doc or {}
    unknown = [k for k in doc if k not in STACK_FILE_KEYS]
    if unknown:
        import difflib

        problems = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), STACK_FILE_KEYS, n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'?" if close else
                    f"a stack file holds only: {', '.join(STACK_FILE_KEYS)}")
            problems.append(ConfigProblem(path=str(key), problem="unknown top-level key of the stack file",
                                          hint=hint + f" (settings go under 'config:' as '{PROJECT}:<key>')"))
        raise refuse(problems)
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise refuse([ConfigProblem(path="config", problem="'config' is not a mapping",
                                    hint=f"write '{PROJECT}:<key>: <value>' entries under config:")])
    config = {**(defaults or {}), **config}
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    provider: dict[str, Any] = {}
    leaves: set[str] = set()
    for full_key, value in config.items():
        ns, _, key = str(full_key).partition(":")
        if ns == PROJECT and key:
            value, is_secret = _strip_secure(value, _join("", key), leaves)
            raw[key] = value
            if is_secret:
                secret.add(key)
        else:
            provider[str(full_key)] = _strip_secure(value, "", set())[0]
    return StackFile(stack=stack, raw=raw, secret_keys=frozenset(secret), provider_config=provider,
                     secure_paths=frozenset(leaves))


def project_defaults(root: Path = ROOT) -> dict[str, Any]:
    """Defaults declared in Pulumi.yaml's config block, which the CLI applies to every stack."""
    project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    out: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            out[key if ":" in key else f"{PROJECT}:{key}"] = decl["default"]
    return out


def read_stack_file(path: Path, stack: str | None = None, root: Path = ROOT, source: str | None = None) -> StackFile:
    """A stack file read strictly (see :func:`load_yaml`); ``source`` names it in errors (the
    path as given)."""
    source = source or str(path)
    stack = stack or path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]
    doc = load_yaml(path.read_bytes(), source, stack)
    return parse_stack_document(stack, doc, project_defaults(root), source=source)


def read_stack(stack: str, root: Path = ROOT) -> StackFile:
    path = stack_path(stack, root)
    if not path.exists():
        available = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path.name}; stacks here: {', '.join(available)}")
    return read_stack_file(path, stack, root, source=path.name)
