"""A commit's snapshot written to the changelog as record batches: every record in its
partition, in the snapshot's order, and each batch acknowledged with its last offset."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.broker import EmbeddedBroker
from agents.changelog import ChangelogWriter, StateTooLargeError
from agents.state_store import Snapshot, highest_offsets

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def test_snapshots_land_in_order_with_their_last_offsets(broker: EmbeddedBroker) -> None:
    topic = f"changelog-{id(broker)}"
    # partition 0: 3,000 states of 1 KiB (more than one 1 MiB batch); 1: three; 2: none
    first = Snapshot(1, [(b"c%05d" % i, 0, b"x" * 1024) for i in range(3000)])
    second = Snapshot(2, [(b"a", 1, b"1"), (b"b", 1, b"2"), (b"\x00progress\x001", 1, b"p")])

    async def run() -> tuple[list[dict[int, int]], dict[int, list[tuple[int, bytes]]]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 3, 1)])
        await admin.close()
        writer = ChangelogWriter(
            [broker.bootstrap], topic, max_message_bytes=MIB, request_timeout_seconds=10
        )
        try:
            acked = []
            for snapshot in (first, second, first):
                acks = await asyncio.gather(*await writer.write(snapshot))
                acked.append(highest_offsets(acks))
            with pytest.raises(StateTooLargeError, match="max_message_bytes"):
                await writer.write(Snapshot(3, [(b"big", 2, b"x" * (2 * MIB))]))
            assert await writer.write(Snapshot(4)) == []
        finally:
            await writer.stop()
        return acked, await read(broker, topic)

    acked, records = asyncio.run(run())
    assert acked == [{0: 2999}, {1: 2}, {0: 5999}]
    assert [key for _, key in records[0]] == [k for k, _, _ in first.changes] * 2
    assert [offset for offset, _ in records[0]] == list(range(6000))
    assert [key for _, key in records[1]] == [b"a", b"b", b"\x00progress\x001"]
    assert records.get(2, []) == []


async def read(broker: EmbeddedBroker, topic: str) -> dict[int, list[tuple[int, bytes]]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * MIB,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(3)])
        found: dict[int, list[tuple[int, bytes]]] = {}
        while batch := await consumer.getmany(timeout_ms=1500):
            for tp, messages in batch.items():
                found.setdefault(tp.partition, []).extend((m.offset, m.key) for m in messages)
        return found
    finally:
        await consumer.stop()
