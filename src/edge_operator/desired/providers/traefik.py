"""Traefik v3, serving Ingresses through its kubernetesingress provider; with
gatewayAPI on, the Gateways of the gateway's GatewayClass through kubernetesGateway; with
ingressNGINX on, Ingresses written for ingress-nginx through kubernetesIngressNGINX.

Traefik is configured by command-line flags alone: it reads its static
configuration from exactly one source (file, flags or environment), so a
configuration file would silently disable every flag, controller.extraArgs
included (doc.traefik.io/traefik/getting-started/configuration-overview/).
"""

from __future__ import annotations

from typing import Any

import yaml

from edge_operator import api, names
from edge_operator.desired.providers import Context, Probe, Rendered, cluster_role

NAME = "traefik"
DEFAULT_IMAGE = "docker.io/traefik:v3.7.13"
CLUSTER_ROLE = f"{names.MANAGED_BY_VALUE}-{NAME}"
#: The IngressClass controller Traefik looks for; of those classes it serves only
#: the one named by --providers.kubernetesingress.ingressClass.
CONTROLLER = "traefik.io/ingress-controller"
#: Unprivileged container ports: Traefik reports X-Forwarded-Port from the Host
#: header or the scheme (80/443), never from the port it listens on.
HTTP_PORT = 8000
HTTPS_PORT = 8443
#: The "traefik" entry point, which serves only /ping here (no API, no dashboard), on
#: the first of these no Service port takes (Gateway API on): one is always free.
PING_PORTS = tuple(range(8080, 8080 + api.MAX_LISTENER_PORTS + 3))
#: The GatewayClass controllerName Traefik's kubernetesGateway provider serves
#: (pkg/provider/kubernetes/gateway/kubernetes.go, v3.7.13).
GATEWAY_CONTROLLER = "traefik.io/gateway-controller"
GATEWAY_CLUSTER_ROLE = f"{CLUSTER_ROLE}-gateway-api"
#: What the kubernetesIngressNGINX provider reads beyond the Ingress provider's rights.
INGRESS_NGINX_CLUSTER_ROLE = f"{CLUSTER_ROLE}-ingress-nginx"
#: The IngressClass controller ingress-nginx serves, given to a class the operator makes
#: for spec.ingressNGINX (so the class reads as the ingress-nginx class it replaces).
INGRESS_NGINX_CONTROLLER = "k8s.io/ingress-nginx"
#: A controllerClass no IngressClass has. The provider serves every class whose controller
#: is its controllerClass, and with ingressClassByName the class named ingressClass too
#: (pkg/provider/kubernetes/ingress-nginx/client.go, filterIngressClass, v3.7.13): with
#: this value it serves exactly the named class, not every k8s.io/ingress-nginx class.
INGRESS_NGINX_NO_CONTROLLER = "edgeoperator.dev/no-controller"
#: Lets the non-root controller bind the Service's ports below 1024 (a namespaced sysctl
#: in Pod Security's safe set, so allowed under "restricted").
UNPRIVILEGED_PORT_SYSCTL = "net.ipv4.ip_unprivileged_port_start"
#: How long a new pod may take to load its routes before it is restarted: a Kubernetes
#: provider that cannot sync would otherwise serve 404s for ever (traefik/traefik#13390).
STARTUP_SECONDS = 120
#: The non-root user of the upstream Helm chart; the image itself declares none.
RUN_AS_USER = 65532
ENTRY_POINTS = ("web", "websecure")
#: Where the gateway's ConfigMap is mounted: the file provider's dynamic configuration,
#: which holds the middleware every router of the two entry points runs first.
CONFIG_DIR = "/etc/traefik/edge-operator"
CONFIG_FILE = "dynamic.yaml"
#: The headers middleware that removes what the forwardedHeaders handler leaves.
CLIENT_HEADERS_MIDDLEWARE = "edge-client-headers"


def entry_points(ctx: Context) -> tuple[str, ...]:
    """The entry points clients reach through the Service: web, websecure and, with a
    GatewayClass served, one per gatewayAPI.listenerPorts entry."""
    return ENTRY_POINTS + tuple(_listener_entry_point(p) for p in listener_ports(ctx))


def _listener_entry_point(port: int) -> str:
    return f"listener{port}"


def listener_ports(ctx: Context) -> tuple[int, ...]:
    return tuple(ctx.spec.gateway_api.listener_ports) if ctx.gateway_class else ()


