"""Operator manifests from an upstream release, fetched at deploy time and applied only when their
sha256 matches the pin in versions.py.

Why not ``k8s.yaml.v2.ConfigFile(url)``: it fetches during every preview (no network in the
offline plan), checks no checksum, and as a remote component it cannot be constructed while the
cluster's kubeconfig is unknown (first preview of a new environment). A ``command.local.Command``
runs only during ``pulumi up``: it downloads the asset, verifies the sha256, drops the
``Namespace`` documents (the platform owns its namespaces, with their Pod Security labels) and
server-side-applies the rest with ``kubectl``, then waits for the CRDs and operator deployments.

Deploy-time requirements: ``python3`` and ``kubectl`` on the PATH of the machine running
``pulumi up``; outbound HTTPS to github.com. The script uses the standard library only.
What is not tracked: the objects of the manifest are not individual Pulumi resources. A version
bump re-applies the new manifest (objects the new release dropped are left behind), and stack
destroy deletes the manifest's objects (after the CR that depends on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command

# The script reads everything from the environment; ACTION is prepended per command.
_SCRIPT = r'''
import hashlib, os, re, subprocess, sys, tempfile, urllib.request

def run(cmd):
    print("+", " ".join(a if not a.startswith("/") else os.path.basename(a) for a in cmd), flush=True)
    subprocess.run(cmd, check=True)

def main():
    url = os.environ["MANIFEST_URL"]
    want = os.environ["MANIFEST_SHA256"].strip().lower()
    kubeconfig = os.environ.get("MANIFEST_KUBECONFIG", "")
    context = os.environ.get("MANIFEST_KUBE_CONTEXT", "")
    if not re.fullmatch(r"[0-9a-f]{64}", want):
        sys.exit(f"MANIFEST_SHA256 is not a sha256 hex digest: {want!r}")
    with urllib.request.urlopen(url, timeout=300) as resp:
        body = resp.read()
    got = hashlib.sha256(body).hexdigest()
    if got != want:
        sys.exit(f"refusing to apply {url}: sha256 is {got}, the pin in versions.py is {want}")
    # Top-level "kind: Namespace" only: nested kinds are indented.
    namespace_doc = re.compile(r"(?m)^kind:[ \t]*Namespace[ \t]*$")
    docs = [d for d in re.split(r"(?m)^---[ \t]*$", body.decode("utf-8")) if d.strip()]
    kept = [d for d in docs if not namespace_doc.search(d)]
    print(f"{url}: sha256 verified, {len(kept)} objects ({len(docs) - len(kept)} Namespace dropped)", flush=True)
    if not kubeconfig:
        sys.exit("no kubeconfig for the management cluster")
    with tempfile.TemporaryDirectory() as tmp:
        kc = os.path.join(tmp, "kubeconfig")
        fd = os.open(kc, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(kubeconfig)
        manifest = os.path.join(tmp, "manifest.yaml")
        with open(manifest, "w") as f:
            f.write("\n---\n".join(kept))
        kubectl = ["kubectl", "--kubeconfig", kc] + (["--context", context] if context else [])
        if ACTION == "delete":
            run(kubectl + ["delete", "--ignore-not-found", "--wait=true", "-f", manifest])
            return
        run(kubectl + ["apply", "--server-side", "--force-conflicts", "--field-manager=weebo-platform", "-f", manifest])
        for crd in os.environ.get("MANIFEST_WAIT_CRDS", "").split():
            run(kubectl + ["wait", "--for=condition=Established", "--timeout=300s", f"crd/{crd}"])
        for ref in os.environ.get("MANIFEST_WAIT_DEPLOYMENTS", "").split():
            ns, name = ref.split("/", 1)
            run(kubectl + ["--namespace", ns, "rollout", "status", f"deployment/{name}", "--timeout=600s"])

main()
'''

APPLY_SCRIPT = 'ACTION = "apply"' + _SCRIPT
DELETE_SCRIPT = 'ACTION = "delete"' + _SCRIPT


@dataclass(frozen=True)
class ReleaseManifest:
    """One pinned release asset."""

    url: str
    sha256: str
    crds: Sequence[str] = ()  # wait until Established
    deployments: Sequence[str] = ()  # "<namespace>/<name>", wait until rolled out


def command_environment(manifest: ReleaseManifest, kubeconfig: pulumi.Input[str],
                        context: str | None = None) -> dict[str, pulumi.Input[str]]:
    return {
        "MANIFEST_URL": manifest.url,
        "MANIFEST_SHA256": manifest.sha256,
        "MANIFEST_KUBECONFIG": pulumi.Output.secret(kubeconfig),
        "MANIFEST_KUBE_CONTEXT": context or "",
        "MANIFEST_WAIT_CRDS": " ".join(manifest.crds),
        "MANIFEST_WAIT_DEPLOYMENTS": " ".join(manifest.deployments),
    }


def install(name: str, manifest: ReleaseManifest, kubeconfig: pulumi.Input[str], context: str | None,
            opts: pulumi.ResourceOptions) -> command.local.Command:
    """The deploy-time install of ``manifest``; make its CRs depend on the returned resource."""
    return command.local.Command(
        name,
        interpreter=["python3", "-c"],
        create=APPLY_SCRIPT,
        # No separate update: any change (version, checksum, kubeconfig rotation) re-applies.
        delete=DELETE_SCRIPT,
        environment=command_environment(manifest, kubeconfig, context),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["environment"])
        ),
    )
