"""Kubernetes RBAC of the management cluster for OIDC groups."""

from __future__ import annotations

import functools

from components.sso import cluster_rbac as rbac
from components.core.contracts import OIDC_GROUPS_PREFIX
from tests.helpers.factories import base_raw, config, plan, tenant

CRB = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
RB = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"


def _raw():
    return base_raw(
        authentik={"groups": [{"name": "erp-admins"}, {"name": "ci-admins"}]},
        clusterApi={"tenantNamespacePrefix": "t-"},
        tenants=[tenant("erp", 0, adminGroups=["erp-admins"]), tenant("ci", 1, adminGroups=["ci-admins"])],
    )


@functools.cache
def _plan():
    return plan(_raw())


def test_only_platform_admins_get_cluster_admin():
    mon = _plan().monitor
    bound = []
    # The management cluster's bindings (tenant clusters have their own admins, through their provider).
    mgmt = next(p.urn for p in mon.of_type("pulumi:providers:kubernetes") if p.name == "weebo4cp")
    for r in (r for r in mon.of_type(CRB) + mon.of_type(RB) if r.provider_urn == mgmt):
        ref = r.input("roleRef")
        if ref["name"] == "cluster-admin":
            bound += [s["name"] for s in r.input("subjects")]
    assert bound == [f"{OIDC_GROUPS_PREFIX}platform-admins"]


def test_tenant_admins_get_a_namespaced_read_role_in_their_namespace_only():
    mon = _plan().monitor
    # Only the identity bindings: other components bind their own service accounts.
    mine = {r.urn for r in mon.descendants(next(c.urn for c in mon.of_type("weebo:identity:ClusterRbac")))}
    bindings = {r.input("metadata")["namespace"]: r for r in mon.of_type(RB) if r.urn in mine}
    assert set(bindings) == {"t-erp", "t-ci"}
    assert [s["name"] for s in bindings["t-erp"].input("subjects")] == [f"{OIDC_GROUPS_PREFIX}erp-admins"]
    assert [s["name"] for s in bindings["t-ci"].input("subjects")] == [f"{OIDC_GROUPS_PREFIX}ci-admins"]
    for b in bindings.values():
        assert b.input("roleRef") == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": rbac.TENANT_ADMIN_ROLE}
    roles = {r.input("metadata")["namespace"]: r for r in mon.of_type(ROLE) if r.urn in mine}
    assert set(roles) == {"t-erp", "t-ci"}


def test_tenant_role_is_read_only_and_names_its_one_secret():
    role = rbac.tenant_admin_role(config(_raw()), "erp")
    assert role["metadata"]["namespace"] == "t-erp"
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert "rbac.authorization.k8s.io" not in rule["apiGroups"]
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["get"] and rule["resourceNames"] == ["erp-kubeconfig"]
        else:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}


def test_tenant_bindings_wait_for_their_tenant_only():
    mon = _plan().monitor
    erp, ci = mon.named("erp"), mon.named("ci")
    erp_binding = mon.named("cluster-rbac-erp-binding")
    assert mon.depends_on(erp_binding, erp) and not mon.depends_on(erp_binding, ci)
    assert mon.depends_on(erp_binding, mon.named("cluster-rbac-erp-role"))
    admins = mon.named("cluster-rbac-platform-admins")
    assert not mon.depends_on(admins, erp)


def test_subjects_use_the_apiserver_groups_prefix():
    crb = rbac.platform_admin_binding(config(base_raw(authentik={"platformAdminGroup": "ops"}, tenants=[])))
    assert crb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "oidc:ops"}]
