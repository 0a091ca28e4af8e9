"""Probing edge nodes' load-balancer health checks: the verdicts, against real sockets
on 127.0.0.1, and the status and gauge built from them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import REGISTRY

from edge_operator import metrics, names, nodeprobe
from edge_operator.desired import status as rules
from edge_operator.desired.nodes import NodeDecision
from edge_operator.facts import Facts, HealthProbe, NodeFacts, PodFacts
from tests.unit.test_status import SERVING, T0, gw

Target = nodeprobe.Target


class _Health(BaseHTTPRequestHandler):
    """kube-proxy's health check server: 200 with local endpoints, 503 without."""

    code = 200

    def do_GET(self) -> None:
        self.send_response(self.code if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {"code": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_200_is_healthy_and_503_is_not(
    health_server: tuple[ThreadingHTTPServer, type[_Health]],
) -> None:
    server, handler = health_server
    target = Target("n1", "127.0.0.1", server.server_address[1])
    assert asyncio.run(nodeprobe.probe(target, 1.0)) == HealthProbe(
        True, f"127.0.0.1:{target.port}/healthz: HTTP 200"
    )
    handler.code = 503
    answer = asyncio.run(nodeprobe.probe(target, 1.0))
    assert answer.healthy is False
    assert answer.detail.endswith("HTTP 503")


def test_a_refused_connection_fails_the_check() -> None:
    """kube-proxy stopped: the node answers, nothing listens on the port."""
    answer = asyncio.run(nodeprobe.probe(Target("n1", "127.0.0.1", _free_port()), 1.0))
    assert answer.healthy is False
    assert "connection refused" in answer.detail


def test_connected_but_silent_fails_the_check() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = Target("n1", "127.0.0.1", listener.getsockname()[1])
        answer = asyncio.run(nodeprobe.probe(target, 0.3))
    assert answer.healthy is False
    assert "no answer in time" in answer.detail


def test_what_the_operator_cannot_reach_is_unknown_not_unhealthy() -> None:
    target = Target("n1", "10.0.0.1", 31000)
    assert nodeprobe.verdict(target, None, nodeprobe.ConnectTimeoutError(2)).healthy is None
    unreachable = OSError(113, "No route to host")
    assert nodeprobe.verdict(target, None, unreachable) == HealthProbe(
        None, "10.0.0.1:31000/healthz: No route to host"
    )
    assert asyncio.run(nodeprobe.probe(Target("n1", "", 31000), 1)).healthy is None
    assert asyncio.run(nodeprobe.probe(Target("n1", "10.0.0.1", 0), 1)).healthy is None
    assert str(Target("n1", "fd00::1", 31000)) == "[fd00::1]:31000/healthz"


def _node(name: str, holder: str | None = "gw", address: str = "10.0.0.7") -> NodeFacts:
    labels = {names.GATEWAY_LABEL: holder} if holder else {}
    return NodeFacts(name, labels, ready=True, address=address)


def test_targets_are_the_gateways_nodes_at_the_services_health_port() -> None:
    nodes = [_node("a"), _node("b", holder="other"), _node("c", address="10.0.0.9")]
    assert nodeprobe.targets(gw(), nodes, 31514) == [
        Target("a", "10.0.0.7", 31514),
        Target("c", "10.0.0.9", 31514),
    ]
    cluster = gw(service={"externalTrafficPolicy": "Cluster"})
    assert {t.port for t in nodeprobe.targets(cluster, nodes, 31514)} == {10256}


def test_node_address_prefers_internal_ip() -> None:
    raw = {
        "metadata": {"name": "n"},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "n"},
                {"type": "ExternalIP", "address": "198.51.100.7"},
                {"type": "InternalIP", "address": "10.0.0.7"},
            ]
        },
    }
    assert NodeFacts.from_api(raw).address == "10.0.0.7"
    assert NodeFacts.from_api({"metadata": {"name": "n"}}).address == ""


def _status(health: dict[str, HealthProbe] | None, pods: tuple[PodFacts, ...]) -> dict[str, object]:
    nodes = {n: NodeFacts(n, {}, ready=True) for n in ("n1", "n2")}
    facts = Facts(gw(), (), nodes, controller_pods=pods, now=T0, lb_health=health)
    return rules.gateway_status(facts, NodeDecision(selected=("n1", "n2")), True, SERVING)


def _condition(status: dict[str, object]) -> dict[str, str] | None:
    conditions = status["conditions"]
    assert isinstance(conditions, list)
    found = [c for c in conditions if c["type"] == rules.EDGE_NODES_HEALTHY]
    return found[0] if found else None


