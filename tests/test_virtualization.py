"""KubeVirt, CDI and local-path storage: CRs vs upstream schemas, the deploy-time manifest install,
and the order tenants rely on."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import versions
from components.virtualization import cdi
from components.virtualization import kubevirt
from components.virtualization import local_storage
from components.core import release_manifest
from components.core.contracts import LOCAL_PATH_HOST_DIR, LOCAL_PATH_STORAGE_CLASS
from components.core.namespace import PRIVILEGED_NAMESPACES
from components.virtualization.local_storage import deploys_local_storage
from offline.mocks import contains_secret
from offline.plan import write_plan
from tests.helpers.factories import base_plan, base_raw, config, plan
from tests.helpers.schemas import validate_custom_resource


@pytest.fixture(scope="module")
def prod_plan():
    return base_plan()  # shared: planned once per test process


def _one(monitor, type_: str, name: str):
    found = [r for r in monitor.of_type(type_) if r.name == name]
    assert len(found) == 1, f"{len(found)} {type_} named {name}"
    return found[0]


# --- CRs against the upstream schemas --------------------------------------------------------

@pytest.mark.parametrize("emulation", [False, True])
def test_kubevirt_cr_matches_the_v1_9_crd_and_enables_hotplug(emulation):
    cfg = config(base_raw(kubevirt={"useEmulation": emulation}))
    cr = kubevirt.kubevirt_cr(cfg)
    validate_custom_resource(cr)
    dev = cr["spec"]["configuration"]["developerConfiguration"]
    assert "HotplugVolumes" in dev["featureGates"]
    assert dev["useEmulation"] is emulation
    assert cr["spec"]["uninstallStrategy"] == "BlockUninstallIfWorkloadsExist"
    assert cr["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Available"


def test_cdi_cr_matches_the_swagger_and_uses_the_scratch_class():
    # An override is only valid where the program creates no StorageClass of its own.
    raw = base_raw(kubevirt={"cdiScratchStorageClass": "fast-scratch", "localPathProvisioner": False})
    raw["managementCluster"]["declaredStorageClasses"] = ["local-path", "fast-scratch"]
    cfg = config(raw)
    cr = cdi.cdi_cr(cfg)
    validate_custom_resource(cr)
    assert cr["spec"]["config"]["scratchSpaceStorageClass"] == "fast-scratch"
    assert "namespace" not in cr["metadata"]  # cdis.cdi.kubevirt.io is cluster-scoped


def test_the_cr_validation_is_strict_enough_to_catch_a_typo():
    cr = copy.deepcopy(cdi.cdi_cr(config()))
    cr["spec"]["config"]["scratchSpaceStorageclass"] = cr["spec"]["config"].pop("scratchSpaceStorageClass")
    with pytest.raises(AssertionError, match="scratchSpaceStorageclass"):
        validate_custom_resource(cr)
    kv = copy.deepcopy(kubevirt.kubevirt_cr(config()))
    kv["spec"]["configuration"]["developerConfiguration"]["useEmulation"] = "yes"
    with pytest.raises(AssertionError):
        validate_custom_resource(kv)


def test_cilium_policies_match_the_cilium_schema():
    for obj in [*kubevirt.network_policies(), *local_storage.manifests()]:
        if obj["kind"] == "CiliumNetworkPolicy":
            validate_custom_resource(obj)


# --- namespaces ------------------------------------------------------------------------------

def test_virtualization_namespaces_are_privileged_and_keep_upstream_labels(prod_plan):
    namespaces = {r.input("metadata", "name"): r.input("metadata", "labels")
                  for r in prod_plan.monitor.of_type("kubernetes:core/v1:Namespace")}
    for ns in ("kubevirt", "cdi", "local-path-storage"):
        assert ns in PRIVILEGED_NAMESPACES
        assert namespaces[ns]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert namespaces["kubevirt"]["kubevirt.io"] == ""
    assert namespaces["cdi"]["cdi.kubevirt.io"] == ""


# --- local-path-provisioner ------------------------------------------------------------------

def test_local_path_keeps_volumes_on_the_talos_user_volume():
    cm = next(o for o in local_storage.manifests() if o["kind"] == "ConfigMap")
    paths = json.loads(cm["data"]["config.json"])["nodePathMap"]
    assert paths == [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [LOCAL_PATH_HOST_DIR]}]
    assert LOCAL_PATH_HOST_DIR.startswith("/var/mnt/")  # Talos mounts user volumes there
    helper = yaml.safe_load(cm["data"]["helperPod.yaml"])
    assert helper["spec"]["containers"][0]["image"] == versions.LOCAL_PATH_HELPER_IMAGE


def test_local_path_workloads_are_pinned_limited_and_unprivileged():
    deploy = next(o for o in local_storage.manifests() if o["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for c in pod["containers"]:
        assert re.search(r":v[\d.]+@sha256:[0-9a-f]{64}$", c["image"]), c["image"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert re.search(r"@sha256:[0-9a-f]{64}$", versions.LOCAL_PATH_HELPER_IMAGE)


def test_local_path_storage_class_binds_where_the_consumer_runs():
    sc = local_storage.storage_class()
    assert sc["metadata"]["name"] == LOCAL_PATH_STORAGE_CLASS
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["provisioner"] == local_storage.PROVISIONER


def test_local_storage_is_deployed_on_talos_only_unless_configured():
    assert deploys_local_storage(config())
    existing = base_raw(managementCluster={"name": "dev", "provisioner": "existing",
                                           "declaredStorageClasses": ["local-path"],
                                           "loadBalancerIps": ["172.18.255.200/29"]})
    assert not deploys_local_storage(config(existing))
    existing["kubevirt"] = {"localPathProvisioner": True}
    del existing["managementCluster"]["declaredStorageClasses"]  # the program's class is the only one
    assert deploys_local_storage(config(existing))
    result = plan(base_raw(managementCluster={**existing["managementCluster"], "declaredStorageClasses": ["local-path"]},
                           kubevirt={}))
    assert not result.monitor.of_type("weebo:storage:LocalStorage")


# --- deploy-time install of the operator manifests --------------------------------------------

def test_operator_manifests_are_pinned_by_version_and_sha256():
    assert versions.KUBEVIRT_VERSION in kubevirt.OPERATOR_MANIFEST.url
    assert versions.CDI_VERSION in cdi.OPERATOR_MANIFEST.url
    for pin in (kubevirt.OPERATOR_MANIFEST.sha256, cdi.OPERATOR_MANIFEST.sha256):
        assert re.fullmatch(r"[0-9a-f]{64}", pin)


def test_install_commands_carry_the_pins(prod_plan):
    cmds = {r.name: r for r in prod_plan.monitor.of_type("command:local:Command")}
    for name, manifest in (("virtualization-kubevirt-operator", kubevirt.OPERATOR_MANIFEST),
                           ("virtualization-cdi-operator", cdi.OPERATOR_MANIFEST)):
        assert "environment" in cmds[name].additional_secret_outputs
        plain = cmds[name].input("environment")
        assert plain["MANIFEST_URL"] == manifest.url and plain["MANIFEST_SHA256"] == manifest.sha256
        assert cmds[name].input("create") == release_manifest.APPLY_SCRIPT


def test_kubeconfig_of_an_existing_cluster_never_reaches_the_plan_files(tmp_path, monkeypatch):
    marker = "offline-test-kubeconfig-client-key-7f3a"
    monkeypatch.setenv("KUBECONFIG", f"apiVersion: v1\nkind: Config\nusers:\n- user:\n    token: {marker}\n")
    raw = base_raw(managementCluster={"name": "dev", "provisioner": "existing",
                                      "declaredStorageClasses": ["local-path"],
                                      "loadBalancerIps": ["172.18.255.200/29"]})
    result = plan(raw)
    cmd = _one(result.monitor, "command:local:Command", "virtualization-kubevirt-operator")
    assert contains_secret(cmd.inputs["environment"])
    write_plan(result, tmp_path / "plan")
    for f in (tmp_path / "plan").rglob("*"):
        if f.is_file():
            assert marker not in f.read_text(), f


@pytest.fixture()
def fake_kubectl(tmp_path):
    """A kubectl that records its arguments and the manifest it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "kubectl.log"
    script = bin_dir / "kubectl"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "manifest = open(args[args.index('-f') + 1]).read() if '-f' in args else None\n"
        f"open({str(log)!r}, 'a').write(json.dumps({{'args': args, 'manifest': manifest}}) + '\\n')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bin_dir, log


