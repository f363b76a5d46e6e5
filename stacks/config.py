"""The typed model of one environment (one Pulumi stack).

The stack file (``Pulumi.<env>.yaml``) is read once, validated as a whole, and handed to the
composition as a frozen :class:`PlatformConfig`. Components receive slices of it and never
call ``pulumi.Config`` themselves.

Every problem in a stack file is collected and reported at once by :class:`ConfigError`, with
the config path (as ``pulumi config set --path`` takes it), what is wrong and how to fix it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    model_validator,
)
from pydantic.alias_generators import to_camel

import versions
from stacks import facts

PROJECT = "weebo-platform"

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ConfigProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    problem: str
    hint: str

    def render(self) -> str:
        return f"  - {self.path}: {self.problem}\n      fix: {self.hint}"


class ConfigError(pulumi.RunError):
    """Every problem of a stack's config, reported at once.

    A ``pulumi.RunError`` is printed by the Pulumi language host without a Python traceback.
    """

    def __init__(self, stack: str, problems: list[ConfigProblem], source: str | None = None):
        self.stack = stack
        self.problems = problems
        self.source = source  # the stack file as given, when it could not be read as one
        body = "\n".join(p.render() for p in problems)
        head = (f"{source} is not a valid stack file" if source else
                f"stack '{stack}': the configuration has {len(problems)} problem(s)")
        super().__init__(f"{head}; nothing was deployed.\n{body}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as ``cls(*self.args)``: args holds the message only, which this
        # __init__ does not take. A parallel plan's worker sends its error to the parent by pickle.
        return (type(self), (self.stack, list(self.problems), self.source))


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EXACT_TALOS = re.compile(r"^v\d+\.\d+\.\d+$")
_EXACT_K8S = re.compile(r"^v?\d+\.\d+\.\d+$")
_QUANTITY = re.compile(r"^\d+(Ki|Mi|Gi|Ti)$")


def _dns_label(v: str) -> str:
    if not _DNS_LABEL.match(v):
        raise ValueError(
            f"'{v}' is not a DNS label (lower-case letters, digits and '-', 1-63 chars, "
            "starting and ending with a letter or digit)"
        )
    return v


def _dns_name(v: str) -> str:
    if not _DNS_NAME.match(v):
        raise ValueError(f"'{v}' is not a fully qualified lower-case domain name such as 'example.org'")
    return v


def _email(v: str) -> str:
    if not _EMAIL.match(v):
        raise ValueError(f"'{v}' is not an e-mail address")
    return v


def _talos_version(v: str) -> str:
    if not _EXACT_TALOS.match(v):
        raise ValueError(f"'{v}' is not an exact Talos release such as 'v1.12.6' (no ranges, no 'latest')")
    return v


def _k8s_version(v: str) -> str:
    if not _EXACT_K8S.match(v):
        raise ValueError(f"'{v}' is not an exact Kubernetes release such as '1.35.2' (no ranges, no 'latest')")
    return v.removeprefix("v")


def _ipv4(v: str) -> str:
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        raise ValueError(f"'{v}' is not an IPv4 address") from None


def _cidr(v: str) -> str:
    if "/" not in v:
        # ipaddress would take a bare address for a /32 (or /128): say what was meant instead.
        raise ValueError(f"'{v}' has no prefix length: write the block as address/length, e.g. '{v}/32' for one address")
    try:
        return str(ipaddress.ip_network(v, strict=True))
    except ValueError:
        raise ValueError(f"'{v}' is not a CIDR block with its host bits zero, such as '10.10.0.0/16'") from None


def _ipv4_cidr(v: str) -> str:
    v = _cidr(v)
    if ipaddress.ip_network(v).version != 4:
        raise ValueError(f"'{v}' must be an IPv4 block")
    return v


_QUANTITY_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
# No volume of this platform is useful below 64 MiB (Bind9's zone files are the smallest); above
# 64 TiB no OVH server has the disk.
MIN_QUANTITY, MAX_QUANTITY = 64 << 20, 64 << 40


def quantity_bytes(v: str) -> int:
    return int(v[:-2]) * _QUANTITY_UNITS[v[-2:]]


def _quantity(v: str) -> str:
    if not _QUANTITY.match(v):
        raise ValueError(f"'{v}' is not a storage size such as '20Gi'")
    if not MIN_QUANTITY <= quantity_bytes(v) <= MAX_QUANTITY:
        raise ValueError(f"'{v}' is not a usable volume size: write 64Mi to 64Ti, such as '20Gi'")
    return v


_DEVICE_PATH = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9/_.:-]{0,200}$")


def _device_path(v: str) -> str:
    if not _DEVICE_PATH.match(v):
        raise ValueError(f"'{v}' is not a disk device path such as '/dev/nvme0n1' (Talos installs to a /dev/ path)")
    return v


_EXTENSION = re.compile(r"^siderolabs/[a-z0-9-]+$")


def _extension(v: str) -> str:
    if not _EXTENSION.match(v):
        raise ValueError(f"'{v}' is not an official Talos extension name such as 'siderolabs/intel-ucode'")
    return v


# Kubernetes label syntax. Ref: kubernetes/apimachinery pkg/util/validation/validation.go
# (IsQualifiedName: optional DNS-subdomain prefix '/', name of <= 63 [A-Za-z0-9-_.] starting and
# ending alphanumeric; IsValidLabelValue: the same name syntax, or empty).
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _label_key(v: str) -> str:
    prefix, _, name = v.rpartition("/")
    if not _LABEL_NAME.match(name) or (prefix and not _DNS_SUBDOMAIN.match(prefix)) or v.startswith("/"):
        raise ValueError(f"'{v}' is not a Kubernetes label key such as 'example.org/role' (prefix/name, name <= 63 chars)")
    return v


def _label_value(v: str) -> str:
    if v and not _LABEL_NAME.match(v):
        raise ValueError(f"'{v}' is not a Kubernetes label value (<= 63 letters, digits, '-', '_', '.', alphanumeric at both ends)")
    return v


def _host(v: str) -> str:
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        pass
    if v != "localhost" and not _DNS_SUBDOMAIN.match(v):
        raise ValueError(f"'{v}' is not a host name or IP address such as 'api.example.org'")
    return v


_HTTPS_URL = re.compile(r"^https://[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:\d{1,5})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$")


def _https_url(v: str) -> str:
    if len(v) > 2048 or not _HTTPS_URL.match(v):
        raise ValueError(f"'{v}' is not an https URL such as 'https://acme-v02.api.letsencrypt.org/directory'")
    return v


# Chart names are DNS-1123 labels: lower-case letters, digits and '-', at most 63 characters
# (Ref: helm.sh/docs/v3/chart_best_practices/conventions, "Chart Names", Helm 3.22; 'helm lint'
# checks it).
def _chart_name(v: str) -> str:
    if not _DNS_LABEL.match(v):
        raise ValueError(f"'{v}' is not a Helm chart name (a DNS label: lower-case letters, digits and '-', <= 63 chars)")
    return v


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsName = Annotated[str, AfterValidator(_dns_name)]
Email = Annotated[str, AfterValidator(_email)]
TalosVersion = Annotated[str, AfterValidator(_talos_version)]
KubernetesVersion = Annotated[str, AfterValidator(_k8s_version)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
Cidr = Annotated[str, AfterValidator(_cidr)]
IPv4Cidr = Annotated[str, AfterValidator(_ipv4_cidr)]
Quantity = Annotated[str, AfterValidator(_quantity)]
DevicePath = Annotated[str, AfterValidator(_device_path)]
TalosExtension = Annotated[str, AfterValidator(_extension)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
Host = Annotated[str, AfterValidator(_host)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]
ChartName = Annotated[str, AfterValidator(_chart_name)]
# OVH additional IP blocks: OVHcloud routes blocks of at most a /24 to a server (an imported
# range of your own also arrives as /24 blocks, "behaving like a regular Additional IP block").
# Ref: OVHcloud docs, "How to Use the Bring Your Own IP Feature"
# (support.us.ovhcloud.com/hc/en-us/articles/7437687367315). A wider block is refused before
# anything enumerates its addresses.
MAX_LB_BLOCK_PREFIX = 24


def _lb_block(v: str) -> str:
    v = _ipv4_cidr(v)
    if ipaddress.ip_network(v).prefixlen < MAX_LB_BLOCK_PREFIX:
        raise ValueError(f"'{v}' is wider than OVH routes to a server: additional IP blocks are /{MAX_LB_BLOCK_PREFIX} "
                         "to /32; list the blocks actually routed")
    return v


LoadBalancerBlock = Annotated[str, AfterValidator(_lb_block)]

_REPO_PATH = re.compile(r"^[A-Za-z0-9._/-]{1,512}$")


def _repo_path(v: str) -> str:
    if not _REPO_PATH.match(v) or v.startswith("/") or ".." in v.split("/"):
        raise ValueError(f"'{v}' is not a directory of the repository: write a relative path such as 'deploy/prod' "
                         "(no leading '/', no '..')")
    return v


RepoPath = Annotated[str, AfterValidator(_repo_path)]


class SecretValue:
    """A credential read from a ``secure:`` stack value; its text never prints."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def output(self) -> pulumi.Output[str]:
        return pulumi.Output.secret(self._value)

    def __repr__(self) -> str:
        return "SecretValue([secret])"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def check(value: Any, info: ValidationInfo) -> SecretValue:
            if isinstance(value, SecretValue):
                return value
            if not isinstance(value, str) or not value:
                raise ValueError("must be a non-empty string")
            ctx = info.context or {}
            if not ctx.get("secret", False):
                raise ValueError("SECRET_IN_CLEAR")
            return SecretValue(value)

        return core_schema.with_info_plain_validator_function(check)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class Model(BaseModel):
    """Frozen, camelCase in YAML, unknown keys forbidden."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )


class ServerNode(Model):
    """One OVH dedicated server that becomes a Talos node."""

    hostname: DnsLabel = Field(description="Node name, also its reverse DNS label.")
    ovh_service_name: DnsName = Field( description="OVH service name of the dedicated server, e.g. 'ns3012345.ip-51-75-1.eu'."
    )
    address: IPv4 = Field(description="Public IPv4 address of the server.")
    role: Literal["controlplane", "worker"] = "controlplane"
    install_disk: DevicePath | None = Field(
        default=None, description="Overrides managementCluster.installDisk for this server."
    )
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="Kubernetes node labels of this server (added to managementCluster.nodeLabels)."
    )


class ExistingCluster(Model):
    """An already running cluster (dev): its kubeconfig comes from the environment."""

    kubeconfig_env: str = Field(
        default="KUBECONFIG",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable holding the kubeconfig file path or content.",
    )
    context: str | None = None


# OVH network firewall: 20 rules per IP; 9 fixed permits, one final deny, two per operator range.
MAX_OPERATOR_RANGES = 5
# Sources the OVH firewall can never see (RFC 1918, RFC 6598 shared/CGNAT, loopback, link-local,
# IPv6 ULA and link-local); documentation ranges (RFC 5737) stay allowed for examples and tests.
NON_PUBLIC_BLOCKS = tuple(ipaddress.ip_network(b) for b in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "fc00::/7", "fe80::/10", "::1/128",
))


class ManagementCluster(Model):
    name: DnsLabel = "weebo4cp"
    provisioner: Literal["ovh-talos", "existing"] = Field(
        default="ovh-talos",
        description="'ovh-talos' installs Talos on OVH servers; 'existing' uses a running cluster.",
    )
    talos_version: TalosVersion = versions.TALOS_VERSION
    kubernetes_version: KubernetesVersion = versions.KUBERNETES_VERSION
    install_disk: DevicePath = "/dev/nvme0n1"
    nodes: list[ServerNode] = Field(default_factory=list)
    endpoint: DnsName | None = Field(
        default=None, description="Stable API endpoint name; defaults to '<name>.<domain.parentZone>'."
    )
    load_balancer_ips: list[LoadBalancerBlock] = Field(
        default_factory=list, max_length=64, description="OVH additional IPs (blocks) routed to the servers, for LB IPAM."
    )
    operator_source_ranges: list[Cidr] = Field(
        default_factory=list, description="Ranges allowed to reach the Talos (50000) and Kubernetes (6443) APIs."
    )
    pod_cidr: IPv4Cidr = "10.244.0.0/16"
    service_cidr: IPv4Cidr = "10.96.0.0/12"
    system_extensions: list[TalosExtension] = Field(default_factory=lambda: ["siderolabs/intel-ucode"])
    allow_reinstall: bool = Field(
        default=False,
        description="Must be true, on purpose, for a change that reinstalls (wipes) a server.",
    )
    cdi_scratch_volume_size: Quantity = "100Gi"
    storage_class: DnsLabel = Field(
        default="local-path",
        description="StorageClass of every volume on the management cluster (Bind9, Vault, Authentik's "
        "PostgreSQL, CDI scratch space, tenant VM disks); the program creates it (local-path-provisioner, "
        "see kubevirt.localPathProvisioner), otherwise it must exist on the cluster.",
    )
    declared_storage_classes: list[DnsLabel] = Field(
        default_factory=list,
        description="StorageClasses the cluster already has, made outside this program; only where the "
        "program creates none (kubevirt.localPathProvisioner false), and then every volume names one.",
    )
    existing: ExistingCluster | None = None
    local_volume_disk_selector: str = Field(
        default="!system_disk",
        min_length=1,
        description="Talos CEL disk selector of the local volume (CDI scratch space, local-path); "
        "'system_disk' also needs ephemeralMaxSize so that /var leaves room for it.",
    )
    ephemeral_max_size: Quantity | None = Field(
        default=None, description="Caps Talos' EPHEMERAL (/var) volume; unset: it grows to fill the system disk."
    )
    node_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="Kubernetes node labels of every management node."
    )
    load_balancer_ips_node: DnsLabel | None = Field(
        default=None,
        description="Hostname of the server the loadBalancerIps blocks are routed to; defaults to the first control plane.",
    )
    vpn_udp_port: int = Field(
        default=51820, ge=1, le=65535,
        description="UDP port of the NetBird (WireGuard) peer, kept open on the OVH network firewall.",
    )
    dns_ttl: int = Field(default=300, ge=60, le=86400, description="TTL of the endpoint and node A records at OVH.")
    machine_config_version: TalosVersion | None = Field(
        default=None,
        description="Talos version whose machine-config features (contract) the generated configuration uses; "
        "keep it at the version the cluster was installed with when talosVersion moves to a new minor, so "
        "an upgrade only changes the installer image. Unset: talosVersion.",
    )

    allow_talos_downgrade: bool = Field(
        default=False,
        description="Must be true, on purpose, to lower talosVersion after a 'talosctl rollback' (the program "
        "records the rollback, it never downgrades a node itself).",
    )

    @property
    def machine_config_contract(self) -> str:
        return self.machine_config_version or self.talos_version

    @model_validator(mode="after")
    def _ovh_rules(self) -> ManagementCluster:
        if self.load_balancer_ips_node is not None and self.load_balancer_ips_node not in {n.hostname for n in self.nodes}:
            raise ValueError(f"loadBalancerIpsNode '{self.load_balancer_ips_node}' is not the hostname of a node")
        if self.local_volume_disk_selector.strip() == "system_disk" and self.ephemeral_max_size is None:
            raise ValueError(
                "localVolumeDiskSelector 'system_disk' needs ephemeralMaxSize: Talos' /var volume would "
                "otherwise take the whole system disk and leave no room for the local volume"
            )
        # The OVH network firewall holds at most 20 rules per IP: the fixed ones plus two per
        # operator range (Talos API and Kubernetes API). Ref: components/host/ovh_server.firewall_rules.
        v4 = [r for r in self.operator_source_ranges if ipaddress.ip_network(r).version == 4]
        if len(v4) > MAX_OPERATOR_RANGES:
            raise ValueError(
                f"{len(v4)} IPv4 operatorSourceRanges; the OVH network firewall (20 rules per IP) admits at most "
                f"{MAX_OPERATOR_RANGES}: merge them into wider ranges"
            )
        return self

    @property
    def control_planes(self) -> list[ServerNode]:
        return [n for n in self.nodes if n.role == "controlplane"]

    @property
    def workers(self) -> list[ServerNode]:
        return [n for n in self.nodes if n.role == "worker"]


class Domain(Model):
    parent_zone: DnsName = Field(description="Zone hosted at OVH DNS, e.g. 'weebosi.fr'.")
    platform_subdomain: DnsLabel = Field(
        default="cloud", description="Label of the subzone delegated to Bind9, e.g. 'cloud' -> cloud.weebosi.fr."
    )
    acme_email: Email

    @property
    def platform_zone(self) -> str:
        return f"{self.platform_subdomain}.{self.parent_zone}"


class Cilium(Model):
    hubble_ui: bool = True
    tunnel_protocol: Literal["vxlan", "geneve"] = "vxlan"
    tenant_mtu: int = Field(
        default=1350, ge=1200, le=1500, description="MTU inside tenant VMs (nested encapsulation)."
    )
    mtu: int | None = Field(
        default=None,
        ge=1280,
        le=9216,
        description="MTU of the nodes' underlay NIC (Cilium chart key 'MTU'); unset: Cilium auto-detects it "
        "(1500 on OVH public interfaces). Pods get this minus the tunnel overhead.",
    )
    k8s_service_host: Host | None = Field(
        default=None,
        alias="k8sServiceHost",
        min_length=1,
        description="API server address Cilium's kube-proxy replacement talks to. Unset: 'localhost' "
        "(KubePrism) with provisioner ovh-talos; with provisioner existing, unset keeps the cluster's "
        "kube-proxy (no kube-proxy replacement, no L2 announcements).",
    )
    k8s_service_port: int | None = Field(
        default=None,
        alias="k8sServicePort",
        ge=1,
        le=65535,
        description="Port of k8sServiceHost. Unset: 7445 (KubePrism) with ovh-talos, 6443 otherwise.",
    )

    # Ref: cilium pkg/mtu/mtu.go TunnelOverheadIPv4 = 50 (outer IPv4 + UDP + VXLAN/Geneve header +
    # inner Ethernet); the configured MTU is the underlay MTU, pods get MTU - overhead.
    TUNNEL_OVERHEAD: ClassVar[int] = 50
    DEFAULT_UNDERLAY_MTU: ClassVar[int] = 1500

    @property
    def pod_mtu(self) -> int:
        """MTU of management-cluster pods, hence of the NIC of every tenant VM (KubeVirt pod network)."""
        return (self.mtu or self.DEFAULT_UNDERLAY_MTU) - self.TUNNEL_OVERHEAD

    @model_validator(mode="after")
    def _tenant_mtu_fits(self) -> Cilium:
        # Tenant pods are encapsulated twice: by the tenant's own CNI inside the VM, then by the
        # management cluster's tunnel. The tenant MTU plus the inner tunnel must fit the VM NIC.
        budget = self.pod_mtu - self.TUNNEL_OVERHEAD
        if self.tenant_mtu > budget:
            raise ValueError(
                f"tenantMtu {self.tenant_mtu} does not fit: VM NIC MTU {self.pod_mtu} minus the tenant's "
                f"own tunnel overhead ({self.TUNNEL_OVERHEAD}) leaves {budget}; lower tenantMtu or raise mtu"
            )
        return self


class CertManager(Model):
    acme_staging_server: HttpsUrl = "https://acme-staging-v02.api.letsencrypt.org/directory"
    acme_production_server: HttpsUrl = "https://acme-v02.api.letsencrypt.org/directory"
    # Ref: RFC 5280 appendix A.1, ub-common-name INTEGER ::= 64.
    internal_ca_common_name: str = Field(default="WeeboSI platform internal CA", min_length=1, max_length=64,
                                         pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    default_issuer: Literal["letsencrypt-staging", "letsencrypt-production"] = "letsencrypt-production"


class Traefik(Model):
    replicas: int = Field(default=2, ge=1, le=10)
    load_balancer_ip: IPv4 | None = Field(
        default=None, description="Pool IP of Traefik's LoadBalancer; defaults to the first pool address."
    )
    dashboard: bool = True
    access_logs: bool = True


class Dns(Model):
    nameserver_label: DnsLabel = Field(default="ns1", description="Label of the Bind9 name server in the parent zone.")
    load_balancer_ip: IPv4 | None = Field(
        default=None, description="Pool IP of Bind9's port 53; defaults to the second pool address."
    )
    ttl: int = Field(default=300, ge=30, le=86400)
    tsig_algorithm: Literal["hmac-sha256", "hmac-sha512"] = "hmac-sha256"
    storage_size: Quantity = "1Gi"
    storage_class: DnsLabel | None = Field(
        default=None,
        description="Overrides managementCluster.storageClass for Bind9's zone volume (only on a cluster "
        "where the program does not create the StorageClass).",
    )


class Vault(Model):
    replicas: int = Field(default=3, ge=1, le=7, description="Vault servers (raft voters); odd for quorum.")
    storage_size: Quantity = Field(default="10Gi", description="Raft data volume per server.")
    unseal: Literal["shamir-bootstrap"] = Field(
        default="shamir-bootstrap",
        description="Shamir keys generated by Pulumi at first 'pulumi up' and kept only as stack secrets "
        "(see components/vault_bootstrap.py); no auto-unseal service exists for this platform.",
    )
    key_shares: int = Field(default=5, ge=1, le=10, description="Unseal key shares (Shamir), set at initialisation only.")
    key_threshold: int = Field(default=3, ge=1, le=10, description="Shares needed to unseal, set at initialisation only.")
    kv_mount_path: DnsLabel = Field(default="kv", description="Path of the KV v2 secrets engine.")
    bootstrap_timeout_seconds: int = Field(
        default=900, ge=60, le=7200,
        description="How long 'pulumi up' waits for the Vault servers to answer before initialising and unsealing.",
    )
    recovery_root_token: SecretValue | None = Field(
        default=None,
        description="Only to recover the program's Vault access: a root token generated from the unseal keys "
        "(docs/operations/vault-root-token.md); the next 'up' mints a new pulumi-admin token with it and revokes "
        "it. Remove it afterwards. Secure value.",
    )

    @model_validator(mode="after")
    def _threshold(self) -> Vault:
        if self.key_threshold > self.key_shares:
            raise ValueError("keyThreshold cannot exceed keyShares")
        if self.replicas % 2 == 0:
            raise ValueError("replicas must be odd for raft quorum")
        return self


class IdentityGroup(Model):
    name: DnsLabel
    description: str = Field(default="", max_length=1024)
    superuser: bool = False


class Authentik(Model):
    storage_size: Quantity = Field(default="8Gi", description="PostgreSQL volume of Authentik.")
    platform_admin_group: DnsLabel = Field(
        default="platform-admins",
        description="Authentik group of the platform operators: Authentik superusers, cluster-admin on the "
        "management cluster, Vault admins.",
    )
    groups: list[IdentityGroup] = Field(default_factory=list, description="Further groups, e.g. tenant admins.")
    server_replicas: int = Field(default=2, ge=1, le=5, description="Authentik server pods.")
    worker_replicas: int = Field(default=1, ge=1, le=5, description="Authentik worker pods.")
    bootstrap_timeout_seconds: int = Field(
        default=900, ge=60, le=7200,
        description="How long 'pulumi up' waits for Authentik's API (default flows applied) before configuring it.",
    )


class GitRepository(Model):
    name: DnsLabel
    url: str = Field(pattern=r"^(https://|ssh://|git@)\S+$", max_length=2048)
    type: Literal["git", "helm"] = "git"
    username: str | None = None
    password: SecretValue | None = None


class ArgoCD(Model):
    ha: bool = Field(
        default=True,
        description="Redis HA, 2 API servers, 2 repo servers, 2 ApplicationSet controllers.",
    )
    repositories: list[GitRepository] = Field(default_factory=list)
    default_role: Literal["", "role:readonly"] = Field(
        default="",
        description="ArgoCD role of a logged-in user in no mapped group: '' (none, least privilege) "
        "or 'role:readonly'.",
    )


class NetbirdPolicy(Model):
    name: DnsLabel
    sources: list[str] = Field(min_length=1)
    destinations: list[str] = Field(min_length=1)
    protocol: Literal["all", "tcp", "udp", "icmp"] = "tcp"
    ports: list[int] = Field(default_factory=list)


class Netbird(Model):
    enabled: bool = True
    management_url: HttpsUrl = "https://api.netbird.io"
    routing_peer_replicas: int = Field(default=2, ge=1, le=5)
    groups: list[str] = Field(default_factory=lambda: ["platform-admins"])
    policies: list[NetbirdPolicy] = Field(default_factory=list)


class KubeVirt(Model):
    use_emulation: bool = Field(default=False, description="Only for hosts without VT-x/AMD-V (CI, nested labs).")
    cdi_scratch_storage_class: DnsLabel | None = Field(
        default=None,
        description="Overrides managementCluster.storageClass for CDI's scratch space (only on a cluster "
        "where the program does not create the StorageClass).",
    )
    local_path_provisioner: bool | None = Field(
        default=None,
        description="Deploy local-path-provisioner (StorageClass managementCluster.storageClass) on the Talos "
        "user volume; defaults to true with provisioner 'ovh-talos' and false on an existing cluster.",
    )


class ClusterApi(Model):
    tenant_namespace_prefix: str = Field(
        default="tenant-", pattern=r"^([a-z][a-z0-9-]{0,19})?$",
        description="Prefix of each tenant's namespace (prefix + tenant name must be a DNS label).",
    )
    # CAPI waits without limit for a drain or a volume detach when these are 0 (its default), which
    # hangs every pool shrink, rolling upgrade or health-check replacement behind one stuck pod or
    # volume. Ref: CAPI v1.14.0 MachineDeployment spec.template.spec.deletion (CRD descriptions).
    node_drain_timeout_seconds: int = Field(
        default=600, ge=1, le=86_400,
        description="How long Cluster API drains a worker node before deleting its machine anyway "
        "(MachineDeployment deletion.nodeDrainTimeoutSeconds; 0, CAPI's default, would wait forever).",
    )
    node_volume_detach_timeout_seconds: int = Field(
        default=300, ge=1, le=86_400,
        description="How long Cluster API waits for a deleted worker's volumes to detach "
        "(MachineDeployment deletion.nodeVolumeDetachTimeoutSeconds; never 0 = forever).",
    )
    github_token: SecretValue | None = Field(
        default=None,
        description="GitHub token the Cluster API operator uses to fetch provider releases (its docs ask "
        "for the 'repo' scope only); optional but recommended: without it the operator may exceed "
        "GitHub's API rate limit. Secret only: `pulumi config set --secret --path "
        "'weebo-platform:clusterApi.githubToken' <token>`.",
    )


class KubevirtCsi(Model):
    infra_storage_class: DnsLabel | None = Field(
        default=None,
        description="Overrides managementCluster.storageClass for tenant VM disks and kubevirt-csi volumes "
        "(only on a cluster where the program does not create the StorageClass).",
    )
    tenant_storage_class: DnsLabel = "kubevirt"


# --- backups (issue 17) ------------------------------------------------------------------------

# Regions of OVHcloud Object Storage (S3), lower case as the S3 endpoint takes them.
# Ref: ovh/docs pages/storage_and_backup/object_storage/s3_location/guide.en-gb.md
# ("List of available regions", updated 2026-02-03).
OVH_S3_REGIONS = (
    "gra", "rbx", "sbg", "eu-west-par", "eu-south-mil", "de", "uk", "waw",
    "bhs", "ca-east-tor", "sgp", "ap-southeast-syd", "ap-south-mum",
)
# Field ranges of a Kubernetes CronJob schedule (standard 5-field cron, robfig/cron parser).
# Ref: kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#schedule-syntax
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_CRON_PART = re.compile(r"^(\*|(\d+)(-(\d+))?)(/(\d+))?$")


def _cron(v: str) -> str:
    """A Kubernetes CronJob schedule: five numeric fields or a macro such as '@daily'."""
    if v in _CRON_MACROS:
        return v
    fields = v.split()
    if len(fields) != 5:
        raise ValueError(f"'{v}' is not a cron schedule: 5 fields (minute hour day-of-month month "
                         "day-of-week) such as '30 2 * * *', or one of " + ", ".join(sorted(_CRON_MACROS)))
    for text, (what, lo, hi) in zip(fields, _CRON_FIELDS):
        for part in text.split(","):
            m = _CRON_PART.match(part)
            if not m:
                raise ValueError(f"'{v}': {what} field '{text}' is not '*', 'N', 'N-M', a list or a '/step' of them")
            nums = [int(g) for g in (m.group(2), m.group(4)) if g is not None]
            if any(n < lo or n > hi for n in nums):
                raise ValueError(f"'{v}': {what} field '{text}' is outside {lo}-{hi}")
            if len(nums) == 2 and nums[0] > nums[1]:
                raise ValueError(f"'{v}': {what} range '{part}' runs backwards")
            if m.group(6) is not None and int(m.group(6)) == 0:
                raise ValueError(f"'{v}': {what} step '/0' is not allowed")
    return v


def _s3_region(v: str) -> str:
    if v not in OVH_S3_REGIONS:
        raise ValueError(f"'{v}' is not an OVHcloud Object Storage region; one of: {', '.join(OVH_S3_REGIONS)}")
    return v


CronSchedule = Annotated[str, AfterValidator(_cron)]
S3Region = Annotated[str, AfterValidator(_s3_region)]
_BUCKET = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"


class BackupSchedule(Model):
    schedule: CronSchedule = Field(description="CronJob schedule (UTC), e.g. '30 2 * * *'.")
    retention_days: int = Field(ge=1, le=3650, description="Days a backup object is kept (bucket lifecycle rule).")


def _backup_schedule(name: str, schedule: str, retention_days: int) -> type[BackupSchedule]:
    """A BackupSchedule whose two keys have this item's defaults (each may be set alone)."""
    return create_model(
        name, __base__=BackupSchedule,
        schedule=(CronSchedule, Field(default=schedule, description="CronJob schedule (UTC).")),
        retention_days=(int, Field(default=retention_days, ge=1, le=3650,
                                   description="Days a backup object is kept (bucket lifecycle rule).")),
    )


