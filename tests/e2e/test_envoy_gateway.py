"""controller.provider envoy-gateway on a real control plane: the EnvoyProxy and the
GatewayClass the operator writes (owned, drift put back, deleted with the gateway), what
it reads back from what Envoy Gateway made, and its refusals: Envoy Gateway missing
(then installed, no restart), a GatewayClass of someone else.

Envoy Gateway's control plane does not run here (kwok runs the pods): where it would
make the Envoy Deployment and Service for the class, the test makes them, as the
workload tests play the cloud's load-balancer controller. Envoy Gateway doing it for
real, and traffic through it, is the lab's (tests/dataplane).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from edge_operator import names
from edge_operator.desired.providers import envoy_gateway
from tests.e2e.cluster import Cluster, Gateways, condition, wait_for
from tests.e2e.operator import OperatorProcess
from tests.e2e.test_workload import NS, edge_pool, spec_for

MakeNode = Callable[..., dict[str, Any]]
GROUP, VERSION = names.GATEWAY_API_GROUP, "v1"
EG_GROUP, EG_VERSION = names.ENVOY_GATEWAY_GROUP, "v1alpha1"
#: Where Envoy Gateway makes the Envoy fleet (its chart's namespace).
EG_NS = "envoy-gateway-system"
LB_IP = "192.0.2.40"


@pytest.fixture(scope="module")
def envoy_gateway_crds(cluster: Cluster) -> None:
    cluster.install_envoy_gateway_crds()


def spec(unique: str, **extra: Any) -> dict[str, Any]:
    return spec_for(
        unique,
        controller={"provider": "envoy-gateway"},
        gatewayAPI={"enabled": True, **extra},
    )


def envoy_proxy(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.custom_object(EG_GROUP, EG_VERSION, "envoyproxies", name, NS)


def client_policy(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    return cluster.custom_object(EG_GROUP, EG_VERSION, "clienttrafficpolicies", name, namespace)


def gateway_class(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.custom_object(GROUP, VERSION, "gatewayclasses", name)


def play_envoy_gateway(cluster: Cluster, class_name: str, proxy: dict[str, Any]) -> None:
    """What Envoy Gateway makes for a class from its EnvoyProxy: the Envoy Deployment on
    the edge nodes and the LoadBalancer Service, in its namespace, labelled with the class."""
    try:
        cluster.core.create_namespace({"metadata": {"name": EG_NS}})
    except ApiException as error:
        if error.status != 409:
            raise
    k8s = proxy["spec"]["provider"]["kubernetes"]
    wanted, pod = k8s["envoyDeployment"], k8s["envoyDeployment"]["pod"]
    labels = {envoy_gateway.OWNING_CLASS_LABEL: class_name, "app.kubernetes.io/name": "envoy"}
    cluster.apps.create_namespaced_deployment(
        EG_NS,
        {
            "metadata": {"name": wanted["name"], "labels": labels},
            "spec": {
                "replicas": wanted["replicas"],
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": pod["nodeSelector"],
                        "tolerations": pod["tolerations"],
                        "affinity": pod["affinity"],
                        "containers": [{"name": "envoy", "image": wanted["container"]["image"]}],
                    },
                },
            },
        },
    )
    service = k8s["envoyService"]
    cluster.core.create_namespaced_service(
        EG_NS,
        {
            "metadata": {"name": service["name"], "labels": labels},
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": service["externalTrafficPolicy"],
                "selector": labels,
                "ports": [{"name": "http-80", "port": 80, "targetPort": 10080}],
            },
        },
    )
    cluster.assign_load_balancer(EG_NS, service["name"], LB_IP)


def create_gateway(cluster: Cluster, namespace: str, name: str, class_name: str) -> None:
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "gateways",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Gateway",
         "metadata": {"name": name, "namespace": namespace},
         "spec": {"gatewayClassName": class_name,
                  "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}},
    )  # fmt: skip


def test_missing_envoy_gateway_is_reported_then_served_once_installed(
    cluster: Cluster,
    gateways: Gateways,
    make_node: MakeNode,
    operator: OperatorProcess,
    unique: str,
) -> None:
    edge_pool(make_node, unique, count=2)
    cluster.remove_envoy_gateway_crds()
    name = f"egmiss-{unique}"
    try:
        gateways.create(name, spec(unique))
        obj = gateways.wait_condition(name, "ControllerAvailable", "False", "EnvoyGatewayMissing")
        assert obj["status"]["phase"] == "Degraded"
        assert envoy_gateway.ENVOY_PROXY_CRD in condition(obj, "ControllerAvailable")["message"]  # type: ignore[index]
        # Nodes are edge nodes meanwhile, as for every provider; nothing else is made.
        assert condition(obj, "NodesConfigured")["status"] == "True"  # type: ignore[index]
        assert gateway_class(cluster, name) is None
        assert operator.proc is not None
        pid = operator.proc.pid
    finally:
        cluster.install_envoy_gateway_crds()
    wait_for(lambda: envoy_proxy(cluster, name), "the EnvoyProxy once Envoy Gateway is there")
    gateways.wait_condition(name, "ControllerAvailable", "False", "NoGateways", timeout=30)
    assert gateway_class(cluster, name) is not None
    assert operator.proc is not None
    assert operator.proc.pid == pid  # no restart


def written(cluster: Cluster, name: str, uid: str) -> dict[str, Any]:
    """The EnvoyProxy and the GatewayClass of gateway ``name``, as Envoy Gateway needs
    them; nothing else of the operator's (returns the EnvoyProxy)."""
    proxy = wait_for(lambda: envoy_proxy(cluster, name), f"EnvoyProxy {NS}/{name}")
    [ref] = proxy["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"]) == ("EdgeGateway", uid)
    assert proxy["metadata"]["labels"][names.GATEWAY_LABEL] == name
    k8s = proxy["spec"]["provider"]["kubernetes"]
    assert k8s["envoyDeployment"]["pod"]["nodeSelector"] == {
        names.DEFAULT_ROLE_LABEL: "",
        names.GATEWAY_LABEL: name,
    }
    assert k8s["envoyDeployment"]["replicas"] == 2
    assert k8s["envoyService"]["externalTrafficPolicy"] == "Local"
    assert proxy["spec"]["mergeGateways"] is True
    cls = wait_for(lambda: gateway_class(cluster, name), f"GatewayClass {name}")
    assert cls["spec"]["controllerName"] == envoy_gateway.GATEWAY_CONTROLLER
    assert cls["spec"]["parametersRef"] == {
        "group": EG_GROUP, "kind": "EnvoyProxy", "name": name, "namespace": NS,
    }  # fmt: skip
    # The operator runs no pods, Service or RBAC of its own for this provider.
    with pytest.raises(ApiException) as none:
        cluster.apps.read_namespaced_deployment(name, NS)
    assert none.value.status == 404
    assert not cluster.core.list_namespaced_service(
        NS, label_selector=f"{names.GATEWAY_LABEL}={name}"
    ).items
    return proxy


