"""Register rendered Kubernetes objects (plain dicts from the pure renderers) as Pulumi resources.

Renderers return manifests exactly as the API server takes them, so tests validate the very
dicts that are deployed. This module only maps ``apiVersion``/``kind`` to the typed
pulumi-kubernetes class (core kinds) or to ``CustomResource`` (CRD kinds), and translates the
top-level keys to the constructor's argument names (nested keys pass through in camelCase).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# Core kinds the platform renders itself. Anything else is a custom resource. Typed resources (not
# ``yaml.v2``, a remote component) so that they preview while a cluster's kubeconfig is still
# unknown, as a tenant's is before its control plane exists.
_TYPED: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("storage.k8s.io/v1", "CSIDriver"): k8s.storage.v1.CSIDriver,
    ("storage.k8s.io/v1", "StorageClass"): k8s.storage.v1.StorageClass,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def register(name: str, obj: Mapping[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """One Pulumi resource for one rendered object."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    cls = _TYPED.get((api_version, kind))
    if cls is None:
        extra = set(fields) - {"metadata", "spec"}
        if extra:
            raise ValueError(f"custom resource {kind} {name}: only metadata and spec are supported, got {sorted(extra)}")
        return k8s.apiextensions.CustomResource(
            name, api_version=api_version, kind=kind, metadata=fields.get("metadata"), spec=fields.get("spec"),
            opts=opts,
        )
    return cls(name, opts=opts, **{_snake(k): v for k, v in fields.items()})


# --- small renderers shared by components ------------------------------------------------------

def service_account_with_cluster_role(name: str, namespace: str, cluster_role: str,
                                      labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """A ServiceAccount and the ClusterRoleBinding granting it ``cluster_role`` (both named ``name``)."""
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)}},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name, "labels": dict(labels)},
         "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": cluster_role},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]
