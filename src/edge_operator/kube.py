"""The only module that talks to the Kubernetes API.

Every call returns plain dicts in API form (decoded from the raw JSON, never the
client's model classes: a 2,000-node list as models costs ~130 MB more). Failures
become the named errors below (conflict, gone, forbidden, invalid, immutable,
throttled, transport), so callers catch names, never the client's types or numbers.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPResponse
from typing import Any, Self
from urllib.parse import quote

import orjson
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from edge_operator import metrics, names
from edge_operator.stream import Dechunker, Lines

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PAGE_SIZE = 500
#: Failed API work (a pass, a watch) is tried again after 1, 2, 4, ... s, at most this long.
RETRY_MAX_SECONDS = 30.0
#: Connections kept to the API server (the client's default is 5 per CPU): passes,
#: their object and node writers and the watches together.
POOL_SIZE = 64
#: The query of a read answered from the API server's watch cache, at once and without
#: a read of etcd, possibly a moment behind it. The passes read this way (all but the
#: gateway): what they write is an idempotent apply, and a change they have not seen yet
#: comes with its watch event, which queues another pass. (A foreign object created just
#: before our create is taken over either way: a read from etcd would narrow that
#: window, not close it.) Under a burst of passes the consistent reads were most of the
#: API server's work.
CACHED = {"resourceVersion": "0"}
#: How long one watch request lasts before the server ends it (and it is made again).
WATCH_SECONDS = 300


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
    "Node": Kind("v1", "nodes", namespaced=False),
    "Event": Kind("v1", "events", namespaced=True),
    "DaemonSet": Kind("apps/v1", "daemonsets", namespaced=True),
    names.KIND: Kind(names.API_VERSION, names.PLURAL, namespaced=False),
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
    "GatewayClass": Kind(names.GATEWAY_API_VERSION, "gatewayclasses", namespaced=False),
    "Gateway": Kind(names.GATEWAY_API_VERSION, "gateways", namespaced=True),
    "EnvoyProxy": Kind(names.ENVOY_GATEWAY_API_VERSION, "envoyproxies", namespaced=True),
    "ClientTrafficPolicy": Kind(
        names.ENVOY_GATEWAY_API_VERSION, "clienttrafficpolicies", namespaced=True
    ),
}

_HTTP_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


#: The most one read takes from the socket (the reader's buffer is 8 KB; a TLS record 16 KB).
BURST_BYTES = 1 << 20


def _payload(response: urllib3.BaseHTTPResponse, pause: float) -> Iterator[bytes]:
    """The body of a streaming response as it arrives, a burst at a time: block for the
    first bytes, take every byte already there without blocking, hand them on, then
    ``pause`` so the next burst gathers. Chunked transfer coding is undone here; a
    response this reader does not know the insides of is read through urllib3."""
    fp = getattr(response, "_fp", None)
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if not isinstance(fp, HTTPResponse) or fp.fp is None or not isinstance(sock, socket.socket):
        yield from response.stream(amt=None, decode_content=False)
        return
    reader, dechunk = fp.fp, (Dechunker() if fp.chunked else None)
    while True:
        parts = [reader.read1(BURST_BYTES)]
        while parts[-1] and _readable(sock):
            parts.append(reader.read1(BURST_BYTES))
        data = b"".join(parts)
        if dechunk is not None:
            data = dechunk.feed(data)
        if data:
            yield data
        if not parts[-1] or (dechunk is not None and dechunk.done):
            return  # the server ended the stream
        if pause:
            time.sleep(pause)


def _readable(sock: socket.socket) -> bool:
    """Bytes wait in the TLS layer or the kernel (a read would not block)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], 0)[0])


def _count(verb: str, resource: str, code: int) -> None:
    metrics.API_REQUESTS.labels(verb, resource, str(code)).inc()


class KubeError(Exception):
    """A failed API call. Callers catch the named kinds below, never status numbers;
    ``status`` is kept for logs and metrics (0: no HTTP answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status


class ConflictError(KubeError):
    """409: the object changed since it was read (resourceVersion), or exists already."""


class NotFoundError(KubeError):
    """404: the object does not exist (any more): it is gone."""


class ForbiddenError(KubeError):
    """403: RBAC or an admission policy refused the request."""


class InvalidError(KubeError):
    """422 or 400: the API server refused the object as written."""


class ImmutableError(InvalidError):
    """422 for a field that cannot change on an existing object."""


class ThrottledError(KubeError):
    """429: too many requests, or a PodDisruptionBudget refusing an eviction now."""


class ExpiredError(KubeError):
    """410: a watch's resourceVersion is older than the history the server keeps: list again."""


