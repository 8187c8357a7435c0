"""Producing and consuming for the command-line tools (not the worker: Faust does that)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.faust_port.aiokafka_client import force_metadata_update
from agents.kafka.security import client_options
from agents.settings import Settings


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer tuned for bulk: batches, small linger, every write acknowledged."""
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        linger_ms=10,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=int(settings.kafka.request_timeout_seconds * 1000),
        enable_idempotence=False,
    )


class BatchSender:
    """Sends without waiting per message; checks delivery every `window` messages."""

    def __init__(self, producer: AIOKafkaProducer, window: int = 20_000) -> None:
        self._producer = producer
        self._window = window
        self._futures: list[asyncio.Future[Any]] = []
        self.sent = 0

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._futures.append(await self._producer.send(topic, value, key=key))
        self.sent += 1
        if len(self._futures) >= self._window:
            await self.wait()

    async def wait(self) -> None:
        futures, self._futures = self._futures, []
        if futures:
            await asyncio.gather(*futures)


async def consume_topics(
    settings: Settings,
    topics: list[str],
    *,
    from_beginning: bool = True,
    idle_timeout: float | None = None,
) -> AsyncIterator[tuple[str, int, int, bytes | None, bytes | None]]:
    """(topic, partition, offset, key, value) of the topics' messages, without a group.

    Ends after `idle_timeout` seconds without a message, else follows forever.
    """
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        # outputs of an exactly-once worker's aborted transactions are not outputs
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps: list[TopicPartition] = []
        for topic in topics:
            partitions = None
            for _ in range(50):
                partitions = consumer.partitions_for_topic(topic)
                if partitions:
                    break
                await force_metadata_update(consumer)
                await asyncio.sleep(0.1)
            if not partitions:
                raise RuntimeError(f"topic {topic!r} does not exist on {settings.broker}")
            tps.extend(TopicPartition(topic, p) for p in sorted(partitions))
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        idle = 0.0
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            if not batch:
                idle += 0.5
                if idle_timeout is not None and idle >= idle_timeout:
                    return
                continue
            idle = 0.0
            for tp, records in batch.items():
                for record in records:
                    yield tp.topic, tp.partition, record.offset, record.key, record.value
    finally:
        await consumer.stop()
