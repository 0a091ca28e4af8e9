"""The operator's OCI image, built without a Docker daemon or a registry (`make image`).

One description (``Spec``) gives both builds:

- here: ``mmdebstrap --variant=extract`` unpacks Debian's Python and the libraries it
  needs (no shell, no package manager run inside), pip installs the locked, hashed
  Python dependencies (``hack/requirements.lock``) and the operator's wheel for the
  target's platform, and a stdlib writer packs the tree into one deterministic layer
  of an OCI image layout archive beside an SPDX 2.3 SBOM;
- with Docker: the Dockerfile at the top of the repository is generated from the same
  ``Spec`` (``python3 hack/image.py dockerfile``; a unit test keeps it in step) and runs
  this same script's ``rootfs`` step in a Debian stage, so both images hold the same
  tree.

Two builds of one commit give the same digest: every time in the image is
``SOURCE_DATE_EPOCH`` (the commit's time), files are packed in sorted order with fixed
owners, byte code is hash-based, and nothing records the build's paths.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import oci

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "hack" / "requirements.lock"
# Debian's archive as seen from the build machine; bookworm is the base of Python 3.11.
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
PLATFORMS = {"amd64": "x86_64", "arm64": "aarch64"}
#: Debian's archive keys (package debian-archive-keyring; on Ubuntu runners too).
KEYRINGS = ("/usr/share/keyrings/debian-archive-keyring.gpg",)


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project


@dataclass(frozen=True)
class Spec:
    """Everything both builds share."""

    version: str = field(default_factory=lambda: str(_project()["version"]))
    repository: str = "ghcr.io/edge-operator/edge-operator"
    source: str = "https://github.com/edge-operator/edge-operator"
    # Debian packages unpacked into the image, with their dependencies.
    packages: tuple[str, ...] = ("python3.11-minimal", "libpython3.11-stdlib")
    python: str = "/usr/bin/python3.11"
    site: str = "/usr/local/lib/python3.11/dist-packages"
    # The chart's runAsUser/runAsGroup.
    uid: int = 65532
    entrypoint: tuple[str, ...] = ("/usr/local/bin/edge-operator",)
    cmd: tuple[str, ...] = ("run",)
    env: tuple[str, ...] = (
        "PATH=/usr/local/bin:/usr/bin:/bin",
        # The root filesystem is read-only: byte code is compiled into the image.
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
    )
    ports: tuple[int, ...] = (8080, 8081)

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.version}"

    def labels(self, revision: str, created: str) -> dict[str, str]:
        return {
            "org.opencontainers.image.title": "edge-operator",
            "org.opencontainers.image.description": str(_project()["description"]),
            "org.opencontainers.image.source": self.source,
            "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.version": self.version,
            "org.opencontainers.image.licenses": "Apache-2.0",
            "org.opencontainers.image.created": created,
        }


# --- the root filesystem ---------------------------------------------------------------


def _run(*argv: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, check=True, env={**os.environ, **(env or {})})


def debian(spec: Spec, arch: str, root: Path, epoch: int) -> list[dict[str, str]]:
    """Unpack spec.packages (and what they depend on) for ``arch`` into ``root``; record
    each package as distroless images do (/var/lib/dpkg/status.d/NAME, read by image
    scanners) and return their control fields."""
    _run(
        "mmdebstrap", "--quiet", "--variant=extract", f"--architectures={arch}",
        f"--include={','.join(spec.packages)}", "--skip=cleanup/apt/cache",
        "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
        *(f"--keyring={k}" for k in KEYRINGS if Path(k).exists()),
        "bookworm", str(root), *MIRRORS,
        env={"SOURCE_DATE_EPOCH": str(epoch)},
    )  # fmt: skip
    status = root / "var/lib/dpkg/status.d"
    status.mkdir(parents=True, exist_ok=True)
    found = []
    for deb in sorted((root / "var/cache/apt/archives").glob("*.deb")):
        control = subprocess.run(
            ["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True
        ).stdout
        fields = dict(HeaderParser().parsestr(control).items())
        fields["SHA256"] = hashlib.sha256(deb.read_bytes()).hexdigest()
        (status / fields["Package"]).write_text(control)
        found.append(fields)
    # What only the build used: apt's cache and lists, dpkg's own programs are kept
    # (a dependency of python3.11-minimal) but its empty database is not needed.
    for leftover in ("var/cache/apt", "var/lib/apt", "var/log", "dev"):
        shutil.rmtree(root / leftover, ignore_errors=True)
    for mountpoint in ("dev", "proc", "sys", "tmp"):  # the runtime mounts over these
        (root / mountpoint).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    return found


def python(spec: Spec, arch: str, root: Path, wheel: Path) -> None:
    """Install the locked dependencies and the operator's wheel into spec.site, compile
    hash-based byte code, and write the entry point."""
    site = root / spec.site.lstrip("/")
    # pip takes --platform tags literally: every manylinux tag bookworm's glibc 2.36 runs.
    machine = PLATFORMS[arch]
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 16, -1)]
    platforms = [arg for tag in (*tags, f"manylinux2014_{machine}") for arg in ("--platform", tag)]
    common = (
        "--quiet", "--disable-pip-version-check", "--no-compile", "--no-deps",
        "--only-binary=:all:", *platforms, "--python-version", "3.11",
        "--implementation", "cp", "--target", str(site),
    )  # fmt: skip
    pip = (sys.executable, "-m", "pip", "install")
    _run(*pip, *common, "--require-hashes", "-r", str(LOCK))
    _run(*pip, *common, "--upgrade", str(wheel))
    # direct_url.json names the build's path; pip's console scripts in bin/ start with
    # the building interpreter's path (the entry point is written below instead).
    for marker in site.glob("*.dist-info/direct_url.json"):
        marker.unlink()
    shutil.rmtree(site / "bin", ignore_errors=True)
    for record in site.glob("*.dist-info/RECORD"):
        _drop_rows(record, ("../../bin/", f"{record.parent.name}/direct_url.json"))
    slim_kubernetes_client(site)
    stdlib = root / "usr/lib/python3.11"  # Debian compiles it at install; extract does not
    _run(
        sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
        "unchecked-hash", "-s", str(root), "-p", "/", "-x", "/(test|idlelib|lib2to3)/",
        str(site), str(stdlib),
    )  # fmt: skip
    script = root / spec.entrypoint[0].lstrip("/")
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        f"#!{spec.python}\nimport sys\nfrom edge_operator.cli import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)


#: The Kubernetes client's asyncio twin, which nothing imports (68 MB with byte code).
UNUSED = ("kubernetes/aio",)
#: The client's generated API and model classes (2,500 files, all imported with
#: ``kubernetes.client``), shipped as byte code only: 27 MB less, same start-up time.
SOURCELESS = ("kubernetes/client/api", "kubernetes/client/models")


def slim_kubernetes_client(site: Path) -> None:
    for unused in UNUSED:
        shutil.rmtree(site / unused)
    for package in SOURCELESS:
        _run(
            sys.executable, "-m", "compileall", "-q", "-b", "--invalidation-mode",
            "unchecked-hash", "-s", str(site), "-p", "/", str(site / package),
        )  # fmt: skip
        for source in (site / package).glob("*.py"):
            source.unlink()
    for record in site.glob("kubernetes-*.dist-info/RECORD"):
        _drop_rows(record, (*UNUSED, *SOURCELESS))


def _drop_rows(record: Path, prefixes: tuple[str, ...]) -> None:
    """Take the rows of files no longer installed out of a wheel's RECORD."""
    rows = record.read_text().splitlines()
    record.write_text("\n".join(r for r in rows if not r.startswith(prefixes)) + "\n")


