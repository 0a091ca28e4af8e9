"""Per-node load-balancer health, as the operator probes it, against real kube-proxies.

kube-proxy answers the Service's healthCheckNodePort on every node; stopping it on one
edge node makes that node fail the load balancer's health check although its
controller pod still runs. The gateway's status must name that node within two probe
intervals, the gauge must drop, and both must recover when kube-proxy is back. The load
runs the whole time: kube-proxy's rules stay in place while it is stopped, so the node
keeps forwarding until the load balancer drops it, and not one request may fail.
"""

from __future__ import annotations

import time
from typing import Any

from tests.dataplane.operator_pod import ChartOperator
from tests.dataplane.traffic import (
    FAST_CHECK,
    Traffic,
    assert_steady,
)
from tests.e2e.cluster import condition, wait_for
from tests.e2e.test_operations import samples

HEALTHY = "EdgeNodesHealthy"


def _node_health(obj: dict[str, Any]) -> dict[str, bool | None]:
    return {
        n["name"]: n.get("loadBalancerHealthy") for n in obj.get("status", {}).get("edgeNodes", [])
    }


def _gauge(operator: ChartOperator, gateway: str) -> dict[str, float]:
    """Node -> edge_operator_edge_node_lb_healthy of the gateway, from /metrics."""
    return {
        dict(labels)["node"]: value
        for (name, labels), value in samples(operator).items()
        if name == "edge_operator_edge_node_lb_healthy" and dict(labels)["gateway"] == gateway
    }


def test_kube_proxy_stopped_on_an_edge_node_is_named_and_recovers(
    traffic: Traffic, operator: ChartOperator, unique: str
) -> None:
    name = f"hc-{unique}"
    gw = traffic.gateway(name)
    edges = sorted(n.name for n in traffic.lab.topology.edges)
    interval = FAST_CHECK["intervalSeconds"]
    all_healthy = dict.fromkeys(edges, True)

    def passing() -> dict[str, Any] | None:
        obj = traffic.gateways.get(name)
        cond = condition(obj, HEALTHY) or {}
        return obj if cond.get("status") == "True" and _node_health(obj) == all_healthy else None

    wait_for(passing, f"{name}: every edge node passing its health check", timeout=30)
    assert _gauge(operator, name) == dict.fromkeys(edges, 1.0)
    victim = edges[0]

    with traffic.load(gw) as load:
        time.sleep(2)
        traffic.lab.stop_daemon(victim, "kube-proxy")
        stopped = time.monotonic()
        try:

            def named() -> dict[str, Any] | None:
                obj = traffic.gateways.get(name)
                cond = condition(obj, HEALTHY) or {}
                failing = cond.get("status") == "False" and victim in cond.get("message", "")
                return obj if failing and _node_health(obj)[victim] is False else None

            obj = wait_for(named, f"{name}: status naming {victim}", timeout=30, interval=0.05)
            noticed = time.monotonic() - stopped
            cond = condition(obj, HEALTHY) or {}
            gauge = _gauge(operator, name)
            lb_dropped = wait_for(
                lambda: traffic.lb_health(name).get(victim) is False or None,
                f"the load balancer dropping {victim}",
                timeout=30,
            )
            time.sleep(3)  # traffic to the other edge node only, for a while
        finally:
            traffic.lab.start_daemon(victim, "kube-proxy")
        restarted = time.monotonic()
        wait_for(passing, f"{name}: {victim} passing again", timeout=60, interval=0.1)
        recovered = time.monotonic() - restarted
        gauge_back = _gauge(operator, name)
        traffic.wait_healthy(name, set(edges))
        back = time.monotonic()
        time.sleep(2)
    results = load.stop()
    print(
        f"kube-proxy stopped on {victim}: status named it after {noticed:.2f} s (probe interval"
        f" {interval} s): {cond.get('reason')}: {cond.get('message')}; gauge {gauge};"
        f" recovered {recovered:.2f} s after kube-proxy started again;"
        f" load: {results.summary(stopped, back)}"
    )
    assert noticed <= 2 * interval
    assert cond["reason"] == "EdgeNodeUnhealthy"
    assert gauge == {**dict.fromkeys(edges, 1.0), victim: 0.0}
    assert lb_dropped
    assert gauge_back == dict.fromkeys(edges, 1.0)
    assert condition(traffic.gateways.get(name), "Ready")["status"] == "True"  # type: ignore[index]
    assert_steady(results, stopped, back)
    assert [(o.kind, o.reused, o.error) for o in results.failures] == []
