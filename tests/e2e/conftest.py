"""Fixtures of the e2e tier: one real control plane per test session.

Without --kubeconfig (or EDGE_OPERATOR_E2E_KUBECONFIG) the session starts a
local control plane (hack/localcluster.py: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, all on 127.0.0.1) in a
temporary directory and stops it, by PID, when the session ends. If it cannot
start, every e2e test errors: the tier never skips silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

import localcluster
from edge_operator import names
from tests.e2e.cluster import Cluster, ignore_not_found, wait_for
from tests.e2e.operator import OperatorProcess


@pytest.fixture(scope="session")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    given = request.config.getoption("--kubeconfig") or os.environ.get(
        "EDGE_OPERATOR_E2E_KUBECONFIG"
    )
    if given:
        # A cluster of hack/localcluster.py (e.g. `make cluster-up`) also has the
        # operator's identity and audit log; any other cluster has not.
        state = Path(given).parent
        yield Cluster.connect(Path(given), state if (state / "ports.json").exists() else None)
        return
    state = tmp_path_factory.mktemp("control-plane")
    try:
        # Tests make their own nodes; the session cluster starts with none.
        kubeconfig = localcluster.up(state, nodes=0)
        yield Cluster.connect(kubeconfig, state)
    finally:
        pids = [int(f.read_text()) for f in (state / "pids").glob("*.pid")]
        localcluster.down(state)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert alive == [], f"control-plane processes still running after down: {alive}"


@pytest.fixture(scope="session")
def crd_installed(cluster: Cluster) -> dict[str, Any]:
    """What installing the operator puts in place: the Helm chart (CRD, provider
    ClusterRoles, the operator's RBAC and node policy), without an operator pod."""
    cluster.install_chart()
    return cluster.wait_crd_established(names.CRD_NAME)


@pytest.fixture
def namespace(cluster: Cluster, unique: str) -> Iterator[str]:
    name = f"e2e-{unique}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    # Pods need the namespace's default ServiceAccount, made by the controller-manager.
    wait_for(
        lambda: (
            cluster.core.list_namespaced_service_account(
                name, field_selector="metadata.name=default"
            ).items
        ),
        f"default ServiceAccount in {name}",
        timeout=30,
    )
    yield name
    ignore_not_found(lambda: cluster.core.delete_namespace(name))


@pytest.fixture
def make_node(cluster: Cluster) -> Iterator[Callable[..., dict[str, Any]]]:
    """Create kwok nodes for this test; they are deleted when it ends."""
    made: list[str] = []

    def make(name: str, **kwargs: Any) -> dict[str, Any]:
        made.append(name)
        return cluster.create_node(name, **kwargs)

    yield make
    for name in made:
        cluster.delete_node(name)


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, crd_installed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator process for the session; tests that kill it start it again."""
    process = OperatorProcess(
        cluster.operator_kubeconfig or cluster.kubeconfig,
        tmp_path_factory.mktemp("operator") / "log",
        # Frequent full passes, so that the tests see what idle passes do too.
        resync_seconds=15,
        metrics=True,
    )
    process.start()
    yield process
    process.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    process = getattr(item, "funcargs", {}).get("operator")
    if report.failed and isinstance(process, OperatorProcess):
        report.sections.append(("operator log (tail)", process.tail(120)))
    return report
