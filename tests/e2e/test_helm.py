"""The Helm chart on a real control plane: what it installs is enough to run the
operator and no more, its node policy holds, and an upgrade brings a CRD change.

The session's `crd_installed` fixture installs the chart (replicaCount 0); these
tests run the operator as a local process with nothing but the chart's
ServiceAccount, the way the chart's pod would run it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import chart
from edge_operator import names
from tests.e2e.cluster import Cluster, Gateways, wait_for
from tests.e2e.operator import OperatorProcess
from tests.e2e.test_workload import FAST_ROLLOUT, ready_pods_by_node, wait_available

MakeNode = Callable[..., dict[str, Any]]
#: The chart's ServiceAccount (release edge-operator: fullname edge-operator).
SERVICE_ACCOUNT = chart.RELEASE


@pytest.fixture
def as_chart_service_account(
    cluster: Cluster, crd_installed: dict[str, Any], operator: OperatorProcess, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator run with the chart's ServiceAccount only, instead of the session's.

    The session operator stops for the test (two operators would fight over the
    same gateways) and starts again afterwards.
    """
    operator.stop()
    kubeconfig = cluster.service_account_kubeconfig(
        chart.NAMESPACE, SERVICE_ACCOUNT, tmp_path / "sa.kubeconfig"
    )
    process = OperatorProcess(kubeconfig, tmp_path / "operator.log", resync_seconds=15)
    try:
        process.start()
        yield process
    finally:
        process.stop()
        operator.start()


def sa_client(cluster: Cluster, tmp_path: Path) -> client.CoreV1Api:
    kubeconfig = cluster.service_account_kubeconfig(
        chart.NAMESPACE, SERVICE_ACCOUNT, tmp_path / "client.kubeconfig"
    )
    from kubernetes import config  # noqa: PLC0415

    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def test_chart_is_deployed(cluster: Cluster, crd_installed: dict[str, Any]) -> None:
    status = json.loads(cluster.helm("status", chart.RELEASE, "-n", chart.NAMESPACE, "-o", "json"))
    assert status["info"]["status"] == "deployed"
    version = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["version"]
    assert crd_installed["metadata"]["labels"]["helm.sh/chart"] == f"edge-operator-{version}"
    assert crd_installed["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_chart_service_account_can_run_the_node_lifecycle_and_the_workload(
    cluster: Cluster,
    as_chart_service_account: OperatorProcess,
    make_node: MakeNode,
    unique: str,
) -> None:
    """Nodes labelled and tainted, the workload for both providers (namespace created,
    ClusterRole and Role bindings), Ready, then deletion restores every node."""
    process = as_chart_service_account
    edge = [
        make_node(f"helm-{unique}-e{i}", zone=f"zone-{i}", labels={"e2e-pool": unique})["metadata"][
            "name"
        ]
        for i in range(2)
    ]
    make_node(f"helm-{unique}-w0")
    name, namespace = f"helm-{unique}", f"helm-{unique}"
    gateways = Gateways(cluster)
    gateways.create(
        name,
        {
            "nodes": {"selector": {"matchLabels": {"e2e-pool": unique}}},
            "controller": {"namespace": namespace},
            "rollout": FAST_ROLLOUT,
        },
    )
    try:
        wait_available(cluster, name, 2, ns=namespace)
        wait_for(
            lambda: ready_pods_by_node(cluster, name, namespace) == dict.fromkeys(edge, 1),
            "one ready controller pod on each edge node",
        )
        for node_name in edge:
            node = cluster.node(node_name)
            assert node["metadata"]["labels"][names.GATEWAY_LABEL] == name
            assert {
                "key": names.DEFAULT_ROLE_LABEL,
                "effect": "NoSchedule",
            } in node["spec"]["taints"]
        cluster.assign_load_balancer(namespace, name, "203.0.113.20")
        gateways.wait_condition(name, "Ready", "True")

        # ingress-nginx binds a second ClusterRole and a namespaced one.
        gateways.patch(name, {"spec": {"controller": {"provider": "ingress-nginx"}}})
        gateways.wait_condition(name, "ControllerAvailable", "True")
        rolebindings = client.RbacAuthorizationV1Api(cluster.api).list_namespaced_role_binding(
            namespace, label_selector=f"{names.GATEWAY_LABEL}={name}"
        )
        assert [rb.role_ref.name for rb in rolebindings.items] == [
            "edge-operator-ingress-nginx-namespace"
        ]
        gateways.wait_condition(name, "Ready", "True")
    finally:
        gateways.delete(name)
    for node_name in edge:
        node = cluster.node(node_name)
        assert names.GATEWAY_LABEL not in node["metadata"].get("labels", {})
        assert not [
            t for t in node["spec"].get("taints") or [] if t["key"] == names.DEFAULT_ROLE_LABEL
        ]
    log = process.log.read_text().splitlines()
    denied = [line for line in log if " 403 " in line or "forbidden" in line.lower()]
    assert denied == []


