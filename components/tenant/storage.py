"""kubevirt-csi-driver for one tenant, in split mode: volumes of the tenant are DataVolumes in its
namespace of the management cluster, hot-plugged into its VMs.

- Management cluster, tenant namespace: the controller (CSI controller service + provisioner,
  attacher, resizer sidecars). It manages DataVolumes with its in-cluster ServiceAccount (a Role
  limited to that namespace, plus ``get persistentvolumes`` cluster-wide) and watches the tenant's
  PVCs through a kubeconfig made of a tenant ServiceAccount token (no expiry, least privilege).
- Tenant cluster: ``CSIDriver csi.kubevirt.io``, the node DaemonSet (privileged: it mounts block
  devices), ``driver-config``, the default StorageClass, and the controller's ServiceAccount.

Ref: kubevirt/csi-driver @27b52aa deploy/controller-infra/base/deploy.yaml,
deploy/infra-cluster-service-account.yaml, deploy/tenant/base/deploy.yaml (../shared/schemas/
kubevirt-csi); cmd/kubevirt-csi-driver (flags, INFRA_STORAGE_CLASS_ENFORCEMENT format).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

import versions
from components.core.common import MANAGED_BY, PRIVILEGED_AGENT_SKIPS, checkov_skips, yaml_text
from components.tenant.capi import namespace
from components.core.k8s_objects import register as k8s_object
from stacks.config import PlatformConfig, Tenant

DRIVER = "csi.kubevirt.io"
TENANT_NAMESPACE = "kubevirt-csi-driver"  # in the tenant cluster
CONFIG_MAP = "driver-config"
CONTROLLER_LABELS = {"app.kubernetes.io/name": "kubevirt-csi-controller",
                     "app.kubernetes.io/part-of": "kubevirt-csi-driver"}
NODE_LABELS = {"app.kubernetes.io/name": "kubevirt-csi-node", "app.kubernetes.io/part-of": "kubevirt-csi-driver"}
INFRA_SERVICE_ACCOUNT = "kubevirt-csi"  # management cluster, tenant namespace
TENANT_CONTROLLER_SA = "kubevirt-csi-controller"  # tenant cluster: identity of the remote controller
TENANT_CONTROLLER_TOKEN = "kubevirt-csi-controller-token"
TENANT_NODE_SA = "kubevirt-csi-node"
TENANT_KUBECONFIG_SECRET = "kubevirt-csi-tenant-kubeconfig"  # management cluster, key "value"
TENANT_KUBECONFIG_DIR = "/var/run/secrets/tenantcluster"
SOCKET_DIR = "/var/lib/csi/sockets/pluginproxy/"
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def infra_cluster_labels(tenant: Tenant) -> str:
    """Labels the controller puts on the DataVolumes it creates ('k=v' pairs, comma separated)."""
    return f"csi-driver/cluster={tenant.name}"


def storage_class_enforcement(cfg: PlatformConfig) -> str:
    """Tenants may only provision on the configured infra storage class, whatever StorageClass
    they write in their cluster (util.StorageClassEnforcement: allowList/allowAll/allowDefault)."""
    return yaml_text({"allowAll": False, "allowDefault": False,
                      "allowList": [cfg.infra_storage_class]})


def _meta(name: str, ns: str | None = None, labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**MANAGED_BY, **(labels or {})}, **extra}
    if ns is not None:
        meta["namespace"] = ns
    return meta


def _resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    # CPU limit at 10x the request: bounded, yet generous enough not to throttle attach/mount calls.
    cpu_limit = f"{int(cpu.removesuffix('m')) * 10}m" if cpu.endswith("m") else str(int(cpu) * 10)
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


# --------------------------------------------------------------------------------------------
# Management cluster (tenant namespace)
# --------------------------------------------------------------------------------------------

def infra_rules() -> list[dict[str, Any]]:
    """deploy/infra-cluster-service-account.yaml without the snapshot rule (no VolumeSnapshot
    support is installed for tenants), plus ``virtualmachineinstances/removevolume``: since
    kubevirt/csi-driver#184 (27b52aa) ControllerUnpublishVolume unplugs a volume from the VMI when
    its VM is already gone (a CAPI/CAPK teardown race), through that subresource
    (pkg/kubevirt/client.go RemoveVolumeFromVMI, a PUT, i.e. ``update``); the upstream deploy/
    Role was not updated with it. Nothing in the driver calls ``virtualmachineinstances/addvolume``
    (hot-plug goes through the VM, AddVolumeToVM), so that one is not granted."""
    return [
        {"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes"], "verbs": ["get", "create", "delete"]},
        {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstances", "virtualmachines"],
         "verbs": ["list", "get"]},
        {"apiGroups": ["subresources.kubevirt.io"],
         "resources": ["virtualmachines/addvolume", "virtualmachines/removevolume",
                       "virtualmachineinstances/removevolume"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "patch"]},
    ]


def infra_objects(cfg: PlatformConfig, tenant: Tenant) -> list[dict[str, Any]]:
    ns = namespace(cfg, tenant)
    cluster_role = f"{ns}-kubevirt-csi"  # cluster-scoped: one per tenant, so tenants stay independent
    sa_subject = [{"kind": "ServiceAccount", "name": INFRA_SERVICE_ACCOUNT, "namespace": ns}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(INFRA_SERVICE_ACCOUNT, ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta("kubevirt-csi", ns),
         "rules": infra_rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta("kubevirt-csi", ns),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubevirt-csi"},
         "subjects": sa_subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(cluster_role),
         "rules": [{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(cluster_role),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
         "subjects": sa_subject},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(CONFIG_MAP, ns),
         "data": {"infraClusterNamespace": ns, "infraClusterLabels": infra_cluster_labels(tenant),
                  "infraStorageClassEnforcement": storage_class_enforcement(cfg)}},
        controller_deployment(cfg, tenant),
    ]


def _config_env(key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": CONFIG_MAP, "key": key}
    if optional:
        ref["optional"] = True
    return {"valueFrom": {"configMapKeyRef": ref}}


def controller_deployment(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    images = versions.KUBEVIRT_CSI_IMAGES
    tenant_kubeconfig = f"{TENANT_KUBECONFIG_DIR}/value"
    mounts = [{"name": "socket-dir", "mountPath": SOCKET_DIR},
              {"name": "tenantcluster", "mountPath": TENANT_KUBECONFIG_DIR, "readOnly": True}]

    def sidecar(name: str, image: str, args: list[str]) -> dict[str, Any]:
        return {"name": name, "image": image, "args": args, "volumeMounts": mounts,
                "env": [{"name": "ADDRESS", "value": f"{SOCKET_DIR}csi.sock"}],
                "resources": _resources("10m", "32Mi", "128Mi"), "securityContext": RESTRICTED}

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("kubevirt-csi-controller", namespace(cfg, tenant), CONTROLLER_LABELS),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one controller at a time, no leader election
            "selector": {"matchLabels": dict(CONTROLLER_LABELS)},
            "template": {
                "metadata": {"labels": {**MANAGED_BY, **CONTROLLER_LABELS}},
                "spec": {
                    "serviceAccountName": INFRA_SERVICE_ACCOUNT,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                        "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "csi-driver",
                            "image": images["driver"],
                            "args": [
                                "--endpoint=$(CSI_ENDPOINT)",
                                "--infra-cluster-namespace=$(INFRACLUSTER_NAMESPACE)",
                                "--infra-cluster-labels=$(INFRACLUSTER_LABELS)",
                                f"--tenant-cluster-kubeconfig={tenant_kubeconfig}",
                                "--run-node-service=false",
                                "--run-controller-service=true",
                                "--v=3",
                            ],
                            "ports": [{"name": "healthz", "containerPort": 10301, "protocol": "TCP"}],
                            "env": [
                                {"name": "CSI_ENDPOINT", "value": f"unix://{SOCKET_DIR}csi.sock"},
                                {"name": "KUBE_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                {"name": "INFRACLUSTER_NAMESPACE", **_config_env("infraClusterNamespace")},
                                {"name": "INFRACLUSTER_LABELS", **_config_env("infraClusterLabels")},
                                {"name": "INFRA_STORAGE_CLASS_ENFORCEMENT",
                                 **_config_env("infraStorageClassEnforcement", optional=True)},
                            ],
                            "volumeMounts": mounts,
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "healthz"},
                                              "initialDelaySeconds": 10, "timeoutSeconds": 3, "periodSeconds": 10,
                                              "failureThreshold": 5},
                            "resources": _resources("10m", "64Mi", "256Mi"),
                            "securityContext": RESTRICTED,
                        },
                        sidecar("csi-provisioner", images["provisioner"], [
                            "--csi-address=$(ADDRESS)", "--default-fstype=ext4", f"--kubeconfig={tenant_kubeconfig}",
                            "--timeout=3m", "--retry-interval-max=1m", "--v=3"]),
                        sidecar("csi-attacher", images["attacher"], [
                            "--csi-address=$(ADDRESS)", f"--kubeconfig={tenant_kubeconfig}",
                            "--timeout=3m", "--retry-interval-max=1m", "--v=3"]),
                        sidecar("csi-resizer", images["resizer"], [
                            "--csi-address=$(ADDRESS)", f"--kubeconfig={tenant_kubeconfig}",
                            "--timeout=3m", "--handle-volume-inuse-error=false", "--v=3"]),
                        sidecar("csi-liveness-probe", images["livenessprobe"], [
                            f"--csi-address={SOCKET_DIR}csi.sock", "--probe-timeout=3s", "--health-port=10301"]),
                    ],
                    "volumes": [
                        {"name": "socket-dir", "emptyDir": {}},
                        {"name": "tenantcluster", "secret": {"secretName": TENANT_KUBECONFIG_SECRET,
                                                             "defaultMode": 0o440}},
                    ],
                },
            },
        },
    }


def tenant_kubeconfig(server: str, ca_data_b64: str, token_b64: str, user: str) -> str:
    """A kubeconfig for one ServiceAccount of a tenant (``ca_data_b64``/``token_b64`` as the token
    Secret's ``data`` holds them)."""
    token = base64.b64decode(token_b64).decode()
    return yaml_text({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tenant", "cluster": {"server": server, "certificate-authority-data": ca_data_b64}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "tenant", "context": {"cluster": "tenant", "user": user}}],
        "current-context": "tenant",
    })


# --------------------------------------------------------------------------------------------
# Tenant cluster
# --------------------------------------------------------------------------------------------

def controller_rules() -> list[dict[str, Any]]:
    """deploy/tenant/base/deploy.yaml kubevirt-csi-controller-cr, without OpenShift SCCs and
    snapshots."""
    return [
        {"apiGroups": [""], "resources": ["persistentvolumes"],
         "verbs": ["create", "delete", "get", "list", "watch", "update", "patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch", "update"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims/status"], "verbs": ["update", "patch"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["volumeattachments"],
         "verbs": ["get", "list", "watch", "update", "patch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["volumeattachments/status"],
         "verbs": ["get", "list", "watch", "update", "patch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses", "csinodes"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch", "create", "update", "patch"]},
        # csi-provisioner/attacher leader election is off, but the resizer reads leases.
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    ]


def node_rules() -> list[dict[str, Any]]:
    return [
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "update"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses", "csinodes"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "update", "patch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["volumeattachments"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch", "create", "update", "patch"]},
    ]


def _binding(name: str, role: str, sa: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}


def node_daemonset() -> dict[str, Any]:
    images = versions.KUBEVIRT_CSI_IMAGES
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta("kubevirt-csi-node", TENANT_NAMESPACE, NODE_LABELS,
                          annotations=checkov_skips(PRIVILEGED_AGENT_SKIPS)),
        "spec": {
            "selector": {"matchLabels": dict(NODE_LABELS)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {**MANAGED_BY, **NODE_LABELS}},
                "spec": {
                    "serviceAccountName": TENANT_NODE_SA,
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {
                            "name": "csi-driver",
                            "image": images["driver"],
                            # Mounts and formats hot-plugged disks: needs the host's /dev and kubelet dir.
                            "securityContext": {"privileged": True, "allowPrivilegeEscalation": True},
                            "args": ["--endpoint=unix:/csi/csi.sock", "--node-name=$(KUBE_NODE_NAME)",
                                     "--run-node-service=true", "--run-controller-service=false", "--v=3"],
                            "env": [{"name": "KUBE_NODE_NAME",
                                     "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                            "volumeMounts": [
                                {"name": "kubelet-dir", "mountPath": "/var/lib/kubelet",
                                 "mountPropagation": "Bidirectional"},
                                {"name": "plugin-dir", "mountPath": "/csi"},
                                {"name": "device-dir", "mountPath": "/dev"},
                                {"name": "udev", "mountPath": "/run/udev"},
                            ],
                            "ports": [{"name": "healthz", "containerPort": 10300, "protocol": "TCP"}],
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "healthz"},
                                              "initialDelaySeconds": 10, "timeoutSeconds": 3, "periodSeconds": 10,
                                              "failureThreshold": 5},
                            "resources": _resources("10m", "64Mi", "256Mi"),
                        },
                        {
                            "name": "csi-node-driver-registrar",
                            "image": images["registrar"],
                            "args": ["--csi-address=$(ADDRESS)",
                                     "--kubelet-registration-path=$(DRIVER_REG_SOCK_PATH)", "--v=3"],
                            "env": [{"name": "ADDRESS", "value": "/csi/csi.sock"},
                                    {"name": "DRIVER_REG_SOCK_PATH",
                                     "value": f"/var/lib/kubelet/plugins/{DRIVER}/csi.sock"}],
                            "volumeMounts": [{"name": "plugin-dir", "mountPath": "/csi"},
                                             {"name": "registration-dir", "mountPath": "/registration"}],
                            "resources": _resources("5m", "20Mi", "64Mi"),
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        },
                        {
                            "name": "csi-liveness-probe",
                            "image": images["livenessprobe"],
                            "args": ["--csi-address=/csi/csi.sock", "--probe-timeout=3s", "--health-port=10300"],
                            "volumeMounts": [{"name": "plugin-dir", "mountPath": "/csi"}],
                            "resources": _resources("5m", "20Mi", "64Mi"),
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        },
                    ],
                    "volumes": [
                        {"name": "kubelet-dir", "hostPath": {"path": "/var/lib/kubelet", "type": "Directory"}},
                        {"name": "plugin-dir", "hostPath": {"path": f"/var/lib/kubelet/plugins/{DRIVER}/",
                                                            "type": "DirectoryOrCreate"}},
                        {"name": "registration-dir", "hostPath": {"path": "/var/lib/kubelet/plugins_registry/",
                                                                  "type": "Directory"}},
                        {"name": "device-dir", "hostPath": {"path": "/dev", "type": "Directory"}},
                        {"name": "udev", "hostPath": {"path": "/run/udev"}},
                    ],
                },
            },
        },
    }


def tenant_objects(cfg: PlatformConfig, tenant: Tenant) -> list[dict[str, Any]]:
    ns = TENANT_NAMESPACE
    return [
        # The node plugin is privileged by nature; nothing else runs in this namespace.
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, labels={
            "pod-security.kubernetes.io/enforce": "privileged"})},
        # Default deny; the node plugin only talks to the tenant's API server (host network on
        # Talos control planes, so matched by port) and to cluster DNS.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("default-deny", ns),
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("allow-apiserver-and-dns", ns),
         "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
             {"ports": [{"protocol": "TCP", "port": 6443}]},
             {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                      "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
              "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
         ]}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": _meta(DRIVER),
         "spec": {"attachRequired": True, "podInfoOnMount": True, "fsGroupPolicy": "ReadWriteOnceWithFSType"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(CONFIG_MAP, ns),
         "data": {"infraClusterNamespace": namespace(cfg, tenant), "infraClusterLabels": infra_cluster_labels(tenant)}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": _meta(cfg.kubevirt_csi.tenant_storage_class,
                           annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
         "provisioner": DRIVER,
         "parameters": {"infraStorageClassName": cfg.infra_storage_class, "bus": "scsi"},
         "reclaimPolicy": "Delete",
         "allowVolumeExpansion": True,
         "volumeBindingMode": "WaitForFirstConsumer"},
        # Node plugin
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(TENANT_NODE_SA, ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta("kubevirt-csi-node"),
         "rules": node_rules()},
        _binding("kubevirt-csi-node", "kubevirt-csi-node", TENANT_NODE_SA, ns),
        node_daemonset(),
        # Identity of the controller running on the management cluster
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(TENANT_CONTROLLER_SA, ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta("kubevirt-csi-controller"), "rules": controller_rules()},
        _binding("kubevirt-csi-controller", "kubevirt-csi-controller", TENANT_CONTROLLER_SA, ns),
    ]


