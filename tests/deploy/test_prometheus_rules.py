"""The alert rules and Prometheus configurations, checked by promtool, and the rules'
unit tests (deploy/prometheus/alerts_test*.yml) run by promtool."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.tools import (
    DEPLOY,
    load_yaml,
    promql_metric_names,
    promtool,
    recording_rule_names,
    registered_metric_names,
)

PROMETHEUS = DEPLOY / "prometheus"
RULE_TESTS = ("alerts_test.yml", "alerts_test_long.yml")
SEVERITIES = {"critical", "warning"}


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    output = promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS)
    assert f"SUCCESS: {len(rules())} rules found" in output


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    output = promtool("test", "rules", *RULE_TESTS, cwd=PROMETHEUS)
    assert output.count("SUCCESS") == len(RULE_TESTS), output


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-kubernetes.yml"])
def test_promtool_checks_the_prometheus_configuration(config: str) -> None:
    document = load_yaml(PROMETHEUS / config)
    assert document["rule_files"] == ["alerts.yml"]
    assert [job["job_name"] for job in document["scrape_configs"]] == ["vipstream"]
    output = promtool("check", "config", config, cwd=PROMETHEUS)
    assert "is valid prometheus config file syntax" in output
    assert f"SUCCESS: {len(rules())} rules found" in output  # the rule file was read too


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for name in RULE_TESTS:
        for group in load_yaml(PROMETHEUS / name)["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


@pytest.mark.parametrize("alert", alerts(), ids=lambda rule: rule["alert"])
def test_alert_is_complete(alert: dict[str, Any]) -> None:
    assert alert["alert"].startswith("Vipstream")
    assert alert.get("for"), "every alert waits before it fires"
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    assert set(annotations) == {"summary", "description", "runbook"}
    assert all(text.strip() for text in annotations.values())
    assert "README" in annotations["runbook"]


def test_rules_only_use_metrics_the_workers_register() -> None:
    registered = registered_metric_names()
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        expr = rule["expr"]
        used = promql_metric_names(expr)
        assert used <= registered, f"unknown metrics: {sorted(used - registered)}"
        assert recording_rule_names(expr) <= recorded
        # each rule looks at the workers: their metrics, recorded ones, or their scrapes
        assert used or recording_rule_names(expr) or 'up{job="vipstream"}' in expr
