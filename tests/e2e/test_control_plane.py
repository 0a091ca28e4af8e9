"""Smoke tests of the control plane the rest of the e2e tier relies on.

They prove the pieces the operator builds on behave like a real cluster: the
generated CRD installs and the API server enforces its rules, the scheduler
honours nodeSelector and taints, kwok runs the pods, and a LoadBalancer
Service with externalTrafficPolicy Local is allocated a healthCheckNodePort.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from edge_operator import api, names
from tests.e2e.cluster import ROOT, Cluster, condition, ignore_not_found, wait_for
from tests.spec_cases import INVALID, VALID, Case, gateway

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
#: (file, index of the document in the file) of every EdgeGateway in examples/.
EXAMPLE_GATEWAYS = [
    (path, index)
    for path in EXAMPLES
    for index, doc in enumerate(yaml.safe_load_all(path.read_text()))
    if doc is not None and doc.get("kind") == names.KIND
]
STAND_IN_LB_CLASS = "e2e.edgeoperator.dev/stand-in"


def _without_empty(value: Any) -> Any:
    """Drop empty maps and lists, recursively: absent and empty mean the same in the API."""
    if isinstance(value, dict):
        pruned = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def _create(cluster: Cluster, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    created: dict[str, Any] = cluster.custom.create_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.PLURAL,
        body,
        field_validation="Strict",
        dry_run="All" if dry_run else None,
    )
    return created


def test_crd_is_established(crd_installed: dict[str, Any]) -> None:
    assert crd_installed["spec"]["names"]["shortNames"] == ["egw"]
    assert condition(crd_installed, "NamesAccepted")["status"] == "True"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "index"), EXAMPLE_GATEWAYS, ids=[f"{p.name}#{i}" for p, i in EXAMPLE_GATEWAYS]
)
def test_example_round_trips_with_the_models_defaults(
    cluster: Cluster, crd_installed: dict[str, Any], path: Path, index: int
) -> None:
    """The API server's defaults are exactly the pydantic models' defaults."""
    body = list(yaml.safe_load_all(path.read_text()))[index]
    name = body["metadata"]["name"]
    try:
        created = _create(cluster, body)
        stored = cluster.custom.get_cluster_custom_object(
            names.GROUP, names.VERSION, names.PLURAL, name
        )
        assert stored["metadata"]["uid"] == created["metadata"]["uid"]
        expected = api.EdgeGatewaySpec.model_validate(body["spec"]).model_dump(
            by_alias=True, exclude_none=True
        )
        assert _without_empty(stored["spec"]) == _without_empty(expected)
    finally:
        ignore_not_found(
            lambda: cluster.custom.delete_cluster_custom_object(
                names.GROUP, names.VERSION, names.PLURAL, name
            )
        )


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_api_server_accepts_valid_spec(
    cluster: Cluster, crd_installed: dict[str, Any], case: Case
) -> None:
    _create(cluster, gateway(f"valid-{case.id}", case.spec), dry_run=True)


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_api_server_refuses_invalid_spec_with_its_message(
    cluster: Cluster, crd_installed: dict[str, Any], case: Case
) -> None:
    assert case.server_error is not None
    assert case.field, f"case {case.id} names no field"
    with pytest.raises(ApiException) as refused:
        _create(cluster, gateway(case.name, case.spec), dry_run=True)
    # 422 Invalid: the schema or a CEL rule; 400 BadRequest: strict decoding (unknown field).
    assert refused.value.status == (400 if case.id == "unknown-field" else 422)
    message = json.loads(refused.value.body)["message"]
    assert case.server_error in message
    assert case.field in message, f"{case.field!r} not named in: {message}"


def test_scheduler_places_tolerating_pods_only_on_labelled_tainted_node(
    cluster: Cluster,
    namespace: str,
    unique: str,
    make_node: Callable[..., dict[str, Any]],
) -> None:
    role = f"e2e.edgeoperator.dev/edge-{unique}"
    edge = f"edge-{unique}"
    make_node(edge, labels={role: ""}, taints=[{"key": role, "effect": "NoSchedule"}])
    make_node(f"worker-{unique}", zone="zone-b")
    selector = {"app": f"probe-{unique}"}
    cluster.apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "probe"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {
                        "nodeSelector": {role: ""},
                        "tolerations": [
                            {"key": role, "operator": "Exists", "effect": "NoSchedule"}
                        ],
                        "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}],
                    },
                },
            },
        },
    )

    def available() -> dict[str, Any] | None:
        deployment = cluster.deployment(namespace, "probe")
        cond = condition(deployment, "Available")
        return deployment if cond and cond["status"] == "True" else None

    wait_for(available, "Deployment probe Available", timeout=90)
    (pod,) = cluster.pods(namespace, f"app=probe-{unique}")
    assert pod["spec"]["nodeName"] == edge
    assert pod["status"]["phase"] == "Running"
    assert pod["status"].get("podIP")


def test_pod_without_toleration_stays_off_tainted_node(
    cluster: Cluster,
    namespace: str,
    unique: str,
    make_node: Callable[..., dict[str, Any]],
) -> None:
    role = f"e2e.edgeoperator.dev/edge-{unique}"
    make_node(f"edge-{unique}", labels={role: ""}, taints=[{"key": role, "effect": "NoSchedule"}])
    cluster.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "intruder"},
            "spec": {
                "nodeSelector": {role: ""},
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
            },
        },
    )

    def unschedulable() -> dict[str, Any] | None:
        pod = cluster.api.sanitize_for_serialization(
            cluster.core.read_namespaced_pod("intruder", namespace)
        )
        cond = condition(pod, "PodScheduled")
        return pod if cond and cond.get("reason") == "Unschedulable" else None

    pod = wait_for(unschedulable, "pod intruder reported Unschedulable", timeout=60)
    assert "taint" in condition(pod, "PodScheduled")["message"]  # type: ignore[index]
    assert not pod["spec"].get("nodeName")


def test_local_load_balancer_service_gets_health_check_node_port(
    cluster: Cluster, namespace: str
) -> None:
    cluster.core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "edge"},
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                # A class of our own: a real LB controller (kind's) leaves it to the stand-in.
                "loadBalancerClass": STAND_IN_LB_CLASS,
                "selector": {"app": "edge"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8000}],
            },
        },
    )
    service = cluster.service(namespace, "edge")
    assert 30000 <= service["spec"]["healthCheckNodePort"] <= 32767
    assert 30000 <= service["spec"]["ports"][0]["nodePort"] <= 32767
    assert service["spec"]["clusterIP"]
    assert not service["status"]["loadBalancer"]  # no cloud provider here

    cluster.assign_load_balancer(namespace, "edge", "198.51.100.7")
    service = cluster.service(namespace, "edge")
    assert service["status"]["loadBalancer"]["ingress"] == [{"ip": "198.51.100.7", "ipMode": "VIP"}]


def test_build_uses_cached_binaries() -> None:
    """A second build finds every binary in the cache and builds nothing."""
    result = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-k8s.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "building" not in result.stderr
    assert (Path(result.stdout.strip().splitlines()[-1]) / "kube-apiserver").is_file()
