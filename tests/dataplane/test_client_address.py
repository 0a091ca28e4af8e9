"""The client's address on the wire, in each client-IP mode, through real components.

client namespace -> load balancer (nftables DNAT, or HAProxy with PROXY v2, or a CDN
adding X-Forwarded-For) -> edge node nodePort -> kube-proxy -> Traefik pod -> echo
backend on a worker, which reports what it saw.
"""

from __future__ import annotations

import lab
from lab import lb
from tests.dataplane.traffic import FORGED, Traffic


def test_direct_backend_sees_the_client_and_no_forged_header(traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(f"direct-{unique}")
    client = traffic.lab.topology.clients[0]

    seen = traffic.get(
        client.name, gw.address, headers={"X-Forwarded-For": FORGED, "X-Real-Ip": FORGED}
    )
    print(f"backend saw: {seen}")

    assert seen["client"] == client.ip
    assert seen["xRealIp"] == client.ip
    assert seen["xForwardedFor"] == client.ip
    assert FORGED not in seen["xForwardedFor"] + seen["xRealIp"]
    # The peer is the Traefik pod on an edge node, not a node address (no SNAT hop).
    assert seen["peer"].split(":")[0] in traffic.controller_pod_ips(gw.name)


def test_x_forwarded_for_trusted_only_from_the_cdn(traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(
        f"xff-{unique}",
        client_ip={"mode": "XForwardedFor", "trustedCIDRs": [f"{lab.CDN_ADDRESS}/32"]},
    )
    traffic.lab.set_cdn_origin(gw.address)
    via_cdn, direct = traffic.lab.topology.clients[:2]

    # Through the CDN: the CDN appends the client's address; Traefik trusts the CDN.
    seen = traffic.get(via_cdn.name, lab.CDN_ADDRESS)
    print(f"through the CDN the backend saw: {seen}")
    assert seen["client"] == via_cdn.ip
    assert seen["xForwardedFor"].split(", ")[-2:] == [via_cdn.ip, lab.CDN_ADDRESS]

    # Straight to the load balancer with a forged header: not believed.
    seen = traffic.get(
        direct.name, gw.address, headers={"X-Forwarded-For": FORGED, "X-Real-Ip": FORGED}
    )
    print(f"a direct client with a forged X-Forwarded-For: the backend saw {seen}")
    assert seen["client"] == direct.ip
    assert FORGED not in seen["xForwardedFor"] + seen["xRealIp"]


def test_proxy_protocol_from_the_load_balancer_only(traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(
        f"pp-{unique}",
        client_ip={"mode": "ProxyProtocol", "trustedCIDRs": [f"{lab.LB_ADDRESS}/32"]},
        service={"annotations": {lb.MODE_ANNOTATION: "proxy-protocol"}},
    )
    assert traffic.lab.load_balancer()[f"edge-system/{gw.name}"]["mode"] == "proxy-protocol"
    client, other = traffic.lab.topology.clients[:2]

    seen = traffic.get(client.name, gw.address)
    print(f"through the PROXY-protocol load balancer the backend saw: {seen}")
    assert seen["client"] == client.ip
    assert seen["xForwardedFor"] == client.ip

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
