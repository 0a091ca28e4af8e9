"""edge-operator: dedicated edge (ingress) nodes for Kubernetes from one EdgeGateway resource."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-operator")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
