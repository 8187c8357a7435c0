"""GET /dashboard: the value pyramid, the score histogram with the tier cuts, and what
the tiering emitted, as one self-contained HTML page (inline CSS and SVG, no scripts).

Rendering is a pure function of plain values, so it is tested without a worker; the view
in agents/worker/web.py gathers the whole-system figures (the same on every worker) and the
clock. Every text that comes from data is escaped. Key elements carry `id`s and `data-`
attributes (`data-tier`, `data-count`, ...) so that tests and scrapers can read the
figures from the DOM rather than from the layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from streams.sketch import inverse_signed_log, signed_log

PYRAMID_TIERS = ("vip", "gold", "silver", "bronze")  # top to bottom
CUT_TIERS = ("vip", "gold", "silver")  # the bronze tier has no cut: it is the rest
CUT_INK = {"vip": "#5b21b6", "gold": "#a16207", "silver": "#4b5563"}  # lines and labels
TIER_COLOURS = {
    "vip": ("#5b21b6", "#ffffff"),  # (fill, text on it)
    "gold": ("#c99a06", "#1f1600"),
    "silver": ("#a3aab5", "#111827"),
    "bronze": ("#9a5b2e", "#ffffff"),
    "new": ("#e0f2fe", "#0c4a6e"),
}
REFRESH_SECONDS = 10
HISTOGRAM_BINS = 48


@dataclass(frozen=True)
class DashboardFigures:
    """Whole-system figures of the latest merged day, as plain values."""

    closed_day: str  # the latest day whose population is merged, e.g. "2026-03-04"
    counts_day: str | None  # the day the tier counts are as of (None: not every partition)
    mode: str  # percentile | zscore | absolute
    score_label: str  # what the score is, e.g. "ratio"
    population: int  # judged customers in the merged distribution
    tier_counts: Mapping[str, int]  # vip, gold, silver, bronze, new
    cut_scores: Mapping[str, float | None]  # vip/gold/silver: the score a tier starts at
    histogram: Sequence[tuple[float, int]]  # (score, customers), ascending scores
    tier_changes: int
    spikes: int
    care_tasks: Mapping[str, int]  # kind -> tasks, in display order
    rendered_at: str
    notes: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class Bar:
    """One histogram bar: customers whose score lies in [low, high)."""

    low: float
    high: float
    count: int


# -- the page ----------------------------------------------------------------------------


def render_dashboard(figures: DashboardFigures) -> str:
    """The dashboard of a system whose first day is merged."""
    counts = {t: max(0, int(figures.tier_counts.get(t, 0))) for t in (*PYRAMID_TIERS, "new")}
    judged = sum(counts[t] for t in PYRAMID_TIERS)
    customers = judged + counts["new"]
    care_total = sum(figures.care_tasks.values())
    counts_note = (
        f"tier counts as of {figures.counts_day}"
        if figures.counts_day is not None
        else "tier counts are being updated: partitions are tiering the next day"
    )
    header = (
        f'<header><h1>vipstream <span class="muted">customer value</span></h1>'
        f'<p class="asof">Tiers as of the close of <strong id="as-of">'
        f"{_t(figures.closed_day)}</strong> (UTC) &middot; {_t(counts_note)} &middot; "
        f'rendered <span id="rendered-at">{_t(figures.rendered_at)}</span></p></header>'
    )
    cards = "".join(
        _card(card_id, label, value)
        for card_id, label, value in (
            ("customers", "customers", customers),
            ("judged", "judged", judged),
            ("tier-changes", "tier changes", figures.tier_changes),
            ("spikes", "basic-question spikes", figures.spikes),
            ("care-tasks", "care tasks", care_total),
        )
    )
    body = (
        header
        + _search()
        + f'<section class="cards">{cards}</section>'
        + '<section class="grid">'
        + _panel("Value pyramid", _pyramid(counts, judged, customers), "pyramid-panel")
        + _panel(
            f"Score histogram ({figures.score_label}, {figures.mode} tiers)",
            _histogram(figures),
            "histogram-panel",
        )
        + _panel("Emitted", _emitted_table(figures, care_total), "emitted-panel")
        + _panel("Care tasks by kind", _care_table(figures.care_tasks), "care-panel")
        + "</section>"
        + "".join(f'<p class="note">{_t(n)}</p>' for n in figures.notes)
        + _footer()
    )
    attributes = {
        "data-state": "ready",
        "data-as-of": figures.closed_day,
        "data-population": str(figures.population),
        "data-customers": str(customers),
    }
    return _page(body, attributes)


def render_waiting(rendered_at: str, detail: str) -> str:
    """The honest page before any day is closed: nothing to show yet."""
    body = (
        '<header><h1>vipstream <span class="muted">customer value</span></h1></header>'
        '<section class="waiting"><h2>Waiting for the first closed day</h2>'
        f"<p>{_t(detail)}</p>"
        f'<p class="muted">Rendered <span id="rendered-at">{_t(rendered_at)}</span>; '
        f"this page reloads every {REFRESH_SECONDS} s.</p></section>" + _footer()
    )
    return _page(body, {"data-state": "waiting"})


def _page(
    body: str,
    attributes: Mapping[str, str],
    *,
    title: str = "vipstream dashboard",
    main_id: str = "dashboard",
) -> str:
    attrs = "".join(f' {k}="{_t(v)}"' for k, v in attributes.items())
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_t(title)}</title><style>{_CSS}</style></head>"
        f'<body><main id="{main_id}"{attrs}>{body}</main></body></html>\n'
    )


def _search() -> str:
    return (
        '<form id="customer-search" class="search" action="/dashboard/customers" method="get">'
        '<label for="customer-id">Customer</label> '
        '<input id="customer-id" name="id" maxlength="256" placeholder="customer id" required> '
        '<button type="submit">Show</button></form>'
    )


def _footer() -> str:
    return (
        '<footer class="muted">Whole-system figures: every worker serves the same page. '
        "Counts of emitted events include the replayed history. "
        "The same data as JSON: <code>/tiers</code>.</footer>"
    )


def _panel(title: str, content: str, panel_id: str) -> str:
    return f'<section class="panel" id="{panel_id}"><h2>{_t(title)}</h2>{content}</section>'


def _card(card_id: str, label: str, value: int) -> str:
    return (
        f'<div class="card" id="card-{card_id}" data-count="{value}">'
        f'<div class="value">{_count(value)}</div><div class="label">{_t(label)}</div></div>'
    )


# -- the pyramid ------------------------------------------------------------------------

_PYR_W, _PYR_H = 440, 330
_PYR_TOP, _BAND_H, _BAND_GAP = 4, 56, 4
_PYR_APEX_W, _PYR_BASE_W = 96, 420


def _pyramid(counts: Mapping[str, int], judged: int, customers: int) -> str:
    cx = _PYR_W / 2
    bands = []
    total_h = len(PYRAMID_TIERS) * _BAND_H

    def width_at(y: float) -> float:
        return _PYR_APEX_W + (_PYR_BASE_W - _PYR_APEX_W) * (y - _PYR_TOP) / total_h

    for i, tier in enumerate(PYRAMID_TIERS):
        top = _PYR_TOP + i * _BAND_H
        bottom = top + _BAND_H - _BAND_GAP
        wt, wb = width_at(top), width_at(bottom)
        points = (
            f"{cx - wt / 2:.1f},{top:.1f} {cx + wt / 2:.1f},{top:.1f} "
            f"{cx + wb / 2:.1f},{bottom:.1f} {cx - wb / 2:.1f},{bottom:.1f}"
        )
        fill, ink = TIER_COLOURS[tier]
        n = counts[tier]
        share = _percent(n, judged)
        mid = (top + bottom) / 2
        bands.append(
            f'<g class="tier" id="tier-{tier}" data-tier="{tier}" data-count="{n}" '
            f'data-percent="{_t(share)}">'
            f"<title>{_t(tier)}: {_count(n)} customers, {_t(share)} of judged</title>"
            f'<polygon points="{points}" fill="{fill}"/>'
            f'<text x="{cx:.1f}" y="{mid - 5:.1f}" fill="{ink}" class="tier-name">'
            f"{_t(tier.upper())}</text>"
            f'<text x="{cx:.1f}" y="{mid + 14:.1f}" fill="{ink}" class="tier-count">'
            f"{_count(n)} &middot; {_t(share)}</text></g>"
        )
    new_y = _PYR_TOP + total_h + 6
    fill, ink = TIER_COLOURS["new"]
    n = counts["new"]
    share = _percent(n, customers)
    new_box = (
        f'<g class="tier" id="tier-new" data-tier="new" data-count="{n}" '
        f'data-percent="{_t(share)}">'
        f"<title>new: {_count(n)} customers, {_t(share)} of all customers</title>"
        f'<rect x="{cx - _PYR_BASE_W / 2:.1f}" y="{new_y}" width="{_PYR_BASE_W}" height="40" '
        f'rx="8" fill="{fill}" stroke="#7dd3fc" stroke-dasharray="4 3"/>'
        f'<text x="{cx:.1f}" y="{new_y + 25}" fill="{ink}" class="tier-count">'
        f"NEW (not yet judged) &middot; {_count(n)} &middot; {_t(share)} of all</text></g>"
    )
    return (
        f'<svg id="pyramid" viewBox="0 0 {_PYR_W} {new_y + 44}" role="img" '
        f'aria-label="value pyramid">{"".join(bands)}{new_box}</svg>'
        '<p class="muted small">Percentages of the judged tiers are of judged customers; '
        "<em>new</em> is a share of all customers.</p>"
    )


# -- the histogram ----------------------------------------------------------------------

_HIST_W, _HIST_H = 640, 300
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 52, 16, 58, 40


def histogram_bars(
    histogram: Sequence[tuple[float, int]],
    cut_scores: Sequence[float] = (),
    bins: int = HISTOGRAM_BINS,
) -> list[Bar]:
    """The histogram regrouped into `bins` bars of equal width on a signed-log axis
    (scores are heavy-tailed and may be negative). The axis also spans the cut scores,
    so every cut line falls on it. Bars keep every customer: their counts add up to the
    input's."""
    scores = [s for s, n in histogram if n > 0] + list(cut_scores)
    if not scores:
        return []
    low, high = _axis_range(scores)
    width = (high - low) / bins
    counts = [0] * bins
    for score, n in histogram:
        if n > 0:
            counts[min(bins - 1, max(0, int((signed_log(score) - low) / width)))] += n
    return [
        Bar(inverse_signed_log(low + i * width), inverse_signed_log(low + (i + 1) * width), n)
        for i, n in enumerate(counts)
    ]


