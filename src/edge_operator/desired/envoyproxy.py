"""The EnvoyProxy (controller.provider envoy-gateway): how Envoy Gateway provisions the
gateway's Envoy fleet, written by the operator in controller.namespace and named by its
GatewayClass's parametersRef.

- **Placement**: an Envoy Deployment on exactly the gateway's edge nodes (the same
  nodeSelector and tolerations as every provider's pods), one pod per edge node
  (``replicas`` as for every provider), so the load balancer spreads evenly under
  ``externalTrafficPolicy: Local``. The rollout recipe of the Traefik Deployment
  (desired/deployment.py) without knowing the pod template (Envoy Gateway writes it):
  required anti-affinity on the hostname among pods of the same ``pod-template-hash``
  and preferred affinity to pods of another, by ``matchLabelKeys`` /
  ``mismatchLabelKeys`` (on by default since Kubernetes 1.31); ``maxUnavailable: 0``,
  so a node never goes without a ready Envoy; ``minReadySeconds`` (through the
  Deployment patch: EnvoyProxy has no field for it) gives the load balancer the time to
  see a new pod healthy. A PodDisruptionBudget lets one edge node drain at a time.
- **Service**: the LoadBalancer Service with the gateway's ``service`` settings and a
  port per listener port of the class's Gateways. Envoy Gateway makes it and the
  Deployment in its own namespace, named as the gateway's objects are (``name``),
  labelled with the class (``OWNING_CLASS_LABEL``).
- **Drain** (upstream internal/cmd/envoy/shutdown_manager.go, run as the shutdown
  manager's preStop): Envoy keeps answering its readiness check, and so stays a serving
  endpoint, for ``healthCheckFailureDelay``; then it fails it and drains its listeners,
  and the pod may stop once ``minDrainDuration`` has passed and its connections are
  gone, or at ``drainTimeout``. The operator sets the delay and the minimum to the
  preStop delay every provider uses (the load balancer has stopped sending to the node,
  keep-alive connections are closed) and the timeout to that plus
  ``rollout.shutdownGraceSeconds``. Envoy Gateway makes terminationGracePeriodSeconds
  the timeout plus 300 s (proxy/resource_provider.go).
- **Merged Gateways**: one Envoy fleet serves every Gateway of the class, so every
  Gateway shares the edge nodes and the one load-balancer address.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge_operator import api, names
from edge_operator.desired import gatewayclass
from edge_operator.desired.deployment import (
    drain_seconds,
    node_selector,
    pre_stop_seconds,
    tolerations,
)
from edge_operator.desired.objects import Owner, metadata
from edge_operator.desired.providers import envoy_gateway
from edge_operator.facts import GatewayFacts

KIND = "EnvoyProxy"
#: service.ipFamilyPolicy -> EnvoyProxy spec.ipFamily (SingleStack: upstream's default).
IP_FAMILY = {"PreferDualStack": "DualStack", "RequireDualStack": "DualStack"}
#: The label the ReplicaSet controller puts on its pods (one value per revision).
POD_TEMPLATE_HASH = "pod-template-hash"


def name(owner: Owner) -> str:
    return names.workload_name(owner.name)


def _seconds(value: int) -> str:
    return f"{value}s"


def pod_selector(owner: Owner, spec: api.EdgeGatewaySpec) -> dict[str, str]:
    """The labels of the gateway's Envoy pods: Envoy Gateway's, naming the class. (The
    operator adds none: Envoy Gateway v1.9.1 copies pod labels into the map it renders
    its other objects' labels from, proxy/resource_provider.go getPodLabels.)"""
    return {envoy_gateway.OWNING_CLASS_LABEL: gatewayclass.name(owner, spec)}


def affinity(owner: Owner, spec: api.EdgeGatewaySpec) -> dict[str, Any]:
    """One pod of a revision per node; a new pod lands beside an old one, which the
    ReplicaSet controller then removes first (it deletes co-located pods first)."""
    mine = {"matchLabels": pod_selector(owner, spec)}
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": mine,
                    "matchLabelKeys": [POD_TEMPLATE_HASH],
                    "topologyKey": names.HOSTNAME_LABEL,
                }
            ]
        },
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": mine,
                        "mismatchLabelKeys": [POD_TEMPLATE_HASH],
                        "topologyKey": names.HOSTNAME_LABEL,
                    },
                }
            ]
        },
    }


