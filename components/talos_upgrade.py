"""Management-cluster upgrades as config edits: Talos node by node, then Kubernetes.

``pulumiverse_talos`` has no upgrade resource, so this module brings two Pulumi dynamic
resources of the program's own, run by ``pulumi up`` from the operator's machine with
``talosctl`` (pinned in ``versions.TALOSCTL_VERSION``, see README "Using it for real"):

* ``TalosNodeUpgrade`` (one per node, chained with ``depends_on``: control planes first, one at
  a time, then workers): reads the node's version (``talosctl version``), upgrades it with the
  Image Factory installer of the new version and the cluster's schematic (``talosctl upgrade
  --image factory.talos.dev/metal-installer/<schematic>:<version> --wait``), then waits for the
  whole cluster to be healthy (``talosctl health``) before the next node's resource starts.
* ``KubernetesUpgrade`` (after the last node): ``talosctl upgrade-k8s --to <version>``, then
  the same health gate.

The chain runs before the nodes' configuration apply (components/host/management_cluster.py): the
apply that follows an upgrade changes only what Talos applies without a reboot.

Preview: the engine shows the changed input, ``talosVersion: "v1.12.11" => "v1.13.9"`` (or
``kubernetesVersion``), on each node's resource; the provider's ``diff`` refuses a skipped
minor or a downgrade against the version recorded in its state, which fails the preview.

Resumable: create/update first read what the node runs and skip a node already at the target,
so an interrupted ``pulumi up`` resumes where it stopped (the failed resource keeps its old
state, hence shows the same change again). A node found at the target after an interruption
still goes through the health gate before its resource records success.

New servers: a freshly installed server answers only on its unauthenticated maintenance API
until the apply configures it; its resource then records the version it booted (the factory
image of the target) and touches nothing. ``KubernetesUpgrade`` is created with the cluster and
only records its version: the cluster is bootstrapped at it.

Secrets: the talosconfig (a Pulumi secret) is written to a 0600 temporary file for each call
and passed as ``--talosconfig <file>``; it never appears on a command line, in the
environment, in outputs or in an error message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

# The one-step rule is shared with config validation (which refuses a skipped minor before
# anything is registered); it lives below both. Importable from here under its old names too.
from stacks.facts import parse_version, step_problem  # noqa: F401 - re-exported

# Ref: siderolabs/talos v1.13.9 cmd/talosctl/cmd/talos/track.go (--wait, --timeout default 30m),
# cmd/talosctl/cmd/talos/health.go (--wait-timeout default 20m).
UPGRADE_TIMEOUT = "30m"
HEALTH_TIMEOUT = "20m"
# A hard stop for one talosctl process, beyond its own timeouts.
PROCESS_TIMEOUT_SECONDS = 45 * 60
# How long a node may take to answer at all: a reinstalled server boots Talos from scratch (the
# same allowance as the first configuration apply, management_cluster.APPLY_TIMEOUT).
PROBE_TIMEOUT_SECONDS = 45 * 60
PROBE_INTERVAL_SECONDS = 15



class UpgradeRefused(Exception):
    """A version change this program will not perform (skipped minor, downgrade)."""


class TalosctlError(Exception):
    """talosctl failed; the message carries the command line (no secret on it) and stderr."""


# ---------------------------------------------------------------------------------------------
# Pure rules
# ---------------------------------------------------------------------------------------------

def upgrade_order(nodes: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(hostname, address, role) in upgrade order: control planes first, then workers, each
    group in config order (the first control plane is the bootstrap node)."""
    return [n for n in nodes if n[2] == "controlplane"] + [n for n in nodes if n[2] != "controlplane"]


# ---------------------------------------------------------------------------------------------
# talosctl
# ---------------------------------------------------------------------------------------------

