"""Gateway API on a real control plane: the GatewayClass an EdgeGateway owns, its
controller's configuration, status from the class and its Gateways, refusals.

No Gateway API controller runs here (kwok runs the pods): where the controller would
accept the class or program a Gateway, the test writes that status itself, as the
workload tests play the cloud's load-balancer controller. Traefik doing it for real,
and traffic through it, is tests/dataplane/test_gateway_api.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from edge_operator import names
from edge_operator.desired.providers import traefik
from tests.e2e.cluster import Cluster, Gateways, condition, wait_for
from tests.e2e.operator import OperatorProcess
from tests.e2e.test_workload import NS, edge_pool, spec_for

MakeNode = Callable[..., dict[str, Any]]
GROUP, VERSION = names.GATEWAY_API_GROUP, "v1"
NOW = "2026-01-01T00:00:00Z"


def gateway_class(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.custom_object(GROUP, VERSION, "gatewayclasses", name)


def accept(cluster: Cluster, name: str) -> None:
    """What the class's controller writes once it takes the class on."""
    obj = gateway_class(cluster, name)
    assert obj is not None
    generation = obj["metadata"]["generation"]
    cluster.custom.patch_cluster_custom_object_status(
        GROUP, VERSION, "gatewayclasses", name,
        {"status": {"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "Handled",
             "observedGeneration": generation, "lastTransitionTime": NOW},
        ]}},
    )  # fmt: skip


def create_gateway(
    cluster: Cluster, namespace: str, name: str, class_name: str, port: int
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": class_name,
            "listeners": [{"name": "http", "protocol": "HTTP", "port": port}],
        },
    }
    made: dict[str, Any] = cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "gateways", body
    )
    return made


def program(cluster: Cluster, namespace: str, name: str, accepted: bool) -> None:
    """The controller's status of a Gateway: programmed, its one listener accepted or
    refused for its port."""
    gen = cluster.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "gateways", name)[
        "metadata"
    ]["generation"]

    def cond(type_: str, ok: bool, reason: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": "True" if ok else "False",
            "reason": reason,
            "message": reason,
            "observedGeneration": gen,
            "lastTransitionTime": NOW,
        }

    listener = {
        "name": "http",
        "attachedRoutes": 0,
        "supportedKinds": [],
        "conditions": [
            cond("Accepted", accepted, "Accepted" if accepted else "PortUnavailable"),
            cond("Programmed", accepted, "Programmed" if accepted else "Invalid"),
            cond("ResolvedRefs", True, "ResolvedRefs"),
        ],
    }
    status = {
        "conditions": [cond("Accepted", True, "Accepted"), cond("Programmed", True, "Programmed")],
        "listeners": [listener],
    }
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "gateways", name, {"status": status}
    )


def container(cluster: Cluster, name: str) -> dict[str, Any]:
    c: dict[str, Any] = cluster.deployment(NS, name)["spec"]["template"]["spec"]["containers"][0]
    return c