@pytest.mark.usefixtures("envoy_gateway_crds")
def test_what_envoy_gateway_reads_is_written_kept_and_read_back(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge, _ = edge_pool(make_node, unique, count=2)
    name = f"eg-{unique}"
    made = gateways.create(name, spec(unique))

    proxy = written(cluster, name, made["metadata"]["uid"])

    # Drift on the EnvoyProxy is put back.
    cluster.custom.patch_namespaced_custom_object(
        EG_GROUP, EG_VERSION, NS, "envoyproxies", name, {"spec": {"mergeGateways": False}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    wait_for(
        lambda: (envoy_proxy(cluster, name) or {}).get("spec", {}).get("mergeGateways") is True,
        "mergeGateways restored",
    )

    # No Gateway of the class: Envoy Gateway makes no fleet yet. One Gateway, and the
    # fleet Envoy Gateway makes for it is read back: pods on both edge nodes, the address.
    gateways.wait_condition(name, "ControllerAvailable", "False", "NoGateways")
    create_gateway(cluster, "default", f"web-{unique}", name)
    try:
        gateways.wait_condition(name, "ControllerAvailable", "False", "EnvoyFleetPending")
        # The client-address rules, in the Gateway's namespace, naming it.
        policy = wait_for(lambda: client_policy(cluster, "default", name), "ClientTrafficPolicy")
        assert [t["name"] for t in policy["spec"]["targetRefs"]] == [f"web-{unique}"]
        assert "X-Forwarded-For" in policy["spec"]["headers"]["earlyRequestHeaders"]["remove"]
        assert policy["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
        play_envoy_gateway(cluster, name, proxy)
        obj = gateways.wait_condition(name, "ControllerAvailable", "True", timeout=90)
        assert {
            n["name"]: n["controllerPods"] for n in obj["status"]["edgeNodes"]
        } == dict.fromkeys(edge, 1)
        obj = gateways.wait_condition(name, "LoadBalancerReady", "True")
        assert obj["status"]["addresses"] == [{"type": "IPAddress", "value": LB_IP}]
        assert condition(obj, "ObjectsOwned")["status"] == "True"  # type: ignore[index]

        # A second Gateway elsewhere gets its namespace's policy; the policy goes with the
        # namespace's last Gateway.
        create_gateway(cluster, NS, f"web2-{unique}", name)
        wait_for(lambda: client_policy(cluster, NS, name), "a policy beside the second Gateway")
        cluster.custom.delete_namespaced_custom_object(
            GROUP, VERSION, NS, "gateways", f"web2-{unique}"
        )
        wait_for(lambda: client_policy(cluster, NS, name) is None, "that policy deleted")
        assert client_policy(cluster, "default", name) is not None

        # Deleted: the EnvoyProxy, the class and the policy go with it (Envoy Gateway
        # then removes its fleet), the nodes are restored.
        gateways.delete(name)
        wait_for(lambda: envoy_proxy(cluster, name) is None, "the EnvoyProxy deleted")
        wait_for(lambda: gateway_class(cluster, name) is None, "GatewayClass gone")
        wait_for(lambda: client_policy(cluster, "default", name) is None, "the policy gone")
        for node in edge:
            labels = cluster.node(node)["metadata"].get("labels") or {}
            assert names.GATEWAY_LABEL not in labels
    finally:
        cluster.custom.delete_namespaced_custom_object(
            GROUP, VERSION, "default", "gateways", f"web-{unique}"
        )
        cluster.apps.delete_namespaced_deployment(name, EG_NS)
        cluster.core.delete_namespaced_service(name, EG_NS)


@pytest.mark.usefixtures("envoy_gateway_crds")
def test_a_class_of_someone_else_is_refused_and_left_alone(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge_pool(make_node, unique, count=1)
    taken = f"eg-taken-{unique}"
    foreign = cluster.custom.create_cluster_custom_object(
        GROUP, VERSION, "gatewayclasses",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GatewayClass",
         "metadata": {"name": taken},
         "spec": {"controllerName": envoy_gateway.GATEWAY_CONTROLLER}},
    )  # fmt: skip
    try:
        name = f"egc-{unique}"
        gateways.create(name, spec(unique, gatewayClassName=taken))
        obj = gateways.wait_condition(name, "GatewayAPIReady", "False", "ObjectConflict")
        assert obj["status"]["phase"] == "Degraded"
        now = gateway_class(cluster, taken)
        assert now is not None
        assert now["metadata"]["resourceVersion"] == foreign["metadata"]["resourceVersion"]
        gateways.delete(name)
        assert gateway_class(cluster, taken) is not None
    finally:
        cluster.custom.delete_cluster_custom_object(GROUP, VERSION, "gatewayclasses", taken)