ManagementEtcdBackup = _backup_schedule("ManagementEtcdBackup", "0 */6 * * *", 14)
VaultBackup = _backup_schedule("VaultBackup", "15 */6 * * *", 30)
AuthentikBackup = _backup_schedule("AuthentikBackup", "30 2 * * *", 30)
DnsBackup = _backup_schedule("DnsBackup", "45 2 * * *", 30)
TenantEtcdBackup = _backup_schedule("TenantEtcdBackup", "0 3 * * *", 14)


class BackupItems(Model):
    management_etcd: ManagementEtcdBackup = Field(  # type: ignore[valid-type]
        default_factory=ManagementEtcdBackup,
        description="etcd of the management cluster (Talos API snapshot); only with provisioner ovh-talos.")
    vault: VaultBackup = Field(default_factory=VaultBackup, description="Vault raft snapshot.")  # type: ignore[valid-type]
    authentik: AuthentikBackup = Field(  # type: ignore[valid-type]
        default_factory=AuthentikBackup, description="Authentik's PostgreSQL (pg_dump, custom format).")
    dns: DnsBackup = Field(default_factory=DnsBackup,  # type: ignore[valid-type]
                           description="The platform zone served by Bind9 (AXFR).")
    tenant_etcd: TenantEtcdBackup = Field(  # type: ignore[valid-type]
        default_factory=TenantEtcdBackup, description="etcd of every tenant cluster (through its CACPPT talosconfig).")


