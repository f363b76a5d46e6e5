"""The stack config model: every rule, with good and bad inputs."""

from __future__ import annotations

import pytest

import versions
from stacks.config import ConfigError, PlatformConfig, SecretValue, parse_config
from stacks.loader import parse_stack_document, read_stack
from tests.helpers.factories import base_raw, config, tenant


def problems(raw, secret_keys=frozenset(), provider_keys=()):
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, secret_keys, stack="test", provider_keys=provider_keys)
    return {p.path: p for p in exc.value.problems}, str(exc.value)


def test_base_config_is_valid_and_frozen():
    cfg = config()
    assert isinstance(cfg, PlatformConfig)
    assert cfg.management_cluster.name == "weebo4cp"
    assert cfg.domain.platform_zone == "cloud.example.org"
    with pytest.raises(Exception):
        cfg.management_cluster.name = "other"  # type: ignore[misc]


def test_defaults_are_production_sensible():
    cfg = config()
    assert cfg.management_cluster.talos_version == versions.TALOS_VERSION
    assert cfg.management_cluster.kubernetes_version == versions.KUBERNETES_VERSION
    assert cfg.vault.replicas == 3 and cfg.vault.key_threshold <= cfg.vault.key_shares
    assert cfg.cert_manager.default_issuer == "letsencrypt-production"
    assert cfg.cluster_endpoint == "weebo4cp.example.org"
    # Pool addresses: Traefik and Bind9 each get one, distinct.
    assert cfg.traefik_ip == "51.0.1.1" and cfg.dns_ip == "51.0.1.2"


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda r: r["managementCluster"].update(nmae="x"), "managementCluster.nmae"),
        (lambda r: r.update(tenantz=[]), "tenantz"),
        (lambda r: r["tenants"][0].update(workerPool=[]), "tenants[0].workerPool"),
        (lambda r: r["tenants"][0]["workerPools"][0].update(cpus=2), "tenants[0].workerPools[0].cpus"),
        (lambda r: r.update(traefik={"replica": 2}), "traefik.replica"),
    ],
)
def test_unknown_keys_anywhere_are_errors(mutate, path):
    raw = base_raw()
    mutate(raw)
    found, message = problems(raw)
    assert path in found
    assert found[path].problem == "unknown key"
    assert "remove it" in found[path].hint
    assert path in message


def test_a_typo_gets_the_closest_known_key():
    raw = base_raw()
    raw["managementCluster"]["nmae"] = "x"
    found, _ = problems(raw)
    assert "did you mean 'name'" in found["managementCluster.nmae"].hint


def test_missing_required_keys_are_named():
    raw = base_raw()
    del raw["domain"]
    del raw["hostCapacity"]
    found, _ = problems(raw)
    assert {"domain", "hostCapacity"} <= set(found)
    assert "weebo-platform:domain" in found["domain"].hint


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (lambda r: r["managementCluster"]["nodes"][0].update(address="51.0.0.300"), "managementCluster.nodes[0].address", "IPv4"),
        (lambda r: r["managementCluster"].update(podCidr="10.244.0.1/16"), "managementCluster.podCidr", "host bits"),
        (lambda r: r["domain"].update(acmeEmail="ops-at-example.org"), "domain.acmeEmail", "e-mail"),
        (lambda r: r["domain"].update(parentZone="Example_ORG"), "domain.parentZone", "domain name"),
        (lambda r: r["tenants"][0].update(name="Alpha_1"), "tenants[0].name", "DNS label"),
        (lambda r: r["tenants"][0].update(talosVersion="latest"), "tenants[0].talosVersion", "exact Talos"),
        (lambda r: r["tenants"][0].update(kubernetesVersion="1.35"), "tenants[0].kubernetesVersion", "exact Kubernetes"),
        (lambda r: r["tenants"][0]["controlPlane"].update(replicas=2), "tenants[0].controlPlane.replicas", "1, 3 or 5"),
        (lambda r: r["hostCapacity"].update(cpu="many"), "hostCapacity.cpu", "integer"),
        (lambda r: r["managementCluster"].update(systemExtensions=["intel-ucode"]), "managementCluster.systemExtensions[0]", "official"),
    ],
)
def test_invalid_values_name_their_key(mutate, path, words):
    raw = base_raw()
    mutate(raw)
    found, _ = problems(raw)
    assert path in found, found
    assert words.lower() in found[path].problem.lower()


def test_every_problem_is_reported_at_once():
    raw = base_raw()
    raw["managementCluster"]["nodes"][0]["address"] = "nope"
    raw["domain"]["acmeEmail"] = "nope"
    raw["tenants"][0]["name"] = "UPPER"
    raw["bogus"] = 1
    found, message = problems(raw)
    assert {"managementCluster.nodes[0].address", "domain.acmeEmail", "tenants[0].name", "bogus"} <= set(found)
    assert "4 problem(s)" in message


