"""The ingress controller providers: rendered arguments, ConfigMap data and RBAC."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from edge_operator import api
from edge_operator.desired.providers import Context, Probe, Provider, ingress_nginx, traefik

PROVIDERS: tuple[Provider, ...] = (traefik, ingress_nginx)
CIDRS = ["203.0.113.0/24", "2001:db8::/32"]
CLIENT_IP: dict[str, dict[str, Any]] = {
    "Direct": {"mode": "Direct"},
    "XForwardedFor": {"mode": "XForwardedFor", "trustedCIDRs": CIDRS},
    "ProxyProtocol": {"mode": "ProxyProtocol", "trustedCIDRs": CIDRS},
}


def context(
    client_ip: str = "Direct",
    provider: Provider = traefik,
    rollout: dict[str, Any] | None = None,
    **controller: Any,
) -> Context:
    spec = api.EdgeGatewaySpec.model_validate(
        {
            "nodes": {"selector": {"matchLabels": {"nodepool": "edge"}}},
            "controller": {"provider": provider.NAME, **controller},
            "clientIP": CLIENT_IP[client_ip],
            "rollout": rollout or {},
        }
    )
    return Context(
        gateway="public",
        namespace="edge-system",
        ingress_class="web",
        service="public-lb",
        config_map="public-config",
        spec=spec,
    )


TRAEFIK_ARGS = (
    "--entryPoints.web.address=:8000/tcp",
    "--entryPoints.websecure.address=:8443/tcp",
    "--entryPoints.websecure.http.tls=true",
    "--entryPoints.traefik.address=:8080/tcp",
    "--ping=true",
    "--ping.entryPoint=traefik",
    "--providers.kubernetesingress=true",
    "--providers.kubernetesingress.ingressClass=web",
    "--providers.kubernetesingress.ingressEndpoint.publishedService=edge-system/public-lb",
    "--global.checkNewVersion=false",
    "--log.level=INFO",
    # The default shutdownGraceSeconds (60) less the 5 s the controller keeps to exit.
    "--entryPoints.web.transport.lifeCycle.graceTimeOut=55s",
    "--entryPoints.websecure.transport.lifeCycle.graceTimeOut=55s",
    "--entryPoints.traefik.transport.lifeCycle.graceTimeOut=55s",
    # One health-check interval (10 s by default): see test_traefik_closes_keep_alive_...
    "--entryPoints.web.transport.keepAliveMaxTime=10s",
    "--entryPoints.websecure.transport.keepAliveMaxTime=10s",
    "--entryPoints.web.http.aliasHeadersStrategy=delete",
    "--entryPoints.web.http.middlewares=edge-client-headers@file",
    "--entryPoints.websecure.http.aliasHeadersStrategy=delete",
    "--entryPoints.websecure.http.middlewares=edge-client-headers@file",
    "--providers.file.filename=/etc/traefik/edge-operator/dynamic.yaml",
    "--providers.file.watch=false",
)


@pytest.mark.parametrize(
    ("client_ip", "client_ip_args"),
    [
        ("Direct", ()),
        (
            "XForwardedFor",
            (
                "--entryPoints.web.forwardedHeaders.trustedIPs=203.0.113.0/24,2001:db8::/32",
                "--entryPoints.websecure.forwardedHeaders.trustedIPs=203.0.113.0/24,2001:db8::/32",
            ),
        ),
        (
            "ProxyProtocol",
            (
                "--entryPoints.web.proxyProtocol.trustedIPs=203.0.113.0/24,2001:db8::/32",
                "--entryPoints.websecure.proxyProtocol.trustedIPs=203.0.113.0/24,2001:db8::/32",
            ),
        ),
    ],
)
def test_traefik_args(client_ip: str, client_ip_args: tuple[str, ...]) -> None:
    rendered = traefik.render(context(client_ip))

    assert rendered.args == TRAEFIK_ARGS + client_ip_args
    assert rendered.config_mount == "/etc/traefik/edge-operator"
    assert rendered.config is not None
    assert set(rendered.config) == {"dynamic.yaml"}


@pytest.mark.parametrize("client_ip", CLIENT_IP)
def test_traefik_removes_what_forwarded_headers_leaves(client_ip: str) -> None:
    """Upstream (v3.7.13): pkg/middlewares/forwardedheaders/forwarded_header.go deletes
    only X-Forwarded-* and X-Real-Ip (and '_' spellings) from untrusted peers and keeps a
    trusted peer's X-Real-Ip as sent; pkg/proxy/httputil/proxy.go copies Forwarded to the
    backend; pkg/middlewares/headers/header.go deletes a customRequestHeaders entry whose
    value is "" (Header.Del: every line, any case). The entry-point middleware runs
    before each router's own (pkg/server/aggregator.go)."""
    rendered = traefik.render(context(client_ip))
    assert rendered.config is not None
    config = yaml.safe_load(rendered.config["dynamic.yaml"])

    middleware = config["http"]["middlewares"]["edge-client-headers"]
    removed = middleware["headers"]["customRequestHeaders"]
    assert set(removed.values()) == {""}
    expected = {"Forwarded", *api.DEFAULT_REMOVE_HEADERS}
    # A trusted CDN passes on the X-Real-Ip its client sent, and Traefik keeps it.
    if client_ip == "XForwardedFor":
        expected.add("X-Real-Ip")
    assert set(removed) == expected


