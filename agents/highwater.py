"""Log-end offsets that are right on every Kafka-compatible broker.

Faust's table recovery reads a changelog partition up to its log end, which it asks for
with ListOffsets(latest). The embedded broker (Tansu 0.6) answers that with the base
offset of the partition's last record *batch* plus one, not the offset after its last
record: after a batch of five, four records short. Recovery then stops early, and a
RocksDB store whose recorded offset lies past that answer fails Faust's consistency
check. The high watermark in a fetch response is right on that broker too, and on Apache
Kafka both answers agree (with acks=all the log end a reader may see is the high
watermark), so recovery uses the larger of the two.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

Highwaters = Callable[..., Awaitable[Mapping[Any, int]]]


async def fetched_highwaters(
    bootstrap: list[str], listed: Mapping[Any, int], *, wait_seconds: float = 10.0
) -> dict[Any, int]:
    """For each partition (a (topic, partition) tuple) with a listed end offset above
    zero, the high watermark a fetch of its last listed record reports."""
    wanted = {tp: TopicPartition(tp[0], tp[1]) for tp, end in listed.items() if end}
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted.values()))
        for tp, kafka_tp in wanted.items():
            consumer.seek(kafka_tp, listed[tp] - 1)
        found: dict[Any, int] = {}
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while len(found) < len(wanted) and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(timeout_ms=200)
            for tp, kafka_tp in wanted.items():
                highwater = consumer.highwater(kafka_tp)
                if highwater is not None:
                    found[tp] = highwater
                    consumer.pause(kafka_tp)
        return found
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def exact_highwaters(highwaters: Highwaters, bootstrap: list[str]) -> Highwaters:
    """Wrap a Faust consumer's `highwaters` (ListOffsets) so that no answer is below the
    fetched high watermark."""

    async def exact(*partitions: Any) -> Mapping[Any, int]:
        listed = dict(await highwaters(*partitions))
        fetched = await fetched_highwaters(bootstrap, listed)
        return {tp: max(end, fetched.get(tp, end)) for tp, end in listed.items()}

    return exact
