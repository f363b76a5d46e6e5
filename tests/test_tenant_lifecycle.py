"""Day-1 and day-2 of a tenant against the upstream controllers' behaviour: nodes link to their
machines, workers are deleted in bounded time, boot disks are clones of one golden image per
Talos version, the tenant Cilium tunnels on its own port, and multi-VM control planes are only
accepted where a server reboot cannot take etcd's quorum with it."""

from __future__ import annotations

import pytest

import versions
from components.network import cilium
from components.tenant import capi as tenant_capi
from components.tenant import gitops as tenant_gitops
from components.tenant import images as tenant_images
from components.tenant import storage as tenant_storage
from components.tenant import talos as tenant_talos
from stacks.config import ConfigError
from tests.helpers.factories import base_raw, config, plan, tenant
from tests.helpers.schemas import validate_chart_values, validate_custom_resource

SCHEMATIC = tenant_talos.schematic_id()[:8]


def servers(count: int) -> dict:
    mc = base_raw()["managementCluster"]
    mc["nodes"] = [*mc["nodes"], *({"hostname": f"node-{i}", "ovhServiceName": f"ns10{i}.ip-10-0-0.eu",
                                    "address": f"51.0.0.1{i}", "role": "worker"} for i in range(2, count + 1))]
    return mc


@pytest.fixture(scope="module")
def two_versions():
    """Three tenants on two Talos versions (the plan of the whole program)."""
    return plan(base_raw(tenants=[
        tenant("alpha", 0),
        tenant("beta", 1, talosVersion="v1.12.12"),
        tenant("gamma", 2),
    ]))


# --- node names (CAPK providerID) ------------------------------------------------------------

def test_every_node_is_named_after_its_kubevirt_machine():
    cfg = config()
    objs = tenant_capi.cluster_objects(cfg, cfg.tenants[0])
    # CAPK sets providerID (and so CAPI's nodeRef) only on the Node named like the KubevirtMachine;
    # CACPPT names control-plane Machines differently from their KubevirtMachines.
    assert objs.control_plane["spec"]["controlPlaneConfig"]["controlplane"]["hostname"] == {
        "source": "InfrastructureName"}
    for p in objs.pools:
        assert p.config_template["spec"]["template"]["spec"]["hostname"] == {"source": "InfrastructureName"}
        validate_custom_resource(p.config_template)  # CABPT v0.6.12 enum: MachineName, InfrastructureName
    validate_custom_resource(objs.control_plane)


# --- worker deletion --------------------------------------------------------------------------

def test_worker_drain_and_volume_detach_are_bounded_with_defaults():
    cfg = config()
    md = tenant_capi.cluster_objects(cfg, cfg.tenants[0]).pools[0].machine_deployment
    assert md["spec"]["template"]["spec"]["deletion"] == {"nodeDrainTimeoutSeconds": 600,
                                                          "nodeVolumeDetachTimeoutSeconds": 300}
    validate_custom_resource(md)
    tuned = config(base_raw(clusterApi={"nodeDrainTimeoutSeconds": 120, "nodeVolumeDetachTimeoutSeconds": 60}))
    md = tenant_capi.cluster_objects(tuned, tuned.tenants[0]).pools[0].machine_deployment
    assert md["spec"]["template"]["spec"]["deletion"] == {"nodeDrainTimeoutSeconds": 120,
                                                          "nodeVolumeDetachTimeoutSeconds": 60}


@pytest.mark.parametrize("key", ["nodeDrainTimeoutSeconds", "nodeVolumeDetachTimeoutSeconds"])
def test_an_unbounded_wait_is_refused(key):
    with pytest.raises(ConfigError) as err:
        config(base_raw(clusterApi={key: 0}))
    [problem] = err.value.problems
    assert problem.path == f"clusterApi.{key}" and "greater than or equal to 1" in problem.problem


def test_deleting_a_pool_waits_as_long_as_its_machines_may_take(monkeypatch):
    import components.tenant.cluster as tc

    seen = {}
    original = tc.k8s_object

    def recording(name, obj, opts):
        seen[name] = opts
        return original(name, obj, opts)

    monkeypatch.setattr(tc, "k8s_object", recording)
    plan(base_raw(clusterApi={"nodeDrainTimeoutSeconds": 900, "nodeVolumeDetachTimeoutSeconds": 300}))
    timeouts = seen["alpha-general-machines"].custom_timeouts
    # 15 minutes of drain + 5 of detach, plus room for the VM to stop.
    assert timeouts is not None and timeouts.delete == "35m"


