"""The management cluster "weebo4cp": Talos on OVH bare metal, bootstrapped by Pulumi.

Order: machine secrets -> machine configuration per node -> apply -> bootstrap (first control
plane) -> kubeconfig. Nothing here needs the servers during preview: every value that comes
from a node is an output, unknown until ``pulumi up``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumiverse_talos as talos

from stacks.config import ManagementCluster as ManagementClusterConfig


@dataclass(frozen=True)
class ManagementClusterArgs:
    cluster: ManagementClusterConfig
    endpoint: str  # stable DNS name of the Kubernetes API
    oidc_issuer_url: str
    oidc_client_id: str


class ManagementCluster(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    talosconfig: pulumi.Output[str]
    endpoint: str
    node_addresses: list[str]

    def __init__(self, name: str, args: ManagementClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:cluster:ManagementCluster", name, None, opts)
        cfg = args.cluster
        self.endpoint = args.endpoint
        self.node_addresses = [n.address for n in cfg.nodes]

        # Losing these loses the cluster (CA keys, bootstrap token): never deleted nor replaced.
        secrets = talos.machine.Secrets(
            f"{name}-secrets",
            talos_version=cfg.talos_version,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=True,
                retain_on_delete=True,
                additional_secret_outputs=["machineSecrets", "clientConfiguration"],
            ),
        )
        client_configuration = pulumi.Output.secret(secrets.client_configuration)
        applies = []
        for node in cfg.nodes:
            machine_config = talos.machine.get_configuration_output(
                cluster_name=cfg.name,
                cluster_endpoint=f"https://{args.endpoint}:6443",
                machine_type=node.role,
                machine_secrets=secrets.machine_secrets,
                talos_version=cfg.talos_version,
                kubernetes_version=cfg.kubernetes_version,
                config_patches=[json.dumps({"machine": {"install": {"disk": node.install_disk or cfg.install_disk}}})],
                docs=False,
                examples=False,
            )
            applies.append(
                talos.machine.ConfigurationApply(
                    f"{name}-{node.hostname}-apply",
                    client_configuration=client_configuration,
                    machine_configuration_input=pulumi.Output.secret(machine_config.machine_configuration),
                    node=node.address,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        first_cp = cfg.control_planes[0]
        bootstrap = talos.machine.Bootstrap(
            f"{name}-bootstrap",
            client_configuration=client_configuration,
            node=first_cp.address,
            opts=pulumi.ResourceOptions(parent=self, depends_on=applies),
        )
        kubeconfig = talos.cluster.Kubeconfig(
            f"{name}-kubeconfig",
            client_configuration=client_configuration,
            node=first_cp.address,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[bootstrap], additional_secret_outputs=["kubeconfigRaw"]
            ),
        )
        self.kubeconfig = pulumi.Output.secret(kubeconfig.kubeconfig_raw)
        talosconfig = talos.client.get_configuration_output(
            cluster_name=cfg.name,
            client_configuration=secrets.client_configuration,
            endpoints=[n.address for n in cfg.control_planes],
            nodes=[n.address for n in cfg.nodes],
        )
        self.talosconfig = pulumi.Output.secret(talosconfig.talos_config)
        self.register_outputs({"kubeconfig": self.kubeconfig, "talosconfig": self.talosconfig})
