"""Direct Kafka access for tests: produce raw bytes, read a topic to its end."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.kafka.admin import ensure_topics
from agents.kafka.clients import consume_topics
from agents.kafka.highwater import exact_highwaters
from agents.settings import Settings, load_settings
from agents.topics import INPUT_EVENT_TYPES


def settings_for(env: dict[str, str]) -> Settings:
    """The settings a worker started with `env` would load."""
    import os

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def produce(
    env: dict[str, str],
    messages: list[tuple[str, bytes | None, bytes | None]],
    *,
    timestamps_ms: list[int | None] | None = None,
) -> list[tuple[int, int]]:
    """Send (topic key, key, value) messages, in order, and wait for acknowledgement.

    `timestamps_ms`: the record timestamp of each message (None: the producer's clock).
    Returns where each message landed: (partition, offset).
    """
    settings = settings_for(env)
    stamps = timestamps_ms or [None] * len(messages)

    async def run() -> list[tuple[int, int]]:
        await ensure_topics(settings, wait_seconds=30)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            max_request_size=4 * 1024 * 1024,
        )
        await producer.start()
        try:
            sent = []
            for i, ((topic_key, key, value), stamp) in enumerate(
                zip(messages, stamps, strict=True)
            ):
                topic = settings.topics.name(topic_key)
                if key is None and value is None:
                    # valid in Kafka, refused by producer.send: a batch of one instead
                    batch = producer.create_batch()
                    batch.append(key=None, value=None, timestamp=stamp)
                    partition = i % settings.kafka.partitions
                    sent.append(await producer.send_batch(batch, topic, partition=partition))
                else:
                    sent.append(await producer.send(topic, value, key=key, timestamp_ms=stamp))
            landed = await asyncio.gather(*sent)
        finally:
            await producer.stop()
        return [(meta.partition, meta.offset) for meta in landed]

    return asyncio.run(run())


def read_topic(env: dict[str, str], topic_key: str, idle: float = 2.0) -> list[dict[str, Any]]:
    """Every JSON value on a topic, read until it has been idle for `idle` seconds."""
    settings = settings_for(env)

    async def run() -> list[dict[str, Any]]:
        values = []
        async for *_, value in consume_topics(
            settings, [settings.topics.name(topic_key)], idle_timeout=idle
        ):
            values.append(orjson.loads(value or b"null"))
        return values

    return asyncio.run(run())


def read_outputs(
    env: dict[str, str], topics: tuple[str, ...], *, committed: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Every output event, read with a bare aiokafka consumer until idle for 3 s:
    `read_committed` (what a consumer of the outputs must do with exactly_once; the
    same as read_uncommitted for a worker without transactions), or everything in the
    log with `committed=False`."""
    prefix = env["VIPSTREAM_TOPICS__PREFIX"]
    bootstrap = settings_for(env).bootstrap_servers

    async def run() -> dict[str, list[dict[str, Any]]]:
        consumer = AIOKafkaConsumer(
            *(prefix + t for t in topics),
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed" if committed else "read_uncommitted",
        )
        await consumer.start()
        found: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=3000)
                if not batch:
                    return found
                for tp, records in batch.items():
                    name = tp.topic.removeprefix(prefix)
                    found[name] += [orjson.loads(r.value) for r in records]
        finally:
            await consumer.stop()

    return asyncio.run(run())


def group_lag(env: dict[str, str]) -> dict[str, tuple[int | None, int]]:
    """Every input partition the worker group of `env` has not committed to its end (the log
    end as a fetch reports it: see agents/kafka/highwater.py): "topic[p]" -> (committed, end).
    Asked as a member of the group that never joins it, so the workers are not disturbed."""
    settings = settings_for(env)
    topics = [settings.topics.name(k) for k in INPUT_EVENT_TYPES]
    tps = [TopicPartition(t, p) for t in topics for p in range(settings.kafka.partitions)]

    async def run() -> dict[str, tuple[int | None, int]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.app_id,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:

            async def listed(*partitions: TopicPartition) -> dict[TopicPartition, int]:
                return dict(await consumer.end_offsets(list(partitions)))

            ends = await exact_highwaters(listed, settings.bootstrap_servers)(*tps)
            behind = {}
            for tp, end in ends.items():
                committed = await consumer.committed(tp) if end else 0
                if end and (committed is None or committed < end):
                    behind[f"{tp.topic}[{tp.partition}]"] = (committed, end)
            return behind
        finally:
            await consumer.stop()

    return asyncio.run(run())
