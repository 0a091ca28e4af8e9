"""What every object of a gateway's workload shares, and how to tell it needs applying.

The operator applies an object (server-side apply, field manager edge-operator)
only when it differs from what is on the cluster, so a converged gateway costs
the API server no writes. "Differs" is decided by two pure checks:

- the hash of the applied configuration, kept in an annotation on the object,
  changed: the spec changed, including fields the operator no longer sets;
- a field the operator sets no longer has the value it set (someone edited it):
  drift, corrected by applying again. Fields the operator does not set (an
  annotation another controller added, the Service's allocated nodePorts and
  healthCheckNodePort, a replica count an autoscaler owns) are never compared.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from edge_operator import names

Action = Literal["Create", "Update", "Delete"]


@dataclass(frozen=True, order=True)
class Key:
    """Identity of an object: kind, namespace ("" for cluster-scoped) and name."""

    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Key:
        meta = obj["metadata"]
        return cls(obj["kind"], meta.get("namespace", ""), meta["name"])

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class Owner:
    """The EdgeGateway that owns the objects."""

    name: str
    uid: str

    def owns(self, obj: Mapping[str, Any]) -> bool:
        """The object carries this gateway's ownerReference (by uid). Its label alone proves
        nothing: a copy made with kustomize, or a chart that reuses it, carries it too."""
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        return bool(self.uid) and any(r.get("uid") == self.uid for r in refs)

    def reference(self) -> dict[str, Any]:
        """ownerReference: the garbage collector deletes the object with the gateway."""
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def labels(owner: Owner, provider: str) -> dict[str, str]:
    """Labels on every object of the gateway's workload."""
    return {
        names.GATEWAY_LABEL: owner.name,
        names.MANAGED_BY_LABEL: names.MANAGED_BY_VALUE,
        names.NAME_LABEL: provider,
        names.INSTANCE_LABEL: owner.name,
        names.COMPONENT_LABEL: names.COMPONENT_CONTROLLER,
    }


def metadata(
    owner: Owner,
    provider: str,
    name: str,
    namespace: str = "",
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = labels(owner, provider)
    if annotations:
        meta["annotations"] = dict(annotations)
    meta["ownerReferences"] = [owner.reference()]
    return meta


def digest(value: object, length: int = 16) -> str:
    """A short, stable hash of a JSON-able value."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def stamped(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with the hash of itself in the applied-hash annotation."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        names.APPLIED_HASH_ANNOTATION: digest(obj),
    }
    return {**obj, "metadata": meta}


def applied_hash(obj: Mapping[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(names.APPLIED_HASH_ANNOTATION)


def action(desired: Mapping[str, Any], current: Mapping[str, Any] | None) -> Action | None:
    """What applying ``desired`` (already stamped) would do to ``current``: None is nothing."""
    if current is None:
        return "Create"
    if applied_hash(current) != applied_hash(desired) or not contains(current, desired):
        return "Update"
    return None


#: Fields the API treats as one value (atomic maps and lists) or whose extra
#: content changes what they mean: below these, ``current`` may hold nothing more.
EXACT_FIELDS = frozenset(
    {"nodeSelector", "selector", "tolerations", "affinity", "topologySpreadConstraints",
     "securityContext", "subjects", "roleRef"}
)  # fmt: skip


def contains(current: object, desired: object, exact: bool = False) -> bool:
    """Every field set in ``desired`` has that value in ``current``.

    ``current`` may hold more: fields the API server defaulted or allocated and
    fields other managers set, except under EXACT_FIELDS (or with ``exact``).
    Lists are compared element by element (the server keeps their order). An
    empty value in ``desired`` matches an absent one, because the API server
    drops empty optional fields such as ``annotations: {}``.
    """
    if isinstance(desired, Mapping):
        if not isinstance(current, Mapping):
            return False
        if exact and any(k not in desired and not _empty(v) for k, v in current.items()):
            return False
        return all(
            (key in current and contains(current[key], value, exact or key in EXACT_FIELDS))
            or (key not in current and _empty(value))
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(current, list)
            and len(current) == len(desired)
            and all(contains(c, d, exact) for c, d in zip(current, desired, strict=True))
        )
    if isinstance(current, bool) != isinstance(desired, bool):
        return False  # in Python, True == 1
    return current == desired or _same_quantity(current, desired)


def project(current: object, desired: object, exact: bool = False) -> object:
    """``current`` cut down to what :func:`contains` compares with ``desired``.

    So ``project(current, desired)`` reads like ``desired`` wherever ``contains``
    finds them equal (a quantity in its canonical form, an empty value the server
    dropped) and shows ``current``'s own value wherever it differs.
    """
    if isinstance(desired, Mapping) and isinstance(current, Mapping):
        out: dict[str, object] = {}
        for key, value in desired.items():
            if key in current:
                out[key] = project(current[key], value, exact or key in EXACT_FIELDS)
            elif _empty(value):
                out[key] = value
        if exact:
            out.update((k, v) for k, v in current.items() if k not in desired and not _empty(v))
        return out
    if isinstance(desired, list) and isinstance(current, list):
        pairs = zip(current, desired, strict=False)
        return [project(c, d, exact) for c, d in pairs] + current[len(desired) :]
    return desired if contains(current, desired, exact) else current


def _empty(value: object) -> bool:
    # The API server omits empty optional fields, e.g. a toleration's value "".
    return value is None or value in ({}, [], "")


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES: Mapping[str, Decimal] = {
    "": Decimal(1),
    **{s: Decimal(f"1e{e}") for s, e in (("n", -9), ("u", -6), ("m", -3), ("k", 3))},
    **{s: Decimal(f"1e{3 * e}") for e, s in enumerate("MGTPE", start=2)},
    **{f"{s}i": Decimal(2 ** (10 * e)) for e, s in enumerate("KMGTPE", start=1)},
}


def _quantity(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    match = _QUANTITY.match(str(value))
    if match is None or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None


def _same_quantity(current: object, desired: object) -> bool:
    """The API server stores resource quantities canonically: 0.5 reads back as 500m."""
    if isinstance(current, bool) or isinstance(desired, bool):
        return False
    if not isinstance(current, str) and not isinstance(desired, str):
        return False  # two plain numbers that differ
    a, b = _quantity(current), _quantity(desired)
    return a is not None and a == b
