"""The read step of a pass: every fact a decision needs, gathered before anything is decided.

Nodes come from the cache the node watch keeps (never listed per pass); the other
gateways from the gateway watch when the operator runs (``edge-operator plan``, which
has no watch, lists them); everything else is read here, as few requests as the
facts allow: the owned objects by label, an object by name only when it is missing.
Reads that do not depend on each other are made at once (a pool shared by the passes),
and all of them come from the API server's watch cache (kube.CACHED): a pass that reads
a moment behind makes idempotent applies, and the watch event of what it missed queues
another pass. The gateway itself is read from etcd: its status is what the pass merges
into.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from edge_operator import api, names
from edge_operator.desired import changes, gatewayclass
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.objects import Key, Owner
from edge_operator.desired.providers import envoy_gateway
from edge_operator.facts import (
    DaemonSetFacts,
    Facts,
    GatewayAPIFacts,
    GatewayAPIGateway,
    GatewayAPIState,
    GatewayFacts,
    HealthProbe,
    NodeFacts,
    PodFacts,
    ProvisionedFacts,
    WorkloadFacts,
)
from edge_operator.kube import ForbiddenError, Kube, NotFoundError
from edge_operator.pools import Pool

T = TypeVar("T")
#: Kinds of CRDs a cluster may lack or the operator may not be let read: the optional
#: owned kinds, and the users' Gateways a gateway's status counts.
OPTIONAL_KINDS = workload_rules.OPTIONAL_KINDS | {"Gateway"}
#: What Envoy Gateway makes for a class, read back for status (controller.provider
#: envoy-gateway), in this order.
PROVISIONED = ("Deployment", "Service")
#: Reads of the passes made at once, every pass together.
READERS = 32


def made_by(owner: Owner, spec: api.EdgeGatewaySpec) -> str:
    """The label selector of what Envoy Gateway makes for the gateway's class."""
    return f"{envoy_gateway.OWNING_CLASS_LABEL}={gatewayclass.name(owner, spec)}"


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
        self.readers = Pool(READERS, "read")

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
        # The reads are independent: made at once, a pass waits for the slowest, not the sum.
        daemonsets = (
            self._read(self.kube.list_daemonsets) if node_rules.desired_taint(spec) else None
        )
        owner = Owner(gw.name, gw.uid)
        provisioned = spec.controller.provider == envoy_gateway.NAME
        # Envoy Gateway's pods carry its class label, in its namespace; ours our label.
        where, selector = (
            ("", made_by(owner, spec))
            if provisioned
            else (spec.controller.namespace, f"{names.GATEWAY_LABEL}={gw.name}")
        )
        pods = self._read(self.kube.list_pods, where, selector)
        workload, gateway_api, envoy = self._workload(gw)
        ours = workload_rules.controller_pods(
            (PodFacts.from_api(p) for p in pods.result()), names.workload_name(gw.name)
        )
        return Facts(
            gateway=gw,
            others=self._others(gw.name),
            nodes=self.cache.snapshot(),
            daemonsets=tuple(DaemonSetFacts.from_api(d) for d in daemonsets.result())
            if daemonsets is not None
            else (),
            controller_pods=tuple(ours),
            now=self.clock(),
            lb_health=self.lb_health(gw.name) if self.lb_health else None,
            workload=workload,
            gateway_api=gateway_api,
            provisioned=self._provisioned(owner, spec, envoy) if provisioned else None,
        )

    def _provisioned(
        self, owner: Owner, spec: api.EdgeGatewaySpec, state: GatewayAPIState
    ) -> ProvisionedFacts:
        """The Deployment and Service Envoy Gateway made for the gateway's class."""
        if state != "installed":
            return ProvisionedFacts(state)
        selector = made_by(owner, spec)
        listed = [self._read(self.kube.list_objects, kind, selector) for kind in PROVISIONED]
        name = names.workload_name(owner.name)
        deployment, service = (
            next((o for o in found.result() if o["metadata"]["name"] == name), None)
            for found in listed
        )
        return ProvisionedFacts(state, deployment=deployment, service=service)

    def _read(self, read: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        return self.readers.submit(read, *args)

    def refresh_nodes(self, facts: Facts) -> Facts:
        """``facts`` with the newest nodes and other gateways: what claims are decided on."""
        return replace(facts, nodes=self.cache.snapshot(), others=self._others(facts.gateway.name))

    def _others(self, name: str) -> tuple[GatewayFacts, ...]:
        if self.gateways is not None:
            seen: Iterable[GatewayFacts] = list(self.gateways())
        else:
            seen = (GatewayFacts.from_api(o) for o in self.kube.list_gateways())
        return tuple(sorted((g for g in seen if g.name != name), key=lambda g: g.name))

    def _gateway_api(self, gw: GatewayFacts, state: GatewayAPIState) -> GatewayAPIFacts:
        """The Gateways of the gateway's class (Gateways are users' objects: all are
        listed, from the watch cache, and those of the class kept)."""
        assert gw.spec is not None
        if not (gw.spec.gateway_api.enabled and state == "installed"):
            return GatewayAPIFacts(state)
        class_name = gatewayclass.name(Owner(gw.name, gw.uid), gw.spec)
        listed = self._list_optional("Gateway", "")
        if isinstance(listed, str):  # the CRDs went away since the class was listed, or
            return GatewayAPIFacts(listed)  # the operator may read classes but not Gateways
        ours = (g for g in listed if (g.get("spec") or {}).get("gatewayClassName") == class_name)
        found = (GatewayAPIGateway.from_api(g) for g in ours)
        return GatewayAPIFacts(state, tuple(sorted(found, key=lambda g: (g.namespace, g.name))))

    def _list_optional(self, kind: str, selector: str) -> list[dict[str, Any]] | GatewayAPIState:
        """The kind's objects the selector matches; for a kind the API may not serve (its
        CRDs are not installed) or may not let the operator read (a ClusterRole older
        than the operator), why not: "missing" or "forbidden"."""
        try:
            return self.kube.list_objects(kind, selector)
        except (NotFoundError, ForbiddenError) as error:
            if kind not in OPTIONAL_KINDS:
                raise
            return "missing" if isinstance(error, NotFoundError) else "forbidden"

    def _workload(self, gw: GatewayFacts) -> tuple[WorkloadFacts, GatewayAPIFacts, GatewayAPIState]:
        """The gateway's objects, Gateway API as found (the class's Gateways: some of the
        objects are made per Gateway), and whether Envoy Gateway's API is served."""
        assert gw.spec is not None
        owner = Owner(gw.name, gw.uid)
        ns = gw.spec.controller.namespace
        selector = f"{names.GATEWAY_LABEL}={gw.name}"
        listed = {
            kind: self._read(self._list_optional, kind, selector)
            for kind in workload_rules.OWNED_KINDS
        }
        classes = listed["GatewayClass"].result()
        gateway_api: GatewayAPIState = classes if isinstance(classes, str) else "installed"
        proxies = listed["EnvoyProxy"].result()
        envoy: GatewayAPIState = proxies if isinstance(proxies, str) else "installed"
        found_api = self._gateway_api(gw, gateway_api)
        keys, roles = changes.expected(
            owner, gw.spec, found_api.installed, envoy == "installed", found_api.names
        )
        role_exists = [self._read(self._exists, Key("ClusterRole", "", r)) for r in roles]
        owned: dict[Key, Mapping[str, Any]] = {}
        labelled: set[Key] = set()  # with the label, without the ownerReference
        for objects in listed.values():
            result = objects.result()
            for obj in () if isinstance(result, str) else result:
                if owner.owns(obj):
                    owned[Key.of(obj)] = obj
                else:
                    labelled.add(Key.of(obj))
        # Objects of ours in the namespace prove it exists; only otherwise ask.
        namespace_exists = any(k.namespace == ns for k in owned) or self._exists(
            Key("Namespace", "", ns)
        )
        # A name is looked up only while our object of that name is missing (the lists may
        # be a moment behind: the lookup finds an object of ours just made).
        lookups = {
            key: self._read(self._lookup, key)
            for key in keys
            if key not in owned and (namespace_exists or not key.namespace) and key not in labelled
        }
        foreign = labelled.intersection(keys)
        for key, lookup in lookups.items():
            if (found := lookup.result()) is None:
                continue
            if owner.owns(found):
                owned[key] = found
            else:
                foreign.add(key)
        deployment = owned.get(Key("Deployment", ns, names.workload_name(gw.name)))
        workload = WorkloadFacts(
            owned=owned,
            autoscaled_replicas=self._autoscaled(deployment),
            namespace_exists=namespace_exists,
            foreign=frozenset(foreign),
            strangers=tuple(sorted(labelled - set(keys), key=str)),
            missing_roles=tuple(
                r for r, exists in zip(roles, role_exists, strict=True) if not exists.result()
            ),
        )
        return workload, found_api, envoy

    def _lookup(self, key: Key) -> dict[str, Any] | None:
        try:
            return self.kube.get_object(key.kind, key.namespace, key.name, cached=True)
        except NotFoundError:
            return None

    def _exists(self, key: Key) -> bool:
        return self._lookup(key) is not None

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
