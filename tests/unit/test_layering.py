"""Only edge_operator.kube may import the Kubernetes client (STYLE.md rule 3)."""

from __future__ import annotations

import ast
from pathlib import Path

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
