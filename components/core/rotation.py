"""Credential rotation by config edit: one counter per credential (``rotation`` in the stack
config, ``stacks.config.Rotation``) turned into what makes its generator produce a new one.

Three kinds of generator, three triggers - always a real input of the generator, never a dummy:

* ``pulumi_random`` (TSIG keys, OIDC client secrets, the backup key): ``keepers`` - any change of
  a keeper replaces the resource and so regenerates its value.
  Ref: pulumi/pulumi-random docs (RandomPassword/RandomBytes "keepers": "Arbitrary map of values
  that, when changed, will trigger recreation of resource").
* Credentials a provider generates from a name (NetBird setup keys): the generation is part of the
  name and the name is ``replace_on_changes``; the new key is created before the old is deleted.
* Credentials a controller generates (a ServiceAccount token Secret): a new Secret name, so
  pulumi-kubernetes creates the new Secret, the consumer switches to it, then the old one (and so
  its token) is deleted.
* Provider credentials without a name to vary (OVH S3 credentials): ``replace_with`` a
  ``RandomId`` whose keepers carry the generation (``generation_id``).

Generation 0 keeps the unsuffixed names, so a stack that never rotated has the names it always had.
Every consumer takes the credential as an Output: a new value flows into the same ``up``; what reads
a credential only at start-up gets an annotation on its pod template that changes with it, so its
pods roll: a checksum of the value where the object is the program's own (``checksum``), the
generation where it is a Helm value (``stamp``: chart values must be known at preview, and a
checksum of a value regenerated in this run is not).
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_random as random


def keepers(generation: int) -> dict[str, str]:
    """``keepers`` of a pulumi_random generator: a new generation replaces it."""
    return {"generation": str(generation)}


def suffixed(name: str, generation: int) -> str:
    """``name`` at generation 0, ``name-g<N>`` after N rotations (a Kubernetes/NetBird name)."""
    return name if generation == 0 else f"{name}-g{generation}"


def generation_id(name: str, generation: int, parent: pulumi.Resource) -> random.RandomId:
    """A resource replaced when the generation changes, for ``replace_with`` of a provider
    credential that has no name or keeper to vary."""
    return random.RandomId(name, byte_length=4, keepers=keepers(generation),
                           opts=pulumi.ResourceOptions(parent=parent))


def checksum(*secrets: pulumi.Input[str]) -> pulumi.Output[str]:
    """sha256 of secret values, for a pod template annotation that rolls the pods when the value
    changes. Not secret: a digest of high-entropy generated material discloses nothing of it (never
    use it on a low-entropy, human-chosen secret)."""
    digest = pulumi.Output.all(*secrets).apply(lambda v: hashlib.sha256("\0".join(v).encode()).hexdigest())
    return pulumi.Output.unsecret(digest)


def stamp(generation: int, *determinants: str) -> str:
    """A known-at-preview pod annotation for Helm values: changes when the credential is
    regenerated, i.e. with its generation or any other input of its generator (``determinants``)."""
    return "/".join([f"g{generation}", *determinants])