def test_traefik_remove_headers_is_the_gateways_list() -> None:
    spec = context().spec.model_copy(deep=True)
    spec.client_ip.remove_headers = ["CF-Connecting-IP"]
    ctx = replace(context(), spec=spec)
    rendered = traefik.render(ctx)
    assert rendered.config is not None
    config = yaml.safe_load(rendered.config["dynamic.yaml"])
    removed = config["http"]["middlewares"]["edge-client-headers"]["headers"]
    assert removed["customRequestHeaders"] == {"Forwarded": "", "CF-Connecting-IP": ""}


@pytest.mark.parametrize(("interval", "seconds"), [(1, "1s"), (10, "10s"), (300, "300s")])
def test_traefik_closes_keep_alive_connections_older_than_one_interval(
    interval: int, seconds: str
) -> None:
    """Upstream (pkg/server/keep_alive_middleware.go, v3.7.13): with keepAliveMaxTime
    set, a request on a connection older than that is answered with 'Connection: close'
    and the connection ends cleanly after the answer. On SIGTERM, http.Server.Shutdown
    closes idle connections at once instead, and a request on its way on one fails; the
    preStop delay adds this limit, so every busy connection is closed the clean way."""
    rollout = {"loadBalancerHealthCheck": {"intervalSeconds": interval}}
    args = traefik.render(context(rollout=rollout)).args
    assert [a for a in args if "keepAlive" in a] == [
        f"--entryPoints.web.transport.keepAliveMaxTime={seconds}",
        f"--entryPoints.websecure.transport.keepAliveMaxTime={seconds}",
    ]


def test_traefik_workload_parts() -> None:
    rendered = traefik.render(context())

    assert rendered.image == "docker.io/traefik:v3.7.13"
    assert dict(rendered.ports) == {"http": 8000, "https": 8443, "traefik": 8080}
    assert (rendered.readiness.path, rendered.readiness.port) == ("/ping", 8080)
    assert rendered.liveness == rendered.readiness
    assert rendered.controller == "traefik.io/ingress-controller"
    assert (rendered.run_as_user, rendered.read_only_root_filesystem) == (65532, True)
    assert dict(rendered.scratch) == {"/tmp": "tmp"}
    assert (rendered.cluster_role, rendered.namespace_role) == ("edge-operator-traefik", None)
    assert rendered.env == ()
    # Ready only once the Ingresses of its class are loaded (/ping answers before).
    assert rendered.startup == Probe("/ping", 8000, "public.readiness.edgeoperator.invalid")
    assert (rendered.startup_seconds, rendered.readiness_route) == (120, True)


@pytest.mark.parametrize(("grace", "timeout"), [(10, "5s"), (60, "55s"), (3600, "3595s")])
def test_traefik_gives_open_connections_the_shutdown_grace(grace: int, timeout: str) -> None:
    """Upstream (pkg/server/server_entrypoint_tcp.go, v3.7.13): on SIGTERM each entry
    point stops accepting, waits requestAcceptGraceTimeout (default 0, left so: the
    preStop delay has drained the node), then gives open connections, hijacked
    WebSockets included, transport.lifeCycle.graceTimeOut (default 10 s) before it
    closes them; the entry points shut down concurrently, then Traefik exits."""
    rendered = traefik.render(context(rollout={"shutdownGraceSeconds": grace}))

    lifecycle = [a for a in rendered.args if ".transport.lifeCycle." in a]
    assert lifecycle == [
        f"--entryPoints.{ep}.transport.lifeCycle.graceTimeOut={timeout}"
        for ep in ("web", "websecure", "traefik")
    ]


