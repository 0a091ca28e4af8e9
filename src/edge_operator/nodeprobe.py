"""Probing each edge node's load-balancer health check, as a cloud load balancer does.

Under ``externalTrafficPolicy: Local`` a cloud load balancer sends traffic to a node only
while ``http://<node>:<healthCheckNodePort>/healthz`` answers 200: kube-proxy answers it,
200 when the node has a ready endpoint of the Service, 503 when it has none. Under
``Cluster`` the load balancer checks kube-proxy itself, ``<node>:10256/healthz``. The
operator asks the same question of every edge node every
``rollout.loadBalancerHealthCheck.intervalSeconds``, so the gateway's status can say
which node the load balancer has dropped and why, before anyone notices lost capacity.

The answers are kept here (``Prober.results``), read by the reconcile pass as a fact,
and a change of any node's verdict queues a pass of its gateway. Nothing is written
to the cluster from here.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from edge_operator import metrics
from edge_operator.desired.nodes import holder
from edge_operator.facts import GatewayFacts, HealthProbe, NodeFacts

log = logging.getLogger(__name__)

#: kube-proxy's own health endpoint (--healthz-bind-address), which a load balancer
#: checks under externalTrafficPolicy Cluster (pkg/proxy/healthcheck/proxier_health.go).
KUBE_PROXY_HEALTH_PORT = 10256
PATH = "/healthz"
#: The longest a probe waits (to connect, then for the status line); shorter when the
#: interval is.
TIMEOUT_SECONDS = 2.0
#: How often the loop looks for gateways whose probes are due.
TICK_SECONDS = 0.25
#: Errors that mean the operator could not reach the node at all.
UNREACHABLE = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN}
)


@dataclass(frozen=True)
class Target:
    node: str
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}{PATH}"


def targets(gw: GatewayFacts, nodes: Iterable[NodeFacts], health_port: int) -> list[Target]:
    """The gateway's edge nodes and where to probe each (pure).

    ``health_port``: the Service's healthCheckNodePort (0: not known yet).
    """
    assert gw.spec is not None
    port = (
        KUBE_PROXY_HEALTH_PORT
        if gw.spec.service.external_traffic_policy == "Cluster"
        else health_port
    )
    return [Target(n.name, n.address, port) for n in nodes if holder(n) == gw.name]


def verdict(target: Target, status: int | None, error: BaseException | None) -> HealthProbe:
    """What one probe's outcome means for the load balancer (pure)."""
    where = str(target)
    if error is None:
        return HealthProbe(status == 200, f"{where}: HTTP {status}")
    if isinstance(error, ConnectionRefusedError):
        return HealthProbe(False, f"{where}: connection refused (nothing listens there)")
    if isinstance(error, ConnectTimeoutError):
        return HealthProbe(None, f"{where}: no answer to connect within {error.seconds:g} s")
    if isinstance(error, OSError) and error.errno in UNREACHABLE:
        return HealthProbe(None, f"{where}: {error.strerror or error}")
    if isinstance(error, TimeoutError):
        return HealthProbe(False, f"{where}: connected, but no answer in time")
    return HealthProbe(False, f"{where}: {type(error).__name__}: {error}")


class ConnectTimeoutError(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"connect timed out after {seconds:g} s")
        self.seconds = seconds


async def probe(target: Target, timeout: float) -> HealthProbe:
    """One HTTP GET of the target's health check; never raises."""
    if not target.address:
        return HealthProbe(None, "the node reports no address")
    if not target.port:
        return HealthProbe(None, "the Service has no healthCheckNodePort yet")
    try:
        connect = asyncio.open_connection(target.address, target.port)
        try:
            reader, writer = await asyncio.wait_for(connect, timeout)
        except TimeoutError as slow:
            raise ConnectTimeoutError(timeout) from slow
        try:
            request = f"GET {PATH} HTTP/1.1\r\nHost: {target.address}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"not an HTTP answer: {line[:40]!r}")
        return verdict(target, int(parts[1]), None)
    except (OSError, ValueError, ConnectTimeoutError) as error:
        return verdict(target, None, error)


class Prober:
    """Probes every gateway's edge nodes on its own interval, keeps the latest answers.

    ``gateways`` and ``nodes`` give the current view (the operator's watch caches);
    ``changed(gateway)`` is called when a node's verdict changes.
    """

    def __init__(
        self,
        gateways: Callable[[], Mapping[str, GatewayFacts]],
        nodes: Callable[[], Mapping[str, NodeFacts]],
        changed: Callable[[str], None],
    ) -> None:
        self._gateways = gateways
        self._nodes = nodes
        self._changed = changed
        #: gateway -> its Service's healthCheckNodePort, from the Service watch.
        self.health_ports: dict[str, int] = {}
        self._results: dict[str, dict[str, HealthProbe]] = {}
        self._due: dict[str, float] = {}
        self._running: set[asyncio.Task[None]] = set()

    def results(self, gateway: str) -> dict[str, HealthProbe]:
        """The latest answer of each of the gateway's edge nodes (a copy)."""
        return dict(self._results.get(gateway, {}))

    def service_seen(self, gateway: str, service: Mapping[str, object]) -> None:
        spec = service.get("spec")
        port = spec.get("healthCheckNodePort") if isinstance(spec, Mapping) else None
        self.health_ports[gateway] = int(port) if isinstance(port, int) else 0

    def forget(self, gateway: str) -> None:
        self._results.pop(gateway, None)
        self._due.pop(gateway, None)
        self.health_ports.pop(gateway, None)
        metrics.forget_lb_health(gateway)

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            gateways = self._gateways()
            for gone in set(self._results) - set(gateways):
                self.forget(gone)
            nodes = None
            for name, gw in gateways.items():
                if gw.spec is None or gw.deleting or self._due.get(name, 0.0) > now:
                    continue
                interval = float(gw.spec.rollout.load_balancer_health_check.interval_seconds)
                self._due[name] = now + interval
                nodes = nodes if nodes is not None else self._nodes()
                found = targets(gw, nodes.values(), self.health_ports.get(name, 0))
                task = asyncio.create_task(self._round(name, found, min(interval, TIMEOUT_SECONDS)))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            await asyncio.sleep(TICK_SECONDS)

    async def _round(self, gateway: str, found: list[Target], timeout: float) -> None:
        answers = await asyncio.gather(*(probe(t, timeout) for t in found))
        fresh = {t.node: a for t, a in zip(found, answers, strict=True)}
        before = self._results.get(gateway, {})
        if gateway not in self._gateways():
            return  # deleted while probing
        self._results[gateway] = fresh
        verdicts = {n: a.healthy for n, a in fresh.items()}
        metrics.set_lb_health(gateway, verdicts)
        if verdicts != {n: a.healthy for n, a in before.items()}:
            for node, answer in sorted(fresh.items()):
                if before.get(node, HealthProbe(None, "")).healthy != answer.healthy:
                    log.info("edge node %s of %s: health check %s", node, gateway, answer.detail)
            self._changed(gateway)
