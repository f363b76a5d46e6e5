"""The objects known controllers will create from what the program renders.

A rule that only saw the program's own objects would miss what breaks a real cluster most often:
the LoadBalancer Service CAPK creates for a tenant's API, the PVCs and pods behind every VM, the
Secrets a provider writes and others read. Each function here turns program objects into the
objects the named controller creates, at the versions pinned in ``versions.py``; each cites the
upstream code it follows. What a controller does at runtime beyond that (retries, status, which
node a pod lands on) is not modelled.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import versions
from convergence.model import Obj, get, opaque

if TYPE_CHECKING:
    from convergence.model import Plan

MIB = 1024 * 1024

# The states of a tenant's machine pools that must each fit (quotas): every pool at full size
# ("running"); every pool rolling at once with its surge machines' disks being imported while the
# old machines still run ("surge-importing": maxUnavailable 0, so nothing is freed before the new
# machine is ready); and the surge machines running ("surged"). The first creation imports every
# disk at once, but a claim refused then is retried by CDI and admitted as imports finish, so it
# converges: it is not a state that must fit.
PHASES = ("running", "surge-importing", "surged")

# The controllers as pinned (versions.py): what each reads is cited at that version, so a bump
# names the version whose source must be read again.
CAPK = f"CAPK {versions.CAPK_VERSION}"
CAPI = f"Cluster API {versions.CAPI_CORE_VERSION}"
CABPT = f"CABPT {versions.CABPT_VERSION}"
KUBEVIRT = f"KubeVirt {versions.KUBEVIRT_VERSION}"
CDI = f"CDI {versions.CDI_VERSION}"
TALOS = f"Talos {versions.TALOS_VERSION}"
CERT_MANAGER = "cert-manager"
CHART = "Helm chart"

# KubeVirt's virt-launcher memory overhead, constant part.
# Ref: kubevirt/kubevirt pkg/hypervisor/kvm/hypervisorbackend.go (GetMemoryOverhead) @ v1.9.0:
# virt-launcher-monitor 25Mi + virt-launcher 100Mi + virtlogd 25Mi + virtqemud 40Mi + qemu 30Mi,
# 8Mi per vCPU, 8Mi fixed, 32Mi for the auto-attached graphics device (default), pagetables
# memory/512.
LAUNCHER_FIXED_OVERHEAD = (25 + 100 + 25 + 40 + 30 + 8) * MIB
LAUNCHER_PER_VCPU = 8 * MIB
LAUNCHER_GRAPHICS = 32 * MIB
# The guest-console-log sidecar, on unless the VM or the KubeVirt CR disables serial console log.
# Ref: kubevirt/kubevirt pkg/virt-controller/services/serialconsolelog.go
# (resourcesForSerialConsoleLogContainer) @ v1.9.0: requests 5m cpu, 35M memory.
CONSOLE_LOG_CPU_MILLI = 5
CONSOLE_LOG_MEMORY = 35 * 1000 * 1000
# CDI importer pods: default requests of CDIConfig podResourceRequirements.
# Ref: kubevirt/containerized-data-importer pkg/controller/config-controller.go
# (defaultCPURequest "100m", defaultMemRequest "60M") @ v1.66.0.
IMPORTER_CPU_MILLI = 100
IMPORTER_MEMORY = 60 * 1000 * 1000

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 10**-3}


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity (``"2"``, ``"500m"``, ``"8Gi"``, ``"60M"``) as a number of units."""
    if isinstance(value, bool) or value is None or opaque(value):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip()
    for suffix, mult in _BINARY.items():
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * mult
    for suffix, mult in _DECIMAL.items():
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * mult
    try:
        return float(s)
    except ValueError:
        return None


def objects(plan: Plan) -> list[Obj]:
    out: list[Obj] = []
    for fn in (capk_load_balancers, virtual_machines, capi_secrets, cert_manager_secrets, talos_api_secrets,
               chart_objects):
        out.extend(fn(plan))
    return out


