"""The purchase and spend models on a public history: CDNOW's 1/10 sample (Fader,
Hardie and Lee 2005; tests/data/CDNOW_sample.txt), fitted on its 39-week calibration as
the paper does, and judged on the 39-week holdout after it: of the holdout revenue, the
share bought by the top 20 % of customers ranked by predicted CLV at the end of
calibration, against the top 20 % ranked by their calibration revenue (what a historic
value ranks by). A measurement, printed by `make bench`; nothing is tuned to it."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

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
