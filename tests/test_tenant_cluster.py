"""Tenant clusters in the recorded graph: preview with no kubeconfig yet, the kubeconfig as a
secret once it exists, dependency order, protection, deletion, blast radius, lifecycle diffs."""

from __future__ import annotations

import base64
import json

import pytest
from pulumi.runtime import rpc

from offline import plan as plan_module
from offline.mocks import PlanMocks, RecordingMonitor, contains_secret, redact
from offline.plan import diff_plans, plan_document, write_plan
from tests.helpers.factories import base_raw, plan, tenant
from tests.helpers.schemas import require_schemas, validate_custom_resource

K8S_PROVIDER = "pulumi:providers:kubernetes"
CLUSTER = "kubernetes:cluster.x-k8s.io/v1beta2:Cluster"
CONTROL_PLANE = "kubernetes:controlplane.cluster.x-k8s.io/v1alpha3:TalosControlPlane"
KUBEVIRT_CLUSTER = "kubernetes:infrastructure.cluster.x-k8s.io/v1alpha1:KubevirtCluster"
NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"

FAKE_CLIENT_KEY = "offline-capi-client-key-do-not-print"
FAKE_TOKEN = "offline-sa-token-do-not-print"
FAKE_KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- name: alpha
  cluster: {{server: "https://51.0.1.5:6443", certificate-authority-data: Q0EK}}
users:
- name: admin
  user: {{client-certificate-data: Q0VSVAo=, client-key-data: {FAKE_CLIENT_KEY}}}
contexts:
- name: admin@alpha
  context: {{cluster: alpha, user: admin}}
current-context: admin@alpha
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class ReadRecordingMonitor(RecordingMonitor):
    """Also records reads (``Resource.get``): type, name and the ID asked for."""

    reads: list[tuple[str, str, str]]

    def ReadResource(self, request):  # noqa: N802 (gRPC method name)
        if not hasattr(self, "reads"):
            self.reads = []
        self.reads.append((request.type, request.name, request.id))
        return super().ReadResource(request)


class DeployedClusterMocks(PlanMocks):
    """Once deployed: CAPI has written the kubeconfig Secret, the token controller has filled the
    ServiceAccount token Secrets."""

    def new_resource(self, args):
        if args.typ == SECRET and args.resource_id and str(args.resource_id).endswith("-kubeconfig"):
            return args.resource_id, {"data": {"value": _b64(FAKE_KUBECONFIG)}}
        rid, state = super().new_resource(args)
        if args.typ == SECRET and args.inputs.get("type") == "kubernetes.io/service-account-token":
            state = {**state, "data": {"token": _b64(FAKE_TOKEN), "ca.crt": "Q0EK"}}
        return rid, state

    def call(self, args):
        result, _ = super().call(args)
        return result, []  # no failures (older PlanMocks returned None, which a deployment rejects)


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setattr(plan_module, "RecordingMonitor", ReadRecordingMonitor)


@pytest.fixture(scope="module")
def two_tenants():
    return plan(base_raw(tenants=[tenant("alpha", 0), tenant("beta", 1, allowDeletion=True)]))


def _tenant_resources(result, name: str):
    comp = next(r for r in result.monitor.of_type("weebo:tenants:TenantCluster") if r.name == name)
    return [r for r in result.monitor.descendants(comp.urn) if r.custom]


def _one(regs, type_: str):
    found = [r for r in regs if r.type == type_]
    assert len(found) == 1, (type_, [r.name for r in found])
    return found[0]


def _tenant_provider(result, name: str):
    return next(p for p in result.monitor.of_type(K8S_PROVIDER) if p.name == f"{name}-provider")


# --------------------------------------------------------------------------------------------
# A new tenant previews without its kubeconfig
# --------------------------------------------------------------------------------------------

