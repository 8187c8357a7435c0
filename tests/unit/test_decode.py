"""decode_input: every message becomes an event or a reason; never an exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.config import IngestSettings
from schemas.inputs import InputEvent
from schemas.outputs import DEAD_LETTER_REASONS
from streams.decode import Rejected, decode_input
from streams.units import to_micros
from tests import factories as f

RULES = IngestSettings(max_event_bytes=4096)
NOW = to_micros(datetime(2026, 3, 3, tzinfo=UTC))


def decode(
    value: bytes | None,
    key: bytes | None = b"C1",
    expected: str = "call",
    rules: IngestSettings = RULES,
) -> InputEvent | Rejected:
    return decode_input(
        value, key, expected_event_type=expected, topic="calls", rules=rules, now_micros=NOW
    )


CASES: list[tuple[str, bytes | None, bytes | None, str]] = [
    # (why, value, key, expected reason)
    ("a tombstone has no value", None, b"C1", "empty_payload"),
    ("an empty value", b"", b"C1", "empty_payload"),
    (
        "above max_event_bytes, refused unparsed",
        b"{" + b" " * 5000 + b"}",
        b"C1",
        "payload_too_large",
    ),
    ("truncated JSON", b'{"event_type": "call", "event_id"', b"C1", "invalid_json"),
    ("NaN is not JSON", b'{"event_type": "call", "x": NaN}', b"C1", "invalid_json"),
    ("1e400 overflows a double", b'{"event_type": "call", "x": 1e400}', b"C1", "invalid_json"),
    ("invalid UTF-8", b'{"event_type": "\xff"}', b"C1", "invalid_json"),
    ("a lone surrogate", b'{"event_type": "\xed\xa0\x80"}', b"C1", "invalid_json"),
    ("two documents", b'{"a": 1}{"b": 2}', b"C1", "invalid_json"),
    ("an array", b"[1, 2]", b"C1", "not_an_object"),
    ("a string", b'"call"', b"C1", "not_an_object"),
    ("null", b"null", b"C1", "not_an_object"),
    ("no event_type", f.raw(f.without(f.call(), "event_type")), b"C1", "unknown_event_type"),
    ("event_type not a string", f.raw(f.call(event_type=7)), b"C1", "unknown_event_type"),
    ("unknown event_type", f.raw(f.call(event_type="complaint")), b"C1", "unknown_event_type"),
    ("an order on the calls topic", f.raw(f.order()), b"C1", "wrong_topic"),
    ("missing field", f.raw(f.without(f.call(), "occurred_at")), b"C1", "schema_violation"),
    ("wrong type", f.raw(f.call(duration_seconds="long")), b"C1", "schema_violation"),
    ("no key", f.raw(f.call()), None, "key_mismatch"),
    ("key of another customer", f.raw(f.call()), b"C2", "key_mismatch"),
    (
        "before min_event_time",
        f.raw(f.call(occurred_at="1999-12-31T23:59:59Z")),
        b"C1",
        "timestamp_out_of_range",
    ),
    (
        "year 1 with a positive offset is in year 0 in UTC",
        f.raw(f.call(occurred_at="0001-01-01T00:00:00+23:59")),
        b"C1",
        "timestamp_out_of_range",
    ),
    (
        "year 9999 with a negative offset is in year 10000 in UTC",
        f.raw(f.call(occurred_at="9999-12-31T23:59:59-23:59")),
        b"C1",
        "timestamp_out_of_range",
    ),
    (
        "two days ahead of the clock",
        f.raw(f.call(occurred_at="2026-03-05T00:00:01Z")),
        b"C1",
        "timestamp_out_of_range",
    ),
]


@pytest.mark.parametrize(("why", "value", "key", "reason"), CASES, ids=[c[0] for c in CASES])
def test_unusable_messages_get_a_reason(
    why: str, value: bytes | None, key: bytes | None, reason: str
) -> None:
    result = decode(value, key)
    assert isinstance(result, Rejected), why
    assert result.reason == reason
    assert result.reason in DEAD_LETTER_REASONS
    assert result.detail


def test_currency_mismatch() -> None:
    result = decode(f.raw(f.order(currency="USD")), expected="order")
    assert isinstance(result, Rejected)
    assert result.reason == "currency_mismatch"
    assert "USD" in result.detail
    assert "EUR" in result.detail


def test_schema_violation_detail_names_nested_paths() -> None:
    body = f.order(items=[{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": -1}])
    result = decode(f.raw(body), expected="order")
    assert isinstance(result, Rejected)
    assert "items[1].quantity" in result.detail


def test_rejection_names_the_customer_when_it_can() -> None:
    by_key = decode(b"[]", key=b"C9")
    assert isinstance(by_key, Rejected)
    assert by_key.customer_id == "C9"
    from_value = decode(f.raw(f.call(duration_seconds=-1, customer_id="C5")), key=None)
    assert isinstance(from_value, Rejected)
    assert from_value.customer_id == "C5"
    unreadable = decode(b"[]", key=b"\xff\xfe")
    assert isinstance(unreadable, Rejected)
    assert unreadable.customer_id is None


def test_a_valid_event_passes() -> None:
    event = decode(f.raw(f.call(customer_id="C1")))
    assert isinstance(event, InputEvent)
    assert event.customer_id == "C1"


def test_a_day_of_clock_skew_is_tolerated() -> None:
    skewed = f.call(occurred_at="2026-03-03T23:00:00Z")  # 23 h ahead of NOW
    assert isinstance(decode(f.raw(skewed)), InputEvent)
    strict = IngestSettings(max_future_skew_seconds=3600)
    assert isinstance(decode(f.raw(skewed), rules=strict), Rejected)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "event_type",
        "event_id",
        "customer_id",
        "occurred_at",
        "channel",
        "direction",
        "duration_seconds",
        "kind",
        "amount",
        "currency",
        "items",
        "ticket_id",
        "status",
        "do_not_call",
        "satisfaction",
        "cost",
        "is_basic",
    ]
)
event_like = st.dictionaries(field_names, json_values, max_size=12)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.binary(max_size=600),
    key=st.none() | st.binary(max_size=20),
    expected=st.sampled_from(["call", "order", "ticket", "contact_preference"]),
)
def test_arbitrary_bytes_give_an_event_or_a_reason(
    value: bytes, key: bytes | None, expected: str
) -> None:
    result = decode(value, key, expected)
    assert isinstance(result, InputEvent | Rejected)
    if isinstance(result, Rejected):
        assert result.reason in DEAD_LETTER_REASONS


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=event_like,
    use_valid_base=st.booleans(),
    event_type=st.sampled_from(["call", "order", "ticket", "contact_preference"]),
)
def test_arbitrary_json_gives_an_event_or_a_reason(
    body: dict[str, Any], use_valid_base: bool, event_type: str
) -> None:
    if use_valid_base:  # mutate a valid event, so deep validation paths are reached too
        body = {**f.FACTORIES[event_type](), **body}
    # the stdlib encoder also writes >64-bit integers and lone surrogates (invalid UTF-8)
    value = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    customer = body.get("customer_id")
    key = customer.encode("utf-8", "surrogatepass") if isinstance(customer, str) else None
    result = decode(value, key, event_type)
    assert isinstance(result, InputEvent | Rejected)
    if isinstance(result, Rejected):
        assert result.reason in DEAD_LETTER_REASONS
        assert result.detail


offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
# the edges of the calendar are where UTC cannot hold a time with an offset
years = st.sampled_from([1, 1999, 2000, 9999]) | st.integers(1, 9999)
moments = st.builds(
    datetime,
    year=years,
    month=st.integers(1, 12),
    day=st.integers(1, 28),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    second=st.integers(0, 59),
    microsecond=st.integers(0, 999_999),
    tzinfo=offsets,
)


@settings(max_examples=300)
@given(moment=moments)
def test_any_rfc3339_time_gives_an_event_or_a_reason(moment: datetime) -> None:
    """Years 1 to 9999 with any offset, including times UTC cannot hold."""
    result = decode(f.raw(f.call(occurred_at=moment.isoformat())))
    if isinstance(result, Rejected):
        assert result.reason == "timestamp_out_of_range"
        assert result.detail
    else:
        assert to_micros(result.occurred_at) == to_micros(moment)
