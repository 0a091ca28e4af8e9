"""The PodDisruptionBudget of the controller pods: one edge node drained at a time."""

from __future__ import annotations

from typing import Any

from edge_operator import names
from edge_operator.desired import deployment as deployment_rules
from edge_operator.desired.objects import Owner, metadata


def pod_disruption_budget(owner: Owner, provider: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, provider, names.workload_name(owner.name), namespace),
        "spec": {
            # One edge node drained at a time; a pod that is not ready anyway must not
            # block the drain.
            "maxUnavailable": 1,
            "selector": {"matchLabels": deployment_rules.selector(owner)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