@pytest.mark.parametrize("client_ip", CLIENT_IP)
def test_ingress_nginx_args_do_not_depend_on_client_ip(client_ip: str) -> None:
    rendered = ingress_nginx.render(context(client_ip, ingress_nginx))

    assert rendered.args == (
        "/nginx-ingress-controller",
        "--publish-service=edge-system/public-lb",
        "--election-id=public-leader",
        "--controller-class=edgeoperator.dev/public",
        "--ingress-class=web",
        "--configmap=edge-system/public-config",
        "--http-port=80",
        "--https-port=443",
        "--healthz-port=10254",
        "--watch-ingress-without-class=false",
        "--update-status-on-shutdown=false",
        "--post-shutdown-grace-period=0",
    )


@pytest.mark.parametrize("client_ip", CLIENT_IP)
def test_ingress_nginx_leaves_ingress_status_alone_on_shutdown(client_ip: str) -> None:
    """Upstream (internal/ingress/status/status.go, controller-v1.15.1): with
    --update-status-on-shutdown (default true) a stopping controller that finds no
    other pod with all of its labels, upstream's pod-template-hash and revision
    labels excepted, empties status.loadBalancer of every Ingress it serves. Our
    template-hash label differs between revisions, so the last old pod of every
    rollout would do it; the flag must be false."""
    args = ingress_nginx.render(context(client_ip, ingress_nginx)).args

    assert [a for a in args if a.startswith("--update-status-on-shutdown")] == [
        "--update-status-on-shutdown=false"
    ]


@pytest.mark.parametrize(("grace", "timeout"), [(10, "5s"), (60, "55s"), (3600, "3595s")])
def test_ingress_nginx_shutdown_fits_the_grace(grace: int, timeout: str) -> None:
    """Upstream (cmd/nginx/main.go, pkg/util/process/sigterm.go,
    internal/ingress/controller/nginx.go, controller-v1.15.1): on SIGTERM the controller
    sleeps --shutdown-grace-period (default 0, left so: the preStop delay drains),
    runs `nginx -s quit`, whose workers keep open connections for
    worker-shutdown-timeout (default 240s, nginx.tmpl worker_shutdown_timeout), polls
    every second until nginx is gone, then sleeps --post-shutdown-grace-period
    (default 10) before it exits. So the grace holds worker-shutdown-timeout, a
    post-shutdown sleep of 0 and the 5 s kept to exit."""
    rendered = ingress_nginx.render(
        context(provider=ingress_nginx, rollout={"shutdownGraceSeconds": grace})
    )

    assert rendered.config is not None
    assert rendered.config["worker-shutdown-timeout"] == timeout
    assert "--post-shutdown-grace-period=0" in rendered.args
    assert not any(a.startswith("--shutdown-grace-period") for a in rendered.args)


def test_ingress_nginx_listens_on_the_service_default_ports() -> None:
    """Upstream (rootfs/etc/nginx/template/nginx.tmpl and lua_ingress.lua,
    controller-v1.15.1): X-Forwarded-Port is $server_port, the port nginx accepted the
    connection on, except that the --https-port is reported as 443 (and, with PROXY
    protocol, the header's destination port). On 8000 backends were told 8000 for
    plain HTTP; on 80 they are told what a client of the Service's default ports
    used. Ports below 1024 work because the image's binaries carry
    cap_net_bind_service, which the container keeps in its bounding set."""
    rendered = ingress_nginx.render(context(provider=ingress_nginx))

    assert (rendered.ports["http"], rendered.ports["https"]) == (80, 443)
    assert {"--http-port=80", "--https-port=443"} <= set(rendered.args)
    assert rendered.capabilities == ("NET_BIND_SERVICE",)