class TransportError(KubeError):
    """No usable answer: the connection failed or timed out, or the server erred (5xx)."""


#: Refusals of one object by the API server: reported, the pass goes on. Anything else
#: (throttling, transport) fails the pass, which is then retried.
REFUSALS = (ConflictError, NotFoundError, ForbiddenError, InvalidError)


def backoff(failures: int) -> float:
    """Seconds before the next attempt after ``failures`` failed ones in a row: the one
    retry policy of the operator's passes, its delete handler and its node watch."""
    return float(min(RETRY_MAX_SECONDS, 2 ** max(0, failures - 1)))


def error_for(status: int, message: str) -> KubeError:
    """The named error for an HTTP status and the API server's message."""
    if status == 409:
        return ConflictError(status, message)
    if status == 404:
        return NotFoundError(status, message)
    if status == 403:
        return ForbiddenError(status, message)
    if status == 422 and "immutable" in message:
        return ImmutableError(status, message)
    if status in (400, 422):
        return InvalidError(status, message)
    if status == 429:
        return ThrottledError(status, message)
    if status == 410:
        return ExpiredError(status, message)
    if status == 0 or status >= 500:
        return TransportError(status, message)
    return KubeError(status, message)


def _mapped(error: ApiException) -> KubeError:
    status = int(error.status or 0)
    try:
        message = json.loads(error.body or "{}").get("message") or str(error.reason)
    except ValueError:
        message = str(error.reason)
    return error_for(status, message)


class Client:
    """The one way to the API server: a request (``_request``) or a watch, with the
    client's connection pool and credentials, one error mapping and one metrics table."""

    def __init__(self, api: client.ApiClient, timeout: float | None = None) -> None:
        # The client's connection pool and credentials only: every request goes through
        # _request, so there is one path, one error mapping and one metrics table.
        self.api = api
        #: Seconds a request may take (connect and each read); None: no limit.
        self.timeout = timeout

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> Self:
        """In-cluster credentials in a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
        configuration = client.Configuration()
        # One connection per concurrent pass, plus the watch and the event poster.
        configuration.connection_pool_maxsize = POOL_SIZE
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

    def close_idle(self) -> None:
        """Close the pooled connections no request is using (a burst of passes opens many);
        the next requests open new ones."""
        self.api.rest_client.pool_manager.clear()

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
        verb, resource = request_labels(method, path)
        try:
            response = self.api.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=self.timeout
            )
            data = response.read()
        except ApiException as error:
            _count(verb, resource, int(error.status or 0))
            raise _mapped(error) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            _count(verb, resource, 0)
            raise TransportError(0, f"{type(error).__name__}: {error}") from error
        _count(verb, resource, int(response.status))
        if not 200 <= response.status < 300:
            raise _mapped(ApiException(status=response.status, reason=response.reason, body=data))
        result: dict[str, Any] = orjson.loads(data) if data else {}
        return result

    def watch(
        self,
        kind: str,
        resource_version: str,
        timeout_seconds: int = WATCH_SECONDS,
        pause_seconds: float = 0.0,
        label_selector: str = "",
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The changes to objects of ``kind`` after ``resource_version``, as (type, object),
        until the server ends the stream (after ``timeout_seconds``). BOOKMARK events
        carry only a newer resourceVersion. Raises ExpiredError when the version is too
        old to watch from (list again), TransportError when the stream breaks.

        Events are read a burst at a time: all that has arrived, then (with
        ``pause_seconds``) a pause in which the next burst gathers. A busy stream then
        costs a fraction of the CPU, and an event waits at most the pause."""
        path = KINDS[kind].path()
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        method, url, headers, _, _ = self.api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            # Read timeout: the server ends the stream after timeout_seconds; bookmarks
            # arrive about every minute, so a silent minute past that is a dead stream.
            response = self.api.call_api(
                method, url, header_params=headers, _request_timeout=(10, timeout_seconds + 60)
            )
        except ApiException as error:
            _count("watch", KINDS[kind].plural, int(error.status or 0))
            raise _mapped(error) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            _count("watch", KINDS[kind].plural, 0)
            raise TransportError(0, f"{type(error).__name__}: {error}") from error
        _count("watch", KINDS[kind].plural, int(response.status))
        stream = response.response
        try:
            if not 200 <= response.status < 300:
                body = stream.read()
                raise _mapped(
                    ApiException(status=response.status, reason=response.reason, body=body)
                )
            lines = Lines()
            for payload in _payload(stream, pause_seconds):
                for line in lines.feed(payload):
                    event = orjson.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise error_for(int(status.get("code") or 0), str(status.get("message")))
                    yield event["type"], event["object"]
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise TransportError(
                0, f"watch of {path} broke: {type(error).__name__}: {error}"
            ) from error
        finally:
            # Closed first: a stream left half-read must not go back to the pool.
            stream.close()
            stream.release_conn()


