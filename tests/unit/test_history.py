"""The purchase history the models read (streams/history.py): kept per event through
apply_event, in event time, whatever the arrival order and the days evaluated between."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import lz4.block
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.config import CostSettings, IngestSettings
from schemas.inputs import INPUT_MODELS
from schemas.state import STATE_HEADER, STATE_HEADER_V2
from streams.codec import decode_state, encode_state
from streams.customer import CustomerState, apply_event
from streams.history import MAX_PENDING_DAYS, PurchaseHistory, Repeat, as_of, settle
from streams.units import day_of, money, to_micros
from tests import factories as f

INGEST = IngestSettings(allowed_lateness_seconds=30 * 86400)
COSTS = CostSettings()
DAY0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
D0 = day_of(to_micros(DAY0))


def order(day: int, amount: float, kind: str = "purchase") -> dict[str, Any]:
    return f.order(occurred_at=(DAY0 + timedelta(days=day)).isoformat(), amount=amount, kind=kind)


def replay(
    events: list[dict[str, Any]], evaluations: dict[int, int] | None = None
) -> CustomerState:
    """Apply the events in order; after the i-th, evaluate as of day `evaluations[i]`
    (what a close does to the history: settle, and remember the evaluated day)."""
    state: CustomerState | None = None
    for i, body in enumerate(events):
        state, _ = apply_event(
            state, INPUT_MODELS["order"].model_validate(body), ingest=INGEST, costs=COSTS
        )
        if evaluations and i in evaluations:
            state.closed_day = D0 + evaluations[i]
            settle(state.history, D0 + evaluations[i])
    assert state is not None
    return state


def repeat_of(state: CustomerState, day: int) -> Repeat | None:
    settle(state.history, D0 + day)
    return as_of(
        state.history,
        D0 + day,
        buckets=state.days,
        purchase_amount=state.purchase_amount,
        refund_amount=state.refund_amount,
    )


CASES: list[tuple[str, list[dict[str, Any]], int, Repeat | None]] = [
    ("one purchase: no repeat", [order(0, 50)], 10, Repeat(0, 0, 10, 0)),
    ("two on one day are one purchase", [order(0, 50), order(0, 30)], 10, Repeat(0, 0, 10, 0)),
    (
        "repeat purchases and their spend",
        [order(0, 50), order(3, 20), order(7, 40), order(7, 10)],
        10,
        Repeat(2, 7, 10, money(70)),
    ),
    (
        "a later first purchase arriving late makes the old first a repeat",
        [order(5, 20), order(2, 50)],
        10,
        Repeat(1, 3, 8, money(20)),
    ),
    (
        "a refund is taken off the repeat spend, never below zero",
        [order(0, 50), order(4, 30), order(6, 40, kind="refund")],
        10,
        Repeat(1, 4, 10, 0),
    ),
    (
        "subscriptions are purchases",
        [order(0, 50), order(30, 9.99, kind="subscription")],
        40,
        Repeat(1, 30, 40, money(9.99)),
    ),
    ("nothing bought by the day", [order(5, 50)], 3, None),
    (
        "purchases after the day do not count",
        [order(0, 50), order(2, 20), order(9, 99)],
        5,
        Repeat(1, 2, 5, money(20)),
    ),
]


@pytest.mark.parametrize(("why", "events", "day", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_history_as_of_a_day(
    why: str, events: list[dict[str, Any]], day: int, expected: Repeat | None
) -> None:
    assert repeat_of(replay(events), day) == expected


purchases = st.lists(
    st.tuples(st.integers(0, 25), st.integers(1, 500), st.booleans()), min_size=1, max_size=12
)


@settings(max_examples=300, deadline=None)
@given(purchases, st.randoms(use_true_random=False), st.integers(0, 40), st.data())
def test_any_arrival_order_and_evaluations_give_the_brute_force_history(
    bought: list[tuple[int, int, bool]], shuffle: Any, day: int, data: st.DataObject
) -> None:
    """The same purchases (and refunds) in any order within the lateness, evaluated on
    any increasing days along the way (late purchases then land on evaluated days), read
    as of a day at or after the last evaluation: what counting them from scratch gives."""
    events = [order(d, amount, "refund" if refund else "purchase") for d, amount, refund in bought]
    shuffle.shuffle(events)
    evaluations: dict[int, int] = {}
    floor = -1
    for i in range(len(events)):
        if floor < day and data.draw(st.booleans()):
            floor = data.draw(st.integers(floor + 1, day))
            evaluations[i] = floor
    state = replay(events, evaluations)
    assert repeat_of(state, day) == brute_force(bought, day)
    assert decode_state(encode_state(state)).history == state.history


def brute_force(bought: list[tuple[int, int, bool]], day: int) -> Repeat | None:
    spend: dict[int, int] = {}
    refunds = 0
    for d, amount, refund in bought:
        if d > day:
            continue
        if refund:
            refunds += money(amount)
        else:
            spend[d] = spend.get(d, 0) + money(amount)
    if not spend:
        return None
    days = sorted(spend)
    x = len(days) - 1
    repeat = sum(spend[d] for d in days[1:]) - refunds
    return Repeat(x, days[-1] - days[0], day - days[0], max(repeat, 0) if x else 0)


def test_a_version_2_state_reads_with_an_estimated_history() -> None:
    """A store written before version 3: the history from the lifetime figures."""
    state = replay([order(0, 40), order(3, 20), order(10, 60)])
    state.history = PurchaseHistory()  # no pending days: the rest of the body is v2's
    data = encode_state(state)
    (size,) = struct.unpack_from("<I", data, 1)
    body = lz4.block.decompress(data[5:], uncompressed_size=size)
    fields = STATE_HEADER.unpack_from(body)
    # version 2's header lacks the purchase history (5 fields) and the fingerprint
    v2_body = STATE_HEADER_V2.pack(*fields[: len(fields) - 6]) + body[STATE_HEADER.size :]
    v2 = (
        bytes([2]) + struct.pack("<I", len(v2_body)) + lz4.block.compress(v2_body, store_size=False)
    )
    old = decode_state(v2)
    assert old.history == PurchaseHistory(
        first_day=D0, days=3, first_amount=money(40), settled_last=D0 + 10
    )
    assert old.purchases == state.purchases
    assert decode_state(encode_state(old)) == old  # rewritten in the current version


def test_purchase_days_kept_apart_are_capped_and_the_history_stays_exact() -> None:
    """100 purchase days with no evaluation between (a customer whose partition closes no
    day for months): the oldest settle early, the state stays bounded, and the history
    as of any of those days is still what the purchases give (read from the buckets)."""
    bought = [(d, 10 + d, False) for d in range(100)]
    state = replay([order(d, amount) for d, amount, _ in bought])
    assert len(state.history.pending) == MAX_PENDING_DAYS
    for day in (20, 50, 99):
        assert repeat_of(replay([order(d, a) for d, a, _ in bought]), day) == brute_force(
            bought, day
        )
