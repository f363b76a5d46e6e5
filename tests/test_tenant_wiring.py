"""Tenants wired to the platform services: Authentik application and access, RBAC inside the
tenant, Vault Kubernetes auth, the apps wildcard, the NetBird route and routing peer, secrets."""

from __future__ import annotations

import pytest
import yaml

from components.tenant import apps as tenant_apps

from components.tenant import capi as tenant_capi

from components.tenant import gitops as tenant_gitops

from components.tenant import secrets as tenant_secrets

from components.tenant import vpn as tenant_vpn
from components.core.contracts import OIDC_GROUPS_PREFIX, authentik_issuer_url, hostnames, tenant_oidc_slug
from components.identity import KUBELOGIN_REDIRECTS
from components.secrets.vault_config import parse_policy, policy_allows, tenant_policy
from offline import plan as plan_module
from stacks.config import ConfigError
from offline.invokes import SECRET_MARKER
from offline.mocks import contains_secret, redact
from offline.plan import write_plan
from tests.helpers.factories import base_raw, config, plan, tenant
from tests.helpers.schemas import validate_chart_values
from tests.test_tenant_cluster import FAKE_TOKEN, DeployedClusterMocks

OAUTH2 = "authentik:index/providerOauth2:ProviderOauth2"
APPLICATION = "authentik:index/application:Application"
BINDING = "authentik:index/policyBinding:PolicyBinding"
GROUP = "authentik:index/group:Group"
AUTH_BACKEND = "vault:index/authBackend:AuthBackend"
AUTH_CONFIG = "vault:kubernetes/authBackendConfig:AuthBackendConfig"
AUTH_ROLE = "vault:kubernetes/authBackendRole:AuthBackendRole"
CRB = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
CLUSTER = "kubernetes:cluster.x-k8s.io/v1beta2:Cluster"
CONTROL_PLANE = "kubernetes:controlplane.cluster.x-k8s.io/v1alpha3:TalosControlPlane"
K8S_PROVIDER = "pulumi:providers:kubernetes"


def _raw():
    return base_raw(
        authentik={"groups": [{"name": "alpha-admins"}, {"name": "beta-admins"}]},
        netbird={"groups": ["platform-admins", "alpha-admins"]},
        tenants=[tenant("alpha", 0, adminGroups=["alpha-admins"], netbirdRoute=True),
                 tenant("beta", 1, adminGroups=["beta-admins"])],
    )


@pytest.fixture(scope="module")
def preview():
    return plan(_raw())


@pytest.fixture(scope="module")
def deployed():
    mp = pytest.MonkeyPatch()
    mp.setattr(plan_module, "PlanMocks", DeployedClusterMocks)
    try:
        yield plan(_raw(), preview=False)
    finally:
        mp.undo()


def _tenant(result, name):
    comp = next(r for r in result.monitor.of_type("weebo:tenants:TenantCluster") if r.name == name)
    return [r for r in result.monitor.descendants(comp.urn) if r.custom]


def _one(regs, type_):
    found = [r for r in regs if r.type == type_]
    assert len(found) == 1, (type_, [r.name for r in found])
    return found[0]


def _provider(result, name):
    return next(p for p in result.monitor.of_type(K8S_PROVIDER) if p.name == f"{name}-provider")


# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------

def test_issuer_and_client_id_agree_across_authentik_talos_patch_and_rbac(preview):
    cfg = config(_raw())
    slug = tenant_oidc_slug("alpha")
    regs = _tenant(preview, "alpha")
    provider, app = _one(regs, OAUTH2), _one(regs, APPLICATION)
    assert provider.input("clientId") == app.input("slug") == slug
    assert provider.input("clientType") == "public" and not provider.inputs.get("clientSecret")
    assert provider.input("issuerMode") == "per_provider"
    assert {u["url"] for u in provider.input("allowedRedirectUris")} == set(KUBELOGIN_REDIRECTS)
    # What the tenant API server trusts: the Talos patch of its control plane, as registered.
    cp = _one(regs, CONTROL_PLANE)
    texts = cp.input("spec", "controlPlaneConfig", "controlplane", "strategicPatches")
    flags = next(p["cluster"]["apiServer"]["extraArgs"] for p in map(yaml.safe_load, texts)
                 if "apiServer" in p.get("cluster", {}))
    assert flags["oidc-issuer-url"] == authentik_issuer_url(cfg, slug) == "https://auth.cloud.example.org/application/o/tenant-alpha/"
    assert flags["oidc-client-id"] == slug
    assert flags["oidc-groups-prefix"] == OIDC_GROUPS_PREFIX
    # RBAC in the tenant names the groups with the prefix the API server adds.
    binding = next(r for r in regs if r.type == CRB and r.input("metadata", "name") == "tenant-admins")
    assert [s["name"] for s in binding.input("subjects")] == [f"{OIDC_GROUPS_PREFIX}alpha-admins"]