class Kube(Client):
    """Typed access to exactly the calls the operator makes."""

    # --- nodes ----------------------------------------------------------------------------

    def iter_nodes(
        self, label_selector: str | None = None, listed: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """All nodes, a page at a time, so only one page of whole Nodes is in memory.
        ``listed``, when given, receives the list's metadata: a watch of every change
        after the list starts at its resourceVersion."""
        query = {"limit": str(PAGE_SIZE)}
        if label_selector:
            query["labelSelector"] = label_selector
        while True:
            page = self._request("GET", KINDS["Node"].path(), query)
            yield from page.get("items", [])
            token = page.get("metadata", {}).get("continue")
            if not token:
                if listed is not None:
                    listed.update(page.get("metadata") or {})
                return
            query["continue"] = token

    def get_node(self, name: str) -> dict[str, Any]:
        return self._request("GET", KINDS["Node"].path(name=name))

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch; a metadata.resourceVersion in it makes it conditional."""
        return self._request(
            "PATCH",
            KINDS["Node"].path(name=name),
            {"fieldManager": names.FIELD_MANAGER},
            body=patch,
            content_type=MERGE_PATCH,
        )

    # --- EdgeGateways ---------------------------------------------------------------------

    def get_gateway(self, name: str) -> dict[str, Any]:
        return self._request("GET", KINDS[names.KIND].path(name=name))

    def list_gateways(self) -> list[dict[str, Any]]:
        return list(self._request("GET", KINDS[names.KIND].path()).get("items", []))

    def patch_gateway_status(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._request(
            "PATCH",
            KINDS[names.KIND].path(name=name) + "/status",
            {"fieldManager": names.FIELD_MANAGER},
            body=patch,
            content_type=MERGE_PATCH,
        )

    def create_event(
        self, target: Mapping[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        """A core/v1 Event about ``target``; for cluster-scoped objects it lives in default."""
        meta = target["metadata"]
        namespace = meta.get("namespace") or "default"
        self._request(
            "POST",
            KINDS["Event"].path(namespace),
            body={
                "apiVersion": "v1",
                "kind": "Event",
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
        return list(self._request("GET", KINDS["DaemonSet"].path(), CACHED).get("items", []))

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return self.list_objects("Pod", label_selector, namespace=namespace)

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

    def get_object(
        self, kind: str, namespace: str, name: str, *, cached: bool = False
    ) -> dict[str, Any]:
        """The object; with ``cached``, from the API server's watch cache (see CACHED)."""
        return self._request("GET", KINDS[kind].path(namespace, name), CACHED if cached else None)

    def list_objects(
        self, kind: str, label_selector: str, namespace: str = ""
    ) -> list[dict[str, Any]]:
        """Objects of the kind the selector matches, in one namespace or all of them, from
        the API server's watch cache (see CACHED)."""
        query = {**CACHED, "labelSelector": label_selector} if label_selector else CACHED
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


def request_labels(method: str, path: str) -> tuple[str, str]:
    """The metric labels of a request: its Kubernetes verb and resource[/subresource].

    GET /api/v1/nodes -> ("list", "nodes"); GET /api/v1/nodes/n -> ("get", "nodes");
    POST /api/v1/namespaces/ns/pods/p/eviction -> ("create", "pods/eviction").
    """
    parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
    parts = parts[2:] if parts[0] == "api" else parts[3:]
    if parts[:1] == ["namespaces"] and len(parts) > 2:
        parts = parts[2:]
    resource = parts[0] + (f"/{parts[2]}" if len(parts) > 2 else "")
    verb = _HTTP_VERBS.get(method) or ("get" if len(parts) > 1 else "list")
    return verb, resource
