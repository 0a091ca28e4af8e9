"""The operator as the chart runs it, on real nodes: its pod under Pod Security
restricted, HA between two pods (a pod killed, a node cut off), `helm upgrade` under
load, scale to 0, and `helm uninstall` with gateways present.

Every figure (takeover times, request counts) is printed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import chart
import localcluster
from edge_operator import names
from tests.dataplane.operator_pod import RESTRICTED, ChartOperator, audit_writers, ready
from tests.dataplane.traffic import NS, Traffic, assert_steady
from tests.e2e.cluster import Cluster, condition, wait_for

REPO = Path(__file__).resolve().parents[2]
#: The chart as it was before the operator ran in the cluster (main at 418cb2a), packaged
#: with `helm package`: what `helm upgrade` starts from.
PREVIOUS_CHART = Path(__file__).parent / "charts" / "edge-operator-0.1.0-418cb2a.tgz"
#: What the container runtime and the kubelet give every container, whatever its spec:
#: IPC mounts (tmpfs and mqueue of the pod), the termination message file, and the
#: character devices of /dev. Everything else but the chart's emptyDir is read-only.
RUNTIME_WRITABLE = {
    "/dev/shm", "/dev/mqueue", "/dev/termination-log", "/dev/full", "/dev/null",
    "/dev/ptmx", "/dev/pts/ptmx", "/dev/random", "/dev/tty", "/dev/urandom", "/dev/zero",
}  # fmt: skip


def _node_state(cluster: Cluster) -> dict[str, str]:
    """Every node's labels, annotations, finalizers and taints, as canonical JSON."""
    out = {}
    for node in cluster.core.list_node().items:
        raw = cluster.api.sanitize_for_serialization(node)
        meta = raw["metadata"]
        out[meta["name"]] = json.dumps(
            {
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "finalizers": meta.get("finalizers") or [],
                "taints": raw["spec"].get("taints") or [],
            },
            sort_keys=True,
        )
    return out


def _drained(cluster: Cluster) -> list[str]:
    return [
        n.metadata.name
        for n in cluster.core.list_node().items
        if names.NODE_FINALIZER in (n.metadata.finalizers or [])
    ]


@pytest.fixture
def ha(operator: ChartOperator) -> Iterator[ChartOperator]:
    """Two replicas for the test; one again after it."""
    operator.install(replicas=2)
    yield operator
    operator.install(replicas=1)


# --- the pod -------------------------------------------------------------------------------


