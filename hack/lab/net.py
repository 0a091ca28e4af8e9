"""Network namespaces, links and addresses of the lab, and a way into them.

Every lab host (node, load balancer, client, CDN) is a network namespace named
``eo-<host>``. Commands run there through ``nsenter --net`` (not ``ip netns exec``,
which also unshares the mount namespace and remounts /sys, hiding cgroups and
kubelet mounts from containerd). Python code reaches into a namespace from a thread
of its own: ``setns(CLONE_NEWNET)`` moves only the calling thread, and every socket
that thread opens belongs to that namespace.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PREFIX = "eo-"
NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000


class NetError(Exception):
    """A network set-up command failed."""


def netns(host: str) -> str:
    """The network namespace of a lab host."""
    return f"{PREFIX}{host}"


def netns_path(host: str) -> Path:
    return NETNS_DIR / netns(host)


def run(*argv: str, ns: str | None = None, input: str | None = None, check: bool = True) -> str:
    """Run a command (in the host's namespace ``ns``); return its stdout."""
    cmd = [*(["nsenter", f"--net={netns_path(ns)}"] if ns else []), *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input, check=False)
    if check and proc.returncode:
        raise NetError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def ip(*args: str, ns: str | None = None) -> None:
    run("ip", *args, ns=ns)


def sysctl(ns: str, key: str, value: str) -> None:
    # /proc/sys/net is per network namespace: a writer inside it changes only its own.
    run("sh", "-c", f"echo {value} > /proc/sys/{key.replace('.', '/')}", ns=ns)


def add_namespace(host: str) -> None:
    ip("netns", "add", netns(host))
    ip("link", "set", "lo", "up", ns=host)


def namespaces() -> list[str]:
    """Every lab namespace on this machine, by host name."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(
        p.name.removeprefix(PREFIX) for p in NETNS_DIR.iterdir() if p.name.startswith(PREFIX)
    )


def delete_namespace(host: str) -> None:
    run("ip", "netns", "delete", netns(host), check=False)


def veth(a_ns: str | None, a_name: str, b_ns: str, b_name: str) -> None:
    """A veth pair with one end in each namespace (None: the machine's own)."""
    where_a = ["netns", netns(a_ns)] if a_ns else []
    ip(
        "link",
        "add",
        a_name,
        *where_a,
        "type",
        "veth",
        "peer",
        "name",
        b_name,
        "netns",
        netns(b_ns),
    )
    ip("link", "set", a_name, "up", ns=a_ns)
    ip("link", "set", b_name, "up", ns=b_ns)


def nft(ns: str, ruleset: str) -> None:
    """Load an nftables ruleset (one atomic transaction) in a namespace."""
    run("nft", "-f", "-", ns=ns, input=ruleset)


def enter(host: str) -> None:
    """Move the calling thread into the host's namespace (for a thread pool's initializer)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns_path(host), os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {netns(host)}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def call_in(host: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a new thread inside the host's namespace and return its result."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            enter(host)
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name=f"netns-{host}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
