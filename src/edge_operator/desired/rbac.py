"""The controller's identity and its rights: a ServiceAccount, and bindings to the
provider's ClusterRoles (installed with the operator; the operator only binds them).

Apply policy: a binding's ``roleRef`` is immutable, so a binding whose role must change
is deleted and created again (RECREATE); the ClusterRoleBinding also carries the
provider in its name, so a provider switch makes a new one and the old one is deleted.
"""

from __future__ import annotations

from typing import Any

from edge_operator import names
from edge_operator.desired.objects import Owner, metadata

#: Kinds deleted and created again when an immutable field of theirs must change.
RECREATE = frozenset({"ClusterRoleBinding", "RoleBinding"})


def service_account(owner: Owner, provider: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(owner, provider, names.workload_name(owner.name), namespace),
    }


def _subjects(owner: Owner, namespace: str) -> list[dict[str, str]]:
    account = names.workload_name(owner.name)
    return [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]


def _role_ref(role: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}


def cluster_role_binding(owner: Owner, provider: str, namespace: str, role: str) -> dict[str, Any]:
    """The provider's cluster-wide role, for the controller's ServiceAccount."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(
            owner, provider, f"{names.cluster_binding_name(owner.name)}-{provider}"
        ),
        "roleRef": _role_ref(role),
        "subjects": _subjects(owner, namespace),
    }


def role_binding(owner: Owner, provider: str, namespace: str, role: str) -> dict[str, Any]:
    """A provider role granted in the controller's namespace only."""
    name = f"{names.workload_name(owner.name)}-{provider}"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(owner, provider, name, namespace),
        "roleRef": _role_ref(role),
        "subjects": _subjects(owner, namespace),
    }


def feature_binding(
    owner: Owner, provider: str, namespace: str, role: str, feature: str
) -> dict[str, Any]:
    """The rights of one of the provider's features (gateway-api, ingress-nginx), bound
    cluster-wide while the gateway uses it."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(
            owner, provider, names.feature_binding_name(owner.name, provider, feature)
        ),
        "roleRef": _role_ref(role),
        "subjects": _subjects(owner, namespace),
    }
