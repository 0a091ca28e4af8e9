"""kopf registrations. Thin: every decision lives in pure modules.

Importing this module registers the handlers with kopf's default registry.

- Every pass runs from one work queue (``Runtime.work``): a change to a gateway's
  spec, the operator's start, a slow resync and every change below queue the gateway;
  a burst of changes becomes one pass. Passes of different gateways run at the same
  time (reconcile.py says how claims on nodes stay deterministic); a failed pass is
  queued again after ``backoff``, the one retry policy, which the delete handler's
  kopf.TemporaryError uses too.
- Delete restores the nodes (names.FINALIZER on EdgeGateways; the edge nodes' own
  names.NODE_FINALIZER is written by the pass, not by kopf).
- Nodes are followed by a watch of our own (nodewatch), not kopf's, into a cache of
  small records: kopf never sees, annotates or finalizes a Node. A node change that
  matters to a gateway (it holds the node, selects it, or is waiting for nodes)
  queues that gateway; a heartbeat, which changes nothing we keep, costs no pass.
- The objects a gateway owns (found by the edgeoperator.dev/gateway label) are
  followed the same way, and so are its controller pods: any change to one, its
  status included, queues its gateway, so drift is corrected, status follows the
  rollout, and a drained node is released as soon as its pod is gone.
- Each gateway's edge nodes are probed the way its load balancer health-checks them
  (nodeprobe); a node whose verdict changes queues its gateway.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf

from edge_operator import gatewayapiwatch, memory, metrics, names, nodeprobe, probes
from edge_operator.desired import envoyproxy, gatewayclass, ingressclass
from edge_operator.desired.nodes import candidates, holder
from edge_operator.desired.objects import Key, Owner
from edge_operator.desired.providers import envoy_gateway
from edge_operator.desired.status import NODES_CONFIGURED
from edge_operator.desired.workload import OPTIONAL_KINDS, OWNED_KINDS
from edge_operator.facts import GatewayFacts, NodeFacts, is_true
from edge_operator.gather import NodeCache
from edge_operator.kube import KINDS, Kube, KubeError, backoff
from edge_operator.nodewatch import NodeWatch
from edge_operator.pools import Pool
from edge_operator.reconcile import Reconciler

log = logging.getLogger(__name__)

GATEWAYS: dict[str, Any] = {"group": names.GROUP, "version": names.VERSION, "plural": names.PLURAL}
#: Full pass of every gateway even when nothing was seen to change.
RESYNC_SECONDS = float(os.environ.get("EDGE_OPERATOR_RESYNC_SECONDS", "3600"))
#: The kinds of object a gateway owns, as (group, version, plural): what the pass
#: builds (workload.OWNED_KINDS), where the API serves it (kube.KINDS).
OWNED_RESOURCES = tuple(
    (*KINDS[kind].group_version, KINDS[kind].plural)
    for kind in OWNED_KINDS
    if kind not in OPTIONAL_KINDS  # followed by gatewayapiwatch: kopf would stop on a 403
)
#: What the operator watches of other kinds: its owned objects and its controller pods,
#: only those with a gateway's label (selected by the API server, not after the fact).
WATCHED = (*OWNED_RESOURCES, ("", "v1", "pods"))
#: Passes of different gateways running at once: a pass mostly waits for the API
#: server, so converging many gateways at once is bound by its answers, not our CPU.
PARALLEL_PASSES = 32
#: A burst of passes is over when no pass has started for this long.
QUIET_SECONDS = 1.0
#: Node events closer together than this are handled in one pass.
DEBOUNCE_SECONDS = 0.2
#: Probe every edge node's load-balancer health check ("off": operator flag
#: --probe-edge-nodes=off, for clusters where the operator cannot reach node addresses).
PROBE_EDGE_NODES = os.environ.get("EDGE_OPERATOR_PROBE_EDGE_NODES", "on") != "off"


class Runtime:
    """Operator-wide state, kept in kopf's memo."""

    def __init__(self, kube: Kube, probe_edge_nodes: bool = PROBE_EDGE_NODES) -> None:
        self.kube = kube
        self.cache = NodeCache()
        self.loop = asyncio.get_running_loop()
        # Node changes arrive in the watch's thread; the queue lives in this loop.
        self.nodes = NodeWatch(
            kube,
            self.cache,
            lambda before, after: self.loop.call_soon_threadsafe(self.node_changed, before, after),
        )
        self.gateways: dict[str, GatewayFacts] = {}
        # Gateway API objects, in threads of their own too.
        self.gateway_api = gatewayapiwatch.watches(
            kube,
            lambda type_, obj: self.loop.call_soon_threadsafe(self.owned_changed, type_, obj),
            lambda _type, obj: self.loop.call_soon_threadsafe(self.gateway_changed, obj),
            lambda type_, obj: self.loop.call_soon_threadsafe(self.provisioned_changed, type_, obj),
        )
        self.prober = (
            nodeprobe.Prober(lambda: self.gateways, self.cache.snapshot, self.poke)
            if probe_edge_nodes
            else None
        )
        self.reconciler = Reconciler(
            kube,
            self.cache,
            lb_health=self.prober.results if self.prober else None,
            gateways=lambda: list(self.gateways.values()),
        )
        self.pending: set[str] = set()
        self.running: set[str] = set()
        #: Passes started so far: a burst is over when none starts for QUIET_SECONDS.
        self.started = 0
        # Threads of their own: asyncio's default pool has only CPUs + 4.
        self.pool = Pool(PARALLEL_PASSES, "pass")
        self.failures: dict[str, int] = {}
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.passes: set[asyncio.Task[None]] = set()

    def owned_changed(self, type_: str | None, obj: Mapping[str, Any]) -> None:
        """An object with a gateway's label changed: unless it is just what our own last
        write left, the gateway's pass looks (drift, a controller's status, a pod)."""
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(names.GATEWAY_LABEL)
        if owner and (type_ == "DELETED" or not self.reconciler.write.ours(obj)):
            self.poke(owner)

    def gateway_changed(self, obj: dict[str, Any]) -> None:
        """A Gateway API Gateway: the gateways serving its class count it."""
        class_name = (obj.get("spec") or {}).get("gatewayClassName")
        self.poke(*gatewayclass.serving(self.gateways.values(), class_name))

    def provisioned_changed(self, type_: str, obj: Mapping[str, Any]) -> None:
        """What Envoy Gateway made for a class: the gateways of that class read it back
        (and the prober learns their Service's healthCheckNodePort)."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        served = envoyproxy.serving(
            self.gateways.values(), labels.get(envoy_gateway.OWNING_CLASS_LABEL, "")
        )
        if self.prober and obj.get("kind") == "Service" and type_ != "DELETED":
            for name in served:
                if obj["metadata"]["name"] == names.workload_name(name):
                    self.prober.service_seen(name, obj)
        self.poke(*served)

    def seed(self) -> int:
        """Read every node and gateway once, before the watches start."""
        count = self.nodes.seed()
        for raw in self.kube.list_gateways():
            gw = GatewayFacts.from_api(raw)
            self.gateways[gw.name] = gw
        return count

    def poke(self, *gateways: str) -> None:
        if gateways:
            self.pending.update(gateways)
            self.wake.set()

    def node_changed(self, before: NodeFacts | None, after: NodeFacts | None) -> None:
        self.poke(*self.affected_by(before, after))

    def affected_by(self, before: NodeFacts | None, after: NodeFacts | None) -> set[str]:
        """The gateways whose decision a node change can alter."""
        seen = [n for n in (before, after) if n is not None]
        out = {h for n in seen if (h := holder(n))}
        for gw in self.gateways.values():
            if gw.spec is None or gw.deleting:
                continue
            if any(candidates(gw.spec, {n.name: n}) for n in seen) or not _converged(gw):
                out.add(gw.name)
        return out

    def related(self, changed: list[GatewayFacts], name: str) -> set[str]:
        """The other gateways a change of gateway ``name`` (its versions ``changed``) can
        concern: those selecting a node it selects or holds, those still waiting for
        nodes, and those that count the worker nodes it may take."""
        nodes = self.cache.snapshot()
        touched = {n.name for n in nodes.values() if holder(n) == name}
        for gw in changed:
            if gw.spec is not None:
                touched.update(n.name for n in candidates(gw.spec, nodes))
        return {
            other.name
            for other in self.gateways.values()
            if other.name != name
            and other.spec is not None
            and not other.deleting
            and (
                not _converged(other)
                or other.spec.nodes.min_worker_nodes > 0
                or any(n.name in touched for n in candidates(other.spec, nodes))
            )
        }

    async def work(self) -> None:
        """Run queued passes, up to PARALLEL_PASSES at once and one per gateway."""
        slots = asyncio.Semaphore(PARALLEL_PASSES)
        while True:
            await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            ready = sorted(self.pending - self.running)
            self.pending -= set(ready)
            for name in ready:
                self.started += 1
                self.running.add(name)
                task = asyncio.create_task(self._run(name, slots))
                self.passes.add(task)
                task.add_done_callback(self.passes.discard)

    async def _run(self, name: str, slots: asyncio.Semaphore) -> None:
        try:
            async with slots:
                await asyncio.wrap_future(self.pool.submit(self.reconciler.reconcile, name))
            self.failures.pop(name, None)
        except Exception:
            failures = self.failures[name] = self.failures.get(name, 0) + 1
            delay = backoff(failures)
            log.exception("pass of %s failed (%d in a row); again in %ss", name, failures, delay)
            asyncio.get_running_loop().call_later(delay, self.poke, name)
        finally:
            self.running.discard(name)
            if name in self.pending:
                self.wake.set()  # changed while its pass ran
            elif not self.running and not self.pending:
                started = self.started
                asyncio.get_running_loop().call_later(QUIET_SECONDS, self._burst_over, started)

    def _burst_over(self, started: int) -> None:
        """No pass has started for QUIET_SECONDS: end the burst's threads and idle
        connections, then hand its free pages back (in a thread: joining takes a moment)."""
        if self.started == started and not self.running and not self.pending:
            task = asyncio.create_task(asyncio.to_thread(self._end_burst))
            self.passes.add(task)
            task.add_done_callback(self.passes.discard)

    def _end_burst(self) -> None:
        self.pool.idle(wait=True)
        self.reconciler.idle()
        memory.trim()

    async def resync(self) -> None:
        """A full pass of every gateway every RESYNC_SECONDS, changes or not."""
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            self.poke(*self.gateways)


def _converged(gw: GatewayFacts) -> bool:
    return is_true(gw.status.get("conditions") or [], NODES_CONFIGURED)


def runtime(memo: kopf.Memo) -> Runtime:
    rt: Runtime = memo["runtime"]
    return rt


# --- operator lifecycle -------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, retry: int, **_: Any) -> None:
    # kopf keeps its bookkeeping (handler progress, last-handled state) in annotations
    # under our own prefix, and only on EdgeGateways: Nodes are never handled by kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = names.FINALIZER
    # kopf would post an Event for every handler that succeeds (a write per resync);
    # the operator posts its own Events, so kopf posts only its warnings and errors.
    settings.posting.level = logging.WARNING
    # Without this, kopf streams every Pod, Service, Deployment ... of the cluster and
    # filters by label in the operator; with it, the API server sends only ours.
    for resource in WATCHED:
        settings.watching.label_selectors[resource] = names.GATEWAY_LABEL
    rt = Runtime(Kube.connect())
    try:
        # Startup handlers finish before kopf starts any watch, so the events that
        # follow only bring these complete lists forward.
        count = await asyncio.to_thread(rt.seed)
    except KubeError as error:
        delay = backoff(retry + 1)
        raise kopf.TemporaryError(f"cannot list nodes: {error}", delay=delay) from error
    log.info("following %d nodes and %d gateways", count, len(rt.gateways))
    # What start-up built (modules, the node cache) lives as long as the process: keep
    # the cyclic collector from scanning it again after every burst of watch events.
    gc.freeze()
    probes.STATE.watching.set()
    rt.nodes.start()
    for watch in rt.gateway_api:
        watch.start()
    rt.poke(*rt.gateways)
    rt.tasks += [asyncio.create_task(rt.work()), asyncio.create_task(rt.resync())]
    if rt.prober:
        rt.tasks.append(asyncio.create_task(rt.prober.run()))
    memo["runtime"] = rt


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt = memo.get("runtime")
    if isinstance(rt, Runtime):
        rt.nodes.stop()
        for watch in rt.gateway_api:
            watch.stop()
        for task in [*rt.tasks, *rt.passes]:
            task.cancel()


# --- objects the gateways own: events only ----------------------------------------------------


async def owned_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    obj = event["object"]
    labels = obj.get("metadata", {}).get("labels") or {}
    owner = labels.get(names.GATEWAY_LABEL)
    rt = runtime(memo)
    gw = rt.gateways.get(owner) if owner else None
    if (
        owner
        and rt.prober
        and gw is not None
        and gw.spec is not None
        and event["type"] != "DELETED"
        and Key.of(obj) == Key("Service", gw.spec.controller.namespace, names.workload_name(owner))
        and Owner(gw.name, gw.uid).owns(obj)
    ):
        rt.prober.service_seen(owner, obj)
    rt.owned_changed(event["type"], obj)


# The controller pods too (labelled by their Deployment's template): a pod that ends on a
# draining node lets its pass release the node at once, not at the next resync.
for _group, _version, _plural in WATCHED:
    kopf.on.event(_group, _version, _plural, labels={names.GATEWAY_LABEL: kopf.PRESENT})(
        owned_event
    )


@kopf.on.event("networking.k8s.io", "v1", "ingressclasses")
async def ingress_class_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Any IngressClass: one of spec.ingressNGINX's name made or removed by someone else
    decides whether the gateway makes it."""
    rt = runtime(memo)
    rt.poke(
        *ingressclass.serving_ingress_nginx(
            rt.gateways.values(), event["object"]["metadata"]["name"]
        )
    )


