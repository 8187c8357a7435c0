"""A customer's value as of a closed day, and its tier decision for that day.

`evaluate` runs when a day is closed for the customer's partition; `retier` when the
whole population's distribution for that day is known. Both read only buckets up to the
closed day, so events of later (open) days never leak into a closed day's figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schemas.value_config import ClvSettings, PredictionSettings, TieringSettings, ValueSettings
from streams import care, window
from streams.care import CareRules
from streams.customer import CustomerState
from streams.history import Repeat, as_of, settle
from streams.predictive import PopulationModel, Prediction, age_alive_below, p_alive, predict
from streams.tiers import Cuts, Decision, decide
from streams.units import MONEY_SCALE, day_of
from streams.value import benefit_cost_ratio, customer_lifetime_value, net_value
from streams.window import WindowTotals, window_totals


@dataclass(frozen=True, slots=True)
class ValueRules:
    value: ValueSettings
    clv: ClvSettings
    tiering: TieringSettings
    care: CareRules = field(default_factory=CareRules)
    prediction: PredictionSettings = field(default_factory=PredictionSettings)

    @property
    def retention_days(self) -> int:
        """How long day buckets are kept: the longest look-back any rule needs."""
        return max(self.value.window_days, self.care.retention_days)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a close found for one customer."""

    exists: bool  # seen by the end of the day (else nothing else is meaningful)
    score: float | None
    judged: bool
    buyer: bool  # bought in the window
    silent: bool  # a buyer with no purchase in the last `churn_days`
    due_day: int | None  # the next day its value changes without new events


def totals_as_of(state: CustomerState, day: int, rules: ValueRules) -> WindowTotals:
    return window_totals(state.days, end_day=day, window_days=rules.value.window_days)


def score_of(
    totals: WindowTotals, *, days_known: int, lifetime_years: float, rules: ValueRules
) -> float:
    kind = rules.value.score
    if kind == "ratio":
        return benefit_cost_ratio(totals.revenue, totals.service_cost, rules.value.cost_floor)
    if kind == "net_value":
        return net_value(totals.revenue, totals.service_cost)
    return customer_lifetime_value(
        totals,
        days_known=days_known,
        window_days=rules.value.window_days,
        lifetime_years=lifetime_years,
        settings=rules.clv,
    ).value


def evaluate(
    state: CustomerState,
    day: int,
    *,
    lifetime_years: float,
    rules: ValueRules,
    model: PopulationModel | None = None,
) -> Evaluation:
    """Bring the customer's value up to the end of `day`; mutates and returns a summary."""
    first_day = day_of(state.first_seen_at)
    days = state.days
    days.evict(day - rules.retention_days + 1)
    state.closed_day = day
    settle(state.history, day)
    last = days.last_day
    state.stale = last is not None and last > day  # open days still to be closed
    if first_day > day:  # not a customer yet on that day
        state.score = None
        state.judged = False
        return Evaluation(False, None, False, False, False, None)
    totals = totals_as_of(state, day, rules)
    days_known = day - first_day + 1
    purchases_so_far = state.purchases
    if state.stale:  # purchases of open days do not count yet
        purchases_so_far -= days.field_sum(window.PURCHASES, day + 1, last or day)
    tiering = rules.tiering
    judged = days_known >= tiering.new_min_days and purchases_so_far >= tiering.new_min_orders
    score = score_of(totals, days_known=days_known, lifetime_years=lifetime_years, rules=rules)
    if rules.value.score == "clv" and model is not None:
        # once the population model is fitted, a buyer's CLV is the predicted one
        found = outlook(state, day, model, rules)
        if found is not None:
            score = found[1].clv
    state.score = score
    state.judged = judged
    buyer, silent = buyer_flags(state, day, rules)
    return Evaluation(True, score, judged, buyer, silent, due_day(state, day, rules, model))


def outlook(
    state: CustomerState, day: int, model: PopulationModel, rules: ValueRules
) -> tuple[Repeat, Prediction] | None:
    """What the population model predicts for the customer as of the end of `day` (None
    for a customer who had bought nothing by then). Its service cost per day is the
    window's, over the days of the window it was known."""
    repeat = repeat_as_of(state, day)
    if repeat is None:
        return None
    return repeat, _predict(state, day, repeat, model, rules)


