"""The management cluster "weebo4cp": Talos on OVH bare metal, bootstrapped by Pulumi.

Order: Image Factory schematic -> per server (firewall -> BYOI reinstall) -> machine secrets ->
machine configuration per node -> upgrade chain (components/talos_upgrade.py: each node in
turn, then Kubernetes) -> apply (after the reinstall and the chain) -> bootstrap (first control
plane) -> kubeconfig -> API readiness gate (``/readyz`` with the cluster CA; the kubeconfig handed
on is its output). Nothing here needs the servers during preview: every value that comes from the
factory or a node is an output, unknown until ``pulumi up``, and invokes with unknown inputs
are not called.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumiverse_talos as talos
import yaml

from components.core.common import irreplaceable
from components.kube_api_ready import KubeApiReady, KubeApiReadyArgs
from components.host.ovh_server import OvhServer, OvhServerArgs, byoi_image_url
from components.host.talos_patches import install_patch, management_node_patches, schematic
from components.talos_upgrade import ClusterUpgrades, ClusterUpgradesArgs
from stacks.config import ManagementCluster as ManagementClusterConfig
from stacks.config import ServerNode

# Time a freshly reinstalled server needs to boot Talos into maintenance mode (the apply retries).
APPLY_TIMEOUT = "45m"
BOOTSTRAP_TIMEOUT = "30m"
# From the bootstrap call to a ready kube-apiserver: etcd bootstrap, control-plane images pulled
# and static pods started on a fresh node, plus the endpoint's DNS records becoming visible.
API_READY_TIMEOUT_SECONDS = 20 * 60


@dataclass(frozen=True)
class ManagementClusterArgs:
    cluster: ManagementClusterConfig
    endpoint: str  # stable DNS name of the Kubernetes API
    oidc_issuer_url: str
    oidc_client_id: str
    dns_zone: str  # zone at OVH DNS holding the endpoint and node records (domain.parentZone)
    # Further patches of the control planes only (e.g. Talos API access for the backup job).
    control_plane_patches: Sequence[dict] = field(default_factory=tuple)
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class ManagementCluster(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]  # gated: known once the API answers (KubeApiReady)
    api_ready: KubeApiReady
    talosconfig: pulumi.Output[str]
    endpoint: str
    node_addresses: list[str]
    servers: dict[str, OvhServer]
    upgrades: ClusterUpgrades

    def __init__(self, name: str, args: ManagementClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:cluster:ManagementCluster", name, None, opts)
        cfg = args.cluster
        if not cfg.control_planes:
            raise ValueError("the management cluster needs at least one control-plane node")
        self.endpoint = args.endpoint
        self.node_addresses = [n.address for n in cfg.nodes]
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        invoke = pulumi.InvokeOutputOptions(parent=self)

        # --- Talos image: schematic with the hardware's extensions ----------------------------
        image_schematic = talos.imagefactory.Schematic(
            f"{name}-schematic",
            schematic=yaml.safe_dump(schematic(cfg.system_extensions), sort_keys=True),
            opts=child,
        )
        urls = talos.imagefactory.get_urls_output(
            talos_version=cfg.talos_version,
            schematic_id=image_schematic.id,
            platform="metal",
            architecture="amd64",
            opts=invoke,
        ).urls
        installer_image = urls.installer  # factory.talos.dev/metal-installer/<id>:<version>
        disk_image_url = urls.disk_image.apply(byoi_image_url)

        # --- the servers ---------------------------------------------------------------------------
        first_cp = cfg.control_planes[0]
        lb_node = cfg.load_balancer_ips_node or first_cp.hostname
        self.servers = {}
        for node in cfg.nodes:
            self.servers[node.hostname] = OvhServer(
                f"{name}-{node.hostname}",
                OvhServerArgs(
                    node=node,
                    image_url=disk_image_url,
                    dns_zone=args.dns_zone,
                    operator_source_ranges=cfg.operator_source_ranges,
                    vpn_udp_port=cfg.vpn_udp_port,
                    dns_ttl=cfg.dns_ttl,
                    allow_reinstall=cfg.allow_reinstall,
                    endpoint_name=args.endpoint if node.role == "controlplane" else None,
                    routed_ip_blocks=cfg.load_balancer_ips if node.hostname == lb_node else (),
                    depends_on=args.depends_on,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        # --- machine secrets: losing them loses the cluster (CAs, bootstrap token) --------------
        # The SDK marks none of their outputs secret: additional_secret_outputs does.
        # talos_version here and in the generated configuration is the machine-config contract
        # (the features the config uses), not the version the nodes run: see machine_config_version.
        secrets = talos.machine.Secrets(
            f"{name}-secrets",
            talos_version=cfg.machine_config_contract,
            opts=irreplaceable(
                parent=self,
                depends_on=list(args.depends_on),
                additional_secret_outputs=["machineSecrets", "clientConfiguration"],
            ),
        )
        client_configuration = pulumi.Output.secret(secrets.client_configuration)
        talosconfig = talos.client.get_configuration_output(
            cluster_name=cfg.name,
            client_configuration=client_configuration,
            endpoints=[n.address for n in cfg.control_planes],
            nodes=self.node_addresses,
            opts=invoke,
        )
        self.talosconfig = pulumi.Output.secret(talosconfig.talos_config)

        # --- upgrades: a talosVersion/kubernetesVersion edit upgrades node by node -------------
        # Before the configuration apply: talosctl upgrade names the new installer itself, and
        # upgrade-k8s rolls the control plane node by node and patches the nodes' configuration;
        # the apply afterwards only brings machine.install.image (and the images upgrade-k8s
        # already set) into line, which Talos applies without a reboot (talos v1.13.9 internal/app/
        # machined/pkg/runtime/v1alpha1/v1alpha1_runtime.go CanApplyImmediate: .machine.install,
        # .cluster, .machine.kubelet). On a new server the upgrade resources only record the
        # version its fresh image runs (components/talos_upgrade.py).
        self.upgrades = ClusterUpgrades(
            f"{name}-upgrade",
            ClusterUpgradesArgs(
                nodes=[(n.hostname, n.address, n.role) for n in cfg.nodes],
                talos_version=cfg.talos_version,
                kubernetes_version=cfg.kubernetes_version,
                installer_image=installer_image,
                talosconfig=self.talosconfig,
                allow_downgrade=cfg.allow_talos_downgrade,
                depends_on=[s.reinstall for s in self.servers.values()],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        # --- configuration per node, applied once its server runs the fresh Talos ---------------
        applies: list[talos.machine.ConfigurationApply] = []
        for node in cfg.nodes:
            applies.append(self._apply(name, args, node, secrets, client_configuration, installer_image, invoke))

        bootstrap = talos.machine.Bootstrap(
            f"{name}-bootstrap",
            node=first_cp.address,
            endpoint=first_cp.address,
            client_configuration=client_configuration,
            timeouts=talos.machine.BootstrapTimeoutsArgs(create=BOOTSTRAP_TIMEOUT),
            opts=pulumi.ResourceOptions(parent=self, depends_on=applies),
        )
        kubeconfig = talos.cluster.Kubeconfig(
            f"{name}-kubeconfig",
            node=first_cp.address,
            endpoint=first_cp.address,
            client_configuration=client_configuration,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[bootstrap],
                additional_secret_outputs=["kubeconfigRaw", "kubernetesClientConfiguration"],
            ),
        )
        # The kubeconfig names the endpoint: whoever uses it also waits for the endpoint's DNS.
        endpoint_records = [s.endpoint_record for s in self.servers.values() if s.endpoint_record is not None]
        raw_kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(kubeconfig.kubeconfig_raw, *[r.id for r in endpoint_records]).apply(lambda v: v[0])
        )
        # The Talos kubeconfig exists long before kube-apiserver answers (components/kube_api_ready.py):
        # the kubeconfig handed on is the gate's output, known once /readyz answered with the cluster CA.
        self.api_ready = KubeApiReady(
            f"{name}-api-ready",
            KubeApiReadyArgs(kubeconfig=raw_kubeconfig, timeout_seconds=API_READY_TIMEOUT_SECONDS),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bootstrap, kubeconfig, *endpoint_records]),
        )
        self.kubeconfig = pulumi.Output.secret(self.api_ready.kubeconfig)
        self.register_outputs({
            "kubeconfig": self.kubeconfig,
            "talosconfig": self.talosconfig,
            "endpoint": self.endpoint,
            "nodeAddresses": self.node_addresses,
        })

    def _apply(
        self,
        name: str,
        args: ManagementClusterArgs,
        node: ServerNode,
        secrets: talos.machine.Secrets,
        client_configuration: pulumi.Output,
        installer_image: pulumi.Output[str],
        invoke: pulumi.InvokeOutputOptions,
    ) -> talos.machine.ConfigurationApply:
        cfg = args.cluster
        base = talos.machine.get_configuration_output(
            cluster_name=cfg.name,
            cluster_endpoint=f"https://{args.endpoint}:6443",
            machine_type=node.role,
            machine_secrets=secrets.machine_secrets,
            talos_version=cfg.machine_config_contract,
            kubernetes_version=cfg.kubernetes_version,
            docs=False,
            examples=False,
            opts=invoke,
        )
        # Patches go on the apply, not into the generated config, so the plan shows them.
        patches: list[pulumi.Input[str]] = [
            json.dumps(p, sort_keys=True)
            for p in management_node_patches(
                cfg, node, endpoint=args.endpoint,
                oidc_issuer_url=args.oidc_issuer_url, oidc_client_id=args.oidc_client_id,
            )
        ]
        if node.role == "controlplane":
            patches += [json.dumps(p, sort_keys=True) for p in args.control_plane_patches]
        disk = node.install_disk or cfg.install_disk
        patches.append(installer_image.apply(lambda image: json.dumps(install_patch(disk, image), sort_keys=True)))
        server = self.servers[node.hostname]
        return talos.machine.ConfigurationApply(
            f"{name}-{node.hostname}-apply",
            node=node.address,
            endpoint=node.address,
            client_configuration=client_configuration,
            machine_configuration_input=pulumi.Output.secret(base.machine_configuration),
            config_patches=patches,
            timeouts=talos.machine.TimeoutArgs(create=APPLY_TIMEOUT, update="15m"),
            opts=pulumi.ResourceOptions(
                parent=self,
                # After the upgrade chain (its last link, Kubernetes, waits for every node).
                depends_on=[server.reinstall, self.upgrades.kubernetes],
                # A reinstalled server is back in maintenance mode: configure it again.
                replace_with=[server.reinstall],
            ),
        )
