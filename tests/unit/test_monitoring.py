"""The Grafana dashboard and Prometheus alerts in deploy/monitoring/, and the chart's
optional ServiceMonitor, PrometheusRule and dashboard ConfigMap that carry them.

Every PromQL expression may only name metrics the operator exports
(``metrics.exported_names()``), so renaming a metric breaks these tests, not a dashboard.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

import chart
from edge_operator import metrics

MONITORING = chart.ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "edge-operator-dashboard.json"
ALERTS = MONITORING / "alerts.yaml"
#: The chart's copies (`make generate`), which its templates read with .Files.
CHART_COPIES = chart.CHART / "files" / "monitoring"

ENABLED = {
    "metrics.serviceMonitor.enabled": "true",
    "metrics.serviceMonitor.labels.release": "kube-prometheus-stack",
    "metrics.prometheusRule.enabled": "true",
    "metrics.dashboard.enabled": "true",
}

ALERT_NAMES = {
    "EdgeGatewayNotReady",
    "EdgeOperatorReconcileErrors",
    "EdgeGatewayEdgeNodesBelowDesired",
    "EdgeOperatorNoLeader",
    "EdgeNodeFailsLoadBalancerHealthCheck",
}

_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PREFIXES = ("edge_operator_", "leader_election_")


def metric_names(expr: str) -> set[str]:
    """The identifiers in a PromQL expression that look like the operator's metrics."""
    return {t for t in _IDENTIFIER.findall(expr) if t.startswith(_PREFIXES)}


def assert_only_exported(expr: str) -> None:
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    unknown = names - metrics.exported_names()
    assert not unknown, f"{expr!r} names metrics the operator does not export: {unknown}"
    for opening, closing in ("()", "[]", "{}"):
        assert expr.count(opening) == expr.count(closing), f"unbalanced {opening} in {expr!r}"


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def load_alerts() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return rules


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel but rows, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            yield panel
        yield from panel.get("panels", [])


def alert_rules() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in load_alerts()["groups"] for r in g["rules"] if "alert" in r}


# --- the dashboard --------------------------------------------------------------------------


def test_dashboard_is_identified_and_recent_enough() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "edge-operator"
    assert dashboard["title"] == "edge-operator"
    assert dashboard["schemaVersion"] >= 39
    assert dashboard.get("id") is None  # provisioned dashboards get their id from Grafana


def test_dashboard_variables() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    gateway = variables["gateway"]
    assert gateway["type"] == "query"
    assert gateway["datasource"]["uid"] == "${datasource}"
    query = gateway["query"]["query"] if isinstance(gateway["query"], dict) else gateway["query"]
    assert query == "label_values(edge_operator_gateway_ready, gateway)"
    assert_only_exported(query)


def test_every_panel_queries_only_exported_metrics() -> None:
    found = list(panels(load_dashboard()))
    assert len(found) >= 9
    for panel in found:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert_only_exported(target["expr"])


