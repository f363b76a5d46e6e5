"""Golden boot images of tenant VMs (pure renderers; the resources are children of
``components.clusters.cluster_api.ClusterApi``).

Each Talos version in use by a tenant is imported **once** from the Image Factory into a golden
PVC (a CDI DataVolume in the ``capi-images`` namespace of the management cluster) and published as
a CDI ``DataSource``. Every VM boot disk is a clone of it (``sourceRef`` in the KubevirtMachineTemplate
DataVolume template, components.tenant.capi): scaling, rolling upgrades and health-check
replacements no longer download anything, so they keep working while factory.talos.dev is down,
and every VM of a version boots exactly the same bytes.

How the clone is allowed across namespaces: KubeVirt's VM controller authorizes the DataVolumes of
a VM's ``dataVolumeTemplates`` as the VM namespace's ``default`` ServiceAccount (no
serviceAccountName is set on tenant VMs); CDI lets a ServiceAccount clone from another namespace
when it may ``create datavolumes/source`` there. One RoleBinding per tenant in ``capi-images``
grants exactly that to ``system:serviceaccount:<tenant namespace>:default``.
Ref: kubevirt v1.9.0 pkg/virt-controller/watch/vm/vm.go (authorizeDataVolume); CDI v1.66.0
doc/clone-datavolume.md, staging/.../core/v1beta1/authorize_utils.go (newCloneSourceHandler).

How the bytes move: local-path is not a CSI driver, so CDI clones host-assisted (no populators):
a ``cdi-clone-source`` pod in ``capi-images`` streams the golden PVC to a ``cdi-upload-server``
pod in the tenant namespace on TCP 8443; the network policies here and in
components.tenant.policies open that flow only.
Ref: CDI v1.66.0 pkg/controller/datavolume/controller-base.go (shouldUseCDIPopulator),
pkg/controller/clone-controller.go (source pod in the source PVC's namespace),
pkg/common/common.go (ClonerSourcePodName, UploadServerCDILabel, UploadServerPort).

The golden PVC uses ``storage.bind.immediate.requested``: on a WaitForFirstConsumer class
(local-path) nothing would ever consume it otherwise and CDI would not start the import
(doc/waitforfirstconsumer-storage-handling.md, "Forcing immediate binding": golden images).
"""

from __future__ import annotations

from typing import Any

from components.core import network_policy as netpol
from components.core.common import MANAGED_BY
from components.core.contracts import TENANT_NAMESPACE_LABEL
from components.tenant.talos import disk_image_url, schematic_id
from stacks import facts
from stacks.config import PlatformConfig, Tenant

NAMESPACE = facts.CAPI_IMAGES_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
CDI_API = "cdi.kubevirt.io/v1beta1"
# The Talos disk images of non-metal platforms (openstack included) are 8 GiB raw: the golden
# volume must hold that virtual size. Ref: siderolabs/talos pkg/imager/profile/default.go
# (DefaultRAWDiskSize = 8192 MiB).
GOLDEN_SIZE_GIB = 8
IMPORT_TIMEOUT_MINUTES = 30  # one ~100 MiB download and an 8 GiB write
# CDI labels of its worker pods. Ref: CDI v1.66.0 pkg/common/common.go (CDIComponentLabel,
# ClonerSourcePodName, UploadServerCDILabel, UploadServerPort, ImporterPodName); importer pods carry
# cdi.kubevirt.io=importer (pkg/controller/import-controller.go, createImporterPod).
CDI_COMPONENT_LABEL = "cdi.kubevirt.io"
CLONE_SOURCE_POD = {CDI_COMPONENT_LABEL: "cdi-clone-source"}
UPLOAD_SERVER_POD = {CDI_COMPONENT_LABEL: "cdi-upload-server"}
UPLOAD_SERVER_PORT = 8443
IMPORTER_POD = {CDI_COMPONENT_LABEL: "importer"}
# Ref: CDI v1.66.0 pkg/controller/common/util.go (AnnImmediateBinding).
IMMEDIATE_BINDING = "cdi.kubevirt.io/storage.bind.immediate.requested"


