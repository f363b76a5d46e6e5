"""KubeVirt: the operator of the pinned release and the ``KubeVirt`` CR (tenant nodes are VMs)."""

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

NAMESPACE = facts.KUBEVIRT_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
CR_NAME = "kubevirt"

# Ref: kubevirt/kubevirt v1.9.0 release assets; CRD and deployment names from the manifest.
OPERATOR_MANIFEST = release_manifest.ReleaseManifest(
    url=f"https://github.com/kubevirt/kubevirt/releases/download/{versions.KUBEVIRT_VERSION}/kubevirt-operator.yaml",
    sha256=versions.KUBEVIRT_OPERATOR_SHA256,
    crds=("kubevirts.kubevirt.io",),
    deployments=(f"{NAMESPACE}/virt-operator",),
)

# Feature gates kubevirt-csi needs. Ref: kubevirt/csi-driver README ("Enable HotplugVolumes feature
# gate") and hack/cluster-up.sh @27b52aa (CI enables HotplugVolumes + ExpandDisks). In KubeVirt
# v1.9.0 (pkg/virt-config/featuregate/inactive.go) ExpandDisks is GA (not a gate any more) and
# HotplugVolumes is Deprecated but still honoured: the csi-driver calls the
# virtualmachines/addvolume subresource, which with HotplugVolumes keeps the request path its CI
# tests (pkg/virt-api/rest/volumes.go). Its successor DeclarativeHotplugVolumes is Beta (on by
# default) and is switched off for VM hotplug while HotplugVolumes is set.
FEATURE_GATES = ("HotplugVolumes",)

# Pods of KubeVirt that need the API server carry this label.
# Ref: kubevirt v1.9.0 staging/src/kubevirt.io/api/core/v1/types.go AllowAccessClusterServicesNPLabel
CLUSTER_SERVICES_LABEL = {"np.kubevirt.io/allow-access-cluster-services": "true"}


def kubevirt_cr(cfg: PlatformConfig) -> dict[str, Any]:
    """The ``KubeVirt`` CR. Shape after the release's kubevirt-cr.yaml (v1.9.0
    manifests/generated/kubevirt-cr.yaml.in)."""
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {
            "name": CR_NAME,
            "namespace": NAMESPACE,
            "labels": dict(MANAGED_BY),
            # pulumi-kubernetes waits for this condition: tenants start only on a working KubeVirt.
            "annotations": {"pulumi.com/waitFor": "condition=Available"},
        },
        "spec": {
            "certificateRotateStrategy": {},
            "configuration": {
                "developerConfiguration": {
                    "featureGates": list(FEATURE_GATES),
                    "useEmulation": cfg.kubevirt.use_emulation,
                },
                "imagePullPolicy": "IfNotPresent",
            },
            "customizeComponents": {},
            "imagePullPolicy": "IfNotPresent",
            "workloadUpdateStrategy": {},
            # Deleting the CR must never take the tenants' VMs with it.
            "uninstallStrategy": "BlockUninstallIfWorkloadsExist",
        },
    }


def _np(name: str, pod_selector: dict[str, Any], **rules: Any) -> dict[str, Any]:
    return netpol.network_policy(name, NAMESPACE, pod_selector=pod_selector, **rules)


def _kv(*components: str) -> dict[str, Any]:
    if len(components) == 1:
        return {"matchLabels": {"kubevirt.io": components[0]}}
    return {"matchExpressions": [{"key": "kubevirt.io", "operator": "In", "values": list(components)}]}


