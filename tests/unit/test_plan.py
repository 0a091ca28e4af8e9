"""``edge-operator plan``'s pure parts: the projection, the diff and the report."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_operator import api, names, plan
from edge_operator.cli import main
from edge_operator.desired import namespace as namespace_rules
from edge_operator.desired import status as status_rules
from edge_operator.desired import workload
from edge_operator.desired.nodes import NodeDecision, NodeUpdate, Refusal
from edge_operator.desired.objects import Action, Key, Owner, contains, project
from edge_operator.facts import PodFacts
from edge_operator.reconcile import Preview

OWNER = Owner("public", "0b5c3c0e-1111-2222-3333-444455556666")
NS = names.DEFAULT_NAMESPACE


def built(replicas: int = 2, **spec: Any) -> dict[Key, dict[str, Any]]:
    model = api.EdgeGatewaySpec.model_validate(
        {
            "nodes": {"names": ["n1", "n2", "n3"]},
            "controller": {"resources": {"requests": {"cpu": "0.5", "memory": "128Mi"}}},
            **spec,
        }
    )
    objects = workload.build(workload.Inputs(OWNER, model, ready_edge_nodes=replicas))
    return {Key.of(obj): obj for obj in objects}


DEPLOYMENT = Key("Deployment", NS, "public")


def as_served(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the API server returns it: defaults, bookkeeping, canonical quantities."""
    out = copy.deepcopy(obj)
    out["metadata"].update(
        uid="d1", resourceVersion="42", generation=3, managedFields=[{"manager": "x"}]
    )
    out["status"] = {"replicas": 2, "availableReplicas": 2}
    if out["kind"] == "Deployment":
        out["spec"].setdefault("progressDeadlineSeconds", 600)
        pod = out["spec"]["template"]["spec"]
        pod.setdefault("dnsPolicy", "ClusterFirst")
        for container in pod["containers"]:
            container["terminationMessagePath"] = "/dev/termination-log"
            requests = (container.get("resources") or {}).get("requests") or {}
            if requests.get("cpu") == "0.5":
                requests["cpu"] = "500m"
    return out


# --- projection -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(built()), ids=str)
def test_projection_of_what_contains_accepts_is_the_desired_object(key: Key) -> None:
    desired = built()[key]
    current = as_served(desired)
    assert contains(current, desired)
    assert project(current, desired) == desired
    assert plan.diff(current, desired) == []


def test_projection_keeps_what_differs_and_what_exact_fields_hold_more() -> None:
    desired = {
        "spec": {
            "replicas": 3,
            "nodeSelector": {"a": ""},
            "ports": [{"name": "http", "port": 80}],
            "value": "",
        }
    }
    current = {
        "spec": {
            "replicas": 2,
            "nodeSelector": {"a": "", "b": "x"},
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "x", "port": 1}],
            "other": True,
        }
    }
    assert project(current, desired) == {
        "spec": {
            "replicas": 2,
            "nodeSelector": {"a": "", "b": "x"},
            "ports": [{"name": "http", "port": 80}, {"name": "x", "port": 1}],
            "value": "",
        }
    }


def test_projection_of_a_different_shape_is_the_current_value() -> None:
    assert project({"a": 1}, [1]) == {"a": 1}
    assert project("x", {"a": 1}) == "x"
    assert project(True, 1) is True


# --- diff -----------------------------------------------------------------------------------


def test_diff_of_a_scaled_deployment_is_the_replicas_line() -> None:
    current = as_served(built(replicas=2)[DEPLOYMENT])
    desired = built(replicas=3)[DEPLOYMENT]
    lines = plan.diff(current, desired)
    assert lines[:2] == ["--- current", "+++ desired"]
    changed = [line for line in lines[2:] if line[:1] in "+-"]
    assert changed == ["-  replicas: 2", "+  replicas: 3"]
    assert not [line for line in lines if names.APPLIED_HASH_ANNOTATION in line]


