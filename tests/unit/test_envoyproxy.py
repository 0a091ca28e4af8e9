"""The EnvoyProxy written for controller.provider envoy-gateway: placement, Service,
drain timing, as pure functions of the spec."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from edge_operator import api, names
from edge_operator.desired import changes, clienttrafficpolicy, envoyproxy, gatewayclass
from edge_operator.desired import nodes as node_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired import workload as workload_rules
from edge_operator.desired.objects import Key, Owner
from edge_operator.desired.providers import envoy_gateway
from edge_operator.facts import (
    Facts,
    GatewayAPIFacts,
    GatewayAPIGateway,
    GatewayFacts,
    PodFacts,
    ProvisionedFacts,
)
from tests.unit.test_nodes import facts, gateway, node, worker

OWNER = Owner("edge", "uid-1")
NS = names.DEFAULT_NAMESPACE


def build(**spec: Any) -> dict[str, Any]:
    parsed = api.EdgeGatewaySpec.model_validate({"nodes": {"selector": {}}, **spec})
    return envoyproxy.envoy_proxy(OWNER, parsed, replicas=2)


def kubernetes(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj["spec"]["provider"]["kubernetes"]
    return found


def test_one_envoy_per_edge_node_on_exactly_the_gateways_nodes() -> None:
    obj = build()
    assert (obj["apiVersion"], obj["kind"]) == ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy")
    assert obj["metadata"]["namespace"] == names.DEFAULT_NAMESPACE
    assert obj["metadata"]["labels"][names.GATEWAY_LABEL] == "edge"
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    deployment = kubernetes(obj)["envoyDeployment"]
    assert (deployment["name"], deployment["replicas"]) == ("edge", 2)
    assert "labels" not in deployment["pod"]
    pod = deployment["pod"]
    assert pod["nodeSelector"] == {names.DEFAULT_ROLE_LABEL: "", names.GATEWAY_LABEL: "edge"}
    assert pod["tolerations"] == [
        {
            "key": names.DEFAULT_ROLE_LABEL,
            "operator": "Equal",
            "value": "",
            "effect": "NoSchedule",
        }
    ]
    # A node never goes without a ready Envoy: one pod of a revision per node, the new
    # one beside the old, which goes only once the new one is Available.
    [spread] = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert spread == {
        "labelSelector": {"matchLabels": {"gateway.envoyproxy.io/owning-gatewayclass": "edge"}},
        "matchLabelKeys": ["pod-template-hash"],
        "topologyKey": "kubernetes.io/hostname",
    }
    [beside] = pod["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert beside["podAffinityTerm"]["mismatchLabelKeys"] == ["pod-template-hash"]
    assert deployment["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}
    assert kubernetes(obj)["envoyPDB"] == {"maxUnavailable": 1}
    assert deployment["container"]["image"] == envoy_gateway.DEFAULT_IMAGE
    assert obj["spec"]["mergeGateways"] is True


def test_no_toleration_without_a_taint_and_the_users_pod_settings() -> None:
    obj = build(
        nodes={"selector": {}, "taint": {"effect": "None"}},
        controller={
            "image": "registry.example/envoy:1.39.3",
            "podAnnotations": {"a": "b"},
            "resources": {"requests": {"cpu": "500m"}},
            "extraArgs": ["--concurrency", "2"],
        },
    )
    deployment = kubernetes(obj)["envoyDeployment"]
    assert deployment["pod"]["tolerations"] == []
    assert deployment["pod"]["annotations"] == {"a": "b"}
    assert deployment["container"] == {
        "image": "registry.example/envoy:1.39.3",
        "resources": {"requests": {"cpu": "500m"}},
    }
    assert obj["spec"]["extraArgs"] == ["--concurrency", "2"]


def test_drain_timing_follows_the_load_balancers_health_check() -> None:
    """Interval 10 s, threshold 3: the load balancer notices in 40 s (minReadySeconds),
    the preStop delay every provider uses is 50 s; Envoy stays a serving endpoint that
    long, then drains, and is given 50 + 60 s in all."""
    obj = build(
        rollout={"loadBalancerHealthCheck": {"intervalSeconds": 10, "unhealthyThreshold": 3}}
    )
    assert obj["spec"]["shutdown"] == {
        "healthCheckFailureDelay": "50s",
        "minDrainDuration": "50s",
        "drainTimeout": "110s",
    }
    patch = kubernetes(obj)["envoyDeployment"]["patch"]
    assert patch == {"type": "StrategicMerge", "value": {"spec": {"minReadySeconds": 40}}}


def test_the_service_carries_the_gateways_settings() -> None:
    obj = build(
        service={
            "externalTrafficPolicy": "Cluster",
            "loadBalancerClass": "example.com/lb",
            "annotations": {"lb.example.com/x": "1"},
            "loadBalancerSourceRanges": ["192.0.2.0/24"],
            "ipFamilyPolicy": "PreferDualStack",
        }
    )
    assert kubernetes(obj)["envoyService"] == {
        "name": "edge",
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Cluster",
        "annotations": {"lb.example.com/x": "1"},
        "loadBalancerClass": "example.com/lb",
        "loadBalancerSourceRanges": ["192.0.2.0/24"],
    }
    assert obj["spec"]["ipFamily"] == "DualStack"
    local = build()
    assert kubernetes(local)["envoyService"]["externalTrafficPolicy"] == "Local"
    assert "ipFamily" not in local["spec"]


def test_the_gateway_class_names_it() -> None:
    spec = api.EdgeGatewaySpec.model_validate({"nodes": {"selector": {}}})
    assert envoyproxy.parameters_ref(OWNER, spec) == {
        "group": "gateway.envoyproxy.io",
        "kind": "EnvoyProxy",
        "name": "edge",
        "namespace": names.DEFAULT_NAMESPACE,
    }


def test_the_gateway_class_refers_to_it() -> None:
    spec = api.EdgeGatewaySpec.model_validate({"nodes": {"selector": {}}})
    ref = envoyproxy.parameters_ref(OWNER, spec)
    made = gatewayclass.gateway_class(OWNER, spec, envoy_gateway.GATEWAY_CONTROLLER, ref)
    assert made["spec"]["controllerName"] == "gateway.envoyproxy.io/gatewayclass-controller"
    assert made["spec"]["parametersRef"] == ref
    plain = gatewayclass.gateway_class(OWNER, spec, "traefik.io/gateway-controller")
    assert "parametersRef" not in plain["spec"]


# --- the gateway with controller.provider envoy-gateway ---------------------------------

EG_SPEC: dict[str, Any] = {
    "controller": {"provider": "envoy-gateway"},
    "gatewayAPI": {"enabled": True},
}
CLASS_LABEL = envoy_gateway.OWNING_CLASS_LABEL


def eg_gateway() -> GatewayFacts:
    return gateway("edge", **EG_SPEC)


def eg_facts(provisioned: ProvisionedFacts, gateways: int = 1, **kw: Any) -> Facts:
    found = tuple(GatewayAPIGateway("apps", f"web-{i}", programmed=True) for i in range(gateways))
    return facts(
        eg_gateway(),
        [node("n1"), node("n2"), worker("w1")],
        gateway_api=GatewayAPIFacts("installed", found),
        provisioned=provisioned,
        **kw,
    )


def test_the_operator_writes_only_what_envoy_gateway_reads() -> None:
    spec = eg_gateway().spec
    assert spec is not None
    inputs = workload_rules.Inputs(
        OWNER, spec, ready_edge_nodes=2, gateway_api_installed=True, envoy_gateway_installed=True
    )
    proxy, cls = workload_rules.build(inputs)
    assert (proxy["kind"], cls["kind"]) == ("EnvoyProxy", "GatewayClass")
    assert cls["spec"]["parametersRef"]["name"] == proxy["metadata"]["name"]
    assert kubernetes(proxy)["envoyDeployment"]["replicas"] == 2
    # No pods, Service, IngressClass or RBAC of the operator's own.
    for missing in (
        replace(inputs, envoy_gateway_installed=False),
        replace(inputs, gateway_api_installed=False),
    ):
        assert workload_rules.build(missing) == []


def test_status_reads_back_what_envoy_gateway_made() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "edge", "namespace": "envoy-gateway-system", "generation": 1},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "edge", "namespace": "envoy-gateway-system"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}},
    }
    pods = tuple(
        PodFacts(
            f"edge-abc-{n}", n, ready=True, namespace="envoy-gateway-system", replica_set="edge-abc"
        )
        for n in ("n1", "n2")
    )
    made = eg_facts(ProvisionedFacts("installed", deployment, service), controller_pods=pods)
    decision = node_rules.decide(made)
    planned = changes.plan(made, decision)
    assert planned.deployment == Key("Deployment", "envoy-gateway-system", "edge")
    assert planned.service == Key("Service", "envoy-gateway-system", "edge")
    assert set(planned.desired) == {
        Key("EnvoyProxy", NS, "edge"),
        Key("GatewayClass", "", "edge"),
        Key("ClientTrafficPolicy", "apps", "edge"),
    }
    workload = changes.workload(made, planned, applied=False)
    status = status_rules.gateway_status(made, decision, False, workload)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["ControllerAvailable"]["status"] == "True", by_type["ControllerAvailable"]
    assert by_type["LoadBalancerReady"]["status"] == "True"
    assert status["addresses"] == [{"type": "IPAddress", "value": "192.0.2.7"}]
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)


@pytest.mark.parametrize(
    ("provisioned", "gateways", "reason"),
    [
        (ProvisionedFacts("missing"), 1, "EnvoyGatewayMissing"),
        (ProvisionedFacts("forbidden"), 1, "EnvoyGatewayForbidden"),
        (ProvisionedFacts("installed"), 0, "NoGateways"),
        (ProvisionedFacts("installed"), 1, "EnvoyFleetPending"),
    ],
)
def test_why_there_is_no_envoy_fleet(
    provisioned: ProvisionedFacts, gateways: int, reason: str
) -> None:
    made = eg_facts(provisioned, gateways)
    decision = node_rules.decide(made)
    workload = changes.workload(made, changes.plan(made, decision), applied=False)
    status = status_rules.gateway_status(made, decision, False, workload)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert (by_type["ControllerAvailable"]["status"], by_type["ControllerAvailable"]["reason"]) == (
        "False",
        reason,
    )
    degraded = reason in {"EnvoyGatewayMissing", "EnvoyGatewayForbidden"}
    assert status["phase"] == ("Degraded" if degraded else "Provisioning")


def test_objects_envoy_gateway_made_for_a_class_concern_its_gateways() -> None:
    others = [
        gateway("t1"),
        gateway("e2", **{**EG_SPEC, "gatewayAPI": {"enabled": True, "gatewayClassName": "public"}}),
    ]
    assert envoyproxy.serving([eg_gateway(), *others], "edge") == ["edge"]
    assert envoyproxy.serving([eg_gateway(), *others], "public") == ["e2"]
    assert envoyproxy.serving([eg_gateway(), *others], "t1") == []  # Traefik's class


def test_client_address_rules_for_the_gateways_of_the_class_in_each_namespace() -> None:
    """Direct: every client-set address, scheme-host-port and listed header removed
    before Envoy's own header handling, so X-Forwarded-For carries the peer alone."""
    spec = api.EdgeGatewaySpec.model_validate(
        {"nodes": {"selector": {}}, **EG_SPEC, "clientIP": {"removeHeaders": ["X-Client-IP"]}}
    )
    found = [("shop", "web"), ("apps", "b"), ("apps", "a")]
    apps, shop = clienttrafficpolicy.policies(OWNER, spec, found)
    assert (apps["metadata"]["namespace"], shop["metadata"]["namespace"]) == ("apps", "shop")
    assert apps["metadata"]["name"] == "edge"
    assert apps["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert [t["name"] for t in apps["spec"]["targetRefs"]] == ["a", "b"]
    assert apps["spec"]["targetRefs"][0] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "a",
    }
    headers = apps["spec"]["headers"]
    assert headers["withUnderscoresAction"] == "DropHeader"
    assert headers["earlyRequestHeaders"]["remove"] == [
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Port",
        "X-Real-Ip",
        "Forwarded",
        "X-Client-IP",
    ]
    assert "clientIPDetection" not in apps["spec"]  # the peer is the client
    assert clienttrafficpolicy.policies(OWNER, spec, []) == []