def network_policies() -> list[dict[str, Any]]:
    """Flows KubeVirt needs inside the default-deny namespace.

    Ref: kubevirt v1.9.0 pkg/virt-operator/resource/generate/components/networkpolicy.go
    (NewKubeVirtNetworkPolicies: upstream's own set, which the operator does not install) plus
    API-server egress for the pods labelled np.kubevirt.io/allow-access-cluster-services.
    """
    tcp = {"protocol": "TCP"}
    return [
        _np("kubevirt-allow-ingress-to-metrics",
            _kv("virt-operator", "virt-handler", "virt-controller", "virt-api", "virt-exportproxy",
                "virt-synchronization-controller", "virt-observability-controller"),
            ingress=[{"ports": [{**tcp, "port": 8443}, {**tcp, "port": 8187}]}]),
        _np("kubevirt-allow-ingress-to-virt-api-webhook-server", _kv("virt-api"),
            ingress=[{"ports": [{**tcp, "port": 8443}]}]),
        _np("kubevirt-allow-virt-api-to-components", _kv("virt-api"),
            egress=[{"to": [{"podSelector": _kv("virt-operator", "virt-handler", "virt-controller", "virt-api")}],
                     "ports": [{**tcp, "port": 8443}]}]),
        _np("kubevirt-allow-virt-api-to-launchers", _kv("virt-api"),
            egress=[{"to": [{"podSelector": _kv("virt-launcher"), "namespaceSelector": {}}]}]),
        _np("kubevirt-allow-virt-api-to-virt-handler", _kv("virt-api"),
            egress=[{"to": [{"podSelector": _kv("virt-handler")}], "ports": [tcp]}]),
        _np("kubevirt-allow-ingress-to-virt-handler", _kv("virt-handler"),
            ingress=[{"from": [{"podSelector": _kv("virt-api")}], "ports": [tcp]}]),
        _np("kubevirt-allow-ingress-to-virt-operator-webhook-server", _kv("virt-operator"),
            ingress=[{"ports": [{**tcp, "port": 8444}]}]),
        _np("kubevirt-allow-virt-exportproxy-communications", _kv("virt-exportproxy"),
            ingress=[{"ports": [{**tcp, "port": 8443}]}],
            egress=[{"to": [{"podSelector": {"matchExpressions": [
                {"key": "kubevirt.io.virt-export-service", "operator": "Exists"}]}, "namespaceSelector": {}}],
                "ports": [{**tcp, "port": 8443}]}]),
        _np("kubevirt-allow-handler-to-handler", _kv("virt-handler"),
            ingress=[{"from": [{"podSelector": _kv("virt-handler")}]}],
            egress=[{"to": [{"podSelector": _kv("virt-handler")}]}]),
        _np("kubevirt-allow-observability-to-virt-handler", _kv("virt-observability-controller"),
            egress=[{"to": [{"podSelector": _kv("virt-handler")}], "ports": [{**tcp, "port": 8187}]}]),
        netpol.allow_kube_apiserver_egress(NAMESPACE, CLUSTER_SERVICES_LABEL, **netpol.APISERVER_EGRESS_NAMED_AS_BEFORE),
    ]


@dataclass(frozen=True)
class KubeVirtArgs:
    config: PlatformConfig
    kubeconfig: pulumi.Input[str]  # for the deploy-time install of the operator manifest
    kube_context: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


class KubeVirt(pulumi.ComponentResource):
    """Namespace ``kubevirt`` (privileged: virt-handler runs with host PID and host paths),
    the operator, and the ``KubeVirt`` CR that waits until KubeVirt is Available."""

    operator: pulumi.Resource
    cr: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: KubeVirtArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:virtualization:KubeVirt", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(
                name=NAMESPACE, pod_security="privileged", depends_on=args.depends_on,
                # The label the release's own Namespace document carries (dropped at install).
                labels={"kubevirt.io": ""},
            ),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns])
        for obj in network_policies():
            register(f"{name}-{obj['metadata']['name'].removeprefix('kubevirt-')}", obj, in_ns)
        self.operator = release_manifest.install(
            f"{name}-operator", OPERATOR_MANIFEST, args.kubeconfig, args.kube_context,
            pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        self.cr = register(
            f"{name}-cr", kubevirt_cr(args.config),
            pulumi.ResourceOptions(
                parent=self, provider=provider, depends_on=[self.operator],
                custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m"),
            ),
        )
        self.register_outputs({"namespace": ns.name})
