"""The only module that talks to the Kubernetes API.

Every call returns plain dicts in API form (decoded from the raw JSON, never the
client's model classes: a 2,000-node list as models costs ~130 MB more). API
errors become the three exceptions below so callers never see the client's types.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from edge_operator import metrics, names

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PAGE_SIZE = 500


@dataclass(frozen=True)
class Kind:
    """Where the API serves one kind of object."""

    api_version: str
    plural: str
    namespaced: bool

    @property
    def group_version(self) -> tuple[str, str]:
        """("apps", "v1") for apps/v1; ("", "v1") for the core group."""
        group, _, version = self.api_version.rpartition("/")
        return group, version

    def path(self, namespace: str = "", name: str = "") -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{quote(name, safe='')}" if name else base


#: Every kind the operator reads or writes through the generic calls below.
KINDS: Mapping[str, Kind] = {
    "Namespace": Kind("v1", "namespaces", namespaced=False),
    "Pod": Kind("v1", "pods", namespaced=True),
    "ServiceAccount": Kind("v1", "serviceaccounts", namespaced=True),
    "ConfigMap": Kind("v1", "configmaps", namespaced=True),
    "Service": Kind("v1", "services", namespaced=True),
    "Deployment": Kind("apps/v1", "deployments", namespaced=True),
    "PodDisruptionBudget": Kind("policy/v1", "poddisruptionbudgets", namespaced=True),
    "IngressClass": Kind("networking.k8s.io/v1", "ingressclasses", namespaced=False),
    "Ingress": Kind("networking.k8s.io/v1", "ingresses", namespaced=True),
    "ClusterRole": Kind("rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False),
    "ClusterRoleBinding": Kind(
        "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False
    ),
    "RoleBinding": Kind("rbac.authorization.k8s.io/v1", "rolebindings", namespaced=True),
    "HorizontalPodAutoscaler": Kind("autoscaling/v2", "horizontalpodautoscalers", namespaced=True),
    "Lease": Kind("coordination.k8s.io/v1", "leases", namespaced=True),
}

#: The Kubernetes verb of each generated client method's prefix (for metrics).
_VERBS = (
    ("list_", "list"),
    ("read_", "get"),
    ("get_", "get"),
    ("patch_", "patch"),
    ("create_", "create"),
)
_HTTP_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def _count(verb: str, resource: str, code: int) -> None:
    metrics.API_REQUESTS.labels(verb, resource, str(code)).inc()


def _resource_of(method_name: str) -> str:
    """list_namespaced_pod -> pods; patch_cluster_custom_object_status -> edgegateways."""
    if "custom_object" in method_name:
        return names.PLURAL + ("/status" if method_name.endswith("_status") else "")
    noun = (
        method_name.split("_", 1)[1].removeprefix("namespaced_").removesuffix("_for_all_namespaces")
    )
    return noun.replace("_", "") + "s"


class KubeError(Exception):
    """A failed API call that may succeed when retried."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ConflictError(KubeError):
    """The object changed since it was read (resourceVersion mismatch)."""


class NotFoundError(KubeError):
    """The object does not exist (any more)."""


def _mapped(error: ApiException) -> KubeError:
    status = int(error.status or 0)
    try:
        message = json.loads(error.body or "{}").get("message") or str(error.reason)
    except ValueError:
        message = str(error.reason)
    if status == 409:
        return ConflictError(status, message)
    if status == 404:
        return NotFoundError(status, message)
    return KubeError(status, message)


