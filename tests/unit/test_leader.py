"""Leader election decisions (pure), the watchdog and the fence of a leader that lost
its Lease (against real sockets), and how API requests are named for metrics."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from edge_operator.kube import Kube, request_labels
from edge_operator.leader import (
    Elector,
    LeaseConfig,
    claimed,
    held_by_other,
    micro_time,
    released,
)

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


def _black_hole() -> socket.socket:
    """A listening socket on loopback that accepts (the kernel does) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server


def test_watchdog_stops_a_leader_whose_renewal_hangs() -> None:
    """The API server stops answering (a cut link): the renewal hangs in its request,
    and the watchdog still calls on_lost at renew_deadline, not when the request ends."""
    server = _black_hole()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.getsockname()[1]}"
    config = LeaseConfig("edge-system", "edge-operator", "pod-a", renew_deadline=1.5, retry=0.2)
    config = dataclasses.replace(config, request_timeout=30.0)  # longer than the deadline
    elector = Elector(Kube(client.ApiClient(configuration), timeout=30.0), config)
    elector.leading.set()
    lost = threading.Event()
    start = time.monotonic()
    elector.keep(on_lost=lost.set)
    assert lost.wait(10), "on_lost was never called"
    assert 1.5 <= time.monotonic() - start < 3.0
    assert not elector.leading.is_set()
    server.close()


FENCED = """
import socket, sys
from edge_operator.leader import fence
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.sendall(b"GET / HTTP/1.1\\r\\n")
sys.stdout.write("sent\\n"); sys.stdout.flush()
sys.stdin.readline()
fence()
"""


def test_fence_resets_connections_instead_of_closing_them() -> None:
    """A fenced process's peer gets RST (nothing left to deliver later), where a
    plain exit would send FIN after the kernel delivered what was queued."""
    server = _black_hole()
    with subprocess.Popen(
        [sys.executable, "-c", FENCED, str(server.getsockname()[1])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline() == "sent\n"
        peer, _ = server.accept()
        assert peer.recv(100).startswith(b"GET /")
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(10) == 1
    with pytest.raises(ConnectionResetError):
        peer.recv(100)
    peer.close()
    server.close()
