"""Poison input for the input topics, each message with the dead-letter reason it must get.

Hypothesis strategies: every generator builds one kind of damage on top of an otherwise
valid event, so the reason it must get follows from how it was made, not from the
decoder under test. `batches()` interleaves poison with valid events (and copies of
them) for a few customers; `edge_cases()` is a fixed list of the nastiest inputs.

The decoder checks, in order: no value, size, JSON, object, event type, topic, schema,
key, currency, time; then the state refuses late events. Each generator breaks exactly
one of them and keeps everything the earlier checks look at valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import strategies as st

from schemas.config import IngestSettings

#: input topic key -> the event type it carries
TOPIC_TYPES = {
    "calls": "call",
    "orders": "order",
    "tickets": "ticket",
    "contact_preferences": "contact_preference",
}
TOPICS = tuple(TOPIC_TYPES)
EVENT_TYPES = tuple(TOPIC_TYPES.values())
BASE = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MAX_EVENT_BYTES = IngestSettings().max_event_bytes

#: Kafka record timestamps a producer may set: epoch, far past and far beyond year 9999
RECORD_TIMESTAMPS_MS = (0, 1, 253_402_300_800_000, 10**18, 2**62)


@dataclass(frozen=True)
class Message:
    """One message for an input topic; `reason` None means a valid event."""

    topic: str
    key: bytes | None
    value: bytes | None
    reason: str | None
    why: str
    timestamp_ms: int | None = None
    body: dict[str, Any] | None = field(default=None, compare=False)  # a valid event's

    def __repr__(self) -> str:  # the payloads can be megabytes
        def short(data: bytes | None) -> str:
            if data is None:
                return "None"
            return repr(data[:60]) + (f"...({len(data)} bytes)" if len(data) > 60 else "")

        return (
            f"Message({self.topic}, key={short(self.key)}, value={short(self.value)}, "
            f"reason={self.reason}, why={self.why!r}, timestamp_ms={self.timestamp_ms})"
        )


def at(minutes: float) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


# -- valid events -------------------------------------------------------------------------
money = st.integers(0, 10**11).map(lambda cents: cents / 100)  # up to the 1e9 bound
seconds = st.integers(0, 7 * 86400) | st.floats(0, 7 * 86400, allow_nan=False)
categories = st.sampled_from(["login", "how_to", "billing", "faq", "outage", "x" * 128, "é\x00"])


def _optional(draw: st.DrawFn, body: dict[str, Any], name: str, values: Any) -> None:
    if draw(st.booleans()):
        body[name] = draw(values)


@st.composite
def valid_body(draw: st.DrawFn, event_type: str, customer: str, event_id: str, when: str) -> Any:
    """A valid event: required fields, and a random choice of the optional ones."""
    body: dict[str, Any] = {
        "event_type": event_type,
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": when,
    }
    if event_type == "call":
        body["channel"] = draw(st.sampled_from(["phone", "chat", "email", "video", "web"]))
        body["direction"] = draw(st.sampled_from(["inbound", "outbound"]))
        body["duration_seconds"] = draw(seconds)
        _optional(draw, body, "wrap_up_seconds", seconds)
        _optional(draw, body, "wait_seconds", seconds)
        _optional(draw, body, "cost", money)
        _optional(draw, body, "category", categories)
        _optional(draw, body, "is_basic", st.booleans())
        _optional(draw, body, "resolved", st.booleans())
        _optional(draw, body, "satisfaction", st.integers(1, 5))
        _optional(draw, body, "agent_id", st.sampled_from(["a1", "agent-ü"]))
    elif event_type == "order":
        body["kind"] = draw(st.sampled_from(["purchase", "refund", "service_fee", "subscription"]))
        body["amount"] = draw(money)
        body["currency"] = "EUR"
        _optional(
            draw,
            body,
            "items",
            st.lists(
                st.fixed_dictionaries(
                    {"sku": st.sampled_from(["ink", "paper"]), "quantity": st.integers(1, 10**6)},
                    optional={"consumption_days": st.integers(1, 3650)},
                ),
                max_size=3,
            ),
        )
    elif event_type == "ticket":
        body["ticket_id"] = draw(st.sampled_from(["T1", "T2"]))
        body["status"] = draw(st.sampled_from(["opened", "updated", "resolved", "reopened"]))
        _optional(draw, body, "handling_seconds", st.integers(0, 365 * 86400))
        _optional(draw, body, "category", categories)
        _optional(draw, body, "cost", money)
        _optional(draw, body, "satisfaction", st.integers(1, 5))
    else:
        body["do_not_call"] = draw(st.booleans())
    return body


# -- poison, one kind of damage each ------------------------------------------------------
def _valid(draw: st.DrawFn, topic: str, customer: str, n: int, when: str) -> dict[str, Any]:
    body: dict[str, Any] = draw(valid_body(TOPIC_TYPES[topic], customer, f"p{n}", when))
    return body


any_key = (
    st.none()
    | st.just(b"")
    | st.binary(min_size=1, max_size=64)
    | st.sampled_from([b"\xff\xfe", b"C\x00", "é".encode()])
    | st.integers(257, 2048).map(lambda n: b"k" * n)
)
#: text without lone surrogates (those cannot be written as UTF-8, so are invalid JSON)
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.sampled_from([2**200, -(2**200), 10**308])
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    _JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)


def _dumps(value: Any) -> bytes:
    """JSON as any producer might write it: the stdlib writes integers of any size."""
    return json.dumps(value).encode()


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


#: invalid JSON tokens where a number belongs
BAD_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1e999999", b"01", b".5"]
#: invalid UTF-8: lone continuation, overlong, truncated, surrogate, above U+10FFFF
BAD_UTF8 = [b"\x80", b"\xc0\xaf", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff\xfe"]
#: RFC 3339 times before `min_event_time` or far ahead of any clock, some outside UTC
OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59.999999999Z",
    "2099-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",
]
BAD_TIMES = [
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-03-02T10:00:00",
    "2026-03-02",
    "",
    "yesterday",
    1772445600,
    None,
]
#: field -> values a valid event of that type must refuse (wrong type, out of bounds)
WRONG_VALUES: dict[str, dict[str, list[Any]]] = {
    "*": {
        "event_id": ["", "x" * 257, 7, None, ["a"], "a\x00b"],
        "customer_id": ["", "x" * 257, 7, None, "a\nb"],
        "occurred_at": BAD_TIMES,
    },
    "call": {
        "channel": ["fax", "", 1, None],
        "direction": ["sideways", True],
        "duration_seconds": [-1, 7 * 86400 + 1, "300", None, True, 2**200, 1e300, [1]],
        "wait_seconds": [-0.5, "x", 2**200],
        "satisfaction": [0, 6, 3.5, "5", True],
        "cost": [-0.01, 1e9 + 1, "1", 2**200],
        "is_basic": ["yes", 1],
        "category": ["", "x" * 129, 5],
    },
    "order": {
        "kind": ["gift", None],
        "amount": [-1, 1.5e9, "100", 2**200, 1e300],
        "currency": ["eur", "EURO", "", 978],
        "items": [
            "ink",
            [{"sku": "a", "quantity": 0}],
            [{"sku": "a"}],
            [{"sku": "a", "quantity": 1, "consumption_days": 0}],
            [{"sku": "a", "quantity": 1, "colour": "red"}],
            [{"sku": "a", "quantity": 1}] * 1001,
            [None],
        ],
    },
    "ticket": {
        "ticket_id": ["", 5],
        "status": ["pending", None],
        "handling_seconds": [-1, 365 * 86400 + 1, "x"],
        "channel": ["fax"],
        "satisfaction": [9],
        "cost": [-3],
    },
    "contact_preference": {"do_not_call": ["yes", 1, None, 0]},
}
REQUIRED = {
    "call": ["channel", "direction", "duration_seconds"],
    "order": ["kind", "amount", "currency"],
    "ticket": ["ticket_id", "status"],
    "contact_preference": ["do_not_call"],
}


@st.composite
def empty(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    value = draw(st.sampled_from([None, b""]))
    key = draw(any_key)
    if topic == "contact_preferences" and value is None and key:
        value = b""  # a keyed tombstone there deletes a preference record: not bad input
    return Message(topic, key, value, "empty_payload", "no value (a tombstone)")


@st.composite
def too_large(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    customer = draw(st.sampled_from(customers))
    size = draw(st.integers(MAX_EVENT_BYTES + 1, 2_100_000))
    shape = draw(st.sampled_from(["padded event", "long string", "raw bytes"]))
    body = _valid(draw, topic, customer, n, when)
    if shape == "padded event":
        value = orjson.dumps(body) + b" " * size
    elif shape == "long string":
        value = orjson.dumps({**body, "category": "x" * size})
    else:
        value = b"\xff" * size
    return Message(topic, customer.encode(), value, "payload_too_large", f"{shape} of {size}")


@st.composite
def invalid_json(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    customer = draw(st.sampled_from(customers))
    body = _valid(draw, topic, customer, n, when)
    good = orjson.dumps(body)
    shape = draw(
        st.sampled_from(
            ["number", "utf-8", "truncated", "trailing", "deep", "deep field", "binary", "syntax"]
        )
    )
    if shape == "number":
        token = draw(st.sampled_from(BAD_NUMBERS))
        value = orjson.dumps({**body, "cost": "@@"}).replace(b'"@@"', token)
    elif shape == "utf-8":
        value = orjson.dumps({**body, "event_id": "@@"}).replace(
            b"@@", draw(st.sampled_from(BAD_UTF8))
        )
    elif shape == "truncated":
        value = good[: draw(st.integers(1, len(good) - 1))]
    elif shape == "trailing":
        value = good + draw(st.sampled_from([b"x", b"{}", b",", b"\x00", b"}"]))
    elif shape == "deep":  # orjson refuses more than 1024 levels
        value = _nested(draw(st.integers(1025, 10_000)))
    elif shape == "deep field":
        value = orjson.dumps({**body, "extra": "@@"}).replace(
            b'"@@"', _nested(draw(st.integers(1024, 10_000)))
        )
    elif shape == "binary":
        value = b"\xff" + draw(st.binary(max_size=200))
    else:
        value = draw(st.sampled_from([b"{'event_type': 'call'}", b'{event_type: "call"}', b"{,}"]))
    return Message(topic, customer.encode(), value, "invalid_json", shape)


@st.composite
def not_an_object(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return Message(topic, draw(any_key), _dumps(value), "not_an_object", "JSON, not an object")


@st.composite
def unknown_type(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    customer = draw(st.sampled_from(customers))
    body = _valid(draw, topic, customer, n, when)
    shape = draw(st.sampled_from(["missing", "other", "text"]))
    if shape == "missing":
        del body["event_type"]
    elif shape == "other":
        body["event_type"] = draw(
            st.sampled_from([None, 7, True, ["call"], {"call": 1}, "Call", "call ", "order\x00"])
        )
    else:
        body["event_type"] = draw(text.filter(lambda t: t not in EVENT_TYPES))
    return Message(topic, customer.encode(), orjson.dumps(body), "unknown_event_type", shape)


@st.composite
def wrong_topic(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    customer = draw(st.sampled_from(customers))
    other = draw(st.sampled_from([t for t in TOPICS if t != topic]))
    body = _valid(draw, other, customer, n, when)
    return Message(topic, customer.encode(), orjson.dumps(body), "wrong_topic", f"from {other}")


@st.composite
def schema_violation(
    draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str
) -> Message:
    event_type = TOPIC_TYPES[topic]
    customer = draw(st.sampled_from(customers))
    body = _valid(draw, topic, customer, n, when)
    shape = draw(st.sampled_from(["missing", "wrong value", "unknown field", "long text"]))
    if shape == "missing":
        name = draw(
            st.sampled_from(["event_id", "customer_id", "occurred_at", *REQUIRED[event_type]])
        )
        del body[name]
    elif shape == "wrong value":
        wrong = {**WRONG_VALUES["*"], **WRONG_VALUES[event_type]}
        name = draw(st.sampled_from(sorted(wrong)))
        body[name] = draw(st.sampled_from(wrong[name]))
    elif shape == "unknown field":
        name = draw(st.sampled_from(["extra", "customerId", "Amount", ""]))
        if draw(st.booleans()):
            body[name] = draw(json_values)
        else:  # nested as deep as the JSON parser allows
            body[name] = "@@"
            depth = draw(st.integers(1, 1022))
            value = _dumps(body).replace(b'"@@"', _nested(depth))
            return Message(topic, customer.encode(), value, "schema_violation", f"depth {depth}")
    else:  # long, but below max_event_bytes
        body["agent_id" if event_type == "call" else "customer_id"] = "x" * draw(
            st.integers(257, 200_000)
        )
    return Message(topic, customer.encode(), _dumps(body), "schema_violation", shape)


@st.composite
def key_mismatch(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    customer = draw(st.sampled_from(customers))
    body = _valid(draw, topic, customer, n, when)
    key = draw(
        st.sampled_from([None, b"", customer.encode() + b" ", b"\xff" + customer.encode()])
        | st.sampled_from(customers).map(lambda c: c.encode() + b"-other")
    )
    return Message(topic, key, orjson.dumps(body), "key_mismatch", f"key {key!r}")


@st.composite
def out_of_range(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    customer = draw(st.sampled_from(customers))
    moment = draw(st.sampled_from(OUT_OF_RANGE_TIMES))
    body = _valid(draw, topic, customer, n, moment)
    return Message(topic, customer.encode(), orjson.dumps(body), "timestamp_out_of_range", moment)


@st.composite
def currency(draw: st.DrawFn, topic: str, customers: list[str], n: int, when: str) -> Message:
    customer = draw(st.sampled_from(customers))
    body = {
        **_valid(draw, topic, customer, n, when),
        "currency": draw(st.sampled_from(["USD", "GBP", "JPY"])),
    }
    return Message(topic, customer.encode(), orjson.dumps(body), "currency_mismatch", "currency")


Generator = Callable[[str, list[str], int, str], st.SearchStrategy[Message]]
GENERATORS: list[Generator] = [
    empty,
    too_large,
    invalid_json,
    not_an_object,
    unknown_type,
    wrong_topic,
    schema_violation,
    key_mismatch,
    out_of_range,
]


@st.composite
def poison(draw: st.DrawFn, customers: list[str], n: int, when: str) -> Message:
    topic = draw(st.sampled_from(TOPICS))
    generators = [*GENERATORS, currency] if topic == "orders" else GENERATORS
    generator = draw(st.sampled_from(generators))
    message: Message = draw(generator(topic, customers, n, when))
    return message


@st.composite
def valid(draw: st.DrawFn, customers: list[str], n: int, when: str) -> Message:
    topic = draw(st.sampled_from(TOPICS))
    customer = draw(st.sampled_from(customers))
    body = draw(valid_body(TOPIC_TYPES[topic], customer, f"v{n}", when))
    return Message(topic, customer.encode(), orjson.dumps(body), None, "valid", body=body)


@st.composite
def batches(draw: st.DrawFn, prefix: str, size: tuple[int, int] = (20, 60)) -> list[Message]:
    """Poison interleaved with valid events and exact copies of them, for a few customers
    named `prefix`-..., all dated within an hour (so no valid event is late)."""
    customers = [f"{prefix}-{i}" for i in range(draw(st.integers(2, 8)))]
    customers.append(f"{prefix}-" + draw(st.sampled_from(["é" * 100, "客户", "x" * 200])))
    messages: list[Message] = []
    sent: list[Message] = []
    for n in range(draw(st.integers(*size))):
        when = at(n)
        kind = draw(st.sampled_from(["valid", "valid", "poison", "poison", "poison", "copy"]))
        if kind == "poison":
            message = draw(poison(customers, n, when))
        elif kind == "copy" and sent:
            message = draw(st.sampled_from(sent))
        else:
            message = draw(valid(customers, n, when))
            sent.append(message)
        stamp = draw(st.none() | st.none() | st.sampled_from(RECORD_TIMESTAMPS_MS))
        messages.append(kafka_accepts(_stamped(message, stamp, f"{prefix}/{n}")))
    return messages


def _stamped(message: Message, stamp: int | None, where: str) -> Message:
    return Message(
        message.topic,
        message.key,
        message.value,
        message.reason,
        f"{where}: {message.why}",
        stamp,
        message.body,
    )


#: input topics that are compacted (agents/topics.py COMPACTED), by topic key
COMPACTED_TOPICS = frozenset({"contact_preferences"})


def kafka_accepts(message: Message) -> Message:
    """The message as Apache Kafka takes it: a compacted topic refuses a record without a
    key (it keeps the latest value per key), so there the key is empty instead of absent;
    what vipstream sees is the same kind of poison (an unusable key)."""
    if message.topic in COMPACTED_TOPICS and message.key is None:
        return replace(message, key=b"")
    return message


def edge_cases(prefix: str) -> list[Message]:
    """The nastiest inputs, written out, on every input topic; with valid events among
    them (some at the bounds of what is valid) that must be applied."""
    c1, c2, wide = f"{prefix}-1", f"{prefix}-2", f"{prefix}-" + "é" * 200
    k1 = c1.encode()
    call = {
        "event_type": "call",
        "event_id": "e-call",
        "customer_id": c1,
        "occurred_at": at(0),
        "channel": "phone",
        "direction": "inbound",
        "duration_seconds": 300,
    }
    order = {
        "event_type": "order",
        "event_id": "e-order",
        "customer_id": c1,
        "occurred_at": at(1),
        "kind": "purchase",
        "amount": 10.0,
        "currency": "EUR",
    }
    ticket = {
        "event_type": "ticket",
        "event_id": "e-ticket",
        "customer_id": c1,
        "occurred_at": at(2),
        "ticket_id": "T1",
        "status": "opened",
    }
    preference = {
        "event_type": "contact_preference",
        "event_id": "e-pref",
        "customer_id": c1,
        "occurred_at": at(3),
        "do_not_call": True,
    }
    bodies = {"calls": call, "orders": order, "tickets": ticket, "contact_preferences": preference}

    def ok(topic: str, body: dict[str, Any], key: bytes | None = k1, **more: Any) -> Message:
        return Message(topic, key, orjson.dumps(body), None, f"valid: {body['event_id']}", **more)

    def bad(topic: str, value: bytes | None, reason: str, why: str, **more: Any) -> Message:
        return Message(topic, more.pop("key", k1), value, reason, why, **more)

    messages = []
    for topic, body in bodies.items():
        other = bodies["orders" if topic != "orders" else "calls"]
        if topic != "contact_preferences":  # there, it deletes a preference record
            messages.append(bad(topic, None, "empty_payload", "tombstone"))
        messages += [
            bad(topic, None, "empty_payload", "tombstone, no key", key=None),
            bad(topic, b"", "empty_payload", "empty value"),
            bad(topic, _nested(10_000), "invalid_json", "10,000 levels of arrays"),
            bad(topic, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "invalid_json", "10,000 objects"),
            bad(
                topic,
                orjson.dumps({**body, "x": "@@"}).replace(b'"@@"', _nested(1000)),
                "schema_violation",
                "1,000 levels in an unknown field",
            ),
            bad(
                topic,
                orjson.dumps({**body, "category": "x" * 1_000_000}),
                "payload_too_large",
                "a 1 MB string",
            ),
            bad(topic, b" " * (2 * 1024 * 1024), "payload_too_large", "2 MB, above fetch sizes"),
            bad(topic, b"\xff\xfe\xfd", "invalid_json", "invalid UTF-8"),
            bad(topic, orjson.dumps(body)[:-1], "invalid_json", "truncated"),
            bad(topic, b"NaN", "invalid_json", "NaN"),
            bad(topic, str(2**200).encode(), "not_an_object", "2**200"),
            bad(topic, b"[]", "not_an_object", "an array"),
            bad(
                topic, orjson.dumps({**body, "event_type": "complaint"}), "unknown_event_type", "?"
            ),
            bad(topic, orjson.dumps({}), "unknown_event_type", "an empty object"),
            bad(topic, orjson.dumps(other), "wrong_topic", "another topic's event"),
            bad(
                topic,
                orjson.dumps({k: v for k, v in body.items() if k != "occurred_at"}),
                "schema_violation",
                "occurred_at missing",
            ),
            bad(topic, orjson.dumps(body), "key_mismatch", "null key", key=None),
            bad(topic, orjson.dumps(body), "key_mismatch", "another key", key=c2.encode()),
            bad(
                topic,
                orjson.dumps({**body, "occurred_at": "2099-01-01T00:00:00Z"}),
                "timestamp_out_of_range",
                "far future",
            ),
            bad(
                topic,
                orjson.dumps({**body, "occurred_at": "1999-12-31T23:59:59Z"}),
                "timestamp_out_of_range",
                "before min_event_time",
            ),
            bad(
                topic,
                orjson.dumps({**body, "occurred_at": "9999-12-31T23:59:59-23:59"}),
                "timestamp_out_of_range",
                "year 10000 in UTC",
            ),
            bad(topic, b"[1]", "not_an_object", "record timestamp 10**18", timestamp_ms=10**18),
            bad(
                topic,
                b"\xff",
                "invalid_json",
                "a 1.5 MB unreadable key",
                key=b"\xff" * 1_500_000,
            ),
            ok(topic, body, timestamp_ms=2**62),  # valid, whatever the record timestamp
        ]
    big_order = {
        **order,
        "event_id": "e-big",
        "amount": 1e9,
        "items": [{"sku": f"s{i}", "quantity": 1e6, "consumption_days": 3650} for i in range(1000)],
    }
    long_call = {**call, "event_id": "e-long", "duration_seconds": 7 * 86400, "wrap_up_seconds": 1}
    messages += [
        bad(
            "orders",
            orjson.dumps({**order, "amount": "@@"}).replace(b'"@@"', b"1e400"),
            "invalid_json",
            "1e400",
        ),
        bad(
            "orders",
            orjson.dumps({**order, "amount": "@@"}).replace(b'"@@"', b"Infinity"),
            "invalid_json",
            "Infinity",
        ),
        bad("orders", _dumps({**order, "amount": 2**64}), "schema_violation", "2**64"),
        bad("orders", orjson.dumps({**order, "currency": "USD"}), "currency_mismatch", "USD"),
        ok("orders", big_order),
        ok("calls", long_call),
        ok("calls", {**call, "event_id": "e-wide", "customer_id": wide}, key=wide.encode()),
        ok("orders", order),  # a copy of the first order: a duplicate, not a dead letter
        # late: two days after the first order, then one dated before it
        ok("orders", {**order, "event_id": "e-later", "occurred_at": at(2 * 1440)}),
        bad("orders", orjson.dumps({**order, "event_id": "e-late"}), "late_event", "late"),
    ]
    return [kafka_accepts(m) for m in messages]
