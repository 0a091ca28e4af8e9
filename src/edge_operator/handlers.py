"""kopf registrations. Thin: every decision lives in pure modules.

Importing this module registers the handlers with kopf's default registry.

- EdgeGateway create/update/resume and a slow timer run the reconcile pass;
  delete restores the nodes (the only finalizer, and only on EdgeGateways).
- Nodes are followed with ``on.event`` only, into a cache of small records:
  kopf never writes annotations or finalizers onto Nodes. A node change that
  matters to a gateway (it holds the node, selects it, or is waiting for nodes)
  queues that gateway for a pass; a burst of changes becomes one pass.
- The objects a gateway owns (found by the edgeoperator.dev/gateway label) are
  followed the same way, and so are its controller pods: any change to one, its
  status included, queues its gateway, so drift is corrected, status follows the
  rollout, and a drained node is released as soon as its pod is gone.
- Each gateway's edge nodes are probed the way its load balancer health-checks them
  (nodeprobe); a node whose verdict changes queues its gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from typing import Any

import kopf

from edge_operator import metrics, names, nodeprobe, probes
from edge_operator.desired.nodes import candidates, holder
from edge_operator.desired.status import NODES_CONFIGURED
from edge_operator.desired.workload import OWNED_KINDS
from edge_operator.facts import GatewayFacts, NodeFacts, is_true
from edge_operator.kube import KINDS, Kube, KubeError
from edge_operator.reconcile import NodeCache, Reconciler

log = logging.getLogger(__name__)

GATEWAYS: dict[str, Any] = {"group": names.GROUP, "version": names.VERSION, "plural": names.PLURAL}
#: Full pass of every gateway even when nothing was seen to change.
RESYNC_SECONDS = float(os.environ.get("EDGE_OPERATOR_RESYNC_SECONDS", "300"))
#: The kinds of object a gateway owns, as (group, version, plural): what the pass
#: builds (workload.OWNED_KINDS), where the API serves it (kube.KINDS).
OWNED_RESOURCES = tuple((*KINDS[kind].group_version, KINDS[kind].plural) for kind in OWNED_KINDS)
#: Delay before a failed pass runs again.
RETRY_SECONDS = 10.0
#: Node events closer together than this are handled in one pass.
DEBOUNCE_SECONDS = 0.2
#: Probe every edge node's load-balancer health check ("off": operator flag
#: --probe-edge-nodes=off, for clusters where the operator cannot reach node addresses).
PROBE_EDGE_NODES = os.environ.get("EDGE_OPERATOR_PROBE_EDGE_NODES", "on") != "off"


class Runtime:
    """Operator-wide state, kept in kopf's memo."""

    def __init__(self, kube: Kube, probe_edge_nodes: bool = PROBE_EDGE_NODES) -> None:
        self.cache = NodeCache()
        self.gateways: dict[str, GatewayFacts] = {}
        self.prober = (
            nodeprobe.Prober(lambda: self.gateways, self.cache.snapshot, self.poke)
            if probe_edge_nodes
            else None
        )
        self.reconciler = Reconciler(
            kube, self.cache, lb_health=self.prober.results if self.prober else None
        )
        self.pending: set[str] = set()
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def poke(self, *gateways: str) -> None:
        if gateways:
            self.pending.update(gateways)
            self.wake.set()

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

    async def work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            batch, self.pending = sorted(self.pending), set()
            for name in batch:
                try:
                    await asyncio.to_thread(self.reconciler.reconcile, name)
                except Exception:
                    log.exception("reconcile of %s failed; retrying in %ss", name, RETRY_SECONDS)
                    loop.call_later(RETRY_SECONDS, self.poke, name)


def _converged(gw: GatewayFacts) -> bool:
    return is_true(gw.status.get("conditions") or [], NODES_CONFIGURED)


def runtime(memo: kopf.Memo) -> Runtime:
    rt: Runtime = memo["runtime"]
    return rt


# --- operator lifecycle -------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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
    rt = Runtime(Kube.connect())
    try:
        # Startup handlers finish before kopf starts any watch, so the node events
        # that follow only bring this complete list forward.
        count = await asyncio.to_thread(rt.reconciler.seed)
    except KubeError as error:
        raise kopf.TemporaryError(f"cannot list nodes: {error}", delay=RETRY_SECONDS) from error
    log.info("following %d nodes", count)
    probes.STATE.watching.set()
    rt.tasks.append(asyncio.create_task(rt.work()))
    if rt.prober:
        rt.tasks.append(asyncio.create_task(rt.prober.run()))
    memo["runtime"] = rt


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt = memo.get("runtime")
    if isinstance(rt, Runtime):
        for task in rt.tasks:
            task.cancel()


# --- nodes: events only -------------------------------------------------------------------


@kopf.on.event("", "v1", "nodes")
async def node_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    rt = runtime(memo)
    raw = event["object"]
    name = raw["metadata"]["name"]
    if event["type"] == "DELETED":
        before, after = rt.cache.remove(name), None
    else:
        after = NodeFacts.from_api(raw)
        before = rt.cache.put(after)
        if before is not None and replace(before, resource_version="") == replace(
            after, resource_version=""
        ):
            return  # a heartbeat or a field we do not look at
    rt.poke(*rt.affected_by(before, after))


# --- objects the gateways own: events only ----------------------------------------------------


async def owned_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    obj = event["object"]
    labels = obj.get("metadata", {}).get("labels") or {}
    owner = labels.get(names.GATEWAY_LABEL)
    if not owner:
        return
    rt = runtime(memo)
    if rt.prober and obj.get("kind") == "Service" and event["type"] != "DELETED":
        rt.prober.service_seen(owner, obj)
    rt.poke(owner)


# The controller pods too (labelled by their Deployment's template): a pod that ends on a
# draining node lets its pass release the node at once, not at the next resync.
for _group, _version, _plural in (*OWNED_RESOURCES, ("", "v1", "pods")):
    kopf.on.event(_group, _version, _plural, labels={names.GATEWAY_LABEL: kopf.PRESENT})(
        owned_event
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
        changed = True
    else:
        after = GatewayFacts.from_api(raw)
        rt.gateways[name] = after
        changed = before is None or (before.generation, before.deleting) != (
            after.generation,
            after.deleting,
        )
    if changed:
        rt.poke(*(other for other in rt.gateways if other != name))


@kopf.on.resume(**GATEWAYS)
@kopf.on.create(**GATEWAYS)
@kopf.on.update(**GATEWAYS)
@kopf.timer(**GATEWAYS, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def reconcile_gateway(name: str, memo: kopf.Memo, **_: Any) -> None:
    try:
        runtime(memo).reconciler.reconcile(name)
    except KubeError as error:
        raise kopf.TemporaryError(f"API request failed: {error}", delay=RETRY_SECONDS) from error


@kopf.on.delete(**GATEWAYS)
def delete_gateway(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    metrics.forget(body["metadata"]["name"])
    try:
        runtime(memo).reconciler.cleanup(body)
    except KubeError as error:
        raise kopf.TemporaryError(
            f"could not restore every node yet: {error}", delay=RETRY_SECONDS
        ) from error
