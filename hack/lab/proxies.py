"""HAProxy (from Debian) as the lab's L7 CDN and as its PROXY-protocol load balancer.

Each runs in master-worker mode in its namespace; a changed configuration is loaded
with SIGUSR2 to the master, which starts new workers and lets the old ones finish.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import localcluster
from lab import net

_GLOBAL = """global
  maxconn 4096

defaults
  timeout connect 2s
  timeout client 60s
  timeout server 60s
"""


@dataclass(frozen=True)
class Backend:
    """One node behind a PROXY-protocol frontend."""

    name: str
    address: str
    port: int


@dataclass(frozen=True)
class Frontend:
    """An address:port of the load balancer and the nodes' nodePort behind it."""

    name: str
    address: str
    port: int
    backends: tuple[Backend, ...]
    check_port: int
    check_path: str
    interval_seconds: int
    threshold: int


def cdn_config(listen: str, origin: str, port: int) -> str:
    """An L7 proxy that behaves like a CDN in front of an origin: it appends the client's
    address to X-Forwarded-For, states the scheme the client used (X-Forwarded-Proto),
    drops the forwarded host and port a client may have sent, and passes every other
    header on as the client wrote it (X-Real-Ip, Forwarded, True-Client-IP, ...)."""
    return f"""{_GLOBAL}
frontend cdn
  mode http
  bind {listen}:80
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request del-header X-Forwarded-Host
  http-request del-header X-Forwarded-Port
  default_backend origin

backend origin
  mode http
  server origin {origin}:{port}
"""


def proxy_protocol_config(frontends: Sequence[Frontend]) -> str:
    """A TCP load balancer that sends a PROXY v2 header and checks nodes like a cloud's."""
    parts = [_GLOBAL]
    for fe in frontends:
        parts.append(
            f"frontend {fe.name}\n  mode tcp\n  bind {fe.address}:{fe.port}\n"
            f"  default_backend {fe.name}\n"
        )
        lines = [
            f"backend {fe.name}",
            "  mode tcp",
            "  balance random",
            f"  option httpchk GET {fe.check_path}",
            f"  default-server check port {fe.check_port} inter {fe.interval_seconds}s"
            f" fall {fe.threshold} rise {fe.threshold} send-proxy-v2",
        ]
        lines += [f"  server {b.name} {b.address}:{b.port}" for b in fe.backends]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def run(root: Path, name: str, host: str, config: str) -> None:
    """Start HAProxy ``name`` in the host's namespace with ``config``, or reload it."""
    path = root / "proxies" / f"{name}.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == config and localcluster.process_pid(root, name):
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(config)
    tmp.replace(path)
    pid = localcluster.process_pid(root, name)
    if pid is not None:
        os.kill(pid, signal.SIGUSR2)
        return
    argv = ["nsenter", f"--net={net.netns_path(host)}", "haproxy", "-W", "-db", "-f", str(path)]
    localcluster.start_process(root, name, argv)
