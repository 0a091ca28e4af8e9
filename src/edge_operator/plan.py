"""``edge-operator plan``: what applying an EdgeGateway file would change; changes nothing.

The file's spec takes the place of the cluster's (metadata and status stay the
cluster's gateway's, or a new gateway's) and the reconciler works out one pass's
node and object changes without making them (``Reconciler.plan``). An object
update is shown as a diff of the fields the operator sets: the current object
projected onto the desired one, the way the operator itself compares them.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge_operator import api, names
from edge_operator.desired.objects import project
from edge_operator.gather import NodeCache
from edge_operator.kube import Kube, KubeError
from edge_operator.nodewatch import NodeWatch
from edge_operator.reconcile import Preview, Reconciler

#: Exit statuses: nothing to change; an error or a refusal; changes to make.
NO_CHANGES, FAILED, CHANGES = 0, 1, 2


class PlanError(Exception):
    """The file cannot be planned: unreadable, or not one valid EdgeGateway."""


def load(path: Path) -> dict[str, Any]:
    """The EdgeGateway in a YAML file ("-": standard input), validated."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise PlanError(f"cannot read {path}: {error}") from error
    if len(docs) != 1:
        raise PlanError(f"{path}: expected one EdgeGateway, found {len(docs)} YAML documents")
    obj = docs[0]
    if not isinstance(obj, dict):
        raise PlanError(f"{path}: expected an EdgeGateway object, found {type(obj).__name__}")
    try:
        api.EdgeGateway.model_validate(obj)
    except ValidationError as invalid:
        raise PlanError(f"{path}: invalid EdgeGateway: {api.describe(invalid)}") from invalid
    return obj


# --- the report (pure) --------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # a value used twice is written out twice, as kubectl does


def _yaml(obj: object) -> list[str]:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=100).splitlines()


def shown(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without the applied-hash annotation: the operator's bookkeeping."""
    meta = dict(obj.get("metadata") or {})
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != names.APPLIED_HASH_ANNOTATION
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**obj, "metadata": meta}


def diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Unified diff, current to desired, of the fields the operator sets."""
    want = shown(desired)
    have = project(shown(current), want)
    return list(difflib.unified_diff(_yaml(have), _yaml(want), "current", "desired", lineterm=""))


def count(preview: Preview) -> int:
    """The changes of the pass: to nodes, evictions and to objects."""
    return (
        sum(len(update.changes) for update in preview.decision.updates)
        + len(preview.evictions)
        + len(preview.workload.pending)
    )


def _notes(preview: Preview) -> list[str]:
    decision = preview.decision
    notes = []
    if preview.paused:
        notes.append("note: spec.paused is true: the operator makes these changes once it is not")
    if decision.missing_names:
        notes.append("note: named nodes not found: " + ", ".join(decision.missing_names))
    if decision.taint_pending:
        notes.append(
            "note: the NoExecute taint follows once a controller pod is Ready on: "
            + ", ".join(decision.taint_pending)
        )
    return notes


def _objects(preview: Preview) -> list[str]:
    workload = preview.workload
    lines = []
    for key, change in workload.pending:
        header = f"  {change.lower()} {key}"
        current, desired = workload.objects.get(key), workload.desired.get(key)
        if change == "Create" and key in preview.conflicts:
            lines.append(
                f"{header}: refused (ObjectConflict): an object of that name exists and is not"
                " this gateway's"
            )
        elif change == "Create" and desired is not None:
            lines += [header, *(f"    + {line}" for line in _yaml(shown(desired)))]
        elif change == "Update" and current is not None and desired is not None:
            lines += [header, *(f"    {line}" for line in diff(current, desired))]
            if lines[-1] == header:
                lines.append(
                    "    (the fields the operator sets are as desired, but not the configuration"
                    " it applied: fields it no longer sets are removed)"
                )
        else:
            lines.append(header)
    return lines


def render(preview: Preview) -> str:
    """The report of a preview that is not refused: one section per kind of change,
    in the order the pass makes them."""
    what = f"EdgeGateway {preview.gateway}" + (" (new)" if preview.new else "")
    total = count(preview)
    if not total:
        return "\n".join([f"{what}: No changes.", *_notes(preview)]) + "\n"
    lines = [f"{what}: {total} change{'' if total == 1 else 's'}", *_notes(preview)]
    node_changes = [c for update in preview.decision.updates for c in update.changes]
    if node_changes:
        lines.append("nodes:")
        lines += [f"  {c.action.lower()} node {c.name}: {c.detail}" for c in node_changes]
    if preview.evictions:
        lines.append("pods:")
        lines += [
            f"  evict pod {p.namespace}/{p.name}: {p.node_name} is no longer an edge node"
            for p in preview.evictions
        ]
    if preview.workload.pending:
        lines += ["objects:", *_objects(preview)]
    return "\n".join(lines) + "\n"


def outcome(preview: Preview) -> tuple[int, str]:
    """The exit status and the report (for standard error when FAILED)."""
    refusal = preview.decision.refusal
    if refusal is not None:
        return FAILED, f"refused: {refusal.reason}: {refusal.message}\n"
    return (CHANGES if count(preview) else NO_CHANGES), render(preview)


# --- the command --------------------------------------------------------------------------


def _fail(message: str) -> int:
    print(f"edge-operator plan: {message}", file=sys.stderr)
    return FAILED


def run(path: Path, kubeconfig: str | None) -> int:
    try:
        obj = load(path)
    except PlanError as error:
        return _fail(str(error))
    try:
        kube = Kube.connect(kubeconfig)
    except Exception as error:  # the client's own config errors: only kube.py may import them
        return _fail(f"cannot load the kubeconfig: {error}")
    cache = NodeCache()
    reconciler = Reconciler(kube, cache)
    try:
        NodeWatch(kube, cache, changed=lambda before, after: None).seed()
        preview = reconciler.plan(obj)
    except ValueError as error:
        return _fail(str(error))
    except KubeError as error:  # TransportError included: the API server cannot be reached
        return _fail(f"cannot read the cluster: {error}")
    status, report = outcome(preview)
    (sys.stderr if status == FAILED else sys.stdout).write(report)
    return status