def test_chart_pod_runs_restricted_on_a_worker_and_serves_the_basic_example(
    operator: ChartOperator, traffic: Traffic, cluster: Cluster
) -> None:
    namespace = cluster.core.read_namespace(chart.NAMESPACE).metadata.labels
    assert {k: namespace.get(k) for k in RESTRICTED} == RESTRICTED
    [pod] = operator.pods()
    assert ready(pod)
    workers = {n.name for n in traffic.lab.topology.workers}
    assert pod["spec"]["nodeName"] in workers
    container = pod["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/edge-operator/edge-operator:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 65532
    writable = set(operator.writable_paths(pod["metadata"]["name"]))
    print(f"writable in the operator's container: {sorted(writable)}")
    assert writable - RUNTIME_WRITABLE == {"/tmp"}

    # examples/basic.yaml as it is (its name, its default drain timing), an Ingress of
    # its class to the echo backend, and a request from a client namespace.
    example = yaml.safe_load((REPO / "examples/basic.yaml").read_text())
    name = example["metadata"]["name"]
    traffic.gateways.create(name, example["spec"])
    traffic.ingress(name)
    traffic.gateways.wait_condition(name, "Ready", "True", timeout=180)
    gw = traffic.describe(name)
    traffic.wait_serving(gw)
    client = traffic.lab.topology.clients[0]
    seen = traffic.get(client.name, gw.address)
    print(f"through {gw.address}: the backend saw client {seen['client']}")
    assert seen["client"] == client.ip

    page = operator.metrics_text()
    assert 'leader_election_master_status{name="edge-operator"} 1.0' in page
    assert f'edge_operator_gateway_ready{{gateway="{name}"}} 1.0' in page


# --- HA --------------------------------------------------------------------------------------


def _takeover(operator: ChartOperator, old: str, timeout: float = 60) -> tuple[str, float]:
    """Seconds until a pod other than ``old`` holds the Lease."""
    start = time.monotonic()

    def other() -> str | None:
        holder = operator.leader()
        return holder if holder and holder != old else None

    new = wait_for(other, f"a leader other than {old}", timeout)
    return str(new), time.monotonic() - start


def _annotate_and_wait(traffic: Traffic, name: str, value: str, timeout: float = 60) -> float:
    """Change the gateway's spec (a Service annotation); seconds until its Service has it."""
    start = time.monotonic()
    gateway = traffic.gateways.get(name)
    service = copy.deepcopy(gateway["spec"].get("service") or {})
    service.setdefault("annotations", {})["test.edgeoperator.dev/after-cut"] = value
    traffic.cluster.custom.patch_cluster_custom_object(
        "edgeoperator.dev", "v1alpha1", "edgegateways", name, {"spec": {"service": service}}
    )

    def annotated() -> bool:
        annotations = traffic.cluster.service(NS, name)["metadata"].get("annotations", {})
        return bool(annotations.get("test.edgeoperator.dev/after-cut") == value)

    wait_for(annotated, f"the Service of {name} annotated {value}", timeout)
    return time.monotonic() - start


def test_ha_leader_pod_killed(ha: ChartOperator, traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(f"ha-{unique}")
    pods = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in ha.pods()}
    assert len(set(pods.values())) == 2, f"replicas share a node: {pods}"
    old = ha.leader()
    ha.cluster.core.delete_namespaced_pod(old, chart.NAMESPACE, grace_period_seconds=0)
    new, took = _takeover(ha, old, timeout=30)
    reconciled = _annotate_and_wait(traffic, gw.name, "pod-killed")
    print(f"leader {old} killed (grace 0): {new} leads after {took:.1f}s, a spec change"
          f" made after the kill reconciled {reconciled:.1f}s later")  # fmt: skip
    assert took < 30


def test_ha_leader_node_cut_off(ha: ChartOperator, traffic: Traffic, unique: str) -> None:
    """The leader's node loses its link and its way to the API server while the pod
    keeps running: the standby leads within 30 s and reconciles a change made after the
    cut; when the link is back, the old leader writes nothing (the audit log shows one
    writer at a time)."""
    gw = traffic.gateway(f"cut-{unique}")
    old = ha.leader()
    node = ha.pod(old)["spec"]["nodeName"]
    cut_at = time.time()
    traffic.lab.cut(node)
    try:
        new, took = _takeover(ha, old, timeout=45)
        reconciled = _annotate_and_wait(traffic, gw.name, "node-cut")
        time.sleep(10)  # the old leader's fence and the kubelet's restart, still cut off
    finally:
        traffic.lab.reconnect(node)
    back_at = time.time()
    # The old pod's container, restarted while cut off, reads the Lease and stays standby.
    wait_for(lambda: len([p for p in ha.pods() if ready(p)]) == 2, "both pods Ready", 120)
    time.sleep(5)
    assert ha.leader() == new
    writes = audit_writers(traffic.cluster.audit_log or Path(), cut_at - 60)
    first_new = min(t for t, pod, _ in writes if pod == new and t >= cut_at)
    late = [(t - cut_at, what) for t, pod, what in writes if pod == old and t >= first_new]
    by_pod = {pod: sum(1 for _, p, _ in writes if p == pod) for pod in {old, new}}
    print(f"node {node} of leader {old} cut off: {new} leads after {took:.1f}s; a spec change"
          f" after the cut reconciled in {reconciled:.1f}s; link back after"
          f" {back_at - cut_at:.0f}s; writes since 60 s before the cut: {by_pod};"
          f" writes of {old} after {new}'s first: {late}")  # fmt: skip
    assert took < 30
    assert late == []
    assert "restarted" in ha.logs(old) or "lost the Lease" in ha.logs(old)


# --- upgrade, scale to 0, uninstall ------------------------------------------------------------


def test_helm_upgrade_from_the_previous_chart_under_load(
    operator: ChartOperator, traffic: Traffic, unique: str
) -> None:
    operator.install(path=PREVIOUS_CHART)
    gw = traffic.gateway(f"upgrade-{unique}")
    not_ready = []
    with traffic.load(gw) as load:
        time.sleep(3)
        start = time.monotonic()
        argv = [
            str(localcluster.helm_path()), "upgrade", chart.RELEASE, str(chart.CHART),
            "--namespace", chart.NAMESPACE, "--reset-then-reuse-values", "--wait",
            "--timeout", "3m", "--kubeconfig", str(traffic.cluster.kubeconfig),
        ]  # fmt: skip
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as upgrade:
            while upgrade.poll() is None:
                ready_condition = condition(traffic.gateways.get(gw.name), "Ready") or {}
                if ready_condition.get("status") != "True":
                    not_ready.append(ready_condition)
                time.sleep(0.5)
            output = upgrade.stdout.read().decode() if upgrade.stdout else ""
        operator.wait_ready()
        time.sleep(10)  # the new leader's first passes
        end = time.monotonic()
    results = load.stop()
    print(f"helm upgrade from {PREVIOUS_CHART.name}: rc {upgrade.returncode};"
          f" {results.summary(start, end)}")  # fmt: skip
    assert upgrade.returncode == 0, output
    assert_steady(results, start, end)
    assert results.failures == []
    assert not_ready == []


def test_scaled_to_zero_the_operator_leaves_no_drain_finalizer(
    operator: ChartOperator, traffic: Traffic, unique: str
) -> None:
    """No node may keep edgeoperator.dev/drain while no operator runs (a node deletion
    would never finish); labels, taints and traffic stay. Killing the pod does not
    release it (the Deployment brings a replica back at once)."""
    gw = traffic.gateway(f"zero-{unique}")
    edges = {n.name for n in traffic.lab.topology.edges}
    assert set(_drained(traffic.cluster)) == edges
    [pod] = operator.pods()
    operator.cluster.core.delete_namespaced_pod(pod["metadata"]["name"], chart.NAMESPACE)
    operator.wait_ready()
    assert set(_drained(traffic.cluster)) == edges
    before = _node_state(traffic.cluster)
    operator.scale(0)
    after = _node_state(traffic.cluster)
    assert _drained(traffic.cluster) == []
    for node in edges:  # only the finalizer went
        was, now = json.loads(before[node]), json.loads(after[node])
        assert was["finalizers"] == [*now["finalizers"], names.NODE_FINALIZER]
        assert {**was, "finalizers": []} == {**now, "finalizers": []}
    client = traffic.lab.topology.clients[0]
    assert traffic.get(client.name, gw.address)["client"] == client.ip
    operator.scale(1)
    wait_for(lambda: set(_drained(traffic.cluster)) == edges, "the finalizers back", 60)


def test_helm_uninstall_with_two_gateways(
    operator: ChartOperator, traffic: Traffic, cluster: Cluster, unique: str
) -> None:
    """By default it refuses before changing anything; with uninstall.deleteGateways it
    deletes them, and every node ends as it was, byte for byte."""
    pristine = _node_state(cluster)
    edges = [n.name for n in traffic.lab.topology.edges]
    first = traffic.gateway(f"un-a-{unique}", nodes=[edges[0]])
    second = traffic.gateway(f"un-b-{unique}", nodes=[edges[1]])
    with_gateways = _node_state(cluster)
    assert with_gateways != pristine
    uninstall = ("uninstall", chart.RELEASE, "--namespace", chart.NAMESPACE, "--wait")
    refused = operator.helm(*uninstall, "--timeout", "2m")
    job_log = _hook_log(operator)
    print(f"helm uninstall (default): rc {refused.returncode}: {refused.stderr.strip()}\n"
          f"hook: {job_log}")  # fmt: skip
    assert refused.returncode != 0
    assert "refusing to uninstall" in job_log
    assert first.name in job_log
    assert second.name in job_log
    assert _node_state(cluster) == with_gateways
    assert len(operator.pods()) == 1
    client = traffic.lab.topology.clients[0]
    assert traffic.get(client.name, first.address)["client"] == client.ip

    # A failed pre-delete hook leaves Helm's record "uninstalling" (nothing in the
    # cluster changed): a rollback to the last revision makes it deployed again.
    history = operator.helm("history", chart.RELEASE, "--namespace", chart.NAMESPACE, "-o", "json")
    last = str(json.loads(history.stdout)[-1]["revision"])
    rollback = operator.helm("rollback", chart.RELEASE, last, "--namespace", chart.NAMESPACE)
    assert rollback.returncode == 0, rollback.stderr
    operator.install(extra={"uninstall.deleteGateways": "true"})
    done = operator.helm(*uninstall, "--timeout", "5m")
    print(f"helm uninstall (uninstall.deleteGateways): rc {done.returncode}: {done.stdout}")
    assert done.returncode == 0, done.stderr
    assert (
        cluster.custom.list_cluster_custom_object("edgeoperator.dev", "v1alpha1", "edgegateways")[
            "items"
        ]
        == []
    )
    after = _node_state(cluster)
    assert after == pristine, {n: (pristine[n], after[n]) for n in after if after[n] != pristine[n]}
    owned = cluster.apps.list_namespaced_deployment(
        NS, label_selector=f"{names.MANAGED_BY_LABEL}={names.FIELD_MANAGER}"
    ).items
    assert owned == []
    # Helm deletes the Deployment and returns; its pods then stop within their grace.
    gone_after = time.monotonic()
    wait_for(lambda: operator.pods() == [], "the operator's pods gone", timeout=60)
    took = time.monotonic() - gone_after
    print(f"  the operator's pods were gone {took:.1f} s after helm returned")
    operator.install()  # for the tests after this one


def _hook_log(operator: ChartOperator) -> str:
    found = operator.cluster.core.list_namespaced_pod(
        chart.NAMESPACE, label_selector="app.kubernetes.io/component=uninstall"
    ).items
    return "\n".join(operator.logs(p.metadata.name, container="uninstall") for p in found)
