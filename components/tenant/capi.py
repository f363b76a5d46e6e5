"""The Cluster API object set of one tenant (pure renderers).

Modelled on CAPK v0.11.2 ``templates/cluster-template-lb-talos.yaml``, with the core objects in
``cluster.x-k8s.io/v1beta2`` (CAPI v1.14 stores v1beta2; references there are
``{apiGroup, kind, name}``, and CAPI resolves the providers' v1beta1-contract versions from their
CRD labels), CAPK ``infrastructure.cluster.x-k8s.io/v1alpha1``, CABPT
``bootstrap.cluster.x-k8s.io/v1alpha3`` and CACPPT ``controlplane.cluster.x-k8s.io/v1alpha3``.

Lifecycle: machine templates and Talos config templates are immutable by CAPI convention, so their
names carry a hash of their spec. A new Talos or Kubernetes version, or a new machine shape, renders
a new template and updated references: CAPI rolls the machines, the Cluster object is untouched.
Scaling a pool only changes ``MachineDeployment.spec.replicas``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from components.core.common import MANAGED_BY
from components.core.contracts import TENANT_NAMESPACE_LABEL, hostnames
from components.tenant.images import source_ref
from components.tenant.talos import controlplane_patches, strategic_patches, worker_patches
from stacks.config import MachineShape, PlatformConfig, Tenant, WorkerPool

CLUSTER_API = "cluster.x-k8s.io/v1beta2"
INFRA_GROUP = "infrastructure.cluster.x-k8s.io"
INFRA_API = f"{INFRA_GROUP}/v1alpha1"
BOOTSTRAP_GROUP = "bootstrap.cluster.x-k8s.io"
BOOTSTRAP_API = f"{BOOTSTRAP_GROUP}/v1alpha3"
CONTROLPLANE_GROUP = "controlplane.cluster.x-k8s.io"
CONTROLPLANE_API = f"{CONTROLPLANE_GROUP}/v1alpha3"

CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"
DEPLOYMENT_NAME_LABEL = "cluster.x-k8s.io/deployment-name"
# Labels CAPK puts on every VM/VMI (and so on the virt-launcher pods): the control-plane load
# balancer Service selects on them. Ref: CAPK v0.11.2 pkg/kubevirt/utils.go, pkg/loadbalancer.
ROLE_LABEL = "cluster.x-k8s.io/role"
CONTROL_PLANE_ROLE = "control-plane"
MACHINE_SET_LABEL = "weebo.io/machine-set"  # ours: spreads each machine set's VMs
EXTERNAL_DNS_HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"
# Services with the same key share one LB IPAM address (ports must not overlap): the tenant's API
# and apps endpoints (components.tenant.apps). Ref: cilium v1.20 lb-ipam.rst "Sharing Keys".
LB_SHARING_KEY = "lbipam.cilium.io/sharing-key"

# The node name must be the KubevirtMachine's name: CAPK looks up the workload Node by that name
# to set its ``kubevirt://<KubevirtMachine>`` providerID (which links Node and Machine) and drains
# only that Node. CACPPT names Machines ``<TalosControlPlane>-xxxxx`` but their KubevirtMachines
# ``<template>-xxxxx``, so ``MachineName`` would leave control-plane Nodes without providerID or
# nodeRef. ``InfrastructureName`` is the Machine's ``spec.infrastructureRef.name``.
# Ref: CAPK v0.11.2 controllers/kubevirtmachine_controller.go (updateNodeProviderID),
# pkg/kubevirt/machine.go (GenerateProviderID); CABPT v0.6.12 api/v1alpha3/talosconfig_types.go
# (HostnameSourceInfrastructureName), controllers/talosconfig_controller.go.
HOSTNAME = {"source": "InfrastructureName"}

BOOT_VOLUME = "boot"
# CAPI rolls one extra machine per machine set at a time (never fewer than desired): the namespace
# quota leaves room for exactly that surge.
MAX_SURGE = 1


def namespace(cfg: PlatformConfig, tenant: Tenant) -> str:
    return f"{cfg.cluster_api.tenant_namespace_prefix}{tenant.name}"


def cluster_name(tenant: Tenant) -> str:
    return tenant.name


def kubeconfig_secret_name(tenant: Tenant) -> str:
    """Written by the control plane provider once the API answers (key ``value``)."""
    return f"{cluster_name(tenant)}-kubeconfig"


def control_plane_name(tenant: Tenant) -> str:
    return f"{cluster_name(tenant)}-control-plane"


def pool_name(tenant: Tenant, pool: WorkerPool) -> str:
    return f"{cluster_name(tenant)}-{pool.name}"


def k8s_version(tenant: Tenant) -> str:
    return f"v{tenant.kubernetes_version}"


def _spec_hash(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]


def _meta(name: str, ns: str, tenant: Tenant, **extra: Any) -> dict[str, Any]:
    labels = {**MANAGED_BY, TENANT_NAMESPACE_LABEL: tenant.name, CLUSTER_NAME_LABEL: cluster_name(tenant)}
    return {"name": name, "namespace": ns, "labels": labels, **extra}


# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------

def cluster(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    name = cluster_name(tenant)
    return {
        "apiVersion": CLUSTER_API,
        "kind": "Cluster",
        "metadata": _meta(name, namespace(cfg, tenant), tenant),
        "spec": {
            "clusterNetwork": {
                "pods": {"cidrBlocks": [tenant.pod_cidr]},
                "services": {"cidrBlocks": [tenant.service_cidr]},
            },
            "infrastructureRef": {"apiGroup": INFRA_GROUP, "kind": "KubevirtCluster", "name": name},
            "controlPlaneRef": {"apiGroup": CONTROLPLANE_GROUP, "kind": "TalosControlPlane",
                                "name": control_plane_name(tenant)},
        },
    }


def sharing_key(tenant: Tenant) -> str:
    """LB IPAM sharing key of a tenant's LoadBalancer Services: one public address per tenant."""
    return f"tenant-{tenant.name}"