class Kube:
    """Typed access to exactly the calls the reconciler makes."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> Kube:
        """In-cluster credentials in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
        configuration = client.Configuration()
        try:
            if kubeconfig:
                raise ConfigException("kubeconfig given")
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException:
            config.load_kube_config(
                config_file=kubeconfig or os.environ.get("KUBECONFIG"),
                client_configuration=configuration,
            )
        return cls(client.ApiClient(configuration))

    @staticmethod
    def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One API call, its raw JSON decoded to a dict, its error mapped."""
        name = getattr(method, "__name__", "")
        verb = next((v for prefix, v in _VERBS if name.startswith(prefix)), name)
        resource = _resource_of(name)
        try:
            response = method(*args, _preload_content=False, **kwargs)
        except ApiException as error:
            _count(verb, resource, int(error.status or 0))
            raise _mapped(error) from error
        _count(verb, resource, int(response.status))
        result: dict[str, Any] = json.loads(response.data)
        return result

    # --- nodes ----------------------------------------------------------------------------

    def iter_nodes(self, label_selector: str | None = None) -> Iterator[dict[str, Any]]:
        """All nodes, a page at a time, so only one page of whole Nodes is in memory."""
        token: str | None = None
        while True:
            page = self._call(
                self.core.list_node,
                limit=PAGE_SIZE,
                _continue=token,
                label_selector=label_selector,
            )
            yield from page.get("items", [])
            token = page.get("metadata", {}).get("continue")
            if not token:
                return

    def get_node(self, name: str) -> dict[str, Any]:
        return self._call(self.core.read_node, name)

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch; a metadata.resourceVersion in it makes it conditional."""
        return self._call(
            self.core.patch_node,
            name,
            patch,
            field_manager=names.FIELD_MANAGER,
            _content_type=MERGE_PATCH,
        )

    # --- EdgeGateways ---------------------------------------------------------------------

    def get_gateway(self, name: str) -> dict[str, Any]:
        return self._call(
            self.custom.get_cluster_custom_object, names.GROUP, names.VERSION, names.PLURAL, name
        )

    def list_gateways(self) -> list[dict[str, Any]]:
        listing = self._call(
            self.custom.list_cluster_custom_object, names.GROUP, names.VERSION, names.PLURAL
        )
        return list(listing.get("items", []))

    def patch_gateway_status(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            self.custom.patch_cluster_custom_object_status,
            names.GROUP,
            names.VERSION,
            names.PLURAL,
            name,
            patch,
            field_manager=names.FIELD_MANAGER,
            _content_type=MERGE_PATCH,
        )

    def create_event(
        self, target: Mapping[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        """A core/v1 Event about ``target``; for cluster-scoped objects it lives in default."""
        meta = target["metadata"]
        namespace = meta.get("namespace") or "default"
        self._call(
            self.core.create_namespaced_event,
            namespace,
            {
                "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": target["apiVersion"],
                    "kind": target["kind"],
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    **({"namespace": meta["namespace"]} if meta.get("namespace") else {}),
                },
                "type": type_,
                "reason": reason,
                "message": message[:1024],
                "source": {"component": names.FIELD_MANAGER},
                "reportingComponent": names.FIELD_MANAGER,
                "reportingInstance": socket.gethostname(),
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )

    # --- what the node decisions read ------------------------------------------------------

    def list_daemonsets(self) -> list[dict[str, Any]]:
        return list(self._call(self.apps.list_daemon_set_for_all_namespaces).get("items", []))

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        listing = self._call(
            self.core.list_namespaced_pod, namespace, label_selector=label_selector
        )
        return list(listing.get("items", []))

    def evict_pod(self, namespace: str, name: str) -> None:
        """Evict through the Eviction API, so the PodDisruptionBudget is honoured."""
        self._request(
            "POST",
            KINDS["Pod"].path(namespace, name) + "/eviction",
            body={
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": namespace},
            },
        )

    # --- any kind the operator manages (see KINDS) -----------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One raw request through the client's connection pool and credentials."""
        method, url, headers, payload, _ = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        resource = _path_resource(path)
        verb = _HTTP_VERBS.get(method) or ("get" if resource.count("/") else "list")
        resource = resource.split("/")[0] + ("/eviction" if path.endswith("/eviction") else "")
        try:
            response = self.api.call_api(method, url, header_params=headers, body=payload)
            data = response.read()
        except ApiException as error:
            _count(verb, resource, int(error.status or 0))
            raise _mapped(error) from error
        _count(verb, resource, int(response.status))
        if not 200 <= response.status < 300:
            raise _mapped(ApiException(status=response.status, reason=response.reason, body=data))
        result: dict[str, Any] = json.loads(data) if data else {}
        return result

    def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self._request("GET", KINDS[kind].path(namespace, name))

    def list_objects(
        self, kind: str, label_selector: str, namespace: str = ""
    ) -> list[dict[str, Any]]:
        """Objects of the kind the selector matches, in one namespace or all of them."""
        query = {"labelSelector": label_selector} if label_selector else {}
        listing = self._request("GET", KINDS[kind].path(namespace), query)
        items = listing.get("items") or []
        # List items carry no apiVersion/kind; put them back so they read like a GET.
        return [{"apiVersion": KINDS[kind].api_version, "kind": kind, **i} for i in items]

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager, taking over fields others changed."""
        meta = obj["metadata"]
        kind = KINDS[obj["kind"]]
        return self._request(
            "PATCH",
            kind.path(meta.get("namespace", "") if kind.namespaced else "", meta["name"]),
            {"fieldManager": names.FIELD_MANAGER, "force": "true"},
            body=obj,
            content_type=APPLY_PATCH,
        )

    def create_object(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta, kind = obj["metadata"], KINDS[obj["kind"]]
        return self._request("POST", kind.path(meta.get("namespace", "")), body=obj)

    def replace_object(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: fails with ConflictError unless metadata.resourceVersion is still current."""
        meta, kind = obj["metadata"], KINDS[obj["kind"]]
        return self._request("PUT", kind.path(meta.get("namespace", ""), meta["name"]), body=obj)

    def delete_object(self, kind: str, namespace: str, name: str) -> None:
        self._request(
            "DELETE",
            KINDS[kind].path(namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )


def _path_resource(path: str) -> str:
    """/apis/g/v/namespaces/ns/pods/x -> "pods/x"; /api/v1/nodes -> "nodes"."""
    parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
    parts = parts[2:] if parts[0] == "api" else parts[3:]
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    return "/".join(parts[:2])
