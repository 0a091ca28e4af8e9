"""Node lifecycle on a real control plane: select, label, taint, guard, restore.

Each test uses its own node pool label, so gateways of different tests never
select each other's nodes. Assertions are on cluster state only.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from edge_operator import names
from tests.e2e.cluster import Cluster, Gateways, condition, wait_first_edge_node, wait_for
from tests.e2e.operator import OperatorProcess

ROLE = names.DEFAULT_ROLE_LABEL
RECORD = names.NODE_RECORD_ANNOTATION
GW = names.GATEWAY_LABEL
OUR_TAINT = {"key": ROLE, "effect": "NoSchedule"}

MakeNode = Callable[..., dict[str, Any]]


def shape(node: dict[str, Any]) -> dict[str, Any]:
    """Everything of a node but its status and the server's bookkeeping."""
    meta = {
        k: v for k, v in node["metadata"].items() if k not in ("resourceVersion", "managedFields")
    }
    return copy.deepcopy({"metadata": meta, "spec": node["spec"]})


def configured(before: dict[str, Any], gateway: str) -> dict[str, Any]:
    """What ``before`` must look like as an edge node of ``gateway`` with default settings."""
    out = shape(before)
    out["metadata"]["labels"] = {**out["metadata"]["labels"], ROLE: "", GW: gateway}
    out["spec"]["taints"] = [*(out["spec"].get("taints") or []), OUR_TAINT]
    out["metadata"]["finalizers"] = [
        *(out["metadata"].get("finalizers") or []),
        names.NODE_FINALIZER,
    ]
    return out


def without_record(node: dict[str, Any]) -> dict[str, Any]:
    out = shape(node)
    out["metadata"]["annotations"] = {
        k: v for k, v in (out["metadata"].get("annotations") or {}).items() if k != RECORD
    }
    return out


def pool(unique: str) -> dict[str, Any]:
    return {"selector": {"matchLabels": {"e2e-pool": unique}}}


def edge_node_names(obj: dict[str, Any]) -> list[str]:
    return [n["name"] for n in obj.get("status", {}).get("edgeNodes", [])]


def assert_no_kopf_marks(cluster: Cluster) -> None:
    for node in cluster.core.list_node().items:
        annotations = node.metadata.annotations or {}
        assert not [k for k in annotations if "kopf" in k], node.metadata.name
        assert [k for k in annotations if k.startswith("edgeoperator.dev/")] in ([], [RECORD])
        held = names.GATEWAY_LABEL in (node.metadata.labels or {})
        assert (node.metadata.finalizers or []) == ([names.NODE_FINALIZER] if held else []), (
            node.metadata.name
        )


