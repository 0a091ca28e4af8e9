"""Prometheus metrics of the operator (prometheus-client), served at /metrics.

Names follow Prometheus conventions (base units, ``_total`` counters) and mirror
controller-runtime's where they mean the same thing: ``reconcile_total``,
``reconcile_errors_total`` and ``reconcile_time_seconds`` under the
``edge_operator_`` prefix, and ``leader_election_master_status`` as is, so
dashboards made for Go operators read these too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram

PREFIX: Final = "edge_operator"

RECONCILE_TOTAL = Counter(
    f"{PREFIX}_reconcile_total",
    "Reconcile passes per gateway by result: success, refused (the spec or the cluster"
    " state was refused with a reason) or error (the pass failed and is retried).",
    ["gateway", "result"],
)
RECONCILE_ERRORS = Counter(
    f"{PREFIX}_reconcile_errors_total",
    "Reconcile passes that were refused or failed, per gateway and reason (a condition"
    " reason such as MinWorkerNodes or ApplyFailed, or the error's kind).",
    ["gateway", "reason"],
)
RECONCILE_TIME = Histogram(
    f"{PREFIX}_reconcile_time_seconds",
    "Duration of one reconcile pass of one gateway.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
GATEWAY_READY = Gauge(
    f"{PREFIX}_gateway_ready", "1 when the gateway's Ready condition is True, else 0.", ["gateway"]
)
EDGE_NODES = Gauge(f"{PREFIX}_gateway_edge_nodes", "Edge nodes of the gateway.", ["gateway"])
EDGE_NODES_DESIRED = Gauge(
    f"{PREFIX}_gateway_edge_nodes_desired",
    "Edge nodes the gateway asks for: spec.nodes.count, else the number of spec.nodes.names,"
    " else the nodes its selector matches.",
    ["gateway"],
)
REPLICAS = Gauge(
    f"{PREFIX}_gateway_replicas", "Desired controller replicas of the gateway.", ["gateway"]
)
READY_REPLICAS = Gauge(
    f"{PREFIX}_gateway_ready_replicas", "Ready controller replicas of the gateway.", ["gateway"]
)
NODE_CHANGES = Counter(
    f"{PREFIX}_node_changes_total",
    "Changes the operator made to nodes, by gateway and action (label, taint, restore).",
    ["gateway", "action"],
)
API_REQUESTS = Counter(
    f"{PREFIX}_api_requests_total",
    "Requests the operator's reconciler made to the Kubernetes API, by verb, resource and"
    " HTTP status code (kopf's own watches and bookkeeping are not included).",
    ["verb", "resource", "code"],
)
LEADER = Gauge(
    "leader_election_master_status",
    "1 while this process holds the leader Lease (or runs without leader election), else 0.",
    ["name"],
)

EDGE_NODE_LB_HEALTHY = Gauge(
    f"{PREFIX}_edge_node_lb_healthy",
    "1 while the edge node passes the load balancer's health check as the operator probes it,"
    " 0 while it fails; absent while the operator cannot reach the node.",
    ["gateway", "node"],
)
_LB_HEALTH_SERIES: dict[str, set[str]] = {}

#: Every per-gateway gauge, for forgetting a deleted gateway.
_GATEWAY_GAUGES = (GATEWAY_READY, EDGE_NODES, EDGE_NODES_DESIRED, REPLICAS, READY_REPLICAS)


def observe_status(gateway: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    """Set the gateway's gauges from the status a pass wrote."""
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = (conditions.get("Ready") or {}).get("status") == "True"
    GATEWAY_READY.labels(gateway).set(1 if ready else 0)
    count = int(status.get("edgeNodeCount") or 0)
    EDGE_NODES.labels(gateway).set(count)
    nodes = spec.get("nodes") or {}
    desired = nodes.get("count") or len(nodes.get("names") or []) or count
    EDGE_NODES_DESIRED.labels(gateway).set(desired)
    REPLICAS.labels(gateway).set(int(status.get("replicas") or 0))
    READY_REPLICAS.labels(gateway).set(int(status.get("readyReplicas") or 0))


def set_lb_health(gateway: str, verdicts: Mapping[str, bool | None]) -> None:
    """The gateway's per-node health-check gauge, exactly for ``verdicts`` (None: absent)."""
    known = {node for node, healthy in verdicts.items() if healthy is not None}
    for node in _LB_HEALTH_SERIES.get(gateway, set()) - known:
        EDGE_NODE_LB_HEALTHY.remove(gateway, node)
    for node in known:
        EDGE_NODE_LB_HEALTHY.labels(gateway, node).set(1 if verdicts[node] else 0)
    _LB_HEALTH_SERIES[gateway] = known


def forget_lb_health(gateway: str) -> None:
    set_lb_health(gateway, {})
    _LB_HEALTH_SERIES.pop(gateway, None)


def forget(gateway: str) -> None:
    """Drop a deleted gateway's series."""
    for gauge in _GATEWAY_GAUGES:
        try:
            gauge.remove(gateway)
        except KeyError:
            continue
    forget_lb_health(gateway)


def exported_names() -> set[str]:
    """Every sample name the operator exports (for checking dashboards and alerts)."""
    out: set[str] = set()
    for metric in (
        RECONCILE_TOTAL,
        RECONCILE_ERRORS,
        RECONCILE_TIME,
        NODE_CHANGES,
        API_REQUESTS,
        LEADER,
        EDGE_NODE_LB_HEALTHY,
        *_GATEWAY_GAUGES,
    ):
        for family in metric.describe():
            suffixes = {"counter": ("total",), "histogram": ("bucket", "count", "sum")}
            if family.type in suffixes:
                out.update(f"{family.name}_{s}" for s in suffixes[family.type])
            else:
                out.add(family.name)
    return out
