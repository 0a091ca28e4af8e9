"""Every object of a gateway's workload, in the order they are applied.

Namespace (created if missing, never deleted: other gateways and workloads may
share it), ServiceAccount, its bindings to the provider's ClusterRoles (installed
with the operator: the operator binds, it grants nothing itself), the provider's
ConfigMap, the Deployment, its PodDisruptionBudget, the IngressClass, the
LoadBalancer Service, for Traefik the readiness route, with gatewayAPI on the
GatewayClass and the binding of the provider's Gateway API role, and with ingressNGINX
on the binding of that role and the ingress-nginx IngressClass (when none exists). All
but the Namespace carry an ownerReference to the EdgeGateway, so the garbage collector removes them
with it. Each object is built in a module of its own (namespace, rbac, configmap,
deployment, pdb, ingressclass, service, readiness, gatewayclass), which also says how
it is applied (RECREATE); this module composes them.

controller.provider envoy-gateway is the exception: the operator runs no controller of
its own, and writes only what the cluster's Envoy Gateway provisions the Envoy fleet
from (``provisioned``: envoyproxy, gatewayclass, clienttrafficpolicy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_operator import api, names
from edge_operator.desired import (
    clienttrafficpolicy,
    configmap,
    envoyproxy,
    gatewayclass,
    ingressclass,
    pdb,
    rbac,
)
from edge_operator.desired import deployment as deployment_rules
from edge_operator.desired import readiness as readiness_rules
from edge_operator.desired import service as service_rules
from edge_operator.desired.objects import Owner, stamped
from edge_operator.desired.providers import (
    Context,
    Provider,
    Rendered,
    envoy_gateway,
    ingress_nginx,
    traefik,
)
from edge_operator.facts import PodFacts

PROVIDERS: Mapping[str, Provider] = {traefik.NAME: traefik, ingress_nginx.NAME: ingress_nginx}
#: Kinds of the objects a gateway owns (listed by its label to find strays).
OWNED_KINDS = (
    "ServiceAccount",
    "ClusterRoleBinding",
    "RoleBinding",
    "ConfigMap",
    "Deployment",
    "PodDisruptionBudget",
    "IngressClass",
    "Service",
    "Ingress",
    "GatewayClass",
    "EnvoyProxy",
    "ClientTrafficPolicy",
)
#: Kinds listed only where their CRDs are installed (a 404 otherwise means "none").
OPTIONAL_KINDS = frozenset({"GatewayClass", "EnvoyProxy", "ClientTrafficPolicy"})
#: Kinds deleted and created again when an immutable field of theirs must change
#: (each object's module says why). Never a Service (its load balancer and address
#: would go) nor a Deployment (its pods).
RECREATE = rbac.RECREATE | ingressclass.RECREATE | gatewayclass.RECREATE


@dataclass(frozen=True)
class Inputs:
    owner: Owner
    spec: api.EdgeGatewaySpec
    #: Edge nodes that can run a controller pod (selected and Ready).
    ready_edge_nodes: int
    #: The Deployment's current replicas when a HorizontalPodAutoscaler targets it.
    autoscaled_replicas: int | None = None
    #: The Gateway API CRDs are installed (GatewayClass is served).
    gateway_api_installed: bool = False
    #: Envoy Gateway's CRDs are installed (EnvoyProxy is served).
    envoy_gateway_installed: bool = False
    #: The Gateways of the gateway's class, as (namespace, name).
    gateways: tuple[tuple[str, str], ...] = ()


def serves_gateway_api(inputs: Inputs) -> bool:
    """The gateway's controller serves a GatewayClass: gatewayAPI on, and its CRDs there."""
    return inputs.spec.gateway_api.enabled and inputs.gateway_api_installed


def controller_pods(pods: Iterable[PodFacts], deployment: str) -> list[PodFacts]:
    """The pods of the gateway's own Deployment among those carrying its label: their
    ReplicaSet is ``<deployment>-<pod-template-hash>`` (the hash has no '-'). A pod of a
    labelled copy of the Deployment is not the gateway's and is never evicted."""
    return [p for p in pods if p.replica_set.rpartition("-")[0] == deployment]


def strays(pods: Iterable[PodFacts], edge_nodes: Iterable[str]) -> list[PodFacts]:
    """Controller pods on nodes that are no longer the gateway's edge nodes.

    The nodeSelector binds only at scheduling time, and when the Deployment scales
    down the ReplicaSet picks pods by age, not by node: the pod on a node that
    left the pool would stay and an edge node would lose its pod instead.
    """
    keep = set(edge_nodes)
    return [p for p in pods if p.node_name and p.node_name not in keep and not p.terminating]


