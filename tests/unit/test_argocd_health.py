"""The Argo CD health check of EdgeGateway: every case of its health_test.yaml, run in Lua 5.1.

Argo CD runs health.lua with gopher-lua (Lua 5.1) after opening only the base, table and
package libraries, with the resource in the global ``obj``. The runtime here does the same
with lupa's Lua 5.1: a script that needs more than Argo CD gives it fails here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from lupa.lua51 import LuaError, LuaRuntime  # type: ignore[import-untyped]

from edge_operator import api, crd

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
CHECK = ARGOCD / "edgeoperator.dev" / "EdgeGateway"
HEALTH_LUA = CHECK / "health.lua"
HEALTH_TEST = CHECK / "health_test.yaml"
TESTDATA = CHECK / "testdata"
CM_PATCH = ARGOCD / "argocd-cm-patch.yaml"
CM_KEY = "resource.customizations.health.edgeoperator.dev_EdgeGateway"

#: The statuses Argo CD accepts from a health script (anything else becomes Unknown).
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

#: What Argo CD leaves out of the Lua state: the string library (and the metatable that
#: makes ``s:sub()`` work), io, math, debug, coroutine; os is a cut-down "safe" one there,
#: absent here, since the check needs no clock.
SANDBOX = """
debug.setmetatable("", nil)
string, io, math, debug, coroutine, os = nil, nil, nil, nil, nil, nil
"""


class _KubeLoader(yaml.SafeLoader):
    """Timestamps stay strings, as Argo CD sees them (the object arrives as JSON)."""


def _timestamp_as_str(loader: _KubeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


_KubeLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_str)


def _load(path: Path) -> Any:
    with path.open() as f:
        return yaml.load(f, Loader=_KubeLoader)  # a SafeLoader: no arbitrary objects


def _to_lua(lua: Any, value: Any) -> Any:
    """JSON-shaped Python to Lua as gopher-lua's decodeValue does: lists 1-based."""
    if isinstance(value, dict):
        return lua.table_from({str(k): _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"not a JSON value: {value!r}")


def _runtime() -> Any:
    lua = LuaRuntime(register_eval=False, register_builtins=False, unpack_returned_tuples=True)
    lua.execute(SANDBOX)
    return lua


def assess(obj: dict[str, Any], script: str | None = None) -> dict[str, Any]:
    """Run the health script on ``obj`` as Argo CD does; the returned table as a dict."""
    lua = _runtime()
    lua.globals().obj = _to_lua(lua, obj)
    # loadstring wraps the chunk in a function, so its top-level `return hs` is the result.
    loaded = lua.globals().loadstring(script or HEALTH_LUA.read_text(), "=health.lua")
    if isinstance(loaded, tuple):  # (nil, error message)
        raise LuaError(loaded[1])
    result = loaded()
    assert lua.globals().type(result) == "table", f"health.lua returned {result!r}"
    return {str(k): v for k, v in result.items()}


def _cases() -> list[dict[str, Any]]:
    doc = _load(HEALTH_TEST)
    assert isinstance(doc, dict)
    assert set(doc) == {"tests"}
    cases = doc["tests"]
    assert isinstance(cases, list)
    return cases


CASES = _cases()
TESTDATA_FILES = sorted(p.relative_to(CHECK).as_posix() for p in TESTDATA.glob("*.yaml"))


@pytest.mark.parametrize("case", CASES, ids=[str(c["inputPath"]) for c in CASES])
def test_health(case: dict[str, Any]) -> None:
    assert set(case) == {"healthStatus", "inputPath"}
    expected = case["healthStatus"]
    assert set(expected) == {"status", "message"}, "give both status and message"
    assert expected["status"] in ARGO_STATUSES
    assert assess(_load(CHECK / case["inputPath"])) == expected


@pytest.mark.parametrize("path", TESTDATA_FILES)
def test_testdata_is_a_valid_edge_gateway(path: str) -> None:
    obj = _load(CHECK / path)
    jsonschema.Draft202012Validator(crd.openapi_schema()).validate(obj)
    api.EdgeGateway.model_validate(obj)


def test_every_testdata_file_is_a_case() -> None:
    paths = [c["inputPath"] for c in CASES]
    assert len(paths) == len(set(paths)), "an inputPath is listed twice"
    assert sorted(paths) == TESTDATA_FILES


def _is_stale(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
    return (
        status.get("observedGeneration", 0) < obj["metadata"]["generation"]
        and bool(ready)
        and ready[0]["status"] == "True"
        and "deletionTimestamp" not in obj["metadata"]
    )


def test_required_outcomes_are_covered() -> None:
    statuses = {c["healthStatus"]["status"] for c in CASES}
    assert statuses >= {"Healthy", "Progressing", "Degraded", "Suspended"}
    stale = [c for c in CASES if _is_stale(_load(CHECK / c["inputPath"]))]
    assert stale, "no case with Ready=True but an old observedGeneration"
    assert {c["healthStatus"]["status"] for c in stale} == {"Progressing"}


def test_argocd_cm_patch_embeds_health_lua() -> None:
    patch = _load(CM_PATCH)
    assert (patch["apiVersion"], patch["kind"]) == ("v1", "ConfigMap")
    assert patch["metadata"] == {"name": "argocd-cm", "namespace": "argocd"}
    assert set(patch["data"]) == {CM_KEY}
    assert patch["data"][CM_KEY] == HEALTH_LUA.read_text(), (
        "deploy/argocd/argocd-cm-patch.yaml is stale: regenerate it (deploy/argocd/README.md)"
    )


# --- the harness itself --------------------------------------------------------------------


def test_runtime_is_lua_51_without_the_string_library() -> None:
    lua = _runtime()
    assert lua.lua_version == (5, 1)
    assert lua.eval("type(string)") == "nil"
    with pytest.raises(LuaError):
        lua.execute('return ("edge"):upper()')


def test_lists_are_one_based_tables() -> None:
    hs = assess(
        {"spec": {"paused": True, "names": ["a", "b"]}},
        "return {status = obj.spec.names[1] .. #obj.spec.names, message = type(obj.spec.paused)}",
    )
    assert hs == {"status": "a2", "message": "boolean"}


def test_a_changed_object_changes_the_outcome() -> None:
    healthy = _load(CHECK / "testdata" / "healthy.yaml")
    assert assess(healthy)["status"] == "Healthy"
    healthy["metadata"]["generation"] += 1
    assert assess(healthy) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 4",
    }
