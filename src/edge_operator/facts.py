"""A frozen snapshot of the cluster, gathered once per reconcile pass.

Builders and decisions are pure functions of these facts. Nodes are kept as
small records (never whole Node objects): at thousands of nodes a full Node is
~15 KB, a NodeFacts a few hundred bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pydantic import ValidationError

from edge_operator import api, names
from edge_operator.desired.objects import Key


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""

    @property
    def ident(self) -> tuple[str, str]:
        """A node holds at most one taint per (key, effect)."""
        return (self.key, self.effect)

    def to_api(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """core/v1 Toleration.ToleratesTaint."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        # Equal with an empty key matches nothing (the API server refuses it anyway).
        return bool(self.key) and self.value == taint.value

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Toleration:
        return cls(
            key=raw.get("key") or "",
            operator=raw.get("operator") or "Equal",
            value=raw.get("value") or "",
            effect=raw.get("effect") or "",
        )


@dataclass(frozen=True)
class NodeRecord:
    """What the operator changed on a node, kept in an annotation on that node.

    For every label and taint the operator manages on the node: the value before
    the operator touched it (None: the key was absent). Restoring puts exactly
    these back.
    """

    gateway: str
    labels: Mapping[str, str | None] = field(default_factory=dict)
    taints: Mapping[tuple[str, str], str | None] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "gateway": self.gateway,
                "labels": dict(sorted(self.labels.items())),
                "taints": [
                    {"key": k, "effect": e, "previousValue": v}
                    for (k, e), v in sorted(self.taints.items())
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> NodeRecord | None:
        """None when the annotation is not a record we wrote (edited by hand)."""
        try:
            raw = json.loads(text)
            return cls(
                gateway=str(raw["gateway"]),
                labels={str(k): _opt_str(v) for k, v in raw.get("labels", {}).items()},
                taints={
                    (str(t["key"]), str(t["effect"])): _opt_str(t.get("previousValue"))
                    for t in raw.get("taints", [])
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def is_true(conditions: Iterable[Mapping[str, Any]], type_: str) -> bool:
    """Whether the API object's condition of this type has status True."""
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class NodeFacts:
    name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...] = ()
    record_text: str | None = None
    ready: bool = False
    unschedulable: bool = False
    resource_version: str = ""
    #: The address a cloud load balancer health-checks: the first InternalIP, else the
    #: first address of any type ("" when the node reports none).
    address: str = ""
    #: metadata.deletionTimestamp is set (a finalizer holds the Node).
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def zone(self) -> str:
        return self.labels.get(names.ZONE_LABEL, "")

    @property
    def owner(self) -> str | None:
        """The gateway that holds this node, by its ownership label."""
        return self.labels.get(names.GATEWAY_LABEL)

    @cached_property
    def record(self) -> NodeRecord | None:
        # Cached: every pass asks each of thousands of nodes (a record is parsed once).
        return NodeRecord.from_json(self.record_text) if self.record_text else None

    @cached_property
    def holder(self) -> str | None:
        """The gateway that holds the node: by ownership label, else by its record."""
        if owner := self.owner:
            return owner
        record = self.record
        return record.gateway if record else None

    @property
    def schedulable(self) -> bool:
        return self.ready and not self.unschedulable

    @property
    def leaving(self) -> bool:
        """Cordoned (drained), being deleted, or marked for deletion by cluster-autoscaler:
        the load balancer should stop sending to it before its controller pod goes."""
        return (
            self.unschedulable
            or self.deleting
            or any(t.key == names.AUTOSCALER_DELETE_TAINT for t in self.taints)
        )

    @classmethod
    def from_api(cls, node: Mapping[str, Any]) -> NodeFacts:
        """Keep only what decisions need from a Node (a dict in API form)."""
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        conditions = status.get("conditions") or []
        return cls(
            name=meta["name"],
            labels=dict(meta.get("labels") or {}),
            taints=tuple(
                Taint(t["key"], t["effect"], t.get("value") or "") for t in spec.get("taints") or []
            ),
            record_text=(meta.get("annotations") or {}).get(names.NODE_RECORD_ANNOTATION),
            ready=is_true(conditions, "Ready"),
            unschedulable=bool(spec.get("unschedulable")),
            resource_version=meta.get("resourceVersion", ""),
            address=_node_address(status.get("addresses") or []),
            deleting=bool(meta.get("deletionTimestamp")),
            finalizers=tuple(meta.get("finalizers") or ()),
        )


def _node_address(addresses: Iterable[Mapping[str, Any]]) -> str:
    found = [a for a in addresses if a.get("address")]
    internal = [a for a in found if a.get("type") == "InternalIP"]
    return str((internal or found or [{"address": ""}])[0]["address"])


@dataclass(frozen=True)
class HealthProbe:
    """One edge node's answer to the load balancer's health check, as the operator got it.

    ``healthy``: True for HTTP 200; False when the node answered otherwise (another
    status, a refused or reset connection, no answer after connecting); None when the
    operator could not reach the node at all (no address, no route, connect timeout),
    which says more about the operator's network reach than about the node.
    """

    healthy: bool | None
    #: What was probed and what came back, e.g. "10.0.0.7:31514/healthz: HTTP 503".
    detail: str


@dataclass(frozen=True)
class GatewayFacts:
    """An EdgeGateway as the reconciler sees it."""

    name: str
    uid: str
    created: str  # RFC 3339, sorts chronologically
    generation: int
    deleting: bool
    spec: api.EdgeGatewaySpec | None
    spec_error: str | None
    status: Mapping[str, Any]

    @property
    def age_key(self) -> tuple[str, str]:
        """Older first; the name breaks ties between gateways created in the same second."""
        return (self.created, self.name)

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> GatewayFacts:
        meta = obj["metadata"]
        spec: api.EdgeGatewaySpec | None = None
        error: str | None = None
        try:
            spec = api.EdgeGatewaySpec.model_validate(obj.get("spec") or {})
        except ValidationError as invalid:
            error = api.describe(invalid, root="spec")
        if spec is not None and (error := api.ingress_class_conflict(meta["name"], spec)):
            spec = None
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            created=meta.get("creationTimestamp", ""),
            generation=int(meta.get("generation", 0)),
            deleting=bool(meta.get("deletionTimestamp")),
            spec=spec,
            spec_error=error,
            status=obj.get("status") or {},
        )


@dataclass(frozen=True)
class DaemonSetFacts:
    namespace: str
    name: str
    tolerations: tuple[Toleration, ...]

    def tolerates(self, taint: Taint) -> bool:
        return any(t.tolerates(taint) for t in self.tolerations)

    @classmethod
    def from_api(cls, ds: Mapping[str, Any]) -> DaemonSetFacts:
        pod_spec = ds.get("spec", {}).get("template", {}).get("spec", {}) or {}
        return cls(
            namespace=ds["metadata"]["namespace"],
            name=ds["metadata"]["name"],
            tolerations=tuple(Toleration.from_api(t) for t in pod_spec.get("tolerations") or []),
        )


@dataclass(frozen=True)
class PodFacts:
    """A controller pod of a gateway."""

    name: str
    node_name: str
    ready: bool
    namespace: str = ""
    terminating: bool = False
    #: The ReplicaSet that controls the pod ("" for none).
    replica_set: str = ""

    @classmethod
    def from_api(cls, pod: Mapping[str, Any]) -> PodFacts:
        conditions = (pod.get("status") or {}).get("conditions") or []
        refs = pod["metadata"].get("ownerReferences") or []
        return cls(
            replica_set=next(
                (r["name"] for r in refs if r.get("controller") and r.get("kind") == "ReplicaSet"),
                "",
            ),
            name=pod["metadata"]["name"],
            node_name=(pod.get("spec") or {}).get("nodeName") or "",
            ready=is_true(conditions, "Ready"),
            namespace=pod["metadata"].get("namespace", ""),
            terminating=bool(pod["metadata"].get("deletionTimestamp")),
        )


@dataclass(frozen=True)
class GatewayAPIGateway:
    """A Gateway API Gateway of the gateway's class, as its controller reports it."""

    namespace: str
    name: str
    programmed: bool
    #: Listeners the controller did not accept: (listener, reason, message).
    refused_listeners: tuple[tuple[str, str, str], ...] = ()
    #: Every listener: (name, port).
    listeners: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_api(cls, obj: Mapping[str, Any]) -> GatewayAPIGateway:
        status = obj.get("status") or {}
        refused = []
        for listener in status.get("listeners") or []:
            for cond in listener.get("conditions") or []:
                if cond.get("type") == "Accepted" and cond.get("status") == "False":
                    refused.append(
                        (listener.get("name", ""), cond.get("reason", ""), cond.get("message", ""))
                    )
        return cls(
            namespace=obj["metadata"].get("namespace", ""),
            name=obj["metadata"]["name"],
            programmed=is_true(status.get("conditions") or [], "Programmed"),
            refused_listeners=tuple(refused),
            listeners=tuple(
                (str(lst.get("name", "")), int(lst.get("port") or 0))
                for lst in (obj.get("spec") or {}).get("listeners") or []
            ),
        )


#: Whether the API serves Gateway API to the operator: "installed", "missing" (no CRDs)
#: or "forbidden" (the operator's ClusterRole is older than the operator).
GatewayAPIState = Literal["installed", "missing", "forbidden"]


@dataclass(frozen=True)
class GatewayAPIFacts:
    """Gateway API as the pass found it (Gateways read only with gatewayAPI.enabled)."""

    state: GatewayAPIState = "missing"
    #: The Gateways of the gateway's class, by namespace and name.
    gateways: tuple[GatewayAPIGateway, ...] = ()

    @property
    def installed(self) -> bool:
        return self.state == "installed"

    @property
    def names(self) -> tuple[tuple[str, str], ...]:
        """The class's Gateways as (namespace, name)."""
        return tuple((g.namespace, g.name) for g in self.gateways)

    @property
    def programmed(self) -> int:
        """The Gateways of the class whose Programmed condition is True."""
        return sum(1 for g in self.gateways if g.programmed)


@dataclass(frozen=True)
class WorkloadFacts:
    """What the cluster holds of a gateway's workload, read before anything is decided."""

    #: The gateway's objects (its label and its ownerReference), as the API returned them.
    owned: Mapping[Key, Mapping[str, Any]] = field(default_factory=dict)
    #: Objects with the gateway's label but not its ownerReference, where the gateway
    #: wants no object: left alone and reported (a copy made with kustomize, say).
    strangers: tuple[Key, ...] = ()
    #: The Deployment's replicas when a HorizontalPodAutoscaler targets it, else None.
    autoscaled_replicas: int | None = None
    namespace_exists: bool = True
    #: Objects the gateway would create whose name is taken by an object not its own.
    foreign: frozenset[Key] = frozenset()
    #: Provider ClusterRoles the gateway's bindings point at that do not exist.
    missing_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProvisionedFacts:
    """What the provider's own control plane made for the gateway (controller.provider
    envoy-gateway: Envoy Gateway's Deployment and Service for the gateway's class)."""

    #: Its CRDs (EnvoyProxy): "missing" means the control plane is not installed.
    state: GatewayAPIState = "missing"
    deployment: Mapping[str, Any] | None = None
    service: Mapping[str, Any] | None = None

    @property
    def installed(self) -> bool:
        return self.state == "installed"


@dataclass(frozen=True)
class Facts:
    """Everything one reconcile pass of one gateway reads."""

    gateway: GatewayFacts
    others: tuple[GatewayFacts, ...]
    nodes: Mapping[str, NodeFacts]
    daemonsets: tuple[DaemonSetFacts, ...] = ()
    controller_pods: tuple[PodFacts, ...] = ()
    now: str = ""
    #: Node -> the latest probe of its load-balancer health check; None: probing is off.
    lb_health: Mapping[str, HealthProbe] | None = None
    workload: WorkloadFacts = field(default_factory=WorkloadFacts)
    gateway_api: GatewayAPIFacts = field(default_factory=GatewayAPIFacts)
    #: What Envoy Gateway made (None: the provider makes its workload itself).
    provisioned: ProvisionedFacts | None = None
