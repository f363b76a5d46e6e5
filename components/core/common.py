"""Small helpers shared by the components: Helm releases from the pinned chart specs, and the
resource options of irreplaceable things."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

import versions


def yaml_text(doc: Any, *, sort_keys: bool = True) -> str:
    """``yaml.safe_dump(doc)`` through libyaml's emitter when PyYAML has it, several times faster
    for documents rendered once per tenant. libyaml may lay out a long scalar differently from
    PyYAML's own emitter; the document read back is the same (tested)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(doc, Dumper=dumper, sort_keys=sort_keys, default_flow_style=False)


# Labels every object the platform renders carries, so `kubectl get -l` finds them.
MANAGED_BY = {"app.kubernetes.io/managed-by": "weebo-platform"}


def helm_release(
    name: str,
    chart: str,
    namespace: pulumi.Input[str],
    values: Mapping[str, Any] | pulumi.Input[Mapping[str, Any]],
    *,
    parent: pulumi.Resource,
    provider: k8s.Provider,
    depends_on: Sequence[pulumi.Resource] = (),
    skip_crds: bool = False,
    timeout: int = 600,
    retain_on_delete: bool = False,
) -> k8s.helm.v3.Release:
    """A Helm release of a chart pinned in ``versions.CHARTS``.

    ``helm.v3.Release`` rather than ``helm.v4.Chart``: it keeps chart hooks (pulumi-kubernetes#3284)
    and, unlike the v4 remote component, it previews while the cluster's kubeconfig is still
    unknown (first preview of a new environment). The price is one opaque diff per release, which
    the offline plan makes readable by writing each release's values.
    """
    spec = versions.CHARTS[chart]
    return k8s.helm.v3.Release(
        name,
        k8s.helm.v3.ReleaseArgs(
            name=name,
            chart=spec.reference,
            version=spec.version,
            repository_opts=None if spec.is_oci else k8s.helm.v3.RepositoryOptsArgs(repo=spec.repo),
            namespace=namespace,
            values=values,
            skip_crds=skip_crds,
            atomic=True,
            cleanup_on_fail=True,
            wait_for_jobs=True,
            timeout=timeout,
            max_history=10,
        ),
        opts=pulumi.ResourceOptions(
            parent=parent, provider=provider, depends_on=list(depends_on), retain_on_delete=retain_on_delete or None
        ),
    )


def irreplaceable(**kwargs: Any) -> pulumi.ResourceOptions:
    """Options for state whose loss is a disaster: protected and kept if dropped from the program."""
    return pulumi.ResourceOptions(protect=True, retain_on_delete=True, **kwargs)


def checkov_skips(reasons: dict[str, str]) -> dict[str, str]:
    """Annotations that suppress checkov checks on one object, each with the reason it must be so.

    Ref: checkov docs "Suppressing and skipping policies" (Kubernetes: checkov.io/skipN annotations).
    """
    return {f"checkov.io/skip{i}": f"{check}={why}" for i, (check, why) in enumerate(sorted(reasons.items()), 1)}


# A privileged host agent (CSI node plugin, VPN router): what checkov flags, and why it must be so.
PRIVILEGED_AGENT_SKIPS = {
    "CKV_K8S_16": "privileged by nature: mounts block devices / creates network interfaces on the host",
    "CKV_K8S_20": "a privileged container implies privilege escalation",
    "CKV_K8S_23": "root is required to mount filesystems and manage interfaces",
    "CKV_K8S_28": "a privileged container holds every capability, NET_RAW included",
}
