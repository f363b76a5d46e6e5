"""ArgoCD: chart values, OIDC through Authentik without the secret in values, RBAC, TLS route,
repositories as secrets, the platform project, and the contract for tenant clusters."""

from __future__ import annotations

import copy
import json

import pulumi
import pytest
import yaml

from components.gitops import argocd
from components.core.contracts import (
    ARGOCD_CLUSTER_SECRET_LABELS,
    OidcClient,
    argocd_cluster_secret_data,
    authentik_issuer_url,
    hostnames,
)
from offline.mocks import contains_secret
from offline.plan import write_plan
from tests.helpers.factories import base_raw, config, plan
from tests.helpers.schemas import chart_defaults, validate_chart_values, validate_custom_resource

REPO_PASSWORD = "offline-test-repo-password-91c2"

# Keys Argo CD reads that the chart passes through without listing them in values.yaml:
# "Any values you put under .configs.cm are passed to argocd-cm" (values.yaml) and likewise
# configs.params -> argocd-cmd-params-cm. Ref: argo-cd docs operator-manual/argocd-cm.yaml
# (oidc.config), operator-manual/ingress.md (server.insecure).
PASS_THROUGH = {("configs", "cm"): {"oidc.config"}, ("configs", "params"): {"server.insecure"}}


def _oidc(cfg) -> OidcClient:
    return OidcClient(authentik_issuer_url(cfg, "argocd"), "argocd", pulumi.Output.secret("unused"))


def _with_repo(**argocd_cfg):
    return base_raw(argocd={"repositories": [{
        "name": "platform-apps", "url": "https://git.example.org/weebo/platform-apps.git",
        "username": "argocd-bot", "password": REPO_PASSWORD}], **argocd_cfg})


@pytest.fixture(scope="module")
def repo_plan():
    return plan(_with_repo(), secret_keys=frozenset({"argocd"}))


def _one(monitor, type_: str, name: str):
    found = [r for r in monitor.of_type(type_) if r.name == name]
    assert len(found) == 1, f"{len(found)} {type_} named {name}"
    return found[0]


# --- values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ha", [True, False])
def test_values_pass_the_chart_except_documented_pass_through_keys(ha):
    cfg = config(base_raw(argocd={"ha": ha}))
    values = copy.deepcopy(argocd.values(cfg, _oidc(cfg)))
    defaults = chart_defaults("argo-cd")
    for path, allowed in PASS_THROUGH.items():
        section, default_section = values, defaults
        for key in path:
            section, default_section = section[key], default_section[key]
        extra = set(section) - set(default_section)
        assert extra <= allowed, f"{'.'.join(path)} sets undocumented keys {extra - allowed}"
        for key in extra:
            del section[key]
    validate_chart_values("argo-cd", values)


def test_oidc_login_through_authentik_references_the_secret():
    cfg = config()
    oidc = _oidc(cfg)
    values = argocd.values(cfg, oidc)
    conf = yaml.safe_load(values["configs"]["cm"]["oidc.config"])
    assert conf["issuer"] == oidc.issuer_url == f"https://{hostnames(cfg).authentik}/application/o/argocd/"
    assert conf["clientID"] == "argocd"
    assert conf["clientSecret"] == f"${argocd.OIDC_SECRET}:{argocd.OIDC_SECRET_KEY}"
    assert "profile" in conf["requestedScopes"]  # Authentik's profile scope carries `groups`
    assert values["configs"]["cm"]["admin.enabled"] is False
    assert values["dex"]["enabled"] is False


def test_rbac_maps_the_platform_admin_group_and_grants_nothing_else_by_default():
    cfg = config(base_raw(authentik={"platformAdminGroup": "ops-admins"}, tenants=[]))
    rbac = argocd.values(cfg, _oidc(cfg))["configs"]["rbac"]
    assert rbac["scopes"] == "[groups]"
    assert rbac["policy.default"] == ""
    lines = [line.strip() for line in rbac["policy.csv"].splitlines() if line.strip()]
    assert lines == ["g, ops-admins, role:admin"]
    readonly = config(base_raw(argocd={"defaultRole": "role:readonly"}))
    assert argocd.values(readonly, _oidc(readonly))["configs"]["rbac"]["policy.default"] == "role:readonly"


