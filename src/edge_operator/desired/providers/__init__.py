"""Ingress controller providers: what differs between Traefik and ingress-nginx.

A provider module renders, from the gateway's spec, everything provider-specific
in the workload: the image, the container arguments, the ports and probes, the
optional ConfigMap data, the IngressClass ``spec.controller`` value and the
client-IP policy. The workload builders (``desired/workload.py``) wrap that in
Kubernetes objects, so providers never build whole objects themselves, except
for the ClusterRoles installed with the operator (``cluster_roles``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_operator import api, names


@dataclass(frozen=True)
class Context:
    """What a provider needs to know about one gateway."""

    gateway: str
    namespace: str
    ingress_class: str  # the IngressClass name the controller serves
    service: str  # name of the LoadBalancer Service (for ingress status addresses)
    config_map: str  # name of the ConfigMap, when the provider uses one
    spec: api.EdgeGatewaySpec
    #: The GatewayClass whose Gateways the controller serves ("": none; gatewayAPI off or
    #: its CRDs not installed).
    gateway_class: str = ""


@dataclass(frozen=True)
class Probe:
    path: str
    port: int
    #: Host header of the request ("" : the pod's address, as kubelet sends by default).
    host: str = ""


@dataclass(frozen=True)
class Rendered:
    """The provider-specific parts of one gateway's workload."""

    image: str
    args: tuple[str, ...]
    #: Container port name -> number; must include "http" and "https", which the
    #: Service targets by name.
    ports: Mapping[str, int]
    readiness: Probe
    liveness: Probe
    #: ConfigMap data, or None when the provider is configured by arguments alone.
    config: Mapping[str, str] | None
    #: IngressClass spec.controller value.
    controller: str
    #: UID (and GID, unless run_as_group) the image runs as: never root.
    run_as_user: int
    read_only_root_filesystem: bool
    #: GID, when the image's group differs from its UID.
    run_as_group: int | None = None
    #: Writable emptyDir mounts the container needs: mount path -> volume name.
    scratch: Mapping[str, str] = field(default_factory=dict)
    #: Name of the ClusterRole bound cluster-wide (ClusterRoleBinding).
    cluster_role: str = ""
    #: Name of the ClusterRole bound in the gateway's namespace only (RoleBinding), if any.
    namespace_role: str | None = None
    #: Capabilities added after dropping ALL; "restricted" allows only NET_BIND_SERVICE.
    capabilities: tuple[str, ...] = ()
    #: Extra environment variables.
    env: tuple[Mapping[str, Any], ...] = ()
    #: Seconds the controller may take to pass its startup probe after it starts;
    #: 0: no startup probe, liveness applies from the start.
    startup_seconds: int = 0
    #: What the startup probe asks (default: the liveness probe). Liveness and readiness
    #: start only once it has passed, so the pod is Ready only after it.
    startup: Probe | None = None
    #: The startup probe asks for the gateway's readiness route (a headless Service and
    #: an Ingress of the gateway's class, desired/readiness.py): it passes only once the
    #: controller has loaded the Ingresses of its class.
    readiness_route: bool = False
    #: Namespaced sysctls of the pod (Pod Security's safe set only).
    sysctls: Mapping[str, str] = field(default_factory=dict)
    #: GatewayClass spec.controllerName ("": the provider serves no Gateway API).
    gateway_controller: str = ""
    #: ClusterRole with the controller's Gateway API rights, bound cluster-wide while it
    #: serves a GatewayClass ("": none).
    gateway_cluster_role: str = ""
    #: ClusterRole with the rights of the provider's ingress-nginx compatibility, bound
    #: cluster-wide while spec.ingressNGINX is on ("": none).
    ingress_nginx_cluster_role: str = ""
    #: IngressClass spec.controller of a class the operator makes for spec.ingressNGINX
    #: ("": the provider cannot serve Ingresses written for ingress-nginx).
    ingress_nginx_controller: str = ""
    #: gatewayAPI.listenerPorts the controller listens on (each also in ports, under
    #: names.listener_port_name): the Service exposes them beside http and https.
    listener_ports: tuple[int, ...] = ()
    #: Where the ConfigMap is mounted in the container ("": not mounted; the provider
    #: reads it from the API, as ingress-nginx does). Its content's hash is on the pod
    #: template, so a change rolls the pods out.
    config_mount: str = ""


class Provider(Protocol):
    NAME: str
    DEFAULT_IMAGE: str

    def render(self, ctx: Context) -> Rendered: ...

    def cluster_roles(self) -> list[dict[str, Any]]: ...


def cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A provider ClusterRole as the chart installs it (providers' ``cluster_roles``)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {
                names.MANAGED_BY_LABEL: names.MANAGED_BY_VALUE,
                names.PART_OF_LABEL: names.MANAGED_BY_VALUE,
            },
        },
        "rules": rules,
    }
