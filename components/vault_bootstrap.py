"""Initialise and unseal a brand-new Vault, keeping the init material only as Pulumi secrets.

Design (config ``vault.unseal: shamir-bootstrap``)
-------------------------------------------------
Two Pulumi dynamic resources. On ``pulumi up`` (never during preview) they call Vault's HTTP API
from the machine running Pulumi, through the platform ingress:

``VaultInit`` (protected, retained on delete) - one action, once:

1. ``GET /v1/sys/init`` on ``vault-0`` until it answers (pods scheduled, TLS, DNS, ingress);
   a Vault that is already initialised is an error: Pulumi would not hold its keys.
2. ``PUT /v1/sys/init`` with ``key_shares``/``key_threshold``: the unseal keys and the initial
   root token come back in the response body only, and ``create`` returns them at once.

Why a resource of its own: a dynamic provider's ``create`` records outputs only when it
returns. Had it gone on to unseal and wait, any failure after ``sys/init`` (a pod that does not
join, a timeout) would have lost the only copy of the keys, and the next run would refuse an
initialised Vault. Now the keys are in the state the moment ``sys/init`` answered.

``VaultUnseal`` (depends on ``VaultInit``; its keys are an input) - every run:

3. ``PUT /v1/sys/unseal`` with ``threshold`` keys on every sealed pod, ``vault-0`` first; the
   other pods join the raft cluster through ``retry_join`` while being unsealed.
4. Wait until the active endpoint (``https://vault.<zone>/v1/sys/health``) answers 200, so the
   ``pulumi_vault`` provider (which depends on this resource) finds a leader.

Its ``diff`` asks every pod for ``sys/seal-status`` (unauthenticated) and reports a change
unless every pod answers "unsealed": a Vault sealed by a reboot is unsealed by the next
``pulumi up``. It needs nothing but its own inputs: no ``pulumi_vault`` provider, no Kubernetes
API, so it can be run alone while Vault is sealed (README "Vault: unseal design", an
``up --target`` of this resource). Changing ``keyShares``/``keyThreshold`` after initialisation
has no effect (re-keying is an operator procedure: ``vault operator rekey``).

Individual pods are addressed through the public host with the header
``X-Weebo-Vault-Pod: vault-N`` (one Traefik route and one Service per pod, see
``components/secrets/vault.py``); ``sys/init``, ``sys/seal-status`` and ``sys/unseal`` are
unauthenticated endpoints every Vault pod serves anyway, and the per-pod routes are further
restricted to ``managementCluster.operatorSourceRanges`` when set.

The unseal keys (base64) and root token are outputs of ``VaultInit`` (and the keys an input of
``VaultUnseal``), declared ``additional_secret_outputs`` and passed as secrets: encrypted in the
stack state by the stack's secrets provider, shown as ``[secret]`` in previews and plans, never
written to the cluster (no Kubernetes Secret, no ConfigMap, no Helm value) and never logged.

Threat model
------------
* Whoever can decrypt this stack's state (its secrets provider: passphrase or cloud KMS) holds
  every unseal key share and the root token, i.e. full control of Vault. The stack state is
  therefore the platform's root of trust, as it already is for the Talos machine secrets and
  the cluster admin kubeconfig. Protect the secrets provider accordingly; there is no split
  knowledge between key holders (all shares live in one place). Upgrading to split custody
  means initialising with PGP keys (``pgp_keys``), outside this design.
* The root token is not the program's standing credential: ``VaultAdminToken`` (below) uses it
  once to mint a periodic ``pulumi-admin`` token, the ``pulumi_vault`` provider's credential, and
  revokes it. A new root token comes only from the unseal keys (``vault operator generate-root``,
  docs/operations/vault-root-token.md).
* In transit, the init response and unseal keys cross the Internet inside TLS to Traefik
  (publicly trusted certificate), then Traefik -> Vault TLS verified against the internal CA.
  Traefik sees them in clear, as it sees every Vault API call (tokens, secrets) anyway.
* Not chosen: auto-unseal. Transit auto-unseal needs a second Vault that is up before this
  one and outside this cluster; OVH offers no KMS seal supported by Vault (platform notes).
  Keeping the keys in a Kubernetes Secret for an in-cluster unsealer would put them next to
  the data they protect (etcd backups, anyone with ``get secrets`` in the namespace).
* A ``pulumi destroy`` or a lost state loses the keys: ``VaultInit`` is protected and retained
  on delete, and the Vault namespace, release and PVCs are protected too.

Preview of a brand-new environment: a dynamic resource is not created during preview, so its
outputs (and the ``pulumi_vault`` provider's token) are unknown and nothing contacts Vault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from components.core.bootstrap_http import BootstrapError, NotYet, Response, request_json, wait_until

POD_HEADER = "X-Weebo-Vault-Pod"


def _call(props: dict[str, Any], method: str, path: str, pod: str | None = None, body: Any = None,
          timeout: float = 15.0) -> Response:
    headers = {POD_HEADER: pod} if pod else {}
    return request_json(method, props["address"].rstrip("/") + path, headers=headers, body=body,
                        verify_tls=bool(props["verify_tls"]), timeout=timeout)


def _interval(props: dict[str, Any]) -> float:
    return float(props.get("poll_interval_seconds") or 5)


def _seal_status(props: dict[str, Any], pod: str) -> dict[str, Any]:
    resp = _call(props, "GET", "/v1/sys/seal-status", pod)
    if resp.status != 200 or not isinstance(resp.body, dict):
        raise NotYet(f"{pod}: seal-status answered HTTP {resp.status}")
    return resp.body


def _initialise(props: dict[str, Any]) -> tuple[list[str], str]:
    first = props["pods"][0]

    def status() -> bool:
        resp = _call(props, "GET", "/v1/sys/init", first)
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise NotYet(f"{first}: sys/init answered HTTP {resp.status}")
        return bool(resp.body.get("initialized"))

    if wait_until(status, timeout=float(props["timeout_seconds"]), interval=_interval(props),
                  what=f"Vault {first} at {props['address']}"):
        raise BootstrapError(
            "Vault is already initialised but this stack holds no unseal keys: refusing to continue. "
            "Restore the stack state that initialised it, or import the keys, instead of re-creating "
            "the VaultInit resource."
        )
    resp = _call(props, "PUT", "/v1/sys/init", first,
                 {"secret_shares": int(props["key_shares"]), "secret_threshold": int(props["key_threshold"])})
    if resp.status != 200 or not isinstance(resp.body, dict) or "root_token" not in resp.body:
        raise BootstrapError(f"sys/init failed with HTTP {resp.status}")
    return list(resp.body["keys_base64"]), str(resp.body["root_token"])


def _unseal(props: dict[str, Any], keys: Sequence[str], pod: str) -> None:
    threshold = int(props["key_threshold"])

    def step() -> None:
        st = _seal_status(props, pod)
        if st.get("sealed") is False:
            return
        # Feed keys from where the pod's unseal progress stands; a follower still joining the
        # raft cluster may reset its progress, in which case the next round starts over.
        progress = int(st.get("progress") or 0)
        for key in keys[progress:threshold]:
            resp = _call(props, "PUT", "/v1/sys/unseal", pod, {"key": key})
            if resp.status != 200 or not isinstance(resp.body, dict):
                raise NotYet(f"{pod}: unseal answered HTTP {resp.status}")
            if resp.body.get("sealed") is False:
                return
        raise NotYet(f"{pod}: still sealed (joining the raft cluster?)")

    wait_until(step, timeout=float(props["timeout_seconds"]), interval=_interval(props), what=f"Vault {pod} to unseal")


def _wait_active(props: dict[str, Any]) -> None:
    def active() -> None:
        resp = _call(props, "GET", "/v1/sys/health")
        if resp.status != 200:
            raise NotYet(f"active endpoint answered HTTP {resp.status}")

    wait_until(active, timeout=float(props["timeout_seconds"]), interval=_interval(props),
               what="an active Vault node")


def _unseal_all(props: dict[str, Any], keys: Sequence[str]) -> None:
    for pod in props["pods"]:
        _unseal(props, keys, pod)
    _wait_active(props)


# How long a diff or refresh waits for one pod's seal status: they run in every preview.
PROBE_TIMEOUT_SECONDS = 5.0


def sealed_pods(props: dict[str, Any]) -> list[str] | None:
    """Pods that are not known to be unsealed; None when Vault cannot be asked at all."""
    sealed = []
    try:
        for pod in props.get("pods") or []:
            resp = _call(props, "GET", "/v1/sys/seal-status", pod, timeout=PROBE_TIMEOUT_SECONDS)
            if resp.status != 200 or not isinstance(resp.body, dict) or resp.body.get("sealed") is not False:
                sealed.append(pod)  # sealed, or not up yet (a pod that restarts comes back sealed)
    except OSError:
        return None
    return sealed


class _VaultInitProvider(dynamic.ResourceProvider):
    """``sys/init``, once. Returns the key material as soon as Vault hands it over."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        keys, root_token = _initialise(props)
        return dynamic.CreateResult(id_=props["address"], outs={**props, "unseal_keys": keys, "root_token": root_token})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        # Initialisation is a fact of the past: nothing to refresh, and refresh never needs Vault.
        return dynamic.ReadResult(id_, props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # Nothing here can change after sys/init (shares and threshold included): never updated,
        # never replaced. Seal state belongs to VaultUnseal.
        return dynamic.DiffResult(changes=False, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs={**olds})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Forgetting the keys does not touch Vault; the resource is retained on delete anyway.
        return None


class _VaultUnsealProvider(dynamic.ResourceProvider):
    """Unseal every pod with the keys it is given and wait for the active node."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        _unseal_all(props, list(props["unseal_keys"]))
        return dynamic.CreateResult(id_=props["address"], outs={**props, "sealed_pods": []})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        # ``pulumi refresh``: record which pods are sealed. Unreachable means "unknown": keep the
        # state as it is rather than failing the refresh.
        sealed = sealed_pods(props)
        return dynamic.ReadResult(id_, props if sealed is None else {**props, "sealed_pods": sealed})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # Asked again in every preview and up: a reboot seals Vault without Pulumi noticing. A
        # Vault that cannot be asked is not known to be unsealed either: the update waits for it
        # (bounded by timeout_seconds) rather than letting every Vault resource fail on it.
        moved = any(olds.get(k) != news.get(k) for k in ("address", "pods", "verify_tls"))
        sealed = sealed_pods(news)
        return dynamic.DiffResult(changes=moved or sealed is None or bool(sealed),
                                  replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=self.create(news).outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # Vault stays as it is


@dataclass(frozen=True)
class VaultInitArgs:
    address: str  # public URL, e.g. https://vault.cloud.example.org
    pods: Sequence[str]  # StatefulSet pod names, vault-0 first
    key_shares: int
    key_threshold: int
    verify_tls: bool = True
    timeout_seconds: int = 900
    poll_interval_seconds: int = 5


class VaultInit(dynamic.Resource, module="weebo", name="VaultInit"):
    """Outputs ``root_token`` and ``unseal_keys`` are secrets (see the module docstring)."""

    root_token: pulumi.Output[str]
    unseal_keys: pulumi.Output[list[str]]
    key_threshold: pulumi.Output[int]

    SECRET_OUTPUTS = ("root_token", "unseal_keys")

    def __init__(self, name: str, args: VaultInitArgs, opts: pulumi.ResourceOptions | None = None):
        if args.key_threshold > args.key_shares:
            raise ValueError("key_threshold cannot exceed key_shares")
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=list(self.SECRET_OUTPUTS))
        )
        super().__init__(
            _VaultInitProvider(),
            name,
            {
                "address": args.address,
                "pods": list(args.pods),
                "key_shares": args.key_shares,
                "key_threshold": args.key_threshold,
                "verify_tls": args.verify_tls,
                "timeout_seconds": args.timeout_seconds,
                "poll_interval_seconds": args.poll_interval_seconds,
                "root_token": None,
                "unseal_keys": None,
            },
            opts,
        )


@dataclass(frozen=True)
class VaultUnsealArgs:
    address: str
    pods: Sequence[str]
    unseal_keys: pulumi.Input[Sequence[str]]  # VaultInit.unseal_keys (secret)
    # VaultInit.key_threshold: the threshold Vault was initialised with, whatever the config says now.
    key_threshold: pulumi.Input[int]
    verify_tls: bool = True
    timeout_seconds: int = 900
    poll_interval_seconds: int = 5


class VaultUnseal(dynamic.Resource, module="weebo", name="VaultUnseal"):
    """Unsealed Vault with an active node; ``sealed_pods`` after a refresh."""

    sealed_pods: pulumi.Output[list[str]]

    def __init__(self, name: str, args: VaultUnsealArgs, opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["unseal_keys"]))
        super().__init__(
            _VaultUnsealProvider(),
            name,
            {
                "address": args.address,
                "pods": list(args.pods),
                "unseal_keys": pulumi.Output.secret(args.unseal_keys),
                "key_threshold": args.key_threshold,
                "verify_tls": args.verify_tls,
                "timeout_seconds": args.timeout_seconds,
                "poll_interval_seconds": args.poll_interval_seconds,
                "sealed_pods": None,
            },
            opts,
        )


# ---------------------------------------------------------------------------------------------
# The program's standing Vault credential (issue 17 item 4): not the root token
# ---------------------------------------------------------------------------------------------
#
# ``VaultAdminToken`` - create runs once, with the root token of ``VaultInit`` (or a root token
# generated for a recovery, ``vault.recoveryRootToken``):
#
# 1. ``PUT sys/policies/acl/pulumi-admin``: the capabilities the program's pulumi_vault resources
#    need (``components.secrets.vault_config.pulumi_admin_policy``); from then on the policy is a
#    ``vault.Policy`` of the program like any other.
# 2. ``POST auth/token/create-orphan`` with that policy (and ``default``): a *periodic* orphan
#    token. Periodic, because it must keep working for as long as the stack lives without a root
#    token to mint a new one: a periodic token has no maximum TTL, each renewal resets its TTL to the period.
#    Orphan, because its parent (the root token) is revoked next and would take its children.
# 3. ``POST auth/token/revoke-self`` with the root token. A root token that is already invalid
#    (403) counts as revoked. Any other failure fails the create: the new admin token is then not
#    recorded, and it dies on its own after one period since nothing renews it.
#
# Later runs never use the root token: ``diff`` compares inputs and asks Vault, *with the admin
# token*, how long it has left (``auth/token/lookup-self``); below half the period it reports an
# update, which renews it (``auth/token/renew-self``). The period (30 days, within Vault's default
# system max TTL of 768h) is far above the longest run
# (``components.core.timeouts.vault_token_ttl_seconds``): the pulumi_vault provider mints its per-run
# child token from it. A stack left without any ``up`` for longer than the period loses its admin
# token: docs/operations/vault-root-token.md (generate a root token from the unseal keys, give it
# as ``vault.recoveryRootToken`` once: a recovery root token replaces this resource, whose create
# runs again and revokes it; removing the key afterwards is only recorded).
# Ref: Vault docs api-docs/auth/token (create-orphan "period", lookup-self, renew-self,
# revoke-self), concepts/tokens ("Periodic tokens", "Token hierarchies and orphan tokens").

ADMIN_POLICY = "pulumi-admin"
ADMIN_TOKEN_PERIOD_SECONDS = 30 * 24 * 3600
RECOVERY_RUNBOOK = "docs/operations/vault-root-token.md"


def _token_call(props: dict[str, Any], token: str, method: str, path: str, body: Any = None,
                timeout: float = 15.0) -> Response:
    return request_json(method, props["address"].rstrip("/") + path, headers={"X-Vault-Token": token},
                        body=body, verify_tls=bool(props["verify_tls"]), timeout=timeout)


def mint_admin_token(props: dict[str, Any]) -> dict[str, Any]:
    """Steps 1-3 above; returns the outputs (the admin token and its accessor)."""
    root = str(props["root_token"])
    resp = _token_call(props, root, "PUT", f"/v1/sys/policies/acl/{props['policy_name']}", {"policy": props["policy"]})
    if resp.status not in (200, 204):
        raise BootstrapError(f"writing the {props['policy_name']} policy with the root token failed with HTTP "
                             f"{resp.status}; a revoked root token needs {RECOVERY_RUNBOOK}")
    resp = _token_call(props, root, "POST", "/v1/auth/token/create-orphan", {
        # Plus Vault's default policy, as every token (its own lookup/renew/revoke-self): the
        # pulumi_vault provider's per-run child tokens are made with the parent's policies.
        "policies": [props["policy_name"]], "renewable": True,
        "period": f"{int(props['period_seconds'])}s", "display_name": props["policy_name"],
    })
    auth = resp.body.get("auth") if isinstance(resp.body, dict) else None
    if resp.status != 200 or not isinstance(auth, dict) or not auth.get("client_token"):
        raise BootstrapError(f"creating the {props['policy_name']} token failed with HTTP {resp.status}")
    resp = _token_call(props, root, "POST", "/v1/auth/token/revoke-self")
    if resp.status not in (200, 204, 403):
        raise BootstrapError(f"revoking the root token failed with HTTP {resp.status}; nothing was recorded "
                             "(the new admin token expires unrenewed), run again")
    return {"token": str(auth["client_token"]), "accessor": str(auth.get("accessor") or "")}


def admin_token_ttl(props: dict[str, Any], token: str) -> int | None:
    """Seconds the admin token has left; 0 when Vault refuses it; None when Vault cannot be asked."""
    try:
        resp = _token_call(props, token, "GET", "/v1/auth/token/lookup-self", timeout=PROBE_TIMEOUT_SECONDS)
    except OSError:
        return None
    if resp.status == 403:
        return 0
    data = resp.body.get("data") if isinstance(resp.body, dict) else None
    if resp.status != 200 or not isinstance(data, dict):
        return None
    return int(data.get("ttl") or 0)


class _VaultAdminTokenProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = mint_admin_token(props)
        return dynamic.CreateResult(id_=outs["accessor"] or props["policy_name"], outs={**props, **outs})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        return dynamic.ReadResult(id_, props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        # A new root token given for a recovery (vault.recoveryRootToken): mint again with it.
        # Back to VaultInit's (revoked) root token once the recovery key is removed: only recorded.
        # Never calls Vault with a root token.
        if olds.get("root_token") != news.get("root_token") and news.get("recovery"):
            return dynamic.DiffResult(changes=True, replaces=["root_token"], delete_before_replace=False)
        moved = any(olds.get(k) != news.get(k) for k in ("address", "verify_tls", "period_seconds", "root_token",
                                                         "recovery"))
        ttl = admin_token_ttl(news, str(olds.get("token") or ""))
        due = ttl is None or ttl < int(news["period_seconds"]) // 2
        return dynamic.DiffResult(changes=moved or due, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        token = str(olds.get("token") or "")
        resp = _token_call(news, token, "POST", "/v1/auth/token/renew-self")
        if resp.status != 200:
            raise BootstrapError(f"renewing the {news['policy_name']} token failed with HTTP {resp.status}: it has "
                                 f"expired or was revoked; recover with {RECOVERY_RUNBOOK}")
        # The policy text is the program's vault.Policy from now on (not rewritten here).
        return dynamic.UpdateResult(outs={**news, "token": token, "accessor": olds.get("accessor")})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Replaced (recovery) or removed: the old admin token goes. Already invalid is fine.
        try:
            _token_call(props, str(props.get("token") or ""), "POST", "/v1/auth/token/revoke-self")
        except OSError:
            pass


@dataclass(frozen=True)
class VaultAdminTokenArgs:
    address: str
    root_token: pulumi.Input[str]  # VaultInit.root_token, or vault.recoveryRootToken (secret)
    policy: str  # components.secrets.vault_config.pulumi_admin_policy()
    verify_tls: bool = True
    period_seconds: int = ADMIN_TOKEN_PERIOD_SECONDS
    recovery: bool = False  # root_token is vault.recoveryRootToken


class VaultAdminToken(dynamic.Resource, module="weebo", name="VaultAdminToken"):
    """Output ``token`` (secret): the pulumi_vault provider's credential."""

    token: pulumi.Output[str]
    accessor: pulumi.Output[str]

    SECRET_OUTPUTS = ("token", "root_token")

    def __init__(self, name: str, args: VaultAdminTokenArgs, opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=list(self.SECRET_OUTPUTS)))
        super().__init__(
            _VaultAdminTokenProvider(),
            name,
            {
                "address": args.address,
                "root_token": pulumi.Output.secret(args.root_token),
                "policy_name": ADMIN_POLICY,
                "policy": args.policy,
                "verify_tls": args.verify_tls,
                "period_seconds": args.period_seconds,
                "recovery": args.recovery,
                "token": None,
                "accessor": None,
            },
            opts,
        )
