"""The rules of ``policy/rules.py`` as a Pulumi CrossGuard policy pack (pulumi-policy 1.21.0).

Each rule becomes one policy of the same id: a ``ResourceValidationPolicy`` for per-resource
rules, a ``StackValidationPolicy`` for rules that need the whole stack, with the rule's level
(``EnforcementLevel.MANDATORY`` or ``ADVISORY``). The adapter builds the same records the
offline plan writes to ``plan.json``, so the same functions judge both.

How the engine hands values to a Python policy, and what the adapter does about it:

- ``ResourceValidationArgs.props`` are the resource's *inputs*; in a stack policy,
  ``PolicyResource.props`` are its *outputs* (for Kubernetes objects, the inputs plus status).
  The stack's exports are the props of the ``pulumi:pulumi:Stack`` resource.
- Secrets: the engine sends properties with secrets kept (``MarshalOptions{KeepSecrets: true}``
  in pulumi's ``analyzer_plugin.go``), but pulumi-policy's ``Analyze``/``AnalyzeStack`` decode
  them with ``deserialize_properties(...)`` without ``proxy_secrets``, which unwraps a secret to
  its plaintext: a policy cannot tell a secret from a clear value (only ``Remediate`` keeps
  ``pulumi_policy.Secret`` wrappers). :func:`install_secret_decoder` therefore wraps that
  decoder so a secret arrives as ``"[secret]"`` — the marker ``plan.json`` uses — and the
  plaintext never reaches a rule.
- Unknowns (preview): they arrive as sentinel strings behind a proxy that raises
  ``UnknownValueError`` on access, which would skip the whole policy with an advisory
  "can't run policy during preview". :func:`plain` reads the proxies' targets and maps the
  sentinels to ``"[unknown]"``, which the rules treat as "cannot be judged yet".
- ``retainOnDelete`` is not part of ``PolicyResourceOptions``: the advisory
  ``retain-irreplaceable`` rule only runs in the offline plan.
- Exemption context (``allowReinstall``) comes from the stack config the engine passes in
  ``PULUMI_CONFIG``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi.runtime
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import policy as _sdk
from pulumi_policy import proxy as _proxy

from policy import rules

PACK_NAME = "weebo-platform-guardrails"

_UNKNOWN_SENTINELS = frozenset({
    _proxy.UNKNOWN_BOOLEAN_VALUE, _proxy.UNKNOWN_NUMBER_VALUE, _proxy.UNKNOWN_STRING_VALUE,
    _proxy.UNKNOWN_ARRAY_VALUE, _proxy.UNKNOWN_ASSET_VALUE, _proxy.UNKNOWN_ARCHIVE_VALUE,
    _proxy.UNKNOWN_OBJECT_VALUE,
})


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

def _mark_secrets(value: Any) -> Any:
    if rules.is_wire_secret(value):
        return rules.SECRET
    if isinstance(value, dict):
        return {k: _mark_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_secrets(v) for v in value]
    return value


def install_secret_decoder() -> None:
    """Make pulumi-policy's Analyze/AnalyzeStack see secrets as ``"[secret]"`` (idempotent)."""
    current = _sdk.deserialize_properties
    if getattr(current, "_weebo_marks_secrets", False):
        return

    def decode(props: dict[str, Any], proxy_secrets: bool = False) -> dict[str, Any]:
        if proxy_secrets:  # Remediate: keep the SDK's own Secret wrappers
            return current(props, proxy_secrets)
        return current(_mark_secrets(props), False)

    decode._weebo_marks_secrets = True  # type: ignore[attr-defined]
    _sdk.deserialize_properties = decode


def plain(value: Any) -> Any:
    """Props (proxies, unknown sentinels, Secret wrappers) as plain JSON-like data."""
    if isinstance(value, (_proxy._DictProxy, _proxy._ListProxy)):
        value = value["__target"]
    if isinstance(value, Secret):
        return rules.SECRET
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
        return rules.UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf numbers are doubles
    return value


def context_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Exemptions from the stack config (``project:key`` -> JSON string), as offline.plan.policy_context."""
    raw = config.get("weebo-platform:managementCluster")
    try:
        mc = json.loads(raw) if isinstance(raw, str) else (raw or {})
    except ValueError:
        mc = {}
    return {"allowReinstall": bool(mc.get("allowReinstall", False)) if isinstance(mc, Mapping) else False}


def _context() -> dict[str, Any]:
    return context_from_config(pulumi.runtime.get_config_env())


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------

def resource_record(args: ResourceValidationArgs) -> dict[str, Any]:
    return {
        "urn": args.urn,
        "type": args.resource_type,
        "name": args.name,
        "parent": args.opts.parent or "",
        "protect": bool(args.opts.protect),
        "retainOnDelete": None,  # not reported to policies
        "inputs": plain(args.props),
    }


def stack_record(res: PolicyResource) -> dict[str, Any]:
    return {
        "urn": res.urn,
        "type": res.resource_type,
        "name": res.name,
        "parent": res.parent.urn if res.parent is not None else "",
        "protect": bool(res.opts.protect),
        "retainOnDelete": None,
        "inputs": plain(res.props),
    }


# ---------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------

def _level(rule: rules.Rule) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY


def _resource_policy(rule: rules.Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for v in rules.check_resource(rule, resource_record(args), _context()):
            report_violation(v.message, None)

    return ResourceValidationPolicy(name=rule.id, description=rule.description, validate=validate,
                                    enforcement_level=_level(rule))


def _stack_policy(rule: rules.Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        records = [stack_record(r) for r in args.resources if r.resource_type != rules.STACK_TYPE]
        outputs: dict[str, Any] = {}
        for r in args.resources:
            if r.resource_type == rules.STACK_TYPE:
                outputs = plain(r.props)
        for v in rules.check_stack(rule, records, outputs, _context()):
            report_violation(v.message, v.urn or None)

    return StackValidationPolicy(name=rule.id, description=rule.description, validate=validate,
                                 enforcement_level=_level(rule))


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [_resource_policy(r) if r.resource_check is not None else _stack_policy(r) for r in rules.RULES]


def serve() -> None:
    """Start the policy pack (blocks: the engine talks to it over gRPC)."""
    install_secret_decoder()
    PolicyPack(name=PACK_NAME, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
