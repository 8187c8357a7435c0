"""The stored state format: lossless round trip, and it is what schemas/state.py documents."""

from __future__ import annotations

import struct
from array import array
from typing import Any

import lz4.block
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.state import (
    STATE_FLAG,
    STATE_HEADER,
    STATE_HEADER_V3,
    STATE_STREAM,
    STATE_STREAMS,
    STATE_TIERS,
    STATE_VERSION,
    CareRecord,
    CustomerStateRecord,
)
from streams.care import CareMemory
from streams.codec import StateDecodeError, decode_state, encode_state, pack_body, unpack_body
from streams.customer import CustomerState, StreamMemory
from streams.history import PurchaseHistory
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
    published=st.none() | int64,
    care=st.builds(
        CareMemory,
        last_task=st.dictionaries(st.sampled_from(["upsell", "churn_risk"]), st.integers(0, 9)),
        churn_anchor=st.none() | st.integers(0, 40_000),
        churn_stage=st.integers(0, 2),
        basic_days=st.dictionaries(
            st.integers(0, 40_000), st.dictionaries(st.text(max_size=5), st.integers(1, 9))
        ),
        tickets=st.lists(st.tuples(micros, st.text(max_size=5), st.just("opened")).map(list)),
    ),
    history=st.builds(
        PurchaseHistory,
        first_day=st.none() | st.integers(0, 40_000),
        days=st.integers(0, 10**6),
        first_amount=int64,
        settled_last=st.none() | st.integers(0, 40_000),
        pending=st.lists(st.integers(0, 40_000), unique=True, max_size=8).map(sorted),
    ),
)


@settings(max_examples=300)
@given(states)
def test_round_trip_is_lossless(state: CustomerState) -> None:
    assert decode_state(encode_state(state)) == state


def read_documented_layout(data: bytes) -> dict[str, Any]:
    """Decode a current-version record by following schemas/state.py alone."""
    assert data[0] == STATE_VERSION
    (size,) = struct.unpack_from("<I", data, 1)
    body = lz4.block.decompress(data[5:], uncompressed_size=size)
    names = [
        "flags",
        "tier",
        "first_seen_at",
        "last_event_at",
        "last_order_at",
        "preference_at",
        "closed_day",
        "tier_since",
        "tiered_day",
        "revenue",
        "service_cost",
        "purchases",
        "purchase_amount",
        "refund_amount",
        "contacts",
        "basic_questions",
        "score",
        "percentile",
        "name_bytes",
        "streams",
        "days",
        "care_bytes",
        "first_purchase_day",
        "purchase_days",
        "first_day_amount",
        "settled_last_day",
        "pending_days",
        "published",
    ]
    record: dict[str, Any] = dict(zip(names, STATE_HEADER.unpack_from(body), strict=True))
    at = STATE_HEADER.size
    record["customer_id"] = body[at : at + record["name_bytes"]].decode()
    at += record["name_bytes"]
    record["stream_memory"] = {}
    for _ in range(record["streams"]):
        code, last_at, floor, count = STATE_STREAM.unpack_from(body, at)
        at += STATE_STREAM.size
        pairs = struct.unpack_from(f"<{2 * count}q", body, at)
        at += 16 * count
        record["stream_memory"][STATE_STREAMS[code]] = (last_at, floor, pairs)
    record["pending"] = list(struct.unpack_from(f"<{record['pending_days']}q", body, at))
    at += 8 * record["pending_days"]
    n = record["days"]
    day_numbers = struct.unpack_from(f"<{n}q", body, at)
    columns = [struct.unpack_from(f"<{n}q", body, at + 8 * n * (f + 1)) for f in range(FIELDS)]
    at += 8 * n * (FIELDS + 1)
    record["buckets"] = {d: [c[i] for c in columns] for i, d in enumerate(day_numbers)}
    record["care"] = orjson.loads(body[at:]) if record["care_bytes"] else None
    assert at + record["care_bytes"] == len(body)
    return record


@settings(max_examples=100)
@given(states)
def test_encoding_is_the_documented_layout(state: CustomerState) -> None:
    record = read_documented_layout(encode_state(state))
    flags = record["flags"]

    def optional(name: str) -> Any:
        return record[name] if flags & STATE_FLAG[name] else None

    assert record["customer_id"] == state.customer_id
    assert STATE_TIERS[record["tier"]] == state.tier
    for name in ("first_seen_at", "last_event_at", "revenue", "service_cost", "contacts"):
        assert record[name] == getattr(state, name)
    for name in ("last_order_at", "preference_at", "closed_day", "tier_since", "tiered_day"):
        assert optional(name) == getattr(state, name)
    assert optional("score") == state.score
    assert optional("published") == state.published
    history = state.history
    assert optional("first_purchase_day") == history.first_day
    assert optional("settled_last_day") == history.settled_last
    assert (record["purchase_days"], record["first_day_amount"], record["pending"]) == (
        history.days,
        history.first_amount,
        history.pending,
    )
    assert bool(flags & STATE_FLAG["stale"]) is state.stale
    assert record["buckets"] == dict(state.days.items())
    assert record["stream_memory"] == {
        name: (m.last_at, m.floor, tuple(x for pair in m.seen.items() for x in pair))
        for name, m in state.streams.items()
    }
    if record["care"] is None:
        assert state.care.is_empty()
    else:
        CareRecord.model_validate(record["care"], strict=False)


