"""The pure node decisions: selection, spread, refusals, exact restore."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from edge_operator import api, names
from edge_operator.desired import nodes as rules
from edge_operator.facts import (
    DaemonSetFacts,
    Facts,
    GatewayFacts,
    NodeFacts,
    NodeRecord,
    PodFacts,
    Taint,
    Toleration,
)
from edge_operator.nodewatch import same

ROLE = names.DEFAULT_ROLE_LABEL


def node(
    name: str,
    zone: str = "zone-a",
    *,
    labels: dict[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
    ready: bool = True,
    unschedulable: bool = False,
    record: NodeRecord | None = None,
) -> NodeFacts:
    return NodeFacts(
        name=name,
        labels={names.ZONE_LABEL: zone, "pool": "edge", **(labels or {})},
        taints=taints,
        record_text=record.to_json() if record else None,
        ready=ready,
        unschedulable=unschedulable,
        resource_version="7",
    )


def gateway(name: str = "gw", created: str = "2026-01-01T00:00:00Z", **spec: Any) -> GatewayFacts:
    body = {"nodes": {"selector": {"matchLabels": {"pool": "edge"}}, **spec.pop("nodes", {})}}
    body.update(spec)
    return GatewayFacts.from_api(
        {
            "metadata": {"name": name, "uid": name, "creationTimestamp": created, "generation": 1},
            "spec": body,
        }
    )


def facts(gw: GatewayFacts, nodes: list[NodeFacts], **kw: Any) -> Facts:
    return Facts(gateway=gw, others=kw.pop("others", ()), nodes={n.name: n for n in nodes}, **kw)


def apply(n: NodeFacts, update: rules.NodeUpdate | None) -> NodeFacts:
    """What the API server makes of the merge patch."""
    if update is None:
        return n
    labels = dict(n.labels)
    for key, value in update.labels.items():
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = value
    return NodeFacts(
        name=n.name,
        labels=labels,
        taints=update.taints if update.taints is not None else n.taints,
        record_text=update.record,
        ready=n.ready,
        unschedulable=n.unschedulable,
        resource_version=str(int(n.resource_version) + 1),
        deleting=n.deleting,
        finalizers=update.finalizers if update.finalizers is not None else n.finalizers,
    )


def worker(name: str) -> NodeFacts:
    return NodeFacts(name=name, labels={names.ZONE_LABEL: "zone-w"}, ready=True)


# --- selection ----------------------------------------------------------------------------


def test_selector_semantics() -> None:
    sel = api.LabelSelector.model_validate(
        {
            "matchLabels": {"pool": "edge"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "broken", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
            ],
        }
    )
    assert rules.selector_matches(sel, {"pool": "edge", "tier": "a"})
    assert not rules.selector_matches(sel, {"pool": "edge", "tier": "c"})
    assert not rules.selector_matches(sel, {"pool": "edge", "tier": "a", "broken": ""})
    assert not rules.selector_matches(sel, {"pool": "edge", "tier": "a", "env": "dev"})
    assert rules.selector_matches(sel, {"pool": "edge", "tier": "b", "env": "prod"})
    assert not rules.selector_matches(sel, {"tier": "a"})


def test_selector_and_names_select_nodes() -> None:
    nodes = [node("a"), node("b", labels={"pool": "other"}), worker("w")]
    decision = rules.decide(facts(gateway(), nodes))
    assert decision.selected == ("a",)
    named = gateway(nodes={"selector": None, "names": ["b", "ghost"]})
    decision = rules.decide(facts(named, nodes))
    assert decision.selected == ("b",)
    assert decision.missing_names == ("ghost",)


def test_count_spreads_over_zones_and_is_stable() -> None:
    nodes = [node(f"{z}{i}", f"zone-{z}") for z in "abc" for i in (1, 2)] + [worker("w")]
    gw = gateway(nodes={"count": 3})
    first = rules.decide(facts(gw, nodes))
    assert first.selected == ("a1", "b1", "c1")

    # Configure them, then grow the pool: the chosen nodes stay chosen.
    by_name = {n.name: n for n in nodes}
    for update in first.updates:
        by_name[update.name] = apply(by_name[update.name], update)
    by_name["a0"] = node("a0", "zone-a")
    again = rules.decide(facts(gw, list(by_name.values())))
    assert again.selected == ("a1", "b1", "c1")
    assert again.updates == ()

    # Shrinking drops from the most crowded zone first.
    two = rules.decide(facts(gateway(nodes={"count": 2}), list(by_name.values())))
    assert len({n[0] for n in two.selected}) == 2


def test_count_skips_unready_and_cordoned_candidates() -> None:
    nodes = [
        node("a1", ready=False),
        node("a2", unschedulable=True),
        node("b1", "zone-b"),
        worker("w"),
    ]
    decision = rules.decide(facts(gateway(nodes={"count": 2}), nodes))
    assert decision.selected == ("b1",)


def test_without_count_unready_candidates_are_still_edge_nodes() -> None:
    nodes = [node("a1", ready=False), node("b1", "zone-b"), worker("w")]
    assert rules.decide(facts(gateway(), nodes)).selected == ("a1", "b1")


# --- refusals -----------------------------------------------------------------------------


def test_empty_selection_is_refused() -> None:
    decision = rules.decide(facts(gateway(), [worker("w")]))
    assert decision.refusal
    assert decision.refusal.reason == "NoEdgeNodes"
    assert decision.updates == ()


def test_min_worker_nodes_is_enforced() -> None:
    nodes = [node("a"), node("b"), worker("w1"), NodeFacts("w2", {}, ready=False)]
    decision = rules.decide(facts(gateway(nodes={"minWorkerNodes": 2}), nodes))
    assert decision.refusal
    assert decision.refusal.reason == "MinWorkerNodes"
    assert "leave 1 schedulable worker" in decision.refusal.message
    assert decision.updates == ()
    assert rules.decide(facts(gateway(nodes={"minWorkerNodes": 1}), nodes)).refusal is None


def test_refusal_keeps_existing_edge_nodes() -> None:
    held = node("a", labels={names.GATEWAY_LABEL: "gw", ROLE: ""})
    decision = rules.decide(facts(gateway(nodes={"minWorkerNodes": 5}), [held, worker("w")]))
    assert decision.refusal is not None
    assert decision.selected == ("a",)
    assert decision.updates == ()


def test_node_held_by_another_gateway_is_refused() -> None:
    nodes = [node("a", labels={names.GATEWAY_LABEL: "other"}), node("b"), worker("w")]
    decision = rules.decide(facts(gateway(), nodes))
    assert decision.refusal
    assert decision.refusal.reason == "NodeOwnedByOtherGateway"
    assert "EdgeGateway other" in decision.refusal.message


def test_older_gateway_keeps_unheld_node_and_newer_refuses() -> None:
    nodes = [node("a"), worker("w")]
    older = gateway("old", "2026-01-01T00:00:00Z")
    newer = gateway("new", "2026-02-01T00:00:00Z")
    assert rules.decide(facts(older, nodes, others=(newer,))).refusal is None
    refused = rules.decide(facts(newer, nodes, others=(older,)))
    assert refused.refusal
    assert "EdgeGateway old, which is older" in refused.refusal.message


def test_count_gateways_share_a_pool_without_conflict() -> None:
    nodes = [node("a1"), node("a2"), node("b1", "zone-b"), node("b2", "zone-b"), worker("w")]
    first = gateway("first", nodes={"count": 2})
    second = gateway("second", "2026-02-01T00:00:00Z", nodes={"count": 2})
    d1 = rules.decide(facts(first, nodes, others=(second,)))
    by_name = {n.name: n for n in nodes}
    for update in d1.updates:
        by_name[update.name] = apply(by_name[update.name], update)
    d2 = rules.decide(facts(second, list(by_name.values()), others=(first,)))
    assert d2.refusal is None
    assert set(d1.selected).isdisjoint(d2.selected)
    assert len(d2.selected) == 2


# --- configure and restore ----------------------------------------------------------------


def test_configure_adds_labels_taint_and_record() -> None:
    (update,) = rules.decide(facts(gateway(), [node("a"), worker("w")])).updates
    assert update.labels == {ROLE: "", names.GATEWAY_LABEL: "gw"}
    assert update.taints == (Taint(ROLE, "NoSchedule"),)
    record = NodeRecord.from_json(update.record or "")
    assert record == NodeRecord(
        "gw", {ROLE: None, names.GATEWAY_LABEL: None}, {(ROLE, "NoSchedule"): None}
    )
    patch = update.patch()
    assert patch["metadata"]["resourceVersion"] == "7"
    assert patch["spec"]["taints"] == [{"key": ROLE, "effect": "NoSchedule"}]
    assert {c.action for c in update.changes} == {"Label", "Taint"}


def test_configure_is_a_fixed_point() -> None:
    gw = gateway()
    n = node("a")
    configured = apply(n, rules.decide(facts(gw, [n, worker("w")])).updates[0])
    assert rules.decide(facts(gw, [configured, worker("w")])).updates == ()


@pytest.mark.parametrize(
    ("labels", "taints"),
    [
        ({}, ()),
        ({ROLE: "old"}, (Taint(ROLE, "NoSchedule", "old"),)),
        ({ROLE: ""}, (Taint("other", "NoExecute", "x"), Taint(ROLE, "NoSchedule"))),
        ({"keep": "me"}, (Taint(ROLE, "PreferNoSchedule"),)),
        # The same key with another effect (and with ours' effect but a value) is kept.
        ({}, (Taint(ROLE, "NoExecute", "mine"), Taint(ROLE, "PreferNoSchedule", "x"))),
        # Dozens of taints, in an order of their own.
        ({}, tuple(Taint(f"example.com/t{i:02}", "NoSchedule", str(i)) for i in range(40, 0, -1))),
    ],
)
def test_restore_returns_node_exactly(labels: dict[str, str], taints: tuple[Taint, ...]) -> None:
    original = node("a", labels=labels, taints=taints)
    gw = gateway()
    configured = apply(original, rules.decide(facts(gw, [original, worker("w")])).updates[0])
    assert configured.labels[ROLE] == ""
    assert Taint(ROLE, "NoSchedule") in configured.taints
    restored = apply(configured, rules.restore(configured))
    assert restored.labels == original.labels
    assert restored.taints == original.taints
    assert restored.record_text is None


def test_label_removed_by_hand_comes_back() -> None:
    gw = gateway()
    configured = apply(node("a"), rules.decide(facts(gw, [node("a"), worker("w")])).updates[0])
    stripped = NodeFacts(
        name="a",
        labels={k: v for k, v in configured.labels.items() if k != ROLE},
        taints=configured.taints,
        record_text=configured.record_text,
        ready=True,
    )
    (update,) = rules.decide(facts(gw, [stripped, worker("w")])).updates
    assert update.labels == {ROLE: ""}
    # The record still says the label was absent before the operator came.
    assert NodeRecord.from_json(update.record or "") == configured.record


def test_node_leaving_selection_is_restored() -> None:
    gw = gateway()
    configured = apply(node("a"), rules.decide(facts(gw, [node("a"), worker("w")])).updates[0])
    left = NodeFacts(
        name="a",
        labels={**configured.labels, "pool": "other"},
        taints=configured.taints,
        record_text=configured.record_text,
        ready=True,
    )
    decision = rules.decide(facts(gw, [left, node("b"), worker("w")]))
    restores = [u for u in decision.updates if u.changes[0].action == "Restore"]
    assert [u.name for u in restores] == ["a"]


def test_changing_the_role_label_restores_the_old_key() -> None:
    original = node("a", labels={"example.com/edge": "before"})
    first = gateway()
    configured = apply(original, rules.decide(facts(first, [original, worker("w")])).updates[0])
    second = gateway(nodes={"roleLabel": "example.com/edge", "taint": {"effect": "None"}})
    (update,) = rules.decide(facts(second, [configured, worker("w")])).updates
    moved = apply(configured, update)
    assert ROLE not in moved.labels
    assert moved.labels["example.com/edge"] == ""
    assert moved.taints == ()
    back = apply(moved, rules.restore(moved))
    assert back.labels == original.labels


def test_no_execute_waits_for_a_ready_controller_pod() -> None:
    gw = gateway(nodes={"taint": {"effect": "NoExecute"}})
    nodes = [node("a"), node("b", "zone-b"), worker("w")]
    pods = (PodFacts("p1", "a", ready=True), PodFacts("p2", "b", ready=False))
    decision = rules.decide(facts(gw, nodes, controller_pods=pods))
    by_name = {u.name: u for u in decision.updates}
    assert by_name["a"].taints == (Taint(ROLE, "NoExecute"),)
    assert by_name["b"].taints is None
    assert by_name["b"].labels[ROLE] == ""
    assert decision.taint_pending == ("b",)


# --- preflight ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "tolerates"),
    [
        (Toleration(operator="Exists"), True),
        (Toleration(key=ROLE, operator="Exists"), True),
        (Toleration(key=ROLE, operator="Exists", effect="NoExecute"), False),
        (Toleration(key=ROLE, value=""), True),
        (Toleration(key=ROLE, value="x"), False),
        (Toleration(key="other", operator="Exists"), False),
    ],
)
def test_toleration_matching(toleration: Toleration, tolerates: bool) -> None:
    assert toleration.tolerates(Taint(ROLE, "NoSchedule")) is tolerates


def test_preflight_names_intolerant_daemonsets() -> None:
    daemonsets = (
        DaemonSetFacts("kube-system", "cni", (Toleration(operator="Exists"),)),
        DaemonSetFacts("logging", "fluent-bit", ()),
    )
    decision = rules.decide(facts(gateway(), [node("a"), worker("w")], daemonsets=daemonsets))
    assert decision.intolerant_daemonsets == ("logging/fluent-bit",)
    untainted = gateway(nodes={"taint": {"effect": "None"}})
    assert (
        rules.decide(
            facts(untainted, [node("a"), worker("w")], daemonsets=daemonsets)
        ).intolerant_daemonsets
        == ()
    )


def test_record_round_trip_and_garbage() -> None:
    record = NodeRecord("gw", {"a": None, "b": "x"}, {("k", "NoSchedule"): "v"})
    assert NodeRecord.from_json(record.to_json()) == record
    assert NodeRecord.from_json("not json") is None
    assert NodeRecord.from_json('{"labels": {}}') is None


# --- leaving edge nodes -------------------------------------------------------------------

EXCLUDE = names.EXCLUDE_LB_LABEL


def _configured(gw: GatewayFacts, n: NodeFacts, *others: NodeFacts) -> NodeFacts:
    decision = rules.decide(facts(gw, [n, *others, worker("w")]))
    update = next((u for u in decision.updates if u.name == n.name), None)
    return apply(n, update)


def test_a_cordoned_edge_node_is_excluded_from_load_balancers_and_restored_after() -> None:
    gw = gateway()
    edge = _configured(gw, node("a"))
    assert EXCLUDE not in edge.labels
    cordoned = _configured(gw, replace(edge, unschedulable=True))
    assert cordoned.labels[EXCLUDE] == "true"
    assert cordoned.record is not None
    assert cordoned.record.labels[EXCLUDE] is None
    back = _configured(gw, replace(cordoned, unschedulable=False))
    assert EXCLUDE not in back.labels
    assert back.record is not None
    assert EXCLUDE not in back.record.labels
    assert rules.decide(facts(gw, [back, worker("w")])).updates == ()


def test_a_value_set_before_is_kept_and_put_back() -> None:
    gw = gateway()
    edge = _configured(gw, node("a", labels={EXCLUDE: "yes"}), node("b"))
    leaving = _configured(gw, replace(edge, unschedulable=True))
    assert leaving.labels[EXCLUDE] == "true"
    back = _configured(gw, replace(leaving, unschedulable=False))
    assert back.labels[EXCLUDE] == "yes"
    restored = apply(back, rules.restore(back))
    assert restored.labels[EXCLUDE] == "yes"


def test_nodes_scaled_in_are_leaving_and_deleted_ones_are_not_taken() -> None:
    gw = gateway()
    marked = replace(node("b"), taints=(Taint(names.AUTOSCALER_DELETE_TAINT, "NoSchedule"),))
    assert _configured(gw, marked).labels[EXCLUDE] == "true"
    assert not node("c").leaving
    decision = rules.decide(facts(gw, [replace(node("a"), deleting=True), node("c"), worker("w")]))
    assert decision.selected == ("c",)
    assert [u.name for u in decision.updates] == ["c"]


def test_every_edge_node_carries_the_drain_finalizer_until_released() -> None:
    gw = gateway()
    edge = _configured(gw, replace(node("a"), finalizers=("example.com/keep",)))
    assert edge.finalizers == ("example.com/keep", names.NODE_FINALIZER)
    assert rules.decide(facts(gw, [edge, worker("w")])).updates == ()
    restored = apply(edge, rules.restore(edge))
    assert restored.finalizers == ("example.com/keep",)
    assert "finalizer edgeoperator.dev/drain" in rules.restore(edge).changes[0].detail


def test_a_deleted_edge_node_drains_before_it_is_released() -> None:
    gw = gateway()
    edge = _configured(gw, node("a"), node("b"))
    other = _configured(gw, node("b"), node("a"))
    deleted = replace(edge, deleting=True)
    pod = PodFacts("p", "a", ready=True)

    draining = rules.decide(facts(gw, [deleted, other, worker("w")], controller_pods=(pod,)))
    assert draining.selected == ("b",)  # so the pass evicts the pod on a
    assert draining.draining == ("a",)
    (update,) = draining.updates
    assert update.labels == {EXCLUDE: "true"}
    assert update.finalizers is None  # kept
    leaving = apply(deleted, update)

    # Its pod is gone: the node is released, finalizer and all.
    released = rules.decide(facts(gw, [leaving, other, worker("w")]))
    (restore,) = released.updates
    assert restore.finalizers == ()
    assert restore.changes[0].action == "Restore"
    assert released.draining == ()

    # A node whose kubelet is gone cannot end its pods: released at once.
    dead = replace(deleted, ready=False)
    at_once = rules.decide(facts(gw, [dead, other, worker("w")], controller_pods=(pod,)))
    assert at_once.updates[0].finalizers == ()


def test_restore_of_a_cordoned_edge_node_removes_the_exclusion() -> None:
    gw = gateway()
    cordoned = _configured(gw, replace(_configured(gw, node("a")), unschedulable=True))
    restored = apply(cordoned, rules.restore(cordoned))
    assert EXCLUDE not in restored.labels
    assert names.GATEWAY_LABEL not in restored.labels


def test_a_node_out_of_the_selection_drains_before_it_is_restored() -> None:
    named = gateway(nodes={"selector": None, "names": ["a", "b"]})
    a = _configured(named, node("a"), node("b"))
    b = _configured(named, node("b"), node("a"))
    fewer = gateway(nodes={"selector": None, "names": ["b"]})
    pod = PodFacts("p", "a", ready=True)

    draining = rules.decide(facts(fewer, [a, b, worker("w")], controller_pods=(pod,)))
    assert (draining.selected, draining.draining) == (("b",), ("a",))
    (update,) = draining.updates
    assert update.labels == {EXCLUDE: "true"}
    leaving = apply(a, update)
    assert leaving.labels[names.GATEWAY_LABEL] == "gw"

    # Terminating still counts: the pod serves through its preStop delay.
    going = (PodFacts("p", "a", ready=False, terminating=True),)
    assert rules.decide(facts(fewer, [leaving, b, worker("w")], controller_pods=going)).draining

    (restore,) = rules.decide(facts(fewer, [leaving, b, worker("w")])).updates
    restored = apply(leaving, restore)
    assert names.GATEWAY_LABEL not in restored.labels
    assert EXCLUDE not in restored.labels
    assert restored.finalizers == ()


def test_a_draining_node_keeps_its_taint_as_it_is_and_gets_no_new_no_execute() -> None:
    """NoExecute goes on only once a controller pod is Ready there; a node leaving the
    selection whose pod never got Ready must not get it while it drains (it would evict
    every other pod on a node the gateway is letting go)."""
    no_execute = {"taint": {"effect": "NoExecute"}}
    named = gateway(nodes={"selector": None, "names": ["a", "b"], **no_execute})
    starting = (PodFacts("p", "a", ready=False),)
    a = _configured(named, node("a"), node("b"))
    assert not any(t.effect == "NoExecute" for t in a.taints)
    fewer = gateway(nodes={"selector": None, "names": ["b"], **no_execute})
    decision = rules.decide(facts(fewer, [a, node("b"), worker("w")], controller_pods=starting))
    assert decision.draining == ("a",)
    update = next(u for u in decision.updates if u.name == "a")
    assert update.taints is None
    assert not any(c.action == "Taint" for c in update.changes)


def test_a_heartbeat_is_not_a_change_a_label_is() -> None:
    before = node("a")
    assert same(before, replace(before, resource_version="8"))
    assert not same(before, replace(before, labels={**before.labels, "x": "y"}))
    assert not same(before, replace(before, ready=False))
    assert not same(None, before)
    assert not same(before, None)
    assert same(None, None)


def test_a_corrupt_record_refuses_and_changes_nothing() -> None:
    gw = gateway()
    edge = node("a")
    configured = apply(edge, rules.decide(facts(gw, [edge, worker("w")])).updates[0])
    for text in ("not json", '{"labels": {}}', '{"gateway": "gw", "taints": [{"key": 1}]}'):
        corrupt = replace(configured, record_text=text)
        decision = rules.decide(facts(gw, [corrupt, worker("w")]))
        assert decision.refusal is not None
        assert decision.refusal.reason == "NodeRecordCorrupt"
        assert "node(s) a " in decision.refusal.message
        assert decision.updates == ()
    # A free node with a garbage annotation is refused too: its record cannot be trusted.
    stray = node("b", labels={"e2e": "x"})
    stray = replace(stray, record_text="garbage")
    decision = rules.decide(facts(gw, [stray, worker("w")]))
    assert decision.refusal is not None
    assert decision.refusal.reason == "NodeRecordCorrupt"


def test_a_claim_holds_what_it_may_change_and_the_workers_it_counts() -> None:
    held = NodeFacts("h", {names.GATEWAY_LABEL: "gw"}, ready=True)  # selected no more
    other = gateway("other", nodes={"selector": {"matchLabels": {"pool": "other"}}})
    shared = node("s", labels={"pool": "other"})  # another gateway's candidate: counted last
    nodes = [shared, node("a"), node("b"), worker("w1"), worker("w2"), held]

    def scope(gw: GatewayFacts) -> rules.ClaimScope:
        f = facts(gw, nodes, others=(other,))
        return rules.claim_scope(f, rules.decide(f))

    assert scope(gateway()) == rules.ClaimScope(frozenset({"a", "b", "h"}), frozenset({"w1"}))
    assert scope(gateway(nodes={"minWorkerNodes": 0})).counts == frozenset()
    counts = frozenset({"w1", "w2", "h", "s"})
    assert scope(gateway(nodes={"minWorkerNodes": 4})).counts == counts
    wide = rules.ClaimScope(frozenset({"a", "b"}), frozenset({"w1"}))
    assert wide.covers(rules.ClaimScope(frozenset({"a"}), frozenset({"b", "w1"})))
    assert not wide.covers(rules.ClaimScope(frozenset({"a", "w1"})))
    assert not wide.covers(rules.ClaimScope(frozenset({"a"}), frozenset({"w2"})))
