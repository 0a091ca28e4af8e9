"""The operator as a real process, the way users run it out of cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Protocol

from tests.e2e.cluster import wait_for


class HasMetrics(Protocol):
    """Anything whose /metrics page can be read: a process, the chart's pods."""

    def metrics_text(self) -> str: ...


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """``edge-operator run`` against the test cluster, with its log in a file."""

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        *,
        resync_seconds: float = 300,
        leader_election: bool = False,
        metrics: bool = False,
        probe_edge_nodes: bool = False,
    ) -> None:
        """``probe_edge_nodes``: off by default, because kwok nodes run no kube-proxy and
        their addresses are not on this machine (no probe may leave it); the dataplane
        tier, whose nodes are real, turns it on."""
        self.kubeconfig = kubeconfig
        self.probe_edge_nodes = probe_edge_nodes
        self.log = log
        self.resync_seconds = resync_seconds
        self.leader_election = leader_election
        self.metrics = metrics
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0

    def start(self, wait: bool = True) -> None:
        """Start it; with ``wait``, until /readyz answers (leading with its watches
        running, or a standby that has read the Lease)."""
        assert self.proc is None, "already running"
        self.port = _free_port()
        extra = ["--leader-election", "--leader-election-namespace", "edge-system"]
        args = extra if self.leader_election else []
        if self.metrics:
            self.metrics_port = _free_port()
            args += ["--metrics-port", str(self.metrics_port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edge_operator",
                    "run",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--health-port",
                    str(self.port),
                    *args,
                    "--resync-seconds",
                    str(self.resync_seconds),
                    "--log-level",
                    "DEBUG",
                    "--probe-edge-nodes",
                    "on" if self.probe_edge_nodes else "off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if not wait:
            return
        try:
            wait_for(lambda: self.probe("/readyz"), "the operator's readiness endpoint", 60)
        except BaseException:
            self.stop()
            raise

    def ensure_running(self) -> None:
        """Started again if a test stopped it."""
        if self.proc is None:
            self.start()

    def probe(self, path: str) -> bool:
        """GET the health server's ``path``; True on 200."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the operator exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics_text(self) -> str:
        """The /metrics page (the process must run with ``metrics=True``)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, like a node crash or an OOM kill."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
