"""The engine with no broker (agents/engine/harness.py): whole scenarios as tables, a
list of events in and the outputs out, through the worker's own event path and value
engine."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.engine.harness import run
from agents.settings import Settings, load_settings
from tests.integration.test_care import DAY0, SCENARIO_ENV, History
from tests.integration.test_day_close_outputs import EXPECTED_ON_E, E, closing_event, scenario


def scenario_settings(**extra: Any) -> Settings:
    """test_care's absolute tiers (SCENARIO_ENV), as settings."""
    tiering = {
        "mode": "absolute",
        "absolute_vip": 50,
        "absolute_gold": 10,
        "absolute_silver": 1,
        "absolute_margin_relative": 0,
        "min_dwell_days": 0,
    }
    care = {"churn_rule": "stages"}
    assert {k.removeprefix("VIPSTREAM_").lower() for k in SCENARIO_ENV} == {
        *(f"tiering__{k}" for k in tiering),
        *(f"care__{k}" for k in care),
    }
    return load_settings({"app_id": "harness", "tiering": tiering, "care": care, **extra})


def described(topic: str, event: dict[str, Any]) -> tuple[str, str, str, int]:
    day = _day(event["as_of"]) - 1
    if topic == "tier_changes":
        detail = f"{event['previous_tier']}->{event['tier']}"
    elif topic == "basic_question_spikes":
        detail = str(event["recent_count"])
    else:
        detail = event["kind"]
        if detail == "churn_risk":
            detail += f":{event['context']['stage']}"
    return event["customer_id"], event["event_type"], detail, day


def _day(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - DAY0.replace(hour=0)).days


def events_of(history: History) -> list[tuple[str, bytes]]:
    topic_of = {
        "call": "calls",
        "order": "orders",
        "ticket": "tickets",
        "contact_preference": "contact_preferences",
    }
    ordered = sorted(history.lines, key=lambda line: line["occurred_at"])
    return [(topic_of[line["event_type"]], orjson.dumps(line)) for line in ordered]


async def test_the_day_close_scenario_without_a_broker() -> None:
    """Given the history of tests/integration/test_day_close_outputs.py and the event
    that closes its last day E, When the engine plays them with no broker, Then days
    E - 1 and E emit exactly what the integration test expects of the live worker."""
    topic, _, value = closing_event(E + 2 + 0.5)
    outputs, _ = await run(scenario_settings(), [*events_of(scenario()), (topic, value)])
    got = {
        d
        for t in ("tier_changes", "basic_question_spikes", "care_tasks")
        for d in (described(t, e) for e in outputs.get(t, []))
        if d[3] > E - 2
    }
    assert got == EXPECTED_ON_E


ROWS = [
    # (why, events as (customer, day, kind, fields), the care tasks expected (customer, kind, day))
    (
        "a call rated 1 of 5 is followed up the day it happened",
        [("a", 40, "call", {"satisfaction": 1}), ("clock", 45, "call", {})],
        {("a", "satisfaction_followup", 40)},
    ),
    (
        "a customer who opted out gets no task",
        [
            ("a", 1, "preference", {"do_not_call": True}),
            ("a", 40, "call", {"satisfaction": 1}),
            ("clock", 45, "call", {}),
        ],
        set(),
    ),
    (
        "the same rating sent twice (one event id) is followed up once",
        [
            ("a", 40, "call", {"satisfaction": 2, "event_id": "same"}),
            ("a", 40, "call", {"satisfaction": 2, "event_id": "same"}),
            ("clock", 45, "call", {}),
        ],
        {("a", "satisfaction_followup", 40)},
    ),
    (
        "a purchase then 90 silent days: churn risk, stage 1, on day 90",
        [("a", 0, "order", {"amount": 20}), ("clock", 95, "call", {})],
        {("a", "churn_risk", 90)},
    ),
    (
        "a purchase on day 60 restarts the churn clock",
        [
            ("a", 0, "order", {"amount": 20}),
            ("a", 60, "order", {"amount": 20}),
            ("clock", 95, "call", {}),
        ],
        set(),
    ),
]


@pytest.mark.parametrize(("why", "rows", "expected"), ROWS, ids=[r[0] for r in ROWS])
async def test_care_scenarios(
    why: str,
    rows: list[tuple[str, float, str, dict[str, Any]]],
    expected: set[tuple[str, str, int]],
) -> None:
    h = History()
    for customer, day, kind, fields in rows:
        if kind == "call":
            h.call(customer, day, cost=0, **fields)
        elif kind == "order":
            h.order(customer, day, **fields)
        else:
            h.add("contact_preference", customer, day, **fields)
    outputs, _ = await run(scenario_settings(), events_of(h))
    got = {
        (e["customer_id"], e["kind"], _day(e["as_of"]) - 1)
        for e in outputs.get("care_tasks", [])
        if e["customer_id"] != "clock"
    }
    assert got == expected, why


def test_as_of_days_are_counted_from_day0() -> None:
    assert _day((DAY0 + timedelta(days=3)).isoformat()) == 3


async def test_a_day_with_more_tasks_than_the_budget_sends_the_most_valuable() -> None:
    """Twelve customers rate a call 1 on the same day; the budget for follow-ups is 5 a
    day: the five with the most revenue get one, the other seven are counted as
    suppressed `capacity`, and the next day's ratings have a budget of their own."""
    history = History()
    for i in range(12):
        history.order(f"c{i:02d}", 0, 100 + 50 * i)
        history.call(f"c{i:02d}", 40, satisfaction=1)
    history.call("late", 41, satisfaction=1)
    history.order("late", 41, 10)
    history.order("closer", 45, 1)  # closes day 41 and 40
    settings = scenario_settings(
        care={"churn_rule": "stages", "max_tasks_per_day": {"satisfaction_followup": 5}},
        kafka={"partitions": 1},
    )
    by_topic, harness = await run(settings, events_of(history))
    followups = [t for t in by_topic["care_tasks"] if t["kind"] == "satisfaction_followup"]
    days = {t["customer_id"]: _day(t["as_of"]) - 1 for t in followups}
    assert days == {f"c{i:02d}": 40 for i in range(7, 12)} | {"late": 41}
    suppressed = harness.metrics.registry.get_sample_value(
        "vipstream_care_tasks_suppressed_total",
        {"kind": "satisfaction_followup", "reason": "capacity"},
    )
    assert suppressed == 7
