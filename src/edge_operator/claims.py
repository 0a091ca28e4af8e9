"""Claim locks: a pass that takes nodes holds the nodes its decision rests on.

A claim holds the nodes it may change (those its gateway selects or holds) and the
worker nodes it counts for spec.nodes.minWorkerNodes (desired/nodes.ClaimScope). Two
claims wait for each other only when one may change a node the other changes or counts:
gateways whose selections share no node claim at once; those whose selections meet take
turns, and the older gateway keeps a node both select (desired/nodes.py), so who gets a
node never depends on timing. A gateway's cleanup holds every node.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from edge_operator.desired.nodes import ClaimScope


class ClaimLocks:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        #: What the claims under way may change (each node once), and count.
        self._changing: set[str] = set()
        self._counting: Counter[str] = Counter()
        self._claims = 0
        self._every = False
        #: Those waiting for every node: no claim starts before them.
        self._waiting_every = 0

    def _free(self, scope: ClaimScope) -> bool:
        return (
            not self._every
            and not self._waiting_every
            and self._changing.isdisjoint(scope.changes)
            and self._changing.isdisjoint(scope.counts)
            and not any(self._counting[n] for n in scope.changes)
        )

    @contextmanager
    def hold(self, scope: ClaimScope | None) -> Iterator[None]:
        """Hold the nodes of ``scope`` (None: every node) until the block ends."""
        with self._changed:
            if scope is None:
                self._waiting_every += 1
                try:
                    self._changed.wait_for(lambda: not self._every and not self._claims)
                finally:
                    self._waiting_every -= 1
                self._every = True
            else:
                self._changed.wait_for(lambda: self._free(scope))
                self._changing |= scope.changes
                self._counting.update(scope.counts)
                self._claims += 1
        try:
            yield
        finally:
            with self._changed:
                if scope is None:
                    self._every = False
                else:
                    self._changing -= scope.changes
                    self._counting.subtract(scope.counts)
                    self._counting = +self._counting  # without the nodes at 0
                    self._claims -= 1
                self._changed.notify_all()