def test_the_csi_controller_may_unplug_a_volume_from_a_vmi_whose_vm_is_gone():
    rules = tenant_storage.infra_rules()
    sub = next(r for r in rules if r["apiGroups"] == ["subresources.kubevirt.io"])
    assert "virtualmachineinstances/removevolume" in sub["resources"] and sub["verbs"] == ["update"]
    assert "virtualmachineinstances/addvolume" not in sub["resources"]  # the driver never calls it


# --- golden boot images -----------------------------------------------------------------------

def test_each_talos_version_in_use_is_imported_once(two_versions):
    m = two_versions.monitor
    dvs = [r for r in m.of_type("kubernetes:cdi.kubevirt.io/v1beta1:DataVolume")]
    names = sorted(r.input("metadata", "name") for r in dvs)
    assert names == [f"talos-1-12-11-{SCHEMATIC}", f"talos-1-12-12-{SCHEMATIC}"]
    for dv in dvs:
        obj = dv.input()
        obj = {k: v for k, v in obj.items() if k != "__defaults"}
        validate_custom_resource(obj)
        assert obj["metadata"]["namespace"] == tenant_images.NAMESPACE
        url = obj["spec"]["source"]["http"]["url"]
        assert url.startswith(f"https://factory.talos.dev/image/{tenant_talos.schematic_id()}/")
        # local-path is WaitForFirstConsumer: without immediate binding the import never starts.
        assert obj["metadata"]["annotations"][tenant_images.IMMEDIATE_BINDING] == "true"
        assert obj["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
        assert obj["spec"]["storage"]["resources"]["requests"]["storage"] == "8Gi"
        # CDI refuses spec updates: a changed image is re-imported under its name.
        assert dv.replace_on_changes == ["spec"] and dv.delete_before_replace
    sources = m.of_type("kubernetes:cdi.kubevirt.io/v1beta1:DataSource")
    assert len(sources) == 2
    for s in sources:
        validate_custom_resource({k: v for k, v in s.input().items() if k != "__defaults"})
        dv = next(d for d in dvs if d.input("metadata", "name") == s.input("metadata", "name"))
        assert m.depends_on(s, dv)


def test_vm_templates_clone_and_wait_for_the_image_of_their_version(two_versions):
    m = two_versions.monitor
    sources = {r.input("metadata", "name"): r for r in m.of_type("kubernetes:cdi.kubevirt.io/v1beta1:DataSource")}
    templates = m.of_type("kubernetes:infrastructure.cluster.x-k8s.io/v1alpha1:KubevirtMachineTemplate")
    assert len(templates) == 6
    for t in templates:
        dv = t.input("spec", "template", "spec", "virtualMachineTemplate", "spec", "dataVolumeTemplates")[0]["spec"]
        assert "http" not in dv.get("source", {})
        wanted = "1-12-12" if t.name.startswith("beta-") else "1-12-11"
        assert dv["sourceRef"]["name"] == f"talos-{wanted}-{SCHEMATIC}"
        assert t.urn != sources[dv["sourceRef"]["name"]].urn
        assert sources[dv["sourceRef"]["name"]].urn in t.dependencies, t.name


def test_each_tenant_may_clone_from_the_images_namespace_and_nothing_more(two_versions):
    m = two_versions.monitor
    [role] = [r for r in m.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
              if r.input("metadata", "namespace") == tenant_images.NAMESPACE]
    assert role.input("rules") == [{"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes/source"],
                                    "verbs": ["create"]}]
    bindings = [r for r in m.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
                if r.input("metadata", "namespace") == tenant_images.NAMESPACE]
    # KubeVirt authorizes the clone as the VM namespace's default ServiceAccount.
    assert sorted(b.input("subjects")[0]["namespace"] for b in bindings) == ["tenant-alpha", "tenant-beta",
                                                                             "tenant-gamma"]
    assert all(b.input("subjects")[0]["name"] == "default" and b.input("roleRef")["name"] == role.input(
        "metadata", "name") for b in bindings)
    # Each binding belongs to its tenant (added and removed with it).
    alpha = m.named("alpha-golden-image-clone")
    assert alpha.parent.endswith("TenantCluster::alpha")


