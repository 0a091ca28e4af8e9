"""Every object of a gateway's workload, in the order they are applied.

Namespace (created if missing, never deleted: other gateways and workloads may
share it), ServiceAccount, its bindings to the provider's ClusterRoles (installed
with the operator: the operator binds, it grants nothing itself), the provider's
ConfigMap, the Deployment, its PodDisruptionBudget, the IngressClass and the
LoadBalancer Service. All but the Namespace carry an ownerReference to the
EdgeGateway, so the garbage collector removes them with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_operator import api, names
from edge_operator.desired import deployment as deployment_rules
from edge_operator.desired import readiness as readiness_rules
from edge_operator.desired import service as service_rules
from edge_operator.desired.objects import Owner, metadata, stamped
from edge_operator.desired.providers import Context, Provider, Rendered, ingress_nginx, traefik
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
)


@dataclass(frozen=True)
class Inputs:
    owner: Owner
    spec: api.EdgeGatewaySpec
    #: Edge nodes that can run a controller pod (selected and Ready).
    ready_edge_nodes: int
    #: The Deployment's current replicas when a HorizontalPodAutoscaler targets it.
    autoscaled_replicas: int | None = None


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


def ingress_class_name(owner: Owner, spec: api.EdgeGatewaySpec) -> str:
    return spec.controller.ingress_class.name or owner.name


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
            ingress_class=ingress_class_name(inputs.owner, spec),
            service=name,
            config_map=name,
            spec=spec,
        )
    )


def namespace(name: str) -> dict[str, Any]:
    """The controller namespace, when it has to be created."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {names.MANAGED_BY_LABEL: names.MANAGED_BY_VALUE},
        },
    }


def build(inputs: Inputs) -> list[dict[str, Any]]:
    """The owned objects, stamped with their applied hash, in apply order."""
    owner, spec = inputs.owner, inputs.spec
    provider = spec.controller.provider
    ns = spec.controller.namespace
    name = names.workload_name(owner.name)
    rendered = render(inputs)
    account = {"kind": "ServiceAccount", "name": name, "namespace": ns}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(owner, provider, name, ns),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            # The provider is in the name: roleRef is immutable, so a new provider
            # gets a new binding and the old one is deleted.
            "metadata": metadata(
                owner, provider, f"{names.cluster_binding_name(owner.name)}-{provider}"
            ),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": rendered.cluster_role,
            },
            "subjects": [account],
        },
    ]
    if rendered.namespace_role:
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": metadata(owner, provider, f"{name}-{provider}", ns),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": rendered.namespace_role,
                },
                "subjects": [account],
            }
        )
    if rendered.config is not None:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(owner, provider, name, ns),
                "data": dict(rendered.config),
            }
        )
    objects.append(deployment_rules.deployment(owner, spec, rendered, ns, replicas(inputs)))
    objects.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata(owner, provider, name, ns),
            "spec": {
                # One edge node drained at a time; a pod that is not ready anyway
                # must not block the drain.
                "maxUnavailable": 1,
                "selector": {"matchLabels": deployment_rules.selector(owner)},
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }
    )
    default_class = spec.controller.ingress_class.default
    objects.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": metadata(
                owner,
                provider,
                ingress_class_name(owner, spec),
                annotations={names.DEFAULT_CLASS_ANNOTATION: "true"} if default_class else None,
            ),
            "spec": {"controller": rendered.controller},
        }
    )
    objects.append(service_rules.service(owner, spec, ns))
    if rendered.readiness_route:
        # The route's backend is where the controller answers its readiness probe.
        objects.append(readiness_rules.service(owner, spec, rendered.readiness.port))
        objects.append(readiness_rules.ingress(owner, spec, ingress_class_name(owner, spec)))
    return [stamped(obj) for obj in objects]
