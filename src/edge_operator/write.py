"""The write step of a pass: make the changes a decision lists, and report each one.

Every method takes a decided change and returns the Events to post; nothing here
decides what to change. Node patches carry the resourceVersion the decision was
made on, so a node that changed meanwhile raises NodeMovedError and the pass
decides again on the newer node.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_operator import metrics
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.changes import WorkloadPlan
from edge_operator.desired.objects import Action, Key
from edge_operator.facts import GatewayFacts, NodeFacts, PodFacts
from edge_operator.gather import NodeCache
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
from edge_operator.pools import Pool

log = logging.getLogger(__name__)

#: Attempts at a node change when the node changed under it (resourceVersion conflict).
ATTEMPTS = 3
#: Node patches made at once, by every pass together.
NODE_WRITERS = 32
#: Object changes made at once, by every pass together (a LoadBalancer Service's
#: create waits seconds for its node ports while many are made).
OBJECT_WRITERS = 64
#: Event reason for each kind of node change.
EVENT_REASONS = {"Label": "NodeLabelled", "Taint": "NodeTainted", "Restore": "NodeRestored"}
#: Event reason for each kind of object change.
OBJECT_REASONS: dict[Action, str] = {"Create": "Created", "Update": "Updated", "Delete": "Deleted"}


#: Longest Event message written (the API server refuses messages over 1 KiB).
EVENT_MESSAGE_MAX = 1000


def summary(prefix: str, items: list[str]) -> str:
    """``prefix`` and the items, comma-separated, cut to EVENT_MESSAGE_MAX with a count
    of the items left out."""
    text = prefix + ", ".join(items)
    if len(text) <= EVENT_MESSAGE_MAX:
        return text
    shown: list[str] = []
    for item in items:
        left = len(items) - len(shown) - 1
        candidate = prefix + ", ".join([*shown, item]) + f" and {left} more"
        if len(candidate) > EVENT_MESSAGE_MAX:
            break
        shown.append(item)
    return prefix + ", ".join(shown) + f" and {len(items) - len(shown)} more"


def node_events(done: Iterable[tuple[str, Mapping[str, list[str]]]]) -> list[Event]:
    """Events for the node changes of a pass (``done``: a node and its change details by
    kind): one per kind of change over the nodes, not one per node and label (during a
    rollout of many gateways Events were half of the operator's writes). Every node is
    named: a kind whose nodes do not fit in one message gets as many Events as it needs."""
    by_action: dict[str, list[str]] = {}
    for name, details in done:
        for action, items in details.items():
            by_action.setdefault(action, []).append(summary(f"node {name}: ", items))
    return [
        Event("Normal", EVENT_REASONS[action], message)
        for action, entries in by_action.items()
        for message in _packed(entries, "; ")
    ]


def _packed(entries: list[str], sep: str) -> list[str]:
    """``entries`` joined by ``sep`` into as few messages of at most EVENT_MESSAGE_MAX as
    they fit in (each entry is at most that long already)."""
    messages: list[str] = []
    for entry in entries:
        if messages and len(messages[-1]) + len(sep) + len(entry) <= EVENT_MESSAGE_MAX:
            messages[-1] += sep + entry
        else:
            messages.append(entry)
    return messages


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


class NodeMovedError(Exception):
    """A node changed or vanished between reading it and patching it."""

    def __init__(self, node: str, cause: KubeError) -> None:
        super().__init__(f"node {node} changed during the pass: {cause}")
        self.node = node
        self.cause = cause


@dataclass(frozen=True)
class ObjectsWritten:
    """The owned objects after the changes (as the API returned them), and what failed."""

    objects: dict[Key, Mapping[str, Any]]
    failures: tuple[tuple[Key, str, str], ...]
    events: tuple[Event, ...]


class Poster:
    """Posts Events in order from a thread of its own: a pass does not wait for its reports.

    An Event is a report, not state: one that cannot be posted is logged and dropped,
    and those still queued when the operator stops are lost.
    """

    def __init__(self, kube: Kube, clock: Callable[[], str]) -> None:
        self.kube = kube
        self.clock = clock
        self._queue: queue.SimpleQueue[tuple[Mapping[str, Any], Event]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def post(self, target: Mapping[str, Any], events: Iterable[Event]) -> None:
        for event in events:
            self._queue.put((target, event))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            target, event = self._queue.get()
            try:
                self.kube.create_event(
                    target, event.type, event.reason, event.message, self.clock()
                )
            except KubeError as error:
                log.warning("could not post event %s: %s", event.reason, error)


class Writer:
    def __init__(self, kube: Kube, cache: NodeCache, clock: Callable[[], str]) -> None:
        self.kube = kube
        self.cache = cache
        self.clock = clock
        self.poster = Poster(kube, clock)
        self.node_pool = Pool(NODE_WRITERS, "node")
        self.object_pool = Pool(OBJECT_WRITERS, "object")
        #: The resourceVersion of every object as our last write left it: the watch
        #: event of our own write brings nothing new and queues no pass.
        self.written: dict[Key, str] = {}

    # --- nodes ------------------------------------------------------------------------------

    def nodes(
        self, gateway: str, updates: Iterable[node_rules.NodeUpdate]
    ) -> tuple[node_rules.Refusal | None, list[Event]]:
        """Apply the node changes; a refusal by the API server stops them and is returned
        (e.g. the chart's node policy does not list this gateway's keys)."""
        # At once: a claiming pass holds its nodes while they change.
        pending = [(u, self.node_pool.submit(self.node, u, gateway)) for u in updates]
        done: list[tuple[str, Mapping[str, list[str]]]] = []
        refusal: node_rules.Refusal | None = None
        for update, future in pending:
            try:
                done.append((update.name, future.result()))
            except (ForbiddenError, InvalidError) as error:
                refusal = refusal or node_rules.Refusal(
                    "NodeChangeDenied",
                    f"the API server refused the change to node {update.name}: {error}",
                )
        return refusal, node_events(done)

    def node(self, update: node_rules.NodeUpdate, gateway: str) -> dict[str, list[str]]:
        """Make one node's changes; returns their details by kind of change."""
        try:
            node = self.kube.patch_node(update.name, update.patch())
        except (ConflictError, NotFoundError) as changed:
            raise NodeMovedError(update.name, changed) from changed
        self.cache.put(NodeFacts.from_api(node))
        done: dict[str, list[str]] = {}
        for change in update.changes:
            metrics.NODE_CHANGES.labels(gateway, change.action.lower()).inc()
            log.info("node %s: %s", update.name, change.detail)
            done.setdefault(change.action, []).append(change.detail)
        return done

    def restore(self, node: NodeFacts) -> list[Event]:
        """Put back what the record on ``node`` says, re-reading the node when it moved."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                done = self.node(node_rules.restore(node), node_rules.holder(node) or "")
                return node_events([(node.name, done)])
            except NodeMovedError as moved:
                if isinstance(moved.cause, NotFoundError):
                    self.cache.remove(node.name)
                    return []
                if attempt == ATTEMPTS:
                    raise moved.cause from moved
                self.refresh(node.name)
                fresh = self.cache.snapshot().get(node.name)
                if fresh is None or node_rules.holder(fresh) is None:
                    return []
                node = fresh
        return []

    def refresh(self, name: str) -> None:
        try:
            self.cache.put(NodeFacts.from_api(self.kube.get_node(name)))
        except NotFoundError:
            self.cache.remove(name)

    # --- pods and objects -------------------------------------------------------------------

    def evict(self, pods: Iterable[PodFacts]) -> list[Event]:
        events = []
        for pod in pods:
            try:
                self.kube.evict_pod(pod.namespace, pod.name)
            except (NotFoundError, ThrottledError) as error:
                # Throttled: the PodDisruptionBudget allows no eviction now; a later pass retries.
                log.info("pod %s/%s not evicted yet: %s", pod.namespace, pod.name, error)
                continue
            log.info("evicted pod %s/%s from %s", pod.namespace, pod.name, pod.node_name)
            events.append(
                Event(
                    "Normal",
                    "PodEvicted",
                    f"evicted controller pod {pod.namespace}/{pod.name}: {pod.node_name} is no"
                    " longer an edge node",
                )
            )
        return events

    def objects(
        self, planned: WorkloadPlan, owned: Mapping[Key, Mapping[str, Any]]
    ) -> ObjectsWritten:
        """Make the planned changes but the refused creates (``planned.conflicts``), at once
        in the steps of ``WorkloadPlan.steps``: a step starts once the changes it waits for
        are made, while the others go on."""
        after = dict(owned)
        failures: list[tuple[Key, str, str]] = []
        events: list[Event] = []
        done: dict[Action, list[str]] = {}
        made: dict[Key, concurrent.futures.Future[dict[str, Any] | None]] = {}
        for step in planned.steps:
            waits = made if step.after is None else {k: made[k] for k in step.after if k in made}
            concurrent.futures.wait(waits.values())
            for key, change in step.changes:
                if key not in planned.conflicts:
                    desired = planned.desired.get(key)
                    made[key] = self.object_pool.submit(self._change, key, change, desired)
        # Every change has ended before an error goes up.
        concurrent.futures.wait(made.values())
        for key, change in planned.changes:
            if key not in made:
                continue
            try:
                written = made[key].result()
            except REFUSALS as error:
                log.warning("%s %s refused: %s", change, key, error)
                failures.append((key, "ApplyFailed", str(error)))
                events.append(Event("Warning", "ApplyFailed", f"{change} {key}: {error}"))
                continue
            if change == "Delete":
                after.pop(key, None)
            elif written is not None:
                after[key] = written
            log.info("%s %s", OBJECT_REASONS[change].lower(), key)
            done.setdefault(change, []).append(str(key))
        # One Event per kind of change in a pass ("Created ServiceAccount ns/x, ...").
        events += [
            Event("Normal", OBJECT_REASONS[change], summary(f"{OBJECT_REASONS[change]} ", keys))
            for change, keys in done.items()
        ]
        return ObjectsWritten(after, tuple(failures), tuple(events))

    def _change(
        self, key: Key, change: Action, obj: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """One object change; returns the object as written (None: deleted, or a Namespace)."""
        if change == "Delete":
            with contextlib.suppress(NotFoundError):  # already gone: what we wanted
                self.kube.delete_object(key.kind, key.namespace, key.name)
            return None
        assert obj is not None
        if key.kind == "Namespace":
            self.kube.apply(obj)
            return None
        written = self._apply(change, key, obj)
        self.written[key] = str(written["metadata"].get("resourceVersion"))
        return written

    def _apply(self, change: Action, key: Key, obj: Mapping[str, Any]) -> dict[str, Any]:
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

    # --- the gateway ------------------------------------------------------------------------

    def status(self, gw: GatewayFacts, status: Mapping[str, Any]) -> None:
        """Write only the fields that differ (nothing when none does)."""
        patch = status_rules.merge_patch(gw.status, dict(status))
        if patch:
            self.kube.patch_gateway_status(gw.name, {"status": patch})

    def post(self, gateway: Mapping[str, Any], events: Iterable[Event]) -> None:
        self.poster.post(gateway, list(events))

    def ours(self, obj: Mapping[str, Any]) -> bool:
        """``obj`` (from a watch event) is exactly what our last write of it left."""
        meta = obj.get("metadata") or {}
        key = Key(str(obj.get("kind")), meta.get("namespace", ""), meta.get("name", ""))
        return self.written.get(key) == meta.get("resourceVersion")
