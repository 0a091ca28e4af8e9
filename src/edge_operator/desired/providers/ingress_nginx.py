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
from edge_operator.desired.providers import Context, Probe, Rendered, cluster_role

NAME = "ingress-nginx"
DEFAULT_IMAGE = "registry.k8s.io/ingress-nginx/controller:v1.15.1"
CLUSTER_ROLE = f"{names.MANAGED_BY_VALUE}-{NAME}"
#: Bound by a RoleBinding in the gateway's namespace only.
NAMESPACE_ROLE = f"{CLUSTER_ROLE}-namespace"
#: Upstream's own ports. Backends get X-Forwarded-Port = the port nginx accepted the
#: connection on ($server_port in nginx.tmpl; lua_ingress.lua reports the https port
#: as 443), so on 8000 they would be told 8000 for plain HTTP. The image's binaries
#: may bind them: they carry cap_net_bind_service (see capabilities below).
HTTP_PORT = 80
HTTPS_PORT = 443
#: /healthz and /metrics.
HEALTHZ_PORT = 10254
#: /healthz fails until the first sync has configured nginx's backends
#: (internal/ingress/controller/checker.go), which takes a while in large clusters;
#: upstream's manifests allow 10 s + 5 x 10 s before liveness restarts the controller.
STARTUP_SECONDS = 60
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
    use-proxy-protocol and enable-real-ip is true: it then takes the client address
    from the PROXY header or from forwarded-for-header (the rightmost entry outside
    proxy-real-ip-cidr, real_ip_recursive), and only when the peer is in
    proxy-real-ip-cidr. Backends get that address as X-Real-IP and, while
    compute-full-forwarded-for is off, as X-Forwarded-For; with it on, nginx.tmpl
    sends the incoming X-Forwarded-For with the peer appended, whoever the peer is.
    What the client sent still reaches them as X-Original-Forwarded-For, which they
    must not trust.

    use-forwarded-headers stays off in every mode: it also makes lua_ingress.lua take
    X-Forwarded-Proto, -Host and -Port from any peer, trusted or not, and nothing in
    ingress-nginx limits those to proxy-real-ip-cidr. enable-real-ip turns realip on
    without it, so those three come from the connection instead.
    """
    untrusted = {"use-forwarded-headers": "false", "compute-full-forwarded-for": "false"}
    cidrs = ",".join(client_ip.trusted_cidrs)
    if client_ip.mode == "XForwardedFor":
        return {
            **untrusted,
            "enable-real-ip": "true",
            "forwarded-for-header": "X-Forwarded-For",
            "proxy-real-ip-cidr": cidrs,
            "use-proxy-protocol": "false",
        }
    if client_ip.mode == "ProxyProtocol":
        # enable-real-ip states what use-proxy-protocol already does (real_ip_header
        # proxy_protocol); it changes nothing else here.
        return {
            **untrusted,
            "use-proxy-protocol": "true",
            "enable-real-ip": "true",
            "proxy-real-ip-cidr": cidrs,
        }
    return {**untrusted, "use-proxy-protocol": "false", "enable-real-ip": "false"}


#: Request headers nginx reads nothing from here once realip has run (use-forwarded-
#: headers is off in every mode), but passes on: the client's own values.
FORWARDED_INPUT = (
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
)


def client_header_config(client_ip: api.ClientIP, rollout: api.Rollout) -> dict[str, str]:
    """ConfigMap keys that keep every other client-address header from the backends,
    and close keep-alive connections before a pod stops.

    nginx.tmpl sets X-Forwarded-For, X-Real-IP and the forwarded scheme/host/port itself,
    but passes every other request header on, Forwarded and the removeHeaders list
    included, and adds X-Original-Forwarded-For/-Host from the client's own
    X-Forwarded-For/-Host. The image has the headers-more module: more_clear_input_headers
    at http level (no location of nginx.tmpl sets input headers, so every location
    inherits it) deletes them from the request in the rewrite phase, after realip has
    computed the client (post-read phase), so X-Original-Forwarded-For/-Host come out
    empty and nginx sends neither. ignore-invalid-headers with underscores off (upstream's
    defaults, pinned) drop names with '_' or '.' before anything reads them.
    location-snippet is not rendered by nginx.tmpl at v1.15.1, hence http-snippet.
    keepalive_time (nginx >= 1.19.10) answers the first request on a connection older
    than that with "Connection: close", as Traefik's keepAliveMaxTime does.
    """
    cleared = " ".join(f'"{h}"' for h in (*FORWARDED_INPUT, *client_ip.remove_headers))
    return {
        "ignore-invalid-headers": "true",
        "enable-underscores-in-headers": "false",
        "http-snippet": (
            f"more_clear_input_headers {cleared};\n"
            f"keepalive_time {rollout.keep_alive_max_seconds}s;\n"
        ),
    }


def shutdown_config(rollout: api.Rollout) -> dict[str, str]:
    """ConfigMap keys for the shutdown budget.

    On SIGTERM the controller sends nginx a graceful quit; worker-shutdown-timeout
    (upstream default 240 s, beyond the pod's grace) is how long workers keep their
    open connections before closing them. Reloads use it too.
    """
    return {"worker-shutdown-timeout": f"{rollout.connection_grace_seconds}s"}


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
        # On its way out, a pod that sees no other pod of "its" deployment empties
        # status.loadBalancer of every Ingress of the class. It looks for them by all
        # its labels but upstream's hash labels (internal/ingress/status/status.go), so
        # our template-hash label makes the last pod of every revision look alone.
        "--update-status-on-shutdown=false",
        # Upstream sleeps 10 s after nginx has stopped, serving nothing
        # (kubernetes/ingress-nginx#8095); here that would come out of the shutdown grace.
        "--post-shutdown-grace-period=0",
        *ctx.spec.controller.extra_args,
    )
    healthz = Probe(path="/healthz", port=HEALTHZ_PORT)
    return Rendered(
        image=ctx.spec.controller.image or DEFAULT_IMAGE,
        args=args,
        ports={"http": HTTP_PORT, "https": HTTPS_PORT, "metrics": HEALTHZ_PORT},
        readiness=healthz,
        liveness=healthz,
        config={
            **client_ip_config(ctx.spec.client_ip),
            **client_header_config(ctx.spec.client_ip, ctx.spec.rollout),
            **shutdown_config(ctx.spec.rollout),
        },
        controller=controller,
        run_as_user=RUN_AS_USER,
        # nginx writes its configuration and temporary files all over /etc/nginx and /tmp.
        read_only_root_filesystem=False,
        # The image's binaries carry cap_net_bind_service as a file capability; without
        # the capability in the bounding set they fail to exec, whatever the port
        # (upstream's manifests run them on 80/443 with exactly this security context).
        capabilities=("NET_BIND_SERVICE",),
        run_as_group=RUN_AS_GROUP,
        cluster_role=CLUSTER_ROLE,
        namespace_role=NAMESPACE_ROLE,
        env=ENV,
        startup_seconds=STARTUP_SECONDS,
    )


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
    return [cluster_role(CLUSTER_ROLE, cluster), cluster_role(NAMESPACE_ROLE, namespace)]
