"""One idempotent reconcile pass: gather facts -> decide -> write what differs -> status.

- gather (gather.py) reads every fact first;
- decide (desired/: nodes.decide, changes.plan, status) is pure;
- write (write.py) makes the decided changes and nothing else.

``plan`` (the ``edge-operator plan`` command) is gather + decide, with no write path.

Passes of different gateways run at the same time. Only a pass that takes nodes no
gateway holds yet (a claim) holds the nodes its decision reads (claims.py), deciding
again on the newest nodes there: claims on the same nodes happen one at a time, and the
older gateway keeps a node two gateways select (desired/nodes.py), so who gets a node
never depends on timing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from edge_operator import metrics, names
from edge_operator.claims import ClaimLocks
from edge_operator.desired import changes
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired.objects import Key
from edge_operator.facts import Facts, GatewayFacts, HealthProbe, NodeFacts, PodFacts
from edge_operator.gather import Gatherer, NodeCache, utcnow
from edge_operator.kube import Kube, KubeError
from edge_operator.write import ATTEMPTS, Event, NodeMovedError, Writer

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    """What a pass did: its Events (posted on the gateway), the spec it read and the
    status it wrote (None: the gateway is gone or being deleted)."""

    events: list[Event] = field(default_factory=list)
    spec: Mapping[str, Any] = field(default_factory=dict)
    status: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Preview:
    """What a pass of a gateway would change, worked out without writing anything."""

    gateway: str
    #: No such gateway yet: applying it creates it.
    new: bool
    paused: bool
    decision: node_rules.NodeDecision
    #: Its ``pending`` are the object changes, with the current and desired objects.
    workload: status_rules.Workload
    #: Controller pods the pass would evict: on nodes that are no longer edge nodes.
    evictions: tuple[PodFacts, ...] = ()
    #: Objects to create whose name an object not of this gateway has (ObjectConflict).
    conflicts: tuple[Key, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Everything one pass decided, before it writes anything."""

    facts: Facts
    nodes: node_rules.NodeDecision
    workload: changes.WorkloadPlan

    @property
    def claims(self) -> bool:
        """The pass takes a node that it does not hold yet."""
        me = self.facts.gateway.name
        return any(
            u.name not in self.facts.nodes or node_rules.holder(self.facts.nodes[u.name]) != me
            for u in self.nodes.updates
        )


