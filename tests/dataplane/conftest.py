"""Fixtures of the dataplane tier: real nodes, real pods, real packets.

The tier starts the lab (hack/lab: a local control plane, real nodes running
containerd, kubelet and kube-proxy in network namespaces, a cloud-like load balancer,
client and CDN namespaces) in a temporary directory, installs the Helm chart with its
operator pod (the image `make image` builds, imported into every node), and
stops everything when the last test of the tier is done.

Where the lab cannot run (not root, no network namespaces) the tier is skipped with
the reason; under CI (CI=true), which runs as root, it fails instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import lab
from tests.dataplane.machine import leftovers, require_lab, shared_files
from tests.dataplane.operator_pod import ChartOperator
from tests.dataplane.traffic import Traffic
from tests.e2e.cluster import Cluster, Gateways


@pytest.fixture(scope="package")
def running_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lab.Lab]:
    require_lab()
    root, before = tmp_path_factory.mktemp("lab"), shared_files()
    try:
        yield lab.up(root)
    finally:
        lab.down(root)
        assert leftovers(root, before) == [], "lab down left these behind"


@pytest.fixture(scope="package")
def cluster(running_lab: lab.Lab) -> Cluster:
    """The lab's control plane, with the Helm chart installed (no operator pod yet)."""
    connected = Cluster.connect(running_lab.kubeconfig, running_lab.cluster_dir)
    ChartOperator(running_lab, connected).restricted_namespace()
    connected.install_chart()
    connected.wait_crd_established("edgegateways.edgeoperator.dev")
    return connected


@pytest.fixture(scope="package")
def operator(cluster: Cluster, running_lab: lab.Lab) -> ChartOperator:
    """The chart's operator pod (image from `make image`) on a worker node, in a
    namespace that enforces Pod Security restricted."""
    chart_operator = ChartOperator(running_lab, cluster)
    chart_operator.install()
    return chart_operator


@pytest.fixture
def traffic(running_lab: lab.Lab, cluster: Cluster, gateways: Gateways) -> Iterator[Traffic]:
    """Gateways with an Ingress to the echo backend, and requests through them."""
    made = Traffic(running_lab, cluster, gateways)
    yield made
    made.cleanup()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    funcargs = getattr(item, "funcargs", {})
    chart_operator = funcargs.get("operator")
    if report.failed and isinstance(chart_operator, ChartOperator):
        report.sections.append(("operator log (tail)", chart_operator.tail(80)))
    running = funcargs.get("running_lab")
    if report.failed and isinstance(running, lab.Lab):
        report.sections.append(("load balancer", str(running.load_balancer())))
    return report
