"""Valid and invalid EdgeGateway specs, one pair per validation rule.

The unit tier checks them against the pydantic models and the generated schema;
the e2e tier sends them to a real API server. Each invalid case names the message
fragment each side must report: CEL rules share one message; plain schema bounds
are worded differently by pydantic and by the API server.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from edge_operator import api

BASE_SPEC: dict[str, Any] = {"nodes": {"selector": {"matchLabels": {"nodepool": "edge"}}}}


def gateway(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "edgeoperator.dev/v1alpha1",
        "kind": "EdgeGateway",
        "metadata": {"name": name},
        "spec": spec,
    }


def merged(patch: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (default BASE_SPEC) with ``patch`` merged in; a None value deletes a key."""
    out = copy.deepcopy(BASE_SPEC if base is None else base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(value, out[key])
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    #: fragment of pydantic's error (None: valid)
    model_error: str | None = None
    #: fragment of the API server's error (None: valid)
    server_error: str | None = None
    name: str = "case"


def invalid(
    id_: str,
    patch: dict[str, Any],
    both: str | None = None,
    *,
    model: str | None = None,
    server: str | None = None,
    name: str = "case",
) -> Case:
    return Case(id_, merged(patch), model or both, server or both, name)


VALID: list[Case] = [
    Case("selector", merged({})),
    Case("names", merged({"nodes": {"selector": None, "names": ["a", "b"]}})),
    Case(
        "names-with-count", merged({"nodes": {"selector": None, "names": ["a", "b"], "count": 2}})
    ),
    Case("selector-with-count", merged({"nodes": {"count": 1}})),
    Case(
        "expression-exists",
        merged(
            {
                "nodes": {
                    "selector": {
                        "matchLabels": None,
                        "matchExpressions": [{"key": "nodepool", "operator": "Exists"}],
                    }
                }
            }
        ),
    ),
    Case(
        "expression-in",
        merged(
            {
                "nodes": {
                    "selector": {
                        "matchExpressions": [
                            {"key": "nodepool", "operator": "In", "values": ["edge"]}
                        ]
                    }
                }
            }
        ),
    ),
    Case("min-workers-zero", merged({"nodes": {"minWorkerNodes": 0}})),
    Case("no-taint", merged({"nodes": {"taint": {"effect": "None"}}})),
    Case(
        "custom-taint",
        merged(
            {
                "nodes": {
                    "roleLabel": "example.com/edge",
                    "taint": {
                        "key": "example.com/dedicated",
                        "value": "edge",
                        "effect": "NoExecute",
                    },
                }
            }
        ),
    ),
    Case("replicas-one", merged({"controller": {"replicas": 1}})),
    Case(
        "xff-with-cidrs",
        merged(
            {
                "clientIP": {
                    "mode": "XForwardedFor",
                    "trustedCIDRs": ["203.0.113.0/24", "2001:db8::/32"],
                }
            }
        ),
    ),
    Case(
        "proxy-protocol",
        merged({"clientIP": {"mode": "ProxyProtocol", "trustedCIDRs": ["10.0.0.0/8"]}}),
    ),
    Case("source-ranges", merged({"service": {"loadBalancerSourceRanges": ["0.0.0.0/0"]}})),
    Case("ports", merged({"service": {"ports": {"http": 8080, "https": 8443}}})),
    Case(
        "resources",
        merged(
            {
                "controller": {
                    "resources": {
                        "requests": {"cpu": "500m", "memory": "256Mi"},
                        "limits": {"cpu": 2},
                    }
                }
            }
        ),
    ),
    Case(
        "ingress-nginx",
        merged(
            {
                "controller": {
                    "provider": "ingress-nginx",
                    "ingressClass": {"name": "nginx-edge", "default": True},
                }
            }
        ),
    ),
    Case("cluster-policy", merged({"service": {"externalTrafficPolicy": "Cluster"}})),
    Case("mesh", merged({"mesh": {"provider": "Linkerd"}})),
    Case("shutdown-grace-bounds", merged({"rollout": {"shutdownGraceSeconds": 10}})),
    Case("shutdown-grace-hour", merged({"rollout": {"shutdownGraceSeconds": 3600}})),
]

INVALID: list[Case] = [
    invalid("selector-and-names", {"nodes": {"names": ["a"]}}, api.NODES_ONE_OF.message),
    invalid("neither-selector-nor-names", {"nodes": {"selector": None}}, api.NODES_ONE_OF.message),
    invalid("count-zero", {"nodes": {"count": 0}}, "greater than or equal to 1"),
    invalid(
        "count-above-names",
        {"nodes": {"selector": None, "names": ["a"], "count": 2}},
        api.NODES_COUNT_FITS_NAMES.message,
    ),
    invalid(
        "empty-names",
        {"nodes": {"selector": None, "names": []}},
        model="at least 1 item",
        server="should have at least 1 items",
    ),
    invalid(
        "in-without-values",
        {"nodes": {"selector": {"matchExpressions": [{"key": "nodepool", "operator": "In"}]}}},
        api.SELECTOR_VALUES.message,
    ),
    invalid(
        "exists-with-values",
        {
            "nodes": {
                "selector": {
                    "matchExpressions": [{"key": "nodepool", "operator": "Exists", "values": ["x"]}]
                }
            }
        },
        api.SELECTOR_VALUES.message,
    ),
    invalid(
        "min-workers-negative", {"nodes": {"minWorkerNodes": -1}}, "greater than or equal to 0"
    ),
    invalid(
        "bad-role-label",
        {"nodes": {"roleLabel": "not a label"}},
        model="should match pattern",
        server="should match",
    ),
    invalid(
        "bad-taint-effect",
        {"nodes": {"taint": {"effect": "Evict"}}},
        model="'NoSchedule', 'PreferNoSchedule', 'NoExecute' or 'None'",
        server='Unsupported value: "Evict"',
    ),
    invalid("replicas-zero", {"controller": {"replicas": 0}}, "greater than or equal to 1"),
    invalid(
        "bad-provider",
        {"controller": {"provider": "haproxy"}},
        model="'traefik' or 'ingress-nginx'",
        server='Unsupported value: "haproxy"',
    ),
    invalid(
        "bad-namespace",
        {"controller": {"namespace": "Edge_System"}},
        model="should match pattern",
        server="should match",
    ),
    invalid(
        "xff-without-cidrs",
        {"clientIP": {"mode": "XForwardedFor"}},
        api.TRUSTED_CIDRS_REQUIRED.message,
    ),
    invalid(
        "proxy-protocol-empty-cidrs",
        {"clientIP": {"mode": "ProxyProtocol", "trustedCIDRs": []}},
        api.TRUSTED_CIDRS_REQUIRED.message,
    ),
    invalid(
        "trusted-cidr-not-cidr",
        {"clientIP": {"mode": "XForwardedFor", "trustedCIDRs": ["cdn.example.com"]}},
        api.IS_CIDR.message,
    ),
    invalid(
        "trusted-cidr-bare-address",
        {"clientIP": {"mode": "XForwardedFor", "trustedCIDRs": ["203.0.113.7"]}},
        api.IS_CIDR.message,
    ),
    invalid(
        "source-range-not-cidr",
        {"service": {"loadBalancerSourceRanges": ["10.0.0.0/33"]}},
        api.IS_CIDR.message,
    ),
    invalid(
        "same-ports", {"service": {"ports": {"http": 443, "https": 443}}}, api.PORTS_DIFFER.message
    ),
    invalid(
        "port-out-of-range",
        {"service": {"ports": {"http": 70000}}},
        model="less than or equal to 65535",
        server="less than or equal to 65535",
    ),
    invalid(
        "bad-traffic-policy",
        {"service": {"externalTrafficPolicy": "Nearest"}},
        model="'Local' or 'Cluster'",
        server='Unsupported value: "Nearest"',
    ),
    invalid(
        "bad-quantity",
        {"controller": {"resources": {"limits": {"cpu": "two"}}}},
        model="not a Kubernetes quantity",
        server="should match",
    ),
    invalid(
        "health-interval-zero",
        {"rollout": {"loadBalancerHealthCheck": {"intervalSeconds": 0}}},
        "greater than or equal to 1",
    ),
    invalid(
        "shutdown-grace-too-short",
        {"rollout": {"shutdownGraceSeconds": 9}},
        model="greater than or equal to 10",
        server="spec.rollout.shutdownGraceSeconds in body should be greater than or equal to 10",
    ),
    invalid(
        "shutdown-grace-too-long",
        {"rollout": {"shutdownGraceSeconds": 3601}},
        model="less than or equal to 3600",
        server="spec.rollout.shutdownGraceSeconds in body should be less than or equal to 3600",
    ),
    invalid(
        "unknown-field",
        {"nodes": {"selectr": {}}},
        model="Extra inputs are not permitted",
        server='unknown field "spec.nodes.selectr"',
    ),
    Case(
        "name-not-dns-label",
        merged({}),
        model_error="should match pattern",
        server_error=api.NAME_IS_DNS_LABEL.message,
        name="public.gateway",
    ),
]
