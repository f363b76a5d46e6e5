"""The long waits of one ``pulumi up``, in one place, and what must outlive them.

The ``pulumi_vault`` provider does not use its token directly (the periodic ``pulumi-admin``
token of ``components.vault_bootstrap.VaultAdminToken``, whose 30-day period is far above what
follows): the first time a Vault resource uses it in a run, it mints one child token for the rest of the run, valid
``max_lease_ttl_seconds``, not renewable, with that explicit maximum. Every Vault resource
registered later in the same run - the tenants' auth mounts and roles, which wait for their
control planes - uses that token, so it must outlive the longest chain of waits that can follow.

Ref: hashicorp/terraform-provider-vault v5.10.1 (the commit pulumi/pulumi-vault's upstream
submodule pins) internal/provider/meta.go: ``NewProviderMeta`` (no client at configure time),
``createChildToken`` (``TTL`` and ``ExplicitMaxTTL`` = ``max_lease_ttl_seconds``, default 1200,
``Renewable: false``); Pulumi registry, HashiCorp Vault provider: too short a TTL gives
"permission denied".
"""

from __future__ import annotations

import pulumi

# Cluster API providers report Ready (the operator pulls their components).
CAPI_PROVIDER_TIMEOUTS = pulumi.CustomTimeouts(create="20m", update="20m")
# A tenant's control plane initialises (VMs imported by CDI, booted, Talos bootstrapped).
TENANT_CONTROL_PLANE_TIMEOUTS = pulumi.CustomTimeouts(create="45m", update="45m", delete="30m")
# CAPI drains and deletes every VM of a tenant.
TENANT_CLUSTER_DELETE_TIMEOUTS = pulumi.CustomTimeouts(delete="45m")
# ArgoCD syncs Cilium into a tenant (its nodes stay NotReady until then).
TENANT_CNI_APPLICATION_TIMEOUTS = pulumi.CustomTimeouts(create="30m", update="30m")

# The waits that run one after another once Vault answers: CAPI providers -> a tenant's control
# plane -> its CNI application (whose cluster Secret carries the tenant kubeconfig).
SEQUENTIAL_WAITS_AFTER_VAULT = (CAPI_PROVIDER_TIMEOUTS, TENANT_CONTROL_PLANE_TIMEOUTS, TENANT_CNI_APPLICATION_TIMEOUTS)
# Everything else of a run (Helm releases, policies, mounts) on top of those waits.
RUN_MARGIN_SECONDS = 30 * 60


def duration_seconds(value: str) -> int:
    """Seconds of a Pulumi custom-timeout string such as ``45m``, ``1h30m`` or ``90s``."""
    import re

    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value)
    if not value or parts is None:
        raise ValueError(f"not a duration: {value!r}")
    h, m, s = (int(p or 0) for p in parts.groups())
    return 3600 * h + 60 * m + s


def longest_wait_seconds(timeouts: pulumi.CustomTimeouts) -> int:
    return max(duration_seconds(t) for t in (timeouts.create, timeouts.update, timeouts.delete) if t)


def vault_token_ttl_seconds() -> int:
    """Lifetime of the ``pulumi_vault`` provider's child token: every wait that may follow it, plus margin."""
    return sum(longest_wait_seconds(t) for t in SEQUENTIAL_WAITS_AFTER_VAULT) + RUN_MARGIN_SECONDS
