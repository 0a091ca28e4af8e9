"""The workload builders: pure functions of the spec, checked object by object."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from edge_operator import api, names
from edge_operator.cli import provider_rbac
from edge_operator.desired import namespace as namespace_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired import workload
from edge_operator.desired.nodes import NodeDecision
from edge_operator.desired.objects import Key, Owner, action, contains
from edge_operator.desired.service import addresses
from edge_operator.facts import Facts, GatewayFacts, NodeFacts, PodFacts

ROOT = Path(__file__).resolve().parents[2]
CHART_FILES = ROOT / "deploy" / "helm" / "edge-operator" / "files"
OWNER = Owner("public", "0b5c3c0e-1111-2222-3333-444455556666")
SCHEMA_VERSION = "1.36.0"
T0 = "2026-01-01T00:00:00Z"


def spec(**fields: Any) -> api.EdgeGatewaySpec:
    return api.EdgeGatewaySpec.model_validate(
        {"nodes": {"selector": {"matchLabels": {"nodepool": "edge"}}}, **fields}
    )


def objects(s: api.EdgeGatewaySpec, nodes: int = 3, **kw: Any) -> dict[str, dict[str, Any]]:
    """By kind; the readiness route's Service and Ingress as "Readiness <kind>"."""
    built = workload.build(workload.Inputs(OWNER, s, ready_edge_nodes=nodes, **kw))
    route = names.readiness_name(OWNER.name)
    return {
        f"Readiness {o['kind']}" if o["metadata"]["name"] == route else o["kind"]: o for o in built
    }


def pod_spec(s: api.EdgeGatewaySpec) -> dict[str, Any]:
    result: dict[str, Any] = objects(s)["Deployment"]["spec"]["template"]["spec"]
    return result


MODES = [
    {"mode": "Direct"},
    {"mode": "XForwardedFor", "trustedCIDRs": ["198.51.100.0/24"]},
    {"mode": "ProxyProtocol", "trustedCIDRs": ["10.0.0.0/8", "2001:db8::/32"]},
]


@pytest.mark.parametrize("provider", ["traefik", "ingress-nginx"])
@pytest.mark.parametrize("client_ip", MODES, ids=lambda m: m["mode"])
def test_every_rendered_object_is_valid_kubernetes(
    provider: str, client_ip: dict[str, Any]
) -> None:
    s = spec(
        controller={
            "provider": provider,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "podAnnotations": {"example.com/a": "b"},
            "ingressClass": {"default": True},
        },
        service={"loadBalancerSourceRanges": ["203.0.113.0/24"], "loadBalancerClass": "x.io/lb"},
        clientIP=client_ip,
        mesh={"provider": "Istio"},
    )
    built = workload.build(workload.Inputs(OWNER, s, ready_edge_nodes=3))
    for obj in [
        namespace_rules.namespace("edge-system"),
        *built,
        *workload.provider_cluster_roles(),
    ]:
        kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)


def test_objects_and_their_order() -> None:
    traefik = [o["kind"] for o in workload.build(workload.Inputs(OWNER, spec(), 3))]
    assert traefik == [
        "ServiceAccount",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "IngressClass",
        "Service",
        "Service",
        "Ingress",
    ]
    nginx = objects(spec(controller={"provider": "ingress-nginx"}))
    assert "Readiness Ingress" not in nginx
    assert {"RoleBinding", "ConfigMap"} <= nginx.keys()
    assert nginx["RoleBinding"]["metadata"]["namespace"] == "edge-system"
    assert nginx["RoleBinding"]["roleRef"]["name"] == "edge-operator-ingress-nginx-namespace"


def test_every_object_is_labelled_and_owned() -> None:
    for obj in objects(spec(controller={"provider": "ingress-nginx"})).values():
        meta = obj["metadata"]
        assert meta["labels"][names.GATEWAY_LABEL] == "public"
        assert meta["labels"][names.MANAGED_BY_LABEL] == "edge-operator"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "edgeoperator.dev/v1alpha1",
                "kind": "EdgeGateway",
                "name": "public",
                "uid": OWNER.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert names.APPLIED_HASH_ANNOTATION in meta["annotations"]
    assert "ownerReferences" not in namespace_rules.namespace("edge-system")["metadata"]


