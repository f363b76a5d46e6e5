"""The platform's guardrails as plain functions over resource records.

A *record* is one resource as ``plan.json`` shows it (``offline.plan.resource_record``)::

    {"urn", "type", "name", "custom", "parent", "protect", "retainOnDelete", "inputs", ...}

with secrets replaced by ``"[secret]"`` and values only known after deployment by
``"[unknown]"``. The offline plan (``offline/plan.py``) runs :func:`evaluate` over its plan
document, the CrossGuard pack (``policy/pack.py``) builds the same records from what the engine
hands a policy, and the tests run both. This module imports nothing but the standard library,
so the policy pack needs nothing of the program to run.

Rules (id, level, what):

- ``pinned-versions`` (mandatory): Helm releases name an exact chart version (no ``latest``,
  no range, never missing); release manifests (yaml/v2 URLs) point at a versioned path; Argo CD
  Applications pin ``targetRevision``; Cluster API operator providers pin ``spec.version``.
- ``pinned-images`` (mandatory): every ``image`` (manifests and Helm values) has a tag or a
  digest, never ``latest``. A Helm ``image`` map without a tag uses the chart's appVersion,
  which the chart version pins: allowed.
- ``secret-inputs`` (mandatory): inputs whose key names a credential (password, token, secret,
  privateKey, kubeconfig, …, see :func:`is_credential_key`) are secret-marked; so are PEM private
  keys wherever they appear, and every entry of a Kubernetes Secret except the well-known
  non-secret keys (url, username, …).
- ``secret-outputs`` (mandatory): stack outputs named like credentials (kubeconfig,
  talosconfig, …) are secret.
- ``no-secret-in-configmap-or-env`` (mandatory): no secret value and no credential-named key in
  a ConfigMap; an env entry whose name names a credential uses ``valueFrom``, and no env entry
  carries a secret as a literal ``value``.
- ``no-secret-in-helm-values`` (mandatory): no secret in Helm values: create a Secret and pass
  its name (existingSecret / secretKeyRef) instead.
- ``protect-irreplaceable`` (mandatory) and ``retain-irreplaceable`` (advisory): the resources
  listed in :func:`irreplaceable_reason` are ``protect``-ed (and ``retainOnDelete``).
- ``namespace-pod-security`` (mandatory): every Namespace has a valid
  ``pod-security.kubernetes.io/enforce`` label.
- ``namespace-default-deny`` (mandatory, stack): every Namespace the program creates holds a
  NetworkPolicy that selects all pods and denies ingress and egress.
- ``privileged-namespaces`` (mandatory): privileged workloads (``securityContext.privileged``,
  ``hostNetwork``, ``hostPID``, ``hostIPC``, in manifests or in Helm values) and namespaces that
  enforce the ``privileged`` Pod Security level exist only in :data:`PRIVILEGED_NAMESPACES`.
- ``workload-resources`` (mandatory): every container of a workload the program renders itself
  (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob — not Helm charts) sets
  cpu and memory requests and limits.

Exemptions are explicit and visible in the plan:

- a tenant's CAPI ``Cluster`` may be unprotected when its metadata carries the annotation
  ``weebo.io/allow-deletion: "true"`` (set from ``tenants[].allowDeletion``);
- an OVH ``ServerReinstallTask`` may be unprotected when the evaluation context says
  ``allowReinstall`` (``managementCluster.allowReinstall`` in the stack config).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

SECRET = "[secret]"  # same markers as offline.mocks.redact (tests check they agree)
UNKNOWN = "[unknown]"

# Namespaces whose workloads truly need host access. Mirror of
# components.core.namespace.PRIVILEGED_NAMESPACES (tests/test_policy.py fails when they differ);
# copied so that the policy pack runs without the program's dependencies.
PRIVILEGED_NAMESPACES = frozenset({"kube-system", "cilium", "kubevirt", "cdi", "local-path-storage", "netbird",
                                   "kubevirt-csi-driver"})

POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"
ALLOW_DELETION_ANNOTATION = "weebo.io/allow-deletion"

HELM_RELEASE_TYPES = frozenset({"kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"})
YAML_TYPES = frozenset({"kubernetes:yaml/v2:ConfigFile", "kubernetes:yaml/v2:ConfigGroup"})
REINSTALL_TASK = "ovh:Dedicated/serverReinstallTask:ServerReinstallTask"
TALOS_SECRETS = "talos:machine/secrets:Secrets"
VAULT_MOUNT = "vault:index/mount:Mount"
STACK_TYPE = "pulumi:pulumi:Stack"

WORKLOAD_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Violation:
    rule: str
    urn: str
    message: str
    mandatory: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        level = "mandatory" if self.mandatory else "advisory"
        return f"[{level}] {self.rule}: {self.urn or '(stack)'}\n    {self.message}"


ResourceCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any], Mapping[str, Any]], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    mandatory: bool
    resource_check: ResourceCheck | None = None  # record, context -> messages
    stack_check: StackCheck | None = None  # records, stack outputs, context -> (urn, message)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def is_opaque(value: Any) -> bool:
    """A value the rules cannot read: secret-marked or unknown during preview."""
    return isinstance(value, str) and value in (SECRET, UNKNOWN)


_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@lru_cache(maxsize=8192)  # a plan asks about the same few hundred keys hundreds of thousands of times
def _norm(key: str) -> str:
    return _NOT_ALNUM.sub("", key.lower())


# A key names a credential when its normalized form ends with one of these.
_CREDENTIAL_SUFFIXES = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey", "privatekeypem",
    "secretkey", "accesskey", "clientkey", "applicationkey", "consumerkey", "setupkey", "tsigkey",
    "unsealkey", "rootkey", "encryptionkey", "signingkey", "presharedkey", "credential",
    "kubeconfig", "kubeconfigraw", "talosconfig", "machinesecrets", "bootstraptoken",
)
# ...unless it names a reference to a credential, not the credential itself.
_REFERENCE_PREFIXES = ("existing", "automount", "create")
_REFERENCE_KEYS = frozenset({"imagepullsecret", "imagepullsecrets", "pullsecret", "pullsecrets", "tlssecret",
                             "casecret", "certsecret"})


@lru_cache(maxsize=8192)
def is_credential_key(key: str) -> bool:
    """True for keys such as ``password``, ``adminToken``, ``client_secret``, ``privateKey``,
    ``kubeconfig``, ``EXTERNAL_DNS_RFC2136_TSIG_SECRET``; False for references such as
    ``existingSecret``, ``secretName``, ``secretKeyRef``, ``imagePullSecrets``."""
    n = _norm(key)
    if not n or n in _REFERENCE_KEYS or n.startswith(_REFERENCE_PREFIXES):
        return False
    candidates = {n, n[:-1]} if n.endswith("s") else {n}
    return any(c.endswith(_CREDENTIAL_SUFFIXES) for c in candidates)


_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def looks_like_private_key(value: Any) -> bool:
    return isinstance(value, str) and bool(_PRIVATE_KEY.search(value))


def walk(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, value) of a nested structure, containers included, depth first (mapping
    keys in sorted order)."""
    # An explicit stack rather than nested generators: each value would otherwise travel up one
    # generator frame per level.
    stack = [(path, value)]
    while stack:
        p, v = stack.pop()
        yield p, v
        if isinstance(v, Mapping):
            stack.extend(((*p, k), v[k]) for k in reversed(sorted(v, key=str)))
        elif isinstance(v, (list, tuple)):
            stack.extend(((*p, i), v[i]) for i in range(len(v) - 1, -1, -1))