V1_STATE = {
    "v": 1,
    "customer_id": "C1",
    "first_seen_at": 1_700_000_000_000_000,
    "last_event_at": 1_700_000_100_000_000,
    "last_order_at": None,
    "revenue": 12_000_000,
    "service_cost": 3_000_000,
    "purchases": 1,
    "purchase_amount": 12_000_000,
    "refund_amount": 0,
    "contacts": 2,
    "basic_questions": 1,
    "do_not_call": False,
    "preference_at": None,
    "streams": {"call": [5, 0, "AQAAAAAAAAACAAAAAAAAAA=="]},
    "days": [[19675, 12000000, 3000000, 2, 1, 1, 12000000]],
    "stale": True,
    "closed_day": None,
    "score": None,
    "judged": False,
    "tier": "new",
    "tier_since": None,
    "tiered_day": None,
    "percentile": None,
    "care": None,
}


@given(states)
@settings(max_examples=50, deadline=None)
def test_the_body_round_trips_through_pack_and_unpack(state: CustomerState) -> None:
    data = encode_state(state)
    assert pack_body(unpack_body(data)) == data


def test_version_1_json_is_still_read() -> None:
    """A store or changelog written by an older worker upgrades in place."""
    CustomerStateRecord.model_validate(V1_STATE, strict=False)  # what version 1 documents
    state = decode_state(orjson.dumps(V1_STATE))
    assert state.streams["call"].seen == {1: 2}
    assert state.days[19675] == [12000000, 3000000, 2, 1, 1, 12000000] + [0] * (FIELDS - 6)
    assert decode_state(encode_state(state)) == state
    assert encode_state(state)[0] == STATE_VERSION


@given(states)
@settings(max_examples=30, deadline=None)
def test_a_version_3_state_reads_as_never_published(state: CustomerState) -> None:
    """A store written before `customer-tiers`: everything but the fingerprint, which a
    version 3 header does not have (its record goes out at the next tiering)."""
    data = encode_state(state)
    (size,) = struct.unpack_from("<I", data, 1)
    body = lz4.block.decompress(data[5:], uncompressed_size=size)
    *fields, _ = STATE_HEADER.unpack_from(body)
    flags = fields[0] & ~STATE_FLAG["published"]
    v3_body = STATE_HEADER_V3.pack(flags, *fields[1:]) + body[STATE_HEADER.size :]
    compressed = lz4.block.compress(v3_body, store_size=False)
    v3 = bytes([3]) + struct.pack("<I", len(v3_body)) + compressed
    old = decode_state(v3)
    state.published = None
    assert old == state
    assert decode_state(encode_state(old)) == old


def test_id_memory_keeps_arrival_order() -> None:
    state = CustomerState("C1", 0, 0, streams={"call": StreamMemory(1, 0, {5: 3, 1: 2, 9: 1})})
    assert list(decode_state(encode_state(state)).streams["call"].seen) == [5, 1, 9]


def v2(body: bytes) -> bytes:
    return (
        bytes([STATE_VERSION])
        + struct.pack("<I", len(body))
        + lz4.block.compress(body, store_size=False)
    )


def body_of(state: CustomerState) -> bytes:
    data = encode_state(state)
    (size,) = struct.unpack_from("<I", data, 1)
    return bytes(lz4.block.decompress(data[5:], uncompressed_size=size))


GOOD = body_of(
    CustomerState("C1", 0, 0, streams={"call": StreamMemory(1, 0, {5: 3})}, days={3: [1] * FIELDS})
)


def corrupt_flags(body: bytes) -> bytes:
    return struct.pack("<H", 0x8000) + body[2:]


def unsorted_days(body: bytes) -> bytes:
    good = body_of(CustomerState("C1", 0, 0, days={3: [1] * FIELDS, 4: [2] * FIELDS}))
    at = STATE_HEADER.size + 2  # after the id "C1": the two days
    return good[:at] + array("q", [4, 3]).tobytes() + good[at + 16 :]


UNREADABLE: list[tuple[str, bytes]] = [
    ("not JSON", b"{\x00\x01"),
    ("an unknown version", orjson.dumps({"v": 99})),
    ("an unknown binary version", b"\x07" + GOOD),
    ("a missing field", orjson.dumps({"v": 1, "customer_id": "C1"})),
    (
        "a corrupt id memory",
        orjson.dumps({**V1_STATE, "streams": {"call": [0, 0, "@@@"]}}),
    ),
    ("not LZ4", bytes([STATE_VERSION]) + struct.pack("<I", 40) + b"\xff\x01\x02"),
    ("an implausible size", bytes([STATE_VERSION]) + struct.pack("<I", 2**31) + b"\x00"),
    ("a size larger than the body", v2(GOOD)[:1] + struct.pack("<I", len(GOOD) + 1) + v2(GOOD)[5:]),
    ("truncated", v2(GOOD[:-9])),
    ("trailing bytes", v2(GOOD + b"\x00")),
    ("unknown flags", v2(corrupt_flags(GOOD))),
    ("bucket days out of order", v2(unsorted_days(GOOD))),
    ("empty", b""),
]


@pytest.mark.parametrize(("why", "data"), UNREADABLE, ids=[c[0] for c in UNREADABLE])
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
