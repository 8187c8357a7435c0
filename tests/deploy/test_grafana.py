"""The Grafana dashboard: it queries only metrics the workers register, through the
provisioned data source, and shows what operations asked for."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.tools import DEPLOY, load_yaml, promql_metric_names, registered_metric_names

DASHBOARD = json.loads((DEPLOY / "grafana/dashboards/vipstream.json").read_text())
PANELS: list[dict[str, Any]] = DASHBOARD["panels"]
(DATASOURCE,) = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")[
    "datasources"
]

#: what the dashboard must show, as a metric each view needs
REQUIRED = {
    "tier pyramid": "vipstream_customers",
    "tier changes": "vipstream_tier_changes_total",
    "spikes": "vipstream_basic_question_spikes_total",
    "care tasks by kind": "vipstream_care_tasks_total",
    "dead letters by reason": "vipstream_events_invalid_total",
    "event lag quantiles": "vipstream_event_lag_seconds_bucket",
    "consumer lag": "vipstream_consumer_lag_messages",
}


def exprs() -> list[str]:
    return [target["expr"] for panel in PANELS for target in panel["targets"]]


def test_dashboard_identity() -> None:
    assert DASHBOARD["uid"] == "vipstream"
    assert DASHBOARD["title"]
    ids = [panel["id"] for panel in PANELS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("panel", PANELS, ids=lambda panel: panel["title"])
def test_panel_queries_the_provisioned_datasource(panel: dict[str, Any]) -> None:
    assert panel["targets"]
    for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
        assert source == {"type": DATASOURCE["type"], "uid": DATASOURCE["uid"]}
    refs = [t["refId"] for t in panel["targets"]]
    assert len(refs) == len(set(refs))


def test_queries_only_use_registered_metrics() -> None:
    registered = registered_metric_names()
    for expr in exprs():
        used = promql_metric_names(expr)
        assert used or 'up{job="vipstream"}' in expr, expr
        assert used <= registered, f"{expr}: unknown {sorted(used - registered)}"


@pytest.mark.parametrize("view", REQUIRED)
def test_dashboard_shows(view: str) -> None:
    metric = REQUIRED[view]
    assert any(metric in promql_metric_names(expr) for expr in exprs()), view


def test_tier_pyramid_lists_every_tier_in_order() -> None:
    (pyramid,) = [p for p in PANELS if p["title"] == "Customers per tier"]
    assert pyramid["type"] == "bargauge"
    tiers = [t["legendFormat"] for t in pyramid["targets"]]
    assert tiers == ["vip", "gold", "silver", "bronze", "new"]


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
