"""The load generator itself: a steady stream through a quiet gateway loses nothing,
and a gateway that stops serving is counted, request by request."""

from __future__ import annotations

import time

from lab.load import Load
from tests.dataplane.traffic import Traffic


def test_steady_load_through_a_quiet_gateway_loses_nothing(traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(f"load-{unique}")
    with Load(traffic.lab.topology.clients[0].name, gw.address, rate=60) as load:
        time.sleep(10)
    results = load.stop()
    print(results.summary())
    assert results.total >= 500
    assert results.rate >= 50
    assert results.failures == []


def test_every_failed_request_is_counted(traffic: Traffic, unique: str) -> None:
    """Requests to an address nothing serves: each one fails, and each is recorded."""
    with Load(traffic.lab.topology.clients[0].name, "203.0.113.250", rate=20, timeout=0.5) as load:
        time.sleep(3)
    results = load.stop()
    print(results.summary())
    assert results.total >= 10
    assert results.ok == 0
    assert len(results.failures) == results.total
