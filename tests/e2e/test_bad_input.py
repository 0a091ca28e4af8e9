"""Bad input only the cluster can tell apart from good (the schema cases are in
test_control_plane.py, from tests/spec_cases.py): each becomes a condition with a
reason, and what the operator must not touch stays exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from edge_operator import names
from tests.e2e.cluster import Cluster, Gateways, condition, gone, ignore_not_found
from tests.e2e.operator import OperatorProcess
from tests.e2e.test_nodes import shape
from tests.e2e.test_workload import NS

MakeNode = Callable[..., dict[str, Any]]


def test_nodes_that_do_not_exist_or_carry_a_corrupt_record_are_refused_with_nothing_changed(
    cluster: Cluster,
    gateways: Gateways,
    operator: OperatorProcess,
    make_node: MakeNode,
    unique: str,
) -> None:
    make_node(f"bad-{unique}-worker")
    ghost = f"ghost-{unique}"
    gateways.create(ghost, {"nodes": {"names": [f"no-such-node-{unique}"]}})
    obj = gateways.wait_condition(ghost, "NodesConfigured", "False", "NoEdgeNodes")
    assert obj["status"]["phase"] == "Degraded"
    assert gone(lambda: cluster.deployment(NS, ghost))
    assert gone(lambda: cluster.service(NS, ghost))

    # A record annotation edited by hand into something the operator cannot read.
    odd = make_node(
        f"bad-{unique}-odd",
        labels={"e2e-pool": unique},
        annotations={names.NODE_RECORD_ANNOTATION: '{"gateway": 7, "labels": "none"}'},
        taints=[{"key": names.DEFAULT_ROLE_LABEL, "effect": "NoExecute", "value": "theirs"}],
    )
    corrupt = f"corrupt-{unique}"
    gateways.create(corrupt, {"nodes": {"selector": {"matchLabels": {"e2e-pool": unique}}}})
    obj = gateways.wait_condition(corrupt, "NodesConfigured", "False", "NodeRecordCorrupt")
    cond = condition(obj, "NodesConfigured")
    assert cond is not None
    assert odd["metadata"]["name"] in cond["message"]
    assert shape(cluster.node(odd["metadata"]["name"])) == shape(odd)
    assert gone(lambda: cluster.deployment(NS, corrupt))
    gateways.wait_events(corrupt, {"NodeRecordCorrupt"})


def test_a_foreign_ingressclass_and_a_load_balancer_quota_become_conditions(  # noqa: PLR0917
    cluster: Cluster,
    gateways: Gateways,
    operator: OperatorProcess,
    make_node: MakeNode,
    namespace: str,
    unique: str,
) -> None:
    make_node(f"quota-{unique}-e", labels={"e2e-pool": unique})
    make_node(f"quota-{unique}-w")
    networking = client.NetworkingV1Api(cluster.api)
    name = f"quota-{unique}"
    foreign = networking.create_ingress_class(
        {"metadata": {"name": name}, "spec": {"controller": "example.com/someone-else"}}
    )
    quota = cluster.core.create_namespaced_resource_quota(
        namespace,
        {
            "metadata": {"name": "no-load-balancers"},
            "spec": {"hard": {"services.loadbalancers": "0"}},
        },
    )
    try:
        gateways.create(
            name,
            {
                "nodes": {"selector": {"matchLabels": {"e2e-pool": unique}}},
                "controller": {"namespace": namespace},
            },
        )
        obj = gateways.wait_condition(name, "ControllerAvailable", "False", "ObjectConflict")
        message = (condition(obj, "ControllerAvailable") or {}).get("message", "")
        assert f"IngressClass {name}" in message
        obj = gateways.wait_condition(name, "LoadBalancerReady", "False", "ApplyFailed")
        message = (condition(obj, "LoadBalancerReady") or {}).get("message", "")
        assert f"Service {namespace}/{name}" in message
        assert "quota" in message
        assert obj["status"]["phase"] == "Degraded"
        # What is not the operator's is exactly as it was.
        now = networking.read_ingress_class(name)
        assert now.metadata.resource_version == foreign.metadata.resource_version
        assert now.spec.controller == "example.com/someone-else"
        assert not now.metadata.owner_references
        hard = cluster.core.read_namespaced_resource_quota("no-load-balancers", namespace)
        assert hard.spec.hard == quota.spec.hard
    finally:
        gateways.delete(name)
        ignore_not_found(lambda: networking.delete_ingress_class(name))