def _axis_range(scores: Sequence[float]) -> tuple[float, float]:
    """The signed-log axis [low, high] covering the scores, never of zero width."""
    xs = [signed_log(s) for s in scores]
    low, high = min(xs), max(xs)
    span = high - low
    pad = 0.5 if span == 0 else span * 0.02
    return low - pad, high + pad


def _histogram(figures: DashboardFigures) -> str:
    cuts = {t: figures.cut_scores.get(t) for t in CUT_TIERS}
    known_cuts = {t: s for t, s in cuts.items() if s is not None and math.isfinite(s)}
    histogram = [(s, n) for s, n in figures.histogram if math.isfinite(s)]
    bars = histogram_bars(histogram, list(known_cuts.values()))
    if not bars:
        return '<p class="empty" id="histogram-empty">No judged customers yet.</p>'
    low, high = signed_log(bars[0].low), signed_log(bars[-1].high)
    plot_w = _HIST_W - _PAD_L - _PAD_R
    plot_h = _HIST_H - _PAD_T - _PAD_B
    base = _PAD_T + plot_h

    def x_of(score: float) -> float:
        return _PAD_L + (signed_log(score) - low) / (high - low) * plot_w

    top = max(b.count for b in bars) or 1
    parts = [f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" class="plot"/>']
    for level in _nice_levels(top):  # horizontal grid with customer counts
        y = base - level / top * plot_h
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_PAD_L + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'class="gridline"/><text x="{_PAD_L - 6}" y="{y + 4:.1f}" class="axis" '
            f'text-anchor="end">{_count(level)}</text>'
        )
    bar_w = plot_w / len(bars)
    for i, bar in enumerate(bars):
        h = bar.count / top * plot_h
        x = _PAD_L + i * bar_w
        tier = _tier_of((signed_log(bar.low) + signed_log(bar.high)) / 2, known_cuts)
        parts.append(
            f'<rect class="bar bar-{tier}" x="{x + 0.5:.1f}" y="{base - h:.1f}" '
            f'width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}" '
            f'data-low="{bar.low:.6g}" data-high="{bar.high:.6g}" data-count="{bar.count}">'
            f"<title>{_t(_score(bar.low))} to {_t(_score(bar.high))}: "
            f"{_count(bar.count)} customers</title></rect>"
        )
    for tick in _ticks(bars[0].low, bars[-1].high, plot_w):
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}" class="tick"/>'
            f'<text x="{x:.1f}" y="{base + 18}" class="axis" text-anchor="middle">'
            f"{_t(_score(tick))}</text>"
        )
    parts.append(
        f'<text x="{_PAD_L + plot_w / 2:.1f}" y="{_HIST_H - 6}" class="axis-title" '
        f'text-anchor="middle">{_t(figures.score_label)} (signed log scale)</text>'
    )
    for row, (tier, score) in enumerate(known_cuts.items()):
        x = x_of(score)
        colour = CUT_INK[tier]
        label_y = 14 + row * 15
        anchor = "end" if x > _PAD_L + plot_w * 0.75 else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(
            f'<g class="cut" id="cut-{tier}" data-tier="{tier}" data-score="{score:.6g}">'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{label_y - 10}" y2="{base}" '
            f'stroke="{colour}" stroke-width="2" stroke-dasharray="5 3"/>'
            f'<text x="{x + dx:.1f}" y="{label_y}" fill="{colour}" class="cut-label" '
            f'text-anchor="{anchor}">{_t(tier)} &#8805; {_t(_score(score))}</text></g>'
        )
    total = sum(b.count for b in bars)
    return (
        f'<svg id="histogram" viewBox="0 0 {_HIST_W} {_HIST_H}" role="img" '
        f'aria-label="score histogram" data-total="{total}">{"".join(parts)}</svg>'
        f'<p class="muted small">{_count(figures.population)} judged customers in the merged '
        f"distribution; dashed lines: the score at which each tier starts.</p>"
    )


