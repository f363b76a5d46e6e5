"""Everything that will exist in a tenant's namespace of the management cluster, and what it
requests: the one place the namespace quota (components.tenant.policies) is derived from, and the
list a convergence checker can count (``expected_tenant_objects``).

A quota that counts only the program's own objects refuses the controllers' ones: a tenant has two
LoadBalancer Services (the program's ``apps-ingress`` and the ``<cluster>-lb`` that CAPK creates
from ``controlPlaneServiceTemplate``), and pods and PVCs that KubeVirt and CDI create per VM. Every
entry below names the upstream code that creates it and how its requests are computed.

Entries carry a ``phase``:

- ``steady``: exists while the tenant runs at its configured size (a convergence check counts these);
- ``rollout``: the surge machine of each machine set while CAPI rolls it (Talos/Kubernetes upgrade,
  new machine shape); every set may roll at once (one version change rolls them all);
- ``provisioning``: exists while a VM boot disk or a tenant volume is being created. At the first
  deployment every VM is created at once, so each VM (surge included) has its own.

The quota is the sum of all phases: the worst case (first creation, or an upgrade with every set
surging) must be admitted, or a controller's object is refused and the rollout hangs.
"""

from __future__ import annotations

import math
from typing import Any

from components.tenant.apps import apps_service
from components.tenant.capi import (
    cluster_name,
    cluster_objects,
    control_plane_name,
    kubevirt_cluster,
    pool_name,
)
from components.tenant.storage import controller_deployment
from stacks.config import MachineShape, PlatformConfig, Tenant

KI, MI, GI = 1024, 1024**2, 1024**3
M = 1000**2  # Kubernetes "M" (decimal mega), as CDI's and KubeVirt's support containers request

# --- virt-launcher (KubeVirt v1.9.0) ---------------------------------------------------------
# Memory overhead added to the guest memory in the compute container's request.
# Ref: kubevirt v1.9.0 pkg/hypervisor/kvm/hypervisorbackend.go (GetMemoryOverhead):
# page tables (guest memory / 512), the processes of the launcher (virt-launcher-monitor 25Mi,
# virt-launcher 100Mi, virtlogd 25Mi, virtqemud 40Mi, qemu 30Mi), 8Mi per vCPU, 8Mi for the IO
# thread, 32Mi of video RAM (autoattachGraphicsDevice is unset, i.e. true). No probes, TPM, SEV,
# VFIO, dedicated CPUs or network binding plugin are used by tenant VMs, and the KubeVirt CR sets
# no additionalGuestMemoryOverheadRatio (components.virtualization.kubevirt).
LAUNCHER_PROCESSES = (25 + 100 + 25 + 40 + 30) * MI
PER_VCPU = 8 * MI
IO_THREAD = 8 * MI
VIDEO_RAM = 32 * MI
# The guest-console-log sidecar (a restartable init container, counted in the pod's requests):
# serial console logging is on unless the KubeVirt CR disables it, which ours does not.
# Ref: kubevirt v1.9.0 pkg/virt-controller/services/serialconsolelog.go
# (resourcesForSerialConsoleLogContainer: 5m, 35M), pkg/virt-config/virt-config.go
# (IsSerialConsoleLogDisabled).
CONSOLE_LOG = {"cpu": 5, "memory": 35 * M}
# A hotplug attachment pod per VM that has kubevirt-csi volumes, a second one while the set of
# volumes changes (a new pod replaces the old). Ref: kubevirt v1.9.0
# pkg/virt-controller/services/renderresources.go (hotplugContainerRequests: 10m, 2M).
HOTPLUG = {"cpu": 10, "memory": 2 * M}

# --- CDI (v1.66.0) ----------------------------------------------------------------------------
# Worker pods (clone upload server, importer of blank volumes) get CDIConfig's default requests.
# Ref: CDI v1.66.0 pkg/controller/config-controller.go (defaultCPURequest 100m, defaultMemRequest 60M).
CDI_WORKER = {"cpu": 100, "memory": 60 * M}
# Share of a Filesystem volume CDI reserves: a DataVolume of N asks for a PVC of N / (1 - overhead).
# Ref: CDI v1.66.0 pkg/common/common.go DefaultGlobalOverhead.
CDI_FILESYSTEM_OVERHEAD = 0.06
# CDI creates a temporary "prime" PVC of the same size per populated volume only on CSI storage
# classes; local-path (components.virtualization.local_storage) is not CSI, so it clones and imports in place.
# Ref: CDI v1.66.0 pkg/controller/datavolume/controller-base.go (shouldUseCDIPopulator).
NON_CSI_STORAGE_CLASSES = frozenset({"local-path"})
# Tenant volumes kubevirt-csi may be creating at the same moment (each a blank DataVolume with its
# importer pod). More queue up: CDI requeues a worker pod the quota refuses.
CONCURRENT_VOLUME_PROVISIONS = 2


