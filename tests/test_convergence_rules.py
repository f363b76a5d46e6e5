"""Each convergence rule on small plans: a broken one makes it fire, a correct one passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from convergence import addresses, flows, names, pod_security, quotas, references, storage
from convergence.controllers import LAUNCHER_FIXED_OVERHEAD, launcher_requests
from convergence.model import load

STACK = "urn:pulumi:t::p::pulumi:pulumi:Stack::p-t"
MGMT = "urn:pulumi:t::p::pulumi:providers:kubernetes::mgmt"
TENANT_COMPONENT = "urn:pulumi:t::p::weebo:tenants:TenantCluster::acme"
TENANT = "urn:pulumi:t::p::weebo:tenants:TenantCluster$pulumi:providers:kubernetes::acme-provider"


def rec(kind: str, name: str, body: dict[str, Any] | None = None, *, group: str = "core/v1", provider: str = MGMT,
        parent: str = STACK, deps: tuple[str, ...] = (), type_: str | None = None, custom: bool = True) -> dict:
    t = type_ or f"kubernetes:{group}:{kind}"
    return {"urn": f"urn:pulumi:t::p::{t}::{name}", "type": t, "name": name, "custom": custom, "parent": parent,
            "provider": provider, "dependencies": list(deps), "propertyDependencies": {}, "inputs": body or {}}


def k8s(kind: str, name: str, namespace: str | None = None, spec: dict | None = None, *, labels: dict | None = None,
        annotations: dict | None = None, **extra: Any) -> dict:
    md: dict[str, Any] = {"name": name}
    if namespace:
        md["namespace"] = namespace
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    body = {"apiVersion": "v1", "kind": kind, "metadata": md, **extra}
    if spec is not None:
        body["spec"] = spec
    return body


def base() -> list[dict]:
    return [
        rec("", "p-t", type_="pulumi:pulumi:Stack", custom=False, parent="", provider=""),
        rec("", "mgmt", type_="pulumi:providers:kubernetes", provider=""),
        rec("", "acme", type_="weebo:tenants:TenantCluster", custom=False, provider=""),
        {**rec("", "acme-provider", type_="pulumi:providers:kubernetes", provider="", parent=TENANT_COMPONENT),
         "urn": TENANT},
    ]


def doc(*records: dict) -> dict:
    return {"resources": base() + list(records), "outputs": {}}


def urn_of(r: dict) -> str:
    return r["urn"]


def fired(check: Any, d: dict) -> list:
    return list(check(load(d), {}))


# ---------------------------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------------------------

def storage_plan(*, default: bool, claim_class: str | None, waits: bool, chart_class: str | None = "local-path"):
    component = rec("", "local-storage", type_="weebo:storage:LocalStorage", custom=False, provider="")
    provisioner = rec("Deployment", "provisioner", k8s("Deployment", "lpp", "local-path-storage"), group="apps/v1",
                      parent=component["urn"])
    sc_body = k8s("StorageClass", "local-path", annotations={
        "storageclass.kubernetes.io/is-default-class": "true" if default else "false"}, provisioner="rancher.io/local-path")
    sc = rec("StorageClass", "sc", sc_body, group="storage.k8s.io/v1", parent=component["urn"])
    deps = (component["urn"],) if waits else ()
    vct = {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
    if claim_class:
        vct["spec"]["storageClassName"] = claim_class
    sts = rec("StatefulSet", "bind9", k8s("StatefulSet", "bind9", "dns", {"volumeClaimTemplates": [vct]}),
              group="apps/v1", deps=deps)
    values = {"server": {"dataStorage": {"enabled": True, **({"storageClass": chart_class} if chart_class else {})}}}
    vault = rec("", "vault", {"chart": "vault", "namespace": "vault", "values": values},
                type_="kubernetes:helm.sh/v3:Release", deps=deps)
    return doc(component, provisioner, sc, sts, vault)


def test_storage_fires_on_a_claim_without_class_and_no_default_class():
    out = fired(storage.check, storage_plan(default=False, claim_class=None, waits=True, chart_class=None))
    assert len(out) == 2
    assert all("names no StorageClass and the cluster has no default class" in v.message for v in out)


def test_storage_fires_on_an_unknown_class_and_on_a_claim_that_does_not_wait_for_the_provisioner():
    out = fired(storage.check, storage_plan(default=False, claim_class="fast", waits=False))
    msgs = sorted(v.message for v in out)
    assert any("'fast', which the program does not create" in m for m in msgs)
    assert any("does not wait for its provisioner" in m and "vault" in m for m in msgs)


def test_storage_passes_named_or_default_classes_that_wait_for_the_provisioner():
    assert fired(storage.check, storage_plan(default=False, claim_class="local-path", waits=True)) == []
    assert fired(storage.check, storage_plan(default=True, claim_class=None, waits=True, chart_class=None)) == []


def test_storage_sees_the_pvcs_cdi_creates_for_vm_disks():
    d = quota_plan(lb_quota="2", storage_class="missing")
    out = fired(storage.check, d)
    assert out and all("CDI" in v.message for v in out)


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------

def names_plan(*, target: bool, sources: list[str], waits: bool, zone: str = "example.org"):
    edns = rec("", "external-dns", {"chart": "external-dns", "namespace": "dns", "values": {
        "sources": sources, "domainFilters": [zone], "extraArgs": [f"--rfc2136-zone={zone}"]}},
        type_="kubernetes:helm.sh/v3:Release")
    ann = {"external-dns.alpha.kubernetes.io/target": "192.0.2.1"} if target else None
    route = rec("IngressRoute", "auth-route", k8s("IngressRoute", "auth", "auth", {"routes": [
        {"match": "Host(`auth.example.org`) && PathPrefix(`/`)", "services": [{"name": "auth", "port": 80}]}]},
        annotations=ann), group="traefik.io/v1alpha1")
    gate = rec("", "ready", {"url": "https://auth.example.org/-/health/ready/"},
               type_="pulumi-python:dynamic/weebo:AuthentikReady", deps=(edns["urn"],) if waits else (), provider="")
    lb = rec("Service", "api-lb", k8s("Service", "api", "tenant", {"type": "LoadBalancer"},
                                      annotations={"external-dns.alpha.kubernetes.io/hostname": "api.example.org"}))
    oidc = rec("ConfigMap", "uses-api", k8s("ConfigMap", "c", "x", data={"server": "https://api.example.org:6443"}))
    return doc(edns, route, gate, lb, oidc)


def test_names_fires_when_the_traefik_source_has_no_target_and_the_gate_does_not_wait():
    out = fired(names.check, names_plan(target=False, sources=["service", "traefik-proxy"], waits=False))
    msgs = [v.message for v in out]
    assert any("serves 'auth.example.org', which is never published" in m and "target" in m for m in msgs)
    assert any("connects to 'auth.example.org'" in m for m in msgs)
    assert any("does not wait for the ExternalDNS release" in m for m in msgs)
    assert not any("api.example.org" in m for m in msgs)  # the LoadBalancer name is published


def test_names_fires_when_the_source_is_not_enabled():
    out = fired(names.check, names_plan(target=True, sources=["service"], waits=True))
    assert any("do not include 'traefik-proxy'" in v.message for v in out)


def test_names_passes_published_names_and_waiting_gates():
    assert fired(names.check, names_plan(target=True, sources=["service", "traefik-proxy"], waits=True)) == []


def test_names_ignores_hosts_outside_the_managed_zone():
    d = names_plan(target=True, sources=["service", "traefik-proxy"], waits=True)
    d["resources"].append(rec("ConfigMap", "ext", k8s("ConfigMap", "e", "x", data={"u": "https://factory.talos.dev/x"})))
    assert fired(names.check, d) == []


def test_names_sees_the_capk_load_balancer_and_wildcards():
    d = quota_plan(lb_quota="2")
    d["resources"].append(names_plan(target=True, sources=["service"], waits=True)["resources"][4])  # ExternalDNS
    d["resources"].append(rec("Secret", "argo-cluster", k8s("Secret", "c", "argocd",
                                                             stringData={"server": "https://api.acme.example.org"})))
    assert [v.message for v in fired(names.check, d)] == []  # published by CAPK's acme-lb


# ---------------------------------------------------------------------------------------------
# quotas (and the controllers' objects they count)
# ---------------------------------------------------------------------------------------------

def quota_plan(*, lb_quota: str, storage: str = "1000Gi", cpu: str = "100", memory: str = "1000Gi",
               storage_class: str = "local-path", replicas: int = 2, surge: int = 1) -> dict:
    ns = "tenant-acme"
    kmt_spec = {"template": {"spec": {"virtualMachineTemplate": {"spec": {
        "dataVolumeTemplates": [{"metadata": {"name": "boot"}, "spec": {
            "source": {"http": {"url": "https://factory.example/image.raw.xz"}},
            "storage": {"storageClassName": storage_class, "resources": {"requests": {"storage": "20Gi"}}}}}],
        "template": {"metadata": {"labels": {TENANT_LABEL_KEY: "acme"}}, "spec": {"domain": {
            "cpu": {"cores": 2}, "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}}}}}}}}
    return doc(
        rec("Namespace", "ns", k8s("Namespace", ns, labels={"weebo.io/tenant": "acme"})),
        rec("StorageClass", "sc", k8s("StorageClass", "local-path", provisioner="rancher.io/local-path"),
            group="storage.k8s.io/v1"),
        rec("ResourceQuota", "quota", k8s("ResourceQuota", "tenant-size", ns, {"hard": {
            "services.loadbalancers": lb_quota, "requests.storage": storage, "requests.cpu": cpu,
            "requests.memory": memory}})),
        rec("Cluster", "cluster", k8s("Cluster", "acme", ns, {"infrastructureRef": {"name": "acme"}}),
            group="cluster.x-k8s.io/v1beta2"),
        rec("KubevirtCluster", "kc", k8s("KubevirtCluster", "acme", ns, {"controlPlaneServiceTemplate": {
            "metadata": {"annotations": {"external-dns.alpha.kubernetes.io/hostname": "api.acme.example.org"}},
            "spec": {"type": "LoadBalancer"}}}), group="infrastructure.cluster.x-k8s.io/v1alpha1"),
        rec("KubevirtMachineTemplate", "kmt", k8s("KubevirtMachineTemplate", "acme-cp-1", ns, kmt_spec),
            group="infrastructure.cluster.x-k8s.io/v1alpha1"),
        rec("TalosControlPlane", "tcp", k8s("TalosControlPlane", "acme-cp", ns, {
            "replicas": replicas, "infrastructureTemplate": {"name": "acme-cp-1"},
            "rolloutStrategy": {"rollingUpdate": {"maxSurge": surge}}}, labels={"cluster.x-k8s.io/cluster-name": "acme"}),
            group="controlplane.cluster.x-k8s.io/v1alpha3"),
        rec("Service", "apps", k8s("Service", "apps-ingress", ns, {"type": "LoadBalancer"})),
    )


TENANT_LABEL_KEY = "weebo.io/tenant"


def test_quota_counts_the_capk_load_balancer():
    out = fired(quotas.check, quota_plan(lb_quota="1"))
    assert len(out) == 1
    assert "services.loadbalancers hard 1 but 2" in out[0].message and "acme-lb [CAPK" in out[0].message
    assert fired(quotas.check, quota_plan(lb_quota="2")) == []


def test_quota_counts_disks_and_the_populator_claim_during_a_rolling_update():
    # 2 machines + 1 surge: 3 disks of 20Gi, plus the surge disk's prime PVC while it imports = 80Gi.
    assert fired(quotas.check, quota_plan(lb_quota="2", storage="80Gi")) == []
    out = fired(quotas.check, quota_plan(lb_quota="2", storage="79Gi"))
    assert len(out) == 1 and "requests.storage" in out[0].message and "prime-" in out[0].message


def test_quota_counts_virt_launcher_requests_with_kubevirt_overhead():
    cpu, mem = launcher_requests({"domain": {"cpu": {"cores": 2}, "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}})
    assert cpu == 2005  # + guest-console-log 5m
    assert mem == 4 * 2**30 + 4 * 2**30 // 512 + LAUNCHER_FIXED_OVERHEAD + 2 * 8 * 2**20 + 32 * 2**20 + 35_000_000
    # 3 machines at once during the rollout: 3 × 2005m.
    assert fired(quotas.check, quota_plan(lb_quota="2", cpu="6015m")) == []
    out = fired(quotas.check, quota_plan(lb_quota="2", cpu="6"))
    assert len(out) == 1 and "requests.cpu" in out[0].message and "virt-launcher" in out[0].message
    out = fired(quotas.check, quota_plan(lb_quota="2", memory=f"{3 * 4}Gi"))
    assert len(out) == 1 and "requests.memory" in out[0].message


# ---------------------------------------------------------------------------------------------
# addresses
# ---------------------------------------------------------------------------------------------

def address_plan(*, cidr: str, pins: list[str], extra_services: int = 0, node: str = "198.51.100.7") -> dict:
    rs = [rec("CiliumLoadBalancerIPPool", "pool", k8s("CiliumLoadBalancerIPPool", "pool", None, {
        "blocks": [{"cidr": cidr}], "allowFirstLastIPs": "No"}), group="cilium.io/v2"),
          rec("", "apply", {"node": node}, type_="talos:machine/configurationApply:ConfigurationApply", provider="")]
    for i, ip in enumerate(pins):
        rs.append(rec("Service", f"pinned-{i}", k8s("Service", f"p{i}", "x", {"type": "LoadBalancer"},
                                                     annotations={"lbipam.cilium.io/ips": ip})))
    for i in range(extra_services):
        rs.append(rec("Service", f"loose-{i}", k8s("Service", f"l{i}", "x", {"type": "LoadBalancer"})))
    return doc(*rs)


def test_addresses_pass_pins_inside_a_large_enough_pool():
    assert fired(addresses.check, address_plan(cidr="203.0.113.0/29", pins=["203.0.113.1", "203.0.113.2"],
                                               extra_services=4)) == []


def test_addresses_fire_on_a_pin_outside_the_pool_a_duplicate_pin_and_a_small_pool():
    out = [v.message for v in fired(addresses.check, address_plan(
        cidr="203.0.113.0/29", pins=["203.0.113.1", "203.0.113.1", "192.0.2.9"], extra_services=5))]
    assert any("pins 192.0.2.9, which is in no CiliumLoadBalancerIPPool" in m for m in out)
    assert any("203.0.113.1 is pinned by" in m for m in out)
    assert any("need 7 addresses" in m and "pools hold 6" in m for m in out)


def test_addresses_fire_on_a_node_address_inside_the_pool():
    out = fired(addresses.check, address_plan(cidr="198.51.100.0/29", pins=[], node="198.51.100.7"))
    assert len(out) == 1 and "node address 198.51.100.7" in out[0].message


def test_addresses_count_the_capk_load_balancer_sharing_a_key():
    d = quota_plan(lb_quota="2")
    d["resources"] += address_plan(cidr="203.0.113.1/32", pins=[])["resources"][4:]  # pool, node
    out = fired(addresses.check, d)
    assert len(out) == 1 and "need 2 addresses" in out[0].message and "pools hold 1" in out[0].message
    for r in d["resources"]:
        if r["name"] == "kc":
            r["inputs"]["spec"]["controlPlaneServiceTemplate"]["metadata"]["annotations"]["lbipam.cilium.io/sharing-key"] = "acme"
        if r["name"] == "apps":
            r["inputs"]["metadata"]["annotations"] = {"lbipam.cilium.io/sharing-key": "acme"}
    assert fired(addresses.check, d) == []  # one address, shared by the two Services


# ---------------------------------------------------------------------------------------------
# pod security
# ---------------------------------------------------------------------------------------------

RESTRICTED_POD = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                  "containers": [{"name": "app", "image": "x", "securityContext": {
                      "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}


def pss_plan(level: str | None, pod_spec: dict, ns: str = "apps") -> dict:
    labels = {"pod-security.kubernetes.io/enforce": level} if level else {}
    return doc(rec("Namespace", "ns", k8s("Namespace", ns, labels=labels)),
               rec("Deployment", "app", k8s("Deployment", "app", ns, {"template": {"metadata": {}, "spec": pod_spec}}),
                   group="apps/v1"))


def test_pod_security_restricted_passes_a_hardened_pod():
    assert fired(pod_security.check, pss_plan("restricted", RESTRICTED_POD)) == []


@pytest.mark.parametrize("change, control", [
    (lambda s: s["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"), "Privilege Escalation"),
    (lambda s: s["securityContext"].pop("runAsNonRoot"), "Running as Non-root"),
    (lambda s: s["containers"][0]["securityContext"].update(runAsUser=0), "Running as Non-root user"),
    (lambda s: s["securityContext"].pop("seccompProfile"), "Seccomp"),
    (lambda s: s["containers"][0]["securityContext"]["capabilities"].update(drop=[]), "does not drop ALL"),
    (lambda s: s["containers"][0]["securityContext"]["capabilities"].update(add=["NET_ADMIN"]), "Capabilities"),
    (lambda s: s.update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), "HostPath Volumes"),
    (lambda s: s.update(volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}]), "Volume Types"),
])
def test_pod_security_restricted_fires_per_control(change, control):
    spec = copy.deepcopy(RESTRICTED_POD)
    change(spec)
    out = fired(pod_security.check, pss_plan("restricted", spec))
    assert len(out) == 1 and control in out[0].message


@pytest.mark.parametrize("change, control", [
    (lambda s: s.update(hostNetwork=True), "Host Namespaces"),
    (lambda s: s["containers"][0].update(securityContext={"privileged": True}), "Privileged Containers"),
    (lambda s: s["containers"][0].update(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}}), "Capabilities"),
    (lambda s: s["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]), "Host Ports"),
    (lambda s: s.update(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}), "Sysctls"),
    (lambda s: s.update(securityContext={"seccompProfile": {"type": "Unconfined"}}), "Seccomp"),
    (lambda s: s["containers"][0].update(securityContext={"procMount": "Unmasked"}), "/proc Mount"),
    (lambda s: s["containers"][0].update(securityContext={"seLinuxOptions": {"type": "spc_t"}}), "SELinux"),
    (lambda s: s["containers"][0].update(livenessProbe={"httpGet": {"host": "10.0.0.1", "port": 80}}), "Host Probes"),
])
def test_pod_security_baseline_fires_per_control_and_applies_to_unlabelled_namespaces(change, control):
    spec = {"containers": [{"name": "app", "image": "x"}]}
    assert fired(pod_security.check, pss_plan(None, spec)) == []  # root, no seccomp: fine for baseline
    change(spec)
    out = fired(pod_security.check, pss_plan(None, spec))  # Talos's default level: baseline
    assert len(out) == 1 and control in out[0].message


def test_pod_security_privileged_namespace_only_from_the_allow_list():
    spec = {"hostNetwork": True, "containers": [{"name": "a", "image": "x", "securityContext": {"privileged": True}}]}
    assert fired(pod_security.check, pss_plan("privileged", spec, ns="cilium")) == []
    out = fired(pod_security.check, pss_plan("privileged", spec, ns="apps"))
    assert len(out) == 1 and "not in the allow-list" in out[0].message


# ---------------------------------------------------------------------------------------------
# flows
# ---------------------------------------------------------------------------------------------

def np(name: str, ns: str, spec: dict) -> dict:
    return rec("NetworkPolicy", f"{ns}-{name}", k8s("NetworkPolicy", name, ns, spec), group="networking.k8s.io/v1")


def cnp(name: str, ns: str, spec: dict) -> dict:
    return rec("CiliumNetworkPolicy", f"{ns}-{name}", k8s("CiliumNetworkPolicy", name, ns, spec), group="cilium.io/v2")


DENY = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
BIND = {"app.kubernetes.io/name": "bind9"}


def flow_plan(*, egress_port: int, ingress: bool, tenants_open: bool = False) -> dict:
    rs = [
        rec("Namespace", "dns-ns", k8s("Namespace", "dns")),
        rec("StatefulSet", "bind9", k8s("StatefulSet", "bind9", "dns", {"template": {"metadata": {"labels": BIND}, "spec": {
            "containers": [{"name": "named", "ports": [{"name": "dns", "containerPort": 5053, "protocol": "UDP"},
                                                       {"name": "dns-tcp", "containerPort": 5053}]}]}}}), group="apps/v1"),
        rec("Service", "bind9-svc", k8s("Service", "bind9", "dns", {"selector": BIND, "ports": [
            {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}]})),
        rec("", "edns", {"chart": "external-dns", "namespace": "dns", "values": {
            "extraArgs": ["--rfc2136-host=bind9.dns.svc.cluster.local", "--rfc2136-port=53"]}},
            type_="kubernetes:helm.sh/v3:Release"),
        np("default-deny", "dns", DENY),
        np("edns-egress", "dns", {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "external-dns"}},
                                  "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {"matchLabels": BIND}}],
                                                                        "ports": [{"port": egress_port, "protocol": "UDP"},
                                                                                  {"port": egress_port}]}]}),
    ]
    if ingress:
        rs.append(np("bind-ingress", "dns", {"podSelector": {"matchLabels": BIND}, "policyTypes": ["Ingress"],
                                             "ingress": [{"ports": [{"port": 5053, "protocol": "UDP"}, {"port": 5053}]}]}))
    for t in ("a", "b"):
        ns = f"tenant-{t}"
        rs += [rec("Namespace", f"ns-{t}", k8s("Namespace", ns, labels={"weebo.io/tenant": t})),
               rec("Pod", f"vm-{t}", k8s("Pod", "vm", ns, {"containers": [{"name": "c"}]}, labels={"kubevirt.io": "virt-launcher"})),
               np("default-deny", ns, DENY),
               np("same-ns", ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                  "egress": [{"to": [{"podSelector": {}}]}], "ingress": [{"from": [{"podSelector": {}}]}]})]
        if tenants_open:
            rs.append(cnp("open", ns, {"endpointSelector": {}, "egress": [{"toEntities": ["cluster"]}],
                                       "ingress": [{"fromEndpoints": [{"matchLabels": {
                                           "k8s:io.kubernetes.pod.namespace": "tenant-a" if t == "b" else "tenant-b"}}]}]}))
    return doc(*rs)


def test_flows_pass_when_both_ends_allow_the_flow():
    assert fired(flows.check, flow_plan(egress_port=5053, ingress=True)) == []


def test_flows_fire_on_a_denied_ingress_or_egress():
    out = [v.message for v in fired(flows.check, flow_plan(egress_port=5053, ingress=False))]
    assert out and all("ingress into the destination denied" in m for m in out)
    # The Service port (53) is not what a policy sees: the pods' targetPort is.
    out = [v.message for v in fired(flows.check, flow_plan(egress_port=53, ingress=True))]
    assert out and all("egress from the source denied" in m for m in out) and any("5053/UDP" in m for m in out)


def test_flows_fire_on_a_cross_tenant_flow():
    out = [v.message for v in fired(flows.check, flow_plan(egress_port=5053, ingress=True, tenants_open=True))]
    assert any("cross-tenant flow allowed" in m for m in out)


def test_flows_of_the_prod_platform_need_the_tenant_api_policies():
    from tests.test_convergence_plan import prod_doc

    d = prod_doc()
    assert fired(flows.check, d) == []
    d = copy.deepcopy(d)
    d["resources"] = [r for r in d["resources"] if not r["name"].endswith("allow-egress-to-tenants")
                      or "argocd" not in r["urn"]]
    out = [v.message for v in fired(flows.check, d)]
    assert out and all("Argo CD -> tenant" in m for m in out)


# ---------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------

def ref_plan(*, with_secret: bool) -> dict:
    rs = [rec("Deployment", "app", k8s("Deployment", "app", "apps", {"template": {"spec": {
        "serviceAccountName": "default",
        "volumes": [{"name": "kc", "secret": {"secretName": "acme-kubeconfig"}},
                    {"name": "opt", "secret": {"secretName": "maybe", "optional": True}}],
        "containers": [{"name": "a", "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}}]}]}}}),
        group="apps/v1"),
        rec("Namespace", "ns", k8s("Namespace", "apps")),
        rec("Cluster", "cluster", k8s("Cluster", "acme", "apps", {}), group="cluster.x-k8s.io/v1beta2"),
        rec("", "rel", {"chart": "x", "namespace": "apps", "values": {"auth": {"existingSecret": "token"}}},
            type_="kubernetes:helm.sh/v3:Release"),
        rec("InfrastructureProvider", "capk", k8s("InfrastructureProvider", "kubevirt", "capk-system", {
            "configSecret": {"name": "github-token", "namespace": "capk-system"}}), group="operator.cluster.x-k8s.io/v1alpha2"),
    ]
    if with_secret:
        rs += [rec("Secret", "token", k8s("Secret", "token", "apps")),
               rec("Secret", "gh", k8s("Secret", "github-token", "capk-system"))]
    return doc(*rs)


def test_references_resolve_to_program_and_controller_objects():
    # acme-kubeconfig is CAPI's; default is the service account controller's.
    assert fired(references.check, ref_plan(with_secret=True)) == []


def test_references_fire_on_a_missing_secret():
    out = sorted(v.message for v in fired(references.check, ref_plan(with_secret=False)))
    assert len(out) == 3
    assert any("Secret apps/token" in m and "env T" in m for m in out)
    assert any("existingSecret references Secret apps/token" in m for m in out)
    assert any("configSecret references Secret capk-system/github-token" in m for m in out)


def _talos_api_job(*, talos_sa: bool) -> dict:
    """A CronJob mounting the talosconfig Secret that Talos writes for a talos.dev ServiceAccount
    of the same name (management-etcd backups read the etcd snapshot this way)."""
    job = rec("CronJob", "etcd-backup", k8s("CronJob", "etcd", "backups", {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "snapshot"}],
        "volumes": [{"name": "talos-secrets", "secret": {"secretName": "etcd"}}]}}}}}), group="batch/v1")
    rs = [job, rec("Namespace", "ns", k8s("Namespace", "backups"))]
    if talos_sa:
        body = {**k8s("ServiceAccount", "etcd", "backups", {"roles": ["os:etcd:backup"]}), "apiVersion": "talos.dev/v1alpha1"}
        rs.append(rec("ServiceAccount", "talos-sa", body, group="talos.dev/v1alpha1"))
    return doc(*rs)


def test_the_secret_talos_writes_for_its_service_account_resolves_a_reference():
    assert fired(references.check, _talos_api_job(talos_sa=True)) == []
    out = [v.message for v in fired(references.check, _talos_api_job(talos_sa=False))]
    assert len(out) == 1 and "Secret backups/etcd" in out[0]


def test_a_core_service_account_gets_no_talos_secret():
    """Only talos.dev ServiceAccounts make Talos write a Secret; a Kubernetes one of the same
    name does not."""
    d = _talos_api_job(talos_sa=False)
    d["resources"].append(rec("ServiceAccount", "core-sa", k8s("ServiceAccount", "etcd", "backups")))
    assert [v.message for v in fired(references.check, d)] != []