def _tier_of(position: float, cuts: Mapping[str, float]) -> str:
    """The tier whose score band holds this signed-log position (colours the bars)."""
    for tier in CUT_TIERS:
        cut = cuts.get(tier)
        if cut is not None and position >= signed_log(cut):
            return tier
    return "bronze"


def _nice_levels(top: int) -> list[int]:
    """Round customer counts from 0 to `top`, at most six, for the grid lines."""
    for exponent in range(16):
        for mantissa in (1, 2, 5):
            step = mantissa * 10**exponent
            if top <= 5 * step:
                return list(range(0, top + 1, step))
    return [0, top]


def _ticks(low: float, high: float, plot_w: float) -> list[float]:
    """Round scores for the signed-log axis, at least 55 px apart: zero and powers of
    ten first, then 2s and 5s where there is room; the ends if nothing round fits."""
    x_low, x_high = signed_log(low), signed_log(high)

    def x(value: float) -> float:
        return (signed_log(value) - x_low) / (x_high - x_low) * plot_w

    candidates = {0.0}
    for exponent in range(-3, 13):
        for mantissa in (1, 2, 5):
            candidates.update((mantissa * 10.0**exponent, -mantissa * 10.0**exponent))
    inside = sorted(v for v in candidates if low <= v <= high)
    # 0, then powers of ten from the largest (1 before 0.1), then the rest
    preferred = sorted(
        (v for v in inside if v == 0 or _is_power_of_ten(v)),
        key=lambda v: (v != 0, abs(v) < 1, -abs(v) if abs(v) >= 1 else abs(v)),
    )
    picked: list[float] = []
    for value in preferred + inside:
        if value not in picked and all(abs(x(value) - x(p)) >= 55 for p in picked):
            picked.append(value)
    return sorted(picked) if len(picked) >= 2 else [low, high]


