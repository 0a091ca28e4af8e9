"""Claim locks (claims.py): claims on nodes the others neither change nor count run at
once; a claim that may change a node another changes or counts waits; so does a claim
behind one that holds every node."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from edge_operator.claims import ClaimLocks
from edge_operator.desired.nodes import ClaimScope


class Claim:
    """A claim in a thread of its own: ``inside`` once it holds, it leaves on ``leave``."""

    def __init__(self, locks: ClaimLocks, scope: ClaimScope | None) -> None:
        self.inside, self.leave = threading.Event(), threading.Event()

        def run() -> None:
            with locks.hold(scope):
                self.inside.set()
                self.leave.wait(10)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def entered(self, within: float = 5.0) -> bool:
        return self.inside.wait(within)

    def done(self) -> None:
        self.leave.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


def scope(changes: str, counts: str = "") -> ClaimScope:
    return ClaimScope(frozenset(changes), frozenset(counts))


@contextmanager
def holding(locks: ClaimLocks, held: ClaimScope | None) -> Iterator[Claim]:
    claim = Claim(locks, held)
    assert claim.entered()
    try:
        yield claim
    finally:
        claim.done()


def test_claims_on_other_nodes_run_at_once() -> None:
    locks = ClaimLocks()
    with holding(locks, scope("ab", counts="w")):
        disjoint = Claim(locks, scope("cd", counts="w"))  # counting the same worker is fine
        assert disjoint.entered(), "a claim on other nodes waited"
        disjoint.done()


def test_a_claim_that_may_change_what_another_changes_or_counts_waits() -> None:
    for held, wanted in [
        (scope("ab"), scope("bc")),  # both may change b
        (scope("ab", counts="w"), scope("w")),  # it may take a worker the other counted
        (scope("ab"), scope("c", counts="a")),  # it counts a node the other may take
    ]:
        locks = ClaimLocks()
        with holding(locks, held) as first:
            second = Claim(locks, wanted)
            assert not second.entered(0.2), f"{wanted} went in while {held} was held"
            first.done()
            assert second.entered()
            second.done()


def test_every_node_waits_for_the_claims_and_new_claims_wait_behind_it() -> None:
    locks = ClaimLocks()
    with holding(locks, scope("a")) as some:
        every = Claim(locks, None)
        assert not every.entered(0.2), "every node was held while a claim held one"
        later = Claim(locks, scope("z"))
        assert not later.entered(0.2), "a new claim overtook one waiting for every node"
        some.done()
        assert every.entered()
        assert not later.entered(0.2), "a claim went in while every node was held"
        every.done()
        assert later.entered()
        later.done()
