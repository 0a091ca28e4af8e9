"""The EnvoyProxy written for controller.provider envoy-gateway: placement, Service,
drain timing, as pure functions of the spec."""

from __future__ import annotations

from typing import Any

from edge_operator import api, names
from edge_operator.desired import envoyproxy, gatewayclass
from edge_operator.desired.objects import Owner
from edge_operator.desired.providers import envoy_gateway

OWNER = Owner("edge", "uid-1")


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
