"""The Helm chart, rendered by the real helm: lint, schema, least privilege, validity.

Rendering needs the helm that `make tools` builds; checkov comes from `make tools` too.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import chart
import localcluster
from edge_operator import crd, names
from edge_operator.cli import provider_rbac

#: Values that switch on everything optional, so the checks see every template.
EVERYTHING = {
    "replicaCount": "3",
    "image.digest": "sha256:" + "0" * 64,
    "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name": "monitoring",
    "serviceAccount.name": "custom-sa",
    "nodePolicy.keys": "{node-role.kubernetes.io/edge,example.com/ingress}",
    "metrics.serviceMonitor.enabled": "true",
    "metrics.prometheusRule.enabled": "true",
    "metrics.dashboard.enabled": "true",
}


def render(values: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(chart.template(values)) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def everything() -> list[dict[str, Any]]:
    return render(EVERYTHING)


def operator_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "ClusterRole", chart.RELEASE)


# --- generated copies are current ---------------------------------------------------------


def test_chart_crd_is_up_to_date() -> None:
    committed = (chart.CHART / "files" / crd.CRD_FILE).read_text()
    assert committed == crd.render(), "run `make generate` and commit the chart's files/"


def test_provider_roles_are_up_to_date() -> None:
    committed = (chart.CHART / "files" / "provider-clusterroles.yaml").read_text()
    assert committed == provider_rbac(), "run `make generate` and commit the chart's files/"


def test_plain_manifests_are_the_rendered_chart() -> None:
    assert chart.MANIFESTS.read_text() == chart.manifests(), (
        "deploy/manifests/ is stale: run `make generate` and commit the result"
    )


# --- helm's own checks --------------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["default", "everything"])
def test_helm_lint_strict_is_clean(values: Mapping[str, str]) -> None:
    out = chart.helm(
        "lint", "--strict", str(chart.CHART), "--kube-version", localcluster.k8s_version(),
        *chart.set_args(values),
    )  # fmt: skip
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out
    assert "[ERROR]" not in out


@pytest.mark.parametrize(
    "values",
    [
        {"unknown": "1"},
        {"image.unknown": "1"},
        {"metrics.service.unknown": "1"},
        {"replicaCount": "-1"},
        {"logFormat": "yaml"},
        {"image.digest": "latest"},
        {"nodePolicy.keys": "{not a key}"},
    ],
    ids=lambda v: next(iter(v)),
)
def test_values_schema_rejects(values: Mapping[str, str]) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        chart.template(values)
    assert "values don't meet the specifications of the schema" in failed.value.stderr


def test_every_object_is_validated_by_the_schema_of_its_kind(
    default: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    version = localcluster.k8s_version().lstrip("v").rsplit(".", 1)[0]
    # prometheus-operator's kinds are CRDs, not in Kubernetes' schemas that
    # kubernetes-validate has (tests/unit/test_monitoring.py checks their content).
    not_kubernetes = {"ServiceMonitor", "PrometheusRule"}
    for doc in default + everything:
        if doc["kind"] not in not_kubernetes:
            kubernetes_validate.validate(doc, version, strict=True)


def test_every_namespaced_object_names_the_release_namespace(
    everything: list[dict[str, Any]],
) -> None:
    cluster_scoped = {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for doc in everything:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == chart.NAMESPACE, doc["metadata"]["name"]


def _checkov(docs: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "chart.yaml").write_text(yaml.safe_dump_all(docs))
    done = subprocess.run(
        [
            str(localcluster.checkov_path()), "--directory", str(tmp_path),
            "--framework", "kubernetes", "--output", "json", "--compact",
            # Offline: no download of check guidelines from the vendor's API.
            "--skip-download",
        ],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["default", "everything"])
def test_checkov_finds_nothing_and_every_skip_says_why(
    values: Mapping[str, str], tmp_path: Path
) -> None:
    report = _checkov(render(values), tmp_path)
    results = report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 50  # checkov really looked at the objects
    for skipped in results["skipped_checks"]:
        reason = skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} is skipped without a reason"


# --- least privilege ----------------------------------------------------------------------


def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, for rules without resourceNames."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        if rule.get("resourceNames"):
            continue
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_operator_role_grants_exactly_what_the_operator_uses(
    default: list[dict[str, Any]],
) -> None:
    role = operator_role(default)
    grants = _grants(role)
    assert grants[("", "nodes")] == {"get", "list", "watch", "patch"}
    owned = {"get", "list", "watch", "create", "patch", "delete"}
    for group, resource in [
        ("apps", "deployments"),
        ("", "services"),
        ("", "configmaps"),
        ("", "serviceaccounts"),
        ("policy", "poddisruptionbudgets"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "ingresses"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("rbac.authorization.k8s.io", "rolebindings"),
    ]:
        assert grants[(group, resource)] == owned, resource
    assert grants[(names.GROUP, names.PLURAL)] == {"get", "list", "watch", "patch"}
    assert grants[(names.GROUP, f"{names.PLURAL}/status")] == {"patch"}
    assert grants[("apiextensions.k8s.io", "customresourcedefinitions")] == {"list", "watch"}
    assert grants[("", "pods")] == {"list", "watch"}
    assert grants[("", "pods/eviction")] == {"create"}
    text = json.dumps(role["rules"])
    assert "secrets" not in text
    assert "*" not in text
    assert "escalate" not in text
    assert "impersonate" not in text


def test_operator_may_bind_only_the_provider_roles(default: list[dict[str, Any]]) -> None:
    provider_roles = {
        d["metadata"]["name"]
        for d in by_kind(default, "ClusterRole")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "provider-rbac"
    }
    assert provider_roles == {r["metadata"]["name"] for r in yaml.safe_load_all(provider_rbac())}
    binds = [r for r in operator_role(default)["rules"] if "bind" in r["verbs"]]
    assert len(binds) == 1
    assert binds[0]["verbs"] == ["bind"]
    assert set(binds[0]["resourceNames"]) == provider_roles


def test_the_service_account_is_bound_to_the_operator_role(
    everything: list[dict[str, Any]],
) -> None:
    binding = one(everything, "ClusterRoleBinding", chart.RELEASE)
    assert binding["roleRef"]["name"] == chart.RELEASE
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "custom-sa", "namespace": chart.NAMESPACE}
    ]
    pod = one(everything, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "custom-sa"


# --- the operator's pod ---------------------------------------------------------------------


def test_operator_pod_meets_pod_security_restricted(default: list[dict[str, Any]]) -> None:
    pod = one(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod


def test_operator_pod_serves_health_and_metrics(default: list[dict[str, Any]]) -> None:
    (container,) = one(default, "Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert f"--health-port={ports['health']}" in container["args"]
    assert "--leader-election" in container["args"]
    assert f"--leader-election-id={chart.RELEASE}" in container["args"]
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    service = one(default, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_image_is_the_app_version_or_the_digest(
    default: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    version = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["appVersion"]
    (plain,) = one(default, "Deployment")["spec"]["template"]["spec"]["containers"]
    (pinned,) = one(everything, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert plain["image"].endswith(f":{version}")
    assert pinned["image"].endswith("@sha256:" + "0" * 64)


def test_several_replicas_get_a_disruption_budget(
    default: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    assert by_kind(default, "PodDisruptionBudget") == []
    assert one(everything, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert one(everything, "Deployment")["spec"]["replicas"] == 3


# --- the CRD --------------------------------------------------------------------------------


def test_crd_is_a_template_kept_on_uninstall(default: list[dict[str, Any]]) -> None:
    crd_doc = one(default, "CustomResourceDefinition")
    assert crd_doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd_doc["spec"] == yaml.safe_load(crd.render())["spec"]
    assert (chart.CHART / "crds").exists() is False  # Helm would never upgrade those


def test_crd_can_be_left_out_or_not_kept() -> None:
    assert by_kind(render({"crds.install": "false"}), "CustomResourceDefinition") == []
    crd_doc = one(render({"crds.keep": "false"}), "CustomResourceDefinition")
    assert "annotations" not in crd_doc["metadata"]


# --- the node policy ------------------------------------------------------------------------


def test_node_policy_matches_only_the_operator_service_account(
    everything: list[dict[str, Any]],
) -> None:
    policy = one(everything, "ValidatingAdmissionPolicy")
    (condition,) = policy["spec"]["matchConditions"]
    username = f"system:serviceaccount:{chart.NAMESPACE}:custom-sa"
    assert condition["expression"] == f'request.userInfo.username == "{username}"'
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert json.loads(variables["keys"]) == ["node-role.kubernetes.io/edge", "example.com/ingress"]
    binding = one(everything, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }


def test_node_policy_can_be_switched_off() -> None:
    docs = render({"nodePolicy.enabled": "false"})
    assert by_kind(docs, "ValidatingAdmissionPolicy") == []
    assert by_kind(docs, "ValidatingAdmissionPolicyBinding") == []
