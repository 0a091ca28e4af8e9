"""The read step of a pass: every fact a decision needs, gathered before anything is decided.

Nodes come from the cache the node watch keeps (never listed per pass); the other
gateways from the gateway watch when the operator runs (``edge-operator plan``, which
has no watch, lists them); everything else is read here, as few requests as the
facts allow: the owned objects by label, an object by name only when it is missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from edge_operator import names
from edge_operator.desired import changes
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.objects import Key, Owner
from edge_operator.facts import (
    DaemonSetFacts,
    Facts,
    GatewayFacts,
    HealthProbe,
    NodeFacts,
    PodFacts,
    WorkloadFacts,
)
from edge_operator.kube import Kube, NotFoundError


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


class Gatherer:
    def __init__(
        self,
        kube: Kube,
        cache: NodeCache,
        *,
        gateways: Callable[[], Iterable[GatewayFacts]] | None = None,
        lb_health: Callable[[str], Mapping[str, HealthProbe]] | None = None,
        clock: Callable[[], str] = utcnow,
    ) -> None:
        self.kube = kube
        self.cache = cache
        #: Every gateway as the gateway watch last saw it; None: list them per pass.
        self.gateways = gateways
        #: The latest load-balancer health probes of a gateway's nodes (None: probing off).
        self.lb_health = lb_health
        self.clock = clock

    def gateway(self, name: str) -> dict[str, Any] | None:
        """The gateway as the API has it now (its status is what the pass merges into)."""
        try:
            return self.kube.get_gateway(name)
        except NotFoundError:
            return None

    def facts(self, gw: GatewayFacts) -> Facts:
        """Every fact one pass of ``gw`` (with a valid spec) decides on."""
        spec = gw.spec
        assert spec is not None
        daemonsets = (
            tuple(DaemonSetFacts.from_api(d) for d in self.kube.list_daemonsets())
            if node_rules.desired_taint(spec)
            else ()
        )
        pods = self.kube.list_pods(spec.controller.namespace, f"{names.GATEWAY_LABEL}={gw.name}")
        ours = workload_rules.controller_pods(
            (PodFacts.from_api(p) for p in pods), names.workload_name(gw.name)
        )
        return Facts(
            gateway=gw,
            others=self._others(gw.name),
            nodes=self.cache.snapshot(),
            daemonsets=daemonsets,
            controller_pods=tuple(ours),
            now=self.clock(),
            lb_health=self.lb_health(gw.name) if self.lb_health else None,
            workload=self._workload(gw),
        )

    def refresh_nodes(self, facts: Facts) -> Facts:
        """``facts`` with the newest nodes and other gateways: what claims are decided on."""
        return replace(facts, nodes=self.cache.snapshot(), others=self._others(facts.gateway.name))

    def _others(self, name: str) -> tuple[GatewayFacts, ...]:
        if self.gateways is not None:
            seen: Iterable[GatewayFacts] = list(self.gateways())
        else:
            seen = (GatewayFacts.from_api(o) for o in self.kube.list_gateways())
        return tuple(sorted((g for g in seen if g.name != name), key=lambda g: g.name))

    def _workload(self, gw: GatewayFacts) -> WorkloadFacts:
        assert gw.spec is not None
        owner = Owner(gw.name, gw.uid)
        ns = gw.spec.controller.namespace
        owned: dict[Key, Mapping[str, Any]] = {}
        labelled: set[Key] = set()  # with the label, without the ownerReference
        for kind in workload_rules.OWNED_KINDS:
            for obj in self.kube.list_objects(kind, f"{names.GATEWAY_LABEL}={gw.name}"):
                if owner.owns(obj):
                    owned[Key.of(obj)] = obj
                else:
                    labelled.add(Key.of(obj))
        keys, roles = changes.expected(owner, gw.spec)
        # Objects of ours in the namespace prove it exists; only otherwise ask.
        namespace_exists = any(k.namespace == ns for k in owned) or self._exists(
            Key("Namespace", "", ns)
        )
        deployment = owned.get(Key("Deployment", ns, names.workload_name(gw.name)))
        return WorkloadFacts(
            owned=owned,
            autoscaled_replicas=self._autoscaled(deployment),
            namespace_exists=namespace_exists,
            # A name is looked up only while our object of that name is missing.
            foreign=frozenset(
                key
                for key in keys
                if key not in owned
                and (namespace_exists or not key.namespace)
                and (key in labelled or self._exists(key))
            ),
            strangers=tuple(sorted(labelled - set(keys), key=str)),
            missing_roles=tuple(r for r in roles if not self._exists(Key("ClusterRole", "", r))),
        )

    def _exists(self, key: Key) -> bool:
        try:
            self.kube.get_object(key.kind, key.namespace, key.name)
        except NotFoundError:
            return False
        return True

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
