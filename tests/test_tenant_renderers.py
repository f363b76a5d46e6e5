"""Pure renderers of a tenant: Cluster API objects, Talos patches, quota and isolation, storage and
GitOps manifests, checked against the upstream contracts and against each other."""

from __future__ import annotations

import copy

import pytest
import yaml

import versions
from components.tenant import capi as tenant_capi
from components.tenant import gitops as tenant_gitops
from components.tenant import identity as tenant_identity
from components.tenant import images as tenant_images
from components.tenant import policies as tenant_policies
from components.tenant import storage as tenant_storage
from components.tenant import talos as tenant_talos
from components.core.contracts import (
    ARGOCD_NAMESPACE,
    OIDC_GROUPS_PREFIX,
    TENANT_NAMESPACE_LABEL,
    authentik_issuer_url,
    hostnames,
    tenant_oidc_slug,
)
from tests.helpers.factories import base_raw, config, servers, tenant
from tests.helpers.schemas import validate_chart_values, validate_custom_resource, validate_talos_patch

QEMU_GUEST_AGENT_SCHEMATIC = "ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515"


def _cfg(*tenants, **overrides):
    return config(base_raw(tenants=list(tenants) or [tenant("alpha", 0)], **overrides))


@pytest.fixture(scope="module")
def cfg():
    pools = [
        {"name": "general", "replicas": 3, "cpu": 4, "memoryGib": 8, "diskGib": 60},
        {"name": "db", "replicas": 2, "cpu": 8, "memoryGib": 32, "diskGib": 300},
    ]
    return _cfg(
        tenant("alpha", 0, controlPlane={"replicas": 3, "cpu": 2, "memoryGib": 4, "diskGib": 20}, workerPools=pools,
               apps=[{"name": "web", "repoUrl": "https://git.example.org/web.git", "path": "deploy",
                      "targetRevision": "v1.2.3", "namespace": "web"},
                     {"name": "arc", "repoUrl": "oci://ghcr.io/actions/actions-runner-controller-charts",
                      "chart": "gha-runner-scale-set-controller", "targetRevision": "0.12.1", "namespace": "arc"},
                     {"name": "cnpg", "repoUrl": "https://cloudnative-pg.github.io/charts", "chart": "cloudnative-pg",
                      "targetRevision": "0.26.1", "namespace": "cnpg-system"}]),
        tenant("older", 1, talosVersion="v1.12.11", kubernetesVersion="1.34.1"),
        managementCluster=servers(4),
    )


@pytest.fixture(scope="module")
def alpha(cfg):
    return cfg.tenants[0]


# --------------------------------------------------------------------------------------------
# Cluster API
# --------------------------------------------------------------------------------------------

def test_every_cluster_api_object_matches_its_crd(cfg):
    for t in cfg.tenants:
        objs = tenant_capi.cluster_objects(cfg, t).all()
        assert len(objs) == 4 + 4 * len(t.worker_pools)
        for obj in objs:
            validate_custom_resource(obj)