class Backups(Model):
    cloud_project_id: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="OVHcloud Public Cloud project (service name, 32 hex characters) that holds the bucket.")
    region: S3Region = Field(default="gra", description="Object Storage region of the bucket.")
    bucket_name: str | None = Field(
        default=None, pattern=_BUCKET,
        description="Bucket name (unique in the region); defaults to '<managementCluster.name>-backups'.")
    items: BackupItems = Field(default_factory=BackupItems, description="Schedule and retention of each backup.")


# --- credential rotation (issue 17) -------------------------------------------------------------
# One counter per generated credential. Raising it regenerates that credential (a keeper of its
# pulumi_random generator, a generation-suffixed name for what a provider or controller makes) and
# updates its consumers in the same `up` (components/core/rotation.py). Config cannot check that a
# counter only ever grows: going back to an earlier number makes a new credential again, it does
# not bring the old one back (README "Rotating a credential").
Generation = Annotated[int, Field(ge=0)]


class TenantRotation(Model):
    argocd_token: Generation = Field(
        default=0, description="ArgoCD's ServiceAccount token in the tenant cluster (a new token Secret "
        "'argocd-manager-token-g<N>'; the ArgoCD cluster Secret switches to it, the old one is deleted).")
    netbird_setup_key: Generation = Field(
        default=0, description="NetBird setup key of the tenant's routing peers (only with netbirdRoute).")


class Rotation(Model):
    tsig_external_dns: Generation = Field(default=0, description="TSIG key of ExternalDNS (Bind9 and ExternalDNS restart).")
    tsig_cert_manager: Generation = Field(default=0, description="TSIG key of cert-manager's DNS-01 solver (Bind9 restarts).")
    tsig_backup_transfer: Generation = Field(
        default=0, description="Transfer-only TSIG key of the zone backup (Bind9 restarts; only with backups).")
    argocd_client_secret: Generation = Field(
        default=0, description="OIDC client secret of ArgoCD in Authentik (Authentik provider and ArgoCD's Secret).")
    vault_client_secret: Generation = Field(
        default=0, description="OIDC client secret of Vault in Authentik (Authentik provider and Vault's OIDC auth mount).")
    netbird_setup_key: Generation = Field(
        default=0, description="NetBird setup key of the management cluster's routing peers.")
    backup_encryption_key: Generation = Field(
        default=0, description="Client-side backup encryption key; objects are then written under 'k<N>/'. "
        "Every earlier key stays (protected) for older objects: stack output 'backupEncryptionKeys'.")
    backup_credentials: Generation = Field(
        default=0, description="S3 credentials of the backup bucket (new keys are created before the old are deleted).")
    authentik_api_token: Generation = Field(
        default=0, description="The program's Authentik API token (service account pulumi-admin; the new token "
        "is created before the old is deleted; the authentik provider follows).")
    tenants: dict[str, TenantRotation] = Field(
        default_factory=dict, description="Per tenant (by name): its own credentials.")

    def tenant(self, name: str) -> TenantRotation:
        return self.tenants.get(name) or TenantRotation()


class VmOverhead(Model):
    cpu: float = Field(default=0.25, ge=0, le=8, allow_inf_nan=False, description="CPU cores per VM for virt-launcher and QEMU.")
    memory_mib: int = Field(default=300, ge=0, le=16384, description="Memory per VM for virt-launcher and QEMU.")


class HostCapacity(Model):
    # Upper bounds: far beyond any OVH fleet (one server has at most a few hundred cores and a few
    # TiB of memory), so that a typo such as 1e30 is refused rather than taken for a size.
    cpu: int = Field(gt=0, le=100_000, description="Cores available to tenant VMs.")
    memory_gib: int = Field(gt=0, le=10_000_000, description="Memory available to tenant VMs.")
    disk_gib: int = Field(gt=0, le=1_000_000_000, description="Disk available to tenant VM boot volumes and volumes.")
    vm_overhead: VmOverhead = Field(default_factory=VmOverhead)


