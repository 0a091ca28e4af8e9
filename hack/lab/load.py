"""A steady stream of HTTP requests from a client namespace, every outcome recorded.

Three kinds of request run at once, each in threads of its own:

- ``new``: each request on a connection of its own (``Connection: close``), so the load
  balancer picks a node for every one: what it does with new flows;
- ``keep-alive``: each thread keeps one connection and sends on it again and again; when
  the server answers ``Connection: close`` the next request opens a new one. A request
  that fails on a reused connection is a failure like any other: nothing is ever sent
  again, so clients that do not resend (POSTs, many SDKs) would see exactly these;
- ``slow`` (optional): a request started every ``slow_every`` seconds on a new
  connection, asking the echo backend to answer only after ``slow_delay``: requests in
  flight while a proxy shuts down, which must complete.

A request succeeds only with a 2xx answer whose body is the echo backend's JSON from a
pod on one of ``backend_nodes``; anything else (a refused, reset or timed-out
connection, end of file on a reused connection, any other status, another body) is a
failure. Each outcome keeps its start, latency, connection and the proxy that served it
(the echo backend's peer), so a test can say when failures happened, how fast the
stream was in every second and which proxy pod held which keep-alive connection.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from lab import net

KINDS = ("new", "keep-alive", "slow")


@dataclass(frozen=True)
class Outcome:
    at: float  # time.monotonic() when the request was sent
    latency: float  # seconds until the whole answer was read, or the failure
    kind: str  # "new", "keep-alive" or "slow"
    connection: int  # a number per TCP connection
    reused: bool  # sent on a connection that had carried a request before
    error: str | None  # None: a success; else "HTTP 404", "RemoteDisconnected", ...
    proxy: str = ""  # the address the echo backend saw as its peer: the proxy pod
    backend: str = ""  # the echo pod that answered


@dataclass
class Results:
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def ok(self) -> int:
        return sum(o.error is None for o in self.outcomes)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def rate(self) -> float:
        return self.total / max(self.stopped - self.started, 1e-9)

    def of(self, kinds: Collection[str]) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in kinds]

    def per_second(
        self, start: float, end: float, kinds: Collection[str] = ("new", "keep-alive")
    ) -> list[int]:
        """Successful requests of ``kinds`` sent in each whole second from ``start`` to
        ``end`` (a last partial second is left out)."""
        buckets = [0] * max(int(end - start), 0)
        for o in self.of(kinds):
            second = int(o.at - start)
            if o.error is None and 0 <= second < len(buckets):
                buckets[second] += 1
        return buckets

    def max_latency(self, kinds: Collection[str] = ("new", "keep-alive")) -> float:
        return max((o.latency for o in self.of(kinds) if o.error is None), default=0.0)

    def keep_alive_proxies(self, since: float = 0.0) -> dict[int, set[str]]:
        """Keep-alive connection -> the proxies that answered on it from ``since`` on."""
        held: dict[int, set[str]] = defaultdict(set)
        for o in self.of(("keep-alive",)):
            if o.at >= since and o.proxy:
                held[o.connection].add(o.proxy)
        return dict(held)

    def summary(self, start: float | None = None, end: float | None = None) -> str:
        """Counts per kind, failures by kind, and (given a window) the slowest second."""
        parts = []
        for kind in KINDS:
            done = self.of((kind,))
            if not done:
                continue
            failed = [o for o in done if o.error is not None]
            reused = sum(o.reused for o in failed)
            connections = len({o.connection for o in done})
            parts.append(
                f"{kind}: {len(done)} requests on {connections} connections, {len(failed)}"
                f" failed ({reused} on a reused connection)"
            )
        line = (
            f"{self.total} requests in {self.stopped - self.started:.1f} s ({self.rate:.0f}/s),"
            f" {len(self.failures)} failed, 0 sent again; " + "; ".join(parts)
        )
        kinds = Counter(
            f"{o.error} ({o.kind}{', reused' if o.reused else ''})" for o in self.failures
        )
        if kinds:
            line += f"; failures: {dict(kinds)}"
        if start is not None and end is not None:
            seconds = self.per_second(start, end)
            if seconds:
                line += (
                    f"; in the {len(seconds)} s window: at least {min(seconds)} successes/s,"
                    f" slowest success {self.max_latency():.3f} s"
                )
        return line


class Load:
    """Requests from ``client`` to ``host:port`` until stopped.

    with Load("client-1", "203.0.113.10", backend_nodes={"worker-1", "worker-2"}) as load:
        ...  # change things
    print(load.results.summary())

    ``client`` "" sends from the caller's own network namespace.

    ``new_rate`` requests/s on new connections (over 4 threads), ``keep_alive``
    connections at ``keep_alive_rate`` requests/s each, and with ``slow_delay`` > 0 a
    slow request every ``slow_every`` seconds.
    """

    NEW_THREADS = 4

    def __init__(
        self,
        client: str,
        host: str,
        port: int = 80,
        *,
        backend_nodes: Iterable[str] = (),
        new_rate: float = 100.0,
        keep_alive: int = 6,
        keep_alive_rate: float = 15.0,
        slow_delay: float = 0.0,
        slow_every: float = 0.5,
        timeout: float = 2.0,
    ) -> None:
        self.client, self.host, self.port = client, host, port
        self.backend_nodes = frozenset(backend_nodes)
        self.timeout = timeout
        self.slow_delay, self.slow_every = slow_delay, slow_every
        self.results = Results()
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._slow: list[threading.Thread] = []
        self._threads = [
            threading.Thread(
                target=self._new, args=(self.NEW_THREADS / new_rate,), name="load-new", daemon=True
            )
            for _ in range(self.NEW_THREADS if new_rate > 0 else 0)
        ] + [
            threading.Thread(
                target=self._keep_alive, args=(1 / keep_alive_rate,), name="load-ka", daemon=True
            )
            for _ in range(keep_alive)
        ]
        if slow_delay > 0:
            self._threads.append(threading.Thread(target=self._slow_starter, daemon=True))

    def __enter__(self) -> Load:
        self.results.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Results:
        """Stop sending; wait for every request on its way (slow ones included)."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        for thread in list(self._slow):
            thread.join()
        self.results.stopped = self.results.stopped or time.monotonic()
        return self.results

    # --- one request ----------------------------------------------------------------

    def _judge(self, status: int, body: bytes) -> tuple[str | None, str, str]:
        """(error, proxy, backend) of an answer."""
        if not 200 <= status < 300:
            return f"HTTP {status}", "", ""
        try:
            seen = json.loads(body)
            proxy, backend, node = seen["peer"].rsplit(":", 1)[0], seen["pod"], seen["node"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return "not the echo backend's answer", "", ""
        if self.backend_nodes and node not in self.backend_nodes:
            return f"answered from {node}, not a backend node", proxy, backend
        return None, proxy, backend

    def _send(
        self, conn: http.client.HTTPConnection, kind: str, number: int, path: str, close: bool
    ) -> Outcome:
        reused = conn.sock is not None
        start = time.monotonic()
        try:
            conn.request("GET", path, headers={"Connection": "close"} if close else {})
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as failure:
            conn.close()
            return Outcome(
                start, time.monotonic() - start, kind, number, reused, type(failure).__name__
            )
        error, proxy, backend = self._judge(response.status, body)
        return Outcome(start, time.monotonic() - start, kind, number, reused, error, proxy, backend)

    def _record(self, outcome: Outcome) -> None:
        with self.results.lock:
            self.results.outcomes.append(outcome)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    # --- the threads ------------------------------------------------------------------

    def _steady(self, interval: float, once: Callable[[], None]) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            once()
            # A steady schedule: a slow answer is followed by the next request at once,
            # never by a burst that would make up for it.
            due = max(due + interval, time.monotonic())
            self._stop.wait(due - time.monotonic())

    def _enter(self) -> None:
        if self.client:
            net.enter(self.client)

    def _new(self, interval: float) -> None:
        self._enter()

        def once() -> None:
            conn = self._connection(self.timeout)
            try:
                self._record(self._send(conn, "new", next(self._ids), "/json", close=True))
            finally:
                conn.close()

        self._steady(interval, once)

    def _keep_alive(self, interval: float) -> None:
        self._enter()
        conn = self._connection(self.timeout)
        number = 0

        def once() -> None:
            nonlocal number
            if conn.sock is None:  # new, closed by the server, or broken
                number = next(self._ids)
            self._record(self._send(conn, "keep-alive", number, "/json", close=False))

        try:
            self._steady(interval, once)
        finally:
            conn.close()

    def _slow_starter(self) -> None:
        def one() -> None:
            self._enter()
            conn = self._connection(self.slow_delay + 2 * self.timeout)
            try:
                path = f"/json?delay={self.slow_delay}s"
                self._record(self._send(conn, "slow", next(self._ids), path, close=True))
            finally:
                conn.close()

        def start() -> None:
            thread = threading.Thread(target=one, name="load-slow", daemon=True)
            thread.start()
            self._slow.append(thread)

        self._steady(self.slow_every, start)
