"""Vault: chart values, TLS, routing, the Pulumi-held bootstrap, configuration, least-privilege
tenant policies, secrets."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from components.secrets import vault as v
from components.secrets import vault_config as vc
from components.core.bootstrap_http import BootstrapError
from components.core.contracts import INTERNAL_CA_ISSUER, hostnames
from components.vault_bootstrap import POD_HEADER, VaultInit, _VaultInitProvider, _VaultUnsealProvider
from stacks.config import ConfigError
from offline.mocks import UNKNOWN, contains_secret, redact
from offline.plan import write_plan
from tests.helpers.factories import base_raw, config, tenant
from tests.helpers.identity_support import FAKE_PREFIX, deployed_plan, fake_http, preview_plan
from tests.helpers.schemas import validate_chart_values, validate_custom_resource

RELEASE = "kubernetes:helm.sh/v3:Release"


def _release(mon, name: str):
    return next(r for r in mon.of_type(RELEASE) if r.name == name)


# --- chart ------------------------------------------------------------------------------------

def test_values_pass_the_chart_schema_apart_from_keys_documented_as_comments():
    from tests.helpers.schemas import FREE_FORM, _unknown_keys, chart_defaults

    values = v.values(config())
    validate_chart_values("vault", values)
    # The only keys outside values.yaml are the ones the component declares.
    assert set(_unknown_keys(values, chart_defaults("vault"))) == set(v.COMMENTED_KEYS) == FREE_FORM["vault"]


def test_ha_raft_with_tls_retry_join_and_service_registration():
    cfg = config(base_raw(vault={"replicas": 3}))
    values = v.values(cfg)
    ha = values["server"]["ha"]
    assert ha["enabled"] and ha["raft"]["enabled"] and ha["replicas"] == 3
    assert values["global"]["tlsDisable"] is False
    hcl = ha["raft"]["config"]
    assert 'storage "raft"' in hcl and 'service_registration "kubernetes" {}' in hcl
    assert f'tls_cert_file = "{v.TLS_DIR}/tls.crt"' in hcl and "tls_disable" not in hcl
    for pod in ("vault-0", "vault-1", "vault-2"):
        assert f'leader_api_addr = "https://{pod}.vault-internal:8200"' in hcl
    assert hcl.count("retry_join {") == 3
    mounts = values["server"]["volumeMounts"]
    assert mounts == [{"name": "tls", "mountPath": v.TLS_DIR, "readOnly": True}]
    assert values["server"]["volumes"][0]["secret"]["secretName"] == v.TLS_SECRET


def test_every_raft_peer_address_is_covered_by_the_certificate():
    cfg = config(base_raw(vault={"replicas": 5}))
    sans = v.certificate(cfg)["spec"]["dnsNames"]
    for pod in v.pod_names(cfg):
        host = f"{pod}.vault-internal"
        assert any(fnmatch.fnmatch(host, san) and san.count(".") == host.count(".") for san in sans), host
    assert v.TLS_SERVER_NAME in sans and "vault-active.vault.svc" in sans


def test_certificate_from_the_internal_ca_and_awaited():
    cert = v.certificate(config())
    validate_custom_resource(cert)
    assert cert["spec"]["issuerRef"] == {"name": INTERNAL_CA_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert cert["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    assert "127.0.0.1" in cert["spec"]["ipAddresses"]


def test_persistent_storage_is_kept():
    values = v.values(config(base_raw(vault={"storageSize": "50Gi"})))
    assert values["server"]["dataStorage"] == {"enabled": True, "size": "50Gi", "storageClass": "local-path"}
    assert values["server"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_pods_fit_restricted_pod_security_and_schedule_on_one_node():
    server = v.values(config())["server"]
    sc = server["statefulSet"]["securityContext"]
    assert sc["pod"]["runAsNonRoot"] and sc["pod"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["container"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in server["affinity"]["podAntiAffinity"]
    assert "disable_mlock = true" in server["ha"]["raft"]["config"]


def test_even_replicas_are_refused():
    with pytest.raises(ConfigError, match="odd"):
        config(base_raw(vault={"replicas": 2}))


# --- routing ----------------------------------------------------------------------------------

def test_routes_and_transport_are_valid_and_reach_the_right_pods():
    cfg = config()
    routes = v.ingress_routes(cfg)
    for obj in [*routes, v.servers_transport(), v.operator_allowlist(cfg)]:
        validate_custom_resource(obj)
    public, pods = routes
    assert public["spec"]["routes"][0]["match"] == f"Host(`{hostnames(cfg).vault}`)"
    assert public["spec"]["routes"][0]["services"][0]["name"] == "vault-active"
    for route, pod in zip(pods["spec"]["routes"], v.pod_names(cfg), strict=True):
        assert f"Header(`{POD_HEADER}`, `{pod}`)" in route["match"]
        svc = v.pod_service(cfg, pod)
        assert route["services"][0]["name"] == svc["metadata"]["name"]
        assert svc["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == pod
        assert svc["spec"]["publishNotReadyAddresses"] is True  # sealed pods are addressed too
        assert route["middlewares"] == [{"name": "vault-operators-only"}]
    assert v.operator_allowlist(cfg)["spec"]["ipAllowList"]["sourceRange"] == ["203.0.113.0/24"]


def test_per_pod_routes_are_open_only_when_no_operator_range_is_configured():
    raw = base_raw()
    raw["managementCluster"] = {**raw["managementCluster"], "provisioner": "existing", "nodes": [],
                                "operatorSourceRanges": [], "loadBalancerIps": ["51.0.1.0/29"],
                                "declaredStorageClasses": ["local-path"]}
    cfg = config(raw)
    assert v.operator_allowlist(cfg) is None
    assert all("middlewares" not in r for r in v.ingress_routes(cfg)[1]["spec"]["routes"])


# --- least-privilege tenant policies ------------------------------------------------------------

def test_tenant_policy_grants_its_own_subtree_only():
    tenants = ["alpha", "alpha-2", "beta"]
    parsed = {t: vc.parse_policy(vc.tenant_policy(t, "kv")) for t in tenants}
    for t in tenants:
        rules = parsed[t]
        assert vc.policy_allows(rules, f"kv/data/tenants/{t}/db", "read")
        assert vc.policy_allows(rules, f"kv/data/tenants/{t}/app/db", "create")
        assert vc.policy_allows(rules, f"kv/metadata/tenants/{t}/", "list")
        for other in tenants:
            if other == t:
                continue
            for path in (f"kv/data/tenants/{other}/db", f"kv/metadata/tenants/{other}/db",
                         f"kv/metadata/tenants/{other}/", f"kv/destroy/tenants/{other}/db"):
                for cap in ("create", "read", "update", "patch", "delete", "list", "sudo"):
                    assert not vc.policy_allows(rules, path, cap), (t, path, cap)
        for path in ("kv/data/platform/x", "sys/policies/acl/x", "auth/token/create", "kv/data/tenants/x",
                     "secret/data/tenants/alpha/x", "sys/mounts"):
            assert not any(vc.policy_allows(rules, path, c) for c in ("read", "create", "update", "list", "sudo"))
        assert all("sudo" not in caps for caps in rules.values())


def test_policy_reader_is_strict_and_understands_vault_globs():
    with pytest.raises(ValueError):
        vc.parse_policy('path "kv/*" { capabilities = ["read"] }\nunexpected { }')
    rules = vc.parse_policy('path "kv/+/x/*" { capabilities = ["read"] }')
    assert vc.policy_allows(rules, "kv/data/x/y", "read")
    assert not vc.policy_allows(rules, "kv/data/z/x/y", "read")
    assert not vc.policy_allows(vc.parse_policy('path "a/b" { capabilities = ["read"] }'), "a/b/c", "read")


def test_groups_map_to_policies():
    raw = base_raw(
        authentik={"groups": [{"name": "erp-admins"}, {"name": "ci-admins"}]},
        tenants=[tenant("erp", 0, adminGroups=["erp-admins"]), tenant("ci", 1, adminGroups=["ci-admins", "erp-admins"])],
    )
    policies = vc.group_policies(config(raw))
    assert policies == {
        "platform-admins": ["platform-admin"],
        "erp-admins": ["tenant-ci", "tenant-erp"],
        "ci-admins": ["tenant-ci"],
    }


def test_recorded_policies_are_the_rendered_ones():
    mon = preview_plan().monitor
    policy = mon.named("vault-config-policy-tenant-alpha")
    assert policy.input("name") == vc.tenant_policy_name("alpha")
    assert vc.parse_policy(policy.input("policy")) == vc.parse_policy(vc.tenant_policy("alpha", "kv"))
    group = mon.named("vault-config-group-platform-admins")
    # Platform admins hold everything already: tenant policies are not listed on their group.
    assert group.input("type") == "external" and group.input("policies") == ["platform-admin"]


# --- configuration wiring ---------------------------------------------------------------------

def test_vault_resources_use_the_explicit_provider_built_from_the_init_resource():
    mon = preview_plan().monitor
    api = mon.named("vault-config-api")
    init = mon.named("vault-init")
    assert api.input("address") == "https://vault.cloud.example.org"
    # The admin token made from the init's root token, never the root token itself (issue 17).
    assert api.property_dependencies["token"] == [mon.named("vault-admin-token").urn]
    resources = [r for r in mon.registrations.values() if r.type.startswith("vault:")]
    assert {r.type for r in resources} >= {
        "vault:index/mount:Mount", "vault:index/audit:Audit", "vault:jwt/authBackend:AuthBackend",
        "vault:jwt/authBackendRole:AuthBackendRole", "vault:index/authBackend:AuthBackend",
        "vault:kubernetes/authBackendConfig:AuthBackendConfig", "vault:index/policy:Policy",
        "vault:identity/group:Group", "vault:identity/groupAlias:GroupAlias",
    }
    unseal = mon.named("vault-unseal")
    assert mon.depends_on(api, unseal)  # the provider itself waits for an unsealed Vault
    for r in resources:
        assert r.provider_urn == api.urn, r.name
        assert mon.depends_on(r, init) and mon.depends_on(r, unseal), r.name


def test_unseal_depends_on_init_and_on_no_vault_resource():
    """The unseal resource can run alone while Vault is sealed (README: `pulumi up --target`)."""
    mon = preview_plan().monitor
    unseal, init = mon.named("vault-unseal"), mon.named("vault-init")
    assert unseal.type == "pulumi-python:dynamic/weebo:VaultUnseal"
    assert init.urn in unseal.property_dependencies["unseal_keys"]
    assert mon.depends_on(unseal, _release(mon, "vault")) and mon.depends_on(unseal, mon.named("vault-route-vault-pods"))
    vault_side = {r.urn for r in mon.registrations.values()
                  if r.type.startswith("vault:") or r.type == "pulumi:providers:vault"}
    assert vault_side and not any(mon.depends_on(unseal, mon.registrations[u]) for u in vault_side)
    assert not unseal.protect  # only the init holds what cannot be recreated


def test_bootstrap_waits_for_the_release_and_the_routes():
    mon = preview_plan().monitor
    init = mon.named("vault-init")
    assert mon.depends_on(init, _release(mon, "vault"))
    for name in ("vault-route-vault", "vault-route-vault-pods", "vault-servers-transport", "vault-vault-0"):
        assert mon.depends_on(init, mon.named(name)), name
    assert init.input("pods") == ["vault-0", "vault-1", "vault-2"]
    assert mon.depends_on(_release(mon, "vault"), mon.named("vault-tls"))


def test_oidc_auth_waits_for_authentik_and_uses_its_vault_application():
    mon = preview_plan().monitor
    backend = mon.named("vault-config-oidc")
    assert backend.input("type") == "oidc" and backend.input("path") == "oidc"
    assert mon.depends_on(backend, mon.named("authentik-config-vault-application"))
    assert mon.depends_on(backend, mon.named("authentik-config-vault-oidc"))
    role = mon.named("vault-config-oidc-role")
    assert role.input("groupsClaim") == "groups" and role.input("boundAudiences") == ["vault"]


def test_kv_v2_audit_and_kubernetes_auth():
    mon = preview_plan().monitor
    kv = mon.named("vault-config-kv")
    assert kv.input("type") == "kv" and kv.input("options") == {"version": "2"} and kv.input("path") == "kv"
    assert kv.protect and kv.retain_on_delete
    audit = mon.named("vault-config-audit")
    assert audit.input("type") == "file" and audit.input("options") == {"file_path": "stdout"}
    k8s_cfg = mon.named("vault-config-kubernetes-config")
    assert k8s_cfg.input("kubernetesHost") == "https://kubernetes.default.svc"


def test_first_preview_needs_no_vault():
    mon = preview_plan().monitor
    assert redact(mon.named("vault-config-api").inputs["token"]) == UNKNOWN
    assert mon.named("vault-init").type == "pulumi-python:dynamic/weebo:VaultInit"


def test_irreplaceable_state_is_protected():
    mon = preview_plan().monitor
    init = mon.named("vault-init")
    assert init.protect and init.retain_on_delete
    assert _release(mon, "vault").protect
    assert mon.named("vault-namespace-ns").protect


# --- secrets ----------------------------------------------------------------------------------

def test_init_material_is_secret_and_never_in_plan_files(tmp_path):
    result = deployed_plan()
    mon = result.monitor
    init = mon.named("vault-init")
    assert set(VaultInit.SECRET_OUTPUTS) <= set(init.additional_secret_outputs)
    unseal = mon.named("vault-unseal")
    assert contains_secret(unseal.inputs["unseal_keys"]) and "unseal_keys" in unseal.additional_secret_outputs
    assert contains_secret(mon.named("vault-config-api").inputs["token"])
    assert contains_secret(mon.named("vault-config-oidc").inputs["oidcClientSecret"])
    assert not contains_secret(_release(mon, "vault").inputs["values"])
    write_plan(result, tmp_path)
    text = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert FAKE_PREFIX not in text


# --- the bootstrap dynamic provider against a fake Vault --------------------------------------

class FakeVault:
    def __init__(self, pods: list[str], threshold: int = 2, shares: int = 3, joining: tuple[str, ...] = ()):
        self.initialized = False
        self.threshold, self.shares = threshold, shares
        self.keys = [f"key-{i}" for i in range(shares)]
        self.pods = {p: {"sealed": True, "progress": 0, "given": set()} for p in pods}
        self.joining = set(joining)  # followers that reset their first unseal round (raft join)
        self.init_calls = 0

    def __call__(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        pod = next((val for key, val in headers.items() if key.lower() == POD_HEADER.lower()), None)
        if path == "/v1/sys/health" and pod is None:
            return (200, {}) if not self.pods["vault-0"]["sealed"] else (503, {})
        st = self.pods[pod]
        if path == "/v1/sys/init" and method == "GET":
            return 200, {"initialized": self.initialized}
        if path == "/v1/sys/init" and method == "PUT":
            self.init_calls += 1
            assert body == {"secret_shares": self.shares, "secret_threshold": self.threshold}
            self.initialized = True
            return 200, {"keys": self.keys, "keys_base64": self.keys, "root_token": "root-token"}
        if path == "/v1/sys/seal-status":
            return 200, {"sealed": st["sealed"], "progress": st["progress"], "initialized": self.initialized}
        if path == "/v1/sys/unseal":
            if body["key"] in self.keys and body["key"] not in st["given"]:
                st["given"].add(body["key"])
                st["progress"] += 1
            if st["progress"] >= self.threshold:
                if pod in self.joining:
                    self.joining.discard(pod)
                    st["progress"], st["given"] = 0, set()
                else:
                    st["sealed"], st["progress"] = False, 0
            return 200, {"sealed": st["sealed"], "progress": st["progress"]}
        return 404, None


def _props(url: str, pods: list[str], **kw: Any) -> dict[str, Any]:
    return {"address": url, "pods": pods, "key_shares": 3, "key_threshold": 2, "verify_tls": True,
            "timeout_seconds": 5, "poll_interval_seconds": 0.01, **kw}


def _unseal_props(url: str, pods: list[str], keys: list[str], **kw: Any) -> dict[str, Any]:
    return {"address": url, "pods": pods, "unseal_keys": keys, "key_threshold": 2, "verify_tls": True,
            "timeout_seconds": 5, "poll_interval_seconds": 0.01, **kw}


def test_init_then_unseal_brings_every_pod_up():
    pods = ["vault-0", "vault-1", "vault-2"]
    fake = FakeVault(pods, joining=("vault-1",))
    with fake_http(fake) as url:
        init = _VaultInitProvider().create(_props(url, pods)).outs
        assert all(st["sealed"] for st in fake.pods.values())  # init alone unseals nothing
        unseal = _VaultUnsealProvider().create(_unseal_props(url, pods, init["unseal_keys"])).outs
    assert fake.init_calls == 1
    assert all(not st["sealed"] for st in fake.pods.values())
    assert init["root_token"] == "root-token" and init["unseal_keys"] == fake.keys
    assert unseal["sealed_pods"] == []


def test_a_failing_unseal_leaves_the_keys_in_the_init_resource():
    """sys/init answered, then the pods never unseal (here: every unseal call fails): the init
    resource has already returned its outputs - the engine records them - and only the unseal
    resource fails, so the next run retries the unseal with the stored keys."""
    pods = ["vault-0"]
    fake = FakeVault(pods)

    def broken(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if path == "/v1/sys/unseal":
            return 500, {"errors": ["boom"]}
        return fake(method, path, headers, body)

    with fake_http(broken) as url:
        created = _VaultInitProvider().create(_props(url, pods))
        with pytest.raises(BootstrapError, match="unseal"):
            _VaultUnsealProvider().create(_unseal_props(url, pods, created.outs["unseal_keys"], timeout_seconds=0.2))
    assert created.outs["unseal_keys"] == fake.keys and created.outs["root_token"] == "root-token"
    # The next run: Vault works again, the unseal retries with the recorded keys; no second init.
    with fake_http(fake) as url:
        _VaultUnsealProvider().create(_unseal_props(url, pods, created.outs["unseal_keys"]))
    assert not fake.pods["vault-0"]["sealed"] and fake.init_calls == 1


def test_bootstrap_refuses_a_vault_initialised_elsewhere():
    fake = FakeVault(["vault-0"])
    fake.initialized = True
    with fake_http(fake) as url, pytest.raises(BootstrapError, match="already initialised"):
        _VaultInitProvider().create(_props(url, ["vault-0"]))
    assert fake.init_calls == 0


def test_init_is_never_updated_or_replaced():
    state = {**_props("http://127.0.0.1:9", ["vault-0"]), "unseal_keys": ["k"], "root_token": "t"}
    provider = _VaultInitProvider()
    for news in (_props("http://127.0.0.1:9", ["vault-0"], key_shares=5), _props("https://elsewhere", ["vault-0"])):
        diff = provider.diff("x", state, news)
        assert not diff.changes and not diff.replaces
    assert provider.read("x", state).outs == state  # refresh asks nothing of Vault


def test_unseal_diff_rechecks_the_seal_in_every_run_and_update_unseals_with_its_own_inputs():
    """A reboot seals Vault behind Pulumi's back: the unseal resource's diff sees it (no Vault
    provider, no token, only seal-status), and its update needs nothing but its inputs."""
    pods = ["vault-0", "vault-1"]
    fake = FakeVault(pods)
    provider = _VaultUnsealProvider()
    with fake_http(fake) as url:
        news = _unseal_props(url, pods, fake.keys)
        state = provider.create(news).outs
        assert not provider.diff(url, state, news).changes  # unsealed: nothing to do
        fake.pods["vault-1"].update(sealed=True, progress=0, given=set())  # the pod restarted
        assert provider.diff(url, state, news).changes
        assert provider.read(url, state).outs["sealed_pods"] == ["vault-1"]
        updated = provider.update(url, state, news).outs
    assert not fake.pods["vault-1"]["sealed"] and updated["sealed_pods"] == []
    assert fake.init_calls == 0


def test_unreachable_vault_keeps_the_refreshed_state_and_is_not_taken_for_unsealed():
    provider = _VaultUnsealProvider()
    state = {**_unseal_props("http://127.0.0.1:9", ["vault-0"], ["k"]), "sealed_pods": []}
    assert provider.read("x", state).outs == state  # connection refused: unknown, not sealed
    assert provider.diff("x", state, _unseal_props("http://127.0.0.1:9", ["vault-0"], ["k"])).changes
