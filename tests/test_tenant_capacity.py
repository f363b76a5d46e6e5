"""The tenant namespace quota counts every object the program *and the controllers* create there
(CAPK's API Service, KubeVirt's virt-launcher and hotplug pods, CDI's PVCs and worker pods), and
admits a whole tenant at full size during a rolling upgrade."""

from __future__ import annotations

import math

import pytest

from components.tenant import capacity as tenant_capacity
from components.tenant import capi as tenant_capi
from components.tenant import policies as tenant_policies
from tests.helpers.factories import base_raw, config, servers, tenant

MI, GI = 1024**2, 1024**3


POOLS = [
    {"name": "general", "replicas": 3, "cpu": 4, "memoryGib": 8, "diskGib": 60},
    {"name": "db", "replicas": 2, "cpu": 8, "memoryGib": 32, "diskGib": 300},
]


def _cfg(**overrides):
    raw = tenant("alpha", 0, controlPlane={"replicas": 3, "cpu": 2, "memoryGib": 4, "diskGib": 20},
                 workerPools=POOLS, **overrides)
    return config(base_raw(tenants=[raw], managementCluster=servers(4)))


@pytest.fixture(scope="module")
def cfg():
    return _cfg()


def _quantity(value: str) -> float:
    """A Kubernetes quantity as a number (the suffixes the program and the controllers use)."""
    for suffix, factor in (("Gi", GI), ("Mi", MI), ("Ki", 1024), ("m", 0.001), ("G", 1000**3), ("M", 1000**2)):
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def admits(hard: dict[str, str], objects: list[dict]) -> list[str]:
    """What a ResourceQuota with ``hard`` refuses when every object exists at once (the API
    server's quota admission: the sum of requests of non-terminal pods, PVC storage requests, the
    count of LoadBalancer Services). Empty: everything is admitted."""
    used = tenant_capacity.totals(objects)
    usage = {"requests.cpu": used["cpu"] / 1000, "requests.memory": used["memory"],
             "requests.storage": used["storage"], "services.loadbalancers": used["loadbalancers"]}
    return [key for key, limit in hard.items() if usage[key] > _quantity(limit)]


def _old_quota(cfg, t) -> dict[str, str]:
    """The quota of the code before this fix: VMs + one surge each with hostCapacity.vmOverhead,
    1000m/1024Mi for every other pod, one LoadBalancer."""
    ov = cfg.host_capacity.vm_overhead
    cpu, memory, storage = 1000, 1024, math.ceil(t.volume_storage_gib / 0.94)
    for count, shape in t.machines:
        vms = count + 1 if count else 0
        cpu += vms * round((shape.cpu + ov.cpu) * 1000)
        memory += vms * (shape.memory_gib * 1024 + ov.memory_mib)
        storage += vms * math.ceil(shape.disk_gib / 0.94)
    return {"requests.cpu": f"{cpu}m", "requests.memory": f"{memory}Mi", "requests.storage": f"{storage}Gi",
            "services.loadbalancers": "1"}


def test_every_loadbalancer_pvc_and_pod_the_controllers_create_is_counted(cfg):
    t = cfg.tenants[0]
    objects = tenant_capacity.expected_tenant_objects(cfg, t)
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    # Two LoadBalancers: the program's apps ingress and CAPK's "<cluster>-lb" (from the
    # KubevirtCluster's controlPlaneServiceTemplate, which asks for a LoadBalancer).
    services = {o["name"]: o for o in by_kind["Service"]}
    assert set(services) == {"apps-ingress", "alpha-lb"}
    assert services["alpha-lb"]["createdBy"] == "CAPK"
    assert tenant_capi.kubevirt_cluster(cfg, t)["spec"]["controlPlaneServiceTemplate"]["spec"]["type"] == "LoadBalancer"
    assert all(o["serviceType"] == "LoadBalancer" for o in services.values())
    # Machines at full size plus one surge machine per set (rolling upgrade): 3+1, 3+1, 2+1.
    vms = 4 + 4 + 3
    pods = by_kind["Pod"]
    launchers = [o for o in pods if o["name"].startswith("virt-launcher-")]
    assert len(launchers) == vms and sum(o["phase"] == "rollout" for o in launchers) == 3
    assert sum(o["name"].startswith("cdi-upload-") for o in pods) == vms  # one clone target each
    assert sum(o["name"].startswith("hp-volume-") for o in pods) == 2 * vms  # kubevirt-csi hotplug
    assert sum(o["name"].startswith("kubevirt-csi-controller") for o in pods) == 1
    assert sum(o["name"].startswith("importer-") for o in pods) == tenant_capacity.CONCURRENT_VOLUME_PROVISIONS
    pvcs = by_kind["PersistentVolumeClaim"]
    assert sum(o["name"].endswith("-boot") for o in pvcs) == vms
    assert [o["createdBy"] for o in pvcs if not o["name"].endswith("-boot")] == ["kubevirt-csi"]
    # local-path is not CSI: no prime PVCs.
    assert not any(o["name"].startswith("tmp-pvc-") for o in pvcs)