def _is_power_of_ten(value: float) -> bool:
    exponent = math.log10(abs(value))
    return abs(exponent - round(exponent)) < 1e-9


# -- the tables ---------------------------------------------------------------------------


def _emitted_table(figures: DashboardFigures, care_total: int) -> str:
    rows = (
        ("tier-changes", "tier changes", figures.tier_changes),
        ("spikes", "basic-question spikes", figures.spikes),
        ("care-tasks", "care tasks (all kinds)", care_total),
    )
    body = "".join(
        f'<tr id="count-{row_id}" data-count="{n}"><th scope="row">{_t(label)}</th>'
        f'<td class="num">{_count(n)}</td></tr>'
        for row_id, label, n in rows
    )
    return (
        f'<table class="counts" id="emitted">{body}</table>'
        '<p class="muted small">Events emitted on <code>tier-changes</code>, '
        "<code>basic-question-spikes</code> and <code>care-tasks</code> by every partition, "
        "as of its last tiered day.</p>"
    )


def _care_table(care_tasks: Mapping[str, int]) -> str:
    if not care_tasks:
        return '<p class="empty">No care tasks.</p>'
    top = max(care_tasks.values()) or 1
    rows = []
    for kind, n in care_tasks.items():
        meter = f'<span style="width:{100.0 * n / top:.1f}%"></span>' if n > 0 else ""
        rows.append(
            f'<tr class="care" data-kind="{_t(kind)}" data-count="{n}">'
            f'<th scope="row">{_t(kind.replace("_", " "))}</th>'
            f'<td class="num">{_count(n)}</td>'
            f'<td class="meter">{meter}</td></tr>'
        )
    return f'<table class="counts" id="care-tasks">{"".join(rows)}</table>'