# ---------------------------------------------------------------------------------------------
# Talos API access from Kubernetes
# ---------------------------------------------------------------------------------------------

def talos_api_secrets(plan: Plan) -> Iterator[Obj]:
    """For each ``talos.dev/v1alpha1`` ServiceAccount, Talos (machined, on a control-plane node
    with ``machine.features.kubernetesTalosAPIAccess`` allowing its namespace and roles) writes a
    Secret of the same name in the same namespace, holding a talosconfig limited to those roles.

    Ref: siderolabs/talos website/content/v1.13/advanced/talos-api-access-from-k8s.md ("a
    secret with the same name ... containing the talosconfig") and
    internal/app/machined/pkg/controllers/kubeaccess (ServiceAccount CRD controller) @ v1.13.9."""
    for sa in plan.of_kind("ServiceAccount"):
        if not sa.api_version.startswith("talos.dev/"):
            continue
        yield Obj(sa.cluster, "v1", "Secret", sa.namespace, sa.name,
                  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": sa.name, "namespace": sa.namespace}},
                  sa.urn, f"{TALOS} (kubeaccess ServiceAccount controller)")


# ---------------------------------------------------------------------------------------------
# Cluster API
# ---------------------------------------------------------------------------------------------

def _capi_clusters(plan: Plan) -> Iterator[Obj]:
    yield from plan.of_kind("Cluster")


def capk_load_balancers(plan: Plan) -> Iterator[Obj]:
    """CAPK creates ``<cluster>-lb`` in the KubevirtCluster's namespace, typed, labelled and
    annotated from ``controlPlaneServiceTemplate``, selecting the control-plane VMs on 6443.

    Ref: kubernetes-sigs/cluster-api-provider-kubevirt pkg/loadbalancer/loadbalancer.go
    (NewLoadBalancer, Create) @ v0.11.2."""
    infra = {(o.cluster, o.namespace, o.name): o for o in plan.of_kind("KubevirtCluster")}
    for cluster in _capi_clusters(plan):
        ref = cluster.spec.get("infrastructureRef") or {}
        kc = infra.get((cluster.cluster, cluster.namespace, ref.get("name")))
        if kc is None:
            continue
        template = kc.spec.get("controlPlaneServiceTemplate") or {}
        meta = template.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        labels["cluster.x-k8s.io/cluster-name"] = cluster.name
        body = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"{cluster.name}-lb", "namespace": kc.namespace, "labels": labels,
                         "annotations": dict(meta.get("annotations") or {})},
            "spec": {"type": get(template, "spec", "type") or "ClusterIP",
                     "ports": [{"port": 6443, "protocol": "TCP", "targetPort": 6443}],
                     "selector": {"cluster.x-k8s.io/role": "control-plane",
                                  "cluster.x-k8s.io/cluster-name": cluster.name}},
        }
        yield Obj(kc.cluster, "v1", "Service", kc.namespace, f"{cluster.name}-lb", body, kc.urn,
                  f"{CAPK} (pkg/loadbalancer/loadbalancer.go)")