def test_selector_labels_and_taints_exactly_the_matching_nodes(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge = [
        make_node(f"sel-{unique}-{i}", zone=z, labels={"e2e-pool": unique})
        for i, z in ((1, "zone-a"), (2, "zone-b"))
    ]
    other = make_node(f"sel-{unique}-other", labels={"e2e-pool": "nope"})
    before = {n["metadata"]["name"]: shape(n) for n in [*edge, other]}

    gateways.create(f"sel-{unique}", {"nodes": pool(unique)})
    obj = gateways.wait_condition(f"sel-{unique}", "NodesConfigured", "True")

    assert sorted(edge_node_names(obj)) == sorted(n["metadata"]["name"] for n in edge)
    assert obj["status"]["edgeNodeCount"] == 2
    assert {n["zone"] for n in obj["status"]["edgeNodes"]} == {"zone-a", "zone-b"}
    for node in edge:
        name = node["metadata"]["name"]
        now = cluster.node(name)
        assert without_record(now) == without_record(configured(node, f"sel-{unique}")), name
        record = json.loads(now["metadata"]["annotations"][RECORD])
        assert record["gateway"] == f"sel-{unique}"
        assert record["labels"] == {ROLE: None, GW: None}
    assert shape(cluster.node(other["metadata"]["name"])) == before[other["metadata"]["name"]]

    gateways.wait_events(f"sel-{unique}", {"NodeLabelled", "NodeTainted"})
    assert_no_kopf_marks(cluster)

    gateways.delete(f"sel-{unique}")
    for name, shaped in before.items():
        assert shape(cluster.node(name)) == shaped, name


def test_names_and_restore_of_values_that_were_there_before(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    prior = make_node(
        f"named-{unique}-1",
        labels={ROLE: "legacy"},
        taints=[{"key": ROLE, "value": "legacy", "effect": "NoSchedule"}],
    )
    plain = make_node(f"named-{unique}-2", zone="zone-b")
    make_node(f"named-{unique}-worker", zone="zone-c")
    before = {n["metadata"]["name"]: shape(n) for n in (prior, plain)}
    name = f"named-{unique}"
    gateways.create(name, {"nodes": {"names": list(before)}})
    gateways.wait_condition(name, "NodesConfigured", "True")

    now = cluster.node(prior["metadata"]["name"])
    assert now["metadata"]["labels"][ROLE] == ""
    assert now["spec"]["taints"] == [OUR_TAINT]  # the value was replaced in place
    record = json.loads(now["metadata"]["annotations"][RECORD])
    assert record["labels"][ROLE] == "legacy"
    assert record["taints"] == [{"key": ROLE, "effect": "NoSchedule", "previousValue": "legacy"}]

    gateways.delete(name)
    for node_name, shaped in before.items():
        assert shape(cluster.node(node_name)) == shaped, node_name


def test_count_spreads_over_zones(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    for zone in ("zone-a", "zone-b", "zone-c"):
        for i in (1, 2):
            make_node(f"count-{unique}-{zone[-1]}{i}", zone=zone, labels={"e2e-pool": unique})
    make_node(f"count-{unique}-worker")
    name = f"count-{unique}"
    gateways.create(name, {"nodes": {**pool(unique), "count": 3}})
    obj = gateways.wait_condition(name, "NodesConfigured", "True")
    zones = [n["zone"] for n in obj["status"]["edgeNodes"]]
    assert sorted(zones) == ["zone-a", "zone-b", "zone-c"]
    labelled = cluster.core.list_node(label_selector=f"{GW}={name}").items
    assert sorted(n.metadata.name for n in labelled) == sorted(edge_node_names(obj))


def test_drift_new_nodes_and_leaving_nodes(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    first = make_node(f"drift-{unique}-1", labels={"e2e-pool": unique})
    make_node(f"drift-{unique}-worker")
    name = f"drift-{unique}"
    gateways.create(name, {"nodes": pool(unique)})
    gateways.wait_condition(name, "NodesConfigured", "True")
    first_name = first["metadata"]["name"]

    # A label removed by hand comes back.
    cluster.core.patch_node(first_name, {"metadata": {"labels": {ROLE: None}}})
    wait_for(
        lambda: cluster.node(first_name)["metadata"]["labels"].get(ROLE) == "",
        "the role label restored",
        timeout=30,
    )

    # A new matching node becomes an edge node.
    second = make_node(f"drift-{unique}-2", zone="zone-b", labels={"e2e-pool": unique})
    second_name = second["metadata"]["name"]
    wait_for(
        lambda: sorted(edge_node_names(gateways.get(name))) == sorted([first_name, second_name]),
        "the new node in status.edgeNodes",
        timeout=30,
    )
    assert cluster.node(second_name)["metadata"]["labels"][GW] == name
    assert OUR_TAINT in cluster.node(second_name)["spec"]["taints"]

    # A node that stops matching is restored.
    cluster.core.patch_node(second_name, {"metadata": {"labels": {"e2e-pool": "gone"}}})
    expected = shape(second)
    expected["metadata"]["labels"]["e2e-pool"] = "gone"
    wait_for(lambda: shape(cluster.node(second_name)) == expected, "node restored", timeout=30)
    wait_for(
        lambda: edge_node_names(gateways.get(name)) == [first_name],
        "status.edgeNodes without the node that left",
        timeout=30,
    )


def test_refusals_change_nothing_and_do_not_flap(
    cluster: Cluster,
    gateways: Gateways,
    make_node: MakeNode,
    operator: OperatorProcess,
    unique: str,
) -> None:
    nodes = [make_node(f"refuse-{unique}-{i}", labels={"e2e-pool": unique}) for i in (1, 2)]
    make_node(f"refuse-{unique}-worker")

    empty = f"empty-{unique}"
    gateways.create(empty, {"nodes": {"selector": {"matchLabels": {"e2e-pool": "nothing"}}}})
    obj = gateways.wait_condition(empty, "NodesConfigured", "False", "NoEdgeNodes")
    assert obj["status"]["phase"] == "Degraded"
    assert condition(obj, "Ready")["status"] == "False"  # type: ignore[index]

    greedy = f"greedy-{unique}"
    gateways.create(greedy, {"nodes": {**pool(unique), "minWorkerNodes": 500}})
    gateways.wait_condition(greedy, "NodesConfigured", "False", "MinWorkerNodes")
    gateways.wait_events(greedy, {"MinWorkerNodes"})
    gateways.delete(greedy)

    for node in nodes:
        now = cluster.node(node["metadata"]["name"])
        assert shape(now) == shape(node)
        assert "edge-operator" not in {m["manager"] for m in now["metadata"]["managedFields"]}

    older, newer = f"older-{unique}", f"newer-{unique}"
    gateways.create(older, {"nodes": pool(unique)})
    gateways.wait_condition(older, "NodesConfigured", "True")
    gateways.create(newer, {"nodes": pool(unique)})
    refused = gateways.wait_condition(newer, "NodesConfigured", "False", "NodeOwnedByOtherGateway")
    first_message = condition(refused, "NodesConfigured")
    held = {n["metadata"]["name"]: shape(cluster.node(n["metadata"]["name"])) for n in nodes}

    # Make both gateways reconcile again and again: nothing may move.
    for i in range(3):
        for gw in (older, newer):
            gateways.patch(gw, {"metadata": {"annotations": {"e2e/poke": str(i)}}})
        gateways.wait_condition(newer, "NodesConfigured", "False", "NodeOwnedByOtherGateway")
        gateways.wait_condition(older, "NodesConfigured", "True")
    for node_name, shaped in held.items():
        assert shape(cluster.node(node_name)) == shaped, node_name
        assert shaped["metadata"]["labels"][GW] == older
    assert condition(gateways.get(newer), "NodesConfigured") == first_message
    warnings = [e for e in gateways.events(newer) if e["reason"] == "NodeOwnedByOtherGateway"]
    assert len(warnings) == 1
    assert warnings[0]["type"] == "Warning"
    assert (warnings[0].get("count") or 1) == 1
    gateways.wait_events(empty, {"NoEdgeNodes"})


def test_preflight_names_daemonsets_without_the_toleration(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, namespace: str, unique: str
) -> None:
    make_node(f"pre-{unique}-1", labels={"e2e-pool": unique})
    make_node(f"pre-{unique}-worker")
    for ds, tolerations in (
        ("blind", []),
        ("tolerant", [{"operator": "Exists"}]),
    ):
        cluster.apps.create_namespaced_daemon_set(
            namespace,
            {
                "metadata": {"name": ds},
                "spec": {
                    "selector": {"matchLabels": {"app": ds}},
                    "template": {
                        "metadata": {"labels": {"app": ds}},
                        "spec": {
                            "nodeSelector": {"e2e-no-node": "true"},
                            "tolerations": tolerations,
                            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                        },
                    },
                },
            },
        )
    name = f"pre-{unique}"
    gateways.create(name, {"nodes": pool(unique)})
    obj = gateways.wait_condition(name, "TaintSafe", "False", "DaemonSetsNotTolerating")
    message = condition(obj, "TaintSafe")["message"]  # type: ignore[index]
    assert f"{namespace}/blind" in message
    assert f"{namespace}/tolerant" not in message
    assert f"{namespace}/blind" in obj["status"]["daemonSetsNotTolerating"]
    # A warning only: the nodes are configured anyway.
    assert condition(obj, "NodesConfigured")["status"] == "True"  # type: ignore[index]


def test_paused_gateway_changes_nothing_and_fills_the_plan(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    nodes = [make_node(f"paused-{unique}-{i}", labels={"e2e-pool": unique}) for i in (1, 2)]
    make_node(f"paused-{unique}-worker")
    name = f"paused-{unique}"
    gateways.create(name, {"nodes": pool(unique), "paused": True})
    obj = gateways.wait_condition(name, "NodesConfigured", "False", "Paused")
    assert obj["status"]["phase"] == "Paused"
    planned = {(c["name"], c["action"]) for c in obj["status"]["plan"]["nodes"]}
    for node in nodes:
        node_name = node["metadata"]["name"]
        assert {(node_name, "Label"), (node_name, "Taint")} <= planned
        now = cluster.node(node_name)
        assert shape(now) == shape(node), node_name
        assert "edge-operator" not in {m["manager"] for m in now["metadata"]["managedFields"]}

    gateways.patch(name, {"spec": {"paused": False}})
    obj = gateways.wait_condition(name, "NodesConfigured", "True")
    assert obj["status"]["plan"]["nodes"] == []


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    cluster: Cluster,
    gateways: Gateways,
    make_node: MakeNode,
    operator: OperatorProcess,
    unique: str,
) -> None:
    nodes = [
        make_node(
            f"kill-{unique}-{i:02d}", zone=f"zone-{'abc'[i % 3]}", labels={"e2e-pool": unique}
        )
        for i in range(24)
    ]
    make_node(f"kill-{unique}-worker")
    before = {n["metadata"]["name"]: shape(n) for n in nodes}
    name = f"kill-{unique}"
    gateways.create(name, {"nodes": pool(unique)})

    wait_first_edge_node(cluster, name, interval=0.02)
    operator.kill()
    done = len(cluster.core.list_node(label_selector=f"{GW}={name}").items)
    operator.start()
    obj = gateways.wait_condition(name, "NodesConfigured", "True", timeout=90)
    assert obj["status"]["edgeNodeCount"] == len(nodes)
    for node_name, shaped in before.items():
        now = cluster.node(node_name)
        assert without_record(now) == without_record(configured(shaped, name)), node_name
        record = json.loads(now["metadata"]["annotations"][RECORD])
        assert record["labels"] == {ROLE: None, GW: None}, node_name
        assert record["taints"] == [{"key": ROLE, "effect": "NoSchedule", "previousValue": None}]
    print(f"killed with {done}/{len(nodes)} nodes configured")

    gateways.delete(name)
    for node_name, shaped in before.items():
        assert shape(cluster.node(node_name)) == shaped, node_name
    assert_no_kopf_marks(cluster)