# -- one customer ------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerView:
    """One customer's page, as plain values (streams/report.py gathers them)."""

    customer_id: str
    figures: Mapping[str, Any]  # GET /customers/{id}'s body
    months: Sequence[tuple[str, float, float]]  # (YYYY-MM, revenue, service cost)
    alive: Sequence[tuple[str, float]]  # (YYYY-MM-DD, P(alive)), oldest first
    timeline: Sequence[tuple[str, str, str]]  # (YYYY-MM-DD, tier|task|spike, text), latest first
    rendered_at: str


def render_customer(view: CustomerView) -> str:
    """GET /dashboard/customers/{id}: value by month, P(alive) over time, and the tier
    changes, tasks and spikes emitted for the customer."""
    f = view.figures
    tier = str(f.get("tier", "new"))
    fill, ink = TIER_COLOURS.get(tier, TIER_COLOURS["new"])
    header = (
        '<header><p class="back"><a href="/dashboard">&larr; dashboard</a></p>'
        f'<h1>Customer <span id="customer-id-value">{_t(view.customer_id)}</span> '
        f'<span class="badge" id="tier" data-tier="{_t(tier)}" '
        f'style="background:{fill};color:{ink}">{_t(tier.upper())}</span></h1>'
        f'<p class="asof">Figures through <strong>{_t(str(f.get("window_end", "")))}</strong>'
        f' &middot; rendered <span id="rendered-at">{_t(view.rendered_at)}</span></p></header>'
    )
    cards = "".join(
        _figure_card(card_id, label, f.get(key), unit)
        for card_id, label, key, unit in (
            ("score", f"score ({f.get('score_kind', '')})", "score", ""),
            ("percentile", "percentile", "percentile", ""),
            ("predicted-clv", "predicted CLV", "predicted_clv", "money"),
            ("p-alive", "P(alive)", "p_alive", "probability"),
            ("revenue", f"revenue, {f.get('window_days', '')} days", "revenue", "money"),
            ("service-cost", "service cost", "service_cost", "money"),
        )
    )
    model_note = (
        ""
        if f.get("p_alive") is not None
        else '<p class="note" id="no-model">No purchase model yet (or no purchase): '
        "predicted figures appear once the population model is fitted.</p>"
    )
    body = (
        header
        + _search()
        + f'<section class="cards six">{cards}</section>'
        + model_note
        + '<section class="grid even">'
        + _panel("Revenue and service cost by month", _months(view.months), "months-panel")
        + _panel("P(alive) over time", _alive(view.alive), "alive-panel")
        + "</section>"
        + _panel("Tier changes, tasks and spikes", _timeline(view.timeline), "timeline-panel")
        + '<footer class="muted">The same data as JSON: '
        f"<code>/customers/{_t(view.customer_id)}</code>.</footer>"
    )
    attributes = {"data-state": "ready", "data-customer": view.customer_id, "data-tier": tier}
    return _page(body, attributes, title=f"vipstream: {view.customer_id}", main_id="customer")


