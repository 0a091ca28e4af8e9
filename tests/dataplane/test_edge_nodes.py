"""Edge nodes and pods that come and go under load: drained, taken out of the selection,
added, deleted, a pod deleted by hand; and the same drain with a load balancer slower
than the gateway declares, which must fail requests (the harness is not blind).

The load runs the whole time (tests/dataplane/traffic.disruption: >= 100 requests/s on
new connections, 6 keep-alive connections never sent again after a failure, slow
requests across the leaving pod's SIGTERM) through the lab's load balancer, whose health
check is what the gateway declares and which honours the exclusion label only after a
deregistration delay (15 s), so a drain is seen by the health checks first. Every
failure counts, 404s included. A watcher notes every 50 ms when the load balancer stops
sending to a node and when that node's controller pod is gone, so a test can say which
came first.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

from kubernetes.client.exceptions import ApiException

import lab
from edge_operator import names
from tests.dataplane.traffic import FAST_CHECK, NS, Poller, Traffic, disruption, ready
from tests.e2e.cluster import condition, wait_for


class Watcher(Poller):
    """When the load balancer stopped sending to ``node``, and when the gateway's
    controller pods on it were all gone (deleted from the API: their containers ended)."""

    period = 0.05

    def __init__(self, traffic: Traffic, gateway: str, node: str) -> None:
        super().__init__()
        self.traffic, self.gateway, self.node = traffic, gateway, node
        self.excluded_at: float | None = None
        self.pods_gone_at: float | None = None
        #: When the Node object was gone (for a test that deletes it).
        self.node_gone_at: float | None = None

    def poll(self) -> bool:
        now = time.monotonic()
        if self.excluded_at is None and not self.traffic.lb_health(self.gateway).get(self.node):
            self.excluded_at = now
        with suppress(ApiException):
            if self.node_gone_at is None and not _node_exists(self.traffic, self.node):
                self.node_gone_at = now
        with suppress(ApiException):
            if self.pods_gone_at is None and not _pods_on(self.traffic, self.gateway, self.node):
                self.pods_gone_at = now
        return False

    def left_first(self, since: float, event: str) -> str:
        """Check that the load balancer stopped sending before the pods were gone; say
        when each happened, in seconds after ``since`` (the ``event``)."""
        assert self.excluded_at is not None
        assert self.pods_gone_at is not None
        assert self.excluded_at < self.pods_gone_at
        return (
            f"load balancer stopped sending {self.excluded_at - since:.2f} s after the {event},"
            f" the pod was gone after {self.pods_gone_at - since:.2f} s"
        )


def _pods_on(traffic: Traffic, gateway: str, node: str) -> list[dict[str, Any]]:
    return [p for p in traffic.controller_pods(gateway) if p["spec"].get("nodeName") == node]


def _evict_through_the_pdb(traffic: Traffic, gateway: str, node: str) -> int:
    """`kubectl drain` after its cordon: evict each controller pod on the node, retrying
    while the PodDisruptionBudget refuses (429). Returns the number of refusals."""
    refused = 0
    for pod in _pods_on(traffic, gateway, node):
        body = {"metadata": {"name": pod["metadata"]["name"], "namespace": NS}}
        while True:
            try:
                traffic.cluster.core.create_namespaced_pod_eviction(
                    pod["metadata"]["name"], NS, body
                )
                break
            except ApiException as error:
                if error.status != 429:
                    raise
                refused += 1
                time.sleep(1)
    return refused


def _node_exists(traffic: Traffic, node: str) -> bool:
    try:
        traffic.cluster.node(node)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _serving_on(traffic: Traffic, gateway: str) -> set[str]:
    return set(traffic.controller_pod_ips(gateway).values())


class FirstAnswer(Poller):
    """The first answer of a controller pod on ``node``, asked the moment it turns Ready
    (polled every 20 ms), straight at the pod from its node: Ready must mean routes."""

    period = 0.02

    def __init__(self, traffic: Traffic, gateway: str, node: str) -> None:
        super().__init__()
        self.traffic, self.gateway, self.node = traffic, gateway, node
        self.status: int | None = None
        self.pod = ""

    def poll(self) -> bool:
        for pod in _pods_on(self.traffic, self.gateway, self.node):
            if ready(pod):
                self.pod = pod["metadata"]["name"]
                self.status = self._ask(pod["status"]["podIP"])
                return True
        return False

    def _ask(self, ip: str) -> int:
        status, _ = lab.net.call_in(self.node, lambda: lab.http_get(ip, 8000, "/json", timeout=2))
        return status


def test_drained_edge_node_leaves_the_load_balancer_first_and_comes_back(
    traffic: Traffic, unique: str
) -> None:
    name = f"drain-{unique}"
    gw = traffic.gateway(name)
    edges = sorted(n.name for n in traffic.lab.topology.edges)
    victim = edges[0]
    core = traffic.cluster.core

    with (
        Watcher(traffic, name, victim) as watcher,
        disruption(traffic, gw, f"{victim} cordoned and drained") as window,
    ):
        core.patch_node(victim, {"spec": {"unschedulable": True}})
        refused = _evict_through_the_pdb(traffic, name, victim)
        wait_for(lambda: watcher.pods_gone_at, f"the controller pod on {victim} gone", 120)
        window.end()
        labels = traffic.cluster.node(victim)["metadata"]["labels"]
        time.sleep(2)
        core.patch_node(victim, {"spec": {"unschedulable": False}})
        uncordoned = time.monotonic()
        wait_for(
            lambda: victim in _serving_on(traffic, name), f"a ready pod on {victim} again", 120
        )
        traffic.wait_healthy(name, set(edges))
        back = time.monotonic() - uncordoned
        after = traffic.cluster.node(victim)["metadata"]["labels"]
    print(
        f"  {watcher.left_first(window.started, 'cordon')} ({refused} evictions refused by"
        f" the PDB); serving again {back:.1f} s after the uncordon"
    )
    assert labels[names.EXCLUDE_LB_LABEL] == "true"
    assert names.EXCLUDE_LB_LABEL not in after


def test_edge_node_out_of_the_selection_and_a_new_one_in(traffic: Traffic, unique: str) -> None:
    name = f"sel-{unique}"
    edges = sorted(n.name for n in traffic.lab.topology.edges)
    gw = traffic.gateway(name, nodes=edges)
    leaving, staying = edges

    with (
        Watcher(traffic, name, leaving) as watcher,
        disruption(traffic, gw, f"{leaving} out of the selection") as window,
    ):
        traffic.gateways.patch(name, {"spec": {"nodes": {"names": [staying]}}})
        wait_for(lambda: watcher.pods_gone_at, f"the controller pod on {leaving} gone", 120)
        traffic.wait_healthy(name, {staying})
        window.end()
        wait_for(
            lambda: (
                names.GATEWAY_LABEL
                not in traffic.cluster.node(leaving)["metadata"].get("labels", {})
            ),
            f"{leaving} restored",
        )
    print(f"  {watcher.left_first(window.started, 'change')}")

    # And back in: the load balancer may send to it only once its pod serves routes.
    before = traffic.lab.from_internet()
    with (
        traffic.load(gw) as load,
        FirstAnswer(traffic, name, leaving) as first,
    ):
        time.sleep(2)
        traffic.gateways.patch(name, {"spec": {"nodes": {"names": edges}}})
        added = time.monotonic()
        wait_for(lambda: leaving in _serving_on(traffic, name), f"a ready pod on {leaving}", 120)
        traffic.wait_healthy(name, set(edges))
        healthy = time.monotonic() - added
        time.sleep(5)
        status: dict[str, Any] = traffic.gateways.get(name)
    results = load.stop()
    received = traffic.lab.from_internet()[leaving] - before[leaving]
    print(
        f"{leaving} added back: {results.summary()}; the load balancer sent to it"
        f" {healthy:.1f} s after the change; it received {received} packets from the"
        f" internet; its pod {first.pod} answered HTTP {first.status} the moment it was Ready"
    )
    assert [(o.kind, o.reused, o.error) for o in results.failures] == []
    assert first.status == 200
    assert received > 0
    assert condition(status, "Ready")["status"] == "True"  # type: ignore[index]


def test_edge_node_deleted_under_load(traffic: Traffic, unique: str) -> None:
    """`kubectl delete node` of a Ready edge node: its drain finalizer keeps it while the
    operator excludes it from the load balancer and evicts its pod; then it goes. (Its
    kubelet still runs, and registers the node again when restarted.)"""
    name = f"del-{unique}"
    gw = traffic.gateway(name)
    edges = sorted(n.name for n in traffic.lab.topology.edges)
    victim = edges[0]

    with (
        Watcher(traffic, name, victim) as watcher,
        disruption(traffic, gw, f"{victim} deleted") as window,
    ):
        traffic.cluster.core.delete_node(victim)
        wait_for(lambda: watcher.node_gone_at, f"node {victim} deleted", 120)
        traffic.wait_healthy(name, {edges[1]})
        window.end()
        time.sleep(2)
        # The kubelet registers its node when it starts.
        traffic.lab.stop_daemon(victim, "kubelet")
        traffic.lab.start_daemon(victim, "kubelet")
        wait_for(
            lambda: victim in _serving_on(traffic, name) and _node_exists(traffic, victim),
            f"{victim} registered again and serving",
            180,
        )
        traffic.wait_healthy(name, set(edges), timeout=120)
        back = time.monotonic() - window.started
    assert watcher.node_gone_at is not None
    assert watcher.pods_gone_at is not None
    assert watcher.pods_gone_at <= watcher.node_gone_at
    print(
        f"  {watcher.left_first(window.started, 'deletion')}, the node after"
        f" {watcher.node_gone_at - window.started:.2f} s; registered again and serving"
        f" {back:.1f} s after the deletion"
    )


def test_controller_pod_deleted_by_hand_under_load(traffic: Traffic, unique: str) -> None:
    """`kubectl delete pod` of a serving controller pod: its node fails the health check
    at once (no ready endpoint left there), the pod serves through its preStop delay,
    and the ReplicaSet's replacement takes the node back once the old pod is gone."""
    name = f"pod-{unique}"
    gw = traffic.gateway(name)
    edges = sorted(n.name for n in traffic.lab.topology.edges)
    victim = edges[0]
    pod = _pods_on(traffic, name, victim)[0]["metadata"]["name"]

    with (
        Watcher(traffic, name, victim) as watcher,
        disruption(traffic, gw, f"controller pod {pod} on {victim} deleted") as window,
    ):
        traffic.cluster.core.delete_namespaced_pod(pod, NS)
        wait_for(lambda: watcher.excluded_at, f"the load balancer dropping {victim}", 60)
        wait_for(
            lambda: any(
                ready(p) and p["metadata"]["name"] != pod for p in _pods_on(traffic, name, victim)
            ),
            f"a new ready pod on {victim}",
            120,
        )
        traffic.wait_healthy(name, set(edges))
        window.end()
    assert watcher.excluded_at is not None
    print(
        f"  the load balancer stopped sending to {victim}"
        f" {watcher.excluded_at - window.started:.2f} s after the deletion;"
        f" the replacement served after {window.ended - window.started:.1f} s"
    )


