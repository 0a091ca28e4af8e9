"""What the chart's pre-delete hook and a stopping leader decide (edge_operator.uninstall)."""

from __future__ import annotations

from typing import Any

import pytest

from edge_operator import names
from edge_operator.uninstall import decide, going_away, without_drain


def test_nothing_to_do_without_gateways() -> None:
    verdict = decide([], delete_gateways=False, leader_alive=False)
    assert verdict.proceed
    assert verdict.delete == ()


def test_refuses_by_default_and_names_every_gateway() -> None:
    verdict = decide(["a", "b"], delete_gateways=False, leader_alive=True)
    assert not verdict.proceed
    assert verdict.delete == ()
    assert "a, b" in verdict.message
    assert "uninstall.deleteGateways=true" in verdict.message
    assert "Nothing was changed" in verdict.message


def test_deletes_only_while_an_operator_leads() -> None:
    assert decide(["a"], delete_gateways=True, leader_alive=True).delete == ("a",)
    without = decide(["a"], delete_gateways=True, leader_alive=False)
    assert not without.proceed
    assert without.delete == ()
    assert "no operator replica holds the Lease" in without.message


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        (None, True),
        (
            {"metadata": {"deletionTimestamp": "2026-12-03T00:00:00Z"}, "spec": {"replicas": 1}},
            True,
        ),
        ({"metadata": {}, "spec": {"replicas": 0}}, True),
        ({"metadata": {}, "spec": {"replicas": 2}}, False),
        ({"metadata": {}, "spec": {}}, False),  # replicas defaults to 1
    ],
    ids=["gone", "being-deleted", "scaled-to-0", "running", "default"],
)
def test_going_away(deployment: dict[str, Any] | None, expected: bool) -> None:
    assert going_away(deployment) is expected


def test_without_drain_keeps_other_finalizers_and_guards_the_version() -> None:
    node = {
        "metadata": {
            "name": "n",
            "resourceVersion": "9",
            "finalizers": ["example.com/keep", names.NODE_FINALIZER],
        }
    }
    assert without_drain(node) == {
        "metadata": {"resourceVersion": "9", "finalizers": ["example.com/keep"]}
    }
    assert without_drain({"metadata": {"name": "n", "resourceVersion": "9"}}) is None