def test_a_new_tenant_previews_although_its_kubeconfig_does_not_exist(recording):
    result = plan(base_raw())  # preview: nothing exists, every computed output is unknown
    reads = [r for r in result.monitor.reads if r[1] == "alpha-capi-kubeconfig"]
    assert reads and reads[0][0] == SECRET
    # The read's ID is unknown in preview, so the engine skips it instead of failing on a missing Secret.
    assert reads[0][2] == rpc.UNKNOWN
    provider = _tenant_provider(result, "alpha")
    assert redact(provider.inputs["kubeconfig"]) in ("[unknown]", "[secret]")
    assert provider.input("deleteUnreachable") in (True, "true")
    # Everything in the tenant is still planned, through the tenant's provider.
    remote = [r for r in _tenant_resources(result, "alpha") if r.provider_urn == provider.urn]
    kinds = {r.type.split(":")[-1] for r in remote}
    assert {"CSIDriver", "StorageClass", "DaemonSet", "ServiceAccount", "ClusterRoleBinding", "Secret"} <= kinds


def test_once_deployed_the_kubeconfig_is_read_by_name_and_stays_secret(monkeypatch, recording, tmp_path):
    monkeypatch.setattr(plan_module, "PlanMocks", DeployedClusterMocks)
    result = plan(base_raw(), preview=False)
    read = next(r for r in result.monitor.reads if r[1] == "alpha-capi-kubeconfig")
    assert read[2] == "tenant-alpha/alpha-kubeconfig"

    provider = _tenant_provider(result, "alpha")
    assert contains_secret(provider.inputs["kubeconfig"])
    assert provider.input("kubeconfig") == FAKE_KUBECONFIG

    regs = _tenant_resources(result, "alpha")
    argocd = next(r for r in regs if r.name == "alpha-gitops-cluster")
    assert contains_secret(argocd.inputs["stringData"])
    data = argocd.input("stringData")
    assert data["server"] == "https://51.0.1.5:6443" and data["project"] == "tenant-alpha"
    assert json.loads(data["config"])["bearerToken"] == FAKE_TOKEN
    csi = next(r for r in regs if r.name == "alpha-storage-tenant-kubeconfig")
    assert contains_secret(csi.inputs["stringData"])
    assert FAKE_TOKEN in csi.input("stringData", "value")

    write_plan(result, tmp_path / "plan")
    for path in (tmp_path / "plan").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert FAKE_CLIENT_KEY not in text and FAKE_TOKEN not in text, path


# --------------------------------------------------------------------------------------------
# Order, protection, deletion
# --------------------------------------------------------------------------------------------

def test_the_control_plane_is_awaited_and_the_tenant_waits_for_it(two_tenants):
    regs = _tenant_resources(two_tenants, "alpha")
    cluster, control_plane = _one(regs, CLUSTER), _one(regs, CONTROL_PLANE)
    monitor = two_tenants.monitor
    assert control_plane.input("metadata", "annotations", "pulumi.com/waitFor") == "jsonpath={.status.initialized}=true"
    # CACPPT initialises only once the Cluster exists: the Cluster must not wait for it.
    assert monitor.depends_on(control_plane, cluster)
    assert not monitor.depends_on(cluster, control_plane)
    provider = _tenant_provider(two_tenants, "alpha")
    assert monitor.depends_on(provider, control_plane)
    for r in regs:
        if r.provider_urn == provider.urn:
            assert monitor.depends_on(r, control_plane), r.name


def test_gitops_waits_for_argocd_and_the_node_plugin_for_the_tenant_cni(two_tenants):
    monitor = two_tenants.monitor
    argocd = next(r for r in monitor.of_type("weebo:gitops:ArgoCD"))
    regs = _tenant_resources(two_tenants, "alpha")
    for r in regs:
        if r.type.startswith("kubernetes:argoproj.io"):
            assert monitor.depends_on(r, argocd), r.name
    cilium = next(r for r in regs if r.name == "alpha-gitops-app-cilium")
    node = next(r for r in regs if r.type == "kubernetes:apps/v1:DaemonSet")
    assert monitor.depends_on(node, cilium)