def kubevirt_cluster(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    """The API endpoint: a LoadBalancer Service (Cilium LB IPAM gives it a pool address) whose
    name ExternalDNS publishes from the annotation CAPK copies onto the Service
    (pkg/loadbalancer/loadbalancer.go: labels and annotations of controlPlaneServiceTemplate)."""
    return {
        "apiVersion": INFRA_API,
        "kind": "KubevirtCluster",
        "metadata": _meta(cluster_name(tenant), namespace(cfg, tenant), tenant),
        "spec": {
            "controlPlaneServiceTemplate": {
                # The tenant label lets the LB IP pool / L2 announcement select tenant API Services.
                "metadata": {"labels": {TENANT_NAMESPACE_LABEL: tenant.name},
                             "annotations": {EXTERNAL_DNS_HOSTNAME: hostnames(cfg).tenant_api(tenant.name),
                                             LB_SHARING_KEY: sharing_key(tenant)}},
                "spec": {"type": "LoadBalancer"},
            },
        },
    }


def vm_labels(tenant: Tenant, machine_set: str) -> dict[str, str]:
    return {TENANT_NAMESPACE_LABEL: tenant.name, MACHINE_SET_LABEL: machine_set}


def spread(labels: dict[str, str], required: bool) -> dict[str, Any]:
    """Anti-affinity of a machine set's VMs across servers. Preferred for workers (a pool may be
    larger than the host count). Required for a multi-VM control plane: two etcd members on one
    server would restart together, with new addresses, and could take quorum with them (config
    validation keeps a server free for the rolling-update surge VM:
    stacks.config.tenant_control_plane_problems)."""
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
    if required:
        return {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}


def machine_template_spec(cfg: PlatformConfig, tenant: Tenant, shape: MachineShape, machine_set: str,
                          spread_required: bool = False) -> dict[str, Any]:
    """A KubeVirt VM booting a copy of the Talos openstack image: CDI clones the boot DataVolume
    from the golden image of the tenant's Talos version (components.tenant.images; imported once,
    nothing is downloaded per VM). CAPK prefixes DataVolume names with the machine name."""
    labels = vm_labels(tenant, machine_set)
    return {
        "template": {
            "spec": {
                # The default check logs in over SSH, which Talos has not.
                "virtualMachineBootstrapCheck": {"checkStrategy": "none"},
                "virtualMachineTemplate": {
                    "metadata": {"namespace": namespace(cfg, tenant), "labels": labels},
                    "spec": {
                        "runStrategy": "Always",
                        "dataVolumeTemplates": [{
                            "metadata": {"name": BOOT_VOLUME},
                            "spec": {
                                "sourceRef": source_ref(tenant.talos_version),
                                "storage": {
                                    "accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": f"{shape.disk_gib}Gi"}},
                                    "storageClassName": cfg.infra_storage_class,
                                },
                            },
                        }],
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "domain": {
                                    "cpu": {"cores": shape.cpu},
                                    # Whole cores and the full memory requested: the quota and the
                                    # host capacity check count VMs at their size, not overcommitted.
                                    "resources": {"requests": {"cpu": str(shape.cpu),
                                                               "memory": f"{shape.memory_gib}Gi"}},
                                    "devices": {
                                        "disks": [{"name": BOOT_VOLUME, "disk": {"bus": "virtio"}}],
                                        "networkInterfaceMultiqueue": True,
                                    },
                                },
                                "evictionStrategy": "External",
                                "volumes": [{"name": BOOT_VOLUME, "dataVolume": {"name": BOOT_VOLUME}}],
                                "affinity": {"podAntiAffinity": spread(labels, required=spread_required)},
                            },
                        },
                    },
                },
            },
        },
    }


