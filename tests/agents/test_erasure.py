"""Erasure (`vipstream erase`, agents/engine/events.py and book.py): the customer's state
gets a tombstone, the ledger and the purchase sample forget it, customer-tiers gets a
tombstone, and its older input, replayed, does not bring it back, before or after a
restart; newer input makes it a customer again. A bad request is a dead letter."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from agents.engine.events import InputMessage
from agents.engine.harness import Harness
from agents.settings import Settings, load_settings
from agents.tools.simulator import SimEvent, SimulationConfig, Simulator
from agents.topics import erasures_topic
from streams.keys import partition_of
from streams.units import MICROS_PER_SECOND


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings({"app_id": "erasure", "kafka": {"partitions": 3}})


@pytest.fixture(scope="module")
def history() -> list[SimEvent]:
    config = SimulationConfig(
        customers=120, days=60, seed=4, start=datetime(2026, 2, 2, tzinfo=UTC)
    )
    return list(Simulator(config))


def harness(settings: Settings, events: list[SimEvent], **kwargs: Any) -> Harness:
    ends = Counter(
        (settings.topics.name(e.topic), partition_of(e.key, settings.kafka.partitions))
        for e in events
    )
    return Harness(settings, ends=dict(ends), **kwargs)


def play(h: Harness, events: list[SimEvent], *, more: bool = False) -> None:
    """Apply the events (`more`: they come after what the harness was told the inputs
    hold: a replay, produced again)."""
    partitions = h.settings.kafka.partitions
    for event in events:
        if more:
            place = (h.settings.topics.name(event.topic), partition_of(event.key, partitions))
            h.positions.ends[place] = h.positions.ends.get(place, 0) + 1
        h.apply(event.topic, event.key, event.value, timestamp=event.occurred_at)
    asyncio.run(h.settle())


def judged_customer(h: Harness, history: list[SimEvent]) -> str:
    for event in history:
        state = h.state(event.key.decode())
        if state is not None and state.judged and state.purchases > 1:
            return state.customer_id
    raise AssertionError("no judged buyer in the history")


def test_an_erased_customer_is_gone_and_its_old_input_does_not_bring_it_back(
    settings: Settings, history: list[SimEvent]
) -> None:
    h = harness(settings, history)
    play(h, history)
    customer = judged_customer(h, history)
    key = customer.encode()
    partition = partition_of(key, settings.kafka.partitions)
    ledger = h.engine.ledgers[partition]
    customers_before = ledger.customers
    assert key in ledger.tiers
    h.checkpoint()
    assert key in h.local.data
    sent_before = len(h.sent)

    erased_at = history[-1].occurred_at + 3600
    h.erase(customer, erased_at)
    assert h.state(customer) is None
    assert key not in ledger.tiers
    assert key not in ledger.scores
    assert ledger.customers == customers_before - 1
    assert (
        "customer_tiers",
        partition,
        key,
        None,
    ) in h.sent[sent_before:]  # the record's tombstone
    snapshot = h.store.snapshot()
    assert (key, partition, None) in snapshot.changes  # the state's tombstone
    assert h.store.get(key, partition) is None  # in flight: not read back from the store
    h.store.confirm(snapshot, {})
    assert key not in h.local.data
    assert h.metrics.customers_erased.values() == {(): 1.0}

    # the same history again (a replay): nothing of the customer is applied
    mine = [e for e in history if e.key == key]
    play(h, history, more=True)
    assert h.state(customer) is None
    assert sum(h.metrics.events_erased.values().values()) >= len(mine)
    letters = [orjson.loads(v) for t, _, _, v in h.sent if t == "dead_letters" and v]
    assert all(letter["customer_id"] != customer for letter in letters)

    # a restart on the table: still gone, and its old input is still dropped
    h.checkpoint()
    again = harness(settings, history * 2, local=h.local, offsets=h.offsets)
    play(again, mine, more=True)
    assert again.state(customer) is None
    assert key not in again.engine.ledgers[partition].tiers

    # input dated after the erasure: a customer again, from nothing
    late = mine[0]
    body = orjson.loads(late.value)
    body["event_id"] = "after-the-erasure"
    body["occurred_at"] = datetime.fromtimestamp(erased_at + 60, UTC).isoformat()
    again.positions.ends[(settings.topics.name(late.topic), partition)] += (
        1  # one more message on the partition
    )
    again.apply(late.topic, key, orjson.dumps(body))
    state = again.state(customer)
    assert state is not None
    assert state.first_seen_at == int((erased_at + 60) * MICROS_PER_SECOND)


def test_a_bad_erasure_request_is_a_dead_letter_and_the_worker_goes_on(
    settings: Settings, history: list[SimEvent]
) -> None:
    h = harness(settings, history)
    play(h, history[:200])
    topic = erasures_topic(settings)
    customer = history[0].key.decode()
    for offset, (key, value) in enumerate(
        [
            (b"C1", b"not json"),
            (b"C1", orjson.dumps({"event_type": "erasure", "customer_id": "C1"})),
            (
                b"someone-else",
                orjson.dumps(
                    {
                        "event_type": "erasure",
                        "event_id": "e",
                        "customer_id": customer,
                        "requested_at": "2026-12-01T00:00:00Z",
                    }
                ),
            ),
        ]
    ):
        h.events.handle(InputMessage(topic, 0, offset, key, value, 0.0))
    letters = [orjson.loads(v) for t, _, _, v in h.sent if t == "dead_letters" and v]
    assert [letter["reason"] for letter in letters[-3:]] == [
        "schema_violation",
        "schema_violation",
        "key_mismatch",
    ]
    assert h.state(customer) is not None  # the mismatched request erased nobody
    play(h, history[200:])  # and the events after them are applied
    assert h.metrics.customers_erased.values() == {}


def test_a_tombstone_on_the_preferences_deletes_nothing_and_is_no_dead_letter(
    settings: Settings,
) -> None:
    """`vipstream erase` writes one; a CRM deleting a preference record may too. An
    opt-out stays until a preference event says otherwise: nobody opted out is called
    because a record was deleted."""
    preference = {
        "event_type": "contact_preference",
        "event_id": "p1",
        "customer_id": "C1",
        "occurred_at": "2026-03-02T10:00:00Z",
        "do_not_call": True,
    }
    topic = settings.topics.name("contact_preferences")
    h = Harness(settings, ends={(topic, partition_of(b"C1", settings.kafka.partitions)): 2})
    h.apply("contact_preferences", b"C1", orjson.dumps(preference))
    h.events.handle(
        InputMessage(topic, partition_of(b"C1", settings.kafka.partitions), 1, b"C1", None, 0.0)
    )
    state = h.state("C1")
    assert state is not None
    assert state.do_not_call
    assert [t for t, _, _, _ in h.sent if t == "dead_letters"] == []
