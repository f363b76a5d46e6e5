"""The Pulumi program: validate the stack config, then build the environment.

It runs on the stock Pulumi SDK: ``offline/sdk_speedups`` (replacements of private SDK
internals) is applied by the offline plan only (``offline.plan.run_offline``), never by a real
``pulumi up``, where a wrong answer would silently drop a dependency edge.
"""

from __future__ import annotations

from collections.abc import Collection

import pulumi

from stacks.config import DEPLOYED_VERSIONS_OUTPUT, load_from_pulumi
from stacks.environment import build_environment


def main(tenants: Collection[str] | None = None) -> None:
    """``tenants`` narrows which tenant clusters are built: the offline plan builds disjoint
    sets of tenants in parallel processes (``offline.plan --jobs``). ``pulumi up`` builds all of
    them. Validation and stack outputs always cover the whole config."""
    # Validation happens before any resource is registered: bad config deploys nothing.
    cfg = load_from_pulumi()
    if tenants is not None:
        unknown = sorted(set(tenants) - {t.name for t in cfg.tenants})
        if unknown:
            raise ValueError(f"tenants {unknown} are not in the stack config")
    env = build_environment(cfg, tenants)
    pulumi.export("managementCluster", cfg.management_cluster.name)
    pulumi.export("clusterEndpoint", cfg.cluster_endpoint)
    pulumi.export("platformZone", cfg.domain.platform_zone)
    pulumi.export("kubeconfig", pulumi.Output.secret(env.kubeconfig))
    if env.talosconfig is not None:
        pulumi.export("talosconfig", pulumi.Output.secret(env.talosconfig))
    if env.management_versions is not None:
        # Read back by config validation on the next run (stacks.config.read_deployed_versions).
        pulumi.export(DEPLOYED_VERSIONS_OUTPUT, env.management_versions)
    pulumi.export("nodeAddresses", [n.address for n in cfg.management_cluster.nodes])
    pulumi.export("tenants", sorted(t.name for t in cfg.tenants))
    if "backups" in env.services:
        backups = env.services["backups"]
        pulumi.export("backups", backups.inventory)  # what is backed up where (whole config)
        pulumi.export("backupRestoreCredentials", backups.reader_credentials)  # secret
        pulumi.export("backupEncryptionKey", backups.passphrase)  # secret
        # Every generation's key by object prefix (k<N>): older objects need older keys (secret).
        pulumi.export("backupEncryptionKeys", pulumi.Output.secret(backups.passphrases))
