"""The operator image's description (hack/image.py): the Dockerfile generated from it is
the one committed, and its packing is deterministic. `make image` itself (Debian and
PyPI) is built twice and compared in tests/labtool/test_image.py."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import image
import oci

REPO = Path(__file__).resolve().parents[2]


def test_committed_dockerfile_is_generated_from_the_spec() -> None:
    assert (REPO / "Dockerfile").read_text() == image.dockerfile(image.Spec()), (
        "Dockerfile is stale: run `make dockerfile`"
    )


def test_spec_follows_the_chart_and_the_package() -> None:
    spec = image.Spec()
    chart = (REPO / "deploy/helm/edge-operator/Chart.yaml").read_text()
    values = (REPO / "deploy/helm/edge-operator/values.yaml").read_text()
    assert f'appVersion: "{spec.version}"' in chart
    assert f"repository: {spec.repository}" in values
    assert spec.uid == 65532  # the chart's runAsUser and runAsGroup
    labels = spec.labels("abc", "2026-01-01T00:00:00Z")
    assert labels["org.opencontainers.image.revision"] == "abc"
    assert labels["org.opencontainers.image.version"] == spec.version
    assert labels["org.opencontainers.image.source"].startswith("https://github.com/")


def _tree(root: Path, stamp: int) -> None:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(b"#!/bin/sh\n")
    (root / "usr/bin/tool").chmod(0o755)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")
    (root / "etc").mkdir()
    (root / "etc/b").write_text("b")
    (root / "etc/a").write_text("a")
    os.symlink("tool", root / "usr/bin/link")
    for path in (root / "etc/a", root / "etc/b"):
        os.utime(path, (stamp, stamp))


def test_layer_is_the_same_for_the_same_tree(tmp_path: Path) -> None:
    _tree(tmp_path / "one", 1_000)
    _tree(tmp_path / "two", 2_000_000)  # other times on disk
    first, second = image.layer(tmp_path / "one", 42), image.layer(tmp_path / "two", 42)
    assert first == second
    layer = tmp_path / "layer.tar"
    layer.write_bytes(first)
    with tarfile.open(layer) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "etc", "etc/a", "etc/b", "usr", "usr/bin", "usr/bin/link", "usr/bin/tool", "usr/bin/tool2",
    ]  # fmt: skip
    assert {m.mtime for m in members} == {42}
    assert {m.uname for m in members} == {""}
    by_name = {m.name: m for m in members}
    assert by_name["usr/bin/tool2"].islnk()
    assert by_name["usr/bin/link"].issym()


def test_layout_digest_depends_only_on_content(tmp_path: Path) -> None:
    config = image.config(image.Spec(), "amd64", "rev", 42)
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/edge-operator"]
    assert config["config"]["Cmd"] == ["run"]
    layer = b"x" * 1024
    one = oci.write_layout(tmp_path / "a.tar", "example.org/a:1", config, [(layer, layer)])
    two = oci.write_layout(tmp_path / "b.tar", "example.org/a:1", config, [(layer, layer)])
    assert one == two
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert image.manifest_digest(tmp_path / "a.tar") == one
    with tarfile.open(tmp_path / "a.tar") as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.load(member)
    names = index["manifests"][0]["annotations"]
    assert names["io.containerd.image.name"] == "example.org/a:1"
