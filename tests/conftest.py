"""Test-suite options and fixtures shared by every tier."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.e2e.cluster import Cluster, Gateways

E2E_DIR = Path(__file__).parent / "e2e"
#: Tiers that need the lab of real nodes (hack/lab).
DATAPLANE_DIRS = (Path(__file__).parent / "dataplane", Path(__file__).parent / "labtool")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=None,
        help=(
            "run the e2e tier against this cluster (kind, or any other) instead of starting"
            " a local control plane; also EDGE_OPERATOR_E2E_KUBECONFIG"
        ),
    )


#: What each passed dataplane and fault-injection test printed (its request and failure
#: counts; its kills, passes and nodes compared), shown at the end of the run: pytest
#: shows a passed test's output nowhere else.
_FIGURES: list[tuple[str, str]] = []
_FIGURE_MARKERS = ("dataplane", "faults")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    text = report.capstdout.strip()
    marked = any(m in report.keywords for m in _FIGURE_MARKERS)
    if report.when == "call" and report.passed and marked and text:
        _FIGURES.append((report.nodeid, text))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("dataplane and fault-injection figures")
        for nodeid, text in _FIGURES:
            terminalreporter.write_line(f"{nodeid}:")
            for line in text.splitlines():
                terminalreporter.write_line(f"  {line}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parents = Path(str(item.path)).parents
        if E2E_DIR in parents:
            item.add_marker(pytest.mark.e2e)
        if any(d in parents for d in DATAPLANE_DIRS):
            item.add_marker(pytest.mark.dataplane)


@pytest.fixture
def unique() -> str:
    """A short suffix that keeps this test's object names apart from every other test's."""
    return uuid.uuid4().hex[:6]


class Operator(Protocol):
    """The tier's operator: a process (tests/e2e) or the chart's pods (tests/dataplane)."""

    def ensure_running(self) -> None: ...


@pytest.fixture
def gateways(cluster: Cluster, operator: Operator) -> Iterator[Gateways]:
    """Create EdgeGateways for this test; they are deleted (nodes restored) when it ends.

    ``cluster`` and ``operator`` are the tier's own (tests/e2e or tests/dataplane)."""
    made = Gateways(cluster)
    yield made
    operator.ensure_running()
    made.delete_all()
