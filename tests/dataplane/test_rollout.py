"""Rollouts under load: every request answered while every controller pod is replaced.

The load runs the whole time (half keep-alive, half new connections, >= 50 requests/s)
and counts every failure; a sampler checks every 100 ms that each edge node has a
ready controller pod, which under externalTrafficPolicy Local is what keeps the load
balancer sending to it.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from edge_operator import names
from lab.load import Load
from tests.dataplane.traffic import NS, Poller, Traffic, ready
from tests.e2e.cluster import wait_for


class Sampler(Poller):
    """Every 100 ms: the edge nodes without a ready, non-terminating controller pod."""

    def __init__(self, traffic: Traffic, gateway: str, edges: set[str]) -> None:
        super().__init__()
        self.traffic, self.gateway, self.edges = traffic, gateway, edges
        self.samples = 0
        self.gaps: list[tuple[float, set[str]]] = []

    def poll(self) -> bool:
        try:
            pods = self.traffic.controller_pods(self.gateway)
        except ApiException:
            return False
        serving = {
            p["spec"].get("nodeName")
            for p in pods
            if not p["metadata"].get("deletionTimestamp") and ready(p)
        }
        self.samples += 1
        if missing := self.edges - serving:
            self.gaps.append((time.monotonic(), missing))
        return False


def _rolled_out(traffic: Traffic, name: str, revision: str) -> dict[str, Any] | None:
    """The Deployment once every pod is of the new revision and available."""
    deploy = traffic.cluster.deployment(NS, name)
    status = deploy.get("status") or {}
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    pods = traffic.controller_pod_ips(name)
    all_pods = traffic.controller_pods(name)
    done = (
        labels[names.TEMPLATE_HASH_LABEL] != revision
        and status.get("observedGeneration") == deploy["metadata"]["generation"]
        and status.get("updatedReplicas") == status.get("availableReplicas") == len(pods)
        and len(all_pods) == len(pods)
        and all(
            p["metadata"]["labels"][names.TEMPLATE_HASH_LABEL] == labels[names.TEMPLATE_HASH_LABEL]
            for p in all_pods
        )
    )
    return deploy if done else None


def _rollout_under_load(traffic: Traffic, name: str, check: dict[str, int]) -> None:
    gw = traffic.gateway(name, rollout={"loadBalancerHealthCheck": check})
    edges = {n.name for n in traffic.lab.topology.edges}
    before = traffic.cluster.deployment(NS, name)["spec"]["template"]["metadata"]["labels"]
    revision = before[names.TEMPLATE_HASH_LABEL]
    drain = check["intervalSeconds"] * (check["unhealthyThreshold"] + 1)

    with (
        Load(traffic.lab.topology.clients[0].name, gw.address, rate=60) as load,
        Sampler(traffic, name, edges) as sampler,
    ):
        time.sleep(2)
        traffic.gateways.patch(name, {"spec": {"controller": {"extraArgs": ["--log.level=DEBUG"]}}})
        started = time.monotonic()
        wait_for(lambda: _rolled_out(traffic, name, revision), f"{name} rolled out", timeout=180)
        took = time.monotonic() - started
        # Old pods are gone from the API; let their connections and the load balancer's
        # view settle for one more drain period under load.
        time.sleep(drain)
    results = load.stop()
    print(
        f"rollout of 2 edge nodes in {took:.1f} s (health check {check}): {results.summary()};"
        f" {sampler.samples} samples at 100 ms, {len(sampler.gaps)} without a ready pod on an"
        f" edge node"
    )
    assert results.rate >= 50
    assert [(round(f.at - started, 2), f.kind, f.connection) for f in results.failures] == []
    assert sampler.samples >= took * 5
    assert sampler.gaps == []


def test_argument_change_under_load_drops_nothing(traffic: Traffic, unique: str) -> None:
    _rollout_under_load(traffic, f"roll-{unique}", {"intervalSeconds": 1, "unhealthyThreshold": 2})


def test_slow_load_balancer_rollout_drops_nothing(traffic: Traffic, unique: str) -> None:
    """The load balancer checks every 5 s and acts after 3 results: drain is 20 s."""
    _rollout_under_load(traffic, f"slow-{unique}", {"intervalSeconds": 5, "unhealthyThreshold": 3})