def users(spec: Spec, root: Path) -> None:
    """/etc/passwd and /etc/group with root and the non-root user the image runs as."""
    etc = root / "etc"
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{spec.uid}:{spec.uid}::/tmp:/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nnonroot:x:{spec.uid}:\n")


def rootfs(spec: Spec, arch: str, root: Path, wheel: Path, epoch: int) -> list[dict[str, str]]:
    """The image's whole tree in ``root``; returns the Debian packages in it."""
    packages = debian(spec, arch, root, epoch)
    python(spec, arch, root, wheel)
    users(spec, root)
    return packages


def build_wheel(out: Path, epoch: int) -> Path:
    _run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
        str(REPO),
        env={"SOURCE_DATE_EPOCH": str(epoch)},
    )  # fmt: skip
    return next(out.glob("edge_operator-*.whl"))


# --- packing -----------------------------------------------------------------------------


def _walk(root: Path) -> Iterator[Path]:
    """Every path under ``root``, parents first, in byte order of names."""
    for entry in sorted(root.iterdir(), key=lambda p: p.name.encode()):
        yield entry
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)


def layer(root: Path, epoch: int) -> bytes:
    """``root`` as one tar layer: sorted, every mtime ``epoch``, owners by number only."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in _walk(root):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.mtime, info.uname, info.gname = epoch, "", ""
            if info.isreg():
                with path.open("rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
    return buf.getvalue()


def config(spec: Spec, arch: str, revision: str, epoch: int) -> dict[str, Any]:
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {
            "User": f"{spec.uid}:{spec.uid}",
            "Env": list(spec.env),
            "Entrypoint": list(spec.entrypoint),
            "Cmd": list(spec.cmd),
            "WorkingDir": "/",
            "ExposedPorts": {f"{port}/tcp": {} for port in spec.ports},
            "Labels": spec.labels(revision, created),
        },
        "history": [{"created": created, "created_by": "hack/image.py (make image)"}],
    }


# --- the SBOM ----------------------------------------------------------------------------


def python_packages(site: Path) -> list[dict[str, str]]:
    found = []
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        headers = HeaderParser().parsestr(meta.read_text(errors="replace"))
        found.append(
            {
                "name": headers["Name"],
                "version": headers["Version"],
            }
        )
    return found


def _spdx_id(kind: str, name: str) -> str:
    return "SPDXRef-" + "".join(c if c.isalnum() or c in ".-" else "-" for c in f"{kind}-{name}")


def sbom(
    spec: Spec,
    *,
    arch: str,
    digest: str,
    epoch: int,
    debs: list[dict[str, str]],
    wheels: list[dict[str, str]],
) -> dict[str, Any]:
    """An SPDX 2.3 document: the image, and every Debian and Python package in it."""
    image_id = "SPDXRef-Image"
    packages: list[dict[str, Any]] = [
        {
            "SPDXID": image_id,
            "name": spec.repository,
            "versionInfo": spec.version,
            "downloadLocation": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": digest.split(":")[1]}],
            "externalRefs": [_purl(f"pkg:oci/edge-operator@{digest}?arch={arch}")],
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    packages += [
        _package(
            "deb", deb["Package"], deb["Version"],
            f"pkg:deb/debian/{deb['Package']}@{deb['Version']}"
            f"?arch={deb['Architecture']}&distro=debian-12",
            supplier="Organization: Debian",
            checksums=[{"algorithm": "SHA256", "checksumValue": deb["SHA256"]}],
        )
        for deb in debs
    ]  # fmt: skip
    packages += [
        _package(
            "pypi", wheel["name"], wheel["version"],
            f"pkg:pypi/{wheel['name'].lower()}@{wheel['version']}",
            licenseDeclared="NOASSERTION",
        )
        for wheel in wheels
    ]  # fmt: skip
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{spec.ref}-{arch}",
        "documentNamespace": f"{spec.source}/spdx/{digest}",
        "creationInfo": {
            "created": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": ["Tool: edge-operator-hack-image"],
        },
        "packages": packages,
        "relationships": [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
             "relatedSpdxElement": image_id},
            *({"spdxElementId": image_id, "relationshipType": "CONTAINS",
               "relatedSpdxElement": p["SPDXID"]} for p in packages[1:]),
        ],
    }  # fmt: skip


def _package(kind: str, name: str, version: str, purl: str, **fields: Any) -> dict[str, Any]:
    """One SPDX package entry of ``kind`` (deb, pypi), found by its package URL."""
    return {
        "SPDXID": _spdx_id(kind, name),
        "name": name,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        **fields,
        "externalRefs": [_purl(purl)],
    }


def _purl(locator: str) -> dict[str, str]:
    return {
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": locator,
    }


# --- the build ---------------------------------------------------------------------------


def _git(*argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *argv], check=True, capture_output=True, text=True
    ).stdout.strip()


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH if set, else the time of the commit checked out."""
    return int(os.environ.get("SOURCE_DATE_EPOCH") or _git("log", "-1", "--format=%ct"))