PODS = (PodFacts("p1", "n1", ready=True), PodFacts("p2", "n2", ready=True))
OK = HealthProbe(True, "10.0.0.1:31514/healthz: HTTP 200")
REFUSED = HealthProbe(False, "10.0.0.2:31514/healthz: connection refused (nothing listens there)")


def test_a_serving_node_that_fails_names_the_node_but_ready_stays() -> None:
    status = _status({"n1": OK, "n2": REFUSED}, PODS)
    cond = _condition(status)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "EdgeNodeUnhealthy")
    assert "n2" in cond["message"]
    assert "n1" not in cond["message"].split("(")[0]
    assert "connection refused" in cond["message"]
    assert status["edgeNodes"] == [
        {"name": "n1", "zone": "", "ready": True, "controllerPods": 1, "loadBalancerHealthy": True},
        {
            "name": "n2",
            "zone": "",
            "ready": True,
            "controllerPods": 1,
            "loadBalancerHealthy": False,
        },
    ]
    assert status["phase"] == "Ready"


def test_a_node_whose_pod_is_leaving_may_fail_without_a_warning() -> None:
    """Under Local kube-proxy fails the check of a node whose pod terminates: by design."""
    leaving = (PodFacts("p1", "n1", ready=True), PodFacts("p2", "n2", True, terminating=True))
    cond = _condition(_status({"n1": OK, "n2": HealthProbe(False, "HTTP 503")}, leaving))
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "HealthChecksPassing")


def test_unreachable_or_unprobed_is_unknown_and_probing_off_shows_nothing() -> None:
    unreachable = HealthProbe(None, "10.0.0.2:31514/healthz: no answer to connect within 2 s")
    status = _status({"n1": OK, "n2": unreachable}, PODS)
    cond = _condition(status)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("Unknown", "HealthCheckUnreachable")
    assert "n2: 10.0.0.2:31514/healthz: no answer" in cond["message"]
    assert "Network reach" in cond["message"]
    edge_nodes = status["edgeNodes"]
    assert isinstance(edge_nodes, list)
    assert "loadBalancerHealthy" not in edge_nodes[1]
    first = _condition(_status({}, PODS))
    assert first is not None
    assert "n1: not probed yet" in first["message"]
    no_pods = _condition(_status({}, ()))
    assert no_pods is not None
    assert no_pods["reason"] == "NoServingEdgeNodes"
    off = _status(None, PODS)
    assert _condition(off) is None
    assert off == _status(None, PODS)
    assert all("loadBalancerHealthy" not in n for n in off["edgeNodes"])  # type: ignore[attr-defined]


def _gauge(gateway: str, node: str) -> float | None:
    return REGISTRY.get_sample_value(
        "edge_operator_edge_node_lb_healthy", {"gateway": gateway, "node": node}
    )


def test_gauge_follows_the_verdicts_and_forgets_nodes_and_gateways() -> None:
    metrics.set_lb_health("g-gauge", {"a": True, "b": False, "c": None})
    assert (_gauge("g-gauge", "a"), _gauge("g-gauge", "b"), _gauge("g-gauge", "c")) == (
        1.0,
        0.0,
        None,
    )
    metrics.set_lb_health("g-gauge", {"b": True})
    assert (_gauge("g-gauge", "a"), _gauge("g-gauge", "b")) == (None, 1.0)
    metrics.forget("g-gauge")
    assert _gauge("g-gauge", "b") is None


def test_prober_probes_on_the_interval_and_reports_only_changes(
    health_server: tuple[ThreadingHTTPServer, type[_Health]],
) -> None:
    """The loop against a real health server: a verdict change queues the gateway once."""
    server, handler = health_server
    gateway = gw(rollout={"loadBalancerHealthCheck": {"intervalSeconds": 1}})
    nodes = {"n1": _node("n1", address="127.0.0.1")}
    changed: list[str] = []

    async def scenario() -> None:
        prober = nodeprobe.Prober(lambda: {"gw": gateway}, lambda: nodes, changed.append)
        prober.service_seen("gw", {"spec": {"healthCheckNodePort": server.server_address[1]}})
        task = asyncio.create_task(prober.run())
        await asyncio.sleep(0.5)
        assert prober.results("gw")["n1"].healthy is True
        assert changed == ["gw"]
        await asyncio.sleep(1.2)  # a second probe, same verdict: nothing queued
        assert changed == ["gw"]
        handler.code = 503
        await asyncio.sleep(1.2)
        assert prober.results("gw")["n1"].healthy is False
        assert changed == ["gw", "gw"]
        task.cancel()

    asyncio.run(scenario())
    metrics.forget("gw")
