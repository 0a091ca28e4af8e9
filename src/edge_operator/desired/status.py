"""The EdgeGateway status: conditions, phase and the node part, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edge_operator import api, names
from edge_operator.desired.nodes import NodeDecision, desired_taint
from edge_operator.desired.objects import Action, Key
from edge_operator.desired.providers import envoy_gateway
from edge_operator.desired.service import addresses
from edge_operator.facts import Facts, HealthProbe, is_true

READY = "Ready"
NODES_CONFIGURED = "NodesConfigured"
TAINT_SAFE = "TaintSafe"
CONTROLLER_AVAILABLE = "ControllerAvailable"
LOAD_BALANCER_READY = "LoadBalancerReady"
CLIENT_IP_PRESERVED = "ClientIPPreserved"
EDGE_NODES_HEALTHY = "EdgeNodesHealthy"
OBJECTS_OWNED = "ObjectsOwned"
GATEWAY_API_READY = "GatewayAPIReady"
GATEWAY_LISTENERS_ACCEPTED = "GatewayListenersAccepted"
PROVIDER_DEPRECATED = "ProviderDeprecated"
#: Conditions that warn without holding Ready back. (An edge node failing its health
#: check costs capacity, not service: the load balancer sends to the others. A Gateway
#: listener its controller refused is one user's Gateway, not the edge.)
WARNINGS = frozenset(
    {
        TAINT_SAFE,
        CLIENT_IP_PRESERVED,
        EDGE_NODES_HEALTHY,
        OBJECTS_OWNED,
        GATEWAY_LISTENERS_ACCEPTED,
        PROVIDER_DEPRECATED,
    }
)
#: Refused listeners named in the GatewayListenersAccepted message at most.
LISTENERS_NAMED = 10
#: Strangers named in the ObjectsOwned message at most (then "and N more").
STRANGERS_NAMED = 10
#: Reasons that need someone to act: the phase is Degraded, not Provisioning.
DEGRADED_REASONS = frozenset(
    {
        "InvalidSpec",
        "NoEdgeNodes",
        "MinWorkerNodes",
        "NodeOwnedByOtherGateway",
        "ObjectConflict",
        "ApplyFailed",
        "ProviderRBACMissing",
        "RolloutStuck",
        "NodeChangeDenied",
        "NodeRecordCorrupt",
        "GatewayAPICRDsMissing",
        "GatewayAPIForbidden",
        "EnvoyGatewayMissing",
        "EnvoyGatewayForbidden",
    }
)


_UNPROBED = HealthProbe(None, "not probed")


@dataclass(frozen=True)
class Workload:
    """The gateway's workload as this pass leaves it."""

    #: Owned objects on the cluster after the pass (as the API returned them).
    objects: Mapping[Key, Mapping[str, Any]] = field(default_factory=dict)
    deployment: Key | None = None
    service: Key | None = None
    ingress_class: str = ""
    #: The GatewayClass served ("": gatewayAPI off).
    gateway_class: str = ""
    #: Changes not made (paused, refused): they go into status.plan.
    pending: tuple[tuple[Key, Action], ...] = ()
    #: What the pass wants each object to be (stamped), the missing Namespace included.
    desired: Mapping[Key, Mapping[str, Any]] = field(default_factory=dict)
    #: Objects that could not be applied, with why: a foreign object in the way
    #: (ObjectConflict) or an API refusal (ApplyFailed).
    failures: tuple[tuple[Key, str, str], ...] = ()
    #: Provider ClusterRoles the bindings point at that do not exist.
    missing_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cond:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], wanted: Sequence[Cond], now: str, generation: int
) -> list[dict[str, Any]]:
    """Conditions in metav1.Condition form; lastTransitionTime moves only on a flip."""
    before = {c.get("type"): c for c in existing}
    out = []
    for cond in wanted:
        old = before.get(cond.type)
        flipped = old is None or old.get("status") != cond.status
        out.append(
            {
                "type": cond.type,
                "status": cond.status,
                "observedGeneration": generation,
                "lastTransitionTime": now if flipped else old["lastTransitionTime"],  # type: ignore[index]
                "reason": cond.reason,
                "message": cond.message,
            }
        )
    return out