def test_the_strict_schema_rejects_a_misspelt_vm_field(cfg, alpha):
    # Guards the check above: the embedded VirtualMachine template is validated field by field.
    tpl = copy.deepcopy(tenant_capi.cluster_objects(cfg, alpha).control_plane_template)
    tpl["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]["template"]["spec"]["domain"]["cpus"] = 2
    with pytest.raises(AssertionError, match="cpus"):
        validate_custom_resource(tpl)


def test_v1beta2_references_are_api_group_kind_name(cfg, alpha):
    objs = tenant_capi.cluster_objects(cfg, alpha)
    spec = objs.cluster["spec"]
    assert spec["infrastructureRef"] == {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "KubevirtCluster",
                                         "name": "alpha"}
    assert spec["controlPlaneRef"]["name"] == objs.control_plane["metadata"]["name"]
    assert spec["clusterNetwork"]["pods"]["cidrBlocks"] == [alpha.pod_cidr]
    md = objs.pools[0].machine_deployment["spec"]["template"]["spec"]
    assert md["infrastructureRef"]["name"] == objs.pools[0].machine_template["metadata"]["name"]
    assert md["bootstrap"]["configRef"]["name"] == objs.pools[0].config_template["metadata"]["name"]
    cp_template = objs.control_plane_template["metadata"]["name"]
    assert objs.control_plane["spec"]["infrastructureTemplate"]["name"] == cp_template


def test_vms_clone_the_golden_openstack_image_of_their_talos_version_without_ssh_check(cfg, alpha):
    assert tenant_talos.schematic_id() == QEMU_GUEST_AGENT_SCHEMATIC
    objs = tenant_capi.cluster_objects(cfg, alpha)
    for tpl in [objs.control_plane_template, *(p.machine_template for p in objs.pools)]:
        spec = tpl["spec"]["template"]["spec"]
        assert spec["virtualMachineBootstrapCheck"] == {"checkStrategy": "none"}
        dv = spec["virtualMachineTemplate"]["spec"]["dataVolumeTemplates"][0]["spec"]
        # No download per VM: a clone of the golden image, which alone names the factory URL.
        assert "source" not in dv
        assert dv["sourceRef"] == {"kind": "DataSource", "name": f"talos-1-12-11-{QEMU_GUEST_AGENT_SCHEMATIC[:8]}",
                                   "namespace": tenant_images.NAMESPACE}
        assert dv["storage"]["storageClassName"] == cfg.infra_storage_class
    golden = tenant_images.golden_data_volume(cfg, alpha.talos_version)
    assert golden["spec"]["source"]["http"]["url"] == (
        f"https://factory.talos.dev/image/{QEMU_GUEST_AGENT_SCHEMATIC}/v1.12.11/openstack-amd64.raw.xz")
    source = tenant_images.data_source(alpha.talos_version)
    assert source["metadata"]["name"] == golden["metadata"]["name"] == dv["sourceRef"]["name"]
    assert source["spec"]["source"]["pvc"] == {"name": golden["metadata"]["name"], "namespace": tenant_images.NAMESPACE}


def test_machine_shapes_come_from_the_config(cfg, alpha):
    objs = tenant_capi.cluster_objects(cfg, alpha)
    for p in objs.pools:
        vm = p.machine_template["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]
        domain = vm["template"]["spec"]["domain"]
        assert domain["cpu"]["cores"] == p.pool.cpu
        assert domain["resources"]["requests"] == {"cpu": str(p.pool.cpu), "memory": f"{p.pool.memory_gib}Gi"}
        storage = vm["dataVolumeTemplates"][0]["spec"]["storage"]
        assert storage["resources"]["requests"]["storage"] == f"{p.pool.disk_gib}Gi"
        assert p.machine_deployment["spec"]["replicas"] == p.pool.replicas
    assert objs.control_plane["spec"]["replicas"] == 3
    assert objs.control_plane["spec"]["version"] == "v1.35.4"


def test_template_names_change_with_the_image_but_not_with_the_replica_count():
    base = _cfg(tenant("alpha", 0))
    t = base.tenants[0]
    names = lambda c: [o["metadata"]["name"] for o in tenant_capi.cluster_objects(c, c.tenants[0]).all()]  # noqa: E731
    scaled = _cfg(tenant("alpha", 0, workerPools=[{**base_raw()["tenants"][0]["workerPools"][0], "replicas": 5}]))
    assert names(scaled) == names(base)
    upgraded = _cfg(tenant("alpha", 0, talosVersion="v1.12.12"))
    changed = set(names(upgraded)) - set(names(base))
    assert changed and all(n.startswith(("alpha-control-plane-", "alpha-general-")) for n in changed)
    assert tenant_capi.cluster_name(t) in names(upgraded)  # the Cluster keeps its name


def test_health_checks_guard_against_mass_remediation_only_for_large_pools(cfg, alpha):
    by_pool = {p.pool.name: p.health_check["spec"] for p in tenant_capi.cluster_objects(cfg, alpha).pools}
    assert by_pool["general"]["remediation"]["triggerIf"]["unhealthyLessThanOrEqualTo"] == "40%"
    assert "remediation" not in by_pool["db"]
    assert by_pool["db"]["selector"]["matchLabels"]["cluster.x-k8s.io/deployment-name"] == "alpha-db"


def test_the_api_name_is_published_and_in_the_certificate(cfg, alpha):
    api = hostnames(cfg).tenant_api("alpha")
    assert api == "api.alpha.cloud.example.org"
    kc = tenant_capi.kubevirt_cluster(cfg, alpha)["spec"]["controlPlaneServiceTemplate"]
    assert kc["spec"] == {"type": "LoadBalancer"}
    assert kc["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"] == api
    cp = tenant_talos.controlplane_patch(cfg, alpha)
    assert api in cp["machine"]["certSANs"] and api in cp["cluster"]["apiServer"]["certSANs"]


# --------------------------------------------------------------------------------------------
# Talos patches
# --------------------------------------------------------------------------------------------

def _patches_in(obj):
    if obj["kind"] == "TalosControlPlane":
        texts = obj["spec"]["controlPlaneConfig"]["controlplane"]["strategicPatches"]
    else:
        texts = obj["spec"]["template"]["spec"]["strategicPatches"]
    return [yaml.safe_load(t) for t in texts]


def test_talos_patches_match_the_talos_schema(cfg, alpha):
    objs = tenant_capi.cluster_objects(cfg, alpha)
    for obj in [objs.control_plane, *(p.config_template for p in objs.pools)]:
        patches = _patches_in(obj)
        assert patches
        for patch in patches:
            validate_talos_patch(patch)


def test_nodes_run_without_kube_proxy_or_cni_and_with_the_nested_mtu(cfg, alpha):
    objs = tenant_capi.cluster_objects(cfg, alpha)
    for obj in [objs.control_plane, objs.pools[0].config_template]:
        patches = _patches_in(obj)
        cluster = patches[0]["cluster"]
        assert cluster["network"]["cni"] == {"name": "none"}
        assert cluster["proxy"] == {"disabled": True}
        link = next(p for p in patches if p.get("kind") == "LinkConfig")
        assert link["mtu"] == cfg.cilium.tenant_mtu == 1350
        alias = next(p for p in patches if p.get("kind") == "LinkAliasConfig")
        assert alias["name"] == link["name"]
        assert patches[0]["machine"]["install"]["image"] == (
            f"factory.talos.dev/openstack-installer/{QEMU_GUEST_AGENT_SCHEMATIC}:v1.12.11")
    values = tenant_gitops.cilium_values(cfg, alpha)
    assert values["MTU"] == cfg.cilium.tenant_mtu
    assert values["kubeProxyReplacement"] is True and values["k8sServicePort"] == 7445


def test_oidc_flags_name_the_tenant_application_slug(cfg, alpha):
    patches = _patches_in(tenant_capi.cluster_objects(cfg, alpha).control_plane)
    args = next(p for p in patches if "apiServer" in p.get("cluster", {}))["cluster"]["apiServer"]["extraArgs"]
    slug = tenant_oidc_slug("alpha")
    assert slug == "tenant-alpha"
    assert args["oidc-client-id"] == slug
    assert args["oidc-issuer-url"] == authentik_issuer_url(cfg, slug) == (
        "https://auth.cloud.example.org/application/o/tenant-alpha/")
    # RBAC subjects in the tenant use the same groups prefix the API server applies.
    assert args["oidc-groups-prefix"] == OIDC_GROUPS_PREFIX
    binding = tenant_identity.admin_binding(alpha)
    assert [s["name"] for s in binding["subjects"]] == [f"{OIDC_GROUPS_PREFIX}{g}" for g in alpha.admin_groups]
    # Workers carry no apiserver flags.
    workers = _patches_in(tenant_capi.cluster_objects(cfg, alpha).pools[0].config_template)
    assert not any("apiServer" in p.get("cluster", {}) for p in workers)


# --------------------------------------------------------------------------------------------
# Quota and isolation
# --------------------------------------------------------------------------------------------

def _policies(cfg, t):
    return tenant_policies.network_policies(cfg, t, tenant_storage.CONTROLLER_LABELS)


def test_cilium_policies_match_the_cilium_schema(cfg, alpha):
    cnps = [p for p in _policies(cfg, alpha) if p["kind"] == "CiliumNetworkPolicy"]
    assert len(cnps) == 2
    for p in cnps:
        validate_custom_resource(p)


def test_no_policy_admits_other_tenants_or_opens_the_cluster(cfg, alpha):
    for policy in _policies(cfg, alpha):
        spec = policy["spec"]
        assert policy["metadata"]["namespace"] == "tenant-alpha"
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                sel = peer.get("namespaceSelector")
                if sel is not None:  # platform namespaces only: never one with the tenant label
                    assert sel == {"matchExpressions": [{"key": TENANT_NAMESPACE_LABEL, "operator": "DoesNotExist"}]}
                    assert {p["port"] for p in rule["ports"]} == {6443, 50000}
                assert "podSelector" not in peer or peer == {"podSelector": {}}
        for rule in spec.get("egress", []):
            assert not set(rule.get("toEntities", [])) & {"all", "cluster", "host", "remote-node"}
            for peer in rule.get("to", []):
                if "namespaceSelector" in peer:
                    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}
                    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    kinds = {p["metadata"]["name"]: p for p in _policies(cfg, alpha)}
    assert kinds["allow-world-egress"]["spec"]["egress"] == [{"toEntities": ["world"]}]
    # Only the CSI controller reaches the management API server.
    apiserver = kinds["allow-csi-controller-to-apiserver"]["spec"]
    assert apiserver["endpointSelector"] == {"matchLabels": tenant_storage.CONTROLLER_LABELS}


def test_api_source_ranges_default_to_the_operators_and_can_be_narrowed():
    cfg = _cfg(tenant("alpha", 0))
    api = next(p for p in _policies(cfg, cfg.tenants[0]) if p["metadata"]["name"] == "allow-api-ingress")
    outside = api["spec"]["ingress"][1]
    assert outside["from"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert outside["ports"] == [{"protocol": "TCP", "port": 6443}]  # never Talos' API
    assert api["spec"]["podSelector"]["matchLabels"] == {"cluster.x-k8s.io/role": "control-plane",
                                                          "cluster.x-k8s.io/cluster-name": "alpha"}
    narrowed = _cfg(tenant("alpha", 0, apiSourceRanges=["198.51.100.0/24"]))
    api = next(p for p in _policies(narrowed, narrowed.tenants[0]) if p["metadata"]["name"] == "allow-api-ingress")
    assert api["spec"]["ingress"][1]["from"] == [{"ipBlock": {"cidr": "198.51.100.0/24"}}]


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------

def test_csi_controller_has_least_privilege_on_the_management_cluster(cfg, alpha):
    objs = {(o["kind"], o["metadata"]["name"]): o for o in tenant_storage.infra_objects(cfg, alpha)}
    role = objs[("Role", "kubevirt-csi")]
    assert role["metadata"]["namespace"] == "tenant-alpha"
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    cluster_role = objs[("ClusterRole", "tenant-alpha-kubevirt-csi")]
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get"]}]
    config_map = objs[("ConfigMap", "driver-config")]["data"]
    assert config_map["infraClusterNamespace"] == "tenant-alpha"
    assert yaml.safe_load(config_map["infraStorageClassEnforcement"]) == {
        "allowAll": False, "allowDefault": False, "allowList": [cfg.infra_storage_class]}
    deployment = objs[("Deployment", "kubevirt-csi-controller")]["spec"]["template"]["spec"]
    assert deployment["serviceAccountName"] == "kubevirt-csi"
    assert deployment["volumes"][1]["secret"]["secretName"] == tenant_storage.TENANT_KUBECONFIG_SECRET
    for c in deployment["containers"]:
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        assert "@" in c["image"] or c["image"].rsplit(":", 1)[1] not in ("latest", "")
        assert c["image"] in versions.KUBEVIRT_CSI_IMAGES.values()
    driver = deployment["containers"][0]
    assert "--tenant-cluster-kubeconfig=/var/run/secrets/tenantcluster/value" in driver["args"]
    assert "--run-node-service=false" in driver["args"]


def test_tenant_side_storage_objects(cfg, alpha):
    objs = {(o["kind"], o["metadata"]["name"]): o for o in tenant_storage.tenant_objects(cfg, alpha)}
    sc = objs[("StorageClass", cfg.kubevirt_csi.tenant_storage_class)]
    assert sc["provisioner"] == "csi.kubevirt.io"
    assert sc["parameters"]["infraStorageClassName"] == cfg.infra_storage_class
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert ("CSIDriver", "csi.kubevirt.io") in objs
    assert objs[("ConfigMap", "driver-config")]["data"] == {
        "infraClusterNamespace": "tenant-alpha", "infraClusterLabels": "csi-driver/cluster=alpha"}
    ds = objs[("DaemonSet", "kubevirt-csi-node")]
    assert ds["metadata"]["namespace"] == tenant_storage.TENANT_NAMESPACE
    for c in ds["spec"]["template"]["spec"]["containers"]:
        assert c["image"] in versions.KUBEVIRT_CSI_IMAGES.values()
    controller_role = objs[("ClusterRole", "kubevirt-csi-controller")]
    assert all("*" not in r["verbs"] for r in controller_role["rules"])


def test_tenant_kubeconfig_is_built_from_the_token_secret():
    import base64

    text = tenant_storage.tenant_kubeconfig("https://10.0.0.1:6443", "Q0E=", base64.b64encode(b"tok").decode(), "u")
    doc = yaml.safe_load(text)
    assert doc["clusters"][0]["cluster"] == {"server": "https://10.0.0.1:6443", "certificate-authority-data": "Q0E="}
    assert doc["users"][0]["user"] == {"token": "tok"}


# --------------------------------------------------------------------------------------------
# GitOps
# --------------------------------------------------------------------------------------------

def test_argocd_objects_match_their_crds(cfg, alpha):
    objs = [tenant_gitops.app_project(cfg, alpha), tenant_gitops.cilium_application(cfg, alpha),
            *tenant_gitops.app_applications(cfg, alpha)]
    assert len(objs) == 2 + len(alpha.apps)
    for obj in objs:
        assert obj["metadata"]["namespace"] == ARGOCD_NAMESPACE
        validate_custom_resource(obj)


def test_the_project_deploys_only_to_its_tenant_from_its_repositories(cfg, alpha):
    spec = tenant_gitops.app_project(cfg, alpha)["spec"]
    assert spec["destinations"] == [{"name": "alpha", "namespace": "*"}]
    assert spec["permitOnlyProjectScopedClusters"] is True
    assert spec["sourceRepos"] == sorted([
        "https://helm.cilium.io/", "https://git.example.org/web.git",
        "oci://ghcr.io/actions/actions-runner-controller-charts/gha-runner-scale-set-controller",
        "https://cloudnative-pg.github.io/charts"])
    assert spec["roles"][0]["groups"] == list(alpha.admin_groups)
    for app in [tenant_gitops.cilium_application(cfg, alpha), *tenant_gitops.app_applications(cfg, alpha)]:
        assert app["spec"]["project"] == "tenant-alpha"
        assert app["spec"]["destination"]["name"] == "alpha"
        assert app["spec"]["source"]["repoURL"] in spec["sourceRepos"]
        # No cascade into a tenant cluster that may be gone when the tenant is deleted.
        assert "finalizers" not in app["metadata"]


def test_app_sources_follow_the_config(cfg, alpha):
    apps = {a["metadata"]["name"]: a["spec"] for a in tenant_gitops.app_applications(cfg, alpha)}
    assert apps["alpha-web"]["source"] == {"repoURL": "https://git.example.org/web.git", "path": "deploy",
                                           "targetRevision": "v1.2.3"}
    assert apps["alpha-arc"]["source"]["path"] == "."
    assert apps["alpha-cnpg"]["source"]["chart"] == "cloudnative-pg"
    assert apps["alpha-cnpg"]["destination"]["namespace"] == "cnpg-system"


def test_tenant_cilium_values_are_accepted_by_the_chart(cfg, alpha):
    validate_chart_values("cilium", tenant_gitops.cilium_values(cfg, alpha))
    source = tenant_gitops.cilium_application(cfg, alpha)["spec"]["source"]
    assert source["targetRevision"] == versions.CHARTS["cilium"].version


def test_argocd_cluster_config_uses_the_service_account_token():
    import base64
    import json

    config = json.loads(tenant_gitops.cluster_config("Q0E=", base64.b64encode(b"sa-token").decode()))
    assert config == {"bearerToken": "sa-token", "tlsClientConfig": {"insecure": False, "caData": "Q0E="}}


def test_rendered_yaml_documents_read_back_as_what_was_rendered():
    from components.core.common import yaml_text

    cfg = config()
    alpha = cfg.tenants[0]
    patches = tenant_talos.controlplane_patches(cfg, alpha) + tenant_talos.worker_patches(cfg, alpha)
    for patch, text in zip(patches, tenant_talos.strategic_patches(patches)):
        assert yaml.safe_load(text) == patch
    kubeconfig = tenant_storage.tenant_kubeconfig("https://api.alpha:6443", "Q0E=" * 400, "dG9rZW4=", "csi")
    doc = yaml.safe_load(kubeconfig)
    assert doc["users"][0]["user"]["token"] == "token"
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E=" * 400
    odd = {"b": ["yes", "0x1f", "", "line\nbreak", "é" * 150], "a": {"n": None, "t": True, "i": 7}}
    assert yaml.safe_load(yaml_text(odd)) == odd
    assert list(yaml.safe_load(yaml_text(odd, sort_keys=False))) == ["b", "a"]