class MachineShape(Model):
    cpu: int = Field(ge=1, le=64)
    memory_gib: int = Field(ge=2, le=512)
    disk_gib: int = Field(ge=10, le=4096)


class ControlPlane(MachineShape):
    replicas: Literal[1, 3, 5] = 1
    cpu: int = Field(default=2, ge=2, le=64)
    memory_gib: int = Field(default=4, ge=2, le=512)
    disk_gib: int = Field(default=20, ge=10, le=4096)


class WorkerPool(MachineShape):
    name: DnsLabel
    replicas: int = Field(ge=0, le=100)


class TenantApp(Model):
    """An application ArgoCD deploys to the tenant ("other apps")."""

    name: DnsLabel
    repo_url: str = Field(pattern=r"^(https://|ssh://|git@|oci://)\S+$", max_length=2048)
    path: RepoPath | None = None  # a directory of the repository, relative to its root
    chart: ChartName | None = None
    target_revision: str = Field(min_length=1, max_length=128)
    namespace: DnsLabel

    @model_validator(mode="after")
    def _source(self) -> TenantApp:
        if (self.path is None) == (self.chart is None):
            raise ValueError("set exactly one of 'path' (git directory) or 'chart' (Helm chart)")
        if not is_pinned_revision(self.target_revision, chart=self.chart is not None):
            raise ValueError(
                f"targetRevision '{self.target_revision}' is not a pin: use "
                + ("an exact chart version such as '1.2.3'" if self.chart is not None else
                   "a release tag such as 'v1.2.3' or a commit SHA")
                + " (no branch, range or wildcard)")
        return self


# Same exact-version syntax as the policy's pinned-versions rule (policy/rules.py _EXACT_VERSION).
_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_BRANCHES = frozenset({"HEAD", "latest", "main", "master", "develop", "trunk", "stable"})


def is_pinned_revision(rev: str, chart: bool) -> bool:
    """An exact chart version for a chart; for git, an exact version tag, a commit SHA, or a tag
    with a digit in it that is none of the usual branch names (no '*', ranges or '^'/'~')."""
    if _EXACT_VERSION.match(rev):
        return True
    if chart:
        return False
    if _COMMIT.match(rev):
        return True
    return bool(_TAG.match(rev)) and rev not in _BRANCHES and any(c.isdigit() for c in rev) and ".." not in rev


def _vault_bound_name(v: str) -> str:
    return v if v == "*" else _dns_label(v)


# A ServiceAccount or namespace name a Vault Kubernetes auth role binds, or "*".
VaultBoundName = Annotated[str, AfterValidator(_vault_bound_name)]


class Tenant(Model):
    name: DnsLabel
    talos_version: TalosVersion
    kubernetes_version: KubernetesVersion
    control_plane: ControlPlane = Field(default_factory=ControlPlane)
    worker_pools: list[WorkerPool] = Field(default_factory=list)
    pod_cidr: IPv4Cidr
    service_cidr: IPv4Cidr
    admin_groups: list[DnsLabel] = Field(min_length=1)
    apps: list[TenantApp] = Field(default_factory=list)
    netbird_route: bool = False
    allow_deletion: bool = Field(
        default=False,
        description="Deleting a tenant takes two runs: set this to true (lifts the protection of its "
        "namespace, Cluster and control plane), then remove the tenant from the config.",
    )
    api_source_ranges: list[Cidr] | None = Field(
        default=None, min_length=1,
        description="Ranges allowed to reach the tenant API load balancer from outside the management "
        "cluster; defaults to managementCluster.operatorSourceRanges (or anywhere when that is empty). "
        "Not an empty list: a NetworkPolicy rule with no source admits every source.",
    )
    volume_storage_gib: int = Field(
        default=100, ge=0, le=100_000,
        description="Capacity for the tenant's own PersistentVolumes (kubevirt-csi), counted in the "
        "namespace quota on top of the VM boot disks.",
    )
    vault_service_accounts: list[VaultBoundName] = Field(
        default_factory=lambda: ["vault-auth"], min_length=1,
        description="ServiceAccount names of the tenant cluster that may log in to Vault (auth mount "
        "kubernetes-<tenant>, role 'default') and get the tenant's policy; '*' for any name.",
    )
    vault_namespaces: list[VaultBoundName] = Field(
        default_factory=lambda: ["*"], min_length=1,
        description="Namespaces of the tenant cluster those ServiceAccounts may live in; '*' for any "
        "(every namespace of a tenant cluster belongs to the tenant). Not '*' together with a '*' name.",
    )

    @model_validator(mode="after")
    def _vault_binding_is_not_everyone(self) -> "Tenant":
        # Vault refuses a role whose names and namespaces are both "*" (the same check in hvac
        # api/auth_methods/kubernetes.py create_role: 'can not both be "*"').
        if "*" in self.vault_service_accounts and "*" in self.vault_namespaces:
            raise ValueError("vaultServiceAccounts and vaultNamespaces cannot both be '*'")
        return self

    @property
    def machines(self) -> list[tuple[int, MachineShape]]:
        return [(self.control_plane.replicas, self.control_plane)] + [(p.replicas, p) for p in self.worker_pools]


def tenant_control_plane_problems(cfg: "PlatformConfig") -> list[ConfigProblem]:
    """A tenant with more than one control-plane VM needs at least as many management servers.

    Tenant VMs sit on the management cluster's pod network (KubeVirt, Cilium), which cannot keep
    a VM's address across a restart: Cilium has no persistent pod IPs (cilium/cilium#17026), the
    masquerade binding gives every guest the same private address, and a secondary network with
    static MACs and DHCP reservations (Multus, kube-ovn) is not part of this platform (CAPK v0.11.2
    docs/faq.md lists exactly these workarounds). A control-plane VM that restarts comes back with
    a new address; Talos then updates its etcd member's peer URLs, which needs quorum of the
    others (siderolabs/talos#6106, #12720). That works one VM at a time; on a single server a
    reboot restarts every control-plane VM at once and etcd never regains quorum. Hence one
    control-plane VM per server (required anti-affinity, components.tenant.capi.spread), plus a
    free server for the VM CACPPT adds while it rolls the control plane (maxSurge 1); a single-VM
    control plane (its own quorum) is always allowed. Recovery of a lost quorum: README "Tenant
    lifecycle" (etcd snapshot restore).
    """
    mc = cfg.management_cluster
    servers = len(mc.nodes) if mc.provisioner == "ovh-talos" else 0
    surge = 1  # components.tenant.capi.MAX_SURGE (that module imports this one)
    out: list[ConfigProblem] = []
    for i, t in enumerate(cfg.tenants):
        replicas = t.control_plane.replicas
        if replicas > 1 and servers < replicas + surge:
            where = (f"the management cluster has {servers} server(s)" if mc.provisioner == "ovh-talos"
                     else "the servers of an existing management cluster are not declared")
            out.append(ConfigProblem(
                path=f"tenants[{i}].controlPlane.replicas",
                problem=f"{replicas} control-plane VMs but {where}: their addresses change when they restart "
                "together, and etcd loses quorum for good",
                hint="use controlPlane.replicas: 1 (etcd snapshots for recovery), or give the management "
                f"cluster {replicas + surge} servers: one per control-plane VM and one for the rolling-update VM",
            ))
    return out


class PlatformConfig(Model):
    """One environment: the whole ``weebo-platform`` namespace of a stack file."""

    management_cluster: ManagementCluster
    domain: Domain
    cilium: Cilium = Field(default_factory=Cilium)
    cert_manager: CertManager = Field(default_factory=CertManager)
    traefik: Traefik = Field(default_factory=Traefik)
    dns: Dns = Field(default_factory=Dns)
    vault: Vault = Field(default_factory=Vault)
    authentik: Authentik = Field(default_factory=Authentik)
    argocd: ArgoCD = Field(default_factory=ArgoCD)
    netbird: Netbird = Field(default_factory=Netbird)
    kubevirt: KubeVirt = Field(default_factory=KubeVirt)
    cluster_api: ClusterApi = Field(default_factory=ClusterApi)
    kubevirt_csi: KubevirtCsi = Field(default_factory=KubevirtCsi)
    host_capacity: HostCapacity
    tenants: list[Tenant] = Field(default_factory=list)
    backups: Backups | None = Field(default=None, description="Encrypted backups to OVHcloud Object Storage; none when unset.")
    rotation: Rotation = Field(default_factory=Rotation,
                               description="Generation of each generated credential: raise one to rotate it.")

    @property
    def cluster_endpoint(self) -> str:
        mc = self.management_cluster
        return mc.endpoint or f"{mc.name}.{self.domain.parent_zone}"

    def lb_pool_addresses(self) -> list[str]:
        out: list[str] = []
        for block in self.management_cluster.load_balancer_ips:
            net = ipaddress.ip_network(block)
            if net.prefixlen < MAX_LB_BLOCK_PREFIX:
                continue  # refused by validation; never enumerated (a /8 is 16 million addresses)
            out.extend(str(a) for a in (net if net.prefixlen >= 31 else net.hosts()))
        return out

    @property
    def deploys_local_storage(self) -> bool:
        """local-path-provisioner needs the Talos user volume: on by default on Talos only."""
        if self.kubevirt.local_path_provisioner is not None:
            return self.kubevirt.local_path_provisioner
        return self.management_cluster.provisioner == "ovh-talos"

    def storage_class(self, override: str | None = None) -> str:
        """The StorageClass a volume on the management cluster names: managementCluster.storageClass
        unless a service's own key overrides it (validated: only where the program creates none)."""
        return override or self.management_cluster.storage_class

    @property
    def cdi_scratch_storage_class(self) -> str:
        return self.storage_class(self.kubevirt.cdi_scratch_storage_class)

    @property
    def infra_storage_class(self) -> str:
        """Tenant VM disks and kubevirt-csi volumes (DataVolumes on the management cluster)."""
        return self.storage_class(self.kubevirt_csi.infra_storage_class)

    @property
    def traefik_ip(self) -> str | None:
        pool = self.lb_pool_addresses()
        return self.traefik.load_balancer_ip or (pool[0] if pool else None)

    @property
    def dns_ip(self) -> str | None:
        pool = self.lb_pool_addresses()
        return self.dns.load_balancer_ip or (pool[1] if len(pool) > 1 else None)


# --------------------------------------------------------------------------------------------
# Cross-field rules: each returns problems instead of raising, so all are reported together.
# --------------------------------------------------------------------------------------------

