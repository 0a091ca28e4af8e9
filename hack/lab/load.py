"""A steady stream of HTTP requests from a client namespace, every failure recorded.

Half the requests go over one keep-alive connection (opened again after it breaks),
half on a new connection each, so both what the load balancer does with new flows and
what happens to established ones are seen. A failure is anything but a 2xx answer:
a refused or reset connection, a timeout, a keep-alive connection that breaks after the
answer began, any non-2xx status (404s included). Each is kept with its time, so a
test can say when it happened.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from lab import net

#: What a request on a reused connection meets when the server closed that connection
#: while the request was on its way: end of file, a reset, or a write to a closed socket.
CLOSED_IDLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class Failure:
    at: float  # time.monotonic()
    kind: str  # "HTTP 404", "ConnectionResetError", ...
    connection: str  # "keep-alive" or "new"


@dataclass
class Results:
    ok: int = 0
    failures: list[Failure] = field(default_factory=list)
    #: Requests sent again because the server had closed their idle keep-alive connection
    #: before answering a byte (each is counted here, never as a success of its own).
    retried: int = 0
    started: float = 0.0
    stopped: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)

    @property
    def rate(self) -> float:
        return self.total / max(self.stopped - self.started, 1e-9)

    def summary(self) -> str:
        kinds = Counter(f"{f.kind} ({f.connection})" for f in self.failures)
        return (
            f"{self.total} requests in {self.stopped - self.started:.1f} s"
            f" ({self.rate:.0f}/s), {len(self.failures)} failed,"
            f" {self.retried} sent again on a new connection after an idle one was closed"
            + (f": {dict(kinds)}" if kinds else "")
        )


class Load:
    """Requests at ``rate`` per second from ``client`` to ``host:port`` until stopped.

    with Load("client-1", "203.0.113.10", rate=60) as load:
        ...  # change things
    print(load.results.summary())
    """

    def __init__(
        self, client: str, host: str, port: int = 80, rate: float = 60.0, timeout: float = 2.0
    ) -> None:
        self.client, self.host, self.port = client, host, port
        self.interval = 2.0 / rate  # each of the two workers sends half
        self.timeout = timeout
        self.results = Results()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(keep,), name=f"load-{keep}", daemon=True)
            for keep in (True, False)
        ]

    def __enter__(self) -> Load:
        self.results.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Results:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        self.results.stopped = self.results.stopped or time.monotonic()
        return self.results

    def _record(self, kind: str | None, connection: str) -> None:
        with self.results.lock:
            if kind is None:
                self.results.ok += 1
            else:
                self.results.failures.append(Failure(time.monotonic(), kind, connection))

    def _once(self, conn: http.client.HTTPConnection) -> str | None:
        reused = conn.sock is not None
        answered = False
        try:
            conn.request("GET", "/json")
            response = conn.getresponse()
            answered = True
            response.read()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            if reused and not answered and isinstance(error, CLOSED_IDLE):
                # The server closed the idle connection as this request reached it, and
                # no byte of an answer came: HTTP clients send an idempotent request again
                # on a new connection then (RFC 9112 9.3.1; Go's net/http in
                # persistConn.shouldRetryRequest, for EOF and for a reset alike), and so
                # does this one. A request on a new connection is never sent again.
                with self.results.lock:
                    self.results.retried += 1
                return self._once(conn)
            return type(error).__name__
        return None if 200 <= response.status < 300 else f"HTTP {response.status}"

    def _run(self, keep_alive: bool) -> None:
        net.enter(self.client)
        label = "keep-alive" if keep_alive else "new"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        due = time.monotonic()
        while not self._stop.is_set():
            if not keep_alive:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._record(self._once(conn), label)
            if not keep_alive:
                conn.close()
            # A steady schedule: a slow answer is followed by the next request at once,
            # never by a burst that would make up for it.
            due = max(due + self.interval, time.monotonic())
            self._stop.wait(due - time.monotonic())
        conn.close()
