"""The EnvoyProxy (controller.provider envoy-gateway): how Envoy Gateway provisions the
gateway's Envoy fleet, written by the operator in controller.namespace and named by its
GatewayClass's parametersRef.

- **Placement**: an Envoy DaemonSet on exactly the gateway's edge nodes (the same
  nodeSelector and tolerations as every provider's pods), so each edge node has one
  Envoy and the load balancer spreads evenly under ``externalTrafficPolicy: Local``.
  Its rolling update surges one new pod beside the old on each node
  (``maxSurge: 1, maxUnavailable: 0``): a node never goes without a ready Envoy, as the
  Traefik Deployment's recipe guarantees (desired/deployment.py). ``minReadySeconds``
  (set through the DaemonSet patch: EnvoyProxy has no field for it) gives the load
  balancer the time to see the new pod healthy before the old one leaves.
- **Service**: the LoadBalancer Service with the gateway's ``service`` settings; Envoy
  Gateway names and labels it, in its own namespace, with a port per listener port.
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

from typing import Any

from edge_operator import api, names
from edge_operator.desired.deployment import (
    drain_seconds,
    node_selector,
    pre_stop_seconds,
    tolerations,
)
from edge_operator.desired.objects import Owner, metadata
from edge_operator.desired.providers import envoy_gateway

KIND = "EnvoyProxy"
#: service.ipFamilyPolicy -> EnvoyProxy spec.ipFamily (SingleStack: upstream's default).
IP_FAMILY = {"PreferDualStack": "DualStack", "RequireDualStack": "DualStack"}


def name(owner: Owner) -> str:
    return names.workload_name(owner.name)


def _seconds(value: int) -> str:
    return f"{value}s"


def envoy_proxy(owner: Owner, spec: api.EdgeGatewaySpec) -> dict[str, Any]:
    controller = spec.controller
    pre_stop = pre_stop_seconds(spec.rollout)
    pod: dict[str, Any] = {
        "labels": {names.GATEWAY_LABEL: owner.name},
        "nodeSelector": node_selector(owner, spec),
        "tolerations": tolerations(spec),
    }
    if controller.pod_annotations:
        pod["annotations"] = dict(controller.pod_annotations)
    container: dict[str, Any] = {"image": controller.image or envoy_gateway.DEFAULT_IMAGE}
    if resources := controller.resources.model_dump(exclude_defaults=True):
        container["resources"] = resources
    svc = spec.service
    service: dict[str, Any] = {
        "name": names.workload_name(owner.name),
        "type": "LoadBalancer",
        "externalTrafficPolicy": svc.external_traffic_policy,
    }
    if svc.annotations:
        service["annotations"] = dict(svc.annotations)
    if svc.load_balancer_class:
        service["loadBalancerClass"] = svc.load_balancer_class
    if svc.load_balancer_source_ranges:
        service["loadBalancerSourceRanges"] = list(svc.load_balancer_source_ranges)
    body: dict[str, Any] = {
        "mergeGateways": True,
        "provider": {
            "type": "Kubernetes",
            "kubernetes": {
                "envoyDaemonSet": {
                    "pod": pod,
                    "container": container,
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                    },
                    "patch": {
                        "type": "StrategicMerge",
                        "value": {
                            "spec": {
                                "minReadySeconds": drain_seconds(
                                    spec.rollout.load_balancer_health_check
                                )
                            }
                        },
                    },
                },
                "envoyService": service,
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