def test_access_is_bound_to_the_tenant_admins_and_the_platform_admins_only(preview):
    monitor = preview.monitor
    groups = {r.urn: r.input("name") for r in monitor.of_type(GROUP)}
    ready = monitor.named("authentik-config-ready")
    for name, expected in (("alpha", ["alpha-admins", "platform-admins"]), ("beta", ["beta-admins", "platform-admins"])):
        regs = _tenant(preview, name)
        app = _one(regs, APPLICATION)
        bindings = sorted((r for r in regs if r.type == BINDING), key=lambda r: r.input("order"))
        assert [groups[r.property_dependencies["group"][0]] for r in bindings] == expected
        assert [r.input("order") for r in bindings] == list(range(len(expected)))
        for r in bindings:
            assert r.property_dependencies["target"] == [app.urn]
            assert monitor.depends_on(r, ready)
            assert r.provider_urn.endswith("authentik-config-api")


def test_the_tenant_admins_are_cluster_admins_of_their_own_cluster_and_nobody_else(preview):
    for name in ("alpha", "beta"):
        provider = _provider(preview, name)
        regs = _tenant(preview, name)
        cluster = _one(regs, CLUSTER)
        admins = [s for r in regs if r.type == CRB and r.provider_urn == provider.urn
                  and r.input("roleRef", "name") == "cluster-admin" for s in r.input("subjects")]
        assert sorted(s["name"] for s in admins) == sorted([f"{OIDC_GROUPS_PREFIX}{name}-admins", "argocd-manager"])
        binding = next(r for r in regs if r.type == CRB and r.input("metadata", "name") == "tenant-admins")
        assert binding.provider_urn == provider.urn and binding.deleted_with == cluster.urn
    # The management cluster binds no tenant group to cluster-admin.
    mgmt = [r for r in preview.monitor.of_type(CRB) if r.input("roleRef", "name") == "cluster-admin"
            and not r.provider_urn.endswith(("alpha-provider", "beta-provider"))]
    assert {s["name"] for r in mgmt for s in r.input("subjects")} == {f"{OIDC_GROUPS_PREFIX}platform-admins"}


# --------------------------------------------------------------------------------------------
# Vault
# --------------------------------------------------------------------------------------------

def test_each_tenant_has_its_own_kubernetes_auth_mount_bound_to_its_policy_only(preview):
    monitor = preview.monitor
    vault_provider = next(r for r in monitor.of_type("pulumi:providers:vault"))
    vault_init = next(r for r in monitor.registrations.values() if r.name == "vault-init")
    for name, other in (("alpha", "beta"), ("beta", "alpha")):
        regs = _tenant(preview, name)
        backend, cfg_, role = _one(regs, AUTH_BACKEND), _one(regs, AUTH_CONFIG), _one(regs, AUTH_ROLE)
        assert backend.input("type") == "kubernetes" and backend.input("path") == f"kubernetes-{name}"
        for r in (backend, cfg_, role):
            assert r.provider_urn == vault_provider.urn
            assert monitor.depends_on(r, vault_init)
            assert monitor.depends_on(r, _one(regs, CONTROL_PLANE))
        assert role.property_dependencies["backend"] == [backend.urn]
        assert cfg_.property_dependencies["backend"] == [backend.urn]
        assert role.input("tokenPolicies") == [f"tenant-{name}"]
        assert f"tenant-{other}" not in str(role.inputs)
        assert role.input("boundServiceAccountNames") == ["vault-auth"]
        assert role.input("boundServiceAccountNamespaces") == ["*"]
        # The policy it names exists before the role.
        policy = next(r for r in monitor.registrations.values() if r.name == f"vault-config-policy-tenant-{name}")
        assert monitor.depends_on(role, policy)
        assert cfg_.input("disableLocalCaJwt") in (True, "true")
        # Preview with no tenant yet: the API address, CA and reviewer token are not known.
        assert redact(cfg_.inputs["kubernetesHost"]) in ("[unknown]", "[secret]")
        assert redact(cfg_.inputs["tokenReviewerJwt"]) in ("[unknown]", "[secret]")


