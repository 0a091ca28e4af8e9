"""Liveness and readiness endpoints, served on the health port for the whole process.

- ``/healthz`` (liveness): while this process leads, kopf's own liveness endpoint
  (kopf serves it on a loopback port and answers only while its reactor is
  responsive); while it stands by, the process is alive.
- ``/readyz`` (readiness): a leader is ready once its watches run: the startup
  handler has listed the nodes and kopf answers its liveness probe. A standby is
  ready once it has read the Lease, i.e. it can take over; a standby that is never
  ready would stall every rolling update of the operator's Deployment.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: How long kopf gets to open its liveness endpoint before /healthz reports it.
STARTUP_GRACE = 60.0


class State:
    """What the probes report; written by the CLI and the kopf startup handler."""

    def __init__(self) -> None:
        self.kopf_liveness_url = ""
        self.kopf_started_at = 0.0
        #: Set when this process runs kopf (it leads, or runs without election).
        self.leading = threading.Event()
        #: Set by a standby once it has read the Lease.
        self.standby_ok = threading.Event()
        #: Set by the startup handler once the node cache is filled (watches start next).
        self.watching = threading.Event()

    def _kopf_alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.kopf_liveness_url, timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return time.monotonic() - self.kopf_started_at < STARTUP_GRACE

    def live(self) -> bool:
        return self._kopf_alive() if self.leading.is_set() else True

    def ready(self) -> bool:
        if not self.leading.is_set():
            return self.standby_ok.is_set()
        return self.watching.is_set() and self._kopf_alive()


STATE = State()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        checks = {"/healthz": STATE.live, "/readyz": STATE.ready}
        check = checks.get(self.path.split("?")[0])
        if check is None:
            self.send_error(404)
            return
        ok = check()
        body = b"ok\n" if ok else b"not ready\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds are not worth a log line."""


def serve(address: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
