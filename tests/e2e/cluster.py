"""Helpers for end-to-end tests against a real API server.

Everything here talks to a real cluster (the local control plane from
hack/localcluster.py, or any cluster given with --kubeconfig); there is no fake.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

import chart
import envoy_gateway
import gateway_api
import localcluster
from edge_operator import names

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
FIELD_MANAGER = "edge-operator-e2e"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


def wait_for(
    probe: Callable[[], T | None],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.25,
) -> T:
    """Poll ``probe`` until it returns something truthy, and return that.

    Bounded: fails with ``what`` and the last value seen after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


@dataclass
class Cluster:
    """Typed API groups of one cluster plus the objects a test made there."""

    kubeconfig: Path
    api: client.ApiClient
    #: Kubeconfig for the operator's own identity, and the audit log of its requests:
    #: only on the local control plane (None on a cluster given with --kubeconfig).
    operator_kubeconfig: Path | None = None
    audit_log: Path | None = None
    #: The hack/localcluster.py state directory (None on a cluster given with --kubeconfig).
    local_state: Path | None = None
    core: client.CoreV1Api = field(init=False)
    apps: client.AppsV1Api = field(init=False)
    custom: client.CustomObjectsApi = field(init=False)
    apiext: client.ApiextensionsV1Api = field(init=False)
    coordination: client.CoordinationV1Api = field(init=False)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.apiext = client.ApiextensionsV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    @classmethod
    def connect(cls, kubeconfig: Path, local_state: Path | None = None) -> Cluster:
        """A cluster; ``local_state``: the directory of a hack/localcluster.py cluster."""
        api = config.new_client_from_config(config_file=str(kubeconfig))
        if local_state is None:
            return cls(kubeconfig, api)
        return cls(
            kubeconfig,
            api,
            operator_kubeconfig=localcluster.operator_kubeconfig(local_state),
            audit_log=localcluster.audit_log(local_state),
            local_state=local_state,
        )

    # --- what installing the operator puts in place ---------------------------------------

    def helm(self, *args: str) -> str:
        """The helm of `make tools` against this cluster."""
        return chart.helm(*args, kubeconfig=self.kubeconfig)

    def install_chart(self, path: Path = chart.CHART, **values: str) -> None:
        """``helm upgrade --install`` of the chart as release edge-operator in edge-system.

        With ``replicaCount=0`` by default: the tests run the operator as a local
        process, so the chart provides the CRD, the RBAC and the node policy only.
        """
        self.helm(
            "upgrade", "--install", chart.RELEASE, str(path),
            "--namespace", chart.NAMESPACE, "--create-namespace",
            *chart.set_args({"replicaCount": "0", **values}), "--wait", "--timeout", "2m",
        )  # fmt: skip

    def install_gateway_api(self) -> None:
        """The Gateway API CRDs (standard channel, hack/gateway_api.py), Established."""
        gateway_api.install(self.kubeconfig)

    def install_envoy_gateway_crds(self) -> None:
        """Envoy Gateway's CRDs (hack/envoy_gateway.py), Established: what the operator
        takes for Envoy Gateway being installed (its control plane never runs here)."""
        envoy_gateway.install(self.kubeconfig)

    def remove_envoy_gateway_crds(self) -> None:
        """Delete Envoy Gateway's CRDs (and with them every object of theirs)."""
        self.remove_crds(envoy_gateway.crd_names())

    def remove_gateway_api(self) -> None:
        """Delete the Gateway API CRDs (and with them every Gateway API object)."""
        self.remove_crds(gateway_api.crd_names())

    def remove_crds(self, crds: list[str]) -> None:
        """Delete the CRDs and wait until they are gone."""
        for name in crds:
            try:
                self.apiext.delete_custom_resource_definition(name)
            except ApiException as error:
                if error.status != 404:
                    raise

        def gone() -> bool:
            listed = self.apiext.list_custom_resource_definition().items
            return not {c.metadata.name for c in listed} & set(crds)

        wait_for(gone, f"CRDs {', '.join(crds)} deleted", timeout=60)

    def custom_object(
        self, group: str, version: str, plural: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None:
        """A custom object (cluster-scoped without ``namespace``), or None when absent."""
        try:
            if namespace:
                found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                    group, version, namespace, plural, name
                )
            else:
                found = self.custom.get_cluster_custom_object(group, version, plural, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def crd(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.sanitize_for_serialization(
            self.apiext.read_custom_resource_definition(name)
        )
        return result

    def wait_crd_established(self, name: str) -> dict[str, Any]:
        def established() -> dict[str, Any] | None:
            crd = self.crd(name)
            conditions = crd.get("status", {}).get("conditions", [])
            ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
            return crd if ok else None

        return wait_for(established, f"CRD {name} Established", timeout=30)

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig that acts as the ServiceAccount, with a token from the TokenRequest
        API (the same kind of bound token a pod of that ServiceAccount gets)."""
        request = self.core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": 3600}}
        )
        conf = self.api.configuration
        user = f"system:serviceaccount:{namespace}:{name}"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "cluster",
                            "cluster": {
                                "server": conf.host,
                                "certificate-authority": conf.ssl_ca_cert,
                            },
                        }
                    ],
                    "users": [{"name": user, "user": {"token": request.status.token}}],
                    "contexts": [{"name": "sa", "context": {"cluster": "cluster", "user": user}}],
                    "current-context": "sa",
                }
            )
        )
        path.chmod(0o600)
        return path

    # --- nodes ----------------------------------------------------------------------------

    def create_node(
        self,
        name: str,
        *,
        zone: str = "zone-a",
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a Node that kwok keeps Ready, and wait until it is."""
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/zone": zone,
                    "type": "kwok",
                    **(labels or {}),
                },
                "annotations": {KWOK_ANNOTATION: "fake", **(annotations or {})},
            },
            "spec": {"providerID": f"kwok://{name}", "taints": taints or []},
            "status": localcluster.ready_status(),
        }

        self.core.create_node(body)
        return wait_for(lambda: self.node_if_settled(name), f"node {name} settled", timeout=60)

    def node(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.sanitize_for_serialization(self.core.read_node(name))
        return result

    def node_if_settled(self, name: str) -> dict[str, Any] | None:
        """The node once kwok made it Ready and the controllers are done with it.

        The controller-manager's TTL controller annotates new nodes, and its node
        lifecycle controller adds and lifts node.kubernetes.io/* taints and copies
        kubernetes.io/{os,arch} to the beta.kubernetes.io/ labels; a test's "before"
        snapshot must be taken after all that.
        """
        node = self.node(name)
        labels = node["metadata"].get("labels") or {}
        conditions = node.get("status", {}).get("conditions", [])
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        annotated = "node.alpha.kubernetes.io/ttl" in (node["metadata"].get("annotations") or {})
        system_taints = [
            t
            for t in node["spec"].get("taints") or []
            if t["key"].startswith("node.kubernetes.io/")
        ]
        beta_labels = all(
            f"beta.kubernetes.io/{k}" in labels
            for k in ("os", "arch")
            if f"kubernetes.io/{k}" in labels
        )
        settled = ready and annotated and not system_taints and beta_labels
        return node if settled else None

    def delete_node(self, name: str) -> None:
        ignore_not_found(lambda: self.core.delete_node(name))

    # --- workloads and services -----------------------------------------------------------

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.sanitize_for_serialization(
            self.apps.read_namespaced_deployment(name, namespace)
        )
        return result

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector)
        result: list[dict[str, Any]] = self.api.sanitize_for_serialization(pods.items)
        return result

    def service(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.sanitize_for_serialization(
            self.core.read_namespaced_service(name, namespace)
        )
        return result

    def assign_load_balancer(self, namespace: str, name: str, ip: str) -> None:
        """Play the cloud's load-balancer controller: publish ``ip`` in the Service status.

        The local control plane has no cloud provider, so nothing else ever fills
        ``status.loadBalancer``; a real LB controller would do exactly this patch.
        """
        self.core.patch_namespaced_service_status(
            name, namespace, {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
        )


def ignore_not_found(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 404:
            raise


def wait_first_edge_node(cluster: Cluster, gateway: str, interval: float = 0.01) -> None:
    """Wait for the gateway's first node write: its pass is under way."""
    wait_for(
        lambda: bool(
            cluster.core.list_node(label_selector=f"{names.GATEWAY_LABEL}={gateway}").items
        ),
        f"the first edge node of {gateway}",
        timeout=30,
        interval=interval,
    )


def gone(read: Callable[[], object]) -> bool:
    """Whether ``read`` (a read of one object) answers 404."""
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


GROUP, VERSION, PLURAL = "edgeoperator.dev", "v1alpha1", "edgegateways"


class Gateways:
    """EdgeGateways made by one test, and the waits tests need on them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.names: list[str] = []

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.names.append(name)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeGateway",
            "metadata": {"name": name},
            "spec": spec,
        }
        created: dict[str, Any] = self.cluster.custom.create_cluster_custom_object(
            GROUP, VERSION, PLURAL, body
        )
        return created

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.cluster.custom.get_cluster_custom_object(
            GROUP, VERSION, PLURAL, name
        )
        return obj

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = self.cluster.custom.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, name, patch, _content_type="application/merge-patch+json"
        )
        return obj

    def wait_condition(
        self,
        name: str,
        type_: str,
        status: str,
        reason: str | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        """Wait until the condition holds for the gateway's current generation."""

        def holds() -> dict[str, Any] | None:
            obj = self.get(name)
            cond = condition(obj, type_)
            current = obj.get("status", {}).get("observedGeneration") == obj["metadata"].get(
                "generation"
            )
            ok = (
                current
                and cond is not None
                and cond["status"] == status
                and (reason is None or cond["reason"] == reason)
            )
            return obj if ok else None

        what = f"{name} {type_}={status}" + (f" ({reason})" if reason else "")
        return wait_for(holds, what, timeout=timeout)

    def events(self, name: str) -> list[dict[str, Any]]:
        found = self.cluster.core.list_event_for_all_namespaces(
            field_selector=f"involvedObject.name={name},involvedObject.kind=EdgeGateway"
        )
        result: list[dict[str, Any]] = self.cluster.api.sanitize_for_serialization(found.items)
        return result

    def wait_events(self, name: str, reasons: set[str], timeout: float = 20) -> set[str]:
        """Wait until events with every one of ``reasons`` exist for the gateway.

        The operator posts events in the background after the pass that caused them, so a
        condition seen on the gateway may come before its events.
        """

        def seen() -> set[str] | None:
            found = {str(e["reason"]) for e in self.events(name)}
            return found if found >= reasons else None

        return wait_for(seen, f"events {sorted(reasons)} of {name}", timeout=timeout)

    def delete(self, name: str, timeout: float = 60) -> None:
        ignore_not_found(
            lambda: self.cluster.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        )

        def gone() -> bool:
            try:
                self.get(name)
            except ApiException as error:
                if error.status == 404:
                    return True
                raise
            return False

        wait_for(gone, f"EdgeGateway {name} deleted (its finalizer restores the nodes)", timeout)

    def delete_all(self) -> None:
        for name in reversed(self.names):
            self.delete(name)