def test_tenant_a_role_cannot_read_tenant_b_secrets():
    rules_a = parse_policy(tenant_policy("alpha", "kv"))
    assert policy_allows(rules_a, "kv/data/tenants/alpha/app", "read")
    assert not policy_allows(rules_a, "kv/data/tenants/beta/app", "read")
    assert not policy_allows(rules_a, "kv/data/tenants/alpha-2/app", "read")
    cfg = config(_raw())
    for t in cfg.tenants:
        assert tenant_secrets.role_args(t, f"tenant-{t.name}")["token_policies"] == [f"tenant-{t.name}"]


def test_vault_reaches_only_its_tenant_api_from_the_management_cluster(preview):
    regs = _tenant(preview, "alpha")
    np = next(r for r in regs if r.name == "alpha-secrets-vault-egress").input()
    assert np["metadata"]["namespace"] == "vault"
    [rule] = np["spec"]["egress"]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"weebo.io/tenant": "alpha"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6443}]


def test_the_reviewer_only_reviews_tokens():
    sa, binding = tenant_secrets.reviewer_objects()
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]


def test_a_role_open_to_every_account_of_every_namespace_is_refused():
    with pytest.raises(ConfigError, match="cannot both be"):
        config(base_raw(tenants=[tenant("alpha", 0, vaultServiceAccounts=["*"])]))
    t = config(base_raw(tenants=[tenant("alpha", 0, vaultServiceAccounts=["*"], vaultNamespaces=["apps"])])).tenants[0]
    assert tenant_secrets.role_args(t, "tenant-alpha")["bound_service_account_namespaces"] == ["apps"]


# --------------------------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------------------------

def test_api_and_apps_names_are_published_on_one_shared_address(preview):
    cfg = config(_raw())
    alpha = cfg.tenants[0]
    h = hostnames(cfg)
    api = tenant_capi.kubevirt_cluster(cfg, alpha)["spec"]["controlPlaneServiceTemplate"]["metadata"]["annotations"]
    assert api[tenant_capi.EXTERNAL_DNS_HOSTNAME] == h.tenant_api("alpha") == "api.alpha.cloud.example.org"
    regs = _tenant(preview, "alpha")
    svc = next(r for r in regs if r.name == "alpha-apps-service").input()
    ann = svc["metadata"]["annotations"]
    assert ann[tenant_capi.EXTERNAL_DNS_HOSTNAME] == h.tenant_apps("alpha") == "*.apps.alpha.cloud.example.org"
    assert ann[tenant_apps.LB_SHARING_KEY] == api[tenant_apps.LB_SHARING_KEY] == "tenant-alpha"
    assert svc["metadata"]["namespace"] == "tenant-alpha" and svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["selector"] == {"cluster.x-k8s.io/cluster-name": "alpha"}
    # The node ports it targets are the ones the tenant's Cilium ingress listens on, and open.
    ingress = tenant_gitops.cilium_values(cfg, alpha)["ingressController"]
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == {
        ingress["service"]["insecureNodePort"], ingress["service"]["secureNodePort"]}
    validate_chart_values("cilium", tenant_gitops.cilium_values(cfg, alpha))
    policy = next(r for r in regs if r.name == "alpha-networkpolicy-allow-apps-ingress").input()
    assert policy["spec"]["podSelector"] == {"matchLabels": svc["spec"]["selector"]}
    assert {p["port"] for p in policy["spec"]["ingress"][0]["ports"]} == {30080, 30443}
    # ExternalDNS publishes Services (source "service") in the platform zone.
    release = next(r for r in preview.monitor.registrations.values() if r.name == "dns-external-dns")
    values = release.input("values")
    assert "service" in values["sources"] and values["domainFilters"] == [cfg.domain.platform_zone]


