"""One OVH dedicated server turned into a Talos node: network firewall, BYOI reinstall with the
Talos metal image, DNS (A record, reverse), and the additional IPs routed to it.

Order: firewall rules -> reinstall. A freshly installed Talos waits in maintenance mode with an
unauthenticated API on :50000 until it is configured, so the firewall is in place first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_ovh as ovh

from stacks.config import ServerNode

TALOS_API_PORT = 50000
KUBERNETES_API_PORT = 6443

# Ref: OVH BYOI guide (ovh/docs pages/bare_metal_cloud/dedicated_servers/bring-your-own-image):
# template "byoi_64", imageURL + imageType (qcow2|raw); efiBootloaderPath is mandatory for BYOI
# (ovh/docs#7113). Talos metal images boot through the UEFI fallback path.
BYOI_OS = "byoi_64"
BYOI_IMAGE_TYPE = "qcow2"
EFI_BOOTLOADER_PATH = "\\EFI\\BOOT\\BOOTX64.EFI"

# Reinstall task inputs that would replace it (every input is ForceNew in terraform-provider-ovh):
# replacing the task reinstalls, i.e. wipes, the server.
REINSTALL_FIELDS = ["customizations", "os", "storages"]


# ---------------------------------------------------------------------------------------------
# Pure parts
# ---------------------------------------------------------------------------------------------

def byoi_image_url(disk_image_url: str) -> str:
    """Image Factory metal disk image URL (``…/metal-amd64.raw.zst``, what ``get_urls`` returns)
    -> the uncompressed qcow2 of the same image, which OVH BYOI accepts (it takes no .zst).

    Ref: siderolabs/image-factory internal/profile (suffix parsing: compression, then format);
    integration test "metal qcow2 image".
    """
    suffix = ".raw.zst"
    if not disk_image_url.startswith("https://") or not disk_image_url.endswith(suffix):
        raise ValueError(f"'{disk_image_url}' is not an Image Factory metal disk image URL ending in {suffix}")
    return disk_image_url[: -len(suffix)] + "." + BYOI_IMAGE_TYPE


def relative_name(fqdn: str, zone: str) -> str:
    """'weebo4cp.weebosi.fr' in zone 'weebosi.fr' -> 'weebo4cp' (the OVH record's subdomain)."""
    if fqdn == zone:
        return ""
    if not fqdn.endswith("." + zone):
        raise ValueError(f"'{fqdn}' is not inside the DNS zone '{zone}' hosted at OVH")
    return fqdn[: -len(zone) - 1]


@dataclass(frozen=True)
class FirewallRuleSpec:
    """One rule of OVH's network firewall (stateless, evaluated by sequence, 0-19)."""

    role: str  # stable part of the resource name
    sequence: int
    action: str  # permit | deny
    protocol: str  # tcp | udp | icmp | ipv4 ...
    source: str | None = None
    destination_port: int | None = None
    source_port: int | None = None
    tcp_option: str | None = None


def firewall_rules(operator_source_ranges: Sequence[str], vpn_udp_port: int) -> list[FirewallRuleSpec]:
    """The node's network firewall: the Talos and Kubernetes APIs only from the operators, web,
    DNS and the VPN open to all, replies to the node's own connections, everything else denied.

    Ref: OVH "Network Firewall" guide (ovh/docs pages/bare_metal_cloud/dedicated_servers/
    firewall_network): stateless; at most 20 rules; permit TCP "established" first and deny
    IPv4 last (a rule set of permits alone filters nothing). It only filters traffic from
    outside OVHcloud's network: defence in depth, not isolation.
    """
    fixed = [
        # Stateless: TCP replies to connections the node opens (image pulls, ACME, OIDC discovery).
        FirewallRuleSpec("tcp-established", 0, "permit", "tcp", tcp_option="established"),
        FirewallRuleSpec("icmp", 1, "permit", "icmp"),  # path-MTU discovery, ping
        FirewallRuleSpec("http", 2, "permit", "tcp", destination_port=80),
        FirewallRuleSpec("https", 3, "permit", "tcp", destination_port=443),
        FirewallRuleSpec("dns-udp", 4, "permit", "udp", destination_port=53),
        FirewallRuleSpec("dns-tcp", 5, "permit", "tcp", destination_port=53),
        FirewallRuleSpec("vpn", 6, "permit", "udp", destination_port=vpn_udp_port),
        # UDP replies to the node's own DNS and NTP queries (no "established" for UDP).
        FirewallRuleSpec("dns-replies", 7, "permit", "udp", source_port=53),
        FirewallRuleSpec("ntp-replies", 8, "permit", "udp", source_port=123),
    ]
    rules = list(fixed)
    seq = len(fixed)
    for cidr in operator_source_ranges:
        net = ipaddress.ip_network(cidr)
        if net.version != 4:  # the network firewall filters IPv4 only
            continue
        slug = str(net).replace(".", "-").replace("/", "-")
        rules.append(FirewallRuleSpec(f"talos-api-{slug}", seq, "permit", "tcp", source=str(net), destination_port=TALOS_API_PORT))
        rules.append(FirewallRuleSpec(f"kube-api-{slug}", seq + 1, "permit", "tcp", source=str(net), destination_port=KUBERNETES_API_PORT))
        seq += 2
    rules.append(FirewallRuleSpec("deny-all", 19, "deny", "ipv4"))
    if seq > 19:
        raise ValueError(f"{len(rules)} firewall rules: OVH's network firewall holds 20 per IP")
    return rules


# ---------------------------------------------------------------------------------------------
# Component
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OvhServerArgs:
    node: ServerNode
    image_url: pulumi.Input[str]  # qcow2 BYOI image (Image Factory)
    dns_zone: str  # zone hosted at OVH DNS holding the node (and endpoint) records
    operator_source_ranges: Sequence[str]
    vpn_udp_port: int
    dns_ttl: int = 300
    allow_reinstall: bool = False
    endpoint_name: str | None = None  # FQDN of the cluster endpoint: an A record to this node
    routed_ip_blocks: Sequence[str] = ()  # additional IP blocks routed to this server
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class OvhServer(pulumi.ComponentResource):
    reinstall: ovh.dedicated.ServerReinstallTask
    firewall_rules: list[ovh.ip.FirewallRule]
    dns_records: list[ovh.domain.ZoneRecord]
    endpoint_record: ovh.domain.ZoneRecord | None
    fqdn: str
    address: str

    def __init__(self, name: str, args: OvhServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:cluster:OvhServer", name, None, opts)
        node = args.node
        self.address = node.address
        self.fqdn = f"{node.hostname}.{args.dns_zone}"
        block = f"{node.address}/32"
        first = list(args.depends_on)

        # --- network firewall (before the server exposes an unconfigured Talos API) -----------
        firewall = ovh.ip.Firewall(
            f"{name}-firewall", ip=block, ip_on_firewall=node.address, enabled=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=first),
        )
        self.firewall_rules = []
        for rule in firewall_rules(args.operator_source_ranges, args.vpn_udp_port):
            self.firewall_rules.append(ovh.ip.FirewallRule(
                f"{name}-fw-{rule.role}",
                ip=block,
                ip_on_firewall=node.address,
                sequence=rule.sequence,
                action=rule.action,
                protocol=rule.protocol,
                source=rule.source,
                destination_port=rule.destination_port,
                source_port=rule.source_port,
                tcp_option=rule.tcp_option,
                # Every input forces replacement and a sequence holds one rule: delete first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[firewall], delete_before_replace=True),
            ))

        # --- BYOI reinstall with the Talos metal image ---------------------------------------
        # Wipes the disk. Protected, and changes to what it installs (a new image URL after a
        # Talos upgrade, new extensions) are ignored: Talos upgrades in place. Only
        # managementCluster.allowReinstall=true lets a change reinstall the server.
        self.reinstall = ovh.dedicated.ServerReinstallTask(
            f"{name}-reinstall",
            service_name=node.ovh_service_name,
            os=BYOI_OS,
            customizations=ovh.dedicated.ServerReinstallTaskCustomizationsArgs(
                hostname=node.hostname,
                image_url=args.image_url,
                image_type=BYOI_IMAGE_TYPE,
                efi_bootloader_path=EFI_BOOTLOADER_PATH,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*first, *self.firewall_rules],
                protect=not args.allow_reinstall,
                # Dropping the task from the program must not look like a reason to touch the server.
                retain_on_delete=True,
                ignore_changes=[] if args.allow_reinstall else list(REINSTALL_FIELDS),
            ),
        )

        # --- additional IPs (load balancers) --------------------------------------------------
        for ip_block in args.routed_ip_blocks:
            ovh.ip.Move(
                f"{name}-route-{ip_block.replace('.', '-').replace('/', '-')}",
                ip=ip_block,
                routed_to=ovh.ip.MoveRoutedToArgs(service_name=node.ovh_service_name),
                description=f"weebo-platform load balancers on {node.hostname}",
                # Deleting a move parks the IP (Traefik and Bind9 lose their address): dropping
                # it from the program must not do that silently.
                opts=pulumi.ResourceOptions(parent=self, depends_on=first, retain_on_delete=True),
            )

        # --- DNS --------------------------------------------------------------------------------
        node_record = ovh.domain.ZoneRecord(
            f"{name}-a",
            zone=args.dns_zone,
            subdomain=relative_name(self.fqdn, args.dns_zone),
            fieldtype="A",
            target=node.address,
            ttl=args.dns_ttl,
            opts=pulumi.ResourceOptions(parent=self, depends_on=first),
        )
        self.dns_records = [node_record]
        self.endpoint_record = None
        if args.endpoint_name:
            self.endpoint_record = ovh.domain.ZoneRecord(
                f"{name}-endpoint-a",
                zone=args.dns_zone,
                subdomain=relative_name(args.endpoint_name, args.dns_zone),
                fieldtype="A",
                target=node.address,
                ttl=args.dns_ttl,
                opts=pulumi.ResourceOptions(parent=self, depends_on=first),
            )
            self.dns_records.append(self.endpoint_record)
        # OVH checks that the name resolves to the IP before accepting the reverse (retried up
        # to readiness_timeout_duration). The value ends with a dot (OVH reverse DNS guide).
        ovh.ip.Reverse(
            f"{name}-reverse",
            ip=block,
            reverse_ip=node.address,
            reverse_value=f"{self.fqdn}.",
            readiness_timeout_duration="10m",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_record]),
        )

        self.register_outputs({"address": self.address, "fqdn": self.fqdn})
