"""The client's address on the wire, in each client-IP mode, through real components.

client namespace -> load balancer (nftables DNAT, or HAProxy with PROXY v2, or a CDN
adding X-Forwarded-For) -> edge node nodePort -> kube-proxy -> Traefik pod -> echo
backend on a worker, which reports every header it received.

Every request carries the forged-header matrix: every client-address header a backend,
framework or CDN reads, claiming FORGED, sent twice, in mixed case and in the aliased
spellings CGI-style backends read as the real names. The rule (api.ClientIP.mode):
FORGED appears in no header a backend receives, but for the X-Forwarded-For chain
that a trusted CDN passes on, whose rightmost entry outside trustedCIDRs is the client.

Each test runs twice: routed by an Ingress of the gateway's IngressClass, and by a
Gateway API HTTPRoute of its GatewayClass (gatewayAPI.enabled), which must be as honest.
"""

from __future__ import annotations

from typing import Any

import pytest

import lab
from edge_operator import api
from lab import lb
from tests.dataplane.traffic import FORGED, ROUTE_HEADER, Traffic

HOST = "gateway.example"
#: What a client sends to pass for FORGED, and to pass its request for HTTPS.
MATRIX: tuple[tuple[str, str], ...] = (
    ("X-Forwarded-For", FORGED),
    ("X-Forwarded-For", f"{FORGED}, 10.0.0.1"),
    ("x-forwarded-for", FORGED),
    ("X-Real-Ip", FORGED),
    ("X-REAL-IP", FORGED),
    ("Forwarded", f"for={FORGED};proto=https;host={FORGED}"),
    ("forwarded", f'for="{FORGED}:4711"'),
    ("X.Forwarded.For", FORGED),
    ("X_Forwarded_For", FORGED),
    ("X_Real_IP", FORGED),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", FORGED),
    ("X-Forwarded-Port", "4711"),
    ("X_Forwarded_Proto", "https"),
    *((name, FORGED) for name in api.DEFAULT_REMOVE_HEADERS),
    ("true-client-ip", FORGED),
    ("CF-CONNECTING-IP", FORGED),
)
#: Names the matrix sends that a backend must never see, whatever the mode.
NEVER = {"forwarded", *(h.lower() for h in api.DEFAULT_REMOVE_HEADERS)}


@pytest.fixture(params=["ingress", "httproute"])
def routes(request: pytest.FixtureRequest) -> str:
    """What routes the requests: an Ingress, or a Gateway API HTTPRoute."""
    kind: str = request.param
    return kind


def _lines(seen: dict[str, Any]) -> dict[str, list[str]]:
    """Header name (lower case) -> every line's value, as the backend got them."""
    got: dict[str, list[str]] = {}
    for name, values in seen["headers"].items():
        got.setdefault(name.lower(), []).extend(values)
    return got


def _honest(
    seen: dict[str, Any], client: str, *, via_cdn: bool = False, real_ip: bool = True
) -> list[str]:
    """Everything wrong with what the backend saw (empty: honest)."""
    wrong = []
    got = _lines(seen)
    for name, values in got.items():
        if "_" in name or "." in name:
            wrong.append(f"aliased name {name}: {values}")
        if name in NEVER:
            wrong.append(f"{name} reached the backend: {values}")
        if name != "x-forwarded-for" and any(FORGED in v for v in values):
            wrong.append(f"{name} carries the forged address: {values}")
    xff = got.get("x-forwarded-for", [])
    if len(xff) != 1:
        wrong.append(f"X-Forwarded-For must be one line: {xff}")
    elif via_cdn:
        if xff[0].split(", ")[-2:] != [client, lab.CDN_ADDRESS]:
            wrong.append(f"X-Forwarded-For must end with the client and the CDN: {xff}")
    elif xff != [client]:
        wrong.append(f"X-Forwarded-For must be the client alone: {xff}")
    want_real_ip = [client] if real_ip else []
    if got.get("x-real-ip", []) != want_real_ip:
        wrong.append(f"X-Real-Ip must be {want_real_ip}: {got.get('x-real-ip')}")
    for name, want in (
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", HOST),
        ("x-forwarded-port", "80"),
    ):
        if got.get(name) != [want]:
            wrong.append(f"{name} must be {want}: {got.get(name)}")
    if seen["client"] != client:
        wrong.append(f"the backend takes {seen['client']} for the client, not {client}")
    return wrong


