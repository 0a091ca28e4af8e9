"""The gateway's GatewayClass (cluster-scoped, gatewayAPI.enabled), naming the provider's
controller.

The class is the gateway's like every object it makes: its labels, its ownerReference
(deleted with the gateway), and deleted when gatewayAPI.enabled goes false. The
provider's controller serves exactly this class: it selects classes by the gateway's
label (Traefik's kubernetesGateway labelSelector).

Apply policy: ``spec.controllerName`` is immutable, so a provider switch deletes the
class and creates it again (RECREATE).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edge_operator import api, names
from edge_operator.desired.objects import Owner, metadata
from edge_operator.facts import GatewayFacts

RECREATE = frozenset({"GatewayClass"})
#: GatewayClass spec.description's maxLength (gateway.networking.k8s.io/v1).
MAX_DESCRIPTION = 64


def name(owner: Owner, spec: api.EdgeGatewaySpec) -> str:
    return spec.gateway_api.gateway_class_name or owner.name


def gateway_class(
    owner: Owner,
    spec: api.EdgeGatewaySpec,
    controller: str,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The class; ``parameters`` its spec.parametersRef (Envoy Gateway: the EnvoyProxy)."""
    meta = metadata(owner, spec.controller.provider, name(owner, spec))
    meta["labels"][names.SERVED_BY_LABEL] = owner.name
    body: dict[str, Any] = {"controllerName": controller, "description": description(owner.name)}
    if parameters:
        body["parametersRef"] = dict(parameters)
    return {
        "apiVersion": names.GATEWAY_API_VERSION,
        "kind": "GatewayClass",
        "metadata": meta,
        "spec": body,
    }


def description(gateway: str) -> str:
    """Names the EdgeGateway, in the 64 bytes the API allows (a gateway's name may have 63)."""
    for text in (
        f"Gateways served from the edge nodes of EdgeGateway {gateway}",
        f"Edge nodes of EdgeGateway {gateway}",
    ):
        if len(text) <= MAX_DESCRIPTION:
            return text
    return "Served from the edge nodes of the EdgeGateway in its labels"


def serving(gateways: Iterable[GatewayFacts], class_name: str | None = None) -> list[str]:
    """The gateways with gatewayAPI on (that serve ``class_name``, when given): those a
    Gateway API CRD coming or going, or a Gateway of the class changing, concerns."""
    return sorted(
        gw.name
        for gw in gateways
        if gw.spec is not None
        and gw.spec.gateway_api.enabled
        and (class_name is None or name(Owner(gw.name, gw.uid), gw.spec) == class_name)
    )
