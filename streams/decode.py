"""Bytes from an input topic -> a validated event, or the reason it cannot be used.

Never raises on input: every byte string maps to exactly one of the two outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.config import IngestSettings
from schemas.inputs import INPUT_MODELS, InputEvent, OrderEvent
from streams.units import MICROS_PER_SECOND, rfc3339, to_micros

_MAX_DETAIL = 1000
_JSON_KIND = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message cannot be used: a machine-readable `reason` and a readable `detail`."""

    reason: str
    detail: str
    customer_id: str | None = None


def decode_input(
    value: bytes | None,
    key: bytes | None,
    *,
    expected_event_type: str,
    topic: str,
    rules: IngestSettings,
    now_micros: int,
) -> InputEvent | Rejected:
    """Validate one message from the input topic that carries `expected_event_type` events.

    `now_micros` is the wall clock, used only to refuse events dated implausibly far in
    the future (see IngestSettings.max_future_skew_seconds).
    """
    key_customer = _customer_from_key(key)
    if not value:
        return Rejected("empty_payload", "the message has no value (a tombstone?)", key_customer)
    if len(value) > rules.max_event_bytes:
        return Rejected(
            "payload_too_large",
            f"{len(value)} bytes is above max_event_bytes={rules.max_event_bytes}",
            key_customer,
        )
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejected("invalid_json", _clip(str(exc)), key_customer)
    if not isinstance(obj, dict):
        kind = _JSON_KIND.get(type(obj), type(obj).__name__)
        return Rejected("not_an_object", f"expected a JSON object, got {kind}", key_customer)
    customer = key_customer or _customer_from_value(obj)
    event_type = obj.get("event_type")
    model = INPUT_MODELS.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        shown = "missing" if event_type is None else _clip(repr(event_type), 80)
        return Rejected(
            "unknown_event_type",
            f"event_type {shown}; expected one of {', '.join(sorted(INPUT_MODELS))}",
            customer,
        )
    if event_type != expected_event_type:
        return Rejected(
            "wrong_topic",
            f"a {event_type!r} event on topic {topic!r}, which carries {expected_event_type!r}",
            customer,
        )
    try:
        event = model.model_validate(obj)
    except ValidationError as exc:
        return Rejected("schema_violation", _describe(exc), customer)
    return _check_semantics(event, key, rules=rules, now_micros=now_micros)


def _check_semantics(
    event: InputEvent, key: bytes | None, *, rules: IngestSettings, now_micros: int
) -> InputEvent | Rejected:
    customer = event.customer_id
    if key is None:
        return Rejected("key_mismatch", "the message has no key; key it by customer_id", customer)
    if key != customer.encode():
        shown = _clip(key.decode("utf-8", "replace"), 80)
        return Rejected(
            "key_mismatch",
            f"key {shown!r} is not customer_id {customer!r}: the event is on the wrong partition",
            customer,
        )
    if isinstance(event, OrderEvent) and event.currency != rules.currency:
        return Rejected(
            "currency_mismatch",
            f"currency {event.currency} differs from the configured {rules.currency}",
            customer,
        )
    at = to_micros(event.occurred_at)
    if at < to_micros(rules.min_event_time):
        return Rejected(
            "timestamp_out_of_range",
            f"occurred_at {_shown_time(event, at)} is before min_event_time "
            f"{rfc3339(to_micros(rules.min_event_time))}",
            customer,
        )
    if at > now_micros + rules.max_future_skew_seconds * MICROS_PER_SECOND:
        return Rejected(
            "timestamp_out_of_range",
            f"occurred_at {_shown_time(event, at)} is more than "
            f"max_future_skew_seconds={rules.max_future_skew_seconds} ahead of the clock",
            customer,
        )
    return event


def _shown_time(event: InputEvent, at: int) -> str:
    """The event time in UTC; as written when UTC cannot hold it (0001-01-01T00:00:00+01:00
    is in year 0 in UTC, 9999-12-31T23:00:00-01:00 in year 10000)."""
    try:
        return rfc3339(at)
    except OverflowError:
        return event.occurred_at.isoformat()


def _describe(exc: ValidationError) -> str:
    """'path: message' for each error, paths like items[0].quantity."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ""
        for loc in error["loc"]:
            path += f"[{loc}]" if isinstance(loc, int) else (f".{loc}" if path else str(loc))
        parts.append(f"{path or '(event)'}: {error['msg']}")
    return _clip("; ".join(parts))


def _customer_from_key(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if _is_identifier(text) else None


def _customer_from_value(obj: dict[str, Any]) -> str | None:
    value = obj.get("customer_id")
    return value if isinstance(value, str) and _is_identifier(value) else None


def _is_identifier(text: str) -> bool:
    return 0 < len(text) <= 256 and all(ch >= " " and ch != "\x7f" for ch in text)


def _clip(text: str, limit: int = _MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
