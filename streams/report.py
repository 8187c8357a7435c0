"""What the HTTP API reports about a customer and about the population."""

from __future__ import annotations

from typing import Any

from streams.customer import CustomerState
from streams.predictive import PopulationModel, p_alive
from streams.tiers import Cuts
from streams.units import MICROS_PER_DAY, amount, day_of, rfc3339
from streams.valuation import ValueRules, outlook, repeat_as_of, totals_as_of
from streams.value import benefit_cost_ratio, customer_lifetime_value, net_value
from streams.window import REVENUE, SERVICE_COST


def _time(micros: int | None) -> str | None:
    return None if micros is None else rfc3339(micros)


def _day_end(day: int | None) -> str | None:
    return None if day is None else rfc3339((day + 1) * MICROS_PER_DAY)


def customer_figures(
    state: CustomerState,
    *,
    current_day: int,
    tiered_day: int | None,
    rules: ValueRules,
    lifetime_years: float,
    cuts: Cuts | None,
    model: PopulationModel | None = None,
) -> dict[str, Any]:
    """Everything known about a customer: the window through `current_day` (the latest
    event day seen), lifetime figures, the tier as of `tiered_day` (the last day its
    partition's tiers were decided) with the score it rests on, and what the population
    model predicts."""
    totals = totals_as_of(state, current_day, rules)
    floor = rules.value.cost_floor
    days_known = current_day - day_of(state.first_seen_at) + 1
    clv = customer_lifetime_value(
        totals,
        days_known=days_known,
        window_days=rules.value.window_days,
        lifetime_years=lifetime_years,
        settings=rules.clv,
    )
    percentile = None
    if state.judged and state.score is not None and cuts is not None and cuts.population:
        percentile = round(cuts.percentile(state.score), 2)
    return {
        "customer_id": state.customer_id,
        "tier": state.tier,
        "score": state.score,
        "score_kind": rules.value.score,
        "percentile": percentile,
        "tier_as_of": _day_end(tiered_day if tiered_day is not None else state.tiered_day),
        "tier_since": _day_end(None if state.tier_since is None else state.tier_since - 1),
        "window_days": rules.value.window_days,
        "window_end": _day_end(current_day),
        "revenue": amount(totals.revenue),
        "service_cost": amount(totals.service_cost),
        "ratio": benefit_cost_ratio(totals.revenue, totals.service_cost, floor),
        "net_value": net_value(totals.revenue, totals.service_cost),
        "contacts": totals.contacts,
        "contacts_by_channel": totals.by_channel(),
        "basic_questions": totals.basic_questions,
        "orders": totals.purchases,
        "order_amount": amount(totals.purchase_amount),
        "refund_amount": amount(totals.refund_amount),
        "clv": clv.value,
        "clv_inputs": {
            "purchase_frequency_per_year": clv.purchase_frequency_per_year,
            "average_order_value": clv.average_order_value,
            "annual_gross_profit": clv.annual_gross_profit,
            "annual_service_cost": clv.annual_service_cost,
            "lifetime_years": clv.lifetime_years,
            "annuity_factor": clv.annuity_factor,
        },
        "lifetime_revenue": amount(state.revenue),
        "lifetime_service_cost": amount(state.service_cost),
        "lifetime_ratio": benefit_cost_ratio(state.revenue, state.service_cost, floor),
        "lifetime_net_value": net_value(state.revenue, state.service_cost),
        "lifetime_purchases": state.purchases,
        "lifetime_purchase_amount": amount(state.purchase_amount),
        "lifetime_refund_amount": amount(state.refund_amount),
        "lifetime_contacts": state.contacts,
        "lifetime_basic_questions": state.basic_questions,
        "first_seen_at": _time(state.first_seen_at),
        "last_event_at": _time(state.last_event_at),
        "last_order_at": _time(state.last_order_at),
        "do_not_call": state.do_not_call,
    } | predicted_figures(state, current_day=current_day, model=model, rules=rules)


