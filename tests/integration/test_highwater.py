"""The log-end offsets table recovery reads changelogs up to: the offset after the last
record, however the records were batched when produced."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.kafka.highwater import HighwaterUnknown, exact_highwaters
from tests.integration.conftest import RunningBroker

pytestmark = pytest.mark.integration


@pytest.mark.both_brokers
def test_highwaters_count_every_record_of_the_last_batch(broker: RunningBroker) -> None:
    topic = f"hw-{id(broker)}"

    async def run() -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        await create_topic(broker, topic, 3)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
        await producer.start()
        try:
            # partition 0: one batch of ten; partition 1: one record, then a batch of five
            sends = [await producer.send(topic, b"a", partition=0) for _ in range(10)]
            await asyncio.gather(*sends)
            await (await producer.send(topic, b"b", partition=1))
            sends = [await producer.send(topic, b"c", partition=1) for _ in range(5)]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in (0, 1, 2)]

            async def listed(*partitions: TopicPartition) -> dict[TopicPartition, int]:
                return dict(await consumer.end_offsets(list(partitions)))

            exact = await exact_highwaters(listed, [broker.bootstrap])(*tps)
            return dict(exact), {tp: await _count(broker, tp) for tp in tps}
        finally:
            await consumer.stop()

    exact, counted = asyncio.run(run())
    assert counted == {
        TopicPartition(topic, 0): 10,
        TopicPartition(topic, 1): 6,
        TopicPartition(topic, 2): 0,
    }
    assert exact == counted


@pytest.mark.both_brokers
def test_a_partition_whose_fetch_never_answers_is_an_error_not_the_listed_end(
    broker: RunningBroker,
) -> None:
    """Recovery must not read a changelog short of its end because a fetch was slow: the
    listed answer (possibly a batch short on this broker) is never used on its own."""
    topic = f"hw-one-{id(broker)}"

    async def create() -> None:
        await create_topic(broker, topic, 1)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            await (await producer.send(topic, b"a", partition=0))
        finally:
            await producer.stop()

    asyncio.run(create())
    missing = TopicPartition(topic, 7)  # the topic has no partition 7

    async def listed(*partitions: TopicPartition) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 5)  # a partition no fetch can read

    with pytest.raises(HighwaterUnknown, match=rf"{topic}\[7\]"):
        asyncio.run(exact_highwaters(listed, [broker.bootstrap], wait_seconds=2)(missing))


async def create_topic(broker: RunningBroker, topic: str, partitions: int) -> None:
    """Explicitly: Apache Kafka runs with automatic topic creation off, as in production."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def _count(broker: RunningBroker, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        count = 0
        while batch := await consumer.getmany(timeout_ms=1000):
            count += sum(len(records) for records in batch.values())
        return count
    finally:
        await consumer.stop()