def test_node_policy_denies_the_service_account_a_foreign_taint(
    cluster: Cluster,
    crd_installed: dict[str, Any],
    make_node: MakeNode,
    unique: str,
    tmp_path: Path,
) -> None:
    node_name = make_node(f"helm-{unique}-vap")["metadata"]["name"]
    core = sa_client(cluster, tmp_path)
    taints = cluster.node(node_name)["spec"].get("taints") or []

    # RBAC lets the ServiceAccount patch nodes; the policy refuses a taint not its own.
    foreign = {"key": "example.com/not-ours", "effect": "NoSchedule"}

    def enforced() -> bool:
        """A policy just installed takes the API server a moment to load (dry run: no change)."""
        try:
            core.patch_node(node_name, {"spec": {"taints": [*taints, foreign]}}, dry_run="All")
        except ApiException as error:
            return bool(error.status == 403)
        return False

    wait_for(enforced, "the node policy in force", timeout=30)
    with pytest.raises(ApiException) as denied:
        core.patch_node(node_name, {"spec": {"taints": [*taints, foreign]}})
    assert denied.value.status == 403
    message = json.loads(denied.value.body)["message"]
    assert "ValidatingAdmissionPolicy 'edge-operator-nodes'" in message
    assert "only its own node taints" in message
    assert foreign not in (cluster.node(node_name)["spec"].get("taints") or [])

    # A label of someone else's is refused the same way...
    with pytest.raises(ApiException) as denied:
        core.patch_node(node_name, {"metadata": {"labels": {"example.com/not-ours": "x"}}})
    assert denied.value.status == 403

    # ...while the operator's own keys go through.
    own = {"key": names.DEFAULT_ROLE_LABEL, "effect": "NoSchedule"}
    core.patch_node(
        node_name,
        {
            "metadata": {"labels": {names.DEFAULT_ROLE_LABEL: "", names.EXCLUDE_LB_LABEL: "true"}},
            "spec": {"taints": [*taints, own]},
        },
    )
    assert own in cluster.node(node_name)["spec"]["taints"]
    # The load-balancer exclusion of a leaving edge node is the operator's to set and remove.
    core.patch_node(node_name, {"metadata": {"labels": {names.EXCLUDE_LB_LABEL: None}}})
    assert names.EXCLUDE_LB_LABEL not in cluster.node(node_name)["metadata"]["labels"]


def _previous_chart(tmp_path: Path) -> tuple[Path, str]:
    """The chart as its previous release shipped it: this repository has no older
    chart to check out yet, so the previous version is this chart with an older
    version number and a CRD whose schema lacks spec.mesh (a field added since)."""
    copy = tmp_path / "edge-operator"
    shutil.copytree(chart.CHART, copy)
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    meta["version"] = previous = meta["version"] + "-rc.0"
    (copy / "Chart.yaml").write_text(yaml.safe_dump(meta))
    crd_file = copy / "files" / f"{names.CRD_NAME}.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        del spec["properties"]["mesh"]
        # So are the rules that read it (a rule naming a field the schema lacks is refused).
        spec["x-kubernetes-validations"] = [
            r for r in spec.get("x-kubernetes-validations", []) if "self.mesh" not in r["rule"]
        ]
    crd_file.write_text(yaml.safe_dump(crd))
    return copy, previous


def _spec_properties(crd: dict[str, Any]) -> set[str]:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return set(schema["properties"]["spec"]["properties"])


def test_helm_upgrade_from_the_previous_chart_version_applies_a_crd_change(
    cluster: Cluster, crd_installed: dict[str, Any], tmp_path: Path, unique: str
) -> None:
    existing = cluster.custom.list_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL)
    assert existing["items"] == [], "needs a cluster without gateways"
    previous_chart, previous = _previous_chart(tmp_path)
    current = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["version"]
    try:
        # Uninstalling keeps the CRD (helm.sh/resource-policy: keep).
        cluster.helm("uninstall", chart.RELEASE, "-n", chart.NAMESPACE, "--wait")
        assert "mesh" in _spec_properties(cluster.crd(names.CRD_NAME))

        cluster.install_chart(previous_chart)
        assert "mesh" not in _spec_properties(cluster.crd(names.CRD_NAME))

        cluster.install_chart()
        upgraded = cluster.wait_crd_established(names.CRD_NAME)
        assert "mesh" in _spec_properties(upgraded)
        assert upgraded["metadata"]["labels"]["helm.sh/chart"] == f"edge-operator-{current}"
        history = json.loads(
            cluster.helm("history", chart.RELEASE, "-n", chart.NAMESPACE, "-o", "json")
        )
        assert [h["chart"] for h in history] == [
            f"edge-operator-{previous}",
            f"edge-operator-{current}",
        ]
    finally:
        cluster.install_chart()  # whatever happened, leave the current chart installed
    # The upgraded schema is served: a field only it knows is stored, not pruned.
    gateway = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": f"upgraded-{unique}"},
        "spec": {"nodes": {"names": ["nowhere"]}, "mesh": {"provider": "Linkerd"}, "paused": True},
    }
    created = cluster.custom.create_cluster_custom_object(
        names.GROUP, names.VERSION, names.PLURAL, gateway, dry_run="All"
    )
    assert created["spec"]["mesh"] == {"provider": "Linkerd"}
