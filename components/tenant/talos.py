"""Talos for tenant VMs: the Image Factory image they boot and the machine config patches
Cluster API's Talos providers apply (pure functions of the config model).

Tenant nodes boot the Talos **openstack** image: CAPK hands the bootstrap data over as a config
drive, which the openstack platform reads (CAPK#200, pkg/kubevirt/utils.go; nocloud does not).
"""

from __future__ import annotations

import hashlib
from typing import Any


from components.core.common import yaml_text
from components.core.contracts import (
    OIDC_GROUPS_CLAIM,
    OIDC_GROUPS_PREFIX,
    OIDC_USERNAME_CLAIM,
    OIDC_USERNAME_PREFIX,
    authentik_issuer_url,
    hostnames,
    tenant_oidc_slug,
)
from stacks.config import PlatformConfig, Tenant

IMAGE_FACTORY = "factory.talos.dev"
TENANT_PLATFORM = "openstack"  # the Talos platform of tenant VMs (disk image and installer)
# The guest agent lets KubeVirt report the VM's addresses and shut it down cleanly. VM images
# only: on bare metal it can make Talos reboot-loop (research notes §3).
TENANT_EXTENSIONS: tuple[str, ...] = ("siderolabs/qemu-guest-agent",)
# The link every tenant VM has: KubeVirt's virtio NIC on the pod network (CAPK templates' default).
TENANT_LINK_ALIAS = "net0"
KUBEPRISM_PORT = 7445  # Talos default since 1.6: Cilium reaches the API through it


# --------------------------------------------------------------------------------------------
# Image Factory
# --------------------------------------------------------------------------------------------

def schematic_yaml(extensions: tuple[str, ...] = TENANT_EXTENSIONS) -> str:
    """The canonical text of a schematic with only official extensions, byte for byte as the
    factory marshals it (gopkg.in/yaml.v3, 4-space indent), so its sha256 is the schematic ID.
    Ref: siderolabs/image-factory pkg/schematic/schematic.go (Marshal, ID)."""
    body = "".join(f"            - {ext}\n" for ext in extensions)
    return "customization:\n    systemExtensions:\n        officialExtensions:\n" + body


def schematic_id(extensions: tuple[str, ...] = TENANT_EXTENSIONS) -> str:
    return hashlib.sha256(schematic_yaml(extensions).encode()).hexdigest()


def disk_image_url(talos_version: str, extensions: tuple[str, ...] = TENANT_EXTENSIONS) -> str:
    """``openstack-amd64.raw.xz``: openstack's disk image suffix; CDI imports raw.xz over http
    without scratch space, once per Talos version (components.tenant.images).
    Ref: image-factory docs/api.md; talos pkg/machinery/platforms."""
    return f"https://{IMAGE_FACTORY}/image/{schematic_id(extensions)}/{talos_version}/{TENANT_PLATFORM}-amd64.raw.xz"


def installer_image(talos_version: str, extensions: tuple[str, ...] = TENANT_EXTENSIONS) -> str:
    """The **openstack** installer of the same schematic, so an upgrade keeps the extensions and the
    platform the VMs boot with: the legacy ``installer/`` path is the metal installer, which would
    reinstall the boot loader with the metal platform (``talos.platform=metal``) on every upgrade.
    Ref: siderolabs/image-factory docs/api.md ("installer Image": ``<platform>-installer/<schematic>``),
    internal/frontend/http/registry.go (getRequestedImage)."""
    return f"{IMAGE_FACTORY}/{TENANT_PLATFORM}-installer/{schematic_id(extensions)}:{talos_version}"


# --------------------------------------------------------------------------------------------
# Machine config patches (CABPT/CACPPT ``strategicPatches``)
# --------------------------------------------------------------------------------------------

def oidc_issuer(cfg: PlatformConfig, tenant: Tenant) -> str:
    return authentik_issuer_url(cfg, tenant_oidc_slug(tenant.name))


def api_server_args(cfg: PlatformConfig, tenant: Tenant) -> dict[str, str]:
    """kube-apiserver OIDC flags: the tenant's own Authentik application (client id == slug)."""
    return {
        "oidc-issuer-url": oidc_issuer(cfg, tenant),
        "oidc-client-id": tenant_oidc_slug(tenant.name),
        "oidc-username-claim": OIDC_USERNAME_CLAIM,
        "oidc-username-prefix": OIDC_USERNAME_PREFIX,
        "oidc-groups-claim": OIDC_GROUPS_CLAIM,
        "oidc-groups-prefix": OIDC_GROUPS_PREFIX,
    }


def network_patches(cfg: PlatformConfig, tenant: Tenant) -> list[dict[str, Any]]:
    """The VM's link MTU for nested encapsulation (tenant VXLAN inside the management cluster's).

    Talos 1.12 configures links with typed documents (``LinkAliasConfig`` + ``LinkConfig``,
    ``DHCPv4Config`` keeps the address from KubeVirt's DHCP). Every supported tenant minor
    (versions.TENANT_VERSION_MATRIX) has them.
    Ref: talos v1.12.11 website/content/v1.12/reference/configuration/network/linkaliasconfig.md.
    """
    mtu = cfg.cilium.tenant_mtu
    return [
        {"apiVersion": "v1alpha1", "kind": "LinkAliasConfig", "name": TENANT_LINK_ALIAS,
         "selector": {"match": 'link.driver == "virtio_net"'}},
        {"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": TENANT_LINK_ALIAS, "mtu": mtu},
        {"apiVersion": "v1alpha1", "kind": "DHCPv4Config", "name": TENANT_LINK_ALIAS},
    ]


def common_patch(tenant: Tenant) -> dict[str, Any]:
    """Every tenant node: Cilium replaces flannel and kube-proxy; KubePrism for Cilium."""
    return {
        "machine": {
            "install": {"image": installer_image(tenant.talos_version)},
            "features": {"kubePrism": {"enabled": True, "port": KUBEPRISM_PORT}},
        },
        "cluster": {
            "network": {
                "cni": {"name": "none"},
                "podSubnets": [tenant.pod_cidr],
                "serviceSubnets": [tenant.service_cidr],
            },
            "proxy": {"disabled": True},
        },
    }


def controlplane_patch(cfg: PlatformConfig, tenant: Tenant) -> dict[str, Any]:
    api = hostnames(cfg).tenant_api(tenant.name)
    return {
        "machine": {"certSANs": [api]},
        "cluster": {
            "apiServer": {"certSANs": [api], "extraArgs": api_server_args(cfg, tenant)},
        },
    }


def controlplane_patches(cfg: PlatformConfig, tenant: Tenant) -> list[dict[str, Any]]:
    return [common_patch(tenant), controlplane_patch(cfg, tenant), *network_patches(cfg, tenant)]


def worker_patches(cfg: PlatformConfig, tenant: Tenant) -> list[dict[str, Any]]:
    return [common_patch(tenant), *network_patches(cfg, tenant)]


def strategic_patches(patches: list[dict[str, Any]]) -> list[str]:
    """One YAML document per entry, as CABPT/CACPPT take them."""
    return [yaml_text(p) for p in patches]