def talos_versions(cfg: PlatformConfig) -> list[str]:
    """Every Talos version a tenant runs, once each, sorted (the set of golden images)."""
    return sorted({t.talos_version for t in cfg.tenants})


def image_name(talos_version: str) -> str:
    """Name of the golden DataVolume/PVC and its DataSource: the version and the schematic, so a
    new extension set is a new image rather than a rewrite of one that VMs were cloned from."""
    version = talos_version.removeprefix("v").replace(".", "-")
    return f"talos-{version}-{schematic_id()[:8]}"


def source_ref(talos_version: str) -> dict[str, Any]:
    """``DataVolumeSpec.sourceRef`` of a VM boot disk cloned from the golden image."""
    return {"kind": "DataSource", "name": image_name(talos_version), "namespace": NAMESPACE}


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": dict(MANAGED_BY), **extra}


def golden_data_volume(cfg: PlatformConfig, talos_version: str) -> dict[str, Any]:
    return {
        "apiVersion": CDI_API,
        "kind": "DataVolume",
        "metadata": _meta(image_name(talos_version), annotations={
            IMMEDIATE_BINDING: "true",
            # CDI's DataVolume garbage collection (CDIConfig dataVolumeTTLSeconds) is disabled by
            # default and components.virtualization.cdi sets none: the DataVolume Pulumi owns stays after import.
            # Ref: CDI v1.66.0 core/v1beta1/types.go (DataVolumeTTLSeconds).
            # Pulumi waits until the import finished (the DataVolume's Ready condition).
            "pulumi.com/waitFor": "condition=Ready",
        }),
        "spec": {
            "source": {"http": {"url": disk_image_url(talos_version)}},
            "storage": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{GOLDEN_SIZE_GIB}Gi"}},
                "storageClassName": cfg.infra_storage_class,
            },
        },
    }


def data_source(talos_version: str) -> dict[str, Any]:
    name = image_name(talos_version)
    return {
        "apiVersion": CDI_API,
        "kind": "DataSource",
        "metadata": _meta(name),
        "spec": {"source": {"pvc": {"name": name, "namespace": NAMESPACE}}},
    }


# --------------------------------------------------------------------------------------------
# Clone permission (one binding per tenant) and network
# --------------------------------------------------------------------------------------------

CLONE_ROLE = "clone-golden-images"


def clone_role() -> dict[str, Any]:
    """The only right cross-namespace cloning needs. Ref: CDI v1.66.0 doc/RBAC.md."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(CLONE_ROLE),
        "rules": [{"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes/source"], "verbs": ["create"]}],
    }


def clone_binding(tenant: Tenant, tenant_namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(f"{CLONE_ROLE}-{tenant.name}"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CLONE_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": tenant_namespace}],
    }


def network_policies() -> list[dict[str, Any]]:
    """Importers download from the Image Factory (HTTPS, outside the cluster); clone source pods
    stream to the upload servers in tenant namespaces; nothing else leaves or enters."""
    tenants = {"namespaceSelector": {"matchExpressions": [{"key": TENANT_NAMESPACE_LABEL, "operator": "Exists"}]},
               "podSelector": {"matchLabels": dict(UPLOAD_SERVER_POD)}}
    return [
        netpol.allow_world_egress(NAMESPACE, netpol.tcp(443), IMPORTER_POD, name="allow-importer-to-image-factory"),
        netpol.network_policy("allow-clone-to-tenants", NAMESPACE, CLONE_SOURCE_POD, egress=[
            netpol.egress_rule(netpol.tcp(UPLOAD_SERVER_PORT), [tenants])]),
    ]


def tenant_upload_ingress(tenant_namespace: str) -> dict[str, Any]:
    """In a tenant namespace: the upload server of a cloning boot disk accepts the clone source pod
    of ``capi-images`` only."""
    return netpol.network_policy("allow-golden-image-clone", tenant_namespace, UPLOAD_SERVER_POD, ingress=[{
        "from": [{"namespaceSelector": netpol.namespace_selector(NAMESPACE),
                  "podSelector": {"matchLabels": dict(CLONE_SOURCE_POD)}}],
        "ports": netpol.policy_ports(netpol.tcp(UPLOAD_SERVER_PORT)),
    }])