def render_unknown_customer(customer_id: str, rendered_at: str) -> str:
    body = (
        '<header><p class="back"><a href="/dashboard">&larr; dashboard</a></p>'
        "<h1>Unknown customer</h1></header>"
        + _search()
        + f'<section class="waiting"><p>No event of <strong>{_t(customer_id)}</strong> '
        f'has been seen.</p><p class="muted">Rendered {_t(rendered_at)}.</p></section>'
    )
    return _page(body, {"data-state": "unknown"}, title="vipstream: unknown", main_id="customer")


def _figure_card(card_id: str, label: str, value: Any, unit: str) -> str:
    if value is None:
        shown, data = "–", ""
    elif unit == "probability":
        shown, data = f"{float(value):.2f}", f"{float(value):.6g}"
    elif unit == "money":
        shown, data = f"{float(value):,.2f}", f"{float(value):.6g}"
    else:
        shown, data = _score(float(value)), f"{float(value):.6g}"
    return (
        f'<div class="card" id="card-{card_id}" data-value="{_t(data)}">'
        f'<div class="value">{_t(shown)}</div><div class="label">{_t(label)}</div></div>'
    )


_CHART_W, _CHART_H, _CHART_PAD = 560, 220, 34


def _months(months: Sequence[tuple[str, float, float]]) -> str:
    if not months:
        return '<p class="empty">No activity in the days kept.</p>'
    top = max(max(r, c) for _, r, c in months) or 1.0
    plot_h = _CHART_H - 2 * _CHART_PAD
    step = (_CHART_W - 2 * _CHART_PAD) / len(months)
    bar_w = max(2.0, step * 0.38)
    parts = [
        f'<svg id="months" viewBox="0 0 {_CHART_W} {_CHART_H}" role="img" '
        'aria-label="revenue and service cost by month">',
        f'<rect class="plot" x="{_CHART_PAD}" y="{_CHART_PAD}" '
        f'width="{_CHART_W - 2 * _CHART_PAD}" height="{plot_h}"/>',
    ]
    for i, (month, revenue, cost) in enumerate(months):
        x = _CHART_PAD + i * step + step * 0.1
        bars = []
        for j, (value, css) in enumerate(((revenue, "revenue"), (cost, "cost"))):
            h = plot_h * max(value, 0.0) / top
            y = _CHART_PAD + plot_h - h
            bars.append(
                f'<rect class="{css}" x="{x + j * bar_w:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}"/>'
            )
        parts.append(
            f'<g class="month" data-month="{_t(month)}" data-revenue="{revenue:.2f}" '
            f'data-cost="{cost:.2f}"><title>{_t(month)}: revenue {revenue:,.2f}, '
            f"service cost {cost:,.2f}</title>{''.join(bars)}"
            f'<text class="axis" x="{x + bar_w:.1f}" y="{_CHART_H - 12}" '
            f'text-anchor="middle">{_t(month[2:])}</text></g>'
        )
    parts.append(
        f'<text class="axis" x="{_CHART_PAD}" y="{_CHART_PAD - 8}">max {top:,.0f}</text>'
        '<g class="legend"><rect class="revenue" x="380" y="8" width="10" height="10"/>'
        '<text class="axis" x="394" y="17">revenue</text>'
        '<rect class="cost" x="460" y="8" width="10" height="10"/>'
        '<text class="axis" x="474" y="17">service cost</text></g></svg>'
    )
    return "".join(parts)


def _alive(points: Sequence[tuple[str, float]]) -> str:
    if not points:
        return '<p class="empty">No purchase model yet, or no purchase in the days kept.</p>'
    plot_w, plot_h = _CHART_W - 2 * _CHART_PAD, _CHART_H - 2 * _CHART_PAD
    step = plot_w / max(1, len(points) - 1)
    coords = [
        (_CHART_PAD + i * step, _CHART_PAD + plot_h * (1.0 - p)) for i, (_, p) in enumerate(points)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle class="alive" cx="{x:.1f}" cy="{y:.1f}" r="3" data-day="{_t(day)}" '
        f'data-p-alive="{p:.4f}"><title>{_t(day)}: P(alive) {p:.2f}</title></circle>'
        for (x, y), (day, p) in zip(coords, points, strict=True)
    )
    return (
        f'<svg id="alive" viewBox="0 0 {_CHART_W} {_CHART_H}" role="img" '
        'aria-label="P(alive) over time">'
        f'<rect class="plot" x="{_CHART_PAD}" y="{_CHART_PAD}" width="{plot_w}" '
        f'height="{plot_h}"/>'
        f'<text class="axis" x="4" y="{_CHART_PAD + 4}">1</text>'
        f'<text class="axis" x="4" y="{_CHART_PAD + plot_h}">0</text>'
        f'<polyline class="alive-line" points="{line}"/>{dots}'
        f'<text class="axis" x="{_CHART_PAD}" y="{_CHART_H - 12}">{_t(points[0][0])}</text>'
        f'<text class="axis" x="{_CHART_W - _CHART_PAD}" y="{_CHART_H - 12}" '
        f'text-anchor="end">{_t(points[-1][0])}</text></svg>'
    )