def test_tenant_names_must_be_unique():
    raw = base_raw(tenants=[tenant("alpha", 0), tenant("alpha", 1)])
    found, _ = problems(raw)
    assert "tenants[1].name" in found
    assert "tenants[0]" in found["tenants[1].name"].problem


def test_tenant_cidrs_must_not_overlap_each_other():
    raw = base_raw(tenants=[tenant("alpha", 0), tenant("beta", 1, podCidr="10.128.128.0/17")])
    found, _ = problems(raw)
    assert "tenants[1].podCidr" in found
    assert "tenants[0].podCidr" in found["tenants[1].podCidr"].problem


def test_tenant_cidrs_must_not_overlap_the_management_cluster():
    raw = base_raw(tenants=[tenant("alpha", 0, serviceCidr="10.100.0.0/16")])
    found, _ = problems(raw)
    assert "overlaps managementCluster.serviceCidr" in found["tenants[0].serviceCidr"].problem


@pytest.mark.parametrize("talos, k8s, path", [
    ("v1.13.9", "1.36.3", "tenants[0].talosVersion"),  # CACPPT 0.5.12 stops at Talos 1.12
    ("v1.10.9", "1.33.6", "tenants[0].talosVersion"),
    ("v1.12.11", "1.36.3", "tenants[0].kubernetesVersion"),
    ("v1.11.6", "1.34.1", "tenants[0].talosVersion"),  # end of life
])
def test_unsupported_tenant_version_pairs_are_rejected(talos, k8s, path):
    raw = base_raw(tenants=[tenant("alpha", 0, talosVersion=talos, kubernetesVersion=k8s)])
    found, _ = problems(raw)
    assert path in found


@pytest.mark.parametrize("talos_minor, k8s_minors", sorted(versions.TENANT_VERSION_MATRIX.items()))
def test_every_pair_of_the_matrix_is_accepted(talos_minor, k8s_minors):
    for k8s_minor in k8s_minors:
        cfg = config(base_raw(tenants=[tenant("alpha", 0, talosVersion=f"v{talos_minor}.3", kubernetesVersion=f"{k8s_minor}.1")]))
        assert cfg.tenants[0].kubernetes_version == f"{k8s_minor}.1"


def test_capacity_counts_per_vm_overhead():
    # 8 cores exactly fit 2 VMs of 4 cores, but not with 0.25 core of overhead each.
    pools = [{"name": "big", "replicas": 1, "cpu": 4, "memoryGib": 4, "diskGib": 20}]
    t = tenant("alpha", 0, controlPlane={"replicas": 1, "cpu": 4, "memoryGib": 4, "diskGib": 20}, workerPools=pools)
    raw = base_raw(tenants=[t], hostCapacity={"cpu": 8, "memoryGib": 64, "diskGib": 200})
    found, _ = problems(raw)
    assert "hostCapacity.cpu" in found
    raw["hostCapacity"]["vmOverhead"] = {"cpu": 0, "memoryMib": 0}
    assert config(raw).host_capacity.cpu == 8


def test_tenant_admin_groups_must_be_declared():
    raw = base_raw(tenants=[tenant("alpha", 0, adminGroups=["alpha-admins"])])
    found, _ = problems(raw)
    assert "tenants[0].adminGroups[0]" in found
    raw["authentik"] = {"groups": [{"name": "alpha-admins"}]}
    assert config(raw).tenants[0].admin_groups == ["alpha-admins"]


def test_control_plane_count_must_be_one_or_three():
    nodes = [{"hostname": f"n{i}", "ovhServiceName": f"ns{i}.ip.eu", "address": f"51.0.0.{i}"} for i in range(1, 3)]
    raw = base_raw()
    raw["managementCluster"]["nodes"] = nodes
    found, _ = problems(raw)
    assert "managementCluster.nodes" in found


def test_pool_ips_must_belong_to_the_additional_ips():
    raw = base_raw(traefik={"loadBalancerIp": "51.9.9.9"})
    found, _ = problems(raw)
    assert "traefik.loadBalancerIp" in found


def test_existing_provisioner_needs_no_servers():
    raw = base_raw()
    raw["managementCluster"] = {"provisioner": "existing",
                                "existing": {"kubeconfigEnv": "KUBECONFIG"}, "declaredStorageClasses": ["local-path"],
                                "loadBalancerIps": ["172.18.255.200/29"]}
    cfg = config(raw)
    assert cfg.management_cluster.nodes == []
    raw["managementCluster"]["nodes"] = base_raw()["managementCluster"]["nodes"]
    found, _ = problems(raw)
    assert "managementCluster.nodes" in found


