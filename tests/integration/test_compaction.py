"""Compaction on Apache Kafka (the embedded broker never compacts): the state changelog
and the compacted contact-preferences topic really shrink, a worker restarting from the
changelog reads a bounded number of records, and a worker reading the compacted input
from its start finds the offsets that hold no record and reads past them
(agents/engine/frontier.py), with every figure right.

The topics are created by the test before any worker, with settings that make the log
cleaner act within seconds: a segment per 200 ms, any dirty share cleanable.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.conftest import RunningBroker
from tests.integration.kafka import produce
from tests.support import Worker, isolated_env, wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 4
CUSTOMERS = 40
ROUNDS = 25
AGGRESSIVE = {
    "cleanup.policy": "compact",
    "segment.ms": "200",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "100",
    "max.message.bytes": str(4 * 1024 * 1024),
}


def create_compacted(broker: RunningBroker, topics: list[str]) -> None:
    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(t, PARTITIONS, 1, topic_configs=AGGRESSIVE) for t in topics]
            )
        finally:
            await admin.close()

    asyncio.run(run())


def count_records(broker: RunningBroker, topic: str) -> tuple[int, int]:
    """(records a reader of the topic finds from its start, the log end offsets' sum)."""

    async def run() -> tuple[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            found = 0
            while batch := await consumer.getmany(timeout_ms=1500):
                found += sum(len(records) for records in batch.values())
            return found, sum(ends.values())
        finally:
            await consumer.stop()

    return asyncio.run(run())


def call(customer: int, n: int) -> tuple[str, bytes, bytes]:
    key = f"C{customer:03d}"
    body = {
        "event_type": "call",
        "event_id": f"call-{customer}-{n}",
        "customer_id": key,
        "occurred_at": f"2026-02-{1 + n:02d}T10:00:00Z",
        "channel": "phone",
        "direction": "inbound",
        "duration_seconds": 60,
        "cost": 1.0,
    }
    return "calls", key.encode(), orjson.dumps(body)


def preference(customer: int, n: int) -> tuple[str, bytes, bytes]:
    key = f"C{customer:03d}"
    body = {
        "event_type": "contact_preference",
        "event_id": f"pref-{customer}-{n}",
        "customer_id": key,
        "occurred_at": f"2026-01-01T{n:02d}:00:00Z",
        "do_not_call": n % 2 == 0,
    }
    return "contact_preferences", key.encode(), orjson.dumps(body)


def test_compacted_changelog_and_input_on_apache_kafka(
    broker: RunningBroker, tmp_path: Path
) -> None:
    env = isolated_env(broker.url, VIPSTREAM_KAFKA__EXACT_LOG_END="false")
    prefix, app = env["VIPSTREAM_TOPICS__PREFIX"], env["VIPSTREAM_APP_ID"]
    changelog = f"{app}-customer_state-changelog"
    preferences = f"{prefix}contact-preferences"
    create_compacted(broker, [changelog, preferences])

    first = Worker(env, tmp_path / "w1", tmp_path / "w1.log").start()
    try:
        first.wait_healthy(timeout=90)
        # each round's states reach the changelog in a commit, and the preferences flip
        # 24 times per customer: compaction keeps the latest of each (rounds are apart in
        # time, so the logs roll segments the cleaner can compact)
        for n in range(ROUNDS):
            flips = [preference(c, n) for c in range(CUSTOMERS)] if n < 24 else []
            produce(env, [*flips, *(call(c, n) for c in range(CUSTOMERS))])
            time.sleep(0.7)
        sent = ROUNDS * CUSTOMERS + 24 * CUSTOMERS
        wait_for(
            lambda: first.metric("vipstream_events_consumed_total") >= sent,
            timeout=120,
            what="everything consumed",
        )
        writes = first.metric("vipstream_state_writes_total")
        answers = {c: first.get(f"/customers/C{c:03d}") for c in range(CUSTOMERS)}
    finally:
        first.stop()
    assert writes >= ROUNDS * CUSTOMERS  # many states written per customer

    def compacted() -> bool:
        kept, _ = count_records(broker, changelog)
        return kept < writes / 4

    wait_for(compacted, timeout=120, what="the changelog compacted", interval=2.0)
    kept, end = count_records(broker, changelog)

    # a fresh worker rebuilds its state from the compacted changelog
    second = Worker(env, tmp_path / "w2", tmp_path / "w2.log").start()
    try:
        second.wait_healthy(timeout=90)
        recovered = second.metric("vipstream_state_recovered_records_total")
        again = {c: second.get(f"/customers/C{c:03d}") for c in range(CUSTOMERS)}
    finally:
        second.stop()
    assert recovered <= kept + CUSTOMERS, (recovered, kept, end, writes)
    for c, (status, body) in answers.items():
        assert status == 200
        assert again[c][0] == 200
        assert again[c][1]["lifetime_service_cost"] == body["lifetime_service_cost"]
        assert again[c][1]["do_not_call"] is False  # the latest of 24: n = 23, odd
    print(
        f"\nchangelog: {writes:.0f} writes, {end} offsets, {kept} records kept; "
        f"a restart read {recovered:.0f}"
    )

    # a new group reads the compacted preferences from their start: holes with no record
    wait_for(
        lambda: count_records(broker, preferences)[0] < 24 * CUSTOMERS / 2,
        timeout=120,
        what="the preferences compacted",
        interval=2.0,
    )
    reader_env = {**env, "VIPSTREAM_APP_ID": f"{app}-reader"}
    reader = Worker(reader_env, tmp_path / "w3", tmp_path / "w3.log").start()
    try:
        reader.wait_healthy(timeout=90)
        wait_for(
            lambda: reader.metric("vipstream_events_applied_total") >= ROUNDS * CUSTOMERS,
            timeout=120,
            what="the calls applied",
        )
        text = reader.get("/metrics")[1]
        opted = [reader.get(f"/customers/C{c:03d}")[1]["do_not_call"] for c in range(CUSTOMERS)]
    finally:
        reader.stop()
    assert 'vipstream_input_gaps_total{kind="absent"}' in text
    assert 'vipstream_input_gaps_total{kind="dropped"}' not in text
    assert opted == [False] * CUSTOMERS