def removed_headers(client_ip: api.ClientIP) -> list[str]:
    """Request headers deleted before routing, on top of what forwardedHeaders deletes.

    Traefik's forwardedHeaders handler (pkg/middlewares/forwardedheaders, v3.7.13) deletes
    X-Forwarded-{For,Proto,Host,Port,Server,Uri,Method,Prefix,Tls-Client-Cert(-Info)} and
    X-Real-Ip (and their '_' spellings) from peers outside trustedIPs, then sets X-Real-Ip
    only when no peer sent one. It never touches RFC 7239 Forwarded, which the proxy
    copies to the backend (pkg/proxy/httputil/proxy.go, copyForwardedHeader), nor any
    other client-address header. So: Forwarded always, the gateway's removeHeaders, and
    under XForwardedFor X-Real-Ip too, since a trusted CDN passes on the one its client
    sent and Traefik cannot compute the client into it.
    """
    headers = ["Forwarded", *client_ip.remove_headers]
    if client_ip.mode == "XForwardedFor":
        headers.append("X-Real-Ip")
    return headers


def dynamic_config(client_ip: api.ClientIP) -> str:
    """The file provider's configuration: one headers middleware; a value of "" deletes
    every line of that header (pkg/middlewares/headers/header.go, Header.Del)."""
    middleware = {
        "headers": {"customRequestHeaders": dict.fromkeys(removed_headers(client_ip), "")}
    }
    config = {"http": {"middlewares": {CLIENT_HEADERS_MIDDLEWARE: middleware}}}
    return yaml.safe_dump(config, sort_keys=False)


def _client_ip_args(client_ip: api.ClientIP, eps: tuple[str, ...]) -> list[str]:
    cidrs = ",".join(client_ip.trusted_cidrs)
    if client_ip.mode == "XForwardedFor":
        return [f"--entryPoints.{ep}.forwardedHeaders.trustedIPs={cidrs}" for ep in eps]
    if client_ip.mode == "ProxyProtocol":
        return [f"--entryPoints.{ep}.proxyProtocol.trustedIPs={cidrs}" for ep in eps]
    # Direct needs no flag: unless forwardedHeaders.insecure is set, Traefik deletes
    # every X-Forwarded-* and X-Real-Ip header a peer outside forwardedHeaders.trustedIPs
    # (empty here) sends, then sets them from the connection itself
    # (pkg/middlewares/forwardedheaders/forwarded_header.go).
    return []


def _client_header_args(eps: tuple[str, ...]) -> list[str]:
    # aliasHeadersStrategy (v3.7.12+, pkg/server/server_entrypoint_tcp.go) deletes every
    # header whose name has a character other than a letter, digit or '-' before any
    # handler runs: X_Forwarded_For and X.Forwarded.For never reach forwardedHeaders or
    # a backend. Entry-point middlewares run before each router's own (pkg/server/
    # aggregator.go prepends them), for every Ingress of the class.
    return [
        arg
        for ep in eps
        for arg in (
            f"--entryPoints.{ep}.http.aliasHeadersStrategy=delete",
            f"--entryPoints.{ep}.http.middlewares={CLIENT_HEADERS_MIDDLEWARE}@file",
        )
    ] + [f"--providers.file.filename={CONFIG_DIR}/{CONFIG_FILE}", "--providers.file.watch=false"]


def _keep_alive_args(rollout: api.Rollout, eps: tuple[str, ...]) -> list[str]:
    # A leaving pod must close its keep-alive connections itself, with a response that
    # says so: on SIGTERM Go's http.Server.Shutdown closes idle connections at once, and
    # a request already on its way on one fails (EOF or reset). keepAliveMaxTime answers
    # "Connection: close" (HTTP/2: GOAWAY) to the first request on a connection older than
    # that (pkg/server/keep_alive_middleware.go); the preStop delay covers it
    # (deployment.pre_stop_seconds), so every busy connection is closed that way first.
    seconds = rollout.keep_alive_max_seconds
    return [f"--entryPoints.{ep}.transport.keepAliveMaxTime={seconds}s" for ep in eps]


def _shutdown_args(rollout: api.Rollout, eps: tuple[str, ...]) -> list[str]:
    # requestAcceptGraceTimeout (keep accepting after SIGTERM) stays 0: the preStop
    # delay has already drained the node. Entry points shut down concurrently
    # (pkg/server/server_entrypoint_tcp.go), so each gets the whole grace.
    grace = rollout.connection_grace_seconds
    return [
        f"--entryPoints.{ep}.transport.lifeCycle.graceTimeOut={grace}s" for ep in (*eps, "traefik")
    ]