def _cross_checks(cfg: PlatformConfig, failed: frozenset[str] = frozenset()) -> list[ConfigProblem]:
    """``failed``: top-level sections that did not validate (stand-ins here): rules that read
    one of them are left out rather than report problems that are not there."""
    p: list[ConfigProblem] = []
    mc = cfg.management_cluster
    if mc.provisioner == "ovh-talos":
        cps = mc.control_planes
        if len(cps) not in (1, 3):
            p.append(ConfigProblem(
                path="managementCluster.nodes",
                problem=f"{len(cps)} control-plane node(s); etcd needs 1 or 3",
                hint="declare 1 or 3 nodes with role 'controlplane'",
            ))
        if not mc.load_balancer_ips:
            p.append(ConfigProblem(
                path="managementCluster.loadBalancerIps",
                problem="no additional IP for load balancers",
                hint="add the OVH additional IP block(s) routed to the server, e.g. ['51.210.10.8/30']",
            ))
        if not mc.operator_source_ranges:
            p.append(ConfigProblem(
                path="managementCluster.operatorSourceRanges",
                problem="empty: the Talos and Kubernetes APIs would be closed to everyone",
                hint="list the operators' public ranges, e.g. ['203.0.113.0/24']",
            ))
        # The OVH network firewall filters at OVH's edge, where a packet's source is a public
        # address: a range inside private, shared (CGNAT: NetBird's overlay is 100.64.0.0/10) or
        # link-local space can never match there, nor at Traefik (the routing peer masquerades).
        for i, r in enumerate(mc.operator_source_ranges):
            net = ipaddress.ip_network(r)
            if any(net.version == b.version and net.subnet_of(b) for b in NON_PUBLIC_BLOCKS):  # type: ignore[arg-type]
                p.append(ConfigProblem(
                    path=f"managementCluster.operatorSourceRanges[{i}]",
                    problem=f"{r} is not public address space: the OVH firewall never sees it as a source",
                    hint="list public egress ranges only (the operators' offices, the deploy runners); "
                         "the NetBird overlay never reaches OVH as a source",
                ))
        if mc.existing is not None:
            p.append(ConfigProblem(
                path="managementCluster.existing",
                problem="only used with provisioner 'existing'",
                hint="remove it or set managementCluster.provisioner: existing",
            ))
    else:
        if mc.nodes:
            p.append(ConfigProblem(
                path="managementCluster.nodes",
                problem="servers are listed but provisioner is 'existing'",
                hint="remove the nodes or set managementCluster.provisioner: ovh-talos",
            ))
    _unique(p, "managementCluster.nodes", [n.hostname for n in mc.nodes], "hostname")
    _unique(p, "managementCluster.nodes", [n.address for n in mc.nodes], "address")
    _unique(p, "managementCluster.nodes", [n.ovh_service_name for n in mc.nodes], "ovhServiceName")

    # Every volume on the management cluster names a StorageClass that exists: where the program
    # creates one (local-path-provisioner), it is the only one there is.
    if cfg.deploys_local_storage:
        if mc.declared_storage_classes:
            p.append(ConfigProblem(
                path="managementCluster.declaredStorageClasses",
                problem="declared while the program creates the cluster's only StorageClass (local-path-provisioner)",
                hint="remove it, or set kubevirt.localPathProvisioner: false to use the cluster's own classes",
            ))
        for path, override in (("dns.storageClass", cfg.dns.storage_class),
                               ("kubevirt.cdiScratchStorageClass", cfg.kubevirt.cdi_scratch_storage_class),
                               ("kubevirtCsi.infraStorageClass", cfg.kubevirt_csi.infra_storage_class)):
            if override is not None and override != mc.storage_class:
                p.append(ConfigProblem(
                    path=path,
                    problem=f"'{override}' is not a StorageClass of this cluster: the program creates only "
                            f"'{mc.storage_class}' (managementCluster.storageClass)",
                    hint=f"remove the key (volumes then use '{mc.storage_class}'), or rename the created class "
                         "with managementCluster.storageClass",
                ))
    elif "managementCluster" not in failed:
        # A cluster the program creates no StorageClass on: every volume names a class declared
        # to exist there (a claim naming a missing class stays Pending, and so does all behind it).
        declared = list(mc.declared_storage_classes)
        for path, name in (("managementCluster.storageClass", mc.storage_class),
                           ("dns.storageClass", cfg.dns.storage_class),
                           ("kubevirt.cdiScratchStorageClass", cfg.kubevirt.cdi_scratch_storage_class),
                           ("kubevirtCsi.infraStorageClass", cfg.kubevirt_csi.infra_storage_class)):
            if name is not None and name not in declared:
                p.append(ConfigProblem(
                    path=path,
                    problem=f"'{name}' is not a StorageClass declared on this cluster "
                            f"(managementCluster.declaredStorageClasses: {declared or 'none'}), and the program "
                            "creates none here",
                    hint="list the cluster's classes (kubectl get storageclass) under "
                         "managementCluster.declaredStorageClasses and name one, or set "
                         "kubevirt.localPathProvisioner: true",
                ))

    pool = cfg.lb_pool_addresses() if "managementCluster" not in failed else []
    for path, ip in (("traefik.loadBalancerIp", cfg.traefik.load_balancer_ip), ("dns.loadBalancerIp", cfg.dns.load_balancer_ip)):
        if ip and ip not in pool and "managementCluster" not in failed:
            p.append(ConfigProblem(path=path, problem=f"{ip} is not in managementCluster.loadBalancerIps",
                                   hint="pick an address of the load-balancer pool"))
    if cfg.traefik_ip and cfg.traefik_ip == cfg.dns_ip:
        p.append(ConfigProblem(path="dns.loadBalancerIp", problem="Traefik and Bind9 would share one pool IP",
                               hint="give Bind9 another pool address"))
    if cfg.traefik_ip is None and mc.provisioner != "ovh-talos":
        # ExternalDNS publishes every IngressRoute at Traefik's pinned address (its traefik-proxy
        # source has no other target): without one, no platform name would resolve.
        p.append(ConfigProblem(path="managementCluster.loadBalancerIps",
                               problem="empty: Traefik gets no pinned address, so ExternalDNS can publish no route",
                               hint="list the cluster's load-balancer range, e.g. ['172.18.255.200/29']"))
    if 22 < ipaddress.ip_network(mc.service_cidr).prefixlen <= MIN_SERVICE_PREFIX:
        # Bind9's fixed ClusterIP (components.core.contracts.bind9_cluster_ip) must lie in the range's
        # static band, min(max(16, size/16), 256) addresses: /22 or larger (a range smaller than
        # /MIN_SERVICE_PREFIX is refused by _range_rules already).
        p.append(ConfigProblem(path="managementCluster.serviceCidr",
                               problem=f"{mc.service_cidr} is smaller than /22: no room for Bind9's fixed ClusterIP",
                               hint="use a /22 or larger service range, e.g. 10.96.0.0/12"))

    if cfg.vault.replicas > 1 and mc.provisioner == "ovh-talos" and len(mc.nodes) == 1:
        # Raft replicas on one node still give data redundancy across pods but not across hosts:
        # accepted, since anti-affinity is soft in the rendered values.
        pass

    # Identity groups: tenants must name declared groups.
    groups = {cfg.authentik.platform_admin_group} | {g.name for g in cfg.authentik.groups}
    _unique(p, "authentik.groups", [g.name for g in cfg.authentik.groups], "name")
    _unique(p, "argocd.repositories", [r.name for r in cfg.argocd.repositories], "name")
    for i, r in enumerate(cfg.argocd.repositories):
        if r.password is not None and r.username is None:
            p.append(ConfigProblem(path=f"argocd.repositories[{i}].username", problem="a password is set without a username",
                                   hint="add the username the password belongs to"))

    # Tenants
    _unique(p, "tenants", [t.name for t in cfg.tenants], "name")
    nets: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = [
        ("managementCluster.podCidr", ipaddress.ip_network(mc.pod_cidr)),
        ("managementCluster.serviceCidr", ipaddress.ip_network(mc.service_cidr)),
    ]
    for i, t in enumerate(cfg.tenants):
        base = f"tenants[{i}]"
        for g_i, g in enumerate(t.admin_groups):
            if g not in groups and "authentik" not in failed:
                p.append(ConfigProblem(path=f"{base}.adminGroups[{g_i}]", problem=f"group '{g}' is not declared",
                                       hint=f"declare it under authentik.groups or use one of: {', '.join(sorted(groups))}"))
        _unique(p, f"{base}.workerPools", [w.name for w in t.worker_pools], "name")
        _unique(p, f"{base}.apps", [a.name for a in t.apps], "name")
        talos_minor = ".".join(t.talos_version.removeprefix("v").split(".")[:2])
        k8s_minor = ".".join(t.kubernetes_version.split(".")[:2])
        supported = versions.TENANT_VERSION_MATRIX.get(talos_minor)
        if supported is None:
            p.append(ConfigProblem(
                path=f"{base}.talosVersion",
                problem=f"Talos {t.talos_version} is not supported by the pinned Cluster API Talos providers "
                f"(CABPT {versions.CABPT_VERSION}, CACPPT {versions.CACPPT_VERSION})",
                hint=f"use a Talos {' or '.join(versions.TENANT_VERSION_MATRIX)} release",
            ))
        elif k8s_minor not in supported:
            p.append(ConfigProblem(
                path=f"{base}.kubernetesVersion",
                problem=f"Kubernetes {t.kubernetes_version} is not supported with Talos {t.talos_version}",
                hint=f"use Kubernetes {supported[0]}-{supported[-1]} with Talos {talos_minor}",
            ))
        for key in ("pod_cidr", "service_cidr"):
            nets.append((f"{base}.{to_camel(key)}", ipaddress.ip_network(getattr(t, key))))
    for a in range(len(nets)):
        for b in range(a + 1, len(nets)):
            (pa, na), (pb, nb) = nets[a], nets[b]
            if na.overlaps(nb):
                p.append(ConfigProblem(path=pb, problem=f"{nb} overlaps {pa} ({na})",
                                       hint="give every cluster its own pod and service ranges"))

    if "managementCluster" not in failed:  # it counts the management cluster's servers
        p.extend(tenant_control_plane_problems(cfg))

    # Rotation counters of tenants that do not exist would silently do nothing.
    tenant_names = sorted(t.name for t in cfg.tenants)
    for tname in sorted(cfg.rotation.tenants) if not {"tenants", "rotation"} & failed else ():
        if tname not in tenant_names:
            p.append(ConfigProblem(path=f"rotation.tenants.{tname}", problem=f"no tenant is named '{tname}'",
                                   hint=_spelling_hint(tname, tenant_names) if tenant_names else "remove it: there are no tenants"))

    # Capacity: the sum of tenant VM requests (plus per-VM overhead) must fit the host.
    ov = cfg.host_capacity.vm_overhead
    cpu = mem = disk = 0.0
    for t in cfg.tenants:
        for count, shape in t.machines:
            cpu += count * (shape.cpu + ov.cpu)
            mem += count * (shape.memory_gib + ov.memory_mib / 1024)
            disk += count * shape.disk_gib
        # The tenant's own PersistentVolumes (kubevirt-csi) live on the same host disks.
        disk += t.volume_storage_gib
    cap = cfg.host_capacity
    for name, used, avail in (("cpu", cpu, cap.cpu), ("memoryGib", mem, cap.memory_gib), ("diskGib", disk, cap.disk_gib)):
        if used > avail and "hostCapacity" not in failed:
            p.append(ConfigProblem(
                path=f"hostCapacity.{name}",
                problem=f"tenant VMs need {used:g} (with per-VM overhead{', and volumeStorageGib' if name == 'diskGib' else ''}) "
                f"but the host offers {avail}",
                hint="shrink or remove tenant machines, or declare the real host capacity",
            ))
    return p


# --------------------------------------------------------------------------------------------
# Management-cluster versions: supported pairs, and one minor step from what is deployed
# --------------------------------------------------------------------------------------------

# Stack output in which the program records what the management nodes were last seen running
# (components/talos_upgrade.ClusterUpgrades.versions), read back before validation.
DEPLOYED_VERSIONS_OUTPUT = "managementClusterVersions"


class DeployedVersions(BaseModel):
    """What the last ``pulumi up`` recorded (the stack's own ``managementClusterVersions`` output)."""

    model_config = ConfigDict(frozen=True)

    talos: dict[str, str] = Field(default_factory=dict)  # hostname -> Talos version
    kubernetes: str | None = None
    machine_config_version: str | None = Field(default=None, alias="machineConfigVersion")


def _minor_of(version: str) -> str:
    return ".".join(version.removeprefix("v").split(".")[:2])


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.removeprefix("v").split("."))