def test_ingress_nginx_gets_upstreams_startup_allowance() -> None:
    """Upstream (internal/ingress/controller/checker.go and
    deploy/static/provider/cloud/deploy.yaml, controller-v1.15.1): /healthz fails until
    the first sync has configured nginx's backends, and upstream's liveness probe
    allows 10 s + 5 x 10 s before it restarts the controller. Our liveness probe alone
    would restart it after 30 s, so a large cluster's first sync could restart-loop."""
    rendered = ingress_nginx.render(context(provider=ingress_nginx))

    assert rendered.startup_seconds == 60
    assert rendered.liveness.path == "/healthz"


@pytest.mark.parametrize(
    ("client_ip", "config"),
    [
        (
            "Direct",
            {
                "use-forwarded-headers": "false",
                "compute-full-forwarded-for": "false",
                "use-proxy-protocol": "false",
                "enable-real-ip": "false",
                "worker-shutdown-timeout": "55s",
            },
        ),
        (
            "XForwardedFor",
            {
                "use-forwarded-headers": "false",
                "compute-full-forwarded-for": "false",
                "enable-real-ip": "true",
                "forwarded-for-header": "X-Forwarded-For",
                "proxy-real-ip-cidr": "203.0.113.0/24,2001:db8::/32",
                "use-proxy-protocol": "false",
                "worker-shutdown-timeout": "55s",
            },
        ),
        (
            "ProxyProtocol",
            {
                "use-forwarded-headers": "false",
                "compute-full-forwarded-for": "false",
                "use-proxy-protocol": "true",
                "enable-real-ip": "true",
                "proxy-real-ip-cidr": "203.0.113.0/24,2001:db8::/32",
                "worker-shutdown-timeout": "55s",
            },
        ),
    ],
)
def test_ingress_nginx_config(client_ip: str, config: dict[str, str]) -> None:
    rendered = ingress_nginx.render(context(client_ip, ingress_nginx))
    assert rendered.config is not None

    headers = {"ignore-invalid-headers", "enable-underscores-in-headers", "http-snippet"}
    assert {k: v for k, v in rendered.config.items() if k not in headers} == config


@pytest.mark.parametrize("client_ip", CLIENT_IP)
def test_ingress_nginx_clears_every_client_address_header_it_passes_on(client_ip: str) -> None:
    """Upstream (rootfs/etc/nginx/template/nginx.tmpl, controller-v1.15.1): nginx sets
    X-Forwarded-For, X-Real-IP, X-Forwarded-Proto/-Host/-Port itself but passes any other
    request header on (Forwarded, True-Client-IP, ...) and adds X-Original-Forwarded-For
    and -Host from the client's own headers; location-snippet is not rendered, http-
    snippet is, at http level, and no location sets input headers, so headers-more's
    more_clear_input_headers there applies to every location (rewrite phase: after
    realip has read X-Forwarded-For). ignore_invalid_headers with underscores off drop
    aliased names (X_Forwarded_For, X.Forwarded.For)."""
    rendered = ingress_nginx.render(context(client_ip, ingress_nginx))
    assert rendered.config is not None

    assert rendered.config["ignore-invalid-headers"] == "true"
    assert rendered.config["enable-underscores-in-headers"] == "false"
    clear, keepalive = rendered.config["http-snippet"].splitlines()
    cleared = clear.removeprefix("more_clear_input_headers ").removesuffix(";").split(" ")
    assert [h.strip('"') for h in cleared] == [
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "X-Forwarded-Port",
        *api.DEFAULT_REMOVE_HEADERS,
    ]
    # Like Traefik's keepAliveMaxTime: one health-check interval (10 s by default).
    assert keepalive == "keepalive_time 10s;"


@pytest.mark.parametrize("client_ip", CLIENT_IP)
def test_ingress_nginx_never_trusts_forwarded_scheme_host_or_port(client_ip: str) -> None:
    """Upstream (rootfs/etc/nginx/lua/lua_ingress.lua, controller-v1.15.1): with
    use-forwarded-headers on, X-Forwarded-Proto, -Host and -Port are taken from the
    request of any peer, trusted or not (issue #9163), and no key limits them
    to proxy-real-ip-cidr. So it is off in every mode, and those headers are set from
    the connection, the Host header and the PROXY header."""
    config = ingress_nginx.render(context(client_ip, ingress_nginx)).config

    assert config is not None
    assert config["use-forwarded-headers"] == "false"


