"""The dashboard renderer: a pure function from figures to a self-contained page.

Figures are read back from the DOM (ids and data- attributes), as the Chromium test does.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import pytest

from agents.worker.dashboard import (
    CustomerView,
    DashboardFigures,
    histogram_bars,
    render_customer,
    render_dashboard,
    render_unknown_customer,
    render_waiting,
)
from tests.dom import Element, parse

TIERS = ("vip", "gold", "silver", "bronze", "new")


def figures(**overrides: Any) -> DashboardFigures:
    base = DashboardFigures(
        closed_day="2026-03-04",
        counts_day="2026-03-04",
        mode="percentile",
        score_label="ratio",
        population=100,
        tier_counts={"vip": 5, "gold": 15, "silver": 30, "bronze": 50, "new": 25},
        cut_scores={"vip": 8.0, "gold": 3.5, "silver": 1.2},
        histogram=[(-1.0, 20), (0.5, 20), (1.5, 30), (4.0, 25), (12.0, 5)],
        tier_changes=42,
        spikes=3,
        care_tasks={"vip_welcome": 4, "upsell": 2, "churn_risk": 0},
        rendered_at="2026-03-05 10:00:00 UTC",
    )
    return replace(base, **overrides)


def page(**overrides: Any) -> Element:
    return parse(render_dashboard(figures(**overrides)))


def tier_counts(dom: Element) -> dict[str, int]:
    return {e.attrs["data-tier"]: int(e.attrs["data-count"]) for e in dom.find_all(class_="tier")}


def bars(dom: Element) -> list[Element]:
    return dom.find_all("rect", class_="bar")


# -- counts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "percents"),
    [
        # the usual shape: judged tiers as shares of the judged, new of everyone
        (
            {"vip": 5, "gold": 15, "silver": 30, "bronze": 50, "new": 25},
            {"vip": "5.0 %", "gold": "15.0 %", "silver": "30.0 %", "bronze": "50.0 %"},
        ),
        # a tier nobody is in is shown with zero, not left out
        (
            {"vip": 0, "gold": 1, "silver": 1, "bronze": 2, "new": 0},
            {"vip": "0.0 %", "gold": "25.0 %", "silver": "25.0 %", "bronze": "50.0 %"},
        ),
        # only new customers: no judged customer to divide by
        (
            {"new": 7},
            {"vip": "–", "gold": "–", "silver": "–", "bronze": "–", "new": "100.0 %"},
        ),
        # nobody at all
        ({}, dict.fromkeys(TIERS, "–")),
    ],
)
def test_the_pyramid_shows_every_tier_with_its_count_and_share(
    counts: dict[str, int], percents: dict[str, str]
) -> None:
    dom = page(tier_counts=counts)
    assert tier_counts(dom) == {t: counts.get(t, 0) for t in TIERS}
    shown = {e.attrs["data-tier"]: e.attrs["data-percent"] for e in dom.find_all(class_="tier")}
    for tier, percent in percents.items():
        assert shown[tier] == percent
        assert percent in dom.by_id(f"tier-{tier}").text
    total = sum(counts.values())
    assert dom.by_id("dashboard").attrs["data-customers"] == str(total)
    assert dom.by_id("card-customers").attrs["data-count"] == str(total)
    assert dom.by_id("card-judged").attrs["data-count"] == str(total - counts.get("new", 0))


def test_the_pyramid_has_vip_on_top_and_new_apart() -> None:
    dom = page()
    order = [e.attrs["data-tier"] for e in dom.by_id("pyramid").find_all(class_="tier")]
    assert order == ["vip", "gold", "silver", "bronze", "new"]
    assert [e.tag for e in dom.by_id("pyramid").find_all(class_="tier")] == ["g"] * 5
    assert dom.by_id("tier-new").find_all("rect"), "new is a box of its own"
    assert all(dom.by_id(f"tier-{t}").find_all("polygon") for t in TIERS[:4])


def test_counts_are_formatted_with_thousands_separators() -> None:
    dom = page(tier_counts={"vip": 12_345, "bronze": 1}, tier_changes=1_234_567)
    assert "12,345" in dom.by_id("tier-vip").text
    assert "1,234,567" in dom.by_id("count-tier-changes").text


def test_the_emitted_table_shows_tier_changes_spikes_and_care_tasks_by_kind() -> None:
    dom = page()
    assert dom.by_id("count-tier-changes").attrs["data-count"] == "42"
    assert dom.by_id("count-spikes").attrs["data-count"] == "3"
    assert dom.by_id("count-care-tasks").attrs["data-count"] == "6"
    assert dom.by_id("card-care-tasks").attrs["data-count"] == "6"
    kinds = {
        e.attrs["data-kind"]: int(e.attrs["data-count"]) for e in dom.find_all("tr", class_="care")
    }
    assert kinds == {"vip_welcome": 4, "upsell": 2, "churn_risk": 0}
    rows = [e.attrs["data-kind"] for e in dom.find_all("tr", class_="care")]
    assert rows == ["vip_welcome", "upsell", "churn_risk"], "the order given is kept"


def test_no_care_task_kinds_at_all() -> None:
    dom = page(care_tasks={})
    assert dom.by_id("count-care-tasks").attrs["data-count"] == "0"
    assert not dom.find_all("tr", class_="care")


# -- the histogram -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "histogram",
    [
        [(1.0, 10)],  # one bucket: the axis must not have zero width
        [(-1.0, 3), (-0.5, 4), (0.0, 5), (0.25, 6)],  # negative scores and zero
        [(0.1, 1), (10.0, 2), (1_000.0, 3), (1e6, 4)],  # a heavy tail
        [(2.0, 0), (3.0, 7)],  # an empty bucket adds nothing
        [(float(i) / 7, i % 5 + 1) for i in range(-6, 300)],  # many buckets
    ],
)
def test_histogram_bars_keep_every_customer_in_the_right_bar(
    histogram: list[tuple[float, int]],
) -> None:
    result = histogram_bars(histogram)
    assert sum(b.count for b in result) == sum(n for _, n in histogram)
    for i, bar in enumerate(result):
        last = i == len(result) - 1
        inside = sum(n for s, n in histogram if bar.low <= s < bar.high or (last and s == bar.high))
        assert bar.count == inside, (bar, histogram)
    assert all(a.high == pytest.approx(b.low) for a, b in itertools.pairwise(result))
    dom = page(histogram=histogram, cut_scores={})
    drawn = bars(dom)
    assert [int(e.attrs["data-count"]) for e in drawn] == [b.count for b in result]
    assert dom.by_id("histogram").attrs["data-total"] == str(sum(n for _, n in histogram))
    assert all(float(e.attrs["height"]) >= 0 for e in drawn)
    tallest = max(drawn, key=lambda e: int(e.attrs["data-count"]))
    assert float(tallest.attrs["height"]) == pytest.approx(
        max(float(e.attrs["height"]) for e in drawn)
    )


def test_bar_heights_are_proportional_to_counts() -> None:
    dom = page(histogram=[(1.0, 10), (100.0, 5)], cut_scores={})
    heights = {int(e.attrs["data-count"]): float(e.attrs["height"]) for e in bars(dom)}
    assert heights[5] == pytest.approx(heights[10] / 2, abs=0.1)
    assert heights[0] == 0


def test_the_axis_spans_the_cuts_so_every_cut_line_is_drawn_inside_the_plot() -> None:
    dom = page(
        histogram=[(1.0, 10), (2.0, 10)], cut_scores={"vip": 50.0, "gold": 2.0, "silver": -0.5}
    )
    cuts = {e.attrs["data-tier"]: float(e.attrs["data-score"]) for e in dom.find_all(class_="cut")}
    assert cuts == {"vip": 50.0, "gold": 2.0, "silver": -0.5}
    plot = dom.by_id("histogram").find_all("rect", class_="plot")[0]
    left, width = float(plot.attrs["x"]), float(plot.attrs["width"])
    for tier in cuts:
        line = dom.by_id(f"cut-{tier}").find_all("line")[0]
        assert left <= float(line.attrs["x1"]) <= left + width
        assert f"{tier} ≥" in dom.by_id(f"cut-{tier}").text
    xs = [
        float(dom.by_id(f"cut-{t}").find_all("line")[0].attrs["x1"])
        for t in ("silver", "gold", "vip")
    ]
    assert xs == sorted(xs), "a higher cut is further right"


def test_a_cut_without_a_score_is_not_drawn() -> None:
    dom = page(cut_scores={"vip": None, "gold": 3.0, "silver": float("nan")})
    assert [e.attrs["data-tier"] for e in dom.find_all(class_="cut")] == ["gold"]


def test_an_empty_histogram_says_so() -> None:
    dom = page(histogram=[], cut_scores={}, population=0, tier_counts={"new": 4})
    assert dom.by_id("histogram-empty").text == "No judged customers yet."
    assert not bars(dom)


def test_an_empty_population_with_cuts_still_renders() -> None:
    """Absolute mode has cut scores even with nobody judged: lines, no customers."""
    dom = page(histogram=[], cut_scores={"vip": 10.0, "gold": 5.0, "silver": 1.0}, population=0)
    assert len(dom.find_all(class_="cut")) == 3
    assert sum(int(e.attrs["data-count"]) for e in bars(dom)) == 0


# -- escaping and self-containment --------------------------------------------------------

HOSTILE = '<script>alert("x")</script>&'


@pytest.mark.parametrize(
    "overrides",
    [
        {"care_tasks": {HOSTILE: 1}},
        {"closed_day": HOSTILE},
        {"counts_day": HOSTILE},
        {"score_label": HOSTILE},
        {"mode": HOSTILE},
        {"rendered_at": HOSTILE},
        {"notes": (HOSTILE,)},
    ],
)
def test_text_from_data_is_escaped(overrides: dict[str, Any]) -> None:
    html = render_dashboard(figures(**overrides))
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    dom = parse(html)
    assert not dom.find_all("script")
    assert HOSTILE in dom.text or any(HOSTILE in e.attrs.values() for e in dom.iter())


def test_the_page_is_self_contained_and_refreshes() -> None:
    html = render_dashboard(figures())
    dom = parse(html)
    refresh = dom.find_all("meta", http_equiv="refresh")
    assert [m.attrs["content"] for m in refresh] == ["10"]
    assert not dom.find_all("script")
    assert not dom.find_all("img")
    assert not dom.find_all("link")
    assert "http://" not in html
    assert "https://" not in html
    assert "url(" not in html
    assert dom.by_id("dashboard").attrs["data-state"] == "ready"
    assert dom.by_id("as-of").text == "2026-03-04"
    assert dom.by_id("rendered-at").text == "2026-03-05 10:00:00 UTC"


def test_counts_of_a_day_still_being_tiered_are_labelled_so() -> None:
    dom = page(counts_day=None)
    assert "being updated" in dom.text


def test_the_waiting_page_is_honest() -> None:
    dom = parse(render_waiting("2026-03-05 10:00:00 UTC", "tiers appear <soon>"))
    assert dom.by_id("dashboard").attrs["data-state"] == "waiting"
    assert "Waiting for the first closed day" in dom.text
    assert "tiers appear <soon>" in dom.text
    assert not dom.find_all(class_="tier")
    assert not bars(dom)
    assert [m.attrs["content"] for m in dom.find_all("meta", http_equiv="refresh")] == ["10"]


def test_scores_on_the_axis_are_finite() -> None:
    dom = page(histogram=[(-5.0, 1), (1e9, 1)], cut_scores={})
    ticks = [e.text for e in dom.by_id("histogram").find_all("text", class_="axis")]
    assert ticks
    assert all("nan" not in t and "inf" not in t for t in ticks)
    for bar in bars(dom):
        assert math.isfinite(float(bar.attrs["data-low"]))


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (0.0, "0"),
        (0.4567, "0.457"),
        (-1.0, "-1"),
        (176.0, "176"),
        (1000.0, "1,000"),
        (-25_000.4, "-25,000"),
    ],
)
def test_scores_are_written_for_people(score: float, label: str) -> None:
    dom = page(cut_scores={"vip": score}, histogram=[(score, 1)])
    assert dom.by_id("cut-vip").text == f"vip ≥ {label}"


# -- the customer page ----------------------------------------------------------------------
def customer_view(**overrides: Any) -> CustomerView:
    base = CustomerView(
        customer_id="C0000042",
        figures={
            "tier": "gold",
            "score": 3.2,
            "score_kind": "ratio",
            "percentile": 81.5,
            "predicted_clv": 412.5,
            "p_alive": 0.73,
            "revenue": 1200.0,
            "service_cost": 80.0,
            "window_days": 365,
            "window_end": "2026-03-05T00:00:00Z",
        },
        months=[("2026-01", 400.0, 30.0), ("2026-02", 800.0, 50.0)],
        alive=[("2026-02-19", 0.9), ("2026-02-26", 0.8), ("2026-03-05", 0.73)],
        timeline=[
            ("2026-03-01", "task", "upsell (priority 2): revenue doubled"),
            ("2026-02-20", "tier", "silver -> gold: percentile 81.5 above the gold cut"),
        ],
        rendered_at="2026-03-05 10:00:00 UTC",
    )
    return replace(base, **overrides)


def test_the_customer_page_shows_figures_months_p_alive_and_the_timeline() -> None:
    dom = parse(render_customer(customer_view()))
    page = dom.by_id("customer")
    assert (page.attrs["data-customer"], page.attrs["data-tier"]) == ("C0000042", "gold")
    assert float(dom.by_id("card-p-alive").attrs["data-value"]) == 0.73
    assert float(dom.by_id("card-predicted-clv").attrs["data-value"]) == 412.5
    months = dom.find_all("g", class_="month")
    assert [(m.attrs["data-month"], float(m.attrs["data-revenue"])) for m in months] == [
        ("2026-01", 400.0),
        ("2026-02", 800.0),
    ]
    points = [float(c.attrs["data-p-alive"]) for c in dom.find_all("circle", class_="alive")]
    assert points == [0.9, 0.8, 0.73]
    entries = dom.find_all("tr", class_="entry")
    assert [e.attrs["data-kind"] for e in entries] == ["task", "tier"]  # latest first
    assert dom.by_id("customer-search").attrs["action"] == "/dashboard/customers"


def test_the_customer_page_before_the_model_and_with_nothing_emitted() -> None:
    figures_now = dict(customer_view().figures) | {"p_alive": None, "predicted_clv": None}
    dom = parse(render_customer(customer_view(figures=figures_now, alive=[], timeline=[])))
    assert dom.by_id("no-model")
    assert dom.by_id("card-p-alive").attrs["data-value"] == ""
    assert not dom.find_all("circle", class_="alive")
    assert not dom.find_all("tr", class_="entry")


def test_the_customer_page_escapes_what_comes_from_data() -> None:
    hostile = '<script>alert("x")</script>'
    page = render_customer(
        customer_view(customer_id=hostile, timeline=[("2026-03-01", "task", hostile)])
    )
    assert "<script>" not in page
    assert parse(page).by_id("customer").attrs["data-customer"] == hostile
    assert "<script>" not in render_unknown_customer(hostile, "now")