def node_conditions(facts: Facts, decision: NodeDecision) -> list[Cond]:
    spec = facts.gateway.spec
    assert spec is not None
    selected = ", ".join(decision.selected)
    if decision.refusal:
        nodes = Cond(NODES_CONFIGURED, "False", decision.refusal.reason, decision.refusal.message)
    elif spec.paused and decision.updates:
        nodes = Cond(
            NODES_CONFIGURED,
            "False",
            "Paused",
            f"the gateway is paused with {len(decision.updates)} node change(s) waiting;"
            " see status.plan",
        )
    elif decision.taint_pending:
        nodes = Cond(
            NODES_CONFIGURED,
            "False",
            "TaintPending",
            "the NoExecute taint waits for a Ready controller pod on: "
            + ", ".join(decision.taint_pending),
        )
    else:
        message = f"{len(decision.selected)} edge node(s): {selected}"
        if decision.draining:
            message += "; draining before release: " + ", ".join(decision.draining)
        if decision.missing_names:
            message += "; named nodes not found: " + ", ".join(decision.missing_names)
        nodes = Cond(NODES_CONFIGURED, "True", "NodesConfigured", message)

    taint = desired_taint(spec)
    if taint is None:
        safe = Cond(TAINT_SAFE, "True", "NoTaint", "edge nodes are not tainted")
    elif decision.intolerant_daemonsets:
        safe = Cond(
            TAINT_SAFE,
            "False",
            "DaemonSetsNotTolerating",
            f"these DaemonSets do not tolerate the taint {taint}, so their pods will not run"
            " on edge nodes: " + ", ".join(decision.intolerant_daemonsets),
        )
    else:
        safe = Cond(
            TAINT_SAFE, "True", "AllDaemonSetsTolerate", f"every DaemonSet tolerates {taint}"
        )
    return [nodes, safe]


def invalid_spec_conditions(error: str) -> list[Cond]:
    message = f"the spec is invalid and nothing was changed: {error}"
    return [
        Cond(READY, "False", "InvalidSpec", message),
        Cond(NODES_CONFIGURED, "False", "InvalidSpec", message),
    ]


#: Failures reported by a condition of their own, not by ControllerAvailable.
OWN_CONDITION_KINDS = frozenset({"GatewayClass"})


def _failure(workload: Workload, service: bool) -> Cond | None:
    type_ = LOAD_BALANCER_READY if service else CONTROLLER_AVAILABLE
    for key, reason, message in workload.failures:
        if key.kind in OWN_CONDITION_KINDS:
            continue  # GatewayAPIReady
        if (key.kind == "Service") == service:
            return Cond(type_, "False", reason, f"{key}: {message}")
    return None


def provisioner_condition(facts: Facts, workload: Workload) -> Cond | None:
    """Why the provider's control plane (Envoy Gateway) has not made the controller
    Deployment (None: it has, or the operator makes it itself)."""
    made = facts.provisioned
    if made is None or (made.installed and made.deployment is not None):
        return None
    if made.state == "missing":
        return Cond(
            CONTROLLER_AVAILABLE,
            "False",
            "EnvoyGatewayMissing",
            f"Envoy Gateway is not installed (no {envoy_gateway.ENVOY_PROXY_CRD} CRD): install"
            f" it with its Helm chart ({envoy_gateway.VERSION} or later); the operator writes"
            " the EnvoyProxy and the GatewayClass once it is there, no restart needed",
        )
    if made.state == "forbidden":
        return Cond(
            CONTROLLER_AVAILABLE,
            "False",
            "EnvoyGatewayForbidden",
            "the operator's ClusterRole does not let it read Envoy Gateway's EnvoyProxies"
            " (a chart older than the operator): upgrade the chart",
        )
    if not facts.gateway_api.gateways:
        return Cond(
            CONTROLLER_AVAILABLE,
            "False",
            "NoGateways",
            "Envoy Gateway starts the Envoy fleet once a Gateway of class"
            f" {workload.gateway_class} exists; there is none yet",
        )
    return Cond(
        CONTROLLER_AVAILABLE,
        "False",
        "EnvoyFleetPending",
        f"waiting for Envoy Gateway to make the Envoy Deployment of class {workload.gateway_class}",
    )


