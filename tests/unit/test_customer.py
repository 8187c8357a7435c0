"""apply_event: Given a history, When an event arrives, Then the state (and outcome)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.config import CostSettings, IngestSettings
from schemas.inputs import INPUT_MODELS, InputEvent
from streams.customer import CustomerState, Outcome, apply_event
from streams.units import amount, to_micros
from tests import factories as f

INGEST = IngestSettings(allowed_lateness_seconds=3600)
COSTS = CostSettings()
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def event(body: dict[str, Any]) -> InputEvent:
    return INPUT_MODELS[body["event_type"]].model_validate(body)


def run(
    history: list[dict[str, Any]], ingest: IngestSettings = INGEST
) -> tuple[CustomerState, list[Outcome]]:
    state: CustomerState | None = None
    outcomes = []
    for body in history:
        state, outcome = apply_event(state, event(body), ingest=ingest, costs=COSTS)
        outcomes.append(outcome)
    assert state is not None
    return state, outcomes


DUP = f.order(event_id="dup", amount=10, occurred_at=at(0))

OUTCOMES: list[tuple[str, list[dict[str, Any]], list[Outcome]]] = [
    ("a new event is applied", [f.order(occurred_at=at(0))], [Outcome.APPLIED]),
    ("the same event_id again is a duplicate", [DUP, DUP], [Outcome.APPLIED, Outcome.DUPLICATE]),
    (
        "a duplicate with other content is still a duplicate: ids decide",
        [DUP, {**DUP, "amount": 99}],
        [Outcome.APPLIED, Outcome.DUPLICATE],
    ),
    (
        "59 min out of order within a topic is within the lateness",
        [f.order(occurred_at=at(60)), f.order(occurred_at=at(1))],
        [Outcome.APPLIED, Outcome.APPLIED],
    ),
    (
        "61 min out of order within a topic is late",
        [f.order(occurred_at=at(61)), f.order(occurred_at=at(0))],
        [Outcome.APPLIED, Outcome.LATE],
    ),
    (
        "topics are read at different paces: a call days older than orders is not late",
        [f.order(occurred_at=at(5000)), f.call(occurred_at=at(0))],
        [Outcome.APPLIED, Outcome.APPLIED],
    ),
    (
        "a duplicate arriving after the horizon is refused, never applied",
        [DUP, f.order(occurred_at=at(200)), DUP],
        [Outcome.APPLIED, Outcome.APPLIED, Outcome.LATE],
    ),
]


@pytest.mark.parametrize(("why", "history", "expected"), OUTCOMES, ids=[c[0] for c in OUTCOMES])
def test_outcomes(why: str, history: list[dict[str, Any]], expected: list[Outcome]) -> None:
    _, outcomes = run(history)
    assert outcomes == expected


FIGURES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    (
        "purchases add revenue and count",
        [f.order(amount=100), f.order(amount=50.5)],
        {"revenue": 150.5, "purchases": 2, "purchase_amount": 150.5},
    ),
    (
        "a refund larger than the purchases makes revenue negative",
        [f.order(amount=100), f.order(kind="refund", amount=130)],
        {"revenue": -30.0, "refund_amount": 130.0, "purchases": 1},
    ),
    (
        "fees and subscriptions are revenue",
        [f.order(kind="service_fee", amount=20), f.order(kind="subscription", amount=30)],
        {"revenue": 50.0, "purchases": 1},
    ),
    (
        "an explicit call cost",
        [f.call(cost=4.0), f.call(cost=1.5)],
        {"service_cost": 5.5, "contacts": 2},
    ),
    (
        "tickets: one contact when opened, labour on updates",
        [
            f.ticket(cost=1.0),
            f.ticket(status="updated", cost=2.0),
            f.ticket(status="closed", cost=0),
        ],
        {"service_cost": 3.0, "contacts": 1},
    ),
    (
        "a reopened ticket is another contact",
        [f.ticket(cost=1.0), f.ticket(status="reopened", cost=1.0)],
        {"contacts": 2},
    ),
    (
        "basic questions: calls and opened tickets, by flag or category",
        [
            f.call(is_basic=True),
            f.call(category="password_reset"),
            f.call(category="outage"),
            f.ticket(category="how_to"),
            f.ticket(status="updated", category="how_to"),
        ],
        {"basic_questions": 3},
    ),
]


@pytest.mark.parametrize(("why", "history", "expected"), FIGURES, ids=[c[0] for c in FIGURES])
def test_figures(why: str, history: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    state, _ = run(history)
    for field, value in expected.items():
        got = getattr(state, field)
        if field in {"revenue", "service_cost", "purchase_amount", "refund_amount"}:
            got = amount(got)
        assert got == value, field


def test_times_first_last_and_last_order() -> None:
    state, _ = run(
        [
            f.call(occurred_at=at(30)),
            f.order(occurred_at=at(10)),  # earlier than the call: first_seen moves back
            f.order(kind="refund", occurred_at=at(50)),  # a refund is not a purchase
            f.order(kind="subscription", occurred_at=at(40)),
        ]
    )
    assert state.first_seen_at == to_micros(T0 + timedelta(minutes=10))
    assert state.last_event_at == to_micros(T0 + timedelta(minutes=50))
    assert state.last_order_at == to_micros(T0 + timedelta(minutes=40))


PREFERENCES: list[tuple[str, list[dict[str, Any]], bool]] = [
    ("opt out", [f.preference(do_not_call=True)], True),
    (
        "opt out then back in",
        [f.preference(occurred_at=at(0)), f.preference(do_not_call=False, occurred_at=at(5))],
        False,
    ),
    (
        "an older preference arriving later does not win",
        [f.preference(do_not_call=False, occurred_at=at(5)), f.preference(occurred_at=at(0))],
        False,
    ),
    (
        "a tie: opting out wins whatever the arrival order (1)",
        [f.preference(do_not_call=False, occurred_at=at(0)), f.preference(occurred_at=at(0))],
        True,
    ),
    (
        "a tie: opting out wins whatever the arrival order (2)",
        [f.preference(occurred_at=at(0)), f.preference(do_not_call=False, occurred_at=at(0))],
        True,
    ),
]


@pytest.mark.parametrize(
    ("why", "history", "expected"), PREFERENCES, ids=[c[0] for c in PREFERENCES]
)
def test_contact_preference(why: str, history: list[dict[str, Any]], expected: bool) -> None:
    state, _ = run(history)
    assert state.do_not_call is expected


def test_id_memory_is_pruned_behind_the_horizon() -> None:
    history = [f.order(occurred_at=at(m)) for m in range(0, 600, 10)]
    state, _ = run(history)
    seen = state.streams["order"].seen
    assert 6 <= len(seen) <= 7  # the last hour of events (lateness 3600 s)


def test_id_memory_is_bounded_and_forgetting_raises_the_floor() -> None:
    small = IngestSettings(allowed_lateness_seconds=86400, dedupe_max_ids_per_customer=16)
    history = [f.order(event_id=f"e{m}", occurred_at=at(m)) for m in range(40)]
    state, _ = run(history, small)
    memory = state.streams["order"]
    assert len(memory.seen) == 16
    # e23 was forgotten: a copy of it is refused as late, not applied again
    replay = event(f.order(event_id="e23", occurred_at=at(23)))
    _, outcome = apply_event(state, replay, ingest=small, costs=COSTS)
    assert outcome is Outcome.LATE
    # e30 is remembered: a copy is a duplicate
    copy = event(f.order(event_id="e30", occurred_at=at(30)))
    _, outcome = apply_event(state, copy, ingest=small, costs=COSTS)
    assert outcome is Outcome.DUPLICATE


# -- properties --------------------------------------------------------------------------------
@st.composite
def streams_with_duplicates(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Orders with disorder within the lateness, then copies of them re-sent at any point."""
    count = draw(st.integers(1, 60))
    events = []
    clock = 0.0
    for i in range(count):
        clock += draw(st.floats(0, 30))
        jitter = draw(st.floats(0, 55))  # minutes back: within the 60 min lateness
        kind = draw(st.sampled_from(["purchase", "refund", "service_fee"]))
        value = draw(st.integers(0, 10_000)) / 100
        events.append(
            f.order(
                event_id=f"o{i}", kind=kind, amount=value, occurred_at=at(max(0.0, clock - jitter))
            )
        )
    copies = draw(st.lists(st.integers(0, count - 1), max_size=count))
    stream = list(events)
    for index in copies:
        # a copy arrives some time after its original (never before the original)
        original = next(i for i, e in enumerate(stream) if e is events[index])
        stream.insert(draw(st.integers(original + 1, len(stream))), dict(events[index]))
    return stream