def listen_ports(ctx: Context) -> tuple[int, int, int]:
    """The http, https and ping entry points' ports inside the pod.

    With a GatewayClass served, http and https are the Service's own ports: Traefik gives
    a Gateway listener the entry point whose address ends in the listener's port
    (pkg/provider/kubernetes/gateway/kubernetes.go, entryPointName), and listeners are
    written with the ports clients use (80, 443). Otherwise 8000 and 8443.
    """
    if not ctx.gateway_class:
        return HTTP_PORT, HTTPS_PORT, PING_PORTS[0]
    ports = ctx.spec.service.ports
    taken = {ports.http, ports.https, *listener_ports(ctx)}
    ping = next(p for p in PING_PORTS if p not in taken)
    return ports.http, ports.https, ping


def _gateway_args(ctx: Context) -> list[str]:
    # One Traefik serves the GatewayClasses its labelSelector matches and whose
    # controllerName is GATEWAY_CONTROLLER (pkg/provider/kubernetes/gateway/client.go),
    # and their Gateways in every namespace; each Gateway's status.addresses are the
    # LoadBalancer Service's.
    if not ctx.gateway_class:
        return []
    provider = "--providers.kubernetesGateway"
    return [
        f"{provider}=true",
        f"{provider}.labelSelector={names.SERVED_BY_LABEL}={ctx.gateway}",
        f"{provider}.statusAddress.service.name={ctx.service}",
        f"{provider}.statusAddress.service.namespace={ctx.namespace}",
    ]


def _ingress_nginx_args(ctx: Context) -> list[str]:
    # Ingresses written for ingress-nginx, routed on web and websecure only (so the
    # entry points' client-address handling applies to them), their status written from
    # the gateway's Service when publishStatus is on. whitelist-source-range judges the
    # connection's peer (RemoteAddrStrategy, the client under Direct and ProxyProtocol);
    # under XForwardedFor the address in X-Forwarded-For nearest the gateway that is
    # not a trusted peer (PoolStrategy with excludedIPs: pkg/config/dynamic/middlewares.go).
    nginx = ctx.spec.ingress_nginx
    if not nginx.enabled:
        return []
    provider = "--providers.kubernetesIngressNGINX"
    args = [
        f"{provider}=true",
        f"{provider}.ingressClass={nginx.ingress_class_name}",
        f"{provider}.ingressClassByName=true",
        f"{provider}.controllerClass={INGRESS_NGINX_NO_CONTROLLER}",
        f"{provider}.httpEntryPoint=web",
        f"{provider}.httpsEntryPoint=websecure",
    ]
    if nginx.publish_status:
        args.append(f"{provider}.publishService={ctx.namespace}/{ctx.service}")
    if ctx.spec.client_ip.mode == "XForwardedFor":
        cidrs = ",".join(ctx.spec.client_ip.trusted_cidrs)
        args.append(f"{provider}.ipAllowListStrategy.excludedIPs={cidrs}")
    return args


def _sysctls(ports: tuple[int, ...]) -> dict[str, str]:
    lowest = min(ports)
    return {UNPRIVILEGED_PORT_SYSCTL: str(lowest)} if lowest < 1024 else {}


