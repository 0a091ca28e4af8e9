"""hack/lab/conformance.py, pure parts: the images the suite's manifests name, the log's
outcomes, and the comparison of our report against the provider's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab import conformance


def report(core_passed: int, ext_passed: int, **more: Any) -> dict[str, Any]:
    core: dict[str, Any] = {"statistics": {"Failed": more.get("failed", 0), "Passed": core_passed}}
    if "skipped" in more:
        core["skippedTests"] = more["skipped"]
    if more.get("failed"):
        core["failedTests"] = ["HTTPRouteSimpleSameNamespace"]
    ext = {"statistics": {"Passed": ext_passed}, "supportedFeatures": more.get("features", [])}
    return {
        "profiles": [{"name": "GATEWAY-HTTP", "core": core, "extended": ext}],
        "succeededProvisionalTests": more.get("provisional", []),
    }


THEIRS = report(
    36, 26, skipped=["HTTPRouteMultipleGateways"], features=["GatewayPort8080"],
    provisional=["HTTPRouteNamedRule", "GRPCRouteNamedRule"],
)  # fmt: skip


def test_a_report_as_good_as_the_providers_has_no_shortfall() -> None:
    ours = report(
        36, 26, skipped=["HTTPRouteMultipleGateways"], features=["GatewayPort8080", "X"],
        provisional=["HTTPRouteNamedRule"],
    )  # fmt: skip
    # GRPCRouteNamedRule belongs to another profile.
    assert conformance.shortfalls(ours, THEIRS, "GATEWAY-HTTP") == []


def test_every_shortfall_is_named() -> None:
    ours = report(35, 20, failed=1, skipped=["HTTPRouteMultipleGateways", "GatewayInfrastructure"])
    got = conformance.shortfalls(ours, THEIRS, "GATEWAY-HTTP")
    assert any("core: 1 failed" in p for p in got)
    assert any("core: 35 passed, the provider's own report passes 36" in p for p in got)
    assert any("extended: 20 passed" in p for p in got)
    assert any("skipped ['GatewayInfrastructure']" in p for p in got)
    assert any("features not tested ['GatewayPort8080']" in p for p in got)
    assert any("provisional test HTTPRouteNamedRule" in p for p in got)
    assert conformance.shortfalls({"profiles": []}, THEIRS, "GATEWAY-HTTP") == [
        "no GATEWAY-HTTP profile in our report"
    ]


def test_images_and_outcomes(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "base" / "manifests.yaml").write_text(
        "spec:\n  containers:\n  - image: registry.k8s.io/gateway-api/echo-basic:v1.5.1\n"
        "    - image: 'registry.k8s.io/coredns/coredns:v1.12.2'\n"
    )
    (tmp_path / "tests" / "t.yaml").write_text(
        "image: registry.k8s.io/gateway-api/echo-basic:v1.6.0-dev.3\n"
    )
    assert conformance.manifest_images(tmp_path) == {
        "registry.k8s.io/gateway-api/echo-basic:v1.5.1",
        "registry.k8s.io/gateway-api/echo-basic:v1.6.0-dev.3",
        "registry.k8s.io/coredns/coredns:v1.12.2",
    }
    binary = tmp_path / "bin"
    suite = conformance.Suite("v1.6.1", binary, binary, binary, "v1.12.2", tmp_path)
    refs = [i.name for i in conformance.backend_images(suite)]
    assert len(refs) == 3
    stale = conformance.Suite("v1.6.1", binary, binary, binary, "v1.11.0", tmp_path)
    with pytest.raises(conformance.ConformanceError, match="CONFORMANCE_COREDNS_VERSION"):
        conformance.backend_images(stale)

    log = tmp_path / "suite.log"
    log.write_text(
        "    --- PASS: TestConformance/HTTPRouteSimpleSameNamespace (1.2s)\n"
        "        --- PASS: TestConformance/HTTPRouteSimpleSameNamespace/sub (0.1s)\n"
        "    --- FAIL: TestConformance/GatewayInfrastructure (30.0s)\n"
        "    --- SKIP: TestConformance/HTTPRouteMultipleGateways (0.0s)\n"
    )
    assert conformance.results(log) == {
        "HTTPRouteSimpleSameNamespace": "PASS",
        "GatewayInfrastructure": "FAIL",
        "HTTPRouteMultipleGateways": "SKIP",
    }
