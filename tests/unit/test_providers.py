"""The ingress controller providers: rendered arguments, ConfigMap data and RBAC."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from edge_operator import api
from edge_operator.desired.providers import Context, Provider, ingress_nginx, traefik

PROVIDERS: tuple[Provider, ...] = (traefik, ingress_nginx)
CIDRS = ["203.0.113.0/24", "2001:db8::/32"]
CLIENT_IP: dict[str, dict[str, Any]] = {
    "Direct": {"mode": "Direct"},
    "XForwardedFor": {"mode": "XForwardedFor", "trustedCIDRs": CIDRS},
    "ProxyProtocol": {"mode": "ProxyProtocol", "trustedCIDRs": CIDRS},
}


def context(client_ip: str = "Direct", provider: Provider = traefik, **controller: Any) -> Context:
    spec = api.EdgeGatewaySpec.model_validate(
        {
            "nodes": {"selector": {"matchLabels": {"nodepool": "edge"}}},
            "controller": {"provider": provider.NAME, **controller},
            "clientIP": CLIENT_IP[client_ip],
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
    assert rendered.config is None


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
        "--http-port=8000",
        "--https-port=8443",
        "--healthz-port=10254",
        "--watch-ingress-without-class=false",
    )


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
            },
        ),
        (
            "XForwardedFor",
            {
                "use-forwarded-headers": "true",
                "compute-full-forwarded-for": "true",
                "enable-real-ip": "true",
                "forwarded-for-header": "X-Forwarded-For",
                "proxy-real-ip-cidr": "203.0.113.0/24,2001:db8::/32",
                "use-proxy-protocol": "false",
            },
        ),
        (
            "ProxyProtocol",
            {
                "use-proxy-protocol": "true",
                "proxy-real-ip-cidr": "203.0.113.0/24,2001:db8::/32",
                "use-forwarded-headers": "false",
                "compute-full-forwarded-for": "false",
                "enable-real-ip": "true",
            },
        ),
    ],
)
def test_ingress_nginx_config(client_ip: str, config: dict[str, str]) -> None:
    rendered = ingress_nginx.render(context(client_ip, ingress_nginx))

    assert rendered.config == config


def test_ingress_nginx_workload_parts() -> None:
    rendered = ingress_nginx.render(context(provider=ingress_nginx))

    assert rendered.image == "registry.k8s.io/ingress-nginx/controller:v1.15.1"
    assert dict(rendered.ports) == {"http": 8000, "https": 8443, "metrics": 10254}
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
    installed = {r["metadata"]["name"] for r in provider.cluster_roles()}

    assert {rendered.cluster_role, rendered.namespace_role} - {None} == installed


#: Every write a role may grant: (API group, resource) -> verbs. Leases only in the
#: namespace role, for leader election.
READ = {"get", "list", "watch"}
WRITES: dict[str, dict[tuple[str, str], set[str]]] = {
    "edge-operator-traefik": {("networking.k8s.io", "ingresses/status"): {"update"}},
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
