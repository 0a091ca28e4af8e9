"""The gateway's IngressClass (cluster-scoped), naming the provider's controller, and
with spec.ingressNGINX the class of the Ingresses written for ingress-nginx, made only
when no class of that name exists (plan() leaves an existing one alone).

Apply policy: ``spec.controller`` is immutable, so a provider switch deletes the class
and creates it again (RECREATE).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge_operator import api, names
from edge_operator.desired.objects import Key, Owner, metadata
from edge_operator.facts import GatewayFacts

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


def ingress_nginx_class(owner: Owner, spec: api.EdgeGatewaySpec, controller: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": metadata(
            owner, spec.controller.provider, spec.ingress_nginx.ingress_class_name
        ),
        "spec": {"controller": controller},
    }


def ingress_nginx_key(spec: api.EdgeGatewaySpec) -> Key | None:
    """The key of the ingress-nginx class the gateway would make (None: it makes none)."""
    if not spec.ingress_nginx.enabled:
        return None
    return Key("IngressClass", "", spec.ingress_nginx.ingress_class_name)


def serving_ingress_nginx(gateways: Iterable[GatewayFacts], class_name: str) -> list[str]:
    """The gateways with ingressNGINX on for ``class_name``: an IngressClass of that name
    coming or going (made by someone else) changes whether they make it."""
    return sorted(
        gw.name
        for gw in gateways
        if gw.spec is not None
        and gw.spec.ingress_nginx.enabled
        and gw.spec.ingress_nginx.ingress_class_name == class_name
    )
