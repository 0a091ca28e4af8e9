"""Ownership on a real control plane: the operator changes or deletes an object only
when it carries the gateway's ownerReference; a copy that merely carries the gateway's
label (kustomize, a chart that reuses the label) is left alone and reported."""

from __future__ import annotations

import copy
from typing import Any

from edge_operator import names
from tests.e2e.cluster import Cluster, Gateways, condition, gone, wait_for
from tests.e2e.operator import OperatorProcess
from tests.e2e.test_operations import samples, value
from tests.e2e.test_workload import NS, MakeNode, edge_pool, spec_for, wait_available

#: Server-set fields a copy must not carry over.
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def labelled_copy(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` as a kustomize copy of it would be: same name and labels, another
    namespace, no ownerReference, no server-set fields."""
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    for key in (*SERVER_FIELDS, "ownerReferences", "namespace", "annotations"):
        meta.pop(key, None)
    meta["namespace"] = namespace
    out.pop("status", None)
    return out


def passes(process: OperatorProcess, gateway: str) -> float:
    page = samples(process)
    return value(page, "edge_operator_reconcile_total", gateway=gateway, result="success") or 0


def test_a_labelled_copy_in_another_namespace_survives_passes_untouched_and_is_reported(  # noqa: PLR0917
    cluster: Cluster,
    gateways: Gateways,
    operator: OperatorProcess,
    make_node: MakeNode,
    namespace: str,
    unique: str,
) -> None:
    edge_pool(make_node, unique, count=2)
    name = f"own-{unique}"
    # ingress-nginx: its gateways have a ConfigMap too.
    gateways.create(name, spec_for(unique, controller={"provider": "ingress-nginx"}))
    wait_available(cluster, name, 2)

    deployment = labelled_copy(cluster.deployment(NS, name), namespace)
    deployment["spec"]["replicas"] = 1
    # The gateway's ServiceAccount exists only in its own namespace.
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    service = labelled_copy(cluster.service(NS, name), namespace)
    service["spec"] = {
        "type": "ClusterIP",
        "selector": service["spec"]["selector"],
        "ports": [{"name": p["name"], "port": p["port"]} for p in service["spec"]["ports"]],
    }
    configmap = labelled_copy(
        cluster.api.sanitize_for_serialization(cluster.core.read_namespaced_config_map(name, NS)),
        namespace,
    )
    configmap["data"] = {**(configmap.get("data") or {}), "copied": "by kustomize"}
    made = [
        cluster.apps.create_namespaced_deployment(namespace, deployment),
        cluster.core.create_namespaced_service(namespace, service),
        cluster.core.create_namespaced_config_map(namespace, configmap),
    ]
    for obj in made:
        assert obj.metadata.labels[names.GATEWAY_LABEL] == name
        assert not obj.metadata.owner_references

    def versions() -> dict[str, str]:
        return {
            "Deployment": cluster.deployment(namespace, name)["metadata"]["resourceVersion"],
            "Service": cluster.service(namespace, name)["metadata"]["resourceVersion"],
            "ConfigMap": cluster.core.read_namespaced_config_map(
                name, namespace
            ).metadata.resource_version,
        }

    # The copies' own controllers settle (the Deployment's status, the Endpoints).
    wait_available(cluster, name, 1, ns=namespace)
    settled = versions()
    obj = gateways.wait_condition(name, "ObjectsOwned", "False", "ObjectConflict")
    cond = condition(obj, "ObjectsOwned")
    assert cond is not None
    for kind in ("Deployment", "Service", "ConfigMap"):
        assert f"{kind} {namespace}/{name}" in cond["message"]

    # Three more passes (a spec change each), each seeing the copies.
    start = passes(operator, name)
    for tier in ("gold", "silver", "bronze"):
        apply_tier(cluster, gateways, operator, name, tier)
    assert passes(operator, name) - start >= 3
    # Untouched: not one write to any copy (its resourceVersion is unchanged).
    assert versions() == settled
    copied = cluster.core.read_namespaced_config_map(name, namespace)
    assert copied.data["copied"] == "by kustomize"
    assert not cluster.service(namespace, name)["metadata"].get("annotations")
    gateways.wait_condition(name, "ObjectsOwned", "False", "ObjectConflict")
    # The gateway itself is unaffected by the copies: Ready waits only on its own objects.
    gw = gateways.get(name)
    assert gw["status"]["phase"] in ("Ready", "Provisioning")

    # Deleting the gateway deletes its own objects (garbage collection), never the copies.
    gateways.delete(name)
    wait_for(
        lambda: gone(lambda: cluster.deployment(NS, name)), "the gateway's own Deployment gone"
    )
    assert versions() == settled


def apply_tier(
    cluster: Cluster, gateways: Gateways, operator: OperatorProcess, name: str, tier: str
) -> None:
    """Change the gateway's spec; wait for a pass that applied it."""
    before = passes(operator, name)
    gateways.patch(name, {"spec": {"service": {"annotations": {"lb.example.com/tier": tier}}}})
    wait_for(
        lambda: (
            passes(operator, name) > before
            and cluster.service(NS, name)["metadata"]["annotations"].get("lb.example.com/tier")
            == tier
        ),
        f"a pass that applies tier {tier}",
    )
