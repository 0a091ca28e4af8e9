"""Which of a gateway's objects a pass creates, updates, deletes or leaves alone.

Pure: a function of the facts the pass gathered and of its node decision. The
write path (write.py) makes them concurrently, in the steps of ``WorkloadPlan.steps``
(a step starts once the changes it waits for are made); ``edge-operator plan`` shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_operator import api, names
from edge_operator.desired import gatewayclass, ingressclass
from edge_operator.desired import namespace as namespace_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.nodes import NodeDecision
from edge_operator.desired.objects import Action, Key, Owner, action
from edge_operator.facts import Facts, PodFacts

#: Why an object to create is not created: its name is taken by an object of someone else.
CONFLICT_MESSAGE = (
    "an object of that name exists and is not this gateway's; the operator leaves it alone"
    " (delete or rename it, or choose another name)"
)


@dataclass(frozen=True)
class WorkloadPlan:
    """The object changes of one pass, in the order they are made."""

    #: What each object should be (stamped), the Namespace included when it is missing.
    desired: Mapping[Key, Mapping[str, Any]]
    #: The missing Namespace first, then creates and updates in apply order, then deletes.
    changes: tuple[tuple[Key, Action], ...]
    #: Controller pods on nodes that are no longer edge nodes, evicted before any change.
    evictions: tuple[PodFacts, ...]
    #: Creates refused because an object not of this gateway has the name (ObjectConflict).
    conflicts: tuple[Key, ...]
    deployment: Key
    service: Key
    ingress_class: str
    gateway_class: str

    @property
    def steps(self) -> tuple[Step, ...]:
        """The changes in steps. The Namespace first; then every create and update but the
        Deployment's; the Deployment once what its pods need is there (the objects before
        it in apply order: ServiceAccount, bindings, ConfigMap), while the others go on;
        the deletes last. Empty steps are left out."""
        order = [key for key, _ in self.changes]
        cut = order.index(self.deployment) if self.deployment in order else 0
        namespace = tuple(c for c in self.changes if c[0].kind == "Namespace")
        deletes = tuple(c for c in self.changes if c[1] == "Delete")
        others = tuple(c for c in self.changes if c not in namespace and c not in deletes)
        needs = frozenset(
            key for i, (key, _) in enumerate(self.changes) if i < cut and key.kind != "Namespace"
        )
        steps = (
            Step(namespace),
            Step(tuple(c for c in others if c[0] != self.deployment)),
            Step(tuple(c for c in others if c[0] == self.deployment), after=needs),
            Step(deletes),
        )
        return tuple(step for step in steps if step.changes)


@dataclass(frozen=True)
class Step:
    """Changes made at once, once the changes of the steps before that it waits for are
    made (``after``; None: all of them)."""

    changes: tuple[tuple[Key, Action], ...]
    after: frozenset[Key] | None = None


def owner(facts: Facts) -> Owner:
    return Owner(facts.gateway.name, facts.gateway.uid)


def expected(
    owner: Owner,
    spec: api.EdgeGatewaySpec,
    gateway_api_installed: bool,
    envoy_gateway_installed: bool = False,
    gateways: tuple[tuple[str, str], ...] = (),
) -> tuple[list[Key], list[str]]:
    """The keys of the objects the gateway's workload is made of, and the provider
    ClusterRoles its bindings point at: what the gather step checks by name. Neither
    depends on the replica count, so any count serves."""
    objects = workload_rules.build(
        workload_rules.Inputs(
            owner,
            spec,
            ready_edge_nodes=0,
            gateway_api_installed=gateway_api_installed,
            envoy_gateway_installed=envoy_gateway_installed,
            gateways=gateways,
        )
    )
    roles = sorted({obj["roleRef"]["name"] for obj in objects if "roleRef" in obj})
    return [Key.of(obj) for obj in objects], roles


def plan(facts: Facts, decision: NodeDecision) -> WorkloadPlan:
    spec = facts.gateway.spec
    assert spec is not None, "plan() needs a valid spec"
    who = owner(facts)
    ns = spec.controller.namespace
    name = names.workload_name(who.name)
    current = facts.workload.owned
    made = facts.provisioned
    ready = sum(1 for n in decision.selected if n in facts.nodes and facts.nodes[n].ready)
    inputs = workload_rules.Inputs(
        owner=who,
        spec=spec,
        ready_edge_nodes=ready,
        autoscaled_replicas=facts.workload.autoscaled_replicas,
        gateway_api_installed=facts.gateway_api.installed,
        envoy_gateway_installed=facts.provisioned is not None and facts.provisioned.installed,
        gateways=facts.gateway_api.names,
    )
    desired: dict[Key, Mapping[str, Any]] = {
        Key.of(obj): obj for obj in workload_rules.build(inputs)
    }
    nginx_class = ingressclass.ingress_nginx_key(spec)
    if nginx_class in facts.workload.foreign:
        # An IngressClass of that name exists (ingress-nginx's own, say): served as it is.
        del desired[nginx_class]
    changes: list[tuple[Key, Action]] = [
        (key, change)
        for key, obj in desired.items()
        if (change := action(obj, current.get(key))) is not None
    ]
    changes += [(key, "Delete") for key in sorted(current.keys() - desired.keys())]
    if not facts.workload.namespace_exists:
        # Created first (and never deleted: other workloads may share it).
        namespace_key = Key("Namespace", "", ns)
        changes.insert(0, (namespace_key, "Create"))
        desired = {namespace_key: namespace_rules.namespace(ns), **desired}
    return WorkloadPlan(
        desired=desired,
        changes=tuple(changes),
        evictions=tuple(workload_rules.strays(facts.controller_pods, decision.selected)),
        conflicts=tuple(
            key for key, change in changes if change == "Create" and key in facts.workload.foreign
        ),
        deployment=_key(facts, made.deployment if made else None, Key("Deployment", ns, name)),
        service=_key(facts, made.service if made else None, Key("Service", ns, name)),
        ingress_class=ingressclass.name(who, spec),
        gateway_class=gatewayclass.name(who, spec) if spec.gateway_api.enabled else "",
    )


def _key(facts: Facts, made: Mapping[str, Any] | None, own: Key) -> Key:
    """The key of the gateway's Deployment or Service: ``own`` where the operator makes
    it; where the provider's control plane does (Envoy Gateway, in its namespace), the
    one it made, or a key no object has while it has made none."""
    if facts.provisioned is None:
        return own
    return Key.of(made) if made is not None else Key(own.kind, "", "")


def workload(
    facts: Facts,
    planned: WorkloadPlan,
    *,
    applied: bool,
    objects: Mapping[Key, Mapping[str, Any]] | None = None,
    failures: tuple[tuple[Key, str, str], ...] = (),
) -> status_rules.Workload:
    """The workload as the pass leaves it: with ``applied``, ``objects`` is what the API
    returned for the changes made; otherwise the changes are pending (paused, refused)."""
    conflicts = tuple((key, "ObjectConflict", CONFLICT_MESSAGE) for key in planned.conflicts)
    seen = dict(facts.workload.owned if objects is None else objects)
    if facts.provisioned is not None:
        # What the provider's control plane made, read for status alone.
        for made in (facts.provisioned.deployment, facts.provisioned.service):
            if made is not None:
                seen[Key.of(made)] = made
    return status_rules.Workload(
        objects=seen,
        deployment=planned.deployment,
        service=planned.service,
        ingress_class=planned.ingress_class,
        gateway_class=planned.gateway_class,
        pending=() if applied else planned.changes,
        desired=planned.desired,
        failures=(conflicts + failures) if applied else failures,
        missing_roles=facts.workload.missing_roles,
    )