def _gib_with_overhead(gib: int) -> int:
    return math.ceil(gib / (1 - CDI_FILESYSTEM_OVERHEAD))


def uses_prime_pvcs(cfg: PlatformConfig) -> bool:
    return cfg.infra_storage_class not in NON_CSI_STORAGE_CLASSES


def launcher_memory_overhead(shape: MachineShape) -> int:
    """Bytes KubeVirt adds to the guest memory in a virt-launcher's compute container request."""
    guest = shape.memory_gib * GI
    return guest // 512 + LAUNCHER_PROCESSES + PER_VCPU * shape.cpu + IO_THREAD + VIDEO_RAM


def launcher_requests(shape: MachineShape) -> dict[str, int]:
    """Requests of one virt-launcher pod: the compute container asks for the VM's CPUs (whole
    cores, set in components.tenant.capi) and its memory plus overhead; plus the console sidecar."""
    return {
        "cpu": shape.cpu * 1000 + CONSOLE_LOG["cpu"],
        "memory": shape.memory_gib * GI + launcher_memory_overhead(shape) + CONSOLE_LOG["memory"],
    }


def _container_requests(deployment: dict[str, Any]) -> dict[str, int]:
    cpu = memory = 0
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        req = c["resources"]["requests"]
        cpu += int(req["cpu"].removesuffix("m")) if req["cpu"].endswith("m") else int(req["cpu"]) * 1000
        memory += int(req["memory"].removesuffix("Mi")) * MI
    return {"cpu": cpu, "memory": memory}


def machine_sets(cfg: PlatformConfig, tenant: Tenant) -> list[tuple[str, int, int, MachineShape]]:
    """(name, replicas, surge, shape) of the control plane and every worker pool, read from the
    rendered TalosControlPlane (``rolloutStrategy``) and MachineDeployments (``rollout.strategy``)."""
    objs = cluster_objects(cfg, tenant)
    cp_surge = objs.control_plane["spec"]["rolloutStrategy"]["rollingUpdate"]["maxSurge"]
    sets = [(control_plane_name(tenant), tenant.control_plane.replicas, cp_surge, tenant.control_plane)]
    for p in objs.pools:
        surge = p.machine_deployment["spec"]["rollout"]["strategy"]["rollingUpdate"]["maxSurge"]
        sets.append((pool_name(tenant, p.pool), p.pool.replicas, surge, p.pool))
    return sets


def _obj(kind: str, name: str, created_by: str, phase: str, **requests: int) -> dict[str, Any]:
    return {"kind": kind, "name": name, "createdBy": created_by, "phase": phase, "requests": dict(requests)}