def test_dashboard_shows_what_it_promises() -> None:
    exprs = {
        p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels(load_dashboard())
    }
    text = "\n".join(exprs.values())
    assert any(p["type"] == "stat" for p in panels(load_dashboard()))
    for name in metrics.exported_names() - {
        "edge_operator_reconcile_time_seconds_count",
        "edge_operator_reconcile_time_seconds_sum",
    }:
        assert name in text, f"no panel shows {name}"
    for quantile in ("0.5", "0.99"):
        assert (
            f"histogram_quantile({quantile}, sum by (le) "
            "(rate(edge_operator_reconcile_time_seconds_bucket[" in text
        )
    assert 'verb=~"create|patch|update|delete"' in text
    assert 'gateway=~"$gateway"' in text
    panel_ids = [p["id"] for p in load_dashboard()["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


# --- the alerts -----------------------------------------------------------------------------


def test_alerts_are_the_five_with_duration_severity_and_runbook() -> None:
    rules = alert_rules()
    assert set(rules) == ALERT_NAMES
    for name, rule in rules.items():
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert annotations["description"], name
        assert annotations["runbook_url"].endswith("README.md#troubleshooting"), name
        if name != "EdgeOperatorNoLeader":  # the only alert without a gateway
            assert "{{ $labels.gateway }}" in annotations["summary"], name
            assert "{{ $labels.gateway }}" in annotations["description"], name
    assert rules["EdgeGatewayNotReady"]["for"] == "5m"
    assert rules["EdgeOperatorReconcileErrors"]["for"] == "10m"
    assert rules["EdgeGatewayEdgeNodesBelowDesired"]["for"] == "10m"
    assert rules["EdgeOperatorNoLeader"]["for"] == "5m"


def test_alert_expressions_query_only_exported_metrics() -> None:
    rules = alert_rules()
    for rule in rules.values():
        assert_only_exported(rule["expr"])
    errors = rules["EdgeOperatorReconcileErrors"]["expr"]
    assert "increase(edge_operator_reconcile_errors_total[10m])" in errors
    no_leader = rules["EdgeOperatorNoLeader"]["expr"]
    assert "max(leader_election_master_status" in no_leader
    assert "absent(leader_election_master_status" in no_leader


# --- the chart ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [DASHBOARD.name, ALERTS.name])
def test_chart_copies_are_up_to_date(name: str) -> None:
    committed = (CHART_COPIES / name).read_bytes()
    assert committed == (MONITORING / name).read_bytes(), (
        "run `make generate` and commit the chart's files/"
    )


@pytest.fixture(scope="module")
def enabled() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(chart.template(ENABLED)) if d]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def test_monitoring_objects_are_off_by_default() -> None:
    kinds = {d["kind"] for d in yaml.safe_load_all(chart.template()) if d}
    assert "ServiceMonitor" not in kinds
    assert "PrometheusRule" not in kinds
    assert "ConfigMap" not in kinds


def test_service_monitor_scrapes_the_metrics_service(enabled: list[dict[str, Any]]) -> None:
    monitor = _one(enabled, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [chart.NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["interval"] == "30s"
    services = [d for d in enabled if d["kind"] == "Service"]
    selected = [
        s
        for s in services
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in selected] == [f"{chart.RELEASE}-metrics"]
    assert "metrics" in {p["name"] for p in selected[0]["spec"]["ports"]}


def test_service_monitor_needs_the_metrics_service() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        chart.template(
            {"metrics.serviceMonitor.enabled": "true", "metrics.service.enabled": "false"}
        )
    assert "needs metrics.service.enabled" in failed.value.stderr


def test_prometheus_rule_is_the_alerts_file_untemplated(enabled: list[dict[str, Any]]) -> None:
    rule = _one(enabled, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == load_alerts()["groups"]
    rendered = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    summary = rendered["EdgeGatewayNotReady"]["annotations"]["summary"]
    assert "{{ $labels.gateway }}" in summary


def test_dashboard_config_map_is_the_dashboard(enabled: list[dict[str, Any]]) -> None:
    config_map = _one(enabled, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    assert json.loads(text) == load_dashboard()


def test_monitoring_labels_are_values() -> None:
    docs = [
        d
        for d in yaml.safe_load_all(
            chart.template(
                {
                    "metrics.prometheusRule.enabled": "true",
                    "metrics.prometheusRule.labels.role": "alert-rules",
                    "metrics.dashboard.enabled": "true",
                    "metrics.dashboard.labels.grafana_dashboard": "null",
                    "metrics.dashboard.labels.dashboards": "edge",
                }
            )
        )
        if d
    ]
    assert _one(docs, "PrometheusRule")["metadata"]["labels"]["role"] == "alert-rules"
    labels = _one(docs, "ConfigMap")["metadata"]["labels"]
    assert labels["dashboards"] == "edge"
    assert "grafana_dashboard" not in labels
