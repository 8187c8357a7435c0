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
