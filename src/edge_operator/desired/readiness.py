"""The readiness route: a headless Service and an Ingress that prove routes are loaded.

A controller whose readiness endpoint answers before it has loaded its routes (Traefik's
/ping) would be sent traffic it answers with 404s. The gateway gets an Ingress of its
own class, for the host ``<gateway>.readiness.edgeoperator.invalid`` and the path
``/ping``, whose backend is the controller pods' ping port through a headless Service
that publishes not-ready pods (a pod that is starting must be reachable to become
ready). The pod's startup probe requests that route on the pod's own HTTP port: it
passes only once the pod has loaded the Ingresses of its class.

The host is under .invalid (RFC 2606), so it can never be a client's; anyone who sends
it anyway gets the controller's "OK" from /ping and nothing else.
"""

from __future__ import annotations

from typing import Any

from edge_operator import api, names
from edge_operator.desired import deployment as deployment_rules
from edge_operator.desired.objects import Owner, metadata

PORT_NAME = "ping"


def service(owner: Owner, spec: api.EdgeGatewaySpec, ping_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            owner,
            spec.controller.provider,
            names.readiness_name(owner.name),
            spec.controller.namespace,
        ),
        "spec": {
            "clusterIP": "None",
            # Not-ready pods too: a starting pod proves its routes through this backend.
            "publishNotReadyAddresses": True,
            "selector": deployment_rules.selector(owner),
            "ports": [
                {"name": PORT_NAME, "port": ping_port, "targetPort": ping_port, "protocol": "TCP"}
            ],
        },
    }


def ingress(owner: Owner, spec: api.EdgeGatewaySpec, ingress_class: str) -> dict[str, Any]:
    name = names.readiness_name(owner.name)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(owner, spec.controller.provider, name, spec.controller.namespace),
        "spec": {
            "ingressClassName": ingress_class,
            "rules": [
                {
                    "host": names.readiness_host(owner.name),
                    "http": {
                        "paths": [
                            {
                                "path": "/ping",
                                "pathType": "Exact",
                                "backend": {"service": {"name": name, "port": {"name": PORT_NAME}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
