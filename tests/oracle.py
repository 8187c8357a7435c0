"""An independent computation of customer figures from a JSONL history, for comparisons.

Written from CONTRACT.md section 1, not from streams/: the contract's cost formula and
revenue signs, duplicates dropped by event_id, money rounded to micro-units per event.
Validity is judged by the published schemas (the thing being compared is the arithmetic).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.config import CostSettings
from schemas.inputs import INPUT_MODELS

SIGN = {"purchase": 1, "service_fee": 1, "subscription": 1, "refund": -1}


@dataclass
class Expected:
    revenue: int = 0  # micro-units
    service_cost: int = 0
    contacts: int = 0
    first_seen: datetime | None = None
    last_order: datetime | None = None
    #: UTC day number -> [revenue, service cost] of that day
    days: dict[int, list[int]] = field(default_factory=dict)
    latest: datetime | None = None

    def window(self, end_day: int, width: int) -> tuple[int, int]:
        """(revenue, service cost) over days end_day - width + 1 .. end_day."""
        revenue = cost = 0
        for day, (r, c) in self.days.items():
            if end_day - width < day <= end_day:
                revenue += r
                cost += c
        return revenue, cost

    def first_day(self) -> int:
        assert self.first_seen is not None
        return day_number(self.first_seen)


def day_number(moment: datetime) -> int:
    return int(moment.timestamp() // 86400)


def ratio(revenue: int, cost: int, floor: float = 1.0) -> float:
    return (revenue - cost) / 1_000_000 / max(cost / 1_000_000, floor)


def micro(value: float) -> int:
    return round(value * 1_000_000)


def expected_figures(
    lines: Iterable[bytes], rates: CostSettings | None = None, currency: str = "EUR"
) -> tuple[dict[str, Expected], int]:
    """(customer -> figures, number of usable distinct events)."""
    rates = rates or CostSettings()
    seen: set[tuple[str, str]] = set()
    out: dict[str, Expected] = {}
    for line in lines:
        try:
            body = orjson.loads(line)
            model = INPUT_MODELS[body["event_type"]]
            event = model.model_validate(body)
        except (orjson.JSONDecodeError, TypeError, KeyError, ValidationError):
            continue
        if body["event_type"] == "order" and body["currency"] != currency:
            continue
        identity = (body["customer_id"], body["event_id"])
        if identity in seen:
            continue
        seen.add(identity)
        figures = out.setdefault(body["customer_id"], Expected())
        when = event.occurred_at
        if figures.first_seen is None or when < figures.first_seen:
            figures.first_seen = when
        revenue, cost = figures.revenue, figures.service_cost
        _apply(figures, body, when, rates)
        day = figures.days.setdefault(day_number(when), [0, 0])
        day[0] += figures.revenue - revenue
        day[1] += figures.service_cost - cost
        if figures.latest is None or when > figures.latest:
            figures.latest = when
    return out, len(seen)


def figures_of_file(path: Path) -> tuple[dict[str, Expected], int]:
    return expected_figures(path.read_bytes().splitlines())


def _apply(figures: Expected, body: dict[str, Any], when: datetime, rates: CostSettings) -> None:
    kind = body["event_type"]
    if kind == "order":
        figures.revenue += SIGN[body["kind"]] * micro(body["amount"])
        buying = body["kind"] in ("purchase", "subscription")
        if buying and (figures.last_order is None or when > figures.last_order):
            figures.last_order = when
    elif kind == "call":
        figures.contacts += 1
        if body.get("cost") is not None:
            figures.service_cost += micro(body["cost"])
        else:
            minutes = body["duration_seconds"] / 60
            labour_hours = (body["duration_seconds"] + body.get("wrap_up_seconds", 0)) / 3600
            figures.service_cost += micro(
                minutes * rates.channel_rate_per_minute[body["channel"]]
                + labour_hours * rates.labour_rate_per_hour
                + rates.overhead_per_contact
            )
    elif kind == "ticket":
        new_contact = body["status"] in ("opened", "reopened")
        figures.contacts += int(new_contact)
        if body.get("cost") is not None:
            figures.service_cost += micro(body["cost"])
        else:
            figures.service_cost += micro(
                body.get("handling_seconds", 0) / 3600 * rates.labour_rate_per_hour
                + (rates.overhead_per_contact if new_contact else 0.0)
            )


def check_figures(
    expected: dict[str, Expected],
    customers: dict[str, tuple[int, dict[str, Any]]],
    window_days: int,
) -> None:
    """Every customer's windowed (as of the window end it reports) and lifetime figures,
    as `/customers/{id}` answered them, equal the independent computation exactly."""
    wrong = []
    for customer, figures in expected.items():
        status, body = customers[customer]
        assert status == 200, (customer, body)
        end = day_number(datetime.fromisoformat(body["window_end"].replace("Z", "+00:00"))) - 1
        revenue, cost = figures.window(end, window_days)
        got = (
            round(body["revenue"] * 1e6),
            round(body["service_cost"] * 1e6),
            round(body["lifetime_revenue"] * 1e6),
            round(body["lifetime_service_cost"] * 1e6),
        )
        want = (revenue, cost, figures.revenue, figures.service_cost)
        if got != want:
            wrong.append((customer, got, want))
    assert not wrong, f"{len(wrong)} customers' figures differ, e.g. {wrong[:3]}"


#: a churn task as the oracle names it: (customer, stage, last purchase day, day it is due)
ChurnTask = tuple[str, int, int, int]


def expected_churn_tasks(
    lines: Iterable[bytes],
    *,
    through_day: int,
    first_days: int = 90,
    second_days: int = 180,
    currency: str = "EUR",
) -> tuple[set[ChurnTask], set[ChurnTask]]:
    """The `churn_risk` tasks of every day closed up to `through_day` (CONTRACT.md: no
    purchase or subscription for `first_days`, a second stage at `second_days`, each once
    per last purchase), as (certain, possible): a customer whose opt-out is dated after
    the day may or may not be suppressed (the worker honours an opt-out the moment it
    reads it), one dated on or before it certainly is."""
    purchases: dict[str, set[int]] = {}
    preferences: dict[str, list[tuple[datetime, bool]]] = {}
    seen: set[tuple[str, str]] = set()
    for line in lines:
        try:
            body = orjson.loads(line)
            event = INPUT_MODELS[body["event_type"]].model_validate(body)
        except (orjson.JSONDecodeError, TypeError, KeyError, ValidationError):
            continue
        identity = (body["customer_id"], body["event_id"])
        if identity in seen:
            continue
        seen.add(identity)
        customer = body["customer_id"]
        if body["event_type"] == "contact_preference":
            preferences.setdefault(customer, []).append((event.occurred_at, body["do_not_call"]))
        elif (
            body["event_type"] == "order"
            and body["kind"] in ("purchase", "subscription")
            and body["currency"] == currency
        ):
            purchases.setdefault(customer, set()).add(day_number(event.occurred_at))
    certain: set[ChurnTask] = set()
    possible: set[ChurnTask] = set()
    for customer, days in purchases.items():
        ordered = sorted(days)
        for last, following in zip(ordered, [*ordered[1:], None], strict=True):
            for stage, silent in ((1, first_days), (2, second_days)):
                due = last + silent
                if due > through_day or (following is not None and following <= due):
                    continue
                task = (customer, stage, last, due)
                known = _opted_out_by(preferences.get(customer, []), (due + 1) * 86400)
                if known is None:
                    possible.add(task)
                elif not known:
                    certain.add(task)
    return certain, possible


def _opted_out_by(preferences: list[tuple[datetime, bool]], end_seconds: int) -> bool | None:
    """Whether the customer is opted out once everything up to `end_seconds` is read:
    False/True when no later preference could change what the worker sees, None when
    one dated later may already have been read."""
    if any(at.timestamp() >= end_seconds for at, _ in preferences):
        return None
    latest = max(preferences, default=None, key=lambda p: (p[0], p[1]))
    return bool(latest and latest[1])