def machine_template(cfg: PlatformConfig, tenant: Tenant, shape: MachineShape, machine_set: str,
                     spread_required: bool = False) -> dict[str, Any]:
    spec = machine_template_spec(cfg, tenant, shape, machine_set, spread_required)
    return {
        "apiVersion": INFRA_API,
        "kind": "KubevirtMachineTemplate",
        "metadata": _meta(f"{machine_set}-{_spec_hash(spec)}", namespace(cfg, tenant), tenant),
        "spec": spec,
    }


def control_plane(cfg: PlatformConfig, tenant: Tenant, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": CONTROLPLANE_API,
        "kind": "TalosControlPlane",
        "metadata": _meta(control_plane_name(tenant), namespace(cfg, tenant), tenant),
        "spec": {
            "version": k8s_version(tenant),
            "replicas": tenant.control_plane.replicas,
            "infrastructureTemplate": {
                "apiVersion": INFRA_API,
                "kind": "KubevirtMachineTemplate",
                "name": template["metadata"]["name"],
                "namespace": namespace(cfg, tenant),
            },
            "controlPlaneConfig": {
                "controlplane": {
                    "generateType": "controlplane",
                    "talosVersion": tenant.talos_version,
                    "hostname": dict(HOSTNAME),
                    "strategicPatches": strategic_patches(controlplane_patches(cfg, tenant)),
                },
            },
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": MAX_SURGE}},
        },
    }


def config_template(cfg: PlatformConfig, tenant: Tenant, pool: WorkerPool) -> dict[str, Any]:
    spec = {
        "template": {
            "spec": {
                "generateType": "join",
                "talosVersion": tenant.talos_version,
                "hostname": dict(HOSTNAME),
                "strategicPatches": strategic_patches(worker_patches(cfg, tenant)),
            },
        },
    }
    return {
        "apiVersion": BOOTSTRAP_API,
        "kind": "TalosConfigTemplate",
        "metadata": _meta(f"{pool_name(tenant, pool)}-{_spec_hash(spec)}", namespace(cfg, tenant), tenant),
        "spec": spec,
    }


def deletion(cfg: PlatformConfig) -> dict[str, int]:
    """Bounded drain and volume detach of a deleted worker: CAPI's default (0) waits forever
    outside whole-cluster deletion, so one unevictable pod (a PodDisruptionBudget at its minimum)
    or a volume kubevirt-csi cannot unplug would hang every pool shrink, rollout and remediation.
    CACPPT v0.5.12 has no such fields for control-plane machines (its CRD has none).
    Ref: CAPI v1.14.0 MachineDeployment spec.template.spec.deletion (CRD, v1beta2)."""
    return {
        "nodeDrainTimeoutSeconds": cfg.cluster_api.node_drain_timeout_seconds,
        "nodeVolumeDetachTimeoutSeconds": cfg.cluster_api.node_volume_detach_timeout_seconds,
    }


def machine_delete_timeout_minutes(cfg: PlatformConfig) -> int:
    """How long deleting a MachineDeployment may take: each machine set deletes its machines in
    parallel, each bounded by drain + detach, plus room for the VM to stop and CAPI to clean up."""
    api = cfg.cluster_api
    return math.ceil((api.node_drain_timeout_seconds + api.node_volume_detach_timeout_seconds) / 60) + 15