def test_credentials_must_be_secure_values():
    repo = {"name": "apps", "url": "https://git.example.org/apps.git", "username": "argocd", "password": "hunter2"}
    raw = base_raw(argocd={"repositories": [repo]})
    found, message = problems(raw)
    p = found["argocd.repositories[0].password"]
    assert "clear text" in p.problem
    assert "--secret" in p.hint
    assert "hunter2" not in message
    cfg = config(raw, secret_keys={"argocd"})
    password = cfg.argocd.repositories[0].password
    assert isinstance(password, SecretValue) and password.reveal() == "hunter2"
    assert "hunter2" not in repr(cfg)


def test_provider_credentials_in_stack_files_are_rejected():
    found, _ = problems(base_raw(), provider_keys=["ovh:applicationSecret", "ovh:endpoint"])
    assert "ovh:applicationSecret" in found
    assert "ovh:endpoint" not in found


def test_stack_document_secure_values_become_secret_keys():
    doc = {"config": {
        "weebo-platform:argocd": {"repositories": [{"name": "a", "url": "https://x.example.org/a.git",
                                                     "username": "u", "password": {"secure": "v1:abc"}}]},
        "weebo-platform:domain": {"parentZone": "example.org", "acmeEmail": "a@example.org"},
        "kubernetes:context": "admin@dev",
    }}
    stack = parse_stack_document("x", doc)
    assert stack.secret_keys == {"argocd"}
    assert stack.raw["argocd"]["repositories"][0]["password"] != {"secure": "v1:abc"}
    assert stack.provider_config == {"kubernetes:context": "admin@dev"}


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_stack_files_are_valid(stack):
    sf = read_stack(stack)
    cfg = parse_config(sf.raw, sf.secret_keys, stack=stack, provider_keys=list(sf.provider_config))
    assert cfg.tenants


def test_prod_stack_is_a_realistic_production_environment():
    sf = read_stack("prod")
    cfg = parse_config(sf.raw, sf.secret_keys, stack="prod")
    assert cfg.management_cluster.provisioner == "ovh-talos"
    assert cfg.management_cluster.name == "weebo4cp"
    assert len(cfg.tenants) >= 3
    shapes = {(t.control_plane.replicas, len(t.worker_pools)) for t in cfg.tenants}
    assert len(shapes) >= 2, "tenants of different shapes"
    assert all(t.apps for t in cfg.tenants)


def test_dev_stack_uses_an_existing_cluster():
    sf = read_stack("dev")
    cfg = parse_config(sf.raw, sf.secret_keys, stack="dev")
    assert cfg.management_cluster.provisioner == "existing"
    assert len(cfg.tenants) == 1


def test_field_errors_and_cross_field_rules_are_reported_together():
    raw = base_raw(tenants=[tenant("alpha", 0), tenant("alpha", 1)])
    raw["traefik"] = {"replicas": "two"}
    found, _ = problems(raw)
    assert {"traefik.replicas", "tenants[1].name"} <= set(found)


def test_the_program_reads_config_the_way_the_cli_hands_it_over(monkeypatch, tmp_path):
    """The language host passes config as PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS (JSON)."""
    import json

    # The program also reads the secure: leaves of Pulumi.<stack>.yaml in its working directory;
    # the stack is whichever an earlier plan of this process left set, so run where no stack
    # file is (else the result would depend on the order tests run in).
    monkeypatch.chdir(tmp_path)

    from pulumi.runtime import config as runtime_config

    from stacks.config import load_from_pulumi

    raw = base_raw(argocd={"repositories": [{"name": "a", "url": "https://git.example.org/a.git",
                                             "username": "u", "password": "from-secure"}]})
    flat = {f"weebo-platform:{k}": json.dumps(v) for k, v in raw.items()}
    runtime_config.set_all_config({}, [])
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(flat))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["weebo-platform:argocd"]))
    cfg = load_from_pulumi()
    assert cfg.argocd.repositories[0].password.reveal() == "from-secure"
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", "[]")
    with pytest.raises(ConfigError) as exc:
        load_from_pulumi()
    assert "argocd.repositories[0].password" in str(exc.value)


@pytest.mark.parametrize("doc, path", [(["not", "a", "mapping"], "<document>"), ({"config": ["x"]}, "config")])
def test_stack_documents_of_the_wrong_shape_are_config_errors(doc, path):
    with pytest.raises(ConfigError) as exc:
        parse_stack_document("x", doc)
    assert exc.value.problems[0].path == path


