"""`make image` for real (Debian's archive, PyPI): the same commit gives the same digest,
and the image is what the chart expects. The figures are printed.

The first build is the tree's cached image (``hack/image.py cached``, which `make
lab-tools` and every lab start use); the second is a fresh build into another
directory, at another time.
"""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path
from typing import Any

import image
import localcluster
from tests.dataplane.machine import require_lab

GOAL_BYTES = 150_000_000


def _blob(archive: Path, digest: str) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        assert member is not None
        return member.read()


def test_two_builds_of_one_commit_give_the_same_image(tmp_path: Path) -> None:
    require_lab()  # root: mmdebstrap unpacks as root, like the lab
    spec = image.Spec()
    cached = image.cached(spec, "amd64", localcluster.cache_dir())
    start = time.monotonic()
    fresh = image.build(spec, "amd64", tmp_path)
    took = time.monotonic() - start
    first = image.manifest_digest(cached)
    archive_mb = fresh.archive.stat().st_size / 1e6
    print(f"make image: {fresh.digest} (cached build {first}); {fresh.size / 1e6:.1f} MB"
          f" uncompressed, {archive_mb:.1f} MB archive; {took:.0f} s")  # fmt: skip
    assert fresh.digest == first
    assert cached.read_bytes() == fresh.archive.read_bytes()
    assert fresh.size <= GOAL_BYTES

    manifest = json.loads(_blob(fresh.archive, fresh.digest))
    config: dict[str, Any] = json.loads(_blob(fresh.archive, manifest["config"]["digest"]))
    settings = config["config"]
    assert settings["User"] == "65532:65532"
    assert settings["Entrypoint"] == ["/usr/local/bin/edge-operator"]
    assert settings["Cmd"] == ["run"]
    labels = settings["Labels"]
    assert labels["org.opencontainers.image.revision"] == image.revision()
    assert labels["org.opencontainers.image.version"] == spec.version
    assert labels["org.opencontainers.image.source"] == spec.source

    sbom = json.loads(fresh.sbom.read_text())
    packages = {p["name"]: p.get("versionInfo") for p in sbom["packages"]}
    assert "python3.11-minimal" in packages
    for name in ("kopf", "kubernetes", "edge-operator"):
        assert packages[name], name
    assert "pytest" not in packages  # no development dependency in the image
    locked = (image.LOCK).read_text()
    for name in ("kopf", "pydantic", "kubernetes"):
        assert f"{name}=={packages[name]}" in locked
