"""The LoadBalancer Service in front of the controller pods.

The operator never sets the fields the API server allocates (clusterIP,
nodePorts, healthCheckNodePort): server-side apply leaves fields it does not
send alone, so they keep their values across every reconcile.
"""

from __future__ import annotations

from typing import Any

from edge_operator import api, names
from edge_operator.desired.deployment import selector
from edge_operator.desired.objects import Owner, metadata


def service(
    owner: Owner,
    spec: api.EdgeGatewaySpec,
    namespace: str,
    listener_ports: tuple[int, ...] = (),
) -> dict[str, Any]:
    """The Service; listener_ports are the extra Gateway listener ports the controller
    listens on (Rendered.listener_ports), each targeting its named container port."""
    svc = spec.service
    extra = [
        {"name": n, "port": p, "targetPort": n, "protocol": "TCP"}
        for p in listener_ports
        for n in [names.listener_port_name(p)]
    ]
    body: dict[str, Any] = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": svc.external_traffic_policy,
        "selector": selector(owner),
        "ports": [
            {"name": "http", "port": svc.ports.http, "targetPort": "http", "protocol": "TCP"},
            {"name": "https", "port": svc.ports.https, "targetPort": "https", "protocol": "TCP"},
            *extra,
        ],
        "ipFamilyPolicy": svc.ip_family_policy,
    }
    if svc.load_balancer_class:
        body["loadBalancerClass"] = svc.load_balancer_class
    if svc.load_balancer_source_ranges:
        body["loadBalancerSourceRanges"] = list(svc.load_balancer_source_ranges)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            owner,
            spec.controller.provider,
            names.workload_name(owner.name),
            namespace,
            annotations=svc.annotations,
        ),
        "spec": body,
    }


def addresses(current: dict[str, Any] | None) -> list[dict[str, str]]:
    """status.addresses from the Service's load balancer status."""
    ingress = (((current or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress")
    out = []
    for entry in ingress or []:
        if entry.get("ip"):
            out.append({"type": "IPAddress", "value": entry["ip"]})
        if entry.get("hostname"):
            out.append({"type": "Hostname", "value": entry["hostname"]})
    return out