def _predict(
    state: CustomerState, day: int, repeat: Repeat, model: PopulationModel, rules: ValueRules
) -> Prediction:
    totals = totals_as_of(state, day, rules)
    known = max(1, min(day - day_of(state.first_seen_at) + 1, rules.value.window_days))
    return predict(
        model.purchases,
        model.spend,
        x=repeat.x,
        t_x=repeat.t_x,
        T=repeat.age,
        m=repeat.mean_spend / MONEY_SCALE,
        horizon_days=rules.prediction.horizon_days,
        margin=rules.clv.gross_margin,
        discount_rate=rules.clv.discount_rate,
        cost_per_day=totals.service_cost / MONEY_SCALE / known,
    )


def task_value(
    state: CustomerState,
    day: int,
    model: PopulationModel | None,
    rules: ValueRules,
    lifetime_years: float,
) -> float:
    """What a customer is worth to the dialer as of `day`, to rank the day's tasks of a
    kind against the budget: its predicted CLV once the model is fitted (for a buyer),
    else its historic CLV."""
    if model is not None:
        found = outlook(state, day, model, rules)
        if found is not None:
            return found[1].clv
    first = day_of(state.first_seen_at)
    return customer_lifetime_value(
        totals_as_of(state, day, rules),
        days_known=max(1, day - first + 1),
        window_days=rules.value.window_days,
        lifetime_years=lifetime_years,
        settings=rules.clv,
    ).value


def churn_outlook(
    state: CustomerState, day: int, model: PopulationModel | None, rules: ValueRules
) -> care.ChurnOutlook | None:
    """The model rule's view of a buyer (streams/care.py): None without a model."""
    if model is None or rules.care.care.churn_rule != "model":
        return None
    repeat = repeat_as_of(state, day)
    if repeat is None:
        return None
    last = day - repeat.age + repeat.t_x
    if care.churn_decided(state.care, last):
        return None
    alive = p_alive(model.purchases, repeat.x, repeat.t_x, repeat.age)
    if alive >= rules.care.care.churn_p_alive:  # the rule stops here: no prediction needed
        return care.ChurnOutlook(last, alive, 0.0, 0.0)
    prediction = _predict(state, day, repeat, model, rules)
    return care.ChurnOutlook(
        last_purchase_day=last,
        p_alive=alive,
        value_at_risk=prediction.clv / alive if alive > 0 else 0.0,
        purchases_365d=prediction.purchases_365d,
    )


def repeat_as_of(state: CustomerState, day: int) -> Repeat | None:
    """The customer's purchase history as the models see it, as of the end of `day` (at
    or after its last evaluated day): None if it had bought nothing by then."""
    return as_of(
        state.history,
        day,
        buckets=state.days,
        purchase_amount=state.purchase_amount,
        refund_amount=state.refund_amount,
    )


def buyer_flags(state: CustomerState, day: int, rules: ValueRules) -> tuple[bool, bool]:
    """(bought in the window as of `day`, and if so, nothing for `churn_days`)."""
    last = state.days.last_day_with(window.PURCHASES, day)
    if last is None or last < day - rules.value.window_days + 1:
        return False, False
    return True, last <= day - rules.clv.churn_days


