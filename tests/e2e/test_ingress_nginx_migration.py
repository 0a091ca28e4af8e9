"""spec.ingressNGINX on a real control plane: the IngressClass for Ingresses written for
ingress-nginx, the rights and flags of Traefik's kubernetesIngressNGINX provider, an
existing class of that name used and left alone, and the retired provider's warning.

Traffic through Traefik serving those Ingresses is
tests/dataplane/test_ingress_nginx_migration.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from edge_operator import names
from edge_operator.desired.providers import traefik
from tests.e2e.cluster import Cluster, Gateways, wait_for
from tests.e2e.test_workload import NS, edge_pool, spec_for

MakeNode = Callable[..., dict[str, Any]]
PROVIDER = "--providers.kubernetesIngressNGINX=true"


def args(cluster: Cluster, name: str) -> list[str]:
    """The controller's arguments ([] before its Deployment is made)."""
    try:
        spec = cluster.deployment(NS, name)["spec"]["template"]["spec"]
    except ApiException as error:
        if error.status == 404:
            return []
        raise
    found: list[str] = spec["containers"][0]["args"]
    return found


def ingress_class(cluster: Cluster, name: str) -> client.V1IngressClass | None:
    try:
        return client.NetworkingV1Api(cluster.api).read_ingress_class(name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def binding(cluster: Cluster, name: str) -> client.V1ClusterRoleBinding | None:
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    try:
        return rbac.read_cluster_role_binding(
            names.feature_binding_name(name, "traefik", "ingress-nginx")
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def test_the_class_is_made_owned_kept_and_deleted_with_the_feature(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    edge_pool(make_node, unique, count=2)
    name = f"mig-{unique}"
    class_name = f"nginx-{unique}"
    made = gateways.create(
        name,
        spec_for(unique, ingressNGINX={"enabled": True, "ingressClassName": class_name}),
    )

    found = wait_for(lambda: ingress_class(cluster, class_name), f"IngressClass {class_name}")
    assert found.spec.controller == traefik.INGRESS_NGINX_CONTROLLER
    assert found.metadata.labels[names.GATEWAY_LABEL] == name
    [ref] = found.metadata.owner_references
    assert (ref.kind, ref.uid) == ("EdgeGateway", made["metadata"]["uid"])
    bound = wait_for(lambda: binding(cluster, name), "the ingress-nginx provider's binding")
    assert bound.role_ref.name == traefik.INGRESS_NGINX_CLUSTER_ROLE
    wait_for(lambda: PROVIDER in args(cluster, name), "the kubernetesIngressNGINX provider on")
    flags = args(cluster, name)
    assert f"--providers.kubernetesIngressNGINX.ingressClass={class_name}" in flags
    assert "--providers.kubernetesIngressNGINX.ingressClassByName=true" in flags
    assert f"--providers.kubernetesIngressNGINX.publishService={NS}/{name}" in flags
    # Its own class stays served beside it.
    assert ingress_class(cluster, name) is not None

    # Deleted by hand: made again.
    client.NetworkingV1Api(cluster.api).delete_ingress_class(class_name)

    def made_again() -> bool:
        got = ingress_class(cluster, class_name)
        return got is not None and got.metadata.uid != found.metadata.uid

    wait_for(made_again, "the IngressClass made again")

    # Off: the class, the binding and the flags go.
    gateways.patch(name, {"spec": {"ingressNGINX": {"enabled": False}}})
    wait_for(lambda: ingress_class(cluster, class_name) is None, "the IngressClass deleted")
    wait_for(lambda: binding(cluster, name) is None, "the binding deleted")
    wait_for(lambda: PROVIDER not in args(cluster, name), "the provider off")

    # On again, then the gateway deleted: the class goes with it.
    gateways.patch(name, {"spec": {"ingressNGINX": {"enabled": True}}})
    wait_for(lambda: ingress_class(cluster, class_name), "the IngressClass again")
    gateways.delete(name)
    wait_for(lambda: ingress_class(cluster, class_name) is None, "deleted with the gateway")
    assert binding(cluster, name) is None


def test_an_existing_class_of_that_name_is_served_and_left_alone(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str
) -> None:
    """ingress-nginx's own IngressClass, while both run: used, never changed or deleted."""
    edge_pool(make_node, unique, count=2)
    class_name = f"nginx-{unique}"
    networking = client.NetworkingV1Api(cluster.api)
    theirs = networking.create_ingress_class(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": class_name, "labels": {"owner": "ingress-nginx"}},
            "spec": {"controller": traefik.INGRESS_NGINX_CONTROLLER},
        }
    )
    try:
        name = f"mig-{unique}"
        gateways.create(
            name,
            spec_for(unique, ingressNGINX={"enabled": True, "ingressClassName": class_name}),
        )
        wait_for(lambda: PROVIDER in args(cluster, name), "the provider on")
        assert f"--providers.kubernetesIngressNGINX.ingressClass={class_name}" in args(
            cluster, name
        )
        gateways.wait_condition(name, "ObjectsOwned", "True")
        ready = gateways.get(name)["status"]["conditions"]
        assert not [c for c in ready if c["reason"] == "ObjectConflict"], ready
        kept = networking.read_ingress_class(class_name)
        assert kept.metadata.resource_version == theirs.metadata.resource_version
        assert not kept.metadata.owner_references
        assert names.GATEWAY_LABEL not in (kept.metadata.labels or {})

        gateways.delete(name)
        assert networking.read_ingress_class(class_name).metadata.uid == theirs.metadata.uid
    finally:
        networking.delete_ingress_class(class_name)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"controller": {"provider": "ingress-nginx"}, "ingressNGINX": {"enabled": True}},
            "ingressNGINX.enabled needs controller.provider traefik",
        ),
        (
            {"ingressNGINX": {"enabled": True, "ingressClassName": "bad_name"}},
            "spec.ingressNGINX.ingressClassName",
        ),
    ],
)
def test_what_cannot_work_is_refused_at_apply_time(
    gateways: Gateways, unique: str, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as refused:
        gateways.create(f"mig-bad-{unique}", spec_for(unique, **spec))
    assert refused.value.status == 422
    assert field in str(refused.value.body)
