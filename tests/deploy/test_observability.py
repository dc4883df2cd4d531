"""Alert rules and Grafana dashboard (issue 17): the chart ships the same files as deploy/, opt-in."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import CHART, NAMESPACE, REPO, RELEASE, by_kind, one, render

RULES = REPO / "deploy" / "prometheus" / "riskos-connector.rules.yaml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "riskos-connector.rules.test.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "riskos-connector.json"
CHART_RULES = CHART / "files" / "prometheus" / "riskos-connector.rules.yaml"
CHART_DASHBOARD = CHART / "files" / "grafana" / "riskos-connector.json"
RUNBOOK = REPO / "docs" / "runbook.md"
ON = {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}


def file_rules() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"][0]["rules"]


@pytest.mark.parametrize(
    ("original", "copy"), [(RULES, CHART_RULES), (DASHBOARD, CHART_DASHBOARD)], ids=["rules", "dashboard"]
)
def test_chart_copies_equal_the_originals(original: Path, copy: Path) -> None:
    assert copy.read_bytes() == original.read_bytes(), (
        f"{copy.relative_to(REPO)} differs from {original.relative_to(REPO)}: run "
        f"`cp {original.relative_to(REPO)} {copy.relative_to(REPO)}`"
    )


def test_off_by_default() -> None:
    objects = render({})
    assert by_kind(objects, "PrometheusRule") == []
    assert [o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")] == []


def test_prometheusrule_carries_the_file_rules_with_release_settings() -> None:
    rule = one(render(ON), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NAMESPACE
    rendered = rule["spec"]["groups"][0]["rules"]
    expected = file_rules()
    assert [r["alert"] for r in rendered] == [r["alert"] for r in expected]
    for got, want in zip(rendered, expected):
        if got["alert"] == "RiskosConnectorNotReady":
            # The release's namespace and pods instead of the file's default pod prefix.
            assert f'namespace="{NAMESPACE}", pod=~"{RELEASE}-.*"' in got["expr"]
            assert got["expr"].replace(f'namespace="{NAMESPACE}", ', "") == want["expr"]
        else:
            # Defaults (spool.maxBytes 1 GiB, noWebhooksFor 1h, runbook URL) give the file's rules.
            assert got == want, got["alert"]


def test_prometheusrule_values() -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "namespace": "monitoring",
            "labels": {"release": "kube-prometheus-stack"},
            "ruleLabels": {"team": "risk"},
            "noWebhooksFor": "3h",
            "runbookUrl": "https://git.example.com/ops/runbook.md",
        },
        "spool": {"enabled": True, "maxBytes": 2147483648},
    }
    rule = one(render(values), "PrometheusRule")
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert rules["RiskosConnectorNoWebhooks"]["for"] == "3h"
    assert "> 1717986918" in rules["RiskosConnectorSpoolHighWater"]["expr"]  # 0.8 × 2 GiB
    for name, r in rules.items():
        assert r["labels"]["team"] == "risk" and r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["runbook_url"] == f"https://git.example.com/ops/runbook.md#{name.lower()}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) missing")
def test_promtool_checks_the_rendered_rules_and_the_unit_tests(tmp_path: Path) -> None:
    rule = one(render({**ON, "prometheusRule": {"enabled": True, "noWebhooksFor": "2h"}}), "PrometheusRule")
    rendered = tmp_path / "rendered.rules.yaml"
    rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    for args in (["check", "rules", str(RULES)], ["check", "rules", str(rendered)], ["test", "rules", str(RULE_TESTS)]):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_every_alert_has_severity_runbook_section_and_a_unit_test() -> None:
    runbook = RUNBOOK.read_text()
    anchors = {line[4:].strip().lower() for line in runbook.splitlines() if line.startswith("### ")}
    tests = RULE_TESTS.read_text()
    for r in file_rules():
        assert r["labels"]["severity"] in {"warning", "critical"}, r["alert"]
        url = r["annotations"]["runbook_url"]
        assert url.endswith("docs/runbook.md#" + r["alert"].lower()), url
        assert r["alert"].lower() in anchors, f"docs/runbook.md has no '### {r['alert']}' section"
        assert f"alertname: {r['alert']}" in tests, f"no promtool unit test of {r['alert']}"


def test_dashboard_configmap() -> None:
    configmap = one(
        [o for o in by_kind(render(ON), "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")], "ConfigMap"
    )
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["riskos-connector.json"]) == json.loads(DASHBOARD.read_text())
    kubernetes_validate.validate(configmap, "1.35.0", strict=True)


def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "riskos_requests_total",
        "riskos_ack_latency_seconds_bucket",
        "riskos_end_to_end_delay_seconds_bucket",
        "riskos_rejections_total",
        "riskos_auth_failures_total",
        "riskos_quarantined_total",
        "riskos_spool_records",
        "riskos_spool_bytes",
        "riskos_producer_queue_messages",
        "riskos_broker_rtt_seconds",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ):
        assert metric in queries, metric
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