def management_version_problems(mc: ManagementCluster, deployed: DeployedVersions | None) -> list[ConfigProblem]:
    """Refuse unsupported Talos/Kubernetes pairs and, against what is deployed, skipped minors
    and downgrades (the upgrade resources' own diff refuses them too, from their state)."""
    if mc.provisioner != "ovh-talos":
        return []  # an existing cluster is upgraded by whoever runs it
    p: list[ConfigProblem] = []
    base = "managementCluster"
    talos_minor, k8s_minor = _minor_of(mc.talos_version), _minor_of(mc.kubernetes_version)
    supported = versions.MANAGEMENT_VERSION_MATRIX.get(talos_minor)
    if supported is None:
        p.append(ConfigProblem(path=f"{base}.talosVersion", problem=f"Talos {mc.talos_version} is not a supported "
                               "management-cluster release",
                               hint=f"use a Talos {' or '.join(versions.MANAGEMENT_VERSION_MATRIX)} release"))
    elif k8s_minor not in supported:
        p.append(ConfigProblem(path=f"{base}.kubernetesVersion",
                               problem=f"Kubernetes {mc.kubernetes_version} is not supported with Talos {mc.talos_version}",
                               hint=f"use Kubernetes {supported[0]}-{supported[-1]} with Talos {talos_minor}"))
    if mc.machine_config_version and _version_key(mc.machine_config_version) > _version_key(mc.talos_version):
        p.append(ConfigProblem(path=f"{base}.machineConfigVersion",
                               problem=f"{mc.machine_config_version} is newer than talosVersion {mc.talos_version}: "
                               "nodes would not understand the configuration",
                               hint="set it to the version the cluster was installed with (at most talosVersion)"))
    if deployed is None:
        return p
    running = sorted(deployed.talos.values(), key=_version_key)
    if running:
        # The oldest node decides a skip, the newest a downgrade.
        for current in dict.fromkeys((running[0], running[-1])):
            problem = facts.step_problem(current, mc.talos_version, "talos", allow_downgrade=mc.allow_talos_downgrade)
            if problem:
                p.append(ConfigProblem(path=f"{base}.talosVersion", problem=f"deployed nodes run {current}: {problem}",
                                       hint="edit talosVersion one minor at a time, each applied by its own 'pulumi up'"))
                break
        if _minor_of(running[0]) != talos_minor and mc.machine_config_version is None:
            contract = deployed.machine_config_version or running[0]
            p.append(ConfigProblem(
                path=f"{base}.machineConfigVersion",
                problem=f"unset while Talos moves from {running[0]} to {mc.talos_version}: the machine configuration "
                "would switch to the new release's features, which the nodes still on the old release refuse, "
                "and Talos would reboot them to apply it",
                hint=f"set managementCluster.machineConfigVersion: {contract} (the contract the cluster runs with)",
            ))
    if deployed.kubernetes:
        problem = facts.step_problem(deployed.kubernetes, mc.kubernetes_version, "kubernetes")
        if problem:
            p.append(ConfigProblem(path=f"{base}.kubernetesVersion", problem=f"the cluster runs {deployed.kubernetes}: {problem}",
                                   hint="edit kubernetesVersion one minor at a time, each applied by its own 'pulumi up'"))
    return p


# Stack-file rules that used to run only in components or during 'pulumi up' (each group reads
# the sections it names in ``_RULE_GROUPS``; a group is left out when one of them failed).
# --------------------------------------------------------------------------------------------