# --------------------------------------------------------------------------------------------
# NetBird
# --------------------------------------------------------------------------------------------

def test_a_netbird_route_only_for_the_tenant_that_asks(preview):
    monitor = preview.monitor
    names = {r.name for r in monitor.registrations.values()}
    assert "netbird-tenant-alpha-network" in names and "netbird-tenant-alpha-router" in names
    assert not any(n.startswith("netbird-tenant-beta") for n in names)
    assert not any(r.type == "weebo:tenants:TenantClusterVpn" and r.name.startswith("beta") for r in monitor.registrations.values())
    ranges = sorted(r.input("address") for r in monitor.of_type("netbird:index/networkResource:NetworkResource")
                    if r.name.startswith("netbird-tenant-alpha-range"))
    assert ranges == sorted(tenant_vpn.route_cidrs(config(_raw()).tenants[0]))
    access = monitor.named("netbird-tenant-alpha-access")
    sources = access.property_dependencies["rule"]
    assert monitor.named("netbird-group-alpha-admins").urn in sources
    assert monitor.named("netbird-group-platform-admins").urn not in sources


def test_the_routing_peer_runs_in_the_tenant_and_goes_with_it(preview):
    monitor = preview.monitor
    regs = _tenant(preview, "alpha")
    provider, cluster = _provider(preview, "alpha"), _one(regs, CLUSTER)
    vpn = [r for r in regs if r.name.startswith("alpha-vpn-tenant")]
    assert {r.type.split(":")[-1] for r in vpn} == {"Namespace", "NetworkPolicy", "Secret", "Deployment"}
    for r in vpn:
        assert r.provider_urn == provider.urn and r.deleted_with == cluster.urn
    ns = next(r for r in vpn if r.type.endswith(":Namespace")).input("metadata")
    assert ns["name"] == "netbird" and ns["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    peer = next(r for r in vpn if r.type.endswith(":Deployment"))
    assert monitor.depends_on(peer, monitor.named("netbird-tenant-alpha-router"))
    assert monitor.depends_on(peer, monitor.named("alpha-gitops-app-cilium"))
    env = peer.input("spec", "template", "spec", "containers", 0, "env")
    key = next(e for e in env if e["name"] == "NB_SETUP_KEY")
    assert key["valueFrom"]["secretKeyRef"]["name"] == tenant_vpn.SETUP_KEY_SECRET


# --------------------------------------------------------------------------------------------
# Secrets once deployed
# --------------------------------------------------------------------------------------------

def test_credentials_stay_secret_once_deployed(deployed, tmp_path):
    regs = _tenant(deployed, "alpha")
    cfg_ = _one(regs, AUTH_CONFIG)
    assert contains_secret(cfg_.inputs["tokenReviewerJwt"])
    assert cfg_.input("tokenReviewerJwt") == FAKE_TOKEN
    assert cfg_.input("kubernetesHost") == "https://51.0.1.5:6443"
    assert cfg_.input("kubernetesCaCert") == "CA\n"  # base64 "Q0EK" of the kubeconfig, decoded to PEM
    assert "tokenReviewerJwt" in cfg_.additional_secret_outputs
    setup = next(r for r in regs if r.name == "alpha-vpn-tenant-setup-key")
    assert contains_secret(setup.inputs["stringData"])
    assert setup.input("stringData", "setup-key").startswith(SECRET_MARKER)
    assert not contains_secret(_one(regs, OAUTH2).inputs.get("clientSecret"))  # public client: none
    write_plan(deployed, tmp_path / "plan")
    for path in (tmp_path / "plan").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert SECRET_MARKER not in text and FAKE_TOKEN not in text, path
