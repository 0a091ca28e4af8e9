"""ingress-nginx, for existing installations: upstream was retired in March 2026.

The image is its last release. Each gateway gets its own controller class
(edgeoperator.dev/<gateway>) and leader-election lease, so two gateways never
serve each other's IngressClasses or fight over Ingress status. The validating
admission webhook is not run (it would need a certificate, a Service and a
ValidatingWebhookConfiguration per gateway), so an Ingress whose annotations
break nginx.conf is accepted and holds back reloads until it is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_operator import api, names
from edge_operator.desired.providers import HTTP_PORT, HTTPS_PORT, Context, Probe, Rendered

NAME = "ingress-nginx"
DEFAULT_IMAGE = "registry.k8s.io/ingress-nginx/controller:v1.15.1"
CLUSTER_ROLE = f"{names.MANAGED_BY_VALUE}-{NAME}"
#: Bound by a RoleBinding in the gateway's namespace only.
NAMESPACE_ROLE = f"{CLUSTER_ROLE}-namespace"
#: /healthz and /metrics.
HEALTHZ_PORT = 10254
#: www-data in the image, which owns the directories nginx writes to.
RUN_AS_USER = 101
#: The image's www-data group (upstream's manifests run as 101:82).
RUN_AS_GROUP = 82
#: The controller reads its own Pod by these and will not start without them.
ENV: tuple[Mapping[str, Any], ...] = (
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
)


def controller_class(gateway: str) -> str:
    return f"{names.GROUP}/{gateway}"


def client_ip_config(client_ip: api.ClientIP) -> dict[str, str]:
    """ConfigMap keys for the client-IP policy (docs/user-guide/nginx-configuration/configmap.md).

    nginx.tmpl turns the realip module on when any of use-forwarded-headers,
    use-proxy-protocol and enable-real-ip is true, reading the address from the
    PROXY header or forwarded-for-header, believed only from proxy-real-ip-cidr.
    Without compute-full-forwarded-for, X-Forwarded-For to the backends is set to
    $remote_addr, so in Direct mode whatever the client sent is replaced (it still
    reaches them, as X-Original-Forwarded-For, which they must not trust).
    """
    cidrs = ",".join(client_ip.trusted_cidrs)
    if client_ip.mode == "XForwardedFor":
        # use-forwarded-headers also passes X-Forwarded-Proto/-Host/-Port through from
        # any peer, trusted or not (rootfs/etc/nginx/lua/lua_ingress.lua): only
        # service.loadBalancerSourceRanges can keep other peers out.
        return {
            "use-forwarded-headers": "true",
            "compute-full-forwarded-for": "true",
            "enable-real-ip": "true",
            "forwarded-for-header": "X-Forwarded-For",
            "proxy-real-ip-cidr": cidrs,
            "use-proxy-protocol": "false",
        }
    if client_ip.mode == "ProxyProtocol":
        # enable-real-ip states what use-proxy-protocol already does (real_ip_header
        # proxy_protocol); it changes nothing else here.
        return {
            "use-proxy-protocol": "true",
            "proxy-real-ip-cidr": cidrs,
            "use-forwarded-headers": "false",
            "compute-full-forwarded-for": "false",
            "enable-real-ip": "true",
        }
    return {
        "use-forwarded-headers": "false",
        "compute-full-forwarded-for": "false",
        "use-proxy-protocol": "false",
        "enable-real-ip": "false",
    }


def render(ctx: Context) -> Rendered:
    controller = controller_class(ctx.gateway)
    args = (
        "/nginx-ingress-controller",
        f"--publish-service={ctx.namespace}/{ctx.service}",
        f"--election-id={ctx.gateway}-leader",
        f"--controller-class={controller}",
        f"--ingress-class={ctx.ingress_class}",
        f"--configmap={ctx.namespace}/{ctx.config_map}",
        f"--http-port={HTTP_PORT}",
        f"--https-port={HTTPS_PORT}",
        f"--healthz-port={HEALTHZ_PORT}",
        "--watch-ingress-without-class=false",
        *ctx.spec.controller.extra_args,
    )
    healthz = Probe(path="/healthz", port=HEALTHZ_PORT)
    return Rendered(
        image=ctx.spec.controller.image or DEFAULT_IMAGE,
        args=args,
        ports={"http": HTTP_PORT, "https": HTTPS_PORT, "metrics": HEALTHZ_PORT},
        readiness=healthz,
        liveness=healthz,
        config=client_ip_config(ctx.spec.client_ip),
        controller=controller,
        run_as_user=RUN_AS_USER,
        # nginx writes its configuration and temporary files all over /etc/nginx and /tmp.
        read_only_root_filesystem=False,
        # The image's binaries carry cap_net_bind_service as a file capability; without
        # the capability in the bounding set they fail to exec, whatever the port.
        capabilities=("NET_BIND_SERVICE",),
        run_as_group=RUN_AS_GROUP,
        cluster_role=CLUSTER_ROLE,
        namespace_role=NAMESPACE_ROLE,
        env=ENV,
    )


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
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


def cluster_roles() -> list[dict[str, Any]]:
    """The controller's ClusterRole and namespace Role of deploy/static (v1.14), as ClusterRoles.

    The namespace role keeps only what the cluster-wide one lacks: get on the
    controller's own namespace, ConfigMap, Pod, Secrets and Endpoints, and its
    leader-election lease. The lease is not restricted by resourceNames as
    upstream's is: each gateway elects under its own id.
    """
    read = ["get", "list", "watch"]
    cluster = [
        {
            "apiGroups": [""],
            "resources": ["configmaps", "endpoints", "namespaces", "nodes", "pods", "secrets"],
            "verbs": ["list", "watch"],
        },
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["services"], "verbs": read},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["ingressclasses", "ingresses"],
            "verbs": read,
        },
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["ingresses/status"],
            "verbs": ["update"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    namespace = [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps", "endpoints", "pods", "secrets"],
            "verbs": ["get"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["create", "get", "update"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    return [_cluster_role(CLUSTER_ROLE, cluster), _cluster_role(NAMESPACE_ROLE, namespace)]
