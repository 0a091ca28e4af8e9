"""Leader election decisions (pure) and how API requests are named for metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edge_operator.kube import request_labels
from edge_operator.leader import LeaseConfig, claimed, held_by_other, micro_time, released

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
ME = LeaseConfig("edge-system", "edge-operator", "pod-a")


def lease(holder: str | None, renewed: datetime, seconds: int = 15) -> dict[str, Any]:
    return {
        "metadata": {"name": "edge-operator", "namespace": "edge-system", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": seconds,
            "renewTime": micro_time(renewed),
            "acquireTime": micro_time(renewed - timedelta(minutes=5)),
            "leaseTransitions": 2,
        },
    }


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (None, False),
        (lease("pod-b", NOW - timedelta(seconds=5)), True),
        (lease("pod-b", NOW - timedelta(seconds=16)), False),  # expired
        (lease("pod-a", NOW - timedelta(seconds=5)), False),  # mine
        (lease(None, NOW - timedelta(seconds=1), seconds=1), False),  # released
    ],
    ids=["none", "other-fresh", "other-expired", "mine", "released"],
)
def test_held_by_other(current: dict[str, Any] | None, expected: bool) -> None:
    assert held_by_other(current, "pod-a", NOW) is expected


def test_claiming_a_new_lease() -> None:
    body = claimed(None, ME, NOW)
    assert body["metadata"] == {"name": "edge-operator", "namespace": "edge-system"}
    assert body["spec"] == {
        "holderIdentity": "pod-a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-21T12:00:00.000000Z",
        "renewTime": "2026-11-21T12:00:00.000000Z",
        "leaseTransitions": 0,
    }


def test_taking_over_counts_a_transition_and_renewing_does_not() -> None:
    taken = claimed(lease("pod-b", NOW - timedelta(seconds=30)), ME, NOW)
    assert taken["spec"]["leaseTransitions"] == 3
    assert taken["spec"]["acquireTime"] == micro_time(NOW)
    assert taken["metadata"]["resourceVersion"] == "7"  # a conditional update
    mine = lease("pod-a", NOW - timedelta(seconds=2))
    renewed = claimed(mine, ME, NOW)
    assert renewed["spec"]["leaseTransitions"] == 2
    assert renewed["spec"]["acquireTime"] == mine["spec"]["acquireTime"]
    assert renewed["spec"]["renewTime"] == micro_time(NOW)


def test_released_lease_is_free_at_once() -> None:
    free = released(lease("pod-a", NOW), NOW)
    assert free["spec"]["holderIdentity"] is None
    assert held_by_other(free, "pod-b", NOW + timedelta(seconds=2)) is False


@pytest.mark.parametrize(
    ("method", "path", "labels"),
    [
        ("POST", "/api/v1/namespaces/ns/pods/p/eviction", ("create", "pods/eviction")),
        ("GET", "/apis/apps/v1/deployments", ("list", "deployments")),
        ("GET", "/apis/apps/v1/daemonsets", ("list", "daemonsets")),
        ("GET", "/apis/apps/v1/namespaces/ns/deployments/d", ("get", "deployments")),
        ("GET", "/api/v1/namespaces/foo", ("get", "namespaces")),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l?x=1", ("update", "leases")),
        ("GET", "/api/v1/nodes?limit=500", ("list", "nodes")),
        ("PATCH", "/api/v1/nodes/n", ("patch", "nodes")),
        ("POST", "/api/v1/namespaces/default/events", ("create", "events")),
        (
            "PATCH",
            "/apis/edgeoperator.dev/v1alpha1/edgegateways/g/status",
            ("patch", "edgegateways/status"),
        ),
        ("GET", "/apis/edgeoperator.dev/v1alpha1/edgegateways/g", ("get", "edgegateways")),
        ("DELETE", "/apis/networking.k8s.io/v1/ingressclasses/c", ("delete", "ingressclasses")),
    ],
)
def test_requests_name_their_verb_and_resource(
    method: str, path: str, labels: tuple[str, str]
) -> None:
    """One request path, one metrics table: the labels come from the method and path."""
    assert request_labels(method, path) == labels
