"""Answers of the offline engine to provider functions (invokes).

Shapes follow each provider's schema (camelCase, as on the wire). Values are recognisable
fakes: nothing here stands for a real credential.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handles(token: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[token] = fn
        return fn

    return register


def respond(token: str, args: dict[str, Any]) -> dict[str, Any]:
    handler = HANDLERS.get(token)
    if handler is None:
        raise NotImplementedError(
            f"the offline engine has no answer for invoke {token}: add one in offline/invokes.py"
        )
    return handler(args)


# Every credential a mock provider "generates" carries this marker, so tests can look for leaks
# of it in rendered inputs and plan files.
SECRET_MARKER = "GENERATED-SECRET"


def generated_secret(kind: str, name: str) -> str:
    return f"{SECRET_MARKER}-{kind}-{name}"


def _fake(kind: str, *parts: Any) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:16]
    return f"offline-{kind}-{digest}"


@handles("talos:machine/getConfiguration:getConfiguration")
def _talos_machine_configuration(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "machineConfiguration": _fake("machineconfig", args.get("clusterName"), args.get("machineType"))}


@handles("talos:client/getConfiguration:getConfiguration")
def _talos_client_configuration(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "talosConfig": _fake("talosconfig", args.get("clusterName"))}


# ---------------------------------------------------------------------------------------------
# Outputs providers compute on create. Used only by the non-preview mock engine (tests of what
# happens once resources exist); a preview leaves them unknown, as the real engine does.
# ---------------------------------------------------------------------------------------------

ComputeHandler = Callable[[str, dict[str, Any]], dict[str, Any]]
COMPUTED: dict[str, ComputeHandler] = {}


def computes(type_: str) -> Callable[[ComputeHandler], ComputeHandler]:
    def register(fn: ComputeHandler) -> ComputeHandler:
        COMPUTED[type_] = fn
        return fn

    return register


def computed_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    handler = COMPUTED.get(type_)
    return handler(name, inputs) if handler else {}


@computes("talos:cluster/kubeconfig:Kubeconfig")
def _talos_kubeconfig(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"kubeconfigRaw": generated_secret("kubeconfig", name)}


@computes("talos:machine/secrets:Secrets")
def _talos_secrets(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "machineSecrets": {"certs": {"os": {"cert": _fake("os-cert", name), "key": generated_secret("os-key", name)}}},
        "clientConfiguration": {
            "caCertificate": _fake("ca", name),
            "clientCertificate": _fake("client-cert", name),
            "clientKey": generated_secret("client-key", name),
        },
    }


def _generation(inputs: dict[str, Any], key: str = "keepers") -> str:
    """A replaced generator makes a new value: a rotated keeper (components/core/rotation.py) changes
    the mock's value too, so the offline plan shows which consumers a rotation reaches."""
    value = inputs.get(key)
    if not value or value == {"generation": "0"}:
        return ""
    return "-" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


@computes("random:index/randomPassword:RandomPassword")
def _random_password(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"result": f"{SECRET_MARKER}-{name}{_generation(inputs)}"}


