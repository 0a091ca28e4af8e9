"""Gateway API rules, pure: the GatewayClass and the controller's configuration an
EdgeGateway with gatewayAPI on gets, its status conditions, and validation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from edge_operator import api, names
from edge_operator.desired import changes, gatewayclass
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.objects import Key, Owner
from edge_operator.desired.providers import traefik
from edge_operator.facts import Facts, GatewayAPIFacts, GatewayAPIGateway, GatewayFacts
from tests.unit.test_nodes import facts, gateway, node, worker

OWNER = Owner("edge", "uid-1")
NS = "edge-system"


def spec(**gateway_api: Any) -> api.EdgeGatewaySpec:
    return api.EdgeGatewaySpec.model_validate(
        {"nodes": {"selector": {"matchLabels": {"pool": "edge"}}}, "gatewayAPI": gateway_api}
    )


def by_kind(s: api.EdgeGatewaySpec, installed: bool = True) -> dict[str, list[dict[str, Any]]]:
    built = workload_rules.build(
        workload_rules.Inputs(OWNER, s, ready_edge_nodes=2, gateway_api_installed=installed)
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in built:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def args(s: api.EdgeGatewaySpec, installed: bool = True) -> list[str]:
    [deploy] = by_kind(s, installed)["Deployment"]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    return list(container["args"])


def test_the_class_is_owned_labelled_and_names_traefik() -> None:
    [cls] = by_kind(spec(enabled=True))["GatewayClass"]
    assert cls["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert cls["metadata"]["name"] == "edge"
    assert cls["metadata"]["labels"][names.GATEWAY_LABEL] == "edge"
    assert cls["metadata"]["labels"][names.SERVED_BY_LABEL] == "edge"
    assert cls["spec"]["description"] == "Gateways served from the edge nodes of EdgeGateway edge"
    long_name = "g" * 63
    assert len(gatewayclass.description(long_name)) <= gatewayclass.MAX_DESCRIPTION
    assert len(gatewayclass.description("g" * 30)) <= gatewayclass.MAX_DESCRIPTION
    assert "g" * 30 in gatewayclass.description("g" * 30)
    assert cls["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert cls["spec"]["controllerName"] == "traefik.io/gateway-controller"
    [named] = by_kind(spec(enabled=True, gatewayClassName="public"))["GatewayClass"]
    assert named["metadata"]["name"] == "public"


def test_off_or_without_crds_no_class_no_rights_no_provider() -> None:
    for s, installed in ((spec(), True), (spec(enabled=True), False)):
        objects = by_kind(s, installed)
        assert "GatewayClass" not in objects
        bindings = [b["roleRef"]["name"] for b in objects["ClusterRoleBinding"]]
        assert bindings == [traefik.CLUSTER_ROLE]
        flags = args(s, installed)
        assert not [a for a in flags if "kubernetesGateway" in a]
        assert "--entryPoints.web.address=:8000/tcp" in flags  # unchanged
        assert not [a for a in flags if a.startswith("--entryPoints.traefik.http.")]


def test_serving_the_class_configures_traefik_for_it() -> None:
    s = spec(enabled=True)
    flags = args(s)
    assert "--providers.kubernetesGateway=true" in flags
    assert f"--providers.kubernetesGateway.labelSelector={names.SERVED_BY_LABEL}=edge" in flags
    assert "--providers.kubernetesGateway.statusAddress.service.name=edge" in flags
    assert f"--providers.kubernetesGateway.statusAddress.service.namespace={NS}" in flags
    # Listeners are written with the Service's ports: the entry points listen on them.
    assert "--entryPoints.web.address=:80/tcp" in flags
    assert "--entryPoints.websecure.address=:443/tcp" in flags
    # A listener on the ping entry point's port gets the same header removal.
    assert "--entryPoints.traefik.http.aliasHeadersStrategy=delete" in flags
    assert "--entryPoints.traefik.http.middlewares=edge-client-headers@file" in flags
    objects = by_kind(s)
    [deploy] = objects["Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}
    ]
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert ports == {"http": 80, "https": 443, "traefik": 8080}
    bindings = {b["roleRef"]["name"]: b for b in objects["ClusterRoleBinding"]}
    assert set(bindings) == {traefik.CLUSTER_ROLE, traefik.GATEWAY_CLUSTER_ROLE}
    assert bindings[traefik.GATEWAY_CLUSTER_ROLE]["metadata"]["name"] == (
        "edge-operator-edge-traefik-gateway-api"
    )
    kubernetes_validate.validate(deploy, "1.36.0", strict=True)


def test_service_ports_above_1024_need_no_sysctl_and_ping_moves_aside() -> None:
    s = api.EdgeGatewaySpec.model_validate(
        {
            "nodes": {"names": ["a"]},
            "service": {"ports": {"http": 8080, "https": 8443}},
            "gatewayAPI": {"enabled": True},
        }
    )
    [deploy] = by_kind(s)["Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    assert "sysctls" not in pod["securityContext"]
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert ports == {"http": 8080, "https": 8443, "traefik": 8081}


def test_listener_ports_become_service_ports_and_entry_points() -> None:
    s = api.EdgeGatewaySpec.model_validate(
        {
            "nodes": {"names": ["a"]},
            "clientIP": {"mode": "ProxyProtocol", "trustedCIDRs": ["10.0.0.0/8"]},
            "mesh": {"provider": "Linkerd"},
            "gatewayAPI": {"enabled": True, "listenerPorts": [8080, 8090, 8081]},
        }
    )
    objects = by_kind(s)
    [svc] = [o for o in objects["Service"] if o["spec"].get("type") == "LoadBalancer"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("http", 80, "http"),
        ("https", 443, "https"),
        ("listener-8080", 8080, "listener-8080"),
        ("listener-8090", 8090, "listener-8090"),
        ("listener-8081", 8081, "listener-8081"),
    ]
    [deploy] = objects["Deployment"]
    template = deploy["spec"]["template"]
    container = template["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # The ping entry point takes the first port no listener port takes.
    assert ports == {
        "http": 80,
        "https": 443,
        "listener-8080": 8080,
        "listener-8090": 8090,
        "listener-8081": 8081,
        "traefik": 8082,
    }
    assert container["readinessProbe"]["httpGet"]["port"] == 8082
    flags = container["args"]
    for port in (8080, 8090, 8081):
        ep = f"listener{port}"
        assert f"--entryPoints.{ep}.address=:{port}/tcp" in flags
        # Every setting web and websecure get: client headers, PROXY protocol, drain.
        assert f"--entryPoints.{ep}.http.aliasHeadersStrategy=delete" in flags
        assert f"--entryPoints.{ep}.http.middlewares=edge-client-headers@file" in flags
        assert f"--entryPoints.{ep}.proxyProtocol.trustedIPs=10.0.0.0/8" in flags
        assert f"--entryPoints.{ep}.transport.keepAliveMaxTime=10s" in flags
        assert [f for f in flags if f.startswith(f"--entryPoints.{ep}.transport.lifeCycle")]
        assert f"--entryPoints.{ep}.http.tls=true" not in flags
    annotations = template["metadata"]["annotations"]
    assert annotations["config.linkerd.io/skip-inbound-ports"] == "80,443,8080,8090,8081"
    kubernetes_validate.validate(deploy, "1.36.0", strict=True)
    kubernetes_validate.validate(svc, "1.36.0", strict=True)

    # Off, or without the CRDs, the ports are not served: nothing listens on them.
    for off, installed in ((s.model_copy(update={"gateway_api": api.GatewayAPI()}), True),
                           (s, False)):  # fmt: skip
        [plain] = [
            o for o in by_kind(off, installed)["Service"] if o["spec"].get("type") == "LoadBalancer"
        ]
        assert [p["name"] for p in plain["spec"]["ports"]] == ["http", "https"]


def test_listener_ports_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"must not repeat service\.ports\.http"):
        spec(enabled=True, listenerPorts=[8080, 443])
    with pytest.raises(ValidationError, match="must not repeat a port"):
        spec(enabled=True, listenerPorts=[8080, 8080])
    with pytest.raises(ValidationError, match="less than or equal to 65535"):
        spec(enabled=True, listenerPorts=[70000])
    with pytest.raises(ValidationError, match="at most 16"):
        spec(enabled=True, listenerPorts=list(range(9000, 9017)))
    assert spec(enabled=True, listenerPorts=list(range(9000, 9016))).gateway_api.listener_ports


def test_ingress_nginx_cannot_serve_gateway_api() -> None:
    with pytest.raises(ValidationError, match=r"gatewayAPI\.enabled needs controller\.provider"):
        api.EdgeGatewaySpec.model_validate(
            {
                "nodes": {"names": ["a"]},
                "controller": {"provider": "ingress-nginx"},
                "gatewayAPI": {"enabled": True},
            }
        )
    with pytest.raises(ValidationError, match="gatewayClassName"):
        spec(enabled=True, gatewayClassName="Not A Name")


def test_the_role_reads_what_traefik_watches_and_writes_only_status() -> None:
    rules = traefik.gateway_rules()
    gateway_rules = [r for r in rules if r["apiGroups"] == ["gateway.networking.k8s.io"]]
    reads = {res for r in gateway_rules if "watch" in r["verbs"] for res in r["resources"]}
    assert {"gateways", "httproutes", "grpcroutes", "referencegrants", "gatewayclasses"} <= reads
    writes = [r for r in gateway_rules if set(r["verbs"]) - {"get", "list", "watch"}]
    assert all(res.endswith("/status") for r in writes for res in r["resources"])
    assert all(r["verbs"] == ["update"] for r in writes)


# --- status --------------------------------------------------------------------------------


def gateway_facts(**gateway_api: Any) -> Facts:
    gw = gateway(controller={"namespace": NS}, gatewayAPI=gateway_api)
    return facts(gw, [node("a", "zone-a"), worker("w1")])


def conditions(f: Facts, objects: dict[Key, Any] | None = None) -> dict[str, status_rules.Cond]:
    planned = changes.plan(f, node_rules.decide(f))
    workload = changes.workload(f, planned, applied=True, objects=objects or {})
    return {c.type: c for c in status_rules.gateway_api_conditions(f, workload)}


def accepted_class(name: str, accepted: bool = True, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": generation},
        "spec": {"controllerName": traefik.GATEWAY_CONTROLLER},
        "status": {
            "conditions": [
                {
                    "type": "Accepted",
                    "status": "True" if accepted else "False",
                    "reason": "Accepted" if accepted else "InvalidParameters",
                    "message": "m",
                    "observedGeneration": 1,
                }
            ]
        },
    }


def test_no_condition_while_off() -> None:
    assert conditions(gateway_facts()) == {}


def test_crds_missing_is_named_and_degrades() -> None:
    f = gateway_facts(enabled=True)
    cond = conditions(f)["GatewayAPIReady"]
    assert (cond.status, cond.reason) == ("False", "GatewayAPICRDsMissing")
    assert "GatewayAPICRDsMissing" in status_rules.DEGRADED_REASONS


def test_rights_missing_are_named_and_degrade() -> None:
    f = replace(gateway_facts(enabled=True), gateway_api=GatewayAPIFacts("forbidden"))
    cond = conditions(f)["GatewayAPIReady"]
    assert (cond.status, cond.reason) == ("False", "GatewayAPIForbidden")
    assert "upgrade the chart" in cond.message
    assert "GatewayAPIForbidden" in status_rules.DEGRADED_REASONS


def test_waiting_for_the_controller_then_accepted_with_gateways_counted() -> None:
    f = replace(gateway_facts(enabled=True), gateway_api=GatewayAPIFacts("installed"))
    key = Key("GatewayClass", "", "gw")
    cond = conditions(f)["GatewayAPIReady"]
    assert (cond.status, cond.reason) == ("False", "NotAccepted")
    # An Accepted condition of an older generation is not an answer yet.
    stale = conditions(f, {key: accepted_class("gw", generation=2)})["GatewayAPIReady"]
    assert (stale.status, stale.reason) == ("False", "NotAccepted")
    refused = conditions(f, {key: accepted_class("gw", accepted=False)})["GatewayAPIReady"]
    assert (refused.status, refused.reason) == ("False", "NotAccepted")
    assert "InvalidParameters" in refused.message

    gateways = (
        GatewayAPIGateway("apps", "a", programmed=True),
        GatewayAPIGateway("apps", "b", False, (("h", "PortUnavailable", "no"),)),
    )
    f = replace(f, gateway_api=GatewayAPIFacts("installed", gateways=gateways))
    got = conditions(f, {key: accepted_class("gw")})
    assert (got["GatewayAPIReady"].status, got["GatewayAPIReady"].reason) == ("True", "Accepted")
    assert "1 of its 2 Gateway(s) are Programmed" in got["GatewayAPIReady"].message
    listeners = got["GatewayListenersAccepted"]
    assert (listeners.status, listeners.reason) == ("False", "ListenerNotAccepted")
    assert "apps/b listener h (PortUnavailable: no)" in listeners.message

    # A listener the controller accepted on a port the Service does not expose.
    hidden = (GatewayAPIGateway("apps", "c", True, (), (("web", 80), ("ping", 8080))),)
    f = replace(f, gateway_api=GatewayAPIFacts("installed", gateways=hidden))
    hidden_cond = conditions(f, {key: accepted_class("gw")})["GatewayListenersAccepted"]
    assert hidden_cond.status == "False"
    assert "apps/c listener ping (PortNotExposed" in hidden_cond.message
    assert "listener web" not in hidden_cond.message
    assert "one of gatewayAPI.listenerPorts (none yet)" in hidden_cond.message
    # Exposed once it is one of listenerPorts.
    f = replace(gateway_facts(enabled=True, listenerPorts=[8080]), gateway_api=f.gateway_api)
    exposed = conditions(f, {key: accepted_class("gw")})["GatewayListenersAccepted"]
    assert exposed.status == "True", exposed.message
    assert "GatewayListenersAccepted" in status_rules.WARNINGS


def test_a_foreign_class_is_an_object_conflict_on_its_own_condition() -> None:
    f = replace(gateway_facts(enabled=True), gateway_api=GatewayAPIFacts("installed"))
    key = Key("GatewayClass", "", "gw")
    f = replace(f, workload=replace(f.workload, foreign=frozenset({key})))
    planned = changes.plan(f, node_rules.decide(f))
    assert planned.conflicts == (key,)
    workload = changes.workload(f, planned, applied=True, objects={})
    got = {c.type: c for c in status_rules.gateway_api_conditions(f, workload)}
    assert (got["GatewayAPIReady"].status, got["GatewayAPIReady"].reason) == (
        "False",
        "ObjectConflict",
    )
    controller = status_rules.controller_condition(f, node_rules.decide(f), workload)
    assert controller.reason != "ObjectConflict"


def test_gateway_status_is_read_from_the_controller() -> None:
    listener = {"name": "web", "conditions": [{"type": "Accepted", "status": "False",
                "reason": "PortUnavailable", "message": "Cannot find entryPoint"}]}  # fmt: skip
    obj = {
        "metadata": {"name": "g", "namespace": "apps"},
        "status": {
            "conditions": [{"type": "Programmed", "status": "True"}],
            "listeners": [listener],
        },
    }
    obj["spec"] = {"listeners": [{"name": "web", "port": 8090, "protocol": "HTTP"}]}
    got = GatewayAPIGateway.from_api(obj)
    assert got == GatewayAPIGateway(
        "apps", "g", True, (("web", "PortUnavailable", "Cannot find entryPoint"),), (("web", 8090),)
    )
    assert (
        GatewayAPIGateway.from_api({"metadata": {"name": "n", "namespace": "x"}}).programmed
        is False
    )


def test_events_concern_the_gateways_serving_the_class() -> None:
    def gw(name: str, **gateway_api: Any) -> GatewayFacts:
        return GatewayFacts.from_api(
            {
                "metadata": {"name": name, "uid": name, "generation": 1},
                "spec": {"nodes": {"names": ["a"]}, "gatewayAPI": gateway_api},
            }
        )

    all_ = [gw("off"), gw("on", enabled=True), gw("named", enabled=True, gatewayClassName="pub")]
    assert gatewayclass.serving(all_) == ["named", "on"]
    assert gatewayclass.serving(all_, "pub") == ["named"]
    assert gatewayclass.serving(all_, "on") == ["on"]
    assert gatewayclass.serving(all_, "off") == []
