"""spec.ingressNGINX, pure: what a Traefik gateway gets to serve Ingresses written for
ingress-nginx (flags, rights, the IngressClass), and when the class is left alone."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from edge_operator import api, names
from edge_operator.desired import changes, ingressclass
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.objects import Key, Owner
from edge_operator.desired.providers import traefik
from edge_operator.facts import Facts, GatewayFacts, NodeFacts, WorkloadFacts

OWNER = Owner("edge", "uid-1")
NS = "edge-system"
NGINX = "--providers.kubernetesIngressNGINX"


def spec(client_ip: dict[str, Any] | None = None, **nginx: Any) -> api.EdgeGatewaySpec:
    return api.EdgeGatewaySpec.model_validate(
        {
            "nodes": {"selector": {"matchLabels": {"pool": "edge"}}},
            "ingressNGINX": nginx,
            "clientIP": client_ip or {},
        }
    )


def by_kind(s: api.EdgeGatewaySpec) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in workload_rules.build(workload_rules.Inputs(OWNER, s, ready_edge_nodes=2)):
        out.setdefault(obj["kind"], []).append(obj)
    return out


def flags(s: api.EdgeGatewaySpec) -> list[str]:
    [deploy] = by_kind(s)["Deployment"]
    return list(deploy["spec"]["template"]["spec"]["containers"][0]["args"])


def test_off_by_default_nothing_of_it() -> None:
    s = spec()
    assert not s.ingress_nginx.enabled
    assert s.ingress_nginx.ingress_class_name == "nginx"
    assert not [f for f in flags(s) if "kubernetesIngressNGINX" in f]
    objects = by_kind(s)
    assert [c["metadata"]["name"] for c in objects["IngressClass"]] == ["edge"]
    assert [b["roleRef"]["name"] for b in objects["ClusterRoleBinding"]] == [traefik.CLUSTER_ROLE]


def test_on_traefik_serves_exactly_the_named_class_on_web_and_websecure() -> None:
    got = [f for f in flags(spec(enabled=True)) if f.startswith(NGINX)]
    assert got == [
        f"{NGINX}=true",
        f"{NGINX}.ingressClass=nginx",
        f"{NGINX}.ingressClassByName=true",
        f"{NGINX}.controllerClass={traefik.INGRESS_NGINX_NO_CONTROLLER}",
        f"{NGINX}.httpEntryPoint=web",
        f"{NGINX}.httpsEntryPoint=websecure",
        f"{NGINX}.publishService={NS}/edge",
    ]
    # The gateway's own Ingress provider is unchanged beside it.
    assert "--providers.kubernetesingress.ingressClass=edge" in flags(spec(enabled=True))


def test_publish_status_off_leaves_the_ingresses_status_alone() -> None:
    got = flags(spec(enabled=True, publishStatus=False))
    assert not [f for f in got if "publishService" in f and "IngressNGINX" in f]


def test_allow_lists_judge_the_forwarded_client_under_x_forwarded_for_only() -> None:
    cidrs = ["203.0.113.0/24", "198.51.100.7/32"]
    xff = flags(spec({"mode": "XForwardedFor", "trustedCIDRs": cidrs}, enabled=True))
    assert f"{NGINX}.ipAllowListStrategy.excludedIPs={','.join(cidrs)}" in xff
    for mode in ({}, {"mode": "ProxyProtocol", "trustedCIDRs": cidrs}):
        assert not [f for f in flags(spec(mode, enabled=True)) if "ipAllowListStrategy" in f]


def test_on_the_class_and_the_rights_come_with_it() -> None:
    objects = by_kind(spec(enabled=True, ingressClassName="nginx-public"))
    classes = {c["metadata"]["name"]: c for c in objects["IngressClass"]}
    assert set(classes) == {"edge", "nginx-public"}
    made = classes["nginx-public"]
    assert made["spec"] == {"controller": "k8s.io/ingress-nginx"}
    assert made["metadata"]["labels"][names.GATEWAY_LABEL] == "edge"
    assert made["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert names.DEFAULT_CLASS_ANNOTATION not in (made["metadata"].get("annotations") or {})
    bindings = {b["roleRef"]["name"]: b for b in objects["ClusterRoleBinding"]}
    assert set(bindings) == {traefik.CLUSTER_ROLE, traefik.INGRESS_NGINX_CLUSTER_ROLE}
    assert bindings[traefik.INGRESS_NGINX_CLUSTER_ROLE]["metadata"]["name"] == (
        "edge-operator-edge-traefik-ingress-nginx"
    )
    for obj in (made, bindings[traefik.INGRESS_NGINX_CLUSTER_ROLE]):
        kubernetes_validate.validate(obj, "1.36.0", strict=True)


def facts(s: api.EdgeGatewaySpec, foreign: frozenset[Key] = frozenset()) -> Facts:
    gw = GatewayFacts.from_api(
        {
            "metadata": {"name": "edge", "uid": "uid-1", "creationTimestamp": "t", "generation": 1},
            "spec": s.model_dump(by_alias=True, exclude_none=True),
        }
    )
    nodes = {n: NodeFacts(n, {"pool": "edge"}, ready=True) for n in ("a", "w")}
    return Facts(gateway=gw, others=(), nodes=nodes, workload=WorkloadFacts(foreign=foreign))


def test_an_existing_class_of_that_name_is_served_and_left_alone() -> None:
    s = spec(enabled=True)
    key = ingressclass.ingress_nginx_key(s)
    assert key == Key("IngressClass", "", "nginx")
    f = facts(s)
    decision = node_rules.decide(f)
    assert (key, "Create") in changes.plan(f, decision).changes
    f = facts(s, foreign=frozenset({key}))
    planned = changes.plan(f, decision)
    assert key not in planned.desired
    assert key not in [k for k, _ in planned.changes]
    assert planned.conflicts == ()
    # What the provider serves does not depend on who made the class.
    [deploy] = [o for k, o in planned.desired.items() if k.kind == "Deployment"]
    assert (
        f"{NGINX}.ingressClass=nginx" in deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_the_gateways_an_ingress_class_concerns() -> None:
    def gw(name: str, **nginx: Any) -> GatewayFacts:
        body = spec(**nginx).model_dump(by_alias=True, exclude_none=True)
        return GatewayFacts.from_api({"metadata": {"name": name}, "spec": body})

    gateways = [gw("a", enabled=True), gw("b"), gw("c", enabled=True, ingressClassName="x")]
    assert ingressclass.serving_ingress_nginx(gateways, "nginx") == ["a"]
    assert ingressclass.serving_ingress_nginx(gateways, "x") == ["c"]
    assert ingressclass.serving_ingress_nginx(gateways, "edge") == []


def test_a_gateway_named_like_the_class_it_would_serve_is_invalid() -> None:
    body = spec(enabled=True).model_dump(by_alias=True, exclude_none=True)
    gw = GatewayFacts.from_api({"metadata": {"name": "nginx"}, "spec": body})
    assert gw.spec is None
    assert gw.spec_error == api.INGRESS_NGINX_CLASS_DIFFERS.message
