"""Edge nodes that come and go under load: drained, taken out of the selection, added.

The load runs the whole time (half keep-alive, half new connections, >= 50 requests/s)
through the lab's load balancer, and every failure counts, 404s included. A watcher
notes every 50 ms when the load balancer stops sending to a node and when that node's
controller pod is gone, so a test can say which came first.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

from kubernetes.client.exceptions import ApiException

import lab
from edge_operator import names
from lab.load import Load, Results
from tests.dataplane.traffic import NS, Poller, Traffic, ready
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


def _report(what: str, results: Results, extra: str = "") -> None:
    print(f"{what}: {results.summary()}{'; ' + extra if extra else ''}")
    assert results.rate >= 50
    assert [(f.kind, f.connection) for f in results.failures] == []


def test_drained_edge_node_leaves_the_load_balancer_first_and_comes_back(
    traffic: Traffic, unique: str
) -> None:
    name = f"drain-{unique}"
    gw = traffic.gateway(name)
    edges = sorted(n.name for n in traffic.lab.topology.edges)
    victim = edges[0]
    core = traffic.cluster.core

    with (
        Load(traffic.lab.topology.clients[0].name, gw.address, rate=60) as load,
        Watcher(traffic, name, victim) as watcher,
    ):
        time.sleep(2)
        core.patch_node(victim, {"spec": {"unschedulable": True}})
        cordoned = time.monotonic()
        refused = _evict_through_the_pdb(traffic, name, victim)
        wait_for(lambda: watcher.pods_gone_at, f"the controller pod on {victim} gone", 120)
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
        time.sleep(3)
    results = load.stop()
    timings = watcher.left_first(cordoned, "cordon")
    _report(
        f"{victim} cordoned and drained ({refused} evictions refused by the PDB) and back",
        results,
        f"{timings}; serving again {back:.1f} s after the uncordon",
    )
    assert labels[names.EXCLUDE_LB_LABEL] == "true"
    assert names.EXCLUDE_LB_LABEL not in after


def test_edge_node_out_of_the_selection_and_a_new_one_in(traffic: Traffic, unique: str) -> None:
    name = f"sel-{unique}"
    edges = sorted(n.name for n in traffic.lab.topology.edges)
    gw = traffic.gateway(name, nodes=edges)
    leaving, staying = edges

    with (
        Load(traffic.lab.topology.clients[0].name, gw.address, rate=60) as load,
        Watcher(traffic, name, leaving) as watcher,
    ):
        time.sleep(2)
        traffic.gateways.patch(name, {"spec": {"nodes": {"names": [staying]}}})
        changed = time.monotonic()
        wait_for(lambda: watcher.pods_gone_at, f"the controller pod on {leaving} gone", 120)
        traffic.wait_healthy(name, {staying})
        wait_for(
            lambda: (
                names.GATEWAY_LABEL
                not in traffic.cluster.node(leaving)["metadata"].get("labels", {})
            ),
            f"{leaving} restored",
        )
        out = load.stop()
    _report(f"{leaving} out of the selection", out, watcher.left_first(changed, "change"))

    # And back in: the load balancer may send to it only once its pod serves routes.
    before = traffic.lab.from_internet()[leaving]
    with (
        Load(traffic.lab.topology.clients[0].name, gw.address, rate=60) as load,
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
    received = traffic.lab.from_internet()[leaving] - before
    _report(
        f"{leaving} added back",
        results,
        f"the load balancer sent to it {healthy:.1f} s after the change; it received"
        f" {received} packets from the internet; its pod {first.pod} answered HTTP"
        f" {first.status} the moment it was Ready",
    )
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
        Load(traffic.lab.topology.clients[0].name, gw.address, rate=60) as load,
        Watcher(traffic, name, victim) as watcher,
    ):
        time.sleep(2)
        traffic.cluster.core.delete_node(victim)
        deleted = time.monotonic()
        wait_for(lambda: watcher.node_gone_at, f"node {victim} deleted", 120)
        traffic.wait_healthy(name, {edges[1]})
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
        back = time.monotonic() - deleted
        time.sleep(3)
    results = load.stop()
    timings = watcher.left_first(deleted, "deletion")
    assert watcher.node_gone_at is not None
    assert watcher.pods_gone_at is not None
    assert watcher.pods_gone_at <= watcher.node_gone_at
    _report(
        f"{victim} deleted",
        results,
        f"{timings}, the node after {watcher.node_gone_at - deleted:.2f} s; registered again"
        f" and serving {back:.1f} s after the deletion",
    )
