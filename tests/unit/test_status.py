"""Conditions, phase and status patches: pure functions."""

from __future__ import annotations

from edge_operator.desired import status as rules
from edge_operator.desired.nodes import NodeDecision, Refusal
from edge_operator.desired.objects import Key
from edge_operator.facts import Facts, GatewayFacts, NodeFacts, PodFacts

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def gw(status: dict[str, object] | None = None, **spec: object) -> GatewayFacts:
    return GatewayFacts.from_api(
        {
            "metadata": {"name": "gw", "generation": 3, "creationTimestamp": T0},
            "spec": {"nodes": {"selector": {}}, **spec},
            "status": status or {},
        }
    )


DEPLOY = Key("Deployment", "edge-system", "gw")
SVC = Key("Service", "edge-system", "gw")
#: A workload with one available pod and a load balancer address.
SERVING = rules.Workload(
    objects={
        DEPLOY: {
            "metadata": {"generation": 1},
            "spec": {"replicas": 1},
            "status": {
                "observedGeneration": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True"}],
            },
        },
        SVC: {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}},
    },
    deployment=DEPLOY,
    service=SVC,
)
POD = (PodFacts("p", "n1", ready=True),)


def test_transition_time_moves_only_on_a_flip() -> None:
    first = rules.merge_conditions([], [rules.Cond("Ready", "False", "A", "a")], T0, 1)
    same = rules.merge_conditions(first, [rules.Cond("Ready", "False", "B", "b")], T1, 2)
    assert same[0]["lastTransitionTime"] == T0
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("B", 2)
    flipped = rules.merge_conditions(same, [rules.Cond("Ready", "True", "Ok", "ok")], T1, 2)
    assert flipped[0]["lastTransitionTime"] == T1


def test_status_is_a_fixed_point() -> None:
    node = NodeFacts("n1", {"topology.kubernetes.io/zone": "z"}, ready=True)
    decision = NodeDecision(selected=("n1",))
    facts = Facts(gateway=gw(), others=(), nodes={"n1": node}, controller_pods=POD, now=T0)
    first = rules.gateway_status(facts, decision, True, SERVING)
    assert first["phase"] == "Ready"
    assert first["edgeNodes"] == [{"name": "n1", "zone": "z", "ready": True, "controllerPods": 1}]
    later = Facts(
        gateway=gw(status=first), others=(), nodes={"n1": node}, controller_pods=POD, now=T1
    )
    again = rules.gateway_status(later, decision, True, SERVING)
    assert rules.merge_patch(first, again) == {}


def test_refusal_is_degraded_and_not_ready() -> None:
    decision = NodeDecision(selected=(), refusal=Refusal("NoEdgeNodes", "none"))
    status = rules.gateway_status(Facts(gw(), (), {}, now=T0), decision, False, rules.Workload())
    by_type = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Degraded"
    assert by_type["Ready"]["status"] == "False"
    assert by_type["Ready"]["reason"] == "NoEdgeNodes"
    assert by_type["NodesConfigured"]["message"] == "none"


def test_taint_warning_does_not_block_ready() -> None:
    decision = NodeDecision(selected=("n1",), intolerant_daemonsets=("ns/ds",))
    nodes = {"n1": NodeFacts("n1", {}, ready=True)}
    facts = Facts(gw(), (), nodes, controller_pods=POD, now=T0)
    status = rules.gateway_status(facts, decision, True, SERVING)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["TaintSafe"]["status"] == "False"
    assert "ns/ds" in by_type["TaintSafe"]["message"]
    assert status["phase"] == "Ready"
    assert status["daemonSetsNotTolerating"] == ["ns/ds"]


def test_nodes_draining_before_their_release_are_named() -> None:
    decision = NodeDecision(selected=("n1",), draining=("n2",))
    nodes = {n: NodeFacts(n, {}, ready=True) for n in ("n1", "n2")}
    facts = Facts(gw(), (), nodes, controller_pods=POD, now=T0)
    status = rules.gateway_status(facts, decision, True, SERVING)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["NodesConfigured"]["status"] == "True"
    assert by_type["NodesConfigured"]["message"] == (
        "1 edge node(s): n1; draining before release: n2"
    )


def test_ingress_nginx_carries_a_deprecation_warning_that_does_not_block_ready() -> None:
    decision = NodeDecision(selected=("n1",))
    nodes = {"n1": NodeFacts("n1", {}, ready=True)}
    retired = Facts(
        gw(controller={"provider": "ingress-nginx"}), (), nodes, controller_pods=POD, now=T0
    )
    status = rules.gateway_status(retired, decision, True, SERVING)
    by_type = {c["type"]: c for c in status["conditions"]}
    warning = by_type["ProviderDeprecated"]
    assert (warning["status"], warning["reason"]) == ("True", "UpstreamRetired")
    assert "ingressNGINX.enabled" in warning["message"]
    assert status["phase"] == "Ready"
    maintained = Facts(gw(), (), nodes, controller_pods=POD, now=T0)
    types = {
        c["type"] for c in rules.gateway_status(maintained, decision, True, SERVING)["conditions"]
    }
    assert "ProviderDeprecated" not in types


def test_invalid_spec_status() -> None:
    status = rules.invalid_status({"phase": "Ready"}, 4, "spec.nodes: bad", T0)
    assert status["phase"] == "Degraded"
    assert status["observedGeneration"] == 4
    assert {c["reason"] for c in status["conditions"]} == {"InvalidSpec"}


def test_merge_patch() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "gone": True, "l": [1]}
    new = {"a": 1, "b": {"c": 2, "d": 4}, "l": [1, 2]}
    assert rules.merge_patch(old, new) == {"b": {"d": 4}, "gone": None, "l": [1, 2]}
    assert rules.merge_patch(new, new) == {}
