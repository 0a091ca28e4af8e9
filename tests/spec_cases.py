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
    #: the field the API server's message names (invalid cases)
    field: str = ""


def invalid(
    id_: str,
    patch: dict[str, Any],
    both: str | None = None,
    *,
    model: str | None = None,
    server: str | None = None,
    name: str = "case",
    field: str = "",
) -> Case:
    return Case(id_, merged(patch), model or both, server or both, name, field)


VALID: list[Case] = [
    Case("selector", merged({})),
    Case("names", merged({"nodes": {"selector": None, "names": ["a", "b"]}})),
    Case(
        "names-with-count", merged({"nodes": {"selector": None, "names": ["a", "b"], "count": 2}})
    ),
    Case("selector-with-count", merged({"nodes": {"count": 1}})),
    Case("ingress-nginx", merged({"ingressNGINX": {"enabled": True}})),
    Case(
        "envoy-gateway",
        merged(
            {
                "controller": {
                    "provider": "envoy-gateway",
                    "image": "registry.example/envoy:v1.39.3",
                    "extraArgs": ["--concurrency", "2"],
                },
                "gatewayAPI": {"enabled": True, "gatewayClassName": "public"},
                "clientIP": {"removeHeaders": ["X-Client-IP"]},
            }
        ),
    ),
    Case(
        "ingress-nginx-named-class",
        merged({"ingressNGINX": {"enabled": True, "ingressClassName": "nginx-public"}}),
        name="nginx",
    ),
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
        "listener-ports",
        merged({"gatewayAPI": {"enabled": True, "listenerPorts": [8080, 8090, 8443]}}),
    ),
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
    Case("remove-headers-none", merged({"clientIP": {"removeHeaders": []}})),
    Case("remove-headers", merged({"clientIP": {"removeHeaders": ["CF-Connecting-IP"]}})),
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
    invalid(
        "selector-and-names",
        {"nodes": {"names": ["a"]}},
        api.NODES_ONE_OF.message,
        field="spec.nodes",
    ),
    invalid(
        "neither-selector-nor-names",
        {"nodes": {"selector": None}},
        api.NODES_ONE_OF.message,
        field="spec.nodes",
    ),
    invalid(
        "count-zero",
        {"nodes": {"count": 0}},
        "greater than or equal to 1",
        field="spec.nodes.count",
    ),
    invalid(
        "count-above-names",
        {"nodes": {"selector": None, "names": ["a"], "count": 2}},
        api.NODES_COUNT_FITS_NAMES.message,
        field="spec.nodes",
    ),
    invalid(
        "empty-names",
        {"nodes": {"selector": None, "names": []}},
        model="at least 1 item",
        server="should have at least 1 items",
        field="spec.nodes.names",
    ),
    invalid(
        "in-without-values",
        {"nodes": {"selector": {"matchExpressions": [{"key": "nodepool", "operator": "In"}]}}},
        api.SELECTOR_VALUES.message,
        field="spec.nodes.selector.matchExpressions[0]",
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
        field="spec.nodes.selector.matchExpressions[0]",
    ),
    invalid(
        "min-workers-negative",
        {"nodes": {"minWorkerNodes": -1}},
        "greater than or equal to 0",
        field="spec.nodes.minWorkerNodes",
    ),
    invalid(
        "bad-role-label",
        {"nodes": {"roleLabel": "not a label"}},
        model="should match pattern",
        server="should match",
        field="spec.nodes.roleLabel",
    ),
    invalid(
        "bad-taint-effect",
        {"nodes": {"taint": {"effect": "Evict"}}},
        model="'NoSchedule', 'PreferNoSchedule', 'NoExecute' or 'None'",
        server='Unsupported value: "Evict"',
        field="spec.nodes.taint.effect",
    ),
    invalid(
        "replicas-zero",
        {"controller": {"replicas": 0}},
        "greater than or equal to 1",
        field="spec.controller.replicas",
    ),
    invalid(
        "bad-provider",
        {"controller": {"provider": "haproxy"}},
        model="'traefik', 'envoy-gateway' or 'ingress-nginx'",
        server='Unsupported value: "haproxy"',
        field="spec.controller.provider",
    ),
    invalid(
        "bad-namespace",
        {"controller": {"namespace": "Edge_System"}},
        model="should match pattern",
        server="should match",
        field="spec.controller.namespace",
    ),
    invalid(
        "xff-without-cidrs",
        {"clientIP": {"mode": "XForwardedFor"}},
        api.TRUSTED_CIDRS_REQUIRED.message,
        field="spec.clientIP",
    ),
    invalid(
        "proxy-protocol-empty-cidrs",
        {"clientIP": {"mode": "ProxyProtocol", "trustedCIDRs": []}},
        api.TRUSTED_CIDRS_REQUIRED.message,
        field="spec.clientIP",
    ),
    invalid(
        "trusted-cidr-not-cidr",
        {"clientIP": {"mode": "XForwardedFor", "trustedCIDRs": ["cdn.example.com"]}},
        api.IS_CIDR.message,
        field="spec.clientIP.trustedCIDRs[0]",
    ),
    invalid(
        "trusted-cidr-bare-address",
        {"clientIP": {"mode": "XForwardedFor", "trustedCIDRs": ["203.0.113.7"]}},
        api.IS_CIDR.message,
        field="spec.clientIP.trustedCIDRs[0]",
    ),
    invalid(
        "match-label-key-with-spaces",
        {"nodes": {"selector": {"matchLabels": {"bad key with spaces": "edge"}}}},
        api.MATCH_LABEL_KEYS.message,
        field="spec.nodes.selector.matchLabels",
    ),
    invalid(
        "match-label-key-bad-prefix",
        {"nodes": {"selector": {"matchLabels": {"Example.com/pool": "edge"}}}},
        api.MATCH_LABEL_KEYS.message,
        field="spec.nodes.selector.matchLabels",
    ),
    invalid(
        "match-expression-key-with-spaces",
        {
            "nodes": {
                "selector": {
                    "matchLabels": None,
                    "matchExpressions": [{"key": "bad key", "operator": "Exists"}],
                }
            }
        },
        model="should match pattern",
        server="should match",
        field="spec.nodes.selector.matchExpressions[0].key",
    ),
    invalid(
        "remove-header-managed",
        {"clientIP": {"removeHeaders": ["True-Client-IP", "x-real-ip"]}},
        api.NOT_A_MANAGED_HEADER.message,
        field="spec.clientIP.removeHeaders[1]",
    ),
    invalid(
        "remove-header-not-a-name",
        {"clientIP": {"removeHeaders": ["X_Client_IP"]}},
        model="should match pattern",
        server="should match",
        field="spec.clientIP.removeHeaders[0]",
    ),
    invalid(
        "source-range-not-cidr",
        {"service": {"loadBalancerSourceRanges": ["10.0.0.0/33"]}},
        api.IS_CIDR.message,
        field="spec.service.loadBalancerSourceRanges[0]",
    ),
    invalid(
        "same-ports",
        {"service": {"ports": {"http": 443, "https": 443}}},
        api.PORTS_DIFFER.message,
        field="spec.service.ports",
    ),
    invalid(
        "listener-port-is-a-service-port",
        {"gatewayAPI": {"enabled": True, "listenerPorts": [8080, 80]}},
        api.LISTENER_PORTS_FREE.message,
        field="spec",
    ),
    invalid(
        "envoy-gateway-serves-gateway-api-only",
        {"controller": {"provider": "envoy-gateway"}},
        api.ENVOY_GATEWAY_SERVES_GATEWAY_API.message,
        field="spec",
    ),
    invalid(
        "envoy-gateway-serves-no-ingress-class",
        {
            "controller": {"provider": "envoy-gateway", "ingressClass": {"default": True}},
            "gatewayAPI": {"enabled": True},
        },
        api.ENVOY_GATEWAY_NO_INGRESS_CLASS.message,
        field="spec",
    ),
    invalid(
        "envoy-gateway-has-no-listener-ports",
        {
            "controller": {"provider": "envoy-gateway"},
            "gatewayAPI": {"enabled": True, "listenerPorts": [8080]},
        },
        api.ENVOY_GATEWAY_NO_LISTENER_PORTS.message,
        field="spec",
    ),
    invalid(
        "envoy-gateway-direct-only",
        {
            "controller": {"provider": "envoy-gateway"},
            "gatewayAPI": {"enabled": True},
            "clientIP": {"mode": "XForwardedFor", "trustedCIDRs": ["192.0.2.0/24"]},
        },
        api.ENVOY_GATEWAY_DIRECT.message,
        field="spec",
    ),
    invalid(
        "envoy-gateway-without-mesh",
        {
            "controller": {"provider": "envoy-gateway"},
            "gatewayAPI": {"enabled": True},
            "mesh": {"provider": "Istio"},
        },
        api.ENVOY_GATEWAY_NO_MESH.message,
        field="spec",
    ),
    invalid(
        "ingress-nginx-needs-traefik",
        {"controller": {"provider": "ingress-nginx"}, "ingressNGINX": {"enabled": True}},
        api.INGRESS_NGINX_PROVIDER.message,
        field="spec",
    ),
    Case(
        "ingress-nginx-class-is-the-default-own-class",
        merged({"ingressNGINX": {"enabled": True}}),
        api.INGRESS_NGINX_CLASS_DIFFERS.message,
        api.INGRESS_NGINX_CLASS_DIFFERS.message,
        name="nginx",
        field="spec.ingressNGINX.ingressClassName",
    ),
    invalid(
        "ingress-nginx-class-is-the-own-class",
        {
            "controller": {"ingressClass": {"name": "legacy"}},
            "ingressNGINX": {"enabled": True, "ingressClassName": "legacy"},
        },
        api.INGRESS_NGINX_CLASS_DIFFERS.message,
        field="spec.ingressNGINX.ingressClassName",
    ),
    invalid(
        "ingress-nginx-class-not-a-name",
        {"ingressNGINX": {"enabled": True, "ingressClassName": "Nginx"}},
        model="should match pattern",
        server="should match",
        field="spec.ingressNGINX.ingressClassName",
    ),
    invalid(
        "listener-port-twice",
        {"gatewayAPI": {"enabled": True, "listenerPorts": [8080, 8080]}},
        model="must not repeat a port",
        server="Duplicate value: 8080",
        field="spec.gatewayAPI.listenerPorts[1]",
    ),
    invalid(
        "port-out-of-range",
        {"service": {"ports": {"http": 70000}}},
        model="less than or equal to 65535",
        server="less than or equal to 65535",
        field="spec.service.ports.http",
    ),
    invalid(
        "bad-traffic-policy",
        {"service": {"externalTrafficPolicy": "Nearest"}},
        model="'Local' or 'Cluster'",
        server='Unsupported value: "Nearest"',
        field="spec.service.externalTrafficPolicy",
    ),
    invalid(
        "bad-quantity",
        {"controller": {"resources": {"limits": {"cpu": "two"}}}},
        model="not a Kubernetes quantity",
        server="should match",
        field="spec.controller.resources.limits.cpu",
    ),
    invalid(
        "health-interval-zero",
        {"rollout": {"loadBalancerHealthCheck": {"intervalSeconds": 0}}},
        "greater than or equal to 1",
        field="spec.rollout.loadBalancerHealthCheck.intervalSeconds",
    ),
    invalid(
        "shutdown-grace-too-short",
        {"rollout": {"shutdownGraceSeconds": 9}},
        model="greater than or equal to 10",
        server="spec.rollout.shutdownGraceSeconds in body should be greater than or equal to 10",
        field="spec.rollout.shutdownGraceSeconds",
    ),
    invalid(
        "shutdown-grace-too-long",
        {"rollout": {"shutdownGraceSeconds": 3601}},
        model="less than or equal to 3600",
        server="spec.rollout.shutdownGraceSeconds in body should be less than or equal to 3600",
        field="spec.rollout.shutdownGraceSeconds",
    ),
    invalid(
        "unknown-field",
        {"nodes": {"selectr": {}}},
        model="Extra inputs are not permitted",
        server='unknown field "spec.nodes.selectr"',
        field="spec.nodes.selectr",
    ),
    Case(
        "name-not-dns-label",
        merged({}),
        model_error="should match pattern",
        server_error=api.NAME_IS_DNS_LABEL.message,
        name="public.gateway",
        field="metadata.name",
    ),
    # --- oversized lists and maps (schema maxItems / maxLength / maxProperties) ---------
    invalid(
        "names-too-many",
        {"nodes": {"selector": None, "names": [f"node-{i}" for i in range(1001)]}},
        model="at most 1000 items",
        server="must have at most 1000 items",
        field="spec.nodes.names",
    ),
    invalid(
        "match-expressions-too-many",
        {
            "nodes": {
                "selector": {
                    "matchExpressions": [{"key": f"k{i}", "operator": "Exists"} for i in range(65)]
                }
            }
        },
        model="at most 64 items",
        server="must have at most 64 items",
        field="spec.nodes.selector.matchExpressions",
    ),
    invalid(
        "expression-values-too-many",
        {
            "nodes": {
                "selector": {
                    "matchExpressions": [
                        {"key": "k", "operator": "In", "values": [str(i) for i in range(257)]}
                    ]
                }
            }
        },
        model="at most 256 items",
        server="must have at most 256 items",
        field="spec.nodes.selector.matchExpressions[0].values",
    ),
    invalid(
        "extra-args-too-many",
        {"controller": {"extraArgs": [f"--flag-{i}" for i in range(65)]}},
        model="at most 64 items",
        server="must have at most 64 items",
        field="spec.controller.extraArgs",
    ),
    invalid(
        "extra-arg-too-long",
        {"controller": {"extraArgs": ["--x=" + "a" * 1021]}},
        model="at most 1024 characters",
        server="may not be more than 1024 bytes",
        field="spec.controller.extraArgs[0]",
    ),
    invalid(
        "pod-annotations-too-many",
        {"controller": {"podAnnotations": {f"example.com/a{i}": "v" for i in range(65)}}},
        model="at most 64 items",
        server="must have at most 64 items",
        field="spec.controller.podAnnotations",
    ),
    invalid(
        "service-annotations-too-many",
        {"service": {"annotations": {f"example.com/a{i}": "v" for i in range(65)}}},
        model="at most 64 items",
        server="must have at most 64 items",
        field="spec.service.annotations",
    ),
    invalid(
        "trusted-cidrs-too-many",
        {
            "clientIP": {
                "mode": "XForwardedFor",
                "trustedCIDRs": [f"10.0.{i}.0/24" for i in range(65)],
            }
        },
        model="at most 64 items",
        server="must have at most 64 items",
        field="spec.clientIP.trustedCIDRs",
    ),
    invalid(
        "source-ranges-too-many",
        {
            "service": {
                "loadBalancerSourceRanges": [f"10.{i // 256}.{i % 256}.0/24" for i in range(257)]
            }
        },
        model="at most 256 items",
        server="must have at most 256 items",
        field="spec.service.loadBalancerSourceRanges",
    ),
    invalid(
        "image-too-long",
        {"controller": {"image": "registry.example.com/" + "a" * 500}},
        model="at most 512 characters",
        server="may not be more than 512 bytes",
        field="spec.controller.image",
    ),
    # --- wrong types -----------------------------------------------------------------------
    invalid(
        "count-not-integer",
        {"nodes": {"count": "three"}},
        model="valid integer",
        server="must be of type integer",
        field="spec.nodes.count",
    ),
    invalid(
        "names-not-list",
        {"nodes": {"selector": None, "names": "edge-1"}},
        model="valid list",
        server="must be of type array",
        field="spec.nodes.names",
    ),
    invalid(
        "paused-not-boolean",
        {"paused": "yes please"},
        model="valid boolean",
        server="must be of type boolean",
        field="spec.paused",
    ),
    invalid(
        "match-labels-not-map",
        {"nodes": {"selector": {"matchLabels": ["nodepool=edge"]}}},
        model="valid dictionary",
        server="must be of type object",
        field="spec.nodes.selector.matchLabels",
    ),
    # --- unknown enum values -----------------------------------------------------------------
    invalid(
        "bad-expression-operator",
        {"nodes": {"selector": {"matchExpressions": [{"key": "k", "operator": "Contains"}]}}},
        model="'In', 'NotIn', 'Exists' or 'DoesNotExist'",
        server='Unsupported value: "Contains"',
        field="spec.nodes.selector.matchExpressions[0].operator",
    ),
    invalid(
        "bad-client-ip-mode",
        {"clientIP": {"mode": "Forwarded", "trustedCIDRs": ["10.0.0.0/8"]}},
        model="'Direct', 'XForwardedFor' or 'ProxyProtocol'",
        server='Unsupported value: "Forwarded"',
        field="spec.clientIP.mode",
    ),
    invalid(
        "bad-ip-family-policy",
        {"service": {"ipFamilyPolicy": "TripleStack"}},
        model="'SingleStack', 'PreferDualStack' or 'RequireDualStack'",
        server='Unsupported value: "TripleStack"',
        field="spec.service.ipFamilyPolicy",
    ),
    invalid(
        "bad-mesh-provider",
        {"mesh": {"provider": "Consul"}},
        model="'None', 'Istio' or 'Linkerd'",
        server='Unsupported value: "Consul"',
        field="spec.mesh.provider",
    ),
    # --- out of range ---------------------------------------------------------------------------
    invalid(
        "unhealthy-threshold-zero",
        {"rollout": {"loadBalancerHealthCheck": {"unhealthyThreshold": 0}}},
        "greater than or equal to 1",
        field="spec.rollout.loadBalancerHealthCheck.unhealthyThreshold",
    ),
    invalid(
        "health-interval-too-long",
        {"rollout": {"loadBalancerHealthCheck": {"intervalSeconds": 301}}},
        "less than or equal to 300",
        field="spec.rollout.loadBalancerHealthCheck.intervalSeconds",
    ),
    invalid(
        "port-zero",
        {"service": {"ports": {"https": 0}}},
        "greater than or equal to 1",
        field="spec.service.ports.https",
    ),
    # --- names and keys the operator cannot use ------------------------------------------------
    Case(
        "name-too-long-for-a-label-value",
        merged({}),
        model_error="at most 63 characters",
        server_error=api.NAME_IS_DNS_LABEL.message,
        name="g" * 64,
        field="metadata.name",
    ),
    invalid(
        "namespace-too-long",
        {"controller": {"namespace": "n" * 64}},
        model="at most 63 characters",
        server="may not be more than 63 bytes",
        field="spec.controller.namespace",
    ),
    invalid(
        "node-name-not-dns",
        {"nodes": {"selector": None, "names": ["Edge_Node_1"]}},
        model="should match pattern",
        server="should match",
        field="spec.nodes.names[0]",
    ),
    invalid(
        "expression-key-invalid",
        {"nodes": {"selector": {"matchExpressions": [{"key": "bad key!", "operator": "Exists"}]}}},
        model="should match pattern",
        server="should match",
        field="spec.nodes.selector.matchExpressions[0].key",
    ),
    invalid(
        "match-label-value-invalid",
        {"nodes": {"selector": {"matchLabels": {"nodepool": "edge pool!"}}}},
        model="should match pattern",
        server="should match",
        field="spec.nodes.selector.matchLabels.nodepool",
    ),
    invalid(
        "taint-key-invalid",
        {"nodes": {"taint": {"key": "example.com/bad key"}}},
        model="should match pattern",
        server="should match",
        field="spec.nodes.taint.key",
    ),
    invalid(
        "taint-value-invalid",
        {"nodes": {"taint": {"value": "two words"}}},
        model="should match pattern",
        server="should match",
        field="spec.nodes.taint.value",
    ),
    invalid(
        "ingress-class-name-invalid",
        {"controller": {"ingressClass": {"name": "Edge_Class"}}},
        model="should match pattern",
        server="should match",
        field="spec.controller.ingressClass.name",
    ),
    invalid(
        "load-balancer-class-invalid",
        {"service": {"loadBalancerClass": "not a class"}},
        model="should match pattern",
        server="should match",
        field="spec.service.loadBalancerClass",
    ),
    invalid(
        "trusted-cidr-ipv6-bad",
        {"clientIP": {"mode": "XForwardedFor", "trustedCIDRs": ["2001:db8::/129"]}},
        api.IS_CIDR.message,
        field="spec.clientIP.trustedCIDRs[0]",
    ),
]
