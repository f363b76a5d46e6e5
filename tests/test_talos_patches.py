"""The pure Talos patch and schematic functions, validated against the Talos v1.13 config schema."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.host import talos_patches as tp
from components.core.contracts import KUBEPRISM_PORT, KUBERNETES_OIDC, LOCAL_VOLUME_HOST_PATH, LOCAL_VOLUME_NAME, authentik_issuer_url
from stacks.config import PlatformConfig
from tests.helpers.factories import base_raw, config
from tests.helpers.schemas import validate_talos_patch

ENDPOINT = "weebo4cp.example.org"


def _nodes(cps: int, workers: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(cps + workers):
        out.append({
            "hostname": f"node-{i + 1}",
            "ovhServiceName": f"ns{100 + i}.ip-10-0-0.eu",
            "address": f"51.0.0.{10 + i}",
            "role": "controlplane" if i < cps else "worker",
        })
    return out


def cluster_config(cps: int = 1, workers: int = 0, **mc_overrides: Any) -> PlatformConfig:
    raw = base_raw()
    raw["managementCluster"]["nodes"] = _nodes(cps, workers)
    raw["managementCluster"].update(mc_overrides)
    return config(raw)


def node_patches(cfg: PlatformConfig, hostname: str) -> list[dict[str, Any]]:
    mc = cfg.management_cluster
    node = next(n for n in mc.nodes if n.hostname == hostname)
    return tp.management_node_patches(
        mc, node, endpoint=ENDPOINT,
        oidc_issuer_url=authentik_issuer_url(cfg, mc.name), oidc_client_id=mc.name,
    )


def without_delete_directives(doc: Any) -> Any:
    """The document minus configpatcher ``$patch: delete`` entries (directives, not config values)."""
    if isinstance(doc, dict):
        return {k: without_delete_directives(v) for k, v in doc.items() if v != tp.DELETE}
    return doc


def merged(patches: list[dict[str, Any]]) -> dict[str, Any]:
    """The v1alpha1 documents deep-merged (enough to read what a node gets)."""
    out: dict[str, Any] = {}

    def merge(a: dict[str, Any], b: dict[str, Any]) -> None:
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                merge(a[k], v)
            else:
                a[k] = copy.deepcopy(v)

    for p in patches:
        if "kind" not in p:
            merge(out, p)
    return out


def typed(patches: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [p for p in patches if p.get("kind") == kind]


# --- schema ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cps,workers", [(1, 0), (3, 0), (3, 2), (1, 1)])
def test_every_patch_document_validates_against_the_talos_schema(cps, workers):
    cfg = cluster_config(cps, workers, ephemeralMaxSize="200Gi", nodeLabels={"weebosi.fr/site": "gra"})
    for node in cfg.management_cluster.nodes:
        for patch in node_patches(cfg, node.hostname) + [tp.install_patch("/dev/nvme0n1", "factory.talos.dev/metal-installer/abc:v1.13.9")]:
            json.dumps(patch)  # serialisable as the provider receives it
            validate_talos_patch(without_delete_directives(patch))


def test_the_only_delete_directive_removes_the_exclude_from_load_balancers_label():
    cfg = cluster_config(1)
    directives = [p for p in node_patches(cfg, "node-1") if p != without_delete_directives(p)]
    assert directives == [{"machine": {"nodeLabels": {tp.EXCLUDE_FROM_EXTERNAL_LB_LABEL: {"$patch": "delete"}}}}]


def test_schema_rejects_a_broken_patch_so_validation_means_something():
    with pytest.raises(AssertionError, match="proxy"):
        validate_talos_patch({"cluster": {"proxy": {"disable": True}}})
    with pytest.raises(AssertionError):
        validate_talos_patch(tp.node_labels_patch({"a": "b"}) | {"machine": {"nodeLabels": {"a": True}}})


# --- Cilium-ready ----------------------------------------------------------------------------

def test_cilium_ready_no_cni_no_kube_proxy_and_kubeprism():
    cfg = cluster_config(1)
    m = merged(node_patches(cfg, "node-1"))
    assert m["cluster"]["network"]["cni"] == {"name": "none"}
    assert m["cluster"]["network"]["podSubnets"] == [cfg.management_cluster.pod_cidr]
    assert m["cluster"]["network"]["serviceSubnets"] == [cfg.management_cluster.service_cidr]
    assert m["cluster"]["proxy"] == {"disabled": True}
    assert m["machine"]["features"]["kubePrism"] == {"enabled": True, "port": KUBEPRISM_PORT}


def test_generic_network_helpers_for_tenants():
    assert tp.cilium_ready_patches(["10.128.0.0/16"], ["10.129.0.0/16"])[0]["cluster"]["network"]["cni"]["name"] == "none"
    with pytest.raises(ValueError):
        tp.cluster_network_patch(["10.0.0.0/16"], ["10.1.0.0/16"], cni="calico")
    link = tp.link_mtu_patch("eth0", 1350)
    validate_talos_patch(link)
    assert link == {"apiVersion": "v1alpha1", "kind": "LinkConfig", "name": "eth0", "mtu": 1350}
    with pytest.raises(ValueError):
        tp.link_mtu_patch("eth0", 600)


# --- OIDC ------------------------------------------------------------------------------------

def test_apiserver_trusts_the_authentik_application_issuer_exactly():
    cfg = cluster_config(1)
    args = merged(node_patches(cfg, "node-1"))["cluster"]["apiServer"]["extraArgs"]
    issuer = authentik_issuer_url(cfg, "weebo4cp")
    assert issuer.endswith("/application/o/weebo4cp/")
    assert args == {
        "oidc-issuer-url": issuer,
        "oidc-client-id": "weebo4cp",
        "oidc-username-claim": KUBERNETES_OIDC.username_claim,
        "oidc-username-prefix": KUBERNETES_OIDC.username_prefix,
        "oidc-groups-claim": KUBERNETES_OIDC.groups_claim,
        "oidc-groups-prefix": KUBERNETES_OIDC.groups_prefix,
    }


def test_oidc_only_on_control_planes_and_https_only():
    cfg = cluster_config(1, 1)
    worker = merged(node_patches(cfg, "node-2"))
    assert "apiServer" not in worker.get("cluster", {})
    with pytest.raises(ValueError, match="https"):
        tp.apiserver_oidc_patch("http://auth.example.org/application/o/x/", "x")
    with pytest.raises(ValueError):
        tp.apiserver_oidc_patch("https://auth.example.org/application/o/x/", "")


def test_cert_sans_name_the_endpoint():
    cfg = cluster_config(1)
    m = merged(node_patches(cfg, "node-1"))
    assert ENDPOINT in m["machine"]["certSANs"] and "51.0.0.10" in m["machine"]["certSANs"]
    assert ENDPOINT in m["cluster"]["apiServer"]["certSANs"]


# --- single node vs HA -----------------------------------------------------------------------

@pytest.mark.parametrize("cps", [1, 3])
def test_without_workers_control_planes_run_workloads_and_take_lb_traffic(cps):
    cfg = cluster_config(cps)
    for node in cfg.management_cluster.nodes:
        patches = node_patches(cfg, node.hostname)
        m = merged(patches)
        assert m["cluster"]["allowSchedulingOnControlPlanes"] is True
        assert m["machine"]["nodeLabels"][tp.EXCLUDE_FROM_EXTERNAL_LB_LABEL] == {"$patch": "delete"}
        # The workloads' local volume lives where the workloads run.
        assert len(typed(patches, "UserVolumeConfig")) == 1


def test_with_workers_control_planes_stay_dedicated():
    cfg = cluster_config(3, 2)
    for host in ("node-1", "node-2", "node-3"):
        patches = node_patches(cfg, host)
        m = merged(patches)
        assert "allowSchedulingOnControlPlanes" not in m["cluster"]
        assert tp.EXCLUDE_FROM_EXTERNAL_LB_LABEL not in m["machine"].get("nodeLabels", {})
        assert typed(patches, "UserVolumeConfig") == []
    for host in ("node-4", "node-5"):
        patches = node_patches(cfg, host)
        assert "allowSchedulingOnControlPlanes" not in merged(patches).get("cluster", {})
        assert len(typed(patches, "UserVolumeConfig")) == 1


# --- volumes, labels, hostname, install ---------------------------------------------------------

def test_cdi_scratch_volume_size_and_mount_path():
    cfg = cluster_config(1, cdiScratchVolumeSize="250Gi", localVolumeDiskSelector="disk.transport == 'nvme' && !system_disk")
    [vol] = typed(node_patches(cfg, "node-1"), "UserVolumeConfig")
    assert vol["name"] == LOCAL_VOLUME_NAME
    assert LOCAL_VOLUME_HOST_PATH == f"/var/mnt/{vol['name']}"
    assert vol["provisioning"] == {
        "diskSelector": {"match": "disk.transport == 'nvme' && !system_disk"},
        "minSize": "250GiB",
        "maxSize": "250GiB",
    }
    assert typed(node_patches(cfg, "node-1"), "VolumeConfig") == []


def test_ephemeral_cap_only_when_configured():
    cfg = cluster_config(1, ephemeralMaxSize="300Gi", localVolumeDiskSelector="system_disk")
    [eph] = typed(node_patches(cfg, "node-1"), "VolumeConfig")
    assert eph == {"apiVersion": "v1alpha1", "kind": "VolumeConfig", "name": "EPHEMERAL", "provisioning": {"maxSize": "300GiB"}}


def test_local_volume_on_the_system_disk_needs_an_ephemeral_cap():
    from stacks.config import ConfigError

    with pytest.raises(ConfigError, match="ephemeralMaxSize"):
        cluster_config(1, localVolumeDiskSelector="system_disk")


def test_node_labels_merge_cluster_and_node():
    raw = base_raw()
    raw["managementCluster"]["nodeLabels"] = {"weebosi.fr/site": "gra", "tier": "infra"}
    raw["managementCluster"]["nodes"][0]["labels"] = {"tier": "storage"}
    cfg = config(raw)
    labels = merged(node_patches(cfg, "node-1"))["machine"]["nodeLabels"]
    assert labels["weebosi.fr/site"] == "gra" and labels["tier"] == "storage"


def test_hostname_document_by_talos_version():
    assert tp.hostname_patch("node-1", "v1.13.9") == {
        "apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "off", "hostname": "node-1"}
    assert tp.hostname_patch("node-1", "v1.11.6") == {"machine": {"network": {"hostname": "node-1"}}}
    cfg = cluster_config(1)
    assert typed(node_patches(cfg, "node-1"), "HostnameConfig")[0]["hostname"] == "node-1"


def test_install_patch():
    assert tp.install_patch("/dev/sda", "factory.talos.dev/metal-installer/abc:v1.13.9") == {
        "machine": {"install": {"disk": "/dev/sda", "image": "factory.talos.dev/metal-installer/abc:v1.13.9"}}}
    with pytest.raises(ValueError):
        tp.install_patch("sda", "factory.talos.dev/metal-installer/abc:v1.13.9")
    with pytest.raises(ValueError):
        tp.install_patch("/dev/sda", "https://factory.talos.dev/metal-installer/abc:v1.13.9")


def test_sizes():
    assert tp.talos_size("100Gi") == "100GiB"
    assert tp.talos_size("2Ti") == "2TiB"
    with pytest.raises(ValueError):
        tp.talos_size("100G")
    with pytest.raises(ValueError):
        tp.user_volume_patch("a" * 35, "1Gi", "!system_disk")


# --- schematic -------------------------------------------------------------------------------

def test_schematic_lists_the_configured_extensions_only():
    cfg = cluster_config(1, systemExtensions=["siderolabs/intel-ucode", "siderolabs/amd-ucode"])
    doc = tp.schematic(cfg.management_cluster.system_extensions)
    assert doc == {"customization": {"systemExtensions": {"officialExtensions": ["siderolabs/amd-ucode", "siderolabs/intel-ucode"]}}}
    assert "siderolabs/qemu-guest-agent" not in json.dumps(tp.schematic(config().management_cluster.system_extensions))
    assert tp.schematic([], ["net.ifnames=0"])["customization"]["extraKernelArgs"] == ["net.ifnames=0"]
