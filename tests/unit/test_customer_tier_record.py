"""The `customer-tiers` record (streams/outputs.py customer_tier) and the fingerprint that
decides when one is published: what the customer's own history moves, as of the day,
never what events of later days or the population alone move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.config import CostSettings, IngestSettings
from schemas.inputs import INPUT_MODELS
from schemas.outputs import CustomerTier
from schemas.value_config import ClvSettings, TieringSettings, ValueSettings
from streams.customer import CustomerState, apply_event
from streams.outputs import customer_tier, lifetime_as_of, tier_fingerprint
from streams.units import MONEY_SCALE, day_of, to_micros
from streams.valuation import ValueRules, totals_as_of
from tests import factories as f

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
D0 = day_of(to_micros(DAY0))
RULES = ValueRules(ValueSettings(window_days=90), ClvSettings(), TieringSettings())


def at(days: float) -> str:
    return (DAY0 + timedelta(days=days)).isoformat()


def apply(state: CustomerState | None, *bodies: dict[str, Any]) -> CustomerState:
    for body in bodies:
        event = INPUT_MODELS[body["event_type"]].model_validate(body)
        state, _ = apply_event(state, event, ingest=IngestSettings(), costs=CostSettings())
    assert state is not None
    return state


def judged(state: CustomerState, day: int, tier: str = "gold") -> CustomerState:
    """The state as a tiering of `day` leaves it (score and tier set by hand)."""
    totals = totals_as_of(state, day, RULES)
    state.score = (totals.revenue - totals.service_cost) / max(totals.service_cost, MONEY_SCALE)
    state.judged, state.tier, state.tier_since, state.tiered_day = True, tier, day - 3, day
    state.percentile = 81.5
    return state


def fingerprint(state: CustomerState, day: int) -> int:
    return tier_fingerprint(state, day, totals_as_of(state, day, RULES))


BASE = [f.order(occurred_at=at(1), amount=300.0), f.call(occurred_at=at(2), cost=12.0)]


def test_the_record_says_what_the_state_says_as_of_the_day() -> None:
    state = judged(apply(None, *BASE, f.order(occurred_at=at(12), amount=50.0)), D0 + 10)
    record = customer_tier(
        state,
        D0 + 10,
        totals=totals_as_of(state, D0 + 10, RULES),
        rules=RULES,
        lifetime_years=3.0,
        model=None,
        emitted_at=to_micros(DAY0),
    )
    CustomerTier.model_validate(record.model_dump(mode="json"), strict=False)
    assert (record.tier, record.percentile, record.score_kind) == ("gold", 81.5, "ratio")
    assert record.as_of == DAY0 + timedelta(days=11)  # the end of day 10
    assert record.tier_since == DAY0 + timedelta(days=7)
    # day 12's order is after the day: in neither the window nor the lifetime figures
    assert (record.revenue, record.service_cost) == (300.0, 12.0)
    assert (record.lifetime_revenue, record.lifetime_service_cost) == (300.0, 12.0)
    assert record.ratio == pytest.approx(24.0)
    assert record.p_alive is None  # no model yet
    assert record.predicted_clv is None


@pytest.mark.parametrize(
    ("change", "publishes"),
    [
        # why a record goes out again, or not
        (lambda s: setattr(s, "percentile", 12.0), False),  # the population moved alone
        (lambda s: setattr(s, "tiered_day", D0 + 11), False),  # looked at again, same figures
        (lambda s: apply(s, f.order(occurred_at=at(15), amount=9.0)), False),  # a later day's order
        (lambda s: setattr(s, "tier", "vip"), True),  # a new tier
        (lambda s: setattr(s, "tier_since", D0 + 9), True),  # re-entered the tier
        (lambda s: setattr(s, "score", 99.0), True),  # a new score
        (
            lambda s: apply(s, f.order(occurred_at=at(5), amount=9.0)),
            True,
        ),  # a late order of the window
        (lambda s: apply(s, f.call(occurred_at=at(9), cost=1.0)), True),  # a contact of the window
    ],
    ids=[
        "percentile",
        "tiered again",
        "order of an open day",
        "tier",
        "tier since",
        "score",
        "late order",
        "late call",
    ],
)
def test_what_triggers_a_record(change: Any, publishes: bool) -> None:
    state = judged(apply(None, *BASE), D0 + 10)
    before = fingerprint(state, D0 + 10)
    change(state)
    assert (fingerprint(state, D0 + 10) != before) is publishes


def test_a_bucket_leaving_the_window_publishes() -> None:
    state = judged(apply(None, *BASE, f.order(occurred_at=at(60), amount=5.0)), D0 + 90)
    assert fingerprint(state, D0 + 90) != fingerprint(state, D0 + 91)  # day 1's order leaves


@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from(["order", "call"]), st.integers(1, 500)),
        min_size=1,
        max_size=25,
    ),
    st.integers(0, 40),
)
@settings(max_examples=60, deadline=None)
def test_events_of_later_days_never_move_a_days_record(
    events: list[tuple[int, str, int]], day: int
) -> None:
    """Whether they arrived before the close of `day` or after it (a replay, another
    commit timing) does not change what the record of `day` says."""
    events = sorted(events)  # in time order: an event a day behind the latest is late
    bodies = [
        f.order(occurred_at=at(d), amount=float(n))
        if kind == "order"
        else f.call(occurred_at=at(d), cost=n / 10)
        for d, kind, n in events
    ]
    early = [b for b, (d, _, _) in zip(bodies, events, strict=True) if d <= day]
    if not early:
        return
    only_early = judged(apply(None, *early), D0 + day)
    everything = judged(apply(None, *bodies), D0 + day)
    assert fingerprint(everything, D0 + day) == fingerprint(only_early, D0 + day)
    assert lifetime_as_of(everything, D0 + day) == lifetime_as_of(only_early, D0 + day)
