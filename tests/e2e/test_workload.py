"""The edge workload on a real control plane: pods per edge node, the Service, drift,
rollouts, deletion, and the operator's write requests once converged.

kwok runs the pods (Running and Ready as soon as they are bound), the scheduler
places them, the controller-manager runs the Deployments and the garbage
collector; the tests play the cloud's load-balancer controller.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

import localcluster
from edge_operator import names
from tests.e2e.cluster import Cluster, Gateways, condition, wait_for
from tests.e2e.operator import OperatorProcess

MakeNode = Callable[..., dict[str, Any]]
NS = names.DEFAULT_NAMESPACE
CONTROLLER = f"{names.COMPONENT_LABEL}={names.COMPONENT_CONTROLLER}"
#: Fast drain timing for tests: minReadySeconds becomes 2 s, the preStop delay 3 s.
FAST_ROLLOUT = {"loadBalancerHealthCheck": {"intervalSeconds": 1, "unhealthyThreshold": 1}}
OWNED = (
    ("ServiceAccount", "v1", "serviceaccounts"),
    ("ConfigMap", "v1", "configmaps"),
    ("Service", "v1", "services"),
    ("Deployment", "apps/v1", "deployments"),
    ("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets"),
    ("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings"),
    ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings"),
    ("IngressClass", "networking.k8s.io/v1", "ingressclasses"),
    ("Ingress", "networking.k8s.io/v1", "ingresses"),
)


def edge_pool(
    make_node: MakeNode, unique: str, count: int = 3, workers: int = 1
) -> tuple[list[str], list[str]]:
    """``count`` edge candidates over three zones and ``workers`` other nodes."""
    zones = ("zone-a", "zone-b", "zone-c")
    edge = [
        make_node(f"wl-{unique}-e{i}", zone=zones[i % 3], labels={"e2e-pool": unique})["metadata"][
            "name"
        ]
        for i in range(count)
    ]
    other = [make_node(f"wl-{unique}-w{i}")["metadata"]["name"] for i in range(workers)]
    return edge, other


def spec_for(unique: str, **extra: Any) -> dict[str, Any]:
    return {
        "nodes": {"selector": {"matchLabels": {"e2e-pool": unique}}},
        "rollout": FAST_ROLLOUT,
        **extra,
    }


def controller_pods(cluster: Cluster, gateway: str, ns: str = NS) -> list[dict[str, Any]]:
    return cluster.pods(ns, f"{names.GATEWAY_LABEL}={gateway},{CONTROLLER}")


def ready(pod: dict[str, Any]) -> bool:
    return (
        not pod["metadata"].get("deletionTimestamp")
        and (condition(pod, "Ready") or {}).get("status") == "True"
    )


def count_ready_by_node(pods: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pod in pods:
        if ready(pod):
            node = pod["spec"].get("nodeName", "")
            out[node] = out.get(node, 0) + 1
    return out


def ready_pods_by_node(cluster: Cluster, gateway: str, ns: str = NS) -> dict[str, int]:
    return count_ready_by_node(controller_pods(cluster, gateway, ns))


def wait_available(cluster: Cluster, gateway: str, replicas: int, ns: str = NS) -> dict[str, Any]:
    def available() -> dict[str, Any] | None:
        try:
            deploy = cluster.deployment(ns, gateway)
        except ApiException:
            return None
        status = deploy.get("status") or {}
        done = (
            deploy["spec"]["replicas"] == replicas
            and status.get("observedGeneration") == deploy["metadata"]["generation"]
            and status.get("updatedReplicas") == replicas
            and status.get("availableReplicas") == replicas
            and status.get("replicas") == replicas
            and (condition(deploy, "Available") or {}).get("status") == "True"
        )
        return deploy if done else None

    return wait_for(available, f"Deployment {ns}/{gateway} Available with {replicas}", 90)


def test_one_controller_pod_per_edge_node_then_ready_with_an_address(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge, workers = edge_pool(make_node, unique, count=3, workers=2)
    name = f"wl-{unique}"
    gateways.create(name, spec_for(unique))

    deploy = wait_available(cluster, name, 3)
    assert deploy["spec"]["template"]["spec"]["nodeSelector"] == {
        names.DEFAULT_ROLE_LABEL: "",
        names.GATEWAY_LABEL: name,
    }
    assert wait_for(
        lambda: (
            (by_node := ready_pods_by_node(cluster, name)) == dict.fromkeys(edge, 1) and by_node
        ),
        "one ready controller pod on each edge node",
    )
    on_workers = [p for p in controller_pods(cluster, name) if p["spec"].get("nodeName") in workers]
    assert on_workers == []

    svc = cluster.service(NS, name)
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    assert svc["spec"]["healthCheckNodePort"] > 0
    assert svc["spec"]["selector"] == {
        names.GATEWAY_LABEL: name,
        names.COMPONENT_LABEL: names.COMPONENT_CONTROLLER,
    }
    obj = gateways.wait_condition(name, "LoadBalancerReady", "False", "AddressPending")
    assert condition(obj, "Ready")["status"] == "False"  # type: ignore[index]

    cluster.assign_load_balancer(NS, name, "203.0.113.10")
    obj = gateways.wait_condition(name, "Ready", "True")
    status = obj["status"]
    assert status["addresses"] == [{"type": "IPAddress", "value": "203.0.113.10"}]
    assert (status["replicas"], status["readyReplicas"], status["edgeNodeCount"]) == (3, 3, 3)
    assert status["ingressClassName"] == name
    assert status["phase"] == "Ready"
    assert {n["name"]: n["controllerPods"] for n in status["edgeNodes"]} == dict.fromkeys(edge, 1)
    for type_ in ("NodesConfigured", "ControllerAvailable", "LoadBalancerReady"):
        assert condition(obj, type_)["status"] == "True", type_  # type: ignore[index]

    table = subprocess.run(
        [str(localcluster.kubectl_path()), "--kubeconfig", str(cluster.kubeconfig),
         "get", "egw", name],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")  # fmt: skip
    header, row = table[0].split(), table[1].split()
    shown = dict(zip(header, row, strict=False))
    assert shown["READY"] == "True"
    assert shown["NODES"] == "3"
    assert (shown["REPLICAS"], shown["READY-REPLICAS"]) == ("3", "3")
    assert shown["ADDRESS"] == "203.0.113.10"


def test_edge_nodes_coming_and_going_change_the_replicas(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge, _ = edge_pool(make_node, unique, count=2)
    name = f"wl-{unique}"
    gateways.create(name, spec_for(unique))
    wait_available(cluster, name, 2)

    added = make_node(f"wl-{unique}-e9", zone="zone-c", labels={"e2e-pool": unique})
    wait_available(cluster, name, 3)
    wait_for(
        lambda: ready_pods_by_node(cluster, name).get(added["metadata"]["name"]) == 1,
        "a controller pod on the new edge node",
    )

    # The node leaves the selection: its label goes, so does its pod.
    cluster.core.patch_node(edge[0], {"metadata": {"labels": {"e2e-pool": None}}})
    wait_available(cluster, name, 2)
    wait_for(
        lambda: edge[0] not in ready_pods_by_node(cluster, name),
        f"no controller pod left on {edge[0]}",
    )
    obj = gateways.wait_condition(name, "ControllerAvailable", "True")
    assert obj["status"]["replicas"] == 2


def allocated(svc: dict[str, Any]) -> dict[str, Any]:
    spec = svc["spec"]
    return {
        "clusterIP": spec["clusterIP"],
        "healthCheckNodePort": spec.get("healthCheckNodePort"),
        "nodePorts": sorted((p["name"], p["nodePort"]) for p in spec["ports"]),
    }


def test_drift_is_corrected_and_others_fields_are_kept(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge_pool(make_node, unique, count=2)
    name = f"wl-{unique}"
    gateways.create(name, spec_for(unique))
    wait_available(cluster, name, 2)
    gateways.wait_condition(name, "LoadBalancerReady", "False", "AddressPending")
    before = allocated(cluster.service(NS, name))

    # Another field manager adds an annotation: it stays through reconciles.
    cluster.core.patch_namespaced_service(
        name,
        NS,
        {"metadata": {"annotations": {"example.com/owner": "team-a"}}},
        field_manager="e2e-human",
    )
    # A spec change makes the operator apply the Service again.
    gateways.patch(name, {"spec": {"service": {"annotations": {"lb.example.com/tier": "gold"}}}})
    wait_for(
        lambda: (
            cluster.service(NS, name)["metadata"].get("annotations", {}).get("lb.example.com/tier")
            == "gold"
        ),
        "the new Service annotation",
    )
    svc = cluster.service(NS, name)
    assert svc["metadata"]["annotations"]["example.com/owner"] == "team-a"
    assert allocated(svc) == before

    # A human flips the traffic policy: the operator puts it back.
    cluster.core.patch_namespaced_service(
        name, NS, {"spec": {"externalTrafficPolicy": "Cluster"}}, field_manager="e2e-human"
    )
    wait_for(
        lambda: cluster.service(NS, name)["spec"]["externalTrafficPolicy"] == "Local",
        "externalTrafficPolicy restored to Local",
    )
    svc = cluster.service(NS, name)
    assert svc["metadata"]["annotations"]["example.com/owner"] == "team-a"
    assert svc["spec"]["healthCheckNodePort"] > 0
    after_restore = allocated(svc)
    # A later reconcile (a spec change) leaves every allocated field as it is.
    gateways.patch(name, {"spec": {"service": {"annotations": {"lb.example.com/tier": "silver"}}}})
    wait_for(
        lambda: (
            cluster.service(NS, name)["metadata"]["annotations"].get("lb.example.com/tier")
            == "silver"
        ),
        "the changed Service annotation",
    )
    assert allocated(cluster.service(NS, name)) == after_restore

    # Drift in the Deployment is corrected too.
    cluster.apps.patch_namespaced_deployment(
        name,
        NS,
        {"spec": {"template": {"spec": {"nodeSelector": {"e2e": "drift"}}}}},
        field_manager="e2e-human",
    )
    wait_for(
        lambda: (
            "e2e" not in cluster.deployment(NS, name)["spec"]["template"]["spec"]["nodeSelector"]
        ),
        "the Deployment's nodeSelector restored",
    )


def test_externaltrafficpolicy_cluster_is_allowed_with_a_warning(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge_pool(make_node, unique, count=1)
    name = f"wl-{unique}"
    gateways.create(name, spec_for(unique, service={"externalTrafficPolicy": "Cluster"}))
    wait_available(cluster, name, 1)
    cluster.assign_load_balancer(NS, name, "203.0.113.11")
    obj = gateways.wait_condition(name, "Ready", "True")
    warning = condition(obj, "ClientIPPreserved")
    assert warning is not None
    assert (warning["status"], warning["reason"]) == ("False", "ExternalTrafficPolicyCluster")
    assert cluster.service(NS, name)["spec"]["externalTrafficPolicy"] == "Cluster"


def test_image_rollout_keeps_a_ready_pod_on_every_edge_node(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge, _ = edge_pool(make_node, unique, count=3)
    name = f"wl-{unique}"
    gateways.create(name, spec_for(unique))
    wait_available(cluster, name, 3)
    wait_for(
        lambda: ready_pods_by_node(cluster, name) == dict.fromkeys(edge, 1),
        "one ready pod per edge node",
    )

    image = "registry.example/edge/traefik:e2e-rollout"
    gateways.patch(name, {"spec": {"controller": {"image": image}}})
    observations = 0
    deadline = time.monotonic() + 120
    while True:
        pods = controller_pods(cluster, name)
        by_node = count_ready_by_node(pods)
        bare = [n for n in edge if not by_node.get(n)]
        assert bare == [], f"edge nodes without a ready controller pod mid-rollout: {bare}"
        observations += 1
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        if images == {image} and by_node == dict.fromkeys(edge, 1):
            break
        assert time.monotonic() < deadline, f"rollout did not finish; images now {images}"
        time.sleep(0.05)
    assert observations > 10, "the rollout finished before it could be observed"
    wait_available(cluster, name, 3)
    gateways.wait_condition(name, "ControllerAvailable", "True")


def owned_objects(cluster: Cluster, gateway: str) -> list[str]:
    found = []
    for kind, api_version, plural in OWNED:
        path = ("/api/v1" if api_version == "v1" else f"/apis/{api_version}") + f"/{plural}"
        data = cluster.api.call_api(
            "GET",
            cluster.api.configuration.host
            + path
            + f"?labelSelector={names.GATEWAY_LABEL}%3D{gateway}",
        )
        data.read()
        items = json.loads(data.data)["items"]
        found += [f"{kind} {i['metadata']['name']}" for i in items]
    return sorted(found)


def test_ingress_nginx_gateway_deleted_removes_every_owned_object(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge, _ = edge_pool(make_node, unique, count=2)
    name = f"wl-{unique}"
    gateways.create(
        name,
        spec_for(
            unique,
            controller={"provider": "ingress-nginx"},
            clientIP={"mode": "XForwardedFor", "trustedCIDRs": ["198.51.100.0/24"]},
        ),
    )
    wait_available(cluster, name, 2)
    gateways.wait_condition(name, "ProviderDeprecated", "True", "UpstreamRetired")
    config = cluster.core.read_namespaced_config_map(name, NS).data
    assert config["proxy-real-ip-cidr"] == "198.51.100.0/24"
    assert (config["enable-real-ip"], config["use-forwarded-headers"]) == ("true", "false")
    present = owned_objects(cluster, name)
    # Every owned kind but the readiness route's Ingress, which only Traefik needs.
    assert {p.split()[0] for p in present} == {kind for kind, _, _ in OWNED} - {"Ingress"}

    gateways.delete(name)
    wait_for(lambda: owned_objects(cluster, name) == [], "every owned object deleted", 60)
    for node in edge:
        labels = cluster.node(node)["metadata"].get("labels") or {}
        assert names.GATEWAY_LABEL not in labels
        assert names.DEFAULT_ROLE_LABEL not in labels


def test_ingress_nginx_rollout_keeps_ingress_status_and_the_shutdown_budget(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    """A new shutdown grace rolls the pods (it is in the pod template); every pod of
    the new revision still tells ingress-nginx to leave Ingress status alone when it
    stops, and may take the drain plus the new grace to stop."""
    edge, _ = edge_pool(make_node, unique, count=2)
    name = f"wl-{unique}"
    # FAST_ROLLOUT: 1 s x (1 + 1), then one interval for keep-alive connections to close.
    pre_stop = 3
    gateways.create(
        name,
        spec_for(
            unique,
            controller={"provider": "ingress-nginx"},
            rollout={**FAST_ROLLOUT, "shutdownGraceSeconds": 15},
        ),
    )
    before = wait_available(cluster, name, 2)["spec"]["template"]["metadata"]["labels"][
        names.TEMPLATE_HASH_LABEL
    ]
    assert cluster.core.read_namespaced_config_map(name, NS).data["worker-shutdown-timeout"] == (
        "10s"
    )

    gateways.patch(name, {"spec": {"rollout": {"shutdownGraceSeconds": 40}}})

    def rolled_out() -> list[dict[str, Any]] | None:
        pods = [p for p in controller_pods(cluster, name) if ready(p)]
        revisions = {p["metadata"]["labels"][names.TEMPLATE_HASH_LABEL] for p in pods}
        on_nodes = count_ready_by_node(pods)
        return pods if before not in revisions and on_nodes == dict.fromkeys(edge, 1) else None

    pods = wait_for(rolled_out, "one ready pod of the new revision on each edge node", 120)
    deploy = wait_available(cluster, name, 2)
    assert deploy["spec"]["template"]["metadata"]["labels"][names.TEMPLATE_HASH_LABEL] != before
    for pod in pods:
        args = pod["spec"]["containers"][0]["args"]
        assert [a for a in args if a.startswith("--update-status-on-shutdown")] == [
            "--update-status-on-shutdown=false"
        ], pod["metadata"]["name"]
        assert pod["spec"]["terminationGracePeriodSeconds"] == pre_stop + 40
        lifecycle = pod["spec"]["containers"][0]["lifecycle"]
        assert lifecycle["preStop"]["sleep"]["seconds"] == pre_stop
    config = cluster.core.read_namespaced_config_map(name, NS).data
    assert config["worker-shutdown-timeout"] == "35s"
    assert config["use-forwarded-headers"] == "false"


def operator_writes(audit_log: Any, start: int, user: str | None = None) -> list[str]:
    """Write requests in the audit log after byte ``start`` (by ``user``, or any audited)."""
    writes = []
    with audit_log.open() as log:
        log.seek(start)
        for line in log:
            event = json.loads(line)
            if user is not None and event["user"]["username"] != user:
                continue
            if event["verb"] in ("create", "update", "patch", "delete", "deletecollection"):
                writes.append(f"{event['verb']} {event['requestURI']}")
    return writes


def test_converged_operator_makes_no_writes(
    cluster: Cluster,
    gateways: Gateways,
    operator: OperatorProcess,
    make_node: MakeNode,
    unique: str,
) -> None:
    if cluster.audit_log is None:
        pytest.skip("counting writes needs the local control plane's audit log")
    edge_pool(make_node, unique, count=3)
    name = f"wl-{unique}"
    gateways.create(name, spec_for(unique))
    wait_available(cluster, name, 3)
    cluster.assign_load_balancer(NS, name, "203.0.113.12")
    gateways.wait_condition(name, "Ready", "True")

    # Converged: wait until a quiet 5 s, then count every write over 60 s.
    def quiet() -> bool:
        start = cluster.audit_log.stat().st_size  # type: ignore[union-attr]
        time.sleep(5)
        return operator_writes(cluster.audit_log, start) == []

    wait_for(quiet, "5 s without a write by the operator", timeout=60, interval=0)
    start, log_start = cluster.audit_log.stat().st_size, operator.log_size()
    time.sleep(60)
    writes = operator_writes(cluster.audit_log, start)
    passes = operator.log_since(log_start).count(f"reconcile pass of {name} ")
    print(f"\noperator writes in the 60 s after convergence: {len(writes)}; passes: {passes}")
    assert writes == []
    # The window is not idle by luck: full passes (resync every 15 s) ran in it.
    assert passes >= 2


def test_noexecute_taint_waits_for_a_ready_controller_pod(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge, _ = edge_pool(make_node, unique, count=2)
    name = f"wl-{unique}"
    taint = {"key": "example.com/edge", "effect": "NoExecute"}
    gateways.create(name, spec_for(unique, nodes={**spec_for(unique)["nodes"], "taint": taint}))
    # The pods tolerate the taint and land first; then each node gets it.
    obj = gateways.wait_condition(name, "NodesConfigured", "True")
    assert sorted(n["name"] for n in obj["status"]["edgeNodes"]) == sorted(edge)
    pods_by_node = ready_pods_by_node(cluster, name)
    for node in edge:
        taints = cluster.node(node)["spec"].get("taints") or []
        assert {"key": "example.com/edge", "effect": "NoExecute"} in taints
        assert pods_by_node.get(node) == 1, f"no ready controller pod on {node}"
    tolerations = cluster.deployment(NS, name)["spec"]["template"]["spec"]["tolerations"]
    assert tolerations == [{"key": "example.com/edge", "operator": "Equal", "effect": "NoExecute"}]