@settings(max_examples=300, deadline=None)
@given(stream=streams_with_duplicates(), cap=st.sampled_from([16, 4096]))
def test_nothing_counted_twice(stream: list[dict[str, Any]], cap: int) -> None:
    ingest = IngestSettings(allowed_lateness_seconds=3600, dedupe_max_ids_per_customer=cap)
    state, outcomes = run(stream, ingest)
    applied_ids = [
        body["event_id"] for body, o in zip(stream, outcomes, strict=True) if o is Outcome.APPLIED
    ]
    assert len(applied_ids) == len(set(applied_ids)), "an event was applied twice"
    unique = {body["event_id"]: body for body in stream}
    if cap == 4096:
        # with the memory large enough, every first copy is applied and only copies refused
        assert set(applied_ids) == set(unique)
    sign = {"purchase": 1, "service_fee": 1, "refund": -1}
    expected = sum(
        round(unique[i]["amount"] * 1_000_000) * sign[unique[i]["kind"]] for i in applied_ids
    )
    assert state.revenue == expected


@settings(max_examples=200, deadline=None)
@given(
    st.permutations(
        [f.order(event_id=f"p{i}", amount=i + 0.01, occurred_at=at(i)) for i in range(12)]
    )
)
def test_figures_do_not_depend_on_arrival_order(stream: list[dict[str, Any]]) -> None:
    """Within the lateness, any arrival order gives bit-identical figures (integer sums)."""
    state, outcomes = run(stream)
    assert all(o is Outcome.APPLIED for o in outcomes)
    assert state.revenue == sum(round((i + 0.01) * 1_000_000) for i in range(12))
    assert state.first_seen_at == to_micros(T0)


STALE: list[tuple[str, list[dict[str, Any]], bool]] = [
    # (why, history, the value must be looked at again)
    ("figures changed", [f.order()], True),
    (
        "an opt-out creates the customer: it is `new` from that day",
        [f.preference(occurred_at=at(0))],
        True,
    ),
    (
        "an opt-out of a known customer changes no figures",
        [f.order(occurred_at=at(0)), f.preference(occurred_at=at(5))],
        False,
    ),
    (
        "an opt-out dated before the first event moves the first day back",
        [f.order(occurred_at=at(10)), f.preference(occurred_at=at(0))],
        True,
    ),
]


@pytest.mark.parametrize(("why", "history", "stale"), STALE, ids=[c[0] for c in STALE])
def test_what_makes_a_value_stale(why: str, history: list[dict[str, Any]], stale: bool) -> None:
    state, _ = run(history[:-1]) if len(history) > 1 else (None, [])
    if state is not None:
        state.stale = False  # as after a close
    state, _ = apply_event(state, event(history[-1]), ingest=INGEST, costs=COSTS)
    assert state.stale is stale
