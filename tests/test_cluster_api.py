"""Cluster API: operator values vs the chart schema, provider CRs vs the operator CRDs, order, and
the tenant version matrix enforced by config validation."""

from __future__ import annotations

import pytest

import versions
from components.clusters import cluster_api
from stacks.config import ConfigError
from tests.helpers.factories import base_plan, base_raw, config, plan, tenant
from tests.helpers.schemas import validate_chart_values, validate_custom_resource


@pytest.fixture(scope="module")
def prod_plan():
    return base_plan()  # shared: planned once per test process


def _one(monitor, type_: str, name: str):
    found = [r for r in monitor.of_type(type_) if r.name == name]
    assert len(found) == 1, f"{len(found)} {type_} named {name}"
    return found[0]


def test_operator_values_pass_the_chart_schema():
    validate_chart_values("cluster-api-operator", cluster_api.values(config()))


def test_values_check_would_catch_an_unknown_key():
    bad = {**cluster_api.values(config()), "replicas": 2}  # the chart calls it replicaCount
    with pytest.raises(AssertionError, match="replicas"):
        validate_chart_values("cluster-api-operator", bad)


def test_provider_crs_match_the_operator_crds_and_the_pinned_versions():
    expected = {
        ("CoreProvider", "cluster-api"): versions.CAPI_CORE_VERSION,
        ("InfrastructureProvider", "kubevirt"): versions.CAPK_VERSION,
        ("BootstrapProvider", "talos"): versions.CABPT_VERSION,
        ("ControlPlaneProvider", "talos"): versions.CACPPT_VERSION,
    }
    crs = [cluster_api.provider_cr(p) for p in cluster_api.PROVIDERS]
    for cr in crs:
        validate_custom_resource(cr)
        assert cr["apiVersion"] == "operator.cluster.x-k8s.io/v1alpha2"
        assert cr["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
        # The built-in (clusterctl) provider list resolves these names: no fetchConfig.
        assert "fetchConfig" not in cr["spec"]
    assert {(cr["kind"], cr["metadata"]["name"]): cr["spec"]["version"] for cr in crs} == expected
    namespaces = [cr["metadata"]["namespace"] for cr in crs]
    assert len(set(namespaces)) == 4 and cluster_api.NAMESPACE not in namespaces


def test_network_policies_match_the_cilium_schema():
    objs = cluster_api.operator_policies() + [o for p in cluster_api.PROVIDERS for o in cluster_api.provider_policies(p)]
    for obj in objs:
        if obj["kind"] == "CiliumNetworkPolicy":
            validate_custom_resource(obj)


def test_the_plan_installs_each_provider_in_its_own_namespace(prod_plan):
    m = prod_plan.monitor
    namespaces = {r.input("metadata", "name"): r.input("metadata", "labels")
                  for r in m.of_type("kubernetes:core/v1:Namespace")}
    for p in cluster_api.PROVIDERS:
        assert p.namespace in namespaces
        cr = _one(m, f"kubernetes:operator.cluster.x-k8s.io/v1alpha2:{p.kind}",
                  f"cluster-api-{p.namespace.removesuffix('-system')}")
        assert cr.input("metadata", "namespace") == p.namespace
    assert namespaces[cluster_api.NAMESPACE]["pod-security.kubernetes.io/enforce"] == "restricted"


# --- order -----------------------------------------------------------------------------------

def test_cert_manager_comes_before_the_operator(prod_plan):
    m = prod_plan.monitor
    operator = _one(m, "kubernetes:helm.sh/v3:Release", "cluster-api")
    cert_manager = _one(m, "kubernetes:helm.sh/v3:Release", "cert-manager")
    assert m.depends_on(operator, cert_manager)
    assert not m.depends_on(cert_manager, operator)


def test_provider_crs_wait_for_the_operator_and_capk_for_kubevirt(prod_plan):
    m = prod_plan.monitor
    operator = _one(m, "kubernetes:helm.sh/v3:Release", "cluster-api")
    for p in cluster_api.PROVIDERS:
        cr = _one(m, f"kubernetes:operator.cluster.x-k8s.io/v1alpha2:{p.kind}",
                  f"cluster-api-{p.namespace.removesuffix('-system')}")
        assert m.depends_on(cr, operator)
    capk = _one(m, "kubernetes:operator.cluster.x-k8s.io/v1alpha2:InfrastructureProvider", "cluster-api-capk")
    assert m.depends_on(capk, _one(m, "kubernetes:kubevirt.io/v1:KubeVirt", "virtualization-kubevirt-cr"))


def test_tenants_wait_for_the_providers(prod_plan):
    m = prod_plan.monitor
    tenant_ns = _one(m, "kubernetes:core/v1:Namespace", "alpha-namespace-ns")
    cacppt = _one(m, "kubernetes:operator.cluster.x-k8s.io/v1alpha2:ControlPlaneProvider", "cluster-api-cacppt")
    assert m.depends_on(tenant_ns, cacppt)


# --- the tenant version matrix (versions.TENANT_VERSION_MATRIX) ------------------------------

SUPPORTED = [
    (f"v{talos}.0", f"{k8s}.0") for talos, k8s_minors in versions.TENANT_VERSION_MATRIX.items() for k8s in k8s_minors
]


@pytest.mark.parametrize(("talos", "kubernetes"), SUPPORTED)
def test_every_pair_of_the_matrix_is_accepted(talos, kubernetes):
    cfg = config(base_raw(tenants=[tenant("alpha", 0, talosVersion=talos, kubernetesVersion=kubernetes)]))
    assert cfg.tenants[0].talos_version == talos


@pytest.mark.parametrize(("talos", "kubernetes", "path"), [
    ("v1.13.9", "1.36.3", "tenants[0].talosVersion"),  # CACPPT v0.5.12 stops at Talos 1.12
    ("v1.10.9", "1.33.6", "tenants[0].talosVersion"),  # no longer offered
    ("v1.12.11", "1.36.0", "tenants[0].kubernetesVersion"),  # Talos 1.12 stops at 1.35
    ("v1.11.6", "1.34.1", "tenants[0].talosVersion"),  # Talos 1.11 is end of life
    ("v1.12.11", "1.30.14", "tenants[0].kubernetesVersion"),  # below CAPI v1.14's workload floor
])
def test_unsupported_tenant_versions_are_rejected(talos, kubernetes, path):
    raw = base_raw(tenants=[tenant("alpha", 0, talosVersion=talos, kubernetesVersion=kubernetes)])
    with pytest.raises(ConfigError) as err:
        config(raw)
    assert [p.path for p in err.value.problems] == [path]
    assert "supported" in err.value.problems[0].problem


def test_the_matrix_stays_within_what_the_pinned_providers_support():
    # CACPPT v0.5.12: Talos <= 1.12, Kubernetes <= 1.35; CAPI v1.14 workload clusters >= 1.31.
    for talos, minors in versions.TENANT_VERSION_MATRIX.items():
        assert tuple(map(int, talos.split("."))) <= (1, 12)
        for k in minors:
            assert (1, 31) <= tuple(map(int, k.split("."))) <= (1, 35)


# --- GitHub token (operator rate limit) --------------------------------------------------------

GITHUB_TOKEN = "offline-test-github-token-7f3a"


@pytest.fixture(scope="module")
def token_plan():
    return plan(base_raw(clusterApi={"githubToken": GITHUB_TOKEN}), secret_keys=frozenset({"clusterApi"}))


def test_without_a_token_providers_have_no_config_secret(prod_plan):
    m = prod_plan.monitor
    for p in cluster_api.PROVIDERS:
        cr = _one(m, f"kubernetes:operator.cluster.x-k8s.io/v1alpha2:{p.kind}",
                  f"cluster-api-{p.namespace.removesuffix('-system')}")
        assert "configSecret" not in cr.input("spec")
    assert not [r for r in m.of_type("kubernetes:core/v1:Secret") if r.name.endswith("-config")
                and r.name.startswith("cluster-api-")]


def test_the_github_token_reaches_every_provider_as_a_secret_in_its_namespace(token_plan):
    from offline.mocks import contains_secret

    m = token_plan.monitor
    for p in cluster_api.PROVIDERS:
        short = p.namespace.removesuffix("-system")
        cr = _one(m, f"kubernetes:operator.cluster.x-k8s.io/v1alpha2:{p.kind}", f"cluster-api-{short}")
        spec = cr.input("spec")
        # The operator reads the Secret from the provider's own namespace, key "github-token".
        assert spec["configSecret"] == {"name": cluster_api.CONFIG_SECRET, "namespace": p.namespace}
        validate_custom_resource({k: v for k, v in cr.input().items() if k != "__defaults"})
        secret = _one(m, "kubernetes:core/v1:Secret", f"cluster-api-{short}-config")
        assert secret.input("metadata", "namespace") == p.namespace
        assert secret.input("metadata", "name") == cluster_api.CONFIG_SECRET
        assert contains_secret(secret.inputs["stringData"])
        assert secret.input("stringData") == {"github-token": GITHUB_TOKEN}
        assert m.depends_on(cr, secret)


def test_the_github_token_never_reaches_the_plan_files(token_plan, tmp_path):
    from offline.plan import write_plan

    write_plan(token_plan, tmp_path / "plan")
    for f in (tmp_path / "plan").rglob("*"):
        if f.is_file():
            assert GITHUB_TOKEN not in f.read_text(), f


def test_a_github_token_in_clear_is_refused():
    with pytest.raises(ConfigError) as err:
        config(base_raw(clusterApi={"githubToken": GITHUB_TOKEN}))
    assert [p.path for p in err.value.problems] == ["clusterApi.githubToken"]


# --- Renovate guard: no Cluster API that drops the v1beta1 contract ----------------------------

def test_renovate_keeps_cluster_api_below_v1_16():
    import json

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from stacks.loader import ROOT

    rules = json.loads((ROOT / "renovate.json").read_text())["packageRules"]
    [cap] = [r for r in rules if "kubernetes-sigs/cluster-api" in r.get("matchPackageNames", [])
             and "allowedVersions" in r]
    # Renovate refuses allowedVersions together with matchUpdateTypes in one rule.
    assert "matchUpdateTypes" not in cap
    assert cap["matchPackageNames"] == ["kubernetes-sigs/cluster-api"]  # providers are not capped
    allowed = SpecifierSet(cap["allowedVersions"].replace(" ", ""))
    assert Version(versions.CAPI_CORE_VERSION.removeprefix("v")) in allowed
    assert Version("1.15.9") in allowed
    assert Version("1.16.0") not in allowed and Version("2.0.0") not in allowed
    # The reason sits next to the pin.
    text = (ROOT / "versions.py").read_text()
    before_pin = text[:text.index('CAPI_CORE_VERSION = "')].rsplit("\n\n", 1)[-1]
    assert "v1.16" in before_pin and "v1beta1" in before_pin