def _run(script: str, manifest_file: Path, sha: str, bin_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "MANIFEST_URL": manifest_file.as_uri(),
        "MANIFEST_SHA256": sha,
        "MANIFEST_KUBECONFIG": "apiVersion: v1\nkind: Config\n",
        "MANIFEST_KUBE_CONTEXT": "",
        "MANIFEST_WAIT_CRDS": "kubevirts.kubevirt.io",
        "MANIFEST_WAIT_DEPLOYMENTS": "kubevirt/virt-operator",
    }
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)


MANIFEST = """---
apiVersion: v1
kind: Namespace
metadata:
  labels:
    kubevirt.io: ""
  name: kubevirt
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: kubevirts.kubevirt.io
spec:
  names:
    kind: KubeVirt
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: virt-operator
  namespace: kubevirt
"""


def test_install_script_refuses_a_manifest_whose_checksum_differs(tmp_path, fake_kubectl):
    bin_dir, log = fake_kubectl
    f = tmp_path / "kubevirt-operator.yaml"
    f.write_text(MANIFEST)
    proc = _run(release_manifest.APPLY_SCRIPT, f, hashlib.sha256(b"something else").hexdigest(), bin_dir)
    assert proc.returncode != 0
    assert "refusing to apply" in proc.stderr
    assert not log.exists()  # kubectl never ran


