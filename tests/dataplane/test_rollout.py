"""Rollouts under load: every request answered while every controller pod is replaced.

The load runs the whole time (tests/dataplane/traffic.disruption: >= 100 requests/s on
new connections, 6 keep-alive connections that are never sent again after a failure,
and slow requests across the old pods' SIGTERM), with the load balancer's health check
set to exactly what the gateway declares. A sampler checks every 100 ms that each edge
node has a ready controller pod, which under externalTrafficPolicy Local is what keeps
the load balancer sending to it.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from edge_operator import names
from tests.dataplane.traffic import NS, Poller, Traffic, disruption, ready
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


def _rollout_under_load(
    traffic: Traffic, name: str, check: dict[str, int], gateway_api: bool = False
) -> None:
    gw = traffic.gateway(name, rollout={"loadBalancerHealthCheck": check}, gateway_api=gateway_api)
    edges = {n.name for n in traffic.lab.topology.edges}
    before = traffic.cluster.deployment(NS, name)["spec"]["template"]["metadata"]["labels"]
    revision = before[names.TEMPLATE_HASH_LABEL]

    with (
        Sampler(traffic, name, edges) as sampler,
        disruption(
            traffic,
            gw,
            f"rollout of 2 edge nodes (health check {check}"
            f"{', HTTPRoute traffic' if gateway_api else ''})",
        ) as window,
    ):
        traffic.gateways.patch(name, {"spec": {"controller": {"extraArgs": ["--log.level=DEBUG"]}}})
        wait_for(lambda: _rolled_out(traffic, name, revision), f"{name} rolled out", timeout=240)
        window.end()
    took = window.ended - window.started
    print(
        f"  rolled out in {took:.1f} s; {sampler.samples} samples at 100 ms,"
        f" {len(sampler.gaps)} without a ready pod on an edge node"
    )
    assert len(window.leaving) == len(edges)  # every old pod left under load
    assert sampler.samples >= took * 5
    assert sampler.gaps == []


def test_argument_change_under_load_drops_nothing(traffic: Traffic, unique: str) -> None:
    _rollout_under_load(traffic, f"roll-{unique}", {"intervalSeconds": 1, "unhealthyThreshold": 2})


def test_slow_load_balancer_rollout_drops_nothing(traffic: Traffic, unique: str) -> None:
    """The load balancer checks every 5 s and acts after 3 results: minReadySeconds is
    20 s, the preStop delay 25 s."""
    _rollout_under_load(traffic, f"slow-{unique}", {"intervalSeconds": 5, "unhealthyThreshold": 3})


def test_without_the_keep_alive_limit_a_rollout_fails_requests_on_reused_connections(
    traffic: Traffic, unique: str
) -> None:
    """The second negative control: the same rollout with Traefik's keepAliveMaxTime set
    back to 0 (off, upstream's default) by controller.extraArgs, which come last and
    win. Keep-alive connections then stay on the old pods until SIGTERM, where
    http.Server.Shutdown closes them while idle, and the next request on each fails."""
    name = f"nokl-{unique}"
    off = [f"--entryPoints.{ep}.transport.keepAliveMaxTime=0s" for ep in ("web", "websecure")]
    gw = traffic.gateway(
        name,
        rollout={"loadBalancerHealthCheck": {"intervalSeconds": 1, "unhealthyThreshold": 2}},
        controller={"extraArgs": off},
    )
    before = traffic.cluster.deployment(NS, name)["spec"]["template"]["metadata"]["labels"]
    revision = before[names.TEMPLATE_HASH_LABEL]
    with traffic.load(gw) as load:
        time.sleep(3)
        started = time.monotonic()
        traffic.gateways.patch(
            name, {"spec": {"controller": {"extraArgs": [*off, "--log.level=DEBUG"]}}}
        )
        wait_for(lambda: _rolled_out(traffic, name, revision), f"{name} rolled out", timeout=240)
        time.sleep(gw.pre_stop)
    results = load.stop()
    reused = [o for o in results.failures if o.kind == "keep-alive" and o.reused]
    print(
        f"negative control, rollout without the keep-alive limit: {results.summary()};"
        f" failed on reused connections at"
        f" {[round(o.at - started, 1) for o in reused]} s after the change"
    )
    assert reused


def test_rollout_under_load_on_httproute_traffic_drops_nothing(
    traffic: Traffic, unique: str
) -> None:
    """The same with every request routed by a Gateway API HTTPRoute (no Ingress)."""
    _rollout_under_load(
        traffic, f"groll-{unique}", {"intervalSeconds": 1, "unhealthyThreshold": 2}, True
    )
