"""Gateway API through real Traefik on the edge nodes: the EdgeGateway's GatewayClass
accepted, a Gateway of it programmed with the load balancer's address, an HTTPRoute of
it served from a client namespace, and a listener on a port the Service does not expose
refused by Traefik and named on the EdgeGateway.

The client address and the forged-header matrix through an HTTPRoute are in
test_client_address.py, a rollout under load on HTTPRoute traffic in test_rollout.py.
"""

from __future__ import annotations

from typing import Any

import lab
from tests.dataplane.traffic import GATEWAY_API, ROUTE_HEADER, Traffic
from tests.e2e.cluster import condition, wait_for


def _gateway(traffic: Traffic, name: str) -> dict[str, Any]:
    got: dict[str, Any] = traffic.cluster.custom.get_namespaced_custom_object(
        GATEWAY_API, "v1", lab.APPS, "gateways", name
    )
    return got


def test_traefik_serves_the_class_and_refuses_a_listener_on_another_port(
    traffic: Traffic, unique: str
) -> None:
    name = f"gapi-{unique}"
    gw = traffic.gateway(name, gateway_api=True)
    obj = traffic.gateways.get(name)
    ready = condition(obj, "GatewayAPIReady")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "Accepted"), ready
    assert obj["status"]["gatewayClassName"] == name
    assert obj["status"]["gatewaysProgrammed"] == 1
    gateway = _gateway(traffic, name)
    assert gateway["status"]["addresses"] == [{"type": "IPAddress", "value": gw.address}]

    client = traffic.lab.topology.clients[0]
    seen = traffic.get(client.name, gw.address)
    assert seen["headers"].get(ROUTE_HEADER) == [name], seen["headers"]
    assert seen["client"] == client.ip

    # Listeners on ports the Service does not expose: on 8090 Traefik has no entry point
    # and refuses it on the Gateway's status; on 8080 it has one (the pod's internal ping
    # entry point) and accepts it, but the load balancer never sends there. The
    # EdgeGateway names both (a warning: still Ready).
    other = f"{name}-other"
    traffic.cluster.custom.create_namespaced_custom_object(
        GATEWAY_API, "v1", lab.APPS, "gateways",
        {"apiVersion": f"{GATEWAY_API}/v1", "kind": "Gateway",
         "metadata": {"name": other, "namespace": lab.APPS},
         "spec": {"gatewayClassName": name,
                  "listeners": [{"name": "alt", "protocol": "HTTP", "port": 8090},
                                {"name": "ping", "protocol": "HTTP", "port": 8080}]}},
    )  # fmt: skip
    traffic.routes.append(other)

    def refused() -> dict[str, Any] | None:
        listeners = (_gateway(traffic, other).get("status") or {}).get("listeners") or []
        for listener in listeners:
            for cond in listener.get("conditions") or []:
                if cond["type"] == "Accepted" and cond["status"] == "False":
                    return dict(cond)
        return None

    cond = wait_for(refused, f"Traefik refuses the listener of {other}", timeout=60)
    print(f"Traefik on the listener on 8090: {cond['reason']}: {cond['message']}")
    assert cond["reason"] == "PortUnavailable"
    obj = traffic.gateways.wait_condition(
        name, "GatewayListenersAccepted", "False", "ListenerNotAccepted"
    )
    message = condition(obj, "GatewayListenersAccepted")["message"]  # type: ignore[index]
    print(f"EdgeGateway {name}: {message}")
    assert f"{lab.APPS}/{other} listener alt (PortUnavailable" in message
    assert f"{lab.APPS}/{other} listener ping (PortNotExposed" in message
    assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]
