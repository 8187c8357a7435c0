"""`customer-tiers` (agents/engine/tiering.py): after any history, the latest record of
every judged customer says what its state says; a record goes out only when what it says
changed; and a table written before the topic existed gets every judged customer's
record once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from agents.engine.harness import Harness, run
from agents.engine.store import DictStore
from agents.settings import Settings, load_settings
from agents.tools.simulator import SimulationConfig, Simulator
from schemas.outputs import CustomerTier
from streams.codec import encode_state
from streams.keys import partition_of
from streams.units import MICROS_PER_DAY, from_micros, rfc3339

#: what a record says that only the customer's own history moves (it is published when
#: one of these changes; percentile, CLV and P(alive) ride along)
OWN_FIGURES = (
    "tier",
    "tier_since",
    "score",
    "revenue",
    "service_cost",
    "lifetime_revenue",
    "lifetime_service_cost",
)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings({"app_id": "snapshot", "kafka": {"partitions": 3}})


@pytest.fixture(scope="module")
def played(settings: Settings) -> tuple[dict[str, list[dict[str, Any]]], Harness]:
    import asyncio

    config = SimulationConfig(
        customers=300, days=70, seed=11, start=datetime(2026, 1, 5, tzinfo=UTC)
    )
    events = [(e.topic, e.value) for e in Simulator(config)]
    outputs, h = asyncio.run(run(settings, events))
    h.checkpoint()  # every state into the table
    return outputs, h


def latest_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a reader of the compacted topic ends with: the last record per customer."""
    table: dict[str, dict[str, Any]] = {}
    for record in records:
        table[record["customer_id"]] = record
    return table


def test_the_latest_record_of_every_judged_customer_is_its_state(
    played: tuple[dict[str, list[dict[str, Any]]], Harness], settings: Settings
) -> None:
    outputs, h = played
    records = outputs["customer_tiers"]
    table = latest_records(records)
    judged = {}
    for key, partition in h.local.partitions.items():
        if key.startswith(b"\x00"):
            continue
        state = h.store.get(key, partition)
        assert state is not None
        if state.judged:
            judged[state.customer_id] = state
    assert len(judged) > 100  # the history judges most of its customers
    assert set(table) == set(judged)  # nobody judged is missing, nobody else is there
    for customer_id, record in table.items():
        state = judged[customer_id]
        CustomerTier.model_validate(record, strict=False)
        assert record["tier"] == state.tier
        assert record["score"] == state.score
        # as of the last day what it says changed: the state may have been tiered since
        assert record["as_of"] <= rfc3339((state.tiered_day + 1) * MICROS_PER_DAY)
        assert record["event_id"] != ""
    # every record sits in its customer's partition, keyed by the customer id
    for topic, partition, key, value in h.sent:
        if topic == "customer_tiers":
            assert key == orjson.loads(value)["customer_id"].encode()
            assert partition == partition_of(key, settings.kafka.partitions)


def assert_published_on_change(records: list[dict[str, Any]]) -> None:
    last: dict[str, tuple[Any, ...]] = {}
    for record in records:
        own = tuple(record[name] for name in OWN_FIGURES)
        assert last.get(record["customer_id"]) != own, record
        last[record["customer_id"]] = own
    ids = [record["event_id"] for record in records]
    assert len(ids) == len(set(ids))  # one record per customer and day at most


def test_a_record_goes_out_only_when_what_it_says_changed(
    played: tuple[dict[str, list[dict[str, Any]]], Harness],
) -> None:
    records = played[0]["customer_tiers"]
    assert_published_on_change(records)
    tier_changes = played[0]["tier_changes"]
    # each tier change is on the table, with the same figures
    by_id = {(r["customer_id"], r["as_of"]): r for r in records}
    for change in tier_changes:
        record = by_id[(change["customer_id"], change["as_of"])]
        assert (record["tier"], record["score"], record["revenue"]) == (
            change["tier"],
            change["score"],
            change["revenue"],
        )


async def test_a_table_from_before_the_topic_publishes_every_judged_customer_once(
    played: tuple[dict[str, list[dict[str, Any]]], Harness], settings: Settings
) -> None:
    """An upgrade: states without the record's fingerprint, progress records without
    `snapshot_complete`. The first tiering publishes every judged customer, the next
    ones only what changes."""
    _, before = played
    legacy = DictStore()
    judged = set()
    for key, stored in before.local.data.items():
        partition, value = before.local.partitions[key], stored
        if key.startswith(b"\x00progress\x00"):
            progress = orjson.loads(stored)
            progress.pop("snapshot_complete")
            value = orjson.dumps(progress)
        elif not key.startswith(b"\x00"):
            state = before.store.get(key, partition)
            assert state is not None
            state.published = None
            if state.judged:
                judged.add(state.customer_id)
            value = encode_state(state)
        elif key.startswith((b"\x00ledger\x00", b"\x00journal\x00")):
            continue  # no checkpoint: the start reads every state (an older worker's table)
        legacy.write(partition, [(key, value)], None)
    ends = dict(before.positions.ends)
    h = Harness(settings, local=legacy, ends=ends, offsets=before.offsets)
    # a day later: one call, so every partition closes and tiers one more day
    day = max(g.progress.closed_day or 0 for g in before.engine.ledgers.values()) + 4
    for n in range(settings.kafka.partitions * 8):
        customer = f"late-{n}"
        call = {
            "event_type": "call",
            "event_id": f"late-call-{n}",
            "customer_id": customer,
            "occurred_at": from_micros(day * MICROS_PER_DAY + 3_600_000_000),
            "channel": "phone",
            "direction": "inbound",
            "duration_seconds": 60,
        }
        key = customer.encode()
        name = settings.topics.name("calls")
        place = (name, partition_of(key, settings.kafka.partitions))
        h.positions.ends[place] = h.positions.ends.get(place, 0) + 1
        h.apply("calls", key, orjson.dumps(call))
    await h.settle()
    records = h.outputs("customer_tiers")
    assert judged <= {r["customer_id"] for r in records}
    assert_published_on_change(records)  # once each, unless what it says changed since
    assert all(g.progress.snapshot_complete for g in h.engine.ledgers.values())
    for customer_id in judged:  # each remembers what it published (as a patch, maybe)
        state = h.state(customer_id)
        assert state is not None
        assert state.published is not None