def _report(what: str, seen: dict[str, Any], wrong: list[str], gw: str, routes: str) -> None:
    """Print what the backend got; count it wrong unless the expected route sent it."""
    got = _lines(seen)
    routed = got.get(ROUTE_HEADER.lower()) == [gw]
    if routed != (routes == "httproute"):
        wrong.append(f"routed by {'the HTTPRoute' if routed else 'the Ingress'}, not {routes}")
    what = f"{what} ({routes})"
    shown = {
        name: got.get(name.lower())
        for name in ("X-Forwarded-For", "X-Real-Ip", "X-Forwarded-Proto", "X-Forwarded-Host")
    }
    print(f"{what}: {len(MATRIX)} forged lines sent; the backend got {shown}; wrong: {wrong}")


def test_direct_backend_sees_the_client_and_no_forged_header(
    traffic: Traffic, unique: str, routes: str
) -> None:
    gw = traffic.gateway(f"direct-{unique}", gateway_api=routes == "httproute")
    client = traffic.lab.topology.clients[0]

    seen = traffic.raw_get(client.name, gw.address, MATRIX, host_header=HOST)
    wrong = _honest(seen, client.ip)
    _report("Direct, through the load balancer", seen, wrong, gw.name, routes)
    assert wrong == []
    # The peer is the Traefik pod on an edge node, not a node address (no SNAT hop).
    assert seen["peer"].split(":")[0] in traffic.controller_pod_ips(gw.name)


def test_x_forwarded_for_trusted_only_from_the_cdn(
    traffic: Traffic, unique: str, routes: str
) -> None:
    gw = traffic.gateway(
        f"xff-{unique}",
        gateway_api=routes == "httproute",
        client_ip={"mode": "XForwardedFor", "trustedCIDRs": [f"{lab.CDN_ADDRESS}/32"]},
    )
    traffic.lab.set_cdn_origin(gw.address)
    via_cdn, direct = traffic.lab.topology.clients[:2]

    # Through the CDN: it appends the client's address, sets X-Forwarded-Proto and drops
    # X-Forwarded-Host/-Port as a CDN does, and passes every other line on; Traefik
    # trusts the CDN's chain, and nothing else the client wrote.
    seen = traffic.raw_get(via_cdn.name, lab.CDN_ADDRESS, MATRIX, host_header=HOST)
    wrong = _honest(seen, via_cdn.ip, via_cdn=True, real_ip=False)
    _report("XForwardedFor, through the CDN", seen, wrong, gw.name, routes)
    assert wrong == []

    # Straight to the load balancer: a peer outside trustedCIDRs, believed in nothing.
    seen = traffic.raw_get(direct.name, gw.address, MATRIX, host_header=HOST)
    wrong = _honest(seen, direct.ip, real_ip=False)
    _report("XForwardedFor, straight to the load balancer", seen, wrong, gw.name, routes)
    assert wrong == []


def test_proxy_protocol_from_the_load_balancer_only(
    traffic: Traffic, unique: str, routes: str
) -> None:
    gw = traffic.gateway(
        f"pp-{unique}",
        gateway_api=routes == "httproute",
        client_ip={"mode": "ProxyProtocol", "trustedCIDRs": [f"{lab.LB_ADDRESS}/32"]},
        service={"annotations": {lb.MODE_ANNOTATION: "proxy-protocol"}},
    )
    assert traffic.lab.load_balancer()[f"edge-system/{gw.name}"]["mode"] == "proxy-protocol"
    client, other = traffic.lab.topology.clients[:2]

    seen = traffic.raw_get(client.name, gw.address, MATRIX, host_header=HOST)
    wrong = _honest(seen, client.ip)
    _report("ProxyProtocol, through the PROXY-protocol load balancer", seen, wrong, gw.name, routes)
    assert wrong == []

    # A peer outside trustedCIDRs (a client reaching an edge node's nodePort) sends
    # its own PROXY header claiming to be FORGED.
    edge = traffic.lab.topology.edges[0]
    forged_header = f"PROXY TCP4 {FORGED} {edge.ip} 40000 80\r\n".encode()
    request = b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = traffic.lab.raw(other.name, edge.ip, gw.node_ports["http"], forged_header + request)
    print(f"a forged PROXY header from {other.ip}: {answer[:400]!r}")
    assert FORGED.encode() not in answer
    if answer.startswith(b"HTTP/1.1 200"):
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert other.ip.encode() in body
