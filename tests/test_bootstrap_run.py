"""One ``pulumi up`` of a brand-new environment runs to the end (issue 13: storage, API gate,
Vault token lifetime)."""

from __future__ import annotations

from typing import Any

import pytest

from components.core.timeouts import duration_seconds
from tests.helpers.factories import stack_plan


@pytest.fixture(scope="module")
def prod():
    """prod's plan, as the engine receives it: each registration with its custom timeouts and
    aliases (offline.mocks.Registration)."""
    return stack_plan("prod").monitor


def _longest(timeouts: dict[str, str]) -> int:
    return max(duration_seconds(v) for v in timeouts.values())


def test_vault_provider_token_outlives_every_wait_that_follows_it(prod):
    """The provider's child token is minted once Vault answers; the tenants' control planes
    (and the waits around them) come later in the same run and need it at their end."""
    (provider,) = [r for r in prod.registrations.values() if r.type == "pulumi:providers:vault"]
    ttl = int(provider.inputs["maxLeaseTtlSeconds"])

    def longest_of(kind: str) -> int:
        found = [_longest(r.custom_timeouts) for urn, r in prod.registrations.items()
                 if r.custom_timeouts and urn.split("::")[2].endswith(kind)]
        assert found, f"no {kind} with custom timeouts in the plan"
        return max(found)

    # CAPI providers -> a tenant's control plane -> its CNI Application, one after the other.
    chain = (longest_of("operator.cluster.x-k8s.io/v1alpha2:InfrastructureProvider")
             + longest_of("TalosControlPlane") + longest_of("argoproj.io/v1alpha1:Application"))
    assert ttl > chain, f"Vault token lives {ttl}s, the waits after it take up to {chain}s"
    # No single wait of a tenant outlives the token either.
    tenant_waits = [_longest(r.custom_timeouts) for urn, r in prod.registrations.items()
                    if r.custom_timeouts and "weebo:tenants:TenantCluster" in urn]
    assert tenant_waits and max(tenant_waits) < ttl


def test_duration_parser_reads_pulumi_timeouts():
    assert duration_seconds("45m") == 2700
    assert duration_seconds("1h30m") == 5400
    with pytest.raises(ValueError):
        duration_seconds("soon")


# --- the management cluster's API gate (item 4) ---------------------------------------------

