"""The ClientTrafficPolicies (controller.provider envoy-gateway): the client-address
rules of ``clientIP``, compiled for Envoy.

A ClientTrafficPolicy applies to Gateways of its own namespace only (cross-namespace
targets need a ReferenceGrant in every target namespace), so the operator writes one in
each namespace that has Gateways of the gateway's class, naming them (targetRefs), owned
by the EdgeGateway like every object it makes, and deleted with the last such Gateway.

``clientIP.mode: Direct`` (the only mode Envoy Gateway supports here yet): the peer is
the client. Envoy appends the peer's address to the X-Forwarded-For it receives and
passes X-Real-Ip and Forwarded on as sent (seen in the lab at v1.9.1 / Envoy 1.39.3), so
every client-address, scheme-host-port and listed header is removed before Envoy's own
header handling (``earlyRequestHeaders``): X-Forwarded-For then carries the peer alone,
X-Envoy-External-Address is Envoy's own, and X-Forwarded-Proto is set from the
connection. Header names with '_' are dropped (``withUnderscoresAction``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge_operator import api, names
from edge_operator.desired.objects import Owner, metadata
from edge_operator.desired.providers import envoy_gateway

KIND = "ClientTrafficPolicy"
#: Set by the client; removed so that only what Envoy sets reaches a backend.
MANAGED_HEADERS = (
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Real-Ip",
    "Forwarded",
)


def policies(
    owner: Owner, spec: api.EdgeGatewaySpec, gateways: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """One policy per namespace of the class's Gateways (``gateways``: namespace, name)."""
    by_namespace: dict[str, list[str]] = {}
    for namespace, gateway in gateways:
        by_namespace.setdefault(namespace, []).append(gateway)
    removed = [*MANAGED_HEADERS, *spec.client_ip.remove_headers]
    return [
        {
            "apiVersion": names.ENVOY_GATEWAY_API_VERSION,
            "kind": KIND,
            "metadata": metadata(
                owner, envoy_gateway.NAME, names.workload_name(owner.name), namespace
            ),
            "spec": {
                "targetRefs": [
                    {"group": names.GATEWAY_API_GROUP, "kind": "Gateway", "name": gateway}
                    for gateway in sorted(found)
                ],
                "headers": {
                    "withUnderscoresAction": "DropHeader",
                    "earlyRequestHeaders": {"remove": removed},
                },
            },
        }
        for namespace, found in sorted(by_namespace.items())
    ]