@pytest.mark.parametrize("client_ip", CLIENT_IP)
def test_ingress_nginx_forwards_only_the_address_it_believes(client_ip: str) -> None:
    """Upstream (rootfs/etc/nginx/template/nginx.tmpl, controller-v1.15.1): with
    use-forwarded-headers and compute-full-forwarded-for on, backends get
    "$http_x_forwarded_for, $realip_remote_addr" whoever the peer is, so a client's
    forged chain reaches them; otherwise X-Forwarded-For and X-Real-IP are
    $remote_addr, the address the realip module believed."""
    config = ingress_nginx.render(context(client_ip, ingress_nginx)).config

    assert config is not None
    assert config["compute-full-forwarded-for"] == "false"


def test_ingress_nginx_believes_x_forwarded_for_only_from_trusted_cidrs() -> None:
    """Upstream (rootfs/etc/nginx/template/nginx.tmpl, controller-v1.15.1):
    enable-real-ip alone turns the realip module on, with real_ip_header
    forwarded-for-header, real_ip_recursive on and set_real_ip_from for each
    proxy-real-ip-cidr entry (default 0.0.0.0/0: anyone), so the client address comes
    from X-Forwarded-For only when the peer is in trustedCIDRs, and is its rightmost
    entry outside them."""
    config = ingress_nginx.render(context("XForwardedFor", ingress_nginx)).config

    assert config is not None
    assert (config["enable-real-ip"], config["forwarded-for-header"]) == ("true", "X-Forwarded-For")
    assert config["proxy-real-ip-cidr"] == ",".join(CIDRS)
    assert config["use-proxy-protocol"] == "false"


@pytest.mark.parametrize("grace", [10, 60, 3600])
def test_both_providers_give_open_connections_the_same_time(grace: int) -> None:
    """rollout.shutdownGraceSeconds means the same for both providers: open
    connections get it less the 5 s the controller keeps to exit."""
    rollout = {"shutdownGraceSeconds": grace}
    traefik_args = traefik.render(context(rollout=rollout)).args
    nginx_config = ingress_nginx.render(context(provider=ingress_nginx, rollout=rollout)).config

    expected = f"{grace - 5}s"
    assert f"--entryPoints.web.transport.lifeCycle.graceTimeOut={expected}" in traefik_args
    assert nginx_config is not None
    assert nginx_config["worker-shutdown-timeout"] == expected


def test_ingress_nginx_workload_parts() -> None:
    rendered = ingress_nginx.render(context(provider=ingress_nginx))

    assert rendered.image == "registry.k8s.io/ingress-nginx/controller:v1.15.1"
    assert dict(rendered.ports) == {"http": 80, "https": 443, "metrics": 10254}
    assert (rendered.readiness.path, rendered.readiness.port) == ("/healthz", 10254)
    assert rendered.liveness == rendered.readiness
    assert rendered.controller == "edgeoperator.dev/public"
    assert (rendered.run_as_user, rendered.read_only_root_filesystem) == (101, False)
    assert dict(rendered.scratch) == {}
    assert (rendered.cluster_role, rendered.namespace_role) == (
        "edge-operator-ingress-nginx",
        "edge-operator-ingress-nginx-namespace",
    )
    assert rendered.env == (
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    )


def test_ingress_nginx_controller_class_is_per_gateway() -> None:
    one = ingress_nginx.render(context(provider=ingress_nginx))
    other = ingress_nginx.render(
        Context(
            gateway="internal",
            namespace="edge-system",
            ingress_class="web",
            service="internal",
            config_map="internal",
            spec=context(provider=ingress_nginx).spec,
        )
    )

    assert one.controller != other.controller
    assert f"--controller-class={other.controller}" in other.args
    assert "--election-id=internal-leader" in other.args


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.NAME)
def test_image_override(provider: Provider) -> None:
    image = "registry.example/mirror/controller:v9.9.9"

    assert provider.render(context(provider=provider, image=image)).image == image


@pytest.mark.parametrize("client_ip", CLIENT_IP)
@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.NAME)
def test_extra_args_come_last(provider: Provider, client_ip: str) -> None:
    extra = ["--log.level=DEBUG", "--entryPoints.web.forwardedHeaders.insecure=false"]
    plain = provider.render(context(client_ip, provider)).args

    args = provider.render(context(client_ip, provider, extraArgs=extra)).args

    assert args == (*plain, *extra)


