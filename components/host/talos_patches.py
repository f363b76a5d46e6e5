"""Talos machine-config patches and Image Factory schematics, as pure functions.

Every function returns plain dicts (one Talos config document each) from plain values or the
config model; components serialise them (``json.dumps``) into ``config_patches``. Nothing here
touches Pulumi, so the same helpers serve the management cluster (OVH bare metal) and the
tenant clusters (CABPT ``configPatches``): the CNI/proxy, OIDC, KubePrism, hostname and MTU
helpers take plain arguments, not the management config.

Schema: ``../shared/schemas/talos/config.schema.json`` (Talos v1.13.9). The v1alpha1 document
(no ``kind``) accepts partial patches; typed documents (``kind: UserVolumeConfig`` ...) need
``apiVersion`` + ``kind``. Tests validate every document with ``tests.helpers.schemas.validate_talos_patch``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from components.core.contracts import (
    KUBEPRISM_PORT,
    KUBERNETES_OIDC,
    LOCAL_VOLUME_NAME,
    KubernetesOidcClaims,
)
from stacks.config import ManagementCluster, ServerNode

Patch = dict[str, Any]

# Talos adds this label to control-plane nodes of contract >= 1.8; load balancers (Cilium LB IPAM
# / L2 announcements, MetalLB) skip labelled nodes. Ref: talos v1.13.9
# pkg/machinery/config/generate/init.go (AddExcludeFromExternalLoadBalancer); siderolabs/talos#9960.
EXCLUDE_FROM_EXTERNAL_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

# A strategic-merge directive of Talos' configpatcher (not a config value): removes the key.
# Ref: talos v1.13.9 pkg/machinery/config/configpatcher/testdata/patchdelete/strategic2.yaml.
DELETE = {"$patch": "delete"}

_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti)$")


# ---------------------------------------------------------------------------------------------
# Image Factory
# ---------------------------------------------------------------------------------------------

def schematic(extensions: Sequence[str], extra_kernel_args: Sequence[str] = ()) -> Patch:
    """An Image Factory schematic (``POST /schematics`` body); the factory rejects unknown fields.

    Ref: siderolabs/image-factory docs/api.md (customization.systemExtensions.officialExtensions).
    Keep ``siderolabs/qemu-guest-agent`` out of bare-metal schematics (it is for VM images).
    """
    customization: dict[str, Any] = {
        "systemExtensions": {"officialExtensions": sorted(set(extensions))},
    }
    if extra_kernel_args:
        customization["extraKernelArgs"] = list(extra_kernel_args)
    return {"customization": customization}


# ---------------------------------------------------------------------------------------------
# Generic helpers (management and tenant clusters)
# ---------------------------------------------------------------------------------------------

def talos_size(quantity: str) -> str:
    """Kubernetes quantity ('100Gi') -> Talos byte size ('100GiB', go-humanize IEC units)."""
    m = _QUANTITY.match(quantity)
    if not m:
        raise ValueError(f"'{quantity}' is not a size such as '100Gi'")
    return f"{m.group(1)}{m.group(2)}B"


def install_patch(disk: str, installer_image: str) -> Patch:
    """Install disk and installer image (the Image Factory ``<platform>-installer/<schematic>``
    image, so upgrades keep the schematic's extensions)."""
    if not disk.startswith("/dev/"):
        raise ValueError(f"install disk '{disk}' is not a device path such as /dev/nvme0n1")
    if not installer_image or "://" in installer_image:
        raise ValueError(f"installer image '{installer_image}' must be an image reference without scheme")
    return {"machine": {"install": {"disk": disk, "image": installer_image}}}


def cluster_network_patch(pod_subnets: Sequence[str], service_subnets: Sequence[str], cni: str = "none") -> Patch:
    """Pod/service ranges and the CNI Talos deploys ('none': Cilium is installed afterwards)."""
    if cni not in ("none", "flannel"):
        raise ValueError(f"cni '{cni}' is not 'none' or 'flannel'")
    return {
        "cluster": {
            "network": {
                "cni": {"name": cni},
                "podSubnets": list(pod_subnets),
                "serviceSubnets": list(service_subnets),
            }
        }
    }


def kube_proxy_disabled_patch() -> Patch:
    """No kube-proxy: Cilium's kube-proxy replacement serves Services."""
    return {"cluster": {"proxy": {"disabled": True}}}


def cilium_ready_patches(pod_subnets: Sequence[str], service_subnets: Sequence[str]) -> list[Patch]:
    """What Cilium needs from Talos. Ref: Talos docs "Deploying Cilium CNI" (cni: none, proxy disabled)."""
    return [cluster_network_patch(pod_subnets, service_subnets, cni="none"), kube_proxy_disabled_patch()]


def kubeprism_patch(port: int = KUBEPRISM_PORT) -> Patch:
    """KubePrism on localhost:<port>, which Cilium uses to reach the API without kube-proxy.
    On by default for contract >= 1.6; explicit here because Cilium depends on it."""
    return {"machine": {"features": {"kubePrism": {"enabled": True, "port": port}}}}


def apiserver_oidc_patch(issuer_url: str, client_id: str, claims: KubernetesOidcClaims = KUBERNETES_OIDC) -> Patch:
    """kube-apiserver trusts ID tokens of one OIDC application (Authentik's per-application issuer).

    The issuer must match the token's ``iss`` byte for byte (Authentik's ends with '/').
    Ref: kubernetes docs "Authenticating" (OpenID Connect tokens: --oidc-* flags; mutually
    exclusive with --authentication-config).
    """
    if not issuer_url.startswith("https://"):
        raise ValueError(f"OIDC issuer '{issuer_url}' must be an https URL (kube-apiserver refuses others)")
    if not client_id:
        raise ValueError("OIDC client id is empty")
    return {
        "cluster": {
            "apiServer": {
                "extraArgs": {
                    "oidc-issuer-url": issuer_url,
                    "oidc-client-id": client_id,
                    "oidc-username-claim": claims.username_claim,
                    "oidc-username-prefix": claims.username_prefix,
                    "oidc-groups-claim": claims.groups_claim,
                    "oidc-groups-prefix": claims.groups_prefix,
                }
            }
        }
    }


def cert_sans_patch(names: Iterable[str], *, control_plane: bool) -> Patch:
    """Extra SANs of the Talos API certificate (and, on control planes, of the kube-apiserver)."""
    sans = sorted(set(names))
    patch: Patch = {"machine": {"certSANs": sans}}
    if control_plane:
        patch["cluster"] = {"apiServer": {"certSANs": sans}}
    return patch


def scheduling_on_control_planes_patches() -> list[Patch]:
    """Workloads (and load-balanced traffic) on control planes: for clusters without workers.

    The second document deletes the label Talos puts on control planes, which would make
    load balancers skip the only nodes there are (siderolabs/talos#9960).
    """
    return [
        {"cluster": {"allowSchedulingOnControlPlanes": True}},
        {"machine": {"nodeLabels": {EXCLUDE_FROM_EXTERNAL_LB_LABEL: dict(DELETE)}}},
    ]


def node_labels_patch(labels: Mapping[str, str]) -> Patch:
    return {"machine": {"nodeLabels": {k: str(v) for k, v in sorted(labels.items())}}}


def hostname_patch(hostname: str, talos_version: str) -> Patch:
    """A static hostname: the ``HostnameConfig`` document from Talos 1.12 on, else the legacy field.

    Ref: talos v1.13.9 pkg/machinery/config/generate/stdpatches/stdpatches.go (WithStaticHostname).
    """
    if _minor(talos_version) >= (1, 12):
        return {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "off", "hostname": hostname}
    return {"machine": {"network": {"hostname": hostname}}}


def link_mtu_patch(link: str, mtu: int) -> Patch:
    """MTU of one link (``LinkConfig`` document, Talos >= 1.12), e.g. inside nested-encapsulation VMs."""
    if not 1280 <= mtu <= 9000:
        raise ValueError(f"MTU {mtu} is outside 1280-9000")
    return {"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": link, "mtu": mtu}


def user_volume_patch(name: str, size: str, disk_selector: str, filesystem: str = "xfs") -> Patch:
    """A local volume of a fixed size, mounted at /var/mnt/<name> (partition label u-<name>).

    Ref: talos v1.13.9 pkg/machinery/config/types/block/user_volume_config.go (name 1-34 chars
    [A-Za-z0-9-]); internal/.../volumeconfig/user_volumes.go (mount under /var/mnt).
    """
    if not re.match(r"^[A-Za-z0-9-]{1,34}$", name):
        raise ValueError(f"user volume name '{name}' must be 1-34 letters, digits or '-'")
    size_b = talos_size(size)
    return {
        "apiVersion": "v1alpha1",
        "kind": "UserVolumeConfig",
        "name": name,
        "volumeType": "partition",
        "provisioning": {"diskSelector": {"match": disk_selector}, "minSize": size_b, "maxSize": size_b},
        "filesystem": {"type": filesystem},
    }


def ephemeral_volume_patch(max_size: str) -> Patch:
    """Cap EPHEMERAL (/var), which otherwise grows over the whole system disk.
    Only honoured before the volume is first provisioned. Ref: Talos docs "System Volumes"."""
    return {
        "apiVersion": "v1alpha1",
        "kind": "VolumeConfig",
        "name": "EPHEMERAL",
        "provisioning": {"maxSize": talos_size(max_size)},
    }


def _minor(talos_version: str) -> tuple[int, int]:
    m = re.match(r"^v?(\d+)\.(\d+)\.", talos_version)
    if not m:
        raise ValueError(f"'{talos_version}' is not a Talos version such as v1.13.9")
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------------------------------------
# The management cluster
# ---------------------------------------------------------------------------------------------

def management_node_patches(
    mc: ManagementCluster,
    node: ServerNode,
    *,
    endpoint: str,
    oidc_issuer_url: str,
    oidc_client_id: str,
) -> list[Patch]:
    """Every patch of one management node except the install patch (its installer image is
    only known once the schematic exists: see :func:`install_patch`)."""
    control_plane = node.role == "controlplane"
    patches: list[Patch] = [
        hostname_patch(node.hostname, mc.machine_config_contract),
        *cilium_ready_patches([mc.pod_cidr], [mc.service_cidr]),
        kubeprism_patch(),
        cert_sans_patch([endpoint, node.address], control_plane=control_plane),
    ]
    if control_plane:
        patches.append(apiserver_oidc_patch(oidc_issuer_url, oidc_client_id))
        if not mc.workers:
            patches.extend(scheduling_on_control_planes_patches())
    labels = {**mc.node_labels, **node.labels}
    if labels:
        patches.append(node_labels_patch(labels))
    # CDI scratch space / local-path volumes run on every node that runs workloads.
    if not control_plane or not mc.workers:
        if mc.ephemeral_max_size:
            patches.append(ephemeral_volume_patch(mc.ephemeral_max_size))
        patches.append(user_volume_patch(LOCAL_VOLUME_NAME, mc.cdi_scratch_volume_size, mc.local_volume_disk_selector))
    return patches
