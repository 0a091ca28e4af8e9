"""The pass's pure rules outside the node decision: which objects change and in what
order (desired/changes.py), what the status reports of a refusal (desired/status.py),
when a pass claims nodes (reconcile.decide), and the retry policy."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from edge_operator import names
from edge_operator.desired import changes
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.objects import Key
from edge_operator.facts import Facts, PodFacts, WorkloadFacts
from edge_operator.kube import RETRY_MAX_SECONDS, backoff
from edge_operator.reconcile import decide
from edge_operator.write import EVENT_MESSAGE_MAX, node_events, summary
from tests.unit.test_nodes import facts, gateway, node, worker

NS = "edge-system"


def converged(f: Facts) -> Facts:
    """``f`` with every object of its workload on the cluster as desired."""
    planned = changes.plan(f, node_rules.decide(f))
    owned = {k: v for k, v in planned.desired.items() if k.kind != "Namespace"}
    return replace(f, workload=WorkloadFacts(owned=owned))


def three_nodes(**workload: Any) -> Facts:
    gw = gateway(controller={"namespace": NS})
    edge = [node("a", "zone-a"), node("b", "zone-b"), node("c", "zone-c")]
    f = facts(gw, [*edge, worker("w1"), worker("w2"), worker("w3")])
    assert node_rules.decide(f).refusal is None
    return replace(f, workload=WorkloadFacts(**workload))


def test_new_gateway_creates_every_object_in_apply_order() -> None:
    f = three_nodes()
    planned = changes.plan(f, node_rules.decide(f))
    built = workload_rules.build(
        workload_rules.Inputs(changes.owner(f), f.gateway.spec, ready_edge_nodes=3)  # type: ignore[arg-type]
    )
    assert planned.changes == tuple((Key.of(o), "Create") for o in built)
    assert planned.conflicts == ()
    assert planned.evictions == ()
    assert planned.deployment == Key("Deployment", NS, names.workload_name("gw"))


def test_a_missing_namespace_is_created_first() -> None:
    f = three_nodes(namespace_exists=False)
    planned = changes.plan(f, node_rules.decide(f))
    assert planned.changes[0] == (Key("Namespace", "", NS), "Create")
    assert Key("Namespace", "", NS) in planned.desired


def test_converged_workload_has_no_changes_and_is_a_fixed_point() -> None:
    f = converged(three_nodes())
    assert changes.plan(f, node_rules.decide(f)).changes == ()


def test_objects_no_longer_wanted_are_deleted_last_in_key_order() -> None:
    f = converged(three_nodes())
    stale = {
        Key("ConfigMap", NS, "zz-old"): {"kind": "ConfigMap", "metadata": {"name": "zz-old"}},
        Key("ConfigMap", NS, "aa-old"): {"kind": "ConfigMap", "metadata": {"name": "aa-old"}},
    }
    f = replace(f, workload=WorkloadFacts(owned={**f.workload.owned, **stale}))
    planned = changes.plan(f, node_rules.decide(f))
    assert planned.changes == (
        (Key("ConfigMap", NS, "aa-old"), "Delete"),
        (Key("ConfigMap", NS, "zz-old"), "Delete"),
    )


def test_drift_of_a_managed_field_is_an_update() -> None:
    f = converged(three_nodes())
    key = Key("Service", NS, names.workload_name("gw"))
    edited = dict(f.workload.owned[key])
    edited["spec"] = {**edited["spec"], "externalTrafficPolicy": "Cluster"}
    f = replace(f, workload=WorkloadFacts(owned={**f.workload.owned, key: edited}))
    assert changes.plan(f, node_rules.decide(f)).changes == ((key, "Update"),)


def test_a_foreign_object_in_the_way_is_a_conflict_not_a_change_made() -> None:
    key = Key("ServiceAccount", NS, names.workload_name("gw"))
    f = three_nodes(foreign=frozenset({key}))
    planned = changes.plan(f, node_rules.decide(f))
    assert planned.conflicts == (key,)
    applied = changes.workload(f, planned, applied=True, objects={})
    assert (key, "ObjectConflict", changes.CONFLICT_MESSAGE) in applied.failures
    # Not applied (paused or refused): the changes are pending, nothing failed.
    pending = changes.workload(f, planned, applied=False)
    assert pending.failures == ()
    assert pending.pending == planned.changes


@pytest.mark.parametrize(("autoscaled", "replicas"), [(None, 3), (7, 7), (0, 0)])
def test_an_autoscaler_owns_the_replica_count(autoscaled: int | None, replicas: int) -> None:
    f = three_nodes(autoscaled_replicas=autoscaled)
    planned = changes.plan(f, node_rules.decide(f))
    deployment = planned.desired[planned.deployment]
    assert deployment["spec"]["replicas"] == replicas


def test_pods_left_on_nodes_that_left_are_evicted() -> None:
    f = replace(
        three_nodes(),
        controller_pods=(
            PodFacts("p1", "a", True, NS),
            PodFacts("p2", "gone", True, NS),
            PodFacts("p3", "gone2", True, NS, terminating=True),
        ),
    )
    planned = changes.plan(f, node_rules.decide(f))
    assert [p.name for p in planned.evictions] == ["p2"]


def test_expected_names_do_not_depend_on_the_replica_count() -> None:
    f = three_nodes()
    keys, roles = changes.expected(changes.owner(f), f.gateway.spec, False)  # type: ignore[arg-type]
    planned = changes.plan(f, node_rules.decide(f))
    assert set(keys) == set(planned.desired)
    assert roles
    assert all(r.startswith("edge-operator") for r in roles)


def test_refused_reasons_and_one_warning_per_refusal() -> None:
    refused = {
        "conditions": [
            {"type": status_rules.NODES_CONFIGURED, "status": "False", "reason": "NoEdgeNodes"},
            {"type": "Ready", "status": "False", "reason": "NoEdgeNodes"},
            {"type": "Other", "status": "False", "reason": "NotAReasonWeCount"},
        ]
    }
    assert status_rules.refused_reasons(refused) == ["NoEdgeNodes"]
    assert status_rules.refused_reasons({}) == []
    assert status_rules.warn_again({}, refused)
    assert not status_rules.warn_again(refused, refused)


def test_a_pass_claims_only_nodes_it_does_not_hold() -> None:
    f = three_nodes()
    first = decide(f)
    assert first.claims  # takes a, b and c
    held = {
        n.name: replace(n, labels={**n.labels, names.GATEWAY_LABEL: "gw"}) if n.name in "abc" else n
        for n in f.nodes.values()
    }
    again = decide(replace(f, nodes=held))
    # Still updates (the record and the role label are missing) but takes nothing new.
    assert not again.claims


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert backoff(50) == RETRY_MAX_SECONDS
    assert backoff(0) == 1.0


# --- ownership: the ownerReference's uid, never the label alone -----------------------------


def test_owner_owns_only_objects_with_its_uid() -> None:
    owner = changes.owner(three_nodes())
    ours = {"metadata": {"ownerReferences": [owner.reference()]}}
    other_uid = {"metadata": {"ownerReferences": [{**owner.reference(), "uid": "someone-else"}]}}
    assert owner.owns(ours)
    assert not owner.owns(other_uid)
    assert not owner.owns({"metadata": {"labels": {names.GATEWAY_LABEL: owner.name}}})
    assert not replace(owner, uid="").owns({"metadata": {"ownerReferences": [{"uid": ""}]}})


def test_labelled_strangers_are_never_changed_and_are_reported() -> None:
    f = converged(three_nodes())
    strangers = (Key("ConfigMap", "copy", "gw"), Key("Deployment", "copy", "gw"))
    f = replace(f, workload=replace(f.workload, strangers=strangers))
    planned = changes.plan(f, node_rules.decide(f))
    assert planned.changes == ()
    cond = status_rules.ownership_condition("gw", strangers)
    assert (cond.type, cond.status, cond.reason) == ("ObjectsOwned", "False", "ObjectConflict")
    assert "ConfigMap copy/gw" in cond.message
    assert "Deployment copy/gw" in cond.message
    # A warning: Ready and the phase do not depend on it.
    ok = status_rules.Cond("ControllerAvailable", "True", "Available", "")
    assert status_rules.ready_condition([ok, cond]).status == "True"
    ready = status_rules.Cond("Ready", "False", "RollingOut", "")
    assert status_rules.phase([ready, cond], paused=False) == "Provisioning"


def test_ownership_condition_names_ten_strangers_then_counts() -> None:
    strangers = [Key("ConfigMap", f"ns{i:02}", "gw") for i in range(13)]
    message = status_rules.ownership_condition("gw", strangers).message
    assert "ConfigMap ns09/gw" in message
    assert "ns10" not in message
    assert "and 3 more" in message
    assert status_rules.ownership_condition("gw", []).status == "True"


def test_a_labelled_stranger_in_the_way_of_a_create_is_a_conflict() -> None:
    f = three_nodes()
    deployment = Key("Deployment", NS, names.workload_name("gw"))
    f = replace(f, workload=WorkloadFacts(foreign=frozenset({deployment})))
    planned = changes.plan(f, node_rules.decide(f))
    assert planned.conflicts == (deployment,)


def test_only_pods_of_the_gateways_own_replicasets_are_its_controller_pods() -> None:
    def pod(name: str, replica_set: str) -> PodFacts:
        return PodFacts(name, "a", True, NS, replica_set=replica_set)

    ours = pod("p1", "gw-5d8f9c7b6")
    pods = [ours, pod("p2", "gw-copy-5d8f9c7b6"), pod("p3", ""), pod("p4", "gwx-5d8f9c7b6")]
    assert workload_rules.controller_pods(pods, "gw") == [ours]
    raw = {
        "metadata": {
            "name": "p1",
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "gw-5d8f9c7b6", "controller": True, "uid": "u"}
            ],
        }
    }
    assert PodFacts.from_api(raw).replica_set == "gw-5d8f9c7b6"


def test_a_warning_is_not_a_refusal() -> None:
    status = {
        "conditions": [
            {"type": "ObjectsOwned", "status": "False", "reason": "ObjectConflict"},
            {"type": "Ready", "status": "True", "reason": "Ready"},
        ]
    }
    assert status_rules.refused_reasons(status) == []


def test_event_summaries_list_every_item_or_count_the_rest_within_1000_characters() -> None:
    assert summary("Created ", ["ServiceAccount a/b", "IngressClass c"]) == (
        "Created ServiceAccount a/b, IngressClass c"
    )
    many = [f"ConfigMap namespace-{i:03}/gateway-object-{i:03}" for i in range(100)]
    text = summary("Created ", many)
    assert len(text) <= EVENT_MESSAGE_MAX
    shown = text.removeprefix("Created ").split(", ")
    left = int(text.rsplit(" and ", 1)[1].split()[0])
    assert len(shown) + left == 100
    assert shown[0] == many[0]


def test_node_events_are_one_per_kind_of_change_over_every_node_of_the_pass() -> None:
    events = node_events(
        [
            ("a", {"Label": ['set label x="1"', 'set label y=""'], "Taint": ["add taint t"]}),
            ("b", {"Label": ['set label x="1"']}),
        ]
    )
    assert [(e.reason, e.message) for e in events] == [
        ("NodeLabelled", 'node a: set label x="1", set label y=""; node b: set label x="1"'),
        ("NodeTainted", "node a: add taint t"),
    ]
    assert node_events([]) == []
    # A rollout of many nodes: every node named, no message over the limit.
    many = [
        (f"edge-node-{i:03}", {"Label": ['set label a="1"', 'set label b=""']}) for i in range(40)
    ]
    events = node_events(many)
    assert len(events) > 1
    assert all(e.reason == "NodeLabelled" and len(e.message) <= EVENT_MESSAGE_MAX for e in events)
    text = "; ".join(e.message for e in events)
    assert all(f"node {name}: " in text for name, _ in many)
    assert " more" not in text


def test_changes_are_made_in_steps_and_the_deployment_waits_only_for_what_pods_need() -> None:
    f = three_nodes(namespace_exists=False)
    stale = Key("ConfigMap", NS, "old")
    f = replace(
        f,
        workload=replace(f.workload, owned={stale: {"kind": "ConfigMap", "metadata": {}}}),
    )
    planned = changes.plan(f, node_rules.decide(f))
    steps = planned.steps
    assert sorted(c for step in steps for c in step.changes) == sorted(planned.changes)
    namespace, others, deployment, deletes = steps
    assert namespace == changes.Step(((Key("Namespace", "", NS), "Create"),))
    assert {k.kind for k, _ in others.changes} >= {"ServiceAccount", "Service", "IngressClass"}
    assert others.after is None
    assert deployment.changes == ((planned.deployment, "Create"),)
    # Traefik reads its ConfigMap as a file: the pods need it there when they start.
    assert {k.kind for k in deployment.after or ()} == {
        "ServiceAccount",
        "ClusterRoleBinding",
        "ConfigMap",
    }
    assert deletes == changes.Step(((stale, "Delete"),))
    # Without a Deployment change nothing waits for it: one step of updates.
    f = converged(three_nodes())
    owned = dict(f.workload.owned)
    for key in list(owned)[:2]:
        owned[key] = {**owned[key], "metadata": {}}
    f = replace(f, workload=replace(f.workload, owned=owned))
    assert [len(step.changes) for step in changes.plan(f, node_rules.decide(f)).steps] == [2]
