"""The purchase and spend models on a public history: CDNOW's 1/10 sample (Fader,
Hardie and Lee 2005; tests/data/CDNOW_sample.txt), fitted on its 39-week calibration as
the paper does, and judged on the 39-week holdout after it: of the holdout revenue, the
share bought by the top 20 % of customers ranked by predicted CLV at the end of
calibration, against the top 20 % ranked by their calibration revenue (what a historic
value ranks by). A measurement, printed by `make bench`; nothing is tuned to it."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from streams.predictive import fit_purchases, fit_spend, predict

CDNOW = Path(__file__).parent.parent / "tests" / "data" / "CDNOW_sample.txt"
CALIBRATION_END = dt.date(1997, 9, 30)  # 39 weeks from 1997-01-01


def cdnow_spend() -> dict[str, dict[dt.date, float]]:
    """customer -> purchase day -> dollars that day (several orders a day: one purchase)."""
    spend: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    for line in CDNOW.read_text().splitlines():
        _, customer, date, _, dollars = line.split()
        spend[customer][dt.datetime.strptime(date, "%Y%m%d").date()] += float(dollars)
    return spend


def calibration(
    spend: dict[str, dict[dt.date, float]], unit_days: float
) -> dict[str, tuple[float, float, float, float]]:
    """customer -> (x, t_x, T, mean repeat spend) at the end of calibration."""
    found = {}
    for customer, days in spend.items():
        ordered = sorted(d for d in days if d <= CALIBRATION_END)
        repeat = [days[d] for d in ordered[1:]]
        found[customer] = (
            float(len(repeat)),
            (ordered[-1] - ordered[0]).days / unit_days,
            (CALIBRATION_END - ordered[0]).days / unit_days,
            sum(repeat) / len(repeat) if repeat else 0.0,
        )
    return found


def holdout_capture(top_share: float = 0.2) -> dict[str, Any]:
    spend = cdnow_spend()
    histories = calibration(spend, 1.0)  # days, as the workers fit
    customers = sorted(histories)
    x, t_x, age, m = (
        list(column) for column in zip(*(histories[c] for c in customers), strict=True)
    )
    started = time.perf_counter()
    purchases = fit_purchases(x, t_x, age, variant="mbgnbd")
    spend_model = fit_spend(x, m)
    fit_seconds = time.perf_counter() - started
    horizon = (dt.date(1998, 6, 30) - CALIBRATION_END).days
    predicted = {
        c: predict(
            purchases,
            spend_model,
            x=x[i],
            t_x=t_x[i],
            T=age[i],
            m=m[i],
            horizon_days=horizon,
            margin=1.0,
            discount_rate=0.0,
            cost_per_day=0.0,
        ).clv
        for i, c in enumerate(customers)
    }
    historic = {c: sum(v for d, v in spend[c].items() if d <= CALIBRATION_END) for c in customers}
    holdout = {c: sum(v for d, v in spend[c].items() if d > CALIBRATION_END) for c in customers}
    total = sum(holdout.values())
    top = round(len(customers) * top_share)

    def captured(score: dict[str, float]) -> float:
        chosen = sorted(customers, key=lambda c: (-score[c], c))[:top]
        return sum(holdout[c] for c in chosen) / total

    return {
        "customers": len(customers),
        "top_share": top_share,
        "predicted_clv_capture": captured(predicted),
        "historic_revenue_capture": captured(historic),
        "fit_seconds": fit_seconds,
        "purchases": {"r": purchases.r, "alpha_days": purchases.alpha, "a": purchases.a},
    }


def churn_tasks_by_rule(
    customers: int = 2000, days: int = 365, seed: int = 3, care: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A simulated year through the engine (no broker) under each churn rule: churn_risk
    tasks per month as a share of the customers, and of the buyers who had gone quiet
    (the simulator's churners) how many got one."""
    import asyncio

    from agents.engine.harness import run
    from agents.settings import load_settings
    from agents.tools.simulator import SimulationConfig, Simulator

    config = SimulationConfig(customers=customers, days=days, seed=seed, start=_START)
    simulator = Simulator(config)
    churn_at = simulator.churn_times()
    events = [(event.topic, event.value) for event in simulator]
    orders: dict[str, list[str]] = defaultdict(list)  # customer -> purchase times
    for topic, value in events:
        if topic == "orders":
            body = orjson.loads(value)
            if body["kind"] in ("purchase", "subscription"):
                orders[body["customer_id"]].append(body["occurred_at"])
    found: dict[str, Any] = {"customers": customers, "days": days}
    for rule in ("stages", "model"):
        overrides = {"churn_rule": rule, **(care or {})}
        settings = load_settings({"app_id": f"churn-{rule}", "care": overrides})
        started = time.perf_counter()
        by_topic, _ = asyncio.run(run(settings, events))
        tasks = [t for t in by_topic.get("care_tasks", []) if t["kind"] == "churn_risk"]
        months: dict[str, int] = defaultdict(int)
        for task in tasks:
            months[task["due_at"][:7]] += 1
        # a task for a customer who then bought again within 90 days was a wasted call,
        # or one the customer did not need (the history ends `days` after its start)
        judged = [t for t in tasks if t["due_at"] <= _iso(_START + dt.timedelta(days - 90))]
        came_back = sum(
            any(
                t["due_at"] < at <= _iso(_parse(t["due_at"]) + dt.timedelta(90))
                for at in orders[t["customer_id"]]
            )
            for t in judged
        )
        # repeat buyers who went quiet: at least two purchase days, none in the last 120
        tasked = {t["customer_id"] for t in tasks}
        quiet_from = _iso(_START + dt.timedelta(days - 120))
        quiet = [
            c
            for c, times in orders.items()
            if len({t[:10] for t in times}) >= 2 and max(times) < quiet_from
        ]
        # the simulator's truth: the buyers that stop buying (15 %, at 30-90 % of the run)
        churners = {c for c, at in churn_at.items() if at < math.inf and orders[c]}
        before_churn = {
            t["customer_id"]
            for t in tasks
            if churn_at[t["customer_id"]] < _parse(t["due_at"]).timestamp()
        }
        found[rule] = {
            "churners": len(churners),
            "churners_tasked": len(churners & tasked) / len(churners) if churners else None,
            "tasked_after_churning": len(before_churn) / len(tasked) if tasked else None,
            "quiet_repeat_buyers": len(quiet),
            "quiet_repeat_buyers_tasked": sum(c in tasked for c in quiet) / len(quiet)
            if quiet
            else None,
            "tasks": len(tasks),
            "bought_again_within_90_days": came_back / len(judged) if judged else None,
            "customers_with_a_task": len({t["customer_id"] for t in tasks}),
            "per_month_share": {m: n / customers for m, n in sorted(months.items())},
            "mean_monthly_share": sum(months.values()) / customers / max(1, len(months)),
            "seconds": time.perf_counter() - started,
        }
    return found


_START = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