def capi_secrets(plan: Plan) -> Iterator[Obj]:
    """Secrets the Cluster API controllers write for each Cluster.

    - ``<cluster>-kubeconfig``: Ref: kubernetes-sigs/cluster-api util/secret/secret.go (Name) and
      core/reconcilers/cluster/cluster_controller_phases.go (reconcileKubeconfig) @ v1.14.0.
    - ``<cluster>-talosconfig``: Ref: siderolabs/cluster-api-bootstrap-provider-talos
      controllers/secrets.go (``scope.Cluster.GetName() + "-talosconfig"``) @ v0.6.12, read by
      siderolabs/cluster-api-control-plane-provider-talos controllers/configs.go @ v0.5.12.
    """
    for cluster in _capi_clusters(plan):
        for suffix, who in (("kubeconfig", f"{CAPI} (util/secret/secret.go)"),
                            ("talosconfig", f"{CABPT} (controllers/secrets.go)")):
            name = f"{cluster.name}-{suffix}"
            yield Obj(cluster.cluster, "v1", "Secret", cluster.namespace, name,
                      {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": cluster.namespace}},
                      cluster.urn, who)


def _machine_sets(plan: Plan) -> Iterator[tuple[Obj, str, int, int]]:
    """(owner, KubevirtMachineTemplate name, replicas, rolling-update surge) for each
    MachineDeployment and TalosControlPlane."""
    for md in plan.of_kind("MachineDeployment"):
        replicas = md.spec.get("replicas")
        replicas = replicas if isinstance(replicas, int) else 1
        # CAPI's default rollout is RollingUpdate with maxSurge 1.
        # Ref: kubernetes-sigs/cluster-api core/webhooks/admission/machinedeployment.go (Default) @ v1.14.0.
        surge = get(md.spec, "rollout", "strategy", "rollingUpdate", "maxSurge")
        surge = surge if isinstance(surge, int) else 1
        name = get(md.spec, "template", "spec", "infrastructureRef", "name")
        if isinstance(name, str):
            yield md, name, replicas, surge
    for tcp in plan.of_kind("TalosControlPlane"):
        replicas = tcp.spec.get("replicas")
        replicas = replicas if isinstance(replicas, int) else 1
        surge = get(tcp.spec, "rolloutStrategy", "rollingUpdate", "maxSurge")
        surge = surge if isinstance(surge, int) else 1
        name = get(tcp.spec, "infrastructureTemplate", "name")
        if isinstance(name, str):
            yield tcp, name, replicas, surge


def virtual_machines(plan: Plan) -> Iterator[Obj]:
    """Per machine of a pool (surge included): the VirtualMachine CAPK creates, its virt-launcher
    pod (KubeVirt), and per ``dataVolumeTemplate`` the PVC, the populator's PVC' and the importer
    pod (CDI) while the disk is imported.

    Ref: kubernetes-sigs/cluster-api-provider-kubevirt pkg/kubevirt/utils.go
    (newVirtualMachineFromKubevirtMachine, buildVirtualMachineInstanceTemplate: labels
    ``kubevirt.io/vm``, ``name``, ``cluster.x-k8s.io/role``, ``cluster.x-k8s.io/cluster-name``;
    data volumes prefixed with the machine name) @ v0.11.2. Ref: kubevirt/containerized-data-importer
    pkg/controller/populators/util.go (PVCPrimeName: the import runs into ``prime-<uid>`` of the
    same size, in the same namespace) @ v1.66.0; an ``http`` source of a raw(.xz) image streams
    into it without scratch space (pkg/importer/http-datasource.go, phase Info -> Convert).
    An importer never runs beside its own VM's launcher: with a WaitForFirstConsumer class
    KubeVirt first runs a short-lived temporary pod (Ref: kubevirt/kubevirt
    pkg/virt-controller/watch/vmi/lifecycle.go, RenderLaunchManifestNoVm) and creates the
    launcher only when the DataVolume is ready."""
    templates = {(o.cluster, o.namespace, o.name): o for o in plan.of_kind("KubevirtMachineTemplate")}
    for owner, tname, replicas, surge in _machine_sets(plan):
        machines = {"running": replicas, "surge-importing": replicas, "surged": replicas + surge}
        disks = {"running": replicas, "surge-importing": replicas + surge, "surged": replicas + surge}
        importing = {"surge-importing": surge}
        kmt = templates.get((owner.cluster, owner.namespace, tname))
        if kmt is None:
            continue
        vm = get(kmt.spec, "template", "spec", "virtualMachineTemplate") or {}
        cluster_name = owner.spec.get("clusterName") or owner.labels.get("cluster.x-k8s.io/cluster-name") or ""
        role = "control-plane" if owner.kind == "TalosControlPlane" else "worker"
        vmi = get(vm, "spec", "template") or {}
        labels = dict(get(vmi, "metadata", "labels") or {})
        labels.update({"kubevirt.io": "virt-launcher", "kubevirt.io/vm": f"{tname}-machine",
                       "name": f"{tname}-machine", "cluster.x-k8s.io/role": role,
                       "cluster.x-k8s.io/cluster-name": cluster_name})
        cpu, memory = launcher_requests(vmi.get("spec") or {}, plan)
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"virt-launcher-{tname}", "namespace": kmt.namespace, "labels": labels},
               "spec": {"containers": [{"name": "compute", "resources": {"requests": {
                   "cpu": f"{cpu}m", "memory": str(memory)}}}]}}
        yield Obj(kmt.cluster, "v1", "Pod", kmt.namespace, f"virt-launcher-{tname}", pod, kmt.urn,
                  f"{KUBEVIRT} virt-launcher (pkg/virt-controller/services/renderresources.go)", replicas, machines)
        for dvt in get(vm, "spec", "dataVolumeTemplates") or []:
            storage = get(dvt, "spec", "storage") or get(dvt, "spec", "pvc") or {}
            dv_name = f"{tname}-{get(dvt, 'metadata', 'name')}"
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": dv_name, "namespace": kmt.namespace},
                   "spec": {"storageClassName": storage.get("storageClassName"),
                            "accessModes": storage.get("accessModes"), "resources": storage.get("resources")}}
            yield Obj(kmt.cluster, "v1", "PersistentVolumeClaim", kmt.namespace, dv_name, pvc, kmt.urn,
                      f"{CDI} DataVolume (pkg/controller/datavolume)", replicas, disks)
            if get(dvt, "spec", "source", "http") is not None or get(dvt, "spec", "source", "registry") is not None:
                prime = {**pvc, "metadata": {"name": f"prime-{dv_name}", "namespace": kmt.namespace}}
                yield Obj(kmt.cluster, "v1", "PersistentVolumeClaim", kmt.namespace, f"prime-{dv_name}", prime,
                          kmt.urn, f"{CDI} populator (pkg/controller/populators/util.go)", surge, importing)
                importer = {"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": f"importer-prime-{dv_name}", "namespace": kmt.namespace,
                                         "labels": {"app": "containerized-data-importer"}},
                            "spec": {"containers": [{"name": "importer", "resources": {"requests": {
                                "cpu": f"{IMPORTER_CPU_MILLI}m", "memory": str(IMPORTER_MEMORY)}}}]}}
                yield Obj(kmt.cluster, "v1", "Pod", kmt.namespace, f"importer-prime-{dv_name}", importer, kmt.urn,
                          f"{CDI} importer (pkg/controller/config-controller.go)", surge, importing)


