"""The load generator itself, through the lab: a steady stream through a quiet gateway
loses nothing, and a gateway that stops serving is counted, request by request."""

from __future__ import annotations

import time

from lab.load import Load
from tests.dataplane.traffic import KEEP_ALIVE, NEW_RATE, Traffic


def test_steady_load_through_a_quiet_gateway_loses_nothing(traffic: Traffic, unique: str) -> None:
    gw = traffic.gateway(f"load-{unique}")
    with traffic.load(gw) as load:
        time.sleep(2)
        start = time.monotonic()
        time.sleep(10)
        end = time.monotonic()
    results = load.stop()
    print(results.summary(start, end))
    assert len(results.of(("new",))) >= 10 * NEW_RATE * 0.9
    assert len({o.connection for o in results.of(("keep-alive",))}) >= KEEP_ALIVE
    assert results.failures == []
    assert results.of(("slow",))
    # Keep-alive connections live one health-check interval (1 s here), then are closed
    # with "Connection: close" and opened again: many connections, none failed.
    assert len({o.connection for o in results.of(("keep-alive",))}) > 3 * KEEP_ALIVE


def test_every_failed_request_is_counted(traffic: Traffic, unique: str) -> None:
    """Requests to an address nothing serves: each one fails, and each is recorded."""
    client = traffic.lab.topology.clients[0].name
    with Load(client, "203.0.113.250", new_rate=20, keep_alive=2, timeout=0.5) as load:
        time.sleep(3)
    results = load.stop()
    print(results.summary())
    assert results.total >= 10
    assert results.ok == 0
    assert len(results.failures) == results.total