def test_the_clone_stream_is_the_only_flow_between_images_and_tenants():
    ingress = tenant_images.tenant_upload_ingress("tenant-alpha")
    assert ingress["spec"]["podSelector"] == {"matchLabels": {"cdi.kubevirt.io": "cdi-upload-server"}}
    [rule] = ingress["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "capi-images"}},
                             "podSelector": {"matchLabels": {"cdi.kubevirt.io": "cdi-clone-source"}}}]
    world, clone = tenant_images.network_policies()
    validate_custom_resource(world)
    assert world["spec"]["endpointSelector"] == {"matchLabels": {"cdi.kubevirt.io": "importer"}}
    assert world["spec"]["egress"] == [{"toEntities": ["world"],
                                        "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]
    assert clone["spec"]["podSelector"] == {"matchLabels": {"cdi.kubevirt.io": "cdi-clone-source"}}
    assert clone["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 8443}]


def test_upgrades_install_the_openstack_installer_of_the_schematic():
    cfg = config()
    patch = tenant_talos.common_patch(cfg.tenants[0])
    assert patch["machine"]["install"]["image"] == (
        f"factory.talos.dev/openstack-installer/{tenant_talos.schematic_id()}:v1.12.11")


# --- nested tunnel ----------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["vxlan", "geneve"])
def test_the_tenant_cilium_tunnels_on_another_port_than_the_management_cluster(protocol):
    cfg = config(base_raw(cilium={"tunnelProtocol": protocol}))
    tenant_values = tenant_gitops.cilium_values(cfg, cfg.tenants[0])
    management = cilium.values(cfg)
    # The management cluster keeps the chart default (tunnelPort 0: 8472 / 6081).
    assert management.get("tunnelPort", 0) == 0
    assert tenant_values["tunnelProtocol"] == management["tunnelProtocol"] == protocol
    assert tenant_values["tunnelPort"] not in (0, tenant_gitops.MANAGEMENT_TUNNEL_PORTS[protocol])
    validate_chart_values("cilium", tenant_values)
    # The nested MTU budget still holds (two tunnels inside the underlay).
    assert tenant_values["MTU"] + cfg.cilium.TUNNEL_OVERHEAD <= cfg.cilium.pod_mtu


# --- control-plane placement -------------------------------------------------------------------

def test_a_multi_vm_control_plane_on_one_server_is_refused():
    raw = base_raw(tenants=[tenant("alpha", 0, controlPlane={"replicas": 3})])
    with pytest.raises(ConfigError) as err:
        config(raw)
    [problem] = err.value.problems
    assert problem.path == "tenants[0].controlPlane.replicas"
    assert "quorum" in problem.problem and "replicas: 1" in problem.hint


def test_a_multi_vm_control_plane_needs_a_server_per_vm_and_one_for_the_rollout():
    three = tenant("alpha", 0, controlPlane={"replicas": 3})
    cfg = config(base_raw(managementCluster=servers(4), tenants=[three]))
    assert cfg.tenants[0].control_plane.replicas == 3
    with pytest.raises(ConfigError) as err:
        config(base_raw(managementCluster=servers(3), tenants=[three]))
    assert "4 servers" in err.value.problems[0].hint


def test_control_plane_vms_never_share_a_server_but_workers_may():
    three = config(base_raw(managementCluster=servers(4), tenants=[tenant("alpha", 0, controlPlane={"replicas": 3})]))
    objs = tenant_capi.cluster_objects(three, three.tenants[0])

    def affinity(template):
        vm = template["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]["template"]["spec"]
        return vm["affinity"]["podAntiAffinity"]

    [term] = affinity(objs.control_plane_template)["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"][tenant_capi.MACHINE_SET_LABEL] == "alpha-control-plane"
    validate_custom_resource(objs.control_plane_template)
    assert "preferredDuringSchedulingIgnoredDuringExecution" in affinity(objs.pools[0].machine_template)
    single = config()
    assert "preferredDuringSchedulingIgnoredDuringExecution" in affinity(
        tenant_capi.cluster_objects(single, single.tenants[0]).control_plane_template)


def test_an_existing_management_cluster_takes_single_vm_control_planes_only():
    existing = {"name": "weebo4cp", "provisioner": "existing",
                "existing": {"kubeconfigEnv": "KUBECONFIG"}, "declaredStorageClasses": ["local-path"],
                "loadBalancerIps": ["172.18.255.200/29"]}
    config(base_raw(managementCluster=existing))
    with pytest.raises(ConfigError) as err:
        config(base_raw(managementCluster=existing, tenants=[tenant("alpha", 0, controlPlane={"replicas": 3})]))
    assert "tenants[0].controlPlane.replicas" in [p.path for p in err.value.problems]


def test_the_matrix_offers_no_end_of_life_talos():
    assert "1.11" not in versions.TENANT_VERSION_MATRIX
    with pytest.raises(ConfigError) as err:
        config(base_raw(tenants=[tenant("alpha", 0, talosVersion="v1.11.6", kubernetesVersion="1.34.1")]))
    assert [p.path for p in err.value.problems] == ["tenants[0].talosVersion"]
