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
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from edge_operator import names

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
PAGE_SIZE = 500


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
        try:
            response = method(*args, _preload_content=False, **kwargs)
        except ApiException as error:
            raise _mapped(error) from error
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