def envoy_proxy(owner: Owner, spec: api.EdgeGatewaySpec, replicas: int) -> dict[str, Any]:
    controller = spec.controller
    pre_stop = pre_stop_seconds(spec.rollout)
    pod: dict[str, Any] = {
        "nodeSelector": node_selector(owner, spec),
        "tolerations": tolerations(spec),
        "affinity": affinity(owner, spec),
    }
    if controller.pod_annotations:
        pod["annotations"] = dict(controller.pod_annotations)
    container: dict[str, Any] = {"image": controller.image or envoy_gateway.DEFAULT_IMAGE}
    if resources := controller.resources.model_dump(exclude_defaults=True):
        container["resources"] = resources
    svc = spec.service
    service: dict[str, Any] = {
        "name": name(owner),
        "type": "LoadBalancer",
        "externalTrafficPolicy": svc.external_traffic_policy,
    }
    if svc.annotations:
        service["annotations"] = dict(svc.annotations)
    if svc.load_balancer_class:
        service["loadBalancerClass"] = svc.load_balancer_class
    if svc.load_balancer_source_ranges:
        service["loadBalancerSourceRanges"] = list(svc.load_balancer_source_ranges)
    drain = drain_seconds(spec.rollout.load_balancer_health_check)
    body: dict[str, Any] = {
        "mergeGateways": True,
        "provider": {
            "type": "Kubernetes",
            "kubernetes": {
                "envoyDeployment": {
                    "name": name(owner),
                    "replicas": replicas,
                    "pod": pod,
                    "container": container,
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
                    },
                    "patch": {
                        "type": "StrategicMerge",
                        "value": {"spec": {"minReadySeconds": drain}},
                    },
                },
                "envoyService": service,
                "envoyPDB": {"maxUnavailable": 1},
            },
        },
        "shutdown": {
            "healthCheckFailureDelay": _seconds(pre_stop),
            "minDrainDuration": _seconds(pre_stop),
            "drainTimeout": _seconds(pre_stop + spec.rollout.shutdown_grace_seconds),
        },
    }
    if family := IP_FAMILY.get(svc.ip_family_policy):
        body["ipFamily"] = family
    if controller.extra_args:
        body["extraArgs"] = list(controller.extra_args)
    return {
        "apiVersion": envoy_gateway.API_VERSION,
        "kind": KIND,
        "metadata": metadata(owner, envoy_gateway.NAME, name(owner), controller.namespace),
        "spec": body,
    }


def parameters_ref(owner: Owner, spec: api.EdgeGatewaySpec) -> dict[str, str]:
    """The GatewayClass's spec.parametersRef to the gateway's EnvoyProxy."""
    return {
        "group": envoy_gateway.GROUP,
        "kind": KIND,
        "name": name(owner),
        "namespace": spec.controller.namespace,
    }


def serving(gateways: Iterable[GatewayFacts], class_name: str | None = None) -> list[str]:
    """The envoy-gateway gateways (whose class is ``class_name``, when given): those Envoy
    Gateway's CRDs coming or going, or an object it made for that class (Deployment,
    Service, pod), concern."""
    return sorted(
        gw.name
        for gw in gateways
        if gw.spec is not None
        and gw.spec.controller.provider == envoy_gateway.NAME
        and (class_name is None or gatewayclass.name(Owner(gw.name, gw.uid), gw.spec) == class_name)
    )
