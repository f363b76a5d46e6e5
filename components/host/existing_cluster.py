"""An already running management cluster (the dev stack): nothing is installed, the kubeconfig
comes from the environment and stays a secret."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi


@dataclass(frozen=True)
class ExistingClusterArgs:
    name: str
    kubeconfig_env: str
    context: str | None = None


def read_kubeconfig(env_var: str) -> str | None:
    """The variable holds either a kubeconfig path (as kubectl's KUBECONFIG) or its content."""
    value = os.environ.get(env_var)
    if not value:
        return None
    first = value.split(os.pathsep)[0]
    if "\n" not in value and Path(first).expanduser().is_file():
        return Path(first).expanduser().read_text()
    return value


class ExistingCluster(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    context: str | None

    def __init__(self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:cluster:ExistingCluster", name, None, opts)
        content = read_kubeconfig(args.kubeconfig_env)
        if content is None and not pulumi.runtime.is_dry_run():
            raise pulumi.RunError(
                f"the dev stack deploys to an existing cluster: export {args.kubeconfig_env} "
                "(a kubeconfig path or its content) before `pulumi up`"
            )
        # During preview without a kubeconfig the provider still plans (it reports the cluster
        # as unreachable and shows every object as to-create).
        self.kubeconfig = pulumi.Output.secret(content or "")
        self.context = args.context
        self.register_outputs({"kubeconfig": self.kubeconfig})