def test_bindings_are_named_after_the_provider() -> None:
    # roleRef is immutable: a new provider gets a new binding, the old one is deleted.
    traefik = objects(spec())["ClusterRoleBinding"]
    nginx = objects(spec(controller={"provider": "ingress-nginx"}))["ClusterRoleBinding"]
    assert traefik["metadata"]["name"] == "edge-operator-public-traefik"
    assert traefik["roleRef"]["name"] == "edge-operator-traefik"
    assert nginx["metadata"]["name"] == "edge-operator-public-ingress-nginx"
    assert traefik["subjects"] == [
        {"kind": "ServiceAccount", "name": "public", "namespace": "edge-system"}
    ]


def test_pods_are_pinned_to_the_gateways_edge_nodes() -> None:
    pod = pod_spec(spec(nodes={"selector": {}, "roleLabel": "example.com/edge"}))
    assert pod["nodeSelector"] == {"example.com/edge": "", names.GATEWAY_LABEL: "public"}
    assert pod["tolerations"] == [
        {"key": "example.com/edge", "operator": "Equal", "value": "", "effect": "NoSchedule"}
    ]
    untainted = pod_spec(spec(nodes={"selector": {}, "taint": {"effect": "None"}}))
    assert untainted["tolerations"] == []
    custom = pod_spec(
        spec(nodes={"selector": {}, "taint": {"key": "t", "value": "v", "effect": "NoExecute"}})
    )
    assert custom["tolerations"] == [
        {"key": "t", "operator": "Equal", "value": "v", "effect": "NoExecute"}
    ]


def test_rollout_keeps_a_local_endpoint_on_every_node() -> None:
    deploy = objects(spec())["Deployment"]
    template = deploy["spec"]["template"]
    revision = template["metadata"]["labels"][names.TEMPLATE_HASH_LABEL]
    same = {names.GATEWAY_LABEL: "public", names.COMPONENT_LABEL: "controller"}
    anti = template["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert anti == [
        {
            "labelSelector": {"matchLabels": {**same, names.TEMPLATE_HASH_LABEL: revision}},
            "topologyKey": "kubernetes.io/hostname",
        }
    ]
    prefer = template["spec"]["affinity"]["podAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ][0]["podAffinityTerm"]
    assert prefer["labelSelector"]["matchExpressions"] == [
        {"key": names.TEMPLATE_HASH_LABEL, "operator": "NotIn", "values": [revision]}
    ]
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}
    spread = template["spec"]["topologySpreadConstraints"][0]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == (
        "topology.kubernetes.io/zone",
        "ScheduleAnyway",
    )
    assert deploy["spec"]["selector"] == {"matchLabels": same}