# The walk of the record being judged, shared by the rules that all walk its inputs
# (see resource_violations): (inputs object, its walk).
_current_walk: list[tuple[Any, list[tuple[tuple[Any, ...], Any]]]] = []


def walk_inputs(inputs: Any) -> Iterable[tuple[tuple[Any, ...], Any]]:
    """``walk(inputs)``, computed once per record while :func:`resource_violations` judges it."""
    if _current_walk and _current_walk[0][0] is inputs:
        return _current_walk[0][1]
    return walk(inputs)


def fmt_path(path: Sequence[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "."


def k8s_kind(type_: str) -> tuple[str, str] | None:
    """('apps', 'Deployment') for 'kubernetes:apps/v1:Deployment'; None for other providers."""
    parts = type_.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or "/" not in parts[1]:
        return None
    group = parts[1].rsplit("/", 1)[0]
    return group, parts[2]


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(p)
    return obj


def metadata(record: Mapping[str, Any]) -> Mapping[str, Any]:
    md = _get(record.get("inputs"), "metadata")
    return md if isinstance(md, Mapping) else {}


def namespace_of(record: Mapping[str, Any]) -> Any:
    """The namespace of a namespaced object or Helm release ('default' when unset)."""
    inputs = record.get("inputs") or {}
    if record.get("type") in HELM_RELEASE_TYPES:
        return inputs.get("namespace") or "default"
    return metadata(record).get("namespace") or "default"


def pod_spec(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of a workload the program renders itself."""
    kk = k8s_kind(str(record.get("type", "")))
    if kk is None or kk[0] not in ("core", "apps", "batch") or kk[1] not in WORKLOAD_KINDS:
        return None
    spec = _get(record.get("inputs"), "spec")
    if kk[1] == "Pod":
        found = spec
    elif kk[1] == "CronJob":
        found = _get(spec, "jobTemplate", "spec", "template", "spec")
    else:
        found = _get(spec, "template", "spec")
    return found if isinstance(found, Mapping) else None


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers"):
        items = spec.get(key)
        if isinstance(items, list):
            for i, c in enumerate(items):
                if isinstance(c, Mapping):
                    yield f"{key}[{i}]({c.get('name', '?')})", c


# ---------------------------------------------------------------------------------------------
# pinned-versions / pinned-images
# ---------------------------------------------------------------------------------------------

_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_FLOATING_URL = re.compile(r"/(latest|main|master|HEAD)(/|$)")
_VERSIONED_URL = re.compile(r"/v?\d+\.\d+(\.\d+)?")
_FLOATING_REVISIONS = frozenset({"", "HEAD", "latest", "main", "master", "*"})


def is_exact_version(v: Any) -> bool:
    return isinstance(v, str) and bool(_EXACT_VERSION.match(v))


def check_pinned_versions(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    type_ = str(record.get("type", ""))
    inputs = record.get("inputs") or {}
    if type_ in HELM_RELEASE_TYPES:
        version = inputs.get("version")
        if version == UNKNOWN:
            return
        if not version:
            yield f"Helm chart '{inputs.get('chart')}' has no version: Helm would install the newest one"
        elif not is_exact_version(version):
            yield (f"Helm chart '{inputs.get('chart')}' version '{version}' is not an exact version "
                   "(no 'latest', no range): pin it in versions.py")
        return
    if type_ in YAML_TYPES:
        files = inputs.get("files") if "files" in inputs else [inputs.get("file")]
        for f in files if isinstance(files, list) else [files]:
            if isinstance(f, str) and f.startswith(("http://", "https://")):
                if _FLOATING_URL.search(f) or not _VERSIONED_URL.search(f):
                    yield f"manifest URL '{f}' does not point at a released version"
        return
    kk = k8s_kind(type_)
    if kk is None:
        return
    group, kind = kk
    spec = _get(inputs, "spec")
    if group == "argoproj.io" and kind == "Application":
        sources = [_get(spec, "source")] if _get(spec, "source") is not None else []
        sources += [s for s in (_get(spec, "sources") or []) if isinstance(s, Mapping)]
        for i, src in enumerate(sources):
            rev = src.get("targetRevision", "") if isinstance(src, Mapping) else ""
            if not isinstance(rev, str) or is_opaque(rev) or "{{" in rev:
                continue
            if rev in _FLOATING_REVISIONS or "*" in rev or rev.startswith(("^", "~", ">", "<", "=")):
                yield f"source {i}: targetRevision '{rev}' follows a branch or a range: pin a tag, a commit or an exact chart version"
    elif group == "operator.cluster.x-k8s.io" and kind.endswith("Provider"):
        version = _get(spec, "version")
        if version != UNKNOWN and not is_exact_version(version):
            yield f"Cluster API provider version '{version}' is not an exact release: the operator would pick the newest"


def image_problem(ref: str) -> str | None:
    """Why an image reference is not pinned, or None."""
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (it means ':latest')"
    tag = last.split(":", 1)[1]
    if tag in ("", "latest"):
        return "uses the 'latest' tag"
    return None


def check_pinned_images(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    if k8s_kind(str(record.get("type", ""))) is None and record.get("type") not in HELM_RELEASE_TYPES:
        return
    for path, value in walk_inputs(record.get("inputs") or {}):
        if not path or path[-1] != "image":
            continue
        if isinstance(value, str):
            if is_opaque(value) or "{{" in value:
                continue
            problem = image_problem(value)
            parent = _parent(record.get("inputs"), path)
            if problem and problem.startswith("has no tag") and isinstance(parent, Mapping):
                sibling = parent.get("tag") or parent.get("imageTag")
                if isinstance(sibling, str) and sibling not in ("", "latest"):
                    problem = None
            if problem:
                yield f"{fmt_path(path)}: image '{value}' {problem}"
        elif isinstance(value, Mapping):
            tag = value.get("tag")
            digest = value.get("digest")
            if digest:
                continue
            if tag is not None and (tag == "" or tag == "latest"):
                yield f"{fmt_path(path)}: image tag '{tag}' is not a pin"


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    cur = root
    for p in path[:-1]:
        cur = cur[p]
    return cur


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------

# Entries of a Kubernetes Secret that are not credentials (Argo CD repository and cluster
# secrets, TLS secrets): everything else in a Secret must be secret-marked.
_NON_SECRET_SECRET_KEYS = frozenset({
    "url", "type", "name", "project", "username", "user", "server", "host", "port", "namespace",
    "ca.crt", "tls.crt", "enableoci", "insecure", "forcehttpbasicauth", "clusterresources",
})


# Containers whose entries name a Kubernetes Secret instead of holding one, e.g. Traefik's
# ServersTransport ``rootCAs: [{secret: <name>}]`` or ``valueFrom.secretKeyRef``.
_REFERENCE_CONTAINERS = frozenset({"rootcas", "secretref", "secretkeyref", "valuefrom", "envfrom"})
# Provider configuration arrives as strings: a boolean flag is no credential (``skipChildToken``).
_FLAG_VALUES = frozenset({"true", "false"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_secret_inputs(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    inputs = record.get("inputs") or {}
    for path, value in walk_inputs(inputs):
        if not isinstance(value, str) or is_opaque(value) or not path:
            continue
        # Numbers and UUIDs are ids of referenced objects (Authentik's signingKey is a keypair's UUID).
        if value in _FLAG_VALUES or value.isdigit() or _UUID.fullmatch(value) or any(isinstance(p, str) and _norm(p) in _REFERENCE_CONTAINERS for p in path):
            continue
        key = path[-1]
        if isinstance(key, str) and is_credential_key(key) and value:
            yield f"{fmt_path(path)} looks like a credential but is not a Pulumi secret: wrap it with pulumi.Output.secret"
        elif looks_like_private_key(value):
            yield f"{fmt_path(path)} holds a private key that is not a Pulumi secret"
    if record.get("type") == "kubernetes:core/v1:Secret":
        for field in ("data", "stringData"):
            entries = inputs.get(field)
            if not isinstance(entries, Mapping):
                continue
            for key in sorted(entries):
                value = entries[key]
                if is_opaque(value) or key.lower() in _NON_SECRET_SECRET_KEYS or is_credential_key(key):
                    continue  # credential keys were reported above
                if isinstance(value, str) and value:
                    yield f"{field}.{key} of a Secret is not a Pulumi secret: build it from a secret Output"


def check_secret_outputs(records: Sequence[Mapping[str, Any]], outputs: Mapping[str, Any],
                         context: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key in sorted(outputs):
        value = outputs[key]
        if value == SECRET:
            continue
        if is_credential_key(key) and value not in (None, ""):
            yield "", f"stack output '{key}' is not a secret: export pulumi.Output.secret(...)"
        elif any(looks_like_private_key(v) for _, v in walk(value)):
            yield "", f"stack output '{key}' contains a private key in clear"


def _env_entries(inputs: Any) -> Iterator[tuple[tuple[Any, ...], Mapping[str, Any]]]:
    """Container env entries ({name, value|valueFrom}) anywhere: manifests and Helm values."""
    for path, value in walk_inputs(inputs):
        if (isinstance(value, Mapping) and isinstance(value.get("name"), str)
                and ("value" in value or "valueFrom" in value) and path and isinstance(path[-1], int)):
            yield path, value


def check_no_secret_in_configmap_or_env(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    type_ = str(record.get("type", ""))
    if k8s_kind(type_) is None and type_ not in HELM_RELEASE_TYPES:
        return
    inputs = record.get("inputs") or {}
    if type_ == "kubernetes:core/v1:ConfigMap":
        for field in ("data", "binaryData"):
            data = inputs.get(field)
            if data in (SECRET,):
                yield f"{field} of a ConfigMap holds a secret: use a Secret"
            if not isinstance(data, Mapping):
                continue
            for key in sorted(data):
                value = data[key]
                if value == SECRET:
                    yield f"{field}.{key} of a ConfigMap holds a secret: put it in a Secret"
                elif is_credential_key(key) and value not in (None, "", UNKNOWN):
                    yield f"{field}.{key} of a ConfigMap looks like a credential: put it in a Secret"
                elif looks_like_private_key(value):
                    yield f"{field}.{key} of a ConfigMap holds a private key: put it in a Secret"
    for path, entry in _env_entries(inputs):
        name = entry["name"]
        if "value" not in entry:
            continue
        if entry["value"] == SECRET:
            yield f"{fmt_path(path)} ({name}) carries a secret as a literal env value: use valueFrom.secretKeyRef"
        elif is_credential_key(name):
            yield f"{fmt_path(path)} ({name}) names a credential but sets a literal value: use valueFrom.secretKeyRef"


def check_no_secret_in_helm_values(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    if record.get("type") not in HELM_RELEASE_TYPES:
        return
    values = (record.get("inputs") or {}).get("values")
    if values == SECRET:
        yield "the whole values map is secret: keep secrets out of Helm values (existingSecret / secretKeyRef)"
        return
    for path, value in walk(values or {}):
        if value == SECRET:
            yield (f"values.{fmt_path(path)} is a secret: create a Kubernetes Secret and pass its name "
                   "(existingSecret / valueFrom.secretKeyRef) instead")


# ---------------------------------------------------------------------------------------------
# Irreplaceable state
# ---------------------------------------------------------------------------------------------

_VAULT_STATE_SECRET = re.compile(r"unseal|root-token|vault-init")


def irreplaceable_reason(record: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """Why losing this resource is a disaster, or None. Keyed on type and naming conventions:

    - ``ovh:Dedicated/serverReinstallTask:ServerReinstallTask``: replacing it wipes the server
      (exempt while ``context['allowReinstall']``);
    - ``talos:machine/secrets:Secrets``: the cluster's CA keys and bootstrap token;
    - a Helm release of the ``vault`` chart; a ``vault:index/mount:Mount`` of type kv/kv-v2;
      a PersistentVolumeClaim in a namespace named ``vault``; a Kubernetes Secret whose name
      contains ``unseal``, ``root-token`` or ``vault-init`` (Vault's Shamir keys / root token);
    - a Cluster API ``Cluster`` (``cluster.x-k8s.io``): a tenant cluster (exempt when annotated
      ``weebo.io/allow-deletion: "true"``).
    """
    type_ = str(record.get("type", ""))
    inputs = record.get("inputs") or {}
    if type_ == REINSTALL_TASK:
        return None if context.get("allowReinstall") else "a replacement reinstalls (wipes) the server"
    if type_ == TALOS_SECRETS:
        return "it holds the Talos cluster's CA keys and bootstrap token"
    if type_ in HELM_RELEASE_TYPES:
        chart = str(inputs.get("chart") or "")
        if chart == "vault" or chart.endswith("/vault"):
            return "it runs Vault, whose raft storage holds every platform secret"
        return None
    if type_ == VAULT_MOUNT:
        return "deleting a kv mount deletes its secrets" if inputs.get("type") in ("kv", "kv-v2") else None
    kk = k8s_kind(type_)
    if kk is None:
        return None
    group, kind = kk
    md = metadata(record)
    if group == "core" and kind == "PersistentVolumeClaim" and md.get("namespace") == "vault":
        return "it holds Vault data"
    if group == "core" and kind == "Secret" and _VAULT_STATE_SECRET.search(str(md.get("name", ""))):
        return "it holds Vault's unseal keys or root token"
    if group == "cluster.x-k8s.io" and kind == "Cluster":
        annotations = md.get("annotations") if isinstance(md.get("annotations"), Mapping) else {}
        if str(annotations.get(ALLOW_DELETION_ANNOTATION, "")).lower() == "true":
            return None
        return f"it is a tenant cluster (set tenants[].allowDeletion to annotate it {ALLOW_DELETION_ANNOTATION})"
    return None


def check_protect(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    reason = irreplaceable_reason(record, context)
    if reason and not record.get("protect"):
        yield f"not protected, but {reason}: create it with protect=True (components.core.common.irreplaceable)"


def check_retain(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    reason = irreplaceable_reason(record, context)
    # A tenant's Cluster is deleted on purpose (allowDeletion): retaining it would orphan its VMs,
    # since only deleting the Cluster object makes Cluster API tear the machines down.
    if str(record.get("type", "")).startswith("kubernetes:cluster.x-k8s.io/"):
        return
    # retainOnDelete is None where the engine does not report it (CrossGuard's resource options).
    if reason and record.get("retainOnDelete") is False:
        yield f"not retained on delete, but {reason}: add retain_on_delete=True"


# ---------------------------------------------------------------------------------------------
# Namespaces, privileges, resources
# ---------------------------------------------------------------------------------------------


def _is_namespace(record: Mapping[str, Any]) -> bool:
    return record.get("type") == "kubernetes:core/v1:Namespace"


def check_namespace_pod_security(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    if not _is_namespace(record):
        return
    labels = metadata(record).get("labels")
    if labels == UNKNOWN:
        return
    level = labels.get(POD_SECURITY_ENFORCE) if isinstance(labels, Mapping) else None
    if level not in POD_SECURITY_LEVELS:
        yield (f"namespace '{metadata(record).get('name')}' has no valid {POD_SECURITY_ENFORCE} label "
               f"(got {level!r}): create it with components.core.namespace.PlatformNamespace")


def _denies_all(policy: Mapping[str, Any]) -> tuple[bool, bool]:
    """(denies all ingress, denies all egress) for one NetworkPolicy's inputs."""
    spec = policy.get("spec")
    if not isinstance(spec, Mapping):
        return False, False
    selector = spec.get("podSelector")
    if selector not in (None, {}) and not (isinstance(selector, Mapping) and not any(selector.values())):
        return False, False
    types = spec.get("policyTypes") or []
    ingress = "Ingress" in types and not spec.get("ingress")
    egress = "Egress" in types and not spec.get("egress")
    return ingress, egress


def check_namespace_default_deny(records: Sequence[Mapping[str, Any]], outputs: Mapping[str, Any],
                                 context: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    covered: dict[str, list[bool]] = {}
    for r in records:
        if r.get("type") != "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            continue
        ns = metadata(r).get("namespace") or "default"
        ing, eg = _denies_all(r.get("inputs") or {})
        cur = covered.setdefault(str(ns), [False, False])
        cur[0] |= ing
        cur[1] |= eg
    for r in records:
        if not _is_namespace(r):
            continue
        name = metadata(r).get("name")
        if not isinstance(name, str) or is_opaque(name):
            continue
        ing, eg = covered.get(name, [False, False])
        if not (ing and eg):
            missing = " and ".join(x for x, ok in (("ingress", ing), ("egress", eg)) if not ok)
            yield r.get("urn", ""), (f"namespace '{name}' has no default-deny NetworkPolicy for {missing}: "
                                     "create it with components.core.namespace.PlatformNamespace")


def _privileged_features(spec: Mapping[str, Any]) -> list[str]:
    found = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    for where, c in containers(spec):
        if _get(c, "securityContext", "privileged") is True:
            found.append(f"{where} privileged")
    return found


def check_privileged_namespaces(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    allowed = ", ".join(sorted(PRIVILEGED_NAMESPACES))
    if _is_namespace(record):
        labels = metadata(record).get("labels")
        name = metadata(record).get("name")
        if isinstance(labels, Mapping) and labels.get(POD_SECURITY_ENFORCE) == "privileged" \
                and name not in PRIVILEGED_NAMESPACES:
            yield f"namespace '{name}' enforces the 'privileged' Pod Security level but is not in the allow-list ({allowed})"
        return
    ns = namespace_of(record)
    if is_opaque(ns) or ns in PRIVILEGED_NAMESPACES:
        return
    spec = pod_spec(record)
    features: list[str] = []
    if spec is not None:
        features = _privileged_features(spec)
    elif record.get("type") in HELM_RELEASE_TYPES:
        for path, value in walk((record.get("inputs") or {}).get("values") or {}):
            if value is True and path and path[-1] in ("privileged", "hostNetwork", "hostPID", "hostIPC"):
                features.append(f"values.{fmt_path(path)}")
    if features:
        yield (f"privileged workload ({', '.join(features)}) in namespace '{ns}', which is not in the "
               f"privileged allow-list ({allowed})")


def check_workload_resources(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    spec = pod_spec(record)
    if spec is None:
        return
    for where, c in containers(spec):
        resources = c.get("resources")
        if is_opaque(resources):
            continue
        missing = [f"{kind}.{res}" for kind in ("requests", "limits") for res in ("cpu", "memory")
                   if not _get(resources, kind, res)]
        if missing:
            yield f"{where} sets no {', '.join(missing)}"


CILIUM_POLICY_TYPES = ("kubernetes:cilium.io/v2:CiliumNetworkPolicy", "kubernetes:cilium.io/v2:CiliumClusterwideNetworkPolicy")


def check_apiserver_egress_ports(record: Mapping[str, Any], context: Mapping[str, Any]) -> Iterator[str]:
    """A Cilium egress rule to the ``kube-apiserver`` entity names its ports: where the API server
    runs on the nodes' host network (Talos), that identity is the control-plane nodes' own
    (cilium/cilium#17714), so a rule without ports opens etcd, the kubelet and the Talos API."""
    if record.get("type") not in CILIUM_POLICY_TYPES:
        return
    inputs = record.get("inputs") or {}
    specs = [inputs.get("spec"), *(inputs.get("specs") or [])]
    for i, spec in enumerate(x for x in specs if isinstance(x, Mapping)):
        for j, egress in enumerate(spec.get("egress") or []):
            if not isinstance(egress, Mapping):
                continue
            entities = egress.get("toEntities") or []
            if isinstance(entities, list) and "kube-apiserver" in entities and not egress.get("toPorts"):
                yield (f"egress rule {j} of spec {i} reaches the kube-apiserver entity on any port; "
                       "name the API server's port (toPorts, TCP 6443)")


# ---------------------------------------------------------------------------------------------
# The rule set
# ---------------------------------------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule("pinned-versions", "Helm charts, release manifests, Argo CD sources and CAPI providers are pinned to exact versions.",
         True, resource_check=check_pinned_versions),
    Rule("pinned-images", "Container images carry a tag or a digest, never 'latest'.", True,
         resource_check=check_pinned_images),
    Rule("secret-inputs", "Inputs that are credentials are Pulumi secrets.", True, resource_check=check_secret_inputs),
    Rule("secret-outputs", "Stack outputs that are credentials (kubeconfig, talosconfig, ...) are secrets.", True,
         stack_check=check_secret_outputs),
    Rule("no-secret-in-configmap-or-env", "No secret in a ConfigMap or in a literal env value.", True,
         resource_check=check_no_secret_in_configmap_or_env),
    Rule("no-secret-in-helm-values", "No secret in Helm values; reference a Kubernetes Secret instead.", True,
         resource_check=check_no_secret_in_helm_values),
    Rule("protect-irreplaceable", "Irreplaceable resources (server reinstall, Talos secrets, Vault, tenant clusters) are protected.",
         True, resource_check=check_protect),
    Rule("retain-irreplaceable", "Irreplaceable resources are retained on delete.", False, resource_check=check_retain),
    Rule("namespace-pod-security", "Every namespace has a Pod Security enforce label.", True,
         resource_check=check_namespace_pod_security),
    Rule("namespace-default-deny", "Every namespace has a default-deny NetworkPolicy.", True,
         stack_check=check_namespace_default_deny),
    Rule("privileged-namespaces", "Privileged workloads run only in the privileged namespace allow-list.", True,
         resource_check=check_privileged_namespaces),
    Rule("workload-resources", "Workloads the program renders set cpu/memory requests and limits.", True,
         resource_check=check_workload_resources),
    Rule("apiserver-egress-ports", "Egress to the kube-apiserver entity names its ports (on Talos it is the "
         "control-plane nodes' identity).", True, resource_check=check_apiserver_egress_ports),
)
RULES_BY_ID = {r.id: r for r in RULES}


def check_resource(rule: Rule, record: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> list[Violation]:
    if rule.resource_check is None:
        return []
    return [Violation(rule.id, str(record.get("urn", "")), msg, rule.mandatory)
            for msg in rule.resource_check(record, context or {})]


def check_stack(rule: Rule, records: Sequence[Mapping[str, Any]], outputs: Mapping[str, Any],
                context: Mapping[str, Any] | None = None) -> list[Violation]:
    if rule.stack_check is None:
        return []
    return [Violation(rule.id, urn, msg, rule.mandatory) for urn, msg in rule.stack_check(records, outputs, context or {})]


def resource_violations(records: Iterable[Mapping[str, Any]], context: Mapping[str, Any] | None = None,
                        rules: Iterable[Rule] | None = None) -> list[Violation]:
    """The violations of the per-resource rules: each record is judged on its own, so a plan
    built in parts can be judged part by part."""
    rules = list(RULES if rules is None else rules)
    out: list[Violation] = []
    try:
        for record in records:
            if isinstance(record, Mapping):
                inputs = record.get("inputs") or {}
                _current_walk[:] = [(inputs, list(walk(inputs)))]
                for rule in rules:
                    out.extend(check_resource(rule, record, context))
    finally:
        _current_walk.clear()
    return out


def stack_violations(doc: Mapping[str, Any], context: Mapping[str, Any] | None = None,
                     rules: Iterable[Rule] | None = None) -> list[Violation]:
    """The violations of the rules over the whole plan (several resources, stack outputs)."""
    records = [r for r in doc.get("resources", []) if isinstance(r, Mapping)]
    outputs = doc.get("outputs") or {}
    out: list[Violation] = []
    for rule in RULES if rules is None else rules:
        out.extend(check_stack(rule, records, outputs, context))
    return out


def evaluate(doc: Mapping[str, Any], context: Mapping[str, Any] | None = None,
             rules: Iterable[Rule] | None = None) -> list[Violation]:
    """Every violation of a plan document ({"resources": [...], "outputs": {...}}), sorted.

    ``rules`` defaults to :data:`RULES`.
    """
    rules = list(RULES if rules is None else rules)
    return sorted(set(resource_violations(doc.get("resources", []), context, rules))
                  | set(stack_violations(doc, context, rules)))


def mandatory(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.mandatory]


# ---------------------------------------------------------------------------------------------
# Plan files
# ---------------------------------------------------------------------------------------------

MIN_SECRET_LENGTH = 8  # shorter secret strings (flags, ports) would match by chance

# How the engine wire format (and pulumi.runtime.rpc) marks a secret: {SIG_KEY: SECRET_SIG, "value": v}.
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def is_wire_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SIG_KEY) == SECRET_SIG


def secret_values(value: Any) -> Iterator[str]:
    """The credential strings held in secret-marked values of a nested structure (wire format).

    A secret scalar string counts as a whole (a generated password, key, kubeconfig); inside a
    secret map or list only leaves whose key names a credential, and private keys, count, so that
    ordinary strings that happen to travel inside a secret map (a URL, a name) are not mistaken
    for credentials.
    """
    if is_wire_secret(value):
        inner = value.get("value")
        if isinstance(inner, str):
            yield inner
            return
        for path, leaf in walk(inner):
            if is_wire_secret(leaf):
                continue  # reported by the recursion below
            if isinstance(leaf, str) and ((path and isinstance(path[-1], str) and is_credential_key(path[-1]))
                                          or looks_like_private_key(leaf)):
                yield leaf
        value = inner
    if isinstance(value, Mapping):
        for v in value.values():
            yield from secret_values(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from secret_values(v)


def secret_leaks(secret_values: Iterable[str], files: Mapping[str, str]) -> list[Violation]:
    """``no-secret-in-plan-files``: no value that was a Pulumi secret appears in a written file."""
    needles = sorted({s for s in secret_values if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH
                      and not is_opaque(s)})
    out = []
    for name in sorted(files):
        text = files[name]
        for s in needles:
            if s in text or json.dumps(s)[1:-1] in text:
                out.append(Violation("no-secret-in-plan-files", "", f"{name} contains the value of a Pulumi secret "
                                     f"({len(s)} characters): it must appear as {SECRET!r}", True))
                break
    return out


def report(violations: Sequence[Violation]) -> dict[str, Any]:
    """The policy.json document."""
    return {
        "rules": [{"id": r.id, "description": r.description, "mandatory": r.mandatory} for r in RULES]
        + [{"id": "no-secret-in-plan-files", "description": "No Pulumi secret value appears in the plan files.",
            "mandatory": True}],
        "violations": [v.to_dict() for v in violations],
        "mandatoryViolations": len(mandatory(violations)),
    }
