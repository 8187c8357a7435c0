"""`vipstream erase CUSTOMER_ID...`: a customer's right to be forgotten.

For each customer it writes an erasure request to the worker group's `<app_id>-erasures`
topic (partitioned by customer like the inputs, so the customer's owner applies it in
order with its events) and a tombstone to the compacted `contact-preferences`. The
worker that owns the customer deletes its state (a tombstone through the changelog),
forgets it in the value ledger, writes a tombstone to `customer-tiers` and remembers a
hash of the id with the time, so older input replayed later does not bring it back
(agents/engine/events.py). The command then waits for those `customer-tiers`
tombstones: they say the erasure is applied.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.kafka.admin import ensure_topics
from agents.kafka.clients import make_producer
from agents.kafka.security import client_options
from agents.settings import Settings
from agents.topics import erasures_topic
from schemas.inputs import ErasureRequest
from streams.keys import partition_of
from streams.units import MICROS_PER_SECOND, from_micros


async def request_erasure(
    settings: Settings, customer_ids: list[str], *, wait_seconds: float, now: float | None = None
) -> set[str]:
    """Send the requests; the customers whose erasure was confirmed within
    `wait_seconds` (every one, unless some worker is down or behind)."""
    requested_at = from_micros(int((time.time() if now is None else now) * MICROS_PER_SECOND))
    requests = [
        ErasureRequest(event_id=f"erase-{uuid.uuid4()}", customer_id=c, requested_at=requested_at)
        for c in customer_ids
    ]
    await ensure_topics(settings)  # the erasures topic, with the inputs' partition count
    tiers = settings.topics.name("customer_tiers")
    partitions = settings.kafka.partitions
    watch = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, isolation_level="read_committed"
    )
    await watch.start()
    try:
        tps = [TopicPartition(tiers, p) for p in range(partitions)]
        watch.assign(tps)
        ends = await watch.end_offsets(tps)  # before the requests: their tombstones follow
        for tp in tps:
            watch.seek(tp, ends[tp])
        producer = make_producer(settings)
        await producer.start()
        try:
            sent = []
            for request in requests:
                key = request.customer_id.encode()
                partition = partition_of(key, partitions)
                body = request.model_dump_json().encode()
                sent.append(
                    await producer.send(
                        erasures_topic(settings), body, key=key, partition=partition
                    )
                )
                preferences = settings.topics.name("contact_preferences")
                sent.append(await producer.send(preferences, None, key=key, partition=partition))
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        return await _confirmed(watch, set(customer_ids), wait_seconds)
    finally:
        await watch.stop()


async def _confirmed(watch: AIOKafkaConsumer, waiting: set[str], wait_seconds: float) -> set[str]:
    """The customers whose customer-tiers tombstone arrived within `wait_seconds`."""
    confirmed: set[str] = set()
    deadline = time.monotonic() + wait_seconds
    while waiting - confirmed and time.monotonic() < deadline:
        batch = await watch.getmany(timeout_ms=500)
        for records in batch.values():
            for record in records:
                if record.value is None and record.key is not None:
                    confirmed.add(record.key.decode("utf-8", "replace"))
    return confirmed & waiting