def test_drain_timing_comes_from_the_health_check() -> None:
    """minReadySeconds: the load balancer's time to see a node's change of health; the
    preStop delay adds one interval, the providers' keep-alive limit, in which the
    leaving pod closes its keep-alive connections with 'Connection: close'."""
    check = {"loadBalancerHealthCheck": {"intervalSeconds": 5, "unhealthyThreshold": 2}}
    deploy = objects(spec(rollout=check))["Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["minReadySeconds"] == 15
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 20}}}
    # Defaults: 10 s interval, 3 checks; 60 s of shutdown grace.
    assert objects(spec())["Deployment"]["spec"]["minReadySeconds"] == 40
    assert pod_spec(spec())["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == 50
    assert pod_spec(spec())["terminationGracePeriodSeconds"] == 50 + 60


@pytest.mark.parametrize("provider", ["traefik", "ingress-nginx"])
@pytest.mark.parametrize("grace", [10, 300, 3600])
def test_termination_grace_is_the_drain_plus_the_shutdown_grace(provider: str, grace: int) -> None:
    """The kubelet counts the preStop hook against terminationGracePeriodSeconds and
    sends SIGKILL when it is used up: after the drain the controller must have the
    whole shutdown grace, whichever provider runs."""
    rollout = {
        "loadBalancerHealthCheck": {"intervalSeconds": 5, "unhealthyThreshold": 2},
        "shutdownGraceSeconds": grace,
    }
    pod = pod_spec(spec(controller={"provider": provider}, rollout=rollout))

    assert pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == 20
    assert pod["terminationGracePeriodSeconds"] == 20 + grace


def test_startup_probes_wait_for_what_each_provider_needs() -> None:
    """Until a startup probe has passed the kubelet runs neither liveness nor readiness
    probes; ingress-nginx gets 60 s (30 probes, 2 s apart, so it turns Ready as soon as
    it can) before liveness may restart it: its /healthz answers only once nginx runs
    and its Lua balancer has its first configuration (internal/ingress/controller/
    checker.go). Traefik's /ping answers before any route is loaded, so its startup
    probe asks for the gateway's readiness route, for up to 120 s."""
    nginx = pod_spec(spec(controller={"provider": "ingress-nginx"}))["containers"][0]
    assert nginx["startupProbe"] == {
        "httpGet": {"path": "/healthz", "port": 10254},
        "periodSeconds": 2,
        "failureThreshold": 30,
        "timeoutSeconds": 2,
    }
    assert nginx["livenessProbe"]["httpGet"] == nginx["startupProbe"]["httpGet"]
    assert pod_spec(spec())["containers"][0]["startupProbe"] == {
        "httpGet": {
            "path": "/ping",
            "port": 8000,
            "httpHeaders": [{"name": "Host", "value": "public.readiness.edgeoperator.invalid"}],
        },
        "periodSeconds": 2,
        "failureThreshold": 60,
        "timeoutSeconds": 2,
    }


def test_readiness_route_reaches_the_ping_port_of_every_pod_even_not_ready() -> None:
    built = objects(spec())
    svc, route = built["Readiness Service"], built["Readiness Ingress"]
    assert svc["metadata"]["name"] == route["metadata"]["name"] == "public-routes"
    assert svc["spec"] == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": built["Deployment"]["spec"]["selector"]["matchLabels"],
        "ports": [{"name": "ping", "port": 8080, "targetPort": 8080, "protocol": "TCP"}],
    }
    assert route["spec"]["ingressClassName"] == "public"
    (rule,) = route["spec"]["rules"]
    assert rule["host"] == "public.readiness.edgeoperator.invalid"
    assert rule["http"]["paths"] == [
        {
            "path": "/ping",
            "pathType": "Exact",
            "backend": {"service": {"name": "public-routes", "port": {"name": "ping"}}},
        }
    ]


def test_readiness_route_names_stay_dns_labels() -> None:
    long = "g" * 63
    name = names.readiness_name(long)
    assert len(name) <= 63
    assert name.endswith("-routes")
    assert name != names.readiness_name("g" * 62)


@pytest.mark.parametrize(
    ("provider", "ports"), [("traefik", "8000,8443"), ("ingress-nginx", "80,443")]
)
def test_linkerd_skips_the_ports_the_provider_listens_on(provider: str, ports: str) -> None:
    template = objects(spec(controller={"provider": provider}, mesh={"provider": "Linkerd"}))[
        "Deployment"
    ]["spec"]["template"]
    assert template["metadata"]["annotations"]["config.linkerd.io/skip-inbound-ports"] == ports


def test_pods_meet_the_restricted_pod_security_profile() -> None:
    for provider in ("traefik", "ingress-nginx"):
        pod = pod_spec(spec(controller={"provider": provider}))
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        sc = pod["containers"][0]["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        # The only capability the "restricted" profile allows adding.
        added = set(sc["capabilities"].get("add", []))
        assert added <= {"NET_BIND_SERVICE"}
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] > 0
        ports = [p["containerPort"] for p in pod["containers"][0]["ports"]]
        if min(ports) < 1024:
            assert added == {"NET_BIND_SERVICE"}, "privileged ports need NET_BIND_SERVICE"