def _serial_console_log_disabled(plan: Plan) -> bool:
    for kv in plan.of_kind("KubeVirt"):
        if get(kv.spec, "configuration", "virtualMachineOptions", "disableSerialConsoleLog") is not None:
            return True
    return False


def launcher_requests(vmi_spec: Mapping[str, Any], plan: Plan | None = None) -> tuple[int, int]:
    """(cpu millicores, memory bytes) a virt-launcher pod requests for a VMI spec."""
    domain = vmi_spec.get("domain") or {}
    requests = get(domain, "resources", "requests") or {}
    guest = quantity(requests.get("memory")) or quantity(get(domain, "memory", "guest")) or 0
    cores = get(domain, "cpu", "cores") or 1
    sockets = get(domain, "cpu", "sockets") or 1
    threads = get(domain, "cpu", "threads") or 1
    vcpus = int(cores) * int(sockets) * int(threads) if domain.get("cpu") else int(quantity(requests.get("cpu")) or 1)
    memory = int(guest + guest // 512 + LAUNCHER_FIXED_OVERHEAD + LAUNCHER_PER_VCPU * max(vcpus, 1))
    if get(domain, "devices", "autoattachGraphicsDevice") is not False:
        memory += LAUNCHER_GRAPHICS
    cpu_req = quantity(requests.get("cpu"))
    # Without a cpu request KubeVirt requests 1/10 of a core per vCPU (cpuAllocationRatio 10).
    # Ref: kubevirt/kubevirt pkg/virt-controller/services/renderresources.go (WithCPUPinning /
    # cpuAllocationRatio) @ v1.9.0.
    cpu = int(round(cpu_req * 1000)) if cpu_req is not None else 100 * max(vcpus, 1)
    console = get(domain, "devices", "autoattachSerialConsole") is not False \
        and get(domain, "devices", "logSerialConsole") is not False \
        and not (plan is not None and _serial_console_log_disabled(plan))
    if console:
        cpu += CONSOLE_LOG_CPU_MILLI
        memory += CONSOLE_LOG_MEMORY
    return cpu, memory


# ---------------------------------------------------------------------------------------------
# cert-manager
# ---------------------------------------------------------------------------------------------

def cert_manager_secrets(plan: Plan) -> Iterator[Obj]:
    """cert-manager writes each Certificate's ``spec.secretName`` in the Certificate's namespace,
    and each ACME issuer's account key (``privateKeySecretRef``) in the cluster resource namespace
    (the chart runs the controller with ``--cluster-resource-namespace=$(POD_NAMESPACE)``).

    Ref: cert-manager/cert-manager pkg/controller/certificates/issuing/issuing_controller.go and
    pkg/issuer/acme/setup.go @ the chart version pinned in versions.py."""
    cm_namespace = next((str(r.get("inputs", {}).get("namespace")) for _, r in plan.releases
                         if r.get("inputs", {}).get("chart") == "cert-manager"), "cert-manager")
    for cert in plan.of_kind("Certificate"):
        name = cert.spec.get("secretName")
        if isinstance(name, str):
            yield Obj(cert.cluster, "v1", "Secret", cert.namespace, name,
                      {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": cert.namespace}},
                      cert.urn, f"{CERT_MANAGER} (Certificate {cert.namespace}/{cert.name})")
    for issuer in plan.of_kind("ClusterIssuer", "Issuer"):
        name = get(issuer.spec, "acme", "privateKeySecretRef", "name")
        ns = cm_namespace if issuer.kind == "ClusterIssuer" else issuer.namespace
        if isinstance(name, str):
            yield Obj(issuer.cluster, "v1", "Secret", ns, name,
                      {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}},
                      issuer.urn, f"{CERT_MANAGER} (ACME account of {issuer.name})")


# ---------------------------------------------------------------------------------------------
# Helm charts
# ---------------------------------------------------------------------------------------------

def _svc(selector: dict[str, str], port: int, target: int) -> dict[str, Any]:
    return {"spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"port": port, "targetPort": target, "protocol": "TCP"}]}}


def authentik_outposts(plan: Plan) -> Iterator[Obj]:
    """Authentik's Kubernetes integration deploys each managed outpost as a Deployment and a
    Service named by ``object_naming_template`` (default ``ak-outpost-%(name)s``) in
    ``kubernetes_namespace`` (default: Authentik's own), listening on 9000.

    Ref: goauthentik/authentik website/docs/outposts/_config.md (object_naming_template,
    kubernetes_namespace) and website/docs/outposts/integrations/kubernetes.md."""
    import json

    ak_ns = next((str(r["inputs"].get("namespace")) for _, r in plan.releases
                  if (r.get("inputs") or {}).get("chart") == "authentik"), None)
    for urn, r in plan.records.items():
        if r.get("type") != "authentik:index/outpost:Outpost":
            continue
        inputs = r.get("inputs") or {}
        try:
            config = json.loads(inputs.get("config") or "{}")
        except (TypeError, ValueError):
            config = {}
        ns = str(config.get("kubernetes_namespace") or ak_ns or "")
        name = inputs.get("name")
        if not ns or not isinstance(name, str) or opaque(name) or not inputs.get("serviceConnection"):
            continue
        svc_name = str(config.get("object_naming_template") or "ak-outpost-%(name)s") % {"name": name}
        labels = {"app.kubernetes.io/name": "authentik-proxy", "app.kubernetes.io/instance": name}
        yield Obj("management", "v1", "Service", ns, svc_name,
                  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc_name, "namespace": ns},
                   **_svc(labels, 9000, 9000)}, urn, "Authentik outpost controller (outposts/_config.md)")


