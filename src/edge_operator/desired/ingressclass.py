"""The gateway's IngressClass (cluster-scoped), naming the provider's controller.

Apply policy: ``spec.controller`` is immutable, so a provider switch deletes the class
and creates it again (RECREATE).
"""

from __future__ import annotations

from typing import Any

from edge_operator import api, names
from edge_operator.desired.objects import Owner, metadata

RECREATE = frozenset({"IngressClass"})


def name(owner: Owner, spec: api.EdgeGatewaySpec) -> str:
    return spec.controller.ingress_class.name or owner.name


def ingress_class(owner: Owner, spec: api.EdgeGatewaySpec, controller: str) -> dict[str, Any]:
    default = spec.controller.ingress_class.default
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": metadata(
            owner,
            spec.controller.provider,
            name(owner, spec),
            annotations={names.DEFAULT_CLASS_ANNOTATION: "true"} if default else None,
        ),
        "spec": {"controller": controller},
    }