def test_template_hash_follows_the_pod_template_only() -> None:
    def revision(s: api.EdgeGatewaySpec, nodes: int = 3) -> str:
        deploy = objects(s, nodes)["Deployment"]
        label: str = deploy["spec"]["template"]["metadata"]["labels"][names.TEMPLATE_HASH_LABEL]
        return label

    base = revision(spec())
    assert revision(spec(), nodes=5) == base
    assert revision(spec(controller={"image": "example/traefik:v9"})) != base
    assert revision(spec(controller={"podAnnotations": {"a": "b"}})) != base
    assert revision(spec(rollout={"shutdownGraceSeconds": 61})) != base


def test_replicas() -> None:
    def count(nodes: int, replicas: int | None = None, autoscaled: int | None = None) -> int:
        s = spec(controller={"replicas": replicas}) if replicas else spec()
        return workload.replicas(workload.Inputs(OWNER, s, nodes, autoscaled))

    assert count(3) == 3
    assert count(0) == 0
    assert count(3, replicas=2) == 2
    assert count(3, replicas=5) == 3  # one per node at most
    assert count(3, autoscaled=7) == 7  # an HPA owns the number


def test_service() -> None:
    svc = objects(
        spec(
            service={
                "annotations": {"lb.example.com/x": "y"},
                "loadBalancerSourceRanges": ["203.0.113.0/24"],
                "ports": {"http": 8080, "https": 8443},
                "ipFamilyPolicy": "PreferDualStack",
            }
        )
    )["Service"]
    body = svc["spec"]
    assert body["type"] == "LoadBalancer"
    assert body["externalTrafficPolicy"] == "Local"
    assert body["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
        {"name": "https", "port": 8443, "targetPort": "https", "protocol": "TCP"},
    ]
    assert body["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert body["ipFamilyPolicy"] == "PreferDualStack"
    assert svc["metadata"]["annotations"]["lb.example.com/x"] == "y"
    # Allocated by the API server, never sent (so never overwritten).
    for allocated in ("clusterIP", "clusterIPs", "healthCheckNodePort"):
        assert allocated not in body
    assert all("nodePort" not in p for p in body["ports"])
    assert "loadBalancerClass" not in body


def test_ingress_class() -> None:
    plain = objects(spec())["IngressClass"]
    assert plain["metadata"]["name"] == "public"
    assert plain["spec"] == {"controller": "traefik.io/ingress-controller"}
    assert names.DEFAULT_CLASS_ANNOTATION not in plain["metadata"]["annotations"]
    named = objects(spec(controller={"ingressClass": {"name": "web", "default": True}}))
    assert named["IngressClass"]["metadata"]["name"] == "web"
    assert (
        named["IngressClass"]["metadata"]["annotations"][names.DEFAULT_CLASS_ANNOTATION] == "true"
    )


def as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the API server would return it: defaults, allocations, others' fields."""
    out = copy.deepcopy(obj)
    out["metadata"]["resourceVersion"] = "42"
    out["metadata"]["annotations"]["example.com/by-someone-else"] = "x"
    out["status"] = {"observedGeneration": 1}
    if out["kind"] == "Service":
        out["spec"]["clusterIP"] = "10.96.0.20"
        out["spec"]["healthCheckNodePort"] = 31000
        for i, port in enumerate(out["spec"]["ports"]):
            port["nodePort"] = 30000 + i
    if out["kind"] == "Deployment":
        container = out["spec"]["template"]["spec"]["containers"][0]
        container["terminationMessagePath"] = "/dev/termination-log"
        container["imagePullPolicy"] = "IfNotPresent"
        out["spec"]["progressDeadlineSeconds"] = 600
    return out


def test_a_converged_object_needs_no_write() -> None:
    s = spec(controller={"resources": {"requests": {"cpu": "0.5"}}, "provider": "ingress-nginx"})
    for obj in objects(s).values():
        stored = as_stored(obj)
        if obj["kind"] == "Deployment":
            # The API server stores quantities canonically.
            stored["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = (
                "500m"
            )
        assert action(obj, stored) is None, obj["kind"]
        assert action(obj, None) == "Create"


def test_drift_and_spec_changes_need_an_update() -> None:
    desired = objects(spec())["Service"]
    drifted = as_stored(desired)
    drifted["spec"]["externalTrafficPolicy"] = "Cluster"
    assert action(desired, drifted) == "Update"
    # A field the operator stopped setting: only the hash tells.
    before = objects(spec(service={"annotations": {"lb.example.com/a": "b"}}))["Service"]
    after = objects(spec())["Service"]
    stored = as_stored(before)
    assert stored["metadata"]["annotations"]["lb.example.com/a"] == "b"
    assert action(after, stored) == "Update"


def test_atomic_fields_must_match_exactly() -> None:
    desired = objects(spec())["Deployment"]
    drifted = as_stored(desired)
    drifted["spec"]["template"]["spec"]["nodeSelector"]["extra"] = "x"
    assert action(desired, drifted) == "Update"
    svc = objects(spec())["Service"]
    widened = as_stored(svc)
    widened["spec"]["selector"]["more"] = "y"
    assert action(svc, widened) == "Update"
    # Elsewhere, fields others add are theirs.
    extra = as_stored(desired)
    extra["spec"]["template"]["metadata"]["annotations"] = {
        **desired["spec"]["template"]["metadata"]["annotations"],
        "kubectl.kubernetes.io/restartedAt": "t",
    }
    assert action(desired, extra) is None


def test_contains() -> None:
    assert contains({"a": 1, "b": 2}, {"a": 1})
    assert not contains({"a": 1}, {"a": 2})
    assert contains({}, {"annotations": {}})
    assert not contains({"l": [1, 2]}, {"l": [1]})
    assert contains({"l": [{"x": 1, "y": 2}]}, {"l": [{"x": 1}]})
    assert contains({"cpu": "1"}, {"cpu": 1})
    assert contains({"m": "1Gi"}, {"m": "1024Mi"})
    assert not contains({"n": 1}, {"n": True})
    assert not contains({"s": "http"}, {"s": "https"})


def test_addresses() -> None:
    svc = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.io"}]}}}
    assert addresses(svc) == [
        {"type": "IPAddress", "value": "192.0.2.1"},
        {"type": "Hostname", "value": "lb.io"},
    ]
    assert addresses(None) == []


# --- workload conditions ----------------------------------------------------------------------


def facts(pods: tuple[PodFacts, ...] = (), **spec_fields: Any) -> Facts:
    gw = GatewayFacts.from_api(
        {
            "metadata": {"name": "public", "generation": 1, "creationTimestamp": T0},
            "spec": {"nodes": {"selector": {}}, **spec_fields},
        }
    )
    nodes = {n: NodeFacts(n, {}, ready=True) for n in ("n1", "n2")}
    return Facts(gateway=gw, others=(), nodes=nodes, controller_pods=pods, now=T0)


DEPLOY = Key("Deployment", "edge-system", "public")
SVC = Key("Service", "edge-system", "public")


def deployment_status(replicas: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True"}],
            **status,
        },
    }