def test_ha_scales_out_and_relaxes_redis_anti_affinity_below_three_nodes():
    one_node = config()
    values = argocd.values(one_node, _oidc(one_node))
    ha = values["redis-ha"]
    assert (ha["enabled"], ha["hardAntiAffinity"], ha["haproxy"]["hardAntiAffinity"]) == (True, False, False)
    assert values["server"]["replicas"] == values["repoServer"]["replicas"] == 2
    nodes = [{"hostname": f"node-{i}", "ovhServiceName": f"ns10{i}.ip-10-0-0.eu", "address": f"51.0.0.1{i}"}
             for i in range(3)]
    raw = base_raw()
    raw["managementCluster"]["nodes"] = nodes
    three = config(raw)
    assert argocd.values(three, _oidc(three))["redis-ha"]["hardAntiAffinity"] is True
    single = config(base_raw(argocd={"ha": False}))
    values = argocd.values(single, _oidc(single))
    assert "redis-ha" not in values and values["server"]["replicas"] == 1


# --- CRs -------------------------------------------------------------------------------------

def test_ingress_route_serves_ui_and_grpc_with_tls_on_the_platform_name():
    cfg = config()
    route = argocd.ingress_route(cfg)
    validate_custom_resource(route)
    host = hostnames(cfg).argocd
    assert route["spec"]["entryPoints"] == ["websecure"] and route["spec"]["tls"] == {}
    matches = [r["match"] for r in route["spec"]["routes"]]
    assert all(f"Host(`{host}`)" in m for m in matches)
    grpc = next(r for r in route["spec"]["routes"] if "application/grpc" in r["match"])
    assert grpc["services"][0]["scheme"] == "h2c"


def test_platform_project_matches_the_crd_and_allows_only_configured_repositories():
    cfg = config(_with_repo(), {"argocd"})
    project = argocd.platform_project(cfg)
    validate_custom_resource(project)
    assert project["spec"]["sourceRepos"] == ["https://git.example.org/weebo/platform-apps.git"]
    assert project["spec"]["destinations"] == [{"server": argocd.IN_CLUSTER, "namespace": "*"}]


def test_network_policies_match_the_cilium_schema():
    for obj in argocd.network_policies():
        if obj["kind"] == "CiliumNetworkPolicy":
            validate_custom_resource(obj)


# --- secrets ---------------------------------------------------------------------------------

def test_repository_credentials_are_labelled_secrets(repo_plan):
    secret = _one(repo_plan.monitor, "kubernetes:core/v1:Secret", "argocd-repo-platform-apps")
    assert secret.input("metadata", "labels")["argocd.argoproj.io/secret-type"] == "repository"
    assert contains_secret(secret.inputs["stringData"])
    data = secret.input("stringData")
    assert data["password"] == REPO_PASSWORD and data["url"].startswith("https://")


def test_oidc_client_secret_is_a_labelled_secret_and_never_in_values():
    import pulumi_kubernetes as k8s

    cfg = config()
    client_secret = "offline-test-oidc-client-secret-5d1e"
    oidc = OidcClient(authentik_issuer_url(cfg, "argocd"), "argocd", pulumi.Output.secret(client_secret))

    def build():
        return argocd.ArgoCD("argocd", argocd.ArgoCDArgs(config=cfg, oidc=oidc), k8s.Provider("test", kubeconfig="{}"))

    monitor, _ = _program(build)
    secret = monitor.named("argocd-oidc")
    assert secret.input("metadata", "name") == argocd.OIDC_SECRET
    assert secret.input("metadata", "labels")["app.kubernetes.io/part-of"] == "argocd"
    assert contains_secret(secret.inputs["stringData"])
    assert secret.input("stringData") == {argocd.OIDC_SECRET_KEY: client_secret}
    release = _one(monitor, "kubernetes:helm.sh/v3:Release", "argocd")
    assert not contains_secret(release.inputs["values"])  # known values, readable plan
    assert client_secret not in json.dumps(release.input("values"))