def token_secret(name: str, namespace_: str, service_account: str) -> dict[str, Any]:
    """A long-lived token of a ServiceAccount: valid as long as the Secret and the ServiceAccount
    exist (no silent expiry), revoked by deleting the Secret.
    Ref: kubernetes.io/docs/concepts/configuration/secret/#serviceaccount-token-secrets."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": _meta(name, namespace_, annotations={"kubernetes.io/service-account.name": service_account})}


# --------------------------------------------------------------------------------------------
# Component
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantStorageArgs:
    config: PlatformConfig
    tenant: Tenant
    tenant_provider: k8s.Provider
    tenant_server: pulumi.Output[str]  # API URL of the tenant (from its CAPI kubeconfig)
    cluster: pulumi.Resource  # the Cluster CR: tenant-side objects are deleted with it
    depends_on: Sequence[pulumi.Resource] = ()  # the tenant namespace (management side)
    cni_ready: Sequence[pulumi.Resource] = ()  # the tenant's CNI: the node plugin's pods need it


class TenantStorage(pulumi.ComponentResource):
    storage_class: str

    def __init__(self, name: str, args: TenantStorageArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:tenants:TenantClusterStorage", name, None, opts)
        cfg, tenant = args.config, args.tenant
        # Tenant side: through the tenant's provider; gone with the cluster, never blocking its deletion.
        remote = pulumi.ResourceOptions(parent=self, provider=args.tenant_provider, deleted_with=args.cluster)
        created: dict[str, pulumi.CustomResource] = {}
        for obj in tenant_objects(cfg, tenant):
            depends = [created["ns"]] if "ns" in created else []
            if obj["kind"] == "DaemonSet":
                depends += list(args.cni_ready)  # Pulumi awaits its rollout: pods need a CNI
            res = k8s_object(f"{name}-tenant-{obj['kind'].lower()}-{obj['metadata']['name']}", obj,
                             pulumi.ResourceOptions.merge(remote, pulumi.ResourceOptions(depends_on=depends)))
            if obj["kind"] == "Namespace":
                created["ns"] = res
            if obj["kind"] == "ServiceAccount" and obj["metadata"]["name"] == TENANT_CONTROLLER_SA:
                created["controller_sa"] = res
        token = k8s.core.v1.Secret(
            f"{name}-tenant-controller-token",
            **{k: v for k, v in token_secret(TENANT_CONTROLLER_TOKEN, TENANT_NAMESPACE, TENANT_CONTROLLER_SA).items()
               if k in ("metadata", "type")},
            opts=pulumi.ResourceOptions.merge(remote, pulumi.ResourceOptions(depends_on=[created["controller_sa"]])),
        )
        # Management side, in the tenant namespace.
        local = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(args.depends_on))
        kubeconfig = pulumi.Output.secret(pulumi.Output.all(args.tenant_server, token.data).apply(
            lambda a: _kubeconfig_or_unknown(a[0], a[1], "kubevirt-csi-controller")))
        secret = k8s.core.v1.Secret(
            f"{name}-tenant-kubeconfig",
            metadata=_meta(TENANT_KUBECONFIG_SECRET, namespace(cfg, tenant)),
            type="Opaque",
            string_data={"value": kubeconfig},
            opts=local,
        )
        for obj in infra_objects(cfg, tenant):
            extra = [secret] if obj["kind"] == "Deployment" else []
            k8s_object(f"{name}-infra-{obj['kind'].lower()}-{obj['metadata']['name']}", obj,
                       pulumi.ResourceOptions.merge(local, pulumi.ResourceOptions(depends_on=extra)))
        self.storage_class = cfg.kubevirt_csi.tenant_storage_class
        self.register_outputs({"storageClass": self.storage_class})


def _kubeconfig_or_unknown(server: Any, data: Any, user: str) -> Any:
    """The token Secret's data exists once the tenant's token controller filled it (the provider
    waits for that); until then — preview, first deployment — the kubeconfig stays unknown."""
    from pulumi.output import UNKNOWN

    if not server or not isinstance(data, dict) or not data.get("token") or not data.get("ca.crt"):
        return UNKNOWN
    return tenant_kubeconfig(server, data["ca.crt"], data["token"], user)