def test_deletion_is_refused_unless_the_tenant_allows_it(two_tenants):
    critical = {NAMESPACE, CLUSTER, CONTROL_PLANE, KUBEVIRT_CLUSTER}
    for name, protected in (("alpha", True), ("beta", False)):
        regs = _tenant_resources(two_tenants, name)
        mgmt_ns = [r for r in regs if r.type == NAMESPACE and r.input("metadata", "name") == f"tenant-{name}"]
        assert len(mgmt_ns) == 1
        for r in regs:
            if r.type in critical and r.provider_urn != _tenant_provider(two_tenants, name).urn:
                assert r.protect is protected, r.name
            # Machine sets and templates are replaced on upgrades: never protected.
            if "MachineTemplate" in r.type or "MachineDeployment" in r.type or "TalosConfigTemplate" in r.type:
                assert not r.protect, r.name


def test_deleting_a_tenant_deletes_the_cluster_object_and_lets_cluster_api_cascade(two_tenants):
    regs = _tenant_resources(two_tenants, "alpha")
    cluster = _one(regs, CLUSTER)
    capi = [r for r in regs if r.type.split(":")[1].split("/")[0].endswith("cluster.x-k8s.io") and r is not cluster]
    assert len(capi) == 7  # KubevirtCluster, control plane + template, pool: template, bootstrap, machines, check
    for r in capi:
        assert r.deleted_with == cluster.urn, r.name
    assert not cluster.deleted_with


def test_objects_in_the_tenant_never_block_its_deletion(two_tenants):
    for name in ("alpha", "beta"):
        provider = _tenant_provider(two_tenants, name)
        regs = _tenant_resources(two_tenants, name)
        cluster = _one(regs, CLUSTER)
        remote = [r for r in regs if r.provider_urn == provider.urn]
        assert len(remote) >= 15
        for r in remote:
            assert r.deleted_with == cluster.urn, r.name
            assert not r.protect, r.name
        # The ArgoCD Applications have no cascade finalizer (checked in the renderer tests) and
        # live on the management cluster, deleted normally.
        for r in regs:
            if r.type == "kubernetes:argoproj.io/v1alpha1:Application":
                assert r.provider_urn != provider.urn


def test_the_tenant_namespace_is_baseline_and_labelled(two_tenants):
    regs = _tenant_resources(two_tenants, "alpha")
    ns = next(r for r in regs if r.type == NAMESPACE and r.input("metadata", "name") == "tenant-alpha")
    labels = ns.input("metadata", "labels")
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["weebo.io/tenant"] == "alpha"


_BUILT_IN_GROUPS = {"core", "apps", "networking.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io"}


def test_every_rendered_tenant_custom_resource_matches_its_crd(two_tenants):
    require_schemas()
    seen = set()
    for r in _tenant_resources(two_tenants, "alpha"):
        group = r.type.split(":")[1].split("/")[0]
        if r.type.startswith("kubernetes:") and group not in _BUILT_IN_GROUPS:
            obj = {k: v for k, v in redact(r.inputs).items() if k != "__defaults"}
            validate_custom_resource(obj)
            seen.add(obj["kind"])
    assert {"Cluster", "KubevirtCluster", "TalosControlPlane", "KubevirtMachineTemplate", "TalosConfigTemplate",
            "MachineDeployment", "MachineHealthCheck", "CiliumNetworkPolicy", "AppProject", "Application"} <= seen


# --------------------------------------------------------------------------------------------
# Blast radius and lifecycle
# --------------------------------------------------------------------------------------------

def _doc(tenants):
    return plan_document(plan(base_raw(tenants=tenants)))


def _owned_by(urn: str, tenant_name: str) -> bool:
    """A resource of this tenant: its component's, or one a platform service made for it alone
    (ClusterRbac's bindings, Vault's policy, NetBird's route objects), named after the tenant."""
    name = urn.rsplit("::", 1)[1]
    return (name == tenant_name or name.startswith(f"{tenant_name}-")
            or name.startswith((f"cluster-rbac-{tenant_name}-", f"vault-config-policy-tenant-{tenant_name}",
                                f"netbird-tenant-{tenant_name}-")))


# Registration lists that grow with the tenants: a Vault external group lists the policies of the
# tenants it administers (components.secrets.vault_config.group_policies) — but not the platform admins'
# group, which holds everything already. These tenants are administered by platform admins only.
GROWING: dict[str, list[str]] = {}


