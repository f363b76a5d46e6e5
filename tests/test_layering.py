"""The layers of the code: the program (``stacks/``, ``components/``) never imports the offline
engine, and no component imports up into the composition (see ``stacks/__init__.py``)."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ("stacks", "components")
# What a component may import from stacks/: the config model and the facts below it.
BELOW_COMPONENTS = {"stacks", "stacks.config", "stacks.facts"}
MODEL = ("config", "loader", "facts")  # stacks/: the layer below the components


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Every module a file imports, at the top or inside a function (absolute names)."""
    names: set[str] = set()
    module = module or _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _files(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _top(name: str) -> str:
    return name.split(".")[0]


def test_import_walker_sees_nested_and_relative_imports(tmp_path: Path):
    # The walker itself must not miss a lazy import inside a function, or a relative one.
    sample = tmp_path / "probe.py"
    sample.write_text("def f():\n    from offline import plan\n    from . import common\n", encoding="utf-8")
    found = _imports(sample, "components.probe")
    assert "offline.plan" in found and "components.common" in found


def test_the_program_never_imports_the_offline_engine():
    bad = {f"{p.relative_to(ROOT)}: {name}" for p in _files(*PROGRAM) for name in _imports(p)
           if _top(name) in ("offline", "tests", "bench")}
    assert not bad, "the program must not import the offline engine or the tests:\n" + "\n".join(sorted(bad))


def test_components_import_only_the_config_model_from_stacks():
    bad = {f"{p.relative_to(ROOT)}: {name}" for p in _files("components") for name in _imports(p)
           if _top(name) == "stacks" and name not in BELOW_COMPONENTS
           and not name.startswith(("stacks.config.", "stacks.facts."))}
    assert not bad, "components import up into the composition:\n" + "\n".join(sorted(bad))


@functools.cache
def _imports_in_a_fresh_interpreter() -> dict[str, list[str]]:
    """One interpreter, two steps: what importing the config model loads, then what importing the
    program (as ``pulumi up`` does: ``__main__`` -> stacks.program) adds."""
    code = ("import json, sys; import stacks.config, stacks.loader; "
            "model = sorted(m for m in sys.modules if m.split('.')[0] == 'components' "
            "or m in ('stacks.environment', 'stacks.program')); "
            "sys.argv = ['x']; import stacks.program, __main__ as _m; "
            "print(json.dumps({'model': model, "
            "'program': sorted(m for m in sys.modules if m.split('.')[0] == 'offline')}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_config_model_imports_nothing_above_it():
    # The config model (as every component imports it) imports no component and no part of the
    # composition, on import or later inside a function: what validation checks against (the
    # platform's namespaces, NetBird groups, the upgrade-step rule) lives in stacks/facts.py,
    # below the components, which take their names from it.
    for name in MODEL:
        path = ROOT / "stacks" / f"{name}.py"
        above = {i for i in _imports(path) if _top(i) in ("components", "offline", "policy", "convergence")
                 or i.startswith(("stacks.environment", "stacks.program"))}
        assert not above, f"stacks/{name}.py imports above the config model: {sorted(above)}"
    facts = {i for i in _imports(ROOT / "stacks" / "facts.py") if _top(i) in ("stacks", "components", "versions")}
    assert facts == set(), f"stacks/facts.py imports the program: {sorted(facts)}"
    assert _imports_in_a_fresh_interpreter()["model"] == []


def test_running_the_program_loads_no_offline_module():
    # What ``pulumi up`` imports, checked on a live interpreter.
    assert _imports_in_a_fresh_interpreter()["program"] == []


# Which parts of components/ each package (or flat module) may import, as its docstring says.
MAY_IMPORT = {
    "core": set(),
    "host": {"core", "kube_api_ready", "talos_upgrade"},
    "network": {"core", "edge"},
    "edge": {"core"},
    "dns": {"core", "edge"},
    "sso": {"core", "edge", "identity"},
    "secrets": {"core", "edge", "sso", "operations", "identity", "vault_bootstrap"},
    "virtualization": {"core"},
    "clusters": {"core", "tenant"},
    "gitops": {"core", "edge"},
    "vpn": {"core"},
    "tenant": {"core", "sso", "secrets", "vpn", "identity"},
    "operations": {"core", "tenant"},
    "authentik_ready": {"core"},
    "authentik_token": {"core"},
    "identity": {"core", "authentik_ready", "authentik_token"},
    "kube_api_ready": {"core"},
    "talos_upgrade": set(),
    "vault_bootstrap": {"core"},
}
# The modules that define dynamic providers: their import path is in the state of every resource
# they made (the pickled ``__provider``), so they stay where they are.
DYNAMIC_PROVIDER_MODULES = {"components.authentik_ready", "components.authentik_token", "components.identity",
                            "components.kube_api_ready", "components.talos_upgrade", "components.vault_bootstrap"}


def test_components_import_only_what_their_package_may():
    seen, bad = set(), []
    for path in _files("components"):
        parts = _module(path).split(".")
        if len(parts) < 2:
            continue
        part = parts[1]
        seen.add(part)
        assert part in MAY_IMPORT, f"{path.relative_to(ROOT)}: a new package: say what it may import"
        for name in _imports(path):
            target = name.split(".")
            if target[0] == "components" and len(target) > 1 and target[1] != part and target[1] not in MAY_IMPORT[part]:
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert not bad, "imports across the layout the package docstrings do not allow:\n" + "\n".join(bad)
    assert seen == set(MAY_IMPORT)


def test_dynamic_providers_live_where_their_state_says():
    import pickle

    import dill
    from pulumi import dynamic

    found = {}
    for path in _files("components"):
        module = _module(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Attribute) and b.attr == "ResourceProvider" for b in node.bases):
                found.setdefault(module, []).append(node.name)
    assert set(found) == DYNAMIC_PROVIDER_MODULES
    import importlib
    for module, classes in found.items():
        for cls in classes:
            provider = getattr(importlib.import_module(module), cls)()
            assert isinstance(provider, dynamic.ResourceProvider)
            # What the SDK stores (dill, by reference): the module path and the class name.
            blob = dill.dumps(provider, protocol=pickle.DEFAULT_PROTOCOL, recurse=True)
            assert module.encode() in blob and cls.encode() in blob