def provider_cluster_roles() -> list[dict[str, Any]]:
    """The ClusterRoles installed with the operator, which gateways' controllers bind to."""
    return [role for provider in PROVIDERS.values() for role in provider.cluster_roles()]


def replicas(inputs: Inputs) -> int:
    """One pod per Ready edge node, capped by controller.replicas; an HPA's count wins.

    More pods than edge nodes could never schedule (one per node), so a larger
    controller.replicas is capped too.
    """
    if inputs.autoscaled_replicas is not None:
        return inputs.autoscaled_replicas
    wanted = inputs.spec.controller.replicas
    nodes = inputs.ready_edge_nodes
    return nodes if wanted is None else min(wanted, nodes)


def render(inputs: Inputs) -> Rendered:
    name = names.workload_name(inputs.owner.name)
    spec = inputs.spec
    return PROVIDERS[spec.controller.provider].render(
        Context(
            gateway=inputs.owner.name,
            namespace=spec.controller.namespace,
            ingress_class=ingressclass.name(inputs.owner, spec),
            service=name,
            config_map=name,
            spec=spec,
            gateway_class=gatewayclass.name(inputs.owner, spec)
            if serves_gateway_api(inputs)
            else "",
        )
    )


def provisioned(inputs: Inputs) -> list[dict[str, Any]]:
    """controller.provider envoy-gateway: what Envoy Gateway makes the Envoy fleet from,
    the EnvoyProxy and the GatewayClass naming it (both once its CRDs and Gateway API's
    are there), and the client-address rules of the class's Gateways."""
    if not (inputs.envoy_gateway_installed and serves_gateway_api(inputs)):
        return []
    owner, spec = inputs.owner, inputs.spec
    return [
        envoyproxy.envoy_proxy(owner, spec, replicas(inputs)),
        gatewayclass.gateway_class(
            owner,
            spec,
            envoy_gateway.GATEWAY_CONTROLLER,
            envoyproxy.parameters_ref(owner, spec),
        ),
        *clienttrafficpolicy.policies(owner, spec, inputs.gateways),
    ]


def build(inputs: Inputs) -> list[dict[str, Any]]:
    """The owned objects, stamped with their applied hash, in apply order."""
    if inputs.spec.controller.provider == envoy_gateway.NAME:
        return [stamped(obj) for obj in provisioned(inputs)]
    owner, spec = inputs.owner, inputs.spec
    provider = spec.controller.provider
    ns = spec.controller.namespace
    rendered = render(inputs)
    objects: list[dict[str, Any]] = [
        rbac.service_account(owner, provider, ns),
        rbac.cluster_role_binding(owner, provider, ns, rendered.cluster_role),
    ]
    if rendered.gateway_cluster_role:
        role = rendered.gateway_cluster_role
        objects.append(rbac.feature_binding(owner, provider, ns, role, "gateway-api"))
    if rendered.ingress_nginx_cluster_role:
        role = rendered.ingress_nginx_cluster_role
        objects.append(rbac.feature_binding(owner, provider, ns, role, "ingress-nginx"))
    if rendered.namespace_role:
        objects.append(rbac.role_binding(owner, provider, ns, rendered.namespace_role))
    if rendered.config is not None:
        objects.append(configmap.config_map(owner, provider, ns, rendered.config))
    objects.append(deployment_rules.deployment(owner, spec, rendered, ns, replicas(inputs)))
    objects.append(pdb.pod_disruption_budget(owner, provider, ns))
    objects.append(ingressclass.ingress_class(owner, spec, rendered.controller))
    if spec.ingress_nginx.enabled and rendered.ingress_nginx_controller:
        objects.append(
            ingressclass.ingress_nginx_class(owner, spec, rendered.ingress_nginx_controller)
        )
    objects.append(service_rules.service(owner, spec, ns, rendered.listener_ports))
    if rendered.readiness_route:
        # The route's backend is where the controller answers its readiness probe.
        objects.append(readiness_rules.service(owner, spec, rendered.readiness.port))
        objects.append(readiness_rules.ingress(owner, spec, ingressclass.name(owner, spec)))
    if serves_gateway_api(inputs) and rendered.gateway_controller:
        objects.append(gatewayclass.gateway_class(owner, spec, rendered.gateway_controller))
    return [stamped(obj) for obj in objects]