class Talosctl:
    """Runs talosctl with a talosconfig held in memory; one 0600 temporary file per call."""

    def __init__(self, talosconfig: str, executable: str = "talosctl"):
        self._talosconfig = talosconfig
        self.executable = executable

    def run(self, *args: str) -> str:
        binary = shutil.which(self.executable)
        if binary is None:
            raise TalosctlError(f"'{self.executable}' is not on PATH: install talosctl (README 'Using it for real')")
        fd, path = tempfile.mkstemp(prefix="weebo-talosconfig-")  # created 0600
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self._talosconfig)
            cmd = [binary, "--talosconfig", path, *args]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_SECONDS, check=False)
            except subprocess.TimeoutExpired:
                raise TalosctlError(f"talosctl {' '.join(args)}: no answer after {PROCESS_TIMEOUT_SECONDS}s") from None
        finally:
            os.unlink(path)
        if proc.returncode != 0:
            tail = "\n".join(self._scrub(proc.stderr).strip().splitlines()[-15:])
            raise TalosctlError(f"talosctl {' '.join(args)} failed (exit {proc.returncode}): {tail}")
        return proc.stdout

    def _scrub(self, text: str) -> str:
        # Belt and braces: talosctl does not print its config, but never echo a line of it.
        for line in self._talosconfig.splitlines():
            line = line.strip()
            if len(line) > 16 and line in text:
                text = text.replace(line, "[secret]")
        return text

    def version(self, node: str, endpoint: str, *, insecure: bool = False) -> str:
        """The Talos version the node runs (server tag). ``--json`` prints one protojson
        ``machine.Version`` per node; ``--insecure`` asks the maintenance API of a node not
        configured yet. Ref: talos v1.13.9 cmd/talosctl/cmd/talos/version.go (flags,
        WithClientMaintenance), api/machine/machine.proto (Version.version.tag)."""
        extra = ["--insecure"] if insecure else []
        out = self.run("version", "--nodes", node, "--endpoints", endpoint, "--json", *extra)
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                tag = json.loads(line).get("version", {}).get("tag")
                if tag:
                    return str(tag)
        raise TalosctlError(f"talosctl version: no server version for node {node}")

    def upgrade(self, node: str, endpoint: str, image: str, *, drain: bool) -> None:
        # --preserve keeps EPHEMERAL (etcd's data on a control plane) on servers older than
        # 1.13 reached through the legacy API; the 1.13 lifecycle API always preserves it.
        # --drain (default true) cordons and evicts before the reboot and fails the upgrade when
        # evictions do not finish within --drain-timeout: on a one-node cluster evicted pods have
        # nowhere to go and PodDisruptionBudgets would block it, so a lone node is not drained.
        # Ref: talos v1.13.9 cmd/talosctl/cmd/talos/upgrade.go (flags, drainNodes before reboot,
        # legacy fallback), cmd/talosctl/pkg/talos/nodedrain/nodedrain.go (CordonAndDrain).
        self.run("upgrade", "--nodes", node, "--endpoints", endpoint, "--image", image,
                 "--preserve", f"--drain={'true' if drain else 'false'}", "--wait", "--timeout", UPGRADE_TIMEOUT)

    def health(self, endpoint: str, control_planes: Sequence[str], workers: Sequence[str]) -> None:
        args = ["health", "--nodes", endpoint, "--endpoints", endpoint,
                "--control-plane-nodes", ",".join(control_planes)]
        if workers:
            args += ["--worker-nodes", ",".join(workers)]
        self.run(*args, "--wait-timeout", HEALTH_TIMEOUT)

    def upgrade_k8s(self, node: str, endpoint: str, to: str) -> None:
        # One node only (upgrade-k8s refuses several: helpers.FailIfMultiNodes); it finds the
        # others itself. No docs/examples in the configs it patches, as the program generates them.
        self.run("upgrade-k8s", "--nodes", node, "--endpoints", endpoint, "--to", to,
                 "--with-docs=false", "--with-examples=false")


