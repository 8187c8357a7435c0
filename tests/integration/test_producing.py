"""The worker's own messages produced as record batches on a real broker: a commit's
snapshot in the changelog (every record in its partition, in the snapshot's order, each
batch acknowledged with its last offset) and output events (in the order queued, per
partition, delivered before a commit's wait for them completes)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.engine.store import Snapshot, highest_offsets
from agents.kafka.producing import (
    BatchProducer,
    ChangelogWriter,
    MessageTooLargeError,
    OutputQueue,
    Written,
)
from tests.integration.conftest import RunningBroker

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers]

MIB = 1024 * 1024


def test_snapshots_land_in_order_with_their_last_offsets(broker: RunningBroker) -> None:
    topic = f"changelog-{id(broker)}"
    # partition 0: 3,000 states of 1 KiB (more than one 1 MiB batch); 1: three; 2: none
    first = Snapshot(1, [(b"c%05d" % i, 0, b"x" * 1024) for i in range(3000)])
    second = Snapshot(2, [(b"a", 1, b"1"), (b"b", 1, b"2"), (b"\x00progress\x001", 1, b"p")])

    async def run() -> tuple[list[dict[int, int]], dict[int, list[tuple[int, bytes]]]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 3, 1)])
        await admin.close()
        producer = _producer(broker)
        writer = ChangelogWriter(producer, topic)
        try:
            acked = []
            for snapshot in (first, second, first):
                acks = await asyncio.gather(*await writer.write(snapshot))
                acked.append(highest_offsets(acks))
            with pytest.raises(MessageTooLargeError, match="max_message_bytes"):
                await writer.write(Snapshot(3, [(b"big", 2, b"x" * (2 * MIB))]))
            assert await writer.write(Snapshot(4)) == []
        finally:
            await producer.stop()
        return acked, await read(broker, topic)

    acked, records = asyncio.run(run())
    assert acked == [{0: 2999}, {1: 2}, {0: 5999}]
    assert [key for _, key in records[0]] == [k for k, _, _ in first.changes] * 2
    assert [offset for offset, _ in records[0]] == list(range(6000))
    assert [key for _, key in records[1]] == [b"a", b"b", b"\x00progress\x001"]
    assert records.get(2, []) == []


def test_outputs_arrive_in_the_order_queued_per_partition(broker: RunningBroker) -> None:
    topic = f"outputs-{id(broker)}"
    sent = [(topic, i % 3, b"k%d" % i, b"v%05d" % i) for i in range(5000)]

    async def run() -> dict[int, list[tuple[int, bytes]]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 3, 1)])
        await admin.close()
        producer = _producer(broker)
        outputs = OutputQueue(producer, linger_seconds=0.005)
        sender = asyncio.create_task(outputs.flush_forever())
        try:
            for i, record in enumerate(sent):
                outputs.queue(*record)
                if i % 700 == 0:
                    await asyncio.sleep(0.002)  # the sender takes some chunks itself
            await asyncio.gather(*outputs.take())  # what a commit waits for
            assert outputs.pending == []
            assert outputs.take() == []  # everything delivered, nothing in flight
            return await read(broker, topic, values=True)
        finally:
            sender.cancel()
            await producer.stop()

    received = asyncio.run(run())
    for partition in range(3):
        expected = [value for _, p, _, value in sent if p == partition]
        assert [value for _, value in received[partition]] == expected


def test_an_abandoned_commit_does_not_hold_later_outputs_back(broker: RunningBroker) -> None:
    """A commit takes the pending outputs, then fails or is cancelled before it waits for
    them (a rebalance, a failed flush). They are delivered anyway, and so is everything
    queued after them: the next commit's wait completes."""
    topic = f"abandoned-{id(broker)}"

    async def run() -> dict[int, list[tuple[int, bytes]]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        producer = _producer(broker)
        outputs = OutputQueue(producer, linger_seconds=0.005)
        sender = asyncio.create_task(outputs.flush_forever())
        try:
            outputs.queue(topic, 0, b"k", b"first")
            del outputs.take()[:]  # the abandoned commit: nothing awaited
            outputs.queue(topic, 0, b"k", b"second")
            await asyncio.sleep(0.05)  # the sender takes it
            outputs.queue(topic, 0, b"k", b"third")
            await asyncio.wait_for(asyncio.gather(*outputs.take()), timeout=20)
            return await read(broker, topic, values=True)
        finally:
            sender.cancel()
            await producer.stop()

    received = asyncio.run(run())
    assert [value for _, value in received[0]] == [b"first", b"second", b"third"]


def test_batches_fit_the_brokers_default_message_limit(broker: RunningBroker) -> None:
    """A single message may be as large as kafka.max_message_bytes (4 MiB: a customer's
    state, on a changelog topic created to take it), but a batch of many stays within
    1 MB, Apache Kafka's default max.message.bytes, which the output topics have: a
    flush of megabytes of outputs is accepted (a batch of 4 MiB was refused with
    MessageSizeTooLargeError, found seeding a 100,000-customer changelog)."""
    outputs, states = f"outputs-{id(broker)}-default", f"states-{id(broker)}-4mib"

    async def run() -> tuple[list[Written], list[Written]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics(
            [
                NewTopic(outputs, 1, 1),
                NewTopic(states, 1, 1, topic_configs={"max.message.bytes": str(4 * MIB)}),
            ]
        )
        await admin.close()
        producer = BatchProducer(
            [broker.bootstrap], max_message_bytes=4 * MIB, delivery_timeout_seconds=30
        )
        try:
            many = [(b"k%d" % i, b"x" * 1024) for i in range(3000)]
            small = await asyncio.gather(*await producer.send(outputs, 0, many))
            large = await asyncio.gather(
                *await producer.send(states, 0, [(b"big", b"x" * (3 * MIB))])
            )
        finally:
            await producer.stop()
        return small, large

    small, large = asyncio.run(run())
    assert max(ack.offset for ack in small) == 2999
    assert len(small) >= 3  # three megabytes: at least three batches
    assert [ack.offset for ack in large] == [0]


def _producer(broker: RunningBroker) -> BatchProducer:
    return BatchProducer([broker.bootstrap], max_message_bytes=MIB, delivery_timeout_seconds=30)


async def read(
    broker: RunningBroker, topic: str, *, values: bool = False
) -> dict[int, list[tuple[int, bytes]]]:
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
                found.setdefault(tp.partition, []).extend(
                    (m.offset, m.value if values else m.key) for m in messages
                )
        return found
    finally:
        await consumer.stop()


def test_the_listed_log_end_counts_every_output(broker: RunningBroker) -> None:
    """With `last_alone` (kafka.exact_log_end) a partition's last batch holds one record,
    so the log end a broker lists (ListOffsets) is the offset after the last output even
    on a broker that lists the last batch's first offset + 1 (the embedded one): a reader
    that stops there sees every output."""
    topic = f"listed-end-{id(broker)}"

    async def run() -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 3, 1)])
        await admin.close()
        producer = _producer(broker)
        try:
            for size in (5, 7, 1):  # several sends: the end moves with each
                records = [(topic, p, b"k", b"v") for p in range(2) for _ in range(size)]
                await asyncio.gather(*await producer.send_all(records, last_alone=True))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            return await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
        finally:
            await consumer.stop()

    ends = asyncio.run(run())
    assert {tp.partition: end for tp, end in ends.items()} == {0: 13, 1: 13, 2: 0}