def due_day(
    state: CustomerState, day: int, rules: ValueRules, model: PopulationModel | None = None
) -> int | None:
    """The next day on which the customer's value or tier can change with no new event:
    a bucket leaving the window, the end of being `new`, a downgrade's dwell time, a care
    timer, or the day P(alive) falls below the churn rule's threshold (under `model`; a
    refit that moves that day earlier is seen when the customer is next looked at)."""
    first_day = day_of(state.first_seen_at)
    candidates = []
    exit_day = window.next_exit_day(state.days, after_day=day, window_days=rules.value.window_days)
    if exit_day is not None:
        candidates.append(exit_day)
    if not state.judged:
        graduation = first_day + rules.tiering.new_min_days - 1
        if graduation > day:
            candidates.append(graduation)
    if state.tier_since is not None and state.tier not in ("new", "bronze"):
        dwell_end = state.tier_since + rules.tiering.min_dwell_days
        if dwell_end > day:
            candidates.append(dwell_end)
    care_day = care.due_day(state.care, state.days, day, rules.care)
    if care_day is not None:
        candidates.append(care_day)
    churn_day = _churn_due_day(state, day, rules, model)
    if churn_day is not None:
        candidates.append(churn_day)
    prediction = rules.prediction
    if rules.value.score == "clv" and prediction.enabled:
        # the predicted CLV moves with silence and with each refit: re-scored the day
        # after every refit day (when the new model is in use)
        refit = prediction.refit_days
        candidates.append(((day - 1) // refit + 1) * refit + 1)
    return min(candidates) if candidates else None


def _churn_due_day(
    state: CustomerState, day: int, rules: ValueRules, model: PopulationModel | None
) -> int | None:
    prediction = rules.prediction
    if rules.care.care.churn_rule != "model" or not prediction.enabled:
        return None
    repeat = repeat_as_of(state, day)
    if repeat is None:
        return None
    first = day - repeat.age
    if care.churn_decided(state.care, first + repeat.t_x):
        return None
    if model is None:  # not fitted yet, or not known here (a rebuilt ledger): next fit day
        return (day // prediction.refit_days + 1) * prediction.refit_days
    age = age_alive_below(model.purchases, rules.care.care.churn_p_alive, repeat.x, repeat.t_x)
    if age is None or age > 100 * 365:  # never, or not in a century
        return None
    due = first + math.floor(age) + 1  # the first whole age past the crossing
    return due if due > day else None


def care_of_day(
    state: CustomerState,
    day: int,
    *,
    tier_change: tuple[str, str] | None,
    revalued: bool,
    rules: ValueRules,
    model: PopulationModel | None = None,
) -> care.DayCare:
    """The care rules for the customer on a closed day, after its tier for the day is
    decided (care.evaluate_day with the state's own facts and the model's outlook)."""
    return care.evaluate_day(
        customer_id=state.customer_id,
        memory=state.care,
        days=state.days,
        first_seen_day=day_of(state.first_seen_at),
        day=day,
        tier=state.tier,
        judged=state.judged,
        tier_change=tier_change,
        revalued=revalued,
        opted_out=state.do_not_call,
        window_days=rules.value.window_days,
        rules=rules.care,
        outlook=churn_outlook(state, day, model, rules),
    )


#: The figures a close and a tiering derive without deciding anything (streams/valuation
#: `evaluate`, and `retier` when the tier stays): (closed_day, stale, score, judged,
#: tiered_day, percentile). They are not worth a changelog write of the whole state: the
#: engine keeps them beside it (agents/engine/store.py `patch`) and `apply_derived`
#: brings a stored state up to them. With them, the fingerprint of the customer's last
#: `customer-tiers` record (a record is an output, not a decision: publishing one is no
#: reason to write the state whole either).
Derived = tuple[int | None, bool, float | None, bool, int | None, float | None, int | None]


def derived_of(state: CustomerState) -> Derived:
    return (
        state.closed_day,
        state.stale,
        state.score,
        state.judged,
        state.tiered_day,
        state.percentile,
        state.published,
    )


def apply_derived(state: CustomerState, derived: Derived, rules: ValueRules) -> None:
    """Bring a state stored before a close or a tiering that changed only derived
    figures up to them: the figures, and what those steps also do to the state as a
    function of the day alone (old buckets dropped, purchases settled, the care memory
    settled: streams/care.py settle_day)."""
    closed, stale, score, judged, tiered, percentile, published = derived
    if closed is not None:
        state.days.evict(closed - rules.retention_days + 1)
        settle(state.history, closed)
    if tiered is not None:
        care.settle_day(state.care, tiered, rules.care)
    state.closed_day, state.stale, state.score, state.judged = closed, stale, score, judged
    state.tiered_day, state.percentile, state.published = tiered, percentile, published


@dataclass(frozen=True, slots=True)
class TierChangeFacts:
    """A tier change and the figures behind it (money in the currency unit)."""

    previous: str
    tier: str
    score: float
    percentile: float
    totals: WindowTotals
    reason: str


def retier(
    state: CustomerState, day: int, cuts: Cuts, *, rules: ValueRules
) -> tuple[Decision, TierChangeFacts | None]:
    """Decide the tier as of `day`; mutates the state; the change, if there is one."""
    previous = state.tier
    score = state.score if state.score is not None else 0.0
    since = state.tier_since if state.tier_since is not None else day
    decision = decide(
        previous=previous,
        days_in_tier=day - since,
        score=score,
        is_new=not state.judged or state.score is None,
        cuts=cuts,
        settings=rules.tiering,
        score_kind=rules.value.score,
    )
    state.tiered_day = day
    state.percentile = cuts.percentile(score) if state.judged and cuts.population else None
    if decision.tier == previous:
        return decision, None
    state.tier = decision.tier
    state.tier_since = day
    facts = TierChangeFacts(
        previous,
        decision.tier,
        score,
        state.percentile or 0.0,
        totals_as_of(state, day, rules),
        decision.reason,
    )
    return decision, facts
