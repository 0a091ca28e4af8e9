"""Thread pools whose threads end once a burst of passes is over.

A burst of passes (20 gateways applied at once) runs a hundred threads at its peak: the
passes, their reads, their object and node writes. A ThreadPoolExecutor keeps every thread
it started for good, each with its stack and interpreter state, and they hold the heap
pages of the burst. ``idle`` (called when no pass runs or waits) lets the threads finish
and end; the next burst starts new ones.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Pool:
    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._executor = self._new()

    def _new(self) -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(self.size, thread_name_prefix=self.name)

    def submit(self, fn: Callable[..., T], /, *args: Any) -> concurrent.futures.Future[T]:
        return self._executor.submit(fn, *args)

    def idle(self, wait: bool = False) -> None:
        """End the threads once their work is done (with ``wait``, return when they have
        ended); work submitted from now on runs on new ones."""
        old, self._executor = self._executor, self._new()
        old.shutdown(wait=wait)
