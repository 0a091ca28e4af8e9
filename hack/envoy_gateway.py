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
    return gateway_api.joined(
        f"envoy-gateway-crds-{ver}/crds.yaml", MODULE, ver, CRDS, f"Envoy Gateway {ver} CRDs"
    )


def install(kubeconfig: Path, ver: str | None = None) -> None:
    gateway_api.apply_crds(kubeconfig, manifest(ver))


def crd_names(path: Path | None = None) -> list[str]:
    return gateway_api.crd_names(path or manifest())


def main(argv: list[str] | None = None) -> int:
    return gateway_api.command("hack/envoy_gateway.py", __doc__, manifest, install, argv)


if __name__ == "__main__":
    sys.exit(main())