# --- EdgeGateways ---------------------------------------------------------------------------


@kopf.on.event(**GATEWAYS)
async def gateway_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Track every gateway; a change of one can free or claim nodes for the others."""
    rt = runtime(memo)
    raw = event["object"]
    name = raw["metadata"]["name"]
    before = rt.gateways.get(name)
    if event["type"] == "DELETED":
        rt.gateways.pop(name, None)
        rt.poke(*rt.related([before] if before else [], name))
        return
    after = GatewayFacts.from_api(raw)
    rt.gateways[name] = after
    if before is None or (before.generation, before.deleting) != (
        after.generation,
        after.deleting,
    ):
        # Its status and metadata are the operator's own writes: they queue nothing.
        rt.poke(name, *rt.related([g for g in (before, after) if g], name))


# --- Gateway API -----------------------------------------------------------------------------
# Its CRDs installed after the gateway (or removed): the gateways with gatewayAPI on make
# their GatewayClass then, no restart needed. (GatewayClasses and Gateways themselves are
# followed by gatewayapiwatch, see Runtime.)


@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    field="spec.group",
    value=names.GATEWAY_API_GROUP,
)
async def gateway_api_crd_event(memo: kopf.Memo, **_: Any) -> None:
    rt = runtime(memo)
    rt.poke(*gatewayclass.serving(rt.gateways.values()))


# Envoy Gateway installed after the gateway (or removed): its gateways write their
# EnvoyProxy and GatewayClass then.
@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    field="spec.group",
    value=names.ENVOY_GATEWAY_GROUP,
)
async def envoy_gateway_crd_event(memo: kopf.Memo, **_: Any) -> None:
    rt = runtime(memo)
    rt.poke(*envoyproxy.serving(rt.gateways.values()))


@kopf.on.delete(**GATEWAYS)
def delete_gateway(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    metrics.forget(body["metadata"]["name"])
    try:
        runtime(memo).reconciler.cleanup(body)
    except KubeError as error:
        raise kopf.TemporaryError(
            f"could not restore every node yet: {error}", delay=backoff(retry + 1)
        ) from error