def test_install_script_applies_a_verified_manifest_without_its_namespace(tmp_path, fake_kubectl):
    bin_dir, log = fake_kubectl
    f = tmp_path / "kubevirt-operator.yaml"
    f.write_text(MANIFEST)
    proc = _run(release_manifest.APPLY_SCRIPT, f, hashlib.sha256(MANIFEST.encode()).hexdigest(), bin_dir)
    assert proc.returncode == 0, proc.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    apply, wait_crd, rollout = calls
    assert "apply" in apply["args"] and "--server-side" in apply["args"]
    kinds = [d["kind"] for d in yaml.safe_load_all(apply["manifest"]) if d]
    assert kinds == ["CustomResourceDefinition", "Deployment"]
    assert wait_crd["args"][-1] == "crd/kubevirts.kubevirt.io"
    assert "deployment/virt-operator" in rollout["args"] and "kubevirt" in rollout["args"]


def test_uninstall_script_deletes_the_verified_manifest(tmp_path, fake_kubectl):
    bin_dir, log = fake_kubectl
    f = tmp_path / "kubevirt-operator.yaml"
    f.write_text(MANIFEST)
    proc = _run(release_manifest.DELETE_SCRIPT, f, hashlib.sha256(MANIFEST.encode()).hexdigest(), bin_dir)
    assert proc.returncode == 0, proc.stderr
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert call["args"][call["args"].index("--kubeconfig") + 2] == "delete"


# --- order -----------------------------------------------------------------------------------

def test_crs_wait_for_their_operator_and_cdi_for_its_scratch_storage(prod_plan):
    m = prod_plan.monitor
    kv_cr = _one(m, "kubernetes:kubevirt.io/v1:KubeVirt", "virtualization-kubevirt-cr")
    cdi_cr = _one(m, "kubernetes:cdi.kubevirt.io/v1beta1:CDI", "virtualization-cdi-cr")
    kv_op = _one(m, "command:local:Command", "virtualization-kubevirt-operator")
    cdi_op = _one(m, "command:local:Command", "virtualization-cdi-operator")
    sc = _one(m, "kubernetes:storage.k8s.io/v1:StorageClass", "virtualization-local-storage-storageclass-local-path")
    ns = _one(m, "kubernetes:core/v1:Namespace", "virtualization-kubevirt-namespace-ns")
    assert m.depends_on(kv_cr, kv_op) and m.depends_on(kv_op, ns)
    assert m.depends_on(cdi_cr, cdi_op) and m.depends_on(cdi_cr, sc)
    assert not m.depends_on(kv_op, kv_cr)


def test_tenants_wait_for_kubevirt_and_cdi(prod_plan):
    m = prod_plan.monitor
    tenant_ns = _one(m, "kubernetes:core/v1:Namespace", "alpha-namespace-ns")
    assert m.depends_on(tenant_ns, _one(m, "kubernetes:kubevirt.io/v1:KubeVirt", "virtualization-kubevirt-cr"))
    assert m.depends_on(tenant_ns, _one(m, "kubernetes:cdi.kubevirt.io/v1beta1:CDI", "virtualization-cdi-cr"))


def test_virtualization_waits_for_the_cni(prod_plan):
    m = prod_plan.monitor
    cilium = next(r for r in m.registrations.values() if r.type == "weebo:network:Cilium" or r.name == "cilium")
    for name in ("virtualization-kubevirt-namespace-ns", "virtualization-cdi-namespace-ns"):
        assert m.depends_on(_one(m, "kubernetes:core/v1:Namespace", name), cilium)
