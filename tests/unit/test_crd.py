"""The generated CRD: committed copy up to date, structural, complete, examples valid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from edge_operator import api, crd
from tests.spec_cases import VALID, Case, gateway

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / crd.CRD_FILE
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_committed_crd_is_up_to_date() -> None:
    assert COMMITTED.read_text() == crd.render(), (
        "crds/ is stale: run `make generate` and commit the result"
    )


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from _walk(prop, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _walk(node[key], f"{path}[{key}]")


SCHEMA = crd.openapi_schema()
NODES = list(_walk(SCHEMA))


@pytest.mark.parametrize(("path", "node"), NODES, ids=[p or "." for p, _ in NODES])
def test_schema_is_structural(path: str, node: dict[str, Any]) -> None:
    assert "$ref" not in node
    assert "$defs" not in node
    assert "allOf" not in node
    assert "nullable" not in node
    if node.get("x-kubernetes-int-or-string"):
        assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    else:
        assert "anyOf" not in node
        assert "oneOf" not in node
        assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, path
    if "properties" in node:
        assert "additionalProperties" not in node, path
    if node.get("type") == "array":
        assert "items" in node, path


def test_every_field_is_described() -> None:
    undocumented = [
        f"{path}.{name}"
        for path, node in NODES
        for name, prop in node.get("properties", {}).items()
        if not prop.get("description") and f"{path}.{name}" != ".metadata"
    ]
    assert undocumented == []


def test_defaults_enums_and_rules_are_carried() -> None:
    spec = SCHEMA["properties"]["spec"]["properties"]
    nodes = spec["nodes"]["properties"]
    assert nodes["roleLabel"]["default"] == "node-role.kubernetes.io/edge"
    assert nodes["taint"]["default"] == {"value": "", "effect": "NoSchedule"}
    assert spec["clientIP"]["default"] == {
        "mode": "Direct",
        "trustedCIDRs": [],
        "removeHeaders": list(api.DEFAULT_REMOVE_HEADERS),
    }
    assert spec["service"]["properties"]["ports"]["default"] == {"http": 80, "https": 443}
    assert nodes["taint"]["properties"]["effect"]["enum"] == [
        "NoSchedule",
        "PreferNoSchedule",
        "NoExecute",
        "None",
    ]
    assert spec["controller"]["properties"]["provider"]["default"] == "traefik"
    assert spec["service"]["properties"]["externalTrafficPolicy"]["default"] == "Local"
    assert nodes["count"]["minimum"] == 1
    assert spec["controller"]["properties"]["replicas"]["minimum"] == 1
    assert nodes["minWorkerNodes"]["minimum"] == 0

    def rules(node: dict[str, Any]) -> list[str]:
        return [r["rule"] for r in node.get("x-kubernetes-validations", [])]

    assert api.NODES_ONE_OF.rule in rules(spec["nodes"])
    assert api.NODES_COUNT_FITS_NAMES.rule in rules(spec["nodes"])
    assert api.TRUSTED_CIDRS_REQUIRED.rule in rules(spec["clientIP"])
    assert api.IS_CIDR.rule in rules(spec["clientIP"]["properties"]["trustedCIDRs"]["items"])
    assert api.IS_CIDR.rule in rules(
        spec["service"]["properties"]["loadBalancerSourceRanges"]["items"]
    )
    assert api.NAME_IS_DNS_LABEL.rule in rules(SCHEMA)
    declared = {
        r.schema()["rule"]: r.message for r in vars(api).values() if isinstance(r, api.CelRule)
    }
    for _, node in NODES:
        for rule in node.get("x-kubernetes-validations", []):
            assert declared[rule["rule"]] == rule["message"]


def test_crd_shape() -> None:
    doc = crd.custom_resource_definition()
    spec = doc["spec"]
    assert doc["metadata"]["name"] == "edgegateways.edgeoperator.dev"
    assert spec["scope"] == "Cluster"
    assert spec["names"]["shortNames"] == ["egw"]
    assert "all" not in spec["names"]["categories"]
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:1] == ["Ready"]
    assert {"Nodes", "Replicas", "Address", "Age"} <= set(columns)
    conditions = SCHEMA["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    gateways = [d for d in docs if d.get("kind") == "EdgeGateway"]
    assert gateways, f"{path.name} holds no EdgeGateway"
    for doc in gateways:
        VALIDATOR.validate(doc)  # types, patterns, enums, bounds of the CRD schema
        api.EdgeGateway.model_validate(doc)  # and the cross-field (CEL) rules


def test_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "basic.yaml",
        "names.yaml",
        "public-and-internal.yaml",
        "ingress-nginx.yaml",
        "traefik.yaml",
        "behind-cdn.yaml",
        "proxy-protocol.yaml",
        "mesh-istio.yaml",
        "gateway-api.yaml",
    }


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_cases_pass_the_schema(case: Case) -> None:
    VALIDATOR.validate(gateway(case.name, case.spec))