def decide(facts: Facts) -> Decision:
    """The pure step: the node decision and the object changes."""
    nodes = node_rules.decide(facts)
    return Decision(facts, nodes, changes.plan(facts, nodes))


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        cache: NodeCache,
        clock: Callable[[], str] = utcnow,
        lb_health: Callable[[str], Mapping[str, HealthProbe]] | None = None,
        gateways: Callable[[], Iterable[GatewayFacts]] | None = None,
    ) -> None:
        self.gather = Gatherer(kube, cache, gateways=gateways, lb_health=lb_health, clock=clock)
        self.write = Writer(kube, cache, clock)
        self.cache = cache
        self.clock = clock
        #: Held by a pass that claims nodes (the nodes it reads), and by a gateway's
        #: cleanup (every node).
        self.claims = ClaimLocks()
        #: One pass (or cleanup) of a gateway at a time.
        self._gateway_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    # --- the pass ---------------------------------------------------------------------------

    def reconcile(self, name: str) -> PassResult:
        """One pass, measured: its duration, result and the gateway's gauges."""
        start = time.monotonic()
        try:
            with self._gateway_locks[name]:
                result = self._pass(name)
        except Exception as error:
            reason = f"APIError{error.status}" if isinstance(error, KubeError) else "Exception"
            metrics.RECONCILE_TOTAL.labels(name, "error").inc()
            metrics.RECONCILE_ERRORS.labels(name, reason).inc()
            raise
        finally:
            metrics.RECONCILE_TIME.observe(time.monotonic() - start)
        if result.status is None:
            metrics.forget(name)
            return result
        refused = status_rules.refused_reasons(result.status)
        metrics.RECONCILE_TOTAL.labels(name, "refused" if refused else "success").inc()
        for reason in refused:
            metrics.RECONCILE_ERRORS.labels(name, reason).inc()
        metrics.observe_status(name, result.spec, result.status)
        return result

    def _pass(self, name: str) -> PassResult:
        for attempt in range(1, ATTEMPTS + 1):
            obj = self.gather.gateway(name)
            if obj is None:
                return PassResult()
            gw = GatewayFacts.from_api(obj)
            if gw.deleting:
                return PassResult()  # the delete handler restores the nodes
            result = PassResult()
            try:
                return self._decide_and_write(gw, result)
            except NodeMovedError as moved:
                # Someone else changed the node: re-read it and decide again.
                if attempt == ATTEMPTS:
                    raise moved.cause from moved
                log.debug("%s; deciding again", moved)
                self.write.refresh(moved.node)
            finally:
                self.write.post(obj, result.events)
                log.debug("reconcile pass of %s done: %d change(s)", name, len(result.events))
        raise AssertionError("unreachable")  # pragma: no cover

    def _decide_and_write(self, gw: GatewayFacts, result: PassResult) -> PassResult:
        if gw.spec is None:
            assert gw.spec_error is not None
            status = status_rules.invalid_status(
                gw.status, gw.generation, gw.spec_error, self.clock()
            )
            refusal: node_rules.Refusal | None = node_rules.Refusal("InvalidSpec", gw.spec_error)
        else:
            decision = decide(self.gather.facts(gw))
            if decision.claims and not gw.spec.paused:
                decision, applied = self._claim(decision, result)
            else:
                decision, applied = self._write_nodes(decision, result)
            status = self._write_workload(decision, applied, result)
            refusal = decision.nodes.refusal
            result.spec = gw.spec.model_dump(by_alias=True, exclude_none=True)
        self.write.status(gw, status)
        result.status = status
        if refusal and status_rules.warn_again(gw.status, status):
            result.events.append(Event("Warning", refusal.reason, refusal.message))
        return result

    def _claim(self, decision: Decision, result: PassResult) -> tuple[Decision, bool]:
        """Decide again on the newest nodes while holding the ones the decision rests on,
        and make the node changes there. Only the node changes wait; the objects do not."""
        scope: node_rules.ClaimScope | None = node_rules.claim_scope(decision.facts, decision.nodes)
        while True:
            with self.claims.hold(scope):
                decision = decide(self.gather.refresh_nodes(decision.facts))
                now = node_rules.claim_scope(decision.facts, decision.nodes)
                if scope is None or scope.covers(now):
                    return self._write_nodes(decision, result)
            scope = None  # the nodes it rests on changed meanwhile: hold every node

    def _write_nodes(self, decision: Decision, result: PassResult) -> tuple[Decision, bool]:
        """Make the node changes. Returns the decision as it stands after them (with the
        nodes as written, or the API server's refusal), and whether the pass goes on to
        write its objects (not refused, not paused)."""
        facts, nodes = decision.facts, decision.nodes
        assert facts.gateway.spec is not None
        if nodes.refusal is not None or facts.gateway.spec.paused:
            return decision, False
        denied, events = self.write.nodes(facts.gateway.name, nodes.updates)
        result.events += events
        facts = replace(facts, nodes=self.cache.snapshot())
        if denied is not None:
            return replace(decision, facts=facts, nodes=replace(nodes, refusal=denied)), False
        return replace(decision, facts=facts), True

    def _write_workload(
        self, decision: Decision, applied: bool, result: PassResult
    ) -> dict[str, Any]:
        """Make the object changes (when the node changes were made); return the status."""
        facts, planned = decision.facts, decision.workload
        if not applied:
            workload = changes.workload(facts, planned, applied=False)
            return status_rules.gateway_status(facts, decision.nodes, False, workload)
        # Before the Deployment scales down, so the ReplicaSet replaces (and then drops)
        # these pods rather than one on a node that stays.
        result.events += self.write.evict(planned.evictions)
        written = self.write.objects(planned, facts.workload.owned)
        result.events += written.events
        workload = changes.workload(
            facts, planned, applied=True, objects=written.objects, failures=written.failures
        )
        return status_rules.gateway_status(facts, decision.nodes, True, workload)

    def idle(self) -> None:
        """No pass runs or waits: end the burst's threads and close its idle connections."""
        for pool in (self.gather.readers, self.write.node_pool, self.write.object_pool):
            pool.idle(wait=True)
        self.write.kube.close_idle()

    # --- the preview ------------------------------------------------------------------------

    def plan(self, obj: Mapping[str, Any]) -> Preview:
        """What a pass would change once ``obj`` (an EdgeGateway, say from a file) is applied:
        its spec with the cluster's metadata and status of that gateway. Only reads.

        Raises ValueError for an invalid spec or a gateway being deleted.
        """
        name = obj["metadata"]["name"]
        # Created now, so the newest: older gateways keep the nodes they select.
        live = self.gather.gateway(name) or {
            "metadata": {"name": name, "creationTimestamp": self.clock()}
        }
        gw = GatewayFacts.from_api({**live, "spec": obj.get("spec")})
        if gw.spec is None:
            raise ValueError(gw.spec_error)
        if gw.deleting:
            raise ValueError(f"EdgeGateway {name} is being deleted")
        decision = decide(self.gather.facts(gw))
        return Preview(
            gateway=name,
            new="uid" not in live["metadata"],
            paused=gw.spec.paused,
            decision=decision.nodes,
            workload=changes.workload(decision.facts, decision.workload, applied=False),
            evictions=decision.workload.evictions,
            conflicts=decision.workload.conflicts,
        )

    # --- deletion ---------------------------------------------------------------------------

    def cleanup(self, gateway: Mapping[str, Any]) -> None:
        """Restore every node the gateway holds (called before its finalizer goes)."""
        name = gateway["metadata"]["name"]
        with self._gateway_locks[name], self.claims.hold(None):
            # The cache may lag the watch; the labelled nodes are read afresh.
            for raw in self.write.kube.iter_nodes(label_selector=f"{names.GATEWAY_LABEL}={name}"):
                self.cache.put(NodeFacts.from_api(raw))
            for node in sorted(self.cache.snapshot().values(), key=lambda n: n.name):
                if node_rules.holder(node) == name:
                    self.write.post(gateway, self.write.restore(node))
