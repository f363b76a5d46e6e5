"""Answers of the offline engine to provider functions (invokes).

Shapes follow each provider's schema (camelCase, as on the wire). Values are recognisable
fakes: nothing here stands for a real credential.
"""

from __future__ import annotations

import hashlib
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
            f"the offline engine has no answer for invoke {token}: add one in stacks/invokes.py"
        )
    return handler(args)


def _fake(kind: str, *parts: Any) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:16]
    return f"offline-{kind}-{digest}"


@handles("talos:machine/getConfiguration:getConfiguration")
def _talos_machine_configuration(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "machineConfiguration": _fake("machineconfig", args.get("clusterName"), args.get("machineType"))}


@handles("talos:client/getConfiguration:getConfiguration")
def _talos_client_configuration(args: dict[str, Any]) -> dict[str, Any]:
    return {**args, "talosConfig": _fake("talosconfig", args.get("clusterName"))}


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