def population_report(
    cuts: Cuts,
    *,
    counts: tuple[int | None, dict[str, int]],
    score_kind: str,
    churned_share: float | None,
    lifetime_years: float,
    model: PopulationModel | None = None,
    model_pending: str | None = None,
) -> dict[str, Any]:
    """/tiers: the cut points of the latest merged day, counts per tier, the histogram."""
    return {
        "as_of": _day_end(cuts.day),
        "mode": cuts.mode,
        "score": score_kind,
        "population": cuts.population,
        "cuts": {
            tier: {
                "entry": cuts.entry[tier],
                "entry_score": cuts.entry_score[tier],
                "exit": cuts.exit[tier],
                "exit_score": cuts.exit_score[tier],
            }
            for tier in ("vip", "gold", "silver")
        },
        "counts_as_of": _day_end(counts[0]),
        "counts": {
            tier: counts[1].get(tier, 0) for tier in ("vip", "gold", "silver", "bronze", "new")
        },
        "mean": cuts.mean if not cuts.log_transform or cuts.mode != "zscore" else None,
        "stddev": cuts.stddev if not cuts.log_transform or cuts.mode != "zscore" else None,
        "churned_share": churned_share,
        "lifetime_years": lifetime_years,
        "histogram": [{"score": score, "count": n} for score, n in cuts.ranks.histogram()],
        # until the first fit, CLV is the historic one only, and this says why
        "model": None if model is None else model_report(model),
        "model_pending": model_pending if model is None else None,
    }


def model_report(model: PopulationModel) -> dict[str, Any]:
    """The fitted population model as /tiers and the logs show it (time in days)."""
    purchases, spend = model.purchases, model.spend
    return {
        "fitted_as_of": _day_end(model.day),
        "purchases": {
            "variant": purchases.variant,
            "r": purchases.r,
            "alpha": purchases.alpha,
            "a": purchases.a,
            "b": purchases.b,
            "log_likelihood": purchases.log_likelihood,
            "customers": purchases.customers,
        },
        "spend": {
            "p": spend.p,
            "q": spend.q,
            "gamma": spend.gamma,
            "log_likelihood": spend.log_likelihood,
            "customers": spend.customers,
        },
    }


def predicted_figures(
    state: CustomerState, *, current_day: int, model: PopulationModel | None, rules: ValueRules
) -> dict[str, Any]:
    """What the population model predicts for the customer as of `current_day` (None
    for every figure before the first fit, or for a customer who never bought)."""
    found = None if model is None else outlook(state, current_day, model, rules)
    if model is None or found is None:
        return dict.fromkeys(PREDICTED_FIELDS)
    repeat, prediction = found
    return {
        "p_alive": prediction.p_alive,
        "expected_purchases_90d": prediction.purchases_90d,
        "expected_purchases_365d": prediction.purchases_365d,
        "expected_order_value": prediction.order_value,
        "predicted_clv": prediction.clv,
        "repeat_purchases": repeat.x,
        "model_fitted_as_of": _day_end(model.day),
    }


PREDICTED_FIELDS = (
    "p_alive",
    "expected_purchases_90d",
    "expected_purchases_365d",
    "expected_order_value",
    "predicted_clv",
    "repeat_purchases",
    "model_fitted_as_of",
)


def monthly_figures(state: CustomerState) -> list[tuple[str, float, float]]:
    """(YYYY-MM, revenue, service cost) of every month the customer's kept day buckets
    cover (the longest look-back: a year by default), oldest first."""
    months: dict[str, list[int]] = {}
    for day in state.days:
        bucket = state.days[day]
        month = rfc3339(day * MICROS_PER_DAY)[:7]
        sums = months.setdefault(month, [0, 0])
        sums[0] += bucket[REVENUE]
        sums[1] += bucket[SERVICE_COST]
    return [(m, amount(r), amount(c)) for m, (r, c) in sorted(months.items())]


def alive_over_time(
    state: CustomerState, model: PopulationModel, current_day: int, *, points: int = 26
) -> list[tuple[str, float]]:
    """(YYYY-MM-DD, P(alive) as of that day under the current model), weekly back from
    `current_day`, over the days whose buckets are kept and after the first purchase."""
    oldest = state.days.first_day
    found = []
    for week in range(points - 1, -1, -1):
        day = current_day - 7 * week
        if oldest is None or day < oldest:
            continue
        repeat = repeat_as_of(state, day)
        if repeat is None:
            continue
        alive = p_alive(model.purchases, repeat.x, repeat.t_x, repeat.age)
        found.append((rfc3339(day * MICROS_PER_DAY)[:10], alive))
    return found


def timeline(state: CustomerState) -> list[tuple[str, str, str]]:
    """(YYYY-MM-DD, tier | task | spike, text) of what was emitted for the customer,
    latest first (streams/care.py keeps the last few)."""
    return [
        (rfc3339(day * MICROS_PER_DAY)[:10], kind, text)
        for day, kind, text in reversed(state.care.timeline)
    ]