def controller(deploy: dict[str, Any] | None, pods: tuple[PodFacts, ...]) -> status_rules.Cond:
    view = status_rules.Workload(
        objects={DEPLOY: deploy} if deploy else {}, deployment=DEPLOY, service=SVC
    )
    return status_rules.controller_condition(facts(pods), NodeDecision(selected=("n1", "n2")), view)


BOTH = (PodFacts("p1", "n1", True), PodFacts("p2", "n2", True))


def test_controller_available() -> None:
    ok = controller(deployment_status(), BOTH)
    assert (ok.status, ok.reason) == ("True", "Available")
    assert controller(None, ()).reason == "DeploymentMissing"
    rolling = controller(deployment_status(updatedReplicas=1), BOTH)
    assert (rolling.status, rolling.reason) == ("False", "RollingOut")
    bare = controller(deployment_status(), (PodFacts("p1", "n1", True),))
    assert (bare.reason, bare.message.endswith(": n2")) == ("NodesWithoutController", True)
    stuck = deployment_status(
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ]
    )
    assert controller(stuck, BOTH).reason == "RolloutStuck"


def test_failures_and_missing_roles_degrade_the_gateway() -> None:
    view = status_rules.Workload(
        objects={DEPLOY: deployment_status()},
        deployment=DEPLOY,
        service=SVC,
        failures=((Key("IngressClass", "", "web"), "ObjectConflict", "not ours"),),
    )
    status = status_rules.gateway_status(
        facts(BOTH), NodeDecision(selected=("n1", "n2")), True, view
    )
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["ControllerAvailable"]["reason"] == "ObjectConflict"
    assert "IngressClass web" in by_type["ControllerAvailable"]["message"]
    assert status["phase"] == "Degraded"
    missing = status_rules.Workload(
        objects={DEPLOY: deployment_status()},
        deployment=DEPLOY,
        service=SVC,
        missing_roles=("edge-operator-traefik",),
    )
    cond = status_rules.controller_condition(facts(BOTH), NodeDecision(selected=("n1",)), missing)
    assert cond.reason == "ProviderRBACMissing"


