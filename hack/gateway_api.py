"""The Gateway API CRDs (standard channel) of GATEWAY_API_VERSION, for the local control
plane, the lab and ``make tools`` (which caches them).

They come from the ``sigs.k8s.io/gateway-api`` Go module (``go mod download``, the Go
module proxy: no release download), the files of its ``config/crd/standard`` joined in
name order into one manifest, cached by version. The version is Traefik's own
(its go.mod at the pinned release requires sigs.k8s.io/gateway-api v1.6.1).

    python3 hack/gateway_api.py manifest    # prints the manifest's path
    python3 hack/gateway_api.py install KUBECONFIG
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import localcluster

MODULE = "sigs.k8s.io/gateway-api"
GROUP = "gateway.networking.k8s.io"


def version() -> str:
    return localcluster._versions()["GATEWAY_API_VERSION"]


def module_dir(module: str, ver: str) -> Path:
    """The source of a Go module at ``ver`` in the module cache (downloaded from the
    module proxy first if it is not there)."""
    with tempfile.TemporaryDirectory(prefix="go-module-") as tmp:
        # -json outside a module needs a module of its own to run in.
        (Path(tmp) / "go.mod").write_text("module gomoduledir\n\ngo 1.22\n")
        found = subprocess.run(
            ["go", "mod", "download", "-json", f"{module}@{ver}"],
            cwd=tmp, capture_output=True, text=True, check=False,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )  # fmt: skip
    if found.returncode != 0:
        raise RuntimeError(f"go mod download {module}@{ver}: {found.stderr or found.stdout}")
    return Path(json.loads(found.stdout)["Dir"])


def manifest(ver: str | None = None) -> Path:
    """The standard-channel CRDs of ``ver`` as one YAML file, downloaded once."""
    ver = ver or version()
    return joined(f"gateway-api-{ver}/standard-install.yaml", MODULE, ver,
                  Path("config/crd/standard"), f"Gateway API {ver} standard channel")  # fmt: skip


def joined(target: str, module: str, ver: str, source: Path, title: str) -> Path:
    """The YAML files of ``source`` in Go module ``module`` at ``ver``, joined in name order
    into ``target`` (a path in the cache), once (two builds at once wait for each other
    on a lock)."""
    cache = localcluster.cache_dir()
    out = cache / target
    slug = Path(target).parts[0]
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".{slug}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():  # made by the holder of the lock
            return out
        found = module_dir(module, ver) / source
        docs = [p.read_text().strip() for p in sorted(found.glob("*.yaml"))]
        if not docs:
            raise RuntimeError(f"no YAML files in {found}")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".tmp")
        partial.write_text(
            f"# {title}, from the Go module {module}.\n"
            + "\n---\n".join(d.removeprefix("---\n") for d in docs)
            + "\n"
        )
        partial.rename(out)
    return out


def install(kubeconfig: Path, ver: str | None = None) -> None:
    apply_crds(kubeconfig, manifest(ver))


def apply_crds(kubeconfig: Path, path: Path) -> None:
    """Apply the CRDs of a manifest (server-side: they are too large for the
    last-applied annotation) and wait until every one is Established."""
    kubectl = [str(localcluster.kubectl_path()), f"--kubeconfig={kubeconfig}"]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
         *(f"customresourcedefinition/{name}" for name in crd_names(path))],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def crd_names(path: Path | None = None) -> list[str]:
    """The CRDs the manifest holds (it also holds a ValidatingAdmissionPolicy). Read
    without a YAML parser: ``make tools`` runs this with any python3."""
    found = []
    for doc in (path or manifest()).read_text().split("\n---\n"):
        if re.search(r"^kind: CustomResourceDefinition$", doc, re.M):
            meta = doc[re.search(r"^metadata:$", doc, re.M).end() :]  # type: ignore[union-attr]
            found.append(re.search(r"^  name: (\S+)$", meta, re.M).group(1))  # type: ignore[union-attr]
    return found


def command(
    prog: str,
    doc: str,
    made: Callable[[], Path],
    applied: Callable[[Path], None],
    argv: list[str] | None = None,
) -> int:
    """A CRD script's command line: ``manifest`` prints ``made()``, ``install KUBECONFIG``
    runs ``applied``."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("manifest", help="print the path of the CRDs' manifest (downloaded once)")
    inst = sub.add_parser("install", help="apply the CRDs to a cluster")
    inst.add_argument("kubeconfig", type=Path)
    args = parser.parse_args(argv)
    if args.command == "manifest":
        print(made())
    else:
        applied(args.kubeconfig)
    return 0


def main(argv: list[str] | None = None) -> int:
    return command("hack/gateway_api.py", __doc__, manifest, install, argv)


if __name__ == "__main__":
    sys.exit(main())
