"""externalTrafficPolicy on the wire: which nodes the load balancer sends to, what the
backend sees, and how evenly the edge nodes share the load."""

from __future__ import annotations

import ipaddress
from collections import Counter

import lab
from tests.dataplane.traffic import NS, Traffic
from tests.e2e.cluster import condition


def test_local_sends_only_to_edge_nodes_with_a_ready_pod(traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(f"local-{unique}")
    topology = traffic.lab.topology
    edges = {n.name for n in topology.edges}
    workers = {n.name for n in topology.workers}

    # The load balancer's own view: health checks pass on exactly the edge nodes.
    svc = traffic.lab.load_balancer()[f"{NS}/{gw.name}"]
    print(f"load balancer health: {svc['nodes']}")
    assert svc["checkPort"] == gw.health_check_node_port
    assert {n for n, h in svc["nodes"].items() if h["healthy"]} == edges
    assert {n for n, h in svc["nodes"].items() if h["last"] == "503"} == workers
    # And kube-proxy's answer on the wire, asked from a client like any other request.
    for node in topology.nodes:
        status, body = traffic.lab.request(
            topology.clients[0].name, node.ip, port=gw.health_check_node_port, path="/healthz"
        )
        print(f"{node.name} healthCheckNodePort: {status} {body.strip()}")
        assert status == (200 if node.name in edges else 503)

    before = traffic.lab.from_internet()
    tally = traffic.many(topology.clients[0].name, gw.address, 500)
    after = traffic.lab.from_internet()
    received = {node: after[node] - before[node] for node in after}
    print(f"{tally}; packets from the internet side per node: {received}")
    assert tally.ok == 500, str(tally)
    assert all(seen["client"] == topology.clients[0].ip for seen in tally.seen)
    assert {node: received[node] for node in workers} == dict.fromkeys(workers, 0)
    assert all(received[node] > 0 for node in edges)


def test_cluster_policy_hides_the_client_and_says_so(traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(f"cluster-{unique}", service={"externalTrafficPolicy": "Cluster"})
    topology = traffic.lab.topology
    obj = traffic.gateways.wait_condition(gw.name, "ClientIPPreserved", "False")
    print(f"ClientIPPreserved: {condition(obj, 'ClientIPPreserved')}")

    # Under Cluster every node with a running kube-proxy passes the check.
    health = traffic.lb_health(gw.name)
    assert health == {n.name: True for n in topology.nodes}, health
    tally = traffic.many(topology.clients[0].name, gw.address, 100)
    print(f"{tally}; backend saw clients {Counter(s['client'] for s in tally.seen)}")
    assert tally.ok == 100, str(tally)
    node_side = [
        ipaddress.ip_network(f"{lab.node_network()}/24"),
        ipaddress.ip_network("10.244.0.0/16"),
    ]
    for seen in tally.seen:
        assert seen["client"] != topology.clients[0].ip
        assert any(ipaddress.ip_address(seen["client"]) in n for n in node_side), seen


def test_two_edge_nodes_share_the_load_evenly(traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(f"spread-{unique}")
    pods = traffic.controller_pod_ips(gw.name)
    assert sorted(pods.values()) == sorted(n.name for n in traffic.lab.topology.edges)

    tally = traffic.many(traffic.lab.topology.clients[1].name, gw.address, 1000)
    served = Counter(pods.get(seen["peer"].split(":")[0], "unknown") for seen in tally.seen)
    print(f"{tally}; served per edge node: {dict(served)}")
    assert tally.ok == 1000, str(tally)
    assert set(served) == set(pods.values())
    for node, count in served.items():
        assert 400 <= count <= 600, f"{node} served {count} of 1000"