def _timeline(entries: Sequence[tuple[str, str, str]]) -> str:
    if not entries:
        return '<p class="empty">Nothing emitted for this customer yet.</p>'
    rows = "".join(
        f'<tr class="entry" data-kind="{_t(kind)}" data-day="{_t(day)}">'
        f'<td class="day">{_t(day)}</td><td class="kind">{_t(kind)}</td>'
        f"<td>{_t(text)}</td></tr>"
        for day, kind, text in entries
    )
    return f'<table class="counts" id="timeline">{rows}</table>'


# -- formatting ---------------------------------------------------------------------------


def _t(text: str) -> str:
    return escape(str(text), quote=True)


def _count(n: int) -> str:
    return f"{n:,}"


def _percent(part: int, whole: int) -> str:
    return "–" if whole <= 0 else f"{100.0 * part / whole:.1f} %"


def _score(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1_000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2937;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:14px 22px 20px}
header h1{margin:0;font-size:22px;font-weight:650}
.muted{color:#6b7280;font-weight:400}
.small{font-size:12px;margin:6px 0 0}
.asof{margin:4px 0 14px;color:#374151}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;margin-bottom:12px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:8px 14px}
.card .value{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums}
.card .label{color:#6b7280;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.grid{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,7fr);gap:12px}
.panel{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:12px 16px}
.panel h2{margin:0 0 8px;font-size:15px;font-weight:600}
svg{display:block;width:100%;height:auto}
.tier-name{font-size:14px;font-weight:700;text-anchor:middle;letter-spacing:.08em}
.tier-count{font-size:13px;text-anchor:middle;font-variant-numeric:tabular-nums}
.plot{fill:#fafafa;stroke:#e5e7eb}
.gridline{stroke:#e5e7eb}
.bar{fill:#b07a52}
.bar-vip{fill:#7c4ddb}
.bar-gold{fill:#d9ad27}
.bar-silver{fill:#a3aab5}
.bar:hover{opacity:.75}
.tick{stroke:#9ca3af}
.axis{font-size:11px;fill:#6b7280}
.axis-title{font-size:12px;fill:#374151}
.cut-label{font-size:12px;font-weight:600}
table.counts{border-collapse:collapse;width:100%}
table.counts th{text-align:left;font-weight:400;padding:4px 8px 4px 0;
border-bottom:1px solid #f0f1f3}
table.counts td{padding:4px 0 4px 8px;border-bottom:1px solid #f0f1f3}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-weight:600;width:5em}
td.meter{width:40%}
td.meter span{display:block;height:8px;border-radius:4px;background:#93c5fd;min-width:2px}
.empty{color:#6b7280;font-style:italic}
.waiting{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:24px;
margin-top:16px}
.note{color:#92400e}
footer{margin-top:12px;font-size:12px}
code{font-size:12px;background:#f3f4f6;padding:0 3px;border-radius:3px}
.search{margin:0 0 12px}
.search input{padding:4px 8px;border:1px solid #d1d5db;border-radius:6px;width:16em}
.search button{padding:4px 12px;border:1px solid #d1d5db;border-radius:6px;background:#fff}
.badge{font-size:13px;padding:2px 8px;border-radius:6px;vertical-align:middle}
.back{margin:0 0 4px}
.cards.six{grid-template-columns:repeat(6,1fr)}
.grid.even{grid-template-columns:1fr 1fr;margin-bottom:12px}
rect.revenue{fill:#2f855a}
rect.cost{fill:#c05621}
.alive-line{fill:none;stroke:#5b21b6;stroke-width:2}
circle.alive{fill:#5b21b6}
td.day{white-space:nowrap;width:7em;color:#374151}
td.kind{width:4em;color:#6b7280}
"""
