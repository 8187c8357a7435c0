"""A customer's value as of a closed day, and the partition ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.care_config import CareSettings
from schemas.config import CostSettings, IngestSettings
from schemas.inputs import INPUT_MODELS
from schemas.value_config import ClvSettings, TieringSettings, ValueSettings
from streams.care import CareRules, settle_day
from streams.codec import decode_state, encode_state
from streams.customer import CustomerState, apply_event
from streams.ledger import PartitionLedger, Progress
from streams.predictive import PopulationModel, PurchaseModel, SpendModel, p_alive
from streams.sketch import ScoreSummary
from streams.tiers import make_cuts
from streams.units import day_of, to_micros
from streams.valuation import ValueRules, apply_derived, derived_of, evaluate, retier
from tests import factories as f

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
D0 = day_of(to_micros(DAY0))
RULES = ValueRules(
    ValueSettings(window_days=90),
    ClvSettings(),
    TieringSettings(new_min_days=30, min_dwell_days=7),
    CareRules(care=CareSettings(churn_rule="stages")),
)
#: churn rule `model` (the default), a year's window
MODEL_RULES = ValueRules(ValueSettings(window_days=365), RULES.clv, RULES.tiering, CareRules())
MODEL = PopulationModel(
    day=D0,
    purchases=PurchaseModel("mbgnbd", 0.525, 43.28, 0.891, 1.614, 0.0, 1000),
    spend=SpendModel(6.25, 3.74, 15.44, 0.0, 500),
)


def at(days: float) -> str:
    return (DAY0 + timedelta(days=days)).isoformat()


def history(*bodies: dict[str, Any]) -> CustomerState:
    state = None
    for body in bodies:
        event = INPUT_MODELS[body["event_type"]].model_validate(body)
        state, _ = apply_event(state, event, ingest=IngestSettings(), costs=CostSettings())
    assert state is not None
    return state


def test_not_a_customer_before_its_first_event() -> None:
    state = history(f.order(occurred_at=at(10)))
    result = evaluate(state, D0 + 5, lifetime_years=3, rules=RULES)
    assert not result.exists
    assert state.score is None
    assert state.stale  # day 10 is still to be closed


NEW: list[tuple[str, dict[str, Any], int, bool]] = [
    # (why, rule overrides, day closed, judged)
    ("29 days known: new", {}, 28, False),
    ("30 days known: judged", {}, 29, True),
    ("judged by days but not enough orders", {"new_min_orders": 2}, 60, False),
    ("judged by days and orders", {"new_min_orders": 1}, 60, True),
]


@pytest.mark.parametrize(("why", "overrides", "day", "judged"), NEW, ids=[c[0] for c in NEW])
def test_new_until_enough_history(
    why: str, overrides: dict[str, Any], day: int, judged: bool
) -> None:
    rules = ValueRules(RULES.value, RULES.clv, TieringSettings(**overrides))
    state = history(f.order(amount=100, occurred_at=at(0)))
    evaluate(state, D0 + day, lifetime_years=3, rules=rules)
    assert state.judged is judged


def test_the_score_ignores_open_days_and_old_buckets_are_evicted() -> None:
    state = history(
        f.order(amount=100, occurred_at=at(0)),
        f.call(cost=10, occurred_at=at(1)),
        f.order(amount=500, occurred_at=at(50)),
    )  # day 50 is after the close
    evaluate(state, D0 + 40, lifetime_years=3, rules=RULES)
    assert state.score == pytest.approx((100 - 10) / 10)  # ratio over days 0..40
    assert state.stale
    evaluate(state, D0 + 95, lifetime_years=3, rules=RULES)  # window 6..95
    assert state.score == pytest.approx(500)  # no cost: over the floor of 1.0
    assert not state.stale
    # buckets are kept for the longest look-back of any rule (churn stage 2: 181 days)
    assert RULES.retention_days == 181
    assert sorted(state.days) == [D0, D0 + 1, D0 + 50]
    evaluate(state, D0 + 182, lifetime_years=3, rules=RULES)  # keeps days 2..182
    assert sorted(state.days) == [D0 + 50]


def test_the_due_day_is_the_next_change_without_events() -> None:
    state = history(f.order(occurred_at=at(0)), f.order(occurred_at=at(20)))
    assert evaluate(state, D0 + 10, lifetime_years=3, rules=RULES).due_day == D0 + 29  # judged
    assert evaluate(state, D0 + 40, lifetime_years=3, rules=RULES).due_day == D0 + 90  # day 0
    assert evaluate(state, D0 + 95, lifetime_years=3, rules=RULES).due_day == D0 + 110


def test_the_churn_models_day_is_where_p_alive_crosses_the_threshold() -> None:
    """Rule `model`: without a model, the next refit day; with one, the first day P(alive)
    is below care.churn_p_alive; none once decided for the last purchase."""
    state = history(f.order(occurred_at=at(0), amount=400), f.order(occurred_at=at(20)))
    early = evaluate(state, D0 + 21, lifetime_years=3, rules=MODEL_RULES).due_day
    assert early is not None
    assert early % 7 == 0  # the next fit day: the model is not known yet
    assert D0 + 21 < early <= D0 + 28
    threshold = MODEL_RULES.care.care.churn_p_alive
    crossing = next(d for d in range(21, 2000) if p_alive(MODEL.purchases, 1, 20, d) < threshold)
    assert crossing < 365  # before the first bucket leaves the window
    due = evaluate(state, D0 + 40, lifetime_years=3, rules=MODEL_RULES, model=MODEL).due_day
    assert due == D0 + crossing
    state.care.churn_anchor, state.care.churn_stage = D0 + 20, 1  # decided
    decided = evaluate(state, D0 + 40, lifetime_years=3, rules=MODEL_RULES, model=MODEL)
    assert decided.due_day == D0 + 365  # the window, no churn day any more


def test_buyers_and_silent_buyers() -> None:
    rules = ValueRules(ValueSettings(window_days=365), ClvSettings(churn_days=60), RULES.tiering)
    state = history(f.order(occurred_at=at(0)))
    early = evaluate(state, D0 + 30, lifetime_years=3, rules=rules)
    assert early.buyer
    assert not early.silent
    later = evaluate(state, D0 + 70, lifetime_years=3, rules=rules)
    assert later.buyer
    assert later.silent


def cuts_for(scores: list[float], day: int = D0 + 40) -> Any:
    summary = ScoreSummary(0.01)
    for score in scores:
        summary.add(score)
    return make_cuts(summary, RULES.tiering, day)


def test_retier_records_the_change_and_its_figures() -> None:
    state = history(f.order(amount=1000, occurred_at=at(0)), f.call(cost=10, occurred_at=at(1)))
    evaluate(state, D0 + 40, lifetime_years=3, rules=RULES)
    cuts = cuts_for([float(i) for i in range(1, 101)])
    decision, facts = retier(state, D0 + 40, cuts, rules=RULES)
    assert decision.tier == "vip"  # ratio 99 is in the top 5 % of 1..100
    assert facts is not None
    assert (facts.previous, facts.tier) == ("new", "vip")
    assert facts.totals.revenue == 1_000_000_000
    assert state.tier == "vip"
    assert state.tier_since == D0 + 40
    again_decision, again = retier(state, D0 + 41, cuts, rules=RULES)
    assert again is None  # no change, no event
    assert again_decision.tier == "vip"


def test_the_ledger_index_follows_scores() -> None:
    ledger = PartitionLedger(0, 0.01)
    ledger.index(b"a", 1.0)
    ledger.index(b"b", 5.0)
    ledger.index(b"a", 7.0)  # moved
    assert ledger.summary.count == 2
    assert ledger.members_of([ledger.summary.mapping.key(7.0)]) == {b"a"}
    ledger.index(b"b", None)  # left the population (e.g. became new again)
    assert ledger.summary.count == 1
    assert ledger.scores == {b"a": 7.0}


def test_the_ledger_due_days_pop_once() -> None:
    ledger = PartitionLedger(0, 0.01)
    ledger.set_due(b"a", 10)
    ledger.set_due(b"b", 12)
    ledger.set_due(b"a", 11)  # moved: the old entry must not fire
    assert ledger.pop_due(10) == set()
    assert ledger.pop_due(11) == {b"a"}
    assert ledger.pop_due(20) == {b"b"}
    assert ledger.pop_due(30) == set()


def test_progress_round_trips() -> None:
    progress = Progress(5, 4, {"calls": 1}, {"calls": 123}, {5: {"x": 1}}, {"vip": 2}, {}, 3)
    assert Progress.from_json(progress.to_json()) == progress
    older = progress.to_json()
    del older["started_day"], older["emitted"]  # records written before they existed
    assert Progress.from_json(older).started_day is None


# -- derived figures kept beside a stored state (agents/engine/store.py patch) -----------
_EVENT = st.tuples(
    st.sampled_from(["purchase", "refund", "call", "basic call"]),
    st.integers(0, 200),  # day
    st.integers(1, 500),  # amount
)


def _body(kind: str, day: int, amount: int, n: int) -> dict[str, Any]:
    when = at(day + (n % 24) / 24)
    if kind == "purchase":  # with supplies that run out: the care memory's supply plan
        items = [{"sku": f"S{amount % 3}", "quantity": 1, "consumption_days": amount % 40 + 5}]
        return f.order(occurred_at=when, amount=amount, event_id=f"e{n}", items=items)
    if kind == "refund":
        return f.order(occurred_at=when, amount=amount, kind=kind, event_id=f"e{n}")
    return f.call(occurred_at=when, event_id=f"e{n}", is_basic=kind == "basic call")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_EVENT, min_size=1, max_size=25),
    st.lists(st.integers(0, 260), min_size=1, max_size=8),
    st.data(),
)
def test_a_stored_state_plus_the_derived_figures_is_the_live_state(
    events: list[tuple[str, int, int]], closes: list[int], data: st.DataObject
) -> None:
    """A close, and a tiering that keeps the tier, change only derived figures; a state
    stored before them and brought up by `apply_derived` encodes like the live one."""
    ingest = IngestSettings(allowed_lateness_seconds=30 * 86400)
    state: CustomerState | None = None
    for n, (kind, day, amount) in enumerate(sorted(events, key=lambda e: e[1])):
        event = INPUT_MODELS[_body(kind, day, amount, n)["event_type"]].model_validate(
            _body(kind, day, amount, n)
        )
        state, _ = apply_event(state, event, ingest=ingest, costs=CostSettings())
    assert state is not None
    days = sorted(D0 + d for d in set(closes))
    stored_at = data.draw(st.integers(0, len(days)), label="stored after this many closes")
    stored = None
    for i, day in enumerate(days):
        if i == stored_at:
            stored = decode_state(encode_state(state))
        evaluate(state, day, lifetime_years=3, rules=RULES)
        state.tiered_day, state.percentile = day, data.draw(st.floats(0, 100), label="pct")
        settle_day(state.care, day, RULES.care)
    if stored is None:
        stored = decode_state(encode_state(state))
    apply_derived(stored, derived_of(state), RULES)
    assert encode_state(stored) == encode_state(state)


def test_an_erased_customer_leaves_nothing_in_the_ledger_but_a_hash_and_a_time() -> None:
    from streams.history import Repeat
    from streams.ids import erasure_hash

    ledger = PartitionLedger(0, 0.01)
    for key, score in ((b"gone", 3.0), (b"kept", 1.0)):
        ledger.count_tier(key, "gold")
        ledger.index(key, score)
        ledger.set_buyer(key, True, False)
        ledger.set_due(key, D0 + 5)
        ledger.mark_stale(key, D0 + 1)
        ledger.tickets_waiting[key] = D0 + 2
        ledger.sample.note(key, Repeat(x=2, t_x=30, age=90, repeat_spend=10), D0)
        ledger.progress.outbox.append([1.0, f"task-{key!r}", "upsell", key.decode(), "{}"])
    ledger.erase_customer(b"gone", erasure_hash("gone"), 1_000)
    ledger.erase_customer(b"gone", erasure_hash("gone"), 500)  # a repeated, older request
    assert ledger.tiers == {b"kept": "gold"}
    assert set(ledger.scores) == {b"kept"}
    assert set(ledger.buyers) == {b"kept"}
    assert ledger.pop_due(D0 + 9) == {b"kept"}
    assert ledger.pop_stale(D0 + 9) == {b"kept"}
    assert set(ledger.tickets_waiting) == {b"kept"}
    assert len(ledger.sample) == 1
    assert [entry[3] for entry in ledger.progress.outbox] == ["kept"]
    assert ledger.progress.erased == {erasure_hash("gone"): 1_000}
    assert "gone" not in str(ledger.progress.to_json())  # only the hash is kept
    assert Progress.from_json(ledger.progress.to_json()).erased == ledger.progress.erased