# --- issue 16: messages, sections, YAML --------------------------------------------------------

def test_a_failed_management_cluster_adds_no_false_pool_problems():
    raw = base_raw(traefik={"loadBalancerIp": "51.0.1.2"})
    raw["managementCluster"]["podCidr"] = "not-a-range"
    found, _ = problems(raw)
    assert "managementCluster.podCidr" in found
    assert "traefik.loadBalancerIp" not in found


def test_a_broken_tenant_does_not_hide_the_duplicate_name_rule_of_the_others():
    # tenants[1] is broken; tenants[0] and tenants[2] still meet the duplicate-name rule.
    raw = base_raw(tenants=[tenant("alpha", 0), tenant("beta", 1, podCidr="nope"), tenant("alpha", 2)])
    found, _ = problems(raw)
    assert {"tenants[1].podCidr", "tenants[2].name"} <= set(found)


def test_integer_fields_given_floats_get_a_specific_fix():
    for bad, words in ((80.5, "whole number"), (float("nan"), ".nan"), (float("inf"), ".inf"), ("1e30", "digits")):
        raw = base_raw(traefik={"replicas": bad})
        found, _ = problems(raw)
        assert words in found["traefik.replicas"].hint, (bad, found["traefik.replicas"])


def test_provider_credentials_any_casing_and_nested_are_refused():
    found, _ = problems(base_raw(), provider_keys={"OVH:ApplicationSecret": "x", "kubernetes:settings": {"kubeconfig": "y"},
                                                  "ovh:endpoint": "ovh-eu"})
    assert {"OVH:ApplicationSecret", "kubernetes:settings.kubeconfig"} <= set(found)
    assert "ovh:endpoint" not in found


def test_stack_file_errors_name_the_file_as_given(tmp_path):
    from stacks.loader import read_stack_file

    path = tmp_path / "Pulumi.prod.yaml"
    path.write_bytes("config: {}\n".encode("utf-16"))
    with pytest.raises(ConfigError) as caught:
        read_stack_file(path, source=str(path))
    assert str(caught.value).startswith(f"{path} is not a valid stack file")
    assert "Pulumi./" not in str(caught.value)


def test_lb_pool_of_a_wide_block_is_refused_without_enumerating_it():
    raw = base_raw()
    raw["managementCluster"]["loadBalancerIps"] = ["10.0.0.0/8"]
    found, _ = problems(raw)
    assert "wider than OVH routes" in found["managementCluster.loadBalancerIps[0]"].problem


def test_derived_machine_deployment_name_fits_a_label_value():
    pools = [{"name": "p" * 40, "replicas": 1, "cpu": 2, "memoryGib": 4, "diskGib": 30}]
    found, _ = problems(base_raw(tenants=[tenant("t" * 30, 0, workerPools=pools)]))
    assert "tenants[0].workerPools[0].name" in found


def test_app_path_is_a_relative_directory_of_the_repository():
    for path, ok in (("odoo/overlays/prod", True), ("/etc", False), ("../other", False), ("a/../../b", False)):
        t = tenant("alpha", 0, apps=[{"name": "w", "repoUrl": "https://git.example.org/x.git", "path": path,
                                      "targetRevision": "v1.0.0", "namespace": "w"}])
        if ok:
            assert config(base_raw(tenants=[t])).tenants[0].apps[0].path == path
        else:
            found, _ = problems(base_raw(tenants=[t]))
            assert "tenants[0].apps[0].path" in found, path


def test_every_namespace_the_platform_creates_is_reserved_against_tenants():
    """Config validation knows the platform's namespaces from stacks/facts.py, where the components
    take them from: every component's NAMESPACE and every Cluster API provider's is reserved."""
    import importlib
    import pkgutil

    import components
    from components.clusters.cluster_api import PROVIDERS
    from stacks import facts

    created = {p.namespace for p in PROVIDERS}
    for info in pkgutil.walk_packages(components.__path__, "components."):
        ns = getattr(importlib.import_module(info.name), "NAMESPACE", None)
        if isinstance(ns, str):
            created.add(ns)
    assert {"backups", "capi-images", "capk-system", "vault"} <= created  # the walk found them
    assert created <= facts.platform_namespaces()


@pytest.mark.parametrize("prefix, name", [("capi-", "images"), ("", "backups"), ("capk-", "system")])
def test_a_tenant_cannot_take_a_platform_namespace(prefix, name):
    with pytest.raises(ConfigError) as e:
        config(base_raw(clusterApi={"tenantNamespacePrefix": prefix}, tenants=[tenant(name, 0)]))
    problems = {p.path: p.problem for p in e.value.problems}
    assert "namespace of the platform itself" in problems["tenants[0].name"]
