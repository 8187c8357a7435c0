"""The stored state format: lossless round trip, and it is what schemas/state.py documents."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.state import CustomerStateRecord
from streams.codec import StateDecodeError, decode_state, encode_state
from streams.customer import CustomerState, StreamMemory
from streams.window import FIELDS

int64 = st.integers(-(2**63), 2**63 - 1)
micros = st.integers(0, 4_000_000_000_000_000)
memories = st.builds(
    StreamMemory,
    last_at=micros,
    floor=micros,
    seen=st.dictionaries(int64, micros, max_size=30),
)
states = st.builds(
    CustomerState,
    customer_id=st.text(min_size=1, max_size=40).filter(
        lambda s: all(c >= " " and c != "\x7f" for c in s)
    ),
    first_seen_at=micros,
    last_event_at=micros,
    last_order_at=st.none() | micros,
    revenue=int64,
    service_cost=int64,
    purchases=st.integers(0, 10**9),
    purchase_amount=int64,
    refund_amount=int64,
    contacts=st.integers(0, 10**9),
    basic_questions=st.integers(0, 10**9),
    do_not_call=st.booleans(),
    preference_at=st.none() | micros,
    streams=st.dictionaries(
        st.sampled_from(["call", "order", "ticket", "contact_preference"]), memories
    ),
    days=st.dictionaries(
        st.integers(0, 40_000), st.lists(int64, min_size=FIELDS, max_size=FIELDS), max_size=20
    ),
    stale=st.booleans(),
    closed_day=st.none() | st.integers(0, 40_000),
    score=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    judged=st.booleans(),
    tier=st.sampled_from(["vip", "gold", "silver", "bronze", "new"]),
    tier_since=st.none() | st.integers(0, 40_000),
    tiered_day=st.none() | st.integers(0, 40_000),
    percentile=st.none() | st.floats(0, 100),
)


@settings(max_examples=300)
@given(states)
def test_round_trip_is_lossless(state: CustomerState) -> None:
    assert decode_state(encode_state(state)) == state


@settings(max_examples=100)
@given(states)
def test_encoding_is_the_documented_record(state: CustomerState) -> None:
    CustomerStateRecord.model_validate_json(encode_state(state), strict=False)


def test_id_memory_keeps_arrival_order() -> None:
    state = CustomerState("C1", 0, 0, streams={"call": StreamMemory(1, 0, {5: 3, 1: 2, 9: 1})})
    assert list(decode_state(encode_state(state)).streams["call"].seen) == [5, 1, 9]


@pytest.mark.parametrize(
    ("why", "data"),
    [
        ("not JSON", b"\x00\x01"),
        ("an unknown version", orjson.dumps({"v": 99})),
        ("a missing field", orjson.dumps({"v": 1, "customer_id": "C1"})),
        (
            "a corrupt id memory",
            orjson.dumps(
                {
                    "v": 1,
                    "customer_id": "C1",
                    "first_seen_at": 0,
                    "last_event_at": 0,
                    "last_order_at": None,
                    "revenue": 0,
                    "service_cost": 0,
                    "purchases": 0,
                    "purchase_amount": 0,
                    "refund_amount": 0,
                    "contacts": 0,
                    "basic_questions": 0,
                    "do_not_call": False,
                    "preference_at": None,
                    "streams": {"call": [0, 0, "@@@"]},
                    "days": [],
                }
            ),
        ),
    ],
)
def test_unreadable_state_raises_a_clear_error(why: str, data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_state(data)


def test_a_typical_state_is_small() -> None:
    memory = StreamMemory(1, 0, {i: i for i in range(5)})
    state = CustomerState(
        "C0001234",
        1,
        2,
        3,
        10**9,
        10**8,
        12,
        10**9,
        0,
        30,
        4,
        False,
        None,
        {"call": memory, "order": memory},
    )
    assert len(encode_state(state)) < 700
