"""Fault injection on the local control plane: the operator SIGKILLed at random moments
during 50 reconcile-triggering changes, the API server and etcd restarted in the middle
of passes, two gateways racing for nodes while nodes churn, the HA leader killed in the
middle of a pass. Each test prints its counts.

Every node is compared byte for byte (labels, taints, annotations) with what it was
before the operator touched it, once every gateway is deleted.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

import chart
import localcluster
from edge_operator import names
from tests.e2e.cluster import Cluster, Gateways, gone, wait_first_edge_node, wait_for
from tests.e2e.operator import OperatorProcess
from tests.e2e.test_operations import back_to_one_operator, samples

pytestmark = pytest.mark.faults

GW = names.GATEWAY_LABEL
ROLE = names.DEFAULT_ROLE_LABEL
POOL = "e2e-fault-pool"
#: The refusals a gateway may settle in when the changes leave it without free nodes.
SETTLED_REFUSALS = {"NoEdgeNodes", "NodeOwnedByOtherGateway", "MinWorkerNodes"}


def mark(node: dict[str, Any]) -> dict[str, Any]:
    """What the operator may touch on a node and must give back: labels, taints,
    annotations and finalizers."""
    meta, spec = node["metadata"], node.get("spec") or {}
    return {
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
        "taints": spec.get("taints") or [],
        "finalizers": meta.get("finalizers") or [],
    }


def assert_marks(cluster: Cluster, expected: dict[str, dict[str, Any]]) -> None:
    for name, marked in expected.items():
        node = cluster.api.sanitize_for_serialization(cluster.core.read_node(name))
        assert mark(node) == marked, name


def untouched(marked: dict[str, Any]) -> dict[str, Any]:
    """``marked`` without what the operator puts on an edge node (the storm's nodes are
    made with none of it): its labels, record, finalizer and the edge taint."""
    ours = {GW, ROLE, names.EXCLUDE_LB_LABEL}
    return {
        "labels": {k: v for k, v in marked["labels"].items() if k not in ours},
        "annotations": {
            k: v for k, v in marked["annotations"].items() if k != names.NODE_RECORD_ANNOTATION
        },
        "taints": [t for t in marked["taints"] if t["key"] != ROLE],
        "finalizers": [f for f in marked["finalizers"] if f != names.NODE_FINALIZER],
    }


def total_passes(process: OperatorProcess) -> float:
    return sum(
        v
        for (metric, _labels), v in samples(process).items()
        if metric == "edge_operator_reconcile_total"
    )


def settled(gateways: Gateways, name: str) -> bool:
    """The gateway's status is of its current generation and its nodes are configured,
    or refused for a reason that holds until something changes."""
    obj = gateways.get(name)
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    cond = next((c for c in status.get("conditions") or [] if c["type"] == "NodesConfigured"), None)
    return cond is not None and (cond["status"] == "True" or cond["reason"] in SETTLED_REFUSALS)


def no_storm_gateways(cluster: Cluster, unique: str) -> bool:
    listed = cluster.custom.list_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL)
    return not [g for g in listed["items"] if g["metadata"]["name"].endswith(f"-{unique}")]


def holds(gateways: Gateways, name: str, count: int) -> bool:
    """Settled with ``count`` edge nodes and none draining before its release (a node
    that left keeps the gateway's label until its controller pod is gone)."""
    if not settled(gateways, name):
        return False
    status = gateways.get(name)["status"]
    labelled = gateways.cluster.core.list_node(label_selector=f"{GW}={name}").items
    return status["edgeNodeCount"] == count and len(labelled) == count


def answers(cluster: Cluster) -> bool:
    """The API server serves again, etcd behind it included (an object is read)."""
    try:
        cluster.core.list_namespace(limit=1)
    except (ApiException, urllib3.exceptions.HTTPError):
        return False
    return True


@dataclass
class Storm:
    """The changes of the kill test, and what every node must look like at the end."""

    cluster: Cluster
    gateways: Gateways
    unique: str
    rng: random.Random
    #: node name -> the mark it must have once no gateway holds it (None: deleted).
    expected: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    live: list[str] = field(default_factory=list)
    made: int = 0
    done: list[str] = field(default_factory=list)

    def node(self, name: str, pool: str, zone: str) -> None:
        created = self.cluster.create_node(name, zone=zone, labels={POOL: pool})
        # A gateway may have taken the node by the time it settled: what it must look
        # like with no gateway is what the test made, without the operator's marks.
        self.expected[name] = untouched(mark(created))

    def pool(self, which: str) -> str:
        return f"{self.unique}-{which}"

    def change(self) -> str:
        actions: list[Callable[[], str | None]] = [
            self.create_gateway,
            self.create_gateway,
            self.update_gateway,
            self.update_gateway,
            self.delete_gateway,
            self.add_node,
            self.relabel_node,
            self.delete_node,
            self.recreate_node,
            self.hand_edit,
        ]
        while True:
            what = self.rng.choice(actions)()
            if what:
                self.done.append(what)
                return what

    def create_gateway(self) -> str | None:
        if len(self.live) >= 3:
            return None
        self.made += 1
        name = f"storm{self.made}-{self.unique}"
        pool = self.pool(self.rng.choice("ab"))
        spec: dict[str, Any] = {"nodes": {"selector": {"matchLabels": {POOL: pool}}}}
        if self.rng.random() < 0.5:
            spec["nodes"]["count"] = 2
        self.gateways.create(name, spec)
        self.live.append(name)
        return f"create {name} over {pool}"

    def update_gateway(self) -> str | None:
        if not self.live:
            return None
        name = self.rng.choice(self.live)
        patch = self.rng.choice(
            [
                {"nodes": {"count": self.rng.choice([1, 2, 3])}},
                {"nodes": {"count": None}},
                {"nodes": {"taint": {"effect": self.rng.choice(["NoSchedule", "None"])}}},
                {"nodes": {"selector": {"matchLabels": {POOL: self.pool(self.rng.choice("ab"))}}}},
                {"service": {"annotations": {"e2e/poke": str(self.rng.random())}}},
            ]
        )
        self.gateways.patch(name, {"spec": patch})
        return f"update {name}: {json.dumps(patch)}"

    def delete_gateway(self) -> str | None:
        if not self.live:
            return None
        name = self.rng.choice(self.live)
        self.live.remove(name)
        self.cluster.custom.delete_cluster_custom_object(
            names.GROUP, names.VERSION, names.PLURAL, name
        )
        return f"delete {name}"

    def add_node(self) -> str:
        name = f"storm-{self.unique}-n{len(self.expected)}"
        self.node(name, self.pool(self.rng.choice("ab")), f"zone-{self.rng.choice('abc')}")
        return f"add node {name}"

    def existing(self) -> list[str]:
        return sorted(n for n, m in self.expected.items() if m is not None)

    def relabel_node(self) -> str | None:
        if not (nodes := self.existing()):
            return None
        name = self.rng.choice(nodes)
        pool = self.rng.choice([self.pool("a"), self.pool("b"), f"{self.unique}-none"])
        self.cluster.core.patch_node(name, {"metadata": {"labels": {POOL: pool}}})
        expected = self.expected[name]
        assert expected is not None
        expected["labels"] = {**expected["labels"], POOL: pool}
        return f"relabel node {name} to {pool}"

    def delete_node(self) -> str | None:
        if len(nodes := self.existing()) <= 4:
            return None
        name = self.rng.choice(nodes)
        self.cluster.core.delete_node(name)  # an edge node waits for the drain finalizer
        self.expected[name] = None
        return f"delete node {name}"

    def recreate_node(self) -> str | None:
        deleted = sorted(n for n, m in self.expected.items() if m is None)
        name = next((n for n in deleted if gone(partial(self.cluster.core.read_node, n))), None)
        if name is None:
            return None
        self.node(name, self.pool(self.rng.choice("ab")), "zone-a")
        return f"recreate node {name}"

    def hand_edit(self) -> str | None:
        held = self.cluster.core.list_node(label_selector=GW).items
        held = [n for n in held if n.metadata.name in self.expected]
        if not held:
            return None
        node = self.rng.choice(held)
        # A human takes the role label off an edge node: a field the operator manages.
        self.cluster.core.patch_node(node.metadata.name, {"metadata": {"labels": {ROLE: None}}})
        return f"hand edit: remove {ROLE} from {node.metadata.name}"


def test_sigkill_at_random_moments_during_50_changes(
    cluster: Cluster, gateways: Gateways, operator: OperatorProcess, unique: str
) -> None:
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    storm = Storm(cluster, gateways, unique, random.Random(seed))
    for i in range(8):
        storm.node(f"storm-{unique}-n{i}", storm.pool("ab"[i % 2]), f"zone-{'abc'[i % 3]}")
    for i in range(3):
        storm.node(f"storm-{unique}-w{i}", f"{unique}-workers", "zone-a")

    try:
        run_storm(storm, operator, gateways, cluster)
    finally:
        for name in storm.existing():
            cluster.delete_node(name)


def run_storm(
    storm: Storm, operator: OperatorProcess, gateways: Gateways, cluster: Cluster
) -> None:
    kills = passes = 0
    for step in range(50):
        what = storm.change()
        if storm.rng.random() < 0.5:
            time.sleep(storm.rng.uniform(0, 0.5))  # somewhere in the passes it started
            passes += int(total_passes(operator))
            operator.kill()
            kills += 1
            operator.start()
            what += " (operator SIGKILLed, restarted)"
        print(f"change {step + 1:2}: {what}")

    for name in storm.live:
        wait_for(partial(settled, gateways, name), f"{name} settled", timeout=120)
        deployments = cluster.apps.list_deployment_for_all_namespaces(
            label_selector=f"{GW}={name},{names.COMPONENT_LABEL}={names.COMPONENT_CONTROLLER}"
        ).items
        assert len(deployments) <= 1, [d.metadata.name for d in deployments]
        services = cluster.core.list_service_for_all_namespaces(label_selector=f"{GW}={name}")
        lb = [s for s in services.items if s.spec.type == "LoadBalancer"]
        assert len(lb) <= 1, [s.metadata.name for s in lb]
    passes += int(total_passes(operator))

    for name in list(storm.live):
        gateways.delete(name, timeout=120)
    # And those deleted during the storm: their finalizers have restored their nodes.
    wait_for(partial(no_storm_gateways, cluster, storm.unique), "every storm gateway gone", 120)
    compared = 0
    for name, expected in sorted(storm.expected.items()):
        if expected is None:
            wait_for(partial(gone, partial(cluster.core.read_node, name)), f"{name} gone")
            continue
        node = cluster.api.sanitize_for_serialization(cluster.core.read_node(name))
        assert mark(node) == expected, name
        compared += 1
    print(
        f"faults: {len(storm.done)} changes, {kills} SIGKILLs, {passes} passes,"
        f" {len(storm.live)} gateways converged, {compared} nodes compared byte for byte"
        f" ({sum(1 for m in storm.expected.values() if m is None)} deleted)"
    )
    assert kills >= 10


# --- the API server and etcd restarted in the middle of passes ------------------------------


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_control_plane_restart_in_the_middle_of_passes(  # noqa: PLR0917
    cluster: Cluster,
    gateways: Gateways,
    operator: OperatorProcess,
    make_node: Callable[..., dict[str, Any]],
    unique: str,
    component: str,
) -> None:
    assert cluster.local_state is not None, "needs the local control plane"
    nodes = [make_node(f"cp-{unique}-{i:02}", labels={POOL: unique}) for i in range(16)]
    before = {n["metadata"]["name"]: mark(n) for n in nodes}
    make_node(f"cp-{unique}-worker")
    assert operator.proc is not None
    pid = operator.proc.pid
    name = f"cp-{unique}"
    gateways.create(name, {"nodes": {"selector": {"matchLabels": {POOL: unique}}}})
    wait_first_edge_node(cluster, name)
    localcluster.restart(cluster.local_state, component, down_seconds=5)
    wait_for(partial(answers, cluster), f"the API again after {component} restarted", 60)
    back = time.monotonic()
    wait_for(lambda: settled(gateways, name), f"{name} converged after the restart", timeout=60)
    took = time.monotonic() - back
    obj = gateways.get(name)
    assert obj["status"]["edgeNodeCount"] == len(nodes)
    # Recovered on its own: the same process, never restarted, no crash loop.
    assert operator.proc is not None
    assert operator.proc.pid == pid
    assert operator.proc.poll() is None
    assert operator.probe("/healthz")
    print(f"{component} restarted (5 s down): converged {took:.1f} s after it was started again")
    gateways.delete(name)
    assert_marks(cluster, before)


# --- two gateways racing for the same nodes while nodes churn -------------------------------


@contextmanager
def ownership_changes(cluster: Cluster, selector: str) -> Iterator[dict[str, int]]:
    """Count, per node, how often its owning gateway (the GW label) changes."""
    changes: dict[str, int] = {}
    last: dict[str, str | None] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for node in cluster.core.list_node(label_selector=selector).items:
                owner = (node.metadata.labels or {}).get(GW)
                if node.metadata.name in last and last[node.metadata.name] != owner:
                    changes[node.metadata.name] = changes.get(node.metadata.name, 0) + 1
                last[node.metadata.name] = owner
            stop.wait(0.5)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield changes
    finally:
        stop.set()
        thread.join(10)


def test_racing_gateways_settle_with_no_ownership_changes(
    cluster: Cluster,
    gateways: Gateways,
    operator: OperatorProcess,
    make_node: Callable[..., dict[str, Any]],
    unique: str,
) -> None:
    nodes = [
        make_node(f"race-{unique}-{i}", zone=f"zone-{'abc'[i % 3]}", labels={POOL: unique})
        for i in range(6)
    ]
    make_node(f"race-{unique}-worker")
    selector = {"nodes": {"selector": {"matchLabels": {POOL: unique}}, "count": 2}}
    first, second = f"race1-{unique}", f"race2-{unique}"
    gateways.create(first, selector)
    gateways.create(second, selector)
    rng = random.Random()
    churn_until = time.monotonic() + 20
    churned = 0
    while time.monotonic() < churn_until:  # nodes leave and rejoin the pool
        node = rng.choice(nodes)["metadata"]["name"]
        out = rng.random() < 0.5
        cluster.core.patch_node(
            node, {"metadata": {"labels": {POOL: f"{unique}-out" if out else unique}}}
        )
        churned += 1
        time.sleep(rng.uniform(0.1, 0.6))
    for node in nodes:
        cluster.core.patch_node(node["metadata"]["name"], {"metadata": {"labels": {POOL: unique}}})
    for name in (first, second):  # settled: each holds its count of nodes again
        wait_for(partial(holds, gateways, name, 2), f"{name} settled on 2 nodes", timeout=60)
    with ownership_changes(cluster, f"{POOL}={unique}") as changes:
        time.sleep(60)
    held = {
        n.metadata.name: (n.metadata.labels or {}).get(GW)
        for n in cluster.core.list_node(label_selector=f"{POOL}={unique}").items
    }
    print(
        f"race: {churned} node relabels in 20 s; then over 60 s {sum(changes.values())}"
        f" ownership changes on {len(held)} nodes; holders {sorted(held.values(), key=str)}"
    )
    assert changes == {}
    assert sorted(h for h in held.values() if h) == sorted([first] * 2 + [second] * 2)
    gateways.delete_all()


# --- HA: the leader killed in the middle of a pass --------------------------------------------


def writes_per_object(audit_log: Path, since: int, nodes: set[str]) -> dict[str, int]:
    """The operator's successful writes (both replicas' identities; the audit log holds
    only theirs) after byte ``since``, per verb and object: every write that created an
    object, and every write of the given nodes. Events, Leases and the gateways' own
    status are left out."""
    counts: dict[str, int] = {}
    with audit_log.open("rb") as log:
        log.seek(since)
        for line in log:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            code = int((event.get("responseStatus") or {}).get("code") or 0)
            node = ref.get("resource") == "nodes" and ref.get("name") in nodes
            if (
                event.get("stage") == "ResponseComplete"
                and 200 <= code < 300
                and (code == 201 or node)  # 201: created (by create, or server-side apply)
                and event.get("verb") in ("create", "update", "patch")
                and ref.get("resource") not in ("events", "leases", names.PLURAL)
            ):
                where = f"{ref.get('resource')}/{ref.get('namespace', '')}/{ref.get('name', '')}"
                key = f"{event['verb']} {where}"
                counts[key] = counts.get(key, 0) + 1
    return counts


def test_ha_leader_killed_mid_pass_standby_finishes_without_double_writes(
    cluster: Cluster,
    operator: OperatorProcess,
    make_node: Callable[..., dict[str, Any]],
    unique: str,
    tmp_path: Path,
) -> None:
    assert cluster.audit_log is not None, "needs the local control plane's audit log"
    operator.stop()
    active = OperatorProcess(
        cluster.operator_kubeconfig or cluster.kubeconfig,
        tmp_path / "active.log",
        leader_election=True,
        metrics=True,
    )
    standby = OperatorProcess(
        cluster.service_account_kubeconfig(
            chart.NAMESPACE, chart.RELEASE, tmp_path / "sa.kubeconfig"
        ),
        tmp_path / "standby.log",
        leader_election=True,
        metrics=True,
    )
    gateways = Gateways(cluster)
    nodes = [make_node(f"ha-{unique}-{i:02}", labels={POOL: unique}) for i in range(12)]
    make_node(f"ha-{unique}-worker")
    before = {n["metadata"]["name"]: mark(n) for n in nodes}
    try:
        active.start()
        wait_for(
            lambda: any(
                metric == "leader_election_master_status" and v == 1
                for (metric, _), v in samples(active).items()
            ),
            "the first replica to lead",
        )
        standby.start()
        since = cluster.audit_log.stat().st_size
        name = f"ha-{unique}"
        gateways.create(name, {"nodes": {"selector": {"matchLabels": {POOL: unique}}}})
        wait_first_edge_node(cluster, name)
        labelled = len(cluster.core.list_node(label_selector=f"{GW}={name}").items)
        active.kill()
        killed = time.monotonic()
        wait_for(lambda: settled(gateways, name), f"{name} converged by the standby", timeout=90)
        took = time.monotonic() - killed
        assert gateways.get(name)["status"]["edgeNodeCount"] == len(nodes)
        writes = writes_per_object(cluster.audit_log, since, set(before))
        twice = {k: v for k, v in writes.items() if v > 1}
        node_writes = sum(1 for k in writes if " nodes/" in k)
        print(
            f"ha: leader SIGKILLed with {labelled}/{len(nodes)} nodes labelled; the standby"
            f" converged in {took:.1f} s; {len(writes) - node_writes} objects created and"
            f" {node_writes} nodes patched by the two replicas, {len(twice)} written twice"
        )
        assert node_writes == len(nodes)
        assert any(" deployments/" in k for k in writes)
        assert twice == {}
        gateways.delete_all()
        assert_marks(cluster, before)
    finally:
        back_to_one_operator(operator, gateways, active, standby)