def machine_deployment(cfg: PlatformConfig, tenant: Tenant, pool: WorkerPool,
                       template: dict[str, Any], bootstrap: dict[str, Any]) -> dict[str, Any]:
    name = pool_name(tenant, pool)
    selector = {CLUSTER_NAME_LABEL: cluster_name(tenant), DEPLOYMENT_NAME_LABEL: name}
    return {
        "apiVersion": CLUSTER_API,
        "kind": "MachineDeployment",
        "metadata": _meta(name, namespace(cfg, tenant), tenant),
        "spec": {
            "clusterName": cluster_name(tenant),
            "replicas": pool.replicas,
            "selector": {"matchLabels": selector},
            "rollout": {"strategy": {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": 0}}},
            "template": {
                "metadata": {"labels": {**selector, "node-role.kubernetes.io/worker": ""}},
                "spec": {
                    "clusterName": cluster_name(tenant),
                    "version": k8s_version(tenant),
                    "deletion": deletion(cfg),
                    "bootstrap": {"configRef": {"apiGroup": BOOTSTRAP_GROUP, "kind": "TalosConfigTemplate",
                                                "name": bootstrap["metadata"]["name"]}},
                    "infrastructureRef": {"apiGroup": INFRA_GROUP, "kind": "KubevirtMachineTemplate",
                                          "name": template["metadata"]["name"]},
                },
            },
        },
    }


def health_check(cfg: PlatformConfig, tenant: Tenant, pool: WorkerPool) -> dict[str, Any]:
    """Replace workers whose node never comes up or stays NotReady. Timeouts leave room for the
    first boot (boot disk clone) and for Cilium, which ArgoCD installs once the API is up (nodes are
    NotReady until then). Pools of 3+ stop remediating when 40% are unhealthy at once: that is an
    outage of the host or the network, not of the machines. The control plane has no health check:
    CACPPT does not remediate."""
    name = pool_name(tenant, pool)
    spec: dict[str, Any] = {
        "clusterName": cluster_name(tenant),
        "selector": {"matchLabels": {CLUSTER_NAME_LABEL: cluster_name(tenant), DEPLOYMENT_NAME_LABEL: name}},
        "checks": {
            "nodeStartupTimeoutSeconds": 1800,
            "unhealthyNodeConditions": [
                {"type": "Ready", "status": "Unknown", "timeoutSeconds": 600},
                {"type": "Ready", "status": "False", "timeoutSeconds": 600},
            ],
        },
    }
    if pool.replicas >= 3:
        spec["remediation"] = {"triggerIf": {"unhealthyLessThanOrEqualTo": "40%"}}
    return {
        "apiVersion": CLUSTER_API,
        "kind": "MachineHealthCheck",
        "metadata": _meta(name, namespace(cfg, tenant), tenant),
        "spec": spec,
    }


@dataclass(frozen=True)
class PoolObjects:
    pool: WorkerPool
    machine_template: dict[str, Any]
    config_template: dict[str, Any]
    machine_deployment: dict[str, Any]
    health_check: dict[str, Any]


@dataclass(frozen=True)
class ClusterObjects:
    cluster: dict[str, Any]
    kubevirt_cluster: dict[str, Any]
    control_plane_template: dict[str, Any]
    control_plane: dict[str, Any]
    pools: tuple[PoolObjects, ...]

    def all(self) -> list[dict[str, Any]]:
        out = [self.cluster, self.kubevirt_cluster, self.control_plane_template, self.control_plane]
        for p in self.pools:
            out += [p.machine_template, p.config_template, p.machine_deployment, p.health_check]
        return out


def cluster_objects(cfg: PlatformConfig, tenant: Tenant) -> ClusterObjects:
    cp_template = machine_template(cfg, tenant, tenant.control_plane, control_plane_name(tenant),
                                   spread_required=tenant.control_plane.replicas > 1)
    pools = []
    for pool in tenant.worker_pools:
        tpl = machine_template(cfg, tenant, pool, pool_name(tenant, pool))
        boot = config_template(cfg, tenant, pool)
        pools.append(PoolObjects(pool, tpl, boot, machine_deployment(cfg, tenant, pool, tpl, boot),
                                 health_check(cfg, tenant, pool)))
    return ClusterObjects(
        cluster=cluster(cfg, tenant),
        kubevirt_cluster=kubevirt_cluster(cfg, tenant),
        control_plane_template=cp_template,
        control_plane=control_plane(cfg, tenant, cp_template),
        pools=tuple(pools),
    )
