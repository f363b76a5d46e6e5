"""CDI (Containerized Data Importer): the operator of the pinned release and the ``CDI`` CR. CDI
imports the tenants' boot images into DataVolumes and provisions kubevirt-csi volumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

import versions
from components.core import network_policy as netpol
from components.core import release_manifest
from components.core.common import MANAGED_BY
from components.core.k8s_objects import register
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks import facts
from stacks.config import PlatformConfig

NAMESPACE = facts.CDI_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
CR_NAME = "cdi"

# Ref: kubevirt/containerized-data-importer v1.66.0 release asset cdi-operator.yaml (its CRD
# cdis.cdi.kubevirt.io and Deployment cdi/cdi-operator).
OPERATOR_MANIFEST = release_manifest.ReleaseManifest(
    url=(
        "https://github.com/kubevirt/containerized-data-importer/releases/download/"
        f"{versions.CDI_VERSION}/cdi-operator.yaml"
    ),
    sha256=versions.CDI_OPERATOR_SHA256,
    crds=("cdis.cdi.kubevirt.io",),
    deployments=(f"{NAMESPACE}/cdi-operator",),
)

# Ref: CDI v1.66.0 pkg/common/common.go AllowAccessClusterServicesNPLabel, set on the operator,
# cdi-deployment, cdi-apiserver and cdi-uploadproxy pods. The operator installs the policies
# for CDI's internal flows itself (pkg/operator/resources/namespaced/networkpolicies.go).
CLUSTER_SERVICES_LABEL = {"np.kubevirt.io/allow-access-cluster-services": "true"}


def cdi_cr(cfg: PlatformConfig) -> dict[str, Any]:
    """The ``CDI`` CR, after the release's cdi-cr.yaml (v1.66.0
    manifests/templates/release/cdi-cr.yaml.in), with the scratch-space storage class."""
    linux = {"nodeSelector": {"kubernetes.io/os": "linux"}}
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "CDI",
        "metadata": {
            "name": CR_NAME,
            "labels": dict(MANAGED_BY),
            "annotations": {"pulumi.com/waitFor": "condition=Available"},
        },
        "spec": {
            "config": {
                # Upstream's release CR enables it: CDI does not bind WaitForFirstConsumer
                # volumes (local-path) with its own worker pods on an arbitrary node.
                # Ref: CDI v1.66.0 doc/waitforfirstconsumer-storage-handling.md
                "featureGates": ["HonorWaitForFirstConsumer"],
                "scratchSpaceStorageClass": cfg.cdi_scratch_storage_class,
            },
            "imagePullPolicy": "IfNotPresent",
            "infra": linux,
            "workload": linux,
            # Ref: CDI v1.66.0 core/v1beta1/types.go CDIUninstallStrategyBlockUninstallIfWorkloadsExist
            "uninstallStrategy": "BlockUninstallIfWorkloadsExist",
        },
    }


@dataclass(frozen=True)
class CDIArgs:
    config: PlatformConfig
    kubeconfig: pulumi.Input[str]
    kube_context: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()
    # What provides cdi_scratch_storage_class (the local-path StorageClass), if the platform does.
    scratch_storage: Sequence[pulumi.Resource] = ()


class CDI(pulumi.ComponentResource):
    operator: pulumi.Resource
    cr: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: CDIArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:virtualization:CDI", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(
                name=NAMESPACE, pod_security="privileged", depends_on=args.depends_on,
                labels={"cdi.kubevirt.io": ""},  # as the release's own Namespace document
            ),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        register(
            f"{name}-allow-apiserver-egress",
            netpol.allow_kube_apiserver_egress(NAMESPACE, CLUSTER_SERVICES_LABEL, **netpol.APISERVER_EGRESS_NAMED_AS_BEFORE),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns]),
        )
        # The webhooks of cdi-apiserver (8443) are opened by the operator's own policies.
        self.operator = release_manifest.install(
            f"{name}-operator", OPERATOR_MANIFEST, args.kubeconfig, args.kube_context,
            pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        self.cr = register(
            f"{name}-cr", cdi_cr(args.config),
            pulumi.ResourceOptions(
                parent=self, provider=provider, depends_on=[self.operator, *args.scratch_storage],
                custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m"),
            ),
        )
        self.register_outputs({"namespace": ns.name})
