"""Everything the stacks render, checked against the upstream contracts in ../shared/schemas:
every Helm release's values against its chart, every custom resource against its CRD."""

from __future__ import annotations

import pytest

import versions
from offline.mocks import UNKNOWN, redact
from offline.plan import HELM_RELEASE
from tests.helpers.schemas import require_schemas, validate_chart_values, validate_custom_resource
from tests.helpers.factories import stack_plan as shared_stack_plan

CHART_BY_REFERENCE = {spec.reference: name for name, spec in versions.CHARTS.items()}


@pytest.fixture(scope="module", params=["prod", "dev"])
def stack_plan(request):
    return shared_stack_plan(request.param)


def _contains(value, marker) -> bool:
    if value == marker:
        return True
    if isinstance(value, dict):
        return any(_contains(v, marker) for v in value.values())
    if isinstance(value, list):
        return any(_contains(v, marker) for v in value)
    return False


def test_every_helm_release_is_pinned_and_accepted_by_its_chart(stack_plan):
    require_schemas()
    releases = stack_plan.monitor.of_type(HELM_RELEASE)
    assert releases
    for release in releases:
        inputs = redact(release.inputs)
        chart = CHART_BY_REFERENCE.get(inputs["chart"])
        assert chart, f"{release.name}: chart {inputs['chart']} is not pinned in versions.CHARTS"
        assert inputs["version"] == versions.CHARTS[chart].version
        values = inputs.get("values") or {}
        # Secrets live in Kubernetes Secrets referenced by the values, so values stay readable.
        assert not _contains(values, UNKNOWN), f"{release.name}: values unknown at preview"
        assert not _contains(values, "[secret]"), f"{release.name}: a secret in Helm values"
        validate_chart_values(chart, values)


def test_every_custom_resource_matches_its_crd(stack_plan):
    require_schemas()
    customs = [r for r in stack_plan.registrations
               if r.custom and r.type.startswith("kubernetes:") and "apiVersion" in r.inputs
               and r.type.split(":")[1].split("/")[0] not in _CORE_GROUPS]
    for reg in customs:
        if reg.type in _NO_UPSTREAM_SCHEMA:
            continue
        obj = {k: v for k, v in redact(reg.inputs).items() if k != "__defaults"}
        if _contains(obj, UNKNOWN):
            obj = _fill_unknowns(obj)
        validate_custom_resource(obj)


# Built-in API groups: validated by the Kubernetes SDK's own types, not by CRDs.
_CORE_GROUPS = {"core", "apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io", "policy",
                "storage.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io", "helm.sh",
                "yaml", "yaml/v2", "scheduling.k8s.io", "coordination.k8s.io", "autoscaling"}


# Kinds whose CRD is not among ../shared/schemas, each with where its contract is checked instead.
_NO_UPSTREAM_SCHEMA = {
    # Talos installs this CRD itself as a bootstrap manifest (siderolabs/talos v1.13.9
    # internal/app/machined/pkg/controllers/k8s/internal/k8stemplates/crds.go: spec.roles, a list
    # of strings); tests/test_backups.py checks the one object the program renders.
    "kubernetes:talos.dev/v1alpha1:ServiceAccount",
}


def _fill_unknowns(value):
    """Values known only after deployment (names of generated objects...) stand in as strings."""
    if value == UNKNOWN:
        return "unknown-at-preview"
    if isinstance(value, dict):
        return {k: _fill_unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_unknowns(v) for v in value]
    return value
