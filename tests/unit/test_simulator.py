"""The simulator: seeded, in event-time order, valid, and realistic in the ways that matter."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from agents.tools.simulate_io import write_jsonl
from agents.tools.simulator import (
    BASIC_CATEGORIES,
    SimEvent,
    SimulationConfig,
    Simulator,
    jsonl_batches,
)
from agents.topics import INPUT_EVENT_TYPES
from schemas.config import IngestSettings
from schemas.export import all_schemas
from schemas.inputs import InputEvent
from streams.decode import Rejected, decode_input
from streams.units import to_micros

CONFIG = SimulationConfig(customers=400, days=365, seed=11, start=datetime(2025, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def events() -> list[SimEvent]:
    return list(Simulator(CONFIG))


def decoded(event: SimEvent) -> InputEvent | Rejected:
    return decode_input(
        event.value,
        event.key,
        expected_event_type=INPUT_EVENT_TYPES[event.topic],
        topic=event.topic,
        rules=IngestSettings(),
        now_micros=to_micros(datetime(2030, 1, 1, tzinfo=UTC)),
    )


def test_same_seed_same_bytes() -> None:
    small = SimulationConfig(customers=50, days=60, seed=3)
    first = [e.value for e in Simulator(small)]
    assert first == [e.value for e in Simulator(small)]
    assert first != [e.value for e in Simulator(SimulationConfig(customers=50, days=60, seed=4))]


def test_same_seed_same_file(tmp_path: Path) -> None:
    """The file a seed gives is byte-identical every time, and is exactly the events of
    the iterator (the file path formats a day at a time, without a SimEvent per event)."""
    config = SimulationConfig(customers=300, days=90, seed=21)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    count, _ = write_jsonl(Simulator(config), first)
    write_jsonl(Simulator(config), second)
    assert first.read_bytes() == second.read_bytes()
    values = [e.value for e in Simulator(config)]
    assert first.read_bytes() == b"".join(v + b"\n" for v in values)
    assert count == len(values) > 1000


def test_every_event_validates_against_its_json_schema(events: list[SimEvent]) -> None:
    schemas = all_schemas()
    validators = {
        t: jsonschema.Draft202012Validator(schemas[f"{t}.schema.json"])
        for t in ("call", "order", "ticket", "contact_preference")
    }
    for event in events[::7]:  # every seventh: validation is slow, and shapes repeat
        body = orjson.loads(event.value)
        validators[body["event_type"]].validate(body)


def test_events_come_in_event_time_order(events: list[SimEvent]) -> None:
    assert all(a.occurred_at <= b.occurred_at for a, b in itertools.pairwise(events))
    assert events[0].occurred_at >= CONFIG.start.timestamp()


def test_every_event_is_valid_and_keyed_by_customer(events: list[SimEvent]) -> None:
    for event in events:
        result = decoded(event)
        assert isinstance(result, InputEvent), result
        assert event.key == result.customer_id.encode()


def test_event_ids_are_unique(events: list[SimEvent]) -> None:
    ids = [orjson.loads(e.value)["event_id"] for e in events]
    assert len(ids) == len(set(ids))


def test_value_is_heavy_tailed(events: list[SimEvent]) -> None:
    revenue: Counter[str] = Counter()
    for e in events:
        body = orjson.loads(e.value)
        if body["event_type"] == "order" and body["kind"] == "purchase":
            revenue[body["customer_id"]] += body["amount"]
    ranked = sorted(revenue.values(), reverse=True)
    top_tenth = sum(ranked[: len(ranked) // 10])
    assert top_tenth / sum(ranked) > 0.3  # the top 10 % bring far more than 10 %


def test_weekends_are_quieter(events: list[SimEvent]) -> None:
    by_day: Counter[int] = Counter()
    for e in events:
        if e.topic == "calls":
            by_day[datetime.fromtimestamp(e.occurred_at, UTC).weekday()] += 1
    weekday = sum(by_day[d] for d in range(5)) / 5
    weekend = (by_day[5] + by_day[6]) / 2
    assert weekend < 0.6 * weekday


def test_a_share_of_contacts_are_basic_questions(events: list[SimEvent]) -> None:
    calls = [orjson.loads(e.value) for e in events if e.topic == "calls"]
    basic = sum(1 for c in calls if c["category"] in BASIC_CATEGORIES)
    assert 0.1 < basic / len(calls) < 0.5


def test_some_customers_go_quiet_and_some_buy_consumables(events: list[SimEvent]) -> None:
    last_purchase: dict[str, float] = {}
    with_items = set()
    for e in events:
        body = orjson.loads(e.value)
        if body["event_type"] == "order" and body["kind"] == "purchase":
            last_purchase[body["customer_id"]] = e.occurred_at
            if body.get("items"):
                with_items.add(body["customer_id"])
    end = CONFIG.start.timestamp() + CONFIG.days * 86400
    quiet = [c for c, t in last_purchase.items() if end - t > 90 * 86400]
    assert len(quiet) > 0.05 * len(last_purchase)
    assert 0.15 * CONFIG.customers < len(with_items) < 0.5 * CONFIG.customers


def test_some_customers_burst_with_basic_questions(events: list[SimEvent]) -> None:
    weekly: dict[str, Counter[int]] = defaultdict(Counter)
    for e in events:
        body = orjson.loads(e.value)
        category = body.get("category")
        if category in BASIC_CATEGORIES and body.get("status", "opened") == "opened":
            weekly[body["customer_id"]][int(e.occurred_at // (7 * 86400))] += 1
    bursting = [c for c, weeks in weekly.items() if max(weeks.values()) >= 6]
    assert len(bursting) >= 3


def test_a_mixed_stream_of_calls_orders_and_tickets(events: list[SimEvent]) -> None:
    share = Counter(e.topic for e in events)
    total = len(events)
    for topic in ("calls", "orders", "tickets"):
        assert 0.15 < share[topic] / total < 0.6, share


def test_tickets_live_through_their_life_cycle(events: list[SimEvent]) -> None:
    statuses: dict[str, list[str]] = defaultdict(list)
    for e in events:
        body = orjson.loads(e.value)
        if body["event_type"] == "ticket":
            statuses[body["ticket_id"]].append(body["status"])
    complete = [s for s in statuses.values() if s[0] == "opened" and s[-1] == "closed"]
    assert len(complete) > 0.8 * len(statuses)
    assert all(s[:3] == ["opened", "updated", "resolved"] for s in complete)
    reopened = [s for s in complete if "reopened" in s]
    assert 0.01 * len(complete) < len(reopened) < 0.1 * len(complete)


def test_satisfaction_ratings_spread_over_the_scale(events: list[SimEvent]) -> None:
    ratings = Counter(
        orjson.loads(e.value).get("satisfaction") for e in events if e.topic != "orders"
    )
    del ratings[None]
    assert set(ratings) == {1, 2, 3, 4, 5}
    low = ratings[1] + ratings[2]
    assert 0.03 < low / sum(ratings.values()) < 0.3  # satisfaction follow-ups happen


def test_opt_outs_exist(events: list[SimEvent]) -> None:
    assert any(e.topic == "contact_preferences" for e in events)


def test_bad_and_duplicate_messages_on_request() -> None:
    config = SimulationConfig(
        customers=100, days=60, seed=5, invalid_share=0.05, duplicate_share=0.05
    )
    stream = list(Simulator(config))
    invalid = sum(1 for e in stream if not isinstance(decoded(e), InputEvent))
    ids = [orjson.loads(e.value)["event_id"] for e in stream if isinstance(decoded(e), InputEvent)]
    assert 0.02 * len(stream) < invalid < 0.1 * len(stream)
    assert len(ids) - len(set(ids)) > 0.02 * len(stream)


def test_writes_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    count, _ = write_jsonl(Simulator(SimulationConfig(customers=20, days=30)), path)
    lines = path.read_bytes().splitlines()
    assert len(lines) == count > 0
    assert all(orjson.loads(line)["event_id"] for line in lines)


def test_writes_any_iterable_of_events_as_jsonl(tmp_path: Path) -> None:
    """Events that are not a Simulator (a list, a filtered stream) go out in batches,
    each counted by its events, not by scanning its bytes."""
    events = list(Simulator(SimulationConfig(customers=50, days=60, seed=3)))
    expected = b"".join(e.value + b"\n" for e in events)
    path = tmp_path / "events.jsonl"
    count, _ = write_jsonl(iter(events), path)
    assert (count, path.read_bytes()) == (len(events), expected)
    batches = list(jsonl_batches(events, size=7))
    assert b"".join(chunk for chunk, _ in batches) == expected
    sizes = [n for _, n in batches]
    assert sum(sizes) == len(events)
    assert set(sizes[:-1]) == {7}
    assert 0 < sizes[-1] <= 7
    for chunk, n in batches:
        assert chunk.count(b"\n") == n
