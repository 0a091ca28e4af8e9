"""Generate the EdgeGateway CustomResourceDefinition from the pydantic models.

Pydantic emits JSON Schema; a CRD needs a *structural* OpenAPI v3 schema
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema):
every node typed, no ``$ref``, no ``anyOf`` except for int-or-string, and
``additionalProperties`` never beside ``properties``. :func:`structural` rewrites
pydantic's output into that form; everything else (descriptions, defaults, enums,
patterns, bounds and CEL rules) is carried over as the models declare it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from edge_operator import api, names

Schema = dict[str, Any]

#: JSON-schema keys pydantic writes that mean nothing to the API server.
_DROPPED_KEYS = frozenset({"title"})

CRD_FILE = f"{names.CRD_NAME}.yaml"

#: Keys first in this order so the committed YAML reads like hand-written CRDs.
_KEY_ORDER = ("type", "description", "default", "enum", "format", "pattern")


def structural(schema: Schema) -> Schema:
    """Rewrite a pydantic JSON schema (with ``$defs``) into a structural schema."""
    defs = schema.get("$defs", {})
    root = {k: v for k, v in schema.items() if k != "$defs"}
    return _rewrite(root, defs)


def _rewrite(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = _inline(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _rewrite(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _rewrite(value, defs)
        else:
            out[key] = copy.deepcopy(value)
    if "properties" in out:
        # Structural schemas forbid additionalProperties beside properties; the API
        # server prunes (and kubectl's strict field validation reports) unknown fields.
        out.pop("additionalProperties", None)
        if not out.get("required"):
            out.pop("required", None)
    first = [k for k in _KEY_ORDER if k in out]
    return {k: out[k] for k in first + [k for k in out if k not in first]}


def _inline(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Resolve ``$ref``/``allOf`` and turn ``anyOf [X, null]`` into an optional X."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_inline(target, defs), **node}
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**_inline(node.pop("allOf")[0], defs), **node}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express anyOf {node['anyOf']} structurally")
        del node["anyOf"]
        node = {**_inline(branches[0], defs), **node}
        # Optional means absent, never null: the API server prunes nulls of
        # non-nullable fields before defaulting, so no "default: null" is needed.
        if node.get("default", ...) is None:
            del node["default"]
    return node


def spec_schema() -> Schema:
    return structural(api.EdgeGatewaySpec.model_json_schema(by_alias=True))


def status_schema() -> Schema:
    return structural(api.EdgeGatewayStatus.model_json_schema(by_alias=True))


def openapi_schema() -> Schema:
    """The whole object's openAPIV3Schema."""
    return {
        "type": "object",
        "description": (
            "EdgeGateway turns a set of nodes into dedicated edge (ingress) nodes: it labels"
            " and taints them, runs the ingress controller only there, and exposes it with a"
            " LoadBalancer Service that keeps the client address (externalTrafficPolicy"
            f" Local). Cluster-scoped. Needs Kubernetes >= {api.MIN_KUBERNETES_VERSION}."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        **api.validations(api.NAME_IS_DNS_LABEL, api.INGRESS_NGINX_CLASS_DIFFERS),
    }


def _condition_column(condition: str) -> dict[str, Any]:
    return {
        "name": condition,
        "type": "string",
        "description": f"Status of the {condition} condition.",
        "jsonPath": f'.status.conditions[?(@.type=="{condition}")].status',
    }


PRINTER_COLUMNS: list[dict[str, Any]] = [
    _condition_column("Ready"),
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Nodes",
        "type": "integer",
        "description": "Edge nodes.",
        "jsonPath": ".status.edgeNodeCount",
    },
    {
        "name": "Replicas",
        "type": "integer",
        "description": "Desired controller pods.",
        "jsonPath": ".status.replicas",
    },
    {
        "name": "Ready-Replicas",
        "type": "integer",
        "description": "Ready controller pods.",
        "jsonPath": ".status.readyReplicas",
    },
    {
        "name": "Address",
        "type": "string",
        "description": "First load balancer address.",
        "jsonPath": ".status.addresses[0].value",
    },
    {
        "name": "Gateways",
        "type": "integer",
        "description": "Programmed Gateways of the GatewayClass (gatewayAPI.enabled).",
        "jsonPath": ".status.gatewaysProgrammed",
    },
    {
        "name": "GatewayClass",
        "type": "string",
        "description": "The GatewayClass served (gatewayAPI.enabled).",
        "jsonPath": ".status.gatewayClassName",
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def custom_resource_definition() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": names.CRD_NAME,
            "labels": {"app.kubernetes.io/name": "edge-operator"},
        },
        "spec": {
            "group": names.GROUP,
            "scope": "Cluster",
            "names": {
                "kind": names.KIND,
                "listKind": names.LIST_KIND,
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": list(names.SHORT_NAMES),
                "categories": list(names.CATEGORIES),
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def render() -> str:
    """The CRD as the YAML document committed under crds/."""
    header = "# Generated by `edge-operator crd` from src/edge_operator/api.py. Do not edit.\n"
    return header + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)


def write(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CRD_FILE
    path.write_text(render())
    return path
