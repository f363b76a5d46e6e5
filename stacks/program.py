"""The Pulumi program: validate the stack config, then build the environment."""

from __future__ import annotations

import pulumi

from stacks import sdk_speedups
from stacks.config import load_from_pulumi
from stacks.environment import build_environment


def main() -> None:
    sdk_speedups.apply()
    # Validation happens before any resource is registered: bad config deploys nothing.
    cfg = load_from_pulumi()
    env = build_environment(cfg)
    pulumi.export("managementCluster", cfg.management_cluster.name)
    pulumi.export("clusterEndpoint", cfg.cluster_endpoint)
    pulumi.export("platformZone", cfg.domain.platform_zone)
    pulumi.export("kubeconfig", pulumi.Output.secret(env.kubeconfig))
    if env.talosconfig is not None:
        pulumi.export("talosconfig", pulumi.Output.secret(env.talosconfig))
    pulumi.export("nodeAddresses", [n.address for n in cfg.management_cluster.nodes])
    pulumi.export("tenants", sorted(env.tenants))