def controller_condition(facts: Facts, decision: NodeDecision, workload: Workload) -> Cond:
    """Whether every edge node that should run a controller pod has a ready one."""
    failed = _failure(workload, service=False) or provisioner_condition(facts, workload)
    if failed:
        return failed
    if workload.missing_roles:
        return Cond(
            CONTROLLER_AVAILABLE,
            "False",
            "ProviderRBACMissing",
            "the controller pods are bound to ClusterRoles that do not exist: "
            + ", ".join(workload.missing_roles)
            + "; install them with the operator (the Helm chart or deploy/manifests/install.yaml)",
        )
    deploy = workload.objects.get(workload.deployment) if workload.deployment else None
    if deploy is None:
        return Cond(
            CONTROLLER_AVAILABLE, "False", "DeploymentMissing", "no controller Deployment yet"
        )
    spec, status = deploy.get("spec") or {}, deploy.get("status") or {}
    want = int(spec.get("replicas") or 0)
    conditions = status.get("conditions") or []
    for cond in conditions:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Cond(CONTROLLER_AVAILABLE, "False", "RolloutStuck", cond.get("message") or "")
    if (
        status.get("observedGeneration", 0) < deploy["metadata"].get("generation", 0)
        or int(status.get("updatedReplicas") or 0) < want
    ):
        return Cond(
            CONTROLLER_AVAILABLE,
            "False",
            "RollingOut",
            f"{status.get('updatedReplicas') or 0} of {want} controller pod(s) updated",
        )
    if want == 0:
        return Cond(
            CONTROLLER_AVAILABLE, "False", "NoReadyEdgeNodes", "no edge node is Ready to run a pod"
        )
    ready_pods = {p.node_name for p in facts.controller_pods if p.ready}
    assert facts.gateway.spec is not None
    if facts.gateway.spec.controller.replicas is None:
        bare = [
            n
            for n in decision.selected
            if n in facts.nodes and facts.nodes[n].ready and n not in ready_pods
        ]
        if bare:
            return Cond(
                CONTROLLER_AVAILABLE,
                "False",
                "NodesWithoutController",
                "these edge nodes have no ready controller pod, so the load balancer skips"
                " them: " + ", ".join(bare),
            )
    available = int(status.get("availableReplicas") or 0)
    if available < want or not is_true(conditions, "Available"):
        return Cond(
            CONTROLLER_AVAILABLE,
            "False",
            "PodsNotAvailable",
            f"{available} of {want} controller pod(s) available",
        )
    return Cond(
        CONTROLLER_AVAILABLE,
        "True",
        "Available",
        f"{available} controller pod(s) available on {len(ready_pods)} edge node(s)",
    )


def load_balancer_condition(workload: Workload) -> Cond:
    failed = _failure(workload, service=True)
    if failed:
        return failed
    key = workload.service
    svc = workload.objects.get(key) if key else None
    if key is None or svc is None:
        return Cond(LOAD_BALANCER_READY, "False", "ServiceMissing", "no LoadBalancer Service yet")
    found = addresses(dict(svc))
    if not found:
        return Cond(
            LOAD_BALANCER_READY,
            "False",
            "AddressPending",
            f"waiting for a load balancer controller to give Service {key.namespace}/{key.name}"
            " an address",
        )
    return Cond(
        LOAD_BALANCER_READY,
        "True",
        "AddressAssigned",
        "the load balancer's address: " + ", ".join(a["value"] for a in found),
    )


def ownership_condition(gateway: str, strangers: Sequence[Key]) -> Cond:
    """Objects that carry the gateway's label but not its ownerReference: never changed
    or deleted, only named here (a warning: the gateway's own objects are unaffected)."""
    if not strangers:
        return Cond(
            OBJECTS_OWNED,
            "True",
            "NoUnownedLabelledObjects",
            f"every object labelled {names.GATEWAY_LABEL}={gateway} is this gateway's own",
        )
    named = ", ".join(str(k) for k in strangers[:STRANGERS_NAMED])
    more = len(strangers) - STRANGERS_NAMED
    return Cond(
        OBJECTS_OWNED,
        "False",
        "ObjectConflict",
        f"{named}{f' and {more} more' if more > 0 else ''}: labelled"
        f" {names.GATEWAY_LABEL}={gateway} without this gateway's ownerReference; the"
        " operator leaves them alone (remove the label, or delete the copies)",
    )