@pytest.mark.parametrize("mode", ["XForwardedFor", "ProxyProtocol"])
@pytest.mark.parametrize("cidrs", [None, []], ids=["unset", "empty"])
def test_trusting_forwarded_addresses_needs_trusted_cidrs(
    mode: str, cidrs: list[str] | None
) -> None:
    client_ip: dict[str, Any] = {"mode": mode}
    if cidrs is not None:
        client_ip["trustedCIDRs"] = cidrs

    with pytest.raises(ValidationError, match="trustedCIDRs must list at least one CIDR"):
        api.EdgeGatewaySpec.model_validate(
            {"nodes": {"selector": {"matchLabels": {"nodepool": "edge"}}}, "clientIP": client_ip}
        )


def cluster_roles() -> list[dict[str, Any]]:
    return [role for provider in PROVIDERS for role in provider.cluster_roles()]


def test_cluster_roles_are_named_and_labelled() -> None:
    roles = cluster_roles()

    assert [r["metadata"]["name"] for r in roles] == [
        "edge-operator-traefik",
        "edge-operator-traefik-gateway-api",
        "edge-operator-traefik-ingress-nginx",
        "edge-operator-ingress-nginx",
        "edge-operator-ingress-nginx-namespace",
    ]
    for role in roles:
        assert role["metadata"]["labels"] == {
            "app.kubernetes.io/managed-by": "edge-operator",
            "app.kubernetes.io/part-of": "edge-operator",
        }


@pytest.mark.parametrize("role", cluster_roles(), ids=lambda r: r["metadata"]["name"])
def test_cluster_role_is_a_valid_object(role: dict[str, Any]) -> None:
    kubernetes_validate.validate(role, "1.36.0", strict=True)


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.NAME)
def test_rendered_roles_are_installed(provider: Provider) -> None:
    rendered = provider.render(context(provider=provider))
    serving = provider.render(replace(context(provider=provider), gateway_class="edge"))
    base = context(provider=provider)
    nginx = base.spec.model_copy(update={"ingress_nginx": api.IngressNGINX(enabled=True)})
    migrating = provider.render(replace(base, spec=nginx))
    installed = {r["metadata"]["name"] for r in provider.cluster_roles()}

    bound = {
        rendered.cluster_role,
        rendered.namespace_role,
        serving.gateway_cluster_role,
        migrating.ingress_nginx_cluster_role,
    }
    assert bound - {None, ""} == installed
    assert rendered.gateway_cluster_role == ""  # bound only while a GatewayClass is served
    assert rendered.ingress_nginx_cluster_role == ""  # only while ingressNGINX is on


#: Every write a role may grant: (API group, resource) -> verbs. Leases only in the
#: namespace role, for leader election.
READ = {"get", "list", "watch"}
WRITES: dict[str, dict[tuple[str, str], set[str]]] = {
    "edge-operator-traefik": {("networking.k8s.io", "ingresses/status"): {"update"}},
    "edge-operator-traefik-gateway-api": {
        ("gateway.networking.k8s.io", f"{kind}/status"): {"update"}
        for kind in (
            "backendtlspolicies",
            "gatewayclasses",
            "gateways",
            "grpcroutes",
            "httproutes",
            "tlsroutes",
        )
    },
    "edge-operator-traefik-ingress-nginx": {},
    "edge-operator-ingress-nginx": {
        ("networking.k8s.io", "ingresses/status"): {"update"},
        ("", "events"): {"create", "patch"},
    },
    "edge-operator-ingress-nginx-namespace": {
        ("", "events"): {"create", "patch"},
        ("coordination.k8s.io", "leases"): {"create", "update"},
    },
}


@pytest.mark.parametrize("role", cluster_roles(), ids=lambda r: r["metadata"]["name"])
def test_no_write_beyond_status_events_and_leases(role: dict[str, Any]) -> None:
    allowed = WRITES[role["metadata"]["name"]]
    for rule in role["rules"]:
        assert "resourceNames" not in rule
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        writes = set(rule["verbs"]) - READ
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert writes <= allowed.get((group, resource), set()), (group, resource)
