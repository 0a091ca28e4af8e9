"""``edge-operator plan`` on a real control plane: it reports what a pass would change
and changes nothing, with the operator running beside it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from edge_operator import names
from tests.e2e.cluster import Cluster, Gateways, wait_for
from tests.e2e.test_nodes import shape
from tests.e2e.test_workload import FAST_ROLLOUT, NS, OWNED, edge_pool, wait_available

MakeNode = Callable[..., dict[str, Any]]


def plan(
    cluster: Cluster, tmp_path: Path, name: str, spec: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}-{time.monotonic_ns()}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": names.API_VERSION,
                "kind": names.KIND,
                "metadata": {"name": name},
                "spec": spec,
            }
        )
    )
    return subprocess.run(
        [sys.executable, "-m", "edge_operator", "plan", "-f", str(path),
         "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def labelled(cluster: Cluster, gateway: str) -> dict[str, str]:
    """resourceVersion of every object of the owned kinds labelled as ``gateway``'s."""
    found = {}
    for kind, api_version, plural in OWNED:
        path = ("/api/v1" if api_version == "v1" else f"/apis/{api_version}") + f"/{plural}"
        response = cluster.api.call_api(
            "GET",
            f"{cluster.api.configuration.host}{path}"
            f"?labelSelector={names.GATEWAY_LABEL}%3D{gateway}",
        )
        response.read()
        for item in json.loads(response.data)["items"]:
            meta = item["metadata"]
            where = f"{meta['namespace']}/" if meta.get("namespace") else ""
            found[f"{kind} {where}{meta['name']}"] = meta["resourceVersion"]
    return found


def cluster_state(cluster: Cluster, gateways: Gateways, *gateway_names: str) -> dict[str, Any]:
    """What a plan must leave alone: every node, the gateways, their objects and Events.

    Nodes are compared without their status: kwok writes its heartbeats there every
    20-45 s, which moves a node's resourceVersion whatever the plan does.
    """
    nodes = cluster.api.sanitize_for_serialization(cluster.core.list_node().items)
    state: dict[str, Any] = {f"Node {n['metadata']['name']}": shape(n) for n in nodes}
    for name in gateway_names:
        try:
            state[f"EdgeGateway {name}"] = gateways.get(name)["metadata"]["resourceVersion"]
        except ApiException as error:
            if error.status != 404:
                raise
        state.update(labelled(cluster, name))
        state[f"Events of {name}"] = sorted(e["metadata"]["name"] for e in gateways.events(name))
    return state


def test_plan_shows_what_a_pass_would_change_and_changes_nothing(
    cluster: Cluster, gateways: Gateways, make_node: MakeNode, unique: str, tmp_path: Path
) -> None:
    edge, _ = edge_pool(make_node, unique, count=3, workers=1)
    name, other = f"pl-{unique}", f"pl-{unique}-new"
    applied = {"nodes": {"names": edge[:2]}, "rollout": FAST_ROLLOUT}
    gateways.create(name, applied)
    wait_available(cluster, name, 2)
    gateways.wait_condition(name, "NodesConfigured", "True")
    gateways.wait_condition(name, "ControllerAvailable", "True")

    def settled() -> dict[str, Any] | None:
        first = cluster_state(cluster, gateways, name, other)
        time.sleep(3)
        return first if cluster_state(cluster, gateways, name, other) == first else None

    before = wait_for(settled, "the operator idle for 3 s", timeout=90, interval=0)
    assert f"Deployment {NS}/{name}" in before

    # (a) The spec as applied: nothing to do.
    same = plan(cluster, tmp_path, name, applied)
    assert (same.returncode, same.stdout, same.stderr) == (
        0,
        f"EdgeGateway {name}: No changes.\n",
        "",
    )

    # (b) A third edge node: its labels and taint, and one more controller pod.
    more = plan(cluster, tmp_path, name, {**applied, "nodes": {"names": edge}})
    assert more.returncode == 2, more.stderr
    lines = more.stdout.splitlines()
    third, role = edge[2], names.DEFAULT_ROLE_LABEL
    assert lines[:6] == [
        f"EdgeGateway {name}: 4 changes",
        "nodes:",
        f'  label node {third}: set label {names.GATEWAY_LABEL}="{name}"',
        f'  label node {third}: set label {role}=""',
        f"  taint node {third}: add taint {role}:NoSchedule",
        "objects:",
    ]
    assert lines[6:9] == [f"  update Deployment {NS}/{name}", "    --- current", "    +++ desired"]
    diff = lines[9:]
    assert diff, more.stdout
    assert all(line.startswith("    ") for line in diff), "one object change only"
    changed = [line for line in diff if line[4:5] in "+-"]
    assert changed == ["    -  replicas: 2", "    +  replicas: 3"]

    # (c) A new gateway: everything is created; (d) a new one on a node the first
    # holds: refused, as the operator would.
    new = plan(cluster, tmp_path, other, {"nodes": {"names": [edge[2]]}})
    assert new.returncode == 2, new.stderr
    created = [line for line in new.stdout.splitlines() if line.startswith("  create ")]
    assert new.stdout.startswith(f"EdgeGateway {other} (new): ")
    assert f"  create Deployment {NS}/{other}" in created
    assert f"  create Service {NS}/{other}" in created
    taken = plan(cluster, tmp_path, other, {"nodes": {"names": [edge[0]]}})
    assert (taken.returncode, taken.stdout) == (1, "")
    assert taken.stderr == (
        f"refused: NodeOwnedByOtherGateway: node {edge[0]} is already an edge node of"
        f" EdgeGateway {name}; change the selection so the gateways do not overlap\n"
    )

    # (e) An invalid spec: the validation error, before any API call.
    invalid = plan(
        cluster, tmp_path, name, {"nodes": {"names": edge, "selector": {"matchLabels": {}}}}
    )
    assert (invalid.returncode, invalid.stdout) == (1, "")
    assert "invalid EdgeGateway: spec.nodes: Value error, exactly one of nodes.selector and" in (
        invalid.stderr
    )

    # Nothing was written: same nodes, gateways, objects (resourceVersions) and Events.
    assert cluster_state(cluster, gateways, name, other) == before