def render(ctx: Context) -> Rendered:
    http, https, ping_port = listen_ports(ctx)
    extra = listener_ports(ctx)
    eps = entry_points(ctx)
    args = (
        f"--entryPoints.web.address=:{http}/tcp",
        f"--entryPoints.websecure.address=:{https}/tcp",
        # No tls flag: a Gateway listener brings its own (HTTPS, TLS) or none (HTTP).
        *(f"--entryPoints.{_listener_entry_point(p)}.address=:{p}/tcp" for p in extra),
        "--entryPoints.websecure.http.tls=true",
        f"--entryPoints.traefik.address=:{ping_port}/tcp",
        "--ping=true",
        "--ping.entryPoint=traefik",
        "--providers.kubernetesingress=true",
        f"--providers.kubernetesingress.ingressClass={ctx.ingress_class}",
        "--providers.kubernetesingress.ingressEndpoint.publishedService="
        f"{ctx.namespace}/{ctx.service}",
        # The operator pins the image; edge nodes need not call home to learn of releases.
        "--global.checkNewVersion=false",
        *_gateway_args(ctx),
        *_ingress_nginx_args(ctx),
        "--log.level=INFO",
        *_shutdown_args(ctx.spec.rollout, eps),
        *_keep_alive_args(ctx.spec.rollout, eps),
        # Traefik attaches a Gateway listener to any entry point on its port, the ping one
        # too (which the Service does not expose, but pods can reach): it gets the same
        # header removal, and trusts no forwarded header (forwardedHeaders unset).
        *_client_header_args((*eps, "traefik") if ctx.gateway_class else eps),
        *_client_ip_args(ctx.spec.client_ip, eps),
        *ctx.spec.controller.extra_args,
    )
    # /ping answers as soon as the entry point listens, before the Kubernetes provider
    # has loaded a single route (traefik/traefik#10151, #10458; v3.7 has no readiness
    # endpoint). The startup probe asks instead for the gateway's readiness route, an
    # Ingress of this class: the provider sends its first configuration only after its
    # informers have synced, built from every Ingress of the class at once
    # (pkg/provider/kubernetes/ingress), so the route is there only when all are.
    ping = Probe(path="/ping", port=ping_port)
    routes = Probe(path="/ping", port=http, host=names.readiness_host(ctx.gateway))
    return Rendered(
        image=ctx.spec.controller.image or DEFAULT_IMAGE,
        args=args,
        ports={
            "http": http,
            "https": https,
            **{names.listener_port_name(p): p for p in extra},
            "traefik": ping_port,
        },
        readiness=ping,
        liveness=ping,
        startup=routes,
        startup_seconds=STARTUP_SECONDS,
        readiness_route=True,
        config={CONFIG_FILE: dynamic_config(ctx.spec.client_ip)},
        config_mount=CONFIG_DIR,
        controller=CONTROLLER,
        run_as_user=RUN_AS_USER,
        read_only_root_filesystem=True,
        scratch={"/tmp": "tmp"},
        cluster_role=CLUSTER_ROLE,
        sysctls=_sysctls((http, https, *extra)),
        gateway_controller=GATEWAY_CONTROLLER,
        gateway_cluster_role=GATEWAY_CLUSTER_ROLE if ctx.gateway_class else "",
        ingress_nginx_cluster_role=(
            INGRESS_NGINX_CLUSTER_ROLE if ctx.spec.ingress_nginx.enabled else ""
        ),
        ingress_nginx_controller=INGRESS_NGINX_CONTROLLER,
        listener_ports=extra,
    )


def cluster_roles() -> list[dict[str, Any]]:
    """The Ingress provider's rights, as in the Traefik v3.1+ Helm chart.

    Without the chart's "extensions" API group: it has served no Ingress since
    Kubernetes 1.22, and Traefik v3 reads networking.k8s.io/v1 only. Nodes are
    read since v3.1 (NodePort load balancing), endpoints through EndpointSlices.
    """
    read = ["get", "list", "watch"]
    return [
        cluster_role(
            CLUSTER_ROLE,
            [
                {"apiGroups": [""], "resources": ["nodes", "secrets", "services"], "verbs": read},
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
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
            ],
        ),
        cluster_role(GATEWAY_CLUSTER_ROLE, gateway_rules()),
        # The kubernetesIngressNGINX provider also watches ConfigMaps in every namespace
        # (custom-headers annotations; pkg/provider/kubernetes/ingress-nginx/client.go).
        cluster_role(
            INGRESS_NGINX_CLUSTER_ROLE,
            [{"apiGroups": [""], "resources": ["configmaps"], "verbs": read}],
        ),
    ]


#: The Gateway API kinds Traefik's kubernetesGateway provider watches (standard channel;
#: TCPRoute only with experimentalChannel, which the operator leaves off), and those
#: whose status it writes (pkg/provider/kubernetes/gateway/client.go, v3.7.13).
GATEWAY_KINDS = (
    "backendtlspolicies", "gatewayclasses", "gateways", "grpcroutes", "httproutes",
    "referencegrants", "tlsroutes",
)  # fmt: skip
GATEWAY_STATUS_KINDS = (
    "backendtlspolicies", "gatewayclasses", "gateways", "grpcroutes", "httproutes", "tlsroutes",
)  # fmt: skip


def gateway_rules() -> list[dict[str, Any]]:
    """What the Gateway API provider reads on top of the Ingress provider's rights:
    namespaces (listeners' allowedRoutes selectors) and ConfigMaps (BackendTLSPolicy
    CA certificates), the Gateway API objects, and their status."""
    return [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": [names.GATEWAY_API_GROUP],
            "resources": list(GATEWAY_KINDS),
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [names.GATEWAY_API_GROUP],
            "resources": [f"{kind}/status" for kind in GATEWAY_STATUS_KINDS],
            "verbs": ["update"],
        },
    ]
