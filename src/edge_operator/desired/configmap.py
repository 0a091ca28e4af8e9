"""The provider's ConfigMap, for providers configured by one (ingress-nginx)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_operator import names
from edge_operator.desired.objects import Owner, metadata


def config_map(
    owner: Owner, provider: str, namespace: str, data: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, provider, names.workload_name(owner.name), namespace),
        "data": dict(data),
    }