def test_adding_or_removing_a_tenant_touches_no_other_resource():
    two = _doc([tenant("alpha", 0), tenant("beta", 1, allowDeletion=True)])
    three = _doc([tenant("alpha", 0), tenant("beta", 1, allowDeletion=True), tenant("gamma", 2, netbirdRoute=True)])
    added = diff_plans(two, three)
    assert {u.rsplit("::", 1)[1]: p for u, p in added["changed"].items()} == GROWING
    assert added["removed"] == []
    assert added["added"] and all(_owned_by(u, "gamma") for u in added["added"]), \
        [u for u in added["added"] if not _owned_by(u, "gamma")]
    names = {u.rsplit("::", 1)[1] for u in added["added"]}
    # Everything the tenant brings is there: identity, Vault auth, apps endpoint, NetBird route.
    assert {"gamma-identity-oidc", "gamma-identity-application", "gamma-secrets-auth", "gamma-secrets-auth-role",
            "gamma-apps-service", "netbird-tenant-gamma-router", "gamma-vpn-tenant-routing-peer"} <= names

    removed = diff_plans(two, _doc([tenant("alpha", 0)]))
    assert {u.rsplit("::", 1)[1]: p for u, p in removed["changed"].items()} == GROWING
    assert removed["added"] == []
    assert removed["removed"] and all(_owned_by(u, "beta") for u in removed["removed"])


def test_scaling_a_pool_changes_its_machine_set_and_the_quota_only():
    pool = {"name": "general", "replicas": 1, "cpu": 2, "memoryGib": 4, "diskGib": 30}
    before = _doc([tenant("alpha", 0, workerPools=[pool])])
    after = _doc([tenant("alpha", 0, workerPools=[{**pool, "replicas": 4}])])
    diff = diff_plans(before, after)
    assert diff["added"] == [] and diff["removed"] == []
    assert {u.rsplit("::", 1)[1]: p for u, p in diff["changed"].items()} == {
        "alpha-general-machines": ["inputs.spec.replicas"],
        # From 3 machines on, the health check stops remediating mass failures.
        "alpha-general-health-check": ["inputs.spec.remediation"],
        "alpha-resourcequota-tenant-size": ["inputs.spec.hard.requests.cpu", "inputs.spec.hard.requests.memory",
                                            "inputs.spec.hard.requests.storage"],
    }


def test_upgrading_talos_and_kubernetes_rolls_machines_but_keeps_the_cluster():
    before = _doc([tenant("alpha", 0)])
    after = _doc([tenant("alpha", 0, talosVersion="v1.12.12", kubernetesVersion="1.35.5")])
    diff = diff_plans(before, after)
    # The new version's golden boot image is imported once (and the old one, which no tenant
    # uses any more, goes); nothing else is added or removed.
    def image(v):
        return [f"cluster-api-image-talos-{v}-ce4c9805", f"cluster-api-image-talos-{v}-ce4c9805-source"]

    assert sorted(u.rsplit("::", 1)[1] for u in diff["added"]) == image("1-12-12")
    assert sorted(u.rsplit("::", 1)[1] for u in diff["removed"]) == image("1-12-11")
    changed = {u.rsplit("::", 1)[1]: paths for u, paths in diff["changed"].items()}
    assert "alpha-cluster" not in changed and "alpha-kubevirt-cluster" not in changed
    # New immutable templates (new names: a replacement), references and versions updated in place.
    for name in ("alpha-control-plane-template", "alpha-general-template", "alpha-general-bootstrap"):
        assert "inputs.metadata.name" in changed[name]
    assert "inputs.spec.version" in changed["alpha-control-plane"]
    assert "inputs.spec.infrastructureTemplate.name" in changed["alpha-control-plane"]
    assert "inputs.spec.template.spec.version" in changed["alpha-general-machines"]
    # (The namespace waits for the Cluster API component, so its dependency list names the new
    # golden image; a dependency change is no update.)
    assert not any(n.startswith(("alpha-storage", "alpha-gitops", "alpha-namespace")) and paths != ["dependencies"]
                   for n, paths in changed.items()), changed