def gateway_api_conditions(facts: Facts, workload: Workload) -> list[Cond]:
    """GatewayAPIReady (the class is there, the gateway's, and its controller accepted
    it) and, once it is, GatewayListenersAccepted; none with gatewayAPI off."""
    spec = facts.gateway.spec
    assert spec is not None
    if not spec.gateway_api.enabled:
        return []
    name = workload.gateway_class
    if facts.gateway_api.state == "forbidden":
        return [
            Cond(
                GATEWAY_API_READY,
                "False",
                "GatewayAPIForbidden",
                f"the operator may not read {names.GATEWAY_API_GROUP} GatewayClasses or"
                " Gateways: its ClusterRole is older than the operator (upgrade the chart, or"
                " apply deploy/manifests/install.yaml); Ingresses are served meanwhile",
            )
        ]
    if not facts.gateway_api.installed:
        return [
            Cond(
                GATEWAY_API_READY,
                "False",
                "GatewayAPICRDsMissing",
                f"the Gateway API CRDs ({names.GATEWAY_API_GROUP}, standard channel) are not"
                f" installed, so GatewayClass {name} cannot be made; install them (see the"
                " README, Gateway API): the gateway serves the class then, no restart needed",
            )
        ]
    key = Key("GatewayClass", "", name)
    refused = next(((r, m) for k, r, m in workload.failures if k == key), None)
    if refused is not None:
        return [Cond(GATEWAY_API_READY, "False", refused[0], f"GatewayClass {name}: {refused[1]}")]
    found = workload.objects.get(key) or {}
    generation = (found.get("metadata") or {}).get("generation", 0)
    conditions = (found.get("status") or {}).get("conditions") or []
    accepted = next(
        (
            c
            for c in conditions
            if c.get("type") == "Accepted" and c.get("observedGeneration", 0) >= generation
        ),
        None,
    )
    controller = (found.get("spec") or {}).get("controllerName", "")
    if accepted is None or accepted.get("status") != "True":
        why = (
            f"{accepted.get('reason')}: {accepted.get('message')}"
            if accepted
            else "not yet accepted"
        )
        return [
            Cond(
                GATEWAY_API_READY,
                "False",
                "NotAccepted",
                f"GatewayClass {name} ({controller or 'being created'}): {why}",
            )
        ]
    gateways = facts.gateway_api.gateways
    ready = Cond(
        GATEWAY_API_READY,
        "True",
        "Accepted",
        f"GatewayClass {name} is accepted by {controller}; {facts.gateway_api.programmed} of its"
        f" {len(gateways)} Gateway(s) are Programmed",
    )
    ports = spec.service.ports
    extra = spec.gateway_api.listener_ports
    exposed = {ports.http, ports.https, *extra}
    answered = {(g.namespace, g.name, lst) for g in gateways for lst, _, _ in g.refused_listeners}
    listeners = [
        f"{g.namespace}/{g.name} listener {listener} ({reason}: {message})"
        for g in gateways
        for listener, reason, message in g.refused_listeners
    ] + [
        # The controller may accept it (an entry point inside the pod has the port), but
        # the load balancer never sends to it.
        f"{g.namespace}/{g.name} listener {listener} (PortNotExposed: the Service has no"
        f" port {port})"
        for g in gateways
        for listener, port in g.listeners
        if port not in exposed and (g.namespace, g.name, listener) not in answered
    ]
    if not listeners:
        return [
            ready,
            Cond(
                GATEWAY_LISTENERS_ACCEPTED,
                "True",
                "ListenersAccepted",
                f"every listener of the {len(gateways)} Gateway(s) of {name} is accepted",
            ),
        ]
    more = len(listeners) - LISTENERS_NAMED
    return [
        ready,
        Cond(
            GATEWAY_LISTENERS_ACCEPTED,
            "False",
            "ListenerNotAccepted",
            "; ".join(listeners[:LISTENERS_NAMED])
            + (f" and {more} more" if more > 0 else "")
            + f". Listeners of {name} must use the Service's ports: HTTP {ports.http},"
            f" HTTPS or TLS {ports.https}, or one of gatewayAPI.listenerPorts"
            f" ({', '.join(map(str, extra)) or 'none yet'})",
        ),
    ]


