"""The controller namespace, when it has to be created.

Apply policy: created when missing, never deleted and never owned by a gateway (other
gateways and other workloads may share it), so it carries no ownerReference and its
kind is not among the kinds a gateway owns.
"""

from __future__ import annotations

from typing import Any

from edge_operator import names


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {names.MANAGED_BY_LABEL: names.MANAGED_BY_VALUE},
        },
    }
