"""The examples users copy: Argo CD Applications that point at real paths, in wave order,
and EdgeGateways that explain themselves and can all be applied to one cluster at once.

(Whether each EdgeGateway is valid is tests/unit/test_crd.py::test_example_validates.)
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_operator import api, names

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ARGOCD = EXAMPLES / "argocd"
REPO_URL = "https://github.com/edge-operator/edge-operator.git"
CHART = "deploy/helm/edge-operator"
#: File names Argo CD's directory source reads as manifests.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

GATEWAY_FILES = sorted(EXAMPLES.glob("*.yaml"))
APPLICATION_FILES = sorted(ARGOCD.glob("*.yaml"))
ALL_FILES = GATEWAY_FILES + APPLICATION_FILES


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


APPLICATIONS = [(path, doc) for path in APPLICATION_FILES for doc in _docs(path)]
GATEWAYS = [doc for path in GATEWAY_FILES for doc in _docs(path)]


def _app_id(path: Path, doc: dict[str, Any]) -> str:
    return f"{path.name}:{doc.get('metadata', {}).get('name')}"


def _sources(app: dict[str, Any]) -> list[dict[str, Any]]:
    spec = app["spec"]
    return [spec["source"]] if "source" in spec else list(spec["sources"])


def _wave(app: dict[str, Any]) -> int:
    annotations = app["metadata"].get("annotations", {})
    return int(annotations.get("argocd.argoproj.io/sync-wave", "0"))


def _the_app(path: str) -> dict[str, Any]:
    """The one Application with a source at this path of the repository."""
    (app,) = [a for _, a in APPLICATIONS if any(s.get("path") == path for s in _sources(a))]
    return app


def _directory_files(source: dict[str, Any]) -> set[str]:
    """The files a (non-recursive) directory source reads, by Argo CD's include/exclude."""
    directory = source.get("directory", {})
    assert not directory.get("recurse", False)
    include, exclude = directory.get("include", "*"), directory.get("exclude", "")
    return {
        p.name
        for p in (ROOT / source["path"]).iterdir()
        if p.is_file()
        and p.suffix in MANIFEST_SUFFIXES
        and fnmatch.fnmatch(p.name, include)
        and not (exclude and fnmatch.fnmatch(p.name, exclude))
    }


# --- every example ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in ALL_FILES])
def test_example_starts_with_a_comment_saying_what_it_shows(path: Path) -> None:
    lines = path.read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    assert header, f"{path.name} must start with a comment block"
    assert len(" ".join(header).split()) >= 10, f"{path.name}: say what it shows, what to change"


def test_argocd_directory_has_its_readme() -> None:
    readme = (ARGOCD / "README.md").read_text()
    for path in APPLICATION_FILES:
        assert path.name in readme
    assert "resource.customizations.health.argoproj.io_Application" in readme
    assert "deploy/argocd/edgeoperator.dev/EdgeGateway/health.lua" in readme


# --- Argo CD Applications -----------------------------------------------------------------


def test_argocd_examples_exist() -> None:
    assert {p.name for p in APPLICATION_FILES} >= {
        "edge-operator.yaml",
        "gateways.yaml",
        "app-of-apps.yaml",
    }


@pytest.mark.parametrize(("path", "app"), APPLICATIONS, ids=[_app_id(*a) for a in APPLICATIONS])
def test_application_has_the_required_fields(path: Path, app: dict[str, Any]) -> None:
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    assert app["metadata"]["name"]
    assert app["metadata"]["namespace"] == "argocd"
    spec = app["spec"]
    assert spec["project"]
    assert ("source" in spec) != ("sources" in spec), "exactly one of source and sources"
    assert _sources(app)
    destination = spec["destination"]
    assert ("server" in destination) != ("name" in destination), "exactly one of server, name"


