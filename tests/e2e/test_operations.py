"""Operating the operator: its Prometheus metrics, and failover between replicas.

The metrics are read from the running process's /metrics page; the standby's
writes are counted twice: by its own API request counter and, on the local
control plane, in the API server's audit log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

import chart
import localcluster
from edge_operator import names
from edge_operator.desired.providers import envoy_gateway
from edge_operator.handlers import WATCHED
from tests.e2e.cluster import Cluster, Gateways, wait_for
from tests.e2e.operator import HasMetrics, OperatorProcess
from tests.e2e.test_workload import (
    edge_pool,
    operator_writes,
    spec_for,
    wait_available,
)

MakeNode = Callable[..., dict[str, Any]]
NS = "edge-system"
WRITE_VERBS = ("create", "patch", "update", "delete")


def samples(process: HasMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the /metrics page: (name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(process.metrics_text()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def back_to_one_operator(
    operator: OperatorProcess, gateways: Gateways, *replicas: OperatorProcess
) -> None:
    """After an HA test: stop its replicas, start the session's operator again, and
    delete the test's gateways with it."""
    for process in replicas:
        if process.proc is not None:
            process.stop()
    operator.start()
    gateways.delete_all()


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str, /, **labels: str
) -> float | None:
    return page.get((metric, frozenset(labels.items())))


