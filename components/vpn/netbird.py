"""NetBird: the platform VPN. A routing peer inside the management cluster gives NetBird users
access to the cluster's service range; access is granted by NetBird policies from config.

Design: every NetBird object (groups, setup key, network, router, resources, policies) is made
through ``pulumi_netbird``, and the routing peer is a Deployment rendered here. The
netbird-operator chart (0.8.0) was not used: its NetworkRouter/NBRoutingPeer controllers create
the network, router and setup key themselves through the NetBird API with a management token
stored in the cluster (values ``netbirdAPI.keyFromSecret``) — a second owner of the same objects
and an admin credential in the cluster, where the peer itself only needs a setup key. The pod
below mirrors the operator's own routing-peer pod (Ref: netbirdio/kubernetes-operator v0.8.0
internal/controller/networkrouter_controller.go).

Provider credentials: ``netbird.Provider`` gets the management URL from config; its token comes
from the environment variable ``NB_PAT`` (a NetBird personal access token of an admin service
user), which the provider reads itself (Ref: pulumi_netbird 1.1.0 provider.py, ``token``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_netbird as netbird

import versions
from components.core import rotation
from components.core.common import MANAGED_BY, PRIVILEGED_AGENT_SKIPS, checkov_skips
from components.core.contracts import NetbirdRoute
from components.core.namespace import PlatformNamespace, PlatformNamespaceArgs
from stacks import facts
from stacks.config import ConfigProblem, PlatformConfig

NAMESPACE = facts.NETBIRD_NAMESPACE
SETUP_KEY_SECRET_KEY = "setup-key"
KUBE_APISERVER_PORT = 6443


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------

# The groups' names are facts config validation checks policies against (stacks/facts.py).
routers_group = facts.netbird_routers_group
resources_group = facts.netbird_resources_group


def declared_groups(cfg: PlatformConfig) -> list[str]:
    """Every NetBird group the platform manages, in a stable order."""
    return facts.netbird_declared_groups(list(cfg.netbird.groups), cfg.management_cluster.name)


# The checks of a NetBird config run in config validation, before anything is registered.
def config_problems(cfg: PlatformConfig) -> list[ConfigProblem]:
    """The NetBird rules of :func:`stacks.config.netbird_problems` (kept for callers of this name)."""
    from stacks.config import netbird_problems

    return netbird_problems(cfg)


def peer_labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "netbird-routing-peer", "app.kubernetes.io/instance": name}


def routing_peer_manifests(
    *, name: str, namespace: str, management_url: str, setup_key_secret: str, replicas: int
) -> dict[str, Any]:
    """The routing peer Deployment (camelCase manifest), for the management cluster and for
    tenants (``Netbird.add_tenant_route``). The setup key comes from ``setup_key_secret``
    (key ``setup-key``).

    Privileged, like upstream's routing peer: the client creates the WireGuard interface, routes
    and the nftables masquerade rules, and enables IP forwarding in the pod's network namespace
    (NET_ADMIN + a writable /proc/sys); SYS_ADMIN/SYS_RESOURCE for its eBPF/rlimit paths.
    """
    labels = peer_labels(name)
    dropped = {"capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **labels},
                     "annotations": checkov_skips({
                         **PRIVILEGED_AGENT_SKIPS,
                         "CKV_K8S_39": "SYS_ADMIN for the client's eBPF paths, as upstream's routing peer",
                     })},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {**MANAGED_BY, **labels}},
                "spec": {
                    "automountServiceAccountToken": False,  # the client never talks to the API server
                    "enableServiceLinks": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                    # A writable copy of resolv.conf for the client, as upstream does.
                    "initContainers": [
                        {
                            "name": "resolv-conf",
                            "image": versions.NETBIRD_CLIENT_IMAGE,
                            "command": [
                                "sh", "-c",
                                "cp /etc/resolv.conf /tmp/resolv.conf && "
                                "cp /etc/resolv.conf /tmp/resolv.conf.original.netbird",
                            ],
                            "securityContext": {**dropped, "runAsNonRoot": True, "runAsUser": 65534},
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
                            "volumeMounts": [{"name": "resolv-conf", "mountPath": "/tmp"}],
                        }
                    ],
                    "containers": [
                        {
                            "name": "netbird",
                            "image": versions.NETBIRD_CLIENT_IMAGE,
                            "env": [
                                {
                                    "name": "NB_SETUP_KEY",
                                    "valueFrom": {"secretKeyRef": {"name": setup_key_secret, "key": SETUP_KEY_SECRET_KEY}},
                                },
                                {"name": "NB_MANAGEMENT_URL", "value": management_url},
                                {"name": "NB_LOG_LEVEL", "value": "info"},
                                {"name": "NB_LOG_FILE", "value": "console"},
                                {"name": "NB_DISABLE_PROFILES", "value": "true"},
                                {"name": "NB_DISABLE_UPDATE_SETTINGS", "value": "true"},
                                {"name": "NB_DAEMON_ADDR", "value": "unix:///var/run/netbird/netbird.sock"},
                                {"name": "NB_ENTRYPOINT_SERVICE_TIMEOUT", "value": "0"},
                            ],
                            "securityContext": {
                                "privileged": True,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"add": ["NET_ADMIN", "SYS_RESOURCE", "SYS_ADMIN"]},
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "startupProbe": {
                                "exec": {"command": ["netbird", "status", "--check", "startup"]},
                                "periodSeconds": 5,
                                "failureThreshold": 60,
                            },
                            "readinessProbe": {
                                "exec": {"command": ["netbird", "status", "--check", "ready"]},
                                "periodSeconds": 10,
                                "timeoutSeconds": 5,
                            },
                            "volumeMounts": [
                                {"name": "netbird-run", "mountPath": "/var/run/netbird"},
                                {"name": "netbird-lib", "mountPath": "/var/lib/netbird"},
                                {"name": "ssh-etc", "mountPath": "/etc/ssh"},
                                {"name": "resolv-conf", "mountPath": "/etc/resolv.conf", "subPath": "resolv.conf"},
                                {
                                    "name": "resolv-conf",
                                    "mountPath": "/etc/resolv.conf.original.netbird",
                                    "subPath": "resolv.conf.original.netbird",
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": v, "emptyDir": {"sizeLimit": "64Mi"}}
                        for v in ("netbird-run", "netbird-lib", "ssh-etc", "resolv-conf")
                    ],
                },
            },
        },
    }


def routing_peer_egress_spec(name: str) -> dict[str, Any]:
    """Egress of the routing peer: NetBird's management, signal and relays (TCP 443), WireGuard
    and STUN to peers anywhere (UDP), and the routed traffic itself, to the cluster's workloads.
    What a VPN user may reach is decided by the NetBird policies, not here. No ingress rule:
    WireGuard peers answer on flows the peer opened (stateful)."""
    return {
        "podSelector": {"matchLabels": peer_labels(name)},
        "policyTypes": ["Egress"],
        "egress": [
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "UDP"}]},
            {"to": [{"namespaceSelector": {}}]},
        ],
    }


def routing_peer_apiserver_policy(name: str, namespace: str) -> dict[str, Any]:
    """Routed traffic to the Kubernetes API (its Service IP is in the routed range; the API server
    runs on the hosts, which only Cilium's ``kube-apiserver`` entity selects)."""
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": f"{name}-to-apiserver", "namespace": namespace},
        "spec": {
            "endpointSelector": {"matchLabels": peer_labels(name)},
            "egress": [
                {
                    "toEntities": ["kube-apiserver"],
                    "toPorts": [{"ports": [{"port": str(KUBE_APISERVER_PORT), "protocol": "TCP"}]}],
                }
            ],
        },
    }


