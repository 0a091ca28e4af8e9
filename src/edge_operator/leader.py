"""Leader election with a coordination.k8s.io/v1 Lease, as client-go does it.

Several replicas run; one holds the Lease and runs kopf, the others only read
the Lease every ``retry`` seconds until it expires (a standby makes no writes).
The holder renews it every ``retry`` seconds; if it cannot for
``renew_deadline`` seconds it must stop at once (the process exits and is
restarted as a standby), because after ``lease_seconds`` another replica may
take over. Timings are client-go's and controller-runtime's defaults.

A leader cut off from the API server (its node's link down) must not write after a
standby may have taken over, not even when the link comes back: its renewals time out
(``request_timeout``), a watchdog that no stuck request can hold up fences it at
``renew_deadline``, and the fence (``fence``) resets every TCP connection of the process
before it exits, so no request sent but not yet delivered reaches the API server later
(the kernel would otherwise keep retransmitting it from the closed socket). It is then
restarted as a standby, which reads the Lease before anything else.

The decisions are pure functions of (lease, identity, now); ``Elector`` does I/O.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_operator import metrics
from edge_operator.kube import ConflictError, Kube, KubeError, NotFoundError

log = logging.getLogger(__name__)

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_seconds: int = 15
    renew_deadline: float = 10.0
    retry: float = 2.0
    #: Seconds one read or write of the Lease may take.
    request_timeout: float = 5.0


def micro_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value.replace("+00:00", "Z"), _TIME_FORMAT).replace(tzinfo=UTC)


def held_by_other(lease: Mapping[str, Any] | None, identity: str, now: datetime) -> bool:
    """Whether someone else holds the Lease and it has not expired."""
    if lease is None:
        return False
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if not holder or holder == identity:
        return False
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    return renewed is not None and now < renewed + timedelta(seconds=duration)


def claimed(lease: Mapping[str, Any] | None, config: LeaseConfig, now: datetime) -> dict[str, Any]:
    """The Lease after ``config.identity`` acquires or renews it."""
    spec = dict((lease or {}).get("spec") or {})
    stamp = micro_time(now)
    if spec.get("holderIdentity") != config.identity:
        spec["acquireTime"] = stamp
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if lease else 0)
    spec.update(
        holderIdentity=config.identity,
        leaseDurationSeconds=config.lease_seconds,
        renewTime=stamp,
    )
    metadata = {"name": config.name, "namespace": config.namespace}
    if lease is not None:
        metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": spec,
    }


def released(lease: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The Lease handed back: no holder, expiring at once (client-go's ReleaseOnCancel)."""
    out = {**lease, "spec": dict(lease.get("spec") or {})}
    stamp = micro_time(now)
    out["spec"].update(
        holderIdentity=None, leaseDurationSeconds=1, renewTime=stamp, acquireTime=stamp
    )
    return out


def fence() -> None:
    """Exit at once, resetting every TCP connection of the process first (SO_LINGER 0:
    the kernel sends RST and drops what it had not delivered, instead of retransmitting
    it after the process is gone). For a leader that lost its Lease."""
    linger = struct.pack("ii", 1, 0)
    for entry in os.scandir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            fd = int(entry.name)
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                sock = socket.socket(fileno=fd)
                try:
                    if sock.type == socket.SOCK_STREAM and sock.family in (
                        socket.AF_INET,
                        socket.AF_INET6,
                    ):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                finally:
                    sock.detach()
    logging.shutdown()
    os._exit(1)


class Elector:
    """Acquires, renews and releases one Lease."""

    def __init__(
        self,
        kube: Kube,
        config: LeaseConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observed: threading.Event | None = None,
    ) -> None:
        self.kube = kube
        self.config = config
        self.clock = clock
        #: Set once the Lease could be read: the process is a working standby.
        self.observed = observed or threading.Event()
        self.leading = threading.Event()
        metrics.LEADER.labels(config.name).set(0)

    def _read(self) -> dict[str, Any] | None:
        try:
            lease = self.kube.get_object("Lease", self.config.namespace, self.config.name)
        except NotFoundError:
            lease = None
        self.observed.set()
        return lease

    def try_acquire_or_renew(self) -> bool:
        """One round: True when this process holds the Lease afterwards."""
        now = self.clock()
        lease = self._read()
        if held_by_other(lease, self.config.identity, now):
            return False
        body = claimed(lease, self.config, now)
        try:
            if lease is None:
                self.kube.create_object(body)
            else:
                self.kube.replace_object(body)
        except ConflictError:
            return False  # another replica wrote it first; read again next round
        return True

    def acquire(self) -> None:
        """Block until this process holds the Lease."""
        log.info(
            "waiting to lead: Lease %s/%s as %s",
            self.config.namespace,
            self.config.name,
            self.config.identity,
        )
        while True:
            try:
                if self.try_acquire_or_renew():
                    break
            except KubeError as error:
                log.warning("cannot read or take the Lease yet: %s", error)
            time.sleep(self.config.retry)
        self.leading.set()
        metrics.LEADER.labels(self.config.name).set(1)
        log.info("became the leader (Lease %s/%s)", self.config.namespace, self.config.name)

    def keep(self, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew in a daemon thread; call ``on_lost`` once renewing has failed for
        ``renew_deadline`` seconds, from a watchdog thread that a renewal stuck in a
        request cannot hold up."""
        renewed = [time.monotonic()]
        reason = ["no renewal yet"]

        def renew() -> None:
            while self.leading.is_set():
                time.sleep(self.config.retry)
                try:
                    if self.try_acquire_or_renew():
                        renewed[0] = time.monotonic()
                        continue
                    reason[0] = "another replica holds it"
                except KubeError as error:
                    reason[0] = str(error)

        def watch() -> None:
            while self.leading.is_set():
                if time.monotonic() - renewed[0] > self.config.renew_deadline:
                    log.error("lost the Lease (%s); stopping", reason[0])
                    self.leading.clear()
                    metrics.LEADER.labels(self.config.name).set(0)
                    on_lost()
                    return
                time.sleep(0.2)

        threading.Thread(target=watch, name="lease-watchdog", daemon=True).start()
        thread = threading.Thread(target=renew, name="lease-renewer", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Hand the Lease back on a clean shutdown, so a standby takes over at once."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        metrics.LEADER.labels(self.config.name).set(0)
        try:
            lease = self._read()
            spec = (lease or {}).get("spec") or {}
            if lease is not None and spec.get("holderIdentity") == self.config.identity:
                self.kube.replace_object(released(lease, self.clock()))
                log.info("released the Lease")
        except KubeError as error:
            log.warning("could not release the Lease: %s", error)
