"""Every Node followed into the node cache by one watch of our own, not kopf's.

A node's heartbeat (a status update every few minutes per node, 10-20 a second at
5,000 nodes) changes nothing a decision reads. Through kopf each such event costs a
per-object worker, its memory entry and its handler machinery; here it costs parsing
one JSON line and comparing a small record, in a thread of its own, and only a change
of what we keep is handed on (``changed``, called in that thread).

The watch starts where the startup list ended; when the server no longer has that
history (410), the nodes are listed again and every difference is handed on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from edge_operator import memory
from edge_operator.facts import NodeFacts
from edge_operator.gather import NodeCache
from edge_operator.kube import RETRY_MAX_SECONDS, ExpiredError, Kube, KubeError, backoff

log = logging.getLogger(__name__)

#: The watch reads its events a burst at a time, pausing this long between bursts: at
#: 5,000 nodes (~17 heartbeats a second) that halves the CPU of following them
#: (measured: 0.77 ms an event read one by one, 0.38 ms in bursts), and an event waits
#: at most this long, well inside the node-join budget of 1 s.
PAUSE_SECONDS = 0.2
#: Freed memory is handed back to the system at most this often while events stream in:
#: each burst's buffers and parsed nodes leave free pages behind, and without a trim the
#: resident set crept up ~1 MB every two minutes at 2,000 nodes (memory.trim).
TRIM_SECONDS = 60.0

Changed = Callable[[NodeFacts | None, NodeFacts | None], object]


def same(before: NodeFacts | None, after: NodeFacts | None) -> bool:
    """Nothing a decision reads changed (a heartbeat, or a field we do not keep)."""
    if before is None or after is None:
        return before is after
    return replace(before, resource_version="") == replace(after, resource_version="")


class NodeWatch:
    def __init__(self, kube: Kube, cache: NodeCache, changed: Changed) -> None:
        self.kube = kube
        self.cache = cache
        self.changed = changed
        self.resource_version = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trimmed = time.monotonic()

    def seed(self) -> int:
        """List every node (a page at a time) into the cache; the watch starts after it."""
        self._list(report=False)
        return len(self.cache)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                for type_, obj in self.kube.watch(
                    "Node", self.resource_version, pause_seconds=PAUSE_SECONDS
                ):
                    self._event(type_, obj)
                    if self._stop.is_set():
                        return
                failures = 0
            except ExpiredError:
                log.info("node watch expired at %s; listing the nodes again", self.resource_version)
                self._relist()
            except KubeError as error:
                failures += 1
                delay = backoff(failures)
                log.warning("node watch failed (%s); watching again in %ss", error, delay)
                self._stop.wait(delay)
            except Exception:
                # A bug must not end the watch for good: log it and go on from a new list.
                log.exception("node watch event could not be handled; listing again")
                self._relist()

    def _relist(self) -> None:
        try:
            self._list(report=True)
        except KubeError as error:
            log.warning("listing the nodes failed (%s); trying again", error)
            self._stop.wait(RETRY_MAX_SECONDS / 10)

    def _list(self, report: bool) -> None:
        listed: dict[str, Any] = {}
        fresh = {
            n.name: n
            for n in (NodeFacts.from_api(raw) for raw in self.kube.iter_nodes(listed=listed))
        }
        before = self.cache.snapshot()
        self.cache.replace_all(fresh.values())
        self.resource_version = str(listed.get("resourceVersion") or "")
        if report:
            for name in sorted(before.keys() | fresh.keys()):
                if not same(before.get(name), fresh.get(name)):
                    self.changed(before.get(name), fresh.get(name))

    def _event(self, type_: str, obj: dict[str, Any]) -> None:
        if time.monotonic() - self._trimmed > TRIM_SECONDS:
            self._trimmed = time.monotonic()
            memory.trim()
        meta = obj.get("metadata") or {}
        self.resource_version = str(meta.get("resourceVersion") or self.resource_version)
        if type_ == "BOOKMARK":
            return
        if type_ == "DELETED":
            before = self.cache.remove(meta["name"])
            if before is not None:
                self.changed(before, None)
            return
        after = NodeFacts.from_api(obj)
        before = self.cache.put(after)
        if not same(before, after):
            self.changed(before, after)