# NetBird hands its peers addresses out of the CGNAT range (Ref: netbirdio/netbird
# management/server/types/network.go (NewNetwork: a random /16 of 100.64.0.0/10) @ v0.74.7):
# a cluster range inside it would be unreachable from the VPN.
NETBIRD_OVERLAY = ipaddress.ip_network("100.64.0.0/10")
# Ranges no cluster may use: "this network", loopback, link-local, multicast, reserved.
_UNUSABLE_RANGES = tuple(ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4"))
# kube-apiserver refuses a larger IPv4 service range (Ref: kubernetes/kubernetes
# cmd/kube-apiserver/app/options/validation.go (validateMaxCIDRRange, maxCIDRBits 20): "the mask
# must be >= 12").
MAX_SERVICE_PREFIX = 12
# The platform's own Services (and a tenant's add-ons) need room: at least a /24 of ClusterIPs.
MIN_SERVICE_PREFIX = 24
# Each node gets a /24 of the pod range (kube-controller-manager --node-cidr-mask-size default 24).
NODE_POD_PREFIX = 24


def _range_rules(cfg: PlatformConfig) -> list[ConfigProblem]:
    """Pod and service ranges of every cluster: a sane size, nowhere unusable, clear of the
    load-balancer pool, the node addresses and the NetBird overlay."""
    p: list[ConfigProblem] = []
    mc = cfg.management_cluster
    pool = [ipaddress.ip_network(b) for b in mc.load_balancer_ips]
    nodes = [ipaddress.ip_address(n.address) for n in mc.nodes]
    clusters: list[tuple[str, Any, int]] = [("managementCluster", mc, max(1, len(mc.nodes)))]
    clusters += [(f"tenants[{i}]", t, max(1, sum(c for c, _ in t.machines))) for i, t in enumerate(cfg.tenants)]
    for base, c, machines in clusters:
        for key, kind in (("pod_cidr", "pod"), ("service_cidr", "service")):
            path = f"{base}.{to_camel(key)}"
            net = ipaddress.ip_network(getattr(c, key))
            if kind == "service" and net.prefixlen < MAX_SERVICE_PREFIX:
                p.append(ConfigProblem(path=path, problem=f"{net} is larger than the /{MAX_SERVICE_PREFIX} kube-apiserver accepts",
                                       hint=f"use a /{MAX_SERVICE_PREFIX} to /{MIN_SERVICE_PREFIX} block"))
            elif kind == "service" and net.prefixlen > MIN_SERVICE_PREFIX:
                p.append(ConfigProblem(path=path, problem=f"{net} holds too few Services ({net.num_addresses} addresses)",
                                       hint=f"use at least a /{MIN_SERVICE_PREFIX}"))
            if kind == "pod" and (net.prefixlen > NODE_POD_PREFIX or 2 ** (NODE_POD_PREFIX - net.prefixlen) < machines):
                p.append(ConfigProblem(path=path, problem=f"{net} cannot give each of {machines} node(s) its /{NODE_POD_PREFIX}",
                                       hint=f"use a block of at least {machines} x /{NODE_POD_PREFIX}, e.g. a /16"))
            bad = next((u for u in _UNUSABLE_RANGES if net.overlaps(u)), None)
            if bad is not None:
                p.append(ConfigProblem(path=path, problem=f"{net} overlaps the reserved range {bad}",
                                       hint="use a private range such as 10.x.0.0/16"))
            for j, block in enumerate(pool):
                if net.overlaps(block):
                    p.append(ConfigProblem(path=path, problem=f"{net} overlaps managementCluster.loadBalancerIps[{j}] ({block})",
                                           hint="keep cluster ranges clear of the public load-balancer pool"))
            for j, addr in enumerate(nodes):
                if addr in net:
                    p.append(ConfigProblem(path=path, problem=f"{net} contains the address of managementCluster.nodes[{j}] ({addr})",
                                           hint="keep cluster ranges clear of the node addresses"))
            if cfg.netbird.enabled and net.overlaps(NETBIRD_OVERLAY):
                p.append(ConfigProblem(path=path, problem=f"{net} overlaps the NetBird overlay {NETBIRD_OVERLAY}",
                                       hint="use a range outside 100.64.0.0/10"))
    return p


def _node_rules(cfg: PlatformConfig) -> list[ConfigProblem]:
    """OVH servers: public, routable addresses outside the pool; names and the endpoint inside
    the OVH-hosted zone and distinct from each other."""
    p: list[ConfigProblem] = []
    mc = cfg.management_cluster
    if mc.provisioner != "ovh-talos":
        return p
    pool = [ipaddress.ip_network(b) for b in mc.load_balancer_ips]
    for i, n in enumerate(mc.nodes):
        addr = ipaddress.ip_address(n.address)
        what = ("unspecified" if addr.is_unspecified else "loopback" if addr.is_loopback else
                "multicast" if addr.is_multicast else "link-local" if addr.is_link_local else
                "broadcast" if str(addr) == "255.255.255.255" else "reserved" if addr.is_reserved else
                "private" if addr.is_private or addr in NETBIRD_OVERLAY else None)
        if what:
            p.append(ConfigProblem(path=f"managementCluster.nodes[{i}].address", problem=f"{addr} is a {what} address",
                                   hint="write the server's public IPv4 address (OVH manager, IP section)"))
        for j, block in enumerate(pool):
            if addr in block:
                p.append(ConfigProblem(path=f"managementCluster.nodes[{i}].address",
                                       problem=f"{addr} is inside managementCluster.loadBalancerIps[{j}] ({block})",
                                       hint="the server's main address is not part of an additional IP block"))
        if f"{n.hostname}.{cfg.domain.parent_zone}" == cfg.cluster_endpoint:
            p.append(ConfigProblem(path=f"managementCluster.nodes[{i}].hostname",
                                   problem=f"the node's DNS name is the cluster endpoint '{cfg.cluster_endpoint}'",
                                   hint="rename the node or set managementCluster.endpoint to another name"))
    zone = cfg.domain.parent_zone
    if mc.endpoint is not None and not mc.endpoint.endswith("." + zone):
        p.append(ConfigProblem(path="managementCluster.endpoint",
                               problem=f"'{mc.endpoint}' is not inside the OVH-hosted zone '{zone}'",
                               hint=f"use a name such as '{mc.name}.{zone}', or leave it unset"))
    return p


def _pool_rules(cfg: PlatformConfig) -> list[ConfigProblem]:
    """Enough pool addresses for Traefik, Bind9 and one per tenant (its API and apps
    LoadBalancers share one address: components.tenant.capi.sharing_key); no block twice."""
    p: list[ConfigProblem] = []
    mc = cfg.management_cluster
    _unique(p, "managementCluster.loadBalancerIps", [str(ipaddress.ip_network(b)) for b in mc.load_balancer_ips], "")
    blocks = [ipaddress.ip_network(b) for b in mc.load_balancer_ips]
    for a in range(len(blocks)):
        for b in range(a + 1, len(blocks)):
            if blocks[a] != blocks[b] and blocks[a].overlaps(blocks[b]):
                p.append(ConfigProblem(path=f"managementCluster.loadBalancerIps[{b}]",
                                       problem=f"{blocks[b]} overlaps loadBalancerIps[{a}] ({blocks[a]})",
                                       hint="list each routed block once"))
    if mc.load_balancer_ips:
        need = 2 + len(cfg.tenants)
        have = len(set(cfg.lb_pool_addresses()))
        if have < need:
            p.append(ConfigProblem(
                path="managementCluster.loadBalancerIps",
                problem=f"{have} usable address(es); Traefik, Bind9 and each of the {len(cfg.tenants)} tenant(s) "
                f"need one ({need})",
                hint="route a larger additional IP block, or fewer tenants"))
    return p


def platform_namespaces() -> frozenset[str]:
    """Namespaces the platform itself creates on the management cluster, and Kubernetes' own
    (stacks/facts.py, where the components take their namespaces from)."""
    return facts.platform_namespaces()


def _name_rules(cfg: PlatformConfig) -> list[ConfigProblem]:
    """Derived Kubernetes names: each tenant's namespace (prefix + name) is a DNS label of at
    most 63 characters and none of the platform's own namespaces."""
    p: list[ConfigProblem] = []
    prefix = cfg.cluster_api.tenant_namespace_prefix
    taken = platform_namespaces()
    for i, t in enumerate(cfg.tenants):
        ns = f"{prefix}{t.name}"
        if not _DNS_LABEL.match(ns):
            p.append(ConfigProblem(path=f"tenants[{i}].name",
                                   problem=f"its namespace '{ns}' (clusterApi.tenantNamespacePrefix + name) is not a "
                                   "DNS label of at most 63 characters",
                                   hint="shorten the tenant name or the prefix"))
        elif ns in taken:
            p.append(ConfigProblem(path=f"tenants[{i}].name",
                                   problem=f"its namespace '{ns}' is a namespace of the platform itself",
                                   hint="rename the tenant or change clusterApi.tenantNamespacePrefix"))
        # Cluster API labels each Machine with its MachineDeployment's name ('<tenant>-<pool>',
        # components.tenant.capi.pool_name) unhashed, so it must be a label value of <= 63
        # characters. Ref: kubernetes-sigs/cluster-api api/core/v1beta2 common_types.go
        # (MachineDeploymentNameLabel; only the set-name and pool-name labels are hashed).
        for j, pool in enumerate(t.worker_pools):
            name = f"{t.name}-{pool.name}"
            if len(name) > 63:
                p.append(ConfigProblem(path=f"tenants[{i}].workerPools[{j}].name",
                                       problem=f"the MachineDeployment name '{name}' (tenant-pool) is longer than 63 characters",
                                       hint="shorten the pool or the tenant name"))
        # The tenant's DNS names: '*.apps.<tenant>.<platform zone>' and 'api.<tenant>.<zone>'.
        longest = f"*.apps.{t.name}.{cfg.domain.platform_zone}"
        if len(longest) > 253:
            p.append(ConfigProblem(path=f"tenants[{i}].name",
                                   problem=f"its DNS name '{longest}' is longer than 253 characters",
                                   hint="shorten the tenant name or the platform zone"))
    return p


def _duplicate_rules(cfg: PlatformConfig) -> list[ConfigProblem]:
    """Entries that would make two resources with one URN (the engine refuses them)."""
    p: list[ConfigProblem] = []
    mc = cfg.management_cluster
    _unique(p, "managementCluster.operatorSourceRanges",
            [str(ipaddress.ip_network(r)) for r in mc.operator_source_ranges], "")
    for i, t in enumerate(cfg.tenants):
        if t.api_source_ranges:
            _unique(p, f"tenants[{i}].apiSourceRanges", [str(ipaddress.ip_network(r)) for r in t.api_source_ranges], "")
        _unique(p, f"tenants[{i}].adminGroups", list(t.admin_groups), "")
    admin = cfg.authentik.platform_admin_group
    for i, g in enumerate(cfg.authentik.groups):
        if g.name == admin:
            p.append(ConfigProblem(path=f"authentik.groups[{i}].name",
                                   problem=f"'{g.name}' is authentik.platformAdminGroup, which the platform already creates",
                                   hint="remove this entry or rename it"))
    # The program's own API identity (components/authentik_token.py) has a group of that name.
    for path, name in [("authentik.platformAdminGroup", admin),
                       *((f"authentik.groups[{i}].name", g.name) for i, g in enumerate(cfg.authentik.groups))]:
        if name == facts.AUTHENTIK_API_SERVICE_ACCOUNT:
            p.append(ConfigProblem(path=path, problem=f"'{name}' is the group of the program's own Authentik API "
                                   "token, which the platform already creates", hint="choose another name"))
    _unique(p, "netbird.groups", list(cfg.netbird.groups), "")
    return p


def netbird_problems(cfg: PlatformConfig) -> list[ConfigProblem]:
    """Policies must name declared groups (the management cluster's '<name>-routers' and
    '<name>-services' included), ports only go with tcp/udp, and tenants asking for a NetBird
    route need NetBird and admin groups that exist in NetBird."""
    problems: list[ConfigProblem] = []
    groups = set(facts.netbird_declared_groups(list(cfg.netbird.groups), cfg.management_cluster.name))
    for i, tenant in enumerate(cfg.tenants):
        if not tenant.netbird_route:
            continue
        if not cfg.netbird.enabled:
            problems.append(ConfigProblem(path=f"tenants[{i}].netbirdRoute", problem="NetBird is disabled",
                                          hint="set netbird.enabled: true or remove netbirdRoute"))
            continue
        for j, g in enumerate(tenant.admin_groups):
            if g not in cfg.netbird.groups:
                problems.append(ConfigProblem(
                    path=f"tenants[{i}].adminGroups[{j}]",
                    problem=f"group '{g}' gets the tenant's NetBird route but is not a NetBird group",
                    hint="add it to netbird.groups",
                ))
    if not cfg.netbird.enabled:
        return problems
    seen: set[str] = set()
    for i, pol in enumerate(cfg.netbird.policies):
        base = f"netbird.policies[{i}]"
        if pol.name in seen:
            problems.append(ConfigProblem(path=f"{base}.name", problem=f"'{pol.name}' is used twice",
                                          hint="give every policy its own name"))
        seen.add(pol.name)
        for field_name in ("sources", "destinations"):
            for j, g in enumerate(getattr(pol, field_name)):
                if g not in groups:
                    problems.append(ConfigProblem(
                        path=f"{base}.{field_name}[{j}]",
                        problem=f"group '{g}' is not a NetBird group of the platform",
                        hint=f"declare it under netbird.groups or use one of: {', '.join(sorted(groups))}",
                    ))
        if pol.ports and pol.protocol not in ("tcp", "udp"):
            problems.append(ConfigProblem(path=f"{base}.ports", problem=f"ports cannot be set with protocol '{pol.protocol}'",
                                          hint="remove the ports or use protocol tcp or udp"))
        for j, port in enumerate(pol.ports):
            if not 1 <= port <= 65535:
                problems.append(ConfigProblem(path=f"{base}.ports[{j}]", problem=f"{port} is not a port",
                                              hint="use a port between 1 and 65535"))
    return problems


# Each group and the top-level sections it reads.
_RULE_GROUPS: tuple[tuple[Any, frozenset[str]], ...] = (
    (_range_rules, frozenset({"managementCluster", "tenants", "netbird"})),
    (_node_rules, frozenset({"managementCluster", "domain"})),
    (_pool_rules, frozenset({"managementCluster", "tenants"})),
    (_name_rules, frozenset({"clusterApi", "tenants", "domain"})),
    (_duplicate_rules, frozenset({"managementCluster", "tenants", "authentik", "netbird"})),
    (netbird_problems, frozenset({"managementCluster", "tenants", "netbird"})),
)


def _stack_file_rules(cfg: PlatformConfig, failed: frozenset[str]) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    for rule, reads in _RULE_GROUPS:
        if not reads & failed:
            out.extend(rule(cfg))
    return out


def _unique(p: list[ConfigProblem], path: str, values: Iterable[str], what: str) -> None:
    """``what``: the key of each entry that must be unique; '' for the entries themselves."""
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            p.append(ConfigProblem(path=f"{path}[{i}].{what}" if what else f"{path}[{i}]",
                                   problem=f"'{v}' is already used by {path}[{seen[v]}]",
                                   hint=f"every {what or 'entry'} must be unique: remove the repetition"))
        else:
            seen[v] = i


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

_HINTS = {
    "extra_forbidden": "remove it or fix its spelling; see the config reference in README.md",
    "missing": "add this required key",
    "literal_error": "use one of the allowed values",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write a string",
    "list_type": "write a YAML list",
    "model_type": "write a YAML mapping",
    "model_attributes_type": "write a YAML mapping",
    "greater_than": "raise the value",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "too_short": "add at least one entry",
    "string_pattern_mismatch": "match the documented format",
    "string_too_short": "write a longer value",
    "string_too_long": "write a shorter value",
    "less_than": "lower the value",
    "too_long": "remove entries",
    "float_type": "write a number",
    "dict_type": "write a YAML mapping",
    "value_error": "correct the value as the problem describes",
    "finite_number": "write a finite number (not .nan or .inf)",
    "int_from_float": "write a whole number, without a fractional part",
    "int_parsing_size": "write a whole number of a sensible size",
    "float_finite_number": "write a finite number (not .nan or .inf)",
    "bool_parsing_size": "write true or false",
    "string_unicode": "write plain text",
    "is_instance_of": "write a plain value",
    "too_long_list": "remove entries",
}
# Integer fields given a float: the fix names what was written (1e30, .nan, .inf, 80.5).
_INT_KINDS = {"int_parsing", "int_type", "int_from_float", "finite_number", "int_parsing_size"}



_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_:-]+$")


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    """A config path as ``pulumi config set --path`` takes it; odd keys as ``["key"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (part.startswith("function-") or part == "[key]"):
            continue  # validator wrappers; '[key]': the error is about the mapping key itself
        elif _PLAIN_KEY.match(str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _model_at(top: str, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (for spelling suggestions)."""
    import typing

    field = PlatformConfig.model_fields.get(to_snake_name(top))
    tp: Any = field.annotation if field else None
    for part in loc[:-1]:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else None
        elif typing.get_origin(tp) is dict:  # dict[str, Model]: any key leads to the value model
            tp = typing.get_args(tp)[1]
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            by_alias = {f.alias or n: f for n, f in tp.model_fields.items()}
            tp = by_alias[part].annotation if part in by_alias else None
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> X."""
    import types
    import typing

    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def to_snake_name(alias: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", alias).lower()


def _spelling_hint(key: str, known: Iterable[str]) -> str:
    import difflib

    known = sorted(known)
    if to_camel(key) in known and to_camel(key) != key:
        return f"keys are camelCase: write '{to_camel(key)}'"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'? Otherwise remove it (known keys: {', '.join(known)})"
    return f"remove it; known keys here: {', '.join(known)}"


def _error_to_problem(top: str, err: Mapping[str, Any], secret: bool = False) -> ConfigProblem:
    loc = (top, *err["loc"]) if top else tuple(err["loc"])
    path = _loc_to_path(loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    kind = err["type"]
    if "SECRET_IN_CLEAR" in msg:
        return ConfigProblem(
            path=path,
            problem="a credential is written in clear text",
            hint=f"set it encrypted: pulumi config set --secret --path '{PROJECT}:{path}' <value>",
        )
    hint = _HINTS.get(kind, "see the config reference in README.md")
    if kind in _INT_KINDS and not secret:
        value = err.get("input")
        if isinstance(value, float) and value != value:
            hint = "write a whole number: .nan is not a number"
        elif isinstance(value, float) and value in (float("inf"), float("-inf")):
            hint = "write a whole number: .inf is not a size"
        elif isinstance(value, float):
            hint = f"write a whole number, such as {int(value) if abs(value) < 1e15 else 'a few digits'}; {value!r} is not one"
        elif isinstance(value, str) and re.match(r"^[+-]?\d+(\.\d*)?[eE][+-]?\d+$", value.strip()):
            hint = f"write the number out in digits (a whole number, without exponent): '{value}' is not one"
        elif isinstance(value, int) and abs(value) > 2**53:
            hint = "write a whole number of a sensible size"
    if kind == "extra_forbidden":
        msg = "unknown key"
        key = err["loc"][-1] if err["loc"] else None
        model = _model_at(top, tuple(err["loc"])) if top else None
        if isinstance(key, str) and model is not None:
            hint = _spelling_hint(key, [f.alias or n for n, f in model.model_fields.items()])
    elif kind == "missing":
        msg = "required key is missing"
    elif "input" in err and kind.endswith(("_type", "_parsing")) and not secret:
        msg = f"{msg} (got {_shown(err['input'])})"
    return ConfigProblem(path=path, problem=msg, hint=hint)


def _shown(value: Any) -> str:
    """A short rendering of a wrong value (not used for keys that hold a secure value)."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_config(
    raw: Mapping[str, Any],
    secret_keys: Iterable[str] = (),
    stack: str = "stack",
    provider_keys: Iterable[str] | Mapping[str, Any] = (),
    deployed: DeployedVersions | None = None,
    secure_paths: Iterable[str] | None = None,
) -> PlatformConfig:
    """Validate the project namespace of a stack's config.

    ``raw`` maps top-level keys (without the ``weebo-platform:`` prefix) to decoded values.
    ``secret_keys`` are the top-level keys whose value was written with ``secure:``.
    ``provider_keys``: the other keys of the stack's config (with their values when a mapping).
    ``secure_paths``: when known (the stack file was read), the path of every ``secure:`` leaf,
    so that a credential is checked leaf by leaf.
    Raises :class:`ConfigError` listing every problem.
    """
    problems: list[ConfigProblem] = []
    secret_keys = set(secret_keys)
    provider = dict(provider_keys) if isinstance(provider_keys, Mapping) else {k: None for k in provider_keys}
    problems.extend(_namespace_problems(provider))
    fields = {f.alias or n: n for n, f in PlatformConfig.model_fields.items()}
    for key in sorted(raw):
        if key not in fields:
            problems.append(ConfigProblem(path=_loc_to_path((key,)), problem="unknown key",
                                          hint=_spelling_hint(key, fields)))

    from pydantic import TypeAdapter

    parsed: dict[str, Any] = {}
    # Where validation failed: a top-level section, or one tenant ('tenants[2]'), so that rules
    # over the other tenants still run and report together with the field errors.
    failed: set[str] = set()
    tenant_index: list[int] = []  # position in the stack file of each tenant that validated
    for alias, name in fields.items():
        if alias not in raw:
            continue
        context = {"secret": alias in secret_keys}
        before = len(problems)
        if alias == "tenants" and isinstance(raw[alias], list):
            tenants = []
            for i, item in enumerate(raw[alias]):
                try:
                    tenants.append(TypeAdapter(Tenant).validate_python(item, context=context, by_alias=True, by_name=False))
                    tenant_index.append(i)
                except ValidationError as exc:
                    problems.extend(_error_to_problem(alias, {**e, "loc": (i, *e["loc"])}, secret=alias in secret_keys)
                                    for e in exc.errors())
                    failed.add(f"tenants[{i}]")
            parsed[name] = tenants
            continue
        annotation = PlatformConfig.model_fields[name].annotation
        try:
            # by_name=False: only the camelCase keys of the stack file format are accepted
            # ('key_shares' is reported as unknown, not silently taken for 'keyShares').
            parsed[name] = TypeAdapter(annotation).validate_python(
                raw[alias], context=context, by_alias=True, by_name=False
            )
        except ValidationError as exc:
            problems.extend(_error_to_problem(alias, e, secret=alias in secret_keys) for e in exc.errors())
        if len(problems) > before:
            failed.add(alias)
    for alias, name in fields.items():
        if alias not in raw and PlatformConfig.model_fields[name].is_required():
            problems.append(ConfigProblem(path=alias, problem="required key is missing",
                                          hint=f"add '{PROJECT}:{alias}' to the stack file"))
            failed.add(alias)
    # Cross-field rules run even when some sections failed, so one run reports everything:
    # failed optional sections take their defaults, and rules that read a failed section are
    # left out (they would report problems that are not there).
    stubs = {
        # Stand-ins for required sections that failed, so the other sections' rules still run.
        "management_cluster": lambda: ManagementCluster.model_construct(),
        "domain": lambda: Domain.model_construct(parent_zone="example.invalid", acme_email="x@example.invalid"),
        "host_capacity": lambda: HostCapacity.model_construct(cpu=10**9, memory_gib=10**9, disk_gib=10**9),
    }
    for name, stub in stubs.items():
        parsed.setdefault(name, stub())
    cfg = PlatformConfig.model_construct(**parsed)
    sections = frozenset(f.split("[")[0] for f in failed)

    def kept(problem: ConfigProblem) -> bool:
        return not any(problem.path == f or problem.path.startswith((f + ".", f + "[")) for f in failed)

    def renumbered(found: list[ConfigProblem]) -> list[ConfigProblem]:
        # The rules saw only the tenants that validated: name each by its place in the file.
        if all(i == j for i, j in enumerate(tenant_index)):
            return found

        def fix(text: str) -> str:
            return re.sub(r"tenants\[(\d+)\]", lambda m: f"tenants[{tenant_index[int(m.group(1))]}]", text)

        return [ConfigProblem(path=fix(p.path), problem=fix(p.problem), hint=p.hint) for p in found]

    problems.extend(p for p in renumbered(_cross_checks(cfg, sections)) if kept(p))
    problems.extend(p for p in renumbered(_stack_file_rules(cfg, sections - {"tenants"})) if kept(p))
    if secure_paths is not None and not failed:
        problems.extend(_secure_leaf_problems(cfg, frozenset(secure_paths)))
    if "managementCluster" not in failed:
        # Supported Talos/Kubernetes pairs always; steps only against what is deployed.
        problems.extend(management_version_problems(cfg.management_cluster, deployed))
    if problems:
        raise ConfigError(stack, _dedupe(problems))
    return PlatformConfig(**parsed)


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))


