"""Leaving a cluster as it was: the chart's pre-delete hook, and the leader's last act.

``edge-operator uninstall`` runs as the Helm chart's pre-delete hook, before Helm
deletes anything. With EdgeGateways present it either refuses (the default: uninstalling
the operator must not take a cluster's ingress down as a side effect; the hook fails,
Helm stops, and nothing was changed), or, with ``--delete-gateways``
(``uninstall.deleteGateways``), deletes them while the operator still runs and waits
until each is gone, its nodes restored and its objects deleted.

``release_node_finalizers`` is what the leader does when it stops and no replica will
follow (its Deployment deleted, being deleted or scaled to 0): it takes
``edgeoperator.dev/drain`` off every Node, because only a running operator can finish a
node's drain, and a Node that keeps it could never finish a deletion. Labels and taints
stay: the gateways still exist and their pods still serve. The next leader puts the
finalizer back.

Decisions are pure; ``run`` and ``release_node_finalizers`` do the I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge_operator import leader, names
from edge_operator.kube import ConflictError, Kube, KubeError, NotFoundError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    proceed: bool
    delete: tuple[str, ...]  # gateways to delete first
    message: str


def decide(gateways: Sequence[str], delete_gateways: bool, leader_alive: bool) -> Verdict:
    """What the pre-delete hook does with the EdgeGateways it found."""
    if not gateways:
        return Verdict(True, (), "no EdgeGateway left: nothing to restore")
    listed = ", ".join(gateways)
    if not delete_gateways:
        return Verdict(
            False,
            (),
            f"refusing to uninstall: {len(gateways)} EdgeGateway(s) still exist ({listed}). "
            "Delete them first (the operator restores their nodes), or set "
            "uninstall.deleteGateways=true to have the uninstall delete them. Nothing was "
            "changed.",
        )
    if not leader_alive:
        return Verdict(
            False,
            (),
            f"refusing to uninstall: {len(gateways)} EdgeGateway(s) exist ({listed}) and no "
            "operator replica holds the Lease to restore their nodes. Scale the operator up "
            "first. Nothing was changed.",
        )
    return Verdict(True, tuple(gateways), f"deleting {listed}; waiting for their nodes")


def going_away(deployment: Mapping[str, Any] | None) -> bool:
    """Whether no replica will follow this one: the Deployment gone, being deleted, or
    scaled to 0."""
    if deployment is None or deployment.get("metadata", {}).get("deletionTimestamp"):
        return True
    return int((deployment.get("spec") or {}).get("replicas", 1)) == 0


def without_drain(node: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that takes the drain finalizer off ``node`` (guarded by its
    resourceVersion), or None when it has none."""
    meta = node["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if names.NODE_FINALIZER not in finalizers:
        return None
    kept = [f for f in finalizers if f != names.NODE_FINALIZER]
    return {"metadata": {"resourceVersion": meta["resourceVersion"], "finalizers": kept}}


def release_node_finalizers(kube: Kube) -> list[str]:
    """Take the drain finalizer off every Node that has it; the names released."""
    released = []
    for listed in kube.iter_nodes():
        name, node = listed["metadata"]["name"], listed
        for _ in range(5):  # a conflict: read the node again
            patch = without_drain(node)
            if patch is None:
                break
            try:
                kube.patch_node(name, patch)
                released.append(name)
                break
            except ConflictError:
                node = kube.get_node(name)
            except NotFoundError:
                break
    if released:
        log.info("released %s from %s: no replica follows", names.NODE_FINALIZER, released)
    return released


def _leader_alive(kube: Kube, namespace: str, lease_name: str) -> bool:
    try:
        lease = kube.get_object("Lease", namespace, lease_name)
    except NotFoundError:
        return False
    return leader.held_by_other(lease, "", datetime.now(UTC))


def run(
    kube: Kube, *, delete_gateways: bool, namespace: str, lease_name: str, timeout: float
) -> int:
    """The pre-delete hook: 0 lets Helm go on, 1 stops it (the message says why)."""
    gateways = sorted(g["metadata"]["name"] for g in kube.list_gateways())
    alive = bool(gateways) and _leader_alive(kube, namespace, lease_name)
    verdict = decide(gateways, delete_gateways, alive)
    print(f"edge-operator uninstall: {verdict.message}", flush=True)
    if not verdict.proceed:
        return 1
    for name in verdict.delete:
        kube.delete_object(names.KIND, "", name)
    deadline = time.monotonic() + timeout
    while verdict.delete:
        left = [g["metadata"]["name"] for g in kube.list_gateways()]
        if not left:
            break
        if time.monotonic() > deadline:
            print(f"edge-operator uninstall: still deleting after {timeout:.0f}s: {left}")
            return 1
        time.sleep(1)
    draining = [
        n["metadata"]["name"]
        for n in kube.iter_nodes()
        if names.NODE_FINALIZER in (n["metadata"].get("finalizers") or [])
    ]
    if draining:
        print(f"edge-operator uninstall: nodes still carry {names.NODE_FINALIZER}: {draining}")
        return 1
    print("edge-operator uninstall: every gateway deleted and its nodes restored", flush=True)
    return 0


def on_exit(kube: Kube, namespace: str, deployment: str) -> None:
    """The leader's last act (see the module docstring); errors are logged, not raised."""
    try:
        try:
            found: dict[str, Any] | None = kube.get_object("Deployment", namespace, deployment)
        except NotFoundError:
            found = None
        if going_away(found):
            release_node_finalizers(kube)
    except KubeError as error:
        log.warning("could not release the nodes' drain finalizers: %s", error)