def test_diff_shows_an_edited_field_and_a_label_someone_added_under_a_selector() -> None:
    desired = built()[DEPLOYMENT]
    current = as_served(desired)
    current["spec"]["template"]["spec"]["nodeSelector"]["extra"] = "yes"
    current["metadata"]["labels"]["unrelated"] = "kept"  # not the operator's: not shown
    changed = [line for line in plan.diff(current, desired)[2:] if line[:1] in "+-"]
    assert changed == ["-        extra: 'yes'"]


def test_shown_drops_the_applied_hash_and_an_emptied_annotations_map() -> None:
    obj = built()[DEPLOYMENT]
    assert names.APPLIED_HASH_ANNOTATION in obj["metadata"]["annotations"]
    assert "annotations" not in plan.shown(obj)["metadata"]
    kept = {"metadata": {"annotations": {names.APPLIED_HASH_ANNOTATION: "h", "a": "b"}}}
    assert plan.shown(kept) == {"metadata": {"annotations": {"a": "b"}}}


# --- the report -----------------------------------------------------------------------------


def node_update(name: str, *details: tuple[str, str]) -> NodeUpdate:
    return NodeUpdate(
        name=name,
        resource_version="1",
        labels={},
        record=None,
        taints=None,
        changes=tuple(api.NodeChange(name=name, action=a, detail=d) for a, d in details),
    )


def preview(
    pending: tuple[tuple[Key, Action], ...] = (),
    updates: tuple[NodeUpdate, ...] = (),
    objects: dict[Key, dict[str, Any]] | None = None,
    desired: dict[Key, dict[str, Any]] | None = None,
    **kw: Any,
) -> Preview:
    return Preview(
        **{
            "gateway": "public",
            "new": False,
            "paused": False,
            "decision": NodeDecision(selected=("n1", "n2", "n3"), updates=updates),
            "workload": status_rules.Workload(
                objects=objects or {}, desired=desired or {}, pending=pending
            ),
            **kw,
        }
    )


def test_nothing_to_do() -> None:
    assert plan.outcome(preview()) == (plan.NO_CHANGES, "EdgeGateway public: No changes.\n")


def test_report_of_nodes_pods_and_objects() -> None:
    current = {k: as_served(o) for k, o in built(replicas=2).items()}
    desired = built(replicas=3)
    binding = Key("RoleBinding", NS, "public-old")
    namespace = Key("Namespace", "", NS)
    desired[namespace] = namespace_rules.namespace(NS)
    p = preview(
        pending=((namespace, "Create"), (DEPLOYMENT, "Update"), (binding, "Delete")),
        updates=(
            node_update(
                "n3",
                ("Label", 'set label node-role.kubernetes.io/edge=""'),
                ("Taint", "add taint node-role.kubernetes.io/edge:NoSchedule"),
            ),
            node_update("n4", ("Restore", "restore label edgeoperator.dev/gateway")),
        ),
        objects=current,
        desired=desired,
        evictions=(PodFacts("public-abc", "n4", ready=True, namespace=NS),),
    )
    status, text = plan.outcome(p)
    assert status == plan.CHANGES
    lines = text.splitlines()
    assert lines[:8] == [
        "EdgeGateway public: 7 changes",
        "nodes:",
        '  label node n3: set label node-role.kubernetes.io/edge=""',
        "  taint node n3: add taint node-role.kubernetes.io/edge:NoSchedule",
        "  restore node n4: restore label edgeoperator.dev/gateway",
        "pods:",
        "  evict pod edge-system/public-abc: n4 is no longer an edge node",
        "objects:",
    ]
    created = yaml.safe_dump(namespace_rules.namespace(NS), sort_keys=False).splitlines()
    assert lines[8 : 9 + len(created)] == [
        f"  create Namespace {NS}",
        *(f"    + {line}" for line in created),
    ]
    rest = lines[9 + len(created) :]
    assert rest[:3] == [f"  update Deployment {NS}/public", "    --- current", "    +++ desired"]
    assert [x for x in rest[3:] if x[4:5] in "+-"] == ["    -  replicas: 2", "    +  replicas: 3"]
    assert rest[-1] == f"  delete RoleBinding {NS}/public-old"
    assert text.endswith("\n")