@computes("pulumi-python:dynamic/weebo:VaultInit")
def _vault_init(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    shares = int(inputs.get("key_shares") or 5)
    return {
        "root_token": f"{SECRET_MARKER}-{name}-root-token",
        "unseal_keys": [f"{SECRET_MARKER}-{name}-unseal-{i}" for i in range(shares)],
    }


@computes("pulumi-python:dynamic/weebo:VaultAdminToken")
def _vault_admin_token(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"token": f"{SECRET_MARKER}-{name}-token", "accessor": _fake("accessor", name)}


@computes("pulumi-python:dynamic/weebo:AuthentikApiToken")
def _authentik_api_token(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"user_pk": 7}


@computes("random:index/randomBytes:RandomBytes")
def _random_bytes(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    gen = _generation(inputs)
    return {"base64": generated_secret("b64", name) + gen, "hex": generated_secret("hex", name) + gen}


@computes("netbird:index/setupKey:SetupKey")
def _netbird_setup_key(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    # A rotated key (its name carries the generation, components/core/rotation.py) is a new key.
    rotated = re.search(r"-g\d+$", str(inputs.get("name", "")))
    return {"key": generated_secret("setupkey", name) + (rotated.group(0) if rotated else "")}

# Ref: terraform-provider-talos v0.11.0 pkg/talos/talos_image_factory_urls_data_source.go and
# talos v1.13.9 pkg/machinery/platforms/platforms.go (DiskImageSuffix per platform).
_FACTORY = "https://factory.talos.dev"
_DISK_IMAGE_SUFFIX = {"metal": "raw.zst", "openstack": "raw.xz", "nocloud": "raw.xz"}


@handles("talos:imageFactory/getUrls:getUrls")
def _talos_image_factory_urls(args: dict[str, Any]) -> dict[str, Any]:
    schematic_id = args["schematicId"]
    version = "v" + str(args["talosVersion"]).removeprefix("v")
    arch = args.get("architecture") or "amd64"
    platform = args.get("platform") or ""
    host = _FACTORY.removeprefix("https://")
    image = f"{_FACTORY}/image/{schematic_id}/{version}"
    if platform:
        suffix = _DISK_IMAGE_SUFFIX.get(platform)
        if suffix is None:
            raise NotImplementedError(f"getUrls: no offline answer for platform {platform!r}: add its disk image suffix")
        urls = {
            "installer": f"{host}/{platform}-installer/{schematic_id}:{version}",
            "installerSecureboot": f"{host}/{platform}-installer-secureboot/{schematic_id}:{version}",
            "diskImage": f"{image}/{platform}-{arch}.{suffix}",
            "diskImageSecureboot": f"{image}/{platform}-{arch}-secureboot.{suffix}",
            "iso": f"{image}/{platform}-{arch}.iso",
            "isoSecureboot": f"{image}/{platform}-{arch}-secureboot.iso",
            "kernel": f"{image}/kernel-{arch}",
            "kernelCommandLine": f"{image}/cmdline-{platform}-{arch}",
            "initramfs": f"{image}/initramfs-{arch}.xz",
            "pxe": f"https://pxe.{host}/pxe/{schematic_id}/{version}/{platform}-{arch}",
            "uki": f"{image}/{platform}-{arch}-secureboot-uki.efi",
        }
    else:  # single-board computers
        urls = {key: "" for key in ("installerSecureboot", "diskImageSecureboot", "iso", "isoSecureboot",
                                     "kernel", "kernelCommandLine", "initramfs", "pxe", "uki")}
        urls["installer"] = f"{host}/metal-installer/{schematic_id}:{version}"
        urls["diskImage"] = f"{image}/metal-arm64.raw.xz"
    return {
        "architecture": arch,
        "id": f"{schematic_id}-{version}-{platform or args.get('sbc', '')}",
        "platform": platform,
        "sbc": args.get("sbc", ""),
        "schematicId": schematic_id,
        "talosVersion": version,
        "urls": urls,
    }

# --- Authentik (issue 5). Shapes: pulumi_authentik 2025.8.1 Get*Result (camelCase on the wire).
@handles("authentik:index/getFlow:getFlow")
def _authentik_flow(args: dict[str, Any]) -> dict[str, Any]:
    slug = args.get("slug")
    return {**args, "id": _fake("flow", slug), "slug": slug, "name": slug, "title": slug,
            "designation": "authorization", "authentication": "none"}


@handles("authentik:index/getPropertyMappingProviderScope:getPropertyMappingProviderScope")
def _authentik_scope_mappings(args: dict[str, Any]) -> dict[str, Any]:
    managed = list(args.get("managedLists") or ([args["managed"]] if args.get("managed") else []))
    ids = [_fake("scope-mapping", m) for m in managed]
    return {**args, "ids": ids, "id": ids[0] if len(ids) == 1 else _fake("scope-mapping-list", *managed)}


@handles("authentik:index/getCertificateKeyPair:getCertificateKeyPair")
def _authentik_certificate(args: dict[str, Any]) -> dict[str, Any]:
    # Never a key: the program asks with fetchKey=false.
    # Authentik identifies certificate-key pairs by UUID (CertificateKeyPair.kp_uuid).
    kp_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"authentik-certificate/{args.get('name')}")
    return {**args, "id": str(kp_uuid), "name": args.get("name")}


@handles("pulumi:pulumi:readStackOutputs")
def _read_stack_outputs(args: dict[str, Any]) -> dict[str, Any]:
    # The offline engine has no previous deployment: a stack without outputs, as a new one.
    return {"name": args.get("name"), "outputs": {}, "secretOutputNames": []}