def test_no_credential_reaches_the_plan_files(repo_plan, tmp_path):
    write_plan(repo_plan, tmp_path / "plan")
    for f in (tmp_path / "plan").rglob("*"):
        if f.is_file():
            assert REPO_PASSWORD not in f.read_text(), f


def test_a_password_written_in_clear_is_refused():
    from stacks.config import ConfigError

    with pytest.raises(ConfigError, match="clear text"):
        config(_with_repo())


# --- order -----------------------------------------------------------------------------------

def test_crs_wait_for_the_release_which_waits_for_traefik_and_its_secrets(repo_plan):
    m = repo_plan.monitor
    release = _one(m, "kubernetes:helm.sh/v3:Release", "argocd")
    for type_, name in (("kubernetes:traefik.io/v1alpha1:IngressRoute", "argocd-ingress-route"),
                        ("kubernetes:argoproj.io/v1alpha1:AppProject", "argocd-platform-project")):
        assert m.depends_on(_one(m, type_, name), release)
    assert m.depends_on(release, _one(m, "kubernetes:core/v1:Secret", "argocd-oidc"))
    assert m.depends_on(release, _one(m, "kubernetes:helm.sh/v3:Release", "traefik"))


# --- contract for tenants --------------------------------------------------------------------

def _program(fn):
    """Run ``fn`` as a tiny Pulumi program under the recording mock engine."""
    from pulumi.runtime import settings as runtime_settings

    from offline.mocks import PlanMocks, RecordingMonitor

    mocks = PlanMocks(preview=False)
    monitor = RecordingMonitor(mocks, project="weebo-platform", stack="test")
    runtime_settings.ROOT.set(None)  # a fresh root Stack per program (the SDK keeps it in this context variable)
    pulumi.runtime.set_mocks(mocks, project="weebo-platform", stack="test", preview=False, monitor=monitor)
    result = {}

    @pulumi.runtime.test
    def program():
        result["value"] = fn()

    program()
    return monitor, result["value"]


def test_cluster_secret_contract_renders_a_secret_argocd_cluster_config():
    import pulumi_kubernetes as k8s

    def build():
        data = argocd_cluster_secret_data("alpha", "https://api.alpha.example.org:6443",
                                          ca_data="Q0E=", cert_data="Q0VSVA==", key_data="S0VZ")
        return k8s.core.v1.Secret("alpha-cluster", metadata={"labels": ARGOCD_CLUSTER_SECRET_LABELS},
                                  string_data=data)

    monitor, _ = _program(build)
    secret = monitor.named("alpha-cluster")
    assert contains_secret(secret.inputs["stringData"])
    data = secret.input("stringData")
    assert data["name"] == "alpha" and data["server"] == "https://api.alpha.example.org:6443"
    assert json.loads(data["config"]) == {"tlsClientConfig": {
        "insecure": False, "caData": "Q0E=", "certData": "Q0VSVA==", "keyData": "S0VZ"}}
    with pytest.raises(ValueError):
        argocd_cluster_secret_data("alpha", "https://x", ca_data="Q0E=")  # no credentials
    with pytest.raises(ValueError):
        argocd_cluster_secret_data("alpha", "https://x", ca_data="Q0E=", cert_data="Q0VSVA==")  # no key


def test_argocd_tells_tenants_where_to_register_and_what_to_wait_for():
    import pulumi_kubernetes as k8s

    cfg = config()

    def build():
        provider = k8s.Provider("test", kubeconfig="{}")
        return argocd.ArgoCD("argocd", argocd.ArgoCDArgs(config=cfg, oidc=_oidc(cfg)), provider)

    _, component = _program(build)
    assert component.access.namespace == "argocd"
    assert component.access.ready is component.release
    assert component.access.platform_project == argocd.PLATFORM_PROJECT
    assert component.access.url == f"https://{hostnames(cfg).argocd}"