def test_report_of_one_change_of_a_new_gateway_with_notes() -> None:
    desired = built()
    key = Key("IngressClass", "", "public")
    p = preview(
        pending=((key, "Create"),),
        desired=desired,
        new=True,
        paused=True,
        conflicts=(key,),
        decision=NodeDecision(selected=("n1",), missing_names=("n9",), taint_pending=("n1",)),
    )
    assert plan.outcome(p) == (
        plan.CHANGES,
        "EdgeGateway public (new): 1 change\n"
        "note: spec.paused is true: the operator makes these changes once it is not\n"
        "note: named nodes not found: n9\n"
        "note: the NoExecute taint follows once a controller pod is Ready on: n1\n"
        "objects:\n"
        "  create IngressClass public: refused (ObjectConflict): an object of that name exists"
        " and is not this gateway's\n",
    )


def test_update_of_the_applied_configuration_alone_says_so() -> None:
    desired = built()
    current = {k: as_served(o) for k, o in desired.items()}
    current[DEPLOYMENT]["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION] = "old"
    text = plan.render(preview(((DEPLOYMENT, "Update"),), objects=current, desired=desired))
    assert text.splitlines()[2:] == [
        f"  update Deployment {NS}/public",
        "    (the fields the operator sets are as desired, but not the configuration it"
        " applied: fields it no longer sets are removed)",
    ]


def test_a_refusal_fails_with_its_reason() -> None:
    refused = NodeDecision(
        selected=(), refusal=Refusal("MinWorkerNodes", "would leave 0 worker node(s)")
    )
    p = preview(pending=((DEPLOYMENT, "Update"),), decision=refused)
    assert plan.outcome(p) == (
        plan.FAILED,
        "refused: MinWorkerNodes: would leave 0 worker node(s)\n",
    )


# --- the file -------------------------------------------------------------------------------


def gateway_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


VALID = """\
apiVersion: edgeoperator.dev/v1alpha1
kind: EdgeGateway
metadata: {name: public}
spec: {nodes: {names: [n1]}}
"""


def test_load_returns_the_object(tmp_path: Path) -> None:
    assert plan.load(gateway_file(tmp_path, VALID))["metadata"] == {"name": "public"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            VALID.replace("{names: [n1]}", "{names: [n1], selector: {}}"),
            "gateway.yaml: invalid EdgeGateway: spec.nodes: Value error, exactly one of"
            " nodes.selector and nodes.names must be set",
        ),
        (
            VALID.replace("kind: EdgeGateway", "kind: Service"),
            "gateway.yaml: invalid EdgeGateway: Value error, expected apiVersion"
            " edgeoperator.dev/v1alpha1 kind EdgeGateway, got edgeoperator.dev/v1alpha1 Service",
        ),
        (VALID + "---\n" + VALID, "gateway.yaml: expected one EdgeGateway, found 2 YAML documents"),
        ("- a\n", "gateway.yaml: expected an EdgeGateway object, found list"),
        ("a: [\n", "cannot read"),
    ],
)
def test_load_refuses_what_is_not_one_valid_gateway(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(plan.PlanError) as raised:
        plan.load(gateway_file(tmp_path, text))
    assert message in str(raised.value)


def test_command_reports_an_invalid_file_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = gateway_file(tmp_path, VALID.replace("[n1]", "[]"))
    assert main(["plan", "-f", str(path), "--kubeconfig", str(tmp_path / "none")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"edge-operator plan: {path}: invalid EdgeGateway: spec.nodes.names: ")


def test_command_reports_a_missing_kubeconfig_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = gateway_file(tmp_path, VALID)
    assert main(["plan", "-f", str(path), "--kubeconfig", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("edge-operator plan: cannot load the kubeconfig: ")


def test_plan_does_not_import_kopf() -> None:
    code = "import sys, edge_operator.plan; print(sorted(m for m in sys.modules if 'kopf' in m))"
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == "[]"


def test_an_unreachable_cluster_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kube.py turns a failed connection into a TransportError (a KubeError)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    examples = Path(__file__).resolve().parents[2] / "examples" / "basic.yaml"
    assert plan.run(examples, str(kubeconfig)) == plan.FAILED
    err = capsys.readouterr().err
    assert err.startswith("edge-operator plan: cannot read the cluster: ")
    assert "Connection refused" in err
    assert "Traceback" not in err
