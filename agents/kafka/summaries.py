"""Reading the value-summary topic into the engine's bus (agents/engine/summaries.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.engine.summaries import SummaryBus
from agents.kafka.security import client_options
from agents.settings import Settings
from agents.topics import summaries_topic

log = logging.getLogger(__name__)


async def follow_summaries(settings: Settings, bus: SummaryBus) -> None:
    """Read the summaries topic from the start, then follow it; reconnect every second
    after a failure (the bus must outlive broker outages)."""
    topic = summaries_topic(settings)
    while True:
        consumer = AIOKafkaConsumer(
            **client_options(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # exactly once: a deposed owner's summaries are in aborted transactions
            isolation_level="read_committed",
        )
        try:
            await consumer.start()
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            bus.connected = True
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
                for records in batch.values():
                    for record in records:
                        bus.receive(record.value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "value summaries: reading %s failed (%r); retrying",
                topic,
                exc,
                extra={"event": "summaries_read_failed"},
            )
            bus.connected = False
            await asyncio.sleep(1.0)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