def expected_tenant_objects(cfg: PlatformConfig, tenant: Tenant) -> list[dict[str, Any]]:
    """Every quota-relevant object of the tenant namespace at full size during a rolling upgrade.

    Each entry: ``kind`` (Service, Pod, PersistentVolumeClaim), ``name`` (exact, or with ``*`` where
    a controller appends a random suffix), ``createdBy``, ``phase`` (steady / rollout /
    provisioning, see the module docstring), ``requests`` (``cpu`` in millicores, ``memory`` and
    ``storage`` in bytes) and, for Services, ``serviceType``.
    """
    out: list[dict[str, Any]] = []
    # LoadBalancer Services: the program's apps ingress and CAPK's API endpoint.
    # Ref: CAPK v0.11.2 pkg/loadbalancer/loadbalancer.go (NewLoadBalancer: "<cluster>-lb", Create:
    # type from controlPlaneServiceTemplate.spec.type).
    apps = apps_service(cfg, tenant)
    api_type = kubevirt_cluster(cfg, tenant)["spec"]["controlPlaneServiceTemplate"]["spec"]["type"]
    for name, svc_type, by in ((apps["metadata"]["name"], apps["spec"]["type"], "weebo-platform"),
                               (f"{cluster_name(tenant)}-lb", api_type, "CAPK")):
        out.append({**_obj("Service", name, by, "steady"), "serviceType": svc_type})
    # The kubevirt-csi controller (Recreate strategy: never two at once).
    out.append(_obj("Pod", "kubevirt-csi-controller-*", "weebo-platform", "steady",
                    **_container_requests(controller_deployment(cfg, tenant))))

    prime = uses_prime_pvcs(cfg)
    volumes = tenant.volume_storage_gib > 0
    for set_name, replicas, surge, shape in machine_sets(cfg, tenant):
        if replicas == 0:
            continue  # an empty pool gets no surge either: it creates nothing
        disk = _gib_with_overhead(shape.disk_gib) * GI
        for i in range(replicas + surge):
            phase = "steady" if i < replicas else "rollout"
            vm = f"{set_name}-*[{i}]"
            # CAPK names the VM after the KubevirtMachine; KubeVirt's pod is virt-launcher-<vm>-*.
            out.append(_obj("Pod", f"virt-launcher-{vm}", "KubeVirt", phase, **launcher_requests(shape)))
            # The boot disk: a DataVolume CAPK creates from the template, "<vm>-boot".
            out.append(_obj("PersistentVolumeClaim", f"{vm}-boot", "CDI", phase, storage=disk))
            # Its clone target: CDI's upload server pod while the golden image streams in.
            out.append(_obj("Pod", f"cdi-upload-{vm}-boot", "CDI", "provisioning", **CDI_WORKER))
            if prime:
                out.append(_obj("PersistentVolumeClaim", f"tmp-pvc-*[{vm}-boot]", "CDI", "provisioning",
                                storage=disk))
            if volumes:
                out.append(_obj("Pod", f"hp-volume-{vm}-*[0]", "KubeVirt", phase, **HOTPLUG))
                out.append(_obj("Pod", f"hp-volume-{vm}-*[1]", "KubeVirt", "provisioning", **HOTPLUG))
    if volumes:
        storage = _gib_with_overhead(tenant.volume_storage_gib) * GI
        # The tenant's own PersistentVolumes: DataVolumes the kubevirt-csi controller creates.
        out.append(_obj("PersistentVolumeClaim", "pvc-*", "kubevirt-csi", "steady", storage=storage))
        if prime:
            out.append(_obj("PersistentVolumeClaim", "tmp-pvc-*[pvc-*]", "CDI", "provisioning", storage=storage))
        for i in range(CONCURRENT_VOLUME_PROVISIONS):
            out.append(_obj("Pod", f"importer-pvc-*[{i}]", "CDI", "provisioning", **CDI_WORKER))
    return out


def totals(objects: list[dict[str, Any]]) -> dict[str, int]:
    """Sum of requests and the LoadBalancer count of a list of expected objects."""
    cpu = sum(o["requests"].get("cpu", 0) for o in objects if o["kind"] == "Pod")
    memory = sum(o["requests"].get("memory", 0) for o in objects if o["kind"] == "Pod")
    storage = sum(o["requests"].get("storage", 0) for o in objects if o["kind"] == "PersistentVolumeClaim")
    lbs = sum(1 for o in objects if o["kind"] == "Service" and o.get("serviceType") == "LoadBalancer")
    return {"cpu": cpu, "memory": memory, "storage": storage, "loadbalancers": lbs}


def quota_hard(cfg: PlatformConfig, tenant: Tenant) -> dict[str, str]:
    """ResourceQuota ``spec.hard`` admitting every expected object at once (rounded up: CPU to
    millicores, memory to MiB, storage to GiB). No ``services.nodeports`` limit: a LoadBalancer
    Service allocates node ports by default and would count against it."""
    t = totals(expected_tenant_objects(cfg, tenant))
    return {
        "requests.cpu": f"{t['cpu']}m",
        "requests.memory": f"{math.ceil(t['memory'] / MI)}Mi",
        "requests.storage": f"{math.ceil(t['storage'] / GI)}Gi",
        "services.loadbalancers": str(t["loadbalancers"]),
    }
