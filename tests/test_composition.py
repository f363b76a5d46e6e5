"""The composition graph: management cluster -> platform services -> tenants, recorded with a
monitor that keeps parents, providers and dependencies."""

from __future__ import annotations

import pulumi
import pytest

from stacks.config import ConfigError
from offline.mocks import Registration, contains_secret
from tests.helpers.factories import base_raw, plan, tenant

K8S_PROVIDER = "pulumi:providers:kubernetes"
RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.fixture(scope="module")
def prod_like():
    raw = base_raw(tenants=[tenant("alpha", 0), tenant("beta", 1)])
    return plan(raw).monitor


def _component(monitor, type_: str, name: str) -> Registration:
    found = [r for r in monitor.of_type(type_) if r.name == name]
    assert len(found) == 1, f"{type_} {name}: {len(found)}"
    return found[0]


def _custom_descendants(monitor, comp: Registration) -> list[Registration]:
    return [r for r in monitor.descendants(comp.urn) if r.custom]


def test_one_kubernetes_provider_for_the_management_cluster(prod_like):
    mgmt = [p for p in prod_like.of_type(K8S_PROVIDER) if p.name == "weebo4cp"]
    assert len(mgmt) == 1
    platform = [r for r in prod_like.registrations.values()
                if r.custom and r.type.startswith("kubernetes:") and "TenantCluster" not in r.urn]
    assert platform
    assert {r.provider_urn for r in platform} == {mgmt[0].urn}


def test_the_provider_waits_for_the_talos_kubeconfig(prod_like):
    provider = next(p for p in prod_like.of_type(K8S_PROVIDER) if p.name == "weebo4cp")
    kubeconfig = prod_like.of_type("talos:cluster/kubeconfig:Kubeconfig")[0]
    # Through the API readiness gate (issue 13): its output is what the provider gets.
    gate = prod_like.of_type("pulumi-python:dynamic/weebo:KubeApiReady")[0]
    assert provider.property_dependencies.get("kubeconfig", []) == [gate.urn]
    assert prod_like.depends_on(provider, kubeconfig)


def test_once_deployed_the_kubeconfig_reaches_the_provider_as_a_secret():
    monitor = plan(base_raw(), preview=False).monitor
    provider = next(p for p in monitor.of_type(K8S_PROVIDER) if p.name == "weebo4cp")
    assert contains_secret(provider.inputs["kubeconfig"])
    assert contains_secret(monitor.stack_outputs["kubeconfig"])
    assert contains_secret(monitor.stack_outputs["talosconfig"])


def test_cilium_comes_before_every_other_platform_workload(prod_like):
    cilium = _component(prod_like, "weebo:network:Cilium", "cilium")
    cilium_release = next(r for r in _custom_descendants(prod_like, cilium) if r.type == RELEASE)
    others = [r for r in prod_like.of_type(RELEASE) if r.urn != cilium_release.urn]
    assert others
    for release in others:
        assert prod_like.depends_on(release, cilium), f"{release.name} does not wait for Cilium"


def test_cluster_api_waits_for_cert_manager_and_virtualization(prod_like):
    capi = _component(prod_like, "weebo:clusters:ClusterApi", "cluster-api")
    cert_manager = _component(prod_like, "weebo:tls:CertManager", "cert-manager")
    virt = _component(prod_like, "weebo:virtualization:Virtualization", "virtualization")
    descendants = _custom_descendants(prod_like, capi)
    first = [r for r in descendants if r.type.startswith("kubernetes:")]
    assert first
    for r in first:
        assert prod_like.depends_on(r, cert_manager), r.urn
        assert prod_like.depends_on(r, virt), r.urn
    # The tenants' image schematic is an Image Factory call: it waits for nothing in the cluster.
    [schematic] = [r for r in descendants if r.type == "talos:imageFactory/schematic:Schematic"]
    assert schematic.dependencies == [] and schematic.provider_urn == ""


def test_every_tenant_boots_the_one_tenant_image_schematic(prod_like):
    [schematic] = [r for r in prod_like.of_type("talos:imageFactory/schematic:Schematic")
                   if r.name == "cluster-api-tenant-image-schematic"]
    templates = [r for r in prod_like.registrations.values()
                 if r.type.endswith(":KubevirtMachineTemplate")]
    assert len({r.parent for r in templates}) == len(prod_like.of_type("weebo:tenants:TenantCluster")) > 1
    for template in templates:
        assert schematic.urn in template.dependencies, template.name


def test_tenants_wait_for_the_platform_but_never_for_each_other(prod_like):
    alpha = _component(prod_like, "weebo:tenants:TenantCluster", "alpha")
    beta = _component(prod_like, "weebo:tenants:TenantCluster", "beta")
    capi = _component(prod_like, "weebo:clusters:ClusterApi", "cluster-api")
    for mine, other in ((alpha, beta), (beta, alpha)):
        resources = _custom_descendants(prod_like, mine)
        assert resources
        assert any(prod_like.depends_on(r, capi) for r in resources)
        assert not any(prod_like.depends_on(r, other) for r in resources)


def test_children_are_named_after_their_component(prod_like):
    """Children are named f"{component}-<role>" (an ancestor's name, for grouping components
    such as IrreplaceableState), so URNs read like the architecture."""
    regs = prod_like.registrations
    for child in regs.values():
        if child.custom and child.type == RELEASE:
            continue  # Helm release names are the chart's release names
        ancestors = []
        cur = regs.get(child.parent)
        while cur is not None:
            ancestors.append(cur.name)
            cur = regs.get(cur.parent)
        if ancestors:
            assert any(child.name.startswith(a) for a in ancestors), child.urn


def test_bad_config_registers_nothing():
    raw = base_raw(tenants=[tenant("alpha", 0), tenant("alpha", 1)])
    with pytest.raises(ConfigError):
        plan(raw)
    # A fresh run after the failure sees an empty graph from the failed one.
    from stacks.loader import StackFile
    from offline.plan import run_offline

    with pytest.raises(ConfigError) as exc:
        run_offline(StackFile(stack="t", raw=raw, secret_keys=frozenset()))
    assert "tenants[1].name" in str(exc.value)


def test_bad_config_registers_no_resource_in_the_monitor(monkeypatch):
    from offline import plan as plan_module

    seen = {}
    original = plan_module.RecordingMonitor

    class Spy(original):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen["monitor"] = self

    monkeypatch.setattr(plan_module, "RecordingMonitor", Spy)
    with pytest.raises(ConfigError):
        plan(base_raw(domain={"parentZone": "not a zone", "acmeEmail": "x@example.org"}))
    assert seen["monitor"].registrations == {}


def test_stack_outputs_keep_credentials_secret_in_preview(prod_like):
    assert contains_secret(prod_like.stack_outputs["kubeconfig"])
    assert contains_secret(prod_like.stack_outputs["talosconfig"])


def test_an_existing_cluster_without_its_key_reads_the_models_default_variable(monkeypatch):
    # managementCluster.existing may be left out: the kubeconfig variable is then the config
    # model's default (KUBECONFIG); a given one is used as written.
    import copy

    from stacks.loader import read_stack

    raw = copy.deepcopy(read_stack("dev").raw)
    raw["managementCluster"].pop("existing")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(pulumi.RunError, match="export KUBECONFIG "):
        plan(raw, stack="dev", preview=False)
    raw["managementCluster"]["existing"] = {"kubeconfigEnv": "WEEBO_DEV_KUBECONFIG"}
    with pytest.raises(pulumi.RunError, match="export WEEBO_DEV_KUBECONFIG "):
        plan(raw, stack="dev", preview=False)
