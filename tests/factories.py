"""Event factories for tests: a valid event of each type, any field overridable."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

_ids = itertools.count(1)

BASE_TIME = "2026-03-02T10:00:00Z"


def _common(event_type: str, overrides: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_type": event_type,
        "event_id": f"ev-{next(_ids)}",
        "customer_id": "C1",
        "occurred_at": BASE_TIME,
    }
    body.update(overrides)
    return body


def call(**overrides: Any) -> dict[str, Any]:
    fields = {"channel": "phone", "direction": "inbound", "duration_seconds": 300}
    return _common("call", {**fields, **overrides})


def order(**overrides: Any) -> dict[str, Any]:
    fields = {"kind": "purchase", "amount": 100.0, "currency": "EUR"}
    return _common("order", {**fields, **overrides})


def ticket(**overrides: Any) -> dict[str, Any]:
    fields = {"ticket_id": "T1", "status": "opened"}
    return _common("ticket", {**fields, **overrides})


def preference(**overrides: Any) -> dict[str, Any]:
    return _common("contact_preference", {"do_not_call": True, **overrides})


FACTORIES = {"call": call, "order": order, "ticket": ticket, "contact_preference": preference}


def without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in keys}


def raw(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)