# --------------------------------------------------------------------------------------------
# Namespaces, provider credentials and secure leaves
# --------------------------------------------------------------------------------------------

# Provider settings that are credentials, per namespace, compared case-insensitively (a
# misspelled 'OVH:applicationSecret' is still a secret written into a file).
_CREDENTIALS: dict[str, frozenset[str]] = {
    "ovh": frozenset({"applicationkey", "applicationsecret", "consumerkey", "clientid", "clientsecret", "accesstoken"}),
    "netbird": frozenset({"token"}),
    "vault": frozenset({"token"}),
    "authentik": frozenset({"token"}),
    "kubernetes": frozenset({"kubeconfig"}),
    "aws": frozenset({"accesskey", "secretkey", "token"}),
}
# Namespaces whose keys a stack file may hold: the providers the program uses.
PROVIDER_NAMESPACES = frozenset({"kubernetes", "ovh", "netbird", "vault", "authentik", "talos", "random", "tls",
                                 "command", "pulumi"})


def _credential_leaves(ns: str, key: str, value: Any) -> list[str]:
    """The credential keys under ``ns:key``, the key itself or any key nested in its value."""
    names = _CREDENTIALS.get(ns.lower(), frozenset())
    found = [key] if key.lower() in names else []
    if isinstance(value, Mapping):
        for k, v in value.items():
            found += [f"{key}.{leaf}" for leaf in _credential_leaves(ns, str(k), v)]
    return found


def _namespace_problems(provider: Mapping[str, Any]) -> list[ConfigProblem]:
    import difflib

    problems: list[ConfigProblem] = []
    for full in sorted(provider):
        ns, colon, key = full.partition(":")
        leaves = _credential_leaves(ns, key, provider[full]) if colon else []
        if leaves:
            for leaf in leaves:
                problems.append(ConfigProblem(
                    path=f"{ns}:{leaf}", problem="provider credentials must not live in a stack file",
                    hint="remove it and export the provider's environment variable instead (see README 'Credentials')",
                ))
            continue
        if not colon or not ns:
            name = key or ns
            problems.append(ConfigProblem(
                path=full, problem="a config key without namespace",
                hint=f"did you mean '{PROJECT}:{name}'? Every key is '<namespace>:<key>'",
            ))
        elif ns not in PROVIDER_NAMESPACES:
            close = difflib.get_close_matches(ns.lower(), [PROJECT, *sorted(PROVIDER_NAMESPACES)], n=1, cutoff=0.6)
            problems.append(ConfigProblem(
                path=full, problem=f"unknown config namespace '{ns}'",
                hint=(f"did you mean '{close[0]}:{key}'?" if close else
                      f"use '{PROJECT}:{key}' for this program's settings")
                + f" (namespaces: {PROJECT}, {', '.join(sorted(PROVIDER_NAMESPACES))})",
            ))
    return problems


def _secret_value_paths(value: Any, path: str) -> set[str]:
    """Config paths of every SecretValue in a validated model (aliases, as the stack file has them)."""
    if isinstance(value, SecretValue):
        return {path}
    out: set[str] = set()
    if isinstance(value, BaseModel):
        for name, f in type(value).model_fields.items():
            out |= _secret_value_paths(getattr(value, name, None), f"{path}.{f.alias or name}" if path else f.alias or name)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            out |= _secret_value_paths(v, f"{path}[{i}]")
    return out


def _secure_leaf_problems(cfg: PlatformConfig, secure_paths: frozenset[str]) -> list[ConfigProblem]:
    """A credential written in clear (even beside a secure sibling), and a secure value where no
    credential goes (it would end up in clear in names and inputs)."""
    credentials = _secret_value_paths(cfg, "")
    problems = [ConfigProblem(path=path, problem="a credential is written in clear text",
                              hint=f"set it encrypted: pulumi config set --secret --path '{PROJECT}:{path}' <value>")
                for path in sorted(credentials - secure_paths)]
    problems += [ConfigProblem(path=path, problem="a secure value where no credential goes: it would be used in clear "
                               "(as a name, a label or an input)",
                               hint=f"write it in clear: pulumi config set --path '{PROJECT}:{path}' <value>")
                 for path in sorted(secure_paths - credentials)]
    return problems


def decode_value(value: str) -> Any:
    """Pulumi hands object/array config values over as JSON strings; scalars stay strings."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value


def load_from_pulumi() -> PlatformConfig:
    """Read the running program's config (real engine or mocks) and validate it."""
    from pulumi.runtime import config as runtime_config

    # The language host hands config over either through set_all_config or the PULUMI_CONFIG
    # environment variable, depending on the CLI version: read both.
    all_config: dict[str, str] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_full = set(runtime_config._SECRET_KEYS.get() or ()) | set(runtime_config.get_config_secret_keys_env())
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix):]: decode_value(v) for k, v in all_config.items() if k.startswith(prefix)}
    secret = {k[len(prefix):] for k in secret_full if k.startswith(prefix)}
    provider = {k: decode_value(v) for k, v in all_config.items() if not k.startswith(prefix)}
    cfg = parse_config(raw, secret, stack=pulumi.get_stack(), provider_keys=provider,
                       secure_paths=_stack_file_secure_paths(pulumi.get_stack()))
    # Only a valid config is compared with what is deployed (the engine is asked nothing before):
    # still before any resource is registered.
    if cfg.management_cluster.provisioner == "ovh-talos":
        problems = management_version_problems(cfg.management_cluster, read_deployed_versions())
        if problems:
            raise ConfigError(pulumi.get_stack(), problems)
    return cfg


def read_deployed_versions() -> DeployedVersions | None:
    """The versions the last ``pulumi up`` recorded, from this stack's own outputs.

    A synchronous invoke of the engine's builtin ``pulumi:pulumi:readStackOutputs`` (what stack
    references read; Ref: pulumi/pulumi v3.259.0 pkg/resource/deploy/builtins.go Invoke): no
    resource is registered, so validation still happens before any. A new stack has no outputs
    (None: nothing to compare with); if the backend cannot answer, validation goes on without the
    comparison and says so — the upgrade resources' own diff still refuses a skipped minor.
    """
    from pulumi.runtime import invoke

    name = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    try:
        result = invoke("pulumi:pulumi:readStackOutputs", {"name": name})
        outputs = (result.value or {}).get("outputs") or {}
    except Exception as exc:  # noqa: BLE001 - the comparison is a convenience, not a gate
        pulumi.log.warn(f"could not read this stack's outputs ({type(exc).__name__}); "
                        "upgrade steps are checked by the upgrade resources only")
        return None
    recorded = outputs.get(DEPLOYED_VERSIONS_OUTPUT)
    if not isinstance(recorded, Mapping):
        return None
    try:
        return DeployedVersions.model_validate(dict(recorded))
    except ValidationError:
        return None


# Set by the offline plan for the stack file it runs (offline.plan.run_offline); otherwise read
# from the stack file next to the program, as the Pulumi CLI runs it (the engine itself only tells
# which top-level keys hold a secret, not which leaves).
SECURE_PATHS_OVERRIDE: list[frozenset[str] | None] = []


def _stack_file_secure_paths(stack: str) -> frozenset[str] | None:
    if SECURE_PATHS_OVERRIDE:
        return SECURE_PATHS_OVERRIDE[-1]
    import os
    from pathlib import Path

    path = Path(os.getcwd()) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return None
    from stacks.loader import read_stack_file

    try:
        return read_stack_file(path, stack).secure_paths
    except (ConfigError, OSError):
        return None
