"""What the HTTP API reports about a customer and about the population."""

from __future__ import annotations

from typing import Any

from streams.customer import CustomerState
from streams.tiers import Cuts
from streams.units import MICROS_PER_DAY, amount, day_of, rfc3339
from streams.valuation import ValueRules, totals_as_of
from streams.value import benefit_cost_ratio, customer_lifetime_value, net_value


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
) -> dict[str, Any]:
    """Everything known about a customer: the window through `current_day` (the latest
    event day seen), lifetime figures, and the tier as of `tiered_day` (the last day its
    partition's tiers were decided) with the score it rests on."""
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
    }


def population_report(
    cuts: Cuts,
    *,
    counts: tuple[int | None, dict[str, int]],
    score_kind: str,
    churned_share: float | None,
    lifetime_years: float,
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
    }
