"""The layering (STYLE.md rule 3): only edge_operator.kube imports the Kubernetes client,
and the modules that decide import no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "edge_operator"
ALLOWED = {"kube.py"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_kube_module_imports_kubernetes_client() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 3
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in modules
        if path.name not in ALLOWED and "kubernetes" in _imported_roots(path)
    ]
    assert offenders == []


def test_checker_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom kubernetes.client import CoreV1Api\n")
    assert "kubernetes" in _imported_roots(probe)


#: Modules that decide: pure functions of facts and specs (STYLE.md: gather, decide, write).
PURE = ("desired", "facts.py", "api.py", "names.py", "crd.py", "stream.py")
#: What a pure module may not import: the API, the operator's I/O modules, the clock,
#: the environment, processes, threads and sockets (kopf's import-linter contracts do
#: the same for its own layers).
IO = frozenset(
    {
        "kubernetes",
        "kopf",
        "aiohttp",
        "urllib",
        "http",
        "socket",
        "asyncio",
        "subprocess",
        "threading",
        "os",
        "time",
        "datetime",
        "edge_operator.kube",
        "edge_operator.handlers",
        "edge_operator.reconcile",
        "edge_operator.gather",
        "edge_operator.write",
        "edge_operator.nodeprobe",
        "edge_operator.nodewatch",
        "edge_operator.probes",
        "edge_operator.leader",
        "edge_operator.metrics",
        "edge_operator.cli",
        "edge_operator.plan",
    }
)


def _imports(path: Path) -> set[str]:
    """Every module path imported, with each ``from X import Y`` also as ``X.Y``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _io_imports(path: Path) -> set[str]:
    return {
        name for name in _imports(path) if any(name == io or name.startswith(f"{io}.") for io in IO)
    }


def _pure_modules() -> list[Path]:
    out: list[Path] = []
    for entry in PURE:
        target = PACKAGE / entry
        out += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return out


def test_pure_modules_import_no_io() -> None:
    modules = _pure_modules()
    assert len(modules) >= 12
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(found)
        for path in modules
        if (found := _io_imports(path))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "line",
    [
        "from edge_operator import kube\n",
        "from edge_operator.kube import Kube\n",
        "import time\n",
        "from os import environ\n",
        "import urllib.request\n",
    ],
)
def test_the_layering_check_sees_io(tmp_path: Path, line: str) -> None:
    probe = tmp_path / "rule.py"
    probe.write_text(f"from edge_operator import names\n{line}")
    assert _io_imports(probe)
    probe.write_text("from edge_operator import names\nimport hashlib\n")
    assert _io_imports(probe) == set()


#: A class longer than this is doing more than one thing (STYLE.md: gather, decide, write).
MAX_CLASS_LINES = 200


def test_no_class_is_longer_than_the_limit() -> None:
    lengths = {
        f"{path.relative_to(PACKAGE)}:{node.name}": (node.end_lineno or 0) - node.lineno + 1
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    }
    assert len(lengths) > 20
    assert {name: n for name, n in lengths.items() if n > MAX_CLASS_LINES} == {}


def _method(path: Path, cls: str, name: str) -> ast.FunctionDef:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == name:
                    return item
    raise AssertionError(f"{cls}.{name} not found in {path}")


def test_plan_gathers_and_decides_and_has_no_write_path() -> None:
    """``edge-operator plan`` is the pass without its write step: it uses the pass's own
    gather and decide code, and never reaches the Writer."""
    plan = _method(PACKAGE / "reconcile.py", "Reconciler", "plan")
    used = {n.attr for n in ast.walk(plan) if isinstance(n, ast.Attribute)}
    called = {
        n.func.id
        for n in ast.walk(plan)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert {"gather", "facts"} <= used
    assert "decide" in called
    assert "write" not in used
    # And the pass shares both.
    decide_and_write = _method(PACKAGE / "reconcile.py", "Reconciler", "_decide_and_write")
    called = {
        n.func.id
        for n in ast.walk(decide_and_write)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert "decide" in called