def chart_objects(plan: Plan) -> Iterator[Obj]:
    """What the program's charts create that other objects depend on, as far as known.

    - Traefik: its Service ``<release>`` (type from ``service.spec.type``, default LoadBalancer,
      annotations from ``service.annotations``). Ref: traefik/traefik-helm-chart traefik/values.yaml
      (service.spec.type: LoadBalancer) @ v41.3.0.
    - Argo CD: the ``argocd-secret`` Secret and the ``argocd-server`` Service. Ref: argoproj/argo-helm
      charts/argo-cd/values.yaml (configs.secret.createSecret: true) @ argo-cd-10.1.1.
      Argo CD's server listens on 8080 (server.containerPorts.server).
    - Vault: Services ``<release>-active``/``-internal`` (8200), ServiceAccount ``<release>``. Ref:
      hashicorp/vault-helm templates/server-ha-active-service.yaml, server-serviceaccount.yaml @ v0.34.1.
    - Authentik: Service ``<release>-server``, port 80 to the server's 9000. Ref: goauthentik/helm
      charts/authentik/values.yaml (server.containerPorts.http: 9000, server.service.servicePortHttp:
      80) @ authentik-2026.8.0.
    - Cilium: Service ``hubble-ui`` (80 to 8081) when ``hubble.ui.enabled``. Ref: cilium/cilium
      install/kubernetes/cilium/templates/hubble-ui/service.yaml @ 1.20.0.
    """
    for cluster, r in plan.releases:
        inputs = r.get("inputs") or {}
        chart = inputs.get("chart")
        ns = str(inputs.get("namespace") or "default")
        release = str(inputs.get("name") or r.get("name"))
        values = inputs.get("values") if isinstance(inputs.get("values"), Mapping) else {}
        urn = str(r.get("urn"))

        def obj(kind: str, name: str, body: dict[str, Any] | None = None, who: str = "") -> Obj:
            base = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns}}
            return Obj(cluster, "v1", kind, ns, name, {**base, **(body or {})}, urn, f"{CHART} {chart} {who}".strip())

        if chart == "traefik" and get(values, "service", "enabled") is not False:
            svc_type = get(values, "service", "spec", "type") or get(values, "service", "type") or "LoadBalancer"
            body = {"metadata": {"name": release, "namespace": ns,
                                 "annotations": dict(get(values, "service", "annotations") or {})},
                    "spec": {"type": svc_type, "selector": {"app.kubernetes.io/name": "traefik"},
                             "ports": [{"port": 80, "targetPort": 8000}, {"port": 443, "targetPort": 8443}]}}
            yield obj("Service", release, body, "(traefik/values.yaml service)")
        elif chart == "argo-cd":
            yield obj("Secret", "argocd-secret", None, "(configs.secret)")
            yield obj("Service", "argocd-server", _svc({"app.kubernetes.io/name": "argocd-server"}, 80, 8080))
        elif chart == "vault":
            server = {"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": release, "component": "server"}
            yield obj("Service", f"{release}-active", _svc({**server, "vault-active": "true"}, 8200, 8200))
            yield obj("Service", f"{release}-internal", _svc(server, 8200, 8200))
            yield obj("ServiceAccount", release)
        elif chart == "authentik":
            yield obj("Service", f"{release}-server",
                      _svc({"app.kubernetes.io/name": "authentik", "app.kubernetes.io/component": "server"}, 80, 9000))
        elif chart == "cilium" and get(values, "hubble", "ui", "enabled") is True:
            yield obj("Service", "hubble-ui", _svc({"k8s-app": "hubble-ui"}, 80, 8081))
    yield from authentik_outposts(plan)
    # Every namespace has a ``default`` ServiceAccount (the service account controller).
    for ns in list(plan.of_kind("Namespace")):
        yield Obj(ns.cluster, "v1", "ServiceAccount", ns.name, "default",
                  {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns.name}},
                  ns.urn, "kube-controller-manager (serviceaccounts-controller)")