def test_a_load_balancer_slower_than_declared_fails_requests(traffic: Traffic, unique: str) -> None:
    """The negative control: the gateway declares a 1 s x 2 health check (the pod stops
    accepting 4 s after the eviction), the load balancer really checks every 3 s and acts
    after 3 results, and honours the exclusion label only after a minute. It keeps
    sending new connections to the drained node after its pod has stopped accepting: the
    same drain as above must now count failed requests."""
    name = f"neg-{unique}"
    gw = traffic.gateway(
        name,
        rollout={"loadBalancerHealthCheck": FAST_CHECK},
        lb_check={"intervalSeconds": 3, "unhealthyThreshold": 3},
        deregistration_delay=60,
    )
    edges = sorted(n.name for n in traffic.lab.topology.edges)
    victim = edges[0]
    core = traffic.cluster.core

    with traffic.load(gw) as load, Watcher(traffic, name, victim) as watcher:
        time.sleep(3)
        started = time.monotonic()
        core.patch_node(victim, {"spec": {"unschedulable": True}})
        _evict_through_the_pdb(traffic, name, victim)
        wait_for(lambda: watcher.pods_gone_at, f"the controller pod on {victim} gone", 120)
        wait_for(lambda: watcher.excluded_at, f"the load balancer dropping {victim}", 60)
        time.sleep(2)
        core.patch_node(victim, {"spec": {"unschedulable": False}})
        wait_for(lambda: victim in _serving_on(traffic, name), f"a ready pod on {victim}", 120)
        traffic.wait_healthy(name, set(edges))
    results = load.stop()
    assert watcher.pods_gone_at is not None
    assert watcher.excluded_at is not None
    failed = results.failures
    print(
        f"negative control, {victim} drained behind a load balancer slower than declared:"
        f" {results.summary()}; preStop {gw.pre_stop} s, pod gone after"
        f" {watcher.pods_gone_at - started:.1f} s, the load balancer stopped sending after"
        f" {watcher.excluded_at - started:.1f} s;"
        f" failures from +{min((o.at for o in failed), default=0) - started:.1f} s to"
        f" +{max((o.at for o in failed), default=0) - started:.1f} s"
    )
    # The pod stopped accepting after its preStop delay, the load balancer kept sending
    # well after it, and new connections in between failed.
    assert watcher.excluded_at - started > gw.pre_stop + 2
    assert len(failed) > 0
    assert {o.kind for o in failed} >= {"new"}
    assert min(o.at for o in failed) - started >= gw.pre_stop
