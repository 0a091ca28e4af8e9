"""One idempotent reconcile pass: gather facts -> decide -> apply what differs -> status.

Passes are serialised by one lock: they are short, and running one at a time
makes claims on nodes by two gateways deterministic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from edge_operator import names
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import status as status_rules
from edge_operator.facts import DaemonSetFacts, Facts, GatewayFacts, NodeFacts, PodFacts
from edge_operator.kube import ConflictError, Kube, KubeError, NotFoundError

log = logging.getLogger(__name__)

#: Attempts of one pass when a node changed under it (resourceVersion conflict).
ATTEMPTS = 3
#: Event reason for each kind of node change.
EVENT_REASONS = {"Label": "NodeLabelled", "Taint": "NodeTainted", "Restore": "NodeRestored"}


class NodeMovedError(Exception):
    """A node changed or vanished between reading it and patching it."""

    def __init__(self, node: str, cause: KubeError) -> None:
        super().__init__(f"node {node} changed during the pass: {cause}")
        self.node = node
        self.cause = cause


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeCache:
    """Small records of every node, fed by the node watch and by our own patches."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeFacts] = {}
        self._lock = threading.Lock()

    def replace_all(self, nodes: Iterable[NodeFacts]) -> None:
        fresh = {n.name: n for n in nodes}
        with self._lock:
            self._nodes = fresh

    def put(self, node: NodeFacts) -> NodeFacts | None:
        """Store ``node``; return what was stored before."""
        with self._lock:
            before = self._nodes.get(node.name)
            self._nodes[node.name] = node
        return before

    def remove(self, name: str) -> NodeFacts | None:
        with self._lock:
            return self._nodes.pop(name, None)

    def snapshot(self) -> dict[str, NodeFacts]:
        with self._lock:
            return dict(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class PassResult:
    """What a pass did; its Events are posted on the gateway when the pass ends."""

    events: list[Event] = field(default_factory=list)


class Reconciler:
    def __init__(self, kube: Kube, cache: NodeCache, clock: Callable[[], str] = utcnow) -> None:
        self.kube = kube
        self.cache = cache
        self.clock = clock
        self.lock = threading.Lock()

    def seed(self) -> int:
        """Fill the node cache with one paginated list (before the node watch starts)."""
        self.cache.replace_all(NodeFacts.from_api(n) for n in self.kube.iter_nodes())
        return len(self.cache)

    # --- the pass ---------------------------------------------------------------------------

    def reconcile(self, name: str) -> PassResult:
        with self.lock:
            for _ in range(ATTEMPTS - 1):
                try:
                    return self._pass(name)
                except NodeMovedError as moved:
                    # Someone else changed the node: re-read it and decide again.
                    log.debug("%s; retrying", moved)
                    self._refresh(moved.node)
            try:
                return self._pass(name)
            except NodeMovedError as moved:
                raise moved.cause from moved

    def _pass(self, name: str) -> PassResult:
        try:
            obj = self.kube.get_gateway(name)
        except NotFoundError:
            return PassResult()
        gw = GatewayFacts.from_api(obj)
        result = PassResult()
        if gw.deleting:
            return result  # the delete handler restores the nodes
        try:
            return self._decide_and_apply(gw, result)
        finally:
            self._post(obj, result.events)

    def _decide_and_apply(self, gw: GatewayFacts, result: PassResult) -> PassResult:
        refusal: node_rules.Refusal | None
        if gw.spec is None:
            assert gw.spec_error is not None
            status = status_rules.invalid_status(
                gw.status, gw.generation, gw.spec_error, self.clock()
            )
            refusal = node_rules.Refusal("InvalidSpec", gw.spec_error)
        else:
            facts = self._facts(gw)
            decision = node_rules.decide(facts)
            refusal = decision.refusal
            apply = refusal is None and not gw.spec.paused
            if apply:
                for update in decision.updates:
                    self._apply(update, result)
                facts = replace(facts, nodes=self.cache.snapshot())
            status = status_rules.gateway_status(facts, decision, applied=apply)
        before = _condition(gw.status, status_rules.NODES_CONFIGURED)
        self._write_status(gw, status)
        # One Warning per refusal, not one per pass that finds it still refused.
        if refusal and before != _condition(status, status_rules.NODES_CONFIGURED):
            result.events.append(Event("Warning", refusal.reason, refusal.message))
        return result

    def _facts(self, gw: GatewayFacts) -> Facts:
        assert gw.spec is not None
        others = tuple(
            GatewayFacts.from_api(o)
            for o in self.kube.list_gateways()
            if o["metadata"]["name"] != gw.name
        )
        taint = node_rules.desired_taint(gw.spec)
        daemonsets = (
            tuple(DaemonSetFacts.from_api(d) for d in self.kube.list_daemonsets()) if taint else ()
        )
        pods = self.kube.list_pods(gw.spec.controller.namespace, f"{names.GATEWAY_LABEL}={gw.name}")
        return Facts(
            gateway=gw,
            others=others,
            nodes=self.cache.snapshot(),
            daemonsets=daemonsets,
            controller_pods=tuple(PodFacts.from_api(p) for p in pods),
            now=self.clock(),
        )

    def _apply(self, update: node_rules.NodeUpdate, result: PassResult) -> None:
        try:
            node = self.kube.patch_node(update.name, update.patch())
        except (ConflictError, NotFoundError) as changed:
            raise NodeMovedError(update.name, changed) from changed
        self.cache.put(NodeFacts.from_api(node))
        for change in update.changes:
            log.info("node %s: %s", update.name, change.detail)
            result.events.append(
                Event(
                    "Normal", EVENT_REASONS[change.action], f"node {update.name}: {change.detail}"
                )
            )

    def _refresh(self, name: str) -> None:
        try:
            self.cache.put(NodeFacts.from_api(self.kube.get_node(name)))
        except NotFoundError:
            self.cache.remove(name)

    def _write_status(self, gw: GatewayFacts, status: dict[str, Any]) -> None:
        patch = status_rules.merge_patch(gw.status, status)
        if patch:
            self.kube.patch_gateway_status(gw.name, {"status": patch})

    # --- deletion ---------------------------------------------------------------------------

    def cleanup(self, gateway: Mapping[str, Any]) -> PassResult:
        """Restore every node the gateway holds (called before its finalizer goes)."""
        name = gateway["metadata"]["name"]
        with self.lock:
            result = PassResult()
            # The cache may lag the watch; the labelled nodes are read afresh.
            for raw in self.kube.iter_nodes(label_selector=f"{names.GATEWAY_LABEL}={name}"):
                self.cache.put(NodeFacts.from_api(raw))
            for node in sorted(self.cache.snapshot().values(), key=lambda n: n.name):
                if node_rules.holder(node) == name:
                    try:
                        self._restore_with_retry(node, result)
                    finally:
                        self._post(gateway, result.events)
                        result.events.clear()
            return result

    def _post(self, gateway: Mapping[str, Any], events: list[Event]) -> None:
        for event in events:
            try:
                self.kube.create_event(
                    gateway, event.type, event.reason, event.message, self.clock()
                )
            except KubeError as error:
                # An Event is a report, not state: losing one must not fail the pass.
                log.warning("could not post event %s: %s", event.reason, error)

    def _restore_with_retry(self, node: NodeFacts, result: PassResult) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._apply(node_rules.restore(node), result)
                return
            except NodeMovedError as moved:
                if isinstance(moved.cause, NotFoundError):
                    self.cache.remove(node.name)
                    return
                if attempt == ATTEMPTS:
                    raise moved.cause from moved
                self._refresh(node.name)
                fresh = self.cache.snapshot().get(node.name)
                if fresh is None or node_rules.holder(fresh) is None:
                    return
                node = fresh


def _condition(status: Mapping[str, Any], type_: str) -> tuple[str, str, str] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return (cond.get("status", ""), cond.get("reason", ""), cond.get("message", ""))
    return None
