"""One customer's encoded state stays bounded however many events it sends.

The state is written to the changelog as one message per customer, so its size is a
hard limit: a state the producer or broker refuses (Faust's producer: 1,000,000 bytes;
Apache Kafka: 1 MB by default) fails the commit and crashes the worker, which then
crashes on the same events after every restart. Every part of the state that grows with
events has a cap; these tests fill every cap with the longest identifiers the contract
allows, and the peak must stay under `streams.codec.max_state_bytes`, which start-up
checks against `kafka.max_message_bytes` (see "Reliability" in the README).
"""

from __future__ import annotations

from typing import Any

from schemas.care_config import CareSettings, SpikeSettings
from schemas.config import CostSettings, IngestSettings
from schemas.inputs import INPUT_MODELS
from streams import care
from streams.codec import encode_state, max_state_bytes
from streams.customer import CustomerState, apply_event
from tests import factories as f
from tests.unit.test_care import at, item, life

LONG = 256  # the longest identifier (event, customer, ticket, sku) the contract allows
LABEL = 128  # the longest category


def hostile_day(day: int) -> list[dict[str, Any]]:
    """A day of a customer that pushes every bound: new basic-question categories with the
    longest names, low ratings, tickets and orders of new skus, all with long ids."""
    events: list[dict[str, Any]] = []
    for i in range(40):
        events.append(
            f.call(
                event_id=f"{day}-{i}-".ljust(LONG, "e"),
                category=f"{i:03d}".ljust(LABEL, "c"),
                is_basic=True,
                resolved=True,
                satisfaction=1,
                occurred_at=at(day + i / 100),
            )
        )
    for i in range(5):
        events.append(f.ticket(ticket_id=f"{day}-{i}-".ljust(LONG, "t"), occurred_at=at(day + 0.5)))
    skus = [item(f"{day}-{i}-".ljust(LONG, "s"), 1, 30) for i in range(50)]
    events.append(f.order(items=skus, occurred_at=at(day + 0.6)))
    events.append(f.preference(do_not_call=day % 2 == 0, occurred_at=at(day + 0.7)))
    return events


def size(state: CustomerState | None) -> int:
    assert state is not None
    return len(encode_state(state))


def test_the_state_stops_growing_under_a_steady_hostile_load() -> None:
    """46 events a day: once the value window is full (365 days) and the pending tickets
    at their cap, the state after 400 days is no larger than after 380."""
    before = life([e for d in range(380) for e in hostile_day(d)], through=380).state
    after = life([e for d in range(400) for e in hostile_day(d)], through=400).state
    assert size(after) <= size(before)
    assert after is not None
    assert len(after.days) <= 366  # the longest look-back (the value window) plus today
    spikes = SpikeSettings()
    assert len(after.care.basic_days) <= spikes.recent_days + spikes.baseline_days
    assert all(len(c) <= spikes.max_categories + 1 for c in after.care.basic_days.values())
    assert len(after.care.stock) <= CareSettings().max_skus
    print(f"\nsteady hostile load: {size(after):,} bytes")


def test_a_burst_between_two_closes_fills_every_cap_and_no_more() -> None:
    """Steady state, then one day of 20,000 events before that day is closed: every
    structure stops at its cap, and the encoded state at its peak is measured."""
    state = life([e for d in range(100) for e in hostile_day(d)], through=100).state
    ingest, costs = IngestSettings(), CostSettings()
    burst: list[dict[str, Any]] = []
    for i in range(5000):
        moment = at(100 + i / 10_000)
        name = f"b{i}-".ljust(LONG, "x")
        burst += [
            f.call(
                event_id=name, satisfaction=2, category=f"{i}".ljust(LABEL, "c"), occurred_at=moment
            ),
            f.ticket(event_id=name, ticket_id=name, occurred_at=moment),
            f.order(event_id=name, items=[item(name, 1, 30)], occurred_at=moment),
            f.preference(event_id=name, occurred_at=moment),
        ]
    for body in burst:
        event = INPUT_MODELS[body["event_type"]].model_validate(body)
        state, _ = apply_event(state, event, ingest=ingest, costs=costs)
    assert state is not None
    cap = ingest.dedupe_max_ids_per_customer
    assert {name: len(m.seen) for name, m in state.streams.items()} == {
        "call": cap,
        "ticket": cap,
        "order": cap,
        "contact_preference": cap,
    }
    assert len(state.care.tickets) == care.MAX_PENDING_TICKETS
    assert len(state.care.ratings) == care.MAX_PENDING_RATINGS
    assert len(state.care.orders) <= 2 * CareSettings().max_skus + 1
    peak = size(state)
    assert peak <= ceiling(ingest), peak
    print(f"\npeak encoded state of one customer: {peak:,} bytes (ceiling {ceiling(ingest):,})")


def ceiling(ingest: IngestSettings) -> int:
    return max_state_bytes(ingest, SpikeSettings(), CareSettings())