def test_gateway_class_is_made_owned_kept_and_deleted(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge_pool(make_node, unique, count=2)
    name = f"gwapi-{unique}"
    made = gateways.create(name, spec_for(unique, gatewayAPI={"enabled": True}))

    found = wait_for(lambda: gateway_class(cluster, name), f"GatewayClass {name}")
    assert found["spec"]["controllerName"] == traefik.GATEWAY_CONTROLLER
    assert found["metadata"]["labels"][names.GATEWAY_LABEL] == name
    assert found["metadata"]["labels"][names.SERVED_BY_LABEL] == name
    assert found["metadata"]["labels"][names.MANAGED_BY_LABEL] == names.MANAGED_BY_VALUE
    [ref] = found["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"]) == ("EdgeGateway", made["metadata"]["uid"])
    obj = gateways.wait_condition(name, "GatewayAPIReady", "False", "NotAccepted")
    assert obj["status"]["gatewayClassName"] == name
    assert obj["status"]["phase"] == "Provisioning"

    # The controller serves the class: its provider flags, the Service's ports, the
    # sysctl that lets it bind them, and the Gateway API rights.
    args = container(cluster, name)["args"]
    assert "--providers.kubernetesGateway=true" in args
    assert f"--providers.kubernetesGateway.labelSelector={names.SERVED_BY_LABEL}={name}" in args
    assert f"--providers.kubernetesGateway.statusAddress.service.name={name}" in args
    assert "--entryPoints.web.address=:80/tcp" in args
    assert "--entryPoints.websecure.address=:443/tcp" in args
    pod_security = cluster.deployment(NS, name)["spec"]["template"]["spec"]["securityContext"]
    assert {"name": traefik.UNPRIVILEGED_PORT_SYSCTL, "value": "80"} in pod_security["sysctls"]
    binding = names.gateway_api_binding_name(name, "traefik")
    roles = client.RbacAuthorizationV1Api(cluster.api)
    assert roles.read_cluster_role_binding(binding).role_ref.name == traefik.GATEWAY_CLUSTER_ROLE

    # Drift on the class is put back.
    cluster.custom.patch_cluster_custom_object(
        GROUP, VERSION, "gatewayclasses", name, {"spec": {"description": "edited by hand"}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    wait_for(
        lambda: (
            (gateway_class(cluster, name) or {}).get("spec", {}).get("description")
            != "edited by hand"
        ),
        "the class's description restored",
    )

    # Off: the class and the rights go, the controller stops serving Gateways.
    gateways.patch(name, {"spec": {"gatewayAPI": {"enabled": False}}})
    wait_for(lambda: gateway_class(cluster, name) is None, f"GatewayClass {name} deleted")
    wait_for(
        lambda: "--providers.kubernetesGateway=true" not in container(cluster, name)["args"],
        "the Gateway API provider off",
    )
    status = gateways.get(name)["status"]
    assert "gatewayClassName" not in status
    assert condition(gateways.get(name), "GatewayAPIReady") is None
    with pytest.raises(ApiException) as gone:
        roles.read_cluster_role_binding(binding)
    assert gone.value.status == 404

    # On again, then the EdgeGateway deleted: its class goes with it.
    gateways.patch(name, {"spec": {"gatewayAPI": {"enabled": True}}})
    wait_for(lambda: gateway_class(cluster, name), f"GatewayClass {name} again")
    gateways.delete(name)
    wait_for(lambda: gateway_class(cluster, name) is None, "the class deleted with the gateway")


def test_status_comes_from_the_class_and_its_gateways(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, namespace: str, unique: str
) -> None:
    edge_pool(make_node, unique, count=1)
    name = f"gwst-{unique}"
    gateways.create(name, spec_for(unique, gatewayAPI={"enabled": True}))
    wait_for(lambda: gateway_class(cluster, name), f"GatewayClass {name}")
    accept(cluster, name)
    obj = gateways.wait_condition(name, "GatewayAPIReady", "True", "Accepted")
    assert obj["status"]["gatewaysProgrammed"] == 0

    # Gateways of the class, as their controller reports them: counted, and a listener
    # refused for its port is named on the EdgeGateway (a warning: Ready holds).
    create_gateway(cluster, namespace, "good", name, 80)
    create_gateway(cluster, namespace, "bad", name, 8080)
    program(cluster, namespace, "good", accepted=True)
    program(cluster, namespace, "bad", accepted=False)
    obj = gateways.wait_condition(name, "GatewayListenersAccepted", "False", "ListenerNotAccepted")
    message = condition(obj, "GatewayListenersAccepted")["message"]  # type: ignore[index]
    assert f"{namespace}/bad listener http (PortUnavailable" in message
    assert "HTTP 80" in message
    wait_for(
        lambda: gateways.get(name)["status"].get("gatewaysProgrammed") == 2,
        "two Programmed Gateways counted",
    )
    ready = condition(gateways.get(name), "Ready")
    assert ready is not None
    assert ready["reason"] != "ListenerNotAccepted"  # one user's Gateway: a warning only


def test_a_class_of_someone_else_is_refused_and_left_alone(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge_pool(make_node, unique, count=1)
    taken = f"taken-{unique}"
    foreign = cluster.custom.create_cluster_custom_object(
        GROUP, VERSION, "gatewayclasses",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GatewayClass",
         "metadata": {"name": taken}, "spec": {"controllerName": "example.com/someone-else"}},
    )  # fmt: skip
    try:
        name = f"gwc-{unique}"
        gateways.create(
            name, spec_for(unique, gatewayAPI={"enabled": True, "gatewayClassName": taken})
        )
        obj = gateways.wait_condition(name, "GatewayAPIReady", "False", "ObjectConflict")
        assert f"GatewayClass {taken}" in condition(obj, "GatewayAPIReady")["message"]  # type: ignore[index]
        assert obj["status"]["phase"] == "Degraded"
        # The rest of the workload is made; only the class is refused.
        assert condition(obj, "ControllerAvailable")["reason"] != "ObjectConflict"  # type: ignore[index]
        now = gateway_class(cluster, taken)
        assert now is not None
        assert now["metadata"]["resourceVersion"] == foreign["metadata"]["resourceVersion"]
        assert not now["metadata"].get("ownerReferences")
        gateways.delete(name)
        still = gateway_class(cluster, taken)
        assert still is not None
        assert still["metadata"]["resourceVersion"] == foreign["metadata"]["resourceVersion"]
    finally:
        cluster.custom.delete_cluster_custom_object(GROUP, VERSION, "gatewayclasses", taken)


def test_crds_installed_later_are_served_without_a_restart(
    cluster: Cluster,
    gateways: Gateways,
    make_node: MakeNode,
    operator: OperatorProcess,
    unique: str,
) -> None:
    edge_pool(make_node, unique, count=1)
    cluster.remove_gateway_api()
    try:
        name = f"gwcrd-{unique}"
        gateways.create(name, spec_for(unique, gatewayAPI={"enabled": True}))
        obj = gateways.wait_condition(name, "GatewayAPIReady", "False", "GatewayAPICRDsMissing")
        assert obj["status"]["phase"] == "Degraded"
        # Ingresses are served meanwhile; the controller is not told of Gateways yet.
        args = container(cluster, name)["args"]
        assert not [a for a in args if a.startswith("--providers.kubernetesGateway")]
        assert operator.proc is not None
        pid = operator.proc.pid
    finally:
        cluster.install_gateway_api()
    gateways.wait_condition(name, "GatewayAPIReady", "False", "NotAccepted", timeout=30)
    assert gateway_class(cluster, name) is not None
    wait_for(
        lambda: "--providers.kubernetesGateway=true" in container(cluster, name)["args"],
        "the Gateway API provider on",
    )
    assert operator.proc is not None
    assert operator.proc.pid == pid  # no restart
