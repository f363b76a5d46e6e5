"""local-path-provisioner: node-local volumes on the Talos user volume, and the StorageClass
(``managementCluster.storageClass``, default ``local-path``) every volume of the management
cluster names: Bind9's zone, Vault's raft data, Authentik's PostgreSQL, CDI scratch space, tenant
VM disks and kubevirt-csi infra volumes.

A platform service of its own, built right after Cilium (``stacks/environment.py``): everything
that claims a volume waits for its Deployment and StorageClass, otherwise the claims stay Pending
and every wait after them times out. It keeps its original name ``virtualization-local-storage``
(it used to be a child of Virtualization) so that the URNs of its resources do not change; the
component itself carries an alias to its old parent.

Rendered from rancher/local-path-provisioner v0.0.37 deploy/local-path-storage.yaml (commit
49b2be8e), with: volumes under the Talos ``UserVolumeConfig`` mount (``/opt`` is read-only on
Talos), pinned images, resources and restrictive security contexts. The helper pods that create
and delete volume directories mount host paths, so the namespace is ``privileged``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

import versions
from components.core import network_policy as netpol
from components.core.common import MANAGED_BY
from components.core.contracts import LOCAL_PATH_HOST_DIR, LOCAL_PATH_STORAGE_CLASS
from stacks import facts
from stacks.config import PlatformConfig
from components.core.k8s_objects import register
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs

NAMESPACE = facts.LOCAL_STORAGE_NAMESPACE  # reserved against tenant namespaces (stacks/facts.py)
NAME = "local-path-provisioner"
SERVICE_ACCOUNT = "local-path-provisioner-service-account"
CONFIG_MAP = "local-path-config"
PROVISIONER = "rancher.io/local-path"
APP_LABELS = {"app": NAME}


def _meta(name: str, namespaced: bool = True, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**MANAGED_BY, **APP_LABELS}, **extra}
    if namespaced:
        meta["namespace"] = NAMESPACE
    return meta


def helper_pod() -> dict[str, Any]:
    """Template of the pods that run the setup/teardown scripts on the node (upstream
    helperPod.yaml with a pinned image and resources)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "helper-pod",
                "image": versions.LOCAL_PATH_HELPER_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
            }],
        },
    }


def provisioner_config() -> dict[str, Any]:
    # Ref: local-path-provisioner README "Configuration": nodePathMap; every node keeps its
    # volumes on the user volume the Talos machine config mounts (components.core.contracts).
    return {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [LOCAL_PATH_HOST_DIR]}]}


def deploys_local_storage(cfg: PlatformConfig) -> bool:
    """local-path-provisioner needs the Talos user volume: on by default on Talos only."""
    return cfg.deploys_local_storage


def manifests(storage_class_name: str = LOCAL_PATH_STORAGE_CLASS) -> list[dict[str, Any]]:
    """Every object of the provisioner except its namespace."""
    rbac = "rbac.authorization.k8s.io/v1"
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]
    drop_all = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(SERVICE_ACCOUNT)},
        {"apiVersion": rbac, "kind": "Role", "metadata": _meta("local-path-provisioner-role"),
         "rules": [{"apiGroups": [""], "resources": ["pods"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]}]},
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": _meta("local-path-provisioner-role", namespaced=False),
         "rules": [
             {"apiGroups": [""], "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
              "verbs": ["get", "list", "watch"]},
             {"apiGroups": [""], "resources": ["persistentvolumes"],
              "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
             {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
             {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
         ]},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": _meta("local-path-provisioner-bind"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "local-path-provisioner-role"},
         "subjects": subject},
        {"apiVersion": rbac, "kind": "ClusterRoleBinding",
         "metadata": _meta("local-path-provisioner-bind", namespaced=False),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "local-path-provisioner-role"},
         "subjects": subject},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(CONFIG_MAP), "data": {
            "config.json": json.dumps(provisioner_config(), indent=2, sort_keys=True),
            "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"',
            "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"',
            "helperPod.yaml": yaml.safe_dump(helper_pod(), sort_keys=False),
        }},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(NAME), "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(APP_LABELS)},
            "template": {
                "metadata": {"labels": dict(APP_LABELS)},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    # The provisioner only talks to the API server; the host work is done by
                    # the helper pods, so it runs unprivileged.
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": NAME,
                        "image": versions.LOCAL_PATH_PROVISIONER_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["local-path-provisioner", "--debug", "start", "--config", "/etc/config/config.json"],
                        "ports": [{"name": "health", "containerPort": 8080, "protocol": "TCP"}],
                        "startupProbe": {"httpGet": {"path": "/health", "port": "health"},
                                         "initialDelaySeconds": 5, "periodSeconds": 5, "failureThreshold": 12},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": "health"},
                                          "initialDelaySeconds": 10, "periodSeconds": 10},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "health"},
                                           "initialDelaySeconds": 5, "periodSeconds": 5},
                        "env": [
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"},
                            {"name": "HEALTH_PORT", "value": "8080"},
                        ],
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                        "securityContext": drop_all,
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config/"},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "config-volume", "configMap": {"name": CONFIG_MAP}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        }},
        storage_class(storage_class_name),
        netpol.allow_kube_apiserver_egress(NAMESPACE, APP_LABELS, **netpol.APISERVER_EGRESS_NAMED_AS_BEFORE),
    ]


def storage_class(name: str = LOCAL_PATH_STORAGE_CLASS) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": name,
            "labels": dict(MANAGED_BY),
            # Not the default: every claim the program makes names it (PlatformConfig.storage_class),
            # and a claim nobody named on purpose should not land on node-local disk.
            "annotations": {"storageclass.kubernetes.io/is-default-class": "false"},
        },
        "provisioner": PROVISIONER,
        # A volume exists on one node only: bind where the consumer is scheduled.
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }


@dataclass(frozen=True)
class LocalStorageArgs:
    storage_class: str = LOCAL_PATH_STORAGE_CLASS  # managementCluster.storageClass
    depends_on: Sequence[pulumi.Resource] = ()


class LocalStorage(pulumi.ComponentResource):
    storage_class: pulumi.Resource
    storage_class_name: str
    deployment: pulumi.Resource
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: LocalStorageArgs, provider: k8s.Provider,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:storage:LocalStorage", name, None, opts)
        ns = PlatformNamespace(
            f"{name}-namespace",
            PlatformNamespaceArgs(name=NAMESPACE, pod_security="privileged", depends_on=args.depends_on),
            provider, opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ns])
        created: dict[str, pulumi.Resource] = {}
        for obj in manifests(args.storage_class):
            role = f"{obj['kind'].lower()}-{obj['metadata']['name']}"
            deps = [ns] if obj["kind"] != "Deployment" else [ns, *created.values()]
            created[role] = register(f"{name}-{role}", obj, pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=deps)))
        self.deployment = created[f"deployment-{NAME}"]
        self.storage_class = created[f"storageclass-{args.storage_class}"]
        self.storage_class_name = args.storage_class
        # What a claim waits for: the class exists and the provisioner runs.
        self.ready: list[pulumi.Resource] = [self.storage_class, self.deployment]
        self.register_outputs({"storageClass": args.storage_class})