def revision() -> str:
    head = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src", "pyproject.toml")
    return f"{head}-dirty" if dirty else head


@dataclass(frozen=True)
class Built:
    archive: Path
    sbom: Path
    digest: str
    size: int  # uncompressed layer bytes


def build(spec: Spec, arch: str, out: Path) -> Built:
    epoch, rev = source_date_epoch(), revision()
    with tempfile.TemporaryDirectory(prefix="edge-operator-image-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work / "wheel", epoch)
        root = work / "rootfs"
        debs = rootfs(spec, arch, root, wheel, epoch)
        wheels = python_packages(root / spec.site.lstrip("/"))
        tar = layer(root, epoch)
    blob = gzip.compress(tar, compresslevel=6, mtime=0)
    stem = f"edge-operator-{spec.version}-{arch}"
    archive = out / f"{stem}.oci.tar"
    labels = config(spec, arch, rev, epoch)["config"]["Labels"]
    digest = oci.write_layout(
        archive, spec.ref, config(spec, arch, rev, epoch), [(tar, blob)], annotations=labels
    )
    sbom_path = out / f"{stem}.spdx.json"
    sbom_path.write_text(
        json.dumps(
            sbom(spec, arch=arch, digest=digest, epoch=epoch, debs=debs, wheels=wheels), indent=2
        )
        + "\n"
    )
    return Built(archive, sbom_path, digest, len(tar))


#: What the image is made of: a change to any of these builds it again.
INPUTS = ("hack/image.py", "hack/lab/images.py", "hack/requirements.lock", "pyproject.toml")


def cached(spec: Spec, arch: str, cache: Path) -> Path:
    """The image's archive for the checked-out tree, from ``cache`` or built into it once
    (the lab imports it into every node). A lock keeps two builds from racing."""
    digest = hashlib.sha256(revision().encode())
    for path in (*INPUTS, *sorted(_git("ls-files", "src").splitlines())):
        digest.update(path.encode() + b"\0" + (REPO / path).read_bytes())
    out = cache / f"operator-image-{digest.hexdigest()[:16]}"
    archive = out / f"edge-operator-{spec.version}-{arch}.oci.tar"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".operator-image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not archive.exists():
            print(f"building the operator image into {out} (about 1 min)", file=sys.stderr)
            build(spec, arch, out)
    return archive


# --- the Dockerfile ----------------------------------------------------------------------


def dockerfile(spec: Spec) -> str:
    """The Dockerfile for machines with Docker: the same Spec, the same rootfs step."""
    labels = spec.labels("${REVISION}", "${CREATED}")
    label_lines = " \\\n      ".join(f'{k}="{v}"' for k, v in labels.items())
    env_lines = " \\\n    ".join(spec.env)
    return f"""\
# syntax=docker/dockerfile:1
# Generated by `python3 hack/image.py dockerfile` from hack/image.py's Spec; do not edit.
# `make image` builds the same tree without Docker (see hack/image.py). Here a Debian
# stage runs that script's rootfs step, and the image is that tree alone.
#   docker build --build-arg REVISION=$(git rev-parse HEAD) \\
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \\
#     --build-arg CREATED=$(date -u -d @$(git log -1 --format=%ct) +%Y-%m-%dT%H:%M:%SZ) \\
#     -t {spec.ref} .
FROM debian:bookworm AS build
ARG TARGETARCH=amd64
# The commit's time (git log -1 --format=%ct): every time in the image.
ARG SOURCE_DATE_EPOCH=0
ENV SOURCE_DATE_EPOCH=${{SOURCE_DATE_EPOCH}} PIP_BREAK_SYSTEM_PACKAGES=1
RUN apt-get update \\
 && apt-get install -y --no-install-recommends mmdebstrap python3-pip ca-certificates
COPY . /src
RUN cd /src && python3 hack/image.py rootfs --arch "$TARGETARCH" --output /rootfs

FROM scratch
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
COPY --from=build /rootfs /
LABEL {label_lines}
ENV {env_lines}
USER {spec.uid}:{spec.uid}
EXPOSE {" ".join(str(p) for p in spec.ports)}
ENTRYPOINT {json.dumps(list(spec.entrypoint))}
CMD {json.dumps(list(spec.cmd))}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/image.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=("build", "cached", "rootfs", "dockerfile", "digest"),
        help="cached: print the path of the tree's image in ~/.cache/edge-operator, built once",
    )
    parser.add_argument("--arch", default="amd64", choices=sorted(PLATFORMS))
    parser.add_argument("--output", type=Path, default=REPO / "dist")
    args = parser.parse_args(argv)
    spec = Spec()
    if args.command == "dockerfile":
        sys.stdout.write(dockerfile(spec))
    elif args.command == "rootfs":
        epoch = source_date_epoch()
        with tempfile.TemporaryDirectory() as tmp:
            rootfs(spec, args.arch, args.output, build_wheel(Path(tmp), epoch), epoch)
    elif args.command == "cached":
        import localcluster  # noqa: PLC0415 - the Dockerfile's stage copies only this script

        print(cached(spec, args.arch, localcluster.cache_dir()))
    elif args.command == "digest":
        print(manifest_digest(args.output / f"edge-operator-{spec.version}-{args.arch}.oci.tar"))
    else:
        built = build(spec, args.arch, args.output)
        print(f"image   {spec.ref} ({args.arch})")
        print(f"archive {built.archive}")
        print(f"sbom    {built.sbom}")
        print(f"digest  {built.digest}")
        print(f"size    {built.size / 1e6:.1f} MB uncompressed, "
              f"{built.archive.stat().st_size / 1e6:.1f} MB archive")  # fmt: skip
    return 0


def manifest_digest(archive: Path) -> str:
    """The manifest digest an OCI layout archive's index names."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.load(member)
    return str(index["manifests"][0]["digest"])


if __name__ == "__main__":
    sys.exit(main())