def client_ip_condition(spec: api.EdgeGatewaySpec) -> Cond:
    if spec.service.external_traffic_policy == "Local":
        return Cond(
            CLIENT_IP_PRESERVED,
            "True",
            "ExternalTrafficPolicyLocal",
            "traffic goes straight to the edge node's own controller pod",
        )
    return Cond(
        CLIENT_IP_PRESERVED,
        "False",
        "ExternalTrafficPolicyCluster",
        "externalTrafficPolicy Cluster adds a hop between nodes and hides the client address"
        " behind SNAT; the load balancer also sends to nodes without a controller pod",
    )


def provider_condition(spec: api.EdgeGatewaySpec) -> Cond | None:
    """The warning a retired provider carries (None: the provider is maintained)."""
    if spec.controller.provider != "ingress-nginx":
        return None
    return Cond(
        PROVIDER_DEPRECATED,
        "True",
        "UpstreamRetired",
        "ingress-nginx was retired upstream in March 2026 and gets no security fixes; keep"
        " the Ingresses and move the gateway to controller.provider traefik with"
        " ingressNGINX.enabled (it serves class nginx and its annotations), or to Gateway"
        " API (README: Leaving ingress-nginx)",
    )


def serving_nodes(facts: Facts, selected: Sequence[str]) -> list[str]:
    """The edge nodes that should pass the load balancer's health check now.

    Under Local: those with a ready controller pod that is not terminating (kube-proxy's
    health check fails, rightly, on a node whose pod is leaving). Under Cluster:
    every Ready edge node (kube-proxy's own health).
    """
    spec = facts.gateway.spec
    assert spec is not None
    if spec.service.external_traffic_policy == "Cluster":
        return [n for n in selected if n in facts.nodes and facts.nodes[n].ready]
    serving = {p.node_name for p in facts.controller_pods if p.ready and not p.terminating}
    return [n for n in selected if n in serving]


def lb_health_condition(facts: Facts, selected: Sequence[str]) -> Cond | None:
    """Whether the edge nodes that should serve pass the load balancer's health check
    (None: probing is off)."""
    health = facts.lb_health
    if health is None:
        return None
    serving = serving_nodes(facts, selected)
    failing = [n for n in serving if n in health and health[n].healthy is False]
    if failing:
        return Cond(
            EDGE_NODES_HEALTHY,
            "False",
            "EdgeNodeUnhealthy",
            f"edge node(s) {', '.join(failing)} fail the load balancer's health check, so the"
            " load balancer sends them no traffic although a controller pod runs there ("
            + "; ".join(f"{n}: {health[n].detail}" for n in failing)
            + "); check kube-proxy on the node",
        )
    unknown = [n for n in serving if n not in health or health[n].healthy is None]
    if unknown:
        details = "; ".join(
            f"{n}: {health[n].detail}" if n in health else f"{n}: not probed yet" for n in unknown
        )
        return Cond(
            EDGE_NODES_HEALTHY,
            "Unknown",
            "HealthCheckUnreachable",
            f"the operator cannot probe the health check of edge node(s) {', '.join(unknown)}"
            f" ({details}); it needs to reach the nodes' addresses (README: Network reach)",
        )
    if not serving:
        return Cond(
            EDGE_NODES_HEALTHY,
            "Unknown",
            "NoServingEdgeNodes",
            "no edge node has a ready controller pod to health-check yet",
        )
    return Cond(
        EDGE_NODES_HEALTHY,
        "True",
        "HealthChecksPassing",
        "every edge node with a ready controller pod passes the load balancer's health check",
    )


def ready_condition(conditions: Sequence[Cond]) -> Cond:
    """Ready when every condition it depends on is True (warnings do not count)."""
    blocking = [c for c in conditions if c.type not in WARNINGS and c.status != "True"]
    if not blocking:
        return Cond(READY, "True", "Ready", "every condition the gateway depends on is True")
    first = blocking[0]
    return Cond(READY, "False", first.reason, f"{first.type}: {first.message}")


def phase(conditions: Sequence[Cond], paused: bool) -> str:
    if paused:
        return "Paused"
    by_type = {c.type: c for c in conditions}
    if by_type[READY].status == "True":
        return "Ready"
    if any(c.reason in DEGRADED_REASONS for c in conditions if c.type not in WARNINGS):
        return "Degraded"
    return "Provisioning"