def test_the_quota_admits_a_full_tenant_during_a_rolling_upgrade_and_the_old_one_did_not(cfg):
    t = cfg.tenants[0]
    objects = tenant_capacity.expected_tenant_objects(cfg, t)
    hard = tenant_policies.resource_quota(cfg, t)["spec"]["hard"]
    assert admits(hard, objects) == []
    assert hard["services.loadbalancers"] == "2"
    # The old quota refused CAPK's API Service (so the control plane never got an endpoint) and
    # undercounted virt-launcher memory (KubeVirt's overhead exceeds the 300 MiB per VM assumed).
    refused = admits(_old_quota(cfg, t), objects)
    assert "services.loadbalancers" in refused and "requests.memory" in refused


def test_the_quota_is_tight_one_more_vm_would_not_fit(cfg):
    t = cfg.tenants[0]
    objects = tenant_capacity.expected_tenant_objects(cfg, t)
    hard = tenant_policies.quota_hard(cfg, t)
    extra = next(o for o in objects if o["name"].startswith("virt-launcher-alpha-db"))
    assert admits(hard, [*objects, extra]) == ["requests.cpu", "requests.memory"]


def test_virt_launcher_requests_follow_kubevirt_v1_9_overhead():
    shape = config(base_raw()).tenants[0].control_plane  # 2 cores, 4 GiB
    req = tenant_capacity.launcher_requests(shape)
    # compute: 2 cores; guest-console-log sidecar: 5m, 35M
    assert req["cpu"] == 2005
    overhead = 4 * GI // 512 + 220 * MI + 2 * 8 * MI + 8 * MI + 32 * MI
    assert req["memory"] == 4 * GI + overhead + 35_000_000


def test_the_quota_follows_scaling_and_an_empty_pool_creates_nothing():
    def cpu(replicas):
        c = config(base_raw(tenants=[tenant("alpha", 0, workerPools=[
            {"name": "w", "replicas": replicas, "cpu": 4, "memoryGib": 8, "diskGib": 40}])]))
        return int(tenant_policies.quota_hard(c, c.tenants[0])["requests.cpu"].removesuffix("m"))

    # one VM more: its launcher (4 cores + 5m), its clone upload pod (100m), its hotplug pods (2 x 10m)
    assert cpu(3) - cpu(2) == 4005 + 100 + 20
    empty = config(base_raw(tenants=[tenant("alpha", 0, workerPools=[
        {"name": "w", "replicas": 0, "cpu": 4, "memoryGib": 8, "diskGib": 40}])]))
    names = [o["name"] for o in tenant_capacity.expected_tenant_objects(empty, empty.tenants[0])]
    assert not any("alpha-w-" in n for n in names)


def test_prime_pvcs_are_counted_only_on_a_csi_infra_storage_class():
    # A CSI infra class exists only on a cluster whose storage the program does not create.
    existing = {"name": "weebo4cp", "provisioner": "existing",
                "existing": {"kubeconfigEnv": "KUBECONFIG"}, "declaredStorageClasses": ["local-path", "ceph-rbd"],
                "loadBalancerIps": ["172.18.255.200/29"]}
    csi = config(base_raw(managementCluster=existing, kubevirtCsi={"infraStorageClass": "ceph-rbd"},
                          tenants=[tenant("alpha", 0)]))
    t = csi.tenants[0]
    objects = tenant_capacity.expected_tenant_objects(csi, t)
    pvcs = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    boot = sum(o["requests"]["storage"] for o in pvcs if o["name"].endswith("-boot"))
    prime = sum(o["requests"]["storage"] for o in pvcs if o["name"].startswith("tmp-pvc-"))
    volumes = sum(o["requests"]["storage"] for o in pvcs if o["name"] == "pvc-*")
    assert prime == boot + volumes > 0
    assert admits(tenant_policies.quota_hard(csi, t), objects) == []


def test_a_tenant_without_volumes_reserves_no_volume_storage_or_hotplug_pods():
    c = config(base_raw(tenants=[tenant("alpha", 0, volumeStorageGib=0)]))
    objects = tenant_capacity.expected_tenant_objects(c, c.tenants[0])
    assert not any(o["name"].startswith(("hp-volume-", "importer-")) or o["name"] == "pvc-*" for o in objects)
