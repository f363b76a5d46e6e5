"""Fixed facts of the platform that config validation checks stack files against and components
build from: the namespaces the platform creates, the NetBird groups and the Authentik identity it
owns, and the rule of one upgrade step.

Below the config model (``stacks.config`` imports this module; components import it too) and
above nothing: it imports no part of the program, so validation never reaches up into a
component to learn a name (``tests/test_layering.py``). The dynamic providers that use the
upgrade rule import it from here when their provider process loads them.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------------------------
# Namespaces on the management cluster
# ---------------------------------------------------------------------------------------------

KUBERNETES_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# One namespace per platform service (each component's NAMESPACE is taken from here).
ARGOCD_NAMESPACE = "argocd"
AUTHENTIK_NAMESPACE = "authentik"
BACKUPS_NAMESPACE = "backups"
CAPI_IMAGES_NAMESPACE = "capi-images"  # golden images of the tenant VMs (components/tenant/images.py)
CAPI_OPERATOR_NAMESPACE = "capi-operator-system"
CDI_NAMESPACE = "cdi"
CERT_MANAGER_NAMESPACE = "cert-manager"
CILIUM_NAMESPACE = "cilium"
DNS_NAMESPACE = "dns"
KUBEVIRT_NAMESPACE = "kubevirt"
LOCAL_STORAGE_NAMESPACE = "local-path-storage"
NETBIRD_NAMESPACE = "netbird"
TRAEFIK_NAMESPACE = "traefik"
VAULT_NAMESPACE = "vault"

# Cluster API providers, each in its own namespace (components/clusters/cluster_api.py PROVIDERS).
CAPI_CORE_NAMESPACE = "capi-system"
CAPK_NAMESPACE = "capk-system"
CABPT_NAMESPACE = "cabpt-system"
CACPPT_NAMESPACE = "cacppt-system"

SERVICE_NAMESPACES = (
    ARGOCD_NAMESPACE, AUTHENTIK_NAMESPACE, BACKUPS_NAMESPACE, CAPI_IMAGES_NAMESPACE, CAPI_OPERATOR_NAMESPACE,
    CDI_NAMESPACE, CERT_MANAGER_NAMESPACE, CILIUM_NAMESPACE, DNS_NAMESPACE, KUBEVIRT_NAMESPACE,
    LOCAL_STORAGE_NAMESPACE, NETBIRD_NAMESPACE, TRAEFIK_NAMESPACE, VAULT_NAMESPACE,
    CAPI_CORE_NAMESPACE, CAPK_NAMESPACE, CABPT_NAMESPACE, CACPPT_NAMESPACE,
)


def platform_namespaces() -> frozenset[str]:
    """Every namespace the platform creates on the management cluster (the backups namespace
    too when backups are off: turning them on later must not meet a tenant there), and
    Kubernetes' own."""
    return frozenset((*KUBERNETES_NAMESPACES, *SERVICE_NAMESPACES))


# ---------------------------------------------------------------------------------------------
# Identities the platform owns
# ---------------------------------------------------------------------------------------------

# The program's own Authentik API identity (components/authentik_token.py): a service account and
# a group of this name.
AUTHENTIK_API_SERVICE_ACCOUNT = "pulumi-admin"


def netbird_routers_group(cluster: str) -> str:
    """NetBird group of a cluster's routing peers (its setup key puts new peers in it)."""
    return f"{cluster}-routers"


def netbird_resources_group(cluster: str) -> str:
    """NetBird group of a cluster's network resources: the destination policies name."""
    return f"{cluster}-services"


def netbird_declared_groups(groups: list[str] | tuple[str, ...], cluster: str) -> list[str]:
    """Every NetBird group the platform manages, in a stable order: the configured groups, then
    the management cluster's routers and services groups."""
    out = list(dict.fromkeys(groups))
    for g in (netbird_routers_group(cluster), netbird_resources_group(cluster)):
        if g not in out:
            out.append(g)
    return out


# ---------------------------------------------------------------------------------------------
# One upgrade step
# ---------------------------------------------------------------------------------------------

_TALOS = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_K8S = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def parse_version(version: str, kind: str = "talos") -> tuple[int, int, int]:
    m = (_TALOS if kind == "talos" else _K8S).match(version)
    if not m:
        raise ValueError(f"'{version}' is not an exact {'Talos' if kind == 'talos' else 'Kubernetes'} version")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def step_problem(current: str, target: str, kind: str, *, allow_downgrade: bool = False) -> str | None:
    """Why ``current -> target`` is not one allowed upgrade step, or None.

    Talos: "this migration is only tested between adjacent minor releases ... always upgrade to
    the latest patch release of all intermediate minor releases" (Talos docs, "Upgrading Talos
    Linux", Supported upgrade paths). Kubernetes: one minor at a time (version skew policy;
    ``talosctl upgrade-k8s`` refuses other paths: talos v1.13.9 pkg/cluster/kubernetes/
    talos_managed.go Upgrade, ``options.Path.IsSupported()``). Downgrades are refused too: a
    Talos rollback is ``talosctl rollback`` (docs/operations/upgrades.md), not a config edit.
    """
    name = "Talos" if kind == "talos" else "Kubernetes"
    cur, tgt = parse_version(current, kind), parse_version(target, kind)
    if tgt < cur:
        if allow_downgrade:
            return None  # recording a rollback done with talosctl (docs/operations/upgrades.md)
        return (f"{name} {target} is older than {current}: downgrades are not config edits "
                "(see docs/operations/upgrades.md, Rolling back)")
    if tgt[0] != cur[0] or tgt[1] > cur[1] + 1:
        nxt = f"{cur[0]}.{cur[1] + 1}"
        return (f"{name} {current} -> {target} skips a minor release: upgrade one minor at a time, "
                f"first to the latest {nxt} patch release")
    return None


