"""Envoy Gateway's own CRDs (gateway.envoyproxy.io: EnvoyProxy, ClientTrafficPolicy, ...)
of ENVOY_GATEWAY_VERSION, for the local control plane and the lab.

They come from the ``github.com/envoyproxy/gateway`` Go module (``go mod download``: no
release download), the files its Helm chart installs
(``charts/gateway-helm/charts/crds/crds/generated``), joined in name order into one
manifest, cached by version. (The chart's Gateway API CRDs are the experimental
channel; the standard ones come from hack/gateway_api.py.)

    python3 hack/envoy_gateway.py manifest    # prints the manifest's path
    python3 hack/envoy_gateway.py install KUBECONFIG
"""

from __future__ import annotations

import argparse
import fcntl
import subprocess
import sys
from pathlib import Path

import gateway_api
import localcluster

MODULE = "github.com/envoyproxy/gateway"
CRDS = Path("charts/gateway-helm/charts/crds/crds/generated")


def version() -> str:
    return localcluster._versions()["ENVOY_GATEWAY_VERSION"]


def manifest(ver: str | None = None) -> Path:
    """Envoy Gateway's CRDs of ``ver`` as one YAML file, downloaded once."""
    ver = ver or version()
    cache = localcluster.cache_dir()
    out = cache / f"envoy-gateway-crds-{ver}" / "crds.yaml"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".envoy-gateway-crds-{ver}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():  # made by the holder of the lock
            return out
        source = gateway_api.module_dir(MODULE, ver) / CRDS
        docs = [p.read_text().strip() for p in sorted(source.glob("*.yaml"))]
        if not docs:
            raise RuntimeError(f"no CRDs in {source}")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".tmp")
        partial.write_text(
            f"# Envoy Gateway {ver} CRDs, from the Go module {MODULE}.\n"
            + "\n---\n".join(d.removeprefix("---\n") for d in docs)
            + "\n"
        )
        partial.rename(out)
    return out


def install(kubeconfig: Path, ver: str | None = None) -> None:
    """Apply the CRDs (server-side) and wait until every one is Established."""
    kubectl = [str(localcluster.kubectl_path()), f"--kubeconfig={kubeconfig}"]
    path = manifest(ver)
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
    return gateway_api.crd_names(path or manifest())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/envoy_gateway.py", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("manifest", help="print the path of the CRDs' manifest (downloaded once)")
    inst = sub.add_parser("install", help="apply the CRDs to a cluster")
    inst.add_argument("kubeconfig", type=Path)
    args = parser.parse_args(argv)
    if args.command == "manifest":
        print(manifest())
    else:
        install(args.kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