@pytest.mark.parametrize(("path", "app"), APPLICATIONS, ids=[_app_id(*a) for a in APPLICATIONS])
def test_application_sources_are_paths_of_this_repository(path: Path, app: dict[str, Any]) -> None:
    for source in _sources(app):
        assert source["repoURL"] == REPO_URL
        assert source["targetRevision"]
        assert (ROOT / source["path"]).is_dir(), f"{source['path']} is not in this repository"


def test_application_names_are_unique() -> None:
    names_ = [app["metadata"]["name"] for _, app in APPLICATIONS]
    assert len(names_) == len(set(names_))


def test_operator_application_installs_the_chart() -> None:
    app = _the_app(CHART)
    (source,) = _sources(app)
    assert (ROOT / CHART / "Chart.yaml").is_file()
    assert source["helm"]["releaseName"] == "edge-operator"
    # The chart's values.schema.json refuses keys its values.yaml does not have.
    values = yaml.safe_load((ROOT / CHART / "values.yaml").read_text())
    assert set(source["helm"].get("valuesObject", {})) <= set(values)
    assert app["spec"]["destination"]["namespace"] == names.DEFAULT_NAMESPACE
    options = app["spec"]["syncPolicy"]["syncOptions"]
    assert {"CreateNamespace=true", "ServerSideApply=true"} <= set(options)


def test_gateways_application_syncs_only_edge_gateways() -> None:
    app = _the_app("examples")
    (source,) = _sources(app)
    files = _directory_files(source)
    assert files == {p.name for p in GATEWAY_FILES}
    for name in files:
        assert {doc["kind"] for doc in _docs(EXAMPLES / name)} == {names.KIND}


def test_gateways_application_survives_a_missing_crd() -> None:
    policy = _the_app("examples")["spec"]["syncPolicy"]
    assert "SkipDryRunOnMissingResource=true" in policy["syncOptions"]
    assert "ServerSideApply=true" in policy["syncOptions"]
    assert policy["automated"]["prune"] is True
    assert policy["automated"]["selfHeal"] is True
    assert policy["retry"]["limit"] > 0


def test_operator_syncs_in_an_earlier_wave_than_the_gateways() -> None:
    assert _wave(_the_app(CHART)) < _wave(_the_app("examples"))


def test_app_of_apps_syncs_the_other_applications_but_not_itself() -> None:
    parent = _the_app("examples/argocd")
    (source,) = _sources(parent)
    children = {path.name for path, app in APPLICATIONS if app is not parent}
    assert _directory_files(source) == children


# --- EdgeGateways -------------------------------------------------------------------------
# gateways.yaml applies every example to one cluster, so they must not fight each other.


def test_gateway_names_are_unique() -> None:
    gateway_names = [doc["metadata"]["name"] for doc in GATEWAYS]
    assert len(gateway_names) == len(set(gateway_names))


def test_gateways_serve_distinct_ingress_classes_and_at_most_one_default() -> None:
    models = [api.EdgeGateway.model_validate(doc) for doc in GATEWAYS]
    classes = [m.spec.controller.ingress_class.name or m.metadata.name for m in models]
    assert len(classes) == len(set(classes))
    assert sum(m.spec.controller.ingress_class.default for m in models) <= 1


def test_gateways_select_distinct_nodes() -> None:
    selections = [
        yaml.safe_dump(doc["spec"]["nodes"].get("selector") or doc["spec"]["nodes"]["names"])
        for doc in GATEWAYS
    ]
    assert len(selections) == len(set(selections))


def test_gateways_use_the_default_role_label_and_taint_key() -> None:
    # The chart's node policy lets the operator set only the keys in nodePolicy.keys,
    # which lists the default; an example with another key would need a values change.
    for doc in GATEWAYS:
        nodes = api.EdgeGateway.model_validate(doc).spec.nodes
        assert nodes.role_label == names.DEFAULT_ROLE_LABEL
        assert nodes.taint_key == names.DEFAULT_ROLE_LABEL