def probe(talosctl: Talosctl, node: str, endpoint: str) -> tuple[str, str]:
    """("configured", version) when the node answers with the cluster's credentials,
    ("maintenance", version) when only its unauthenticated maintenance API answers (a server
    just installed, waiting for its configuration); retried while it answers neither (a server
    still booting after its reinstall), up to PROBE_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
    while True:
        try:
            return "configured", talosctl.version(node, endpoint)
        except TalosctlError as configured_error:
            last = configured_error
        try:
            return "maintenance", talosctl.version(node, endpoint, insecure=True)
        except TalosctlError:
            pass
        if time.monotonic() >= deadline:
            raise TalosctlError(f"node {node} did not answer for {PROBE_TIMEOUT_SECONDS}s (last: {last})")
        time.sleep(PROBE_INTERVAL_SECONDS)


# ---------------------------------------------------------------------------------------------
# Dynamic providers
# ---------------------------------------------------------------------------------------------

def _client(props: dict[str, Any]) -> Talosctl:
    return Talosctl(props["talosconfig"])


def _public(props: dict[str, Any]) -> dict[str, Any]:
    """State without the talosconfig (it stays only in the encrypted inputs)."""
    return {k: v for k, v in props.items() if k != "talosconfig"}


class _TalosNodeUpgradeProvider(dynamic.ResourceProvider):
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        if olds.get("talosVersion") and news.get("talosVersion") and olds["talosVersion"] != news["talosVersion"]:
            problem = step_problem(olds["talosVersion"], news["talosVersion"], "talos",
                                   allow_downgrade=bool(news.get("allowDowngrade")))
            if problem:
                raise UpgradeRefused(f"node {news.get('hostname')}: {problem}")
        changed = any(olds.get(k) != news.get(k) for k in ("talosVersion", "installerImage", "node", "endpoint"))
        return dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        self._converge(None, props)
        return dynamic.CreateResult(id_=props["hostname"], outs=_public(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        self._converge(olds, news)
        return dynamic.UpdateResult(outs=_public(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Forgetting an upgrade record changes nothing on the node.
        return None

    @staticmethod
    def _converge(olds: dict[str, Any] | None, props: dict[str, Any]) -> None:
        talosctl = _client(props)
        node, endpoint, target = props["node"], props["endpoint"], props["talosVersion"]
        mode, current = probe(talosctl, node, endpoint)
        if mode == "maintenance":
            # A freshly installed server, not configured yet: it booted the factory image of the
            # target version; the configuration apply (after this resource) takes it from here.
            if current != target:
                raise UpgradeRefused(f"node {props['hostname']} waits in maintenance mode with Talos {current}, "
                                     f"not {target}: reinstall it with the {target} image (allowReinstall)")
            return
        # Same version, another installer: the schematic changed (systemExtensions), which only
        # an upgrade with the new installer applies. The version cannot tell whether an earlier,
        # interrupted run already did it, so a resumed schematic change may reboot the node once more.
        new_schematic = (olds is not None and olds.get("talosVersion") == target
                         and olds.get("installerImage") != props["installerImage"])
        if current != target or new_schematic:
            # Never a downgrade here, even with allowDowngrade: that only lets the record follow
            # a `talosctl rollback` the operator already ran.
            problem = step_problem(current, target, "talos")
            if problem:
                raise UpgradeRefused(f"node {props['hostname']} runs {current}: {problem}")
            talosctl.upgrade(node, endpoint, props["installerImage"], drain=bool(props["drain"]))
            reached = talosctl.version(node, endpoint)
            if reached != target:
                raise TalosctlError(f"node {props['hostname']} runs {reached} after the upgrade to {target} "
                                    "(Talos rolled back?): see docs/operations/upgrades.md")
        elif olds is None or olds.get("talosVersion") == target:
            return  # already there when first recorded, or nothing to do: no reboot, no gate
        # An upgrade happened now or in an interrupted run: the cluster must be healthy before
        # this resource succeeds and the next node's starts.
        talosctl.health(props["healthEndpoint"], props["controlPlaneNodes"], props["workerNodes"])


class _KubernetesUpgradeProvider(dynamic.ResourceProvider):
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        old, new = olds.get("kubernetesVersion"), news.get("kubernetesVersion")
        if old and new and old != new:
            problem = step_problem(old, new, "kubernetes")
            if problem:
                raise UpgradeRefused(problem)
        changed = any(olds.get(k) != news.get(k) for k in ("kubernetesVersion", "node", "endpoint"))
        return dynamic.DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        # The cluster was bootstrapped at this version by its machine configuration: record it.
        return dynamic.CreateResult(id_="kubernetes", outs=_public(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        if olds.get("kubernetesVersion") == news["kubernetesVersion"]:
            # Only the node changed (a control plane replaced, e.g. disaster recovery): before its
            # configuration apply it is in maintenance mode, and there is nothing to upgrade.
            return dynamic.UpdateResult(outs=_public(news))
        talosctl = _client(news)
        # upgrade-k8s is itself resumable: it detects the lowest running version and skips
        # components already at the target. Ref: talos v1.13.9 cmd/talosctl/cmd/talos/upgrade-k8s.go
        # (DetectLowestVersion), pkg/cluster/kubernetes/talos_managed.go (errUpdateSkipped).
        talosctl.upgrade_k8s(news["node"], news["endpoint"], news["kubernetesVersion"])
        talosctl.health(news["healthEndpoint"], news["controlPlaneNodes"], news["workerNodes"])
        return dynamic.UpdateResult(outs=_public(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class TalosNodeUpgrade(dynamic.Resource, module="weebo", name="TalosNodeUpgrade"):
    talosVersion: pulumi.Output[str]  # noqa: N815 - the property name the preview shows

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(_TalosNodeUpgradeProvider(), name, props, opts)


class KubernetesUpgrade(dynamic.Resource, module="weebo", name="KubernetesUpgrade"):
    kubernetesVersion: pulumi.Output[str]  # noqa: N815

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(_KubernetesUpgradeProvider(), name, props, opts)


# ---------------------------------------------------------------------------------------------
# Component
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterUpgradesArgs:
    nodes: Sequence[tuple[str, str, str]]  # (hostname, address, role), config order
    talos_version: str
    kubernetes_version: str
    installer_image: pulumi.Input[str]  # factory.talos.dev/metal-installer/<schematic>:<version>
    talosconfig: pulumi.Input[str]  # secret
    allow_downgrade: bool = False  # record a Talos rollback (managementCluster.allowTalosDowngrade)
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class ClusterUpgrades(pulumi.ComponentResource):
    """The upgrade chain of one Talos cluster. ``versions`` is what the nodes were last seen
    running (exported as a stack output, read back by config validation)."""

    node_upgrades: list[TalosNodeUpgrade]
    kubernetes: KubernetesUpgrade
    versions: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, args: ClusterUpgradesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:cluster:ClusterUpgrades", name, None, opts)
        ordered = upgrade_order(args.nodes)
        control_planes = [a for _, a, r in ordered if r == "controlplane"]
        workers = [a for _, a, r in ordered if r != "controlplane"]
        if not control_planes:
            raise ValueError("a Talos cluster needs a control plane to upgrade through")
        health_endpoint = control_planes[0]
        talosconfig = pulumi.Output.secret(args.talosconfig)
        gate = {"healthEndpoint": health_endpoint, "controlPlaneNodes": control_planes, "workerNodes": workers}
        previous: list[pulumi.Resource] = list(args.depends_on)
        self.node_upgrades = []
        for hostname, address, _role in ordered:
            res = TalosNodeUpgrade(
                f"{name}-talos-{hostname}",
                {
                    "hostname": hostname,
                    "node": address,
                    "endpoint": address,
                    "talosVersion": args.talos_version,
                    "installerImage": args.installer_image,
                    "drain": len(ordered) > 1,
                    "allowDowngrade": args.allow_downgrade,
                    "talosconfig": talosconfig,
                    **gate,
                },
                # One node at a time: each waits for the previous node's upgrade and health gate.
                opts=pulumi.ResourceOptions(parent=self, depends_on=previous,
                                            additional_secret_outputs=["talosconfig"]),
            )
            self.node_upgrades.append(res)
            previous = [res]
        self.kubernetes = KubernetesUpgrade(
            f"{name}-kubernetes",
            {
                "node": health_endpoint,
                "endpoint": health_endpoint,
                "kubernetesVersion": args.kubernetes_version,
                "talosconfig": talosconfig,
                **gate,
            },
            # Kubernetes after Talos: the target pair is only supported once every node runs the new Talos.
            opts=pulumi.ResourceOptions(parent=self, depends_on=previous, additional_secret_outputs=["talosconfig"]),
        )
        self.versions = pulumi.Output.all(
            *[r.talosVersion for r in self.node_upgrades], self.kubernetes.kubernetesVersion
        ).apply(lambda v: {
            "talos": {h: t for (h, _, _), t in zip(ordered, v[:-1], strict=True)},
            "kubernetes": v[-1],
        })
        self.register_outputs({"versions": self.versions})