def test_the_kubernetes_provider_is_configured_from_the_api_gate_which_waits_for_bootstrap():
    from tests.helpers.identity_support import deployed_plan, preview_plan
    from offline.mocks import contains_secret

    for result in (preview_plan(), deployed_plan()):
        mon = result.monitor
        (provider,) = [r for r in mon.of_type("pulumi:providers:kubernetes") if r.name == "weebo4cp"]
        gate = mon.named("weebo4cp-api-ready")
        assert gate.type == "pulumi-python:dynamic/weebo:KubeApiReady"
        # The kubeconfig the provider gets is the gate's output, not the Talos resource's.
        assert gate.urn in provider.property_dependencies["kubeconfig"]
        assert mon.named("weebo4cp-kubeconfig").urn not in provider.property_dependencies["kubeconfig"]
        assert mon.depends_on(gate, mon.named("weebo4cp-bootstrap"))
        assert mon.depends_on(gate, mon.named("weebo4cp-kubeconfig"))
        assert "kubeconfig" in gate.additional_secret_outputs
    mon = deployed_plan().monitor
    assert contains_secret(mon.named("weebo4cp-api-ready").inputs["kubeconfig"])
    (provider,) = [r for r in mon.of_type("pulumi:providers:kubernetes") if r.name == "weebo4cp"]
    assert contains_secret(provider.inputs["kubeconfig"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway cluster CA with a server certificate for 127.0.0.1 and an admin client
    certificate, and a second, unrelated CA (openssl CLI: no Python crypto library needed)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: cannot make a test CA")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    for ca in ("ca", "other-ca"):
        run("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "1", "-subj", f"/CN={ca}")
    for leaf, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                      ("admin", "extendedKeyUsage=clientAuth\n")):
        (d / f"{leaf}.ext").write_text("basicConstraints=CA:FALSE\n" + ext)
        run("req", *ec, "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr", "-subj", f"/CN={leaf}")
        run("x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{leaf}.crt", "-days", "1", "-extfile", f"{leaf}.ext")
    return d


@pytest.fixture
def apiserver(pki):
    """An HTTPS /readyz on 127.0.0.1 that demands the admin client certificate; ``status`` sets
    what it answers."""
    import http.server
    import ssl
    import threading

    state = {"status": 200, "client_certs": 0}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/readyz":
                self.send_error(404)
                return
            state["client_certs"] += bool(self.connection.getpeercert())
            body = b"ok"
            self.send_response(state["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED  # like kube-apiserver with the admin certificate
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def _kubeconfig(server: str, pki, ca: str = "ca") -> str:
    import base64

    import yaml

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@weebo4cp",
        "clusters": [{"name": "weebo4cp", "cluster": {"server": server, "certificate-authority-data": b64(f"{ca}.crt")}}],
        "users": [{"name": "admin@weebo4cp", "user": {"client-certificate-data": b64("admin.crt"),
                                                      "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "admin@weebo4cp", "context": {"cluster": "weebo4cp", "user": "admin@weebo4cp"}}],
    })


def test_gate_passes_once_readyz_answers_with_the_cluster_ca(apiserver, pki):
    from components.kube_api_ready import _KubeApiReadyProvider

    url, state = apiserver
    props = {"kubeconfig": _kubeconfig(url, pki), "timeout_seconds": 5, "poll_interval_seconds": 0.01}
    created = _KubeApiReadyProvider().create(props)
    assert created.outs["kubeconfig"] == props["kubeconfig"]  # handed on unchanged, once ready
    assert created.id == url
    assert state["client_certs"] == 1  # it authenticated as the kubeconfig's user


def test_gate_refuses_a_server_the_cluster_ca_did_not_sign(apiserver, pki):
    from components.core.bootstrap_http import BootstrapError
    from components.kube_api_ready import wait_ready

    url, _ = apiserver
    with pytest.raises(BootstrapError, match="certificate verify failed"):
        wait_ready(_kubeconfig(url, pki, ca="other-ca"), timeout_seconds=0.2, interval=0.01)


def test_gate_gives_up_after_its_timeout_with_the_last_answer(apiserver, pki):
    from components.core.bootstrap_http import BootstrapError
    from components.kube_api_ready import wait_ready

    url, state = apiserver
    state["status"] = 500  # etcd not there yet
    with pytest.raises(BootstrapError, match=r"kube-apiserver at https://127\.0\.0\.1:\d+/readyz.*HTTP 500"):
        wait_ready(_kubeconfig(url, pki), timeout_seconds=0.2, interval=0.01)


def test_gate_bounds_a_server_that_never_answers(pki):
    """A TCP listener that never speaks TLS (an API server still starting): each request is
    bounded by the gate's own timeout, and the gate fails instead of hanging."""
    import socket

    from components.core.bootstrap_http import BootstrapError
    from components.kube_api_ready import wait_ready

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"https://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(BootstrapError, match="gave up waiting"):
            wait_ready(_kubeconfig(url, pki), timeout_seconds=0.3, interval=0.01)


def test_a_kubeconfig_without_a_ca_is_refused():
    from components.core.bootstrap_http import BootstrapError
    from components.kube_api_ready import endpoint_from_kubeconfig

    with pytest.raises(BootstrapError, match="certificate-authority-data"):
        endpoint_from_kubeconfig("clusters: [{name: c, cluster: {server: 'https://x:6443'}}]\n")


# --- storage on the management cluster (item 1) ----------------------------------------------

def _k8s_kind(r) -> str | None:
    return r.type.rsplit(":", 1)[-1] if r.type.startswith("kubernetes:") and r.custom else None


def _persistence_blocks(values: Any, path: str = "values"):
    """Every enabled persistence block of a chart's values (``{enabled: true, size: ...}``)."""
    if isinstance(values, dict):
        if values.get("enabled") is True and "size" in values:
            yield path, values
        for k, v in values.items():
            yield from _persistence_blocks(v, f"{path}.{k}")
    elif isinstance(values, list):
        for i, v in enumerate(values):
            yield from _persistence_blocks(v, f"{path}[{i}]")


def management_claims(mon) -> list[tuple[Any, str, Any]]:
    """(resource, where, storage class) of every volume claim the program makes on the management
    cluster: StatefulSet claim templates, PVCs and DataVolumes, chart persistence blocks, CDI
    scratch space, tenant VM disk templates (DataVolumes CAPK creates there)."""
    from offline.mocks import plain

    (mgmt,) = [r for r in mon.of_type("pulumi:providers:kubernetes") if r.name == "weebo4cp"]
    claims = []
    for r in mon.registrations.values():
        if r.provider_urn != mgmt.urn:
            continue
        inputs = plain(r.inputs)
        kind = _k8s_kind(r)
        if r.type == "kubernetes:helm.sh/v3:Release":
            for where, block in _persistence_blocks(inputs.get("values") or {}):
                claims.append((r, where, block.get("storageClass")))
        elif kind == "StatefulSet":
            for i, t in enumerate(inputs["spec"].get("volumeClaimTemplates") or []):
                claims.append((r, f"spec.volumeClaimTemplates[{i}]", t["spec"].get("storageClassName")))
        elif kind == "PersistentVolumeClaim":
            claims.append((r, "spec", inputs["spec"].get("storageClassName")))
        elif kind == "DataVolume":
            spec = inputs["spec"].get("storage") or inputs["spec"].get("pvc") or {}
            claims.append((r, "spec.storage", spec.get("storageClassName")))
        elif kind == "CDI":
            claims.append((r, "spec.config.scratchSpaceStorageClass",
                           inputs["spec"]["config"].get("scratchSpaceStorageClass")))
        elif kind == "KubevirtMachineTemplate":
            vm = inputs["spec"]["template"]["spec"]["virtualMachineTemplate"]["spec"]
            for i, dv in enumerate(vm.get("dataVolumeTemplates") or []):
                claims.append((r, f"dataVolumeTemplates[{i}]", dv["spec"]["storage"].get("storageClassName")))
    return claims


def test_every_claim_on_the_management_cluster_names_a_class_the_program_creates_and_waits_for_it(prod):
    from offline.mocks import plain

    mon = prod
    (mgmt,) = [r for r in mon.of_type("pulumi:providers:kubernetes") if r.name == "weebo4cp"]
    classes = {plain(r.inputs)["metadata"]["name"]: r for r in mon.registrations.values()
               if _k8s_kind(r) == "StorageClass" and r.provider_urn == mgmt.urn}
    (provisioner,) = [r for r in mon.registrations.values()
                      if _k8s_kind(r) == "Deployment" and r.provider_urn == mgmt.urn
                      and plain(r.inputs)["metadata"]["name"] == "local-path-provisioner"]
    claims = management_claims(mon)
    kinds = {_k8s_kind(r) for r, _, _ in claims}
    # Bind9, Vault and Authentik's PostgreSQL (Helm releases), CDI scratch space, tenant VM disks.
    assert {"StatefulSet", "Release", "CDI", "KubevirtMachineTemplate"} <= kinds
    assert {r.name for r, _, _ in claims if r.type == "kubernetes:helm.sh/v3:Release"} >= {"vault", "authentik"}
    for r, where, storage_class in claims:
        assert storage_class in classes, f"{r.name} {where}: StorageClass {storage_class!r} is not created"
        assert mon.depends_on(r, classes[storage_class]), f"{r.name} does not wait for its StorageClass"
        assert mon.depends_on(r, provisioner), f"{r.name} does not wait for the local-path provisioner"


def test_the_storage_class_is_overridable_and_an_override_the_program_cannot_honour_is_refused():
    from stacks.config import ConfigError
    from tests.helpers.factories import base_raw, config, plan

    raw = base_raw()
    raw["managementCluster"] = {**raw["managementCluster"], "storageClass": "node-local"}
    mon = plan(raw).monitor
    claims = management_claims(mon)
    assert claims and {c for _, _, c in claims} == {"node-local"}
    with pytest.raises(ConfigError, match=r"dns\.storageClass: 'fast' is not a StorageClass of this cluster"):
        config(base_raw(dns={"storageClass": "fast"}))
    # On a cluster where the program creates no StorageClass, a service may name the cluster's own.
    existing = base_raw(managementCluster={"name": "dev", "provisioner": "existing",
                                           "declaredStorageClasses": ["local-path", "fast"],
                                           "loadBalancerIps": ["172.18.255.200/29"]}, dns={"storageClass": "fast"})
    assert config(existing).storage_class(config(existing).dns.storage_class) == "fast"


def test_local_storage_is_a_platform_service_keeping_its_resource_names(prod):
    """It moved out of Virtualization: its name (hence its children's URNs) is kept and the
    component is aliased to its old parent."""
    storage = prod.named("virtualization-local-storage")
    assert storage.type == "weebo:storage:LocalStorage"
    assert "Virtualization" not in storage.parent
    assert storage.aliases == [
        "urn:pulumi:prod::weebo-platform::weebo:virtualization:Virtualization$weebo:storage:LocalStorage"
        "::virtualization-local-storage"
    ]


def test_the_documented_unseal_command_targets_the_unseal_resource(prod):
    """README's command for a sealed Vault names the URN the program registers (the offline
    engine names resources as the Pulumi engine does: tests/test_convergence_engine.py)."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    targets = re.findall(r"pulumi up -s prod --target '([^']+)'", readme)
    (unseal,) = prod.of_type("pulumi-python:dynamic/weebo:VaultUnseal")
    assert targets == [unseal.urn]
    # Alone means alone: nothing it depends on is a pulumi_vault resource or provider.
    assert not any(prod.depends_on(unseal, r) for r in prod.registrations.values()
                   if r.type.startswith("vault:") or r.type == "pulumi:providers:vault")
