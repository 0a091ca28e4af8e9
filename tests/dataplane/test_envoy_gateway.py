"""controller.provider envoy-gateway on the lab's real nodes: the cluster's Envoy Gateway
(v1.9.1, from its chart, images built here) provisions Envoy on the edge nodes from what
the operator writes, and a Gateway + HTTPRoute of the gateway's class is served from a
client namespace through the load balancer, with the client's address kept and every
forged client-address header removed.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

import lab
from edge_operator import api
from lab import envoy_gateway as eg
from tests.dataplane.traffic import FAST_CHECK, FORGED, Traffic, lb_annotations
from tests.e2e.cluster import condition, wait_for

#: What a client forges: every header that names a client address.
FORGED_HEADERS = {
    "X-Forwarded-For": FORGED,
    "X-Real-Ip": FORGED,
    "Forwarded": f"for={FORGED}",
    "X-Forwarded-Host": "forged.example",
    "X-Forwarded-Port": "1234",
    "True-Client-IP": FORGED,
    "X-Client-IP": FORGED,
}


@pytest.fixture(scope="module")
def envoy_gateway_installed(running_lab: lab.Lab) -> Iterator[dict[str, Any]]:
    """Envoy Gateway's control plane and the lab's cluster DNS, for this module only."""
    try:
        dns = eg.cluster_dns(running_lab)
        address = eg.install(running_lab)
        yield {"dns": dns, "xds": address}
    finally:
        eg.uninstall(running_lab)


def test_a_gateway_of_the_class_keeps_the_client_address_and_no_forged_header(
    traffic: Traffic, envoy_gateway_installed: dict[str, Any], unique: str
) -> None:
    name = f"envoy-{unique}"
    check = api.LoadBalancerHealthCheck.model_validate(FAST_CHECK)
    traffic.gateways.create(
        name,
        {
            "nodes": {"selector": {"matchLabels": {"nodepool": "edge"}}},
            "controller": {"provider": "envoy-gateway"},
            "gatewayAPI": {"enabled": True},
            "service": {"annotations": lb_annotations(check, None)},
            "rollout": {"loadBalancerHealthCheck": FAST_CHECK},
        },
    )
    traffic.http_route(name)

    def ready() -> dict[str, Any] | None:
        obj = traffic.gateways.get(name)
        return obj if (condition(obj, "Ready") or {}).get("status") == "True" else None

    obj = wait_for(ready, f"{name} Ready", timeout=180)
    [address] = [a["value"] for a in obj["status"]["addresses"]]
    # One Envoy per edge node, read back from what Envoy Gateway made.
    edge = {n.name for n in traffic.lab.topology.nodes if n.pool == "edge"}
    assert {n["name"]: n["controllerPods"] for n in obj["status"]["edgeNodes"]} == dict.fromkeys(
        edge, 1
    )
    client = traffic.lab.topology.clients[0]
    seen = wait_for(lambda: _seen(traffic, client.name, address), "Envoy answers", timeout=60)
    assert seen["client"] == client.ip
    headers = seen["headers"]
    assert headers["X-Forwarded-For"] == [client.ip], headers
    for forged in ("X-Real-Ip", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Port",
                   "True-Client-IP", "X-Client-IP"):  # fmt: skip
        assert forged not in headers, (forged, headers)
    print(
        f"Envoy Gateway {eg.VERSION}, Envoy {eg.ENVOY_VERSION}: {name} at {address}; from"
        f" {client.ip} with {len(FORGED_HEADERS)} forged headers, the backend got client"
        f" {seen['client']}, X-Forwarded-For {headers['X-Forwarded-For']}, no other; memory:"
        f" {eg.memory(traffic.lab)}"
    )


def _seen(traffic: Traffic, client: str, address: str) -> dict[str, Any] | None:
    """What echo saw of one forged request (None while Envoy does not answer it yet)."""
    try:
        status, body = traffic.lab.request(client, address, headers=FORGED_HEADERS)
    except (OSError, http.client.HTTPException):
        return None
    if status != 200 or not body.startswith("{"):
        return None
    got: dict[str, Any] = json.loads(body)
    return got