def plan(decision: NodeDecision, workload: Workload) -> dict[str, Any]:
    nodes = [c for update in decision.updates for c in update.changes]
    objects = [
        api.ObjectChange(kind=key.kind, name=key.name, namespace=key.namespace, action=action)
        for key, action in workload.pending
    ]
    return api.Plan(nodes=nodes, objects=objects).model_dump(by_alias=True)


def gateway_status(
    facts: Facts, decision: NodeDecision, applied: bool, workload: Workload
) -> dict[str, Any]:
    """The whole status after this pass; ``applied``: the node updates were made."""
    gw = facts.gateway
    spec = gw.spec
    assert spec is not None
    # Once this pass made its node changes, status describes the result, not the plan.
    shown = replace(decision, updates=()) if applied else decision
    wanted = [
        *node_conditions(facts, shown),
        controller_condition(facts, decision, workload),
        load_balancer_condition(workload),
        client_ip_condition(spec),
        ownership_condition(gw.name, facts.workload.strangers),
        *gateway_api_conditions(facts, workload),
    ]
    if health := lb_health_condition(facts, decision.selected):
        wanted.append(health)
    if deprecated := provider_condition(spec):
        wanted.append(deprecated)
    conditions = [ready_condition(wanted), *wanted]
    pods: dict[str, int] = {}
    for pod in facts.controller_pods:
        if pod.ready:
            pods[pod.node_name] = pods.get(pod.node_name, 0) + 1
    edge_nodes = [
        api.EdgeNodeStatus(
            name=name,
            zone=facts.nodes[name].zone if name in facts.nodes else "",
            ready=facts.nodes[name].ready if name in facts.nodes else False,
            controller_pods=pods.get(name, 0),
            load_balancer_healthy=(facts.lb_health or {}).get(name, _UNPROBED).healthy,
        ).model_dump(by_alias=True, exclude_none=True)
        for name in decision.selected
    ]
    deploy = workload.objects.get(workload.deployment) if workload.deployment else None
    svc = workload.objects.get(workload.service) if workload.service else None
    return {
        "observedGeneration": gw.generation,
        "phase": phase(conditions, spec.paused),
        "edgeNodes": edge_nodes,
        "edgeNodeCount": len(edge_nodes),
        "replicas": int((deploy or {}).get("spec", {}).get("replicas") or 0),
        "readyReplicas": int((deploy or {}).get("status", {}).get("readyReplicas") or 0),
        "addresses": addresses(dict(svc) if svc else None),
        "ingressClassName": workload.ingress_class,
        **(
            {
                "gatewayClassName": workload.gateway_class,
                "gatewaysProgrammed": facts.gateway_api.programmed,
            }
            if spec.gateway_api.enabled
            else {}
        ),
        "daemonSetsNotTolerating": list(decision.intolerant_daemonsets),
        "plan": plan(shown, workload),
        "conditions": merge_conditions(
            gw.status.get("conditions") or [], conditions, facts.now, gw.generation
        ),
    }


def invalid_status(
    current: Mapping[str, Any], generation: int, error: str, now: str
) -> dict[str, Any]:
    conditions = invalid_spec_conditions(error)
    return {
        **current,
        "observedGeneration": generation,
        "phase": "Degraded",
        "conditions": merge_conditions(
            current.get("conditions") or [], conditions, now, generation
        ),
    }


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning ``old`` into ``new`` (empty: nothing to write)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value or key not in old:
            patch[key] = value
    return patch


def refused_reasons(status: Mapping[str, Any]) -> list[str]:
    """The reasons of the conditions that say the gateway's spec was refused (for metrics)."""
    return sorted(
        {
            c["reason"]
            for c in status.get("conditions") or []
            if c.get("status") != "True"
            and c.get("reason") in DEGRADED_REASONS
            and c.get("type") not in WARNINGS
        }
    )


def condition(status: Mapping[str, Any], type_: str) -> tuple[str, str, str] | None:
    """(status, reason, message) of the condition of that type, if there is one."""
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return (cond.get("status", ""), cond.get("reason", ""), cond.get("message", ""))
    return None


def warn_again(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether a refusal deserves its Warning Event: once when it appears or changes,
    not on every pass that finds it still refused."""
    return condition(before, NODES_CONFIGURED) != condition(after, NODES_CONFIGURED)