def test_ready_needs_the_controller_and_an_address_but_not_local_policy() -> None:
    svc = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    view = status_rules.Workload(
        objects={DEPLOY: deployment_status(), SVC: svc}, deployment=DEPLOY, service=SVC
    )
    decision = NodeDecision(selected=("n1", "n2"))
    status = status_rules.gateway_status(
        facts(BOTH, service={"externalTrafficPolicy": "Cluster"}), decision, True, view
    )
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["status"] == "True"
    assert by_type["ClientIPPreserved"]["reason"] == "ExternalTrafficPolicyCluster"
    assert status["addresses"] == [{"type": "IPAddress", "value": "192.0.2.1"}]
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    no_address = status_rules.Workload(
        objects={DEPLOY: deployment_status(), SVC: {}}, deployment=DEPLOY, service=SVC
    )
    pending = status_rules.gateway_status(facts(BOTH), decision, True, no_address)
    by_type = {c["type"]: c for c in pending["conditions"]}
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "AddressPending")
    assert pending["phase"] == "Provisioning"


def test_paused_plan_lists_object_changes() -> None:
    view = status_rules.Workload(pending=((DEPLOY, "Create"), (SVC, "Update")))
    status = status_rules.gateway_status(
        facts(paused=True), NodeDecision(selected=("n1",)), False, view
    )
    assert status["plan"]["objects"] == [
        {"kind": "Deployment", "name": "public", "namespace": "edge-system", "action": "Create"},
        {"kind": "Service", "name": "public", "namespace": "edge-system", "action": "Update"},
    ]
    assert status["phase"] == "Paused"


def test_committed_provider_rbac_is_up_to_date() -> None:
    committed = (CHART_FILES / "provider-clusterroles.yaml").read_text()
    assert committed == provider_rbac(), "run `make generate` and commit the chart's files/"


def test_strays_are_pods_on_nodes_that_left_the_pool() -> None:
    pods = [
        PodFacts("a", "n1", True, "edge-system"),
        PodFacts("b", "gone", True, "edge-system"),
        PodFacts("c", "gone", True, "edge-system", terminating=True),
        PodFacts("d", "", False, "edge-system"),  # not scheduled yet
    ]
    assert [p.name for p in workload.strays(pods, ["n1", "n2"])] == ["b"]


def test_apply_policies_come_from_each_objects_module() -> None:
    """Immutable fields: a binding's roleRef and an IngressClass's controller make the
    object be deleted and created again; never a Service or a Deployment, and a
    Namespace is never among the kinds a gateway owns (so never deleted)."""
    assert {"ClusterRoleBinding", "RoleBinding", "IngressClass", "GatewayClass"} == (
        workload.RECREATE
    )
    assert not {"Service", "Deployment"} & workload.RECREATE
    assert "Namespace" not in workload.OWNED_KINDS
    served = spec(gatewayAPI={"enabled": True})
    built = {o["kind"] for o in workload.build(workload.Inputs(OWNER, served, 2, None, True))}
    assert workload.RECREATE - {"RoleBinding"} <= built
