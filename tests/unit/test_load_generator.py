"""The lab's load generator against real sockets on 127.0.0.1: what it counts.

A server that closes a keep-alive connection right after an answer that did not say so
is what a proxy does when it shuts down: the client's next request on that connection
fails. The generator must count each such request as failed, on a reused connection,
and never send it again; a server that says ``Connection: close`` loses nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lab.load import Load


class Server(ThreadingHTTPServer):
    daemon_threads = True
    rude = False  # close after each answer without saying so
    node = "worker-1"
    received = 0
    lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.received += 1
        body = json.dumps(
            {"peer": "10.244.1.7:40000", "pod": "echo-1", "node": self.server.node}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if not self.server.rude:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def server(rude: bool, node: str = "worker-1") -> Iterator[Server]:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.rude, srv.node = rude, node
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def run(srv: Server, seconds: float = 1.0) -> Load:
    load = Load(
        "",
        "127.0.0.1",
        srv.server_address[1],
        backend_nodes={"worker-1"},
        new_rate=0,
        keep_alive=2,
        keep_alive_rate=40,
    )
    with load:
        time.sleep(seconds)
    return load


def test_a_request_on_a_connection_the_server_closed_is_a_failure_never_sent_again() -> None:
    with server(rude=True) as srv:
        results = run(srv).results
    failed = results.failures
    print(results.summary())
    assert results.ok >= 10
    assert len(failed) >= 10
    assert all(o.kind == "keep-alive" and o.reused for o in failed)
    # Every request the server answered is a success; none of the failed ones reached it.
    assert srv.received == results.ok


def test_connection_close_loses_nothing_and_opens_a_connection_per_request() -> None:
    with server(rude=False) as srv:
        results = run(srv).results
    print(results.summary())
    assert results.failures == []
    assert srv.received == results.ok >= 20
    assert len({o.connection for o in results.outcomes}) == results.total


def test_an_answer_from_elsewhere_than_the_backend_is_a_failure() -> None:
    with server(rude=False, node="edge-1") as srv:
        results = run(srv, 0.3).results
    assert results.ok == 0
    assert {o.error for o in results.failures} == {"answered from edge-1, not a backend node"}
