"""Day buckets and rolling windows: edges, eviction, late events, brute-force equality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.config import CostSettings, IngestSettings
from schemas.inputs import INPUT_MODELS
from streams import window
from streams.customer import CustomerState, Outcome, apply_event
from streams.units import MICROS_PER_DAY, amount, day_of, to_micros
from tests import factories as f

INGEST = IngestSettings(allowed_lateness_seconds=86400)
COSTS = CostSettings()
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
D0 = day_of(to_micros(DAY0))


def apply(history: list[dict[str, Any]], floor: int | None = None) -> CustomerState:
    state = None
    for body in history:
        event = INPUT_MODELS[body["event_type"]].model_validate(body)
        state, outcome = apply_event(
            state, event, ingest=INGEST, costs=COSTS, bucket_floor_day=floor
        )
        assert outcome is Outcome.APPLIED
    assert state is not None
    return state


def at(days: float) -> str:
    return (DAY0 + timedelta(days=days)).isoformat()


def revenue_in(state: CustomerState, end: int, width: int) -> float:
    return amount(window.window_totals(state.days, end_day=end, window_days=width).revenue)


EDGES: list[tuple[str, str, int]] = [
    # (why, occurred_at, the bucket's day relative to DAY0)
    ("midnight belongs to the new day", "2026-03-02T00:00:00Z", 1),
    ("the last microsecond of a day", "2026-03-01T23:59:59.999999Z", 0),
    ("the offset decides the UTC day", "2026-03-02T00:30:00+01:00", 0),
    ("a west-of-UTC evening is the next UTC day", "2026-03-01T20:00:00-05:00", 1),
]


@pytest.mark.parametrize(("why", "when", "offset"), EDGES, ids=[c[0] for c in EDGES])
def test_bucket_of_an_event(why: str, when: str, offset: int) -> None:
    state = apply([f.order(amount=10, occurred_at=when)])
    assert list(state.days) == [D0 + offset]


WINDOWS: list[tuple[str, int, int, float]] = [
    # purchases of 1, 2, 4 on days 0, 10, 20 — (why, end day, width, revenue in window)
    ("everything", 20, 365, 7.0),
    ("the end day is included", 10, 365, 3.0),
    ("days after the end are not", 9, 365, 1.0),
    ("the first day of the window is included", 20, 11, 6.0),
    ("a day before the window is not", 20, 10, 4.0),
    ("a window of one day", 10, 1, 2.0),
    ("a window with nothing in it", 40, 10, 0.0),
]


@pytest.mark.parametrize(("why", "end", "width", "expected"), WINDOWS, ids=[c[0] for c in WINDOWS])
def test_window_edges(why: str, end: int, width: int, expected: float) -> None:
    state = apply(
        [
            f.order(amount=1, occurred_at=at(0)),
            f.order(amount=2, occurred_at=at(10)),
            f.order(amount=4, occurred_at=at(20)),
        ]
    )
    assert revenue_in(state, D0 + end, width) == expected


def test_a_late_event_lands_in_its_own_day() -> None:
    state = apply(
        [f.order(amount=5, occurred_at=at(3)), f.order(amount=7, occurred_at=at(2.5))]
    )  # 12 h late: within lateness
    assert state.days[D0 + 2][window.REVENUE] == 7_000_000
    assert state.days[D0 + 3][window.REVENUE] == 5_000_000


def test_refunds_larger_than_purchases_make_the_window_negative() -> None:
    state = apply(
        [
            f.order(amount=100, occurred_at=at(0)),
            f.order(kind="refund", amount=150, occurred_at=at(1)),
        ]
    )
    totals = window.window_totals(state.days, end_day=D0 + 1, window_days=365)
    assert amount(totals.revenue) == -50
    assert amount(totals.refund_amount) == 150
    assert totals.purchases == 1


def test_contacts_by_channel_and_basic_questions() -> None:
    state = apply(
        [
            f.call(channel="chat", category="how_to"),
            f.call(channel="phone"),
            f.ticket(channel="email", is_basic=True),
            f.ticket(status="updated"),
        ]
    )
    totals = window.window_totals(state.days, end_day=D0 + 1, window_days=30)
    assert totals.contacts == 3
    assert totals.basic_questions == 2
    assert totals.by_channel() == {"phone": 1, "chat": 1, "email": 1, "video": 0, "web": 0}


def test_eviction_drops_whole_days_before_the_cut() -> None:
    state = apply([f.order(occurred_at=at(d)) for d in (0, 1, 2, 3)])
    window.evict(state.days, before_day=D0 + 2)
    assert sorted(state.days) == [D0 + 2, D0 + 3]


def test_events_before_the_bucket_floor_count_for_the_lifetime_only() -> None:
    state = apply(
        [f.order(amount=3, occurred_at=at(0)), f.order(amount=4, occurred_at=at(5))], floor=D0 + 1
    )
    assert amount(state.revenue) == 7
    assert list(state.days) == [D0 + 5]


def test_next_exit_day() -> None:
    state = apply([f.order(occurred_at=at(0)), f.order(occurred_at=at(4))])
    assert window.next_exit_day(state.days, after_day=D0 + 10, window_days=30) == D0 + 30
    assert window.next_exit_day(state.days, after_day=D0 + 30, window_days=30) == D0 + 34
    assert window.next_exit_day(state.days, after_day=D0 + 40, window_days=30) is None


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    events = []
    for i in range(draw(st.integers(1, 40))):
        day = draw(st.floats(0, 60))
        if draw(st.booleans()):
            kind = draw(st.sampled_from(["purchase", "refund", "service_fee", "subscription"]))
            events.append(
                f.order(
                    event_id=f"o{i}",
                    kind=kind,
                    occurred_at=at(day),
                    amount=draw(st.integers(0, 100_000)) / 100,
                )
            )
        else:
            events.append(
                f.call(
                    event_id=f"c{i}",
                    occurred_at=at(day),
                    cost=draw(st.integers(0, 10_000)) / 100,
                    channel=draw(st.sampled_from(["phone", "chat", "web"])),
                )
            )
    events.sort(key=lambda e: e["occurred_at"])  # in order: nothing is late
    return events


@settings(max_examples=200, deadline=None)
@given(history=histories(), end=st.integers(-5, 70), width=st.integers(1, 90))
def test_window_sums_equal_a_brute_force_recomputation(
    history: list[dict[str, Any]], end: int, width: int
) -> None:
    state = apply(history)
    totals = window.window_totals(state.days, end_day=D0 + end, window_days=width)
    start = to_micros(DAY0) + (end - width + 1) * MICROS_PER_DAY
    stop = to_micros(DAY0) + (end + 1) * MICROS_PER_DAY
    inside = [
        e for e in history if start <= to_micros(datetime.fromisoformat(e["occurred_at"])) < stop
    ]
    sign = {"purchase": 1, "service_fee": 1, "subscription": 1, "refund": -1}
    revenue = sum(
        sign[e["kind"]] * round(e["amount"] * 1e6) for e in inside if e["event_type"] == "order"
    )
    cost = sum(round(e["cost"] * 1e6) for e in inside if e["event_type"] == "call")
    purchases = sum(
        1
        for e in inside
        if e["event_type"] == "order" and e["kind"] in ("purchase", "subscription")
    )
    assert totals.revenue == revenue
    assert totals.service_cost == cost
    assert totals.purchases == purchases
    assert totals.contacts == sum(1 for e in inside if e["event_type"] == "call")


# -- DayBuckets against a plain dict: running totals, searches, eviction --------------------
int64_max = 2**63 - 1
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 60),
            st.integers(0, window.FIELDS - 1),
            st.integers(-(10**12), 10**12) | st.sampled_from([int64_max, -int64_max]),
        ),
        st.tuples(st.just("evict"), st.integers(-5, 70)),
        st.tuples(st.just("totals"), st.integers(-10, 80), st.sampled_from([1, 3, 7, 30, 90])),
    ),
    max_size=80,
)


def brute_totals(model: dict[int, list[int]], end: int, width: int) -> list[int]:
    rows = [b for d, b in model.items() if end - width < d <= end]
    return [sum(r[i] for r in rows) for i in range(window.FIELDS)]


@settings(max_examples=400, deadline=None)
@given(ops=operations)
def test_day_buckets_equal_a_dict_of_buckets(ops: list[tuple[Any, ...]]) -> None:
    """Whatever the order of changes and of the days asked for, the running totals and
    every search equal a recomputation from a plain dict (saturating at int64 included)."""
    buckets = window.DayBuckets()
    model: dict[int, list[int]] = {}
    for op in ops:
        if op[0] == "add":
            _, day, field, delta = op
            buckets.add(day, field, delta)
            row = model.setdefault(day, [0] * window.FIELDS)
            row[field] = max(-int64_max, min(int64_max, row[field] + delta))
        elif op[0] == "evict":
            buckets.evict(op[1])
            model = {d: b for d, b in model.items() if d >= op[1]}
        else:
            _, end, width = op
            assert buckets.totals(end, width) == brute_totals(model, end, width)
        assert buckets == model
        assert list(buckets) == sorted(model)
    for end in range(-2, 64, 5):
        assert buckets.totals(end, 30) == brute_totals(model, end, 30)
        purchase_days = [d for d, b in model.items() if d <= end and b[window.PURCHASES]]
        assert buckets.last_day_with(window.PURCHASES, end) == max(purchase_days, default=None)
        later = [d for d in model if d > end]
        assert buckets.first_day_after(end) == min(later, default=None)
        assert buckets.field_sum(window.REVENUE, end - 6, end) == sum(
            b[window.REVENUE] for d, b in model.items() if end - 6 <= d <= end
        )


def test_day_buckets_refuse_inconsistent_arrays() -> None:
    from array import array

    with pytest.raises(ValueError, match="not strictly increasing"):
        window.DayBuckets.from_arrays(array("q", [3, 3]), array("q", [0] * 2 * window.FIELDS))
    with pytest.raises(ValueError, match="bucket fields"):
        window.DayBuckets.from_arrays(array("q", [3]), array("q", [0]))
