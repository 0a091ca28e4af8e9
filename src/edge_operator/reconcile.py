"""One idempotent reconcile pass: gather facts -> decide -> apply what differs -> status.

Passes are serialised by one lock: they are short, and running one at a time
makes claims on nodes by two gateways deterministic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from edge_operator import metrics, names
from edge_operator.desired import ingressclass
from edge_operator.desired import namespace as namespace_rules
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.objects import Action, Key, Owner, action
from edge_operator.facts import (
    DaemonSetFacts,
    Facts,
    GatewayFacts,
    HealthProbe,
    NodeFacts,
    PodFacts,
)
from edge_operator.kube import (
    REFUSALS,
    ConflictError,
    ForbiddenError,
    ImmutableError,
    InvalidError,
    Kube,
    KubeError,
    NotFoundError,
    ThrottledError,
)

log = logging.getLogger(__name__)

#: Attempts of one pass when a node changed under it (resourceVersion conflict).
ATTEMPTS = 3
#: Event reason for each kind of node change.
EVENT_REASONS = {"Label": "NodeLabelled", "Taint": "NodeTainted", "Restore": "NodeRestored"}
#: Event reason for each kind of object change.
OBJECT_REASONS: dict[Action, str] = {"Create": "Created", "Update": "Updated", "Delete": "Deleted"}


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
    #: The gateway's spec and the status the pass wrote (None: gone or being deleted).
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


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        cache: NodeCache,
        clock: Callable[[], str] = utcnow,
        lb_health: Callable[[str], Mapping[str, HealthProbe]] | None = None,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.clock = clock
        #: The latest load-balancer health probes of a gateway's nodes (None: probing off).
        self.lb_health = lb_health
        self.lock = threading.Lock()

    def seed(self) -> int:
        """Fill the node cache with one paginated list (before the node watch starts)."""
        self.cache.replace_all(NodeFacts.from_api(n) for n in self.kube.iter_nodes())
        return len(self.cache)

    # --- the pass ---------------------------------------------------------------------------

    def reconcile(self, name: str) -> PassResult:
        """One pass, measured: its duration, result and the gateway's gauges."""
        start = time.monotonic()
        try:
            result = self._reconcile(name)
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
        conditions = result.status.get("conditions") or []
        refused = sorted(
            {
                c["reason"]
                for c in conditions
                if c.get("status") != "True" and c.get("reason") in status_rules.DEGRADED_REASONS
            }
        )
        metrics.RECONCILE_TOTAL.labels(name, "refused" if refused else "success").inc()
        for reason in refused:
            metrics.RECONCILE_ERRORS.labels(name, reason).inc()
        metrics.observe_status(name, result.spec, result.status)
        return result

    def _reconcile(self, name: str) -> PassResult:
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
            log.debug("reconcile pass of %s done: %d change(s)", name, len(result.events))

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
                denied = self._apply_nodes(gw.name, decision.updates, result)
                if denied:
                    # E.g. the chart's node policy does not list this gateway's keys.
                    decision, refusal, apply = replace(decision, refusal=denied), denied, False
                facts = replace(facts, nodes=self.cache.snapshot())
            workload = self._workload(facts, decision, apply, result)
            status = status_rules.gateway_status(facts, decision, apply, workload)
        before = _condition(gw.status, status_rules.NODES_CONFIGURED)
        self._write_status(gw, status)
        result.status = status
        if gw.spec is not None:
            result.spec = gw.spec.model_dump(by_alias=True, exclude_none=True)
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
            lb_health=self.lb_health(gw.name) if self.lb_health else None,
        )

    # --- the preview ------------------------------------------------------------------------

    def plan(self, obj: Mapping[str, Any]) -> Preview:
        """What a pass would change once ``obj`` (an EdgeGateway, say from a file) is applied:
        its spec with the cluster's metadata and status of that gateway. Only reads.

        Raises ValueError for an invalid spec or a gateway being deleted.
        """
        name = obj["metadata"]["name"]
        try:
            live = self.kube.get_gateway(name)
        except NotFoundError:
            # Created now, so the newest: older gateways keep the nodes they select.
            live = {"metadata": {"name": name, "creationTimestamp": self.clock()}}
        gw = GatewayFacts.from_api({**live, "spec": obj.get("spec")})
        if gw.spec is None:
            raise ValueError(gw.spec_error)
        if gw.deleting:
            raise ValueError(f"EdgeGateway {name} is being deleted")
        facts = self._facts(gw)
        decision = node_rules.decide(facts)
        workload = self._workload(facts, decision, apply=False, result=PassResult())
        return Preview(
            gateway=name,
            new="uid" not in live["metadata"],
            paused=gw.spec.paused,
            decision=decision,
            workload=workload,
            evictions=tuple(workload_rules.strays(facts.controller_pods, decision.selected)),
            conflicts=tuple(
                key
                for key, change in workload.pending
                if change == "Create"
                and key.kind != "Namespace"
                and not self._missing(key.kind, key.namespace, key.name)
            ),
        )

    # --- the workload -----------------------------------------------------------------------

    def _workload(
        self,
        facts: Facts,
        decision: node_rules.NodeDecision,
        apply: bool,
        result: PassResult,
    ) -> status_rules.Workload:
        """Bring the owned objects to the desired state (``apply``) or plan it."""
        gw, spec = facts.gateway, facts.gateway.spec
        assert spec is not None
        owner = Owner(gw.name, gw.uid)
        name = names.workload_name(gw.name)
        ns = spec.controller.namespace
        current: dict[Key, dict[str, Any]] = {}
        for kind in workload_rules.OWNED_KINDS:
            for obj in self.kube.list_objects(kind, f"{names.GATEWAY_LABEL}={gw.name}"):
                current[Key.of(obj)] = obj
        deployment_key = Key("Deployment", ns, name)
        inputs = workload_rules.Inputs(
            owner=owner,
            spec=spec,
            ready_edge_nodes=sum(
                1 for n in decision.selected if n in facts.nodes and facts.nodes[n].ready
            ),
            autoscaled_replicas=self._autoscaled(current.get(deployment_key)),
        )
        desired = {Key.of(obj): obj for obj in workload_rules.build(inputs)}
        roles = sorted({obj["roleRef"]["name"] for obj in desired.values() if "roleRef" in obj})
        changes: list[tuple[Key, Action]] = [
            (key, change)
            for key, obj in desired.items()
            if (change := action(obj, current.get(key))) is not None
        ]
        changes += [(key, "Delete") for key in sorted(current.keys() - desired.keys())]
        # Objects of ours in the namespace prove it exists; only otherwise ask.
        namespace_missing = not any(k.namespace == ns for k in current) and self._missing(
            "Namespace", "", ns
        )
        if namespace_missing:
            namespace_key = Key("Namespace", "", ns)
            changes.insert(0, (namespace_key, "Create"))
            desired = {namespace_key: namespace_rules.namespace(ns), **desired}
        failures: list[tuple[Key, str, str]] = []
        if apply:
            # Before the Deployment scales down, so the ReplicaSet replaces (and then
            # drops) these pods rather than one on a node that stays.
            for pod in workload_rules.strays(facts.controller_pods, decision.selected):
                self._evict(pod, result)
        if apply and changes:
            self._change_objects(changes, desired, current, failures, result)
            changes = []
        return status_rules.Workload(
            objects=current,
            deployment=deployment_key,
            service=Key("Service", ns, name),
            ingress_class=ingressclass.name(owner, spec),
            pending=tuple(changes),
            desired=desired,
            failures=tuple(failures),
            missing_roles=tuple(r for r in roles if self._missing("ClusterRole", "", r)),
        )

    def _change_objects(
        self,
        changes: list[tuple[Key, Action]],
        desired: dict[Key, dict[str, Any]],
        current: dict[Key, dict[str, Any]],
        failures: list[tuple[Key, str, str]],
        result: PassResult,
    ) -> None:
        """Make the changes; ``current`` ends up holding what the API returned."""
        for key, change in changes:
            if key.kind == "Namespace":
                self.kube.apply(namespace_rules.namespace(key.name))
                self._report(key, change, result)
                continue
            if change == "Create" and not self._missing(key.kind, key.namespace, key.name):
                failures.append(
                    (
                        key,
                        "ObjectConflict",
                        "an object of that name exists and is not this gateway's; the operator"
                        " leaves it alone (delete or rename it, or choose another name)",
                    )
                )
                continue
            try:
                if change == "Delete":
                    current.pop(key, None)
                    self.kube.delete_object(key.kind, key.namespace, key.name)
                else:
                    current[key] = self._apply_object(change, key, desired[key])
            except NotFoundError:
                if change == "Delete":
                    continue  # already gone: what we wanted
                raise
            except REFUSALS as error:
                log.warning("%s %s refused: %s", change, key, error)
                failures.append((key, "ApplyFailed", str(error)))
                result.events.append(Event("Warning", "ApplyFailed", f"{change} {key}: {error}"))
                continue
            self._report(key, change, result)

    def _apply_object(self, change: Action, key: Key, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply; an object of a kind in workload.RECREATE whose immutable field must
        change (e.g. an IngressClass's controller when the provider changes) is deleted
        and created again instead."""
        try:
            return self.kube.apply(obj)
        except ImmutableError:
            if not (change == "Update" and key.kind in workload_rules.RECREATE):
                raise
        log.info("recreating %s: an immutable field changes", key)
        self.kube.delete_object(key.kind, key.namespace, key.name)
        return self.kube.apply(obj)

    def _evict(self, pod: PodFacts, result: PassResult) -> None:
        try:
            self.kube.evict_pod(pod.namespace, pod.name)
        except (NotFoundError, ThrottledError) as error:
            # Throttled: the PodDisruptionBudget allows no eviction now; a later pass retries.
            log.info("pod %s/%s not evicted yet: %s", pod.namespace, pod.name, error)
            return
        log.info(
            "evicted pod %s/%s from %s, no longer an edge node",
            pod.namespace,
            pod.name,
            pod.node_name,
        )
        result.events.append(
            Event(
                "Normal",
                "PodEvicted",
                f"evicted controller pod {pod.namespace}/{pod.name}: {pod.node_name} is no longer"
                " an edge node",
            )
        )

    @staticmethod
    def _report(key: Key, change: Action, result: PassResult) -> None:
        log.info("%s %s", OBJECT_REASONS[change].lower(), key)
        result.events.append(
            Event("Normal", OBJECT_REASONS[change], f"{OBJECT_REASONS[change]} {key}")
        )

    def _missing(self, kind: str, namespace: str, name: str) -> bool:
        try:
            self.kube.get_object(kind, namespace, name)
        except NotFoundError:
            return True
        return False

    def _autoscaled(self, deployment: Mapping[str, Any] | None) -> int | None:
        """The Deployment's replicas when a HorizontalPodAutoscaler targets it, else None."""
        if deployment is None:
            return None
        meta = deployment["metadata"]
        for hpa in self.kube.list_objects(
            "HorizontalPodAutoscaler", "", namespace=meta["namespace"]
        ):
            target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if (target.get("kind"), target.get("name")) == ("Deployment", meta["name"]):
                return int((deployment.get("spec") or {}).get("replicas") or 0)
        return None

    def _apply_nodes(
        self, gateway: str, updates: Iterable[node_rules.NodeUpdate], result: PassResult
    ) -> node_rules.Refusal | None:
        """Apply the node changes; a refusal by the API server stops them and is returned."""
        for update in updates:
            try:
                self._apply(update, result, gateway)
            except (ForbiddenError, InvalidError) as error:
                return node_rules.Refusal(
                    "NodeChangeDenied",
                    f"the API server refused the change to node {update.name}: {error}",
                )
        return None

    def _apply(self, update: node_rules.NodeUpdate, result: PassResult, gateway: str) -> None:
        try:
            node = self.kube.patch_node(update.name, update.patch())
        except (ConflictError, NotFoundError) as changed:
            raise NodeMovedError(update.name, changed) from changed
        self.cache.put(NodeFacts.from_api(node))
        for change in update.changes:
            metrics.NODE_CHANGES.labels(gateway, change.action.lower()).inc()
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
                self._apply(node_rules.restore(node), result, node_rules.holder(node) or "")
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
