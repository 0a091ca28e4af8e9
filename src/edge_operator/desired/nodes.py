"""Which nodes are a gateway's edge nodes, and how each node must change.

Rules (also in the README and the CRD descriptions):

- Candidates are the nodes matched by ``spec.nodes.selector`` or named in
  ``spec.nodes.names``. Without ``count`` every candidate becomes an edge node,
  whatever its readiness: labels are harmless on a node that is down, and it
  serves again as soon as it is back.
- With ``count`` only *eligible* candidates are chosen: Ready, not cordoned, not
  held by another gateway. Nodes already chosen stay chosen while eligible; new
  ones are added to the zones with the fewest, so the choice is stable and spread.
- A node belongs to at most one gateway. A gateway refuses (changing nothing)
  when its selection takes a node another gateway holds, or an unheld node that
  an older gateway selects without ``count``; the older gateway keeps it.
- Workers are Ready, schedulable nodes that are nobody's edge node. A selection
  that would leave fewer than ``minWorkerNodes`` of them is refused, as is an
  empty one. A refusal changes nothing, not even nodes that left the selection.
- Each change to a node is one resourceVersion-checked patch carrying the labels,
  the taints and the record annotation, so a node is never half-configured.
- An edge node that is leaving (cordoned, as ``kubectl drain`` does first; being
  deleted; or tainted ToBeDeletedByClusterAutoscaler) also gets
  ``node.kubernetes.io/exclude-from-external-load-balancers: "true"``, recorded and
  restored like the other labels once it is back, so cloud load balancers stop sending
  to it while its controller pod still serves (that pod's preStop delay covers the
  load balancer's health checks as well).
- An edge node that leaves the selection, or is deleted, drains before it is released:
  while it is Ready and a controller pod of its gateway is on it, it keeps its labels
  and taint, gets the load-balancer exclusion label, and the pass evicts those pods
  (through the PodDisruptionBudget; their preStop delay covers the load balancer's
  health checks); once they are gone the node is restored. A node that is not Ready is
  restored at once (its kubelet cannot end the pods). Every edge node carries the
  finalizer ``edgeoperator.dev/drain`` so that a deleted one stays (being deleted) until
  then; restoring a node removes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge_operator import api, names
from edge_operator.facts import (
    DaemonSetFacts,
    Facts,
    GatewayFacts,
    NodeFacts,
    NodeRecord,
    Taint,
)


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


@dataclass(frozen=True)
class NodeUpdate:
    """One node's change, as a JSON merge patch guarded by its resourceVersion."""

    name: str
    resource_version: str
    labels: Mapping[str, str | None]
    record: str | None  # new annotation value; None removes it
    taints: tuple[Taint, ...] | None  # the node's whole new taint list; None: unchanged
    changes: tuple[api.NodeChange, ...]
    #: The node's whole new finalizer list; None: unchanged.
    finalizers: tuple[str, ...] | None = None

    def patch(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "metadata": {
                "resourceVersion": self.resource_version,
                "labels": dict(self.labels),
                "annotations": {names.NODE_RECORD_ANNOTATION: self.record},
            }
        }
        if self.taints is not None:
            body["spec"] = {"taints": [t.to_api() for t in self.taints]}
        if self.finalizers is not None:
            # A merge patch replaces the list; the resourceVersion guards the others'.
            body["metadata"]["finalizers"] = list(self.finalizers)
        return body


@dataclass(frozen=True)
class NodeDecision:
    """The outcome of deciding one gateway's nodes."""

    selected: tuple[str, ...]
    updates: tuple[NodeUpdate, ...] = ()
    refusal: Refusal | None = None
    #: nodes whose NoExecute taint waits for a Ready controller pod there
    taint_pending: tuple[str, ...] = ()
    #: "namespace/name" of DaemonSets whose pods do not tolerate the taint
    intolerant_daemonsets: tuple[str, ...] = ()
    missing_names: tuple[str, ...] = ()
    #: Edge nodes leaving (out of the selection, or deleted), kept configured and
    #: excluded from load balancers until their controller pods are gone; not in
    #: ``selected``, so those pods are evicted.
    draining: tuple[str, ...] = ()
    #: The schedulable non-edge nodes counted for spec.nodes.minWorkerNodes.
    workers: tuple[str, ...] = ()


# --- matching -----------------------------------------------------------------------------


