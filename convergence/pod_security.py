"""Rule ``pod-security``: every pod template the program renders passes the Pod Security level its
namespace enforces, and only allow-listed namespaces enforce ``privileged``.

The checks are the controls of the Kubernetes Pod Security Standards page, field by field
(Ref: kubernetes/website content/en/docs/concepts/security/pod-security-standards.md, policy
version ``latest``). A namespace without the ``pod-security.kubernetes.io/enforce`` label gets
Talos's cluster default: ``baseline``, ``kube-system`` exempt (Ref: siderolabs/talos
pkg/machinery/config/generate, PodSecurity admission plugin defaults). A pod that fails is
refused by the API server at admission: its Deployment/StatefulSet never gets a pod, and whatever
waits for it times out.

Pod templates inside Helm charts are rendered by Helm at deploy time and are not seen here
(the chart values that matter are checked by the policy rules); nor are the pods controllers
create (virt-launcher, importer), whose security context KubeVirt and CDI set themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from convergence.model import Plan, Violation, get, opaque, pod_template
from policy.rules import PRIVILEGED_NAMESPACES

RULE = "pod-security"
ENFORCE = "pod-security.kubernetes.io/enforce"
LEVELS = ("privileged", "baseline", "restricted")
DEFAULT_LEVEL = "baseline"
EXEMPT_NAMESPACES = frozenset({"kube-system"})

BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
SAFE_SYSCTLS = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                          "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                          "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                          "net.ipv4.tcp_keepalive_probes"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                                "projected", "secret"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(key) or []):
            if isinstance(c, Mapping):
                yield f"{key}[{i}]({c.get('name', '?')})", c


def _handlers(c: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), Mapping):
            yield probe, c[probe]
    for hook in ("postStart", "preStop"):
        h = get(c, "lifecycle", hook)
        if isinstance(h, Mapping):
            yield f"lifecycle.{hook}", h


def baseline(template: Mapping[str, Any]) -> list[str]:
    """What a pod template violates of the baseline level (empty: it passes)."""
    spec = template.get("spec") or {}
    meta = template.get("metadata") or {}
    psc = spec.get("securityContext") or {}
    out = []
    if get(psc, "windowsOptions", "hostProcess") is True:
        out.append("HostProcess: spec.securityContext.windowsOptions.hostProcess is true")
    for ns in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(ns) is True:
            out.append(f"Host Namespaces: spec.{ns} is true")
    for i, v in enumerate(spec.get("volumes") or []):
        if isinstance(v, Mapping) and "hostPath" in v:
            out.append(f"HostPath Volumes: spec.volumes[{i}]({v.get('name')}) is a hostPath")
    out.extend(_common_context("spec.securityContext", psc))
    for s in psc.get("sysctls") or []:
        if isinstance(s, Mapping) and s.get("name") not in SAFE_SYSCTLS:
            out.append(f"Sysctls: {s.get('name')} is not a safe sysctl")
    for key, value in (meta.get("annotations") or {}).items():
        if str(key).startswith(APPARMOR_ANNOTATION) and not (value == "runtime/default" or str(value).startswith("localhost/")):
            out.append(f"AppArmor: annotation {key}={value}")
    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        if get(sc, "windowsOptions", "hostProcess") is True:
            out.append(f"HostProcess: {where}")
        if sc.get("privileged") is True:
            out.append(f"Privileged Containers: {where} securityContext.privileged is true")
        added = [str(x) for x in get(sc, "capabilities", "add") or []]
        if bad := [x for x in added if x not in BASELINE_CAPABILITIES]:
            out.append(f"Capabilities: {where} adds {', '.join(bad)}")
        for p in c.get("ports") or []:
            if isinstance(p, Mapping) and p.get("hostPort") not in (None, 0):
                out.append(f"Host Ports: {where} hostPort {p.get('hostPort')}")
        for hname, h in _handlers(c):
            for kind in ("httpGet", "tcpSocket"):
                if get(h, kind, "host") not in (None, ""):
                    out.append(f"Host Probes / Lifecycle Hooks: {where} {hname}.{kind}.host is set")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"/proc Mount Type: {where} procMount {sc.get('procMount')}")
        out.extend(_common_context(f"{where} securityContext", sc))
    return out


def _common_context(where: str, sc: Mapping[str, Any]) -> list[str]:
    out = []
    aa = get(sc, "appArmorProfile", "type")
    if aa not in (None, "RuntimeDefault", "Localhost"):
        out.append(f"AppArmor: {where}.appArmorProfile.type is {aa}")
    se = sc.get("seLinuxOptions") or {}
    if se.get("type") not in (None, *SELINUX_TYPES):
        out.append(f"SELinux: {where}.seLinuxOptions.type is {se.get('type')}")
    for f in ("user", "role"):
        if se.get(f) not in (None, ""):
            out.append(f"SELinux: {where}.seLinuxOptions.{f} is set")
    if get(sc, "seccompProfile", "type") == "Unconfined":
        out.append(f"Seccomp: {where}.seccompProfile.type is Unconfined")
    return out


def restricted(template: Mapping[str, Any]) -> list[str]:
    """What a pod template violates of the restricted level (baseline included)."""
    out = baseline(template)
    spec = template.get("spec") or {}
    psc = spec.get("securityContext") or {}
    for i, v in enumerate(spec.get("volumes") or []):
        if isinstance(v, Mapping):
            kinds = [k for k in v if k != "name"]
            if bad := [k for k in kinds if k not in RESTRICTED_VOLUMES]:
                out.append(f"Volume Types: spec.volumes[{i}]({v.get('name')}) is {', '.join(bad)}")
    pod_non_root = psc.get("runAsNonRoot")
    pod_seccomp = get(psc, "seccompProfile", "type")
    if psc.get("runAsUser") == 0:
        out.append("Running as Non-root user: spec.securityContext.runAsUser is 0")
    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"Privilege Escalation: {where} does not set allowPrivilegeEscalation: false")
        non_root = sc.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            out.append(f"Running as Non-root: {where} runAsNonRoot is not true (pod or container)")
        if sc.get("runAsUser") == 0:
            out.append(f"Running as Non-root user: {where} runAsUser is 0")
        seccomp = get(sc, "seccompProfile", "type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"Seccomp: {where} has no RuntimeDefault/Localhost seccompProfile (pod or container)")
        drop = [str(x) for x in get(sc, "capabilities", "drop") or []]
        if "ALL" not in drop:
            out.append(f"Capabilities: {where} does not drop ALL")
        added = [str(x) for x in get(sc, "capabilities", "add") or []]
        if bad := [x for x in added if x != "NET_BIND_SERVICE"]:
            out.append(f"Capabilities: {where} adds {', '.join(bad)} (restricted allows only NET_BIND_SERVICE)")
    return out


def check(plan: Plan, context: Mapping[str, Any] | None = None) -> Iterator[Violation]:
    levels: dict[tuple[str, str], str] = {}
    for ns in plan.of_kind("Namespace"):
        level = ns.labels.get(ENFORCE)
        if isinstance(level, str) and not opaque(level):
            levels[(ns.cluster, ns.name)] = level
            if level == "privileged" and ns.name not in PRIVILEGED_NAMESPACES:
                yield Violation(RULE, ns.cluster, ns.urn, f"namespace '{ns.name}' enforces 'privileged' but is not in "
                                f"the allow-list ({', '.join(sorted(PRIVILEGED_NAMESPACES))})")
    for o in plan.objects:
        if o.source != "program" or o.namespace in EXEMPT_NAMESPACES:
            continue
        tmpl = pod_template(o)
        if tmpl is None or opaque(tmpl.get("spec")):
            continue
        level = levels.get((o.cluster, o.namespace), DEFAULT_LEVEL)
        problems = restricted(tmpl) if level == "restricted" else baseline(tmpl) if level == "baseline" else []
        if problems:
            yield Violation(RULE, o.cluster, o.urn, f"{o.kind} {o.namespace}/{o.name}: namespace enforces '{level}', "
                            "so the API server refuses its pods: " + "; ".join(problems))