def api_writes(page: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    return sum(
        v
        for (name, labels), v in page.items()
        if name == "edge_operator_api_requests_total" and dict(labels)["verb"] in WRITE_VERBS
    )


def test_metrics_show_two_converged_gateways_and_a_refused_one(
    cluster: Cluster,
    gateways: Gateways,
    operator: OperatorProcess,
    make_node: MakeNode,
    unique: str,
) -> None:
    edge_pool(make_node, f"{unique}a", count=2)
    edge_pool(make_node, f"{unique}b", count=1)
    a, b, refused = f"ma-{unique}", f"mb-{unique}", f"mr-{unique}"
    gateways.create(a, spec_for(f"{unique}a"))
    gateways.create(b, spec_for(f"{unique}b"))
    gateways.create(refused, spec_for(f"{unique}-nothing"))  # selects no node
    for name, count, ip in ((a, 2, "203.0.113.31"), (b, 1, "203.0.113.32")):
        wait_available(cluster, name, count)
        cluster.assign_load_balancer(NS, name, ip)
        gateways.wait_condition(name, "Ready", "True")
    gateways.wait_condition(refused, "NodesConfigured", "False", "NoEdgeNodes")

    def converged() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        page = samples(operator)
        want = {
            ("edge_operator_gateway_ready", a): 1,
            ("edge_operator_gateway_ready", b): 1,
            ("edge_operator_gateway_ready", refused): 0,
            ("edge_operator_gateway_edge_nodes", a): 2,
            ("edge_operator_gateway_edge_nodes", b): 1,
            ("edge_operator_gateway_edge_nodes", refused): 0,
            ("edge_operator_gateway_replicas", a): 2,
            ("edge_operator_gateway_ready_replicas", a): 2,
            ("edge_operator_gateway_replicas", b): 1,
            ("edge_operator_gateway_ready_replicas", b): 1,
        }
        seen = {key: value(page, key[0], gateway=key[1]) for key in want}
        return page if seen == want else None

    page = wait_for(converged, "the gateways' gauges on /metrics", timeout=60)
    for name in (a, b):
        assert (
            value(page, "edge_operator_reconcile_total", gateway=name, result="success") or 0
        ) >= 1
        assert (
            value(page, "edge_operator_reconcile_errors_total", gateway=name, reason="NoEdgeNodes")
            is None
        )
    assert value(page, "edge_operator_node_changes_total", gateway=a, action="taint") == 2
    assert value(page, "edge_operator_node_changes_total", gateway=b, action="taint") == 1
    assert (
        value(page, "edge_operator_reconcile_errors_total", gateway=refused, reason="NoEdgeNodes")
        or 0
    ) >= 1
    assert (
        value(page, "edge_operator_reconcile_total", gateway=refused, result="refused") or 0
    ) >= 1
    assert (value(page, "edge_operator_reconcile_time_seconds_count") or 0) >= 3
    assert (
        value(page, "edge_operator_api_requests_total", verb="patch", resource="nodes", code="200")
        or 0
    ) >= 3
    assert value(page, "leader_election_master_status", name="edge-operator") == 1

    # A pass that is refused again counts again, with its reason.
    before = value(
        page, "edge_operator_reconcile_errors_total", gateway=refused, reason="NoEdgeNodes"
    )
    gateways.patch(refused, {"spec": {"controller": {"podAnnotations": {"poke": "1"}}}})

    def errors() -> float:
        page = samples(operator)
        found = value(
            page, "edge_operator_reconcile_errors_total", gateway=refused, reason="NoEdgeNodes"
        )
        return found or 0

    wait_for(lambda: errors() > (before or 0), "the refused gateway's error counter to grow")


@pytest.mark.usefixtures("crd_installed")
def test_standby_makes_no_writes_and_takes_over_within_a_minute(
    cluster: Cluster, operator: OperatorProcess, make_node: MakeNode, unique: str, tmp_path: Path
) -> None:
    """Two replicas with leader election: the active one runs as the operator's user,
    the standby as the chart's ServiceAccount, so the audit log tells them apart."""
    operator.stop()
    active = OperatorProcess(
        cluster.operator_kubeconfig or cluster.kubeconfig,
        tmp_path / "active.log",
        resync_seconds=15,
        leader_election=True,
        metrics=True,
    )
    sa_kubeconfig = cluster.service_account_kubeconfig(
        chart.NAMESPACE, chart.RELEASE, tmp_path / "sa.kubeconfig"
    )
    standby = OperatorProcess(
        sa_kubeconfig,
        tmp_path / "standby.log",
        resync_seconds=15,
        leader_election=True,
        metrics=True,
    )
    gateways = Gateways(cluster)
    try:
        active.start()
        wait_for(
            lambda: (
                value(samples(active), "leader_election_master_status", name="edge-operator") == 1
            ),
            "the first replica to lead",
        )
        audit_start = cluster.audit_log.stat().st_size if cluster.audit_log else 0
        standby.start()  # ready as a standby once it has read the Lease
        assert value(samples(standby), "leader_election_master_status", name="edge-operator") == 0

        # The active replica works while the standby waits.
        edge_pool(make_node, f"{unique}1", count=1)
        first = f"ha1-{unique}"
        gateways.create(first, spec_for(f"{unique}1"))
        wait_available(cluster, first, 1)
        gateways.wait_condition(first, "NodesConfigured", "True")
        time.sleep(5)  # a few of the standby's Lease reads
        page = samples(standby)
        assert api_writes(page) == 0
        reads = value(
            page, "edge_operator_api_requests_total", verb="get", resource="leases", code="200"
        )
        assert (reads or 0) >= 2
        if cluster.audit_log is not None:
            standby_writes = operator_writes(
                cluster.audit_log, audit_start, user=localcluster.CHART_SERVICE_ACCOUNT
            )
            assert standby_writes == []

        # The active replica dies without a chance to hand over.
        active.kill()
        killed = time.monotonic()
        edge2, _ = edge_pool(make_node, f"{unique}2", count=1)
        second = f"ha2-{unique}"
        gateways.create(second, spec_for(f"{unique}2"))
        wait_available(cluster, second, 1)
        gateways.wait_condition(second, "NodesConfigured", "True", timeout=60)
        took = time.monotonic() - killed
        print(f"failover: the standby converged a new gateway {took:.1f}s after SIGKILL")
        assert took < 60
        assert value(samples(standby), "leader_election_master_status", name="edge-operator") == 1
        assert cluster.node(edge2[0])["metadata"]["labels"]["edgeoperator.dev/gateway"] == second
        gateways.delete_all()  # the new leader restores the nodes
    finally:
        back_to_one_operator(operator, gateways, active, standby)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer(operator: OperatorProcess, path: str) -> None:
    assert operator.probe(path)


def test_owned_kinds_and_pods_are_watched_with_the_gateway_label_selector(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    """No cluster-wide unfiltered stream of kinds the operator needs only for its own
    objects: every list and watch of them (kopf's and ours) carries the label selector,
    so the API server sends the gateways' objects only (or, for controller.provider
    envoy-gateway, what Envoy Gateway made for a class: its class label)."""
    if cluster.audit_log is None:
        pytest.skip("reading the operator's requests needs the local control plane's audit log")
    plurals = {plural for _, _, plural in WATCHED}
    seen: dict[str, set[str]] = {}
    with cluster.audit_log.open() as log:
        for line in log:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if event["verb"] in ("list", "watch") and ref.get("resource") in plurals:
                query = parse_qs(urlsplit(event["requestURI"]).query)
                selector = (query.get("labelSelector") or [""])[0]
                seen.setdefault(f"{event['verb']} {ref['resource']}", set()).add(selector)
    assert {k.split()[1] for k in seen if k.startswith("watch ")} == plurals
    selectors = (names.GATEWAY_LABEL, envoy_gateway.OWNING_CLASS_LABEL)
    unfiltered = {
        k: bad
        for k, v in seen.items()
        if (bad := {s for s in v if not any(label in s for label in selectors)})
    }
    assert unfiltered == {}
