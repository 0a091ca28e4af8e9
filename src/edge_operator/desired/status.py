"""The EdgeGateway status: conditions, phase and the node part, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from edge_operator import api
from edge_operator.desired.nodes import NodeDecision, desired_taint
from edge_operator.facts import Facts

READY = "Ready"
NODES_CONFIGURED = "NodesConfigured"
TAINT_SAFE = "TaintSafe"


@dataclass(frozen=True)
class Cond:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], wanted: Sequence[Cond], now: str, generation: int
) -> list[dict[str, Any]]:
    """Conditions in metav1.Condition form; lastTransitionTime moves only on a flip."""
    before = {c.get("type"): c for c in existing}
    out = []
    for cond in wanted:
        old = before.get(cond.type)
        flipped = old is None or old.get("status") != cond.status
        out.append(
            {
                "type": cond.type,
                "status": cond.status,
                "observedGeneration": generation,
                "lastTransitionTime": now if flipped else old["lastTransitionTime"],  # type: ignore[index]
                "reason": cond.reason,
                "message": cond.message,
            }
        )
    return out


def node_conditions(facts: Facts, decision: NodeDecision) -> list[Cond]:
    spec = facts.gateway.spec
    assert spec is not None
    selected = ", ".join(decision.selected)
    if decision.refusal:
        nodes = Cond(NODES_CONFIGURED, "False", decision.refusal.reason, decision.refusal.message)
    elif spec.paused and decision.updates:
        nodes = Cond(
            NODES_CONFIGURED,
            "False",
            "Paused",
            f"the gateway is paused with {len(decision.updates)} node change(s) waiting;"
            " see status.plan",
        )
    elif decision.taint_pending:
        nodes = Cond(
            NODES_CONFIGURED,
            "False",
            "TaintPending",
            "the NoExecute taint waits for a Ready controller pod on: "
            + ", ".join(decision.taint_pending),
        )
    else:
        message = f"{len(decision.selected)} edge node(s): {selected}"
        if decision.missing_names:
            message += "; named nodes not found: " + ", ".join(decision.missing_names)
        nodes = Cond(NODES_CONFIGURED, "True", "NodesConfigured", message)

    taint = desired_taint(spec)
    if taint is None:
        safe = Cond(TAINT_SAFE, "True", "NoTaint", "edge nodes are not tainted")
    elif decision.intolerant_daemonsets:
        safe = Cond(
            TAINT_SAFE,
            "False",
            "DaemonSetsNotTolerating",
            f"these DaemonSets do not tolerate the taint {taint}, so their pods will not run"
            " on edge nodes: " + ", ".join(decision.intolerant_daemonsets),
        )
    else:
        safe = Cond(
            TAINT_SAFE, "True", "AllDaemonSetsTolerate", f"every DaemonSet tolerates {taint}"
        )
    return [nodes, safe]


def invalid_spec_conditions(error: str) -> list[Cond]:
    message = f"the spec is invalid and nothing was changed: {error}"
    return [
        Cond(READY, "False", "InvalidSpec", message),
        Cond(NODES_CONFIGURED, "False", "InvalidSpec", message),
    ]


def ready_condition(conditions: Sequence[Cond]) -> Cond:
    """Ready when every condition it depends on is True (TaintSafe only warns)."""
    blocking = [c for c in conditions if c.type != TAINT_SAFE and c.status != "True"]
    if not blocking:
        return Cond(READY, "True", "Ready", "every condition the gateway depends on is True")
    first = blocking[0]
    return Cond(READY, "False", first.reason, f"{first.type}: {first.message}")


def phase(conditions: Sequence[Cond], paused: bool) -> str:
    if paused:
        return "Paused"
    by_type = {c.type: c for c in conditions}
    if by_type[READY].status == "True":
        return "Ready"
    degraded = {"InvalidSpec", "NoEdgeNodes", "MinWorkerNodes", "NodeOwnedByOtherGateway"}
    if any(c.reason in degraded for c in conditions):
        return "Degraded"
    return "Provisioning"


def plan(decision: NodeDecision) -> dict[str, Any]:
    nodes = [c for update in decision.updates for c in update.changes]
    return api.Plan(nodes=nodes).model_dump(by_alias=True)


def gateway_status(facts: Facts, decision: NodeDecision, applied: bool) -> dict[str, Any]:
    """The whole status after this pass; ``applied``: the node updates were made."""
    gw = facts.gateway
    spec = gw.spec
    assert spec is not None
    # Once this pass made its node changes, status describes the result, not the plan.
    shown = replace(decision, updates=()) if applied else decision
    wanted = node_conditions(facts, shown)
    conditions = [ready_condition(wanted), *wanted]
    pods: dict[str, int] = {}
    for pod in facts.controller_pods:
        if pod.ready:
            pods[pod.node_name] = pods.get(pod.node_name, 0) + 1
    edge_nodes = [
        api.EdgeNodeStatus(
            name=name,
            zone=facts.nodes[name].zone if name in facts.nodes else "",
            ready=facts.nodes[name].ready if name in facts.nodes else False,
            controller_pods=pods.get(name, 0),
        ).model_dump(by_alias=True)
        for name in decision.selected
    ]
    return {
        "observedGeneration": gw.generation,
        "phase": phase(conditions, spec.paused),
        "edgeNodes": edge_nodes,
        "edgeNodeCount": len(edge_nodes),
        "daemonSetsNotTolerating": list(decision.intolerant_daemonsets),
        "plan": plan(shown),
        "conditions": merge_conditions(
            gw.status.get("conditions") or [], conditions, facts.now, gw.generation
        ),
    }


def invalid_status(
    current: Mapping[str, Any], generation: int, error: str, now: str
) -> dict[str, Any]:
    conditions = invalid_spec_conditions(error)
    return {
        **current,
        "observedGeneration": generation,
        "phase": "Degraded",
        "conditions": merge_conditions(
            current.get("conditions") or [], conditions, now, generation
        ),
    }


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning ``old`` into ``new`` (empty: nothing to write)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value or key not in old:
            patch[key] = value
    return patch
