"""A gate for the management cluster's Kubernetes API: ``pulumi up`` waits here until
kube-apiserver answers ``/readyz`` over TLS verified with the cluster CA, and only then hands the
kubeconfig on. The ``weebo4cp`` Kubernetes provider is built from this resource's output, so it
cannot be configured before the API answers.

Why a gate: the Talos kubeconfig exists seconds after ``Bootstrap``, long before the API server
runs. ``talos_machine_bootstrap`` only sends the bootstrap call (retried until accepted) and
``talos_cluster_kubeconfig`` only asks machined to generate a kubeconfig from the machine
secrets; neither waits for kube-apiserver.
Ref: siderolabs/terraform-provider-talos v0.11.0 (bridged by pulumiverse-talos 0.8.1, its
provider/go.mod) pkg/talos/talos_machine_bootstrap_resource.go (Create: ``c.Bootstrap`` in a
retry loop, nothing after it) and pkg/talos/talos_cluster_kubeconfig_resource.go (Create:
``c.Kubeconfig`` in a retry loop). pulumi-kubernetes, configured with a cluster that does not
answer yet, marks it unreachable for the rest of the run (issue 13).

The probe uses exactly what the provider will use: the kubeconfig's current context (server URL,
CA, client certificate). The CA is the only trust anchor (no system store): a server that merely
answers on that address is not taken for the cluster. The wait is bounded
(``timeout_seconds``) and ends with the last error seen. The kubeconfig is a secret input and a
secret output; nothing is logged; the client key touches the disk only in a private temporary
directory, for the duration of one request (Python's ``ssl`` loads certificates from files).

During preview nothing here runs (a dynamic resource is only created by ``pulumi up``); the
provider's kubeconfig is unknown then, as it already is on a brand-new environment.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from components.core.bootstrap_http import BootstrapError, NotYet, wait_until


@dataclass(frozen=True)
class ApiEndpoint:
    """What the probe needs from a kubeconfig."""

    server: str  # https://host:port
    ca_pem: str
    client_cert_pem: str | None = None
    client_key_pem: str | None = None
    token: str | None = None


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


def endpoint_from_kubeconfig(kubeconfig: str) -> ApiEndpoint:
    """The current context's server, CA and credentials. Raises BootstrapError when the
    kubeconfig carries no inline CA: then there is nothing to verify the server with."""
    import yaml  # in the stack's virtualenv (the program renders YAML everywhere)

    doc = yaml.safe_load(kubeconfig) or {}
    contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
    current = doc.get("current-context") or next(iter(contexts), None)
    context = contexts.get(current, {})
    clusters = {c["name"]: c.get("cluster") or {} for c in doc.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}
    cluster = clusters.get(context.get("cluster")) or (next(iter(clusters.values()), {}) if len(clusters) == 1 else {})
    user = users.get(context.get("user")) or (next(iter(users.values()), {}) if len(users) == 1 else {})
    server = cluster.get("server")
    ca = cluster.get("certificate-authority-data")
    if not server or not str(server).startswith("https://"):
        raise BootstrapError("the kubeconfig's current context has no https:// server")
    if not ca:
        raise BootstrapError("the kubeconfig's cluster has no certificate-authority-data to verify the API with")
    return ApiEndpoint(
        server=str(server).rstrip("/"),
        ca_pem=_b64(ca),
        client_cert_pem=_b64(user["client-certificate-data"]) if user.get("client-certificate-data") else None,
        client_key_pem=_b64(user["client-key-data"]) if user.get("client-key-data") else None,
        token=user.get("token"),
    )


def probe_readyz(api: ApiEndpoint, *, timeout: float = 10.0) -> None:
    """One ``GET /readyz``. Returns when it answers 200; raises NotYet for any other status and
    OSError (connection, DNS, TLS verification, timeout) when it cannot be reached."""
    # Ref: kubernetes.io docs/reference/using-api/health-checks ("Kubernetes API health
    # endpoints"): rely on the status code, 200 = ready; a failure means still initialising (e.g.
    # waiting for etcd). The admin client certificate is sent, so anonymous auth does not matter.
    ctx = ssl.create_default_context(cadata=api.ca_pem)  # only the cluster CA, not the system store
    req = urllib.request.Request(api.server + "/readyz", method="GET")
    if api.token:
        req.add_header("Authorization", f"Bearer {api.token}")
    with tempfile.TemporaryDirectory(prefix="weebo-readyz-") as tmp:
        if api.client_cert_pem and api.client_key_pem:
            cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
            for path, pem in ((cert, api.client_cert_pem), (key, api.client_key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(pem)
            ctx.load_cert_chain(cert, key)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:  # noqa: S310
                status = resp.status
        except urllib.error.HTTPError as err:
            status = err.code
        except urllib.error.URLError as err:  # wraps the OSError (TLS, DNS, refused, timeout)
            raise (err.reason if isinstance(err.reason, OSError) else OSError(str(err.reason))) from err
    if status != 200:
        raise NotYet(f"{api.server}/readyz answered HTTP {status}")


def wait_ready(kubeconfig: str, *, timeout_seconds: float, interval: float = 5.0,
               request_timeout: float = 10.0) -> None:
    api = endpoint_from_kubeconfig(kubeconfig)
    wait_until(lambda: probe_readyz(api, timeout=min(request_timeout, max(timeout_seconds, 0.1))),
               timeout=timeout_seconds, interval=interval, what=f"kube-apiserver at {api.server}/readyz")


class _KubeApiReadyProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        wait_ready(props["kubeconfig"], timeout_seconds=float(props["timeout_seconds"]),
                   interval=float(props.get("poll_interval_seconds") or 5))
        # id: the server, not a secret. The kubeconfig goes on as this resource's (secret) output.
        return dynamic.CreateResult(id_=endpoint_from_kubeconfig(props["kubeconfig"]).server, outs=dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # A new kubeconfig (rotated certificate, new endpoint) is probed again before use.
        return dynamic.DiffResult(changes=olds.get("kubeconfig") != news.get("kubeconfig"),
                                  replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=self.create(news).outs)


@dataclass(frozen=True)
class KubeApiReadyArgs:
    kubeconfig: pulumi.Input[str]  # secret
    timeout_seconds: int = 900
    poll_interval_seconds: int = 5


class KubeApiReady(dynamic.Resource, module="weebo", name="KubeApiReady"):
    """Output ``kubeconfig``: the input kubeconfig, known only once the API answered (secret)."""

    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: KubeApiReadyArgs, opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"]))
        super().__init__(
            _KubeApiReadyProvider(),
            name,
            {
                "kubeconfig": pulumi.Output.secret(args.kubeconfig),
                "timeout_seconds": args.timeout_seconds,
                "poll_interval_seconds": args.poll_interval_seconds,
            },
            opts,
        )
