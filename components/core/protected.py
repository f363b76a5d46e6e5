"""A grouping component whose children are protected.

Pulumi children inherit ``protect`` from their parent (pulumi/resource.py: "Infer protection
from parent"). Parenting irreplaceable things (a stateful namespace, the Helm release of a
database) to an ``IrreplaceableState`` protects them even when they are created by shared
helpers that take no resource options, such as ``components.core.common.helm_release``.

A protected resource cannot be deleted or replaced by ``pulumi up``/``destroy`` until someone
runs ``pulumi state unprotect`` on purpose.
"""

from __future__ import annotations

import pulumi


class IrreplaceableState(pulumi.ComponentResource):
    def __init__(self, name: str, parent: pulumi.Resource):
        super().__init__(
            "weebo:kubernetes:IrreplaceableState",
            name,
            None,
            pulumi.ResourceOptions(parent=parent, protect=True),
        )
        self.register_outputs({})