def selector_matches(selector: api.LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches every node."""
    if not selector.match_labels.items() <= labels.items():
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        ok = {
            "In": present and labels.get(req.key) in req.values,
            "NotIn": not present or labels.get(req.key) not in req.values,
            "Exists": present,
            "DoesNotExist": not present,
        }[req.operator]
        if not ok:
            return False
    return True


def candidates(spec: api.EdgeGatewaySpec, nodes: Mapping[str, NodeFacts]) -> list[NodeFacts]:
    if spec.nodes.names is not None:
        return [nodes[n] for n in sorted(set(spec.nodes.names)) if n in nodes]
    selector = spec.nodes.selector or api.LabelSelector()
    found = [n for n in nodes.values() if selector_matches(selector, n.labels)]
    return sorted(found, key=lambda n: n.name)


def holder(node: NodeFacts) -> str | None:
    """The gateway that holds the node: by ownership label, else by its record."""
    return node.holder


def _older_claims(node: NodeFacts, me: GatewayFacts, others: Iterable[GatewayFacts]) -> str | None:
    """An older gateway that selects this unheld node with no count (so wants it for sure)."""
    for other in sorted(others, key=lambda g: g.age_key):
        if other.age_key >= me.age_key or other.spec is None or other.deleting:
            continue
        if other.spec.nodes.count is None and node in candidates(other.spec, {node.name: node}):
            return other.name
    return None


def choose(count: int, eligible: Sequence[NodeFacts], mine: str) -> list[NodeFacts]:
    """Pick ``count`` nodes: keep the ones already held, then fill the emptiest zones."""
    chosen = sorted((n for n in eligible if holder(n) == mine), key=lambda n: n.name)
    while len(chosen) > count:
        per_zone = Counter(n.zone for n in chosen)
        crowded = max(per_zone, key=lambda z: (per_zone[z], z))
        chosen.remove(max((n for n in chosen if n.zone == crowded), key=lambda n: n.name))
    rest = sorted((n for n in eligible if n not in chosen), key=lambda n: n.name)
    while len(chosen) < count and rest:
        per_zone = Counter(n.zone for n in chosen)
        zone = min({n.zone for n in rest}, key=lambda z: (per_zone[z], z))
        pick = next(n for n in rest if n.zone == zone)
        chosen.append(pick)
        rest.remove(pick)
    return sorted(chosen, key=lambda n: n.name)


# --- taints and DaemonSets ----------------------------------------------------------------


def desired_taint(spec: api.EdgeGatewaySpec) -> Taint | None:
    effect = spec.nodes.taint.effect
    if effect == "None":
        return None
    return Taint(spec.nodes.taint_key, effect, spec.nodes.taint.value)


def intolerant_daemonsets(taint: Taint | None, daemonsets: Iterable[DaemonSetFacts]) -> list[str]:
    if taint is None:
        return []
    return sorted(f"{d.namespace}/{d.name}" for d in daemonsets if not d.tolerates(taint))


# --- per-node changes ---------------------------------------------------------------------


def configure(
    node: NodeFacts, gateway: str, labels: Mapping[str, str], taint: Taint | None
) -> NodeUpdate | None:
    """Make ``node`` an edge node of ``gateway``; None when it already is one.

    Keys managed before but no longer wanted (say roleLabel changed) go back to
    their recorded values; for newly managed keys the record keeps the current value.
    """
    old = node.record if node.record and node.record.gateway == gateway else None
    old_labels: Mapping[str, str | None] = old.labels if old else {}
    old_taints: Mapping[tuple[str, str], str | None] = old.taints if old else {}

    new_labels: dict[str, str | None] = {}
    record_labels: dict[str, str | None] = {}
    changes: list[api.NodeChange] = []
    for key in sorted(set(old_labels) | set(labels)):
        current = node.labels.get(key)
        if key in labels:
            record_labels[key] = old_labels.get(key, current)
            target: str | None = labels[key]
        else:
            target = old_labels[key]
        if current != target:
            new_labels[key] = target
            changes.append(_label_change(node.name, key, target))

    taints = {t.ident: t for t in node.taints}
    wanted = {taint.ident: taint} if taint else {}
    record_taints: dict[tuple[str, str], str | None] = {}
    for ident in sorted(set(old_taints) | set(wanted)):
        present = taints.get(ident)
        if ident in wanted:
            record_taints[ident] = old_taints.get(ident, present.value if present else None)
            target_taint: Taint | None = wanted[ident]
        else:
            previous = old_taints[ident]
            target_taint = None if previous is None else Taint(*ident, previous)
        if present != target_taint:
            taints = _set_taint(taints, ident, target_taint)
            changes.append(_taint_change(node.name, ident, target_taint))

    record = NodeRecord(gateway, record_labels, record_taints).to_json()
    taints_changed = tuple(taints.values()) != node.taints
    # No finalizer can be added to a node being deleted (the API server refuses it).
    add_finalizer = names.NODE_FINALIZER not in node.finalizers and not node.deleting
    if not changes and record == node.record_text and not add_finalizer:
        return None
    return NodeUpdate(
        name=node.name,
        resource_version=node.resource_version,
        labels=new_labels,
        record=record,
        taints=tuple(taints.values()) if taints_changed else None,
        changes=tuple(changes),
        finalizers=(*node.finalizers, names.NODE_FINALIZER) if add_finalizer else None,
    )


def restore(node: NodeFacts) -> NodeUpdate:
    """Put back every label and taint the record names, and drop the record."""
    record = node.record or NodeRecord(gateway=node.owner or "", labels={names.GATEWAY_LABEL: None})
    new_labels: dict[str, str | None] = {}
    for key, previous in sorted(record.labels.items()):
        if node.labels.get(key) != previous:
            new_labels[key] = previous
    taints = {t.ident: t for t in node.taints}
    for ident, previous in sorted(record.taints.items()):
        taints = _set_taint(taints, ident, None if previous is None else Taint(*ident, previous))
    new_taints = tuple(taints.values())
    details = [f"label {k}" for k in new_labels] + [
        f"taint {k}:{e}" for (k, e) in sorted(record.taints)
    ]
    if names.NODE_FINALIZER in node.finalizers:
        details.append(f"finalizer {names.NODE_FINALIZER}")
    return NodeUpdate(
        name=node.name,
        resource_version=node.resource_version,
        labels=new_labels,
        record=None,
        taints=new_taints if new_taints != node.taints else None,
        finalizers=(
            tuple(f for f in node.finalizers if f != names.NODE_FINALIZER)
            if names.NODE_FINALIZER in node.finalizers
            else None
        ),
        changes=(
            api.NodeChange(
                name=node.name,
                action="Restore",
                detail="restore " + (", ".join(details) or "record only"),
            ),
        ),
    )


def _set_taint(
    taints: dict[tuple[str, str], Taint], ident: tuple[str, str], taint: Taint | None
) -> dict[tuple[str, str], Taint]:
    """Replace in place (keeping the node's taint order), append, or remove."""
    out = dict(taints)
    if taint is None:
        out.pop(ident, None)
    else:
        out[ident] = taint
    return out


def _label_change(node: str, key: str, value: str | None) -> api.NodeChange:
    detail = f"remove label {key}" if value is None else f'set label {key}="{value}"'
    return api.NodeChange(name=node, action="Label", detail=detail)


def _taint_change(node: str, ident: tuple[str, str], taint: Taint | None) -> api.NodeChange:
    detail = f"remove taint {ident[0]}:{ident[1]}" if taint is None else f"add taint {taint}"
    return api.NodeChange(name=node, action="Taint", detail=detail)


# --- the decision -------------------------------------------------------------------------


def _drain_or_release(
    leaving: Iterable[NodeFacts],
    facts: Facts,
    labels: Mapping[str, str],
    taint: Taint | None,
) -> tuple[list[str], list[NodeUpdate]]:
    """Edge nodes the gateway lets go: drained while a controller pod of its is on them
    and they are Ready (kept configured with ``labels``), else restored."""
    me = facts.gateway.name
    pods_on = {p.node_name for p in facts.controller_pods}
    draining: list[str] = []
    updates: list[NodeUpdate] = []
    for node in leaving:
        if node.ready and node.name in pods_on:
            draining.append(node.name)
            # The taint stays as it is: one not on the node yet (a NoExecute still
            # waiting for a Ready pod) does not go on a node the gateway lets go.
            record = node.record
            kept = taint if taint and record and taint.ident in record.taints else None
            if update := configure(node, me, labels, kept):
                updates.append(update)
        else:
            updates.append(restore(node))
    return draining, updates


@dataclass(frozen=True)
class ClaimScope:
    """The nodes a claim's decision rests on: those it may change (the nodes it selects
    or holds) and those it only counts (the workers spec.nodes.minWorkerNodes needs)."""

    changes: frozenset[str]
    counts: frozenset[str] = frozenset()

    def covers(self, other: ClaimScope) -> bool:
        return other.changes <= self.changes and other.counts <= self.changes | self.counts


def claim_scope(facts: Facts, decision: NodeDecision) -> ClaimScope:
    """What a claim of ``facts.gateway`` deciding ``decision`` holds while it decides again
    and writes (reconcile.py, claims.py)."""
    me = facts.gateway.name
    assert facts.gateway.spec is not None
    held = {n.name for n in facts.nodes.values() if n.holder == me}
    found = {n.name for n in candidates(facts.gateway.spec, facts.nodes)}
    return ClaimScope(frozenset(held | found), frozenset(decision.workers))


def count_workers(minimum: int, chosen: set[str], facts: Facts) -> list[str]:
    """Schedulable nodes left to workloads, as far as ``minimum`` (all of them when there
    are fewer): first those no other gateway selects, so that the claims of other
    gateways (which hold the nodes they select) rarely wait for this one."""
    if minimum == 0:
        return []
    me = facts.gateway.name
    counted: list[str] = []
    selected_elsewhere: list[str] = []
    for n in facts.nodes.values():
        if not (n.schedulable and n.name not in chosen and n.holder in (None, me)):
            continue
        if any(
            o.spec is not None and not o.deleting and candidates(o.spec, {n.name: n})
            for o in facts.others
        ):
            selected_elsewhere.append(n.name)
            continue
        counted.append(n.name)
        if len(counted) >= minimum:
            return counted
    return (counted + selected_elsewhere)[:minimum]


def decide(facts: Facts) -> NodeDecision:
    """Decide one gateway's edge nodes and the node changes to get there."""
    gw = facts.gateway
    spec = gw.spec
    assert spec is not None, "decide() needs a valid spec"
    nodes = facts.nodes
    me = gw.name
    held = [n for n in nodes.values() if n.holder == me]
    current = tuple(sorted(n.name for n in held))
    missing = tuple(sorted(set(spec.nodes.names or ()) - set(nodes)))

    def refuse(reason: str, message: str) -> NodeDecision:
        return NodeDecision(current, refusal=Refusal(reason, message), missing_names=missing)

    # A node being deleted is never taken; one held is drained and released below.
    found = [n for n in candidates(spec, nodes) if not n.deleting]
    corrupt = sorted({n.name for n in (*held, *found) if n.record_text and n.record is None})
    if corrupt:
        return refuse(
            "NodeRecordCorrupt",
            f"the {names.NODE_RECORD_ANNOTATION} annotation of node(s) {', '.join(corrupt)} is"
            " not a record the operator wrote (edited by hand?), so it cannot tell what to"
            " restore there; nothing was changed. Put the record back, or remove the"
            " annotation once the node's labels and taints are as they should be",
        )
    if spec.nodes.count is None:
        selected = found
        for node in selected:
            other = holder(node)
            if other not in (None, me):
                return refuse(
                    "NodeOwnedByOtherGateway",
                    f"node {node.name} is already an edge node of EdgeGateway {other};"
                    " change the selection so the gateways do not overlap",
                )
            if other is None and (older := _older_claims(node, gw, facts.others)):
                return refuse(
                    "NodeOwnedByOtherGateway",
                    f"node {node.name} is also selected by EdgeGateway {older}, which is"
                    " older and keeps it; change the selection so the gateways do not overlap",
                )
    else:
        eligible = [
            n
            for n in found
            if n.schedulable
            and holder(n) in (None, me)
            and (holder(n) == me or not _older_claims(n, gw, facts.others))
        ]
        selected = choose(spec.nodes.count, eligible, me)

    if not selected:
        what = (
            "none of the nodes in spec.nodes.names exist"
            if spec.nodes.names is not None
            else "spec.nodes.selector matches no node"
        )
        if found and spec.nodes.count is not None:
            what = "no candidate node is Ready, schedulable and free of other gateways"
        return refuse("NoEdgeNodes", f"{what}; nothing was changed")

    chosen = {n.name for n in selected}
    workers = count_workers(spec.nodes.min_worker_nodes, chosen, facts)
    if len(workers) < spec.nodes.min_worker_nodes:
        return refuse(
            "MinWorkerNodes",
            f"taking {len(chosen)} edge nodes would leave {len(workers)} schedulable worker"
            f" node(s), fewer than spec.nodes.minWorkerNodes={spec.nodes.min_worker_nodes};"
            " nothing was changed",
        )

    taint = desired_taint(spec)
    ready_pods = {p.node_name for p in facts.controller_pods if p.ready}
    labels = {spec.nodes.role_label: "", names.GATEWAY_LABEL: me}
    # What a leaving edge node carries: cloud load balancers stop sending to it.
    leaving_labels = {**labels, names.EXCLUDE_LB_LABEL: "true"}
    updates: list[NodeUpdate] = []
    pending: list[str] = []
    for node in selected:
        node_taint = taint
        if taint is not None and taint.effect == "NoExecute":
            already = node.record is not None and taint.ident in node.record.taints
            if not already and node.name not in ready_pods:
                node_taint = None
                pending.append(node.name)
        # Labels go on at once, so the controller pod can be scheduled on the node.
        node_labels = leaving_labels if node.leaving else labels
        if update := configure(node, me, node_labels, node_taint):
            updates.append(update)
    leaving = [n for n in sorted(held, key=lambda n: n.name) if n.name not in chosen]
    draining, releases = _drain_or_release(leaving, facts, leaving_labels, taint)
    updates.extend(releases)
    return NodeDecision(
        selected=tuple(sorted(chosen)),
        updates=tuple(updates),
        taint_pending=tuple(pending),
        intolerant_daemonsets=tuple(intolerant_daemonsets(taint, facts.daemonsets)),
        missing_names=missing,
        draining=tuple(draining),
        workers=tuple(workers),
    )