# ---------------------------------------------------------------------------------------------
# Component
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NetbirdArgs:
    config: PlatformConfig
    depends_on: Sequence[pulumi.Resource] = ()


class Netbird(pulumi.ComponentResource):
    """NetBird groups, the management cluster's network and routing peer, and access policies.

    ``groups`` maps every managed group name to its ``netbird.Group``; ``network`` is the
    management cluster's NetBird network. Tenants add theirs with :meth:`add_tenant_route`.
    Nothing is created when ``netbird.enabled`` is false (``enabled`` tells).
    """

    enabled: bool
    groups: dict[str, netbird.Group]
    network: netbird.Network | None
    router: netbird.NetworkRouter | None

    def __init__(self, name: str, args: NetbirdArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions | None = None):
        super().__init__("weebo:vpn:Netbird", name, None, opts)
        cfg = args.config
        self._name = name
        self._cfg = cfg
        self.enabled = cfg.netbird.enabled
        self.groups = {}
        self.network = None
        self.router = None
        if not self.enabled:
            self.register_outputs({})
            return

        mc = cfg.management_cluster.name
        # Token from NB_PAT (environment); the URL from config.
        self._nb = netbird.Provider(
            f"{name}-provider", management_url=cfg.netbird.management_url, opts=pulumi.ResourceOptions(parent=self)
        )
        nb_opts = pulumi.ResourceOptions(parent=self, provider=self._nb)
        self.groups = {g: netbird.Group(f"{name}-group-{g}", name=g, opts=nb_opts) for g in declared_groups(cfg)}
        routers = self.groups[routers_group(mc)]
        resources = self.groups[resources_group(mc)]

        setup_key = self._setup_key(f"{name}-setup-key", mc, routers, cfg.rotation.netbird_setup_key)
        self.network = netbird.Network(
            f"{name}-network", name=mc, description=f"Kubernetes services of {mc}", opts=nb_opts
        )
        netbird.NetworkResource(
            f"{name}-service-range",
            network_id=self.network.id,
            name=f"{mc}-service-range",
            description=f"Service range of {mc}",
            address=cfg.management_cluster.service_cidr,
            groups=[resources.id],
            enabled=True,
            opts=nb_opts,
        )
        self.router = netbird.NetworkRouter(
            f"{name}-router",
            network_id=self.network.id,
            peer_groups=[routers.id],
            # The cluster has no route back to the NetBird range: replies must come back through
            # the routing peer.
            masquerade=True,
            metric=9999,
            enabled=True,
            opts=nb_opts,
        )
        for pol in cfg.netbird.policies:
            netbird.Policy(
                f"{name}-policy-{pol.name}",
                name=pol.name,
                enabled=True,
                rule=netbird.PolicyRuleArgs(
                    name=pol.name,
                    action="accept",
                    bidirectional=False,
                    enabled=True,
                    protocol=pol.protocol,
                    ports=[str(p) for p in pol.ports] or None,
                    sources=[self.groups[g].id for g in pol.sources],
                    destinations=[self.groups[g].id for g in pol.destinations],
                ),
                opts=nb_opts,
            )

        # The routing peer in the cluster.
        self.namespace = PlatformNamespace(
            f"{name}-namespace",
            # The routing peer is privileged (see routing_peer_manifests): namespace "netbird" is
            # on the privileged allow-list for this reason.
            PlatformNamespaceArgs(name=NAMESPACE, pod_security="privileged", depends_on=args.depends_on),
            provider,
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=[*args.depends_on, self.namespace]
        )
        peer = f"{mc}-routing-peer"
        secret = k8s.core.v1.Secret(
            f"{name}-setup-key-secret",
            metadata={"name": f"{peer}-setup-key", "namespace": NAMESPACE, "labels": MANAGED_BY},
            type="Opaque",
            string_data={SETUP_KEY_SECRET_KEY: pulumi.Output.secret(setup_key.key)},
            opts=k8s_opts,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-routing-peer-egress",
            metadata={"name": f"{peer}-egress", "namespace": NAMESPACE, "labels": MANAGED_BY},
            spec=routing_peer_egress_spec(peer),
            opts=k8s_opts,
        )
        api = routing_peer_apiserver_policy(peer, NAMESPACE)
        k8s.apiextensions.CustomResource(
            f"{name}-routing-peer-to-apiserver",
            api_version=api["apiVersion"],
            kind=api["kind"],
            metadata={**api["metadata"], "labels": MANAGED_BY},
            spec=api["spec"],
            opts=k8s_opts,  # Cilium's CRD: args.depends_on holds Cilium
        )
        deployment = routing_peer_manifests(
            name=peer,
            namespace=NAMESPACE,
            management_url=cfg.netbird.management_url,
            setup_key_secret=f"{peer}-setup-key",
            replicas=cfg.netbird.routing_peer_replicas,
        )
        self.routing_peer = k8s.apps.v1.Deployment(
            f"{name}-routing-peer",
            metadata=deployment["metadata"],
            spec=deployment["spec"],
            # The router must exist before peers enroll, or they would not route until the next sync.
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[secret, self.router])),
        )
        self.register_outputs({"network": self.network.id})

    def _setup_key(self, resource_name: str, cluster: str, routers: netbird.Group,
                   generation: int) -> netbird.SetupKey:
        """A reusable key for a cluster's routing peers: pods come and go (ephemeral peers are
        removed after 10 minutes offline), so one key enrolls every replica. It only puts peers
        in the routers group.

        Rotation (``generation``, a ``rotation`` counter): the key is generated by NetBird, so the
        generation goes into its name and a new name replaces the key - the new one is created
        (and written to the routing peers' Secret) before the old one is deleted. Peers already
        enrolled keep running (a setup key only registers a peer); a pod started later registers
        with the new key."""
        return netbird.SetupKey(
            resource_name,
            name=rotation.suffixed(f"{cluster}-routing-peers", generation),
            type="reusable",
            auto_groups=[routers.id],
            ephemeral=True,
            usage_limit=0,
            expiry_seconds=0,
            # The SDK already marks "key" secret; said again so a regeneration cannot drop it.
            opts=pulumi.ResourceOptions(parent=self, provider=self._nb, additional_secret_outputs=["key"],
                                        replace_on_changes=["name"]),
        )

    def add_tenant_route(
        self,
        tenant: str,
        cidrs: Sequence[str],
        access_groups: Sequence[str],
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> NetbirdRoute:
        """A NetBird network for a tenant cluster: ``cidrs`` (its pod/service ranges) routed by
        peers running *inside* the tenant (only they can reach those ranges), open to
        ``access_groups`` (names of ``netbird.groups``).

        The tenant deploys ``routing_peer_manifests(...)`` with the returned setup key.
        """
        if not self.enabled:
            raise RuntimeError("NetBird is disabled in this environment (netbird.enabled: false)")
        unknown = [g for g in access_groups if g not in self.groups]
        if unknown:
            raise ValueError(f"tenant {tenant!r}: unknown NetBird group(s) {unknown}; declare them under netbird.groups")
        if not cidrs:
            raise ValueError(f"tenant {tenant!r}: no range to route")
        name = f"{self._name}-tenant-{tenant}"
        opts = pulumi.ResourceOptions(parent=self, provider=self._nb, depends_on=list(depends_on))
        routers = netbird.Group(f"{name}-routers", name=routers_group(tenant), opts=opts)
        resources = netbird.Group(f"{name}-services", name=resources_group(tenant), opts=opts)
        setup_key = self._setup_key(f"{name}-setup-key", tenant, routers,
                                    self._cfg.rotation.tenant(tenant).netbird_setup_key)
        network = netbird.Network(f"{name}-network", name=tenant, description=f"Tenant cluster {tenant}", opts=opts)
        for i, cidr in enumerate(cidrs):
            netbird.NetworkResource(
                f"{name}-range-{i}",
                network_id=network.id,
                name=f"{tenant}-range-{i}",
                address=cidr,
                groups=[resources.id],
                enabled=True,
                opts=opts,
            )
        router = netbird.NetworkRouter(
            f"{name}-router", network_id=network.id, peer_groups=[routers.id], masquerade=True, metric=9999,
            enabled=True, opts=opts,
        )
        netbird.Policy(
            f"{name}-access",
            name=f"{tenant}-access",
            enabled=True,
            rule=netbird.PolicyRuleArgs(
                name=f"{tenant}-access",
                action="accept",
                bidirectional=False,
                enabled=True,
                protocol="all",
                sources=[self.groups[g].id for g in access_groups],
                destinations=[resources.id],
            ),
            opts=opts,
        )
        return NetbirdRoute(
            network_id=network.id,
            routers_group_id=routers.id,
            resources_group_id=resources.id,
            management_url=self._cfg.netbird.management_url,
            setup_key=pulumi.Output.secret(setup_key.key),
            ready=router,
        )

