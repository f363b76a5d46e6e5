"""Validation of what the program renders against the upstream contracts in ../shared/schemas.

The directory is set by ``WEEBO_SCHEMAS`` (default: ``../shared/schemas`` beside the checkout).
When it is absent, schema tests skip with a message saying how to provide it.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_ENV = "WEEBO_SCHEMAS"


def schemas_dir() -> Path:
    return Path(os.environ.get(SCHEMAS_ENV, ROOT.parent / "shared" / "schemas")).resolve()


def require_schemas() -> Path:
    path = schemas_dir()
    if not (path / "SOURCES.md").exists():
        pytest.skip(
            f"upstream schemas not found at {path}: put the shared/ folder beside the checkout "
            f"(../shared/schemas) or set {SCHEMAS_ENV}=/path/to/shared/schemas"
        )
    return path


# ---------------------------------------------------------------------------------------------
# Strictness: Kubernetes rejects unknown fields of structural schemas (server-side apply with
# strict field validation); jsonschema accepts them unless told otherwise.
# ---------------------------------------------------------------------------------------------

def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _crd_files() -> tuple[tuple[Path, str], ...]:
    """Every YAML file of the schemas folder that holds a CustomResourceDefinition, with its text."""
    root = require_schemas()
    found = []
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text()
        if "CustomResourceDefinition" in text:
            found.append((path, text))
    return tuple(found)


@functools.cache
def _crd_docs(path: Path) -> tuple[dict[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = list(yaml.load_all(path.read_text(), Loader=loader))
    except yaml.YAMLError:
        return ()
    return tuple(d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition")


def _crd_entry(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """The openAPIV3Schema of ``group/version kind``: from the first file (in path order) that
    defines it. Only the files whose text names both the group and the kind are parsed (parsing
    all of them, 8 MB of YAML, cost seconds in every test process)."""
    root = require_schemas()
    for path, text in _crd_files():
        if group not in text or kind not in text:
            continue
        for doc in _crd_docs(path):
            spec = doc["spec"]
            if spec.get("group") != group or spec.get("names", {}).get("kind") != kind:
                continue
            for v in spec.get("versions", []):
                schema = (v.get("schema") or {}).get("openAPIV3Schema")
                if schema and v["name"] == version:
                    return {"schema": schema, "file": str(path.relative_to(root)), "served": v.get("served", True)}
    return None


_JSON_SCHEMAS = {
    ("cilium.io", "v2", "CiliumLoadBalancerIPPool"): "cilium/crd-jsonschema/ciliumloadbalancerippool_v2.json",
    ("cilium.io", "v2alpha1", "CiliumLoadBalancerIPPool"): "cilium/crd-jsonschema/ciliumloadbalancerippool_v2alpha1.json",
    ("cilium.io", "v2alpha1", "CiliumL2AnnouncementPolicy"): "cilium/crd-jsonschema/ciliuml2announcementpolicy_v2alpha1.json",
    ("cilium.io", "v2", "CiliumNetworkPolicy"): "cilium/crd-jsonschema/ciliumnetworkpolicy_v2.json",
    ("cilium.io", "v2", "CiliumClusterwideNetworkPolicy"): "cilium/crd-jsonschema/ciliumclusterwidenetworkpolicy_v2.json",
}

# Kinds upstream publishes only as OpenAPI (swagger) definitions.
_SWAGGER = {
    ("kubevirt.io", "v1", "VirtualMachine"): ("kubevirt/swagger.json", "v1.VirtualMachine"),
    ("cdi.kubevirt.io", "v1beta1", "CDI"): ("cdi/swagger.json", "v1beta1.CDI"),
    ("cdi.kubevirt.io", "v1beta1", "DataVolume"): ("cdi/swagger.json", "v1beta1.DataVolume"),
    ("cdi.kubevirt.io", "v1beta1", "DataSource"): ("cdi/swagger.json", "v1beta1.DataSource"),
}


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


@functools.cache
def _validator(group: str, version: str, kind: str) -> jsonschema.Validator:
    root = require_schemas()
    key = (group, version, kind)
    if key in _JSON_SCHEMAS:
        schema = json.loads((root / _JSON_SCHEMAS[key]).read_text())
        return jsonschema.Draft7Validator(schema)
    if key in _SWAGGER:
        file, definition = _SWAGGER[key]
        doc = json.loads((root / file).read_text())
        schema = {"$ref": f"#/definitions/{definition}", "definitions": _strict(doc["definitions"])}
        return jsonschema.Draft4Validator(schema)
    entry = _crd_entry(group, version, kind)
    if entry is None:
        raise KeyError(f"no upstream schema for {group}/{version} {kind} in {root}")
    if not entry["served"]:
        raise AssertionError(f"{group}/{version} {kind} is not served by the pinned CRD ({entry['file']})")
    schema = _strict(copy.deepcopy(entry["schema"]))
    # metadata is the API server's, not the CRD's: accept any ObjectMeta.
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def validate_custom_resource(obj: dict[str, Any]) -> None:
    """Raise AssertionError listing every way ``obj`` breaks its upstream CRD schema."""
    group, version = _split_api_version(obj["apiVersion"])
    errors = sorted(_validator(group, version, obj["kind"]).iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:20]]
        raise AssertionError(f"{obj['kind']} {obj.get('metadata', {}).get('name')} is invalid:\n" + "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Helm values
# ---------------------------------------------------------------------------------------------

CHART_DIRS = {
    "cilium": "cilium/chart",
    "cert-manager": "cert-manager/chart",
    "traefik": "traefik/chart",
    "external-dns": "external-dns/chart",
    "vault": "vault",
    "authentik": "authentik/chart",
    "argo-cd": "argocd/chart",
    "cluster-api-operator": "capi-operator/chart",
    "netbird-operator": "netbird/chart",
    "external-secrets": "external-secrets/chart",
    "vault-secrets-operator": "vault-secrets-operator/chart",
}


# Places where a chart takes keys its values.yaml does not list (an empty mapping in values.yaml
# is recognised by itself): each entry allows that key and everything under it.
FREE_FORM: dict[str, set[str]] = {
    # values.yaml: "Additional entries here will be added to the Service spec"
    "traefik": {"service.spec"},
    # values.yaml: "You can customize parameters by adding parameters here" (argocd-cmd-params-cm),
    # and the argocd-cm / argocd-rbac-cm ConfigMaps take any Argo CD setting.
    "argo-cd": {"configs.params", "configs.cm", "configs.rbac"},
}


def _component_declared_exceptions() -> None:
    """Keys components declare themselves, each documented where it is set."""
    from components.gitops import argocd
    from components.sso import authentik
    from components.secrets import vault

    # Bitnami postgresql 18.8.11 subchart keys (Chart.yaml dependencies), absent from the parent's values.yaml.
    FREE_FORM.setdefault("authentik", set()).update(authentik.SUBCHART_KEYS)
    # redis-ha 4.38.0 subchart keys (argo-cd Chart.yaml dependencies).
    FREE_FORM.setdefault("argo-cd", set()).update(argocd.SUBCHART_KEYS)
    # Keys the vault chart documents only in comments of values.yaml.
    FREE_FORM.setdefault("vault", set()).update(vault.COMMENTED_KEYS)


_component_declared_exceptions()


def chart_defaults(chart: str) -> dict[str, Any]:
    root = require_schemas()
    return yaml.safe_load((root / CHART_DIRS[chart] / "values.yaml").read_text()) or {}


def validate_chart_values(chart: str, values: dict[str, Any]) -> None:
    """The chart's values.schema.json accepts ``values`` (merged over the chart defaults, as
    Helm does), and every key we set exists in the chart's values.yaml unless that place is a
    free-form map (an empty mapping in values.yaml)."""
    root = require_schemas()
    defaults = chart_defaults(chart)
    schema_path = root / CHART_DIRS[chart] / "values.schema.json"
    if schema_path.exists():
        merged = _merge(defaults, values)
        schema = json.loads(schema_path.read_text())
        # Some charts name a draft by an URL jsonschema does not know: Draft 7 is what Helm uses.
        validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        if schema.get("$schema") and validator_cls.META_SCHEMA.get("$id", "").rstrip("#") != schema["$schema"].rstrip("#"):
            validator_cls = jsonschema.Draft7Validator
        errors = list(validator_cls(schema).iter_errors(merged))
        if errors:
            lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:20]]
            raise AssertionError(f"{chart} values rejected by values.schema.json:\n" + "\n".join(lines))
    unknown = [k for k in _unknown_keys(values, defaults)
               if not any(k == free or k.startswith(f"{free}.") for free in FREE_FORM.get(chart, ()))]
    if unknown:
        raise AssertionError(f"{chart} values set keys the chart does not have: {unknown}")


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def _unknown_keys(values: Any, defaults: Any, prefix: str = "") -> list[str]:
    if not isinstance(values, dict) or not isinstance(defaults, dict):
        return []
    if not defaults:  # free-form map in the chart: any key goes
        return []
    out: list[str] = []
    for k, v in values.items():
        path = f"{prefix}.{k}" if prefix else str(k)
        if k not in defaults:
            out.append(path)
        else:
            out.extend(_unknown_keys(v, defaults[k], path))
    return out


# ---------------------------------------------------------------------------------------------
# Talos machine config patches
# ---------------------------------------------------------------------------------------------

@functools.cache
def _talos_kinds() -> tuple[dict[str, Any], dict[str | None, str]]:
    schema = json.loads((require_schemas() / "talos" / "config.schema.json").read_text())
    by_kind: dict[str | None, str] = {}
    for ref in schema["oneOf"]:
        name = ref["$ref"].split("/")[-1]
        kind = schema["$defs"][name].get("properties", {}).get("kind", {}).get("enum", [None])[0]
        by_kind[kind] = name  # None: the v1alpha1 machine config document (no kind)
    return schema, by_kind


def validate_talos_patch(patch: dict[str, Any]) -> None:
    """One document of a Talos config patch: the v1alpha1 machine config (no ``kind``) or a typed
    document (``kind: UserVolumeConfig``...), checked against its own definition (the schema's
    root oneOf would only say "not valid under any of the given schemas")."""
    schema, by_kind = _talos_kinds()
    kind = patch.get("kind")
    if kind not in by_kind:
        raise AssertionError(f"unknown Talos config document kind {kind!r}")
    sub = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{by_kind[kind]}"}
    errors = list(jsonschema.Draft202012Validator(sub).iter_errors(patch))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:20]]
        raise AssertionError(f"Talos patch ({kind or 'v1alpha1'}) invalid:\n" + "\n".join(lines))
